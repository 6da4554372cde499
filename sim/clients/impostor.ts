/**
 * The impostor of an identity world (identity.ts): user `mallory` connects with the client id of
 * another user's persistent session, asking to resume it (Clean Start 0), as in issue 12's bob.
 *
 * Each planned attempt opens a connection (3.1.1 or 5.0; some through a transport that verifies
 * `mallory` while the CONNECT claims the victim's user name), sends its CONNECT with mallory's
 * password, and judges the answer at once:
 * - accepted: `foreign-session-present` if the CONNACK says session present (the session belongs
 *   to someone else, and mallory's own sessions never hold anything); `foreign-owner-accepted` if
 *   the setting is `refuse` and the victim's session surely exists (its first CONNACK came before
 *   this CONNECT was sent, no amnesty since, and nothing else can end it);
 * - refused with 0x87 / return code 5: `foreign-connect-refused` when the setting is
 *   `fresh-session` (other refusal codes, such as a quota, are not judged);
 * - any PUBLISH on an impostor connection is `foreign-session-leak`: mallory never subscribes, so
 *   only the victim's subscriptions or queue could have sent it.
 * An accepted attempt stays connected for a while and leaves with DISCONNECT. A 3.1.1 CONNECT with
 * Clean Session 0 that may have been accepted (its CONNACK came, or never did) may leave a lasting
 * session owned by mallory, which would lock the victim out under `refuse`, and which a later
 * attempt may rightly find (session present): the impostor then connects again with Clean
 * Session 1 until one is accepted and ends cleanly (or is refused: the session is someone else's).
 *
 * The impostor is not one of the world's faulty clients (faults aimed at clients never choose it),
 * but broker crashes cut its connections; an attempt cut before its CONNACK is not judged.
 */
import { PacketDecoder } from '../../src/codec/decoder.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { type Packet, PacketType } from '../../src/codec/packets.js';
import { type ImpostorAttempt, type ImpostorPlan, impostorUser, passwordFor } from '../identity.js';
import type { ClientSide, Link } from '../network.js';
import type { ProberContext } from './prober.js';

interface Attempt {
  plan: ImpostorAttempt;
  /** A 3.1.1 Clean Session 1 CONNECT that removes a lasting session mallory may own. */
  cleanup: boolean;
  sentMs: number | null;
  /** When its CONNECT reached the broker (null: not yet, or never). */
  arrivedMs: number | null;
  /** The order in which attempts sent their CONNECT. */
  sequence: number;
  decoder: PacketDecoder;
  stage: 'connecting' | 'await-connack' | 'online' | 'done';
}

/** MQTT 5.0 CONNACK 0x87 Not authorized; 3.1.1 return code 5. */
const notAuthorized = 0x87;
const notAuthorizedV4 = 5;
const cleanupAttemptsMax = 200;

export class Impostor implements ClientSide {
  private readonly attempts = new Map<Link, Attempt>();
  /** A 3.1.1 Clean Session 0 CONNECT of mallory was accepted and no cleanup ended it yet. */
  private mayOwnSession = false;
  /** The sequence of the last 3.1.1 Clean Session 0 CONNECT sent, and of the last CONNECT sent. */
  private lastLastingSequence = 0;
  private sequenceNext = 1;
  /** When mallory last stopped possibly owning a lasting session (see judgeAccepted). */
  private disownedMs = Number.NEGATIVE_INFINITY;
  private cleanupAttempts = 0;
  private cleanupScheduled = false;
  /** The attempts whose CONNECT reached the broker, in order of arrival. */
  private readonly arrivals: Attempt[] = [];

  constructor(
    readonly index: number,
    private readonly plan: ImpostorPlan,
    private readonly ownerMismatch: 'refuse' | 'fresh-session',
    /** Whether the victim's session, once made, can only end by the broker's fault or an amnesty. */
    private readonly victimSessionLasts: boolean,
    private readonly context: ProberContext,
  ) {}

  start(): void {
    for (const attempt of this.plan.attempts)
      this.context.queue.push(attempt.atMs, () => this.open({ plan: attempt, cleanup: false, sentMs: null, arrivedMs: null, sequence: 0, decoder: decoderFor(attempt), stage: 'connecting' }));
  }

  /** The user name the broker must see on `link` when the transport verified it. */
  verifiedUsername(link: Link): string | undefined {
    return this.attempts.get(link)?.plan.verified === true ? impostorUser : undefined;
  }

  private trace(text: string): void {
    this.context.trace(`i${this.index} ${text}`);
  }

  private open(attempt: Attempt): void {
    const link = this.context.network.connect(this.index, this);
    this.attempts.set(link, attempt);
  }

  connectFailed(link: Link): void {
    const attempt = this.attempts.get(link);
    this.attempts.delete(link);
    if (attempt?.cleanup === true) this.scheduleCleanup();
  }

