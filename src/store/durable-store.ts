/**
 * The StateStore that keeps the broker's state on disk: write-ahead log, snapshots, recovery.
 *
 * It composes the three storage state machines (LogRecovery at start, then LogWriter for every
 * record, and a SnapshotWriter now and then) behind the StateStore interface and routes every
 * storage result to the one that issued it. Records are encoded by record-codec.ts. Under the
 * default `always` policy `durableLsn` advances only when a sync completes, so the broker's held
 * acknowledgements go out exactly when what they promise is on disk.
 *
 * Compaction: when the log written since the last snapshot exceeds `snapshotLogBytes`, the live
 * state is written as a snapshot covering every LSN appended so far, and the segments it covers
 * are deleted once it is durable. Serialising the state is synchronous; its cost grows with the
 * state, not with the log (a bounded pause, noted for the performance work).
 *
 * Atomic inputs: the records one broker input appends form a group (the broker calls `flush`
 * once at the end of every input); the writer flags the group's last frame, recovery applies a
 * group whole or not at all, and `durableLsn` advances only to the end of a complete synced
 * group. Without this, a crash could keep a prefix of one input's records: say, a QoS 2
 * PUBLISH's routing without its packet identifier, or the reverse, and exactly once would break
 * (found by the simulator, seed 428).
 *
 * Streams: the store also keeps every stream's segment files (streams/stream-log.ts). It sees
 * the stream records it appends (the entries of `stream-appended`, trims, deletions) and the ones
 * it replays, and recovery runs in three steps: the stream files are scanned first (so that the
 * replay can keep the entries the files lost), then the log is replayed, then the broker hands
 * the replayed state to `streams.finishRecovery` to reconcile the files with it. A snapshot
 * carries the entries not yet synced in the segments, since the log records that held them go.
 *
 * A storage failure is final: `failure` says what happened and the store accepts no more
 * records. The broker must stop; a restart recovers from what the disk holds.
 */
import { assert } from '../assert.js';
import type { BrokerConfig, SyncPolicy } from '../config.js';
import type { StorageRequest, StorageResult } from '../contract.js';
import { LogRecovery, type RecoveredFrame, type RecoveryOutcome, snapshotFileName } from './log-recovery.js';
import { groupEndFlag, LogWriter } from './log-writer.js';
import { decodeStateRecordAt, encodeLogRecord, planLogRecord } from './record-codec.js';
import { RecordOrigins } from './record-origins.js';
import { SnapshotWriter } from './snapshot-writer.js';
import { createStoreStats, type DurableState, type RecordOrigin, type StateRecord, type StateStore, type StoreStats, snapshotRecords } from './state-store.js';
import { streamAppendedBinaryType } from './stream-appended-codec.js';
import { StreamLog, type StreamLogOptions } from './streams/stream-log.js';

export interface DurableStoreOptions {
  syncPolicy: SyncPolicy;
  syncIntervalMs: number;
  segmentBytesMax: number;
  /** Log bytes written since the last snapshot that trigger the next one. */
  snapshotLogBytes: number;
  writeBytesMax: number;
  /** The stream log's sizes (BrokerConfig's stream settings); defaults when absent. */
  streams?: Partial<StreamLogOptions>;
}

export const defaultDurableStoreOptions: DurableStoreOptions = {
  syncPolicy: 'always',
  syncIntervalMs: 100,
  segmentBytesMax: 64 * 1024 * 1024,
  snapshotLogBytes: 256 * 1024 * 1024,
  writeBytesMax: 4 * 1024 * 1024,
};

/** The store a broker with this configuration runs on (keel serve, the offline tools, tests). */
export function durableStoreOptionsFor(config: BrokerConfig): DurableStoreOptions {
  return {
    syncPolicy: config.syncPolicy,
    syncIntervalMs: config.syncIntervalMs,
    segmentBytesMax: config.segmentBytesMax,
    snapshotLogBytes: config.snapshotLogBytes,
    writeBytesMax: defaultDurableStoreOptions.writeBytesMax,
    streams: streamLogOptionsFor(config),
  };
}

