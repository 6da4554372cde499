/**
 * A model MQTT client (3.1.1 or 5.0) driven by the simulator's events, speaking through Keel's
 * own codec over a simulated link.
 *
 * It behaves like a careful real client: it keeps its session state across reconnects when its
 * session is persistent (as a client with a durable store would, even across its own crashes),
 * resends unacknowledged PUBLISHes with DUP and unanswered PUBRELs when the broker says the
 * session is present [MQTT-4.4.0-1], acknowledges in the order it received [MQTT-4.6.0-2], and
 * deduplicates QoS 2 deliveries by packet identifier until PUBREL (so its application sees each
 * QoS 2 message once). Its script is fixed by its plan (publishes at planned times, with
 * self-identifying payloads); faults come from the world, which calls `reset`, `vanish` and
 * `crash`. Everything it sends and receives, and everything its application sees, is reported
 * to the checker, which judges the broker from those observations alone.
 *
 * Its workload (ClientPlan.workload) adds: windows in which it stops reading its socket (the
 * network holds what the broker sends it; its keepalive may give up meanwhile, as a real
 * client's would, and then it reconnects); MQTT 5.0 topic aliases both ways (it aliases its own
 * topics when the broker's CONNACK allows, and resolves the aliases the broker uses towards it,
 * reporting any alias the broker never defined or that exceeds the maximum it announced, so the
 * checker judges topics after resolution); a will delay and a session expiry for a clean
 * session; message expiry intervals on its publishes; and one UNSUBSCRIBE at a planned time
 * (sent again after a reconnect that resumed the session before its UNSUBACK came, and the
 * filter left out of every later SUBSCRIBE).
 *
 * Its coverage plan (ClientPlan.coverage) adds: windows in which the client process hangs (it
 * sends nothing, not even PINGREQ, reads nothing and runs no timer, while its link stays open;
 * what it would have done meanwhile happens when it wakes), so that the broker must time it out
 * by keepalive; filter sets that change from one fresh session to the next (each fresh session
 * subscribes the next set); and connections at which a persistent client starts a clean session.
 * It follows the Server Keep Alive of a 5.0 CONNACK, and tells the world the keepalive each
 * connection was granted, so that the world can hold the broker to it.
 */
import { PacketDecoder } from '../../src/codec/decoder.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { type Packet, PacketType, type Properties, type PublishPacket, type Qos } from '../../src/codec/packets.js';
import type { Checker, SendTiming } from '../checker.js';
import type { EventQueue } from '../event-queue.js';
import { passwordFor } from '../identity.js';
import type { ClientSide, Link, Network } from '../network.js';
import type { Random } from '../random.js';
import type { ClientPlan } from '../shape.js';
import type { StreamChecker } from '../stream-checker.js';
import { streamOffsetValue } from '../stream-shape.js';
import { messagePayload, willPayload } from './payload.js';

export interface ClientContext {
  readonly clock: { nowMs: number };
  readonly queue: EventQueue;
  readonly network: Network;
  readonly checker: Checker;
  /** The stream rules' oracle: a stream reader reports its subscriptions and deliveries there. */
  readonly streamChecker: StreamChecker;
  /** Faults have stopped: slow readers read at full speed so liveness has a fair bound. */
  readonly isQuiet: boolean;
  trace(line: string): void;
  /** A broken invariant of the client's own view of the protocol (the broker misbehaved). */
  reportViolation(rule: string, detail: string): void;
  /** The broker accepted the connection with this keepalive (seconds; 0: none): hold it to it. */
  watchKeepAlive(link: Link, keepAliveSeconds: number): void;
}

type Stage = 'unsent' | 'await-ack' | 'await-pubcomp';

interface Outgoing {
  sequence: number;
  topic: string;
  qos: Qos;
  retain: boolean;
  packetId: number;
  stage: Stage;
}

type Phase = 'offline' | 'connecting' | 'connack-wait' | 'online';

const inflightOwnMax = 8;

