/**
 * The write side of the append-only log: framing, group commit, segment rotation, sync policy.
 *
 * Records are framed and buffered by `append`, which returns the record's log sequence number
 * (LSN) at once. `flush` starts one storage write holding every buffered frame if no write is in
 * flight; while a write and its sync are in flight, new records keep accumulating, so the next
 * flush covers them all with one fsync (group commit). Under the `always` policy an LSN is
 * released for acknowledgement only once its sync completed; under `interval` and `none` it is
 * released at once and syncs happen on a timer or not at all (documented as trading durability
 * for speed).
 *
 * Commit after data: under `always` an LSN is released only when a LATER frame has been synced
 * as well, in the same segment or in a segment after it. A flipped bit in the last frame of the
 * log looks exactly like a write torn by a crash, and recovery truncates a torn tail; but a
 * damaged frame followed by a valid one is corruption, which recovery refuses to skip. So a
 * record must never be acknowledged while it is the last frame on disk. A seal plays that part:
 * an empty record whose only job is to follow the last one (the commit block of a journaling file
 * system, in effect). A write that takes every buffered record and ends a group carries its own
 * seal after them, so that one sync releases the whole batch: an acknowledgement waits for the
 * sync of its own group only. (Before issue 15's storage round the next group's frames played the
 * seal's part under load, and every acknowledgement waited for two syncs in a row: with a fixed
 * number of publishes in flight, half the acknowledgements per sync.) A write that cannot carry a
 * seal (it splits a group, leaves records buffered, or has no room under `writeBytesMax`) waits
 * for the next frame as before, and when nothing else is waiting the writer appends a seal alone.
 * A seal never goes between the records of one group (recovery would take the group's first part
 * as committed at the seal).
 *
 * A segment that would exceed `segmentBytesMax` is closed and a new one, named after
 * its first LSN, is started; the directory is synced after a new segment is first written so its
 * name survives a crash. Any storage failure is final for this writer: the data on disk is in an
 * unknown state after a failed write or fsync, so the only safe course is to stop and recover.
 */
import { assert } from '../assert.js';
import { allocateBytes } from '../codec/byte-pool.js';
import type { SyncPolicy } from '../config.js';
import type { StorageRequest, StorageResult } from '../contract.js';
import { frameHeaderBytes, writeFrame } from './record-frame.js';

export interface LogWriterOptions {
  segmentBytesMax: number;
  syncPolicy: SyncPolicy;
  syncIntervalMs: number;
  /** The largest single storage write; bigger batches are split. */
  writeBytesMax: number;
}

export interface OpenSegment {
  name: string;
  size: number;
}

type Phase = 'idle' | 'writing' | 'syncing' | 'syncing-directory';

/**
 * Set in the type byte of the last frame of a group: the records one broker input appended,
 * which recovery applies all or none (record types stay below it).
 */
export const groupEndFlag = 0x80;

/** The type of a seal record (see above): no body, no state; its own group. */
export const sealRecordType = 0x7f;

export function isSeal(type: number): boolean {
  return (type & ~groupEndFlag) === sealRecordType;
}

export function segmentFileName(firstLsn: number): string {
  return `wal-${String(firstLsn).padStart(16, '0')}.log`;
}

export class LogWriter {
  private pending: { lsn: number; type: number; body: Uint8Array }[] = [];
  private pendingBytes = 0;
  private phase: Phase = 'idle';
  private inflightRequestId = -1;
  private inflightLastLsn = 0;
  private inflightBytes = 0;
  private segment: OpenSegment | null;
  private directoryDirty = false;
  private rotateRequested = false;
  private nextLsn: number;
  private syncedLsnValue: number;
  private writtenLsn: number;
  private syncDeadlineMs: number | null = null;
  /** Records appended since the last group end (a seal may not go between them). */
  private groupOpen = false;
  /** Whether the batch in flight, and the last synced one, end with a seal. */
  private inflightEndsWithSeal = false;
  private syncedEndsWithSeal: boolean;
  private readonly outbox: StorageRequest[] = [];
  /** Every segment of the log, oldest first, with the LSN of its first record. */
  readonly segments: { name: string; firstLsn: number }[];
  failure: { code: string; message: string } | null = null;

  constructor(
    private readonly options: LogWriterOptions,
    nextLsn: number,
    segment: OpenSegment | null,
    private readonly nextRequestId: () => number,
    segments: { name: string; firstLsn: number }[] = [],
    /** Whether the log on disk already ends with a seal (recovery makes sure it does). */
    tailSealed = true,
  ) {
    this.syncedEndsWithSeal = tailSealed;
    this.segments = segments.slice();
    assert(nextLsn >= 1, 'the first LSN is 1');
    assert(options.segmentBytesMax > frameHeaderBytes, 'segments must hold at least a frame header');
    this.nextLsn = nextLsn;
    this.syncedLsnValue = nextLsn - 1;
    this.writtenLsn = nextLsn - 1;
    this.segment = segment;
  }

