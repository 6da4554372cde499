/**
 * Retained messages sent because of a SUBSCRIBE: the broker's own backlog, paced like a replay.
 *
 * A new subscription gets the retained message of every topic it matches [MQTT-3.3.1-9]. With
 * 100,000 retained topics that is 100,000 PUBLISHes for one SUBSCRIBE, more than any connection's
 * output cap holds, and they are not a flood the subscriber asked to be shed: dropping them at
 * the cap (QoS 0) or at the queue limits (QoS 1/2) loses messages a client can only get again by
 * subscribing again. So they are not pushed out at once: each subscription that owes retained
 * messages gets a cursor into the retained table, and the cursor advances only while the
 * connection can take more: QoS 0 while its unsent output is under connectionOutputBytesMax, QoS
 * 1/2 while the inflight window has room too. It waits where it stopped and moves again when the
 * connection drains (`resumeOutput`) or acknowledges (`pump`), both in outbound-queue.ts. Nothing
 * is copied: a cursor is an iterator over the retained map and one message it could not send yet.
 *
 * Rules that keep it exact:
 * - Only messages retained before the SUBSCRIBE are replayed: a message stored later (message ids
 *   increase) reached the subscription live. A topic cleared or replaced meanwhile is skipped or
 *   sent as it is now, as a JavaScript Map's iterator sees entries deleted and added under it.
 * - While a session has a replay, its new QoS 1/2 messages queue behind it (`hasWindowRoom` is
 *   false), so a retained value never arrives after a newer live one through the queue. QoS 0 is
 *   sent as usual.
 * - A subscription replaced or removed before its replay finished ends that replay.
 * - Work per input is bounded (`entriesPerStepMax` entries looked at); a replay that stops for
 *   that reason alone asks for a tick a millisecond later (`retained-replay` deadline) to go on.
 * - The replay belongs to the session and survives a reconnect that resumes it; it ends with the
 *   session. It is not durable: after a broker restart, what a replay had not sent yet is not sent
 *   (the subscription itself is durable and receives every new message).
 */
import type { Qos } from '../codec/packets.js';
import type { SessionState, StoredMessage, SubscriptionState } from '../store/state-store.js';
import { matchesFilter } from '../topics/match-filter.js';
import { hasWildcard, parseSharedFilter } from '../topics/validate.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';

/** Retained entries one step looks at, matching or not: bounds the time one input takes. */
export const entriesPerStepMax = 4096;

interface Cursor {
  readonly subscription: SubscriptionState;
  /** Messages with an id at or above this were stored after the SUBSCRIBE. */
  readonly storedBeforeId: number;
  /** Wildcard filters walk the whole table; an exact filter looks at one topic once. */
  readonly entries: Iterator<[string, number]>;
  /** An entry taken from `entries` that could not be sent yet. */
  pending: [string, number] | null;
}

export interface RetainedReplay {
  readonly session: SessionState;
  readonly cursors: Cursor[];
}

/** Why a step stopped. */
type StepEnd = 'done' | 'blocked' | 'budget';

/**
 * What a step may send on the connection right now: a QoS 0 copy, a QoS 1/2 copy. Given by
 * outbound-queue.ts, which owns the window and the output cap.
 */
export interface ReplaySink {
  canSend(qos: Qos): boolean;
  send(message: StoredMessage, qos: Qos, subscriptionIds: readonly number[]): void;
}

/** Registers the retained messages a new or replaced subscription is owed (per Retain Handling). */
export function startRetainedReplay(broker: Broker, session: SessionState, subscription: SubscriptionState, isNew: boolean): void {
  if (subscription.retainHandling === 2) return;
  if (subscription.retainHandling === 1 && !isNew) return;
  // A shared subscription gets no retained messages when it is made (MQTT 5.0 section 4.8.2).
  if (parseSharedFilter(subscription.filter) !== null) return;
  const state = broker.state;
  if (state.retained.size === 0) return;
  const entries = hasWildcard(subscription.filter) ? state.retained.entries() : exactEntry(state.retained, subscription.filter);
  let replay = broker.retainedReplays.get(session.clientId);
  if (replay === undefined || replay.session !== session) {
    replay = { session, cursors: [] };
    broker.retainedReplays.set(session.clientId, replay);
  }
  replay.cursors.push({ subscription, storedBeforeId: state.nextMessageId, entries, pending: null });
  const connection = broker.online.get(session.clientId);
  if (connection !== undefined) connection.retainedReplay = replay;
}

