/**
 * `keel sim` and `keel vopr`: thin command-line wrappers over the simulator's `runSimulation` and
 * `runVopr` (sim/). All the work and all the output format belong to sim/; this file only parses
 * flags and turns the result into an exit code (0 every rule held, 1 a seed broke one, 2 usage).
 *
 * The options that shape a run are not spelled out here: both commands take them from the table
 * in sim/run-options.ts, the same table that writes a failing run's reproduce line, so a new
 * option reaches `keel sim`, `keel vopr` and the reproduce line together. `--help` of both lists
 * the planted bugs with their descriptions (sim/planted-bug-names.ts).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { clusterPlantedBugDescriptions, plantedBugDescriptions, plantedStoreBugDescriptions } from '../sim/planted-bug-names.js';
import { checkRunOptions, type RunOptions, RunOptionsError, runOptionFlags, runOptionKeys, type SwitchFlag, type ValueFlag } from '../sim/run-options.js';
import { exitQuietlyOnBrokenPipe, writeStdoutLine } from './broken-pipe.js';
import { parseNonNegativeInteger } from './client-options.js';

/** The simulator, loaded only when a simulation runs (see planted-bug-names.ts), compiled as sim/jit-tuning.ts says. */
async function loadSimulator() {
  const { tuneJitForSimulation } = await import('../sim/jit-tuning.js');
  tuneJitForSimulation();
  const [{ runSimulation }, { runVoprParallel, defaultJobs }] = await Promise.all([import('../sim/simulation.js'), import('../sim/vopr-parallel.js')]);
  return { runSimulation, runVoprParallel, defaultJobs };
}

/** Run options that contradict each other: said on stderr, exit 2 (usage). */
function usageError(command: string, error: RunOptionsError): void {
  process.stderr.write(`keel ${command}: ${error.message}\n`);
  process.exitCode = 2;
}

function parsePositiveInteger(value: string): number {
  const parsed = parseNonNegativeInteger(value);
  if (parsed === 0) throw new InvalidArgumentError('must be 1 or more');
  return parsed;
}

function parseMinutes(value: string): number {
  const minutes = Number(value);
  if (!Number.isFinite(minutes) || minutes <= 0) throw new InvalidArgumentError('must be a positive number');
  return minutes;
}

/** Commander's options for one run option: a value option, or a switch's spellings. */
function commanderOptions(spec: ValueFlag<unknown> | SwitchFlag): Option[] {
  if (spec.kind === 'value') {
    return [
      new Option(`${spec.flag} ${spec.placeholder}`, spec.description).argParser((text: string) => {
        try {
          return spec.parse(text);
        } catch (error) {
          throw new InvalidArgumentError((error as Error).message);
        }
      }),
    ];
  }
  return [spec.on, spec.off].filter((spelling) => spelling !== null).map((spelling) => new Option(spelling.flag, spelling.description));
}

/** Adds every run option of sim/run-options.ts to a command, with the planted bugs listed after the options. */
export function addRunOptions(command: Command): Command {
  for (const key of runOptionKeys) for (const option of commanderOptions(runOptionFlags[key] as ValueFlag<unknown> | SwitchFlag)) command.addOption(option);
  return command.addHelpText('after', plantedBugsHelp());
}

function plantedBugsHelp(): string {
  const list = (descriptions: Record<string, string>): string =>
    Object.entries(descriptions)
      .map(([name, description]) => `  ${name.padEnd(28)} ${description}`)
      .join('\n');
  return `\nPlanted bugs (--plant):\n${list(plantedBugDescriptions)}\n\nPlanted store bugs (--plant-store):\n${list(plantedStoreBugDescriptions)}\n\nPlanted cluster bugs (--plant-cluster):\n${list(clusterPlantedBugDescriptions)}`;
}

/**
 * The run options out of commander's parsed flags. A switch commander defaulted (`--no-workload`
 * not given leaves `workload` true) is a value the run has anyway, so it is left out.
 */
export function runOptionsFromFlags(flags: Record<string, unknown>): RunOptions {
  const options: Record<string, unknown> = {};
  for (const key of runOptionKeys) {
    const spec = runOptionFlags[key] as ValueFlag<unknown> | SwitchFlag;
    const [first] = commanderOptions(spec);
    const value = flags[first!.attributeName()];
    if (value === undefined) continue;
    if (spec.kind === 'switch' && (value === true ? spec.on : spec.off) === null) continue;
    options[key] = value;
  }
  return options as RunOptions;
}

export function simCommand(): Command {
  const command = new Command('sim')
    .description('run one seeded simulation and check it (same seed, same trace hash)')
    .requiredOption('-s, --seed <n>', 'the seed', parseNonNegativeInteger)
    .option('--trace', 'print every event of the run');
  return addRunOptions(command).action(async (flags: { seed: number; trace?: boolean } & Record<string, unknown>) => {
    exitQuietlyOnBrokenPipe();
    const { runSimulation } = await loadSimulator();
    try {
      const options = runOptionsFromFlags(flags);
      checkRunOptions(options);
      const result = runSimulation({ ...options, seed: flags.seed, trace: flags.trace === true, stdout: writeStdoutLine });
      process.exitCode = result.exitCode;
    } catch (error) {
      if (!(error instanceof RunOptionsError)) throw error;
      usageError('sim', error);
    }
  });
}

export function voprCommand(): Command {
  const command = new Command('vopr')
    .description('run seed after seed until one breaks a rule (stops at the first unless --keep-going)')
    .option('--seed-start <n>', 'first seed (default: random, printed)', parseNonNegativeInteger)
    .option('-n, --count <n>', 'number of seeds (default 100, or unlimited with --minutes)', parseNonNegativeInteger)
    .option('-m, --minutes <m>', 'stop after this much wall time', parseMinutes)
    .option('--keep-going', 'report every failing seed instead of stopping at the first')
    .option('-j, --jobs <n>', 'seeds run at once on worker threads (default: one per core); the output is the same for any number', parsePositiveInteger);
  type VoprFlags = { seedStart?: number; count?: number; minutes?: number; keepGoing?: boolean; jobs?: number } & Record<string, unknown>;
  return addRunOptions(command).action(async (flags: VoprFlags) => {
    exitQuietlyOnBrokenPipe();
    const options = runOptionsFromFlags(flags);
    try {
      checkRunOptions(options);
    } catch (error) {
      if (!(error instanceof RunOptionsError)) throw error;
      return usageError('vopr', error);
    }
    const { runVoprParallel, defaultJobs } = await loadSimulator();
    const interactive = process.stderr.isTTY === true;
    const result = await runVoprParallel(
      {
        ...options,
        ...(flags.seedStart === undefined ? {} : { seedStart: flags.seedStart }),
        ...(flags.count === undefined ? {} : { count: flags.count }),
        ...(flags.minutes === undefined ? {} : { minutes: flags.minutes }),
        keepGoing: flags.keepGoing === true,
      },
      {
        stdout: writeStdoutLine,
        stderr: (line) => process.stderr.write(`${interactive ? '\r\x1b[K' : ''}${line}\n`),
        ...(interactive ? { progress: (line: string) => process.stderr.write(`\r\x1b[K${line}`) } : {}),
      },
      flags.jobs ?? defaultJobs(),
    );
    process.exitCode = result.exitCode;
  });
}
