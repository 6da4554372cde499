/**
 * Last-value compaction: a `lastValue` stream keeps, in its sealed segments, only the newest
 * entry of each topic. The active segment and the entries in memory are never touched.
 *
 * What is newest. Each last-value stream keeps a map from topic to the highest released offset
 * of that topic (released, not merely appended: an entry whose record a crash could still lose
 * must not make an older one go). Appends keep it current; what the files held when the broker
 * started is learnt by a scan (`TopicScan`) that reads the segments a bounded chunk at a time;
 * compaction starts only once the scan is complete. The map is bounded by
 * `streamLastValueTopicsMax`: past it the stream is no longer compacted (logged once; retention
 * still bounds it).
 *
 * How a segment is rewritten (`SegmentCompaction`), one storage request per step, each step's
 * work bounded by one read: the segment is read in chunks, the frames to keep are copied to
 * `<segment>.tmp`, which is synced and renamed over the segment, and the directory synced; then
 * its `.idx` is written. The segment's in-memory index, size and generation change together when
 * the rename is issued, not when it completes: storage requests run in the order they are issued
 * (both hosts), so a read issued after the rename reads the new file and must use the new index,
 * and a read issued before it reads the old file and completes after the switch, stale (the
 * generation moved), to be made again with the new index. Switching later, as a first version
 * did once the directory sync completed, let a read issued in between read the new file at
 * positions of the old index: frames cut in the middle, reported as damage that the disk never
 * had (simulator seed 1010413). A crash leaves either file whole (recovery deletes a leftover
 * `.tmp`, and rebuilds an index that no longer matches its segment). Offsets keep their meaning:
 * a compacted segment has gaps, which readers step over.
 *
 * Which segment: the oldest sealed segment that may hold superseded entries, that is one never
 * compacted, or whose stream has since had at least as many entries appended as it holds.
 */
import { assert } from '../../assert.js';
import type { StorageResult } from '../../contract.js';
import { type ScannedFrame, scanSegment } from './segment-scan.js';
import { entryTopic } from './stream-entry.js';
import type { Segment, StreamFiles } from './stream-files.js';
import { SparseIndex } from './stream-index.js';
import type { StreamLog } from './stream-log.js';

/** Bytes one step reads. */
export const compactionReadBytes = 256 * 1024;

/** A last-value stream's knowledge of its topics. */
export interface LastValueState {
  /** Topic to its newest released offset. */
  readonly latest: Map<string, number>;
  /** Learning what the files held at start-up; null once done. */
  scan: TopicScan | null;
  /** The map outgrew streamLastValueTopicsMax: no more compaction for this stream. */
  overLimit: boolean;
  job: SegmentCompaction | null;
}

export function createLastValueState(): LastValueState {
  return { latest: new Map(), scan: null, overLimit: false, job: null };
}

/** Records that `topic` has a released entry at `offset`; false once the map is over its bound. */
export function noteLatest(state: LastValueState, topic: string, offset: number, topicsMax: number): boolean {
  const known = state.latest.get(topic);
  if (known !== undefined && known >= offset) return true;
  if (known === undefined && state.latest.size >= topicsMax) {
    state.overLimit = true;
    return false;
  }
  state.latest.set(topic, offset);
  return true;
}

/** Reads every segment below `endOffset` once, noting each entry's topic. */
export class TopicScan {
  private segmentIndex = 0;
  private position = 0;
  private length = compactionReadBytes;
  private afterOffset: number;

  constructor(
    private readonly log: StreamLog,
    private readonly files: StreamFiles,
    private readonly state: LastValueState,
    private readonly endOffset: number,
  ) {
    this.afterOffset = (files.segments[0]?.baseOffset ?? 0) - 1;
  }

  step(): void {
    const segment = this.files.segments[this.segmentIndex];
    if (this.files.deleted || this.state.overLimit) return;
    if (segment === undefined || segment.baseOffset >= this.endOffset) {
      this.state.scan = null;
      return;
    }
    if (this.position >= segment.size || segment.deleted) return this.nextSegment();
    const length = Math.min(this.length, segment.size - this.position);
    const generation = segment.generation;
    this.log.issue({ op: 'read', requestId: 0, file: segment.name, offset: this.position, length }, (result) => this.read(segment, generation, result));
  }

