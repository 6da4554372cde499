/**
 * Proves the simulator's durability checking is not a rubber stamp, on the real DurableStateStore
 * over the faulty simulated disk:
 * - a store that acknowledges before fsync (its durable LSN runs ahead of syncs) is caught by
 *   vopr within a bounded number of seeds: a crash loses what it acknowledged;
 * - a recovery that silently skips a record (the last subscription it read) is caught too;
 * - the same seeds pass with the real store, so each failure is the planted bug's doing;
 * - seeds whose disk flips bits in synced data end with the corruption reported by recovery and
 *   repaired by the documented procedure, and still pass every rule (losses after the damage are
 *   excused only because the broker reported it).
 */
import { describe, expect, it } from 'vitest';
import { plantedStoreBugs, type PlantedStoreBugName } from '../../sim/planted-bugs.js';
import { runSimulation } from '../../sim/simulation.js';
import { runVopr } from '../../sim/vopr.js';

const seedsMax = 30;
const durabilityRules = ['lost', 'session-lost', 'retained-lost', 'retained-stale', 'qos2-duplicated', 'not-subscribed', 'will-after-clean-disconnect'];

const expectations: { bug: PlantedStoreBugName; rules: string[] }[] = [
  { bug: 'ack-before-sync', rules: durabilityRules },
  { bug: 'recovery-skips-record', rules: ['lost'] },
];

describe('planted store bugs are caught', () => {
  for (const { bug, rules } of expectations) {
    it(`${bug} within ${seedsMax} seeds`, () => {
      const output: string[] = [];
      const result = runVopr({ seedStart: 1, count: seedsMax, storeFactory: plantedStoreBugs[bug] }, { stdout: (line) => output.push(line), stderr: () => {} });
      expect(result.failures.length, output.join('\n')).toBe(1);
      const failure = result.failures[0]!;
      expect(rules).toContain(failure.rule);
      // The same seed is clean with the real store: the failure is the planted bug's.
      expect(runSimulation({ seed: failure.seed, stdout: () => {}, stderr: () => {} }).ok).toBe(true);
    }, 30_000);
  }
});

describe('bit flips in synced data', () => {
  // Seeds whose disk flips bits and whose broker then reports the damage at recovery (found by
  // scanning seeds; each is small and fast).
  const flipSeeds = [115, 123, 237, 288, 296, 309];

  it('are reported by recovery, repaired, and the run passes', () => {
    let repairs = 0;
    for (const seed of flipSeeds) {
      const lines: string[] = [];
      const result = runSimulation({ seed, stdout: (line) => lines.push(line), stderr: () => {} });
      expect(result.ok, lines.join('\n')).toBe(true);
      expect(result.corruptionsReported, `seed ${seed}`).toBeGreaterThan(0);
      expect(lines.at(-1)).toMatch(/ corruptions_reported=[1-9]\d* repairs=\d+/);
      repairs += result.repairs;
    }
    expect(repairs).toBeGreaterThan(0);
  }, 30_000);

  it('in a snapshot end the run as unrecoverable corruption reported, which is not a violation', () => {
    const lines: string[] = [];
    const result = runSimulation({ seed: 717, stdout: (line) => lines.push(line), stderr: () => {} });
    expect(result.ok, lines.join('\n')).toBe(true);
    expect(result.unrecoverable).toMatch(/^corrupt snapshot: snapshot-\d{16}\.snap at offset \d+/);
    expect(lines).toContain(`UNRECOVERABLE corruption reported (not a violation): ${result.unrecoverable}`);
    expect(lines.at(-1)).toMatch(/^ok seed=717 .* unrecoverable=1 trace_hash=[0-9a-f]{16}$/);
  });

  // Known store limitation, found by vopr: a flipped bit in the last synced frame of the log looks
  // exactly like a torn final write, so recovery truncates it with a warning instead of reporting
  // it, and an acknowledged session is lost. The checker rightly calls that a violation (damage
  // not reported, then a loss). This test documents the failure and breaks once the store can tell
  // the two apart (e.g. a redundant header per write), at which point it becomes a regression seed.
  it.fails('seed 100510: a bit flip in the last synced frame is taken for a torn tail (known, unfixed)', () => {
    const result = runSimulation({ seed: 100510, stdout: () => {}, stderr: () => {} });
    expect(result.ok).toBe(true);
  });

  // The same limitation, found again by vopr (seeds 300000..301999): a crash follows a bit flip in
  // the tail record, recovery truncates it as torn, and c0's persistent session is lost.
  it.fails('seed 300382: the same tail bit flip loses a persistent session (known, unfixed)', () => {
    const result = runSimulation({ seed: 300382, stdout: () => {}, stderr: () => {} });
    expect(result.ok).toBe(true);
  });
});

