/**
 * The write-path benchmark: how many QoS 1 publishes a real `keel serve` acknowledges per second,
 * and how long each PUBACK takes, under each sync policy.
 *
 * Every run starts a fresh broker process (bench/load/peers.ts: free loopback port, fresh
 * temporary data directory) with one `syncPolicy`, connects one persistent-session QoS 1
 * subscriber that acknowledges at once (so each publish writes a stored message, a delivery and
 * later its completion to the log), then windowed QoS 1 publishers. After a warm-up it counts the
 * PUBACKs of a fixed window and samples each one's latency (write to PUBACK). Two load shapes
 * run per policy: many publishers with a window each (throughput, group commit), and one
 * publisher with a window of one (request-response: every publish pays a full sync).
 *
 * Runs interleave policies and shapes (always, interval, none, always, ...) so that drift on a
 * shared machine spreads over all of them; each figure is the median of the runs that succeeded.
 */
import type { SyncPolicy } from '../../src/config.js';
import { startBroker } from '../load/peers.js';
import { median } from '../load/runner.js';
import { clientId, percentile, setupTimeoutMs, sleep, warmupMs } from '../load/scenario-kit.js';
import { AckingSubscriber, LatencySamples, TimedPublisher } from './qos1-client.js';

export const syncPolicies: readonly SyncPolicy[] = ['always', 'interval', 'none'];

export interface LoadShape {
  name: string;
  publishers: number;
  window: number;
}

export interface WritePathOptions {
  runs: number;
  seconds: number;
  payloadBytes: number;
  shapes: LoadShape[];
  policies: readonly SyncPolicy[];
}

export interface WriteMeasurement {
  acknowledgedPerSecond: number;
  deliveredPerSecond: number;
  latencyMsP50: number;
  latencyMsP99: number;
  latencyMsP999: number;
  latencySamples: number;
}

export interface WritePathRow {
  policy: SyncPolicy;
  shape: LoadShape;
  /** Median of each field over the successful runs; null when none succeeded. */
  median: WriteMeasurement | null;
  runs: WriteMeasurement[];
  errors: string[];
}

const topic = 'bench/durability';
/** Latency samples kept per run: enough for minutes at the fastest rate seen, 16 MB at most. */
const latencySamplesMax = 2_000_000;

/** Runs every (policy, shape) pair `runs` times, interleaved, and returns one row per pair. */
export async function runWritePath(options: WritePathOptions, log: (line: string) => void): Promise<WritePathRow[]> {
  const rows: WritePathRow[] = [];
  for (const policy of options.policies) for (const shape of options.shapes) rows.push({ policy, shape, median: null, runs: [], errors: [] });
  for (let run = 1; run <= options.runs; run++) {
    for (const row of rows) {
      const label = `[write ${row.policy} ${row.shape.name}] run ${run}/${options.runs}`;
      try {
        const measurement = await withDeadline(measureOnce(row.policy, row.shape, options), options.seconds * 2_000 + 30_000, label);
        row.runs.push(measurement);
        log(`${label}: ${Math.round(measurement.acknowledgedPerSecond)} acks/s, p50 ${measurement.latencyMsP50.toFixed(2)} ms, p99 ${measurement.latencyMsP99.toFixed(2)} ms`);
      } catch (error) {
        row.errors.push((error as Error).message);
        log(`${label}: FAILED: ${(error as Error).message}`);
      }
    }
  }
  for (const row of rows) row.median = medianMeasurement(row.runs);
  return rows;
}

function medianMeasurement(runs: WriteMeasurement[]): WriteMeasurement | null {
  if (runs.length === 0) return null;
  const field = (key: keyof WriteMeasurement): number => median(runs.map((measurement) => measurement[key]))!;
  return {
    acknowledgedPerSecond: field('acknowledgedPerSecond'),
    deliveredPerSecond: field('deliveredPerSecond'),
    latencyMsP50: field('latencyMsP50'),
    latencyMsP99: field('latencyMsP99'),
    latencyMsP999: field('latencyMsP999'),
    latencySamples: field('latencySamples'),
  };
}