  private read(segment: Segment, generation: number, result: StorageResult): void {
    if (this.files.deleted) return;
    // Deleted meanwhile (retention): nothing of it can be newest any more; a read error skips it.
    if (!result.ok || segment.deleted || segment.generation !== generation) return this.nextSegment();
    const bytes = result.bytes ?? new Uint8Array(0);
    const scan = scanSegment(bytes, 0, this.afterOffset, (frame) => {
      const topic = entryTopic(frame.body);
      return topic === null || noteLatest(this.state, topic, frame.offset, this.log.options.lastValueTopicsMax);
    });
    if (this.state.overLimit) return this.log.lastValueOverLimit(this.files);
    this.afterOffset = scan.lastOffset;
    const ending = scan.ending;
    if (ending.kind === 'clean') this.position += bytes.length;
    else if (ending.kind === 'incomplete' && scan.end > 0) this.position += scan.end;
    // One frame larger than a chunk: read it whole.
    else if (ending.kind === 'incomplete') this.length = Math.max(this.length, ending.frameBytesNeeded);
    else if (ending.resume !== null) {
      this.position += ending.resume.position;
      this.afterOffset = ending.resume.offset - 1;
    } else return this.nextSegment();
    this.step();
  }

  private nextSegment(): void {
    this.segmentIndex += 1;
    this.position = 0;
    this.step();
  }
}

/** One sealed segment rewritten without its superseded entries. */
export class SegmentCompaction {
  private readonly temporary: string;
  private readPosition = 0;
  private readLength = compactionReadBytes;
  private writePosition = 0;
  private afterOffset: number;
  private readonly index: SparseIndex;
  private kept = 0;
  private dropped = 0;
  private firstTimeMs = 0;
  private lastTimeMs = 0;
  private readonly generation: number;

  constructor(
    private readonly log: StreamLog,
    private readonly files: StreamFiles,
    private readonly state: LastValueState,
    private readonly segment: Segment,
    /** The stream's next offset when this began (for the segment's `compactedAtOffset`). */
    private readonly streamEnd: number,
  ) {
    this.temporary = `${segment.name}.tmp`;
    this.afterOffset = segment.baseOffset - 1;
    this.index = new SparseIndex(segment.index.intervalBytes);
    this.generation = segment.generation;
  }

  /** Reads the next chunk, or finishes once the whole segment was read. */
  step(): void {
    if (this.abandoned()) return;
    this.log.stats.compactionSteps += 1;
    if (this.readPosition >= this.segment.size) return this.finish();
    const length = Math.min(this.readLength, this.segment.size - this.readPosition);
    this.log.issue({ op: 'read', requestId: 0, file: this.segment.name, offset: this.readPosition, length }, (result) => {
      if (this.abandoned()) return;
      if (!result.ok) return this.log.fail(`stream ${this.files.name}: compaction could not read ${this.segment.name}: ${result.code} ${result.message}`);
      this.copyKept(result.bytes ?? new Uint8Array(0));
    });
  }

  private abandoned(): boolean {
    if (!this.files.deleted && !this.segment.deleted && this.segment.generation === this.generation) return false;
    this.state.job = null;
    this.log.issue({ op: 'delete', requestId: 0, file: this.temporary }, () => {});
    return true;
  }

