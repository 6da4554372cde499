/**
 * `keel sim`: one seed, one world, one verdict.
 *
 * `runSimulation` is synchronous and deterministic: the seed chooses the world's shape, the world
 * runs on simulated time, and what it prints to `stdout` is a function of the seed (and options)
 * alone, byte for byte: one summary line ending in the trace hash, or, on a violation, the rule,
 * the last events before it and the command that reproduces it. Wall-clock figures go to
 * `stderr` only. A throw from the broker (an assertion) is a violation like any other, and so
 * prints the seed; a throw from the simulator itself is reported the same way rather than lost.
 */
import { runClusterSimulation } from './cluster/cluster-simulation.js';
import { type HandoverFaultStep, handoverFaultSteps } from './cluster/handover-faults.js';
import { describeDiskShape } from './disk.js';
import { plantedBugs, plantedStoreBugs } from './planted-bugs.js';
import { eventsMaxDefault, pickRunOptions, type RunOptions, RunOptionsError, reproduceCommand } from './run-options.js';
import { chooseShape, type WorldShape } from './shape.js';
import { type BrokerFactory, realBroker, type StoreFactory, type Violation, World } from './world.js';

/**
 * Everything that changes what a run does is a RunOptions field (run-options.ts), where it gets
 * the flags that the reproduce line prints; the fields here only direct the output, or hand in a
 * broker or store built by the caller (tests), which no flag can name.
 */
export interface SimulationOptions extends RunOptions {
  seed: number;
  /** Print every event of the run to stdout. */
  trace?: boolean;
  /** Where the run's deterministic output goes (one call per line, no newline); default process.stdout. */
  stdout?: (line: string) => void;
  /** Where wall-clock figures go; default process.stderr. */
  stderr?: (line: string) => void;
  /** Builds the broker under test instead of the real Broker or the `plant` named; tests plant their own bugs through it. */
  brokerFactory?: BrokerFactory;
  /** Builds each broker incarnation's store over the world's disk instead of a DurableStateStore or the `plantStore` named. */
  storeFactory?: StoreFactory;
}

export interface SimulationResult {
  seed: number;
  ok: boolean;
  exitCode: 0 | 1;
  simulatedMs: number;
  events: number;
  clients: number;
  messagesPublished: number;
  messagesDelivered: number;
  faults: number;
  brokerRestarts: number;
  /** Disk faults that struck (failed operations, full-disk episodes, bit flips, stalls). */
  diskFaults: number;
  /** Broker starts that completed recovery from the disk. */
  recoveries: number;
  corruptionsReported: number;
  repairs: number;
  /** Set when recovery reported corruption no repair can cut away (not a violation: it was reported). */
  unrecoverable: string | null;
  /** Times a client stopped reading its connection (a stalled reader). */
  readStalls: number;
  /** Times the broker paused reading a publisher (throttling). */
  publisherPauses: number;
  /** QoS 0 messages the broker reported dropping at a connection's output cap. */
  outputFullDrops: number;
  /** How often each situation the coverage worlds aim for occurred (see sim/coverage.ts). */
  coverage: Record<string, number>;
  traceHash: string;
  /** A one-line description of the world's shape (deterministic). */
  shape: string;
  violation: Violation | null;
  summary: string;
  reproduce: string;
  wallMs: number;
}

