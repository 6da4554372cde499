/**
 * Recovery of the stream files, in two phases around the write-ahead log's replay.
 *
 * Scan (before the replay). Every stream's files are listed and checked: a sealed segment's index
 * is read and trusted only if it describes the segment as it is, else rebuilt by scanning the
 * segment (the frames carry their own checksums; damage in a sealed segment that valid frames
 * follow is reported and left for readers to skip). The active (last) segment is scanned whole,
 * which gives its index and its valid end V: the end of its first run of valid frames. Its
 * writes are synced lazily, so a crash may keep any subset of the unsynced ones: a hole followed
 * by valid frames is what a crash leaves, not damage, and everything from the first hole on is
 * cut (the log still holds those entries; if it does not, they were synced, and that is damage:
 * see below). The cut waits for reconcile, which knows which: damage is left on the disk as it is
 * for the repair to copy aside. Leftover temporary files of a compaction are deleted.
 *
 * Replay. The log's records are handed to `observe` as they are applied (whole groups only). An
 * entry is kept in memory until reconcile only when the files may lack it, that is when its offset
 * is at or past the scanned files' valid end (or the stream has no files); an entry below is
 * dropped at once, and so is every kept entry below a replayed trim or above a replayed cut. What
 * is kept is what the files lost (not synced when the broker stopped) or never had (not yet
 * written): bounded by what the writer may hold in memory when the broker stops
 * (streamBacklogBytesMax, through the publishers' throttle), not by the entries appended since
 * the last snapshot (a first version kept them all, since a log cut by a repair could need them:
 * 630 MiB resident after a restart on a million entries). `stats.recoveryHeldBytesPeak` reports
 * the most it held. Why an entry below the files' valid end is never needed:
 * - from the files' first segment on, the files hold it, or held it and last-value compaction
 *   removed it. When the log ends below the files (a repair cut it), reconcile cuts the files at
 *   the log's end (`cutAbove`), and every offset below the end stays in the files or compacted
 *   away, never missing, whatever segments it drops;
 * - below the files' first segment, its segment was deleted by retention, which happens only
 *   once the trim that removed it is durable: the state starts at or after the files then. Only a
 *   repair that cut that trim off the log makes the state start earlier (simulator seed 108); the
 *   entries are gone all the same, so recovery trims the stream again to where its files start
 *   (logged `stream-trim-restored`, committed by the broker as a `stream-trimmed` record before it
 *   starts, like a cut).
 *
 * Reconcile (after the replay, with the replayed state). For each stream on disk the state no
 * longer holds, its files are deleted (a deletion whose file removal the crash interrupted). For
 * each stream of the state: segments above its next offset are cut (a log repair cut records the
 * files still had); segments wholly below its first offset are deleted (retention that the crash
 * interrupted); the entries kept from the replay must cover every offset from the files' end to
 * the stream's end, or entries that were synced are missing and recovery stops with "corrupt
 * stream:", naming the file; rebuilt indexes are written. The stream log then adopts the result,
 * writes the kept entries back to the files, and the broker may start.
 *
 * Repair. After "corrupt stream:" the operator's repair (repair.ts, `planStreamRepair`) cuts the
 * active segment after its last valid entry and leaves a mark (`stream-NAME-OFFSET.cut`). With a
 * mark, missing entries no longer stop recovery: the stream ends at the first one missing (the
 * kept entries after it are dropped too, so that offsets stay dense), the loss is logged
 * (`stream-cut`, with the count) and handed to the broker, which commits a `stream-cut` record
 * before it starts; that record moves every position past the cut back to it, its replay drops
 * the old entries at those offsets, and once it is durable the mark is deleted. A mark that finds
 * nothing missing is deleted at once.
 */
