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
import { voprClusterStreamsForSeed, voprMoversForSeed, voprNodesForSeed } from './cluster/cluster-world.js';
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

/**
 * What vopr keeps of one seed's run: enough to add it to the totals and report it, and small
 * and plain enough to be posted from a worker thread (vopr-parallel.ts).
 */
export interface SeedOutcome {
  seed: number;
  events: number;
  diskFaults: number;
  brokerRestarts: number;
  corruptionsReported: number;
  repairs: number;
  readStalls: number;
  publisherPauses: number;
  outputFullDrops: number;
  /** The coverage situations (sim/coverage.ts) that occurred in the run. */
  coverage: string[];
  unrecoverable: boolean;
  failure: VoprFailure | null;
}

/** Runs one seed as vopr runs it: its run options, and as a cluster when the mix picks one for it. */
export function runVoprSeed(options: VoprOptions, seed: number): SeedOutcome {
  const nodes = mixesClusterWorlds(options) ? voprNodesForSeed(seed) : 1;
  const movers = nodes > 1 ? voprMoversForSeed(seed) : null;
  const simulation: SimulationOptions = {
    ...pickRunOptions(options),
    ...(nodes > 1 ? { nodes, ...(voprClusterStreamsForSeed(seed) ? { clusterStreams: true } : {}) } : {}),
    ...(movers?.handoverMovers === true ? { handoverMovers: true } : {}),
    ...(movers?.claimCrashes === true ? { claimCrashes: true } : {}),
    ...(movers?.lostMarker === true ? { handoverShape: 'lost-marker' as const } : {}),
    seed,
    stdout: () => {},
    stderr: () => {},
    ...(options.brokerFactory === undefined ? {} : { brokerFactory: options.brokerFactory }),
    ...(options.storeFactory === undefined ? {} : { storeFactory: options.storeFactory }),
  };
  const result = runSimulation(simulation);
  const violation = result.violation;
  return {
    seed,
    events: result.events,
    diskFaults: result.diskFaults,
    brokerRestarts: result.brokerRestarts,
    corruptionsReported: result.corruptionsReported,
    repairs: result.repairs,
    readStalls: result.readStalls,
    publisherPauses: result.publisherPauses,
    outputFullDrops: result.outputFullDrops,
    coverage: Object.keys(result.coverage),
    unrecoverable: result.unrecoverable !== null,
    failure: result.ok || violation === null ? null : { seed, rule: violation.rule, detail: violation.detail, reproduce: result.reproduce },
  };
}

/**
 * The totals of a vopr session, fed seed outcomes in seed order, and what it prints: each
 * failing seed as it is added, the summary line at the end. One thread or several (vopr-parallel.ts),
 * the same seeds print the same lines.
 */
export class VoprTally {
  private readonly startedMs = Date.now();
  private progressAtMs = this.startedMs;
  seedsRun = 0;
  events = 0;
  readonly failures: VoprFailure[] = [];
  private readonly unrecoverableSeeds: number[] = [];
  private readonly totals = { diskFaults: 0, brokerRestarts: 0, corruptionsReported: 0, repairs: 0, seedsWithReadStalls: 0, seedsWithOutputFullDrops: 0, seedsWithPublisherPauses: 0 };
  private readonly seedsWithCoverage: Record<string, number> = {};

  constructor(
    readonly seedStart: number,
    private readonly reporter: VoprReporter,
  ) {}

  add(outcome: SeedOutcome): void {
    const totals = this.totals;
    this.seedsRun += 1;
    this.events += outcome.events;
    totals.diskFaults += outcome.diskFaults;
    totals.brokerRestarts += outcome.brokerRestarts;
    totals.corruptionsReported += outcome.corruptionsReported;
    totals.repairs += outcome.repairs;
    if (outcome.readStalls > 0) totals.seedsWithReadStalls += 1;
    if (outcome.publisherPauses > 0) totals.seedsWithPublisherPauses += 1;
    if (outcome.outputFullDrops > 0) totals.seedsWithOutputFullDrops += 1;
    for (const name of outcome.coverage) this.seedsWithCoverage[name] = (this.seedsWithCoverage[name] ?? 0) + 1;
    if (outcome.unrecoverable) this.unrecoverableSeeds.push(outcome.seed);
    const failure = outcome.failure;
    if (failure !== null) {
      this.failures.push(failure);
      this.reporter.stdout(`FAIL seed=${failure.seed} rule=${failure.rule}: ${failure.detail}`);
      this.reporter.stdout(`  reproduce: ${failure.reproduce}`);
    }
    if (Date.now() - this.progressAtMs >= 1_000) {
      this.progressAtMs = Date.now();
      const line = `vopr: ${this.seedsRun} seeds, ${this.failures.length} failing, ${rate(this.seedsRun, this.progressAtMs - this.startedMs)} seeds/s`;
      (this.reporter.progress ?? this.reporter.stderr)(line);
    }
  }

