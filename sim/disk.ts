/**
 * The broker's disk in the simulated world: which store a seed runs, which disk faults strike,
 * and when each storage request completes.
 *
 * The bytes live in a `SimulatedDisk` (simulated-disk.ts), which outlives every broker crash and
 * models what real disks do wrong: unsynced writes lost as any subset or torn, directory changes
 * durable only after a directory sync, EIO, ENOSPC, read errors and bit flips in synced data
 * (with a ledger of every flip). This file adds the device around it: each request takes effect
 * and completes after a small random latency, sometimes after a long stall (a slow operation), in
 * the order src/store/storage-order.ts allows the real host (io/storage-lanes.ts): in issue order
 * on each file, in any order across files (a stall of one file's request holds back only that
 * file), with `list` and `sync-directory` after everything issued before them and before
 * everything issued after. A quarter of the seeds keep the older device instead, one queue for
 * every file (completions in issue order), which the host may still happen to produce; and the
 * seed's choices (swarm testing) of store options and fault rates.
 *
 * The seed's disk choices come from their own `${seed}:disk-shape` stream, so adding them did not
 * change the clients, network and faults any older seed chose; whether files run side by side
 * comes from `${seed}:disk-order`, so adding it changed no other choice, and a seed that keeps one
 * queue replays the trace it did before.
 */
import type { StorageRequest } from '../src/contract.js';
import type { DurableStoreOptions } from '../src/store/durable-store.js';
import { storageScope } from '../src/store/storage-order.js';
import { Random } from './random.js';

export interface DiskShape {
  store: DurableStoreOptions;
  /** Probability that a write, sync, truncate, rename, delete or directory sync fails with EIO. */
  ioErrorRate: number;
  /** Probability that a read (only recovery reads) fails with EIO: a latent, transient read error. */
  readErrorRate: number;
  /** Probability that a crash tears an unsynced write to a prefix rather than keeping or losing it whole. */
  tornWriteRate: number;
  /** Mean time between "disk full" episodes (capacity set near current use, later raised), or null. */
  fullDiskIntervalMsMean: number | null;
  /** Mean time between bit flips in synced data, or null for a seed without them. */
  bitFlipIntervalMsMean: number | null;
  /** Probability that a request stalls for up to `slowMsMax` before completing. */
  slowProbability: number;
  slowMsMax: number;
  /** Probability that the broker crashes right after a storage request took effect (mid-write, mid-snapshot). */
  crashAfterOperationProbability: number;
  /** Probability that a freshly started broker crashes again while it is still recovering. */
  crashDuringRecoveryProbability: number;
  /**
   * Whether requests on different files complete independently (the Node host since issue 15's
   * storage round) or all in issue order (one queue, as the host did before).
   */
  filesConcurrent: boolean;
}

export function chooseDiskShape(seed: number, faulty: boolean): DiskShape {
  const random = Random.stream(seed, 'disk-shape');
  const syncPolicy = random.chance(0.1) ? 'interval' : 'always';
  const store: DurableStoreOptions = {
    syncPolicy,
    syncIntervalMs: random.int(5, 200),
    segmentBytesMax: random.pick([4096, 8192, 16_384, 65_536, 1 << 20]),
    snapshotLogBytes: random.pick([2048, 8192, 32_768, 1 << 20, 1 << 30]),
    writeBytesMax: random.pick([512, 4096, 65_536]),
  };
  const shape: DiskShape = {
    store,
    ioErrorRate: 0,
    readErrorRate: 0,
    tornWriteRate: random.pick([0, 0.3, 0.8]),
    fullDiskIntervalMsMean: null,
    bitFlipIntervalMsMean: null,
    slowProbability: 0,
    slowMsMax: random.int(20, 2_000),
    crashAfterOperationProbability: 0,
    crashDuringRecoveryProbability: 0,
    filesConcurrent: Random.stream(seed, 'disk-order').chance(0.75),
  };
  if (!faulty) return shape;
  shape.ioErrorRate = random.pick([0, 0, 0.0005, 0.002]);
  shape.readErrorRate = random.pick([0, 0, 0.05]);
  shape.fullDiskIntervalMsMean = random.chance(0.25) ? random.int(2_000, 10_000) : null;
  shape.bitFlipIntervalMsMean = random.chance(0.12) ? random.int(2_000, 10_000) : null;
  shape.slowProbability = random.pick([0, 0.002, 0.02]);
  shape.crashAfterOperationProbability = random.pick([0, 0, 0.001, 0.004]);
  shape.crashDuringRecoveryProbability = random.pick([0, 0.3]);
  return shape;
}

