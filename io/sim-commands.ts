/**
 * `keel sim` and `keel vopr`: thin command-line wrappers over the simulator's `runSimulation` and
 * `runVopr` (sim/). All the work and all the output format belong to sim/; this file only parses
 * flags and turns the result into an exit code (0 every rule held, 1 a seed broke one, 2 usage).
 */
import { Command, InvalidArgumentError } from 'commander';
import { type PlantedBugName, plantedBugNames } from '../sim/planted-bug-names.js';
import { exitQuietlyOnBrokenPipe, writeStdoutLine } from './broken-pipe.js';
import { parseNonNegativeInteger } from './client-options.js';

/** The simulator, loaded only when a simulation runs (see planted-bug-names.ts). */
async function loadSimulator() {
  const [{ plantedBugs }, { runSimulation }, { runVopr }] = await Promise.all([import('../sim/planted-bugs.js'), import('../sim/simulation.js'), import('../sim/vopr.js')]);
  return { plantedBugs, runSimulation, runVopr };
}

function parseClientCount(value: string): number {
  const count = Number(value);
  if (!Number.isInteger(count) || count < 2 || count > 12) throw new InvalidArgumentError('must be an integer from 2 to 12');
  return count;
}

function parseMinutes(value: string): number {
  const minutes = Number(value);
  if (!Number.isFinite(minutes) || minutes <= 0) throw new InvalidArgumentError('must be a positive number');
  return minutes;
}

function parsePlant(value: string): PlantedBugName {
  if (!(plantedBugNames as readonly string[]).includes(value)) throw new InvalidArgumentError(`one of ${plantedBugNames.join(', ')}`);
  return value as PlantedBugName;
}

export function simCommand(): Command {
  return new Command('sim')
    .description('run one seeded simulation and check it (same seed, same trace hash)')
    .requiredOption('-s, --seed <n>', 'the seed', parseNonNegativeInteger)
    .option('--trace', 'print every event of the run')
    .option('--clients <n>', "override the seed's client count (2..12)", parseClientCount)
    .option('--no-faults', 'run the seed without faults')
    .option('--no-workload', "the world as before the workload streams (stalled readers, expiry, will delay, unsubscribe, aliases) existed: older seeds' runs")
    .option('--plant <bug>', 'run a deliberately broken broker (to watch the checker catch it)', parsePlant)
    .action(async (flags: { seed: number; trace?: boolean; clients?: number; faults: boolean; workload: boolean; plant?: PlantedBugName }) => {
      exitQuietlyOnBrokenPipe();
      const { plantedBugs, runSimulation } = await loadSimulator();
      const result = runSimulation({
        seed: flags.seed,
        trace: flags.trace === true,
        stdout: writeStdoutLine,
        ...(flags.clients === undefined ? {} : { clientCount: flags.clients }),
        ...(flags.faults ? {} : { faults: false }),
        ...(flags.workload ? {} : { workload: false }),
        ...(flags.plant === undefined ? {} : { brokerFactory: plantedBugs[flags.plant] }),
      });
      process.exitCode = result.exitCode;
    });
}

export function voprCommand(): Command {
  return new Command('vopr')
    .description('run seed after seed until one breaks a rule (stops at the first unless --keep-going)')
    .option('--seed-start <n>', 'first seed (default: random, printed)', parseNonNegativeInteger)
    .option('-n, --count <n>', 'number of seeds (default 100, or unlimited with --minutes)', parseNonNegativeInteger)
    .option('-m, --minutes <m>', 'stop after this much wall time', parseMinutes)
    .option('--keep-going', 'report every failing seed instead of stopping at the first')
    .option('--clients <n>', "override every seed's client count (2..12)", parseClientCount)
    .option('--plant <bug>', 'run a deliberately broken broker', parsePlant)
    .action(async (flags: { seedStart?: number; count?: number; minutes?: number; keepGoing?: boolean; clients?: number; plant?: PlantedBugName }) => {
      exitQuietlyOnBrokenPipe();
      const { plantedBugs, runVopr } = await loadSimulator();
      const interactive = process.stderr.isTTY === true;
      const result = runVopr(
        {
          ...(flags.seedStart === undefined ? {} : { seedStart: flags.seedStart }),
          ...(flags.count === undefined ? {} : { count: flags.count }),
          ...(flags.minutes === undefined ? {} : { minutes: flags.minutes }),
          keepGoing: flags.keepGoing === true,
          ...(flags.clients === undefined ? {} : { clientCount: flags.clients }),
          ...(flags.plant === undefined ? {} : { brokerFactory: plantedBugs[flags.plant] }),
          commandName: 'keel sim',
        },
        {
          stdout: writeStdoutLine,
          stderr: (line) => process.stderr.write(`${interactive ? '\r\x1b[K' : ''}${line}\n`),
          ...(interactive ? { progress: (line: string) => process.stderr.write(`\r\x1b[K${line}`) } : {}),
        },
      );
      process.exitCode = result.exitCode;
    });
}
