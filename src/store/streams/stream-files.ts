/**
 * What the store knows of one stream's files and its entries in memory: the shapes the stream
 * log (stream-log.ts), its recovery (stream-recovery.ts) and its compaction share, and the pure
 * helpers over them (file names, which segment holds an offset).
 *
 * A stream's entries live in segment files `stream-<name>-<base offset, 16 digits>.seg`, each
 * with an index `<same>.idx` once sealed. The newest segment is the active one, appended to; the
 * others are sealed (synced, never appended to again). Offsets below `writtenOffset` are in the
 * files; entries from `tailStart` up are also in memory (the tail), which always covers what is
 * not yet synced (`syncedOffset`), not yet written, and not yet released. Released means the log
 * record that appended the entry is durable: nothing reads an entry before it is released, so no
 * reader sees an offset that a crash could give to another message.
 *
 *   tailStart <= syncedOffset <= writtenOffset <= releasedOffset <= nextOffset
 */
import { assert } from '../../assert.js';
import type { LastValueState } from './stream-compaction.js';
import { ReadEntry, type StreamEntry } from './stream-entry.js';
import type { SparseIndex } from './stream-index.js';

export const segmentFilePattern = /^stream-([A-Za-z0-9_-]{1,64})-(\d{16})\.seg$/;
export const indexFilePattern = /^stream-([A-Za-z0-9_-]{1,64})-(\d{16})\.idx$/;
/** Files a compaction was writing when the broker stopped (`<segment>.tmp`, `<index>.tmp`). */
export const temporaryFilePattern = /^stream-[A-Za-z0-9_-]{1,64}-\d{16}\.(seg|idx)\.tmp$/;

/**
 * A repair's mark (repair.ts, `planStreamRepair`): the operator cut this stream's files at the
 * offset it names, so recovery may end the stream there if entries after it are gone for good.
 * Recovery deletes it once the cut is durable (or found not needed).
 */
export const cutMarkerPattern = /^stream-([A-Za-z0-9_-]{1,64})-(\d{16})\.cut$/;

export function cutMarkerName(stream: string, offset: number): string {
  return `stream-${stream}-${String(offset).padStart(16, '0')}.cut`;
}

export function segmentFileName(stream: string, baseOffset: number): string {
  return `stream-${stream}-${String(baseOffset).padStart(16, '0')}.seg`;
}

export function indexFileName(segmentName: string): string {
  return `${segmentName.slice(0, -4)}.idx`;
}

/** True for any file the stream log owns; the write-ahead log's recovery leaves these alone. */
export function isStreamFile(name: string): boolean {
  return name.startsWith('stream-');
}

export interface Segment {
  readonly baseOffset: number;
  readonly name: string;
  /** Bytes written and completed. */
  size: number;
  /** Bytes known to be synced. */
  syncedSize: number;
  /** The offset after its last entry (its base while empty). */
  endOffset: number;
  /** Time of its first and last entry (0 while empty). */
  firstTimeMs: number;
  lastTimeMs: number;
  index: SparseIndex;
  /** Sealed: synced, its index written, never appended to again. */
  sealed: boolean;
  /** Whether its `.idx` file may exist (so that deleting the segment deletes it too). */
  indexFileExists: boolean;
  /** Raised when the file is replaced (compaction) or deleted: reads begun before are stale. */
  generation: number;
  deleted: boolean;
  /** Entries it holds (last-value compaction's measure of what it could drop). */
  entryCount: number;
  /** The stream's next offset when last-value compaction last rewrote it (-1: never). */
  compactedAtOffset: number;
}

/** An entry in memory: its log record's LSN decides when it is released. */
export interface TailEntry {
  readonly entry: StreamEntry;
  readonly lsn: number;
  readonly frameBytes: number;
  /**
   * The entry's frame body already encoded (the end of its `stream-appended` record's bytes, which
   * its payload is a view of), or null when it must be encoded to be written (recovered entries).
   */
  readonly body: Uint8Array | null;
}

/**
 * An entry appended live: its own tail slot, so that each stream an append goes to holds one
 * object for it instead of two (an entry and a slot pointing at it). Its body is its source, the
 * end of its `stream-appended` record's bytes (stream-log.ts `append`). These live until their
 * segment is synced (megabytes of them per stream), so the collector copies each one as it is
 * promoted; the object saved is one copy less per entry and stream.
 */
export class AppendedEntry extends ReadEntry implements TailEntry {
  constructor(
    offset: number,
    timeMs: number,
    topic: string,
    qos: ReadEntry['qos'],
    properties: ReadEntry['properties'],
    body: Uint8Array,
    payloadStart: number,
    readonly lsn: number,
    readonly frameBytes: number,
  ) {
    super(offset, timeMs, topic, qos, properties, body, payloadStart, body.length);
  }

  get entry(): StreamEntry {
    return this;
  }

