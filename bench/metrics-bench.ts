/**
 * How long a `/metrics` scrape takes over a broker holding a lot of state: the ceiling set for it
 * is 50 ms with 100,000 sessions, since the scrape runs on the broker's own event loop and every
 * millisecond of it is a millisecond no MQTT client is served.
 *
 * The state is built in a real core (the Broker over a MemoryStateStore, fed synthetic
 * connections as a driver would feed them): `--sessions` persistent MQTT 5.0 sessions with
 * `--subscriptions` filters each, half of them then disconnected (offline sessions), QoS 1
 * messages queued for the offline half, and some retained messages. Then the very object the
 * admin listener scrapes (io/admin/metrics.ts, with prom-client's process collectors) is scraped
 * `--scrapes` times; the figures are the median, p99 and maximum, beside the cost of the core's
 * `gauges()` pass alone (the part that grows with sessions).
 *
 * Run: `npm run build && node dist/bench/metrics-bench.js [--sessions 100000] [--scrapes 50]`
 */
import { performance } from 'node:perf_hooks';
import { Command } from 'commander';
import { BrokerMetrics } from '../io/admin/metrics.js';
import { Broker } from '../src/broker/broker.js';
import { encodePacket } from '../src/codec/encoder.js';
import { PacketType } from '../src/codec/packets.js';
import { resolveConfig } from '../src/config.js';
import { defaultListener } from '../src/contract.js';
import { MemoryStateStore } from '../src/store/memory-store.js';
import { integerOption } from './load/cli-options.js';

interface Flags {
  sessions: number;
  subscriptions: number;
  scrapes: number;
}

const scrapeMsCeiling = 50;

function parseFlags(argv: string[]): Flags {
  const program = new Command('metrics-bench')
    .description('Time a /metrics scrape over a core holding many sessions')
    .option('--sessions <n>', 'sessions in the core (half online, half offline)', integerOption(1, 1_000_000), 100_000)
    .option('--subscriptions <n>', 'subscriptions per session', integerOption(0, 100), 2)
    .option('--scrapes <n>', 'scrapes timed', integerOption(1, 10_000), 50)
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  program.parse(argv);
  return program.opts<Flags>();
}

/** Connects `count` 5.0 clients with persistent sessions and subscriptions; disconnects half. */
function buildState(broker: Broker, flags: Flags): void {
  let nowMs = 1;
  for (let index = 0; index < flags.sessions; index++) {
    const connectionId = index + 1;
    broker.connectionOpened(nowMs, connectionId, { remoteAddress: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:40000`, listener: defaultListener });
    const clientId = `bench-${index}`;
    const connect = { type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: true, keepAliveSeconds: 0, clientId, properties: { sessionExpiryInterval: 3_600 } } as const;
    broker.bytesReceived(nowMs, connectionId, encodePacket(connect, 5));
    const subscriptions = Array.from({ length: flags.subscriptions }, (_, filter) => ({
      topicFilter: `devices/${index}/in/${filter}`,
      qos: 1 as const,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0 as const,
    }));
    if (subscriptions.length > 0) broker.bytesReceived(nowMs, connectionId, encodePacket({ type: PacketType.Subscribe, packetId: 1, subscriptions }, 5));
    // Offline half: their queued messages make the gauges' pass do real work.
    if (index % 2 === 1) broker.connectionClosed(nowMs, connectionId);
    broker.drainActions();
    if (index % 1_000 === 999) nowMs += 1;
  }
  const publisherId = flags.sessions + 1;
  broker.connectionOpened(nowMs, publisherId, { remoteAddress: '10.255.255.255:40000', listener: defaultListener });
  const connect = { type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: true, keepAliveSeconds: 0, clientId: 'bench-publisher' } as const;
  broker.bytesReceived(nowMs, publisherId, encodePacket(connect, 5));
  const payload = new Uint8Array(64);
  for (let index = 1; index < flags.sessions && flags.subscriptions > 0; index += 20) {
    const publish = { type: PacketType.Publish, topic: `devices/${index}/in/0`, payload, qos: 1 as const, retain: index % 40 === 1, dup: false, packetId: (index % 60_000) + 1 };
    broker.bytesReceived(nowMs, publisherId, encodePacket(publish, 5));
    broker.drainActions();
  }
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv);
  const resolved = resolveConfig({ sessionsMax: flags.sessions + 10, connectionsMax: flags.sessions + 10, sysIntervalSeconds: 0, syncPolicy: 'none' });
  if (!resolved.ok) throw new Error(resolved.problems.join('; '));
  const broker = new Broker({ config: resolved.config, nowMs: 0, store: new MemoryStateStore() });
  broker.drainActions();
  if (!broker.ready) throw new Error('the core did not recover from an empty memory store at once');
  const buildStartMs = performance.now();
  buildState(broker, flags);
  const gauges = broker.view.gauges();
  process.stderr.write(
    `built in ${((performance.now() - buildStartMs) / 1000).toFixed(1)} s: ${JSON.stringify({ online: gauges.sessionsOnline, offline: gauges.sessionsOffline, subscriptions: gauges.subscriptions, queued: gauges.queuedMessages, retained: gauges.retainedMessages })}\n`,
  );
  const metrics = new BrokerMetrics({ view: broker.view, ready: () => true, version: 'bench' });
  const scrapeMs: number[] = [];
  const gaugesMs: number[] = [];
  let bytes = 0;
  for (let run = 0; run < flags.scrapes + 3; run++) {
    const gaugesStartMs = performance.now();
    broker.view.gauges();
    const scrapeStartMs = performance.now();
    const text = await metrics.scrape();
    const endMs = performance.now();
    // The first scrapes compile the path: left out, as a long-running broker would have them behind it.
    if (run < 3) continue;
    gaugesMs.push(scrapeStartMs - gaugesStartMs);
    scrapeMs.push(endMs - scrapeStartMs);
    bytes = text.length;
  }
  scrapeMs.sort((a, b) => a - b);
  gaugesMs.sort((a, b) => a - b);
  const format = (values: number[]): string => `median ${percentile(values, 0.5).toFixed(2)} ms, p99 ${percentile(values, 0.99).toFixed(2)} ms, max ${values.at(-1)!.toFixed(2)} ms`;
  const lines = [
    `command: node ${process.argv.slice(1).join(' ')}`,
    `state: ${gauges.sessionsOnline + gauges.sessionsOffline} sessions (${gauges.sessionsOnline} online, ${gauges.sessionsOffline} offline), ${gauges.subscriptions} subscriptions, ${gauges.queuedMessages} queued messages, ${gauges.retainedMessages} retained`,
    `/metrics scrape (${flags.scrapes} timed, ${bytes} bytes each): ${format(scrapeMs)}`,
    `of which the core's gauges() pass alone: ${format(gaugesMs)}`,
    `ceiling: ${scrapeMsCeiling} ms for 100,000 sessions: ${percentile(scrapeMs, 0.99) <= scrapeMsCeiling ? 'met' : 'MISSED'} (p99)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