import { assert } from '../../assert.js';
import type { StorageResult } from '../../contract.js';
import type { DurableState, StateRecord, StreamState } from '../state-store.js';
import { findResume, type ScannedFrame, type ScanResult, scanSegment } from './segment-scan.js';
import { createLastValueState } from './stream-compaction.js';
import { entryFrameBytes, type StreamEntry } from './stream-entry.js';
import {
  createStreamFiles,
  cutMarkerPattern,
  entryMemoryBytes,
  indexFileName,
  indexFilePattern,
  pushTail,
  type Segment,
  type StreamFiles,
  segmentFilePattern,
  temporaryFilePattern,
} from './stream-files.js';
import { decodeIndexFile, SparseIndex } from './stream-index.js';
import type { StreamLog } from './stream-log.js';

/** A read of a file during recovery takes at most this many bytes per request. */
const recoveryReadBytesMax = 4 * 1024 * 1024;

interface FoundStream {
  readonly name: string;
  readonly segments: Segment[];
  /** Segments whose `.idx` was missing or untrusted and was rebuilt: written back in the last phase. */
  readonly rebuilt: Set<Segment>;
  /** The offset after the last valid entry of the files (V). */
  validEnd: number;
  /** The active segment's bytes past its valid frames: cut once reconcile knows nothing is lost with them. */
  tornTail: { readonly segment: Segment; readonly validEnd: number; readonly bytesDropped: number } | null;
}

/** A stream whose start recovery moved up to its files': the broker commits it (`stream-trimmed`) before it starts. */
export interface StreamTrim {
  readonly stream: string;
  readonly firstOffset: number;
}

/** A stream recovery ended early at a repair's mark: the broker commits it (`stream-cut`) before it starts. */
export interface StreamCut {
  readonly stream: string;
  readonly nextOffset: number;
  readonly lost: number;
}

export class StreamRecovery {
  scanned = false;
  private readonly found = new Map<string, FoundStream>();
  private tasks: (() => void)[] = [];
  /** During replay: entries the files do not hold, per stream, and the streams that exist. */
  private readonly kept = new Map<string, StreamEntry[]>();
  /** What the entries in `kept` cost in memory now (stream-files.ts, `entryMemoryBytes`). */
  private keptBytes = 0;
  private readonly existing = new Set<string>();
  private finished: StreamFiles[] = [];
  /** Repair marks (`stream-NAME-OFFSET.cut`) by stream. */
  readonly markers = new Map<string, string[]>();
  /** Streams ended at a repair's mark, for the broker to commit. */
  readonly cuts: StreamCut[] = [];
  /** Streams whose start recovery moved up to their files', for the broker to commit. */
  readonly trims: StreamTrim[] = [];

  constructor(
    private readonly log: StreamLog,
    private readonly indexIntervalBytes: number,
  ) {
    log.issue({ op: 'list', requestId: 0 }, (result) => {
      if (!result.ok) return log.fail(`recovery could not list the stream files: ${result.code} ${result.message}`);
      this.planScan(result.files ?? []);
      this.nextTask();
    });
  }

  private nextTask(): void {
    if (this.log.failure !== null) return;
    const task = this.tasks.shift();
    if (task !== undefined) task();
  }

  private run(request: Parameters<StreamLog['issue']>[0], done: (result: Extract<StorageResult, { ok: true }>) => void, tolerateMissing = false): void {
    this.log.issue(request, (result) => {
      if (result.ok) return done(result);
      if (tolerateMissing && result.code === 'ENOENT') return done({ requestId: result.requestId, ok: true });
      this.log.fail(`stream recovery could not ${request.op} ${'file' in request ? request.file : 'the data directory'}: ${result.code} ${result.message}`);
    });
  }

  // ---- scan -----------------------------------------------------------------------------------

