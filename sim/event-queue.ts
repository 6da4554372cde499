/**
 * The simulator's single event queue: a binary min-heap ordered by (timeMs, sequence).
 *
 * The sequence is the insertion counter, so two events at the same simulated millisecond run in
 * the order they were scheduled. That total order is what makes a run a pure function of its
 * seed: nothing else (object iteration order, the garbage collector, the wall clock) decides
 * which event goes first.
 */

export interface SimEvent {
  readonly timeMs: number;
  readonly sequence: number;
  readonly run: () => void;
}

export class EventQueue {
  private readonly heap: SimEvent[] = [];
  private sequenceNext = 0;

  get size(): number {
    return this.heap.length;
  }

  push(timeMs: number, run: () => void): void {
    if (!Number.isFinite(timeMs)) throw new Error(`event time must be finite, got ${timeMs}`);
    const event: SimEvent = { timeMs, sequence: this.sequenceNext++, run };
    const heap = this.heap;
    heap.push(event);
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!before(event, heap[parent]!)) break;
      heap[index] = heap[parent]!;
      index = parent;
    }
    heap[index] = event;
  }

  peekTimeMs(): number | null {
    return this.heap.length === 0 ? null : this.heap[0]!.timeMs;
  }

  pop(): SimEvent | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let index = 0;
      const length = heap.length;
      for (;;) {
        const left = index * 2 + 1;
        if (left >= length) break;
        const right = left + 1;
        const child = right < length && before(heap[right]!, heap[left]!) ? right : left;
        if (!before(heap[child]!, last)) break;
        heap[index] = heap[child]!;
        index = child;
      }
      heap[index] = last;
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.timeMs < b.timeMs || (a.timeMs === b.timeMs && a.sequence < b.sequence);
}