export class ModelClient implements ClientSide {
  phase: Phase = 'offline';
  link: Link | null = null;
  /** When the current connection's CONNACK arrived. */
  connackAtMs = 0;
  generation = 0;
  private decoder: PacketDecoder | null = null;
  readonly outgoing: Outgoing[] = [];
  private readonly inboundQos2 = new Set<number>();
  private packetIdNext = 1;
  private subscribePacketId = 0;
  private publishCursor = 0;
  private serverReceiveMaximum = 65_535;
  private keepAliveMs: number;
  private lastSentMs = 0;
  private lastReceivedMs = 0;
  private lastAckMs = 0;
  private hadSession = false;
  /** Reconnects are paused until this time (crash, backoff). */
  private stoppedUntilMs = 0;
  private violatorRounds = 0;
  /** MQTT 5.0 topic aliases of the current connection: ours towards the broker, the broker's towards us. */
  private serverTopicAliasMaximum = 0;
  private readonly outgoingAliases = new Map<string, number>();
  private readonly incomingAliases = new Map<number, string>();
  /** The planned UNSUBSCRIBE: not yet due, due (send when online), sent (awaiting UNSUBACK), done. */
  private unsubscribeStage: 'none' | 'due' | 'sent' | 'done' = 'none';
  private unsubscribePacketId = 0;
  /** Offset on the current link just past the last packet decoded. */
  private packetEndOffset = 0;
  /** The filters of the SUBSCRIBE awaiting its SUBACK. */
  private subscribedFilters: string[] = [];
  /** While the process hangs (coverage plan): the link it hangs on, and until when. */
  private hungLink: Link | null = null;
  private hungUntilMs = 0;
  /** Fresh sessions started so far: the next one subscribes filter set number `freshSessions`. */
  private freshSessions = 0;
  /** The identifier of the last fresh QoS 1/2 PUBLISH received (to see the broker's wrap). */
  private lastInboundPacketId = 0;
  /** Whether the current connection's CONNECT asked for a clean start, and whether one awaits its CONNACK. */
  private cleanStart = true;
  private cleanStartPending = false;
  /** The stall after the first SUBSCRIBE of a retained pacing world happened. */
  private retainedStallDone = false;
  /** The link the keepalive timer runs for, if any, and the token of its current chain. */
  private keepAliveLink: Link | null = null;
  private keepAliveToken = 0;

  constructor(
    readonly plan: ClientPlan,
    private readonly random: Random,
    private readonly context: ClientContext,
  ) {
    this.keepAliveMs = plan.keepAliveSeconds * 1000;
  }

  get online(): boolean {
    return this.phase === 'online';
  }

  /** Nothing of its own left to do: script finished and every publish acknowledged. */
  get settled(): boolean {
    return this.publishCursor === this.plan.publishes.length && this.outgoing.length === 0;
  }

  start(): void {
    this.schedule(this.random.int(0, 500), () => this.connect());
    this.scheduleNextPublish();
    this.scheduleReaderDisconnects();
    const workload = this.plan.workload;
    if (workload === undefined) return;
    for (const stall of workload.readStalls) this.context.queue.push(stall.atMs, () => this.stallReads(stall.durationMs));
    const unsubscribe = workload.unsubscribe;
    if (unsubscribe !== null) {
      this.context.queue.push(unsubscribe.atMs, () =>
        this.whenAwake(() => {
          this.unsubscribeStage = 'due';
          if (this.online) this.sendUnsubscribe();
        }),
      );
    }
    for (const hang of this.plan.coverage?.hangs ?? []) this.context.queue.push(hang.atMs, () => this.hang(hang.durationMs));
  }

  /** A stream reader's clean disconnects (it reconnects, and a persistent one resumes where it was). */
  private scheduleReaderDisconnects(): void {
    for (const atMs of this.plan.streamReader?.disconnectsAtMs ?? []) this.context.queue.push(atMs, () => this.whenAwake(() => this.disconnectCleanly()));
  }

  /** The process hangs: no byte out, none read, no timer, while the link stays open (see the module comment). */
  private hang(durationMs: number): void {
    const link = this.link;
    if (link === null || !link.clientOpen || !this.online || this.context.isQuiet || this.hungLink !== null) return;
    this.trace(`hang for ${durationMs}ms`);
    this.context.checker.noteCoverage('hangs');
    this.hungLink = link;
    this.hungUntilMs = this.context.clock.nowMs + durationMs;
    this.context.network.holdReads(link, false);
    this.schedule(durationMs, () => {
      this.hungLink = null;
      this.trace('wake');
      this.context.network.releaseReads(link);
    });
  }

  private get hung(): boolean {
    return this.hungLink !== null && this.hungLink === this.link && this.context.clock.nowMs < this.hungUntilMs;
  }

  /** Runs `run` now, or when the process wakes if it hangs (a hung process runs nothing). */
  private whenAwake(run: () => void): void {
    if (!this.hung) return run();
    this.context.queue.push(this.hungUntilMs, () => this.whenAwake(run));
  }

  /** Stops reading the current link for a while (a stalled reader); a later link is read normally. */
  private stallReads(durationMs: number): void {
    const link = this.link;
    if (link === null || !link.clientOpen || this.context.isQuiet) return;
    this.trace(`stall reads for ${durationMs}ms`);
    this.context.network.holdReads(link);
    // A hung process reads nothing: the hang's end releases the reads, not the stall's.
    this.schedule(durationMs, () => {
      if (!this.hung) this.context.network.releaseReads(link);
    });
  }

  /** The filters of the current session: its filter set, less the filter it unsubscribed. */
  private activeSubscriptions(): { filter: string; qos: Qos }[] {
    const sets = this.plan.coverage?.subscriptionSets ?? [this.plan.subscriptions];
    const subscriptions = sets[Math.max(0, this.freshSessions - 1) % sets.length]!;
    const unsubscribe = this.plan.workload?.unsubscribe ?? null;
    if (unsubscribe === null || this.unsubscribeStage === 'none') return subscriptions;
    return subscriptions.filter((subscription) => subscription.filter !== unsubscribe.filter);
  }