  private planScan(files: readonly { name: string; size: number }[]): void {
    const indexes = new Map<string, number>();
    for (const file of files) {
      if (indexFilePattern.test(file.name)) indexes.set(file.name, file.size);
      const marker = cutMarkerPattern.exec(file.name);
      if (marker !== null) this.markers.set(marker[1]!, [...(this.markers.get(marker[1]!) ?? []), file.name]);
      if (temporaryFilePattern.test(file.name)) {
        this.tasks.push(() => this.run({ op: 'delete', requestId: 0, file: file.name }, () => this.nextTask(), true));
        this.log.note('warn', 'stream-file-removed', { file: file.name, why: 'left by a compaction that never completed' });
      }
    }
    const segmentNames = new Set<string>();
    for (const file of files) {
      const match = segmentFilePattern.exec(file.name);
      if (match === null) continue;
      segmentNames.add(file.name);
      const name = match[1]!;
      let found = this.found.get(name);
      if (found === undefined) {
        found = { name, segments: [], rebuilt: new Set(), validEnd: 0, tornTail: null };
        this.found.set(name, found);
      }
      found.segments.push(this.segmentFromFile(file.name, Number(match[2]), file.size, indexes.has(indexFileName(file.name))));
    }
    // An index whose segment is gone is a leftover of a deletion the crash interrupted.
    for (const index of indexes.keys()) {
      if (!segmentNames.has(`${index.slice(0, -4)}.seg`)) this.tasks.push(() => this.run({ op: 'delete', requestId: 0, file: index }, () => this.nextTask(), true));
    }
    for (const found of this.found.values()) {
      found.segments.sort((a, b) => a.baseOffset - b.baseOffset);
      for (let index = 0; index < found.segments.length; index++) {
        const segment = found.segments[index]!;
        const isLast = index === found.segments.length - 1;
        if (!isLast && segment.indexFileExists) this.tasks.push(() => this.readIndex(found, segment, indexes.get(indexFileName(segment.name))!));
        else this.tasks.push(() => this.scanFile(found, segment, isLast));
      }
    }
    // Truncations and removals above, and the names of the files trusted, made durable (a data
    // directory without stream files needs nothing).
    const anyStreamFile = this.found.size > 0 || indexes.size > 0 || this.tasks.length > 0;
    this.tasks.push(() => {
      if (!anyStreamFile) {
        this.scanned = true;
        return;
      }
      this.run({ op: 'sync-directory', requestId: 0 }, () => {
        this.scanned = true;
      });
    });
  }

  private segmentFromFile(name: string, baseOffset: number, size: number, indexFileExists: boolean): Segment {
    return {
      baseOffset,
      name,
      size,
      syncedSize: size,
      endOffset: baseOffset,
      firstTimeMs: 0,
      lastTimeMs: 0,
      index: new SparseIndex(this.indexIntervalBytes),
      sealed: true,
      indexFileExists,
      generation: 0,
      deleted: false,
      entryCount: 0,
      compactedAtOffset: -1,
    };
  }

  /** Reads a whole file in bounded requests; `done` gets what it holds. */
  private readWhole(file: string, size: number, done: (bytes: Uint8Array) => void): void {
    const buffer = new Uint8Array(size);
    let filled = 0;
    const next = (): void => {
      if (filled >= size) return done(buffer);
      const length = Math.min(recoveryReadBytesMax, size - filled);
      this.run({ op: 'read', requestId: 0, file, offset: filled, length }, (result) => {
        const bytes = result.bytes ?? new Uint8Array(0);
        // The file shrank since it was listed: what was read is all there is.
        if (bytes.length === 0) return done(buffer.subarray(0, filled));
        buffer.set(bytes.subarray(0, size - filled), filled);
        filled += Math.min(bytes.length, size - filled);
        next();
      });
    };
    next();
  }

  private readIndex(found: FoundStream, segment: Segment, indexBytes: number): void {
    this.readWhole(indexFileName(segment.name), indexBytes, (bytes) => {
      const decoded = decodeIndexFile(bytes, segment.baseOffset, segment.size, this.indexIntervalBytes);
      if (decoded === null) {
        this.log.note('warn', 'stream-index-rebuilt', { stream: found.name, file: indexFileName(segment.name), why: 'missing, damaged or stale' });
        return this.scanFile(found, segment, false);
      }
      segment.index = decoded.index;
      segment.endOffset = decoded.summary.endOffset;
      segment.lastTimeMs = decoded.summary.lastTimeMs;
      segment.entryCount = decoded.summary.entryCount;
      segment.firstTimeMs = decoded.index.length > 0 ? decoded.index.timeAt(0) : 0;
      this.nextTask();
    });
  }

