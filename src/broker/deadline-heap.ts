/**
 * The broker's timers: a binary min-heap of (deadlineMs, insertion sequence) entries.
 *
 * Deletion is lazy: an entry is never removed when its timer is cancelled or moved; instead the
 * owner re-checks, when the entry fires, whether it is still current (a connection still open, a
 * keepalive deadline not pushed back, a will still pending). That keeps `nextDeadlineMs` O(1) and
 * scheduling O(log n) without an index. A stale entry can make `nextDeadlineMs` earlier than
 * necessary, which only costs a spurious tick. Ties are broken by insertion order, so firing
 * order is deterministic.
 *
 * Every connection holds one or two entries (its connect timeout until that expires, its
 * keepalive), so they are kept as columns (typed arrays, and one array of client ids) rather than
 * one object each: about 33 bytes per entry instead of about 72 (a 5-field object and its slot),
 * measured in heap snapshots of `keel serve` with 10,000 idle connections. An entry becomes an
 * object only when it fires (`popDue`), which is rare next to scheduling.
 */
import { assert } from '../assert.js';

export type DeadlineKind =
  | 'connect-timeout'
  | 'keepalive'
  | 'session-expiry'
  | 'will'
  | 'publisher-pause'
  | 'retained-replay'
  | 'sys-publish'
  | 'stream-pump'
  | 'stream-maintenance'
  | 'cluster-retry'
  | 'cluster-claim'
  | 'cluster-alive';

/** Every kind, in the order of their codes in the `kinds` column. */
const deadlineKinds: readonly DeadlineKind[] = [
  'connect-timeout',
  'keepalive',
  'session-expiry',
  'will',
  'publisher-pause',
  'retained-replay',
  'sys-publish',
  'stream-pump',
  'stream-maintenance',
  'cluster-retry',
  'cluster-claim',
  'cluster-alive',
];
const deadlineKindCodes = new Map<DeadlineKind, number>(deadlineKinds.map((kind, code) => [kind, code]));

export interface DeadlineEntry {
  readonly deadlineMs: number;
  readonly sequence: number;
  readonly kind: DeadlineKind;
  /** The connection for connection timers, 0 otherwise. */
  readonly connectionId: number;
  /** The client id for session timers, '' otherwise. */
  readonly clientId: string;
}

/** Slots allocated at first, and below which the columns are never shrunk. */
const capacityMin = 16;

export class DeadlineHeap {
  private deadlinesMs = new Float64Array(capacityMin);
  private sequences = new Float64Array(capacityMin);
  private connectionIds = new Float64Array(capacityMin);
  private kinds = new Uint8Array(capacityMin);
  private clientIds: string[] = [];
  private count = 0;
  private sequence = 0;

  get size(): number {
    return this.count;
  }

  push(deadlineMs: number, kind: DeadlineKind, connectionId: number, clientId: string): void {
    assert(Number.isFinite(deadlineMs), 'deadline must be finite');
    const code = deadlineKindCodes.get(kind);
    assert(code !== undefined, `unknown deadline kind ${kind}`);
    if (this.count === this.deadlinesMs.length) this.resize(this.count * 2);
    this.sequence += 1;
    const slot = this.count++;
    this.deadlinesMs[slot] = deadlineMs;
    this.sequences[slot] = this.sequence;
    this.connectionIds[slot] = connectionId;
    this.kinds[slot] = code;
    this.clientIds[slot] = clientId;
    this.siftUp(slot);
  }

  peekMs(): number | null {
    return this.count === 0 ? null : this.deadlinesMs[0]!;
  }

  /** Removes and returns the earliest entry due at or before `nowMs`, or null. */
  popDue(nowMs: number): DeadlineEntry | null {
    if (this.count === 0 || this.deadlinesMs[0]! > nowMs) return null;
    const first: DeadlineEntry = {
      deadlineMs: this.deadlinesMs[0]!,
      sequence: this.sequences[0]!,
      kind: deadlineKinds[this.kinds[0]!]!,
      connectionId: this.connectionIds[0]!,
      clientId: this.clientIds[0]!,
    };
    const last = --this.count;
    if (last > 0) {
      this.move(last, 0);
      this.siftDown(0);
    }
    this.clientIds.length = last;
    if (this.deadlinesMs.length > capacityMin && this.count < this.deadlinesMs.length / 4) this.resize(this.deadlinesMs.length / 2);
    return first;
  }

  private before(a: number, b: number): boolean {
    const deadlines = this.deadlinesMs;
    return deadlines[a]! < deadlines[b]! || (deadlines[a] === deadlines[b] && this.sequences[a]! < this.sequences[b]!);
  }

  private siftUp(index: number): void {
    let child = index;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!this.before(child, parent)) break;
      this.swap(child, parent);
      child = parent;
    }
  }

  private siftDown(index: number): void {
    const count = this.count;
    let parent = index;
    for (;;) {
      const left = parent * 2 + 1;
      const right = left + 1;
      let smallest = parent;
      if (left < count && this.before(left, smallest)) smallest = left;
      if (right < count && this.before(right, smallest)) smallest = right;
      if (smallest === parent) return;
      this.swap(smallest, parent);
      parent = smallest;
    }
  }

  private swap(a: number, b: number): void {
    swapIn(this.deadlinesMs, a, b);
    swapIn(this.sequences, a, b);
    swapIn(this.connectionIds, a, b);
    swapIn(this.kinds, a, b);
    swapIn(this.clientIds, a, b);
  }

  /** Copies slot `from` into slot `to` (the heap's last entry into the root's place). */
  private move(from: number, to: number): void {
    this.deadlinesMs[to] = this.deadlinesMs[from]!;
    this.sequences[to] = this.sequences[from]!;
    this.connectionIds[to] = this.connectionIds[from]!;
    this.kinds[to] = this.kinds[from]!;
    this.clientIds[to] = this.clientIds[from]!;
  }

  private resize(capacity: number): void {
    assert(capacity >= this.count && capacity >= capacityMin, 'deadline heap resized below its length');
    this.deadlinesMs = resized(this.deadlinesMs, new Float64Array(capacity), this.count);
    this.sequences = resized(this.sequences, new Float64Array(capacity), this.count);
    this.connectionIds = resized(this.connectionIds, new Float64Array(capacity), this.count);
    this.kinds = resized(this.kinds, new Uint8Array(capacity), this.count);
  }
}

function resized<T extends Float64Array | Uint8Array>(from: T, to: T, count: number): T {
  to.set(from.subarray(0, count));
  return to;
}

function swapIn<T>(column: { [index: number]: T }, a: number, b: number): void {
  const held = column[a]!;
  column[a] = column[b]!;
  column[b] = held;
}
