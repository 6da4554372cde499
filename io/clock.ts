/**
 * The Node backend's clock: integer milliseconds from `performance.now()`.
 *
 * The core only ever sees time as integers and asserts that it never goes backwards. Flooring a
 * monotonic clock keeps both properties; the extra high-water mark makes "never backwards" hold
 * even if a platform's monotonic source misbehaves, rather than crashing the driver's assertion.
 */
import { performance } from 'node:perf_hooks';

export interface Clock {
  nowMs(): number;
}

export class MonotonicClock implements Clock {
  private lastMs = 0;

  nowMs(): number {
    const nowMs = Math.floor(performance.now());
    if (nowMs > this.lastMs) this.lastMs = nowMs;
    return this.lastMs;
  }
}
