/**
 * Proves the order io/storage-lanes.ts keeps among storage requests (src/store/storage-order.ts):
 * one file's requests start one at a time in issue order, different files' requests start at once,
 * a rename waits for both its names, and `list` / `sync-directory` run alone, after everything
 * issued before them and before everything issued after. Scripted cases first, then seeded random
 * runs (requests on a few files, completed in random order) checked against those rules.
 */
import { describe, expect, it } from 'vitest';
import { type LaneTask, StorageLanes } from '../../io/storage-lanes.js';
import { Random } from '../../sim/random.js';
import type { StorageRequest } from '../../src/contract.js';
import { storageScope } from '../../src/store/storage-order.js';

/** A request before the harness numbers it (one Omit per kind of request). */
type Unnumbered<T = StorageRequest> = T extends StorageRequest ? Omit<T, 'requestId'> : never;

class Harness {
  readonly running: LaneTask<StorageRequest>[] = [];
  readonly started: number[] = [];
  private nextId = 1;
  readonly lanes = new StorageLanes<StorageRequest>((task) => {
    this.running.push(task);
    this.started.push(task.item.requestId);
  });

  submit(request: Unnumbered): number {
    const full = { ...request, requestId: this.nextId++ } as StorageRequest;
    this.lanes.submit(full, storageScope(full));
    return full.requestId;
  }

  finish(requestId: number): void {
    const index = this.running.findIndex((task) => task.item.requestId === requestId);
    expect(index, `request ${requestId} is running`).toBeGreaterThanOrEqual(0);
    const [task] = this.running.splice(index, 1);
    this.lanes.complete(task!);
  }

  runningIds(): number[] {
    return this.running.map((task) => task.item.requestId).sort((a, b) => a - b);
  }
}

const write = (file: string): Unnumbered => ({ op: 'write', file, offset: 0, bytes: new Uint8Array(1) });
const sync = (file: string): Unnumbered => ({ op: 'sync', file });

describe('StorageLanes', () => {
  it("runs one file's requests one at a time, in issue order", () => {
    const harness = new Harness();
    const first = harness.submit(write('wal'));
    const second = harness.submit(sync('wal'));
    const third = harness.submit(write('wal'));
    expect(harness.runningIds()).toEqual([first]);
    harness.finish(first);
    expect(harness.runningIds()).toEqual([second]);
    harness.finish(second);
    harness.finish(third);
    expect(harness.started).toEqual([first, second, third]);
    expect(harness.lanes.pendingCount).toBe(0);
  });

  it("runs different files' requests side by side: a long sync of one holds no other", () => {
    const harness = new Harness();
    const logSync = harness.submit(sync('wal'));
    const segmentWrite = harness.submit(write('s.seg'));
    const segmentSync = harness.submit(sync('s.seg'));
    expect(harness.runningIds()).toEqual([logSync, segmentWrite]);
    harness.finish(segmentWrite);
    harness.finish(segmentSync);
    expect(harness.runningIds()).toEqual([logSync]);
    expect(harness.lanes.pendingCount).toBe(1);
  });

  it('starts a rename once it heads the lanes of both its names, and holds later requests on either', () => {
    const harness = new Harness();
    const tmpWrite = harness.submit(write('seg.tmp'));
    const segRead = harness.submit({ op: 'read', file: 'seg', offset: 0, length: 10 });
    const rename = harness.submit({ op: 'rename', from: 'seg.tmp', to: 'seg' });
    const readAfter = harness.submit({ op: 'read', file: 'seg', offset: 0, length: 10 });
    expect(harness.runningIds()).toEqual([tmpWrite, segRead]);
    harness.finish(tmpWrite);
    expect(harness.runningIds()).toEqual([segRead]);
    harness.finish(segRead);
    expect(harness.runningIds()).toEqual([rename]);
    harness.finish(rename);
    expect(harness.runningIds()).toEqual([readAfter]);
  });

  it('runs a directory request alone: after every earlier request, before every later one', () => {
    const harness = new Harness();
    const deleteA = harness.submit({ op: 'delete', file: 'a.seg' });
    const deleteB = harness.submit({ op: 'delete', file: 'b.seg' });
    const directory = harness.submit({ op: 'sync-directory' });
    const later = harness.submit(write('c.seg'));
    const list = harness.submit({ op: 'list' });
    const last = harness.submit(write('a.seg'));
    expect(harness.runningIds()).toEqual([deleteA, deleteB]);
    harness.finish(deleteB);
    expect(harness.runningIds()).toEqual([deleteA]);
    harness.finish(deleteA);
    expect(harness.runningIds()).toEqual([directory]);
    harness.finish(directory);
    expect(harness.runningIds()).toEqual([later]);
    harness.finish(later);
    expect(harness.runningIds()).toEqual([list]);
    harness.finish(list);
    expect(harness.runningIds()).toEqual([last]);
    harness.finish(last);
    expect(harness.lanes.pendingCount).toBe(0);
  });

  it('keeps the rules over seeded random runs', () => {
    for (let seed = 1; seed <= 100; seed++) checkRandomRun(seed);
  });
});

/** Issues and completes 120 random requests over three files, checking every start as it happens. */
function checkRandomRun(seed: number): void {
  const random = Random.stream(seed, 'storage-lanes-test');
  const files = ['wal', 'a.seg', 'b.seg'];
  const issued: StorageRequest[] = [];
  const completed = new Set<number>();
  const harness = new Harness();
  let total = 0;
  while (total < 120 || harness.lanes.pendingCount > 0) {
    if (total < 120 && (harness.running.length === 0 || random.chance(0.5))) {
      const roll = random.int(0, 9);
      const file = random.pick(files);
      const request = roll === 0 ? { op: 'list' as const } : roll === 1 ? { op: 'sync-directory' as const } : roll === 2 ? { op: 'rename' as const, from: file, to: random.pick(files) } : write(file);
      const id = harness.submit(request);
      issued.push({ ...request, requestId: id } as StorageRequest);
      total += 1;
    } else {
      const task = random.pick(harness.running);
      harness.finish(task.item.requestId);
      completed.add(task.item.requestId);
    }
    checkRunning(seed, issued, completed, harness.running);
  }
  expect(harness.started.length, `seed ${seed}: every request started once`).toBe(120);
  expect(new Set(harness.started).size).toBe(120);
}

/**
 * Every running request may run (each earlier request it must follow has completed), and every
 * waiting one must wait (some earlier request it must follow has not): no needless waiting.
 */
function checkRunning(seed: number, issued: readonly StorageRequest[], completed: ReadonlySet<number>, running: readonly LaneTask<StorageRequest>[]): void {
  const runningIds = new Set(running.map((task) => task.item.requestId));
  const outstanding = issued.filter((request) => !completed.has(request.requestId));
  for (let index = 0; index < outstanding.length; index++) {
    const request = outstanding[index]!;
    let blocked = false;
    for (let earlier = 0; earlier < index && !blocked; earlier++) blocked = mustFollow(request, outstanding[earlier]!);
    // Checked with a plain comparison first: expect per request per step would dominate the run.
    if (runningIds.has(request.requestId) === blocked) {
      expect.fail(`seed ${seed}: request ${request.requestId} ${blocked ? 'runs before one it must follow' : 'waits for nothing'}`);
    }
  }
}

function mustFollow(later: StorageRequest, earlier: StorageRequest): boolean {
  const laterScope = storageScope(later);
  const earlierScope = storageScope(earlier);
  if (laterScope.kind === 'directory' || earlierScope.kind === 'directory') return true;
  return earlierScope.files.some((file) => laterScope.files.includes(file));
}
