/**
 * How an MQTT message travels in NATS headers between Keel nodes (and to NATS-native services).
 *
 * The payload is the NATS payload, byte for byte; the subject is the mapped topic (subjects.ts).
 * Headers, all optional except where noted:
 * - `Keel-Origin`: the publishing node's id (absent: a NATS-native publisher, whose message is
 *   QoS 0, not retained, without properties);
 * - `Keel-Qos`: `0`, `1` or `2`; `Keel-Retain`: `1` when the RETAIN flag was set;
 * - `Keel-Seq`: for core NATS (QoS 0) copies: `<epoch>-<n>`, one per message and node start, so a
 *   node whose subscriptions overlap (NATS then delivers one copy per subscription) routes the
 *   message once; on durable hand-offs (and hand-over markers): `<epoch>-<ticket>`, the node's
 *   counter, increasing in the order it queued them (session-handover.ts);
 * - MQTT 5.0 properties: `Keel-Prop-Payload-Format` (`0`/`1`), `Keel-Prop-Message-Expiry`
 *   (seconds left when it was handed over), `Keel-Prop-Content-Type` and
 *   `Keel-Prop-Response-Topic` (percent-encoded, so any UTF-8 is safe in a header),
 *   `Keel-Prop-Correlation-Data` (hex);
 * - user properties: as plain headers, in order, when every name is an HTTP token that does not
 *   start with `Keel-` or `Nats-`, names are unique and every value is printable ASCII (so NATS-native
 *   readers see them as ordinary headers); otherwise the exact list (repeats and order kept) as
 *   JSON pairs in `Keel-User-Properties`, and no plain headers.
 * A receiver rebuilds exactly the properties MQTT forwards (message.ts forwardedProperties).
 * Consecutive QoS 1 hand-offs of a node may share one stream message (handoff-batch.ts): each
 * keeps exactly these headers inside the batch, and the batch's own headers are only
 * `Keel-Origin` and `Keel-Batch`.
 */
import type { Properties, Qos, UserProperty } from '../codec/packets.js';
import type { ClusterHeaders } from '../contract.js';

export const headerOrigin = 'Keel-Origin';
export const headerQos = 'Keel-Qos';
export const headerRetain = 'Keel-Retain';
export const headerSequence = 'Keel-Seq';
const headerPayloadFormat = 'Keel-Prop-Payload-Format';
const headerExpiry = 'Keel-Prop-Message-Expiry';
const headerContentType = 'Keel-Prop-Content-Type';
const headerResponseTopic = 'Keel-Prop-Response-Topic';
const headerCorrelation = 'Keel-Prop-Correlation-Data';
const headerUserProperties = 'Keel-User-Properties';
const keelPrefix = 'keel-';
/** NATS's own headers (`Nats-Msg-Id`, status headers) are never user properties. */
const natsPrefix = 'nats-';
const tokenPattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const printablePattern = /^[\x20-\x7e]*$/;
const integerLikePattern = /^[0-9]+$/;

/** What travels with a payload, decoded. */
export interface ClusterEnvelope {
  origin: string | null;
  qos: Qos;
  retain: boolean;
  sequence: string | null;
  properties: Properties | undefined;
  /** Seconds left of the message expiry at hand-over, or null. */
  expirySeconds: number | null;
}

function hex(bytes: Uint8Array): string {
  let text = '';
  for (let index = 0; index < bytes.length; index++) text += bytes[index]!.toString(16).padStart(2, '0');
  return text;
}

function unhex(text: string): Uint8Array | null {
  if (text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) return null;
  const bytes = new Uint8Array(text.length / 2);
  for (let index = 0; index < bytes.length; index++) bytes[index] = Number.parseInt(text.slice(index * 2, index * 2 + 2), 16);
  return bytes;
}

function plainUserProperties(list: readonly UserProperty[]): boolean {
  const seen = new Set<string>();
  for (const [name, value] of list) {
    const lower = name.toLowerCase();
    if (!plainName(name, lower) || seen.has(lower) || !printablePattern.test(value)) return false;
    seen.add(lower);
  }
  return true;
}