export function describeDiskShape(shape: DiskShape): string {
  const store = shape.store;
  const policy = store.syncPolicy === 'interval' ? `interval/${store.syncIntervalMs}ms` : store.syncPolicy;
  const faults: string[] = [];
  if (shape.ioErrorRate > 0) faults.push(`eio=${shape.ioErrorRate}`);
  if (shape.readErrorRate > 0) faults.push(`read_errors=${shape.readErrorRate}`);
  if (shape.fullDiskIntervalMsMean !== null) faults.push(`full/${shape.fullDiskIntervalMsMean}ms`);
  if (shape.bitFlipIntervalMsMean !== null) faults.push(`bit_flips/${shape.bitFlipIntervalMsMean}ms`);
  if (shape.slowProbability > 0) faults.push(`slow=${shape.slowProbability}`);
  if (shape.crashAfterOperationProbability > 0) faults.push(`crash_on_op=${shape.crashAfterOperationProbability}`);
  if (shape.crashDuringRecoveryProbability > 0) faults.push(`crash_in_recovery=${shape.crashDuringRecoveryProbability}`);
  return `sync=${policy} segment=${store.segmentBytesMax} snapshot_log=${store.snapshotLogBytes} write_max=${store.writeBytesMax} torn=${shape.tornWriteRate} disk_order=${shape.filesConcurrent ? 'per-file' : 'serial'} disk_faults=${faults.join('+') || 'none'}`;
}

/**
 * The device: when each request completes (and takes effect). A request's time is its issue time
 * plus its latency, but never before an earlier request it must follow: on its files (or on any
 * file, for a seed with one queue), and never before the last directory request; a directory
 * request follows every earlier request. The event queue runs requests due at the same time in
 * the order they were pushed, which is issue order.
 */
export class DiskDevice {
  /** The latest completion of any request issued so far. */
  private lastCompletionMs = 0;
  /** The latest completion of a directory request (`list`, `sync-directory`). */
  private lastDirectoryMs = 0;
  /** The latest completion on each file; entries at or before the clock constrain nothing. */
  private readonly fileCompletionMs = new Map<string, number>();
  stalls = 0;

  constructor(
    private readonly random: Random,
    private readonly shape: DiskShape,
  ) {}

  /** When `request`, issued now, completes: never before a request it must follow. */
  completionMs(nowMs: number, quiet: boolean, request: StorageRequest): number {
    let latencyMs = this.random.int(0, 2);
    if (!quiet && this.shape.slowProbability > 0 && this.random.chance(this.shape.slowProbability)) {
      latencyMs += this.random.int(1, this.shape.slowMsMax);
      this.stalls += 1;
    }
    const readyMs = nowMs + latencyMs;
    const scope = storageScope(request);
    if (!this.shape.filesConcurrent || scope.kind === 'directory') {
      const timeMs = Math.max(readyMs, this.lastCompletionMs);
      this.lastCompletionMs = timeMs;
      if (scope.kind === 'directory') this.lastDirectoryMs = timeMs;
      return timeMs;
    }
    let timeMs = Math.max(readyMs, this.lastDirectoryMs);
    for (const file of scope.files) timeMs = Math.max(timeMs, this.fileCompletionMs.get(file) ?? 0);
    for (const file of scope.files) this.fileCompletionMs.set(file, timeMs);
    this.lastCompletionMs = Math.max(this.lastCompletionMs, timeMs);
    this.forgetPast(nowMs);
    return timeMs;
  }

  /** Bounds the map by the files with requests still to complete (plus a few). */
  private forgetPast(nowMs: number): void {
    if (this.fileCompletionMs.size < 64) return;
    for (const [file, timeMs] of this.fileCompletionMs) if (timeMs < nowMs) this.fileCompletionMs.delete(file);
  }
}
