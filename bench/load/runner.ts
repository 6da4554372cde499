/**
 * Runs the scenarios against the brokers: for each scenario, `runs` rounds, and in each round every
 * broker once, in turn (keel, aedes, mosquitto, keel, aedes, ...), so slow drift on a shared
 * machine spreads over all brokers instead of landing on one. Each run gets a freshly started
 * broker process on a new port and a hard deadline; a run that fails or times out is recorded
 * with its reason and the others go on. Each metric's figure is the median over the runs that
 * succeeded.
 */

import { benchCertificates } from './certificates.js';
import type { ProtocolLevel } from './packets.js';
import { type Availability, type BenchListener, type BrokerName, nodeFloorName, type PeerOptions, probeBroker, startBroker } from './peers.js';
import type { Direction, Metric, Scenario, ScenarioContext } from './scenario-kit.js';
import { scenarios } from './scenarios.js';
import { type BenchTransport, plainTcp } from './transport.js';

export interface BenchOptions {
  runs: number;
  seconds: number;
  payloadBytes: number;
  only: string[] | null;
  brokers: BrokerName[];
  connections: number;
  idleSeconds: number;
  rateMessagesPerSecond: number;
  latencyWarmupSeconds: number;
  connectWarmupConnections: number;
  connectConcurrency: number;
  tlsConnections: number;
  tlsWarmupConnections: number;
  level: ProtocolLevel;
  peers: PeerOptions;
}

export interface Cell {
  /** Median of the successful runs; null when none succeeded or the broker was unavailable. */
  median: number | null;
  runs: number[];
  errors: string[];
}

export interface Row {
  scenario: string;
  metric: string;
  unit: string;
  better: Direction;
  cells: Partial<Record<BrokerName, Cell>>;
}

