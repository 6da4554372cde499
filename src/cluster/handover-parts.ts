/**
 * A hand-over's answer in the `keel-handover` bucket, in as many NATS messages as it takes.
 *
 * A serialized session (session-handover.ts) holds every queued and inflight message of the
 * session, bodies included, so it is bounded only by the session's own limits (its queue bytes
 * and messages, its inflight window), far past what one NATS message carries (`max_payload`,
 * `cluster.messageBytesMax`; message-size.ts). An answer that fits one message is put as it
 * always was, under its answer key. A larger one is cut into parts, each put under a key of its
 * own, and then a head is put under the answer key naming them:
 *
 *   part key `<answer key>.<checksum>-<count>-<index>`, value `u32 0 | u8 2 | u32 checksum |
 *   u32 count | u32 index | u16 recipient bytes | recipient | body`;
 *   head, value `u32 0 | u8 1 | u32 checksum | u32 count | u32 state bytes | recipient`.
 *
 * The checksum (CRC-32C of the whole state) and the count are in every part's key and value, so
 * a part of another answer under the same answer key (a source that decided again after losing
 * its disk, a stream whose sequences started over) is never taken for one of this answer's: its
 * key is another, and a value that does not agree with its key is refused. The source puts the
 * parts one after the other and the head last, each once the one before is in (session-handover.ts
 * issuePut), so a watch, which delivers a bucket's changes in the order NATS took them (live or
 * replayed), brings every part of an answer before its head. The receiver adopts the state only
 * when all the parts the head names are there, agree with it, and the state they make has the
 * head's length and checksum (assemble); otherwise it waits, and gives up at the hand-over's
 * deadline as when no answer comes: all or nothing. Parts go with their head, deleted by the
 * receiver once it adopted the state or dropped it as late.
 *
 * Both values start with four zero bytes: a serialized state starts with the length of its JSON
 * header, never zero, so a node from before parts decodes a head or a part as nothing (its
 * decodeHandoverState fails on the empty header), ignores it, and gives up at its deadline
 * (session present 0, `handover-timed-out`) rather than adopt part of a session. Part keys do not
 * parse as answer keys there either (their last level is not a sequence).
 */
import { assert } from '../assert.js';
import { crc32c } from '../store/crc32c.js';
import { natsReserveBytes } from './message-size.js';

const kindHead = 1;
const kindPart = 2;
/** The fixed fields of a part's value before its recipient: zero, kind, checksum, count, index, recipient length. */
const partFixedBytes = 4 + 1 + 4 + 4 + 4 + 2;
/** The fixed fields of a head before its recipient: zero, kind, checksum, count, state bytes. */
const headFixedBytes = 4 + 1 + 4 + 4 + 4;
/** Parts of one answer at most: with the smallest messageBytesMax (64 KiB), 64 GiB of state. */
export const answerPartsMax = 1 << 20;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** How an answer goes into the bucket: whole (`parts` 0) or in parts of `bodyBytesMax` bytes. */
export interface AnswerLayout {
  readonly recipient: string;
  readonly parts: number;
  readonly bodyBytesMax: number;
  readonly checksum: number;
}

/** A head: the answer is in `count` parts making `stateBytes` bytes with CRC-32C `checksum`. */
export interface PartsHead {
  readonly recipient: string;
  readonly checksum: number;
  readonly count: number;
  readonly stateBytes: number;
}

/** One part as its value has it. */
export interface AnswerPart {
  readonly recipient: string;
  readonly checksum: number;
  readonly count: number;
  readonly index: number;
  readonly body: Uint8Array;
}

/** The most bytes of a bucket value that a link of `messageBytesMax` carries (room left for what NATS adds). */
export function valueBytesMaxOf(messageBytesMax: number): number {
  const bytes = messageBytesMax - natsReserveBytes;
  assert(bytes > 0, 'a cluster message carries a value');
  return bytes;
}

/** How `state` (the serialized answer for `recipient`) goes into the bucket in values of at most `valueBytesMax`. */
export function answerLayout(state: Uint8Array, recipient: string, valueBytesMax: number): AnswerLayout {
  if (state.length <= valueBytesMax) return { recipient, parts: 0, bodyBytesMax: 0, checksum: 0 };
  const bodyBytesMax = valueBytesMax - partFixedBytes - textEncoder.encode(recipient).length;
  assert(bodyBytesMax > 0, "a part's body has room");
  const parts = Math.ceil(state.length / bodyBytesMax);
  assert(parts >= 2, 'an answer in parts has two at least');
  assert(parts <= answerPartsMax, 'an answer has a bounded number of parts');
  return { recipient, parts, bodyBytesMax, checksum: crc32c(state) };
}

