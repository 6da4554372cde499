/**
 * The stream log: every stream's segment files and in-memory tail, inside the durable store.
 *
 * Theory of operation. An append is a `stream-appended` record in the write-ahead log, committed
 * with the rest of its input's records as one group; the store hands the record to `observe`,
 * which puts its entries in each named stream's tail, with the record's LSN; an entry keeps the
 * record's bytes, whose end is its frame's body (store/stream-appended-codec.ts), so its payload
 * is not copied again and its frame is not encoded again. Nothing more happens
 * to an entry until the log is durable up to that LSN (`release`): only then may a reader see it
 * or a segment file hold it, so that no crash can give an offset a reader has seen to another
 * message. Released entries are written to the stream's active segment in batches (one request
 * in flight per stream) and synced lazily: when `unsyncedBytesMax` is written and unsynced, and
 * before a full segment is sealed (synced, index written) and the next one started. Entries
 * leave memory once synced; until then a snapshot of the log carries them (`unsynced`), because
 * the log records that hold them are deleted with the segments the snapshot covers.
 *
 * Trims (retention) and deletions take effect on the files only once their records are durable,
 * so recovery, which replays the records, never finds a file missing that the log still needs.
 * Reads of a file that changed or went away meanwhile come back `stale` and are made again.
 *
 * Recovery (stream-recovery.ts) runs before and after the log's replay: it finds each stream's
 * valid files first, so that replayed entries the files lost can be written back, and reconciles
 * the files with the replayed state last; `ready` is false until then.
 *
 * Failures of writes and syncs are final, like the log's (`failure`: the broker halts). A read
 * error is retried twice before it is.
 */
import { assert } from '../../assert.js';
import { allocateBytes } from '../../codec/byte-pool.js';
import type { StorageRequest, StorageResult } from '../../contract.js';
import { frameHeaderBytes } from '../record-frame.js';
import type { DurableState, StateRecord, StreamSnapshotSource, StreamState } from '../state-store.js';
import { streamAppendedEntryBodyStart } from '../stream-appended-codec.js';
import { type ScanResult, scanSegmentFrames } from './segment-scan.js';
import { createLastValueState, noteLatest, SegmentCompaction, TopicScan } from './stream-compaction.js';
import { decodeEntryAt, entryFrameBytes, payloadLength, type StreamEntry, writeEntryFrame } from './stream-entry.js';
import { AppendedEntry, createStreamFiles, dropTailBelow, indexFileName, pushTail, type Segment, type StreamFiles, segmentFileName, segmentIndexFor, tailEnd, tailEntryAt } from './stream-files.js';
import { encodeIndexFile, SparseIndex } from './stream-index.js';
import { type StreamCut, StreamRecovery, type StreamTrim } from './stream-recovery.js';
import { createStreamStoreStats, type SegmentSummary, type StreamNote, type StreamReadResult, type StreamStore } from './stream-store.js';

export interface StreamLogOptions {
  segmentBytesMax: number;
  indexIntervalBytes: number;
  unsyncedBytesMax: number;
  /**
   * Entries held in memory, every stream together (`stats.memoryBytes`, stream-files.ts `entryMemoryBytes`), at or past
   * half of which the writers sync what they wrote at once instead of at `unsyncedBytesMax`, so
   * that the backlog drains while the broker's throttle holds publishers back
   * (BrokerConfig.streamBacklogBytesMax).
   */
  backlogBytesMax: number;
  /** The largest single write; bigger batches are split. */
  writeBytesMax: number;
  /**
   * Released frame bytes a stream's writer gathers before it writes them (at most
   * `unsyncedBytesMax` is used; BrokerConfig.streamWriteBytesMin). The entries are in memory until
   * synced whatever this is, and durable in the log, so a later write keeps them no longer and
   * risks nothing; it only saves requests: written after every group commit, a stream fed by busy
   * publishers made one small write per commit, each a storage request with its completion input.
   */
  writeBytesMin: number;
  /** Topics a last-value stream tracks for compaction (BrokerConfig.streamLastValueTopicsMax). */
  lastValueTopicsMax: number;
}

/** Attempts of one read before a read error is final. */
const readAttemptsMax = 3;

/** Work a stream's writer does at most per request completion (bounded per input). */
interface PendingAction {
  readonly lsn: number;
  readonly run: () => void;
}

