/**
 * The prober of a hostile world: one connection per planned probe (hostile.ts), and a verdict on
 * each from what the broker sent back and whether it closed the connection.
 *
 * A probe connects, sends a valid CONNECT first where the probe needs an accepted connection,
 * then its hostile bytes, and reads everything the broker sends until the broker closes. The
 * verdict compares the packets with the outcome the broker promises (ProbeExpectation): the exact
 * CONNACK or DISCONNECT reason code, or none at all, and nothing else; a CONNACK that accepts what
 * must be refused is reported the moment it arrives (`hostile-outcome`). A broker that keeps such a
 * connection open once every probe byte reached it (for longer than any network stall) breaks
 * the rule too (`hostile-not-closed`); a connection that never sends a CONNECT is owed its close
 * at connectTimeoutMs. A broker crash or a reset makes a probe inconclusive: it is not judged.
 *
 * After a refused CONNECT the same client id connects again, validly, asking to resume: it must
 * get session present 0 (`refused-connect-session`): the refused CONNECT, which asked for a lasting
 * session, left nothing behind. The will a refused CONNECT carried is registered with the checker,
 * which reports its publication (`refused-connect-will`). Probes never publish or subscribe, so
 * nothing but these packets may reach them.
 *
 * The prober is not one of the world's faulty clients: faults aimed at clients never choose it,
 * so its link is read in order and to the end unless the broker crashes.
 */
import { PacketDecoder } from '../../src/codec/decoder.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { type Packet, PacketType, type ProtocolVersion } from '../../src/codec/packets.js';
import type { Checker } from '../checker.js';
import type { EventQueue } from '../event-queue.js';
import { buildProbe, connectBytes, type Probe, type ProbeLimits, type ProbePlan } from '../hostile.js';
import type { ClientSide, Link, Network } from '../network.js';

/** What a client outside the model clients' plan (the prober, the impostor) needs of the world. */
export interface ProberContext {
  readonly clock: { nowMs: number };
  readonly queue: EventQueue;
  readonly network: Network;
  readonly checker: Checker;
  trace(line: string): void;
  reportViolation(rule: string, detail: string): void;
}

type Stage = 'connecting' | 'await-connack' | 'hostile' | 'follow-up' | 'done';

interface Run {
  probe: Probe;
  generation: number;
  stage: Stage;
  link: Link | null;
  decoder: PacketDecoder | null;
  /** What the broker sent after the hostile bytes went out (or from the start, without a CONNECT first). */
  answers: Packet[];
  attempts: number;
  /** A Server Keep Alive the accepting CONNACK set (ms; 0: none), and when the hostile bytes reached the broker. */
  keepAliveMs: number;
  hostileArrivedMs: number | null;
}

/** Past any stall the network may put on a segment (NetworkShape.stallMsMax is at most 3 s). */
const settleMs = 3_500;
const connectAttemptsMax = 20;
/** MQTT 5.0 DISCONNECT 0x8D Keep Alive timeout. */
const keepAliveTimeout = 0x8d;

export class Prober implements ClientSide {
  private readonly runs = new Map<Link, Run>();
  private generationNext = 1;

  constructor(
    readonly index: number,
    private readonly plans: readonly ProbePlan[],
    private readonly limits: ProbeLimits & { connectTimeoutMs: number },
    private readonly context: ProberContext,
  ) {}

  start(): void {
    for (const plan of this.plans) this.context.queue.push(plan.atMs, () => this.begin(plan));
  }

  private trace(text: string): void {
    this.context.trace(`h${this.index} ${text}`);
  }

  private begin(plan: ProbePlan): void {
    const generation = this.generationNext++;
    const probe = buildProbe(plan, this.index, generation, this.limits);
    if (probe === null) return;
    this.open({ probe, generation, stage: 'connecting', link: null, decoder: null, answers: [], attempts: 0, keepAliveMs: 0, hostileArrivedMs: null });
  }

  private open(run: Run): void {
    run.attempts += 1;
    const link = this.context.network.connect(this.index, this);
    run.link = link;
    this.runs.set(link, run);
  }

  connectFailed(link: Link): void {
    const run = this.runs.get(link);
    if (run === undefined) return;
    this.runs.delete(link);
    // The broker is down: try again a little later (a bounded number of times).
    if (run.attempts < connectAttemptsMax) this.context.queue.push(this.context.clock.nowMs + 500, () => this.open(run));
  }

  connected(link: Link): void {
    const run = this.runs.get(link);
    if (run === undefined) return;
    const probe = run.probe;
    if (run.stage === 'follow-up') return this.sendFollowUp(run, link);
    if (probe.connect !== null) {
      run.stage = 'await-connack';
      run.decoder = new PacketDecoder({ packetBytesMax: 1 << 28, protocolVersion: probe.version });
      this.send(link, probe.connect, `CONNECT ${probe.clientId} for ${probe.name}`);
      this.noteConnect(link, probe.version);
      return;
    }
    this.sendHostile(run, link);
  }

