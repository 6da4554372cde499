/**
 * Proves the pure repair planner on logs written by the real store on the simulated disk: a
 * healthy directory needs nothing; a flipped byte in a middle segment gives copy-aside and
 * truncate at exactly the damaged frame, with every later segment renamed aside, after which
 * recovery succeeds with the prefix before the damage; damage in a segment the snapshot wholly
 * covers is left alone; and a damaged newest snapshot is reported as not repairable.
 */
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import { DurableStateStore } from '../../src/store/durable-store.js';
import { planRepair, type RepairAction } from '../../src/store/repair.js';
import { applyRecord, createDurableState, type StateRecord } from '../../src/store/state-store.js';

function pump(disk: SimulatedDisk, store: DurableStateStore): void {
  for (let requests = store.drainRequests(); requests.length > 0; requests = store.drainRequests()) {
    for (const request of requests) store.storageCompleted(0, disk.execute(request));
  }
}

function open(disk: SimulatedDisk, snapshotLogBytes = 1 << 30): { store: DurableStateStore; records: readonly StateRecord[] | null } {
  const store = new DurableStateStore({ syncPolicy: 'always', syncIntervalMs: 10, segmentBytesMax: 4096, snapshotLogBytes, writeBytesMax: 1024 });
  pump(disk, store);
  return { store, records: store.failure === null ? store.recover(0) : null };
}

function subscription(index: number): StateRecord {
  return {
    kind: 'subscription-added',
    clientId: 'alpha',
    subscription: { filter: `t/${index}/${'x'.repeat(40)}`, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: 0 },
  };
}

/** A log of one session and `count` subscriptions, one group per record, over several segments. */
function writeLog(count: number): SimulatedDisk {
  const disk = new SimulatedDisk(seedrandom('repair'));
  const { store } = open(disk);
  store.recover(0);
  store.append({ kind: 'session-created', clientId: 'alpha', protocolVersion: 5, expiryIntervalSeconds: 3600 });
  for (let index = 0; index < count; index++) {
    store.append(subscription(index));
    store.flush(0);
    pump(disk, store);
  }
  return disk;
}

function apply(disk: SimulatedDisk, actions: readonly RepairAction[]): void {
  for (const action of actions) {
    if (action.kind === 'copy') disk.execute({ op: 'write', requestId: 0, file: action.to, offset: 0, bytes: disk.fileBytes(action.from)!.slice() });
    else if (action.kind === 'truncate') disk.execute({ op: 'truncate', requestId: 0, file: action.file, length: action.length });
    else if (action.kind === 'rename') disk.execute({ op: 'rename', requestId: 0, from: action.from, to: action.to });
    else throw new Error(`the log's repair writes no new file (${action.file})`);
  }
}

const segments = (disk: SimulatedDisk): string[] =>
  disk
    .listFiles()
    .map((file) => file.name)
    .filter((name) => /^wal-\d+\.log$/.test(name));

describe('repair planner', () => {
  it('finds nothing to repair in a healthy log', () => {
    const plan = planRepair(writeLog(60).listFiles());
    expect(plan).toEqual({ actions: [], notes: ['nothing to repair'], repairable: true });
  });

  it('cuts the log at a damaged frame in a middle segment and recovery then succeeds', () => {
    const disk = writeLog(200);
    const names = segments(disk);
    expect(names.length).toBeGreaterThan(3);
    const damaged = names[1]!;
    disk.corrupt(damaged, 500, disk.fileBytes(damaged)![500]! ^ 0x04);
    expect(open(disk).store.failure).toMatch(new RegExp(`^corrupt log: ${damaged.replace('.', '\\.')} at offset \\d+`));
    const plan = planRepair(disk.listFiles());
    expect(plan.repairable).toBe(true);
    const offset = Number(/at offset (\d+)/.exec(open(disk).store.failure!)![1]);
    expect(plan.actions.slice(0, 2)).toEqual([
      { kind: 'copy', from: damaged, to: `${damaged}.damaged` },
      { kind: 'truncate', file: damaged, length: offset },
    ]);
    expect(plan.actions.slice(2)).toEqual(names.slice(2).map((name) => ({ kind: 'rename', from: name, to: `${name}.damaged` })));
    expect(plan.notes).toHaveLength(plan.actions.length - 1);
    apply(disk, plan.actions);
    const recovered = open(disk);
    expect(recovered.store.failure).toBeNull();
    const count = recovered.records!.filter((record) => record.kind === 'subscription-added').length;
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(200);
    expect(planRepair(disk.listFiles()).actions).toEqual([]);
  });

  it('leaves damage in a segment the snapshot wholly covers, and refuses a damaged snapshot', () => {
    const disk = new SimulatedDisk(seedrandom('repair-snapshot'));
    const first = writeLog(120).listFiles();
    for (const file of first) disk.execute({ op: 'write', requestId: 0, file: file.name, offset: 0, bytes: file.bytes });
    const covered = segments(disk)[0]!;
    // With a snapshot covering LSN 121 (everything), every segment but the newest is obsolete.
    const lastLsn = 121;
    const { store } = open(disk, 1);
    expect(store.failure).toBeNull();
    disk.corrupt(covered, 100, disk.fileBytes(covered)![100]! ^ 0x01);
    const snapshotName = `snapshot-${String(lastLsn).padStart(16, '0')}.snap`;
    const withSnapshot = [...disk.listFiles(), { name: snapshotName, bytes: snapshotImage() }];
    expect(planRepair(withSnapshot).notes).toEqual(['nothing to repair']);
    const damagedSnapshot = snapshotImage();
    damagedSnapshot[20] ^= 0x01;
    const refused = planRepair([...disk.listFiles(), { name: snapshotName, bytes: damagedSnapshot }]);
    expect(refused.repairable).toBe(false);
    expect(refused.actions).toEqual([]);
    expect(refused.notes[0]).toMatch(/^cannot repair: the newest snapshot snapshot-0+121\.snap is damaged/);
  });
});

/** A whole snapshot image (two records and the end record), built by the real snapshot writer. */
function snapshotImage(): Uint8Array {
  const disk = new SimulatedDisk(seedrandom('image'));
  const store = new DurableStateStore({ syncPolicy: 'always', syncIntervalMs: 10, segmentBytesMax: 4096, snapshotLogBytes: 1, writeBytesMax: 1024 });
  pump(disk, store);
  store.recover(0);
  store.append({ kind: 'session-created', clientId: 'beta', protocolVersion: 5, expiryIntervalSeconds: 60 });
  store.flush(0);
  pump(disk, store);
  // The session the log's later records are about, so that the image and the log agree.
  const state = createDurableState();
  applyRecord(state, { kind: 'session-created', clientId: 'alpha', protocolVersion: 5, expiryIntervalSeconds: 3600 });
  store.maybeCompact(state);
  pump(disk, store);
  const snapshot = disk.listFiles().find((file) => file.name.endsWith('.snap'));
  expect(snapshot).toBeDefined();
  return snapshot!.bytes;
}
