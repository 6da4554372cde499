/**
 * Runs every regression seed through the full simulator against the real broker and expects
 * each to pass every safety and liveness rule (an `open` one: to fail with its rule). A failure prints the simulator's own report
 * (rule, last events, reproduce command) so the CI log is enough to start debugging.
 */
import { describe, expect, it } from 'vitest';
import { runSimulation } from '../../sim/simulation.js';
import { regressionSeeds } from './regression-seeds.js';

describe('regression seeds', () => {
  for (const { seed, found, workload, open, largePayloads } of regressionSeeds) {
    it(`seed ${seed}${workload === false ? ' (no workload)' : ''} ${open === undefined ? 'passes' : `still fails with the open ${open}`} (${found.slice(0, 60)}...)`, () => {
      const lines: string[] = [];
      const result = runSimulation({
        seed,
        stdout: (line) => lines.push(line),
        stderr: () => {},
        ...(workload === false ? { workload } : {}),
        ...(largePayloads === true ? {} : { largePayloads: false }),
      });
      if (open === undefined) expect(result.ok, lines.join('\n')).toBe(true);
      else expect(result.violation?.rule, lines.join('\n')).toBe(open);
      expect(result.messagesPublished).toBeGreaterThan(0);
      // A few seeds are big worlds (970961: twenty clients, 590,000 events), seconds each on a loaded machine.
    }, 60_000);
  }
});