/** The stream log's sizes from the broker's configuration (its stream settings). */
export function streamLogOptionsFor(config: BrokerConfig): Partial<StreamLogOptions> {
  return {
    segmentBytesMax: config.streamSegmentBytesMax,
    indexIntervalBytes: config.streamIndexIntervalBytes,
    unsyncedBytesMax: config.streamUnsyncedBytesMax,
    writeBytesMin: config.streamWriteBytesMin,
    backlogBytesMax: config.streamBacklogBytesMax,
    lastValueTopicsMax: config.streamLastValueTopicsMax,
  };
}

/** The stream log's sizes when the options name none (BrokerConfig's defaults). */
/** What `drainRequests` returns when nothing waits; frozen, so that no caller can fill it. */
const noRequests: readonly StorageRequest[] = Object.freeze([]);

const defaultStreamLogOptions: Omit<StreamLogOptions, 'writeBytesMax'> = {
  segmentBytesMax: 16 * 1024 * 1024,
  indexIntervalBytes: 16 * 1024,
  unsyncedBytesMax: 4 * 1024 * 1024,
  writeBytesMin: 64 * 1024,
  backlogBytesMax: 64 * 1024 * 1024,
  lastValueTopicsMax: 1_000_000,
};

export class DurableStateStore implements StateStore {
  private requestId = 1;
  private readonly nextRequestId = (): number => this.requestId++;
  /** The log's recovery: null before it starts (the stream files are scanned first) and after it ends. */
  private recovery: LogRecovery | null = null;
  private recoveryPhase: 'streams' | 'log' | 'done' = 'streams';
  /** Every stream's segment files (streams/stream-log.ts). */
  readonly streams: StreamLog;
  /**
   * Records read back and not yet handed over: the first `releasedCount` are whole groups; those
   * after them, the group being read, are handed over only when its end arrives.
   */
  private recovered: StateRecord[] = [];
  private releasedCount = 0;
  /**
   * Where each record of `recovered` was read (same index), and of the batch last handed to the
   * broker (`handedOrigins`), so that a record the broker cannot apply is reported with its file
   * and offset (`recoveredOrigin`).
   */
  private recoveredOrigins = new RecordOrigins();
  private handedOrigins = new RecordOrigins();
  /** Ends of groups not yet durable, oldest first, and the last durable one. */
  private readonly groupEnds: number[] = [];
  private durableGroupEndLsn = 0;
  private writer: LogWriter | null = null;
  private snapshot: SnapshotWriter | null = null;
  private pendingObsolete: string[] = [];
  private snapshotLsn = 0;
  private logBytesAtSnapshot = 0;
  private logBytesWritten = 0;
  failureMessage: string | null = null;
  /** What recovery found: warnings, the snapshot used, segments. Null until recovery ends. */
  recoveryOutcome: RecoveryOutcome | null = null;
  readonly stats: StoreStats = createStoreStats();
  /** When the snapshot in progress started (core time), for `stats.lastSnapshotMs`. */
  private snapshotStartedMs = 0;
  private lastNowMs = 0;

  constructor(private readonly options: DurableStoreOptions) {
    assert(options.segmentBytesMax >= 4096, 'segments of at least 4 KiB');
    this.streams = new StreamLog({ ...defaultStreamLogOptions, ...options.streams, writeBytesMax: options.writeBytesMax }, this.nextRequestId);
    this.startLogRecovery();
  }

  /** Starts replaying the log once the stream files are scanned. */
  private startLogRecovery(): void {
    if (this.recoveryPhase !== 'streams' || !this.streams.scanned) return;
    this.recoveryPhase = 'log';
    this.recovery = new LogRecovery(this.nextRequestId, (frame, fromSnapshot, file, offset) => this.decode(frame, fromSnapshot, file, offset), undefined, undefined, groupEndFlag);
  }

