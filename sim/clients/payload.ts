/**
 * Payloads that identify themselves, so the checker can name every message it sees.
 *
 * A publish payload is `m|{publisher}|{sequence}|{qos}|{topic}|{filler}` and a will payload is
 * `w|{client}|{generation}|{topic}|{filler}`. The filler is a deterministic function of the
 * other fields with a length between 0 and ~200 bytes, so a payload that was truncated, spliced
 * or bit-flipped anywhere no longer parses back to the same text.
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

function filler(seedText: string, length: number): string {
  let state = 2166136261;
  for (let index = 0; index < seedText.length; index++) state = Math.imul(state ^ seedText.charCodeAt(index), 16777619) >>> 0;
  let out = '';
  for (let index = 0; index < length; index++) {
    state = Math.imul(state ^ index, 16777619) >>> 0;
    out += String.fromCharCode(97 + (state % 26));
  }
  return out;
}

function fillerLength(seedText: string): number {
  let sum = 0;
  for (let index = 0; index < seedText.length; index++) sum = (sum * 31 + seedText.charCodeAt(index)) % 9973;
  return sum % 5 === 0 ? 150 + (sum % 60) : sum % 24;
}

function seal(head: string): Uint8Array {
  return encoder.encode(`${head}|${filler(head, fillerLength(head))}`);
}

export function messagePayload(publisher: number, sequence: number, qos: number, topic: string): Uint8Array {
  return seal(`m|${publisher}|${sequence}|${qos}|${topic}`);
}

export function willPayload(client: number, generation: number, topic: string): Uint8Array {
  return seal(`w|${client}|${generation}|${topic}`);
}

/** The identity a payload claims, or null if it is not one this simulator could have produced intact. */
export function parsePayload(bytes: Uint8Array): MessageIdentity | WillIdentity | null {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return null;
  }
  const last = text.lastIndexOf('|');
  if (last < 0) return null;
  const head = text.slice(0, last);
  if (text !== `${head}|${filler(head, fillerLength(head))}`) return null;
  const fields = head.split('|');
  if (fields[0] === 'm' && fields.length === 5) {
    return { kind: 'message', publisher: Number(fields[1]), sequence: Number(fields[2]), qos: Number(fields[3]), topic: fields[4]! };
  }
  if (fields[0] === 'w' && fields.length === 4) {
    return { kind: 'will', client: Number(fields[1]), generation: Number(fields[2]), topic: fields[3]! };
  }
  return null;
}
