/**
 * Retained messages: one per topic, set by a PUBLISH with RETAIN=1, replaced by the next one,
 * deleted by one with an empty payload [MQTT-3.3.1-10, -11], sent to new subscriptions with
 * RETAIN=1 [MQTT-3.3.1-9] according to Retain Handling [MQTT-3.3.1-9, 3.8.3-?].
 *
 * Limits: a new retained topic beyond retainedMessagesMax, or a message that would push the
 * retained payload total beyond retainedBytesMax, is not stored (the message is still routed;
 * MQTT 5.0 QoS 1 publishers get PUBACK 0x97) and counted in `retainedRefused`.
 *
 * Sending them to a new subscription is paced by the subscriber's connection (retained-replay.ts).
 */
import type { StoredMessage } from '../store/state-store.js';
import type { Broker } from './broker.js';
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
  // The broker's own $SYS messages (sys-topics.ts) do not count against the clients' limits.
  const count = state.retained.size - (broker.sys?.retainedCount ?? 0) + (previousId === undefined ? 1 : 0);
  const bytes = state.retainedBytes - (broker.sys?.retainedBytes ?? 0) - previousBytes + message.payload.length;
  if (count > broker.config.retainedMessagesMax || bytes > broker.config.retainedBytesMax) {
    broker.stats.retainedRefused += 1;
    broker.log('debug', 'retained-refused', { topic: message.topic, bytes: message.payload.length });
    return { stored: null, refused: true };
  }
  const stored = storeMessage(broker, message, false);
  broker.commit({ kind: 'retained-set', topic: message.topic, messageId: stored.messageId });
  return { stored, refused: false };
}
