/**
 * Timing for the micro-benchmarks of one function (the record codecs' benches): nanoseconds per
 * call over a run of calls, and the median of interleaved runs.
 */
import { performance } from 'node:perf_hooks';

export function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** ns per call of `work` over `calls` calls; the sum keeps the results from being optimised away. */
export function nsPerCall(work: () => number, calls: number): number {
  let sink = 0;
  const start = performance.now();
  for (let index = 0; index < calls; index++) sink += work();
  const elapsedMs = performance.now() - start;
  if (sink < 0) throw new Error('unreachable');
  return (elapsedMs * 1e6) / calls;
}
