/**
 * The simulator's single event queue: a binary min-heap ordered by (timeMs, sequence).
 *
 * The sequence is the insertion counter, so two events at the same simulated millisecond run in
 * the order they were scheduled. That total order is what makes a run a pure function of its
 * seed: nothing else (object iteration order, the garbage collector, the wall clock) decides
 * which event goes first.
 *
 * Every simulated event is pushed and popped here, and a busy world holds tens of thousands of
 * pending events (each network segment is one), so the heap is kept as parallel arrays: times
 * and sequences in typed arrays, which a sift reads without following a pointer per comparison,
 * and the callbacks beside them. Nothing is allocated per event but the caller's callback.
 *
 * A deadline that is moved again and again (the broker's wakeup, re-armed after every input) is
 * a `Timer` beside the heap rather than a new event per move: pushing one per move left every
 * superseded deadline in the heap as an event that ran only to find itself stale, a fifth of a
 * world's events. Arming a timer takes the next sequence number exactly as a push would, so it
 * runs in the same place among the other events as the last event pushed for it would have.
 */

export interface SimEvent {
  readonly timeMs: number;
  readonly sequence: number;
  readonly run: () => void;
}

const capacityInitial = 1_024;

/** A callback that runs at most once per arming; each `EventQueue.arm` replaces its time and place. */
export class Timer {
  /** While armed: when it runs, and its place among events of the same time. */
  timeMs = 0;
  sequence = 0;
  armed = false;

  constructor(readonly run: () => void) {}
}

export class EventQueue {
  private times = new Float64Array(capacityInitial);
  private sequences = new Float64Array(capacityInitial);
  private runs: (() => void)[] = [];
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
    for (const timer of this.timers) {
      if (!timer.armed) continue;
      if (next === null || timer.timeMs < next.timeMs || (timer.timeMs === next.timeMs && timer.sequence < next.sequence)) next = timer;
    }
    this.timerNext = next;
  }

  /** Whether the earliest armed timer goes before the heap's earliest event. */
  private timerFirst(): boolean {
    const timer = this.timerNext;
    if (timer === null) return false;
    if (this.length === 0) return true;
    const heapTime = this.times[0]!;
    return timer.timeMs < heapTime || (timer.timeMs === heapTime && timer.sequence < this.sequences[0]!);
  }

  push(timeMs: number, run: () => void): void {
    if (!Number.isFinite(timeMs)) throw new Error(`event time must be finite, got ${timeMs}`);
    if (this.length === this.times.length) this.grow();
    const sequence = this.sequenceNext++;
    const times = this.times;
    const sequences = this.sequences;
    const runs = this.runs;
    let index = this.length++;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const parentTime = times[parent]!;
      if (parentTime < timeMs || (parentTime === timeMs && sequences[parent]! < sequence)) break;
      times[index] = parentTime;
      sequences[index] = sequences[parent]!;
      runs[index] = runs[parent]!;
      index = parent;
    }
    times[index] = timeMs;
    sequences[index] = sequence;
    runs[index] = run;
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
    const sequence = this.sequences[0]!;
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
    const times = this.times;
    const sequences = this.sequences;
    const runs = this.runs;
    const top = runs[0]!;
    const length = --this.length;
    const lastTime = times[length]!;
    const lastSequence = sequences[length]!;
    const lastRun = runs[length]!;
    runs[length] = noEvent; // drop the reference so the callback can be collected
    if (length === 0) return top;
    let index = 0;
    for (;;) {
      const left = index * 2 + 1;
      if (left >= length) break;
      const right = left + 1;
      let child = left;
      if (right < length) {
        const rightTime = times[right]!;
        const leftTime = times[left]!;
        if (rightTime < leftTime || (rightTime === leftTime && sequences[right]! < sequences[left]!)) child = right;
      }
      const childTime = times[child]!;
      if (childTime > lastTime || (childTime === lastTime && sequences[child]! > lastSequence)) break;
      times[index] = childTime;
      sequences[index] = sequences[child]!;
      runs[index] = runs[child]!;
      index = child;
    }
    times[index] = lastTime;
    sequences[index] = lastSequence;
    runs[index] = lastRun;
    return top;
  }

  private grow(): void {
    const times = new Float64Array(this.times.length * 2);
    times.set(this.times);
    const sequences = new Float64Array(this.sequences.length * 2);
    sequences.set(this.sequences);
    this.times = times;
    this.sequences = sequences;
  }
}

function noEvent(): void {}
