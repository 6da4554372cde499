/**
 * Proves that a failing run's reproduce line replays the same run: every run option
 * (sim/run-options.ts) round-trips through its flags, as `keel sim` and `keel vopr` parse them
 * (commander) and as sim/main.ts parses them; neither command takes an option that shapes a run
 * outside that table; the reproduce line of a planted failure, parsed back, gives the same trace
 * hash and verdict (before, it left out `--plant` and replayed a passing run); and the README's
 * planted-bug examples really fail.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { runOptionsFromFlags, simCommand, voprCommand } from '../../io/sim-commands.js';
import { handoverShapeNames } from '../../sim/cluster/handover-shapes.js';
import { clusterPlantedBugNames, plantedBugNames, plantedStoreBugNames } from '../../sim/planted-bug-names.js';
import { plantedStoreBugs } from '../../sim/planted-bugs.js';
import { checkRunOptions, parseRunFlags, type RunOptions, RunOptionsError, runOptionFlags, runOptionKeys, runOptionsToFlags, type SwitchFlag, type ValueFlag } from '../../sim/run-options.js';
import { runSimulation } from '../../sim/simulation.js';
import { runVopr } from '../../sim/vopr.js';

/** Values to try for each option; typed over every key, so a new option needs samples to compile. */
const samples: { [K in keyof Required<RunOptions>]: Required<RunOptions>[K][] } = {
  clientCount: [2, 7, 12],
  faults: [true, false],
  // true is the default, which has no flag of its own (see the test below).
  workload: [false],
  plant: [...plantedBugNames],
  plantStore: [...plantedStoreBugNames],
  eventsMax: [1, 123_456],
  nodes: [1, 3, 9],
  plantCluster: [...clusterPlantedBugNames],
  handoverMovers: [true],
  clusterStreams: [true],
  lostDisk: [false],
  largePayloads: [false],
  heavySessions: [false],
  claimCrashes: [true],
  handoverFaults: [false],
  handoverShapes: [true, false],
  handoverShape: [...handoverShapeNames],
};

/** Parses flags the way `keel <name>` does, without running anything; returns the run options. */
function parseWithCommander(build: () => Command, leading: string[], flags: string[]): RunOptions {
  const command = build()
    .exitOverride()
    .action(() => {});
  command.parse([...leading, ...flags], { from: 'user' });
  return runOptionsFromFlags(command.opts());
}

function roundTrips(options: RunOptions): void {
  const flags = runOptionsToFlags(options);
  expect(parseWithCommander(simCommand, ['--seed', '1'], flags), `keel sim ${flags.join(' ')}`).toEqual(options);
  expect(parseWithCommander(voprCommand, [], flags), `keel vopr ${flags.join(' ')}`).toEqual(options);
  expect(parseRunFlags(flags), `main.js ${flags.join(' ')}`).toEqual({ options, rest: [] });
}

/** The long flag names of a command's options (help included). */
function longFlags(command: Command): string[] {
  return command.options.map((option) => option.long!).concat('--help');
}

describe('run options and their flags', () => {
  it('round-trip one at a time and all together through keel sim, keel vopr and sim/main.ts', () => {
    for (const key of runOptionKeys) {
      for (const value of samples[key]) {
        const options = { [key]: value } as RunOptions;
        expect(runOptionsToFlags(options).length, `${key}=${String(value)} has a flag`).toBeGreaterThan(0);
        roundTrips(options);
      }
    }
    const everything = Object.fromEntries(runOptionKeys.map((key) => [key, samples[key][0]])) as RunOptions;
    roundTrips(everything);
  });

  it('write nothing for a switch at its default, and parse nothing given back to it', () => {
    expect(runOptionsToFlags({ workload: true })).toEqual([]);
    expect(parseWithCommander(simCommand, ['--seed', '1'], [])).toEqual({});
  });

  it('are the only options of keel sim and keel vopr that shape a run', () => {
    const runFlags = runOptionKeys.flatMap((key) => {
      const spec = runOptionFlags[key] as ValueFlag<unknown> | SwitchFlag;
      return spec.kind === 'value' ? [spec.flag] : [spec.on?.flag, spec.off?.flag].filter((flag) => flag !== undefined);
    });
    // What else the commands take: which seeds, how long, on how many threads, and whether to print the events.
    const notShaping = { sim: ['--seed', '--trace', '--help'], vopr: ['--seed-start', '--count', '--minutes', '--keep-going', '--jobs', '--help'] };
    expect(longFlags(simCommand()).sort()).toEqual([...runFlags, ...notShaping.sim].sort());
    expect(longFlags(voprCommand()).sort()).toEqual([...runFlags, ...notShaping.vopr].sort());
  });

  it('name every store bug that planted-bugs.ts defines', () => {
    expect(Object.keys(plantedStoreBugs).sort()).toEqual([...plantedStoreBugNames].sort());
  });
});