  private sendUnsubscribe(): void {
    const filter = this.plan.workload!.unsubscribe!.filter;
    this.unsubscribeStage = 'sent';
    this.unsubscribePacketId = this.allocatePacketId();
    this.context.checker.unsubscribeSent(this.plan.index, filter);
    this.send({ type: PacketType.Unsubscribe, packetId: this.unsubscribePacketId, topicFilters: [filter] });
  }

  private schedule(delayMs: number, run: () => void): void {
    this.context.queue.push(this.context.clock.nowMs + delayMs, run);
  }

  private trace(text: string): void {
    this.context.trace(`c${this.plan.index} ${text}`);
  }

  private connect(): void {
    if (this.phase !== 'offline') return;
    if (this.context.clock.nowMs < this.stoppedUntilMs) {
      this.schedule(this.stoppedUntilMs - this.context.clock.nowMs, () => this.connect());
      return;
    }
    if (this.plan.violator && this.violatorRounds >= 3) return;
    this.phase = 'connecting';
    this.link = this.context.network.connect(this.plan.index, this);
  }

  connected(link: Link): void {
    if (link !== this.link || this.phase !== 'connecting') return;
    this.generation += 1;
    this.phase = 'connack-wait';
    this.packetEndOffset = 0;
    this.decoder = new PacketDecoder({ packetBytesMax: 16 * 1024 * 1024, protocolVersion: this.plan.protocolVersion });
    this.lastReceivedMs = this.context.clock.nowMs;
    if (this.plan.violator) {
      this.misbehave(link);
      return;
    }
    const will = this.plan.will;
    // A clean start asked for and not yet confirmed by a CONNACK is asked for again: the client
    // cannot tell whether the broker already discarded its session.
    const cleanStart = !this.plan.persistent || this.cleanStartPending || (this.plan.coverage?.cleanStartGenerations.includes(this.generation) ?? false);
    this.cleanStart = cleanStart;
    this.cleanStartPending = cleanStart;
    // A clean start that reaches the broker ends the old session, CONNACK or not: expect none until one comes.
    if (cleanStart) this.hadSession = false;
    if (cleanStart && this.plan.persistent) this.context.checker.noteCoverage('persistent-clean-starts');
    const workload = this.plan.workload;
    const willDelaySeconds = workload?.willDelaySeconds ?? 0;
    const willProperties = willDelaySeconds > 0 ? { properties: { willDelayInterval: willDelaySeconds } } : {};
    this.send({
      type: PacketType.Connect,
      protocolName: 'MQTT',
      protocolVersion: this.plan.protocolVersion,
      cleanStart,
      keepAliveSeconds: this.plan.keepAliveSeconds,
      clientId: this.plan.clientId,
      // Identity worlds: a verified client's CONNECT claims another user's name (the broker must
      // go by the transport's), with its own password, which fits only its own name.
      ...(this.plan.identity === undefined ? {} : { username: this.plan.identity.connectUsername, password: passwordFor(this.plan.identity.username) }),
      ...(will === null ? {} : { will: { topic: will.topic, qos: will.qos, retain: false, payload: willPayload(this.plan.index, this.generation, will.topic), ...willProperties } }),
      ...(this.plan.protocolVersion === 5 ? this.connectProperties() : {}),
    });
    const sessionExpirySeconds = this.plan.persistent ? 0xffffffff : (workload?.cleanSessionExpirySeconds ?? 0);
    this.context.checker.connectSent(this.plan.index, this.generation, link, will !== null, { willDelaySeconds, sessionExpirySeconds, cleanStart });
    this.scheduleKeepAlive(link);
  }

  private connectProperties(): { properties?: Properties } {
    const properties: Properties = {};
    const expirySeconds = this.plan.persistent ? 0xffffffff : (this.plan.workload?.cleanSessionExpirySeconds ?? 0);
    if (expirySeconds > 0) properties.sessionExpiryInterval = expirySeconds;
    const aliasMaximum = this.plan.workload?.topicAliasMaximum ?? 0;
    if (aliasMaximum > 0) properties.topicAliasMaximum = aliasMaximum;
    return Object.keys(properties).length === 0 ? {} : { properties };
  }

  connectFailed(link: Link): void {
    if (link !== this.link) return;
    this.wentOffline(link, 'refused');
  }

  closed(link: Link, how: 'fin' | 'reset'): void {
    if (link !== this.link) return;
    this.wentOffline(link, how);
  }

  private wentOffline(link: Link, how: string): void {
    const wasConnected = this.phase === 'connack-wait' || this.phase === 'online';
    this.trace(`offline (${how})`);
    this.phase = 'offline';
    this.link = null;
    this.decoder = null;
    this.keepAliveLink = null;
    if (wasConnected && !this.plan.violator) this.context.checker.connectionEnded(this.plan.index, this.generation, link, 'abnormal');
    if (wasConnected && this.plan.streamReader !== undefined) this.context.streamChecker.connectionEnded(this.plan.index);
    this.schedule(this.random.int(100, 2_000), () => this.connect());
  }

