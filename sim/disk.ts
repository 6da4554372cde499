/**
 * The broker's disk in the simulated world: which store a seed runs, which disk faults strike,
 * and when each storage request completes.
 *
 * The bytes live in a `SimulatedDisk` (simulated-disk.ts), which outlives every broker crash and
 * models what real disks do wrong: unsynced writes lost as any subset or torn, directory changes
 * durable only after a directory sync, EIO, ENOSPC, read errors and bit flips in synced data
 * (with a ledger of every flip). This file adds the device around it: one queue, so requests
 * complete in the order issued, each after a small random latency, sometimes after a long stall
 * (a slow operation); and the seed's choices (swarm testing) of store options and fault rates.
 *
 * The seed's disk choices come from their own `${seed}:disk-shape` stream, so adding them did not
 * change the clients, network and faults any older seed chose.
 */
import type { DurableStoreOptions } from '../src/store/durable-store.js';
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
  return `sync=${policy} segment=${store.segmentBytesMax} snapshot_log=${store.snapshotLogBytes} write_max=${store.writeBytesMax} torn=${shape.tornWriteRate} disk_faults=${faults.join('+') || 'none'}`;
}

/** The device queue: completions in issue order, with random latency and occasional stalls. */
export class DiskDevice {
  private lastCompletionMs = 0;
  stalls = 0;

  constructor(
    private readonly random: Random,
    private readonly shape: DiskShape,
  ) {}

  /** When a request issued now completes: never before an earlier one. */
  completionMs(nowMs: number, quiet: boolean): number {
    let latencyMs = this.random.int(0, 2);
    if (!quiet && this.shape.slowProbability > 0 && this.random.chance(this.shape.slowProbability)) {
      latencyMs += this.random.int(1, this.shape.slowMsMax);
      this.stalls += 1;
    }
    const timeMs = Math.max(nowMs + latencyMs, this.lastCompletionMs);
    this.lastCompletionMs = timeMs;
    return timeMs;
  }
}
