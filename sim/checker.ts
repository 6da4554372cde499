/**
 * The oracle: judges the broker only from what the model clients sent and received, what their
 * applications saw, and what the world did to them (faults, crashes). It never looks inside the
 * broker, except for two reports the broker owes the world: the `message-dropped` log line it
 * emits when it drops a message for a session (a full queue, an expired message, a packet too
 * large), which names the message by a CRC-32C of its payload and so excuses the loss of exactly
 * that message for exactly that session; and a halt that says recovery found corruption.
 *
 * Durability. A broker crash, with the disk losing any unsynced write, must lose nothing that was
 * acknowledged (PUBACK/PUBREC, SUBACK, CONNACK with a session) under the `always` sync policy:
 * every rule below holds across crashes. Two things open an amnesty at a point in time, after
 * which state established before that point may be gone: a crash under the `interval` policy
 * (it acknowledges before syncing, by design), and a repair after corruption that the disk
 * injected AND the broker reported (the log is cut at the damage). Under an amnesty, losses of
 * messages sent or subscriptions granted before it, sessions lost, QoS 2 duplicates of messages
 * sent before it and stale retained values are allowed; nothing else is. Corruption the broker
 * never reported opens no amnesty, so a loss it caused is a violation.
 *
 * Safety rules are checked as each packet arrives: nothing delivered that was never published,
 * payloads and topics intact, nothing to a session with no matching subscription, QoS 0 never
 * duplicated, QoS 2 seen once by the application, order per (publisher, topic, QoS) for each
 * subscriber, no will after a clean DISCONNECT, no will while its connection is open, session
 * present exactly when it must be. Liveness rules are checked once, after the quiet period:
 * every client online with nothing pending, every acknowledged QoS 1/2 message (and every will
 * that had to fire) delivered to every subscription that was in place before it was published
 * and whose session survived to the end, and the retained table as a fresh subscriber sees it.
 *
 * Timing is judged conservatively from the client side: a subscription counts for a message
 * only if its SUBACK arrived before the message was first sent, and an acknowledged message
 * supersedes a retained one only if it was sent after that one's acknowledgement.
 *
 * The workload rules (see ClientWorkload in shape.ts) are exact too, judged from times the
 * network knows: when each copy of a PUBLISH reached the broker (the broker computes a message's
 * expiry from that input) and when the broker handed each packet it sent to the network.
 * - Stalled readers and the output cap: QoS 0 may be lost only where the broker said so. A QoS 0
 *   message that reached the broker while a subscriber's connection was up, on a connection that
 *   is still up at the end (so every byte the broker sent on it arrived), must have reached that
 *   subscriber or been reported dropped for it (`output-full` for a stalled reader). So a stalled
 *   reader costs only its own QoS 0 messages, and only reported ones; QoS 1/2 is owed as always.
 * - Message expiry [MQTT-3.3.2-5] / [MQTT-3.3.2-6]: a fresh (non-DUP) QoS 0/1 copy is never sent
 *   at or after the message's expiry; a 5.0 receiver gets the interval reduced by exactly the
 *   time the message waited (whole seconds, rounded up, at least 1); a message published without
 *   one carries none. QoS 2 copies may wait for durability after the broker encoded them, so
 *   only the bounds that hold either way are checked for them.
 * - Will delay [MQTT-3.1.3-9]: a will is not published before min(will delay, session expiry)
 *   after its connection ended, unless the session ended sooner (a clean-start CONNECT of the
 *   client, or a crash that lost a volatile session); and never once a connection resumed the
 *   session within that time.
 * - UNSUBSCRIBE [MQTT-3.10.4-2]: once the UNSUBACK arrived, a message that first reached the
 *   broker after it was sent is not delivered through the removed filter. Copies the broker had
 *   already buffered may still come [MQTT-3.10.4-4] (it MAY deliver them, so it also owes none).
 * - Topic aliases: the model client resolves them (and reports undefined ones); every rule here
 *   sees the resolved topic.
 *
 * The coverage rules (see sim/coverage.ts for the worlds that exercise them):
 * - Granted QoS [MQTT-3.8.4-8]: a copy comes at no more than the highest QoS granted to the
 *   session's matching subscriptions (before a SUBACK, what was asked for), retained copies on
 *   SUBSCRIBE included; no grant exceeds the Maximum QoS of the CONNACK.
 * - Overlapping subscriptions [MQTT-3.3.4-2]: Keel gives a session one copy per publication for
 *   all its matching plain subscriptions together, plus one per matching shared group; a first
 *   transmission (not DUP) beyond that is a duplicate. A publisher's resend of a QoS 1 message is
 *   a publication of its own; a broker crash (a redelivery may lose its DUP) and an amnesty excuse.
 * - Shared groups (section 4.8.2): a group gives each publication to one member; a second member
 *   getting it is a violation unless a member that had it may have lost it (its connection or
 *   session ended after the message reached the broker, or it left the group) or an amnesty
 *   applies. Copies are attributed to a group only where the member's subscriptions tell.
 * - Clean start: a session has only the subscriptions made in it, so a copy through an earlier
 *   session's filter is `not-subscribed`, unless an amnesty may have undone that session's end.
 * - Keepalive [MQTT-3.1.2-24] is judged by the world (keepalive-watch.ts), from the links.
 */
import type { PublishPacket, Qos } from '../src/codec/packets.js';
import type { AdminCommand } from '../src/contract.js';
import { crc32c } from '../src/store/crc32c.js';
import { isBrokerTopic } from '../src/topics/validate.js';
import { messagePayload, parsePayload, willPayload } from './clients/payload.js';
import type { Link } from './network.js';
import { ReplayAudit } from './replay-audit.js';
import { matchingFilter, splitShared, topicMatches } from './topic-match.js';

export type ViolationReporter = (rule: string, detail: string) => void;

export interface MessageRecord {
  key: string;
  publisher: number;
  sequence: number;
  topic: string;
  qos: Qos;
  retain: boolean;
  firstSentMs: number | null;
  ackedMs: number | null;
  /** MQTT 5.0 Message Expiry Interval it was published with, or null. */
  expirySeconds: number | null;
  /** When a copy of it first and last reached the broker (null until one did). */
  firstArrivalMs: number | null;
  lastArrivalMs: number | null;
  /** Copies of it that reached the broker: publications (a QoS 1 resend is a new one). */
  arrivals: number;
  /** Per shared group (`group/filter`): the members a copy was attributed to, and when it was sent. */
  sharedReceivers: Map<string, Map<number, number>>;
  payloadBytes: number;
}

/** What a CONNECT asked for, for the will delay rules. */
interface ConnectRecord {
  generation: number;
  link: Link;
  sentMs: number;
  /** When the CONNECT reached the broker whole (null until it did): when the broker acted on it. */
  arrivedMs: number | null;
  cleanStart: boolean;
  connackMs: number | null;
  sessionPresent: boolean;
}

/**
 * When the broker handed a packet to the network, and when it decided to send it if that is
 * known (null when the packet may have been held back behind output awaiting durability).
 */
export interface SendTiming {
  sentMs: number;
  decidedMs: number | null;
}

export interface ConnectOptions {
  willDelaySeconds: number;
  sessionExpirySeconds: number;
  cleanStart: boolean;
}

interface WillRecord {
  key: string;
  client: number;
  topic: string;
  link: Link;
  connackMs: number | null;
  /** Bytes the client had sent when it finished its DISCONNECT, or null without one. */
  cleanOffset: number | null;
  /** When the client sent that DISCONNECT. */
  cleanAtMs: number | null;
  ended: boolean;
  /** min(will delay, session expiry) in ms: how long after the connection ends the will waits. */
  delayMs: number;
  /** The session outlives its connection for ever (expiry 0xFFFFFFFF). */
  sessionLasting: boolean;
  /** Its CONNECT was refused: it must never be published. */
  refused: boolean;
}

interface Grant {
  filter: string;
  qos: number;
  sinceMs: number;
  epoch: number;
}