export function runSimulation(options: SimulationOptions): SimulationResult {
  const stdout = options.stdout ?? ((line: string) => process.stdout.write(`${line}\n`));
  const stderr = options.stderr ?? ((line: string) => process.stderr.write(`${line}\n`));
  const nodes = options.nodes ?? (options.plantCluster === undefined ? 1 : 3);
  if (nodes >= 2) return runClusterAsSimulation(options, nodes, stdout, stderr);
  if (options.plantCluster !== undefined) throw new RunOptionsError('--plant-cluster needs a cluster: --nodes 2 or more');
  const startedMs = Date.now();
  const shape = chooseShape(options.seed, { clientCount: options.clientCount, faults: options.faults, workload: options.workload, largePayloads: options.largePayloads });
  const world = new World(shape, chooseBroker(options), options.trace === true ? stdout : null, chooseStore(options));
  try {
    world.run(options.eventsMax ?? eventsMaxDefault);
  } catch (error) {
    world.fail('simulator-threw', error instanceof Error ? `${error.message} ${error.stack?.split('\n')[1]?.trim() ?? ''}` : String(error));
  }
  const wallMs = Date.now() - startedMs;
  const result = summarize(options, world, wallMs);
  if (result.violation !== null) printViolation(stdout, result);
  else if (result.unrecoverable !== null) stdout(`UNRECOVERABLE corruption reported (not a violation): ${result.unrecoverable}`);
  stdout(result.summary);
  stderr(`sim seed=${options.seed} wall_ms=${wallMs} events_per_s=${Math.round((world.events / Math.max(wallMs, 1)) * 1000)}`);
  return result;
}

/** `handover-fault-<step>` for each hand-over step a fault was aimed at in a cluster run (sim/cluster/handover-faults.ts). */
function handoverFaultCoverage(struck: Record<HandoverFaultStep, number> | null): Record<string, number> {
  const coverage: Record<string, number> = {};
  if (struck === null) return coverage;
  for (const step of handoverFaultSteps) if (struck[step] > 0) coverage[`handover-fault-${step}`] = 1;
  return coverage;
}

/**
 * A cluster world (sim/cluster/) for `--nodes 2..9`, its result in the single-node result's shape
 * (vopr adds both up); the figures only a single-node world has are 0.
 */
