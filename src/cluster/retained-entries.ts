/**
 * Retained messages in the `keel-retained` key-value bucket: how a topic becomes a key and a
 * message a value, and back.
 *
 * Key: the topic's UTF-8 bytes in base64url without padding (`[A-Za-z0-9_-]`), a valid NATS KV
 * key for every topic (KV keys allow only `[-/_=.A-Za-z0-9]`, so the subject mapping cannot be
 * used: a topic may hold any character). Value: `u32 headerBytes | headers as JSON | payload`, the
 * headers being those of the hand-off (headers.ts: origin node, QoS, properties, expiry left at the
 * put) plus the put id in `Keel-Seq`, so a node knows its own value in the bucket. A
 * deleted key (or an empty payload) clears the topic's retained message.
 */
import { assert } from '../assert.js';
import type { Properties, Qos } from '../codec/packets.js';
import { decodeHeaders, encodeHeaders } from './headers.js';

export const retainedBucket = 'keel-retained';

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

function base64url(bytes: Uint8Array): string {
  let text = '';
  for (let index = 0; index < bytes.length; index += 3) {
    const a = bytes[index]!;
    const b = index + 1 < bytes.length ? bytes[index + 1]! : 0;
    const c = index + 2 < bytes.length ? bytes[index + 2]! : 0;
    const chunk = (a << 16) | (b << 8) | c;
    text += alphabet[(chunk >> 18) & 63]! + alphabet[(chunk >> 12) & 63]!;
    if (index + 1 < bytes.length) text += alphabet[(chunk >> 6) & 63]!;
    if (index + 2 < bytes.length) text += alphabet[chunk & 63]!;
  }
  return text;
}

/** Each base64url character's value by char code (below 128), -1 for any other character. */
const alphabetValues = new Int8Array(128).fill(-1);
for (let index = 0; index < alphabet.length; index++) alphabetValues[alphabet.charCodeAt(index)] = index;

/**
 * The bytes of a base64url text, or null for a text `base64url` never makes: a character outside
 * the alphabet, a length of 4n+1, or bits set past the last byte (which it leaves 0).
 */
function unbase64url(text: string): Uint8Array | null {
  if (text.length % 4 === 1) return null;
  const bytes = new Uint8Array((text.length * 3) >> 2);
  let length = 0;
  let buffer = 0;
  let bits = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    const value = code < 128 ? alphabetValues[code]! : -1;
    if (value < 0) return null;
    // Only the bits not yet read out matter: at most 12.
    buffer = ((buffer << 6) | value) & 0xfff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[length++] = (buffer >> bits) & 0xff;
    }
  }
  assert(length === bytes.length, 'a base64url text of n characters holds floor(6n / 8) bytes');
  return (buffer & ((1 << bits) - 1)) === 0 ? bytes : null;
}

/** ASCII text of these many bytes or fewer is built char by char (V8 keeps it flat; codec/utf8.ts). */
const asciiInlineBytesMax = 12;

export function retainedKey(topic: string): string {
  return base64url(textEncoder.encode(topic));
}

/** The topic of a key, or null for a key this encoding never makes. */
export function topicOfRetainedKey(key: string): string | null {
  const bytes = unbase64url(key);
  if (bytes === null || bytes.length === 0) return null;
  let ascii = true;
  for (let index = 0; index < bytes.length && ascii; index++) ascii = bytes[index]! < 0x80;
  // ASCII (nearly every topic and client id): the key is these bytes' base64url (unbase64url
  // refused any other spelling), and they are the topic's UTF-8, char for char.
  if (ascii && bytes.length <= asciiInlineBytesMax) {
    let topic = '';
    for (let index = 0; index < bytes.length; index++) topic += String.fromCharCode(bytes[index]!);
    return topic;
  }
  try {
    const topic = textDecoder.decode(bytes);
    // Not ASCII: a byte-order mark the decoder strips, for one, would not make this key again.
    return ascii || retainedKey(topic) === key ? topic : null;
  } catch {
    return null;
  }
}

export interface RetainedEntry {
  /** The node that put it, and its put id there (retained-sync.ts): null in a value from elsewhere. */
  origin: string | null;
  sequence: string | null;
  qos: Qos;
  payload: Uint8Array;
  properties: Properties | undefined;
  expirySeconds: number | null;
}

/** `putId` (the `Keel-Seq` header) tells this put from every other of its node, across restarts too. */
export function encodeRetainedValue(origin: string, qos: Qos, payload: Uint8Array, properties: Properties | undefined, expirySeconds: number | null, putId: string | null): Uint8Array {
  const header = textEncoder.encode(JSON.stringify(encodeHeaders(origin, qos, true, putId, properties, expirySeconds)));
  const value = new Uint8Array(4 + header.length + payload.length);
  new DataView(value.buffer).setUint32(0, header.length, true);
  value.set(header, 4);
  value.set(payload, 4 + header.length);
  return value;
}

/** The retained message in a value, or null for a value this encoding never makes. */
export function decodeRetainedValue(value: Uint8Array): RetainedEntry | null {
  if (value.length < 4) return null;
  const headerBytes = new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0, true);
  if (4 + headerBytes > value.length) return null;
  let headers: unknown;
  try {
    headers = JSON.parse(textDecoder.decode(value.subarray(4, 4 + headerBytes)));
  } catch {
    return null;
  }
  if (typeof headers !== 'object' || headers === null) return null;
  for (const field of Object.values(headers)) if (typeof field !== 'string') return null;
  const envelope = decodeHeaders(headers as Record<string, string>);
  return { origin: envelope.origin, sequence: envelope.sequence, qos: envelope.qos, payload: value.slice(4 + headerBytes), properties: envelope.properties, expirySeconds: envelope.expirySeconds };
}
