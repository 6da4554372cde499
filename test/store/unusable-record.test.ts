/**
 * Proves that a record which reads back whole but cannot be applied never crashes recovery and
 * never stops the way back: the broker halts with the record's file, offset and reason, worded
 * like damage ("corrupt log: ... at offset N"), the repair plan cuts the log just before it, and
 * the broker then starts from the records before it. Also proves the other half of the rule: the
 * broker refuses to commit such a record at all, before anything is appended.
 *
 * The bad records are appended to the store directly, as an older version without the checks
 * could have written them (the issue: a will with an empty topic, durable before the crash it
 * caused, crashed every restart).
 */
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import { Broker } from '../../src/broker/broker.js';
import { defaultConfig } from '../../src/config.js';
import { DurableStateStore } from '../../src/store/durable-store.js';
import { MemoryStateStore } from '../../src/store/memory-store.js';
import { planRepair, type RepairAction } from '../../src/store/repair.js';
import type { StateRecord } from '../../src/store/state-store.js';

const storeOptions = { syncPolicy: 'always' as const, syncIntervalMs: 10, segmentBytesMax: 4096, snapshotLogBytes: 1 << 30, writeBytesMax: 1024 };

function pump(disk: SimulatedDisk, store: DurableStateStore): void {
  for (let requests = store.drainRequests(); requests.length > 0; requests = store.drainRequests()) {
    for (const request of requests) store.storageCompleted(0, disk.execute(request));
  }
}

/** Writes `groups` as they come, one broker input per group. */
function writeLog(groups: StateRecord[][]): SimulatedDisk {
  const disk = new SimulatedDisk(seedrandom('unusable'));
  const store = new DurableStateStore(storeOptions);
  pump(disk, store);
  store.recover(0);
  for (const group of groups) {
    for (const record of group) store.append(record);
    store.flush(0);
    pump(disk, store);
  }
  return disk;
}

/** Starts a broker on the disk and runs its storage requests until it is ready or halted. */
function start(disk: SimulatedDisk): Broker {
  const broker = new Broker({ config: defaultConfig, nowMs: 0, store: new DurableStateStore(storeOptions) });
  for (let round = 0; round < 1_000 && !broker.ready && broker.haltReason === null; round++) {
    for (const action of broker.drainActions()) if (action.kind === 'storage') broker.storageCompleted(0, disk.execute(action.request));
  }
  return broker;
}

function apply(disk: SimulatedDisk, actions: readonly RepairAction[]): void {
  for (const action of actions) {
    if (action.kind === 'copy') disk.execute({ op: 'write', requestId: 0, file: action.to, offset: 0, bytes: disk.fileBytes(action.from)!.slice() });
    else if (action.kind === 'truncate') disk.execute({ op: 'truncate', requestId: 0, file: action.file, length: action.length });
    else if (action.kind === 'rename') disk.execute({ op: 'rename', requestId: 0, from: action.from, to: action.to });
    else throw new Error(`the log's repair writes no new file (${action.file})`);
  }
}

const session = (clientId: string): StateRecord => ({ kind: 'session-created', clientId, protocolVersion: 4, expiryIntervalSeconds: 0xffffffff, username: null });
const emptyWill: StateRecord = { kind: 'will-set', clientId: 'victim', will: { topic: '', payload: Uint8Array.of(1), qos: 0, retain: false }, username: null };

describe('a recovered record that cannot be applied', () => {
  it('halts recovery with its file and offset, and the repair plan cuts the log just before it', () => {
    const disk = writeLog([[session('before')], [session('victim'), emptyWill], [session('after')]]);
    const broker = start(disk);
    expect(broker.ready).toBe(false);
    const reason = broker.haltReason!;
    expect(reason).toMatch(/^corrupt log: wal-0000000000000001\.log at offset \d+: record \d+ \(will-set\) cannot be applied: will empty topic name$/);
    const offset = Number(/at offset (\d+)/.exec(reason)![1]);
    const plan = planRepair(disk.listFiles());
    expect(plan.repairable).toBe(true);
    expect(plan.actions).toEqual([
      { kind: 'copy', from: 'wal-0000000000000001.log', to: 'wal-0000000000000001.log.damaged' },
      { kind: 'truncate', file: 'wal-0000000000000001.log', length: offset },
    ]);
    expect(plan.notes[0]).toContain('will-set cannot be applied: will empty topic name');
    apply(disk, plan.actions);
    const repaired = start(disk);
    expect(repaired.haltReason).toBeNull();
    expect(repaired.ready).toBe(true);
    // The group with the bad record is cut whole (recovery never applies part of an input).
    expect([...repaired.state.sessions.keys()]).toEqual(['before']);
    expect(repaired.state.wills.size).toBe(0);
  });

  it('reports a record that breaks the state it is applied to (an unknown session) the same way', () => {
    const disk = writeLog([[session('a')], [{ kind: 'delivery-completed', clientId: 'ghost', packetId: 7 }]]);
    const reason = start(disk).haltReason!;
    expect(reason).toMatch(/^corrupt log: wal-0000000000000001\.log at offset \d+: record \d+ \(delivery-completed\) cannot be applied: assertion failed: record for unknown session ghost$/);
    const plan = planRepair(disk.listFiles());
    apply(disk, plan.actions);
    expect(start(disk).ready).toBe(true);
  });

  it('finds nothing to cut in a log whose every record applies', () => {
    const disk = writeLog([[session('a')], [session('b')]]);
    expect(start(disk).ready).toBe(true);
    expect(planRepair(disk.listFiles()).notes).toEqual(['nothing to repair']);
  });
});

describe('committing a record recovery could not apply', () => {
  it('fails before the record is appended', () => {
    const store = new MemoryStateStore();
    const broker = new Broker({ config: defaultConfig, nowMs: 0, store });
    broker.commit(session('victim'));
    const appended = store.appendedLsn;
    expect(() => broker.commit(emptyWill)).toThrow(/will-set must not be committed: will empty topic name/);
    expect(store.appendedLsn).toBe(appended);
    expect(broker.state.wills.size).toBe(0);
  });
});
