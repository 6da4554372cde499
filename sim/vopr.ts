/**
 * `keel vopr`: runs seed after seed looking for one that breaks a rule.
 *
 * Seeds are consecutive from `seedStart` (or from a random base, printed first so that the
 * session can be repeated). It stops at the first failure unless `keepGoing`, after `count` seeds
 * or `minutes` of wall time, whichever comes first. A progress line goes to stderr about once a
 * second; each failing seed is printed to stdout with its rule and its reproduce command; the
 * rates (seeds per second, simulated events per second) go to stderr. Picking the random base is
 * the only nondeterminism here, and it happens outside every simulated run.
 */
import { randomInt } from 'node:crypto';
import { voprNodesForSeed } from './cluster/cluster-world.js';
import { pickRunOptions, type RunOptions } from './run-options.js';
import { runSimulation, type SimulationOptions } from './simulation.js';
import type { BrokerFactory, StoreFactory } from './world.js';

/** Which seeds to run and how long, plus the run options every seed gets (and its reproduce line names). */
export interface VoprOptions extends RunOptions {
  seedStart?: number;
  count?: number;
  minutes?: number;
  keepGoing?: boolean;
  /** A broker or store built by the caller (tests), as in SimulationOptions. */
  brokerFactory?: BrokerFactory;
  storeFactory?: StoreFactory;
}

export interface VoprReporter {
  stdout(line: string): void;
  stderr(line: string): void;
  /** Rewrites the progress line in place when the stream is a terminal; optional. */
  progress?(line: string): void;
}

export interface VoprFailure {
  seed: number;
  rule: string;
  detail: string;
  reproduce: string;
}

export interface VoprResult {
  exitCode: 0 | 1;
  seedStart: number;
  seedsRun: number;
  events: number;
  failures: VoprFailure[];
  /** Seeds that ended with recovery reporting corruption no repair can cut away (reported, so not failures). */
  unrecoverableSeeds: number[];
  /** Totals over all seeds. */
  diskFaults: number;
  brokerRestarts: number;
  corruptionsReported: number;
  repairs: number;
  /** Seeds in which some client stopped reading, and in which the broker dropped QoS 0 at the output cap. */
  seedsWithReadStalls: number;
  /** Seeds in which the broker throttled a publisher (paused reading it). */
  seedsWithPublisherPauses: number;
  seedsWithOutputFullDrops: number;
  /** Per coverage situation (see sim/coverage.ts): seeds in which it occurred. */
  seedsWithCoverage: Record<string, number>;
  wallMs: number;
  seedsPerSecond: number;
  eventsPerSecond: number;
}