export class StreamLog implements StreamStore, StreamSnapshotSource {
  readonly stats = createStreamStoreStats();
  failure: string | null = null;
  private readonly streams = new Map<string, StreamFiles>();
  private readonly deleting = new Set<string>();
  private readonly handlers = new Map<number, (result: StorageResult) => void>();
  private outbox: StorageRequest[] = [];
  private readResults: StreamReadResult[] = [];
  private notes: StreamNote[] = [];
  private released = new Set<string>();
  /** Streams with entries not yet released. */
  private readonly unreleased = new Set<StreamFiles>();
  /** Trims and deletions waiting for their records to be durable, in LSN order. */
  private readonly pendingActions: PendingAction[] = [];
  private recovery: StreamRecovery | null;
  /** Streams recovery ended at a repair's mark, until the broker takes them to commit. */
  private recoveryCuts: StreamCut[] = [];
  /** Streams recovery started at their files (a trim a repair cut off the log), until the broker takes them to commit. */
  private recoveryTrims: StreamTrim[] = [];
  /** Repair marks by stream, deleted once the stream's `stream-cut` record is durable. */
  private cutMarkers = new Map<string, string[]>();
  private writing = false;

  constructor(
    readonly options: StreamLogOptions,
    private readonly nextRequestId: () => number,
  ) {
    assert(options.segmentBytesMax >= 4096, 'stream segments of at least 4 KiB');
    assert(options.writeBytesMax > 0 && options.indexIntervalBytes > 0, 'positive stream write and index sizes');
    assert(options.backlogBytesMax > 0, 'a positive stream backlog bound');
    this.recovery = new StreamRecovery(this, options.indexIntervalBytes);
  }

  get ready(): boolean {
    return this.recovery === null;
  }

  /** True once the files were listed and scanned: the log's own replay may begin. */
  get scanned(): boolean {
    return this.recovery === null || this.recovery.scanned;
  }

  // ---- storage plumbing -----------------------------------------------------------------------

  issue(request: StorageRequest, handler: (result: StorageResult) => void): void {
    const withId = { ...request, requestId: this.nextRequestId() } as StorageRequest;
    this.handlers.set(withId.requestId, handler);
    this.outbox.push(withId);
  }

  /** How many requests `takeRequests` would return now. */
  get requestsWaiting(): number {
    return this.outbox.length;
  }

  takeRequests(): StorageRequest[] {
    const requests = this.outbox;
    this.outbox = [];
    return requests;
  }

  /** Takes the result of a request this log issued; false when it is not one of ours. */
  handleResult(result: StorageResult): boolean {
    const handler = this.handlers.get(result.requestId);
    if (handler === undefined) return false;
    this.handlers.delete(result.requestId);
    handler(result);
    return true;
  }

  fail(message: string): void {
    this.failure ??= message;
  }

  note(level: StreamNote['level'], event: string, fields: StreamNote['fields']): void {
    this.notes.push({ level, event, fields });
  }

  takeNotes(): StreamNote[] {
    // Called after every broker input: no fresh array when there is nothing to take.
    if (this.notes.length === 0) return noNotes;
    const notes = this.notes;
    this.notes = [];
    return notes;
  }

  // ---- recovery -------------------------------------------------------------------------------

  /** A record replayed from the log or a snapshot (whole groups only): entries the files lost are kept. */
  observeRecovered(record: StateRecord): void {
    assert(this.recovery !== null, 'replayed records arrive during recovery');
    this.recovery.observe(record);
  }

  finishRecovery(state: DurableState): void {
    assert(this.recovery !== null, 'recovery finishes once');
    assert(this.recovery.scanned, 'recovery finishes after the scan');
    this.recovery.finish(state);
  }

  /** Recovery is done: the streams it rebuilt become the live ones and writing starts. */
  adoptRecovered(streams: readonly StreamFiles[], cuts: readonly StreamCut[], trims: readonly StreamTrim[], markers: ReadonlyMap<string, string[]>): void {
    assert(this.recovery !== null, 'adopted once');
    this.recovery = null;
    this.recoveryCuts = [...cuts];
    this.recoveryTrims = [...trims];
    this.cutMarkers = new Map(markers);
    this.writing = true;
    for (const files of streams) {
      this.stats.memoryBytes += files.tailMemoryBytes;
      this.streams.set(files.name, files);
      // The entries the files lost are written back at once, however few.
      files.writeThroughOffset = files.releasedOffset;
      this.pump(files);
      const lastValue = files.lastValue;
      if (lastValue === null) continue;
      // What memory holds is released; what the files held is learnt by a scan.
      for (let offset = files.tailStart; offset < files.releasedOffset; offset++) noteLatest(lastValue, tailEntryAt(files, offset).entry.topic, offset, this.options.lastValueTopicsMax);
      lastValue.scan = new TopicScan(this, files, lastValue, files.writtenOffset);
      lastValue.scan.step();
    }
  }

  takeRecoveryCuts(): StreamCut[] {
    const cuts = this.recoveryCuts;
    this.recoveryCuts = [];
    return cuts;
  }

  takeRecoveryTrims(): StreamTrim[] {
    const trims = this.recoveryTrims;
    this.recoveryTrims = [];
    return trims;
  }