  /** Fault: the client aborts its connection (RST) and reconnects. */
  reset(): void {
    const link = this.link;
    if (link === null || !link.clientOpen) return;
    this.context.network.clientReset(link);
    this.wentOffline(link, 'client-reset');
  }

  /** Fault: the client's side disappears without a word (half-open for the broker). */
  vanish(): void {
    const link = this.link;
    if (link === null || !link.clientOpen) return;
    this.context.network.clientVanish(link);
    this.wentOffline(link, 'vanish');
  }

  /** Fault: the client process dies (the OS resets its socket) and comes back after a while. */
  crash(downMs: number): void {
    this.stoppedUntilMs = this.context.clock.nowMs + downMs;
    this.trace(`crash for ${downMs}ms`);
    this.reset();
  }

  private send(packet: Packet): void {
    const link = this.link;
    if (link === null || !link.clientOpen) return;
    this.lastSentMs = this.context.clock.nowMs;
    this.trace(`send ${describe(packet)}`);
    this.context.network.clientSend(link, encodePacket(packet, this.plan.protocolVersion));
  }

  bytes(link: Link, bytes: Uint8Array): void {
    if (link !== this.link || this.decoder === null) return;
    this.lastReceivedMs = this.context.clock.nowMs;
    this.decoder.push(bytes);
    for (;;) {
      // A refusing CONNACK (identity worlds: the id belongs to another user now) ends the link
      // inside this loop, and whatever followed it on the link is not this connection's any more.
      if (this.decoder === null || link !== this.link) return;
      let packet: Packet | null;
      try {
        packet = this.decoder.next();
      } catch (error) {
        this.context.reportViolation('broker-sent-malformed', `c${this.plan.index} could not decode: ${(error as Error).message}`);
        return;
      }
      if (packet === null || link !== this.link) return;
      this.trace(`recv ${describe(packet)}`);
      this.handle(link, packet, this.sendTiming(link, packet));
    }
  }

  /**
   * When the broker handed the packet just decoded to the network, and when it decided to send
   * it if that is known. A send is decided in the input that hands it over unless the broker held
   * it back (behind output awaiting durability, which it releases in order, all at one instant);
   * so a QoS 0/1 packet handed over later than the one before it was not held, and was decided then.
   */
  private sendTiming(link: Link, packet: Packet): SendTiming {
    const endOffset = link.bytesDeliveredToClient - this.decoder!.bufferedBytes;
    const startOffset = this.packetEndOffset;
    this.packetEndOffset = endOffset;
    // Asked in ascending offsets (the link forgets chunks behind the last one asked for).
    const previousSentMs = startOffset === 0 ? Number.NEGATIVE_INFINITY : link.brokerSendTimeMs(startOffset - 1);
    const firstByteSentMs = link.brokerSendTimeMs(startOffset);
    const sentMs = link.brokerSendTimeMs(endOffset - 1);
    // A QoS 2 PUBLISH may also be held for its own delivery record's durability.
    const mayBeHeld = packet.type === PacketType.Publish && packet.qos === 2;
    return { sentMs, decidedMs: previousSentMs < firstByteSentMs && !mayBeHeld ? sentMs : null };
  }

  private handle(link: Link, packet: Packet, timing: SendTiming): void {
    if (this.plan.violator) return;
    switch (packet.type) {
      case PacketType.Connack:
        this.serverTopicAliasMaximum = packet.properties?.topicAliasMaximum ?? 0;
        return this.onConnack(link, packet.sessionPresent, packet.reasonCode, packet.properties ?? {});
      case PacketType.Publish:
        return this.onPublish(packet, timing);
      case PacketType.Unsuback:
        if (packet.packetId === this.unsubscribePacketId && this.unsubscribeStage === 'sent') {
          this.unsubscribeStage = 'done';
          this.unsubscribePacketId = 0;
          this.context.checker.unsubackReceived(this.plan.index, this.plan.workload!.unsubscribe!.filter);
        }
        return;
      case PacketType.Puback:
        return this.onPuback(packet.packetId);
      case PacketType.Pubrec:
        return this.onPubrec(packet.packetId, packet.reasonCode);
      case PacketType.Pubrel:
        this.inboundQos2.delete(packet.packetId);
        return this.ackLater({ type: PacketType.Pubcomp, packetId: packet.packetId, reasonCode: 0 });
      case PacketType.Pubcomp:
        return this.onPubcomp(packet.packetId);
      case PacketType.Suback:
        if (packet.packetId === this.subscribePacketId) {
          this.subscribePacketId = 0;
          this.context.checker.subackReceived(this.plan.index, this.subscribedFilters, packet.reasonCodes);
          if (this.plan.streamReader !== undefined) this.context.streamChecker.subackReceived(this.plan.index, packet.reasonCodes[0] ?? 0x80);
        }
        return;
      case PacketType.Disconnect:
        this.trace(`server disconnect 0x${packet.reasonCode.toString(16)}`);
        return;
      default:
        return;
    }
  }

