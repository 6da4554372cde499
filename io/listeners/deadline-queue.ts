/**
 * Deadlines for connections that are not the core's yet: one listener's sockets waiting for
 * their PROXY header or their WebSocket upgrade, each of which must finish within
 * connectTimeoutMs of its start or be dropped.
 *
 * Every entry gets the same duration, so deadlines expire in the order they were added: the
 * entries live in one insertion-ordered Map, and a single timer, armed for the oldest entry, fires,
 * expires everything due from the front, and re-arms for the next. A connection costs a Map entry,
 * not a timer of its own, which matters when thousands connect at once; removing an entry (the
 * stage finished in time) is a Map delete and leaves the timer alone.
 */
import assert from 'node:assert/strict';

export class DeadlineQueue<T extends object> {
  private readonly deadlines = new Map<T, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly durationMs: number,
    private readonly onExpired: (item: T) => void,
    private readonly nowMs: () => number = () => performance.now(),
  ) {
    if (!(Number.isInteger(durationMs) && durationMs >= 1)) throw new Error(`a deadline needs a positive whole number of milliseconds, got ${durationMs}`);
  }

  get size(): number {
    return this.deadlines.size;
  }

  add(item: T): void {
    assert.ok(!this.deadlines.has(item), 'a connection was given a second deadline for one stage');
    this.deadlines.set(item, this.nowMs() + this.durationMs);
    if (this.timer === null) this.arm(this.durationMs);
  }

  /** The stage finished in time; false when there was no deadline (it had expired). */
  delete(item: T): boolean {
    return this.deadlines.delete(item);
  }

  /** Every waiting item, for a listener that closes; the deadlines are forgotten. */
  drain(): T[] {
    const items = [...this.deadlines.keys()];
    this.deadlines.clear();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    return items;
  }

  private arm(delayMs: number): void {
    // An item added by onExpired during `expire` armed a timer already; one is enough.
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(this.expire, Math.max(0, Math.ceil(delayMs)));
    // A listener's own server keeps the process alive; a pending deadline must not.
    this.timer.unref();
  }

  private readonly expire = (): void => {
    this.timer = null;
    const nowMs = this.nowMs();
    for (const [item, deadlineMs] of this.deadlines) {
      if (deadlineMs > nowMs) return this.arm(deadlineMs - nowMs);
      this.deadlines.delete(item);
      this.onExpired(item);
    }
  };
}