  get failure(): string | null {
    return this.failureMessage ?? this.recovery?.failure ?? this.writer?.failure?.message ?? this.streams.failure ?? null;
  }

  recover(_nowMs: number): readonly StateRecord[] | null {
    if (this.recoveryPhase === 'done') return [];
    const recovery = this.recovery;
    if (recovery === null) return null;
    if (this.failure !== null || recovery.outcome === null) return null;
    const outcome = recovery.outcome;
    this.recoveryOutcome = outcome;
    this.snapshotLsn = outcome.snapshotLsn;
    this.pendingObsolete = outcome.obsoleteFiles.slice();
    const options = { segmentBytesMax: this.options.segmentBytesMax, syncPolicy: this.options.syncPolicy, syncIntervalMs: this.options.syncIntervalMs, writeBytesMax: this.options.writeBytesMax };
    this.writer = new LogWriter(options, outcome.nextLsn, outcome.openSegment, this.nextRequestId, outcome.segments);
    this.recovery = null;
    this.recoveryPhase = 'done';
    this.durableGroupEndLsn = outcome.nextLsn - 1;
    // An incomplete last group was cut off the log by recovery; its records are dropped here.
    this.recovered.length = this.releasedCount;
    this.recoveredOrigins.splitOff(this.releasedCount);
    return this.takeRecovered();
  }

  takeRecovered(): readonly StateRecord[] {
    const records = this.recovered;
    // The group being read, if any, stays (usually there is none: a segment ends with a group).
    this.recovered = records.splice(this.releasedCount);
    this.handedOrigins = this.recoveredOrigins;
    this.recoveredOrigins = this.handedOrigins.splitOff(this.releasedCount);
    this.releasedCount = 0;
    return records;
  }

  recoveredOrigin(index: number): RecordOrigin | null {
    return this.handedOrigins.at(index);
  }

  append(record: StateRecord): number {
    assert(this.writer !== null, 'append before recovery finished');
    const { type, body } = encodeLogRecord(record);
    this.logBytesWritten += body.length;
    this.stats.recordsAppended += 1;
    this.stats.bytesAppended += body.length;
    const lsn = this.writer.append(type, body);
    // A stream entry keeps the record's bytes: its segment frame's body is their end (stream-appended-codec.ts).
    this.streams.observe(record, lsn, type === streamAppendedBinaryType ? body : null);
    return lsn;
  }

  get durableLsn(): number {
    const released = this.writer?.releasedLsn ?? 0;
    while (this.groupEnds.length > 0 && this.groupEnds[0]! <= released) this.durableGroupEndLsn = this.groupEnds.shift()!;
    // With no group waiting, what lies beyond the last group end is seals (their own groups, no
    // state): a caller that read `appendedLsn` right after the writer added one must see it pass.
    if (this.groupEnds.length === 0 && released > this.durableGroupEndLsn) this.durableGroupEndLsn = released;
    return this.durableGroupEndLsn;
  }

  get appendedLsn(): number {
    return this.writer?.appendedLsn ?? 0;
  }

  get unwrittenBytes(): number {
    return this.writer?.bufferedBytes ?? 0;
  }

  flush(nowMs: number): void {
    this.lastNowMs = nowMs;
    const writer = this.writer;
    if (writer === null) return;
    if (writer.hasOpenGroup && writer.failure === null) {
      writer.markGroupEnd();
      this.groupEnds.push(writer.appendedLsn);
    }
    writer.flush(nowMs);
  }

  drainRequests(): readonly StorageRequest[] {
    // Called after every broker input, and most inputs issue nothing (a segment of a packet, a
    // completion that only moves a position): then no array is made.
    if ((this.recovery?.requestsWaiting ?? 0) + (this.writer?.requestsWaiting ?? 0) + (this.snapshot?.requestsWaiting ?? 0) + this.streams.requestsWaiting === 0) return noRequests;
    const requests: StorageRequest[] = [];
    if (this.recovery !== null) requests.push(...this.recovery.takeRequests());
    if (this.writer !== null) requests.push(...this.writer.takeRequests());
    if (this.snapshot !== null) requests.push(...this.snapshot.takeRequests());
    requests.push(...this.streams.takeRequests());
    return requests;
  }