interface SubscriberState {
  epoch: number;
  /** When the broker last gave this client a new (empty) session. */
  sessionStartedMs: number;
  /** Every shared group (`group/filter`) this client ever asked to join, in any session. */
  groups: Set<string>;
  requested: Map<string, Qos>;
  granted: Map<string, Grant>;
  /** Application deliveries of live (not retained) copies, by message key. */
  deliveryCounts: Map<string, number>;
  /** Every message key that reached the application at all. */
  received: Set<string>;
  lastSequence: Map<string, number>;
  /** Deliveries at QoS 2 by message key: bounded by the matching subscriptions that asked for QoS 2. */
  qos2DeliveryCounts: Map<string, number>;
  /** Message keys the broker reported dropping for this session. */
  droppedKeys: Set<string>;
  /** Drop reports whose payload checksum matched no message this run published (never excuse anything). */
  dropsUnattributed: number;
  retainedSeen: Map<string, string>;
  /** Filters an UNSUBSCRIBE was sent for in this session, and when. */
  unsubscribing: Map<string, number>;
  /** Filters whose UNSUBACK arrived in this session, and when. */
  removed: Map<string, number>;
  /** The CONNECTs this client sent, in order. */
  connects: ConnectRecord[];
  /** The QoS each removed filter was last granted (it may still carry what was routed before). */
  removedGrants: Map<string, number>;
  /** Live copies in this session by message key that were first transmissions (not DUP): one per delivery. */
  firstCopies: Map<string, number>;
  /** The Maximum QoS of the last CONNACK (5.0; 2 when absent): no grant may exceed it. */
  maximumQos: number;
  /**
   * Filters of earlier sessions (and unsubscribed ones): each time one left the session, the QoS
   * it had and the time from which an amnesty may bring it back (the end of its session, or its
   * UNSUBACK). A clean start or an UNSUBSCRIBE acknowledged before an amnesty may be forgotten
   * with it. Every departure is kept: a later one must not hide an earlier one that an amnesty
   * may undo (a repair may roll the log back past several session ends).
   */
  formerFilters: Map<string, { qos: number; sinceMs: number }[]>;
  /** When its first CONNACK accepting it arrived (identity worlds: from then on its session exists). */
  firstConnackMs: number | null;
  /**
   * Times something other than the client may have ended its session: another user's CONNECT with
   * its id reached the broker (identity worlds under fresh-session), an operator deleted it.
   */
  sessionEndsMs: number[];
  /** delete-session commands for it (operator.ts): when they reached the broker, and when the result came back ok. */
  deletions: { requestMs: number; okMs: number | null }[];
}

/** A client's subscriptions that match one topic (see Checker.matchCount). */
interface Match {
  /** Matching subscriptions, plain and shared. */
  count: number;
  /** Matching plain (non-shared) subscriptions: together they give one copy per publication. */
  plain: number;
  /** Matching shared groups (`group/filter`): each may give one copy per publication. */
  groups: Set<string>;
  /** Copies per publication that may come at QoS 2 (one for the plain ones, one per group). */
  qos2Count: number;
  qos2Plain: boolean;
  /** The highest QoS granted (or, before the SUBACK, asked for) among them. */
  grantedQosMax: number;
}

export class Checker {
  readonly messages = new Map<string, MessageRecord>();
  private readonly wills = new Map<string, WillRecord>();
  private readonly subscribers = new Map<number, SubscriberState>();
  private readonly brokerCrashesMs: number[] = [];
  /** Crashes and finished recoveries in the order they happened (several may share a millisecond). */
  private readonly brokerLife: { kind: 'crash' | 'recovered'; atMs: number }[] = [];
  private readonly violators = new Set<number>();
  /** Payload identity (`crc|topic`) to message or will key, for attributing drop reports. */
  private readonly payloadKeys = new Map<string, string>();
  /** Times after which state established earlier may be lost (see the module comment). */
  private readonly amnestiesMs: number[] = [];
  /** delete-retained commands per topic (operator.ts): when they reached the broker, and when the result came back ok. */
  private readonly retainedDeletions = new Map<string, { requestMs: number; okMs: number | null }[]>();
  /** Admin commands awaiting their result, by request id. */
  private readonly adminPending = new Map<number, { requestMs: number; okMs: number | null }>();
  /** Wills (by key) of CONNECTs the broker must refuse (hostile probes): never to be published. */
  private readonly refusedWills = new Set<string>();
  messagesDelivered = 0;
  /** How often situations the coverage worlds aim for were seen (see noteCoverage). */
  readonly coverage = new Map<string, number>();

  /** The retained replay rules (replay-audit.ts). */
  readonly replays: ReplayAudit;

  /** Identity worlds (identity.ts): may this client's user read this topic, by the checker's own reading of the ACL. */
  private mayRead: (client: number, topic: string) => boolean = () => true;

  constructor(
    private readonly clock: { nowMs: number },
    private readonly report: ViolationReporter,
    options: { outputBytesMax?: number } = {},
  ) {
    this.replays = new ReplayAudit(
      {
        messages: this.messages,
        report: (rule, detail) => this.report(rule, detail),
        noteCoverage: (name) => this.noteCoverage(name),
        mayHaveLostSince: (sinceMs) => this.crashBetween(sinceMs, this.clock.nowMs) || this.amnestySince(sinceMs),
        owedTo: (client, message) => this.mayRead(client, message.topic),
        retainedCleared: (topic) => this.retainedDeletions.has(topic),
      },
      options.outputBytesMax ?? Number.POSITIVE_INFINITY,
    );
  }

  /** Counts one occurrence of a situation a coverage world aims for (reported per seed by vopr). */
  noteCoverage(name: string): void {
    this.coverage.set(name, (this.coverage.get(name) ?? 0) + 1);
  }

  /** Identity worlds: from now on, deliveries are judged against this reading of the ACL (see identity.ts). */
  setAccess(mayRead: (client: number, topic: string) => boolean): void {
    this.mayRead = mayRead;
  }

  /** Identity worlds under fresh-session: another user's CONNECT with this client's id reached the broker at `atMs` (identity.ts). */
  foreignSessionClaimed(client: number, atMs: number): void {
    this.subscriber(client).sessionEndsMs.push(atMs);
  }

  /** The world handed the broker an admin command (operator.ts). */
  adminRequested(requestId: number, command: AdminCommand, client: number | null): void {
    const atMs = this.clock.nowMs;
    this.noteCoverage(`admin-${command.kind}`);
    if (command.kind === 'delete-session' && client !== null) {
      const deletion = { requestMs: atMs, okMs: null };
      this.subscriber(client).sessionEndsMs.push(atMs);
      this.subscriber(client).deletions.push(deletion);
      this.adminPending.set(requestId, deletion);
    }
    if (command.kind === 'delete-retained') {
      const deletion = { requestMs: atMs, okMs: null };
      const list = this.retainedDeletions.get(command.topic) ?? [];
      list.push(deletion);
      this.retainedDeletions.set(command.topic, list);
      this.adminPending.set(requestId, deletion);
    }
  }

  /** The broker answered an admin command (held until what it changed is durable). */
  adminResulted(requestId: number, ok: boolean): void {
    const deletion = this.adminPending.get(requestId);
    this.adminPending.delete(requestId);
    if (deletion === undefined || !ok) return;
    deletion.okMs = this.clock.nowMs;
    this.noteCoverage('admin-deletions-ok');
  }

  /**
   * Something other than the client (another user's CONNECT, an operator) may have ended the
   * client's current session: a CONNECT whose CONNACK never came may then have made an empty one,
   * which the next CONNECT resumes with session present 1 (the model client starts afresh then).
   */
  sessionMayHaveEndedElsewhere(client: number): boolean {
    return this.sessionMayHaveEnded(this.subscriber(client));
  }

  /** Something other than the client may have ended its current session (see SubscriberState.sessionEndsMs). */
  private sessionMayHaveEnded(state: SubscriberState): boolean {
    // The current session began no earlier than the CONNECT that started it was sent.
    const startedMs = state.connects.find((connect) => connect.connackMs === state.sessionStartedMs)?.sentMs ?? state.sessionStartedMs;
    return state.sessionEndsMs.some((atMs) => atMs >= startedMs);
  }

