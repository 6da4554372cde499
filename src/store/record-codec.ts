/**
 * Turns a StateRecord into the (type, body) pair the log frames, and back.
 *
 * The body is the record as JSON with every binary field (payloads, correlation data,
 * authentication data) lifted out and appended raw after the JSON, so payloads are neither
 * base64-inflated nor escaped:
 *
 *   u32 jsonBytes | JSON | for each binary field in order: u32 length | bytes
 *
 * In the JSON a binary field reads `{"$binary": index}`. The record type byte is the kind's
 * entry in `recordTypes`, an on-disk identifier: entries may be added, never renumbered.
 * Decoding copies every binary field out of the read buffer, so a recovered message does not pin
 * the multi-megabyte buffer its segment was read into.
 *
 * The kinds that fill a log have binary bodies of their own instead, each under a record type of
 * its own: `stream-appended`, written for every message a stream appends, as record type
 * `streamAppendedBinaryType` (stream-appended-codec.ts), and the sessions, subscriptions, stored
 * messages and deliveries as `binaryRecordTypes` (state-record-binary.ts), in the log and
 * snapshots (`encodeLogRecord`). Their JSON forms, under the types of `recordTypes`, are what
 * earlier versions wrote, and are still decoded; a record whose values the binary form cannot hold
 * exactly is still written in its JSON form, and so is every record sent to another node
 * (`encodeStateRecord`), which may run an earlier version.
 *
 * Fields are added to a kind as optional JSON keys, so that older records still decode: the
 * owner's `username` of session-created / session-resumed / will-set is such a field (absent
 * means unknown; null means anonymous, which is why it is null and not omitted).
 */
import { assert } from '../assert.js';
import { allocateBytes } from '../codec/byte-pool.js';
import { ownCopy } from '../codec/own-copy.js';
import { utf8Length, writeUtf8 } from '../codec/utf8.js';
import { binaryRecordBytes, binaryRecordKind, binaryRecordTypes, decodeBinaryRecord, decodeBinaryRecordAt, encodeBinaryRecord, writeBinaryRecord } from './state-record-binary.js';
import type { StateRecord, StateRecordKind } from './state-store.js';
import { decodeStreamAppended, encodeStreamAppended, streamAppendedBinaryType } from './stream-appended-codec.js';

export const recordTypes: Readonly<Record<StateRecordKind, number>> = {
  'session-created': 1,
  'session-resumed': 2,
  'session-disconnected': 3,
  'session-deleted': 4,
  'session-counters': 5,
  'subscription-added': 6,
  'subscription-removed': 7,
  'message-stored': 8,
  'message-counter': 9,
  'retained-set': 10,
  'retained-cleared': 11,
  'delivery-queued': 12,
  'delivery-sent': 13,
  'delivery-released': 14,
  'delivery-completed': 15,
  'delivery-dropped': 16,
  'incoming-qos2-recorded': 17,
  'incoming-qos2-released': 18,
  'will-set': 19,
  'will-cleared': 20,
  'message-discarded': 21,
  'stream-created': 22,
  'stream-deleted': 23,
  'stream-appended': 24,
  'stream-trimmed': 25,
  'stream-position': 26,
  'stream-group-position': 27,
  'cluster-applied': 28,
  'cluster-outbox-added': 29,
  'cluster-outbox-done': 30,
  'stream-cut': 31,
};

const kindsByType: StateRecordKind[] = [];
for (const [kind, type] of Object.entries(recordTypes) as [StateRecordKind, number][]) {
  assert(kindsByType[type] === undefined, `record type ${type} assigned twice`);
  kindsByType[type] = kind;
}
assert(kindsByType[streamAppendedBinaryType] === undefined, 'the binary stream-appended type is a type of its own');
kindsByType[streamAppendedBinaryType] = 'stream-appended';
for (const [kind, type] of Object.entries(binaryRecordTypes) as [StateRecordKind, number][]) {
  assert(kindsByType[type] === undefined, `binary record type ${type} is a type of its own`);
  kindsByType[type] = kind;
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });

