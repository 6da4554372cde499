/**
 * Retained messages: one per topic, set by a PUBLISH with RETAIN=1, replaced by the next one,
 * deleted by one with an empty payload [MQTT-3.3.1-10, -11], sent to new subscriptions with
 * RETAIN=1 [MQTT-3.3.1-9] according to Retain Handling [MQTT-3.3.1-9, 3.8.3-?].
 *
 * Limits: a new retained topic beyond retainedMessagesMax, or a message that would push the
 * retained payload total beyond retainedBytesMax, is not stored (the message is still routed;
 * MQTT 5.0 QoS 1 publishers get PUBACK 0x97) and counted in `retainedRefused`.
 *
 * Lookup on subscribe: an exact filter is one map lookup; a wildcard filter scans every retained
 * message with `matchesFilter`. The scan is bounded by retainedMessagesMax; a retained-topic trie
 * would make it proportional to the matches and is the next step if wildcard subscribes over
 * large retained sets matter.
 */
import { encodePublish } from '../codec/encoder.js';
import type { Qos } from '../codec/packets.js';
import type { SessionState, StoredMessage, SubscriptionState } from '../store/state-store.js';
import { matchesFilter } from '../topics/match-filter.js';
import { hasWildcard, parseSharedFilter } from '../topics/validate.js';
import type { Broker } from './broker.js';
import { deliverNew, isExpired, publishPacketFor } from './outbound-queue.js';
import { storeMessage } from './routing.js';

export type RetainOutcome = { stored: StoredMessage | null; refused: boolean };

/** Applies a RETAIN=1 message to the retained table; returns the stored message when kept. */
export function retainMessage(broker: Broker, message: StoredMessage): RetainOutcome {
  const state = broker.state;
  const previousId = state.retained.get(message.topic);
  if (message.payload.length === 0) {
    if (previousId !== undefined) broker.commit({ kind: 'retained-cleared', topic: message.topic });
    return { stored: null, refused: false };
  }
  const previousBytes = previousId === undefined ? 0 : state.messages.get(previousId)!.payload.length;
  const count = state.retained.size + (previousId === undefined ? 1 : 0);
  const bytes = state.retainedBytes - previousBytes + message.payload.length;
  if (count > broker.config.retainedMessagesMax || bytes > broker.config.retainedBytesMax) {
    broker.stats.retainedRefused += 1;
    broker.log('debug', 'retained-refused', { topic: message.topic, bytes: message.payload.length });
    return { stored: null, refused: true };
  }
  const stored = storeMessage(broker, message, false);
  broker.commit({ kind: 'retained-set', topic: message.topic, messageId: stored.messageId });
  return { stored, refused: false };
}

/** Sends the retained messages matching a new or replaced subscription. */
export function sendRetainedOnSubscribe(broker: Broker, session: SessionState, subscription: SubscriptionState, isNew: boolean, nowMs: number): void {
  if (subscription.retainHandling === 2) return;
  if (subscription.retainHandling === 1 && !isNew) return;
  // Shared subscriptions get no retained messages on subscribe [MQTT-4.8.2-?: "retained messages are not sent"].
  if (parseSharedFilter(subscription.filter) !== null) return;
  const state = broker.state;
  if (!hasWildcard(subscription.filter)) {
    const messageId = state.retained.get(subscription.filter);
    if (messageId !== undefined) sendOne(broker, session, subscription, state.messages.get(messageId)!, nowMs);
    return;
  }
  const matching: StoredMessage[] = [];
  for (const [topic, messageId] of state.retained) {
    if (matchesFilter(subscription.filter, topic)) matching.push(state.messages.get(messageId)!);
  }
  for (const message of matching) sendOne(broker, session, subscription, message, nowMs);
}

function sendOne(broker: Broker, session: SessionState, subscription: SubscriptionState, message: StoredMessage, nowMs: number): void {
  if (isExpired(message, nowMs)) {
    broker.commit({ kind: 'retained-cleared', topic: message.topic });
    return;
  }
  // Only topics the subscriber may read, even under a filter it was allowed to subscribe to.
  if (broker.access !== null && !broker.access.allowsReceive(session.clientId, subscription, message.topic)) {
    broker.access.receiveDenied(session.clientId, message.topic);
    return;
  }
  const qos = Math.min(message.qos, subscription.qos) as Qos;
  const subscriptionIds = subscription.subscriptionId === 0 ? [] : [subscription.subscriptionId];
  const connection = broker.online.get(session.clientId);
  const encoded = connection === undefined ? null : encodePublish(publishPacketFor(message, connection.version, qos, true, subscriptionIds, nowMs), connection.version);
  deliverNew(broker, session, message, qos, true, subscriptionIds, encoded, nowMs);
}
