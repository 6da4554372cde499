/**
 * Batches of durable hand-offs: several QoS 1 or 2 messages of one node in one JetStream message.
 *
 * Why. A durable hand-off costs JetStream one stored message and one publish acknowledgement,
 * and every node's consumer one delivery and one acknowledgement; that per-message cost, not
 * Keel's own code, bounded QoS 1 and 2 across nodes (README "Cluster"). Consecutive hand-offs of
 * one node queued while its previous stream message waits for JetStream go as one stream message
 * instead, in issue order, so those costs are paid once per batch.
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
 * input; the outbound QoS 2 copies of all of them wait for that one applied record, so a crash
 * before it replays the batch and routes none of them twice). Its membership is fixed when it is
 * formed and never changes: a resend goes out byte for byte the same, under the same id, so
 * JetStream's dedupe keeps it once. A batch holds hand-offs of one kind: unlogged QoS 1 ones, or
 * logged ones (QoS 2, wills); a hand-over marker always goes alone, as does a lone hand-off, on its
 * own subject.
 *
 * Logged hand-offs in batches. A logged hand-off is in the node's outbox and is sent again after a
 * crash; the stream may already hold it, inside a batch, under that batch's dedupe id. Were the
 * recovered members grouped afresh, the new batch would have a new id and be stored a second time,
 * and every node would route its QoS 2 messages twice. So a batch of logged hand-offs is named in
 * the log before it is first published: a membership record (an outbox entry on `$KEEL.unit`, whose
 * `Keel-Members` header lists the members' outbox ids in order) written when the batch is formed,
 * and the batch goes out only once that record is durable. Its dedupe id is made of the node id
 * and the record's outbox id, which never repeats (outbox ids are claimed durably). After a crash:
 * - no durable record: the batch was never published; but a member may have been published alone
 *   before (a lone hand-off needs no record: its dedupe id is its own outbox id), so each goes
 *   alone again, under its own id, as do all logged hand-offs queued at start that no record names;
 * - a record whose members are all still in the outbox: the batch goes again, rebuilt from the
 *   same members in the same order, with the same headers and payloads as the log holds them, so
 *   it is byte for byte the same message under the same id (cluster-node.ts restoreUnit);
 * - a record with a member gone: a member's outbox entry is dropped only after the stream took its
 *   batch, and all members are dropped before the record, so the batch was stored; what is left of
 *   it is dropped (a log replays a prefix of what was written, never a hole).
 * The publisher's PUBREC still waits for the JetStream acknowledgement of its batch. The cost is
 * one more record, and one more sync before the batch goes, per batch of logged hand-offs; a lone
 * one goes as before, under its own outbox dedupe id. The format is the one QoS 1 batches have:
 * a node that reads batches applies logged members as it applies QoS 1 ones (above), so no
 * `Keel-Needs` is asked of a reader (stream-format.ts).
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
/** The outbox subject of a batch's membership record (cluster-node.ts recovers it instead of publishing it). */
export const unitOutboxSubject = '$KEEL.unit';
/** The header of a membership record listing its members' outbox ids, in order, comma-separated. */
const headerMembers = 'Keel-Members';
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

/** The headers of a membership record naming the batch of `memberIds` (outbox ids, in order). */
export function unitHeaders(memberIds: readonly number[]): Record<string, string> {
  assert(memberIds.length > 1 && memberIds.length <= handoffBatchMessagesMax, 'a membership record names a batch');
  assert(
    memberIds.every((id, index) => Number.isSafeInteger(id) && id > 0 && (index === 0 || id > memberIds[index - 1]!)),
    'the members of a batch are outbox ids in issue order',
  );
  return { [headerMembers]: memberIds.join(',') };
}

/** The members a membership record names, in order, or null when its headers do not name a batch. */
export function unitMembersOfHeaders(headers: Readonly<Record<string, string>>): number[] | null {
  const list = headers[headerMembers];
  if (list === undefined) return null;
  const ids = list.split(',').map(Number);
  if (ids.length < 2 || ids.length > handoffBatchMessagesMax) return null;
  return ids.every((id, index) => Number.isSafeInteger(id) && id > 0 && (index === 0 || id > ids[index - 1]!)) ? ids : null;
}
