/**
 * The on-disk frame around every stored record, and the scanner that reads frames back.
 *
 * Frame layout, little-endian:
 *
 *   offset 0   u32  CRC-32C of bytes [4, 17 + bodyLength)
 *   offset 4   u32  bodyLength
 *   offset 8   f64  log sequence number (an integer, consecutive across the whole log)
 *   offset 16  u8   record type (never 0, so a zero-filled region never parses as a record)
 *   offset 17  body
 *
 * The checksum covers the length, sequence number and type as well as the body, so a flipped
 * bit in any of them is caught. Scanning distinguishes a torn tail (the last write of a crashed
 * process, safe to truncate) from corruption (a bad frame with valid frames after it, which must
 * be reported, never skipped): a bad frame is only "torn" when no valid frame with a later
 * sequence number can be found anywhere after it.
 */
import { assert } from '../assert.js';
import { crc32c } from './crc32c.js';

export const frameHeaderBytes = 17;

export interface FrameRecord {
  lsn: number;
  type: number;
  /** Where the frame starts in the scanned bytes. */
  offset: number;
  /** A view into the scanned bytes. */
  body: Uint8Array;
}

/** Writes one frame into `target` at `offset`; returns the offset after it. */
export function writeFrame(target: Uint8Array, offset: number, lsn: number, type: number, body: Uint8Array): number {
  assert(offset + frameHeaderBytes + body.length <= target.length, 'frame does not fit');
  target.set(body, offset + frameHeaderBytes);
  return sealFrame(target, offset, lsn, type, body.length);
}

/**
 * Writes the header of the frame at `offset` whose body of `bodyLength` bytes is already in place
 * after it, checksum last; returns the offset after the frame. For a writer that encodes a body
 * straight into its batch instead of into a buffer of its own first.
 */
export function sealFrame(target: Uint8Array, offset: number, lsn: number, type: number, bodyLength: number): number {
  assert(type > 0 && type < 256, 'record type must be 1..255');
  assert(Number.isSafeInteger(lsn) && lsn > 0, 'lsn must be a positive integer');
  const end = offset + frameHeaderBytes + bodyLength;
  assert(end <= target.length, 'frame does not fit');
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  view.setUint32(offset + 4, bodyLength, true);
  view.setFloat64(offset + 8, lsn, true);
  target[offset + 16] = type;
  view.setUint32(offset, crc32c(target, 0, offset + 4, end), true);
  return end;
}

/** One frame as its own buffer. */
export function encodeFrame(lsn: number, type: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(frameHeaderBytes + body.length);
  writeFrame(bytes, 0, lsn, type, body);
  return bytes;
}

export type FrameProblem = { offset: number; reason: string };

export interface ScanResult {
  records: FrameRecord[];
  /** Offset just past the last valid frame. */
  validEnd: number;
  /** `clean`: the bytes end at a frame boundary (or in zeros); `torn`: a damaged tail; `corrupt`: damage followed by valid frames. */
  ending: 'clean' | 'torn' | 'corrupt';
  problem: FrameProblem | null;
}

/**
 * Reads every frame in `bytes`. `nextLsn` is the sequence number the first frame must carry
 * (0 to accept whatever the first frame says); each following frame must carry the next one.
 */
export function scanFrames(bytes: Uint8Array, nextLsn: number, bodyBytesMax: number): ScanResult {
  const scan = scanFramePositions(bytes, nextLsn, bodyBytesMax);
  const records = scan.positions.map((position) => frameAt(bytes, position));
  return { records, validEnd: scan.validEnd, ending: scan.ending, problem: scan.problem };
}

/** `scanFrames` without the records: where each valid frame starts, and the sequence number of the last. */
export interface FramePositions extends Omit<ScanResult, 'records'> {
  readonly positions: number[];
  /** The last valid frame's sequence number (`nextLsn - 1` when there is none). */
  readonly lastLsn: number;
}

/**
 * Checks every frame in `bytes` as `scanFrames` does, keeping only where each starts (`frameAt`
 * makes its record when it is wanted). Recovery reads a log segment of up to 64 MiB at a time: a
 * record object and a body view per frame, all alive until the segment was applied, were most of
 * what its heap grew to (and what a restarted broker's resident size kept).
 */
export function scanFramePositions(bytes: Uint8Array, nextLsn: number, bodyBytesMax: number): FramePositions {
  const positions: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = 0;
  let expected = nextLsn;
  let lastLsn = nextLsn - 1;
  while (offset < bytes.length) {
    const checked = checkFrameAt(bytes, offset, bodyBytesMax, view);
    const lsn = typeof checked === 'string' ? 0 : frameLsnAt(bytes, offset, view);
    if (typeof checked === 'string' || (expected !== 0 && lsn !== expected)) {
      const reason = typeof checked === 'string' ? checked : `sequence number ${lsn} where ${expected} was expected`;
      return { positions, lastLsn, ...classifyDamage(bytes, offset, reason, positions.length > 0 ? lastLsn : expected - 1, bodyBytesMax) };
    }
    positions.push(offset);
    lastLsn = lsn;
    expected = lsn + 1;
    offset += frameHeaderBytes + checked;
  }
  return { positions, lastLsn, validEnd: offset, ending: 'clean', problem: null };
}

