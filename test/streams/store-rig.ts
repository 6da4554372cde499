/**
 * A test rig for the durable store's streams without a broker: a DurableStateStore over a
 * SimulatedDisk, driven as the broker drives it (after every completed request: release what is
 * durable, flush, offer compaction), records committed to it and applied to a state, and reads
 * of a whole stream through the store's reading API, from memory or from the files.
 */
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import { DurableStateStore, type DurableStoreOptions } from '../../src/store/durable-store.js';
import { applyRecord, createDurableState, type DurableState, finishReplay, type StateRecord } from '../../src/store/state-store.js';
import type { StreamEntry } from '../../src/store/streams/stream-entry.js';

export const rigOptions: DurableStoreOptions = {
  syncPolicy: 'always',
  syncIntervalMs: 10,
  segmentBytesMax: 4096,
  snapshotLogBytes: 1 << 30,
  writeBytesMax: 2048,
  // Every release written at once (as before writes were gathered): these tests follow each write;
  // stream-log.test.ts proves the gathering with a rig of its own.
  streams: { segmentBytesMax: 4096, indexIntervalBytes: 256, unsyncedBytesMax: 1024, writeBytesMin: 1 },
};

export class StoreRig {
  readonly store: DurableStateStore;
  readonly state: DurableState = createDurableState();
  /** Requests executed so far (a crash test stops after a budget of them). */
  executed = 0;

  constructor(
    readonly disk: SimulatedDisk,
    options: DurableStoreOptions = rigOptions,
    private readonly compact = false,
  ) {
    this.store = new DurableStateStore(options);
  }

  /** Recovers (all three steps); returns false when the budget ran out or the store failed. */
  open(budget = Number.POSITIVE_INFINITY): boolean {
    if (!this.run(budget)) return false;
    const records = this.store.recover(0);
    if (records === null) return false;
    for (const record of records) applyRecord(this.state, record);
    finishReplay(this.state);
    this.store.streams.finishRecovery(this.state);
    if (!this.run(budget)) return false;
    return this.store.streams.ready && this.store.failure === null;
  }

  commit(record: StateRecord): number {
    const lsn = this.store.append(record);
    applyRecord(this.state, record);
    return lsn;
  }

  /** The end of an input, as the broker does it. */
  endInput(): void {
    if (this.store.streams.ready) this.store.streams.release(this.store.durableLsn);
    this.store.flush(0);
    if (this.compact && this.store.streams.ready) this.store.maybeCompact(this.state);
  }

  /** Executes requests until none is left or `budget` requests ran in all; false when cut short. */
  run(budget = Number.POSITIVE_INFINITY): boolean {
    this.endInput();
    for (;;) {
      const requests = this.store.drainRequests();
      if (requests.length === 0) return this.store.failure === null;
      for (const request of requests) {
        if (this.executed >= budget) return false;
        this.executed += 1;
        this.store.storageCompleted(0, this.disk.execute(request));
        this.endInput();
        if (this.store.failure !== null) return false;
      }
    }
  }

  /** Every released entry of a stream from `from` on, read through the store's API. */
  readAll(stream: string, from = 0): StreamEntry[] {
    const entries: StreamEntry[] = [];
    const streams = this.store.streams;
    let offset = from;
    for (let step = 0; step < 100_000; step++) {
      if (offset >= streams.releasedOffset(stream)) return entries;
      const next = streams.readMemory(stream, offset, 1024, entries);
      if (next !== null) {
        offset = next;
        continue;
      }
      streams.startRead(stream, offset, 1024, step);
      this.run();
      const [result] = streams.takeReadResults();
      if (result === undefined) throw new Error(`no read result for ${stream} at ${offset}`);
      entries.push(...result.entries);
      if (result.damaged !== null) throw new Error(`damaged entries ${result.damaged.fromOffset}..${result.damaged.toOffset}`);
      offset = result.nextOffset;
    }
    throw new Error('readAll did not finish');
  }
}

export function newDisk(seed = 1): SimulatedDisk {
  let state = seed;
  // A small deterministic generator: the disk only draws for faults, and these tests inject none.
  return new SimulatedDisk(() => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  });
}

export const text = (value: string): Uint8Array => new TextEncoder().encode(value);
export const decodeText = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