  /**
   * Scans a segment whole: its index, end and times. A torn tail of the active segment is cut
   * later, in reconcile, once the log is known to hold what it held: if it does not, those bytes
   * were synced and damaged, recovery stops, and the repair (repair.ts) copies them aside first.
   */
  private scanFile(found: FoundStream, segment: Segment, isLast: boolean): void {
    this.readWhole(segment.name, segment.size, (bytes) => {
      const validEnd = this.indexFrames(found, segment, bytes, !isLast);
      if (!isLast) found.rebuilt.add(segment);
      if (isLast) found.validEnd = segment.endOffset;
      if (validEnd === bytes.length && bytes.length === segment.size) {
        if (!isLast) return this.nextTask();
        // What the active segment holds is trusted from here on as synced, so it is made so: a
        // process crash leaves unsynced writes readable, which a later power loss could still take.
        return this.run({ op: 'sync', requestId: 0, file: segment.name }, () => this.nextTask());
      }
      if (isLast) {
        found.tornTail = { segment, validEnd, bytesDropped: segment.size - validEnd };
        segment.size = validEnd;
        segment.syncedSize = validEnd;
        return this.nextTask();
      }
      // The active segment's tail was being written when the broker stopped: never synced, cut.
      this.log.note(isLast ? 'warn' : 'error', isLast ? 'stream-tail-truncated' : 'stream-segment-damaged', {
        stream: found.name,
        file: segment.name,
        offset: validEnd,
        bytesDropped: segment.size - validEnd,
      });
      segment.size = validEnd;
      segment.syncedSize = validEnd;
      this.run({ op: 'truncate', requestId: 0, file: segment.name, length: validEnd }, () => this.run({ op: 'sync', requestId: 0, file: segment.name }, () => this.nextTask()));
    });
  }

  /**
   * Indexes the valid frames of a segment's bytes; returns where the valid frames end (what
   * follows is cut). With `pastDamage` (a sealed segment) damage that valid frames follow is
   * stepped over (reported; readers skip it too).
   */
  private indexFrames(found: FoundStream, segment: Segment, bytes: Uint8Array, pastDamage: boolean): number {
    const index = new SparseIndex(this.indexIntervalBytes);
    let entryCount = 0;
    segment.endOffset = segment.baseOffset;
    segment.firstTimeMs = 0;
    segment.lastTimeMs = 0;
    const visit = (frame: ScannedFrame): boolean => {
      index.offer(frame.offset, frame.position, frame.timeMs);
      if (entryCount === 0) segment.firstTimeMs = frame.timeMs;
      segment.lastTimeMs = frame.timeMs;
      segment.endOffset = frame.offset + 1;
      entryCount += 1;
      return true;
    };
    let scan: ScanResult = scanSegment(bytes, 0, segment.baseOffset - 1, visit);
    // Bounded: every pass resumes strictly further on in the bytes.
    for (;;) {
      if (scan.ending.kind === 'clean' || !pastDamage) break;
      const resume = scan.ending.kind === 'damaged' ? scan.ending.resume : findResume(bytes, scan.ending.position, scan.lastOffset);
      if (resume === null) break;
      this.log.note('error', 'stream-entry-damaged', { stream: found.name, file: segment.name, position: scan.end, reason: scan.ending.kind === 'damaged' ? scan.ending.reason : 'torn frame' });
      scan = scanSegment(bytes, resume.position, scan.lastOffset, visit);
    }
    segment.index = index;
    segment.entryCount = entryCount;
    return scan.end;
  }

  // ---- replay ---------------------------------------------------------------------------------

