/**
 * Binary bodies for the state records that fill a log: sessions, subscriptions, stored messages
 * and the deliveries that move them.
 *
 * The generic body (record-codec.ts: JSON with the binaries lifted out) costs a JSON.stringify on
 * every append and a JSON.parse on every record a restart replays; recovering 20,000 persistent
 * sessions spent a quarter of its log replay in that parse. These kinds have a form of their own,
 * each under a record type of its own (`binaryRecordTypes`, on-disk identifiers like those of
 * `recordTypes`: entries may be added, never renumbered). A body is its kind's fields in a fixed
 * order, nothing else (the type says which kind it is):
 *
 *   uint    unsigned LEB128 variable integer, 1 to 8 bytes, any safe integer 0 .. 2^53 - 1
 *   string  uint byte length, then the string as UTF-8
 *   bytes   uint length, then the bytes (a message's payload)
 *   flags   one byte of booleans; bits a version does not know make the record undecodable
 *
 * Field by field (see `encodeBody`): session-created / session-resumed: flags (bits 0-1: the
 * owner's user name 0 absent, 1 null, 2 present; bit 2: a claim revision follows), protocol
 * version, expiry seconds, client id, then the user name when present, then the claim revision
 * when flagged (a cluster node's, SessionState.claimRevision; records without the bit, as every
 * earlier version wrote them, decode with it absent). session-disconnected: client id, atMs, expiry seconds.
 * session-counters: client id, next packet id, next delivery sequence. subscription-added: client
 * id, filter, QoS, flags (bit 0 no local, bit 1 retain as published), retain handling,
 * subscription id. message-stored: message id, topic, QoS, flags (bit 0 retain, bit 1 has
 * properties, bit 2 has an expiry), createdAtMs, then the expiry time when it has one, the
 * properties when it has them (MQTT 5.0 PUBLISH properties with the codec's writer: a variable
 * integer length, then the properties), and the payload to the end of the body. delivery-queued:
 * client id, sequence, message id, QoS, flags (bit 0 retain), packet id, phase (0 queued,
 * 1 publish, 2 pubrel), the subscription id count, then the ids. The other kinds are their fields
 * in the order their type declares them (state-store.ts).
 *
 * A record whose value the form cannot hold exactly (a number that is not a safe non-negative
 * integer, a string that is not well-formed UTF-8 or holds U+0000, a property outside those a
 * stored message forwards) is written in the generic form instead, under its old type: the
 * decoded record is then always field for field what the JSON form gives, optional fields
 * included (absent stays absent, null stays null). Records of the old types, which earlier
 * versions wrote for every kind, still decode; an earlier version cannot read the new types.
 *
 * Encoding computes the exact size first (which is also where a record is found not to fit), takes
 * the body from the encoder's byte pool and writes it in place: no intermediate object or string.
 * Decoding reads with a cursor held in this module (no reader object per record) and copies the
 * payload and binary properties out of the read buffer, so a recovered message does not pin the
 * segment it was read from.
 */
import { assert } from '../assert.js';
import { allocateBytes } from '../codec/byte-pool.js';
import { ByteReader } from '../codec/byte-reader.js';
import { variableIntegerLength, writeVariableInteger } from '../codec/byte-writer.js';
import { ownCopy } from '../codec/own-copy.js';
import { PacketType, type Properties, type ProtocolVersion, type Qos } from '../codec/packets.js';
import { propertiesContentLength, readProperties, writeProperties } from '../codec/properties.js';
import { decodeUtf8, writeUtf8 } from '../codec/utf8.js';
import type { DeliveryPhase, StateRecord, StateRecordKind, StoredMessageFields, SubscriptionState } from './state-store.js';