  private sendHostile(run: Run, link: Link): void {
    const probe = run.probe;
    run.stage = 'hostile';
    const decodeVersion = probe.expect.kind === 'refused' ? probe.expect.version : probe.version;
    if (run.decoder === null) run.decoder = new PacketDecoder({ packetBytesMax: 1 << 28, protocolVersion: decodeVersion });
    if (probe.will !== null) this.context.checker.refusedConnectWill(this.index, probe.will.generation, probe.will.topic);
    if (probe.expect.kind === 'accepted') this.noteConnect(link, probe.version);
    if (probe.hostile.length > 0) {
      this.send(link, probe.hostile, `hostile ${probe.name} (${probe.hostile.length}B)`);
      link.watchArrival((atMs) => (run.hostileArrivedMs = atMs));
    } else this.trace(`L${link.id} stays silent (${probe.name})`);
    if (probe.expect.kind === 'accepted') return;
    const waitMs = probe.silent ? this.limits.connectTimeoutMs + settleMs : settleMs;
    this.context.queue.push(this.context.clock.nowMs + waitMs, () => this.checkClosed(run, link));
  }

  /** The CONNECT's whole arrival and the CONNACK's sending, for the world's count of connected clients. */
  private noteConnect(link: Link, version: ProtocolVersion): void {
    link.protocolVersion = version;
    link.watchArrival((atMs) => (link.connectArrivedMs = atMs));
  }

  private send(link: Link, bytes: Uint8Array, what: string): void {
    this.trace(`L${link.id} send ${what}`);
    this.context.network.clientSend(link, bytes);
  }

  /** Every probe byte reached the broker long ago and the link is still open at the broker's side. */
  private checkClosed(run: Run, link: Link): void {
    if (!link.brokerOpen || run.stage !== 'hostile') return;
    const nowMs = this.context.clock.nowMs;
    if (link.bytesDeliveredToBroker < link.bytesSentToBroker || nowMs - link.lastDeliveredToBrokerMs < settleMs - 1_000) {
      this.context.queue.push(nowMs + 1_000, () => this.checkClosed(run, link));
      return;
    }
    this.context.reportViolation(
      'hostile-not-closed',
      `probe ${run.probe.name} (${run.probe.clientId}, L${link.id}): the broker still holds the connection open at ${nowMs}ms; its bytes arrived by ${link.lastDeliveredToBrokerMs}ms`,
    );
  }

  bytes(link: Link, bytes: Uint8Array): void {
    const run = this.runs.get(link);
    if (run === undefined || run.decoder === null) return;
    run.decoder.push(bytes);
    for (;;) {
      let packet: Packet | null;
      try {
        packet = run.decoder.next();
      } catch (error) {
        this.context.reportViolation('broker-sent-malformed', `probe ${run.probe.name} (L${link.id}) could not decode the broker's answer: ${(error as Error).message}`);
        run.stage = 'done';
        return;
      }
      if (packet === null || run.stage === 'done') return;
      this.trace(`L${link.id} recv ${describe(packet)}`);
      this.onPacket(run, link, packet);
    }
  }

  private onPacket(run: Run, link: Link, packet: Packet): void {
    const probe = run.probe;
    if (run.stage === 'await-connack') {
      if (packet.type !== PacketType.Connack || packet.reasonCode !== 0) return this.fail(run, `its valid CONNECT got ${describe(packet)}`);
      link.connackSentMs = lastPacketSentMs(link, run.decoder!);
      run.keepAliveMs = (packet.properties?.serverKeepAlive ?? 0) * 1000;
      return this.sendHostile(run, link);
    }
    if (run.stage === 'follow-up') return this.onFollowUp(run, link, packet);
    run.answers.push(packet);
    if (packet.type !== PacketType.Connack || packet.reasonCode !== 0) return;
    if (probe.expect.kind !== 'accepted') return this.fail(run, `the broker accepted it: ${describe(packet)}`);
    link.connackSentMs = lastPacketSentMs(link, run.decoder!);
    this.context.checker.noteCoverage('hostile-probes');
    run.stage = 'done';
    this.send(link, encodePacket({ type: PacketType.Disconnect, reasonCode: 0 }, probe.version), 'DISCONNECT');
    this.context.network.clientClose(link);
  }

  private fail(run: Run, what: string): void {
    run.stage = 'done';
    this.context.reportViolation('hostile-outcome', `probe ${run.probe.name} (${run.probe.clientId}): ${what}; expected ${expectation(run.probe)}`);
  }

