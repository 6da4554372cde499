/**
 * `keel sim --nodes N` (N ≥ 2): one seed, one cluster world, one verdict. Like `runSimulation`
 * (sim/simulation.ts) it is synchronous and deterministic: what it prints to stdout is a function
 * of the seed, the node count and the planted bug alone, ending in the trace hash; wall-clock
 * figures go to stderr. A throw from a broker or from the simulator is reported as a violation
 * with the seed, never lost.
 */
import type { ClusterPlantedBugName } from '../planted-bug-names.js';
import { clusterPlantedBugs } from './cluster-planted-bugs.js';
import { type ClusterBrokerFactory, type ClusterViolation, ClusterWorld, chooseClusterShape, describeClusterShape, realClusterBroker } from './cluster-world.js';
import type { HandoverFaultStep } from './handover-faults.js';
import type { HandoverShapeName } from './handover-shapes.js';

export interface ClusterSimulationOptions {
  seed: number;
  nodes: number;
  plant?: ClusterPlantedBugName;
  trace?: boolean;
  eventsMax?: number;
  stdout?: (line: string) => void;
  stderr?: (line: string) => void;
  brokerFactory?: ClusterBrokerFactory;
  /** The command that replays the run (runSimulation passes the one its flag table writes). */
  reproduce?: string;
  /** Movers keep persistent sessions and subscribe, so their sessions are handed over (`--handover-movers`). */
  handoverMovers?: boolean;
  /** Nodes keep a stream of every topic under a tiny backlog bound (`--cluster-streams`). */
  clusterStreams?: boolean;
  /** False: no node loses its disk (`--no-lost-disk`). */
  lostDisk?: boolean;
  /** False: no large payloads (`--no-large-payloads`). */
  largePayloads?: boolean;
  /** False: no movers with sessions of several MiB (`--no-heavy-sessions`). */
  heavySessions?: boolean;
  /** Nodes crash at some hand-over claims they win, before they learn it (`--claim-crashes`). */
  claimCrashes?: boolean;
  /** False: no faults aimed at hand-over steps (`--no-handover-faults`, handover-faults.ts). */
  handoverFaults?: boolean;
  /** Shaped hand-over plans (handover-shapes.ts): true in every world with `--handover-movers` (`--handover-shapes`), false in none; absent, half. */
  handoverShapes?: boolean;
  /** One shape for every plan (`--handover-shape`), instead of one drawn. */
  handoverShape?: HandoverShapeName;
}

export interface ClusterSimulationResult {
  seed: number;
  nodes: number;
  ok: boolean;
  exitCode: 0 | 1;
  events: number;
  simulatedMs: number;
  clients: number;
  messagesPublished: number;
  messagesDelivered: number;
  /** Copies that reached members of `$share` groups (shared-members.ts). */
  sharedDelivered: number;
  /** `$share` choices that passed over a member node not heard from lately. */
  silentPassedOver: number;
  /** Connections of movers answered with session present 1 after a move (session-handover.ts). */
  sessionsResumed: number;
  /** Hand-overs whose state took several puts of the bucket (src/cluster/handover-parts.ts). */
  handoversInParts: number;
  /** Batches stored with a QoS 2 member (src/cluster/handoff-batch.ts), and the crashes aimed at them (cluster-world.ts). */
  qos2Batches: number;
  crashesBeforeQos2BatchSent: number;
  crashesBeforeQos2BatchAcknowledged: number;
  /** Crashes aimed at hand-over claims won (`--claim-crashes`, cluster-world.ts aimAtClaim). */
  crashesAtClaims: number;
  /** The shaped hand-over plan of the world (handover-shapes.ts): its shape, the steps it got through of how many, whether it ran to its end; null without one. */
  handoverShape: { name: HandoverShapeName; reached: number; steps: number; completed: boolean } | null;
  /** Faults aimed at hand-over steps (handover-faults.ts), by step; null in worlds without them. */
  handoverFaultsStruck: Record<HandoverFaultStep, number> | null;
  /** Messages a node reported dropping for a session (`message-dropped`) that the checker excused (cluster-checker.ts). */
  dropsExcused: number;
  /**
   * A node lost its disk (ClusterShape.lostDisk), with what the checker excused for it: sessions
   * found lost (session present 0 taken for the lost one), wills only that disk
   * held, QoS 2 copies given twice because their publisher's session went with it. Null: no disk lost.
   */
  lostDisk: { sessions: number; wills: number; duplicates: number } | null;
  faults: number;
  nodeRestarts: number;
  traceHash: string;
  shape: string;
  violation: ClusterViolation | null;
  summary: string;
  reproduce: string;
  wallMs: number;
}

export const clusterEventsMaxDefault = 2_000_000;