export function runVopr(options: VoprOptions, reporter: VoprReporter): VoprResult {
  const seedStart = options.seedStart ?? randomInt(0, 2 ** 31);
  const count = options.count ?? (options.minutes === undefined ? 100 : Number.POSITIVE_INFINITY);
  const deadlineMs = options.minutes === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.minutes * 60_000;
  const startedMs = Date.now();
  const failures: VoprFailure[] = [];
  let progressAtMs = startedMs;
  let seedsRun = 0;
  let events = 0;
  const unrecoverableSeeds: number[] = [];
  const totals = { diskFaults: 0, brokerRestarts: 0, corruptionsReported: 0, repairs: 0, seedsWithReadStalls: 0, seedsWithOutputFullDrops: 0, seedsWithPublisherPauses: 0 };
  const seedsWithCoverage: Record<string, number> = {};
  reporter.stderr(`vopr: seeds from ${seedStart}${Number.isFinite(count) ? `, ${count} seeds` : ''}${options.minutes === undefined ? '' : `, ${options.minutes} min`}`);
  const mixesClusters = mixesClusterWorlds(options);
  for (let seed = seedStart; seedsRun < count && Date.now() < deadlineMs; seed++) {
    const nodes = mixesClusters ? voprNodesForSeed(seed) : 1;
    const simulation: SimulationOptions = {
      ...pickRunOptions(options),
      ...(nodes > 1 ? { nodes } : {}),
      seed,
      stdout: () => {},
      stderr: () => {},
      ...(options.brokerFactory === undefined ? {} : { brokerFactory: options.brokerFactory }),
      ...(options.storeFactory === undefined ? {} : { storeFactory: options.storeFactory }),
    };
    const result = runSimulation(simulation);
    seedsRun += 1;
    events += result.events;
    totals.diskFaults += result.diskFaults;
    totals.brokerRestarts += result.brokerRestarts;
    totals.corruptionsReported += result.corruptionsReported;
    totals.repairs += result.repairs;
    if (result.readStalls > 0) totals.seedsWithReadStalls += 1;
    if (result.publisherPauses > 0) totals.seedsWithPublisherPauses += 1;
    if (result.outputFullDrops > 0) totals.seedsWithOutputFullDrops += 1;
    for (const name of Object.keys(result.coverage)) seedsWithCoverage[name] = (seedsWithCoverage[name] ?? 0) + 1;
    if (result.unrecoverable !== null) unrecoverableSeeds.push(seed);
    if (!result.ok) {
      const violation = result.violation!;
      failures.push({ seed, rule: violation.rule, detail: violation.detail, reproduce: result.reproduce });
      reporter.stdout(`FAIL seed=${seed} rule=${violation.rule}: ${violation.detail}`);
      reporter.stdout(`  reproduce: ${result.reproduce}`);
      if (options.keepGoing !== true) break;
    }
    if (Date.now() - progressAtMs >= 1_000) {
      progressAtMs = Date.now();
      const line = `vopr: ${seedsRun} seeds, ${failures.length} failing, ${rate(seedsRun, progressAtMs - startedMs)} seeds/s`;
      (reporter.progress ?? reporter.stderr)(line);
    }
  }
  const wallMs = Date.now() - startedMs;
  const seedsPerSecond = rate(seedsRun, wallMs);
  const eventsPerSecond = rate(events, wallMs);
  reporter.stdout(
    `vopr seed_start=${seedStart} seeds=${seedsRun} failures=${failures.length} broker_restarts=${totals.brokerRestarts} disk_faults=${totals.diskFaults} ` +
      `corruptions_reported=${totals.corruptionsReported} repairs=${totals.repairs} unrecoverable_corruption_reported=${unrecoverableSeeds.length} ` +
      `seeds_with_read_stalls=${totals.seedsWithReadStalls} seeds_with_output_full_drops=${totals.seedsWithOutputFullDrops} seeds_with_publisher_pauses=${totals.seedsWithPublisherPauses}` +
      Object.keys(seedsWithCoverage)
        .sort()
        .map((name) => ` seeds_with_${name.replaceAll('-', '_')}=${seedsWithCoverage[name]}`)
        .join(''),
  );
  reporter.stderr(`vopr: ${seedsRun} seeds in ${wallMs}ms: ${seedsPerSecond} seeds/s, ${eventsPerSecond} simulated events/s`);
  return { exitCode: failures.length === 0 ? 0 : 1, seedStart, seedsRun, events, failures, unrecoverableSeeds, ...totals, seedsWithCoverage, wallMs, seedsPerSecond, eventsPerSecond };
}

/**
 * Without options that shape one broker's world or name the node count, vopr mixes worlds: a
 * share of seeds (voprNodesForSeed) run as a cluster of 2 or 3 nodes, the others exactly as they
 * ran before clusters existed; a failing cluster seed's reproduce line carries its `--nodes`.
 */
function mixesClusterWorlds(options: VoprOptions): boolean {
  const singleNodeOnly = options.plant !== undefined || options.plantStore !== undefined || options.clientCount !== undefined || options.faults !== undefined || options.workload !== undefined;
  const custom = options.brokerFactory !== undefined || options.storeFactory !== undefined;
  return options.nodes === undefined && options.plantCluster === undefined && !singleNodeOnly && !custom;
}

function rate(amount: number, wallMs: number): number {
  return Math.round((amount / Math.max(wallMs, 1)) * 1000 * 10) / 10;
}
