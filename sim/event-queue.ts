/**
 * The simulator's single event queue, ordered by (timeMs, sequence).
 *
 * The sequence is the insertion counter, so two events at the same simulated millisecond run in
 * the order they were scheduled. That total order is what makes a run a pure function of its
 * seed: nothing else (object iteration order, the garbage collector, the wall clock) decides
 * which event goes first.
 *
 * Every simulated event is pushed and popped here, and a busy world holds thousands of pending
 * events (each network segment is one), about fourteen to each distinct time. So events wait in
 * one first-in-first-out bucket per time, which is their sequence order, and only the distinct
 * times are kept in a binary min-heap (a typed array): most pops take the next event of the
 * bucket in front and touch no heap at all. Emptied buckets are kept for reuse. Nothing is
 * allocated per event but the caller's callback.
 *
 * A deadline that is moved again and again (the broker's wakeup, re-armed after every input) is
 * a `Timer` beside the buckets rather than a new event per move: pushing one per move left every
 * superseded deadline queued as an event that ran only to find itself stale, a fifth of a
 * world's events. Arming a timer takes the next sequence number exactly as a push would, so it
 * runs in the same place among the other events as the last event pushed for it would have.
 */

export interface SimEvent {
  readonly timeMs: number;
  readonly sequence: number;
  readonly run: () => void;
}

const timeCapacityInitial = 256;
/** Emptied buckets kept for reuse; beyond this many they are left to the collector. */
const bucketsSpareMax = 64;
/** A bucket whose lists grew past this many slots (a rare crowded time) is left to the collector. */
const bucketSpareSlotsMax = 1024;

/** A callback that runs at most once per arming; each `EventQueue.arm` replaces its time and place. */
export class Timer {
  /** While armed: when it runs, and its place among events of the same time. */
  timeMs = 0;
  sequence = 0;
  armed = false;

  constructor(readonly run: () => void) {}
}

/**
 * The events of one time, in sequence order: the first `count` slots of the lists are in use, and
 * those before `head` have run. A reused bucket keeps its lists' storage (they are overwritten,
 * not emptied), so that a busy time does not grow two new lists from nothing.
 */
interface Bucket {
  runs: (() => void)[];
  sequences: number[];
  head: number;
  count: number;
}

/** Stands in for a callback that has run, so that the bucket does not keep it alive. */
const spentRun = (): void => {};

export class EventQueue {
  /** A min-heap of the distinct times that have a bucket. */
  private times = new Float64Array(timeCapacityInitial);
  private timeCount = 0;
  private readonly buckets = new Map<number, Bucket>();
  /** The bucket of the earliest time (`times[0]`), or null when it must be looked up again. */
  private front: Bucket | null = null;
  private readonly spareBuckets: Bucket[] = [];
  private length = 0;
  private sequenceNext = 0;
  /** Every timer ever armed here (a world has one per broker node), and the earliest armed one. */
  private readonly timers: Timer[] = [];
  private timerNext: Timer | null = null;
  private timersArmed = 0;

  get size(): number {
    return this.length + this.timersArmed;
  }

  /**
   * Schedules `timer` at `timeMs` (replacing its earlier time, if armed), ordered after every event
   * pushed or timer armed before this call at the same time.
   */
  arm(timer: Timer, timeMs: number): void {
    if (!Number.isFinite(timeMs)) throw new Error(`timer time must be finite, got ${timeMs}`);
    if (!timer.armed) {
      if (!this.timers.includes(timer)) this.timers.push(timer);
      this.timersArmed += 1;
    }
    timer.armed = true;
    timer.timeMs = timeMs;
    timer.sequence = this.sequenceNext++;
    this.findTimerNext();
  }

  /** The timer will not run (until armed again). */
  disarm(timer: Timer): void {
    if (!timer.armed) return;
    timer.armed = false;
    this.timersArmed -= 1;
    if (this.timerNext === timer) this.findTimerNext();
  }

  private findTimerNext(): void {
    let next: Timer | null = null;
    // After every broker input (its wakeup is re-armed): indexed, so that no iterator is made.
    for (let index = 0; index < this.timers.length; index++) {
      const timer = this.timers[index]!;
      if (!timer.armed) continue;
      if (next === null || timer.timeMs < next.timeMs || (timer.timeMs === next.timeMs && timer.sequence < next.sequence)) next = timer;
    }
    this.timerNext = next;
  }