  storageCompleted(nowMs: number, result: StorageResult): void {
    this.lastNowMs = nowMs;
    if (this.streams.handleResult(result)) {
      this.startLogRecovery();
      return;
    }
    if (this.recovery?.handleResult(result)) return;
    const syncedBefore = this.writer?.syncedLsn ?? 0;
    if (this.writer?.handleResult(result, nowMs)) {
      if (this.writer.syncedLsn > syncedBefore) this.stats.syncs += 1;
      return;
    }
    if (this.snapshot?.handleResult(result)) {
      if (this.snapshot.failure !== null) this.failureMessage = this.snapshot.failure;
      if (this.snapshot.done) {
        this.snapshot = null;
        this.stats.snapshotsWritten += 1;
        this.stats.lastSnapshotMs = nowMs - this.snapshotStartedMs;
      }
      return;
    }
    assert(false, `storage result ${result.requestId} matches no request in flight`);
  }

  nextDeadlineMs(): number | null {
    return this.writer?.nextDeadlineMs() ?? null;
  }

  maybeCompact(state: DurableState): void {
    const writer = this.writer;
    if (writer === null || this.snapshot !== null || this.failure !== null) return;
    if (this.logBytesWritten - this.logBytesAtSnapshot < this.options.snapshotLogBytes) return;
    const coveredLsn = writer.appendedLsn;
    if (coveredLsn === this.snapshotLsn) return;
    // A snapshot covers whole groups only (recovery treats its LSN as a group boundary).
    if (writer.hasOpenGroup) return;
    const records = snapshotRecords(state, this.streams).map(planLogRecord);
    const segments = writer.segments;
    const obsolete = this.pendingObsolete.splice(0);
    // A segment is covered when the next one starts at or before coveredLsn + 1.
    while (segments.length > 1 && segments[1]!.firstLsn - 1 <= coveredLsn) obsolete.push(segments.shift()!.name);
    if (this.snapshotLsn > 0) obsolete.push(snapshotFileName(this.snapshotLsn));
    writer.rotate();
    this.snapshot = new SnapshotWriter({ coveredLsn, records, obsoleteFiles: obsolete }, this.nextRequestId, this.options.writeBytesMax);
    this.snapshotStartedMs = this.lastNowMs;
    this.snapshotLsn = coveredLsn;
    this.logBytesAtSnapshot = this.logBytesWritten;
  }

  private decode(frame: Readonly<RecoveredFrame>, fromSnapshot: boolean, file: string, offset: number): void {
    if (this.failureMessage !== null) return;
    try {
      const record = decodeStateRecordAt(fromSnapshot ? frame.type : frame.type & ~groupEndFlag, frame.bytes, frame.bodyStart, frame.bodyEnd);
      this.recovered.push(record);
      this.recoveredOrigins.push(file, offset, frame.lsn, fromSnapshot);
      // A snapshot's records are whole; a log's count once their group's last record is read.
      if (!fromSnapshot && (frame.type & groupEndFlag) === 0) return;
      for (let index = this.releasedCount; index < this.recovered.length; index++) this.streams.observeRecovered(this.recovered[index]!);
      this.releasedCount = this.recovered.length;
    } catch (error) {
      // The checksum matched, so this is a record this version cannot read, not disk damage; it
      // is reported like damage all the same (file and offset), so that repair can cut it away.
      const where = `corrupt ${fromSnapshot ? 'snapshot' : 'log'}: ${file} at offset ${offset}`;
      this.failureMessage = `${where}: record ${frame.lsn} cannot be decoded: ${(error as Error).message}`;
    }
  }
}