  connected(link: Link): void {
    const attempt = this.attempts.get(link);
    if (attempt === undefined) return;
    const version = attempt.plan.protocolVersion;
    // A verified transport makes mallory mallory, whatever the CONNECT claims.
    const claimed = attempt.plan.verified ? this.plan.victimUsername : impostorUser;
    const packet: Packet = {
      type: PacketType.Connect,
      protocolName: 'MQTT',
      protocolVersion: version,
      cleanStart: attempt.cleanup,
      keepAliveSeconds: 60,
      clientId: this.plan.clientId,
      username: claimed,
      password: passwordFor(impostorUser),
    };
    attempt.stage = 'await-connack';
    attempt.sentMs = this.context.clock.nowMs;
    attempt.sequence = this.sequenceNext++;
    // A 3.1.1 Clean Session 0 CONNECT may be accepted even if its CONNACK never comes back.
    if (!attempt.cleanup && version === 4) {
      this.mayOwnSession = true;
      this.lastLastingSequence = attempt.sequence;
    }
    this.trace(
      `L${link.id} send CONNECT ${this.plan.clientId} as ${attempt.plan.verified ? `verified ${impostorUser} claiming ${claimed}` : impostorUser} v${version}${attempt.cleanup ? ' clean' : ' resume'}`,
    );
    this.context.network.clientSend(link, encodePacket(packet, version));
    link.watchArrival((atMs) => this.arrived(attempt, atMs));
    if (this.ownerMismatch === 'fresh-session') link.watchArrival((atMs) => this.context.checker.foreignSessionClaimed(this.plan.victim, atMs));
  }

  /**
   * A CONNECT reached the broker. Links are independent: a lasting 3.1.1 CONNECT held up on its
   * way may arrive after a later cleanup was accepted, and make mallory a lasting session again
   * (seed 1000070); then it may own one, and cleans up again.
   */
  private arrived(attempt: Attempt, atMs: number): void {
    attempt.arrivedMs = atMs;
    this.arrivals.push(attempt);
    if (attempt.cleanup || attempt.plan.protocolVersion !== 4 || this.mayOwnSession) return;
    this.mayOwnSession = true;
    this.scheduleCleanup();
  }

  /** A lasting 3.1.1 CONNECT reached the broker after `cleanup` did (it undid that cleanup). */
  private lastingArrivedAfter(cleanup: Attempt): boolean {
    if (cleanup.arrivedMs === null) return false;
    return this.arrivals.some((other) => !other.cleanup && other.plan.protocolVersion === 4 && other.arrivedMs! > cleanup.arrivedMs!);
  }

  bytes(link: Link, bytes: Uint8Array): void {
    const attempt = this.attempts.get(link);
    if (attempt === undefined || attempt.stage === 'done') return;
    attempt.decoder.push(bytes);
    for (;;) {
      let packet: Packet | null;
      try {
        packet = attempt.decoder.next();
      } catch (error) {
        this.context.reportViolation('broker-sent-malformed', `impostor L${link.id} could not decode the broker's answer: ${(error as Error).message}`);
        attempt.stage = 'done';
        return;
      }
      if (packet === null) return;
      if (!this.onPacket(link, attempt, packet)) return;
    }
  }

  /** False when the attempt is over (nothing more to read on it). */
  private onPacket(link: Link, attempt: Attempt, packet: Packet): boolean {
    if (packet.type === PacketType.Publish) {
      attempt.stage = 'done';
      this.context.reportViolation(
        'foreign-session-leak',
        `${impostorUser}, connected with ${this.plan.clientId} (the session of c${this.plan.victim}), got a PUBLISH on ${packet.topic}; it never subscribed`,
      );
      return false;
    }
    if (packet.type !== PacketType.Connack || attempt.stage !== 'await-connack') return true;
    this.trace(`L${link.id} recv CONNACK 0x${packet.reasonCode.toString(16)}${packet.sessionPresent ? ' sp' : ''}`);
    if (packet.reasonCode !== 0) {
      this.onRefused(link, attempt, packet.reasonCode);
      return false;
    }
    if (!this.judgeAccepted(attempt, packet.sessionPresent)) {
      attempt.stage = 'done';
      return false;
    }
    attempt.stage = 'online';
    // Only if no lasting CONNECT went out after it, which may yet be accepted, nor reached the broker after it.
    if (attempt.cleanup && this.lastLastingSequence < attempt.sequence && !this.lastingArrivedAfter(attempt)) this.disown();
    this.context.queue.push(this.context.clock.nowMs + attempt.plan.holdMs, () => this.leave(link, attempt));
    return true;
  }

