/**
 * Proves that the simulator's stream worlds exercise the bound on the streams' entries in memory
 * (streamBacklogBytesMax): among the first few hundred seeds, some stream worlds bound it to a few
 * KiB and some make every stream last-value (sim/stream-shape.ts, `chooseStreamPressure`); and a
 * whole run of such a world, publishers paused for the streams' backlog (`stream-backlog-full`
 * seen), passes every rule of the checker: nothing acknowledged lost, every stream's offsets
 * dense, each reader's in order.
 */
import { describe, expect, it } from 'vitest';
import { chooseShape } from '../../sim/shape.js';
import { runSimulation } from '../../sim/simulation.js';

describe('stream worlds under a small backlog bound', () => {
  it('some stream worlds bound the backlog to a few KiB, some make every stream last-value', () => {
    const shapes = Array.from({ length: 300 }, (_, seed) => chooseShape(seed)).filter((shape) => shape.streams.length > 0);
    expect(shapes.length).toBeGreaterThan(30);
    const bounded = shapes.filter((shape) => (shape.configOverrides.streamBacklogBytesMax ?? Number.POSITIVE_INFINITY) <= 8192);
    expect(bounded.length).toBeGreaterThan(5);
    expect(bounded.length).toBeLessThan(shapes.length);
    expect(shapes.some((shape) => shape.streams.length > 1 && shape.streams.every((stream) => stream.lastValue))).toBe(true);
  });

  it('a world whose publishers are paused for the backlog keeps every stream rule', () => {
    const seeds = Array.from({ length: 300 }, (_, seed) => seed).filter((seed) => (chooseShape(seed).configOverrides.streamBacklogBytesMax ?? Number.POSITIVE_INFINITY) <= 2048);
    let paused = 0;
    for (const seed of seeds.slice(0, 4)) {
      const lines: string[] = [];
      const result = runSimulation({ seed, stdout: (line) => lines.push(line), stderr: () => {} });
      expect(result.ok, lines.join('\n')).toBe(true);
      if ((result.coverage['stream-backlog-full'] ?? 0) > 0) paused += 1;
    }
    expect(paused).toBeGreaterThan(0);
  }, 120_000);
});