  get body(): Uint8Array {
    return this.source;
  }
}

export type WriterStep = 'idle' | 'write' | 'sync' | 'sync-directory' | 'index';

export interface StreamFiles {
  readonly name: string;
  readonly segments: Segment[];
  /** Entries from `tailStart` on; `tailHead` is the array index of `tailStart`. */
  readonly tail: TailEntry[];
  tailHead: number;
  tailStart: number;
  /** What the entries in the tail cost in memory (`entryMemoryBytes`; pushTail and dropTailBelow keep it). */
  tailMemoryBytes: number;
  releasedOffset: number;
  writtenOffset: number;
  syncedOffset: number;
  /** Frame bytes of the released entries not yet written (from `writtenOffset` to `releasedOffset`). */
  unwrittenBytes: number;
  /** Entries below it are written without gathering streamWriteBytesMin first (recovery's, written back). */
  writeThroughOffset: number;
  /** The request the writer waits for, one at a time per stream. */
  step: WriterStep;
  /** A new segment's name is not yet durable in the directory. */
  directoryDirty: boolean;
  /** The active segment is full: seal it before the next write. */
  sealRequested: boolean;
  deleted: boolean;
  /** For a last-value stream: its topics' newest offsets and its compaction (stream-compaction.ts). */
  lastValue: LastValueState | null;
}

export function createStreamFiles(name: string, startOffset: number): StreamFiles {
  return {
    name,
    segments: [],
    tail: [],
    tailHead: 0,
    tailStart: startOffset,
    tailMemoryBytes: 0,
    releasedOffset: startOffset,
    writtenOffset: startOffset,
    syncedOffset: startOffset,
    unwrittenBytes: 0,
    writeThroughOffset: startOffset,
    step: 'idle',
    directoryDirty: false,
    sealRequested: false,
    deleted: false,
    lastValue: null,
  };
}

/** The offset after the last entry in memory (the stream's end as the store knows it). */
export function tailEnd(files: StreamFiles): number {
  return files.tailStart + files.tail.length - files.tailHead;
}

/** The in-memory entry at `offset`, which must be in the tail. */
export function tailEntryAt(files: StreamFiles, offset: number): TailEntry {
  const index = files.tailHead + offset - files.tailStart;
  if (!(offset >= files.tailStart && index < files.tail.length)) assert(false, `offset ${offset} is not in the tail of ${files.name}`);
  return files.tail[index]!;
}

/**
 * What an entry held in memory costs beyond its frame's bytes: its objects (the entry, its tail
 * slot) and its payload's own buffer. Measured on Node 20 (`global.gc()`, heap used before and
 * after holding 200,000 of them): 411 bytes of heap for an entry with a 64-byte payload, whose
 * frame is 107 bytes. Counted so that the bounds in bytes on entries in memory (streamBacklogBytesMax,
 * recovery's) are about what the heap holds, not a third of it.
 */
export const entryMemoryOverheadBytes = 304;

/** The memory an entry whose frame is `frameBytes` long costs while held (see `entryMemoryOverheadBytes`). */
export function entryMemoryBytes(frameBytes: number): number {
  return frameBytes + entryMemoryOverheadBytes;
}

/** Adds the next entry to the tail; returns what it costs in memory. */
export function pushTail(files: StreamFiles, entry: TailEntry): number {
  files.tail.push(entry);
  const bytes = entryMemoryBytes(entry.frameBytes);
  files.tailMemoryBytes += bytes;
  return bytes;
}

/** Drops tail entries below `offset` (synced ones), giving their memory back; returns what they cost in memory. */
export function dropTailBelow(files: StreamFiles, offset: number): number {
  if (offset <= files.tailStart) return 0;
  assert(offset <= files.syncedOffset, 'only synced entries leave memory');
  let dropped = 0;
  for (let index = files.tailHead; index < files.tailHead + offset - files.tailStart; index++) dropped += entryMemoryBytes(files.tail[index]!.frameBytes);
  files.tailMemoryBytes -= dropped;
  assert(files.tailMemoryBytes >= 0, 'tail memory never negative');
  files.tailHead += offset - files.tailStart;
  files.tailStart = offset;
  // Compacted when the dead head is the larger part: amortised O(1) per entry.
  if (files.tailHead > 1024 && files.tailHead * 2 > files.tail.length) {
    files.tail.splice(0, files.tailHead);
    files.tailHead = 0;
  }
  return dropped;
}

/** The index of the segment that holds `offset` (the last one based at or before it), or -1. */
export function segmentIndexFor(segments: readonly Segment[], offset: number): number {
  let low = 0;
  let high = segments.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (segments[middle]!.baseOffset <= offset) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

/** Total bytes of a stream's segments. */
export function streamBytes(files: StreamFiles): number {
  let bytes = 0;
  for (const segment of files.segments) bytes += segment.size;
  return bytes;
}
