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

/** The filler's state before its first byte: a function of the head's UTF-16 code units. */
function fillerState(seedText: string): number {
  let state = 2166136261;
  for (let index = 0; index < seedText.length; index++) state = Math.imul(state ^ seedText.charCodeAt(index), 16777619) >>> 0;
  return state;
}

/** Writes the filler of `seedText` (lower-case ASCII letters) into `into` from `offset`. */
function writeFiller(seedText: string, length: number, into: Uint8Array, offset: number): void {
  let state = fillerState(seedText);
  for (let index = 0; index < length; index++) {
    state = Math.imul(state ^ index, 16777619) >>> 0;
    into[offset + index] = 97 + (state % 26);
  }
}

/** Whether `bytes` from `offset` on are exactly the filler of `seedText`, byte for byte, and nothing more. */
function fillerMatches(seedText: string, bytes: Uint8Array, offset: number): boolean {
  const length = fillerLength(seedText);
  if (bytes.length - offset !== length) return false;
  let state = fillerState(seedText);
  for (let index = 0; index < length; index++) {
    state = Math.imul(state ^ index, 16777619) >>> 0;
    if (bytes[offset + index] !== 97 + (state % 26)) return false;
  }
  return true;
}

/** A large payload's head ends in `|L{length}`: its filler's length. */
const largePattern = /\|L([0-9]{1,7})$/;

function fillerLength(seedText: string): number {
  const large = largePattern.exec(seedText);
  if (large !== null) return Number(large[1]);
  let sum = 0;
  for (let index = 0; index < seedText.length; index++) sum = (sum * 31 + seedText.charCodeAt(index)) % 9973;
  return sum % 5 === 0 ? 150 + (sum % 60) : sum % 24;
}

function seal(head: string): Uint8Array {
  const headBytes = encoder.encode(`${head}|`);
  const length = fillerLength(head);
  const bytes = new Uint8Array(headBytes.length + length);
  bytes.set(headBytes);
  writeFiller(head, length, bytes, headBytes.length);
  return bytes;
}

/** `fillerBytes`: a large payload's filler length (large-payloads.ts); undefined for the usual one. */
export function messagePayload(publisher: number, sequence: number, qos: number, topic: string, fillerBytes?: number): Uint8Array {
  return seal(fillerBytes === undefined ? `m|${publisher}|${sequence}|${qos}|${topic}` : `m|${publisher}|${sequence}|${qos}|${topic}|L${fillerBytes}`);
}

export function willPayload(client: number, generation: number, topic: string): Uint8Array {
  return seal(`w|${client}|${generation}|${topic}`);
}

/** The identity a payload claims, or null if it is not one this simulator could have produced intact. */
export function parsePayload(bytes: Uint8Array): MessageIdentity | WillIdentity | null {
  // The filler is ASCII letters and UTF-8 never uses the byte of `|` inside another character, so
  // the last `|` byte ends the head; the head must be well-formed UTF-8 and the rest its filler.
  const last = bytes.lastIndexOf(0x7c);
  if (last < 0) return null;
  let head: string;
  try {
    head = decoder.decode(bytes.subarray(0, last));
  } catch {
    return null;
  }
  if (!fillerMatches(head, bytes, last + 1)) return null;
  const fields = head.split('|');
  if (fields[0] === 'm' && (fields.length === 5 || (fields.length === 6 && largePattern.test(head)))) {
    return { kind: 'message', publisher: Number(fields[1]), sequence: Number(fields[2]), qos: Number(fields[3]), topic: fields[4]! };
  }
  if (fields[0] === 'w' && fields.length === 4) {
    return { kind: 'will', client: Number(fields[1]), generation: Number(fields[2]), topic: fields[3]! };
  }
  return null;
}