/** How many puts the answer takes: its parts and the head, or the state alone. */
export function answerPutCount(layout: AnswerLayout): number {
  return layout.parts + 1;
}

/** The key of part `index` of an answer under `answerKey` (see the module comment). */
export function partKey(answerKey: string, checksum: number, count: number, index: number): string {
  return `${answerKey}.${checksum.toString(16).padStart(8, '0')}-${count}-${index}`;
}

/** The put number `index` of an answer: its parts in order, then its head (or the state itself when whole). */
export function answerPut(answerKey: string, layout: AnswerLayout, state: Uint8Array, index: number): { key: string; value: Uint8Array } {
  assert(index >= 0 && index < answerPutCount(layout), 'a put of the answer');
  if (layout.parts === 0) return { key: answerKey, value: state };
  const recipient = textEncoder.encode(layout.recipient);
  if (index === layout.parts) {
    const head = new Uint8Array(headFixedBytes + recipient.length);
    const view = new DataView(head.buffer);
    view.setUint8(4, kindHead);
    view.setUint32(5, layout.checksum, true);
    view.setUint32(9, layout.parts, true);
    view.setUint32(13, state.length, true);
    head.set(recipient, headFixedBytes);
    return { key: answerKey, value: head };
  }
  const body = state.subarray(index * layout.bodyBytesMax, Math.min(state.length, (index + 1) * layout.bodyBytesMax));
  assert(body.length > 0, 'a part carries bytes');
  const value = new Uint8Array(partFixedBytes + recipient.length + body.length);
  const view = new DataView(value.buffer);
  view.setUint8(4, kindPart);
  view.setUint32(5, layout.checksum, true);
  view.setUint32(9, layout.parts, true);
  view.setUint32(13, index, true);
  view.setUint16(17, recipient.length, true);
  value.set(recipient, partFixedBytes);
  value.set(body, partFixedBytes + recipient.length);
  return { key: partKey(answerKey, layout.checksum, layout.parts, index), value };
}

function kindOf(value: Uint8Array): number | null {
  if (value.length < 5) return null;
  if (value[0] !== 0 || value[1] !== 0 || value[2] !== 0 || value[3] !== 0) return null;
  return value[4]!;
}

/** The head in `value`, or null when it is none (a whole state, or damaged). */
export function decodeHead(value: Uint8Array): PartsHead | null {
  if (kindOf(value) !== kindHead || value.length < headFixedBytes) return null;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const count = view.getUint32(9, true);
  const stateBytes = view.getUint32(13, true);
  if (count < 2 || count > answerPartsMax || stateBytes < count) return null;
  try {
    return { recipient: textDecoder.decode(value.subarray(headFixedBytes)), checksum: view.getUint32(5, true), count, stateBytes };
  } catch {
    return null;
  }
}

/** The part in `value`, or null when it is none. */
export function decodePart(value: Uint8Array): AnswerPart | null {
  if (kindOf(value) !== kindPart || value.length < partFixedBytes) return null;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const recipientBytes = view.getUint16(17, true);
  if (partFixedBytes + recipientBytes >= value.length) return null;
  const count = view.getUint32(9, true);
  const index = view.getUint32(13, true);
  if (index >= count) return null;
  try {
    const recipient = textDecoder.decode(value.subarray(partFixedBytes, partFixedBytes + recipientBytes));
    return { recipient, checksum: view.getUint32(5, true), count, index, body: value.subarray(partFixedBytes + recipientBytes) };
  } catch {
    return null;
  }
}

/** The answer key a part key belongs to, or null when `key` is not a part key. */
export function answerKeyOfPart(key: string): string | null {
  const dot = key.lastIndexOf('.');
  if (dot <= 0) return null;
  if (!/^[0-9a-f]{8}-[0-9]+-[0-9]+$/.test(key.slice(dot + 1))) return null;
  return key.slice(0, dot);
}

/**
 * The state a head names, from `parts` (values by key): null while a part is missing or any part
 * or the whole does not agree with the head (count, index, recipient, length, checksum).
 */
export function assemble(answerKey: string, head: PartsHead, parts: ReadonlyMap<string, Uint8Array>): Uint8Array | null {
  const state = new Uint8Array(head.stateBytes);
  let offset = 0;
  for (let index = 0; index < head.count; index++) {
    const value = parts.get(partKey(answerKey, head.checksum, head.count, index));
    if (value === undefined) return null;
    const part = decodePart(value);
    if (part === null || part.index !== index || part.count !== head.count || part.checksum !== head.checksum || part.recipient !== head.recipient) return null;
    if (offset + part.body.length > state.length) return null;
    state.set(part.body, offset);
    offset += part.body.length;
  }
  if (offset !== state.length || crc32c(state) !== head.checksum) return null;
  return state;
}
