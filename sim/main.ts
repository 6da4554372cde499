/**
 * A tiny entry point for the simulator before (and beside) the real CLI:
 *   node dist/sim/main.js sim --seed N [--trace] [--plant BUG] [--plant-store BUG]
 *   node dist/sim/main.js vopr [--count N] [--minutes M] [--seed-start S] [--keep-going] [--plant BUG] [--plant-store BUG]
 * It calls the same `runSimulation` / `runVopr` the CLI wires up, and sets the exit code.
 * `--plant` swaps in one of the deliberately broken brokers from planted-bugs.ts, to watch the
 * checker catch it; `--plant-store` swaps in a broken store (acks before fsync, recovery that skips).
 */
import { type PlantedBugName, type PlantedStoreBugName, plantedBugs, plantedStoreBugs } from './planted-bugs.js';
import { runSimulation } from './simulation.js';
import { runVopr } from './vopr.js';
import type { BrokerFactory, StoreFactory } from './world.js';

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

function plant(args: string[]): BrokerFactory | undefined {
  const name = flag(args, '--plant');
  if (name === undefined) return undefined;
  if (!(name in plantedBugs)) throw new Error(`unknown --plant ${name}; one of ${Object.keys(plantedBugs).join(', ')}`);
  return plantedBugs[name as PlantedBugName];
}

function plantStore(args: string[]): StoreFactory | undefined {
  const name = flag(args, '--plant-store');
  if (name === undefined) return undefined;
  if (!(name in plantedStoreBugs)) throw new Error(`unknown --plant-store ${name}; one of ${Object.keys(plantedStoreBugs).join(', ')}`);
  return plantedStoreBugs[name as PlantedStoreBugName];
}

function main(args: string[]): number {
  const command = args[0];
  const brokerFactory = plant(args);
  const storeFactory = plantStore(args);
  const factoryOption = { ...(brokerFactory === undefined ? {} : { brokerFactory }), ...(storeFactory === undefined ? {} : { storeFactory }) };
  if (command === 'sim') {
    const seed = integer(flag(args, '--seed'), '--seed');
    if (seed === undefined) throw new Error('sim needs --seed N');
    const workloadOption = args.includes('--no-workload') ? { workload: false } : {};
    return runSimulation({ seed, trace: args.includes('--trace'), ...workloadOption, ...factoryOption }).exitCode;
  }
  if (command === 'vopr') {
    const count = integer(flag(args, '--count'), '--count');
    const minutesText = flag(args, '--minutes');
    const seedStart = integer(flag(args, '--seed-start'), '--seed-start');
    const result = runVopr(
      {
        ...(count === undefined ? {} : { count }),
        ...(minutesText === undefined ? {} : { minutes: Number(minutesText) }),
        ...(seedStart === undefined ? {} : { seedStart }),
        keepGoing: args.includes('--keep-going'),
        ...factoryOption,
      },
      { stdout: (line) => process.stdout.write(`${line}\n`), stderr: (line) => process.stderr.write(`${line}\n`) },
    );
    return result.exitCode;
  }
  process.stderr.write('usage: main.js sim --seed N [--trace] [--no-workload] | vopr [--count N] [--minutes M] [--seed-start S] [--keep-going] [--plant BUG] [--plant-store BUG]\n');
  return 2;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
}