  /** The repair's marks of a stream go once its cut is durable: a later start needs them no more. */
  private deleteCutMarkers(stream: string): void {
    const markers = this.cutMarkers.get(stream) ?? [];
    this.cutMarkers.delete(stream);
    for (const file of markers) {
      this.issue({ op: 'delete', requestId: 0, file }, (result) => {
        if (!result.ok && result.code !== 'ENOENT') this.fail(`stream ${stream}: delete of ${file} failed: ${result.code} ${result.message}`);
      });
    }
  }

  // ---- appends, trims and deletions, as their records are appended ----------------------------

  /**
   * A record appended to the log at `lsn` (live, after recovery). `encoded` is a `stream-appended`
   * record's binary body (stream-appended-codec.ts), whose end is the entry's frame body: the
   * entries keep it, so that neither their payload nor their frame is made again.
   */
  observe(record: StateRecord, lsn: number, encoded: Uint8Array | null = null): void {
    switch (record.kind) {
      case 'stream-created': {
        let files = this.streams.get(record.stream.name);
        if (files === undefined) {
          assert(!this.deleting.has(record.stream.name), 'a stream is not created while its files are being deleted');
          files = createStreamFiles(record.stream.name, record.nextOffset ?? 0);
          this.streams.set(record.stream.name, files);
        }
        this.defineLastValue(files, record.stream.lastValue);
        return;
      }
      case 'stream-deleted': {
        const files = this.filesOf(record.stream);
        files.deleted = true;
        // Its entries in memory go with it (the files object is dropped once its deletion runs).
        this.stats.memoryBytes -= files.tailMemoryBytes;
        this.streams.delete(record.stream);
        this.unreleased.delete(files);
        this.deleting.add(record.stream);
        this.pendingActions.push({ lsn, run: () => this.deleteFiles(files) });
        return;
      }
      case 'stream-trimmed': {
        const files = this.filesOf(record.stream);
        const firstOffset = record.firstOffset;
        this.pendingActions.push({ lsn, run: () => this.trim(files, firstOffset) });
        return;
      }
      case 'stream-appended':
        this.append(record, lsn, encoded);
        return;
      case 'stream-cut': {
        // Recovery already ended the files and the tail there (stream-recovery.ts).
        const files = this.filesOf(record.stream);
        assert(tailEnd(files) === record.nextOffset, 'a stream is cut where recovery ended it');
        const stream = record.stream;
        this.pendingActions.push({ lsn, run: () => this.deleteCutMarkers(stream) });
        return;
      }
      default:
        return;
    }
  }

  private append(record: Extract<StateRecord, { kind: 'stream-appended' }>, lsn: number, encoded: Uint8Array | null): void {
    // One body for every stream the message went to; the payload is a view into it.
    const body = encoded === null ? null : encoded.subarray(streamAppendedEntryBodyStart(encoded));
    const frameBytes = body === null ? 0 : frameHeaderBytes + body.length;
    const payloadStart = body === null ? 0 : body.length - record.payload.length;
    for (const reference of record.entries) {
      const files = this.filesOf(reference.stream);
      if (reference.offset !== tailEnd(files)) assert(false, `stream ${files.name} appends ${reference.offset} where ${tailEnd(files)} is next`);
      if (body === null) {
        const entry: StreamEntry = { offset: reference.offset, timeMs: record.timeMs, topic: record.topic, qos: record.qos, properties: record.properties, payload: record.payload };
        this.stats.memoryBytes += pushTail(files, { entry, lsn, frameBytes: entryFrameBytes(entry), body: null });
      } else {
        this.stats.memoryBytes += pushTail(files, new AppendedEntry(reference.offset, record.timeMs, record.topic, record.qos, record.properties, body, payloadStart, lsn, frameBytes));
      }
      this.unreleased.add(files);
    }
  }

  release(durableLsn: number): void {
    this.relieve();
    // Called after every broker input, so the common case (nothing to release) allocates nothing.
    if (this.unreleased.size === 0 && (this.pendingActions.length === 0 || this.pendingActions[0]!.lsn > durableLsn)) return;
    for (const files of this.unreleased) {
      const end = tailEnd(files);
      const before = files.releasedOffset;
      while (files.releasedOffset < end) {
        const tailEntry = tailEntryAt(files, files.releasedOffset);
        if (tailEntry.lsn > durableLsn) break;
        if (files.lastValue !== null) this.noteReleased(files, tailEntry.entry.topic, files.releasedOffset);
        files.unwrittenBytes += tailEntry.frameBytes;
        files.releasedOffset += 1;
      }
      if (files.releasedOffset === end) this.unreleased.delete(files);
      if (files.releasedOffset > before) {
        this.released.add(files.name);
        this.pump(files);
      }
    }
    let due = 0;
    while (due < this.pendingActions.length && this.pendingActions[due]!.lsn <= durableLsn) due += 1;
    // Taken out first: an action may queue nothing, but runs must not see themselves again.
    if (due === 0) return;
    for (const action of this.pendingActions.splice(0, due)) action.run();
  }

