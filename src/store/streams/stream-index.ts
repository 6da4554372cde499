/**
 * The sparse index of one stream segment: every `intervalBytes` of the file, a point saying which
 * offset starts at which file position and when it was appended. Seeking an offset or a time is
 * a binary search over the points, then a read of at most one interval: O(log n).
 *
 * Points are columns in growable typed arrays (24 bytes a point), not objects. The first entry
 * of a segment is always a point. Offsets and positions increase strictly; times never decrease
 * (a stream's entry times are made monotonic when appended).
 *
 * On disk (`<segment>.idx`), written when a segment is sealed or rewritten, little-endian:
 *
 *   u32 magic "KIDX" | u32 version 1 | f64 base offset | f64 segment bytes covered |
 *   f64 end offset (after the last entry) | f64 time of the last entry | f64 entries held |
 *   u32 point count |
 *   point count x (f64 offset, f64 position, f64 time) | u32 CRC-32C of everything before
 *
 * An index is trusted only when its checksum matches and it describes the segment as it is (same
 * base, same size, points inside the file in order); anything else is rebuilt from the segment,
 * whose frames carry their own checksums. A damaged index is never trusted; the data is.
 */
import { assert } from '../../assert.js';
import { crc32c } from '../crc32c.js';

const magic = 0x5844494b; // "KIDX" little-endian
const version = 1;
const headerBytes = 4 + 4 + 8 + 8 + 8 + 8 + 8 + 4;
const pointBytes = 24;

export class SparseIndex {
  private offsets = new Float64Array(8);
  private positions = new Float64Array(8);
  private times = new Float64Array(8);
  private count = 0;

  constructor(readonly intervalBytes: number) {
    assert(intervalBytes > 0, 'an index interval is positive');
  }

  get length(): number {
    return this.count;
  }

  offsetAt(index: number): number {
    return this.offsets[index]!;
  }

  positionAt(index: number): number {
    return this.positions[index]!;
  }

  timeAt(index: number): number {
    return this.times[index]!;
  }

  /** Offers an entry written at `position`; it becomes a point when it starts a new interval. */
  offer(offset: number, position: number, timeMs: number): void {
    const last = this.count - 1;
    if (last >= 0) {
      assert(offset > this.offsets[last]! && position > this.positions[last]!, 'index points increase');
      if (position - this.positions[last]! < this.intervalBytes) return;
    }
    if (this.count === this.offsets.length) this.grow();
    this.offsets[this.count] = offset;
    this.positions[this.count] = position;
    this.times[this.count] = timeMs;
    this.count += 1;
  }

  /** Adds a point read back from an index file (checked by the caller), whatever its interval. */
  restore(offset: number, position: number, timeMs: number): void {
    if (this.count === this.offsets.length) this.grow();
    this.offsets[this.count] = offset;
    this.positions[this.count] = position;
    this.times[this.count] = timeMs;
    this.count += 1;
  }

  /** The last point at or before `offset` (its index), or -1 when `offset` is before the first. */
  pointAtOrBefore(offset: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.offsets[middle]! <= offset) low = middle + 1;
      else high = middle;
    }
    return low - 1;
  }

  /** The last point whose time is before `timeMs` (its index), or -1 when none is. */
  pointBeforeTime(timeMs: number): number {
    let low = 0;
    let high = this.count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.times[middle]! < timeMs) low = middle + 1;
      else high = middle;
    }
    return low - 1;
  }

  private grow(): void {
    const capacity = this.offsets.length * 2;
    const offsets = new Float64Array(capacity);
    const positions = new Float64Array(capacity);
    const times = new Float64Array(capacity);
    offsets.set(this.offsets);
    positions.set(this.positions);
    times.set(this.times);
    this.offsets = offsets;
    this.positions = positions;
    this.times = times;
  }
}

/** What an index file says about its segment besides the points. */
export interface IndexSummary {
  readonly baseOffset: number;
  readonly segmentBytes: number;
  readonly endOffset: number;
  readonly lastTimeMs: number;
  readonly entryCount: number;
}

export function encodeIndexFile(index: SparseIndex, summary: IndexSummary): Uint8Array {
  const bytes = new Uint8Array(headerBytes + index.length * pointBytes + 4);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, magic, true);
  view.setUint32(4, version, true);
  view.setFloat64(8, summary.baseOffset, true);
  view.setFloat64(16, summary.segmentBytes, true);
  view.setFloat64(24, summary.endOffset, true);
  view.setFloat64(32, summary.lastTimeMs, true);
  view.setFloat64(40, summary.entryCount, true);
  view.setUint32(48, index.length, true);
  for (let point = 0; point < index.length; point++) {
    const at = headerBytes + point * pointBytes;
    view.setFloat64(at, index.offsetAt(point), true);
    view.setFloat64(at + 8, index.positionAt(point), true);
    view.setFloat64(at + 16, index.timeAt(point), true);
  }
  view.setUint32(bytes.length - 4, crc32c(bytes, 0, 0, bytes.length - 4), true);
  return bytes;
}

/**
 * The index an `.idx` file holds, if it can be trusted for a segment at `baseOffset` of
 * `segmentBytes`; null when it cannot (damaged, stale, or not an index at all).
 */
export function decodeIndexFile(bytes: Uint8Array, baseOffset: number, segmentBytes: number, intervalBytes: number): { index: SparseIndex; summary: IndexSummary } | null {
  if (bytes.length < headerBytes + 4) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (crc32c(bytes, 0, 0, bytes.length - 4) !== view.getUint32(bytes.length - 4, true)) return null;
  if (view.getUint32(0, true) !== magic || view.getUint32(4, true) !== version) return null;
  const summary: IndexSummary = {
    baseOffset: view.getFloat64(8, true),
    segmentBytes: view.getFloat64(16, true),
    endOffset: view.getFloat64(24, true),
    lastTimeMs: view.getFloat64(32, true),
    entryCount: view.getFloat64(40, true),
  };
  const count = view.getUint32(48, true);
  if (summary.baseOffset !== baseOffset || summary.segmentBytes !== segmentBytes || bytes.length !== headerBytes + count * pointBytes + 4) return null;
  if (!Number.isSafeInteger(summary.endOffset) || summary.endOffset < baseOffset || !Number.isSafeInteger(summary.lastTimeMs)) return null;
  if (!Number.isSafeInteger(summary.entryCount) || summary.entryCount > summary.endOffset - baseOffset || (summary.entryCount === 0) !== (count === 0)) return null;
  const index = new SparseIndex(intervalBytes);
  let previous = { offset: baseOffset - 1, position: -1 };
  for (let point = 0; point < count; point++) {
    const at = headerBytes + point * pointBytes;
    const offset = view.getFloat64(at, true);
    const position = view.getFloat64(at + 8, true);
    const timeMs = view.getFloat64(at + 16, true);
    const inOrder = Number.isSafeInteger(offset) && offset > previous.offset && offset < summary.endOffset && Number.isSafeInteger(position) && position > previous.position;
    if (!inOrder || position >= segmentBytes || !Number.isSafeInteger(timeMs)) return null;
    // Points are kept exactly as written, whatever interval this broker is configured with now.
    index.restore(offset, position, timeMs);
    previous = { offset, position };
  }
  return { index, summary };
}
