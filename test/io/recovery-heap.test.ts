/**
 * Proves the host's one collection after recovery (io/recovery-heap.ts): when the heap grew less
 * than its threshold since before recovery it does nothing; past it, it runs a full collection that frees garbage the old generation holds
 * (tens of MB of dropped objects are gone from the heap afterwards), with or without `--expose-gc`.
 */
import { getHeapStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { collectRecoveryGarbage, heapUsedBytes } from '../../io/recovery-heap.js';

describe('the collection after recovery', () => {
  it('does nothing while the heap grew less than its threshold', () => {
    expect(collectRecoveryGarbage(heapUsedBytes())).toBe(false);
  });

  it('frees what recovery dropped when the heap grew past its threshold', () => {
    const start = heapUsedBytes();
    // Old-generation garbage, as recovery leaves it: objects that lived long enough to be promoted, then dropped.
    let held: { payload: number[] }[] | null = [];
    for (let index = 0; index < 200_000; index++) held.push({ payload: [index, index + 1, index + 2, index + 3] });
    for (let round = 0; round < 3; round++) new Array(1_000_000).fill(round);
    held = null;
    const before = getHeapStatistics().used_heap_size;
    expect(before - start).toBeGreaterThan(10 * 1024 * 1024);
    expect(collectRecoveryGarbage(start, 10 * 1024 * 1024)).toBe(true);
    const after = getHeapStatistics().used_heap_size;
    expect(held).toBeNull();
    expect(before - after).toBeGreaterThan(10 * 1024 * 1024);
  });
});
