/**
 * Durability benchmark (issue 5): the write path under each sync policy (acknowledged QoS 1
 * publishes per second and PUBACK latency percentiles) and recovery time for a large log.
 *
 * The write path drives a real `keel serve` child per run over loopback with raw-socket
 * publishers and a persistent acking subscriber (bench/durability/write-path.ts); recovery builds
 * a log through the store API and times `keel serve` and the store recovering it
 * (bench/durability/run.ts). Progress goes to stderr; the machine, the exact command and the
 * table go to stdout, and the same as JSON to --json FILE. Method: bench/durability/README.md.
 *
 * Run: `npm run build && node dist/bench/durability-bench.js [--runs 3] [--seconds 5]
 *       [--only write,recovery] [--log-mib 1024] [--json out.json]`
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Command } from 'commander';
import { defaultConfig, type SyncPolicy } from '../src/config.js';
import { type DurabilityReport, describeDurabilityMachine, renderReport } from './durability/report.js';
import { type RecoverySettings, removeLiveDirectories, runRecoveryPart, runWritePathPart, type WritePathSettings } from './durability/run.js';
import { syncPolicies } from './durability/write-path.js';
import { integerOption, listOption } from './load/cli-options.js';
import { probeBroker } from './load/peers.js';

interface Flags {
  runs: number;
  seconds: number;
  payload: number;
  publishers: number;
  window: number;
  policies: string[];
  only: string[];
  logMib: number;
  dataRoot: string;
  cold: boolean;
  json?: string;
}

function parseFlags(argv: string[]): Flags {
  const program = new Command('durability-bench')
    .description("Benchmark Keel's durable write path per sync policy and its recovery of a large log")
    .option('--runs <n>', 'write-path runs per policy and load (median reported)', integerOption(1, 100), 3)
    .option('--seconds <s>', 'measurement window of each write-path run', integerOption(1, 600), 5)
    .option('--payload <bytes>', 'payload size of every message', integerOption(8, 1_000_000), 64)
    .option('--publishers <n>', 'publishers of the "many" load', integerOption(1, 1_000), 8)
    .option('--window <n>', 'QoS 1 PUBLISHes each of them keeps in flight', integerOption(1, 8_000), 32)
    .option('--policies <list>', 'comma-separated subset of always,interval,none', listOption, [...syncPolicies])
    .option('--only <parts>', 'comma-separated subset of write,recovery', listOption, ['write', 'recovery'])
    .option('--log-mib <n>', 'log size the recovery part builds, in MiB', integerOption(1, 1_048_576), 1_024)
    .option('--data-root <dir>', 'where the recovery part builds its log (needs twice the log free)', tmpdir())
    .option('--no-cold', 'skip the cold-cache recovery (page cache eviction with dd iflag=nocache)')
    .option('--json <file>', 'also write the results as JSON to this file')
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  program.parse(argv);
  return program.opts<Flags>();
}

function validate(flags: Flags): void {
  const badPolicies = flags.policies.filter((policy) => !(syncPolicies as readonly string[]).includes(policy));
  if (badPolicies.length > 0) throw new Error(`unknown sync policy ${badPolicies.join(', ')}; known: ${syncPolicies.join(', ')}`);
  const badParts = flags.only.filter((part) => part !== 'write' && part !== 'recovery');
  if (badParts.length > 0) throw new Error(`unknown part ${badParts.join(', ')}; known: write, recovery`);
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv);
  try {
    validate(flags);
  } catch (error) {
    process.stderr.write(`durability-bench: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const keel = probeBroker('keel');
  if (!keel.available) {
    process.stderr.write(`durability-bench: keel cannot start: ${keel.reason}\n`);
    process.exit(2);
  }
  // A signal skips exit hooks: delete the half-built log before going (the broker children are
  // killed by bench/load/peers.ts's exit hook, which process.exit runs).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      removeLiveDirectories();
      process.exit(130);
    });
  }
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const writeSettings: WritePathSettings = {
    runs: flags.runs,
    seconds: flags.seconds,
    payloadBytes: flags.payload,
    publishers: flags.publishers,
    window: flags.window,
    policies: syncPolicies.filter((policy) => flags.policies.includes(policy)) as SyncPolicy[],
  };
  const recoverySettings: RecoverySettings = {
    logBytes: flags.logMib * 2 ** 20,
    dataRoot: flags.dataRoot,
    payloadBytes: flags.payload,
    segmentBytesMax: defaultConfig.segmentBytesMax,
    cold: flags.cold,
    timeoutMs: 600_000,
  };
  const report: DurabilityReport = {
    command: ['node', ...process.argv.slice(1)].join(' '),
    machine: describeDurabilityMachine(keel.version, flags.dataRoot),
    writePath: flags.only.includes('write') ? await runWritePathPart(writeSettings, log) : null,
    recovery: null,
  };
  let exitCode = 0;
  if (flags.only.includes('recovery')) {
    try {
      report.recovery = await runRecoveryPart(recoverySettings, log);
    } catch (error) {
      process.stderr.write(`durability-bench: recovery: ${(error as Error).message}\n`);
      exitCode = 1;
    }
  }
  process.stdout.write(`${renderReport(report)}\n`);
  if (flags.json !== undefined) writeFileSync(flags.json, `${JSON.stringify({ ...report, settings: { write: writeSettings, recovery: recoverySettings } }, null, 2)}\n`);
  process.exitCode = exitCode;
}

await main();