  /** Highest LSN handed out. */
  get appendedLsn(): number {
    return this.nextLsn - 1;
  }

  /** Highest LSN known to be on stable storage. */
  get syncedLsn(): number {
    return this.syncedLsnValue;
  }

  /**
   * Highest LSN whose acknowledgement may go out under the sync policy: under `always`, every
   * synced record but the last (see the module comment), or all of them once a seal follows.
   */
  get releasedLsn(): number {
    if (this.options.syncPolicy !== 'always') return this.appendedLsn;
    return this.syncedEndsWithSeal ? this.syncedLsnValue : Math.max(0, this.syncedLsnValue - 1);
  }

  /** True while records appended since the last group end wait for `markGroupEnd`. */
  get hasOpenGroup(): boolean {
    return this.groupOpen;
  }

  /** True when nothing is buffered or in flight. */
  get quiescent(): boolean {
    return this.phase === 'idle' && this.pending.length === 0;
  }

  append(type: number, body: Uint8Array): number {
    assert(this.failure === null, 'append after a storage failure');
    assert(type !== sealRecordType, 'seals are appended by the writer');
    const lsn = this.nextLsn++;
    this.pending.push({ lsn, type, body });
    this.pendingBytes += frameHeaderBytes + body.length;
    this.groupOpen = true;
    return lsn;
  }

  /**
   * Closes the group of records appended since the last group end, by flagging its last frame.
   * That frame is always still buffered: writes start only at `flush`, which the caller invokes
   * after marking, or when a storage result arrives, before the next input appends anything.
   */
  markGroupEnd(): void {
    const last = this.pending[this.pending.length - 1];
    assert(last !== undefined && last.lsn === this.appendedLsn, 'a group ends with a buffered record');
    assert(last.type < groupEndFlag, 'record types stay below the group flag');
    last.type |= groupEndFlag;
    this.groupOpen = false;
  }

  /** Storage requests to issue, in order; the queue is emptied. */
  /** How many requests `takeRequests` would return now. */
  get requestsWaiting(): number {
    return this.outbox.length;
  }

  takeRequests(): StorageRequest[] {
    return this.outbox.splice(0, this.outbox.length);
  }

  /** Starts writing buffered records unless a write is already in flight. */
  flush(nowMs: number): void {
    if (this.failure !== null || this.phase !== 'idle') return;
    if (this.pending.length === 0 && this.needsSeal()) {
      this.pending.push({ lsn: this.nextLsn++, type: sealRecordType | groupEndFlag, body: new Uint8Array(0) });
      this.pendingBytes += frameHeaderBytes;
    }
    if (this.pending.length > 0) {
      this.startWrite();
      return;
    }
    if (this.options.syncPolicy === 'interval' && this.syncedLsnValue < this.writtenLsn && this.syncDeadlineMs !== null && nowMs >= this.syncDeadlineMs) {
      this.startSync(this.writtenLsn);
    }
  }

  /** Under `always`, the last synced record needs a successor and no other record is coming. */
  private needsSeal(): boolean {
    return this.options.syncPolicy === 'always' && !this.syncedEndsWithSeal && !this.groupOpen && this.syncedLsnValue === this.appendedLsn && this.syncedLsnValue > 0;
  }

  nextDeadlineMs(): number | null {
    if (this.options.syncPolicy !== 'interval' || this.syncedLsnValue >= this.writtenLsn) return null;
    // While a write or sync is in flight its completion drives the next step; a deadline already
    // passed would only make the caller tick again at once, forever (found by the simulator).
    if (this.phase !== 'idle' || this.failure !== null) return null;
    return this.syncDeadlineMs;
  }

  /** Takes the result of a request this writer issued; false when the result is not ours. */
  handleResult(result: StorageResult, nowMs: number): boolean {
    if (result.requestId !== this.inflightRequestId) return false;
    this.inflightRequestId = -1;
    if (!result.ok) {
      this.failure = { code: result.code, message: `log ${this.phase} failed on ${this.segment?.name}: ${result.message}` };
      this.phase = 'idle';
      return true;
    }
    this.advance(nowMs);
    return true;
  }

  private advance(nowMs: number): void {
    assert(this.segment !== null, 'a completed request implies an open segment');
    if (this.phase === 'writing') {
      this.segment.size += this.inflightBytes;
      this.writtenLsn = this.inflightLastLsn;
      if (this.options.syncPolicy === 'always') return this.startSync(this.inflightLastLsn);
      if (this.options.syncPolicy === 'interval' && this.syncDeadlineMs === null) this.syncDeadlineMs = nowMs + this.options.syncIntervalMs;
      this.phase = 'idle';
    } else if (this.phase === 'syncing') {
      if (this.directoryDirty) return this.startDirectorySync();
      this.completeSync(nowMs);
    } else {
      assert(this.phase === 'syncing-directory', 'unexpected phase');
      this.directoryDirty = false;
      this.completeSync(nowMs);
    }
    this.flush(nowMs);
  }