  /**
   * A deletion that came back ok is durable: the first CONNECT of the client to reach the broker
   * after the command finds no session, crashes or not (only an amnesty may undo it).
   */
  private checkDeletedSession(client: number, state: SubscriberState, connect: ConnectRecord | undefined, sessionPresent: boolean): void {
    const arrivedMs = connect?.arrivedMs ?? null;
    if (arrivedMs === null) return;
    for (const deletion of state.deletions) {
      if (deletion.okMs === null || deletion.requestMs >= arrivedMs || this.amnestySince(deletion.requestMs)) continue;
      const earlier = state.connects.some((other) => other !== connect && other.arrivedMs !== null && other.arrivedMs > deletion.requestMs && other.arrivedMs <= arrivedMs);
      if (earlier) continue;
      if (!sessionPresent) {
        this.noteCoverage('deleted-sessions-judged');
        return;
      }
      this.report(
        'deleted-session-present',
        `c${client}: its session was deleted at ${deletion.requestMs}ms (result ok at ${deletion.okMs}ms), yet the first CONNECT to arrive after (${arrivedMs}ms) found it`,
      );
      return;
    }
  }

  /**
   * The client's persistent session exists at the broker now, if nothing but an amnesty can end
   * it: a CONNACK accepting the client arrived before `atMs` and no amnesty opened since.
   */
  sessionSurelyExists(client: number, atMs: number): boolean {
    const firstConnackMs = this.subscriber(client).firstConnackMs;
    return firstConnackMs !== null && firstConnackMs < atMs && !this.amnestySince(firstConnackMs);
  }

  markViolator(client: number): void {
    this.violators.add(client);
  }

  private subscriber(client: number): SubscriberState {
    let state = this.subscribers.get(client);
    if (state === undefined) {
      state = {
        epoch: 0,
        sessionStartedMs: 0,
        groups: new Set(),
        requested: new Map(),
        granted: new Map(),
        deliveryCounts: new Map(),
        received: new Set(),
        lastSequence: new Map(),
        qos2DeliveryCounts: new Map(),
        droppedKeys: new Set(),
        dropsUnattributed: 0,
        retainedSeen: new Map(),
        unsubscribing: new Map(),
        removed: new Map(),
        connects: [],
        removedGrants: new Map(),
        firstCopies: new Map(),
        maximumQos: 2,
        formerFilters: new Map(),
        firstConnackMs: null,
        sessionEndsMs: [],
        deletions: [],
      };
      this.subscribers.set(client, state);
    }
    return state;
  }

  brokerCrashed(): void {
    this.brokerCrashesMs.push(this.clock.nowMs);
    this.brokerLife.push({ kind: 'crash', atMs: this.clock.nowMs });
  }

  /** A broker start finished recovery (its recovered wills wait their delay again from now). */
  brokerRecovered(): void {
    this.brokerLife.push({ kind: 'recovered', atMs: this.clock.nowMs });
  }

  /** The broker reported dropping the message whose payload has this CRC-32C for this client's session. */
  brokerDropped(client: number, topic: string, payloadCrc32c: number): void {
    const state = this.subscriber(client);
    const key = this.payloadKeys.get(`${payloadCrc32c}|${topic}`);
    if (key === undefined) state.dropsUnattributed += 1;
    else state.droppedKeys.add(key);
  }

  /**
   * The broker reported dropping this message for `client` at its output cap (on top of
   * `brokerDropped`): only a live copy may be dropped there, never a retained replay's.
   */
  outputFullDropped(client: number, topic: string, payloadCrc32c: number): void {
    const key = this.payloadKeys.get(`${payloadCrc32c}|${topic}`);
    const record = key === undefined ? undefined : this.messages.get(key);
    if (record === undefined) return;
    // The connection the broker dropped it for: the newest one still open at the broker's side.
    const connects = this.subscriber(client).connects;
    let connectArrivedMs: number | null = null;
    for (let index = connects.length - 1; index >= 0; index--) {
      if (!connects[index]!.link.brokerOpen) continue;
      connectArrivedMs = connects[index]!.arrivedMs;
      break;
    }
    this.replays.outputFullDrop(client, record, connectArrivedMs);
  }

  /** Liveness: the retained replays owed to these clients (connections up at both ends) are complete. */
  checkRetainedReplays(clients: Iterable<number>): void {
    this.replays.checkAtEnd(clients);
  }

  /** From now on, state established before now may have been lost (see the module comment). */
  openAmnesty(): void {
    this.amnestiesMs.push(this.clock.nowMs);
  }

  get amnesties(): number {
    return this.amnestiesMs.length;
  }

  /** True when an amnesty opened at or after `sinceMs` (for the stream rules, stream-checker.ts). */
  amnestyAfter(sinceMs: number): boolean {
    return this.amnestySince(sinceMs);
  }

  /** True when an amnesty opened at or after `sinceMs`. */
  private amnestySince(sinceMs: number): boolean {
    const last = this.amnestiesMs[this.amnestiesMs.length - 1];
    return last !== undefined && last >= sinceMs;
  }

  /** A loss of `key` for `state` is excused by a drop report for exactly that message. */
  private excuseLoss(state: SubscriberState, key: string): boolean {
    return state.droppedKeys.has(key);
  }

  connectSent(client: number, generation: number, link: Link, hasWill: boolean, options: ConnectOptions = { willDelaySeconds: 0, sessionExpirySeconds: 0, cleanStart: true }): void {
    const connect: ConnectRecord = { generation, link, sentMs: this.clock.nowMs, arrivedMs: null, cleanStart: options.cleanStart, connackMs: null, sessionPresent: false };
    this.subscriber(client).connects.push(connect);
    this.replays.connectionStarted(client, link);
    // Called right after the CONNECT went out, so this watches its last byte.
    link.watchArrival((atMs) => (connect.arrivedMs = atMs));
    if (!hasWill) return;
    const key = `w${client}:${generation}`;
    const topic = `will/c${client}`;
    this.payloadKeys.set(`${crc32c(willPayload(client, generation, topic))}|${topic}`, key);
    const sessionLasting = options.sessionExpirySeconds === 0xffffffff;
    const delayMs = (sessionLasting ? options.willDelaySeconds : Math.min(options.willDelaySeconds, options.sessionExpirySeconds)) * 1000;
    this.wills.set(key, { key, client, topic: `will/c${client}`, link, connackMs: null, cleanOffset: null, cleanAtMs: null, ended: false, delayMs, sessionLasting, refused: false });
  }

  /** A CONNECT the broker must refuse carried this will (see sim/hostile.ts). */
  refusedConnectWill(client: number, generation: number, _topic: string): void {
    this.refusedWills.add(`w${client}:${generation}`);
  }

  connackReceived(client: number, generation: number, sessionPresent: boolean, expectPresent: boolean, cleanStart: boolean, maximumQos = 2): void {
    this.subscriber(client).maximumQos = maximumQos;
    if (this.subscriber(client).firstConnackMs === null) this.subscriber(client).firstConnackMs = this.clock.nowMs;
    const connect = this.subscriber(client).connects.find((record) => record.generation === generation);
    if (connect !== undefined) {
      connect.connackMs = this.clock.nowMs;
      connect.sessionPresent = sessionPresent;
    }
    const will = this.wills.get(`w${client}:${generation}`);
    if (will !== undefined) will.connackMs = this.clock.nowMs;
    // [MQTT-3.2.2-1] / [MQTT-3.2.2-2]: a clean start never finds a session.
    if (cleanStart && sessionPresent) this.report('session-present-on-clean-start', `c${client} gen ${generation} got session present`);
    this.checkDeletedSession(client, this.subscriber(client), connect, sessionPresent);
    if (expectPresent && !sessionPresent && !this.sessionMayHaveEnded(this.subscriber(client)) && !this.amnestySince(this.sessionCreatedMs(this.subscriber(client))))
      this.report('session-lost', `c${client} gen ${generation}: its persistent session is gone`);
  }

  /**
   * When the broker made the client's current session: the arrival of the CONNECT its CONNACK
   * answered (a client that stopped reading gets that CONNACK much later, and an amnesty in
   * between may undo the session: seed 971430), else when the CONNACK came.
   */
  private sessionCreatedMs(state: SubscriberState): number {
    return state.connects.find((connect) => connect.connackMs === state.sessionStartedMs)?.arrivedMs ?? state.sessionStartedMs;
  }

