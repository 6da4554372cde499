/**
 * Builds the broker's view of a message from what a client published (or its will): the fields
 * that are forwarded to receivers and the absolute expiry time.
 *
 * Forwarded unchanged [MQTT-3.3.2-15..20]: payload format indicator, content type, response
 * topic, correlation data and user properties (in order). Not forwarded: the topic alias (per
 * connection), subscription identifiers (set per receiver), the will delay interval. The message
 * expiry interval becomes an absolute `expiryAtMs`, and each receiver gets the time remaining.
 */

import { ownCopy } from '../codec/own-copy.js';
import type { Properties, Qos } from '../codec/packets.js';
import type { StoredMessage } from '../store/state-store.js';

export function forwardedProperties(source: Properties | undefined): Properties | undefined {
  if (source === undefined) return undefined;
  // Most messages carry none of these: no object is made for them.
  const hasUserProperties = source.userProperties !== undefined && source.userProperties.length > 0;
  if (source.payloadFormatIndicator === undefined && source.contentType === undefined && source.responseTopic === undefined && source.correlationData === undefined && !hasUserProperties) {
    return undefined;
  }
  const result: Properties = {};
  if (source.payloadFormatIndicator !== undefined) result.payloadFormatIndicator = source.payloadFormatIndicator;
  if (source.contentType !== undefined) result.contentType = source.contentType;
  if (source.responseTopic !== undefined) result.responseTopic = source.responseTopic;
  if (source.correlationData !== undefined) result.correlationData = ownCopy(source.correlationData);
  if (hasUserProperties) result.userProperties = source.userProperties;
  return result;
}

/** A StoredMessage whose fields a caller may overwrite: the scratch of `fillTransientMessage`. */
export type MutableMessage = { -readonly [K in keyof StoredMessage]: StoredMessage[K] };

export function emptyTransientMessage(): MutableMessage {
  return { messageId: 0, topic: '', payload: new Uint8Array(0), qos: 0, retain: false, properties: undefined, createdAtMs: 0, expiryAtMs: null, references: 0 };
}

/**
 * `transientMessage` into an object the caller reuses (the PUBLISH handler: one per message
 * otherwise). Only for a message that nothing keeps once the input is handled: storing copies
 * it (routing.ts storeMessage), and every other use reads it during the call.
 */
export function fillTransientMessage(target: MutableMessage, topic: string, payload: Uint8Array, qos: Qos, retain: boolean, properties: Properties | undefined, nowMs: number): StoredMessage {
  const expirySeconds = properties?.messageExpiryInterval;
  target.messageId = 0;
  target.topic = topic;
  target.payload = payload;
  target.qos = qos;
  target.retain = retain;
  target.properties = forwardedProperties(properties);
  target.createdAtMs = nowMs;
  target.expiryAtMs = expirySeconds === undefined ? null : nowMs + expirySeconds * 1000;
  target.references = 0;
  return target;
}

/** A message not stored yet (messageId 0). The payload may still be a view of input bytes. */
export function transientMessage(topic: string, payload: Uint8Array, qos: Qos, retain: boolean, properties: Properties | undefined, nowMs: number): StoredMessage {
  const expirySeconds = properties?.messageExpiryInterval;
  return {
    messageId: 0,
    topic,
    payload,
    qos,
    retain,
    properties: forwardedProperties(properties),
    createdAtMs: nowMs,
    expiryAtMs: expirySeconds === undefined ? null : nowMs + expirySeconds * 1000,
    references: 0,
  };
}