function runClusterAsSimulation(options: SimulationOptions, nodes: number, stdout: (line: string) => void, stderr: (line: string) => void): SimulationResult {
  if (options.plant !== undefined || options.plantStore !== undefined || options.brokerFactory !== undefined || options.storeFactory !== undefined) {
    throw new RunOptionsError('--plant, --plant-store and custom brokers or stores are for one broker; a cluster run takes --plant-cluster');
  }
  const reproduce = reproduceLine(options);
  const cluster = runClusterSimulation({
    seed: options.seed,
    nodes,
    ...(options.plantCluster === undefined ? {} : { plant: options.plantCluster }),
    ...(options.eventsMax === undefined ? {} : { eventsMax: options.eventsMax }),
    handoverMovers: options.handoverMovers === true,
    clusterStreams: options.clusterStreams === true,
    ...(options.lostDisk === false ? { lostDisk: false } : {}),
    ...(options.largePayloads === false ? { largePayloads: false } : {}),
    ...(options.heavySessions === false ? { heavySessions: false } : {}),
    ...(options.claimCrashes === true ? { claimCrashes: true } : {}),
    ...(options.handoverFaults === false ? { handoverFaults: false } : {}),
    ...(options.handoverShapes === undefined ? {} : { handoverShapes: options.handoverShapes }),
    ...(options.handoverShape === undefined ? {} : { handoverShape: options.handoverShape }),
    trace: options.trace === true,
    reproduce,
    stdout,
    stderr,
  });
  return {
    seed: cluster.seed,
    ok: cluster.ok,
    exitCode: cluster.exitCode,
    simulatedMs: cluster.simulatedMs,
    events: cluster.events,
    clients: cluster.clients,
    messagesPublished: cluster.messagesPublished,
    messagesDelivered: cluster.messagesDelivered,
    faults: cluster.faults,
    brokerRestarts: cluster.nodeRestarts,
    diskFaults: 0,
    recoveries: 0,
    corruptionsReported: 0,
    repairs: 0,
    unrecoverable: null,
    readStalls: 0,
    publisherPauses: 0,
    outputFullDrops: 0,
    // A cluster seed counts once under its node count, under shared deliveries when members of a
    // $share group got some, and under silent nodes passed over when a choice skipped one.
    coverage: {
      [`cluster-${nodes}-nodes`]: 1,
      ...(cluster.sharedDelivered > 0 ? { 'shared-deliveries-in-cluster': 1 } : {}),
      ...(cluster.silentPassedOver > 0 ? { 'shared-silent-nodes-passed-over': 1 } : {}),
      // A session moved whose state did not fit one NATS message: it went in parts (src/cluster/handover-parts.ts).
      ...(cluster.handoversInParts > 0 ? { 'handover-in-parts': 1 } : {}),
      // QoS 2 hand-offs went as batches (src/cluster/handoff-batch.ts), and a node crashed at one
      // just before it went to NATS, or after NATS stored it and before the node heard so.
      ...(cluster.qos2Batches > 0 ? { 'qos2-batches-in-cluster': 1 } : {}),
      ...(cluster.crashesBeforeQos2BatchSent > 0 ? { 'crash-before-qos2-batch-sent': 1 } : {}),
      ...(cluster.crashesBeforeQos2BatchAcknowledged > 0 ? { 'crash-before-qos2-batch-acknowledged': 1 } : {}),
      // A node crashed at a hand-over claim it won, before it learned so (--claim-crashes).
      ...(cluster.crashesAtClaims > 0 ? { 'crash-at-claim': 1 } : {}),
      // A crash or a cut aimed at a step of a session hand-over (sim/cluster/handover-faults.ts), by step.
      ...handoverFaultCoverage(cluster.handoverFaultsStruck),
      // A mover ran a shaped hand-over plan to its end (sim/cluster/handover-shapes.ts), by shape.
      ...(cluster.handoverShape?.completed === true ? { [`handover-shape-${cluster.handoverShape.name}`]: 1 } : {}),
      // A node dropped a message for a session at a limit (a full queue) and said so: the checker excused it.
      ...(cluster.dropsExcused > 0 ? { 'drops-excused-in-cluster': 1 } : {}),
      // A node lost its disk, and whether the checker excused a session, a will or a QoS 2 copy for it.
      ...(cluster.lostDisk === null ? {} : { 'lost-disk-in-cluster': 1 }),
      ...(cluster.lostDisk !== null && cluster.lostDisk.sessions > 0 ? { 'lost-disk-sessions-excused': 1 } : {}),
      ...(cluster.lostDisk !== null && cluster.lostDisk.wills > 0 ? { 'lost-disk-wills-excused': 1 } : {}),
      ...(cluster.lostDisk !== null && cluster.lostDisk.duplicates > 0 ? { 'lost-disk-duplicates-excused': 1 } : {}),
    },
    traceHash: cluster.traceHash,
    shape: cluster.shape,
    violation: cluster.violation,
    summary: cluster.summary,
    reproduce,
    wallMs: cluster.wallMs,
  };
}

function chooseBroker(options: SimulationOptions): BrokerFactory {
  if (options.brokerFactory !== undefined && options.plant !== undefined) throw new Error('give plant or brokerFactory, not both');
  return options.brokerFactory ?? (options.plant === undefined ? realBroker : plantedBugs[options.plant]);
}

function chooseStore(options: SimulationOptions): StoreFactory | undefined {
  if (options.storeFactory !== undefined && options.plantStore !== undefined) throw new Error('give plantStore or storeFactory, not both');
  return options.storeFactory ?? (options.plantStore === undefined ? undefined : plantedStoreBugs[options.plantStore]);
}

/** The command that replays this run: every run option as its flag (run-options.ts). */
function reproduceLine(options: SimulationOptions): string {
  const customParts = [...(options.brokerFactory === undefined ? [] : ['broker']), ...(options.storeFactory === undefined ? [] : ['store'])];
  return reproduceCommand(options.seed, pickRunOptions(options), customParts);
}