  closed(link: Link, how: 'fin' | 'reset'): void {
    const run = this.runs.get(link);
    if (run === undefined) return;
    this.runs.delete(link);
    if (run.stage === 'done') return;
    // A crash or a reset cut the answer short: nothing to judge.
    if (how === 'reset') {
      this.trace(`L${link.id} reset: ${run.probe.name} not judged`);
      return;
    }
    if (run.stage === 'follow-up') return this.fail(run, 'its follow-up CONNECT was closed without a CONNACK');
    if (run.stage !== 'hostile') return this.fail(run, `the connection was closed before the probe was sent (${run.stage})`);
    const problem = judge(run.probe, run.answers);
    if (problem !== null && this.timedOutFirst(run, link)) {
      this.trace(`L${link.id} keepalive timeout before the probe arrived: ${run.probe.name} not judged`);
      return;
    }
    if (problem !== null) return this.fail(run, problem);
    this.trace(`L${link.id} ${run.probe.name}: as promised`);
    this.context.checker.noteCoverage('hostile-probes');
    if (run.probe.will !== null) this.context.checker.noteCoverage('hostile-wills-refused');
    if (!run.probe.followUp) return;
    run.stage = 'follow-up';
    run.decoder = new PacketDecoder({ packetBytesMax: 1 << 28, protocolVersion: 5 });
    run.attempts = 0;
    this.context.queue.push(this.context.clock.nowMs + 10, () => this.open(run));
  }

  /**
   * A Server Keep Alive (some worlds set one of a second) may run out before a stalled segment
   * brings the probe: DISCONNECT 0x8D then is the broker keeping its promise, not breaking one.
   */
  private timedOutFirst(run: Run, link: Link): boolean {
    const [answer] = run.answers;
    if (run.answers.length !== 1 || answer!.type !== PacketType.Disconnect || answer!.reasonCode !== keepAliveTimeout || run.keepAliveMs === 0) return false;
    return run.hostileArrivedMs === null || link.connectArrivedMs === null || run.hostileArrivedMs - link.connectArrivedMs >= run.keepAliveMs;
  }

  /** Asks to resume the refused CONNECT's client id: there must be nothing to resume. */
  private sendFollowUp(run: Run, link: Link): void {
    this.send(link, connectBytes(5, run.probe.clientId, { resume: true }), `CONNECT ${run.probe.clientId} resume (follow-up)`);
    this.noteConnect(link, 5);
  }

  private onFollowUp(run: Run, link: Link, packet: Packet): void {
    run.stage = 'done';
    if (packet.type !== PacketType.Connack || packet.reasonCode !== 0) return this.fail(run, `its follow-up CONNECT got ${describe(packet)}`);
    link.connackSentMs = lastPacketSentMs(link, run.decoder!);
    if (packet.sessionPresent) {
      this.context.reportViolation('refused-connect-session', `probe ${run.probe.name}: a CONNECT for ${run.probe.clientId} found a session, which only the refused CONNECT could have made`);
      return;
    }
    this.context.checker.noteCoverage('refused-connect-follow-ups');
    this.send(link, encodePacket({ type: PacketType.Disconnect, reasonCode: 0 }, 5), 'DISCONNECT');
    this.context.network.clientClose(link);
  }
}

/** When the broker handed over the packet just decoded (its last byte) on `link`. */
function lastPacketSentMs(link: Link, decoder: PacketDecoder): number {
  return link.brokerSendTimeMs(link.bytesDeliveredToClient - decoder.bufferedBytes - 1);
}

/** Null when `answers` are exactly what `probe` was promised, else what was wrong. */
export function judge(probe: Probe, answers: readonly Packet[]): string | null {
  const expect = probe.expect;
  const wanted: Packet[] = [];
  if (expect.kind === 'refused' && expect.connack !== null) wanted.push({ type: PacketType.Connack, sessionPresent: false, reasonCode: expect.connack });
  if (expect.kind === 'disconnected' && expect.disconnect !== null) wanted.push({ type: PacketType.Disconnect, reasonCode: expect.disconnect });
  if (expect.kind === 'accepted') return 'the broker closed it without accepting it';
  const got = answers.map(describe).join(', ') || 'nothing';
  const same = answers.length === wanted.length && answers.every((packet, index) => describe(packet) === describe(wanted[index]!));
  return same ? null : `the broker sent ${got} before closing`;
}

function expectation(probe: Probe): string {
  const expect = probe.expect;
  if (expect.kind === 'accepted') return 'a CONNACK accepting it';
  if (expect.kind === 'refused') return expect.connack === null ? 'a close without CONNACK' : `CONNACK 0x${expect.connack.toString(16)} and a close`;
  return expect.disconnect === null ? 'a close without DISCONNECT' : `DISCONNECT 0x${expect.disconnect.toString(16)} and a close`;
}

function describe(packet: Packet): string {
  switch (packet.type) {
    case PacketType.Connack:
      return `CONNACK 0x${packet.reasonCode.toString(16)}${packet.sessionPresent ? ' sp' : ''}`;
    case PacketType.Disconnect:
      return `DISCONNECT 0x${packet.reasonCode.toString(16)}`;
    default:
      return `packet type ${packet.type}`;
  }
}
