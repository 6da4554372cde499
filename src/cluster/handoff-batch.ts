/**
 * Batches of durable hand-offs: several QoS 1 messages of one node in one JetStream message.
 *
 * Why. A durable hand-off costs JetStream one stored message and one publish acknowledgement,
 * and every node's consumer one delivery and one acknowledgement; that per-message cost, not
 * Keel's own code, bounded QoS 1 across nodes (README "Cluster"). What one core input hands off
 * (consecutive QoS 1 hand-offs of one node, in issue order) goes as one stream message instead,
 * so those costs are paid once per batch.
 *
 * Format. The stream message's subject is `$KEEL.handoff.$batch` (a `$` level, which no MQTT topic
 * maps to, so no hand-off of a topic can collide with it); its headers are `Keel-Origin` (the
 * publishing node) and `Keel-Batch` (how many messages it carries). Its payload holds the
 * messages in order, each exactly as it would have gone alone: its subject, its headers (the
 * `Keel-Seq` ticket included) and its payload. All integers are unsigned 32-bit big-endian:
 *
 *   version (1 byte, = 1), count
 *   count × { subject length, subject (UTF-8), header count,
 *             header count × { name length, name (UTF-8), value length, value (UTF-8) },
 *             payload length, payload }
 *
 * What the batch changes and what it does not. A batch is stored once or not at all, under one
 * dedupe id; it holds one stream sequence, so a receiving node applies it, records it applied and
 * acknowledges it as one (its routings are those of its messages, one after the other, in one
 * input). Its membership is fixed when it is first issued and never changes (a resend goes out
 * byte for byte the same, under the same id), so JetStream's dedupe keeps it once. Only QoS 1
 * hand-offs that are not logged join batches: their dedupe ids live for one start of the node
 * only, as the batch's membership does (it is in memory). QoS 2 hand-offs, wills and hand-over
 * markers stay one per stream message: they are resent after a crash from the outbox, one by
 * one, and a resend grouped differently from what the stream already holds would store them
 * twice. A lone QoS 1 hand-off goes as before, on its own subject.
 *
 * Bounds: at most handoffBatchMessagesMax messages and handoffBatchBytesMax encoded bytes, well
 * under NATS's default max payload (1 MiB) with room for the headers; a message larger than the
 * byte bound goes alone. A delivery now stands for up to that many messages: what a paused
 * consumer's host holds (its unacknowledged deliveries, nats-link.ts) and what one input adds to
 * the streams' backlog past its bound (throttle.ts) grow by that factor at most, which is why the
 * bounds are modest: a full batch of 128 already divides JetStream's per-message work by 128.
 */
import { assert } from '../assert.js';
import { decodeUtf8, utf8Length, writeUtf8 } from '../codec/utf8.js';
import type { ClusterHeaders } from '../contract.js';
import { handoffPrefix } from './subjects.js';

/** The subject of a batch in the hand-off stream. */
export const handoffBatchSubject = `${handoffPrefix}$batch`;
/** How many messages a batch carries, on the batch's own stream message. */
export const headerBatch = 'Keel-Batch';
/** At most this many MQTT messages per batch. */
export const handoffBatchMessagesMax = 128;
/** At most this many encoded bytes per batch (NATS's default max payload is 1 MiB). */
export const handoffBatchBytesMax = 256 * 1024;
/** The version byte of the batches this node writes (a later format also says so in `Keel-Needs`: stream-format.ts). */
const batchFormatVersion = 1;
const headerBytes = 5;

/** One MQTT message of a batch, as it would travel alone. */
export interface BatchEntry {
  readonly subject: string;
  readonly headers: ClusterHeaders;
  readonly payload: Uint8Array;
}

/** The bytes one message takes in a batch. */
export function batchEntryBytes(entry: BatchEntry): number {
  let bytes = 4 + utf8Length(entry.subject) + 4 + 4 + entry.payload.length;
  for (const name of Object.keys(entry.headers)) bytes += 8 + utf8Length(name) + utf8Length(entry.headers[name]!);
  return bytes;
}

/** The payload of a batch; `entriesBytes` is the sum of batchEntryBytes over `entries`. */
export function encodeBatch(entries: readonly BatchEntry[], entriesBytes: number): Uint8Array {
  assert(entries.length > 1, 'a batch carries more than one message');
  assert(entries.length <= handoffBatchMessagesMax, 'a batch carries at most handoffBatchMessagesMax messages');
  const bytes = new Uint8Array(headerBytes + entriesBytes);
  const view = new DataView(bytes.buffer);
  bytes[0] = batchFormatVersion;
  view.setUint32(1, entries.length);
  let offset = headerBytes;
  const text = (value: string): void => {
    const written = writeUtf8(value, bytes, offset + 4);
    view.setUint32(offset, written);
    offset += 4 + written;
  };
  for (const entry of entries) {
    text(entry.subject);
    const names = Object.keys(entry.headers);
    view.setUint32(offset, names.length);
    offset += 4;
    for (const name of names) {
      text(name);
      text(entry.headers[name]!);
    }
    view.setUint32(offset, entry.payload.length);
    bytes.set(entry.payload, offset + 4);
    offset += 4 + entry.payload.length;
  }
  assert(offset === bytes.length, 'a batch is encoded into exactly the bytes measured for it');
  return bytes;
}

/** The messages of a batch, in order, or null when the payload is not a batch this version reads. */
export function decodeBatch(payload: Uint8Array): BatchEntry[] | null {
  if (payload.length < headerBytes || payload[0] !== batchFormatVersion) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const count = view.getUint32(1);
  if (count < 2 || count > handoffBatchMessagesMax) return null;
  let offset = headerBytes;
  const length = (): number => {
    if (offset + 4 > payload.length) throw new RangeError('batch truncated');
    const value = view.getUint32(offset);
    offset += 4;
    if (offset + value > payload.length) throw new RangeError('batch truncated');
    return value;
  };
  const text = (): string => {
    const bytes = length();
    offset += bytes;
    return decodeUtf8(payload, offset - bytes, offset);
  };
  try {
    const entries: BatchEntry[] = [];
    for (let index = 0; index < count; index++) {
      const subject = text();
      if (offset + 4 > payload.length) return null;
      const headerCount = view.getUint32(offset);
      offset += 4;
      const headers: Record<string, string> = {};
      for (let header = 0; header < headerCount; header++) {
        const name = text();
        headers[name] = text();
      }
      const payloadBytes = length();
      // A view, not a copy: an entry lives for the input that routes it, and routing copies what
      // it keeps (a hand-over that holds a delivery back keeps a copy of the whole batch).
      entries.push({ subject, headers, payload: payload.subarray(offset, offset + payloadBytes) });
      offset += payloadBytes;
    }
    return offset === payload.length ? entries : null;
  } catch {
    // A truncated length or ill-formed UTF-8: not a batch.
    return null;
  }
}