  connectionEnded(client: number, generation: number, link: Link, how: 'clean' | 'abnormal'): void {
    const will = this.wills.get(`w${client}:${generation}`);
    if (will === undefined) return;
    will.ended = true;
    if (how === 'clean') {
      will.cleanOffset = link.bytesSentToBroker;
      will.cleanAtMs = this.clock.nowMs;
    }
  }

  /** The broker has no session for this client: a new epoch, with no subscriptions. */
  sessionStarted(client: number): void {
    const state = this.subscriber(client);
    for (const [filter, requestedQos] of state.requested) {
      const grant = state.granted.get(filter);
      rememberFormer(state, filter, grant !== undefined && grant.epoch === state.epoch ? grant.qos : requestedQos, this.clock.nowMs);
    }
    for (const [filter, removedMs] of state.removed) rememberFormer(state, filter, state.removedGrants.get(filter) ?? 2, removedMs);
    state.epoch += 1;
    state.sessionStartedMs = this.clock.nowMs;
    state.requested.clear();
    state.granted.clear();
    state.unsubscribing.clear();
    state.removed.clear();
    // Copies are counted per session: the new one gets its own copy of what is published again.
    state.firstCopies.clear();
  }

  unsubscribeSent(client: number, filter: string): void {
    this.replays.unsubscribeSent(client, filter);
    const state = this.subscriber(client);
    if (!state.unsubscribing.has(filter)) state.unsubscribing.set(filter, this.clock.nowMs);
  }

  /** The filter is gone from the session: nothing routed from now on may come through it. */
  unsubackReceived(client: number, filter: string): void {
    const state = this.subscriber(client);
    const grant = state.granted.get(filter);
    state.removedGrants.set(filter, grant !== undefined && grant.epoch === state.epoch ? grant.qos : (state.requested.get(filter) ?? 2));
    state.requested.delete(filter);
    state.granted.delete(filter);
    state.removed.set(filter, this.clock.nowMs);
  }

  /** The SUBSCRIBE just sent went out on `link` (its arrival starts the retained replay it owes). */
  subscribeOnLink(client: number, link: Link): void {
    this.replays.subscribeOnLink(client, link);
  }

  subscribeSent(client: number, subscriptions: readonly { filter: string; qos: Qos }[]): void {
    this.replays.subscribeSent(
      client,
      subscriptions.map((subscription) => subscription.filter),
    );
    const state = this.subscriber(client);
    for (const subscription of subscriptions) {
      state.requested.set(subscription.filter, subscription.qos);
      state.unsubscribing.delete(subscription.filter);
      state.removed.delete(subscription.filter);
      const shared = splitShared(subscription.filter);
      if (shared !== null) state.groups.add(`${shared.group}/${shared.filter}`);
    }
  }

  subackReceived(client: number, filters: readonly string[], reasonCodes: readonly number[]): void {
    this.replays.subackReceived(client, filters, reasonCodes);
    const state = this.subscriber(client);
    if (reasonCodes.length !== filters.length) {
      this.report('suback-shape', `c${client}: ${reasonCodes.length} reason codes for ${filters.length} filters`);
      return;
    }
    for (let index = 0; index < filters.length; index++) {
      const code = reasonCodes[index]!;
      const filter = filters[index]!;
      if (code > 2) {
        // Refused (an invalid filter, past a limit): no subscription exists for it.
        state.requested.delete(filter);
        this.noteCoverage('filters-refused');
        continue;
      }
      if (code > (state.requested.get(filter) ?? 0)) this.report('suback-qos-upgrade', `c${client} ${filter} granted ${code}`);
      if (code < (state.requested.get(filter) ?? 0)) this.noteCoverage('grants-below-request');
      // [MQTT-3.2.2-9] / section 3.2.2.3.4: nothing above the Maximum QoS the CONNACK announced.
      if (code > state.maximumQos) this.report('suback-above-maximum-qos', `c${client} ${filter} granted ${code}; the CONNACK announced Maximum QoS ${state.maximumQos}`);
      state.granted.set(filter, { filter, qos: code, sinceMs: this.clock.nowMs, epoch: state.epoch });
    }
  }

  publishSent(publisher: number, sequence: number, topic: string, qos: Qos, retain: boolean, expirySeconds: number | null = null, fillerBytes?: number): void {
    const key = `m${publisher}:${sequence}`;
    let record = this.messages.get(key);
    if (record === undefined) {
      record = {
        key,
        publisher,
        sequence,
        topic,
        qos,
        retain,
        firstSentMs: null,
        ackedMs: null,
        expirySeconds,
        firstArrivalMs: null,
        lastArrivalMs: null,
        arrivals: 0,
        sharedReceivers: new Map(),
        payloadBytes: 0,
      };
      this.messages.set(key, record);
      const payload = messagePayload(publisher, sequence, qos, topic, fillerBytes);
      record.payloadBytes = payload.length;
      this.payloadKeys.set(`${crc32c(payload)}|${topic}`, key);
      if (topic.startsWith('$') && this.someFilterStartsWithWildcard()) this.noteCoverage('dollar-topics-beside-wildcards');
    }
    if (record.firstSentMs === null) record.firstSentMs = this.clock.nowMs;
  }

  /** A copy of the message reached the broker whole (the input at which the broker took it). */
  publishArrived(publisher: number, sequence: number, atMs: number): void {
    const record = this.messages.get(`m${publisher}:${sequence}`);
    if (record === undefined) return;
    record.firstArrivalMs ??= atMs;
    record.lastArrivalMs = atMs;
    record.arrivals += 1;
  }

  publishAcked(publisher: number, sequence: number): void {
    const record = this.messages.get(`m${publisher}:${sequence}`);
    if (record !== undefined && record.ackedMs === null) record.ackedMs = this.clock.nowMs;
  }

  publishAbandoned(_publisher: number, _sequence: number): void {
    // Unacknowledged, so the broker owes nothing for it; it stays a possible retained value.
  }

  /**
   * The client's subscriptions that match `topic` (see Match). A removed filter still counts for
   * what reached the broker before its UNSUBACK came: that copy may have been routed before the
   * UNSUBSCRIBE (and buffered) [MQTT-3.10.4-4]. After an amnesty the unsubscription itself may be
   * lost, and the subscription back.
   */
  private matchCount(state: SubscriberState, topic: string, routedFromMs: number): Match {
    const match: Match = { count: 0, plain: 0, groups: new Set(), qos2Count: 0, qos2Plain: false, grantedQosMax: 0 };
    const countFilter = (filter: string, requestedQos: number, grantedQos: number): void => {
      if (!topicMatches(matchingFilter(filter), topic)) return;
      match.count += 1;
      match.grantedQosMax = Math.max(match.grantedQosMax, grantedQos);
      const group = sharedGroupKey(filter);
      if (group === null) {
        match.plain += 1;
        match.qos2Plain ||= requestedQos === 2;
      } else if (!match.groups.has(group)) {
        match.groups.add(group);
        if (requestedQos === 2) match.qos2Count += 1;
      }
    };
    for (const [filter, qos] of state.requested) {
      // Until its SUBACK comes, what was asked for bounds what may come through it.
      const grant = state.granted.get(filter);
      countFilter(filter, qos, grant !== undefined && grant.epoch === state.epoch ? grant.qos : qos);
    }
    for (const [filter, removedMs] of state.removed) {
      if (routedFromMs < removedMs || this.amnestySince(removedMs)) countFilter(filter, 2, state.removedGrants.get(filter) ?? 2);
    }
    // An earlier session's filter, back after an amnesty that may have undone its end (with the
    // QoS it had then, even where this session has the same filter at another QoS).
    for (const [filter, departures] of state.formerFilters) {
      let qos = -1;
      for (const former of departures) if (this.amnestySince(former.sinceMs)) qos = Math.max(qos, former.qos);
      if (qos >= 0) countFilter(filter, 2, qos);
    }
    // Non-shared subscriptions merge into one copy per session [MQTT-3.3.4-2] (Keel's choice).
    if (match.qos2Plain) match.qos2Count += 1;
    return match;
  }