/**
 * `value` with every Uint8Array (a Node Buffer included) replaced by `{ $binary: index }`, the
 * binaries pushed to `binaries` in the order JSON.stringify meets them (keys in property order,
 * depth first). Objects and arrays holding no binary are returned as they are, not copied.
 */
function liftBinaries(value: unknown, binaries: Uint8Array[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) {
    binaries.push(value);
    return { $binary: binaries.length - 1 };
  }
  if (Array.isArray(value)) {
    let copy: unknown[] | null = null;
    for (let index = 0; index < value.length; index++) {
      const lifted = liftBinaries(value[index], binaries);
      if (lifted !== value[index]) copy ??= value.slice();
      if (copy !== null) copy[index] = lifted;
    }
    return copy ?? value;
  }
  let copy: Record<string, unknown> | null = null;
  const container = value as Record<string, unknown>;
  for (const key in container) {
    if (!Object.hasOwn(container, key)) continue;
    const lifted = liftBinaries(container[key], binaries);
    if (lifted !== container[key]) copy ??= { ...container };
    if (copy !== null) copy[key] = lifted;
  }
  return copy ?? value;
}

/**
 * A record as this node's log and snapshots hold it: the binary body where its kind has one and
 * its values fit (state-record-binary.ts), else the JSON body.
 */
export function encodeLogRecord(record: StateRecord): { type: number; body: Uint8Array } {
  const binary = encodeBinaryRecord(record);
  if (binary !== null) return { type: binaryRecordTypes[record.kind]!, body: binary };
  return encodeStateRecord(record);
}

/**
 * A record as `encodeLogRecord` gives it, its binary body not written yet: a snapshot sizes every
 * record first and writes each body straight into its image (snapshot-writer.ts), where a body of
 * its own, copied into the image, doubled what a snapshot of a large state allocates.
 */
export type PlannedLogRecord =
  /** A body encoded already (the JSON form). */
  | { type: number; bodyBytes: number; body: Uint8Array; record: null }
  /** `record`'s binary body, still to write. */
  | { type: number; bodyBytes: number; body: null; record: StateRecord };

/** `record` planned as `encodeLogRecord` would encode it (same type, same body bytes). */
export function planLogRecord(record: StateRecord): PlannedLogRecord {
  const bytes = binaryRecordBytes(record);
  if (!Number.isNaN(bytes)) return { type: binaryRecordTypes[record.kind]!, bodyBytes: bytes, body: null, record };
  const { type, body } = encodeStateRecord(record);
  return { type, bodyBytes: body.length, body, record: null };
}

/** Writes a planned record's body into `target`, a view of exactly `bodyBytes` bytes. */
export function writePlannedBody(planned: PlannedLogRecord, target: Uint8Array): void {
  assert(target.length === planned.bodyBytes, 'a planned body is written into a view of its size');
  if (planned.record === null) target.set(planned.body);
  else writeBinaryRecord(planned.record, target);
}

/**
 * A record in the forms every version since the binary `stream-appended` reads: that kind binary,
 * every other JSON. What leaves this node for another (the cluster's session hand-over,
 * src/cluster/session-handover.ts) is encoded so, so that a node of an earlier version still
 * reads it during a rolling upgrade; only the node's own files, which are never read by an older
 * build (downgrade is not supported), take the newer binary forms (`encodeLogRecord`).
 */
export function encodeStateRecord(record: StateRecord): { type: number; body: Uint8Array } {
  if (record.kind === 'stream-appended') return { type: streamAppendedBinaryType, body: encodeStreamAppended(record) };
  return { type: recordTypes[record.kind], body: encodeJsonRecord(record) };
}

/**
 * The generic body of a record: its JSON with the binaries lifted out (see the module comment).
 * The kinds without a binary form are written so, and a record the binary form cannot hold; the
 * others only by versions before their binary form (exported for the tests that make such records).
 */