  private onConnack(link: Link, sessionPresent: boolean, reasonCode: number, properties: Properties): void {
    if (this.phase !== 'connack-wait') return;
    if (reasonCode !== 0) {
      this.context.network.clientClose(link);
      this.wentOffline(link, `connack 0x${reasonCode.toString(16)}`);
      return;
    }
    this.phase = 'online';
    this.connackAtMs = this.context.clock.nowMs;
    this.cleanStartPending = false;
    // Topic aliases live and die with the network connection [MQTT-3.3.2-7].
    this.outgoingAliases.clear();
    this.incomingAliases.clear();
    this.serverReceiveMaximum = properties.receiveMaximum ?? 65_535;
    // [MQTT-3.2.2-21] a Server Keep Alive replaces the one the client asked for.
    if (properties.serverKeepAlive !== undefined) this.keepAliveMs = properties.serverKeepAlive * 1000;
    this.context.watchKeepAlive(link, properties.serverKeepAlive ?? this.plan.keepAliveSeconds);
    if (properties.serverKeepAlive !== undefined) this.scheduleKeepAlive(link, true);
    const expectPresent = this.plan.persistent && this.hadSession && !this.cleanStart;
    this.context.checker.connackReceived(this.plan.index, this.generation, sessionPresent, expectPresent, this.cleanStart, properties.maximumQos ?? 2);
    // Another user or an operator may have ended the session meanwhile (identity.ts, operator.ts):
    // the session found is the old one (the deletion did not last) or an empty one that a CONNECT
    // whose CONNACK never came made; the client cannot tell, so it starts over with a clean start.
    if (sessionPresent && !this.cleanStart && this.hadSession && this.context.checker.sessionMayHaveEndedElsewhere(this.plan.index)) {
      this.trace('session present, perhaps not its own: clean start');
      this.cleanStartPending = true;
      this.disconnectCleanly();
      return;
    }
    // A session the client had no part in (a 3.1.1 clean session ended with its connection, and a
    // CONNECT whose CONNACK never came made this one) holds nothing of its own: start afresh.
    const resumed = sessionPresent && !this.cleanStart && this.hadSession;
    if (!resumed) this.startFreshSession();
    // A 3.1.1 clean session ends with its connection; a 5.0 clean start keeps its expiry.
    this.hadSession = this.plan.persistent && !(this.cleanStart && this.plan.protocolVersion === 4);
    for (const message of this.outgoing) {
      if (message.stage === 'await-ack') this.sendPublish(message, true);
      else if (message.stage === 'await-pubcomp') this.send({ type: PacketType.Pubrel, packetId: message.packetId, reasonCode: 0 });
    }
    if (!resumed && this.unsubscribeStage === 'sent') this.unsubscribeStage = 'done';
    if (!resumed && this.activeSubscriptions().length > 0) this.subscribe();
    if (resumed && (this.unsubscribeStage === 'due' || this.unsubscribeStage === 'sent')) this.sendUnsubscribe();
    else if (this.unsubscribeStage === 'due') this.unsubscribeStage = 'done';
    this.pump();
  }

  /** The broker has no session for us: what we held in flight is gone (unacknowledged, so no promise). */
  private startFreshSession(): void {
    this.inboundQos2.clear();
    for (let index = this.outgoing.length - 1; index >= 0; index--) {
      const message = this.outgoing[index]!;
      if (message.stage === 'unsent') continue;
      this.context.checker.publishAbandoned(this.plan.index, message.sequence);
      this.outgoing.splice(index, 1);
    }
    this.freshSessions += 1;
    const setCount = this.plan.coverage?.subscriptionSets.length ?? 1;
    if (this.freshSessions > 1 && setCount > 1) this.context.checker.noteCoverage('filter-set-changes');
    this.context.checker.sessionStarted(this.plan.index);
    if (this.plan.streamReader !== undefined) this.context.streamChecker.sessionStarted(this.plan.index);
  }

  private subscribe(): void {
    const subscriptions = this.activeSubscriptions();
    this.subscribePacketId = this.allocatePacketId();
    this.subscribedFilters = subscriptions.map((s) => s.filter);
    this.context.checker.subscribeSent(this.plan.index, subscriptions);
    const reader = this.plan.streamReader;
    if (reader !== undefined) this.context.streamChecker.subscribeSent(this.plan.index);
    // A plain MQTT 5.0 reader says where to start in the `stream-offset` user property (stream-shape.ts).
    const startValue = reader !== undefined && reader.group === null && this.plan.protocolVersion === 5 ? streamOffsetValue(reader.start) : null;
    this.send({
      type: PacketType.Subscribe,
      packetId: this.subscribePacketId,
      subscriptions: subscriptions.map((s) => ({ topicFilter: s.filter, qos: s.qos, noLocal: false, retainAsPublished: false, retainHandling: 0 })),
      ...(startValue === null ? {} : { properties: { userProperties: [['stream-offset', startValue]] } }),
    });
    const link = this.link;
    if (link === null || !link.clientOpen) return;
    this.context.checker.subscribeOnLink(this.plan.index, link);
    // A retained pacing world: the replay this SUBSCRIBE starts meets a reader that stopped.
    const stallMs = this.plan.retainedStallMs;
    if (stallMs !== undefined && !this.retainedStallDone) {
      this.retainedStallDone = true;
      this.stallReads(stallMs);
    }
  }