  observe(record: StateRecord): void {
    switch (record.kind) {
      case 'stream-created':
        // A redefinition keeps what was kept; a new stream (a new incarnation of a name) starts afresh.
        if (!this.existing.has(record.stream.name)) {
          this.existing.add(record.stream.name);
          this.kept.set(record.stream.name, []);
        }
        return;
      case 'stream-deleted':
        this.existing.delete(record.stream);
        this.dropKept(record.stream, () => true);
        this.kept.delete(record.stream);
        return;
      case 'stream-trimmed': {
        // Below the state's first offset nothing is ever needed again.
        const firstOffset = record.firstOffset;
        this.dropKept(record.stream, (entry) => entry.offset < firstOffset);
        return;
      }
      case 'stream-cut': {
        // The offsets from the cut on were handed out again after it: the entries replayed so far there are the lost ones.
        const nextOffset = record.nextOffset;
        this.dropKept(record.stream, (entry) => entry.offset >= nextOffset);
        return;
      }
      case 'stream-appended':
        for (const reference of record.entries) {
          const kept = this.kept.get(reference.stream);
          if (kept === undefined || this.belowFiles(reference.stream, reference.offset)) continue;
          const { timeMs, topic, qos, properties, payload } = record;
          const entry: StreamEntry = { offset: reference.offset, timeMs, topic, qos, properties, payload };
          assert(kept.length === 0 || kept[kept.length - 1]!.offset < entry.offset, 'kept entries ascend (a cut drops those above it first)');
          kept.push(entry);
          this.keepBytes(entryMemoryBytes(entryFrameBytes(entry)));
        }
        return;
      default:
        return;
    }
  }

  /** Whether `offset` of `stream` is below its scanned files' valid end (never needed from the log: see the module comment). */
  private belowFiles(stream: string, offset: number): boolean {
    const found = this.found.get(stream);
    return found !== undefined && found.segments.length > 0 && offset < found.validEnd;
  }

  private keepBytes(bytes: number): void {
    this.keptBytes += bytes;
    assert(this.keptBytes >= 0, 'kept bytes never negative');
    if (this.keptBytes > this.log.stats.recoveryHeldBytesPeak) this.log.stats.recoveryHeldBytesPeak = this.keptBytes;
  }

  /** Drops the kept entries of `stream` that `doomed` picks (a prefix or a suffix: they ascend). */
  private dropKept(stream: string, doomed: (entry: StreamEntry) => boolean): void {
    const kept = this.kept.get(stream);
    if (kept === undefined || kept.length === 0) return;
    const remaining: StreamEntry[] = [];
    for (const entry of kept) {
      if (doomed(entry)) this.keepBytes(-entryMemoryBytes(entryFrameBytes(entry)));
      else remaining.push(entry);
    }
    this.kept.set(stream, remaining);
  }

  // ---- reconcile ------------------------------------------------------------------------------

  finish(state: DurableState): void {
    assert(this.scanned && this.tasks.length === 0, 'reconciled after the scan');
    for (const found of this.found.values()) {
      if (state.streams.has(found.name)) continue;
      this.log.note('info', 'stream-files-removed', { stream: found.name, segments: found.segments.length, why: 'the stream was deleted' });
      this.tasks.push(() => this.log.deleteSegments(found.name, found.segments, () => this.nextTask()));
    }
    for (const live of state.streams.values()) {
      const found: FoundStream = this.found.get(live.name) ?? { name: live.name, segments: [], rebuilt: new Set<Segment>(), validEnd: 0, tornTail: null };
      const stream = this.startAtFiles(found, live);
      if (found.segments.length === 0) found.validEnd = stream.firstOffset;
      this.tasks.push(() => this.reconcile(found, stream));
    }
    this.tasks.push(() => this.log.adoptRecovered(this.finished, this.cuts, this.trims, this.markers));
    this.nextTask();
  }

