/**
 * How large a message's NATS form is, so that a node refuses what NATS would refuse.
 *
 * NATS refuses a message larger than its `max_payload` (1 MiB unless configured; headers count),
 * and refuses it every time: a durable hand-off NATS refused would be sent again forever, and
 * the hand-offs queued behind it (in order, cluster-node.ts) would wait with it. So a node
 * checks, when a client publishes (handle-publish.ts) and when a CONNECT brings a will
 * (handle-connect.ts), that the message's hand-off fits `cluster.messageBytesMax`, and refuses
 * the packet as too large when it does not (0x95), before anything of it is routed or stored.
 *
 * The hand-off's headers carry the message's properties (headers.ts), some of them expanded
 * (percent-encoding, hex, JSON), so its size is not the packet's. The check first takes a cheap
 * bound that holds for every encoding, and measures the real headers only when the bound is over
 * the limit: the rare message near the limit, or one with large properties.
 */
import type { Properties, Qos } from '../codec/packets.js';
import { utf8Length } from '../codec/utf8.js';
import { encodeHeaders } from './headers.js';
import { handoffSubject, topicToSubject } from './subjects.js';

/**
 * Room for what the link and the node add on the way (`Nats-Msg-Id`, `Keel-Share`, `Keel-Seq`,
 * the status line) and the subject: generous, so the check never depends on their exact form.
 */
export const natsReserveBytes = 1024;
/** Most bytes a UTF-16 code unit becomes in a header: three of UTF-8, percent-encoded. */
const expandedPerUnit = 9;
/** Most bytes a byte of binary data becomes in a header (hex). */
const hexPerByte = 2;
/** Most bytes a user property's code unit becomes in `Keel-User-Properties` (a JSON `\u00XX` escape). */
const jsonPerUnit = 6;

/** An upper bound of the message's NATS size, from lengths alone. */
export function natsBytesBound(topic: string, payload: Uint8Array, properties: Properties | undefined): number {
  let bytes = payload.length + expandedPerUnit * topic.length + natsReserveBytes;
  if (properties === undefined) return bytes;
  // Every header name and the numeric ones fit in the reserve's room per property.
  bytes += 256;
  if (properties.contentType !== undefined) bytes += expandedPerUnit * properties.contentType.length;
  if (properties.responseTopic !== undefined) bytes += expandedPerUnit * properties.responseTopic.length;
  if (properties.correlationData !== undefined) bytes += hexPerByte * properties.correlationData.length;
  const users = properties.userProperties;
  if (users !== undefined) for (const [name, value] of users) bytes += jsonPerUnit * (name.length + value.length) + 8;
  return bytes;
}

/** How many bytes `headers` take in a NATS message: the `NATS/1.0` line, `Name: value` lines, the blank line. */
export function natsHeaderBytes(headers: Readonly<Record<string, string>>): number {
  let bytes = 12;
  for (const [name, value] of Object.entries(headers)) bytes += utf8Length(name) + utf8Length(value) + 4;
  return bytes;
}

/** The message's NATS size as a hand-off of node `nodeId` would have it (headers as sent), with the reserve (natsReserveBytes). */
export function natsBytes(nodeId: string, topic: string, payload: Uint8Array, qos: Qos, retain: boolean, properties: Properties | undefined): number {
  const subject = topicToSubject(topic);
  const headers = encodeHeaders(nodeId, qos, retain, null, properties, properties?.messageExpiryInterval ?? null);
  return payload.length + natsHeaderBytes(headers) + (subject === null ? 0 : utf8Length(handoffSubject(subject))) + natsReserveBytes;
}