  takeReleased(): string[] {
    if (this.released.size === 0) return noNames;
    const names = [...this.released];
    this.released.clear();
    return names;
  }

  releasedOffset(stream: string): number {
    return this.filesOf(stream).releasedOffset;
  }

  isDeleting(stream: string): boolean {
    return this.deleting.has(stream);
  }

  forEachHeldEntry(visit: (stream: string, entry: StreamEntry) => void): void {
    for (const files of this.streams.values()) {
      for (let index = files.tailHead; index < files.tail.length; index++) visit(files.name, files.tail[index]!.entry);
    }
  }

  private filesOf(stream: string): StreamFiles {
    const files = this.streams.get(stream);
    if (files === undefined) assert(false, `no files for stream ${stream}`);
    return files;
  }

  // ---- the writer -----------------------------------------------------------------------------

  /**
   * Starts the stream's next write, sync or seal when it has none in flight. Released entries are
   * written once `writeBytesMin` of them gathered (see there), or at once below
   * `writeThroughOffset` (those recovery writes back) and under pressure (where a sync follows).
   */
  private pump(files: StreamFiles): void {
    if (!this.writing || files.step !== 'idle' || files.deleted || this.failure !== null) return;
    const active = files.segments[files.segments.length - 1];
    if (active !== undefined && !active.sealed && files.sealRequested) return this.seal(files, active);
    const pressure = this.underPressure();
    if (files.writtenOffset < files.releasedOffset && (pressure || files.writtenOffset < files.writeThroughOffset || files.unwrittenBytes >= this.writeBytesMin)) return this.write(files, active);
    if (active === undefined) return;
    const unsynced = active.size - active.syncedSize;
    if (unsynced >= this.options.unsyncedBytesMax || (unsynced > 0 && pressure)) this.sync(files, active);
  }

  /** `writeBytesMin`, never above what may wait unsynced (a sync follows a write that reached that). */
  private get writeBytesMin(): number {
    return Math.min(this.options.writeBytesMin, this.options.unsyncedBytesMax);
  }

  /** Whether the entries in memory are at half the backlog bound or more (see `backlogBytesMax`). */
  private underPressure(): boolean {
    return this.stats.memoryBytes * 2 >= this.options.backlogBytesMax;
  }

  /**
   * Under pressure, every idle writer syncs what it wrote (bounded by the number of streams):
   * a writer with nothing more to write would otherwise wait for appends the throttle holds back.
   */
  private relieve(): void {
    if (!this.writing || !this.underPressure()) return;
    for (const files of this.streams.values()) this.pump(files);
  }

  private write(files: StreamFiles, current: Segment | undefined): void {
    let active = current;
    if (active === undefined || active.sealed) {
      active = this.newSegment(files, files.writtenOffset);
      files.directoryDirty = true;
    }
    let count = 0;
    let bytes = 0;
    for (let offset = files.writtenOffset; offset < files.releasedOffset; offset++) {
      const frameBytes = tailEntryAt(files, offset).frameBytes;
      const fitsSegment = active.size + bytes + frameBytes <= this.options.segmentBytesMax || active.size + bytes === 0;
      if (!fitsSegment || (count > 0 && bytes + frameBytes > this.options.writeBytesMax)) break;
      count += 1;
      bytes += frameBytes;
    }
    if (count === 0) {
      // The next entry does not fit: seal this segment, and the next write starts a new one.
      files.sealRequested = true;
      return this.pump(files);
    }
    // From the encoder's byte pool, like the log's batches (log-writer.ts).
    const buffer = allocateBytes(bytes);
    const positions: number[] = [];
    let at = 0;
    for (let index = 0; index < count; index++) {
      positions.push(active.size + at);
      const tailEntry = tailEntryAt(files, files.writtenOffset + index);
      at = writeEntryFrame(buffer, at, tailEntry.entry, tailEntry.body);
    }
    assert(at === bytes, 'stream batch size computed exactly');
    const segment = active;
    const firstOffset = files.writtenOffset;
    files.step = 'write';
    this.issue({ op: 'write', requestId: 0, file: segment.name, offset: segment.size, bytes: buffer }, (result) => {
      files.step = 'idle';
      if (files.deleted) return;
      if (!result.ok) return this.fail(`stream ${files.name}: write to ${segment.name} failed: ${result.code} ${result.message}`);
      this.written(files, segment, firstOffset, positions, bytes);
      this.pump(files);
    });
  }

