/**
 * One full garbage collection after recovery, when recovery left a large heap behind.
 *
 * Recovery replays the log since the last snapshot: it decodes one log segment (up to
 * `segmentBytesMax`, 64 MiB) of records at a time and hands them to the core, which applies them
 * and drops them (a stream entry the segment files hold is not kept). Those records are garbage
 * once applied, but V8 collects its old generation only when more is allocated, and an idle
 * broker allocates almost nothing: after a restart on a million stream entries the live heap was
 * 7 MB and the process stayed at 245 to 273 MiB resident until the first traffic. A forced full
 * collection at that point (measured with a heap snapshot, which forces one) brought it to
 * 115 MiB. So once the core is ready, and only when the heap grew by more than
 * `heapGrowthBytesThreshold` during recovery (a small data directory, or a process that was
 * large before, as a test runner is, costs nothing), the host asks for one.
 *
 * Node exposes `gc` only with `--expose-gc`; the flag is set here for as long as it takes to get
 * the function from a fresh context, which is the documented way to reach it at run time.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Below this much heap growth during recovery, a collection is not worth its pause. */
export const heapGrowthBytesThreshold = 64 * 1024 * 1024;

/** The heap in use now: what `collectRecoveryGarbage` compares with. */
export function heapUsedBytes(): number {
  return getHeapStatistics().used_heap_size;
}

/**
 * Runs one full collection if the heap in use grew by `thresholdBytes` or more since
 * `heapBeforeBytes` (read with `heapUsedBytes` before recovery); returns whether it did.
 */
export function collectRecoveryGarbage(heapBeforeBytes: number, thresholdBytes = heapGrowthBytesThreshold): boolean {
  if (heapUsedBytes() - heapBeforeBytes < thresholdBytes) return false;
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') {
    existing();
    return true;
  }
  setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as () => void;
  setFlagsFromString('--no-expose-gc');
  collect();
  return true;
}
