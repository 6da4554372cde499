/**
 * Reading the frames of a stream segment out of bytes read from it: the one scanner behind
 * recovery (the tail segment, and any segment whose index must be rebuilt) and behind replay
 * reads.
 *
 * A segment holds entry frames with strictly increasing offsets, consecutive when written,
 * with gaps once last-value compaction has rewritten it. The scanner walks frames from a
 * position and stops at the first of:
 * - the end of the bytes, exactly at a frame boundary (`clean`);
 * - a frame that runs past the end of the bytes (`incomplete`, with the bytes it needs): for a
 *   read that is the edge of what was asked for; for a whole file it is a torn write;
 * - a frame that is damaged (checksum, header, an offset out of order, a body this version
 *   cannot decode: `damaged`), with where the next valid frame starts, if one does: a later valid
 *   frame with a higher offset proves the damage is not a torn tail.
 */
import { checkFrameAt, frameHeaderBytes, frameLsnAt, parseFrameAt } from '../record-frame.js';
import { entryFrameType } from './stream-entry.js';

/** The largest entry body a segment may hold; anything claiming more is damage, not a frame. */
export const entryBodyBytesMax = 512 * 1024 * 1024;

export interface ScannedFrame {
  readonly offset: number;
  /** Where the frame starts, relative to the scanned bytes. */
  readonly position: number;
  readonly frameBytes: number;
  readonly timeMs: number;
  readonly body: Uint8Array;
}

export type ScanEnding =
  | { kind: 'clean' }
  | { kind: 'incomplete'; position: number; frameBytesNeeded: number }
  | { kind: 'damaged'; position: number; reason: string; resume: { position: number; offset: number } | null };

export interface ScanResult {
  /** Position just past the last valid frame. */
  readonly end: number;
  /** Offset of the last valid frame, or `afterOffset` when there was none. */
  readonly lastOffset: number;
  readonly ending: ScanEnding;
}

/**
 * Visits every valid frame from `position` on, in order, while `visit` returns true. Frames must
 * carry offsets above `afterOffset` and increasing. The visitor gets views of `bytes`.
 */
export function scanSegment(bytes: Uint8Array, position: number, afterOffset: number, visit: (frame: ScannedFrame) => boolean): ScanResult {
  return scanSegmentFrames(bytes, position, afterOffset, (offset, at, frameBytes, timeMs, bodyStart) =>
    visit({ offset, position: at, frameBytes, timeMs, body: bytes.subarray(bodyStart, at + frameBytes) }),
  );
}

/**
 * A frame found by `scanSegmentFrames`: its entry's offset, where the frame starts in the scanned
 * bytes and how long it is, its entry's time, and where its body starts (it ends with the frame).
 */
export type FrameVisitor = (offset: number, position: number, frameBytes: number, timeMs: number, bodyStart: number) => boolean;

/**
 * `scanSegment` without an object per frame: the visitor gets the frame's numbers (a replay reads
 * hundreds of thousands of frames a second, and a frame object and a body view each were garbage).
 */
export function scanSegmentFrames(bytes: Uint8Array, position: number, afterOffset: number, visit: FrameVisitor): ScanResult {
  let lastOffset = afterOffset;
  let at = position;
  // One view for the whole scan, not one per frame.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  while (at < bytes.length) {
    const bodyLength = checkFrameAt(bytes, at, entryBodyBytesMax, view);
    if (typeof bodyLength === 'string') {
      if (bodyLength === 'incomplete frame header' || bodyLength === 'incomplete frame body') {
        return { end: at, lastOffset, ending: { kind: 'incomplete', position: at, frameBytesNeeded: frameBytesNeeded(bytes, at) } };
      }
      return { end: at, lastOffset, ending: damaged(bytes, at, lastOffset, bodyLength) };
    }
    // A frame's sequence number is its entry's offset plus one (stream-entry.ts).
    const offset = frameLsnAt(bytes, at, view) - 1;
    const type = bytes[at + 16]!;
    if (type !== entryFrameType || offset <= lastOffset || bodyLength < 12) {
      return { end: at, lastOffset, ending: damaged(bytes, at, lastOffset, `frame of offset ${offset} and type ${type} out of place`) };
    }
    const bodyStart = at + frameHeaderBytes;
    const timeMs = view.getFloat64(bodyStart, true);
    const frameBytes = frameHeaderBytes + bodyLength;
    const keepGoing = visit(offset, at, frameBytes, timeMs, bodyStart);
    lastOffset = offset;
    at += frameBytes;
    if (!keepGoing) break;
  }
  return { end: at, lastOffset, ending: { kind: 'clean' } };
}

/** How many bytes the frame at `at` needs in all (its header's length when the header is there). */
function frameBytesNeeded(bytes: Uint8Array, at: number): number {
  if (bytes.length - at < 8) return 17;
  return 17 + new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at + 4, true);
}

/** Damage at `at`: where a later valid frame with a higher offset starts, if any does. */
function damaged(bytes: Uint8Array, at: number, lastOffset: number, reason: string): ScanEnding {
  return { kind: 'damaged', position: at, reason, resume: findResume(bytes, at, lastOffset) };
}

/** The first valid entry frame after `at` with an offset above `lastOffset`, if any. */
export function findResume(bytes: Uint8Array, at: number, lastOffset: number): { position: number; offset: number } | null {
  for (let probe = at + 1; probe + 17 <= bytes.length; probe++) {
    const parsed = parseFrameAt(bytes, probe, entryBodyBytesMax);
    if (typeof parsed !== 'string' && parsed.type === entryFrameType && parsed.lsn - 1 > lastOffset) return { position: probe, offset: parsed.lsn - 1 };
  }
  return null;
}

/** True when every byte from `from` on is zero (a preallocated or zero-filled tail, not damage). */
export function isZeroFrom(bytes: Uint8Array, from: number): boolean {
  for (let index = from; index < bytes.length; index++) if (bytes[index] !== 0) return false;
  return true;
}