/** The kinds with a binary body, and its record type (an on-disk identifier, never renumbered). */
export const binaryRecordTypes: Readonly<Partial<Record<StateRecordKind, number>>> = {
  'session-created': 33,
  'session-resumed': 34,
  'session-disconnected': 35,
  'session-deleted': 36,
  'session-counters': 37,
  'subscription-added': 38,
  'subscription-removed': 39,
  'message-stored': 40,
  'message-discarded': 41,
  'message-counter': 42,
  'retained-set': 43,
  'retained-cleared': 44,
  'delivery-queued': 45,
  'delivery-sent': 46,
  'delivery-released': 47,
  'delivery-completed': 48,
  'delivery-dropped': 49,
  'incoming-qos2-recorded': 50,
  'incoming-qos2-released': 51,
  'will-cleared': 52,
};

/** Below the log writer's group-end flag (0x80), which shares the frame's type byte. */
const binaryTypeMax = 0x7f;
/** A size that says the form cannot hold the value: NaN, so that any sum it enters stays NaN. */
const notEncodable = Number.NaN;

const kindsByBinaryType: StateRecordKind[] = [];
for (const [kind, type] of Object.entries(binaryRecordTypes) as [StateRecordKind, number][]) {
  assert(type > 0 && type <= binaryTypeMax, 'a binary record type fits beside the group-end flag');
  assert(kindsByBinaryType[type] === undefined, `binary record type ${type} assigned twice`);
  kindsByBinaryType[type] = kind;
}

/** The kind a binary record type holds, or undefined when `type` is not one. */
export function binaryRecordKind(type: number): StateRecordKind | undefined {
  return kindsByBinaryType[type];
}

type Kind<K extends StateRecordKind> = Extract<StateRecord, { kind: K }>;

const usernameAbsent = 0;
const usernameNull = 1;
const usernamePresent = 2;
const usernameMask = 0x03;
const claimRevisionFlag = 0x04;
const noLocalFlag = 0x01;
const retainAsPublishedFlag = 0x02;
const retainFlag = 0x01;
const hasPropertiesFlag = 0x02;
const hasExpiryFlag = 0x04;
const phases: readonly DeliveryPhase[] = ['queued', 'publish', 'pubrel'];

/** The properties a stored message forwards (message.ts `forwardedProperties`): all it may hold here. */
const storedPropertyNames: ReadonlySet<string> = new Set(['payloadFormatIndicator', 'contentType', 'responseTopic', 'correlationData', 'userProperties']);

// ---------------------------------------------------------------------------------------------
// Sizes. Each returns the bytes a value takes, or `notEncodable` when the form cannot hold it.

/** Bytes of `value` as a uint, or notEncodable when it is not a safe non-negative integer. */
function uintBytes(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) return notEncodable; // NaN (utf8Bytes' notEncodable) included
  let bytes = 1;
  let rest = value;
  while (rest >= 0x80) {
    rest = Math.floor(rest / 0x80);
    bytes += 1;
  }
  return bytes;
}

/**
 * UTF-8 bytes of `text`, or notEncodable when it holds a lone surrogate (UTF-8 cannot carry it,
 * JSON can) or U+0000 (the shared UTF-8 reader refuses it).
 */