  /** False when the acceptance broke a rule (reported). */
  private judgeAccepted(attempt: Attempt, sessionPresent: boolean): boolean {
    const checker = this.context.checker;
    // Its own lasting session, possibly held at any moment since this CONNECT went out (another
    // link may bring a later CONNECT first, and a cleanup may pass it), may rightly be present.
    if (sessionPresent && !attempt.cleanup && !this.mayOwnSession && this.disownedMs < attempt.sentMs!) {
      this.context.reportViolation('foreign-session-present', `${impostorUser} connected with ${this.plan.clientId}, the session of c${this.plan.victim}, and got session present`);
      return false;
    }
    if (this.ownerMismatch === 'refuse' && this.victimSessionLasts && !attempt.cleanup && checker.sessionSurelyExists(this.plan.victim, attempt.sentMs!)) {
      this.context.reportViolation('foreign-owner-accepted', `${impostorUser} connected with ${this.plan.clientId} although c${this.plan.victim}'s session exists and sessionOwnerMismatch is refuse`);
      return false;
    }
    if (!attempt.cleanup) checker.noteCoverage(this.ownerMismatch === 'refuse' ? 'foreign-connects-accepted-no-session' : 'foreign-connects-fresh-session');
    return true;
  }

  private onRefused(link: Link, attempt: Attempt, reasonCode: number): void {
    attempt.stage = 'done';
    this.context.network.clientClose(link);
    const identityRefusal = reasonCode === (attempt.plan.protocolVersion === 5 ? notAuthorized : notAuthorizedV4);
    if (attempt.cleanup) {
      // Someone else's session holds the id now: nothing of mallory's is left to remove.
      if (identityRefusal && this.lastLastingSequence < attempt.sequence && !this.lastingArrivedAfter(attempt)) this.disown();
      else this.scheduleCleanup();
      return;
    }
    if (!identityRefusal) return;
    // Refused for its identity: the id's session is someone else's, nothing of mallory's is left
    // (unless a lasting CONNECT sent after this one gets in).
    if (this.lastLastingSequence <= attempt.sequence && !this.lastingArrivedAfter(attempt)) this.disown();
    if (this.ownerMismatch === 'fresh-session') {
      this.context.reportViolation('foreign-connect-refused', `${impostorUser} was refused (0x${reasonCode.toString(16)}) on ${this.plan.clientId}; sessionOwnerMismatch is fresh-session`);
      return;
    }
    this.context.checker.noteCoverage('foreign-connects-refused');
  }

  private leave(link: Link, attempt: Attempt): void {
    if (attempt.stage !== 'online' || !link.clientOpen) return;
    attempt.stage = 'done';
    this.trace(`L${link.id} send DISCONNECT`);
    this.context.network.clientSend(link, encodePacket({ type: PacketType.Disconnect, reasonCode: 0 }, attempt.plan.protocolVersion));
    this.context.network.clientClose(link);
    if (this.mayOwnSession) this.scheduleCleanup();
  }

  closed(link: Link, _how: 'fin' | 'reset'): void {
    const attempt = this.attempts.get(link);
    this.attempts.delete(link);
    if (attempt === undefined) return;
    if (attempt.stage !== 'done') this.trace(`L${link.id} closed (${attempt.stage})`);
    attempt.stage = 'done';
    if (this.mayOwnSession || attempt.cleanup) this.scheduleCleanup();
  }

  /**
   * An amnesty opened (a repair cut the log, or a crash under a relaxed sync policy): the broker
   * may have forgotten a cleanup, so a lasting session mallory ever held may be back, locking the
   * victim out under `refuse`. Clean up again, as after any CONNECT that may have left one.
   */
  amnestyOpened(): void {
    if (this.lastLastingSequence === 0) return;
    this.mayOwnSession = true;
    this.scheduleCleanup();
  }

  private disown(): void {
    if (this.mayOwnSession) this.disownedMs = this.context.clock.nowMs;
    this.mayOwnSession = false;
  }

  /** Connects with Clean Session 1 until mallory surely owns no lasting session (see the module comment). */
  private scheduleCleanup(): void {
    if (!this.mayOwnSession || this.cleanupScheduled || this.cleanupAttempts >= cleanupAttemptsMax) return;
    this.cleanupScheduled = true;
    this.cleanupAttempts += 1;
    this.context.queue.push(this.context.clock.nowMs + 300, () => {
      this.cleanupScheduled = false;
      if (!this.mayOwnSession) return;
      const plan: ImpostorAttempt = { atMs: this.context.clock.nowMs, protocolVersion: 4, verified: false, holdMs: 10 };
      this.open({ plan, cleanup: true, sentMs: null, arrivedMs: null, sequence: 0, decoder: decoderFor(plan), stage: 'connecting' });
    });
  }
}

function decoderFor(attempt: ImpostorAttempt): PacketDecoder {
  return new PacketDecoder({ packetBytesMax: 1 << 28, protocolVersion: attempt.protocolVersion });
}