export function encodeJsonRecord(record: StateRecord): Uint8Array {
  const binaries: Uint8Array[] = [];
  // Binaries are lifted out first and the rest stringified without a replacer: a replacer
  // function takes V8 off its fast serializer and, on a log of small publishes, cost a fifth of
  // the broker's time. A Node Buffer must be caught before JSON.stringify meets it, since its
  // `toJSON` would turn it into `{ type: 'Buffer', data: [...] }`.
  const json = JSON.stringify(liftBinaries(record, binaries));
  // Measured, then written straight into the body: encoding the JSON to bytes of its own first
  // cost a second array past V8's on-heap limit per record (byte-pool.ts), and a body is
  // carved from the encoder's slab unless it is small or large. The log writer copies it into
  // its frames; nothing writes to it.
  const jsonBytes = utf8Length(json);
  let size = 4 + jsonBytes;
  for (let index = 0; index < binaries.length; index++) size += 4 + binaries[index]!.length;
  const body = allocateBytes(size);
  writeUint32(body, 0, jsonBytes);
  writeUtf8(json, body, 4);
  let offset = 4 + jsonBytes;
  for (let index = 0; index < binaries.length; index++) {
    const binary = binaries[index]!;
    writeUint32(body, offset, binary.length);
    body.set(binary, offset + 4);
    offset += 4 + binary.length;
  }
  return body;
}

/** `value` as a little-endian u32 at `offset` (no DataView per record). */
function writeUint32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
  bytes[offset + 2] = (value >>> 16) & 0xff;
  bytes[offset + 3] = value >>> 24;
}

/** Decodes a record; throws a readable Error when the body does not hold a valid record. */
export function decodeStateRecord(type: number, body: Uint8Array): StateRecord {
  const kind = kindsByType[type];
  if (kind === undefined) throw new Error(`unknown record type ${type}`);
  if (type === streamAppendedBinaryType) return decodeStreamAppended(body);
  if (binaryRecordKind(type) !== undefined) return decodeBinaryRecord(type, body);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (body.length < 4) throw new Error('record body too short');
  const jsonLength = view.getUint32(0, true);
  if (4 + jsonLength > body.length) throw new Error('record JSON length beyond the body');
  const binaries: Uint8Array[] = [];
  let offset = 4 + jsonLength;
  while (offset < body.length) {
    if (offset + 4 > body.length) throw new Error('truncated binary field length');
    const length = view.getUint32(offset, true);
    if (offset + 4 + length > body.length) throw new Error('binary field beyond the body');
    binaries.push(ownCopy(body, offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  const record = JSON.parse(textDecoder.decode(body.subarray(4, 4 + jsonLength))) as StateRecord;
  // Most records carry no binary field; only those that do are walked (a JSON.parse reviver would
  // call back for every value of every record, half of recovery's time on a large log).
  if (binaries.length > 0) resolveBinaries(record, binaries);
  if (record.kind !== kind) throw new Error(`record of type ${type} says it is "${String(record.kind)}"`);
  if (!hasValidUsername(record)) throw new Error(`record ${kind} has a user name that is neither a string nor null`);
  return record;
}

/**
 * `decodeStateRecord` of the body `bytes[start, end)`: a binary record is read in place, without
 * a view of its body (recovery reads every record of a log so).
 */
export function decodeStateRecordAt(type: number, bytes: Uint8Array, start: number, end: number): StateRecord {
  if (binaryRecordKind(type) !== undefined) return decodeBinaryRecordAt(type, bytes, start, end);
  return decodeStateRecord(type, bytes.subarray(start, end));
}

/**
 * The owner's user name in session-created / session-resumed / will-set: a string, null
 * (anonymous) or absent (unknown: written before the field existed, so absence must stay valid).
 */
function hasValidUsername(record: StateRecord): boolean {
  if (!('username' in record)) return true;
  const username: unknown = record.username;
  return username === null || typeof username === 'string';
}

/** Replaces every `{"$binary": index}` in the parsed record with its binary field, in place. */
function resolveBinaries(value: object, binaries: readonly Uint8Array[]): void {
  const container = value as Record<string, unknown>;
  for (const key of Object.keys(container)) {
    const child = container[key];
    if (child === null || typeof child !== 'object') continue;
    if ('$binary' in child) {
      const binary = binaries[(child as { $binary: number }).$binary];
      if (binary === undefined) throw new Error('reference to a missing binary field');
      container[key] = binary;
    } else {
      resolveBinaries(child, binaries);
    }
  }
}