  private allocatePacketId(): number {
    for (let attempt = 0; attempt < 65_535; attempt++) {
      const candidate = this.packetIdNext;
      this.packetIdNext = candidate === 65_535 ? 1 : candidate + 1;
      if (candidate === 65_535) this.context.checker.noteCoverage('client-packet-id-wraps');
      if (candidate === this.subscribePacketId || candidate === this.unsubscribePacketId) continue;
      if (!this.outgoing.some((m) => m.packetId === candidate)) return candidate;
    }
    throw new Error(`c${this.plan.index}: no free packet identifier`);
  }

  private scheduleNextPublish(): void {
    const planned = this.plan.publishes[this.publishCursor];
    if (planned === undefined) return;
    this.context.queue.push(Math.max(planned.atMs, this.context.clock.nowMs), () =>
      this.whenAwake(() => {
        const sequence = this.publishCursor++;
        this.outgoing.push({ sequence, topic: planned.topic, qos: planned.qos, retain: planned.retain, packetId: 0, stage: 'unsent' });
        this.pump();
        if (this.online && this.random.chance(this.plan.cleanReconnectProbability)) this.disconnectCleanly();
        this.scheduleNextPublish();
      }),
    );
  }

  private pump(): void {
    if (!this.online) return;
    const windowMax = Math.min(inflightOwnMax, this.serverReceiveMaximum);
    let inflight = this.outgoing.filter((m) => m.stage !== 'unsent' && m.qos > 0).length;
    for (let index = 0; index < this.outgoing.length; index++) {
      const message = this.outgoing[index]!;
      if (message.stage !== 'unsent') continue;
      if (message.qos === 0) {
        this.sendPublish(message, false);
        this.outgoing.splice(index--, 1);
        continue;
      }
      if (inflight >= windowMax) break;
      message.packetId = this.allocatePacketId();
      message.stage = 'await-ack';
      inflight += 1;
      this.sendPublish(message, false);
    }
  }

  private sendPublish(message: Outgoing, dup: boolean): void {
    const expirySeconds = this.plan.workload?.publishExpirySeconds[message.sequence] ?? null;
    const properties: Properties = {};
    if (expirySeconds !== null) properties.messageExpiryInterval = expirySeconds;
    const topic = this.aliasTopic(message.topic, properties);
    const packet: PublishPacket = {
      type: PacketType.Publish,
      dup,
      qos: message.qos,
      retain: message.retain,
      topic,
      payload: messagePayload(this.plan.index, message.sequence, message.qos, message.topic, this.plan.publishes[message.sequence]?.fillerBytes),
      ...(message.qos > 0 ? { packetId: message.packetId } : {}),
      ...(Object.keys(properties).length > 0 ? { properties } : {}),
    };
    this.context.checker.publishSent(this.plan.index, message.sequence, message.topic, message.qos, message.retain, expirySeconds, this.plan.publishes[message.sequence]?.fillerBytes);
    this.send(packet);
    const link = this.link;
    if (link === null || !link.clientOpen) return;
    const publisher = this.plan.index;
    link.watchArrival((atMs) => this.context.checker.publishArrived(publisher, message.sequence, atMs));
  }

  /**
   * The topic name to put in a PUBLISH of `topic`, setting `properties.topicAlias` when this
   * client aliases: the first use on a connection carries the name, later ones only the alias.
   */
  private aliasTopic(topic: string, properties: Properties): string {
    if (!(this.plan.workload?.sendTopicAliases ?? false) || this.serverTopicAliasMaximum === 0) return topic;
    const existing = this.outgoingAliases.get(topic);
    if (existing !== undefined) {
      properties.topicAlias = existing;
      return '';
    }
    if (this.outgoingAliases.size >= this.serverTopicAliasMaximum) return topic;
    const alias = this.outgoingAliases.size + 1;
    this.outgoingAliases.set(topic, alias);
    properties.topicAlias = alias;
    return topic;
  }

  private findOutgoing(packetId: number, stage: Stage): Outgoing | undefined {
    return this.outgoing.find((m) => m.packetId === packetId && m.stage === stage);
  }

  private onPuback(packetId: number): void {
    const message = this.findOutgoing(packetId, 'await-ack');
    if (message === undefined || message.qos !== 1) return;
    this.outgoing.splice(this.outgoing.indexOf(message), 1);
    this.context.checker.publishAcked(this.plan.index, message.sequence);
    this.pump();
  }