  private written(files: StreamFiles, segment: Segment, firstOffset: number, positions: readonly number[], bytes: number): void {
    assert(files.writtenOffset === firstOffset, 'stream writes complete in order');
    assert(firstOffset + positions.length <= files.releasedOffset, 'only released entries are written');
    for (let index = 0; index < positions.length; index++) {
      const entry = tailEntryAt(files, firstOffset + index).entry;
      segment.index.offer(entry.offset, positions[index]!, entry.timeMs);
      if (segment.entryCount === 0) segment.firstTimeMs = entry.timeMs;
      segment.lastTimeMs = entry.timeMs;
      segment.entryCount += 1;
    }
    segment.size += bytes;
    segment.endOffset = firstOffset + positions.length;
    files.writtenOffset = segment.endOffset;
    files.unwrittenBytes -= bytes;
    assert(files.unwrittenBytes >= 0 && (files.unwrittenBytes === 0) === (files.writtenOffset === files.releasedOffset), 'unwritten bytes are those of the released entries not written');
    this.stats.entriesWritten += positions.length;
    this.stats.bytesWritten += bytes;
  }

  private newSegment(files: StreamFiles, baseOffset: number): Segment {
    const segment: Segment = {
      baseOffset,
      name: segmentFileName(files.name, baseOffset),
      size: 0,
      syncedSize: 0,
      endOffset: baseOffset,
      firstTimeMs: 0,
      lastTimeMs: 0,
      index: new SparseIndex(this.options.indexIntervalBytes),
      sealed: false,
      indexFileExists: false,
      generation: 0,
      deleted: false,
      entryCount: 0,
      compactedAtOffset: -1,
    };
    files.segments.push(segment);
    return segment;
  }

  /** Syncs the active segment (and the directory, when a new segment's name is not yet durable). */
  private sync(files: StreamFiles, segment: Segment): void {
    const target = { offset: files.writtenOffset, size: segment.size };
    files.step = 'sync';
    this.issue({ op: 'sync', requestId: 0, file: segment.name }, (result) => {
      if (files.deleted) return;
      if (!result.ok) return this.fail(`stream ${files.name}: sync of ${segment.name} failed: ${result.code} ${result.message}`);
      if (!files.directoryDirty) return this.synced(files, segment, target);
      files.step = 'sync-directory';
      this.issue({ op: 'sync-directory', requestId: 0 }, (directoryResult) => {
        if (files.deleted) return;
        if (!directoryResult.ok) return this.fail(`stream ${files.name}: directory sync failed: ${directoryResult.code} ${directoryResult.message}`);
        files.directoryDirty = false;
        this.synced(files, segment, target);
      });
    });
  }

  private synced(files: StreamFiles, segment: Segment, target: { offset: number; size: number }): void {
    assert(target.offset <= files.writtenOffset && target.offset >= files.syncedOffset, 'a sync covers what was written, and moves forward');
    assert(target.size <= segment.size, 'a sync covers what its segment holds');
    files.step = 'idle';
    segment.syncedSize = target.size;
    files.syncedOffset = target.offset;
    this.stats.segmentSyncs += 1;
    this.stats.memoryBytes -= dropTailBelow(files, files.syncedOffset);
    this.pump(files);
  }

  /** A full active segment: synced first, then its index written; the next write starts a new segment. */
  private seal(files: StreamFiles, segment: Segment): void {
    if (segment.syncedSize < segment.size || files.directoryDirty) return this.sync(files, segment);
    files.step = 'index';
    this.writeIndexFile(segment, () => {
      files.step = 'idle';
      if (files.deleted) return;
      segment.sealed = true;
      files.sealRequested = false;
      this.pump(files);
    });
  }

  /**
   * Writes a segment's `.idx` (not synced: an index lost or torn by a crash is rebuilt from the
   * segment). An older index file is deleted first, so that no stale bytes follow the new ones.
   */
  writeIndexFile(segment: Segment, done: () => void): void {
    const file = indexFileName(segment.name);
    const summary = { baseOffset: segment.baseOffset, segmentBytes: segment.size, endOffset: segment.endOffset, lastTimeMs: segment.lastTimeMs, entryCount: segment.entryCount };
    const bytes = encodeIndexFile(segment.index, summary);
    const write = (): void =>
      this.issue({ op: 'write', requestId: 0, file, offset: 0, bytes }, (result) => {
        if (!result.ok) return this.fail(`stream index ${file}: write failed: ${result.code} ${result.message}`);
        segment.indexFileExists = true;
        done();
      });
    if (!segment.indexFileExists) return write();
    this.issue({ op: 'delete', requestId: 0, file }, (result) => {
      if (!result.ok && result.code !== 'ENOENT') return this.fail(`stream index ${file}: delete failed: ${result.code} ${result.message}`);
      write();
    });
  }

  // ---- last-value compaction ----------------------------------------------------------------

