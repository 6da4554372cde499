/**
 * One stream entry: what a stream keeps of a message, and its compact binary form in a segment.
 *
 * A segment file is a run of ordinary record frames (record-frame.ts: CRC-32C, length, sequence
 * number, type), with the entry's offset plus one as the frame's sequence number (frames number
 * from 1, offsets from 0) and `entryFrameType` as its type. The body is binary, because replay reads it back once per reader, and the
 * log's `stream-appended` record ends with the same bytes (store/stream-appended-codec.ts), so an appended entry's frame is written
 * from the record's encoding without encoding the entry again:
 *
 *   f64 timeMs | u8 qos | u16 topic length, topic (UTF-8) | variable integer properties length,
 *   MQTT 5.0 PUBLISH properties (the codec's own reader and writer) | payload (the rest)
 *
 * The properties are those forwarded to receivers (message.ts `forwardedProperties`): payload
 * format, content type, response topic, correlation data, user properties. A replay's decoding
 * leaves the payload in the read buffer (`ReadEntry`); see there for how long that buffer is kept.
 */
import { ByteReader } from '../../codec/byte-reader.js';
import { stringLength, variableIntegerLength, writeString, writeVariableInteger } from '../../codec/byte-writer.js';
import { PacketType, type Properties, type Qos } from '../../codec/packets.js';
import { propertiesContentLength, readProperties, writeProperties } from '../../codec/properties.js';
import { decodeUtf8 } from '../../codec/utf8.js';
import { frameHeaderBytes, sealFrame, writeFrame } from '../record-frame.js';

/** The frame type of a stream entry (the only type a segment holds). */
export const entryFrameType = 1;

export interface StreamEntry {
  readonly offset: number;
  /** When it was appended, in Unix milliseconds (core time plus the host's wall-clock offset). */
  readonly timeMs: number;
  readonly topic: string;
  readonly qos: Qos;
  readonly properties: Properties | undefined;
  readonly payload: Uint8Array;
}

/** Bytes of the entry's body (without the frame header). */
export function entryBodyBytes(entry: StreamEntry): number {
  return entryBodyBytesOf(entry.topic, entry.properties, payloadLength(entry));
}

/** Bytes of the body of an entry with these fields (without the frame header). */
export function entryBodyBytesOf(topic: string, properties: Properties | undefined, payloadBytes: number): number {
  const propertiesBytes = propertiesContentLength(properties, PacketType.Publish);
  return 8 + 1 + stringLength(topic) + variableIntegerLength(propertiesBytes) + propertiesBytes + payloadBytes;
}

/** Bytes of the entry's whole frame in a segment. */
export function entryFrameBytes(entry: StreamEntry): number {
  return frameHeaderBytes + entryBodyBytes(entry);
}

/** Scratch for writing an entry's time without a DataView per entry. */
const writeTimeView = new DataView(new ArrayBuffer(8));

/**
 * Writes an entry's body into `target` at `at` (room for `entryBodyBytesOf` bytes there); returns
 * the offset after it. The log's `stream-appended` record carries the same bytes
 * (store/stream-appended-codec.ts).
 */
export function writeEntryBody(target: Uint8Array, at: number, timeMs: number, qos: Qos, topic: string, properties: Properties | undefined, payload: Uint8Array): number {
  writeTimeView.setFloat64(0, timeMs, true);
  for (let index = 0; index < 8; index++) target[at + index] = writeTimeView.getUint8(index);
  target[at + 8] = qos;
  let position = writeString(target, at + 9, topic);
  if (properties === undefined) {
    target[position] = 0;
    position += 1;
  } else {
    position = writeVariableInteger(target, position, propertiesContentLength(properties, PacketType.Publish));
    position = writeProperties(target, position, properties);
  }
  target.set(payload, position);
  return position + payload.length;
}

/**
 * Writes the entry's frame into `target` at `offset`; returns the offset after it. `body`, when
 * given, is the entry's body already encoded (the stream-appended record's bytes): it is copied,
 * not encoded again.
 */
export function writeEntryFrame(target: Uint8Array, offset: number, entry: StreamEntry, body: Uint8Array | null = null): number {
  if (body !== null) return writeFrame(target, offset, entry.offset + 1, entryFrameType, body);
  const bodyStart = offset + frameHeaderBytes;
  const bodyEnd = writeEntryBody(target, bodyStart, entry.timeMs, entry.qos, entry.topic, entry.properties, entry.payload);
  return sealFrame(target, offset, entry.offset + 1, entryFrameType, bodyEnd - bodyStart);
}

const reader = new ByteReader();
/** Scratch for reading an entry's time without a DataView per entry (a replay decodes hundreds of thousands a second). */
const timeView = new DataView(new ArrayBuffer(8));

function readTimeMs(bytes: Uint8Array, start: number): number {
  for (let index = 0; index < 8; index++) timeView.setUint8(index, bytes[start + index]!);
  return timeView.getFloat64(0, true);
}