  private onPubrec(packetId: number, reasonCode: number): void {
    const message = this.findOutgoing(packetId, 'await-ack');
    if (message === undefined || message.qos !== 2) {
      // A PUBREC for something already past this stage: answer again, the broker lost our PUBREL.
      if (this.findOutgoing(packetId, 'await-pubcomp') !== undefined) this.send({ type: PacketType.Pubrel, packetId, reasonCode: 0 });
      return;
    }
    if (reasonCode >= 0x80) {
      this.outgoing.splice(this.outgoing.indexOf(message), 1);
      this.context.checker.publishAbandoned(this.plan.index, message.sequence);
      this.pump();
      return;
    }
    message.stage = 'await-pubcomp';
    this.context.checker.publishAcked(this.plan.index, message.sequence);
    this.send({ type: PacketType.Pubrel, packetId, reasonCode: 0 });
  }

  private onPubcomp(packetId: number): void {
    const message = this.findOutgoing(packetId, 'await-pubcomp');
    if (message === undefined) return;
    this.outgoing.splice(this.outgoing.indexOf(message), 1);
    this.pump();
  }

  private onPublish(received: PublishPacket, timing: SendTiming): void {
    const checker = this.context.checker;
    const packet = this.resolveAlias(received);
    if (packet === null) return;
    if (this.plan.streamReader !== undefined) return this.onStreamDelivery(packet, timing);
    // The broker's identifiers for this session wrapped (65,535 back to low ones) while in use.
    if (packet.qos > 0 && !packet.dup && packet.packetId! < 1_000 && this.lastInboundPacketId > 64_000) this.context.checker.noteCoverage('broker-packet-id-wraps');
    if (packet.qos > 0 && !packet.dup) this.lastInboundPacketId = packet.packetId!;
    if (packet.qos === 2) {
      const packetId = packet.packetId!;
      const fresh = !this.inboundQos2.has(packetId);
      if (fresh) this.inboundQos2.add(packetId);
      checker.publishReceived(this.plan.index, packet, fresh, timing, this.plan.protocolVersion);
      this.ackLater({ type: PacketType.Pubrec, packetId, reasonCode: 0 });
      return;
    }
    checker.publishReceived(this.plan.index, packet, true, timing, this.plan.protocolVersion);
    if (packet.qos === 1) this.ackLater({ type: PacketType.Puback, packetId: packet.packetId!, reasonCode: 0 });
  }

  /**
   * A stream reader's delivery goes to the stream rules only (its topic is the one the message was
   * published to, which no subscription of this client names); the acknowledgement, once it
   * reaches the broker, is the reader's commit (stream-checker.ts).
   */
  private onStreamDelivery(packet: PublishPacket, timing: SendTiming): void {
    const streams = this.context.streamChecker;
    const delivery = streams.delivered(this.plan.index, packet, timing.sentMs);
    if (packet.qos === 0) return;
    this.ackLater({ type: PacketType.Puback, packetId: packet.packetId!, reasonCode: 0 }, (link) => {
      streams.ackSent(this.plan.index, delivery);
      link.watchArrival((atMs) => streams.ackArrived(this.plan.index, delivery, atMs));
    });
  }

  /**
   * The PUBLISH with its topic alias resolved (MQTT 5.0 section 3.3.2.3.4), or null after
   * reporting an alias this client never allowed [MQTT-3.3.2-9] or the broker never defined.
   */
  private resolveAlias(packet: PublishPacket): PublishPacket | null {
    const alias = packet.properties?.topicAlias;
    if (alias === undefined) {
      if (packet.topic.length === 0) this.context.reportViolation('topic-alias', `c${this.plan.index} got a PUBLISH with neither topic nor alias`);
      return packet.topic.length === 0 ? null : packet;
    }
    const aliasMaximum = this.plan.workload?.topicAliasMaximum ?? 0;
    if (alias === 0 || alias > aliasMaximum) {
      this.context.reportViolation('topic-alias', `c${this.plan.index} got topic alias ${alias}, above the ${aliasMaximum} it allowed`);
      return null;
    }
    if (packet.topic.length > 0) {
      this.incomingAliases.set(alias, packet.topic);
      return packet;
    }
    const topic = this.incomingAliases.get(alias);
    if (topic === undefined) {
      this.context.reportViolation('topic-alias', `c${this.plan.index} got topic alias ${alias}, never defined on this connection`);
      return null;
    }
    return { ...packet, topic };
  }

  /** Sends an acknowledgement after this client's reading delay, keeping the order of acks. */
  private ackLater(packet: Packet, afterSend?: (link: Link) => void): void {
    const link = this.link;
    const sendNow = (): void => {
      this.send(packet);
      if (afterSend !== undefined && link?.clientOpen === true) afterSend(link);
    };
    const delayMsMax = this.context.isQuiet ? Math.min(this.plan.ackDelayMsMax, 5) : this.plan.ackDelayMsMax;
    const delayMs = delayMsMax === 0 ? 0 : this.random.int(0, delayMsMax);
    const atMs = Math.max(this.context.clock.nowMs + delayMs, this.lastAckMs);
    this.lastAckMs = atMs;
    if (atMs === this.context.clock.nowMs) return sendNow();
    this.context.queue.push(atMs, () =>
      this.whenAwake(() => {
        if (this.link === link) sendNow();
      }),
    );
  }