  /** A stream became (or stopped being) a last-value stream. */
  private defineLastValue(files: StreamFiles, lastValue: boolean): void {
    if (!lastValue) {
      files.lastValue = null;
      return;
    }
    if (files.lastValue !== null) return;
    files.lastValue = createLastValueState();
    // A stream that already has files (a redefinition) must learn their topics first.
    if (files.segments.length > 0) {
      files.lastValue.scan = new TopicScan(this, files, files.lastValue, files.writtenOffset);
      files.lastValue.scan.step();
    }
  }

  private noteReleased(files: StreamFiles, topic: string, offset: number): void {
    const lastValue = files.lastValue!;
    if (!lastValue.overLimit && !noteLatest(lastValue, topic, offset, this.options.lastValueTopicsMax)) this.lastValueOverLimit(files);
  }

  /** The stream's topics outgrew their bound: it is compacted no more (said once). */
  lastValueOverLimit(files: StreamFiles): void {
    const lastValue = files.lastValue;
    if (lastValue === null) return;
    lastValue.latest.clear();
    lastValue.scan = null;
    this.note('warn', 'stream-compaction-stopped', { stream: files.name, why: `more than streamLastValueTopicsMax (${this.options.lastValueTopicsMax}) topics` });
  }

  compact(stream: string, nextOffset: number): boolean {
    const files = this.filesOf(stream);
    const lastValue = files.lastValue;
    if (!this.writing || lastValue === null || lastValue.overLimit || lastValue.scan !== null || lastValue.job !== null) return false;
    const segments = files.segments;
    for (let index = 0; index < segments.length - 1; index++) {
      const segment = segments[index]!;
      if (!segment.sealed || segment.deleted || segment.entryCount === 0) continue;
      // Worth a rewrite when never compacted, or when as many entries came since as it holds.
      if (segment.compactedAtOffset >= 0 && nextOffset - segment.compactedAtOffset < segment.entryCount) continue;
      lastValue.job = new SegmentCompaction(this, files, lastValue, segment, nextOffset);
      lastValue.job.step();
      return true;
    }
    return false;
  }

  // ---- trims and deletions ------------------------------------------------------------------

  /** Deletes the sealed segments wholly below `firstOffset` (their trim record is durable). */
  private trim(files: StreamFiles, firstOffset: number): void {
    if (files.deleted) return;
    const doomed: Segment[] = [];
    while (files.segments.length > 1 && files.segments[0]!.sealed && files.segments[1]!.baseOffset <= firstOffset) doomed.push(files.segments.shift()!);
    if (doomed.length > 0) this.deleteSegments(files.name, doomed, () => {});
  }

  private deleteFiles(files: StreamFiles): void {
    const segments = files.segments.splice(0);
    this.deleteSegments(files.name, segments, () => this.deleting.delete(files.name));
  }

  /** Deletes segments and their indexes, then syncs the directory; `done` once it is durable. */
  deleteSegments(stream: string, segments: readonly Segment[], done: () => void): void {
    const names: string[] = [];
    for (const segment of segments) {
      segment.deleted = true;
      segment.generation += 1;
      names.push(segment.name);
      if (segment.indexFileExists) names.push(indexFileName(segment.name));
    }
    this.stats.segmentsDeleted += segments.length;
    for (const file of names) {
      this.issue({ op: 'delete', requestId: 0, file }, (result) => {
        if (!result.ok && result.code !== 'ENOENT') this.fail(`stream ${stream}: delete of ${file} failed: ${result.code} ${result.message}`);
      });
    }
    this.issue({ op: 'sync-directory', requestId: 0 }, (result) => {
      if (!result.ok) return this.fail(`stream ${stream}: directory sync failed: ${result.code} ${result.message}`);
      done();
    });
  }

  // ---- reading --------------------------------------------------------------------------------

  readMemory(stream: string, offset: number, bytesMax: number, into: StreamEntry[]): number | null {
    const files = this.filesOf(stream);
    if (offset < files.tailStart) return null;
    assert(files.releasedOffset <= tailEnd(files), 'released entries are in the tail');
    let next = offset;
    let bytes = 0;
    while (next < files.releasedOffset && (bytes < bytesMax || next === offset)) {
      const entry = tailEntryAt(files, next).entry;
      into.push(entry);
      bytes += payloadLength(entry);
      next += 1;
    }
    return next;
  }

  startRead(stream: string, offset: number, bytesMax: number, token: number): void {
    const files = this.filesOf(stream);
    this.readSegment(files, offset, bytesMax, token);
  }

  takeReadResults(): StreamReadResult[] {
    if (this.readResults.length === 0) return noResults;
    const results = this.readResults;
    this.readResults = [];
    return results;
  }