async function measureOnce(policy: SyncPolicy, shape: LoadShape, options: WritePathOptions): Promise<WriteMeasurement> {
  const broker = await startBroker('keel', { keelConfig: { syncPolicy: policy }, mosquittoQueuedMessagesMax: 0 });
  const clients: { destroy(): void }[] = [];
  try {
    const subscriber = await AckingSubscriber.open(broker.port, clientId('durable-subscriber'), topic, 4, setupTimeoutMs);
    clients.push(subscriber);
    const samples = new LatencySamples(latencySamplesMax);
    // The publishers' own deadline is a backstop; they are stopped explicitly after the window.
    const deadlineMs = Date.now() + warmupMs(options.seconds) + options.seconds * 1_000 + 5_000;
    const publisherOptions = { level: 4 as const, topic, payloadBytes: options.payloadBytes, window: shape.window, deadlineMs, samples };
    const publishers: TimedPublisher[] = [];
    for (let index = 0; index < shape.publishers; index++) {
      const publisher = await TimedPublisher.open(broker.port, clientId('durable-publisher'), publisherOptions, setupTimeoutMs);
      clients.push(publisher);
      publishers.push(publisher);
    }
    for (const publisher of publishers) publisher.pump();
    const acknowledged = (): number => publishers.reduce((sum, publisher) => sum + publisher.acknowledged, 0);
    await sleep(warmupMs(options.seconds));
    const acknowledgedBefore = acknowledged();
    const deliveredBefore = subscriber.received;
    samples.recording = true;
    const startNs = process.hrtime.bigint();
    await sleep(options.seconds * 1_000);
    samples.recording = false;
    const elapsedSeconds = Number(process.hrtime.bigint() - startNs) / 1e9;
    const acknowledgedInWindow = acknowledged() - acknowledgedBefore;
    const deliveredInWindow = subscriber.received - deliveredBefore;
    for (const publisher of publishers) publisher.stop();
    checkHealthy(broker.alive(), subscriber, publishers);
    return summarize(acknowledgedInWindow / elapsedSeconds, deliveredInWindow / elapsedSeconds, samples);
  } finally {
    for (const client of clients) client.destroy();
    await broker.stop();
  }
}

/** A run whose broker died, whose clients lost their connection or got stray PUBACKs is not a figure. */
function checkHealthy(alive: boolean, subscriber: AckingSubscriber, publishers: TimedPublisher[]): void {
  if (!alive) throw new Error('keel exited during the run');
  if (subscriber.closed) throw new Error(`the subscriber lost its connection: ${subscriber.error?.message ?? 'closed by the broker'}`);
  for (const publisher of publishers) {
    if (publisher.closed) throw new Error(`a publisher lost its connection: ${publisher.error?.message ?? 'closed by the broker'}`);
    if (publisher.unexpectedAcks > 0) throw new Error(`${publisher.unexpectedAcks} PUBACKs for packet identifiers not in flight`);
  }
}

function summarize(acknowledgedPerSecond: number, deliveredPerSecond: number, samples: LatencySamples): WriteMeasurement {
  if (samples.count === 0) throw new Error('no PUBACK arrived during the measurement window');
  const sorted = samples.valuesNs.slice(0, samples.count).sort();
  const milliseconds = (fraction: number): number => percentile(sorted, fraction) / 1e6;
  return {
    acknowledgedPerSecond,
    deliveredPerSecond,
    latencyMsP50: milliseconds(0.5),
    latencyMsP99: milliseconds(0.99),
    latencyMsP999: milliseconds(0.999),
    latencySamples: samples.count,
  };
}

export function withDeadline<T>(promise: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${deadlineMs} ms`)), deadlineMs);
  });
  return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
}