/**
 * An entry decoded from a storage read: its payload stays where the read put it (`source`, from
 * `payloadStart` to `payloadEnd`) instead of being copied into a buffer of its own. A replay
 * decodes hundreds of thousands of entries a second and sends each once; a copy and a typed array
 * per entry were most of its garbage. So it pins its read (at most `streamReadAheadBytesMax`)
 * while a cursor holds it; anything that keeps an entry longer keeps a copy instead (a QoS 1
 * delivery waiting for its PUBACK: its payload in the session's inflight table, broker/streams/
 * inflight-table.ts, which also rebuilds the entries a group gives back), so no read outlives its cursor.
 * `payload` (a view made on demand) is for the uncommon paths; the hot ones use `payloadLength`
 * and `copyPayload`. An entry appended live is a `ReadEntry` too, over its `stream-appended`
 * record's bytes (stream-log.ts `append`), which it keeps until its frame is synced.
 */
export class ReadEntry implements StreamEntry {
  constructor(
    readonly offset: number,
    readonly timeMs: number,
    readonly topic: string,
    readonly qos: Qos,
    readonly properties: Properties | undefined,
    readonly source: Uint8Array,
    readonly payloadStart: number,
    readonly payloadEnd: number,
  ) {}

  get payload(): Uint8Array {
    return this.source.subarray(this.payloadStart, this.payloadEnd);
  }
}

/** Bytes of an entry's payload, without making a view of it. */
export function payloadLength(entry: StreamEntry): number {
  return entry instanceof ReadEntry ? entry.payloadEnd - entry.payloadStart : entry.payload.length;
}

/** Payloads up to this size are copied byte by byte: cheaper than making a view to `set` from. */
const smallPayloadBytesMax = 128;

/** Copies an entry's payload into `target` at `at`; returns the offset after it. */
export function copyPayload(entry: StreamEntry, target: Uint8Array, at: number): number {
  if (!(entry instanceof ReadEntry)) {
    target.set(entry.payload, at);
    return at + entry.payload.length;
  }
  const { source, payloadStart, payloadEnd } = entry;
  const length = payloadEnd - payloadStart;
  if (length > smallPayloadBytesMax) target.set(source.subarray(payloadStart, payloadEnd), at);
  else for (let index = 0; index < length; index++) target[at + index] = source[payloadStart + index]!;
  return at + length;
}

/** The entry with a payload of its own (a read's entry is copied; any other is returned as it is). */
export function detachEntry(entry: StreamEntry): StreamEntry {
  if (!(entry instanceof ReadEntry)) return entry;
  return { offset: entry.offset, timeMs: entry.timeMs, topic: entry.topic, qos: entry.qos, properties: entry.properties, payload: entry.source.slice(entry.payloadStart, entry.payloadEnd) };
}

/**
 * The entry a frame's body holds; throws a readable Error when the body is not an entry (the
 * checksum matched, so that is a body this version cannot read, reported like damage).
 */
export function decodeEntry(offset: number, body: Uint8Array): StreamEntry {
  const entry = decodeEntryAt(offset, body, 0, body.length);
  return detachEntry(entry);
}

/**
 * The entry whose frame body is `bytes[start, end)`, as a `ReadEntry` over `bytes` (no copy);
 * throws a readable Error when the body is not an entry.
 */
export function decodeEntryAt(offset: number, bytes: Uint8Array, start: number, end: number): ReadEntry {
  if (end - start < 12) throw new Error('stream entry body too short');
  const timeMs = readTimeMs(bytes, start);
  const qos = bytes[start + 8]!;
  if (!Number.isSafeInteger(timeMs) || qos > 2) throw new Error('stream entry header out of range');
  reader.reset(bytes, start + 9, end);
  try {
    // Consecutive entries mostly share a topic: the reader's topic cache gives its string again.
    const topic = reader.readTopic();
    // Most entries have no properties: one zero byte, read here without the codec's reader.
    let properties: Properties | undefined;
    if (reader.offset < end && bytes[reader.offset] === 0) reader.offset += 1;
    else properties = readProperties(reader, PacketType.Publish);
    return new ReadEntry(offset, timeMs, topic, qos as Qos, properties, bytes, reader.offset, end);
  } catch (error) {
    throw new Error(`stream entry body cannot be decoded: ${(error as Error).message}`);
  } finally {
    reader.reset(emptyBytes, 0, 0);
  }
}

const emptyBytes = new Uint8Array(0);

/** Only the topic of an entry's body (what last-value compaction needs), or null when it cannot be read. */
export function entryTopic(body: Uint8Array): string | null {
  if (body.length < 11) return null;
  const length = (body[9]! << 8) | body[10]!;
  if (11 + length > body.length) return null;
  try {
    return decodeUtf8(body, 11, 11 + length);
  } catch {
    return null;
  }
}