  private readSegment(files: StreamFiles, from: number, bytesMax: number, token: number): void {
    const located = locate(files, from);
    if (located === null) {
      // Not in the files (any more): the reader looks in memory again.
      return this.pushResult(token, files.name, [], from, true, null);
    }
    const { segment, offset } = located;
    const point = segment.index.pointAtOrBefore(offset);
    const position = point < 0 ? 0 : segment.index.positionAt(point);
    const afterOffset = point < 0 ? segment.baseOffset - 1 : segment.index.offsetAt(point) - 1;
    this.issueRead({ files, segment, generation: segment.generation, offset, position, afterOffset, bytesMax, token }, 1);
  }

  private issueRead(plan: ReadPlan, attempt: number): void {
    const { files, segment, generation, token } = plan;
    const length = Math.min(plan.bytesMax, segment.size - plan.position);
    this.stats.reads += 1;
    this.issue({ op: 'read', requestId: 0, file: segment.name, offset: plan.position, length }, (result) => {
      if (files.deleted || segment.deleted || segment.generation !== generation) return this.pushResult(token, files.name, [], plan.offset, true, null);
      if (!result.ok) {
        if (attempt < readAttemptsMax) return this.issueRead(plan, attempt + 1);
        return this.fail(`stream ${files.name}: read of ${segment.name} failed ${attempt} times: ${result.code} ${result.message}`);
      }
      this.stats.readBytes += result.bytes?.length ?? 0;
      this.parseRead(plan, result.bytes ?? new Uint8Array(0));
    });
  }

  private parseRead(plan: ReadPlan, bytes: Uint8Array): void {
    const entries: StreamEntry[] = [];
    let bad: { offset: number; position: number; reason: string } | null = null;
    // Entries keep the read's bytes (stream-entry.ts ReadEntry): no copy, no view per entry.
    const visit = (offset: number, position: number, frameBytes: number, _timeMs: number, bodyStart: number): boolean => {
      if (offset < plan.offset) return true;
      try {
        entries.push(decodeEntryAt(offset, bytes, bodyStart, position + frameBytes));
        return true;
      } catch (error) {
        bad = { offset, position: plan.position + position, reason: (error as Error).message };
        return false;
      }
    };
    let scan = scanSegmentFrames(bytes, 0, plan.afterOffset, visit);
    // Bounded: each pass resumes further on in the bytes.
    for (;;) {
      const ending = scan.ending;
      // Damage before the offset this reader wants is not its loss: read on after it.
      if (bad !== null || entries.length > 0 || ending.kind !== 'damaged' || ending.resume === null || ending.resume.offset > plan.offset) break;
      scan = scanSegmentFrames(bytes, ending.resume.position, ending.resume.offset - 1, visit);
    }
    const found = bad as { offset: number; position: number; reason: string } | null;
    if (found !== null) return this.damagedRead(plan, entries, found.offset, found.offset + 1, found.position, found.reason);
    this.concludeRead(plan, bytes, entries, scan);
  }

  private concludeRead(plan: ReadPlan, bytes: Uint8Array, entries: StreamEntry[], scan: ScanResult): void {
    const { files, segment, token } = plan;
    const ending = scan.ending;
    const atEnd = plan.position + bytes.length >= segment.size;
    const last = entries.length > 0 ? entries[entries.length - 1]!.offset : -1;
    if (ending.kind === 'clean' || (ending.kind === 'incomplete' && plan.position + ending.position + ending.frameBytesNeeded <= segment.size)) {
      if (entries.length > 0) return this.pushResult(token, files.name, entries, ending.kind === 'clean' && atEnd ? Math.max(segment.endOffset, last + 1) : last + 1, false, null);
      if (ending.kind === 'clean' && atEnd) return this.pushResult(token, files.name, entries, Math.max(segment.endOffset, plan.offset), false, null);
      // Not one whole entry at or after the offset in what was read (it began at an index point
      // before it): read again, far enough to hold the next frame, or twice as far.
      const needed = ending.kind === 'incomplete' ? ending.position + ending.frameBytesNeeded : bytes.length * 2;
      return this.issueRead({ ...plan, bytesMax: Math.max(plan.bytesMax, needed) }, 1);
    }
    // Damage (or a frame running past its segment's end): what came before it goes first; the
    // read that starts at the damage reports it.
    if (entries.length > 0) return this.pushResult(token, files.name, entries, last + 1, false, null);
    const position = plan.position + ending.position;
    const from = Math.max(plan.offset, scan.lastOffset + 1);
    const reason = ending.kind === 'damaged' ? ending.reason : 'a frame runs past the end of its segment';
    if (ending.kind === 'damaged' && ending.resume !== null) return this.damagedRead(plan, entries, from, ending.resume.offset, position, reason);
    // No valid frame after the damage in what was read: look further on, past it.
    if (!atEnd) return this.issueRead({ ...plan, position: position + 1, afterOffset: Math.max(scan.lastOffset, plan.offset - 1) }, 1);
    this.damagedRead(plan, entries, from, segment.endOffset, position, reason);
  }

