/**
 * The dashboard's charts: one sample per second of what an operator watches (messages per second
 * in and out, clients connected, drops per second, sync latency p99, memory), kept for the last
 * ten minutes, so that a page opened now shows the recent past at once and then polls for what is
 * new (`/api/v1/series?after=<time>`).
 *
 * Sampling is cheap by construction: it reads the core's counters (a copy of a few dozen
 * numbers, no pass over sessions) and the process's memory, once a second on an unreferenced
 * timer, whether or not a page is open, so that the charts have a history. Sync latencies are
 * counted into fixed logarithmic buckets as they are reported (an array increment), and each
 * sample takes the p99 of the second that ended, to within one bucket (about 12 %), then clears
 * the buckets. The ring holds `samplesMax` samples; the oldest go first.
 */
import type { BrokerView } from '../../src/contract.js';

export interface Sample {
  /** Wall-clock time of the sample, ms since the epoch. */
  readonly timeMs: number;
  readonly receivedPerSecond: number;
  readonly sentPerSecond: number;
  readonly clientsConnected: number;
  readonly droppedPerSecond: number;
  /** The p99 of the syncs in the second before the sample; null when there were none. */
  readonly syncSecondsP99: number | null;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
}

/** Ten minutes at one sample a second. */
export const samplesMax = 600;
export const sampleIntervalMs = 1_000;

/** Latency buckets: 10 µs to about 10 s, each 1.25 times the last. */
const bucketLowestSeconds = 0.00001;
const bucketRatio = 1.25;
const bucketCount = 64;

export class LatencyBuckets {
  private readonly counts = new Uint32Array(bucketCount);
  private total = 0;

  record(seconds: number): void {
    const index = seconds <= bucketLowestSeconds ? 0 : Math.min(bucketCount - 1, Math.ceil(Math.log(seconds / bucketLowestSeconds) / Math.log(bucketRatio)));
    this.counts[index]! += 1;
    this.total += 1;
  }

  /** The upper bound of the bucket holding the `quantile`th sample; null when empty. */
  quantile(quantile: number): number | null {
    if (this.total === 0) return null;
    const rank = Math.ceil(quantile * this.total);
    let seen = 0;
    for (let index = 0; index < bucketCount; index++) {
      seen += this.counts[index]!;
      if (seen >= rank) return bucketLowestSeconds * bucketRatio ** index;
    }
    return bucketLowestSeconds * bucketRatio ** (bucketCount - 1);
  }

  clear(): void {
    this.counts.fill(0);
    this.total = 0;
  }
}

interface Totals {
  readonly received: number;
  readonly sent: number;
  readonly dropped: number;
  readonly clientsConnected: number;
  readonly timeMs: number;
}

export class Series {
  private readonly samples: Sample[] = [];
  private readonly syncs = new LatencyBuckets();
  private last: Totals | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly view: BrokerView,
    private readonly wallNowMs: () => number = Date.now,
  ) {}

  start(): void {
    if (this.timer !== null) return;
    this.last = this.totals();
    this.timer = setInterval(() => this.sample(), sampleIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  readonly observeSync = (seconds: number): void => this.syncs.record(seconds);

  /** Samples taken after `afterMs` (all of them when null), oldest first. */
  since(afterMs: number | null): Sample[] {
    if (afterMs === null) return [...this.samples];
    let start = this.samples.length;
    while (start > 0 && this.samples[start - 1]!.timeMs > afterMs) start--;
    return this.samples.slice(start);
  }

  /** Takes one sample now (the timer calls it; tests may too). */
  sample(): void {
    const now = this.totals();
    const last = this.last ?? now;
    const seconds = Math.max(0.001, (now.timeMs - last.timeMs) / 1000);
    const rate = (current: number, previous: number): number => Math.max(0, (current - previous) / seconds);
    const memory = process.memoryUsage();
    this.samples.push({
      timeMs: now.timeMs,
      receivedPerSecond: rate(now.received, last.received),
      sentPerSecond: rate(now.sent, last.sent),
      clientsConnected: now.clientsConnected,
      droppedPerSecond: rate(now.dropped, last.dropped),
      syncSecondsP99: this.syncs.quantile(0.99),
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
    });
    if (this.samples.length > samplesMax) this.samples.shift();
    this.syncs.clear();
    this.last = now;
  }

  private totals(): Totals {
    const counters = this.view.counters();
    const drops = counters.drops;
    let dropped = 0;
    if (typeof drops === 'object') for (const value of Object.values(drops)) dropped += value;
    const number = (key: string): number => (typeof counters[key] === 'number' ? counters[key] : 0);
    return { received: number('messagesReceived'), sent: number('messagesSent'), dropped, clientsConnected: number('clientsConnected'), timeMs: this.wallNowMs() };
  }
}