function exactEntry(retained: ReadonlyMap<string, number>, topic: string): Iterator<[string, number]> {
  const messageId = retained.get(topic);
  return (messageId === undefined ? [] : [[topic, messageId] as [string, number]])[Symbol.iterator]();
}

/** The session's unfinished replay, if any, for a connection that binds to it. */
export function replayFor(broker: Broker, session: SessionState): RetainedReplay | null {
  const replay = broker.retainedReplays.get(session.clientId);
  if (replay === undefined) return null;
  if (replay.session === session) return replay;
  broker.retainedReplays.delete(session.clientId);
  return null;
}

/** The session ended: its replay goes with it. */
export function endRetainedReplay(broker: Broker, clientId: string): void {
  broker.retainedReplays.delete(clientId);
}

/**
 * Sends what the connection can take of its session's replay; returns true once the replay is
 * over (nothing left, and the session's queue may move).
 */
export function advanceRetainedReplay(broker: Broker, connection: Connection, sink: ReplaySink, nowMs: number): boolean {
  const replay = connection.retainedReplay;
  if (replay === null) return true;
  const end = step(broker, replay, sink, nowMs);
  // A millisecond on: a tick fires only deadlines already due, so the step ends this input.
  if (end === 'budget') broker.deadlines.push(nowMs + 1, 'retained-replay', connection.id, '');
  if (end !== 'done') return false;
  connection.retainedReplay = null;
  if (broker.retainedReplays.get(replay.session.clientId) === replay) broker.retainedReplays.delete(replay.session.clientId);
  return true;
}

function step(broker: Broker, replay: RetainedReplay, sink: ReplaySink, nowMs: number): StepEnd {
  let examined = 0;
  // Bounded: every pass looks at one entry or drops one cursor, and entries per step are capped.
  while (replay.cursors.length > 0) {
    if (examined >= entriesPerStepMax) return 'budget';
    const cursor = replay.cursors[0]!;
    if (replay.session.subscriptions.get(cursor.subscription.filter) !== cursor.subscription) {
      replay.cursors.shift();
      continue;
    }
    const entry = cursor.pending ?? nextEntry(cursor);
    if (entry === null) {
      replay.cursors.shift();
      continue;
    }
    examined += 1;
    cursor.pending = null;
    const message = eligibleMessage(broker, replay.session, cursor, entry, nowMs);
    if (message === null) continue;
    const qos = Math.min(message.qos, cursor.subscription.qos) as Qos;
    if (!sink.canSend(qos)) {
      cursor.pending = entry;
      return 'blocked';
    }
    const subscriptionId = cursor.subscription.subscriptionId;
    sink.send(message, qos, subscriptionId === 0 ? noSubscriptionIds : [subscriptionId]);
  }
  return 'done';
}

const noSubscriptionIds: readonly number[] = Object.freeze([]);

function nextEntry(cursor: Cursor): [string, number] | null {
  const next = cursor.entries.next();
  return next.done === true ? null : next.value;
}

/** The retained message `entry` names, if the subscription is still owed it; null to skip it. */
function eligibleMessage(broker: Broker, session: SessionState, cursor: Cursor, entry: [string, number], nowMs: number): StoredMessage | null {
  const [topic, messageId] = entry;
  const state = broker.state;
  // Replaced or cleared since the cursor took the entry, or stored after the SUBSCRIBE.
  if (state.retained.get(topic) !== messageId || messageId >= cursor.storedBeforeId) return null;
  if (!matchesFilter(cursor.subscription.filter, topic)) return null;
  const message = state.messages.get(messageId)!;
  if (message.expiryAtMs !== null && nowMs >= message.expiryAtMs) {
    broker.commit({ kind: 'retained-cleared', topic });
    return null;
  }
  // Only topics the subscriber may read, even under a filter it was allowed to subscribe to.
  if (broker.access !== null && !broker.access.allowsReceive(session.clientId, cursor.subscription, topic)) {
    broker.access.receiveDenied(session.clientId, topic);
    return null;
  }
  return message;
}