  push(timeMs: number, run: () => void): void {
    if (!Number.isFinite(timeMs)) throw new Error(`event time must be finite, got ${timeMs}`);
    let bucket = this.buckets.get(timeMs);
    if (bucket === undefined) {
      bucket = this.spareBuckets.pop() ?? { runs: [], sequences: [], head: 0, count: 0 };
      this.buckets.set(timeMs, bucket);
      if (this.timeCount > 0 && timeMs < this.times[0]!) this.front = null;
      this.pushTime(timeMs);
    }
    if (bucket.count === bucket.runs.length) {
      bucket.runs.push(run);
      bucket.sequences.push(this.sequenceNext++);
    } else {
      bucket.runs[bucket.count] = run;
      bucket.sequences[bucket.count] = this.sequenceNext++;
    }
    bucket.count += 1;
    this.length += 1;
  }

  /** The bucket of the earliest time; there must be one. */
  private frontBucket(): Bucket {
    let front = this.front;
    if (front === null) {
      front = this.buckets.get(this.times[0]!)!;
      this.front = front;
    }
    return front;
  }

  /** Whether the earliest armed timer goes before the earliest event. */
  private timerFirst(): boolean {
    const timer = this.timerNext;
    if (timer === null) return false;
    if (this.length === 0) return true;
    const eventTime = this.times[0]!;
    if (timer.timeMs !== eventTime) return timer.timeMs < eventTime;
    const front = this.frontBucket();
    return timer.sequence < front.sequences[front.head]!;
  }

  peekTimeMs(): number | null {
    if (this.timerFirst()) return this.timerNext!.timeMs;
    return this.length === 0 ? null : this.times[0]!;
  }

  /** The earliest event, or undefined when none is pending. Allocates the returned object. */
  pop(): SimEvent | undefined {
    if (this.timerFirst()) {
      const timer = this.timerNext!;
      const event = { timeMs: timer.timeMs, sequence: timer.sequence, run: timer.run };
      this.disarm(timer);
      return event;
    }
    if (this.length === 0) return undefined;
    const timeMs = this.times[0]!;
    const front = this.frontBucket();
    const sequence = front.sequences[front.head]!;
    return { timeMs, sequence, run: this.popRun() };
  }

  /**
   * Removes the earliest event and returns its callback (its time was `peekTimeMs()`); the
   * simulator's loop uses this pair so that it allocates nothing per event. The queue must not
   * be empty.
   */
  popRun(): () => void {
    if (this.timerFirst()) {
      const timer = this.timerNext!;
      this.disarm(timer);
      return timer.run;
    }
    if (this.length === 0) throw new Error('popRun on an empty event queue');
    const front = this.frontBucket();
    const run = front.runs[front.head]!;
    front.runs[front.head] = spentRun;
    front.head += 1;
    this.length -= 1;
    if (front.head === front.count) this.retireFront(front);
    return run;
  }

  /** The front bucket ran out: its time leaves the heap, and the bucket is kept for reuse. */
  private retireFront(front: Bucket): void {
    this.buckets.delete(this.times[0]!);
    this.popTime();
    this.front = null;
    if (this.spareBuckets.length >= bucketsSpareMax || front.runs.length > bucketSpareSlotsMax) return;
    // Its callbacks were replaced as they ran (popRun), so it holds none.
    front.count = 0;
    front.head = 0;
    this.spareBuckets.push(front);
  }

  private pushTime(timeMs: number): void {
    if (this.timeCount === this.times.length) {
      const times = new Float64Array(this.times.length * 2);
      times.set(this.times);
      this.times = times;
    }
    const times = this.times;
    let index = this.timeCount++;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const parentTime = times[parent]!;
      if (parentTime < timeMs) break;
      times[index] = parentTime;
      index = parent;
    }
    times[index] = timeMs;
  }

  private popTime(): void {
    const times = this.times;
    const count = --this.timeCount;
    const last = times[count]!;
    if (count === 0) return;
    let index = 0;
    for (;;) {
      const left = index * 2 + 1;
      if (left >= count) break;
      const right = left + 1;
      const child = right < count && times[right]! < times[left]! ? right : left;
      const childTime = times[child]!;
      if (childTime >= last) break;
      times[index] = childTime;
      index = child;
    }
    times[index] = last;
  }
}
