/**
 * Leaf writers for the encoder: each writes one wire value at `offset` into a buffer the caller
 * sized exactly, and returns the offset after it. Sizes are computed by the matching `*Length`
 * helpers before anything is written, so the buffer is allocated once and never grows.
 */
import { assert } from '../assert.js';
import { utf8Length, writeUtf8 } from './utf8.js';

/** The largest value a Variable Byte Integer can carry (section 1.5.5). */
export const variableIntegerMax = 268_435_455;

export function variableIntegerLength(value: number): number {
  assert(Number.isInteger(value) && value >= 0, 'variable byte integer must be a non-negative integer');
  assert(value <= variableIntegerMax, 'variable byte integer too large');
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  return 4;
}

export function writeVariableInteger(bytes: Uint8Array, offset: number, value: number): number {
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    bytes[offset++] = byte;
  } while (rest > 0);
  return offset;
}

export function writeUint16(bytes: Uint8Array, offset: number, value: number): number {
  bytes[offset] = value >>> 8;
  bytes[offset + 1] = value & 0xff;
  return offset + 2;
}

export function writeUint32(bytes: Uint8Array, offset: number, value: number): number {
  bytes[offset] = value >>> 24;
  bytes[offset + 1] = (value >>> 16) & 0xff;
  bytes[offset + 2] = (value >>> 8) & 0xff;
  bytes[offset + 3] = value & 0xff;
  return offset + 4;
}

/** Bytes taken by a two-byte length prefixed UTF-8 string. */
export function stringLength(text: string): number {
  const length = utf8Length(text);
  assert(length <= 0xffff, 'UTF-8 string longer than 65535 bytes');
  return 2 + length;
}

/** Writes the string first and the length prefix after, so the text is scanned only once here. */
export function writeString(bytes: Uint8Array, offset: number, text: string): number {
  const written = writeUtf8(text, bytes, offset + 2);
  writeUint16(bytes, offset, written);
  return offset + 2 + written;
}

export function binaryLength(data: Uint8Array): number {
  assert(data.length <= 0xffff, 'binary data longer than 65535 bytes');
  return 2 + data.length;
}

export function writeBinary(bytes: Uint8Array, offset: number, data: Uint8Array): number {
  writeUint16(bytes, offset, data.length);
  bytes.set(data, offset + 2);
  return offset + 2 + data.length;
}
