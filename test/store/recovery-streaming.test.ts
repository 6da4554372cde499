/**
 * Proves that recovery hands records over as it reads them (`takeRecovered`), so a caller holds one
 * segment's records at a time rather than the whole log's: on a log of many segments, whole groups
 * arrive before recovery has finished, each exactly once, in log order, and together with what
 * `recover` returns at the end they are exactly the records a one-shot recovery returns. A
 * trailing group cut by a crash is never handed over.
 */
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import { DurableStateStore } from '../../src/store/durable-store.js';
import type { StateRecord } from '../../src/store/state-store.js';

const options = { syncPolicy: 'always' as const, syncIntervalMs: 10, segmentBytesMax: 4096, snapshotLogBytes: 1 << 30, writeBytesMax: 1024 };
const created = (clientId: string): StateRecord => ({ kind: 'session-created', clientId, protocolVersion: 5, expiryIntervalSeconds: 60 });
const names = (records: readonly StateRecord[]): string[] => records.map((record) => (record as { clientId: string }).clientId);

function pump(disk: SimulatedDisk, store: DurableStateStore, budget = Infinity, onStep: () => void = () => {}): number {
  let used = 0;
  for (let requests = store.drainRequests(); requests.length > 0 && used < budget; requests = store.drainRequests()) {
    for (const request of requests) {
      if (used++ >= budget) return used;
      store.storageCompleted(0, disk.execute(request));
      onStep();
    }
  }
  return used;
}

/** Writes `groups` groups of three records; returns the client ids in order. */
function writeLog(disk: SimulatedDisk, groups: number): string[] {
  const store = new DurableStateStore(options);
  pump(disk, store);
  store.recover(0);
  const written: string[] = [];
  for (let group = 0; group < groups; group++) {
    for (let member = 0; member < 3; member++) {
      const clientId = `client-${group}-${member}-${'x'.repeat(40)}`;
      store.append(created(clientId));
      written.push(clientId);
    }
    store.flush(0);
    pump(disk, store);
  }
  return written;
}

describe('streaming recovery', () => {
  it('hands whole groups over while reading, in order, each once', () => {
    const disk = new SimulatedDisk(seedrandom('streaming'));
    const written = writeLog(disk, 200);
    const store = new DurableStateStore(options);
    const taken: string[] = [];
    let takenBeforeTheEnd = 0;
    pump(disk, store, Infinity, () => {
      const records = store.takeRecovered();
      expect(records.length % 3).toBe(0);
      taken.push(...names(records));
      if (store.recover(0) === null) takenBeforeTheEnd += records.length;
    });
    const rest = store.recover(0);
    expect(rest).not.toBeNull();
    taken.push(...names(rest!));
    expect(store.recoveryOutcome!.segments.length).toBeGreaterThan(5);
    expect(takenBeforeTheEnd).toBeGreaterThan(written.length / 2);
    expect(taken).toEqual(written);
    const oneShot = new DurableStateStore(options);
    pump(disk, oneShot);
    expect(names(oneShot.recover(0)!)).toEqual(written);
  });

  it('never hands over a trailing group a crash cut short', () => {
    const disk = new SimulatedDisk(seedrandom('streaming-cut'));
    const written = writeLog(disk, 50);
    const store = new DurableStateStore({ ...options, writeBytesMax: 64 });
    pump(disk, store);
    store.recover(0);
    for (let member = 0; member < 3; member++) store.append(created(`cut-${member}`));
    store.flush(0);
    pump(disk, store, 2); // the group's first write and its sync; the rest is lost
    disk.crash();
    const reopened = new DurableStateStore(options);
    const taken: string[] = [];
    pump(disk, reopened, Infinity, () => taken.push(...names(reopened.takeRecovered())));
    taken.push(...names(reopened.recover(0)!));
    expect(taken).toEqual(written);
  });
});
