/**
 * The binary body of a `stream-appended` record (record type `streamAppendedBinaryType`).
 *
 * Every message published to a stream's topics is one such record in the write-ahead log, so its
 * encoding is on the append path of every stream entry. The generic encoding (record-codec.ts:
 * JSON with the binaries lifted out) made it about 240 bytes for a 64-byte payload and about a
 * quarter of a filling broker's busy time. This form is about 130 bytes and is written without
 * building any intermediate object or string:
 *
 *   u16 entry count (at least 1)
 *   per entry: u8 stream name length, stream name (UTF-8; names are [A-Za-z0-9_-]{1,64}), f64 offset
 *   u8 flags: bit 0 set when the record has a `properties` field (possibly empty)
 *   the entry's body exactly as its segment frame holds it (streams/stream-entry.ts):
 *     f64 timeMs | u8 qos | u16 topic length, topic | variable integer properties length,
 *     MQTT 5.0 PUBLISH properties | payload (the rest of the body)
 *
 * Little-endian numbers, as in the frames. The entry's body is the last part so that the stream
 * log (streams/stream-log.ts) can write it to each stream's segment as it is: the record's bytes
 * and the frame's body are the same bytes, encoded once.
 *
 * Records of type 24 (`recordTypes['stream-appended']`, the generic JSON body) were written by
 * earlier versions and are still read; the type is how a reader tells the two apart.
 */
import { assert } from '../assert.js';
import { ownCopy } from '../codec/own-copy.js';
import { decodeUtf8, utf8Length, writeUtf8 } from '../codec/utf8.js';
import type { StateRecord, StreamEntryRef } from './state-store.js';
import { decodeEntryAt, entryBodyBytesOf, writeEntryBody } from './streams/stream-entry.js';

/** The record type of the binary form (an on-disk identifier, like those of `recordTypes`). */
export const streamAppendedBinaryType = 32;

type StreamAppended = Extract<StateRecord, { kind: 'stream-appended' }>;

const hasPropertiesFlag = 0x01;
const entryCountMax = 0xffff;
const streamNameBytesMax = 0xff;
/** Bytes per entry reference besides its name: the name's length byte and the f64 offset. */
const referenceFixedBytes = 1 + 8;

/** Scratch for writing f64s without a DataView per record. */
const numberView = new DataView(new ArrayBuffer(8));

function writeFloat64(target: Uint8Array, at: number, value: number): number {
  numberView.setFloat64(0, value, true);
  for (let index = 0; index < 8; index++) target[at + index] = numberView.getUint8(index);
  return at + 8;
}

function readFloat64(source: Uint8Array, at: number): number {
  for (let index = 0; index < 8; index++) numberView.setUint8(index, source[at + index]!);
  return numberView.getFloat64(0, true);
}

function streamNameAt(body: Uint8Array, start: number, end: number): string {
  try {
    return decodeUtf8(body, start, end);
  } catch {
    throw new Error('stream-appended stream name is not UTF-8');
  }
}

/** The record's binary body. Its entry body starts at `streamAppendedEntryBodyStart(body)`. */
export function encodeStreamAppended(record: StreamAppended): Uint8Array {
  const entries = record.entries;
  assert(entries.length > 0 && entries.length <= entryCountMax, 'a stream-appended record names 1 to 65535 streams');
  let headerBytes = 2 + 1;
  for (let index = 0; index < entries.length; index++) {
    const nameBytes = utf8Length(entries[index]!.stream);
    assert(nameBytes > 0 && nameBytes <= streamNameBytesMax, 'stream names fit a length byte');
    headerBytes += referenceFixedBytes + nameBytes;
  }
  const body = new Uint8Array(headerBytes + entryBodyBytesOf(record.topic, record.properties, record.payload.length));
  body[0] = entries.length & 0xff;
  body[1] = entries.length >>> 8;
  let at = 2;
  for (let index = 0; index < entries.length; index++) {
    const reference = entries[index]!;
    const nameBytes = writeUtf8(reference.stream, body, at + 1);
    body[at] = nameBytes;
    at = writeFloat64(body, at + 1 + nameBytes, reference.offset);
  }
  body[at] = record.properties === undefined ? 0 : hasPropertiesFlag;
  at += 1;
  assert(at === headerBytes, 'stream-appended header size computed exactly');
  const end = writeEntryBody(body, at, record.timeMs, record.qos, record.topic, record.properties, record.payload);
  assert(end === body.length, 'stream-appended body size computed exactly');
  return body;
}

/**
 * Where the entry's body (the segment frame's body) starts in a binary `stream-appended` body
 * this version wrote; it runs to the end of the body.
 */
export function streamAppendedEntryBodyStart(body: Uint8Array): number {
  const count = body[0]! | (body[1]! << 8);
  let at = 2;
  for (let index = 0; index < count; index++) at += referenceFixedBytes + body[at]!;
  assert(at < body.length, 'a stream-appended body holds its entry');
  return at + 1;
}

/**
 * Decodes a binary `stream-appended` body; throws a readable Error when it is not one (the
 * checksum matched, so that is a body this version cannot read). The payload is copied out of
 * the read buffer, so a recovered record does not pin the segment it was read from.
 */
export function decodeStreamAppended(body: Uint8Array): StreamAppended {
  if (body.length < 3) throw new Error('stream-appended body too short');
  const count = body[0]! | (body[1]! << 8);
  if (count === 0) throw new Error('stream-appended record names no stream');
  const entries: StreamEntryRef[] = [];
  let at = 2;
  for (let index = 0; index < count; index++) {
    if (at + 1 > body.length) throw new Error('stream-appended entry beyond the body');
    const nameBytes = body[at]!;
    if (at + referenceFixedBytes + nameBytes > body.length) throw new Error('stream-appended entry beyond the body');
    entries.push({ stream: streamNameAt(body, at + 1, at + 1 + nameBytes), offset: readFloat64(body, at + 1 + nameBytes) });
    at += referenceFixedBytes + nameBytes;
  }
  if (at >= body.length) throw new Error('stream-appended record without its entry');
  const flags = body[at]!;
  if ((flags & ~hasPropertiesFlag) !== 0) throw new Error(`stream-appended flags 0x${flags.toString(16)} unknown`);
  let entry: ReturnType<typeof decodeEntryAt>;
  try {
    entry = decodeEntryAt(0, body, at + 1, body.length);
  } catch (error) {
    throw new Error(`stream-appended entry: ${(error as Error).message}`);
  }
  if ((flags & hasPropertiesFlag) === 0 && entry.properties !== undefined) throw new Error('stream-appended properties where its flags say none');
  const record: StreamAppended = {
    kind: 'stream-appended',
    timeMs: entry.timeMs,
    topic: entry.topic,
    qos: entry.qos,
    payload: ownCopy(body, entry.payloadStart, entry.payloadEnd),
    entries,
  };
  if ((flags & hasPropertiesFlag) !== 0) record.properties = entry.properties ?? {};
  return record;
}