export interface BenchResult {
  availability: Record<BrokerName, Availability>;
  rows: Row[];
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function selectScenarios(only: string[] | null): Scenario[] {
  if (only === null) return [...scenarios];
  const unknown = only.filter((name) => !scenarios.some((scenario) => scenario.name === name));
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')}; known: ${scenarios.map((scenario) => scenario.name).join(', ')}`);
  return scenarios.filter((scenario) => only.includes(scenario.name));
}

/** Longest a single run may take before it is abandoned (its broker is then stopped). */
function runDeadlineMs(scenario: Scenario, context: ScenarioContext): number {
  return context.seconds * 1_000 * 2 + (scenario.allowanceMs?.(context) ?? 30_000);
}

function withDeadline<T>(promise: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${deadlineMs} ms`)), deadlineMs);
  });
  return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
}

/** The listener a scenario needs and how its clients reach it (TLS: the run's certificates). */
function listenerFor(scenario: Scenario): { listener: BenchListener | null; transport: BenchTransport } {
  if (scenario.listener === undefined) return { listener: null, transport: plainTcp };
  if (scenario.listener === 'ws') return { listener: { protocol: 'ws' }, transport: { kind: 'ws', path: '/mqtt' } };
  const certificates = benchCertificates();
  return { listener: { protocol: 'mqtts', certificates }, transport: { kind: 'tls', ca: certificates.ca } };
}

async function runOnce(scenario: Scenario, broker: BrokerName, options: BenchOptions): Promise<Metric[]> {
  const { listener, transport } = listenerFor(scenario);
  const peers = scenario.keelConfig === undefined ? options.peers : { ...options.peers, keelConfig: { ...options.peers.keelConfig, ...scenario.keelConfig } };
  const running = await startBroker(broker, peers, listener, { persistence: scenario.persistence === true });
  try {
    const context: ScenarioContext = {
      port: running.port,
      transport,
      rssBytes: running.rssBytes,
      memory: running.memory,
      heap: running.heap,
      cpuMicros: running.cpuMicros,
      cpuSplitMicros: running.cpuSplitMicros,
      restartBroker: running.restart,
      level: options.level,
      payloadBytes: options.payloadBytes,
      seconds: options.seconds,
      connections: options.connections,
      idleSeconds: options.idleSeconds,
      rateMessagesPerSecond: options.rateMessagesPerSecond,
      latencyWarmupSeconds: options.latencyWarmupSeconds,
      connectWarmupConnections: options.connectWarmupConnections,
      connectConcurrency: options.connectConcurrency,
      tlsConnections: options.tlsConnections,
      tlsWarmupConnections: options.tlsWarmupConnections,
    };
    const metrics = await withDeadline(scenario.run(context), runDeadlineMs(scenario, context), `${scenario.name} on ${broker}`);
    if (!running.alive()) throw new Error(`${broker} exited during the run`);
    return metrics;
  } finally {
    await running.stop();
  }
}

export async function runBench(options: BenchOptions, log: (line: string) => void): Promise<BenchResult> {
  const availability = {} as Record<BrokerName, Availability>;
  for (const broker of options.brokers) {
    // Aedes 1.x implements MQTT 3.1.1 only; at level 5 it is shown as unavailable, not failing.
    availability[broker] = broker === 'aedes' && options.level === 5 ? { available: false, reason: 'Aedes speaks MQTT 3.1.1 only (run with --mqtt 4)' } : probeBroker(broker);
  }
  const usable = options.brokers.filter((broker) => availability[broker].available);
  for (const broker of options.brokers) {
    const state = availability[broker];
    log(state.available ? `${broker}: ${state.version}` : `${broker}: ${state.reason}`);
  }
  const rows: Row[] = [];
  for (const scenario of selectScenarios(options.only)) {
    const brokers = usable.filter((broker) => runsScenario(scenario, broker));
    const outcomes = new Map<BrokerName, { metrics: Metric[][]; errors: string[] }>(brokers.map((broker) => [broker, { metrics: [], errors: [] }]));
    for (let run = 1; run <= options.runs; run++) {
      for (const broker of brokers) {
        const outcome = outcomes.get(broker)!;
        try {
          const metrics = await runOnce(scenario, broker, options);
          outcome.metrics.push(metrics);
          log(`[${scenario.name}] run ${run}/${options.runs} ${broker}: ${metrics.map((metric) => `${metric.name} ${formatNumber(metric.value)} ${metric.unit}`).join(', ')}`);
        } catch (error) {
          outcome.errors.push((error as Error).message);
          log(`[${scenario.name}] run ${run}/${options.runs} ${broker}: FAILED: ${(error as Error).message}`);
        }
      }
    }
    rows.push(...scenarioRows(scenario.name, options.brokers, outcomes));
  }
  return { availability, rows };
}

/** Whether `broker` takes part in `scenario`: the scenario's list, and node-floor only where it is marked. */
export function runsScenario(scenario: Scenario, broker: BrokerName): boolean {
  if (broker === nodeFloorName && scenario.floor !== true) return false;
  return scenario.brokers === undefined || scenario.brokers.includes(broker);
}

function scenarioRows(scenario: string, brokers: BrokerName[], outcomes: Map<BrokerName, { metrics: Metric[][]; errors: string[] }>): Row[] {
  const templates = new Map<string, Metric>();
  for (const outcome of outcomes.values()) for (const metrics of outcome.metrics) for (const metric of metrics) if (!templates.has(metric.name)) templates.set(metric.name, metric);
  if (templates.size === 0) templates.set('(no successful run)', { name: '(no successful run)', unit: '', better: 'info', value: 0 });
  return [...templates.values()].map((template) => {
    const cells: Partial<Record<BrokerName, Cell>> = {};
    for (const broker of brokers) {
      const outcome = outcomes.get(broker);
      if (outcome === undefined) continue;
      const values = outcome.metrics.flatMap((metrics) => metrics.filter((metric) => metric.name === template.name).map((metric) => metric.value));
      cells[broker] = { median: median(values), runs: values, errors: outcome.errors };
    }
    return { scenario, metric: template.name, unit: template.unit, better: template.better, cells };
  });
}

export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return value.toLocaleString('en-US');
  const magnitude = Math.abs(value);
  if (magnitude >= 1_000) return Math.round(value).toLocaleString('en-US');
  if (magnitude >= 100) return value.toFixed(0);
  if (magnitude >= 10) return value.toFixed(1);
  return value.toFixed(2);
}
