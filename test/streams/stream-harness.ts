/**
 * The broker test harness (test/broker/harness.ts) over a DurableStateStore on a simulated disk,
 * for stream tests: storage requests run synchronously between inputs, `restart()` is a process
 * crash (a new broker and store over the same disk, everything written still there) and
 * `powerLoss()` a machine crash (unsynced writes lost or torn, then a restart).
 */

import type { SimulatedDisk } from '../../sim/simulated-disk.js';
import type { Authorizer } from '../../src/broker/authorizer.js';
import type { PublishPacket } from '../../src/codec/packets.js';
import { type BrokerConfig, defaultConfig } from '../../src/config.js';
import type { StorageRequest, StorageResult } from '../../src/contract.js';
import { DurableStateStore, type DurableStoreOptions, streamLogOptionsFor } from '../../src/store/durable-store.js';
import { Harness, type TestClient } from '../broker/harness.js';
import { newDisk } from './store-rig.js';

export const streamStoreOptions: DurableStoreOptions = {
  syncPolicy: 'always',
  syncIntervalMs: 10,
  segmentBytesMax: 64 * 1024,
  snapshotLogBytes: 1 << 30,
  writeBytesMax: 16 * 1024,
};

export const sensors = { name: 'sensors', filter: 'sensors/#', retentionMs: 0, retentionBytes: 0, lastValue: false };

/** Executes storage requests on the disk, holding back syncs, or everything past a budget, when asked. */
export class StorageGate {
  /** Operations held back until released (syncs: nothing new becomes durable). */
  readonly hold = new Set<StorageRequest['op']>();
  readonly held: StorageRequest[] = [];
  /** Requests executed so far (a crash test stops the world after a budget). */
  executed = 0;
  /** Past this many executed requests, every request is held (the world stops; then a crash). */
  budget = Number.POSITIVE_INFINITY;
  /** Requests held back besides those of the held kinds (a slow stream file, say), or null. */
  holdIf: ((request: StorageRequest) => boolean) | null = null;

  constructor(readonly disk: SimulatedDisk) {}

  execute(request: StorageRequest): StorageResult | null {
    if (this.executed >= this.budget || this.hold.has(request.op) || (this.holdIf?.(request) ?? false)) {
      this.held.push(request);
      return null;
    }
    this.executed += 1;
    return this.disk.execute(request);
  }

  reset(): void {
    this.held.length = 0;
    this.hold.clear();
    this.holdIf = null;
    this.budget = Number.POSITIVE_INFINITY;
  }
}

export class StreamHarness extends Harness<DurableStateStore> {
  readonly gate: StorageGate;

  constructor(
    overrides: Partial<BrokerConfig> = {},
    readonly disk: SimulatedDisk = newDisk(),
    options: { wallClockOffsetMs?: number; store?: Partial<DurableStoreOptions>; authorizer?: Authorizer } = {},
  ) {
    // Every release written at once unless a test says otherwise: the tests count writes and crash between them.
    const config = { streams: [sensors], streamSegmentBytesMax: 4096, streamIndexIntervalBytes: 512, streamUnsyncedBytesMax: 2048, streamWriteBytesMin: 1, ...overrides };
    const storeOptions = { ...streamStoreOptions, ...options.store, streams: streamLogOptionsFor({ ...defaultConfig, ...config }) };
    const gate = new StorageGate(disk);
    super(config, new DurableStateStore(storeOptions), {
      execute: (request) => gate.execute(request),
      restartStore: () => new DurableStateStore(storeOptions),
      brokerOptions: {
        ...(options.wallClockOffsetMs === undefined ? {} : { wallClockOffsetMs: options.wallClockOffsetMs }),
        ...(options.authorizer === undefined ? {} : { authorizer: options.authorizer }),
      },
    });
    this.gate = gate;
  }

  /** Runs the operations held back (and what follows them). */
  releaseHeld(): void {
    this.gate.hold.clear();
    this.gate.holdIf = null;
    for (const request of this.gate.held.splice(0)) this.complete(this.disk.execute(request));
  }

  /** The machine loses power: unsynced writes are lost or torn; then the broker starts again. */
  powerLoss(): void {
    this.disk.crash();
    this.restartAfterCrash();
  }

  /** The process dies (what was written stays), and the broker starts again. */
  restartAfterCrash(): void {
    this.gate.reset();
    this.restart();
  }
}

/** A delivery's stream offset (MQTT 5.0 user property), or null. */
export function offsetOf(publish: PublishPacket): number | null {
  const value = publish.properties?.userProperties?.find(([name]) => name === 'stream-offset')?.[1];
  return value === undefined ? null : Number(value);
}

/** A user property of a delivery, or undefined. */
export function userProperty(publish: PublishPacket, name: string): string | undefined {
  return publish.properties?.userProperties?.find(([key]) => key === name)?.[1];
}

/** Acknowledges every QoS 1 delivery and returns them all. */
export function takeAndAck(client: TestClient): PublishPacket[] {
  const publishes = client.publishes();
  for (const publish of publishes) if (publish.qos > 0) client.acknowledge(publish);
  return publishes;
}
