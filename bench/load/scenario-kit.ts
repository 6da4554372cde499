/**
 * What every scenario shares: its inputs (ScenarioContext), its output (named metrics with a unit
 * and a direction), and small helpers to connect many clients with a deadline, time a measurement
 * window after a warm-up, wait for a counter to settle, and read the open-files limit.
 *
 * Each helper is bounded in time; none waits on the broker without a deadline.
 */
import { readFileSync } from 'node:fs';
import { BenchClient, type BenchClientOptions } from './client.js';
import type { HeapReading } from './heap-probe.js';
import type { ProtocolLevel } from './packets.js';
import type { BrokerName, CpuSplit, ProcessMemory } from './peers.js';
import type { BenchTransport } from './transport.js';

export interface ScenarioContext {
  port: number;
  /** How clients reach `port`: plain TCP, or the TLS or WebSocket listener the scenario asked for. */
  transport: BenchTransport;
  /** The broker process's RSS now. */
  rssBytes: () => number;
  /** The same, anonymous and file-backed apart. */
  memory: () => ProcessMemory;
  /** A Node broker's live V8 heap after a full collection (null for Mosquitto); read RSS before it. */
  heap: () => Promise<HeapReading | null>;
  /** The CPU time the broker process used so far, in µs (peers.ts readCpuMicros). */
  cpuMicros: () => number;
  /** The same, user and system apart. */
  cpuSplitMicros: () => CpuSplit;
  /**
   * Stops the broker cleanly and starts it again on the same port and data (a scenario with
   * `persistence` keeps its sessions across it); resolves with the ms from spawn to listening.
   * The figures above then read the new process.
   */
  restartBroker: () => Promise<number>;
  level: ProtocolLevel;
  payloadBytes: number;
  /** Length of the measurement window of throughput scenarios. */
  seconds: number;
  /** Connections for the idle-connections scenario. */
  connections: number;
  /** How long the idle scenario leaves the broker alone before its last reading. */
  idleSeconds: number;
  /** Messages per second for the paced latency scenario. */
  rateMessagesPerSecond: number;
  /**
   * How long the latency scenario publishes at its rate before it records. A Node broker compiles
   * its hot path during its first seconds under load: Keel's inputs took 1 to 3 ms now and then
   * until about 2.5 s after the first message, and with a 1 s warm-up those stalls, a handful of
   * them, set the p99 (~950 µs; ~280 µs after a 4 s warm-up). The figure wanted is the steady state
   * of a broker that runs for months; `--latency-warmup 1` shows the first seconds.
   */
  latencyWarmupSeconds: number;
  /**
   * Connections the idle-connections scenario opens and resets before the batch it times. The
   * timed batch takes about a second, and a cold Node process spends much of that compiling its
   * accept and CONNECT path: warmed up by 3,000 connections, Keel's user-space CPU per connection
   * fell from ~76 to ~45 µs and its rate rose by about a third; Aedes' rose by 10-30%. The figure
   * wanted is the rate of a broker that has been running (a reconnect storm after an outage hits
   * a warm one); `--connect-warmup 0` shows a cold start.
   */
  connectWarmupConnections: number;
  /** Handshakes in flight in idle-connections' timed batch (the cold batch keeps 100 in flight). */
  connectConcurrency: number;
  /** New TLS connections the tls-handshakes scenario times (and then keeps open, idle, for RSS). */
  tlsConnections: number;
  /** TLS connections opened and reset first, timed as the cold rate (the warm-up of the Node broker). */
  tlsWarmupConnections: number;
}

export type Direction = 'higher' | 'lower' | 'info';

export interface Metric {
  name: string;
  unit: string;
  /** Which way is better, so ratios can be read (and labelled) correctly. */
  better: Direction;
  value: number;
}

export interface Scenario {
  name: string;
  description: string;
  /** The listener the broker runs for this scenario instead of plain MQTT over TCP. */
  listener?: 'mqtts' | 'ws';
  /** The brokers it is run against; all of them when absent (node-floor only where `floor` says so). */
  brokers?: readonly BrokerName[];
  /**
   * node-floor (not a broker: it answers a CONNECT and holds the socket) can run it: the scenario
   * asks for nothing but connections and reads only memory and CPU.
   */
  floor?: true;
  /** The broker keeps sessions on disk across `restartBroker` (Mosquitto: `persistence true`). */
  persistence?: true;
  /** Keel settings of this scenario, over the run's (`--keel-sync`, `--queue-max`, no admin listener). */
  keelConfig?: Record<string, unknown>;
  run(context: ScenarioContext): Promise<Metric[]>;
  /**
   * Time a run may take beyond twice its measurement window (set-up, warm-up, settling) before the
   * runner abandons it; 30 s when absent.
   */
  allowanceMs?(context: ScenarioContext): number;
}

export const setupTimeoutMs = 10_000;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Warm-up before a measurement window: a fifth of it, between 200 ms and 1 s. */
export function warmupMs(seconds: number): number {
  return Math.min(1_000, Math.max(200, seconds * 200));
}

let clientSerial = 0;

/** A client id unique in this process, so runs never take over each other's sessions. */
export function clientId(prefix: string): string {
  clientSerial += 1;
  return `bench-${prefix}-${process.pid}-${clientSerial}`;
}

export function openClient(context: ScenarioContext, prefix: string, extra: Partial<BenchClientOptions> = {}): Promise<BenchClient> {
  return BenchClient.open({ port: context.port, clientId: clientId(prefix), level: context.level, transport: context.transport, ...extra }, setupTimeoutMs);
}

/** Opens `count` clients, at most `concurrency` handshakes at a time. */
export async function openClients(context: ScenarioContext, prefix: string, count: number, extra: Partial<BenchClientOptions> = {}, concurrency = 50): Promise<BenchClient[]> {
  const clients: BenchClient[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      next += 1;
      clients.push(await openClient(context, prefix, extra));
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  } catch (error) {
    destroyAll(clients);
    throw error;
  }
  return clients;
}

export function destroyAll(clients: BenchClient[]): void {
  for (const client of clients) client.destroy();
}

/**
 * Waits out the warm-up, then measures how much `counters` advance over `seconds`.
 * Returns the per-second rate of each counter over the window actually elapsed.
 */
export async function measureRates(seconds: number, counters: (() => number)[]): Promise<number[]> {
  await sleep(warmupMs(seconds));
  const before = counters.map((counter) => counter());
  const startNs = process.hrtime.bigint();
  await sleep(seconds * 1_000);
  const elapsedSeconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  return counters.map((counter, index) => (counter() - before[index]!) / elapsedSeconds);
}

/** Waits until `counter` stops moving for `quietMs` (or `maxMs` passed): deliveries in flight land. */
export async function settle(counter: () => number, quietMs = 300, maxMs = 3_000): Promise<void> {
  const deadlineMs = Date.now() + maxMs;
  let last = counter();
  let quietSinceMs = Date.now();
  while (Date.now() < deadlineMs && Date.now() - quietSinceMs < quietMs) {
    await sleep(50);
    const now = counter();
    if (now !== last) {
      last = now;
      quietSinceMs = Date.now();
    }
  }
}

/** The soft limit on open files of this process (children inherit it), or null if unknown. */
export function openFilesLimit(): number | null {
  try {
    const match = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (match === null) return null;
    return match[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(match[1]);
  } catch {
    return null;
  }
}

export function percentile(sortedValues: Float64Array, fraction: number): number {
  if (sortedValues.length === 0) return Number.NaN;
  const index = Math.min(sortedValues.length - 1, Math.ceil(fraction * sortedValues.length) - 1);
  return sortedValues[Math.max(0, index)]!;
}
