/**
 * fast-check parameters for the fuzz properties. In `npm test` each property runs a fixed number
 * of cases from a fixed seed, so a failure reproduces on every machine and fast-check's report
 * (seed, path, shrunk counterexample) is enough to replay it. Locally, KEEL_FUZZ_RUNS=N runs N
 * cases per property from a fresh seed (printed), or from KEEL_FUZZ_SEED, to search longer.
 */
import type fc from 'fast-check';

const extraRuns = Number(process.env.KEEL_FUZZ_RUNS ?? '');

/** Whether this run was asked to search longer than the CI default. */
export const searchingLonger = Number.isInteger(extraRuns) && extraRuns > 0;

export function fuzzParameters<T>(seed: number, numRuns: number, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  if (!searchingLonger) return { ...extra, seed, numRuns };
  const chosen = process.env.KEEL_FUZZ_SEED === undefined ? (Date.now() ^ seed) | 0 : Number(process.env.KEEL_FUZZ_SEED);
  console.log(`fuzz: ${extraRuns} runs from seed ${chosen}`);
  // A long search is not cut short by the time cap meant for CI.
  const { interruptAfterTimeLimit: _cap, ...rest } = extra;
  return { ...rest, seed: chosen, numRuns: extraRuns };
}

/** A test timeout: `ms` in CI, an hour when searching longer. */
export function fuzzTimeoutMs(ms: number): number {
  return searchingLonger ? 3_600_000 : ms;
}
