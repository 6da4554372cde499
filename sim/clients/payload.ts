/**
 * Payloads that identify themselves, so the checker can name every message it sees.
 *
 * A publish payload is `m|{publisher}|{sequence}|{qos}|{topic}|{filler}` and a will payload is
 * `w|{client}|{generation}|{topic}|{filler}`. The filler is a deterministic function of the
 * other fields with a length between 0 and ~200 bytes, so a payload that was truncated, spliced
 * or bit-flipped anywhere no longer parses back to the same text. A large publish payload
 * (sim/large-payloads.ts) names its filler length in its head instead:
 * `m|{publisher}|{sequence}|{qos}|{topic}|L{length}|{filler}`.
 */
import { Buffer } from 'node:buffer';
import { allocateBytes } from '../../src/codec/byte-pool.js';

export interface MessageIdentity {
  kind: 'message';
  publisher: number;
  sequence: number;
  qos: number;
  topic: string;
}

export interface WillIdentity {
  kind: 'will';
  client: number;
  generation: number;
  topic: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
/** `|` in UTF-8: a byte that is never part of a multi-byte character. */
const separator = 0x7c;

/** The filler's state after its seed text (FNV-1a over the UTF-16 code units). */
function fillerSeed(seedText: string): number {
  let state = 2166136261;
  for (let index = 0; index < seedText.length; index++) state = Math.imul(state ^ seedText.charCodeAt(index), 16777619) >>> 0;
  return state;
}

/** A large payload's head ends in `|L{length}`: its filler's length. */
const largePattern = /\|L([0-9]{1,7})$/;

/** How long the filler of `seedText` is: 0 to 23 characters, or 150 to 209 for one head in five; a large head's own length. */
function fillerLength(seedText: string): number {
  const large = largePattern.exec(seedText);
  if (large !== null) return Number(large[1]);
  let sum = 0;
  for (let index = 0; index < seedText.length; index++) sum = (sum * 31 + seedText.charCodeAt(index)) % 9973;
  return sum % 5 === 0 ? 150 + (sum % 60) : sum % 24;
}

/**
 * Large payloads as sealed, by head, oldest first (sim/large-payloads.ts: up to a few hundred KiB).
 * Generating a filler costs a few nanoseconds a byte, and a large one used to be generated once
 * when its publisher sealed it, again for each resend, again by the checker for its checksum, and
 * once more for every copy delivered (`parsePayload` compared byte by byte against a filler it
 * generated). A kept one is copied, or compared, in one native operation instead. What is kept is
 * exactly what `seal` makes from the head, so no result depends on what is kept; bounded by count
 * and bytes, the oldest going first.
 */
const sealedLarge = new Map<string, Uint8Array>();
let sealedLargeBytes = 0;
/** Below this, a filler costs less to generate than to look up and copy. */
const largeFillerBytesMin = 512;
const sealedLargeKeptMax = 256;
const sealedLargeBytesMax = 8 * 1024 * 1024;

function keepSealedLarge(head: string, sealed: Uint8Array): void {
  sealedLarge.set(head, sealed);
  sealedLargeBytes += sealed.length;
  // Bounded by the entries: each pass drops one.
  while (sealedLarge.size > sealedLargeKeptMax || (sealedLargeBytes > sealedLargeBytesMax && sealedLarge.size > 1)) {
    const [oldestHead, oldest] = sealedLarge.entries().next().value as [string, Uint8Array];
    sealedLarge.delete(oldestHead);
    sealedLargeBytes -= oldest.length;
  }
}

/**
 * `${head}|${filler}` as UTF-8. The filler is ASCII (a to z), so it is written byte by byte
 * after the encoded head and the separator instead of being built as a string first: every
 * publish of a run makes one of these, and the checker another. The caller owns what it gets.
 */
function seal(head: string): Uint8Array {
  const length = fillerLength(head);
  const kept = length >= largeFillerBytesMin ? sealedLarge.get(head) : undefined;
  if (kept !== undefined) {
    const copy = allocateBytes(kept.length);
    copy.set(kept);
    return copy;
  }
  const headBytes = encoder.encode(head);
  const sealed = allocateBytes(headBytes.length + 1 + length);
  sealed.set(headBytes);
  sealed[headBytes.length] = separator;
  let state = fillerSeed(head);
  for (let index = 0, at = headBytes.length + 1; index < length; index++, at++) {
    state = Math.imul(state ^ index, 16777619) >>> 0;
    sealed[at] = 97 + (state % 26);
  }
  if (length >= largeFillerBytesMin) keepSealedLarge(head, sealed.slice());
  return sealed;
}

/** Whether `bytes` from `at` on equals the last `length` bytes of `sealed` (one native comparison). */
function fillerEquals(bytes: Uint8Array, at: number, sealed: Uint8Array, length: number): boolean {
  const actual = Buffer.from(bytes.buffer, bytes.byteOffset + at, length);
  return actual.equals(Buffer.from(sealed.buffer, sealed.byteOffset + sealed.length - length, length));
}

/** `fillerBytes`: a large payload's filler length (large-payloads.ts); undefined for the usual one. */
export function messagePayload(publisher: number, sequence: number, qos: number, topic: string, fillerBytes?: number): Uint8Array {
  return seal(fillerBytes === undefined ? `m|${publisher}|${sequence}|${qos}|${topic}` : `m|${publisher}|${sequence}|${qos}|${topic}|L${fillerBytes}`);
}

export function willPayload(client: number, generation: number, topic: string): Uint8Array {
  return seal(`w|${client}|${generation}|${topic}`);
}

/**
 * The identity a payload claims, or null if it is not one this simulator could have produced intact.
 *
 * Checked on the bytes, as `decode(bytes) === \`${head}|${filler(head)}\`` would be (bytes that
 * are not UTF-8 fail either way): the last `|` byte is the last `|` character (UTF-8 never uses
 * the byte inside a multi-byte character), only the head before it is decoded, and the bytes
 * after it must be exactly the ASCII filler that head calls for.
 */
export function parsePayload(bytes: Uint8Array): MessageIdentity | WillIdentity | null {
  const last = bytes.lastIndexOf(separator);
  if (last < 0) return null;
  let head: string;
  try {
    head = decoder.decode(bytes.subarray(0, last));
  } catch {
    return null;
  }
  const length = fillerLength(head);
  if (bytes.length - last - 1 !== length) return null;
  const kept = length >= largeFillerBytesMin ? sealedLarge.get(head) : undefined;
  if (kept !== undefined) {
    if (!fillerEquals(bytes, last + 1, kept, length)) return null;
  } else {
    let state = fillerSeed(head);
    for (let index = 0, at = last + 1; index < length; index++, at++) {
      state = Math.imul(state ^ index, 16777619) >>> 0;
      if (bytes[at] !== 97 + (state % 26)) return null;
    }
  }
  const fields = head.split('|');
  if (fields[0] === 'm' && (fields.length === 5 || (fields.length === 6 && largePattern.test(head)))) {
    return { kind: 'message', publisher: Number(fields[1]), sequence: Number(fields[2]), qos: Number(fields[3]), topic: fields[4]! };
  }
  if (fields[0] === 'w' && fields.length === 4) {
    return { kind: 'will', client: Number(fields[1]), generation: Number(fields[2]), topic: fields[3]! };
  }
  return null;
}