  /** Order is judged only for messages first sent once a matching subscription was acknowledged. */
  private orderedFromMs(state: SubscriberState, topic: string): number {
    let fromMs = Number.POSITIVE_INFINITY;
    for (const grant of state.granted.values()) {
      if (grant.epoch !== state.epoch || splitShared(grant.filter) !== null || !topicMatches(grant.filter, topic)) continue;
      fromMs = Math.min(fromMs, grant.sinceMs);
    }
    return fromMs;
  }

  /**
   * A PUBLISH reached client `client` (topic alias resolved); `fresh` is false for a QoS 2
   * duplicate its dedup absorbed; `timing` says when the broker sent it.
   */
  publishReceived(client: number, packet: PublishPacket, fresh: boolean, timing: SendTiming = { sentMs: this.clock.nowMs, decidedMs: null }, receiverVersion: 4 | 5 = 4): void {
    if (this.violators.has(client)) return;
    if (isBrokerTopic(packet.topic)) return this.sysReceived(client, packet);
    const identity = parsePayload(packet.payload);
    if (identity === null) {
      this.report('payload-corrupt', `c${client} got an unidentifiable payload of ${packet.payload.length} bytes on ${packet.topic}`);
      return;
    }
    if (identity.topic !== packet.topic) {
      this.report('topic-mismatch', `c${client} got a message for ${identity.topic} on ${packet.topic}`);
      return;
    }
    // Large payloads (large-payloads.ts): above the slab bound, and past one host input chunk.
    if (packet.payload.length > 512) this.noteCoverage('large-payload-delivered');
    if (packet.payload.length > 65_536) this.noteCoverage('payload-over-input-chunk-delivered');
    // Identity worlds: whatever the path (live, queued, resent, retained, shared, will), a copy
    // goes only to a connection whose user the ACL lets read its topic.
    if (!this.mayRead(client, packet.topic)) {
      this.report('acl-denied-delivered', `c${client} got ${packet.topic} (${identity.kind}${packet.retain ? ', retained' : ''}${packet.dup ? ', DUP' : ''}); the ACL does not let its user read it`);
      return;
    }
    const state = this.subscriber(client);
    const routedFromMs = this.routedFromMs(identity);
    const match = this.matchCount(state, packet.topic, routedFromMs);
    if (match.count === 0) {
      this.report('not-subscribed', `c${client} got ${packet.topic} (${identity.kind}) with no matching subscription in its session`);
      return;
    }
    // [MQTT-3.8.4-8]: at most the QoS granted to a matching subscription (retained copies too).
    if (packet.qos > match.grantedQosMax) {
      this.report('qos-above-grant', `c${client} got ${packet.topic} (${identity.kind}) at QoS ${packet.qos}; its matching subscriptions were granted at most QoS ${match.grantedQosMax}`);
      return;
    }
    if (identity.kind === 'will') {
      this.checkWillDelivery(client, `w${identity.client}:${identity.generation}`);
      if (fresh) state.received.add(`w${identity.client}:${identity.generation}`);
      return;
    }
    const key = `m${identity.publisher}:${identity.sequence}`;
    const record = this.messages.get(key);
    if (record === undefined || record.firstSentMs === null) {
      this.report('never-published', `c${client} got ${key} on ${packet.topic} before anyone sent it`);
      return;
    }
    if (packet.qos > record.qos) this.report('qos-upgraded', `c${client} got ${key} at QoS ${packet.qos}, published at ${record.qos}`);
    if (unusualTopic(packet.topic)) this.noteCoverage('unusual-topic-deliveries');
    this.checkExpiry(client, record, packet, timing, receiverVersion);
    if (!fresh) return;
    this.messagesDelivered += 1;
    if (packet.retain) {
      state.retainedSeen.set(packet.topic, key);
      if (!record.retain) this.report('retained-never-retained', `c${client} got ${key} as retained; it was published without RETAIN`);
      state.received.add(key);
      this.replays.retainedCopy(client, record, packet);
      return;
    }
    this.replays.liveCopy(client, record, packet, timing);
    this.checkLiveDelivery(client, state, record, packet, timing, match);
  }

  /**
   * The broker's own publication on `$SYS/...` (operator.ts): no client published it, so only its
   * path is judged: a subscription of the session matches it (a filter starting with a wildcard
   * never does [MQTT-4.7.2-1]), and the ACL lets the client read it.
   */
  private sysReceived(client: number, packet: PublishPacket): void {
    if (!this.mayRead(client, packet.topic)) {
      this.report('acl-denied-delivered', `c${client} got ${packet.topic} (the broker's own); the ACL does not let its user read it`);
      return;
    }
    const state = this.subscriber(client);
    const filters = [...state.requested.keys(), ...state.unsubscribing.keys(), ...state.formerFilters.keys()];
    if (!filters.some((filter) => topicMatches(matchingFilter(filter), packet.topic))) {
      this.report('not-subscribed', `c${client} got the broker's ${packet.topic} with no matching subscription in its session`);
      return;
    }
    this.noteCoverage('sys-deliveries');
  }

