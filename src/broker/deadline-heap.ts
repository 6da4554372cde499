/**
 * The broker's timers: a binary min-heap of (deadlineMs, insertion sequence) entries.
 *
 * Deletion is lazy: an entry is never removed when its timer is cancelled or moved; instead the
 * owner re-checks, when the entry fires, whether it is still current (a connection still open, a
 * keepalive deadline not pushed back, a will still pending). That keeps `nextDeadlineMs` O(1) and
 * scheduling O(log n) without an index. A stale entry can make `nextDeadlineMs` earlier than
 * necessary, which only costs a spurious tick. Ties are broken by insertion order, so firing
 * order is deterministic.
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
  | 'cluster-claim';

export interface DeadlineEntry {
  readonly deadlineMs: number;
  readonly sequence: number;
  readonly kind: DeadlineKind;
  /** The connection for connection timers, 0 otherwise. */
  readonly connectionId: number;
  /** The client id for session timers, '' otherwise. */
  readonly clientId: string;
}

export class DeadlineHeap {
  private readonly entries: DeadlineEntry[] = [];
  private sequence = 0;

  get size(): number {
    return this.entries.length;
  }

  push(deadlineMs: number, kind: DeadlineKind, connectionId: number, clientId: string): void {
    assert(Number.isFinite(deadlineMs), 'deadline must be finite');
    this.sequence += 1;
    this.entries.push({ deadlineMs, sequence: this.sequence, kind, connectionId, clientId });
    this.siftUp(this.entries.length - 1);
  }

  peekMs(): number | null {
    return this.entries.length === 0 ? null : this.entries[0]!.deadlineMs;
  }

  /** Removes and returns the earliest entry due at or before `nowMs`, or null. */
  popDue(nowMs: number): DeadlineEntry | null {
    const first = this.entries[0];
    if (first === undefined || first.deadlineMs > nowMs) return null;
    const last = this.entries.pop()!;
    if (this.entries.length > 0) {
      this.entries[0] = last;
      this.siftDown(0);
    }
    return first;
  }

  private before(a: DeadlineEntry, b: DeadlineEntry): boolean {
    return a.deadlineMs < b.deadlineMs || (a.deadlineMs === b.deadlineMs && a.sequence < b.sequence);
  }

  private siftUp(index: number): void {
    const entries = this.entries;
    let child = index;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!this.before(entries[child]!, entries[parent]!)) break;
      [entries[child], entries[parent]] = [entries[parent]!, entries[child]!];
      child = parent;
    }
  }

  private siftDown(index: number): void {
    const entries = this.entries;
    let parent = index;
    for (;;) {
      const left = parent * 2 + 1;
      const right = left + 1;
      let smallest = parent;
      if (left < entries.length && this.before(entries[left]!, entries[smallest]!)) smallest = left;
      if (right < entries.length && this.before(entries[right]!, entries[smallest]!)) smallest = right;
      if (smallest === parent) return;
      [entries[smallest], entries[parent]] = [entries[parent]!, entries[smallest]!];
      parent = smallest;
    }
  }
}
