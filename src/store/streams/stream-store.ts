/**
 * What the broker core asks of a store that keeps streams (`StateStore.streams`): the seam between
 * the broker's readers (broker/streams/) and the files (store/streams/stream-log.ts).
 *
 * Appending needs nothing here: a `stream-appended` record committed through the store is the
 * append, and the store takes the entries from it. Everything else is here: recovery's last
 * step, releasing entries whose records became durable, reading (from memory when the entries
 * are still there, else through storage reads whose results come back later), seeking by time,
 * and what retention and operators need to know of the files.
 */
import type { LogFields, LogLevel } from '../../contract.js';
import type { DurableState } from '../state-store.js';
import type { StreamEntry } from './stream-entry.js';

export interface StreamReadResult {
  /** The caller's token from `startRead`. */
  readonly token: number;
  readonly stream: string;
  /**
   * Entries at or after the offset asked for, in offset order (gaps where compaction removed some).
   * A fresh array for this result alone: its taker may keep it and change it (a cursor's buffer).
   */
  readonly entries: StreamEntry[];
  /** Where reading goes on from. */
  readonly nextOffset: number;
  /** The segment was rewritten or deleted while being read: nothing was read; read again. */
  readonly stale: boolean;
  /** Offsets lost to a damaged frame between `entries` and `nextOffset` (detected, never silent). */
  readonly damaged: { readonly fromOffset: number; readonly toOffset: number } | null;
}

export interface SegmentSummary {
  readonly baseOffset: number;
  readonly endOffset: number;
  readonly bytes: number;
  readonly firstTimeMs: number;
  readonly lastTimeMs: number;
  readonly sealed: boolean;
  readonly entries: number;
}

export interface StreamStoreStats {
  /** Entries written to segment files, and their frame bytes. */
  entriesWritten: number;
  bytesWritten: number;
  segmentSyncs: number;
  /** Storage reads issued for readers, and the bytes they returned. */
  reads: number;
  readBytes: number;
  /** Segments deleted by retention (or with their stream). */
  segmentsDeleted: number;
  /** Damaged frames found while reading (each reported with its file and position). */
  damagedFrames: number;
  /** Last-value compaction: steps (one read each), segments rewritten and entries dropped. */
  compactionSteps: number;
  compactions: number;
  entriesCompacted: number;
  /**
   * What the entries the store holds in memory now cost (frame bytes plus a measured overhead per
   * entry, stream-files.ts `entryMemoryBytes`), every stream together: appended and not yet synced
   * to a segment (the writer's backlog, bounded by streamBacklogBytesMax through the publishers'
   * throttle).
   */
  memoryBytes: number;
  /** The most recovery held at once (same measure) for entries the files might lack (stream-recovery.ts). */
  recoveryHeldBytesPeak: number;
}

export function createStreamStoreStats(): StreamStoreStats {
  return {
    entriesWritten: 0,
    bytesWritten: 0,
    segmentSyncs: 0,
    reads: 0,
    readBytes: 0,
    segmentsDeleted: 0,
    damagedFrames: 0,
    compactionSteps: 0,
    compactions: 0,
    entriesCompacted: 0,
    memoryBytes: 0,
    recoveryHeldBytesPeak: 0,
  };
}

/** A line for the operator's log, which the broker emits for the store. */
export interface StreamNote {
  readonly level: LogLevel;
  readonly event: string;
  readonly fields: LogFields;
}

export interface StreamStore {
  /** False until recovery has reconciled the stream files with the replayed state. */
  readonly ready: boolean;
  /**
   * Every entry held in memory (each stream's tail), in offset order per stream, for inspection
   * (broker/kept-bytes.ts): the visitor reads them and changes nothing.
   */
  forEachHeldEntry?(visit: (stream: string, entry: StreamEntry) => void): void;
  /**
   * Replay is over: reconcile the files with `state` (cut what the log no longer has, delete what
   * retention or a deletion left, write back what the files lost); `ready` turns true when done.
   */
  finishRecovery(state: DurableState): void;
  /** Entries (and trims, deletions) whose records are durable up to `durableLsn` take effect. */
  release(durableLsn: number): void;
  /** Streams whose released offset advanced since the last call. */
  takeReleased(): string[];
  /** Entries below this are released (readable). */
  releasedOffset(stream: string): number;
  /**
   * Released entries from `offset` on that are in memory, appended to `into` until `bytesMax` of
   * payload (at least one entry); returns the offset after the last one taken, or null when
   * `offset` is no longer in memory (read it with `startRead`).
   */
  readMemory(stream: string, offset: number, bytesMax: number, into: StreamEntry[]): number | null;
  /** Reads about `bytesMax` bytes of entries from `offset` out of the files; see `takeReadResults`. */
  startRead(stream: string, offset: number, bytesMax: number, token: number): void;
  takeReadResults(): StreamReadResult[];
  /** An offset at or before the first entry appended at or after `timeMs` (the end when none is). */
  locateTime(stream: string, timeMs: number): number;
  segments(stream: string): SegmentSummary[];
  /**
   * A last-value stream: starts rewriting one sealed segment without its superseded entries, if
   * one may hold some and no rewrite is running (stream-compaction.ts); true when one started.
   */
  compact(stream: string, nextOffset: number): boolean;
  /** A deleted stream whose files are still being removed: its name cannot be used again yet. */
  isDeleting(stream: string): boolean;
  /**
   * Streams recovery ended early at a repair's mark (the entries after were damaged and cut
   * away), taken once, right after recovery: the broker commits each as a `stream-cut` record.
   */
  takeRecoveryCuts(): readonly { readonly stream: string; readonly nextOffset: number; readonly lost: number }[];
  /**
   * Streams whose state started below their files (a repair cut off the log the trim after which
   * retention deleted their first segments), taken once, right after recovery: the broker commits
   * each as a `stream-trimmed` record, so the stream starts where its entries do.
   */
  takeRecoveryTrims(): readonly { readonly stream: string; readonly firstOffset: number }[];
  /** Log lines for the operator (recovery's repairs, damaged frames), taken once each. */
  takeNotes(): StreamNote[];
  readonly stats: StreamStoreStats;
}