  /** Some client asked for a filter starting with `+` or `#` (which a `$` topic must not match). */
  private someFilterStartsWithWildcard(): boolean {
    for (const state of this.subscribers.values()) for (const filter of state.requested.keys()) if (/^[+#]/.test(matchingFilter(filter))) return true;
    return false;
  }

  /** The earliest time the broker can have routed this message or will (see matchCount). */
  private routedFromMs(identity: { kind: 'message'; publisher: number; sequence: number } | { kind: 'will'; client: number; generation: number }): number {
    if (identity.kind === 'will') {
      const will = this.wills.get(`w${identity.client}:${identity.generation}`);
      return will?.link.brokerEndMs ?? Number.NEGATIVE_INFINITY;
    }
    const record = this.messages.get(`m${identity.publisher}:${identity.sequence}`);
    return record?.firstArrivalMs ?? record?.firstSentMs ?? Number.NEGATIVE_INFINITY;
  }

  /** Message expiry rules (see the module comment) for one copy the broker sent at `sentMs`. */
  private checkExpiry(client: number, record: MessageRecord, packet: PublishPacket, timing: SendTiming, receiverVersion: 4 | 5): void {
    const interval = packet.properties?.messageExpiryInterval;
    if (record.expirySeconds === null) {
      if (interval !== undefined && receiverVersion === 5) this.report('expiry-invented', `c${client} got ${record.key} with expiry ${interval}s; it was published without one`);
      return;
    }
    if (record.firstArrivalMs === null || record.lastArrivalMs === null) return;
    const expiryMs = record.expirySeconds * 1000;
    const latestExpiryAtMs = record.lastArrivalMs + expiryMs;
    const { sentMs, decidedMs } = timing;
    // [MQTT-3.3.2-5] a copy whose onward delivery started (a DUP resend) may still go out.
    if (!packet.dup && decidedMs !== null && decidedMs >= latestExpiryAtMs) {
      this.report('expired-delivered', `c${client} got ${record.key} decided and sent at ${decidedMs}ms; it expired by ${latestExpiryAtMs}ms (${record.expirySeconds}s after reaching the broker)`);
      return;
    }
    if (receiverVersion !== 5) return;
    const remaining = (expiryAtMs: number, atMs: number): number => Math.max(1, Math.ceil((expiryAtMs - atMs) / 1000));
    // Decided at or before it was sent, and not before the first copy reached the broker.
    const lowest = remaining(record.firstArrivalMs + expiryMs, sentMs);
    const highest = remaining(latestExpiryAtMs, decidedMs ?? record.firstArrivalMs);
    // [MQTT-3.3.2-6] the interval forwarded is the one received less the time waited.
    if (interval === undefined || interval < lowest || interval > highest) {
      this.report(
        'expiry-interval',
        `c${client} got ${record.key} (QoS ${packet.qos}) sent at ${sentMs}ms with expiry ${interval === undefined ? 'none' : `${interval}s`}; expected ${lowest}..${highest}s (published with ${record.expirySeconds}s, reached the broker at ${record.firstArrivalMs}..${record.lastArrivalMs}ms)`,
      );
    }
  }

  private checkLiveDelivery(client: number, state: SubscriberState, record: MessageRecord, packet: PublishPacket, timing: SendTiming, match: Match): void {
    const qos = packet.qos;
    const key = record.key;
    const seenBefore = state.received.has(key);
    state.received.add(key);
    state.deliveryCounts.set(key, (state.deliveryCounts.get(key) ?? 0) + 1);
    if (qos === 2) {
      const qos2Deliveries = (state.qos2DeliveryCounts.get(key) ?? 0) + 1;
      state.qos2DeliveryCounts.set(key, qos2Deliveries);
      // After an amnesty the broker may have forgotten it had routed or completed this message.
      if (qos2Deliveries > match.qos2Count && !this.amnestySince(record.firstSentMs!)) {
        this.report('qos2-duplicated', `c${client}'s application got QoS 2 ${key} ${qos2Deliveries} times with ${match.qos2Count} matching QoS 2 subscription(s)`);
        return;
      }
    }
    if (match.plain > 1) this.noteCoverage('overlap-deliveries');
    if (this.checkCopies(client, state, record, packet, match)) return;
    if (this.checkSharedCopy(client, state, record, timing, match)) return;
    if (qos === 0 || seenBefore || match.groups.size > 0) return;
    // A copy first sent before the SUBACK may reach the broker again later (a resend after a
    // reconnect), routed to this subscription only then, after messages sent after it.
    if (record.firstSentMs! < this.orderedFromMs(state, record.topic)) return;
    // The broker reported dropping a copy of this message for this session (a full queue): the
    // copy that arrives now is the publisher's resend, a new publication that MQTT orders by its
    // own arrival, after messages the broker accepted in between.
    if (state.droppedKeys.has(key)) return;
    // A repair after reported corruption cut the log: the broker may have forgotten that it
    // routed or delivered earlier messages, so their resends are new publications too.
    if (this.amnestySince(record.firstSentMs!)) return;
    // [MQTT-4.6.0-5] ordered topics: per publisher, topic and QoS, in the order published.
    const orderKey = `${record.publisher}|${record.topic}|${record.qos}`;
    const last = state.lastSequence.get(orderKey) ?? -1;
    if (record.sequence < last) {
      this.report('order', `c${client} got ${key} after m${record.publisher}:${last} on ${record.topic} at QoS ${record.qos}`);
    }
    if (record.sequence > last) state.lastSequence.set(orderKey, record.sequence);
  }

  /**
   * One copy per session and publication [MQTT-3.3.4-2] (Keel's choice for overlapping plain
   * subscriptions: one copy at the highest granted QoS), plus one per matching shared group. A
   * live copy that is a first transmission (at QoS 0, or without DUP) beyond that is a duplicate.
   * A publisher's resend of a QoS 1 message reaches the broker as a new publication; after a
   * broker crash a QoS 1/2 redelivery may lack its DUP (the broker need not have recorded the
   * first send); after an amnesty the broker may route again what it had routed. True when it
   * reported a violation.
   */
  private checkCopies(client: number, state: SubscriberState, record: MessageRecord, packet: PublishPacket, match: Match): boolean {
    if (packet.qos !== 0 && packet.dup) return false;
    const copies = (state.firstCopies.get(record.key) ?? 0) + 1;
    state.firstCopies.set(record.key, copies);
    const perPublication = (match.plain > 0 ? 1 : 0) + match.groups.size;
    const publications = Math.max(1, record.arrivals);
    if (copies <= perPublication * publications || this.amnestySince(record.firstSentMs!)) return false;
    if (packet.qos !== 0 && this.crashBetween(record.firstArrivalMs ?? record.firstSentMs!, this.clock.nowMs)) return false;
    this.report(
      record.qos === 0 ? 'qos0-duplicated' : 'duplicate-delivery',
      `c${client} got ${record.key} (${record.topic}, QoS ${record.qos}) ${copies} times as a first transmission, with ${match.plain} plain subscription(s) and ${match.groups.size} shared group(s) matching and ${publications} publication(s)`,
    );
    return true;
  }

  /**
   * A shared group gives each publication to one of its members (MQTT 5.0 section 4.8.2): a copy
   * that came through a group (see attributedGroup) to a second member is a violation, unless
   * the message was published again (a QoS 1 resend), a member that had it may have lost it (its
   * connection ended after the message reached the broker, its session ended, or it left the
   * group: the spec lets the broker pass such a message on), or an amnesty applies. True when it
   * reported a violation.
   */
  private checkSharedCopy(client: number, state: SubscriberState, record: MessageRecord, timing: SendTiming, match: Match): boolean {
    const group = this.attributedGroup(state, record, match);
    if (group === null) return false;
    let receivers = record.sharedReceivers.get(group);
    if (receivers === undefined) {
      receivers = new Map();
      record.sharedReceivers.set(group, receivers);
    }
    if (!receivers.has(client)) receivers.set(client, timing.sentMs);
    this.noteCoverage('shared-deliveries');
    const publications = Math.max(1, record.arrivals);
    if (receivers.size <= publications || this.amnestySince(record.firstSentMs!)) return false;
    let holders = 0;
    for (const member of receivers.keys()) if (!this.mayHaveLost(member, group, record)) holders += 1;
    if (holders <= publications) return false;
    const members = [...receivers].map(([member, sentMs]) => `c${member} (sent at ${sentMs}ms)`).join(', ');
    this.report('shared-duplicated', `shared group ${group} gave ${record.key} (${record.topic}, ${publications} publication(s)) to ${members}; none of them lost it meanwhile`);
    return true;
  }

  /**
   * The shared group a live copy came through, when the client's subscriptions tell: its only
   * matching subscription is that group, or its plain ones (one copy per publication together)
   * cannot account for all the first transmissions it got. Null when it cannot be told.
   */
  private attributedGroup(state: SubscriberState, record: MessageRecord, match: Match): string | null {
    if (match.groups.size !== 1) return null;
    const [group] = match.groups;
    if (match.plain === 0) return group!;
    return (state.firstCopies.get(record.key) ?? 0) > Math.max(1, record.arrivals) ? group! : null;
  }

  /** A member may have lost a group's message: its session or a connection ended after the message reached the broker, or it left the group. */
  private mayHaveLost(member: number, group: string, record: MessageRecord): boolean {
    const state = this.subscribers.get(member)!;
    const fromMs = record.firstArrivalMs ?? record.firstSentMs!;
    if (state.sessionStartedMs > fromMs) return true;
    if ([...state.unsubscribing.keys()].some((filter) => sharedGroupKey(filter) === group)) return true;
    return state.connects.some((connect) => connect.link.brokerEndMs !== null && connect.link.brokerEndMs >= fromMs);
  }

  private checkWillDelivery(client: number, key: string): void {
    const will = this.wills.get(key);
    if (this.refusedWills.has(key) || will?.refused === true) {
      // Nothing of a refused CONNECT may happen later, its will least of all.
      this.report('refused-connect-will', `c${client} got will ${key}, which only a refused CONNECT carried`);
      return;
    }
    if (will === undefined) {
      this.report('never-published', `c${client} got will ${key}, which no CONNECT carried`);
      return;
    }
    if (will.link.brokerOpen) {
      this.report('will-while-connected', `c${client} got will ${key} while its connection L${will.link.id} is open`);
    } else if (will.cleanOffset !== null && will.link.bytesDeliveredToBroker >= will.cleanOffset && !this.crashBetween(will.cleanAtMs!, this.clock.nowMs)) {
      // DISCONNECT is never acknowledged, so a crash before the will's deletion was durable may
      // still publish it (as if the crash had come first); without a crash in between, never.
      // [MQTT-3.1.2-10] / [MQTT-3.14.4-3]: a normal DISCONNECT deletes the will unpublished.
      this.report('will-after-clean-disconnect', `c${client} got will ${key} although L${will.link.id} ended with DISCONNECT`);
    } else {
      this.checkWillDelay(client, will);
    }
  }

  /** [MQTT-3.1.3-9] the will waits min(delay, session expiry) and a resumed session cancels it. */
  private checkWillDelay(client: number, will: WillRecord): void {
    const endMs = will.link.brokerEndMs;
    if (endMs === null || will.delayMs === 0) return;
    const dueMs = endMs + will.delayMs;
    const later = this.subscriber(will.client).connects.filter((connect) => connect.generation > Number(will.key.split(':')[1]));
    const resumed = later.find((connect) => connect.connackMs !== null && connect.sessionPresent);
    // A clean start that reached the broker first ended that session (and sent the will): what
    // was resumed then is the new one.
    const endedFirst =
      resumed !== undefined &&
      this.otherConnectArrived(
        will,
        (connect) => connect.cleanStart,
        (atMs) => atMs <= resumed.connackMs!,
      );
    if (resumed !== undefined && resumed.connackMs! < dueMs && !endedFirst && !this.amnestySince(endMs)) {
      this.report('will-after-resume', `c${client} got will ${will.key}: L${will.link.id} ended at ${endMs}ms with a ${will.delayMs}ms delay, and the session was resumed at ${resumed.connackMs}ms`);
      return;
    }
    if (this.clock.nowMs >= dueMs) return;
    // The session may end sooner: a clean-start CONNECT of the client that the broker took after
    // this connection's own ends it (even one from an older connection, held up in the network),
    // and a crash may lose a session that was volatile or established under an amnesty (its will
    // then goes out at recovery).
    if (
      this.otherConnectArrived(
        will,
        (connect) => connect.cleanStart,
        (atMs) => atMs <= this.clock.nowMs,
      )
    )
      return;
    if (this.crashBetween(endMs, this.clock.nowMs) && (!will.sessionLasting || this.amnestySince(0))) return;
    this.report('will-early', `c${client} got will ${will.key} at ${this.clock.nowMs}ms; L${will.link.id} ended at ${endMs}ms and the will waits ${will.delayMs}ms`);
  }

  private crashBetween(fromMs: number, toMs: number): boolean {
    return this.brokerCrashesMs.some((atMs) => atMs >= fromMs && atMs <= toMs);
  }

  /** Liveness: messages and wills the broker owed to sessions that survived to the end. */
  checkDeliveredObligations(): void {
    for (const record of this.messages.values()) {
      if (record.qos === 0 || record.ackedMs === null || record.firstSentMs === null) continue;
      if (this.checkObligation(record.key, record.topic, record.qos, record.firstSentMs)) return;
    }
    for (const will of this.wills.values()) {
      const link = will.link;
      if (will.connackMs === null || !will.ended || link.brokerEndMs === null) continue;
      if (will.cleanOffset !== null && link.bytesDeliveredToBroker >= will.cleanOffset) continue;
      if (this.crashBetween(will.connackMs, link.brokerEndMs)) continue;
      if (this.mayBeCancelled(will)) continue;
      if (this.checkObligation(will.key, will.topic, 1, link.brokerEndMs)) return;
    }
  }

  /**
   * The windows in which a delayed will may be waiting: its delay after the connection ended,
   * and its delay again after each recovery that follows a crash since. Recovery schedules every
   * stored will anew, and a will published before a crash may be stored still: nothing waits for
   * its publication to be durable (no one acknowledges it), so the crash may have undone it.
   */
  private willWindows(will: WillRecord): { fromMs: number; untilMs: number }[] {
    const endMs = will.link.brokerEndMs!;
    const windows = [{ fromMs: endMs, untilMs: endMs + will.delayMs }];
    let crashed = false;
    for (const event of this.brokerLife) {
      if (event.atMs < endMs) continue;
      if (event.kind === 'crash') crashed = true;
      else if (crashed) {
        crashed = false;
        windows.push({ fromMs: event.atMs, untilMs: event.atMs + will.delayMs });
      }
    }
    return windows;
  }

  /** Another CONNECT that may resume the session reached the broker while the will may have been waiting. */
  private mayBeCancelled(will: WillRecord): boolean {
    if (will.delayMs === 0) return false;
    const windows = this.willWindows(will);
    return this.otherConnectArrived(
      will,
      (connect) => !connect.cleanStart,
      (atMs) => windows.some((window) => atMs >= window.fromMs && atMs < window.untilMs),
    );
  }

  /** A CONNECT of the will's client, other than its own and matching `kind`, reached the broker after its own was sent, at a time `when` accepts. */
  private otherConnectArrived(will: WillRecord, kind: (connect: ConnectRecord) => boolean, when: (atMs: number) => boolean): boolean {
    const generation = Number(will.key.split(':')[1]);
    const connects = this.subscriber(will.client).connects;
    const own = connects.find((connect) => connect.generation === generation);
    const sinceMs = own?.sentMs ?? Number.NEGATIVE_INFINITY;
    return connects.some((connect) => connect.generation !== generation && kind(connect) && connect.arrivedMs !== null && connect.arrivedMs >= sinceMs && when(connect.arrivedMs));
  }

  /** True when it reported a violation. */
  private checkObligation(key: string, topic: string, qos: Qos, publishedMs: number): boolean {
    const groups = new Map<string, { owed: boolean; delivered: boolean; sinceMs: number }>();
    for (const [client, state] of this.subscribers) {
      if (this.violators.has(client)) continue;
      // One copy per session is owed, however many of its subscriptions overlap.
      let owedChecked = false;
      for (const grant of state.granted.values()) {
        if (grant.epoch !== state.epoch || grant.sinceMs >= publishedMs || Math.min(grant.qos, qos) === 0) continue;
        // After an UNSUBSCRIBE the broker MAY drop what it still buffered [MQTT-3.10.4-4].
        if (state.unsubscribing.has(grant.filter)) continue;
        const shared = splitShared(grant.filter);
        if (!topicMatches(shared === null ? grant.filter : shared.filter, topic)) continue;
        // Withheld by the ACL: owed to nobody of this user (identity.ts).
        if (!this.mayRead(client, topic)) {
          this.noteCoverage('acl-withheld');
          continue;
        }
        if (shared !== null) {
          const groupKey = `${shared.group}/${shared.filter}`;
          const group = groups.get(groupKey) ?? { owed: false, delivered: false, sinceMs: grant.sinceMs };
          group.owed = true;
          group.sinceMs = Math.min(group.sinceMs, grant.sinceMs);
          groups.set(groupKey, group);
          continue;
        }
        if (owedChecked) continue;
        owedChecked = true;
        if (!state.received.has(key) && !this.excuseLoss(state, key) && !this.amnestySince(grant.sinceMs)) {
          const drops = `broker reported ${state.droppedKeys.size} drop(s) for it, ${state.dropsUnattributed} unattributed; ${this.amnestiesMs.length} amnesties`;
          this.report(
            'lost',
            `c${client} never got ${key} (${topic}, QoS ${qos}) although subscribed with ${grant.filter} since ${grant.sinceMs}ms, before it was sent at ${publishedMs}ms (${drops})`,
          );
          return true;
        }
      }
    }
    return this.checkSharedGroups(key, topic, publishedMs, groups);
  }

  /**
   * Liveness: QoS 0 is lost only where the broker reported it (see the module comment).
   * `connected` maps each client whose current connection is still up at both ends to when its
   * CONNACK arrived; every byte the broker sent on such a connection has arrived by now.
   */
  checkQos0Delivered(connected: ReadonlyMap<number, number>): void {
    for (const record of this.messages.values()) {
      if (record.qos !== 0 || record.firstArrivalMs === null || record.firstSentMs === null) continue;
      for (const [client, connackMs] of connected) {
        const state = this.subscribers.get(client);
        if (state === undefined || this.violators.has(client) || connackMs >= record.firstSentMs) continue;
        if (!this.subscribedThroughout(client, state, record)) continue;
        if (state.received.has(record.key) || state.droppedKeys.has(record.key)) continue;
        this.report(
          'qos0-lost',
          `c${client} never got QoS 0 ${record.key} (${record.topic}), which reached the broker at ${record.firstArrivalMs}ms while its connection (CONNACK at ${connackMs}ms) stayed up, and no drop was reported for it`,
        );
        return;
      }
    }
  }

  /** A plain subscription of the current session, acknowledged before `record` was sent and never unsubscribed, matches it. */
  private subscribedThroughout(client: number, state: SubscriberState, record: MessageRecord): boolean {
    for (const grant of state.granted.values()) {
      if (grant.epoch !== state.epoch || grant.sinceMs >= record.firstSentMs! || state.unsubscribing.has(grant.filter)) continue;
      // A subscription from before an amnesty may be gone (see the module comment).
      if (this.amnestySince(grant.sinceMs)) continue;
      if (splitShared(grant.filter) === null && topicMatches(grant.filter, record.topic)) {
        if (this.mayRead(client, record.topic)) return true;
        this.noteCoverage('acl-withheld');
        return false;
      }
    }
    return false;
  }

  private checkSharedGroups(key: string, topic: string, publishedMs: number, groups: Map<string, { owed: boolean; delivered: boolean; sinceMs: number }>): boolean {
    for (const [groupKey, group] of groups) {
      const members: SubscriberState[] = [];
      for (const [client, state] of this.subscribers) {
        if (this.violators.has(client)) continue;
        for (const [filter, requestedQos] of state.requested) {
          const shared = splitShared(filter);
          if (shared === null || `${shared.group}/${shared.filter}` !== groupKey) continue;
          members.push(state);
          // A member whose user may not read the topic cannot take it; which member the broker
          // then picks is its choice, so the group owes nothing the checker could pin down.
          if (!this.mayRead(client, topic)) group.owed = false;
          // A member at QoS 0 may have been the one chosen, and QoS 0 may be lost.
          if (Math.min(requestedQos, state.granted.get(filter)?.qos ?? requestedQos) === 0) group.owed = false;
          if (state.received.has(key)) group.delivered = true;
        }
        // A member that left before an amnesty may be one again: the repair may have lost its
        // UNSUBSCRIBE, the subscription is back, and the broker may choose it (as matchCount
        // allows for removed filters). Its copy counts; without one, the QoS it had is unknown
        // (it may have been 0, and lost), so the group owes nothing.
        for (const [filter, removedMs] of state.removed) {
          if (sharedGroupKey(filter) !== groupKey || !this.amnestySince(removedMs)) continue;
          members.push(state);
          if (state.received.has(key)) group.delivered = true;
          else group.owed = false;
        }
        // The same for a membership that ended with its session (seed 1601999): the repair may
        // have brought the old session back, subscription included.
        for (const [filter, departures] of state.formerFilters) {
          if (sharedGroupKey(filter) !== groupKey || !departures.some((former) => this.amnestySince(former.sinceMs))) continue;
          members.push(state);
          if (state.received.has(key)) group.delivered = true;
          else group.owed = false;
        }
      }
      // The broker may have chosen a member whose session then ended; the spec only says it
      // SHOULD pass the message on to another member then (MQTT 5.0 section 4.8.2), so no promise.
      const memberLostSession = [...this.subscribers.values()].some((state) => state.groups.has(groupKey) && state.sessionStartedMs > publishedMs);
      // A member chosen for it may have left the group since, and MAY drop what it buffered
      // [MQTT-3.10.4-4]: any member whose leaving was not acknowledged before the message was sent.
      const memberLeft = [...this.subscribers.values()].some((state) =>
        [...state.unsubscribing.keys()].some((filter) => sharedGroupKey(filter) === groupKey && !((state.removed.get(filter) ?? Number.POSITIVE_INFINITY) < publishedMs)),
      );
      if (group.owed && !group.delivered && !memberLostSession && !memberLeft && !members.some((member) => this.excuseLoss(member, key)) && !this.amnestySince(group.sinceMs)) {
        this.report('lost', `shared group ${groupKey} never got ${key} (${topic}, sent at ${publishedMs}ms, owed since ${group.sinceMs}ms)`);
        return true;
      }
    }
    return false;
  }

  /** Liveness: what `client` (a fresh subscriber to everything) saw as retained matches what was published. */
  checkRetained(auditor: number): void {
    const seen = this.subscriber(auditor).retainedSeen;
    const byTopic = new Map<string, MessageRecord[]>();
    for (const record of this.messages.values()) {
      if (!record.retain || record.firstSentMs === null) continue;
      const list = byTopic.get(record.topic) ?? [];
      list.push(record);
      byTopic.set(record.topic, list);
    }
    for (const [topic, records] of byTopic) {
      // Only an acknowledged message whose last copy reached the broker after the last amnesty
      // surely survived to the audit. When the client read the acknowledgement says nothing: a
      // client that stopped reading may get, after the amnesty, a PUBREC the broker sent before
      // the damage it repaired (seed 2000335).
      const lastAmnestyMs = this.amnestiesMs[this.amnestiesMs.length - 1] ?? Number.NEGATIVE_INFINITY;
      const acked = records.filter((r) => r.ackedMs !== null && r.lastArrivalMs !== null && r.lastArrivalMs > lastAmnestyMs);
      // A candidate is excluded when another acknowledged retained message was sent after it was acknowledged.
      const candidates = records.filter((r) => !acked.some((p) => p !== r && r.ackedMs !== null && r.ackedMs < p.firstSentMs!));
      const got = seen.get(topic);
      // An operator's delete-retained (operator.ts): what reached the broker before it may be gone,
      // and once its result came back ok, surely is (it was durable), unless an amnesty followed.
      const deletions = this.retainedDeletions.get(topic) ?? [];
      const mayBeCleared = (r: MessageRecord) => deletions.some((d) => (r.firstArrivalMs ?? Number.POSITIVE_INFINITY) <= d.requestMs);
      const surelyCleared = (r: MessageRecord) => deletions.some((d) => d.okMs !== null && r.lastArrivalMs !== null && r.lastArrivalMs < d.requestMs && !this.amnestySince(d.requestMs));
      const gotRecord = got === undefined ? undefined : this.messages.get(got);
      if (gotRecord !== undefined && surelyCleared(gotRecord)) {
        this.report('deleted-retained-replayed', `a fresh subscriber got ${got} retained on ${topic}; it reached the broker before a delete-retained whose result came back ok`);
        return;
      }
      if (records.some(surelyCleared)) this.noteCoverage('deleted-retained-judged');
      if (got === undefined && candidates.some(mayBeCleared)) continue;
      if (got === undefined) {
        // The broker may report dropping the retained copy for the auditor itself (its queue limit).
        const dropped = this.subscriber(auditor).droppedKeys;
        // A candidate whose expiry may have passed may have left the retained table [MQTT-3.3.2-5].
        const mayHaveExpired = candidates.some(
          (candidate) => candidate.expirySeconds !== null && (candidate.firstArrivalMs ?? Number.POSITIVE_INFINITY) + candidate.expirySeconds * 1000 <= this.clock.nowMs,
        );
        if (acked.length > 0 && !mayHaveExpired && !candidates.some((candidate) => dropped.has(candidate.key)))
          this.report('retained-lost', `a fresh subscriber got no retained message on ${topic}; expected one of ${candidates.map((c) => c.key).join(', ')}`);
      } else if (!candidates.some((c) => c.key === got)) {
        this.report('retained-stale', `a fresh subscriber got ${got} retained on ${topic}; expected one of ${candidates.map((c) => c.key).join(', ')}`);
      }
    }
    for (const [topic, key] of seen) {
      if (!byTopic.has(topic)) this.report('retained-never-retained', `a fresh subscriber got ${key} retained on ${topic}, never published with RETAIN`);
    }
  }
}

/** A topic of three or more levels, with an empty level, or starting with `$`. */
function unusualTopic(topic: string): boolean {
  const levels = topic.split('/');
  return levels.length > 2 || levels.includes('') || topic.startsWith('$');
}

/** `group/filter` for a shared filter, or null for a plain one. */
function sharedGroupKey(filter: string): string | null {
  const shared = splitShared(filter);
  return shared === null ? null : `${shared.group}/${shared.filter}`;
}

/**
 * Notes that `filter` left the session at `sinceMs` with QoS `qos`. A departure no later and at
 * no lower QoS than one already kept adds nothing an amnesty could bring back.
 */
function rememberFormer(state: SubscriberState, filter: string, qos: number, sinceMs: number): void {
  const departures = state.formerFilters.get(filter);
  if (departures === undefined) {
    state.formerFilters.set(filter, [{ qos, sinceMs }]);
    return;
  }
  if (departures.some((former) => former.sinceMs <= sinceMs && former.qos >= qos)) return;
  departures.push({ qos, sinceMs });
}