export function runClusterSimulation(options: ClusterSimulationOptions): ClusterSimulationResult {
  const stdout = options.stdout ?? ((line: string) => process.stdout.write(`${line}\n`));
  const stderr = options.stderr ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (!Number.isInteger(options.nodes) || options.nodes < 2 || options.nodes > 9) throw new Error(`--nodes must be 2 to 9 for a cluster run, got ${options.nodes}`);
  const startedMs = Date.now();
  const shape = chooseClusterShape(options.seed, options.nodes, options.handoverMovers === true, options.clusterStreams === true, {
    lostDisk: options.lostDisk !== false,
    largePayloads: options.largePayloads !== false,
    heavySessions: options.heavySessions !== false,
    handoverFaults: options.handoverFaults !== false,
    ...(options.handoverShapes === undefined ? {} : { handoverShapes: options.handoverShapes }),
    ...(options.handoverShape === undefined ? {} : { handoverShape: options.handoverShape }),
  });
  const factory = options.brokerFactory ?? (options.plant === undefined ? realClusterBroker : clusterPlantedBugs[options.plant]);
  const world = new ClusterWorld(shape, factory, options.trace === true ? stdout : null, options.claimCrashes === true);
  try {
    world.run(options.eventsMax ?? clusterEventsMaxDefault);
  } catch (error) {
    world.fail('simulator-threw', error instanceof Error ? `${error.message} ${error.stack?.split('\n')[1]?.trim() ?? ''}` : String(error));
  }
  const wallMs = Date.now() - startedMs;
  const violation = world.violation;
  const hash = world.hash.hex();
  const reproduce =
    options.reproduce ??
    `keel sim --seed ${options.seed} --nodes ${options.nodes}${options.handoverMovers === true ? ' --handover-movers' : ''}${options.clusterStreams === true ? ' --cluster-streams' : ''}${options.claimCrashes === true ? ' --claim-crashes' : ''}${options.handoverShapes === true ? ' --handover-shapes' : ''}${options.handoverShapes === false ? ' --no-handover-shapes' : ''}${options.handoverShape === undefined ? '' : ` --handover-shape ${options.handoverShape}`}${options.plant === undefined ? '' : ` --plant-cluster ${options.plant}`}${options.eventsMax === undefined ? '' : ` --events-max ${options.eventsMax}`}`;
  const sessionsResumed = world.movers.reduce((sum, mover) => sum + mover.resumed, 0);
  const excused = world.checker.lostDiskExcused;
  const lostDisk = shape.lostDisk === null ? null : { sessions: excused.sessions, wills: excused.wills, duplicates: excused.duplicates };
  const plan = world.shapePlan;
  const summary =
    `${violation === null ? 'ok' : 'FAIL'} seed=${options.seed} nodes=${options.nodes} simulated_ms=${world.clock.nowMs} events=${world.events} ` +
    `clients=${world.clients.length} messages_published=${world.checker.published} messages_delivered=${world.checker.delivered} shared_delivered=${world.sharedChecker.delivered} faults=${world.faults} ` +
    `node_restarts=${world.nodeRestarts} nats_restarts=${world.nats.counters.restarts} partitions=${world.nats.counters.partitions} handoffs_stored=${world.nats.counters.stored} handoff_batches=${world.nats.counters.batchesStored} qos2_batches=${world.nats.counters.qos2BatchesStored} ` +
    `crashes_at_qos2_batches=${world.batchCrashes.beforeSent}+${world.batchCrashes.beforeAcknowledged} ` +
    `${world.claimCrashChance > 0 ? `crashes_at_claims=${world.claimCrashes} ` : ''}` +
    `${world.handoverFaults === null ? '' : `handover_faults=${world.handoverFaults.describe()} `}` +
    `${plan === null ? '' : `handover_shape=${plan.choice.name}:${plan.reached}/${plan.steps}${plan.completed ? ':completed' : ''} `}` +
    `redeliveries=${world.nats.counters.redeliveries} sessions_handed_over=${sessionsResumed} handovers_in_parts=${world.nats.counters.handoversInParts} drops_excused=${world.checker.dropsExcused} drops_unattributed=${world.checker.dropsUnattributed}${lostDisk === null ? '' : ` lost_disk_excused_sessions=${lostDisk.sessions} lost_disk_excused_wills=${lostDisk.wills} lost_disk_excused_duplicates=${lostDisk.duplicates}`} trace_hash=${hash}`;
  if (violation !== null) {
    stdout(`VIOLATION ${violation.rule} at ${violation.atMs}ms (seed ${options.seed})`);
    stdout(`  ${violation.detail}`);
    stdout(`  world: ${describeClusterShape(shape)}${world.claimCrashChance > 0 ? ` claim-crashes=${world.claimCrashChance}` : ''}`);
    stdout(`last ${violation.recentEvents.length} events:`);
    for (const line of violation.recentEvents) stdout(`  ${line}`);
    stdout(`reproduce: ${reproduce}`);
  }
  stdout(summary);
  stderr(`sim seed=${options.seed} nodes=${options.nodes} wall_ms=${wallMs} events_per_s=${Math.round((world.events / Math.max(wallMs, 1)) * 1000)}`);
  return {
    seed: options.seed,
    nodes: options.nodes,
    ok: violation === null,
    exitCode: violation === null ? 0 : 1,
    events: world.events,
    simulatedMs: world.clock.nowMs,
    clients: world.clients.length,
    messagesPublished: world.checker.published,
    messagesDelivered: world.checker.delivered,
    sharedDelivered: world.sharedChecker.delivered,
    silentPassedOver: world.silentPassedOver,
    sessionsResumed,
    handoversInParts: world.nats.counters.handoversInParts,
    qos2Batches: world.nats.counters.qos2BatchesStored,
    crashesBeforeQos2BatchSent: world.batchCrashes.beforeSent,
    crashesBeforeQos2BatchAcknowledged: world.batchCrashes.beforeAcknowledged,
    crashesAtClaims: world.claimCrashes,
    handoverFaultsStruck: world.handoverFaults === null ? null : { ...world.handoverFaults.struck },
    handoverShape: plan === null ? null : { name: plan.choice.name, reached: plan.reached, steps: plan.steps, completed: plan.completed },
    dropsExcused: world.checker.dropsExcused,
    lostDisk,
    faults: world.faults,
    nodeRestarts: world.nodeRestarts,
    traceHash: hash,
    shape: describeClusterShape(shape),
    violation,
    summary,
    reproduce,
    wallMs,
  };
}