/** A name NATS headers carry as is and no reader takes for something else. */
function plainName(name: string, lower: string): boolean {
  if (!tokenPattern.test(name) || integerLikePattern.test(name) || name === '__proto__') return false;
  return !lower.startsWith(keelPrefix) && !lower.startsWith(natsPrefix);
}

/** The headers of a message handed to the cluster; `expirySeconds` is what is left of its expiry. */
export function encodeHeaders(origin: string, qos: Qos, retain: boolean, sequence: string | null, properties: Properties | undefined, expirySeconds: number | null): Record<string, string> {
  const headers: Record<string, string> = { [headerOrigin]: origin, [headerQos]: String(qos) };
  if (retain) headers[headerRetain] = '1';
  if (sequence !== null) headers[headerSequence] = sequence;
  if (expirySeconds !== null) headers[headerExpiry] = String(expirySeconds);
  if (properties === undefined) return headers;
  if (properties.payloadFormatIndicator !== undefined) headers[headerPayloadFormat] = String(properties.payloadFormatIndicator);
  if (properties.contentType !== undefined) headers[headerContentType] = encodeURIComponent(properties.contentType);
  if (properties.responseTopic !== undefined) headers[headerResponseTopic] = encodeURIComponent(properties.responseTopic);
  if (properties.correlationData !== undefined) headers[headerCorrelation] = hex(properties.correlationData);
  const list = properties.userProperties;
  if (list !== undefined && list.length > 0) {
    if (plainUserProperties(list)) {
      for (const [name, value] of list) headers[name] = value;
    } else {
      headers[headerUserProperties] = JSON.stringify(list);
    }
  }
  return headers;
}

function decodeText(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

function decodeUserProperties(headers: ClusterHeaders): UserProperty[] | undefined {
  const json = headers[headerUserProperties];
  if (json !== undefined) {
    try {
      const pairs = JSON.parse(json) as unknown;
      if (!Array.isArray(pairs)) return undefined;
      const list: UserProperty[] = [];
      for (const pair of pairs) {
        if (Array.isArray(pair) && typeof pair[0] === 'string' && typeof pair[1] === 'string') list.push([pair[0], pair[1]]);
      }
      return list.length > 0 ? list : undefined;
    } catch {
      return undefined;
    }
  }
  const list: UserProperty[] = [];
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (!lower.startsWith(keelPrefix) && !lower.startsWith(natsPrefix)) list.push([name, headers[name]!]);
  }
  return list.length > 0 ? list : undefined;
}

function decodeProperties(headers: ClusterHeaders): Properties | undefined {
  const properties: Properties = {};
  let any = false;
  const format = headers[headerPayloadFormat];
  if (format === '0' || format === '1') {
    properties.payloadFormatIndicator = Number(format);
    any = true;
  }
  const contentType = decodeText(headers[headerContentType]);
  if (contentType !== undefined) {
    properties.contentType = contentType;
    any = true;
  }
  const responseTopic = decodeText(headers[headerResponseTopic]);
  if (responseTopic !== undefined) {
    properties.responseTopic = responseTopic;
    any = true;
  }
  const correlation = headers[headerCorrelation];
  const correlationData = correlation === undefined ? null : unhex(correlation);
  if (correlationData !== null) {
    properties.correlationData = correlationData;
    any = true;
  }
  const userProperties = decodeUserProperties(headers);
  if (userProperties !== undefined) {
    properties.userProperties = userProperties;
    any = true;
  }
  return any ? properties : undefined;
}

/** Reads the headers of a message from the cluster; a message without `Keel-Origin` is NATS-native (QoS 0). */
export function decodeHeaders(headers: ClusterHeaders): ClusterEnvelope {
  const origin = headers[headerOrigin] ?? null;
  if (origin === null) return { origin: null, qos: 0, retain: false, sequence: null, properties: undefined, expirySeconds: null };
  const qosText = headers[headerQos];
  const qos: Qos = qosText === '1' ? 1 : qosText === '2' ? 2 : 0;
  const expiryText = headers[headerExpiry];
  const expiry = expiryText === undefined ? Number.NaN : Number(expiryText);
  return {
    origin,
    qos,
    retain: headers[headerRetain] === '1',
    sequence: headers[headerSequence] ?? null,
    properties: decodeProperties(headers),
    expirySeconds: Number.isInteger(expiry) && expiry >= 0 ? expiry : null,
  };
}
