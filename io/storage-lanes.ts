/**
 * Which of the core's storage requests may run now: one lane per file, barriers for the directory.
 *
 * The contract's order (src/store/storage-order.ts): requests that share a file run one at a time
 * in the order issued; requests on different files run side by side, so a stream segment's write
 * does not wait for the log's fsync, nor the log's next write for a segment's; `list` and
 * `sync-directory` wait for every request issued before them and hold back every request issued
 * after. No I/O here: `start` is called for each request as it becomes runnable (possibly inside
 * `submit` or `complete`), and the owner calls `complete` when it has finished.
 *
 * Each file's lane is a FIFO whose head is running. A request naming two files (a rename) is in
 * both lanes and starts once it heads both; requests join every lane they name at once, in issue
 * order, so the oldest waiting request always heads all its lanes and none waits forever. While a
 * directory request waits or runs, every later request waits in `held`, in issue order.
 */
import assert from 'node:assert/strict';
import type { StorageScope } from '../src/store/storage-order.js';

export interface LaneTask<T> {
  readonly item: T;
  readonly scope: StorageScope;
  /** Lanes this task is in but does not head yet; it starts at zero. */
  waitingLanes: number;
}

export class StorageLanes<T> {
  private readonly lanes = new Map<string, LaneTask<T>[]>();
  /** Tasks issued behind a directory request not yet finished, oldest first (from `heldHead`). */
  private held: LaneTask<T>[] = [];
  private heldHead = 0;
  /** Tasks in lanes (running or waiting their turn) plus a running directory request. */
  private admitted = 0;
  private directoryRunning = false;

  constructor(private readonly start: (task: LaneTask<T>) => void) {}

  /** Requests submitted and not yet completed. */
  get pendingCount(): number {
    return this.admitted + this.held.length - this.heldHead;
  }

  submit(item: T, scope: StorageScope): void {
    const task: LaneTask<T> = { item, scope, waitingLanes: 0 };
    if (this.directoryRunning || this.heldHead < this.held.length) {
      this.held.push(task);
      return;
    }
    if (scope.kind === 'directory') {
      if (this.admitted === 0) this.startDirectory(task);
      else this.held.push(task);
      return;
    }
    this.admit(task);
  }

  /** The task finished (successfully or not): the next ones in its lanes may start. */
  complete(task: LaneTask<T>): void {
    assert.ok(this.admitted > 0, 'a completed task was admitted');
    if (task.scope.kind === 'directory') {
      assert.ok(this.directoryRunning, 'a directory request completes while running');
      this.directoryRunning = false;
    } else {
      for (const file of task.scope.files) this.leaveLane(file, task);
    }
    this.admitted -= 1;
    if (this.admitted === 0) this.releaseHeld();
  }

  private admit(task: LaneTask<T>): void {
    assert.ok(task.scope.kind === 'files', 'only file requests join lanes');
    for (const file of task.scope.files) {
      let lane = this.lanes.get(file);
      if (lane === undefined) {
        lane = [];
        this.lanes.set(file, lane);
      }
      lane.push(task);
      if (lane.length > 1) task.waitingLanes += 1;
    }
    this.admitted += 1;
    if (task.waitingLanes === 0) this.start(task);
  }

  private leaveLane(file: string, task: LaneTask<T>): void {
    const lane = this.lanes.get(file);
    assert.ok(lane !== undefined && lane[0] === task, `a completed request heads its lane (${file})`);
    lane.shift();
    const next = lane[0];
    if (next === undefined) {
      this.lanes.delete(file);
      return;
    }
    assert.ok(next.waitingLanes > 0, 'a task behind another waits for it');
    next.waitingLanes -= 1;
    if (next.waitingLanes === 0) this.start(next);
  }

  private startDirectory(task: LaneTask<T>): void {
    assert.ok(this.admitted === 0 && this.lanes.size === 0, 'a directory request runs alone');
    this.directoryRunning = true;
    this.admitted += 1;
    this.start(task);
  }

  /** Everything before the oldest held directory request has finished: admit up to the next one. */
  private releaseHeld(): void {
    while (this.heldHead < this.held.length) {
      const task = this.held[this.heldHead]!;
      if (task.scope.kind === 'directory') {
        if (this.admitted > 0) return;
        this.heldHead += 1;
        this.startDirectory(task);
        break;
      }
      this.heldHead += 1;
      this.admit(task);
    }
    if (this.heldHead === this.held.length) {
      this.held = [];
      this.heldHead = 0;
    }
  }
}