/** The record of the frame at `offset`, which `scanFramePositions` (or `checkFrameAt`) found valid. */
export function frameAt(bytes: Uint8Array, offset: number): FrameRecord {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, frameHeaderBytes);
  const bodyLength = view.getUint32(4, true);
  assert(offset + frameHeaderBytes + bodyLength <= bytes.length, 'a checked frame lies within its bytes');
  return { lsn: view.getFloat64(8, true), type: bytes[offset + 16]!, offset, body: bytes.subarray(offset + frameHeaderBytes, offset + frameHeaderBytes + bodyLength) };
}

/**
 * The frame starting at `offset`, or why there is none (damage, or bytes that end mid-frame).
 * `view` is a DataView over exactly `bytes`; a caller parsing many frames passes one of its own.
 */
export function parseFrameAt(bytes: Uint8Array, offset: number, bodyBytesMax: number, view?: DataView): FrameRecord | string {
  const checked = checkFrameAt(bytes, offset, bodyBytesMax, view ?? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  if (typeof checked === 'string') return checked;
  const lsn = frameLsnAt(bytes, offset, view);
  return { lsn, type: bytes[offset + 16]!, offset, body: bytes.subarray(offset + frameHeaderBytes, offset + frameHeaderBytes + checked) };
}

/**
 * Checks the frame starting at `offset` (as `parseFrameAt`) without making an object of it:
 * its body's length when it is valid, else why it is not. `view` is a DataView over exactly
 * `bytes`. Its sequence number is `frameLsnAt`, its type the byte at `offset + 16`.
 */
export function checkFrameAt(bytes: Uint8Array, offset: number, bodyBytesMax: number, view: DataView): number | string {
  if (bytes.length - offset < frameHeaderBytes) return 'incomplete frame header';
  const bodyLength = view.getUint32(offset + 4, true);
  if (bodyLength > bodyBytesMax) return `frame length ${bodyLength} beyond the limit ${bodyBytesMax}`;
  const end = offset + frameHeaderBytes + bodyLength;
  if (end > bytes.length) return 'incomplete frame body';
  if (crc32c(bytes, 0, offset + 4, end) !== view.getUint32(offset, true)) return 'checksum mismatch';
  const lsn = view.getFloat64(offset + 8, true);
  const type = bytes[offset + 16]!;
  if (type === 0 || !Number.isSafeInteger(lsn) || lsn <= 0) return 'invalid frame header';
  return bodyLength;
}

/** The sequence number of the frame at `offset` (checked by `checkFrameAt`). */
export function frameLsnAt(bytes: Uint8Array, offset: number, view?: DataView): number {
  return (view ?? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)).getFloat64(offset + 8, true);
}

function classifyDamage(bytes: Uint8Array, offset: number, reason: string, lastLsn: number, bodyBytesMax: number): Omit<ScanResult, 'records'> {
  if (isAllZero(bytes, offset)) return { validEnd: offset, ending: 'clean', problem: null };
  // A valid frame further on that continues the sequence proves the damage is not a torn tail.
  for (let probe = offset + 1; probe + frameHeaderBytes <= bytes.length; probe++) {
    const parsed = parseFrameAt(bytes, probe, bodyBytesMax);
    if (typeof parsed !== 'string' && parsed.lsn > lastLsn) {
      return { validEnd: offset, ending: 'corrupt', problem: { offset, reason } };
    }
  }
  if (!cutShort(bytes, offset)) return { validEnd: offset, ending: 'corrupt', problem: { offset, reason: `${reason}, and bytes follow the frame` } };
  return { validEnd: offset, ending: 'torn', problem: { offset, reason } };
}

/**
 * Whether the damaged frame at `offset` can be the last write cut short by a crash. A torn write
 * keeps a prefix of what was written, and the file then ends there or in zeros (a file system may
 * extend the file before the data lands), so wherever the cut fell the frame's declared end (its
 * length field is either written whole or low bytes first with zeros above) is at or past the
 * cut, and nothing but zeros lies beyond it. A whole damaged frame followed by other bytes was
 * followed by a later write, and a record is acknowledged only once a later frame is synced
 * (log-writer.ts): so it is rot in what may have been acknowledged, never a torn tail (seed
 * 19701986: a bit flipped in the last record and another in the length of the seal after it, so
 * that no valid frame followed the damage). A flip in the last frame alone still reads as a tear;
 * that frame was never acknowledged, so cutting it loses nothing.
 */
function cutShort(bytes: Uint8Array, offset: number): boolean {
  if (bytes.length - offset < frameHeaderBytes) return true;
  const end = offset + frameHeaderBytes + new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset + 4, true);
  return end >= bytes.length || isAllZero(bytes, end);
}

function isAllZero(bytes: Uint8Array, from: number): boolean {
  for (let index = from; index < bytes.length; index++) if (bytes[index] !== 0) return false;
  return true;
}
