/**
 * Proves that the records of one broker input are atomic on disk (simulator seed 428): the store
 * flags the last record of each group at `flush`; `durableLsn` reaches only the end of a complete
 * synced group, even when a group spans several writes; and when a crash keeps only part of a
 * group (its first write synced, the rest lost), recovery returns none of it and cuts it off the
 * log, so records appended afterwards cannot be glued to it by a later recovery.
 */
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import { DurableStateStore } from '../../src/store/durable-store.js';
import type { StateRecord } from '../../src/store/state-store.js';

const options = { syncPolicy: 'always' as const, syncIntervalMs: 10, segmentBytesMax: 1 << 20, snapshotLogBytes: 1 << 30, writeBytesMax: 32 };

function open(disk: SimulatedDisk): { store: DurableStateStore; records: readonly StateRecord[] } {
  const store = new DurableStateStore(options);
  pump(disk, store, Infinity);
  const records = store.recover(0);
  expect(store.failure).toBeNull();
  return { store, records: records! };
}

function pump(disk: SimulatedDisk, store: DurableStateStore, budget: number): number {
  let used = 0;
  for (let requests = store.drainRequests(); requests.length > 0 && used < budget; requests = store.drainRequests()) {
    for (const request of requests) {
      if (used++ >= budget) return used;
      store.storageCompleted(0, disk.execute(request));
    }
  }
  return used;
}

const created = (clientId: string): StateRecord => ({ kind: 'session-created', clientId, protocolVersion: 5, expiryIntervalSeconds: 60 });

describe('record groups', () => {
  it('releases a group only whole, and recovery drops a group cut by a crash', () => {
    const disk = new SimulatedDisk(seedrandom('groups'));
    const { store } = open(disk);
    const alone = store.append(created('alone'));
    store.flush(0);
    pump(disk, store, Infinity);
    expect(store.durableLsn).toBeGreaterThanOrEqual(alone);
    // One input appends three records (27 bytes framed each); 32-byte writes split them into separate write+sync pairs.
    const [first] = ['first', 'second', 'third'].map((clientId) => store.append(created(clientId)));
    store.flush(0);
    pump(disk, store, 2);
    // The first record of the group is synced, but the group is not whole: nothing is released.
    expect(store.durableLsn).toBeLessThan(first!);
    disk.crash();
    const reopened = open(disk);
    expect(reopened.records.map((record) => (record as { clientId: string }).clientId)).toEqual(['alone']);
    expect(reopened.store.recoveryOutcome!.warnings.join(' ')).toContain(`discarded records ${first}..${first}`);
    // New records take the discarded LSNs; a later recovery must not glue the old part to them.
    const later = reopened.store.append(created('later'));
    expect(later).toBe(first);
    reopened.store.flush(0);
    pump(disk, reopened.store, Infinity);
    expect(reopened.store.durableLsn).toBeGreaterThanOrEqual(later);
    disk.crash();
    const last = open(disk);
    expect(last.records.map((record) => (record as { clientId: string }).clientId)).toEqual(['alone', 'later']);
  });

  it('survives a crash while recovery cuts a group that spans two segments (seed 301856)', () => {
    const big = { ...options, segmentBytesMax: 4096, writeBytesMax: 512 };
    const failures: string[] = [];
    for (let crashAfterWrite = 1; crashAfterWrite <= 24; crashAfterWrite++) {
      for (let crashInRecovery = 0; crashInRecovery <= 8; crashInRecovery++) {
        const disk = new SimulatedDisk(seedrandom(`span-${crashAfterWrite}-${crashInRecovery}`));
        const store = new DurableStateStore(big);
        pump(disk, store, Infinity);
        store.recover(0);
        for (let index = 0; index < 30; index++) store.append(created(`before-${index}`));
        store.flush(0);
        pump(disk, store, Infinity);
        // One input whose records fill more than a segment: the group crosses a rotation.
        for (let index = 0; index < 80; index++) store.append(created(`group-${index}`));
        store.flush(0);
        pump(disk, store, crashAfterWrite);
        disk.crash();
        const interrupted = new DurableStateStore(big);
        pump(disk, interrupted, crashInRecovery);
        disk.crash();
        const final = new DurableStateStore(big);
        pump(disk, final, Infinity);
        final.recover(0);
        if (final.failure !== null) failures.push(`${crashAfterWrite}/${crashInRecovery}: ${final.failure}`);
      }
    }
    expect(failures).toEqual([]);
  });
});
