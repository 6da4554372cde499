/**
 * A DurableStateStore driven in this process over the real Node storage backend
 * (io/node-storage.ts), the way the broker's driver drives it, but without a broker: the bench
 * appends StateRecords through the store's public API and the store turns them into storage
 * requests, which NodeStorage executes one after another. Used to build a large log quickly
 * (no sockets, no MQTT) and to time the store's own recovery.
 *
 * Nothing here knows the file format or the log writer's internals: only StateStore methods
 * (recover, append, flush, drainRequests, storageCompleted, durableLsn, failure) are used, so a
 * change in how the writer frames, groups or syncs records changes the figures, not this code.
 */
import { performance } from 'node:perf_hooks';
import { NodeStorage } from '../../io/node-storage.js';
import type { SyncPolicy } from '../../src/config.js';
import type { StorageResult } from '../../src/contract.js';
import { DurableStateStore } from '../../src/store/durable-store.js';
import type { StateRecord } from '../../src/store/state-store.js';

export interface StoreOnDiskOptions {
  directory: string;
  syncPolicy: SyncPolicy;
  segmentBytesMax: number;
}

/** Storage requests allowed in NodeStorage's queue before append waits for them. */
const pendingRequestsMax = 8;

export class StoreOnDisk {
  readonly store: DurableStateStore;
  private readonly storage: NodeStorage;
  private waiters: (() => void)[] = [];
  private lastNowMs = 0;

  constructor(options: StoreOnDiskOptions) {
    this.store = new DurableStateStore({
      syncPolicy: options.syncPolicy,
      syncIntervalMs: 100,
      segmentBytesMax: options.segmentBytesMax,
      // Never compact: the point of the log this bench builds is its length.
      snapshotLogBytes: 2 ** 40,
      writeBytesMax: 4 * 1024 * 1024,
    });
    this.storage = new NodeStorage(options.directory, (result) => this.completed(result));
  }

  /** Monotonic integer milliseconds, never going backwards (the store asserts it). */
  nowMs(): number {
    this.lastNowMs = Math.max(this.lastNowMs, Math.floor(performance.now()));
    return this.lastNowMs;
  }

  /** Runs the store's recovery to the end and returns the records it read back. */
  async recover(): Promise<readonly StateRecord[]> {
    for (;;) {
      this.submitRequests();
      const records = this.store.recover(this.nowMs());
      if (records !== null) return records;
      this.throwIfFailed();
      if (this.storage.pendingCount === 0) throw new Error('recovery is waiting for storage but no request is in flight');
      await this.nextCompletion();
    }
  }

  /**
   * Runs the store's recovery to the end, handing records to `apply` as they are read (as the
   * broker does, so memory holds one segment's records, not the log's); returns their count.
   */
  async recoverInto(apply: (records: readonly StateRecord[]) => void): Promise<number> {
    let count = 0;
    for (;;) {
      this.submitRequests();
      const early = this.store.takeRecovered();
      apply(early);
      count += early.length;
      const records = this.store.recover(this.nowMs());
      if (records !== null) {
        apply(records);
        return count + records.length;
      }
      this.throwIfFailed();
      if (this.storage.pendingCount === 0) throw new Error('recovery is waiting for storage but no request is in flight');
      await this.nextCompletion();
    }
  }

  /** Appends the records of one broker input as one group (the store's atomic unit). */
  appendGroup(records: readonly StateRecord[]): void {
    for (let index = 0; index < records.length; index++) this.store.append(records[index]!);
    this.store.flush(this.nowMs());
    // Reading durableLsn is how the broker learns of progress; it also lets the store drop
    // group ends that are already durable, as it does under a live broker.
    void this.store.durableLsn;
  }

  /**
   * Hands the store's requests to storage and waits for at least one to complete, and while too
   * many are queued (backpressure). Waiting at least once matters: the writer may hold further
   * bytes until its write in flight completes, and that completion needs this loop to yield.
   */
  async drain(): Promise<void> {
    this.submitRequests();
    if (this.storage.pendingCount > 0) await this.nextCompletion();
    while (this.storage.pendingCount > pendingRequestsMax) await this.nextCompletion();
    this.throwIfFailed();
  }

  /** Waits until every appended record has been written and acknowledged by the store. */
  async settle(): Promise<void> {
    this.store.flush(this.nowMs());
    this.submitRequests();
    for (let turns = 0; this.storage.pendingCount > 0 || this.store.durableLsn < this.store.appendedLsn; turns++) {
      this.throwIfFailed();
      if (this.storage.pendingCount === 0) {
        // Durability may wait on a deadline (interval policy): let it fire.
        this.store.flush(this.nowMs());
        this.submitRequests();
        if (this.storage.pendingCount === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        if (turns > 100_000) throw new Error('the store never caught up with its appends');
        continue;
      }
      await this.nextCompletion();
    }
    this.throwIfFailed();
  }

  async close(): Promise<void> {
    await this.storage.close();
  }

  private submitRequests(): void {
    const requests = this.store.drainRequests();
    for (let index = 0; index < requests.length; index++) this.storage.submit(requests[index]!);
  }

  private completed(result: StorageResult): void {
    this.store.storageCompleted(this.nowMs(), result);
    this.submitRequests();
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private nextCompletion(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private throwIfFailed(): void {
    const failure = this.store.failure;
    if (failure !== null) throw new Error(`store failed: ${failure}`);
  }
}
