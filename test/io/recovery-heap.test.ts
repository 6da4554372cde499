/**
 * Proves the host's one collection after recovery (io/recovery-heap.ts): below its threshold it
 * does nothing; above it, it runs a full collection that frees garbage the old generation holds
 * (tens of MB of dropped objects are gone from the heap afterwards), with or without `--expose-gc`.
 */
import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { collectRecoveryGarbage } from '../../io/recovery-heap.js';

describe('the collection after recovery', () => {
  it('does nothing while the heap in use is under its threshold', () => {
    expect(collectRecoveryGarbage(Number.MAX_SAFE_INTEGER)).toBe(false);
  });

  it('frees what recovery dropped when the heap in use is over its threshold', () => {
    // Old-generation garbage, as recovery leaves it: objects that lived long enough to be promoted, then dropped.
    let held: { payload: number[] }[] | null = [];
    for (let index = 0; index < 200_000; index++) held.push({ payload: [index, index + 1, index + 2, index + 3] });
    for (let round = 0; round < 3; round++) new Array(1_000_000).fill(round);
    held = null;
    const before = getHeapStatistics().used_heap_size;
    expect(collectRecoveryGarbage(0)).toBe(true);
    const after = getHeapStatistics().used_heap_size;
    expect(held).toBeNull();
    expect(before - after).toBeGreaterThan(10 * 1024 * 1024);
  });
});
