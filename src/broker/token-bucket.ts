/**
 * A token bucket over the core's own time (no clock is read): `take(nowMs)` spends one token if
 * there is one. It refills at `ratePerSecond` and holds at most one second's worth, so a client
 * may burst up to the rate and then sustain it. Arithmetic is in integer milli-tokens (one event
 * costs 1,000; each millisecond adds `ratePerSecond`), so the outcome depends only on the times
 * fed in: the simulator replays it exactly.
 */
import { assert } from '../assert.js';

const costMilliTokens = 1_000;

export class TokenBucket {
  private milliTokens: number;
  private readonly capacityMilliTokens: number;
  private lastRefillMs: number;

  constructor(
    private readonly ratePerSecond: number,
    nowMs: number,
  ) {
    assert(Number.isInteger(ratePerSecond) && ratePerSecond > 0, 'a token bucket needs a positive integer rate');
    assert(Number.isFinite(nowMs), 'nowMs must be finite');
    this.capacityMilliTokens = ratePerSecond * costMilliTokens;
    // Starts full: a fresh client (or a freshly started broker) gets its burst at once.
    this.milliTokens = this.capacityMilliTokens;
    this.lastRefillMs = nowMs;
  }

  /** Spends one token and returns true, or returns false (and spends nothing) when empty. */
  take(nowMs: number): boolean {
    assert(nowMs >= this.lastRefillMs, 'token bucket time went backwards');
    const elapsedMs = nowMs - this.lastRefillMs;
    if (elapsedMs > 0) {
      // Capped before multiplying, so a long idle gap cannot overflow the arithmetic.
      const cappedMs = Math.min(elapsedMs, costMilliTokens);
      this.milliTokens = Math.min(this.capacityMilliTokens, this.milliTokens + cappedMs * this.ratePerSecond);
      this.lastRefillMs = nowMs;
    }
    if (this.milliTokens < costMilliTokens) return false;
    this.milliTokens -= costMilliTokens;
    return true;
  }
}