  /**
   * The stream as reconcile sees it: starting where its files start when the state starts earlier
   * (a repair cut the trim that deleted the segments below off the log; see the module comment),
   * with the trim handed to the broker to commit.
   */
  private startAtFiles(found: FoundStream, stream: StreamState): StreamState {
    const filesStart = found.segments[0]?.baseOffset;
    if (filesStart === undefined || stream.firstOffset >= filesStart) return stream;
    // An empty stream (its end at its start) has nothing to trim, wherever its files start.
    const firstOffset = Math.min(filesStart, stream.nextOffset);
    if (firstOffset <= stream.firstOffset) return stream;
    this.trims.push({ stream: stream.name, firstOffset });
    this.log.note('warn', 'stream-trim-restored', {
      stream: stream.name,
      fromOffset: stream.firstOffset,
      firstOffset,
      why: 'the segments below were deleted by retention after a trim the log no longer holds',
    });
    return { ...stream, firstOffset };
  }

  private reconcile(found: FoundStream, stream: StreamState): void {
    if (found.validEnd > stream.nextOffset) return this.cutAbove(found, stream);
    // Segments wholly below the stream's start, left by a retention the crash interrupted. The
    // last one counts only when its scan ended cleanly: one whose scan stopped short (a torn tail,
    // or a flipped bit in its first entry, which also leaves it "ending" at its base) may hold
    // synced entries at or past the start, and deleting it would take the damaged bytes the
    // operator's repair has to cut (seed 4006865: every later start then stopped the same way).
    const below = found.segments.filter((segment, index) => {
      const nextBase = found.segments[index + 1]?.baseOffset;
      if (nextBase !== undefined) return nextBase <= stream.firstOffset;
      return found.tornTail?.segment !== segment && found.validEnd <= stream.firstOffset && segment.endOffset <= stream.firstOffset;
    });
    if (below.length > 0) {
      found.segments.splice(0, below.length);
      for (const segment of below) found.rebuilt.delete(segment);
      if (found.segments.length === 0) found.validEnd = stream.firstOffset;
      return this.log.deleteSegments(stream.name, below, () => this.reconcile(found, stream));
    }
    const start = Math.min(Math.max(found.validEnd, stream.firstOffset), stream.nextOffset);
    const kept = (this.kept.get(stream.name) ?? []).filter((entry) => entry.offset >= start);
    let contiguous = 0;
    while (contiguous < kept.length && kept[contiguous]!.offset === start + contiguous) contiguous += 1;
    const end = start + contiguous;
    const markers = this.markers.get(stream.name) ?? [];
    if (end !== stream.nextOffset) {
      // Entries that were synced are gone: damage. Only an operator's repair may end the stream here.
      if (markers.length === 0) return this.log.fail(missingEntriesReason(found, stream, end));
      const lost = stream.nextOffset - end;
      this.cuts.push({ stream: stream.name, nextOffset: end, lost });
      this.log.note('error', 'stream-cut', { stream: stream.name, offset: end, lost, why: 'entries damaged on the disk, cut by a repair' });
    } else if (markers.length > 0) {
      // A mark whose cut is durable already, or that found nothing missing: done with.
      this.markers.delete(stream.name);
      for (const marker of markers) this.tasks.unshift(() => this.run({ op: 'delete', requestId: 0, file: marker }, () => this.nextTask(), true));
    }
    const restored = kept.slice(0, contiguous);
    if (restored.length > 0) this.log.note('warn', 'stream-entries-restored', { stream: stream.name, fromOffset: start, entries: restored.length, why: 'not in the files when the broker stopped' });
    this.cutTornTail(found, () => this.writeRebuiltIndexes(found, () => this.adopt(found, stream, start, end, restored)));
  }

  /** The active segment's torn tail (see scanFile) goes, now that nothing it held is lost with it. */
  private cutTornTail(found: FoundStream, done: () => void): void {
    const torn = found.tornTail;
    found.tornTail = null;
    if (torn === null || torn.segment.deleted || !found.segments.includes(torn.segment)) return done();
    this.log.note('warn', 'stream-tail-truncated', { stream: found.name, file: torn.segment.name, offset: torn.validEnd, bytesDropped: torn.bytesDropped });
    this.run({ op: 'truncate', requestId: 0, file: torn.segment.name, length: torn.validEnd }, () => this.run({ op: 'sync', requestId: 0, file: torn.segment.name }, done));
  }

