/**
 * A StateStore that keeps its records in an array: durable at once, no storage requests.
 *
 * It stands in for the write-ahead log while that is being built, and it is what the simulator
 * uses to model "crash and restart": the store object outlives a Broker, and a new Broker over
 * it replays `records()` into the same state. Every append is durable immediately, so the broker
 * releases acknowledgements at once.
 *
 * Compaction keeps long runs bounded: once the log holds more than four times as many records as
 * the last snapshot (and at least `compactRecordsMin`), it is replaced by `snapshotRecords` of the
 * live state the broker offers. LSNs keep increasing across compactions.
 */
import { assert } from '../assert.js';
import type { StorageRequest, StorageResult } from '../contract.js';
import { type DurableState, type StateRecord, type StateStore, snapshotRecords } from './state-store.js';

export interface MemoryStateStoreOptions {
  /** Below this many records the store never compacts. */
  compactRecordsMin?: number;
  /** Records to start with, as if a previous broker had written them (tests, tools). */
  records?: readonly StateRecord[];
}

export class MemoryStateStore implements StateStore {
  private log: StateRecord[] = [];
  private lastLsn = 0;
  private snapshotLength = 0;
  private readonly compactRecordsMin: number;
  /** How many times the log was rewritten as a snapshot. */
  compactions = 0;

  constructor(options: MemoryStateStoreOptions = {}) {
    this.compactRecordsMin = options.compactRecordsMin ?? 4096;
    assert(this.compactRecordsMin >= 1, 'compactRecordsMin must be positive');
    if (options.records !== undefined) {
      this.log = [...options.records];
      this.lastLsn = this.log.length;
    }
  }

  /** Every record held, oldest first (after compaction: the snapshot, then what followed). */
  records(): readonly StateRecord[] {
    return this.log;
  }

  recover(_nowMs: number): readonly StateRecord[] {
    return this.log;
  }

  append(record: StateRecord): number {
    this.log.push(record);
    this.lastLsn += 1;
    return this.lastLsn;
  }

  get durableLsn(): number {
    return this.lastLsn;
  }

  get appendedLsn(): number {
    return this.lastLsn;
  }

  readonly failure: string | null = null;

  flush(_nowMs: number): void {}

  drainRequests(): readonly StorageRequest[] {
    return [];
  }

  storageCompleted(_nowMs: number, _result: StorageResult): void {
    assert(false, 'the memory store issues no storage requests');
  }

  nextDeadlineMs(): number | null {
    return null;
  }

  maybeCompact(state: DurableState): void {
    if (this.log.length < this.compactRecordsMin) return;
    if (this.log.length <= 4 * this.snapshotLength) return;
    this.log = snapshotRecords(state);
    this.snapshotLength = this.log.length;
    this.compactions += 1;
  }
}