  finish(): VoprResult {
    const { totals, seedsWithCoverage, seedsRun, events, failures } = this;
    const wallMs = Date.now() - this.startedMs;
    const seedsPerSecond = rate(seedsRun, wallMs);
    const eventsPerSecond = rate(events, wallMs);
    this.reporter.stdout(
      `vopr seed_start=${this.seedStart} seeds=${seedsRun} failures=${failures.length} broker_restarts=${totals.brokerRestarts} disk_faults=${totals.diskFaults} ` +
        `corruptions_reported=${totals.corruptionsReported} repairs=${totals.repairs} unrecoverable_corruption_reported=${this.unrecoverableSeeds.length} ` +
        `seeds_with_read_stalls=${totals.seedsWithReadStalls} seeds_with_output_full_drops=${totals.seedsWithOutputFullDrops} seeds_with_publisher_pauses=${totals.seedsWithPublisherPauses}` +
        Object.keys(seedsWithCoverage)
          .sort()
          .map((name) => ` seeds_with_${name.replaceAll('-', '_')}=${seedsWithCoverage[name]}`)
          .join(''),
    );
    this.reporter.stderr(`vopr: ${seedsRun} seeds in ${wallMs}ms: ${seedsPerSecond} seeds/s, ${eventsPerSecond} simulated events/s`);
    return {
      exitCode: failures.length === 0 ? 0 : 1,
      seedStart: this.seedStart,
      seedsRun,
      events,
      failures,
      unrecoverableSeeds: this.unrecoverableSeeds,
      ...totals,
      seedsWithCoverage,
      wallMs,
      seedsPerSecond,
      eventsPerSecond,
    };
  }
}

/** Where a session starts, how many seeds it may run and until when; printed before the first seed. */
export function voprPlan(options: VoprOptions, reporter: VoprReporter): { seedStart: number; count: number; deadlineMs: number } {
  const seedStart = options.seedStart ?? randomInt(0, 2 ** 31);
  const count = options.count ?? (options.minutes === undefined ? 100 : Number.POSITIVE_INFINITY);
  const deadlineMs = options.minutes === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.minutes * 60_000;
  reporter.stderr(`vopr: seeds from ${seedStart}${Number.isFinite(count) ? `, ${count} seeds` : ''}${options.minutes === undefined ? '' : `, ${options.minutes} min`}`);
  return { seedStart, count, deadlineMs };
}

export function runVopr(options: VoprOptions, reporter: VoprReporter): VoprResult {
  const { seedStart, count, deadlineMs } = voprPlan(options, reporter);
  const tally = new VoprTally(seedStart, reporter);
  for (let seed = seedStart; tally.seedsRun < count && Date.now() < deadlineMs; seed++) {
    const outcome = runVoprSeed(options, seed);
    tally.add(outcome);
    if (outcome.failure !== null && options.keepGoing !== true) break;
  }
  return tally.finish();
}

/**
 * Without options that shape one broker's world or name the node count, vopr mixes worlds: a
 * share of seeds (voprNodesForSeed) run as a cluster of 2, 3 or 4 nodes, half of those with session
 * movers, some with crashes at claims and some through the lost-marker plan (voprMoversForSeed), the others exactly as they ran
 * before clusters existed; a failing cluster seed's reproduce line carries its flags.
 */
function mixesClusterWorlds(options: VoprOptions): boolean {
  const singleNodeOnly = options.plant !== undefined || options.plantStore !== undefined || options.clientCount !== undefined || options.faults !== undefined || options.workload !== undefined;
  const custom = options.brokerFactory !== undefined || options.storeFactory !== undefined;
  return options.nodes === undefined && options.plantCluster === undefined && !singleNodeOnly && !custom;
}

function rate(amount: number, wallMs: number): number {
  return Math.round((amount / Math.max(wallMs, 1)) * 1000 * 10) / 10;
}