  private writeRebuiltIndexes(found: FoundStream, done: () => void): void {
    const segment = found.rebuilt.values().next().value;
    if (segment === undefined) return done();
    found.rebuilt.delete(segment);
    this.log.writeIndexFile(segment, () => this.writeRebuiltIndexes(found, done));
  }

  private adopt(found: FoundStream, stream: StreamState, start: number, end: number, kept: readonly StreamEntry[]): void {
    const files: StreamFiles = createStreamFiles(stream.name, start);
    for (const segment of found.segments) files.segments.push(segment);
    const active = files.segments[files.segments.length - 1];
    // Appending goes on in the last segment when it ends where the kept entries start.
    if (active !== undefined && active.endOffset === start) active.sealed = false;
    for (const entry of kept) {
      const frameBytes = entryFrameBytes(entry);
      pushTail(files, { entry, lsn: 0, frameBytes, body: null });
      files.unwrittenBytes += frameBytes;
    }
    files.releasedOffset = end;
    if (stream.lastValue) files.lastValue = createLastValueState();
    this.finished.push(files);
    this.nextTask();
  }

  /** The files hold entries the log does not (a repair cut it): they go, newest segment first. */
  private cutAbove(found: FoundStream, stream: StreamState): void {
    const last = found.segments[found.segments.length - 1]!;
    // The cut below goes further back than a torn tail would.
    found.tornTail = null;
    if (last.baseOffset >= stream.nextOffset && found.segments.length > 0) {
      found.segments.pop();
      found.rebuilt.delete(last);
      // The segment below covers every offset up to this one's base, which is at or past the
      // stream's end: its frames past the end are cut next; short of the end, what it lacks was
      // compacted away (or damaged, and reported), not missing (see the module comment).
      const below = found.segments[found.segments.length - 1];
      found.validEnd = below === undefined ? stream.firstOffset : Math.max(below.endOffset, stream.nextOffset);
      this.log.note('warn', 'stream-files-cut', { stream: stream.name, file: last.name, why: `the log ends at offset ${stream.nextOffset}` });
      return this.log.deleteSegments(stream.name, [last], () => this.reconcile(found, stream));
    }
    this.readWhole(last.name, last.size, (bytes) => {
      let cutAt = bytes.length;
      scanSegment(bytes, 0, last.baseOffset - 1, (frame) => {
        if (frame.offset < stream.nextOffset) return true;
        cutAt = frame.position;
        return false;
      });
      this.log.note('warn', 'stream-files-cut', { stream: stream.name, file: last.name, offset: cutAt, why: `the log ends at offset ${stream.nextOffset}` });
      this.run({ op: 'truncate', requestId: 0, file: last.name, length: cutAt }, () =>
        this.run({ op: 'sync', requestId: 0, file: last.name }, () => {
          last.size = cutAt;
          last.syncedSize = cutAt;
          this.indexFrames(found, last, bytes.subarray(0, cutAt), false);
          // Every offset below the stream's end is in the segment now, or was compacted away.
          found.validEnd = stream.nextOffset;
          // It is the last segment now, appended to again: its index lives in memory until sealed.
          found.rebuilt.delete(last);
          this.reconcile(found, stream);
        }),
      );
    });
  }
}

function missingEntriesReason(found: FoundStream, stream: StreamState, offset: number): string {
  const file = found.segments[found.segments.length - 1]?.name ?? `stream-${stream.name}-*.seg`;
  return `corrupt stream: ${file}: stream ${stream.name} entry ${offset} is neither in its files nor in the log (its files end at ${found.validEnd}, the stream at ${stream.nextOffset})`;
}