/** `[s1:#:age1500+lv,s2:a/x]`: each stream's name, filter, retention and last-value. */
function describeStreams(streams: WorldShape['streams']): string {
  const one = (stream: WorldShape['streams'][number]): string => {
    const parts = [stream.retentionMs > 0 ? `age${stream.retentionMs}` : '', stream.retentionBytes > 0 ? `size${stream.retentionBytes}` : '', stream.lastValue ? 'lv' : ''].filter(
      (part) => part !== '',
    );
    return `${stream.name}:${stream.filter}${parts.length > 0 ? `:${parts.join('+')}` : ''}`;
  };
  return `[${streams.map(one).join(',')}]`;
}

function describeShape(world: World): string {
  const shape = world.shape;
  const versions = shape.clients.map((c) => `${c.protocolVersion === 5 ? '5' : '3'}${c.persistent ? 'p' : 'c'}${c.violator ? '!' : ''}`).join(',');
  const faults = shape.faultIntervalMsMean === null ? 'none' : `${shape.faultKinds.join('+')}/${shape.faultIntervalMsMean}ms`;
  const limits =
    Object.entries(shape.configOverrides)
      .map(([key, value]) => (key === 'streams' ? `streams=${describeStreams(shape.streams)}` : `${key}=${String(value)}`))
      .join(',') || 'defaults';
  const extras = `${shape.hostile === null ? '' : ` hostile_probes=${shape.hostile.probes.length}`}${shape.largePayloads === 0 ? '' : ` large_payloads=${shape.largePayloads}`}`;
  return `clients=[${versions}] active_ms=${shape.activeMs} faults=${faults} limits=${limits} segment_max=${shape.network.segmentBytesMax} ${describeDiskShape(shape.disk)}${extras}`;
}

function summarize(options: SimulationOptions, world: World, wallMs: number): SimulationResult {
  const violation = world.violation;
  const reproduce = reproduceLine(options);
  const hash = world.hash.hex();
  const messagesPublished = world.checker.messages.size;
  const diskFaults = world.diskFaults + world.deviceStalls;
  const summary =
    `${violation === null ? 'ok' : 'FAIL'} seed=${options.seed} simulated_ms=${world.clock.nowMs} events=${world.events} ` +
    `clients=${world.shape.clients.length} messages_published=${messagesPublished} messages_delivered=${world.checker.messagesDelivered} ` +
    `faults=${world.faults} broker_restarts=${world.brokerRestarts} disk_faults=${diskFaults} recoveries=${world.recoveries} ` +
    `corruptions_reported=${world.corruptionsReported} repairs=${world.repairs} read_stalls=${world.network.readStalls} output_full_drops=${world.outputFullDrops} publisher_pauses=${world.network.brokerReadPauses}${world.unrecoverable === null ? '' : ' unrecoverable=1'} trace_hash=${hash}`;
  return {
    seed: options.seed,
    ok: violation === null,
    exitCode: violation === null ? 0 : 1,
    simulatedMs: world.clock.nowMs,
    events: world.events,
    clients: world.shape.clients.length,
    messagesPublished,
    messagesDelivered: world.checker.messagesDelivered,
    faults: world.faults,
    brokerRestarts: world.brokerRestarts,
    diskFaults,
    recoveries: world.recoveries,
    corruptionsReported: world.corruptionsReported,
    repairs: world.repairs,
    unrecoverable: world.unrecoverable,
    readStalls: world.network.readStalls,
    publisherPauses: world.network.brokerReadPauses,
    outputFullDrops: world.outputFullDrops,
    coverage: Object.fromEntries(world.checker.coverage),
    traceHash: hash,
    shape: describeShape(world),
    violation,
    summary,
    reproduce,
    wallMs,
  };
}

function printViolation(stdout: (line: string) => void, result: SimulationResult): void {
  const violation = result.violation!;
  stdout(`VIOLATION ${violation.rule} at ${violation.atMs}ms (seed ${result.seed})`);
  stdout(`  ${violation.detail}`);
  stdout(`  world: ${result.shape}`);
  stdout(`last ${violation.recentEvents.length} events:`);
  for (const line of violation.recentEvents) stdout(`  ${line}`);
  stdout(`reproduce: ${result.reproduce}`);
}