  /** An orderly goodbye: DISCONNECT (reason 0, so no will), FIN, and a reconnect a little later. */
  disconnectCleanly(): void {
    const link = this.link;
    if (link === null || !this.online) return;
    this.send({ type: PacketType.Disconnect, reasonCode: 0 });
    this.context.checker.connectionEnded(this.plan.index, this.generation, link, 'clean');
    if (this.plan.streamReader !== undefined) this.context.streamChecker.connectionEnded(this.plan.index);
    this.context.network.clientClose(link);
    this.phase = 'offline';
    this.link = null;
    this.decoder = null;
    this.keepAliveLink = null;
    this.trace('offline (clean disconnect)');
    this.schedule(this.random.int(50, 1_000), () => this.connect());
  }

  /** One timer per link, started at CONNECT and started again by a Server Keep Alive in the CONNACK. */
  private scheduleKeepAlive(link: Link, restart = false): void {
    if (this.keepAliveLink === link && !restart) return;
    this.keepAliveLink = link;
    this.keepAliveToken += 1;
    if (this.keepAliveMs > 0) this.keepAliveTimer(link, this.keepAliveToken);
  }

  private keepAliveTimer(link: Link, token: number): void {
    this.context.queue.push(this.context.clock.nowMs + Math.max(1, Math.floor(this.keepAliveMs / 2)), () =>
      this.whenAwake(() => {
        if (link !== this.link || token !== this.keepAliveToken) return;
        const nowMs = this.context.clock.nowMs;
        if (nowMs - this.lastReceivedMs > this.keepAliveMs * 2) {
          this.trace('keepalive expired');
          this.reset();
          return;
        }
        if (this.online && nowMs - this.lastSentMs >= this.keepAliveMs / 2) this.send({ type: PacketType.Pingreq });
        this.keepAliveTimer(link, token);
      }),
    );
  }

  /** A protocol violator: maybe a valid CONNECT, then bytes no parser can accept, then gone. */
  private misbehave(link: Link): void {
    this.violatorRounds += 1;
    if (this.random.chance(0.5)) {
      this.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: this.plan.protocolVersion, cleanStart: true, keepAliveSeconds: 0, clientId: this.plan.clientId });
    }
    const garbage = this.random.pick([
      [0x00, 0x00], // packet type 0 is reserved
      [0x36, 0x02, 0x00, 0x00], // PUBLISH with QoS 3
      [0x30, 0xff, 0xff, 0xff, 0xff, 0x01], // remaining length longer than four bytes
    ]);
    this.schedule(this.random.int(0, 200), () => {
      if (link !== this.link) return;
      this.trace('send garbage');
      this.context.network.clientSend(link, Uint8Array.from(garbage));
      this.schedule(this.random.int(0, 500), () => (this.random.chance(0.5) ? this.vanish() : this.reset()));
    });
  }
}

function describe(packet: Packet): string {
  switch (packet.type) {
    case PacketType.Publish: {
      const alias = packet.properties?.topicAlias === undefined ? '' : ` alias=${packet.properties.topicAlias}`;
      const expiry = packet.properties?.messageExpiryInterval === undefined ? '' : ` expiry=${packet.properties.messageExpiryInterval}s`;
      // Stream deliveries (and only they) carry their offset: only stream worlds' traces show it.
      const offset = packet.properties?.userProperties?.find(([name]) => name === 'stream-offset')?.[1];
      const streamOffset = offset === undefined ? '' : ` @${offset}`;
      return `PUBLISH q${packet.qos}${packet.dup ? ' dup' : ''}${packet.retain ? ' retain' : ''} id${packet.packetId ?? '-'} ${packet.topic}${alias}${expiry}${streamOffset} ${packet.payload.length}B`;
    }
    case PacketType.Unsubscribe:
      return `UNSUBSCRIBE id${packet.packetId} ${packet.topicFilters.join(',')}`;
    case PacketType.Unsuback:
      return `UNSUBACK id${packet.packetId} ${packet.reasonCodes.join(',')}`;
    case PacketType.Connect:
      return `CONNECT ${packet.clientId} v${packet.protocolVersion} clean=${packet.cleanStart}${packet.will ? ' will' : ''}`;
    case PacketType.Connack:
      return `CONNACK sp=${packet.sessionPresent} rc=${packet.reasonCode}`;
    case PacketType.Puback:
    case PacketType.Pubrec:
    case PacketType.Pubrel:
    case PacketType.Pubcomp:
      return `${packetName(packet.type)} id${packet.packetId} rc=${packet.reasonCode}`;
    case PacketType.Subscribe:
      return `SUBSCRIBE id${packet.packetId} ${packet.subscriptions.map((s) => `${s.topicFilter}:${s.qos}`).join(',')}`;
    case PacketType.Suback:
      return `SUBACK id${packet.packetId} ${packet.reasonCodes.join(',')}`;
    case PacketType.Disconnect:
      return `DISCONNECT rc=${packet.reasonCode}`;
    default:
      return packetName(packet.type);
  }
}

export function packetName(type: number): string {
  return ['?', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE', 'SUBACK', 'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT', 'AUTH'][type] ?? '?';
}