  private copyKept(bytes: Uint8Array): void {
    const keep: ScannedFrame[] = [];
    const scan = scanSegment(bytes, 0, this.afterOffset, (frame) => {
      const topic = entryTopic(frame.body);
      // An entry whose topic cannot be read is kept: compaction never drops what it cannot judge.
      if (topic === null || (this.state.latest.get(topic) ?? -1) <= frame.offset) keep.push(frame);
      else this.dropped += 1;
      return true;
    });
    const advanced = scan.end;
    if (scan.ending.kind === 'incomplete' && advanced === 0) {
      // One frame larger than a chunk: read it whole.
      this.readLength = Math.max(this.readLength, scan.ending.frameBytesNeeded);
      return this.step();
    }
    if (scan.ending.kind === 'damaged') {
      // A damaged frame is never dropped by compaction (readers report it): the segment stays as it is.
      this.log.note('warn', 'stream-compaction-skipped', { stream: this.files.name, file: this.segment.name, position: this.readPosition + scan.ending.position, why: 'a damaged frame' });
      return this.giveUp();
    }
    this.afterOffset = scan.lastOffset;
    this.readPosition += advanced;
    let size = 0;
    for (const frame of keep) size += frame.frameBytes;
    const out = new Uint8Array(size);
    let at = 0;
    for (const frame of keep) {
      out.set(bytes.subarray(frame.position, frame.position + frame.frameBytes), at);
      this.index.offer(frame.offset, this.writePosition + at, frame.timeMs);
      if (this.kept === 0) this.firstTimeMs = frame.timeMs;
      this.lastTimeMs = frame.timeMs;
      this.kept += 1;
      at += frame.frameBytes;
    }
    if (size === 0) return this.step();
    this.log.issue({ op: 'write', requestId: 0, file: this.temporary, offset: this.writePosition, bytes: out }, (result) => {
      if (!result.ok) return this.log.fail(`stream ${this.files.name}: compaction could not write ${this.temporary}: ${result.code} ${result.message}`);
      this.writePosition += size;
      this.step();
    });
  }

  private giveUp(): void {
    this.segment.compactedAtOffset = this.streamEnd;
    this.state.job = null;
    this.log.issue({ op: 'delete', requestId: 0, file: this.temporary }, () => {});
  }

  /** The copy is whole: sync it, switch to it as the rename over the segment is issued, sync the directory, write the index. */
  private finish(): void {
    if (this.dropped === 0) return this.giveUp();
    const temporary = this.temporary;
    const index = (): void => this.writeIndex();
    const directory = (): void => this.issueThen({ op: 'sync-directory', requestId: 0 }, index);
    const rename = (): void => {
      // Retention may have deleted the segment while the copy was synced: the copy goes instead.
      if (this.abandoned()) return;
      this.issueThen({ op: 'rename', requestId: 0, from: temporary, to: this.segment.name }, directory);
      this.switchOver();
    };
    const sync = (): void => this.issueThen({ op: 'sync', requestId: 0, file: temporary }, rename);
    // An empty copy is still a file: written as nothing, it must exist to be renamed.
    if (this.writePosition === 0) this.issueThen({ op: 'write', requestId: 0, file: temporary, offset: 0, bytes: new Uint8Array(0) }, sync);
    else sync();
  }

  /** Issues `request`; `next` once it succeeded (a failure is final, like every failed write). */
  private issueThen(request: Parameters<StreamLog['issue']>[0], next: () => void): void {
    this.log.issue(request, (result) => {
      if (!result.ok) return this.log.fail(`stream ${this.files.name}: compaction ${request.op} failed: ${result.code} ${result.message}`);
      next();
    });
  }

  /** The segment becomes the copy in memory; called as the rename is issued (see the module comment). */
  private switchOver(): void {
    const segment = this.segment;
    assert(!segment.deleted && segment.generation === this.generation, 'a compaction switches over a live segment it began on');
    segment.generation += 1;
    segment.index = this.index;
    segment.size = this.writePosition;
    segment.syncedSize = this.writePosition;
    segment.entryCount = this.kept;
    segment.firstTimeMs = this.firstTimeMs;
    segment.lastTimeMs = this.kept > 0 ? this.lastTimeMs : segment.lastTimeMs;
    segment.compactedAtOffset = this.streamEnd;
    this.log.stats.compactions += 1;
    this.log.stats.entriesCompacted += this.dropped;
    this.log.note('info', 'stream-segment-compacted', { stream: this.files.name, file: segment.name, kept: this.kept, dropped: this.dropped });
  }

  /** The rename is durable: the segment's `.idx` follows (not when retention deleted it meanwhile). */
  private writeIndex(): void {
    const segment = this.segment;
    if (this.files.deleted || segment.deleted) {
      this.state.job = null;
      return;
    }
    this.log.writeIndexFile(segment, () => {
      this.state.job = null;
    });
  }
}