  /** A damaged frame between `from` and `to` (exclusive): reported, counted, and the reader told. */
  private damagedRead(plan: ReadPlan, entries: StreamEntry[], from: number, to: number, position: number, reason: string): void {
    if (to <= from) return this.pushResult(plan.token, plan.files.name, entries, Math.max(from, plan.offset), false, null);
    this.stats.damagedFrames += 1;
    this.note('error', 'stream-entry-damaged', { stream: plan.files.name, file: plan.segment.name, position, reason, skippedFrom: from, skippedTo: to - 1 });
    this.pushResult(plan.token, plan.files.name, entries, to, false, { fromOffset: from, toOffset: to });
  }

  private pushResult(token: number, stream: string, entries: StreamEntry[], nextOffset: number, stale: boolean, damaged: StreamReadResult['damaged']): void {
    this.readResults.push({ token, stream, entries, nextOffset, stale, damaged });
  }

  // ---- what the broker and operators look up --------------------------------------------------

  locateTime(stream: string, timeMs: number): number {
    const files = this.filesOf(stream);
    const segments = files.segments;
    // Entry times never decrease, so segments' last times do not either: binary search.
    let low = 0;
    let high = segments.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const segment = segments[middle]!;
      if (segment.entryCount > 0 && segment.lastTimeMs < timeMs) low = middle + 1;
      else high = middle;
    }
    const segment = segments[low];
    if (segment !== undefined && segment.entryCount > 0) {
      const point = segment.index.pointBeforeTime(timeMs);
      return point < 0 ? segment.baseOffset : segment.index.offsetAt(point);
    }
    // Not in the files: the first entry in memory past them at or after the time, else the end.
    let first = Math.max(files.writtenOffset, files.tailStart);
    let last = tailEnd(files);
    while (first < last) {
      const middle = Math.floor((first + last) / 2);
      if (tailEntryAt(files, middle).entry.timeMs < timeMs) first = middle + 1;
      else last = middle;
    }
    return first;
  }

  segments(stream: string): SegmentSummary[] {
    return this.filesOf(stream).segments.map((segment) => ({
      baseOffset: segment.baseOffset,
      endOffset: segment.endOffset,
      bytes: segment.size,
      firstTimeMs: segment.firstTimeMs,
      lastTimeMs: segment.lastTimeMs,
      sealed: segment.sealed,
      entries: segment.entryCount,
    }));
  }

  /** Snapshot source: entries above the synced offset, which the snapshot must carry. */
  unsynced(stream: StreamState): { persistedOffset: number; records: StateRecord[] } {
    const files = this.filesOf(stream.name);
    assert(tailEnd(files) === stream.nextOffset, `stream ${stream.name}: the store holds up to ${tailEnd(files)}, the state ${stream.nextOffset}`);
    const records: StateRecord[] = [];
    for (let offset = files.syncedOffset; offset < stream.nextOffset; offset++) {
      const { entry } = tailEntryAt(files, offset);
      const record: StateRecord = { kind: 'stream-appended', timeMs: entry.timeMs, topic: entry.topic, qos: entry.qos, payload: entry.payload, entries: [{ stream: stream.name, offset }] };
      if (entry.properties !== undefined) record.properties = entry.properties;
      records.push(record);
    }
    return { persistedOffset: files.syncedOffset, records };
  }

  /** The files of a stream, for tests and compaction. */
  filesFor(stream: string): StreamFiles | undefined {
    return this.streams.get(stream);
  }
}

/** One read of a segment for a reader. */
interface ReadPlan {
  readonly files: StreamFiles;
  readonly segment: Segment;
  readonly generation: number;
  /** The first offset the reader wants. */
  readonly offset: number;
  /** Where in the file the read starts, and an offset below the first frame there. */
  readonly position: number;
  readonly afterOffset: number;
  readonly bytesMax: number;
  readonly token: number;
}

/** The segment holding `from` (or the next entry after it) and the offset to read from, or null. */
function locate(files: StreamFiles, from: number): { segment: Segment; offset: number } | null {
  let segmentIndex = Math.max(0, segmentIndexFor(files.segments, from));
  let offset = from;
  let segment = files.segments[segmentIndex];
  // Past the end of its segment (compaction gaps, or before the first segment): on to the next.
  while (segment !== undefined && (offset >= segment.endOffset || segment.size === 0)) {
    segment = files.segments[++segmentIndex];
    if (segment !== undefined && offset < segment.baseOffset) offset = segment.baseOffset;
  }
  if (segment === undefined || offset >= files.writtenOffset) return null;
  return { segment, offset: Math.max(offset, segment.baseOffset) };
}

const noNames: string[] = [];
const noNotes: StreamNote[] = [];
const noResults: StreamReadResult[] = [];