function utf8Bytes(text: string): number {
  const length = text.length;
  let bytes = length;
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x80) {
      if (code === 0) return notEncodable;
      continue;
    }
    if (code < 0x800) {
      bytes += 1;
    } else if (code >= 0xd800 && code <= 0xdfff) {
      const next = text.charCodeAt(index + 1);
      if (code > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return notEncodable;
      bytes += 2; // a surrogate pair, two UTF-16 units, is four bytes
      index++;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}

/** Bytes of `text` as a string field (length and UTF-8), or notEncodable. */
function stringBytes(text: string): number {
  if (typeof text !== 'string') return notEncodable;
  const bytes = utf8Bytes(text);
  return uintBytes(bytes) + bytes;
}

function flagsBytes(): number {
  return 1;
}

/** Bytes of the properties' length and content, or notEncodable for a property a stored message never holds. */
function storedPropertiesBytes(properties: Properties): number {
  for (const name of Object.keys(properties)) {
    const value = (properties as Record<string, unknown>)[name];
    if (value === undefined) continue;
    if (!storedPropertyNames.has(name)) return notEncodable;
    if (!storedPropertyFits(name, value)) return notEncodable;
  }
  const contentBytes = propertiesContentLength(properties, PacketType.Publish);
  return variableIntegerLength(contentBytes) + contentBytes;
}

/** Whether a forwarded property's value reads back as it is (the codec's reader checks these). */
function storedPropertyFits(name: string, value: unknown): boolean {
  switch (name) {
    case 'payloadFormatIndicator':
      return value === 0 || value === 1;
    case 'correlationData':
      return value instanceof Uint8Array && value.length <= 0xffff;
    case 'userProperties':
      // An empty list writes nothing and would read back absent.
      return Array.isArray(value) && value.length > 0 && value.every((pair) => Array.isArray(pair) && pair.length === 2 && mqttStringFits(pair[0]) && mqttStringFits(pair[1]));
    default:
      return mqttStringFits(value);
  }
}

function mqttStringFits(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const bytes = utf8Bytes(value);
  return bytes <= 0xffff; // false for notEncodable (NaN)
}

// ---------------------------------------------------------------------------------------------
// Writing, at `at` in `body`; each returns the offset after what it wrote.

function writeUint(body: Uint8Array, at: number, value: number): number {
  let rest = value;
  let offset = at;
  while (rest >= 0x80) {
    body[offset++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  body[offset++] = rest;
  return offset;
}

function writeString(body: Uint8Array, at: number, text: string): number {
  // The length is measured again rather than carried: the strings here are short, mostly ASCII.
  const bytes = utf8Bytes(text);
  const start = writeUint(body, at, bytes);
  const written = writeUtf8(text, body, start);
  assert(written === bytes, 'a string takes the bytes measured for it');
  return start + bytes;
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/**
 * The binary body of `record`, from the encoder's byte pool, or null when its kind has none or a
 * value does not fit the form (the caller then writes the generic body under the old type).
 */
export function encodeBinaryRecord(record: StateRecord): Uint8Array | null {
  const size = binaryRecordBytes(record);
  if (Number.isNaN(size)) return null;
  const body = allocateBytes(size);
  writeBinaryRecord(record, body);
  return body;
}

/** The size of `record`'s binary body, or NaN when its kind has none or a value does not fit the form. */
export function binaryRecordBytes(record: StateRecord): number {
  if (binaryRecordTypes[record.kind] === undefined) return notEncodable;
  return bodyBytes(record);
}

/**
 * Writes `record`'s binary body into `body`, a view of exactly `binaryRecordBytes(record)` bytes
 * (for a writer that places bodies in a buffer of its own, snapshot-writer.ts). The size is not
 * computed again here (every log record passes through, encodeBinaryRecord): a view of another
 * size ends the encoding elsewhere than at its end, which the assertion below catches.
 */
export function writeBinaryRecord(record: StateRecord, body: Uint8Array): void {
  const end = encodeBody(record, body);
  assert(end === body.length, 'a binary record fills the size computed for it');
}

/** The body's exact size, or notEncodable. */
function bodyBytes(record: StateRecord): number {
  switch (record.kind) {
    case 'session-created':
    case 'session-resumed': {
      const username = record.username;
      const usernameBytes = typeof username === 'string' ? stringBytes(username) : username === null || username === undefined ? 0 : notEncodable;
      const revision = record.claimRevision;
      const revisionBytes = revision === undefined ? 0 : uintBytes(revision);
      return flagsBytes() + uintBytes(record.protocolVersion) + uintBytes(record.expiryIntervalSeconds) + stringBytes(record.clientId) + usernameBytes + revisionBytes;
    }
    case 'session-disconnected':
      return stringBytes(record.clientId) + uintBytes(record.atMs) + uintBytes(record.expiryIntervalSeconds);
    case 'session-counters':
      return stringBytes(record.clientId) + uintBytes(record.nextPacketId) + uintBytes(record.nextDeliverySequence);
    case 'subscription-added':
      return stringBytes(record.clientId) + subscriptionBytes(record.subscription);
    case 'subscription-removed':
      return stringBytes(record.clientId) + stringBytes(record.filter);
    case 'message-stored':
      return messageBytes(record.message);
    case 'delivery-queued':
      return deliveryQueuedBytes(record);
    case 'delivery-sent':
      return stringBytes(record.clientId) + uintBytes(record.sequence) + uintBytes(record.packetId);
    case 'delivery-dropped':
      return stringBytes(record.clientId) + uintBytes(record.sequence) + stringBytes(record.reason);
    case 'delivery-released':
    case 'delivery-completed':
    case 'incoming-qos2-recorded':
    case 'incoming-qos2-released':
      return stringBytes(record.clientId) + uintBytes(record.packetId);
    case 'session-deleted':
    case 'will-cleared':
      return stringBytes(record.clientId);
    case 'message-discarded':
      return uintBytes(record.messageId);
    case 'message-counter':
      return uintBytes(record.nextMessageId);
    case 'retained-set':
      return stringBytes(record.topic) + uintBytes(record.messageId);
    case 'retained-cleared':
      return stringBytes(record.topic);
    default:
      return notEncodable;
  }
}

function subscriptionBytes(subscription: SubscriptionState): number {
  if (typeof subscription.noLocal !== 'boolean' || typeof subscription.retainAsPublished !== 'boolean') return notEncodable;
  return stringBytes(subscription.filter) + uintBytes(subscription.qos) + flagsBytes() + uintBytes(subscription.retainHandling) + uintBytes(subscription.subscriptionId);
}

function messageBytes(message: StoredMessageFields): number {
  if (typeof message.retain !== 'boolean' || !(message.payload instanceof Uint8Array)) return notEncodable;
  const expiry = message.expiryAtMs;
  const expiryBytes = expiry === null ? 0 : uintBytes(expiry);
  const propertiesBytes = message.properties === undefined ? 0 : storedPropertiesBytes(message.properties);
  const fields = uintBytes(message.messageId) + stringBytes(message.topic) + uintBytes(message.qos) + flagsBytes() + uintBytes(message.createdAtMs) + expiryBytes + propertiesBytes;
  return fields + message.payload.length;
}

function deliveryQueuedBytes(record: Kind<'delivery-queued'>): number {
  const phase = phases.indexOf(record.phase);
  if (phase < 0 || typeof record.retain !== 'boolean' || !Array.isArray(record.subscriptionIds)) return notEncodable;
  const ids = record.subscriptionIds;
  let idsBytes = uintBytes(ids.length);
  for (let index = 0; index < ids.length; index++) idsBytes += uintBytes(ids[index]!);
  return stringBytes(record.clientId) + uintBytes(record.sequence) + uintBytes(record.messageId) + uintBytes(record.qos) + flagsBytes() + uintBytes(record.packetId) + 1 + idsBytes;
}

/** Writes the body of a record `bodyBytes` found encodable; returns its end. */
function encodeBody(record: StateRecord, body: Uint8Array): number {
  switch (record.kind) {
    case 'session-created':
    case 'session-resumed':
      return writeSession(record, body);
    case 'session-disconnected':
      return writeUint(body, writeUint(body, writeString(body, 0, record.clientId), record.atMs), record.expiryIntervalSeconds);
    case 'session-counters':
      return writeUint(body, writeUint(body, writeString(body, 0, record.clientId), record.nextPacketId), record.nextDeliverySequence);
    case 'subscription-added':
      return writeSubscription(body, writeString(body, 0, record.clientId), record.subscription);
    case 'subscription-removed':
      return writeString(body, writeString(body, 0, record.clientId), record.filter);
    case 'message-stored':
      return writeMessage(body, record.message);
    case 'delivery-queued':
      return writeDeliveryQueued(body, record);
    case 'delivery-sent':
      return writeUint(body, writeUint(body, writeString(body, 0, record.clientId), record.sequence), record.packetId);
    case 'delivery-dropped':
      return writeString(body, writeUint(body, writeString(body, 0, record.clientId), record.sequence), record.reason);
    case 'delivery-released':
    case 'delivery-completed':
    case 'incoming-qos2-recorded':
    case 'incoming-qos2-released':
      return writeUint(body, writeString(body, 0, record.clientId), record.packetId);
    case 'session-deleted':
    case 'will-cleared':
      return writeString(body, 0, record.clientId);
    case 'message-discarded':
      return writeUint(body, 0, record.messageId);
    case 'message-counter':
      return writeUint(body, 0, record.nextMessageId);
    case 'retained-set':
      return writeUint(body, writeString(body, 0, record.topic), record.messageId);
    case 'retained-cleared':
      return writeString(body, 0, record.topic);
    default:
      assert(false, `record ${record.kind} has no binary form`);
      return 0;
  }
}

function writeSession(record: Kind<'session-created' | 'session-resumed'>, body: Uint8Array): number {
  const username = record.username;
  const revision = record.claimRevision;
  body[0] = (typeof username === 'string' ? usernamePresent : username === null ? usernameNull : usernameAbsent) | (revision === undefined ? 0 : claimRevisionFlag);
  let at = writeUint(body, 1, record.protocolVersion);
  at = writeUint(body, at, record.expiryIntervalSeconds);
  at = writeString(body, at, record.clientId);
  if (typeof username === 'string') at = writeString(body, at, username);
  return revision === undefined ? at : writeUint(body, at, revision);
}

function writeSubscription(body: Uint8Array, start: number, subscription: SubscriptionState): number {
  let at = writeString(body, start, subscription.filter);
  at = writeUint(body, at, subscription.qos);
  body[at++] = (subscription.noLocal ? noLocalFlag : 0) | (subscription.retainAsPublished ? retainAsPublishedFlag : 0);
  at = writeUint(body, at, subscription.retainHandling);
  return writeUint(body, at, subscription.subscriptionId);
}

function writeMessage(body: Uint8Array, message: StoredMessageFields): number {
  let at = writeUint(body, 0, message.messageId);
  at = writeString(body, at, message.topic);
  at = writeUint(body, at, message.qos);
  const hasExpiry = message.expiryAtMs !== null;
  body[at++] = (message.retain ? retainFlag : 0) | (message.properties !== undefined ? hasPropertiesFlag : 0) | (hasExpiry ? hasExpiryFlag : 0);
  at = writeUint(body, at, message.createdAtMs);
  if (message.expiryAtMs !== null) at = writeUint(body, at, message.expiryAtMs);
  if (message.properties !== undefined) {
    at = writeVariableInteger(body, at, propertiesContentLength(message.properties, PacketType.Publish));
    at = writeProperties(body, at, message.properties);
  }
  body.set(message.payload, at);
  return at + message.payload.length;
}

function writeDeliveryQueued(body: Uint8Array, record: Kind<'delivery-queued'>): number {
  let at = writeString(body, 0, record.clientId);
  at = writeUint(body, at, record.sequence);
  at = writeUint(body, at, record.messageId);
  at = writeUint(body, at, record.qos);
  body[at++] = record.retain ? retainFlag : 0;
  at = writeUint(body, at, record.packetId);
  body[at++] = phases.indexOf(record.phase);
  const ids = record.subscriptionIds;
  at = writeUint(body, at, ids.length);
  for (let index = 0; index < ids.length; index++) at = writeUint(body, at, ids[index]!);
  return at;
}

// ---------------------------------------------------------------------------------------------
// Decoding, with a cursor over the body being decoded (decoding runs to completion, never nested).

const emptyBytes = new Uint8Array(0);
let source: Uint8Array = emptyBytes;
let cursor = 0;
/** Where the body being decoded ends in `source`. */
let limit = 0;
const propertyReader = new ByteReader();

function readUint(): number {
  let value = 0;
  let scale = 1;
  for (let shift = 0; shift < 8; shift++) {
    if (cursor >= limit) throw new Error('binary record field beyond the body');
    const byte = source[cursor++]!;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) {
      if (!Number.isSafeInteger(value)) throw new Error('binary record number beyond the safe integers');
      return value;
    }
    scale *= 0x80;
  }
  throw new Error('binary record number longer than 8 bytes');
}

/**
 * Strings of up to this many ASCII bytes are built char by char; V8 keeps a concatenation this
 * short flat, and longer ones as a chain of cons strings. A recovered client id or filter lives
 * as long as its session, so a longer one is made flat at once (String.fromCharCode over the
 * bytes), as JSON.parse made it.
 */
const asciiConcatenatedBytesMax = 12;
/** Longer ASCII strings than this, and any other, go through the shared UTF-8 reader. */
const asciiCharCodesBytesMax = 1024;

function readString(): string {
  const length = readUint();
  if (cursor + length > limit) throw new Error('binary record string beyond the body');
  const start = cursor;
  cursor += length;
  if (length <= asciiCharCodesBytesMax && isPlainAscii(start, cursor)) {
    if (length <= asciiConcatenatedBytesMax) {
      let text = '';
      for (let index = start; index < cursor; index++) text += String.fromCharCode(source[index]!);
      return text;
    }
    return String.fromCharCode.apply(null, source.subarray(start, cursor) as unknown as number[]);
  }
  try {
    return decodeUtf8(source, start, cursor);
  } catch {
    throw new Error('binary record string is not well-formed UTF-8');
  }
}

/** Whether `source[start, end)` is ASCII without NUL (which the UTF-8 reader refuses). */
function isPlainAscii(start: number, end: number): boolean {
  for (let index = start; index < end; index++) {
    const byte = source[index]!;
    if (byte === 0 || byte >= 0x80) return false;
  }
  return true;
}

function readByte(): number {
  if (cursor >= limit) throw new Error('binary record field beyond the body');
  return source[cursor++]!;
}

function readFlags(known: number): number {
  const flags = readByte();
  if ((flags & ~known) !== 0) throw new Error(`binary record flags 0x${flags.toString(16)} unknown`);
  return flags;
}

/**
 * Decodes a body of binary record type `type` (`binaryRecordKind(type)` is its kind); throws a
 * readable Error when it does not hold a valid record of that kind.
 */
export function decodeBinaryRecord(type: number, body: Uint8Array): StateRecord {
  return decodeBinaryRecordAt(type, body, 0, body.length);
}

/** `decodeBinaryRecord` of the body `bytes[start, end)`, without a view of it. */
export function decodeBinaryRecordAt(type: number, bytes: Uint8Array, start: number, end: number): StateRecord {
  const kind = kindsByBinaryType[type];
  if (kind === undefined) throw new Error(`unknown binary record type ${type}`);
  assert(start >= 0 && start <= end && end <= bytes.length, 'a record body lies within its bytes');
  source = bytes;
  cursor = start;
  limit = end;
  try {
    const record = decodeBody(kind);
    if (cursor !== end) throw new Error(`${kind} record with ${end - cursor} bytes past its fields`);
    return record;
  } finally {
    source = emptyBytes;
  }
}

function decodeBody(kind: StateRecordKind): StateRecord {
  switch (kind) {
    case 'session-created':
    case 'session-resumed':
      return readSession(kind);
    case 'session-disconnected':
      return { kind, clientId: readString(), atMs: readUint(), expiryIntervalSeconds: readUint() };
    case 'session-counters':
      return { kind, clientId: readString(), nextPacketId: readUint(), nextDeliverySequence: readUint() };
    case 'subscription-added':
      return { kind, clientId: readString(), subscription: readSubscription() };
    case 'subscription-removed':
      return { kind, clientId: readString(), filter: readString() };
    case 'message-stored':
      return { kind, message: readMessage() };
    case 'delivery-queued':
      return readDeliveryQueued();
    case 'delivery-sent':
      return { kind, clientId: readString(), sequence: readUint(), packetId: readUint() };
    case 'delivery-dropped':
      return { kind, clientId: readString(), sequence: readUint(), reason: readString() };
    case 'delivery-released':
    case 'delivery-completed':
    case 'incoming-qos2-recorded':
    case 'incoming-qos2-released':
      return { kind, clientId: readString(), packetId: readUint() };
    case 'session-deleted':
    case 'will-cleared':
      return { kind, clientId: readString() };
    case 'message-discarded':
      return { kind, messageId: readUint() };
    case 'message-counter':
      return { kind, nextMessageId: readUint() };
    case 'retained-set':
      return { kind, topic: readString(), messageId: readUint() };
    case 'retained-cleared':
      return { kind, topic: readString() };
    default:
      throw new Error(`record ${kind} has no binary form`);
  }
}

function readSession(kind: 'session-created' | 'session-resumed'): StateRecord {
  const flags = readFlags(usernameMask | claimRevisionFlag);
  const usernameState = flags & usernameMask;
  if (usernameState > usernamePresent) throw new Error('binary session record with an unknown user name state');
  // Values are read as they were written, as the JSON form reads them: which values a record
  // may hold is record-check.ts's rule, applied to both forms alike.
  const protocolVersion = readUint();
  const expiryIntervalSeconds = readUint();
  const clientId = readString();
  const record: Kind<'session-created' | 'session-resumed'> = { kind, clientId, protocolVersion: protocolVersion as ProtocolVersion, expiryIntervalSeconds };
  if (usernameState === usernameNull) record.username = null;
  else if (usernameState === usernamePresent) record.username = readString();
  if ((flags & claimRevisionFlag) !== 0) record.claimRevision = readUint();
  return record;
}

function readQos(): Qos {
  return readUint() as Qos;
}

function readSubscription(): SubscriptionState {
  const filter = readString();
  const qos = readQos();
  const flags = readFlags(noLocalFlag | retainAsPublishedFlag);
  const retainHandling = readUint();
  const subscriptionId = readUint();
  return { filter, qos, noLocal: (flags & noLocalFlag) !== 0, retainAsPublished: (flags & retainAsPublishedFlag) !== 0, retainHandling: retainHandling as 0 | 1 | 2, subscriptionId };
}

function readMessage(): StoredMessageFields {
  const messageId = readUint();
  const topic = readString();
  const qos = readQos();
  const flags = readFlags(retainFlag | hasPropertiesFlag | hasExpiryFlag);
  const createdAtMs = readUint();
  const expiryAtMs = (flags & hasExpiryFlag) !== 0 ? readUint() : null;
  const properties = (flags & hasPropertiesFlag) !== 0 ? readStoredProperties() : undefined;
  const payload = ownCopy(source, cursor, limit);
  cursor = limit;
  const message = { messageId, topic, payload, qos, retain: (flags & retainFlag) !== 0, createdAtMs, expiryAtMs } as StoredMessageFields & { properties?: Properties };
  // The JSON form has no key for absent properties; neither has this one.
  if (properties !== undefined) message.properties = properties;
  return message;
}

function readStoredProperties(): Properties {
  propertyReader.reset(source, cursor, limit);
  let properties: Properties | undefined;
  try {
    properties = readProperties(propertyReader, PacketType.Publish);
  } catch (error) {
    throw new Error(`binary message properties: ${(error as Error).message}`);
  }
  cursor = propertyReader.offset;
  propertyReader.reset(emptyBytes, 0, 0);
  // Written only when present; an empty set (no property written) reads back empty.
  return properties ?? {};
}

function readDeliveryQueued(): StateRecord {
  const clientId = readString();
  const sequence = readUint();
  const messageId = readUint();
  const qos = readQos();
  const retain = (readFlags(retainFlag) & retainFlag) !== 0;
  const packetId = readUint();
  const phase = phases[readByte()];
  if (phase === undefined) throw new Error('binary delivery with an unknown phase');
  const count = readUint();
  if (count > limit - cursor) throw new Error('binary delivery subscription ids beyond the body');
  const subscriptionIds: number[] = [];
  for (let index = 0; index < count; index++) subscriptionIds.push(readUint());
  return { kind: 'delivery-queued', clientId, sequence, messageId, qos, retain, subscriptionIds, packetId, phase };
}
