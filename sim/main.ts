/**
 * A tiny entry point for the simulator before (and beside) the real CLI:
 *   node dist/sim/main.js sim --seed N [--trace] [run options]
 *   node dist/sim/main.js vopr [--count N] [--minutes M] [--seed-start S] [--keep-going] [run options]
 * It calls the same `runSimulation` / `runVopr` the CLI wires up, and sets the exit code. The run
 * options (`--plant BUG`, `--plant-store BUG`, `--clients N`, `--no-faults`, `--no-workload`, ...)
 * are read from the same table as `keel sim` reads them (run-options.ts), so a reproduce line
 * printed by either runs in both.
 */
import { parseRunFlags, type RunOptions } from './run-options.js';
import { runSimulation } from './simulation.js';
import { runVopr } from './vopr.js';

function flag(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : undefined;
}

function integer(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${text}`);
  return value;
}

function vopr(args: string[], runOptions: RunOptions): number {
  const count = integer(flag(args, '--count'), '--count');
  const minutesText = flag(args, '--minutes');
  const seedStart = integer(flag(args, '--seed-start'), '--seed-start');
  const result = runVopr(
    {
      ...runOptions,
      ...(count === undefined ? {} : { count }),
      ...(minutesText === undefined ? {} : { minutes: Number(minutesText) }),
      ...(seedStart === undefined ? {} : { seedStart }),
      keepGoing: args.includes('--keep-going'),
    },
    { stdout: (line) => process.stdout.write(`${line}\n`), stderr: (line) => process.stderr.write(`${line}\n`) },
  );
  return result.exitCode;
}

function main(args: string[]): number {
  const { options: runOptions, rest } = parseRunFlags(args);
  const command = rest[0];
  if (command === 'sim') {
    const seed = integer(flag(rest, '--seed'), '--seed');
    if (seed === undefined) throw new Error('sim needs --seed N');
    return runSimulation({ ...runOptions, seed, trace: rest.includes('--trace') }).exitCode;
  }
  if (command === 'vopr') return vopr(rest, runOptions);
  process.stderr.write('usage: main.js sim --seed N [--trace] [run options] | vopr [--count N] [--minutes M] [--seed-start S] [--keep-going] [run options]\n');
  return 2;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
}
