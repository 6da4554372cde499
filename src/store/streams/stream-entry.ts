/**
 * One stream entry: what a stream keeps of a message, and its compact binary form in a segment.
 *
 * A segment file is a run of ordinary record frames (record-frame.ts: CRC-32C, length, sequence
 * number, type), with the entry's offset plus one as the frame's sequence number (frames number
 * from 1, offsets from 0) and `entryFrameType` as its type. The body is binary, not the log's JSON, because replay reads it back once per reader:
 *
 *   f64 timeMs | u8 qos | u16 topic length, topic (UTF-8) | variable integer properties length,
 *   MQTT 5.0 PUBLISH properties (the codec's own reader and writer) | payload (the rest)
 *
 * The properties are those forwarded to receivers (message.ts `forwardedProperties`): payload
 * format, content type, response topic, correlation data, user properties. Decoding copies the
 * payload out of the read buffer, so an entry held by a reader does not pin a whole read.
 */
import { assert } from '../../assert.js';
import { ByteReader } from '../../codec/byte-reader.js';
import { stringLength, variableIntegerLength, writeString, writeVariableInteger } from '../../codec/byte-writer.js';
import { PacketType, type Properties, type Qos } from '../../codec/packets.js';
import { propertiesContentLength, readProperties, writeProperties } from '../../codec/properties.js';
import { decodeUtf8 } from '../../codec/utf8.js';
import { frameHeaderBytes, writeFrame } from '../record-frame.js';

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
  const propertiesBytes = propertiesContentLength(entry.properties, PacketType.Publish);
  return 8 + 1 + stringLength(entry.topic) + variableIntegerLength(propertiesBytes) + propertiesBytes + entry.payload.length;
}

/** Bytes of the entry's whole frame in a segment. */
export function entryFrameBytes(entry: StreamEntry): number {
  return frameHeaderBytes + entryBodyBytes(entry);
}

/** Writes the entry's frame into `target` at `offset`; returns the offset after it. */
export function writeEntryFrame(target: Uint8Array, offset: number, entry: StreamEntry): number {
  const body = new Uint8Array(entryBodyBytes(entry));
  const view = new DataView(body.buffer);
  view.setFloat64(0, entry.timeMs, true);
  body[8] = entry.qos;
  let position = writeString(body, 9, entry.topic);
  position = writeVariableInteger(body, position, propertiesContentLength(entry.properties, PacketType.Publish));
  position = writeProperties(body, position, entry.properties);
  body.set(entry.payload, position);
  assert(position + entry.payload.length === body.length, 'entry body size computed exactly');
  return writeFrame(target, offset, entry.offset + 1, entryFrameType, body);
}

const reader = new ByteReader();
/** Scratch for reading an entry's time without a DataView per entry (a replay decodes hundreds of thousands a second). */
const timeView = new DataView(new ArrayBuffer(8));

function readTimeMs(body: Uint8Array): number {
  for (let index = 0; index < 8; index++) timeView.setUint8(index, body[index]!);
  return timeView.getFloat64(0, true);
}

/**
 * The entry a frame's body holds; throws a readable Error when the body is not an entry (the
 * checksum matched, so that is a body this version cannot read, reported like damage).
 */
export function decodeEntry(offset: number, body: Uint8Array): StreamEntry {
  if (body.length < 12) throw new Error('stream entry body too short');
  const timeMs = readTimeMs(body);
  const qos = body[8]!;
  if (!Number.isSafeInteger(timeMs) || qos > 2) throw new Error('stream entry header out of range');
  reader.reset(body, 9, body.length);
  try {
    // Consecutive entries mostly share a topic: the reader's topic cache gives its string again.
    const topic = reader.readTopic();
    const properties = readProperties(reader, PacketType.Publish);
    const payload = body.slice(reader.offset);
    return { offset, timeMs, topic, qos: qos as Qos, properties, payload };
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