  private completeSync(nowMs: number): void {
    this.syncedLsnValue = this.inflightLastLsn;
    this.syncedEndsWithSeal = this.inflightEndsWithSeal;
    this.syncDeadlineMs = this.syncedLsnValue < this.writtenLsn ? nowMs + this.options.syncIntervalMs : null;
    this.phase = 'idle';
  }

  private startWrite(): void {
    let take = 0;
    let bytes = 0;
    while (take < this.pending.length) {
      const frameBytes = frameHeaderBytes + this.pending[take]!.body.length;
      if (take > 0 && bytes + frameBytes > this.options.writeBytesMax) break;
      bytes += frameBytes;
      take++;
    }
    const sealed = this.carriesSeal(take, bytes);
    const writeBytes = sealed ? bytes + frameHeaderBytes : bytes;
    const full = this.segment !== null && this.segment.size > 0 && this.segment.size + writeBytes > this.options.segmentBytesMax;
    const rotating = this.segment === null || full || (this.rotateRequested && this.segment.size > 0);
    if (rotating && this.segment !== null && this.syncedLsnValue < this.writtenLsn) {
      // The segment being left must be synced before the next one is written: a later segment
      // that survives a crash while this one's tail is lost is a gap recovery must refuse, and the
      // broker could never start again (interval policy; found by the simulator, seed 138).
      this.startSync(this.writtenLsn);
      return;
    }
    const batch = this.pending.splice(0, take);
    this.pendingBytes -= bytes;
    if (sealed) {
      // Every buffered record is in the batch, so the seal's LSN follows the batch's last.
      assert(this.pending.length === 0 && batch[batch.length - 1]!.lsn === this.nextLsn - 1, 'a batch seal follows the last record appended');
      batch.push({ lsn: this.nextLsn++, type: sealRecordType | groupEndFlag, body: new Uint8Array(0) });
    }
    if (rotating || this.segment === null) {
      this.rotateRequested = false;
      this.segment = { name: segmentFileName(batch[0]!.lsn), size: 0 };
      this.segments.push({ name: this.segment.name, firstLsn: batch[0]!.lsn });
      this.directoryDirty = true;
    }
    // From the encoder's byte pool: a batch is usually one small group, and an array of its own
    // past 64 bytes costs an external allocation per write (byte-pool.ts).
    const buffer = allocateBytes(writeBytes);
    let offset = 0;
    for (let index = 0; index < batch.length; index++) offset = writeFrame(buffer, offset, batch[index]!.lsn, batch[index]!.type, batch[index]!.body);
    assert(offset === writeBytes, 'batch size computed exactly');
    this.inflightLastLsn = batch[batch.length - 1]!.lsn;
    this.inflightEndsWithSeal = batch[batch.length - 1]!.type === (sealRecordType | groupEndFlag);
    this.inflightBytes = writeBytes;
    this.phase = 'writing';
    this.issue({ op: 'write', requestId: this.nextRequestId(), file: this.segment.name, offset: this.segment.size, bytes: buffer });
  }

  /**
   * Whether the batch of the first `take` buffered records (`bytes` framed) gets a seal of its own
   * (see the module comment): under `always`, when it takes every buffered record, its last one
   * ends a group, and the seal still fits in one write.
   */
  private carriesSeal(take: number, bytes: number): boolean {
    if (this.options.syncPolicy !== 'always' || take !== this.pending.length || this.groupOpen) return false;
    const last = this.pending[take - 1];
    assert(last !== undefined, 'a batch holds a record');
    if ((last.type & groupEndFlag) === 0 || isSeal(last.type)) return false;
    return bytes + frameHeaderBytes <= this.options.writeBytesMax;
  }

  private startSync(lastLsn: number): void {
    assert(this.segment !== null, 'sync needs a segment');
    this.inflightLastLsn = lastLsn;
    this.phase = 'syncing';
    this.issue({ op: 'sync', requestId: this.nextRequestId(), file: this.segment.name });
  }

  private startDirectorySync(): void {
    this.phase = 'syncing-directory';
    this.issue({ op: 'sync-directory', requestId: this.nextRequestId() });
  }

  private issue(request: StorageRequest): void {
    this.inflightRequestId = request.requestId;
    this.outbox.push(request);
  }

  /** The segment being appended to, for snapshots and inspection. */
  get openSegment(): OpenSegment | null {
    return this.segment;
  }

  /** Makes the next write start a new segment (used before a snapshot). */
  rotate(): void {
    this.rotateRequested = true;
  }

  get bufferedBytes(): number {
    return this.pendingBytes;
  }
}