describe('the reproduce line', () => {
  it("of a vopr failure carries the run's options and, parsed back, replays the same failing run", () => {
    const output: string[] = [];
    const options: RunOptions = { plant: 'qos2-twice', clientCount: 4, faults: false };
    const result = runVopr({ ...options, seedStart: 1, count: 25 }, { stdout: (line) => output.push(line), stderr: () => {} });
    const failure = result.failures[0]!;
    expect(failure, output.join('\n')).toBeDefined();
    expect(failure.reproduce).toBe(`npx keel sim --seed ${failure.seed} --clients 4 --no-faults --plant qos2-twice`);
    const words = failure.reproduce.split(' ');
    expect(words.slice(0, 3)).toEqual(['npx', 'keel', 'sim']);
    const parsed = parseWithCommander(simCommand, [], words.slice(3));
    expect(parsed).toEqual(options);
    const quiet = { stdout: () => {}, stderr: () => {} };
    const original = runSimulation({ ...options, seed: failure.seed, ...quiet });
    const replayed = runSimulation({ ...parsed, seed: failure.seed, ...quiet });
    expect(replayed.ok).toBe(false);
    expect(replayed.violation?.rule).toBe(failure.rule);
    expect(replayed.traceHash).toBe(original.traceHash);
  }, 30_000);

  it("appears in the README's planted-bug examples only with seeds that fail", () => {
    const readme = readFileSync(join(resolve(import.meta.dirname, '../..'), 'README.md'), 'utf8');
    const examples = [...readme.matchAll(/npx keel sim --seed (\d+) --plant ([a-z0-9-]+)/g)];
    expect(examples.length).toBeGreaterThan(0);
    for (const [line, seed, plant] of examples) {
      const result = runSimulation({ seed: Number(seed), plant: plant as RunOptions['plant'], stdout: () => {}, stderr: () => {} });
      expect(result.ok, line).toBe(false);
      // And the same seed passes against the real broker: the failure is the planted bug's.
      expect(runSimulation({ seed: Number(seed), stdout: () => {}, stderr: () => {} }).ok, `${line} without --plant`).toBe(true);
    }
    // Two runs per README example, each up to several seconds on a loaded machine.
  }, 120_000);

  it('refuses, as a usage error, a hand-over shape without movers that keep their sessions or with too few nodes for it, and a planted cluster bug on one node', () => {
    const quiet = { seed: 1, stdout: () => {}, stderr: () => {} };
    expect(() => checkRunOptions({ nodes: 2, handoverShape: 'lost-marker' })).toThrow(RunOptionsError);
    expect(() => checkRunOptions({ nodes: 2, handoverMovers: true, handoverShape: 'giveup-no-claim' })).toThrow(/--nodes 3 or more/);
    expect(() => runSimulation({ ...quiet, nodes: 1, plantCluster: 'takeover-keeps-both' })).toThrow(RunOptionsError);
    // Without --nodes (vopr's mix) giveup-no-claim is for the worlds of 3 nodes or more; those of 2 run no plan.
    expect(() => checkRunOptions({ handoverMovers: true, handoverShape: 'giveup-no-claim' })).not.toThrow();
    expect(runSimulation({ ...quiet, nodes: 2, handoverMovers: true, handoverShape: 'giveup-no-claim' }).summary).not.toMatch(/handover_shape=/);
    expect(runSimulation({ ...quiet, nodes: 2, handoverMovers: true, handoverShape: 'lost-marker' }).summary).toMatch(/ handover_shape=lost-marker:/);
  }, 30_000);
});
