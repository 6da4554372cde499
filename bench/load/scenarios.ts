/**
 * The benchmark scenarios. Each connects its own clients to a freshly started broker, runs for a
 * bounded time (and a bounded message count), tears every socket down, and returns its metrics.
 *
 * Throughput scenarios (fan-in, fan-out) are closed loop: publishers flood QoS 0 but keep at most
 * a window of deliveries in flight through the broker, so the figure is the rate the broker
 * sustains end to end rather than how fast it can fill its own buffers. A watchdog forgives
 * deliveries that stop arriving (a broker may drop QoS 0) so the loop cannot stall; the real loss
 * is computed at the end from what was sent and what arrived. The stalled-subscriber scenarios
 * are deliberately open loop: they measure what a broker does with a reader that never reads.
 * Any healthy client disconnected during a run makes the run fail with the reason: its figures
 * would be meaningless.
 *
 * The listener scenarios (tls-fan-in, tls-handshakes, ws-fan-in) repeat fan-in and the connection
 * storm over TLS and WebSocket, against Keel and Mosquitto only, each broker listening on that
 * protocol alone with the same certificate and key (peers.ts, certificates.ts).
 */
import { spawn } from 'node:child_process';
import type { BenchClient } from './client.js';
import { LatencyRecorder } from './client.js';
import type { HeapReading } from './heap-probe.js';
import { IdleConnections } from './idle-connections.js';
import { type ProcessMemory, readProcessMemory } from './peers.js';
import { FloodPublisher, makePayload, PacedPublisher, WindowPublisher } from './publishers.js';
import {
  clientId,
  destroyAll,
  type Metric,
  measureRates,
  openClient,
  openClients,
  openFilesLimit,
  percentile,
  type Scenario,
  type ScenarioContext,
  settle,
  setupTimeoutMs,
  sleep,
  warmupMs,
} from './scenario-kit.js';

const mebibyte = 1024 * 1024;
/** A count bound for each publisher, far above what the time bound lets it send. */
const messagesMaxPerPublisher = 100_000_000;
/** Packets per pre-encoded QoS 0 batch. */
const messagesPerBatch = 128;
/** A broker growing past this during a stalled-subscriber run is stopped early (and says so). */
const rssAbortBytes = 4 * 1024 * mebibyte;

function assertConnected(clients: BenchClient[], role: string): void {
  const lost = clients.find((client) => client.closed);
  if (lost !== undefined) throw new Error(`a ${role} was disconnected during the run: ${lost.error?.message ?? 'closed by the broker'}`);
  const wrongSize = sum(clients.map((client) => client.wrongSizePublishes));
  if (wrongSize > 0) throw new Error(`${wrongSize} deliveries to a ${role} had a payload of the wrong size`);
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

interface FloodShape {
  prefix: string;
  publishers: number;
  subscribers: number;
  filter: string;
  topic: (publisherIndex: number) => string;
  /** Deliveries allowed in flight through the broker at once. */
  windowDeliveries: number;
}

async function closedLoopFlood(context: ScenarioContext, shape: FloodShape): Promise<{ deliveriesPerSecond: number; lossPercent: number }> {
  const subscribers = await openClients(context, `${shape.prefix}-sub`, shape.subscribers, { expectedPayloadBytes: context.payloadBytes });
  const publisherClients: BenchClient[] = [];
  try {
    await Promise.all(subscribers.map((subscriber) => subscriber.subscribe(shape.filter, 0, setupTimeoutMs)));
    publisherClients.push(...(await openClients(context, `${shape.prefix}-pub`, shape.publishers)));
    const flow = { received: 0, forgiven: 0, lastProgressMs: Date.now() };
    const sentTotal = (): number => sum(publishers.map((publisher) => publisher.sent));
    const outstanding = (): number => sentTotal() * shape.subscribers - flow.received - flow.forgiven;
    const credit = (): number => (shape.windowDeliveries - outstanding()) / shape.subscribers;
    const limits = { messagesMax: messagesMaxPerPublisher, deadlineMs: Date.now() + warmupMs(context.seconds) + context.seconds * 1_000 + 2_000 };
    const payload = makePayload(context.payloadBytes);
    const publishers = publisherClients.map((client, index) => new FloodPublisher(client, { level: context.level, topic: shape.topic(index), payload, messagesPerBatch }, limits, credit));
    const pumpAll = (): void => {
      for (const publisher of publishers) publisher.pump();
    };
    for (const subscriber of subscribers) {
      subscriber.onPublishes = (count) => {
        flow.received += count;
        flow.lastProgressMs = Date.now();
        pumpAll();
      };
    }
    const watchdog = setInterval(() => {
      if (outstanding() > 0 && Date.now() - flow.lastProgressMs > 500) {
        flow.forgiven += outstanding();
        flow.lastProgressMs = Date.now();
      }
      pumpAll();
    }, 100);
    pumpAll();
    const [deliveriesPerSecond] = await measureRates(context.seconds, [() => flow.received]);
    for (const publisher of publishers) publisher.stop();
    clearInterval(watchdog);
    await settle(() => flow.received);
    assertConnected(subscribers, 'subscriber');
    assertConnected(publisherClients, 'publisher');
    const expected = sentTotal() * shape.subscribers;
    return { deliveriesPerSecond: deliveriesPerSecond!, lossPercent: expected === 0 ? 0 : (Math.max(0, expected - flow.received) / expected) * 100 };
  } finally {
    destroyAll(subscribers);
    destroyAll(publisherClients);
  }
}

/** 8 publishers flooding QoS 0 into one wildcard subscriber, over the context's transport. */
async function fanInFlood(context: ScenarioContext): Promise<Metric[]> {
  const result = await closedLoopFlood(context, {
    prefix: 'fan-in',
    publishers: 8,
    subscribers: 1,
    filter: 'bench/#',
    topic: (index) => `bench/fan-in/${index}`,
    windowDeliveries: 16_384,
  });
  return [
    { name: 'received', unit: 'msg/s', better: 'higher', value: result.deliveriesPerSecond },
    { name: 'QoS 0 loss', unit: '%', better: 'lower', value: result.lossPercent },
  ];
}

const fanIn: Scenario = {
  name: 'fan-in',
  description: '8 publishers QoS 0 -> 1 subscriber on bench/#',
  run: fanInFlood,
};

/** The listener scenarios compare Keel with Mosquitto, configured the same way (peers.ts). */
const listenerPeers = ['keel', 'mosquitto'] as const;

const tlsFanIn: Scenario = {
  name: 'tls-fan-in',
  description: 'fan-in over TLS: 8 publishers QoS 0 -> 1 subscriber, every client on mqtts',
  listener: 'mqtts',
  brokers: listenerPeers,
  run: fanInFlood,
};

const webSocketFanIn: Scenario = {
  name: 'ws-fan-in',
  description: 'fan-in over WebSocket: 8 publishers QoS 0 -> 1 subscriber, every client on ws (Mosquitto: protocol websockets)',
  listener: 'ws',
  brokers: listenerPeers,
  run: fanInFlood,
};

const fanOut: Scenario = {
  name: 'fan-out',
  description: '1 publisher QoS 0 -> 50 subscribers on one topic',
  async run(context) {
    const result = await closedLoopFlood(context, {
      prefix: 'fan-out',
      publishers: 1,
      subscribers: 50,
      filter: 'bench/fan-out',
      topic: () => 'bench/fan-out',
      windowDeliveries: 50 * 2_048,
    });
    return [
      { name: 'deliveries', unit: 'msg/s', better: 'higher', value: result.deliveriesPerSecond },
      { name: 'QoS 0 loss', unit: '%', better: 'lower', value: result.lossPercent },
    ];
  },
};

const qos1: Scenario = {
  name: 'qos1',
  description: '4 publishers QoS 1 (100 unacknowledged each) -> 1 QoS 1 subscriber that PUBACKs',
  async run(context) {
    const subscriber = await openClient(context, 'qos1-sub', { acknowledge: true, expectedPayloadBytes: context.payloadBytes });
    const publisherClients: BenchClient[] = [];
    try {
      await subscriber.subscribe('bench/qos1/#', 1, setupTimeoutMs);
      publisherClients.push(...(await openClients(context, 'qos1-pub', 4)));
      const limits = { messagesMax: messagesMaxPerPublisher, deadlineMs: Date.now() + warmupMs(context.seconds) + context.seconds * 1_000 + 2_000 };
      const payload = makePayload(context.payloadBytes);
      const publishers = publisherClients.map((client, index) => new WindowPublisher(client, { level: context.level, topic: `bench/qos1/${index}`, payload, window: 100 }, limits));
      for (const publisher of publishers) publisher.pump();
      const [acknowledgedPerSecond, deliveredPerSecond] = await measureRates(context.seconds, [() => sum(publishers.map((publisher) => publisher.acknowledged)), () => subscriber.publishesReceived]);
      for (const publisher of publishers) publisher.stop();
      await settle(() => subscriber.publishesReceived);
      assertConnected([subscriber], 'subscriber');
      assertConnected(publisherClients, 'publisher');
      // Every acknowledged publish is owed to the subscriber; what has not arrived once deliveries
      // go quiet (3 s at most) is a backlog the broker was still holding, or lost.
      const backlog = sum(publishers.map((publisher) => publisher.acknowledged)) - subscriber.publishesReceived;
      return [
        { name: 'acknowledged publishes', unit: 'msg/s', better: 'higher', value: acknowledgedPerSecond! },
        { name: 'delivered', unit: 'msg/s', better: 'higher', value: deliveredPerSecond! },
        { name: 'undelivered after settling', unit: 'msg', better: 'lower', value: Math.max(0, backlog) },
      ];
    } finally {
      subscriber.destroy();
      destroyAll(publisherClients);
    }
  },
};

/**
 * One publisher paced at `--rate`, one subscriber, publish-to-receive latency. At QoS 1 both ends
 * acknowledge (the publisher reads the broker's PUBACKs, the subscriber answers each delivery), so
 * the broker's QoS 1 bookkeeping on both sides is in every sample.
 */
function pacedLatency(name: string, qos: 0 | 1): Scenario {
  return {
    name,
    description: `1 publisher paced QoS ${qos} -> 1 subscriber (QoS ${qos}); publish->receive latency`,
    allowanceMs: (context) => 30_000 + context.latencyWarmupSeconds * 1_000,
    async run(context) {
      const recorder = new LatencyRecorder(Math.ceil(context.rateMessagesPerSecond * (context.seconds + 1)) + 1_000);
      const subscriber = await openClient(context, `${name}-sub`, { latency: recorder, acknowledge: qos > 0 });
      let publisherClient: BenchClient | null = null;
      try {
        await subscriber.subscribe('bench/latency', qos, setupTimeoutMs);
        publisherClient = await openClient(context, `${name}-pub`);
        const warmup = context.latencyWarmupSeconds * 1_000;
        const limits = {
          messagesMax: Math.ceil(context.rateMessagesPerSecond * (context.seconds + warmup / 1_000 + 1)),
          deadlineMs: Date.now() + warmup + context.seconds * 1_000 + 1_000,
        };
        const payload = makePayload(Math.max(8, context.payloadBytes));
        const publisher = new PacedPublisher(publisherClient, { level: context.level, topic: 'bench/latency', payload, qos }, context.rateMessagesPerSecond, limits);
        publisher.start();
        await sleep(warmup);
        recorder.recording = true;
        await sleep(context.seconds * 1_000);
        recorder.recording = false;
        publisher.stop();
        assertConnected([subscriber, publisherClient], 'client');
        const samples = recorder.samplesNs.slice(0, recorder.count).sort();
        if (samples.length === 0) throw new Error('no message arrived during the measurement window');
        const metrics: Metric[] = [
          { name: 'p50', unit: 'µs', better: 'lower', value: percentile(samples, 0.5) / 1_000 },
          { name: 'p99', unit: 'µs', better: 'lower', value: percentile(samples, 0.99) / 1_000 },
          { name: 'p99.9', unit: 'µs', better: 'lower', value: percentile(samples, 0.999) / 1_000 },
          { name: 'samples', unit: 'count', better: 'info', value: samples.length },
        ];
        if (qos > 0) metrics.push({ name: 'PUBACKs received by the publisher', unit: 'count', better: 'info', value: publisherClient.pubacksReceived });
        return metrics;
      } finally {
        subscriber.destroy();
        publisherClient?.destroy();
      }
    },
  };
}

const latency = pacedLatency('latency', 0);
const latencyQos1 = pacedLatency('latency-qos1', 1);

/** When the idle scenario takes its first reading, after the broker accepts connections. */
const idleFirstReadingMs = 3_000;

/**
 * A broker with no client at all, Keel in its default configuration (admin listener included): its memory 3 s after it listens and again after `idleSeconds`
 * (V8's memory reducer gives back part of a Node process's start-up heap after 10 to 20 s of
 * quiet), RSS with its anonymous and file-backed parts apart, and for the Node brokers the live
 * V8 heap at the end. An empty `node` process started at the same moment is read alongside, as
 * the floor no Node broker can go under on this machine.
 */
const idle: Scenario = {
  name: 'idle',
  description: 'no clients: RSS (anonymous and file-backed) 3 s after listening and after --idle-seconds, live V8 heap; an empty node process alongside',
  // As `keel serve` runs by default: with its admin listener (/metrics, the API), here on a port
  // the system chooses so that parallel runs do not collide.
  keelConfig: { admin: { host: '127.0.0.1', port: 0 } },
  floor: true,
  allowanceMs: (context) => 30_000 + context.idleSeconds * 1_000,
  async run(context) {
    const bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], { stdio: 'ignore' });
    try {
      await sleep(idleFirstReadingMs);
      const first = context.memory();
      const bareFirst = bare.pid === undefined ? null : readProcessMemory(bare.pid);
      await sleep(Math.max(0, context.idleSeconds * 1_000 - idleFirstReadingMs));
      const last = context.memory();
      const bareLast = bare.pid === undefined ? null : readProcessMemory(bare.pid);
      const heap = await context.heap();
      return [
        ...memoryMetrics(`at ${idleFirstReadingMs / 1_000} s`, first),
        ...memoryMetrics(`at ${context.idleSeconds} s`, last),
        ...(heap === null
          ? []
          : [
              { name: `V8 heap used at ${context.idleSeconds} s`, unit: 'MiB', better: 'lower' as const, value: heap.heapUsedBytes / mebibyte },
              { name: `V8 heap committed at ${context.idleSeconds} s`, unit: 'MiB', better: 'lower' as const, value: heap.heapTotalBytes / mebibyte },
            ]),
        ...(bareFirst === null || bareLast === null
          ? []
          : [
              { name: `empty node process RSS at ${idleFirstReadingMs / 1_000} s`, unit: 'MiB', better: 'info' as const, value: bareFirst.rssBytes / mebibyte },
              { name: `empty node process RSS at ${context.idleSeconds} s`, unit: 'MiB', better: 'info' as const, value: bareLast.rssBytes / mebibyte },
            ]),
      ];
    } finally {
      bare.kill('SIGKILL');
    }
  },
};

function memoryMetrics(when: string, memory: ProcessMemory): Metric[] {
  return [
    { name: `RSS ${when}`, unit: 'MiB', better: 'lower', value: memory.rssBytes / mebibyte },
    { name: `anonymous RSS ${when}`, unit: 'MiB', better: 'lower', value: memory.anonymousBytes / mebibyte },
    { name: `file-backed RSS ${when}`, unit: 'MiB', better: 'lower', value: memory.fileBytes / mebibyte },
  ];
}

/** Sockets the idle-connections scenario leaves free below the open-files limit (for the rest). */
const openFilesHeadroom = 256;

/** How many idle connections can be opened here: the asked count, capped by the fd limit. */
export function idleConnectionCount(asked: number): number {
  const limit = openFilesLimit();
  return limit === null ? asked : Math.max(1, Math.min(asked, limit - openFilesHeadroom));
}

/** Handshakes the idle-connections scenario keeps in flight at once. */
const idleConcurrency = 100;

const idleConnections: Scenario = {
  name: 'idle-connections',
  description: 'open N idle connections (keepalive 0); CONNACK rate (cold and warm) and broker RSS per connection',
  floor: true,
  // Tens of thousands of handshakes (the warm-up batch too) on a slow or busy machine.
  allowanceMs: () => 120_000,
  run: (context) => connectionStorm(context, idleConnectionCount(context.connections), context.connectWarmupConnections, 'connect rate'),
};

const tlsHandshakes: Scenario = {
  name: 'tls-handshakes',
  description: 'open N new TLS connections (a full handshake and a CONNECT each, 100 in flight); rate cold and warm, RSS per idle TLS connection',
  listener: 'mqtts',
  brokers: listenerPeers,
  allowanceMs: () => 120_000,
  run: (context) => connectionStorm(context, idleConnectionCount(context.tlsConnections), context.tlsWarmupConnections, 'handshake rate'),
};

/** Handshakes in flight while the resume-storm scenario creates its sessions. */
const sessionSetupConcurrency = 100;

const resumeStorm: Scenario = {
  name: 'resume-storm',
  description: 'N persistent sessions, one QoS 1 subscription each; restart the broker; every client resumes at once (clean start 0, session present 1): recovery time, rate, CPU',
  brokers: ['keel', 'mosquitto'],
  persistence: true,
  allowanceMs: () => 180_000,
  run: async (context) => {
    const count = idleConnectionCount(context.connections);
    const clientIdPrefix = `${clientId('resume')}-`;
    // The sessions, each subscribed (a SUBACK counts it), then every connection dropped: the
    // sessions stay, as after a crash of the clients' network.
    const created = await IdleConnections.open({ ...batchOptions(context, clientIdPrefix, count, sessionSetupConcurrency), persistent: { subscribe: true, expectSessionPresent: false } });
    created.resetAll();
    await sleep(1_000);
    const restartMs = await context.restartBroker();
    await sleep(300);
    const rssBeforeBytes = context.rssBytes();
    const cpuBefore = context.cpuSplitMicros();
    const startNs = process.hrtime.bigint();
    const resumed = await IdleConnections.open({ ...batchOptions(context, clientIdPrefix, count, context.connectConcurrency), persistent: { subscribe: false, expectSessionPresent: true } });
    const elapsedSeconds = Number(process.hrtime.bigint() - startNs) / 1e9;
    const cpuAfter = context.cpuSplitMicros();
    try {
      await sleep(1_000);
      const rssAfterBytes = context.rssBytes();
      resumed.assertOpen();
      const brokerUserMicros = cpuAfter.userMicros - cpuBefore.userMicros;
      const brokerSystemMicros = cpuAfter.systemMicros - cpuBefore.systemMicros;
      const timed = { batch: resumed, ratePerSecond: count / elapsedSeconds, brokerCpuMicros: brokerUserMicros + brokerSystemMicros, brokerUserMicros, brokerSystemMicros };
      return [
        { name: 'sessions', unit: 'count', better: 'info', value: count },
        { name: 'restart to listening', unit: 'ms', better: 'lower', value: restartMs },
        { name: 'RSS after restart', unit: 'MiB', better: 'lower', value: rssBeforeBytes / mebibyte },
        ...stormMetrics('resume rate', context.connectConcurrency === idleConcurrency ? '' : `, ${context.connectConcurrency} in flight`, timed, count),
        { name: 'RSS with all resumed', unit: 'MiB', better: 'lower', value: rssAfterBytes / mebibyte },
      ];
    } finally {
      resumed.resetAll();
    }
  },
};

function batchOptions(context: ScenarioContext, clientIdPrefix: string, count: number, concurrency: number) {
  return { port: context.port, level: context.level, concurrency, stallTimeoutMs: setupTimeoutMs, clientIdPrefix, count, transport: context.transport };
}

/**
 * Opens `warmupCount` connections (timed: the cold rate) and resets them, then `count` more
 * (timed: the warm rate) that stay open and idle while the broker's RSS is read; over the
 * context's transport, so a TLS run times full handshakes.
 */
async function connectionStorm(context: ScenarioContext, count: number, warmupAsked: number, rateName: string): Promise<Metric[]> {
  await sleep(300);
  // Before the warm-up: what the warm-up leaves behind (compiled code, a grown heap) is the
  // broker's cost of serving connections too, so it counts in the figure per connection.
  const memoryBefore = context.memory();
  const rssBeforeBytes = memoryBefore.rssBytes;
  const metrics: Metric[] = [
    { name: 'connections', unit: 'count', better: 'info', value: count },
    // The same moment for every broker: 300 ms after its port first accepted a connection.
    { name: 'RSS at start', unit: 'MiB', better: 'lower', value: rssBeforeBytes / mebibyte },
    { name: 'anonymous RSS at start', unit: 'MiB', better: 'lower', value: memoryBefore.anonymousBytes / mebibyte },
  ];
  const warmupCount = Math.min(warmupAsked, count);
  if (warmupCount > 0) {
    const warmup = await openIdleTimed(context, 'warmup', warmupCount, idleConcurrency);
    warmup.batch.resetAll();
    metrics.push(...stormMetrics(rateName, `, first ${warmupCount} (cold)`, warmup, warmupCount));
    // Time for the broker to see every reset and close those sockets before the timed batch.
    await sleep(1_000);
  }
  // RSS is read again after the warm-up: what the warm-up left (compiled code, a grown heap, the
  // allocator's free lists) is a one-off cost that "RSS per connection" spreads over the count;
  // "after the warm-up" is what each further connection adds. The heap (Node brokers) is read
  // then too, with a full collection, and again with every connection open: the live bytes each
  // connection holds, without the warm-up's garbage.
  const anonymousBeforeBytes = memoryBefore.anonymousBytes;
  const heapBefore = await context.heap();
  // After the collection that reading made (Node brokers): the baseline holds no warm-up garbage.
  const afterWarmup = context.memory();
  const idle = await openIdleTimed(context, 'idle', count, context.connectConcurrency);
  try {
    await sleep(1_000);
    const after = context.memory();
    const heapAfter = await context.heap();
    idle.batch.assertOpen();
    return [
      ...metrics,
      ...stormMetrics(rateName, context.connectConcurrency === idleConcurrency ? '' : `, ${context.connectConcurrency} in flight`, idle, count),
      { name: 'RSS per connection', unit: 'KiB', better: 'lower', value: (after.rssBytes - rssBeforeBytes) / count / 1024 },
      { name: 'anonymous RSS per connection', unit: 'KiB', better: 'lower', value: (after.anonymousBytes - anonymousBeforeBytes) / count / 1024 },
      { name: 'RSS per connection after the warm-up', unit: 'KiB', better: 'lower', value: (after.rssBytes - afterWarmup.rssBytes) / count / 1024 },
      ...heapPerConnection(heapBefore, heapAfter, count),
      { name: 'RSS with all connected', unit: 'MiB', better: 'lower', value: after.rssBytes / mebibyte },
    ];
  } finally {
    idle.batch.resetAll();
  }
}

/** Live heap bytes per connection (Node brokers; none for Mosquitto, whose heap is its anonymous RSS). */
function heapPerConnection(before: HeapReading | null, after: HeapReading | null, count: number): Metric[] {
  if (before === null || after === null) return [];
  return [
    { name: 'V8 heap used per connection', unit: 'B', better: 'lower', value: (after.heapUsedBytes - before.heapUsedBytes) / count },
    { name: 'V8 heap committed per connection', unit: 'B', better: 'lower', value: (after.heapTotalBytes - before.heapTotalBytes) / count },
  ];
}

interface TimedBatch {
  batch: IdleConnections;
  ratePerSecond: number;
  brokerCpuMicros: number;
  brokerUserMicros: number;
  brokerSystemMicros: number;
}

/**
 * The rate, CONNACK latency (socket opened to CONNACK read, as the generator saw it) and what the
 * broker itself spent per connection, user and system apart, whoever set the pace (the generator
 * shares the cores).
 */
function stormMetrics(rateName: string, suffix: string, timed: TimedBatch, count: number): Metric[] {
  const latencies = Float64Array.from(timed.batch.connackLatenciesMs).sort();
  const at = (fraction: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * fraction))] ?? 0;
  return [
    { name: `${rateName}${suffix}`, unit: 'CONNACK/s', better: 'higher', value: timed.ratePerSecond },
    { name: `CONNACK latency p50${suffix}`, unit: 'ms', better: 'lower', value: at(0.5) },
    { name: `CONNACK latency p99${suffix}`, unit: 'ms', better: 'lower', value: at(0.99) },
    { name: `broker CPU per connection${suffix}`, unit: 'µs', better: 'lower', value: timed.brokerCpuMicros / count },
    { name: `broker user CPU per connection${suffix}`, unit: 'µs', better: 'lower', value: timed.brokerUserMicros / count },
    { name: `broker system CPU per connection${suffix}`, unit: 'µs', better: 'lower', value: timed.brokerSystemMicros / count },
  ];
}

/** Opens `count` idle connections, `concurrency` at a time, and measures how fast they were all accepted, and the broker's CPU for them. */
async function openIdleTimed(context: ScenarioContext, prefix: string, count: number, concurrency: number): Promise<TimedBatch> {
  const cpuBefore = context.cpuSplitMicros();
  const startNs = process.hrtime.bigint();
  const batch = await IdleConnections.open({
    port: context.port,
    level: context.level,
    concurrency,
    stallTimeoutMs: setupTimeoutMs,
    clientIdPrefix: `${clientId(prefix)}-`,
    count,
    transport: context.transport,
  });
  const elapsedSeconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  const cpuAfter = context.cpuSplitMicros();
  const brokerUserMicros = cpuAfter.userMicros - cpuBefore.userMicros;
  const brokerSystemMicros = cpuAfter.systemMicros - cpuBefore.systemMicros;
  return { batch, ratePerSecond: count / elapsedSeconds, brokerCpuMicros: brokerUserMicros + brokerSystemMicros, brokerUserMicros, brokerSystemMicros };
}

async function stalledSubscriber(context: ScenarioContext, qos: 0 | 1): Promise<Metric[]> {
  const healthy = await openClient(context, `stall${qos}-ok`, { acknowledge: qos === 1, expectedPayloadBytes: context.payloadBytes });
  const clients: BenchClient[] = [healthy];
  try {
    const stalled = await openClient(context, `stall${qos}-stuck`);
    clients.push(stalled);
    await Promise.all(clients.map((client) => client.subscribe('bench/stall', qos, setupTimeoutMs)));
    // From here on the stalled subscriber never reads: the broker must hold or drop its share.
    stalled.socket.pause();
    const publisherClient = await openClient(context, `stall${qos}-pub`);
    clients.push(publisherClient);
    const rssStartBytes = context.rssBytes();
    const limits = { messagesMax: messagesMaxPerPublisher, deadlineMs: Date.now() + context.seconds * 1_000 };
    const options = { level: context.level, topic: 'bench/stall', payload: makePayload(context.payloadBytes) };
    const publisher = qos === 0 ? new FloodPublisher(publisherClient, { ...options, messagesPerBatch }, limits) : new WindowPublisher(publisherClient, { ...options, window: 100 }, limits);
    const published = (): number => (publisher instanceof WindowPublisher ? publisher.acknowledged : publisher.sent);
    const startNs = process.hrtime.bigint();
    publisher.pump();
    const peak = await sampleRss(context, limits.deadlineMs);
    publisher.stop();
    const elapsedSeconds = Number(process.hrtime.bigint() - startNs) / 1e9;
    assertConnected([healthy, publisherClient], 'healthy client');
    return [
      { name: 'peak RSS', unit: 'MiB', better: 'lower', value: peak.rssPeakBytes / mebibyte },
      { name: 'RSS growth', unit: 'MiB', better: 'lower', value: (peak.rssPeakBytes - rssStartBytes) / mebibyte },
      { name: 'healthy subscriber', unit: 'msg/s', better: 'higher', value: healthy.publishesReceived / elapsedSeconds },
      { name: qos === 0 ? 'published' : 'acknowledged publishes', unit: 'msg/s', better: 'higher', value: published() / elapsedSeconds },
      { name: 'stalled subscriber dropped by broker', unit: '0/1', better: 'info', value: stalled.closed ? 1 : 0 },
      { name: 'stopped early at 4 GiB', unit: '0/1', better: 'info', value: peak.aborted ? 1 : 0 },
    ];
  } finally {
    destroyAll(clients);
  }
}

/** Samples the broker's RSS every 250 ms until the deadline (or the abort threshold). */
async function sampleRss(context: ScenarioContext, deadlineMs: number): Promise<{ rssPeakBytes: number; aborted: boolean }> {
  let rssPeakBytes = context.rssBytes();
  while (Date.now() < deadlineMs) {
    await sleep(Math.min(250, Math.max(1, deadlineMs - Date.now())));
    rssPeakBytes = Math.max(rssPeakBytes, context.rssBytes());
    if (rssPeakBytes > rssAbortBytes) return { rssPeakBytes, aborted: true };
  }
  return { rssPeakBytes, aborted: false };
}

const stalledQos0: Scenario = {
  name: 'stalled-qos0',
  description: '1 publisher floods QoS 0 -> 2 subscribers, one never reads; broker RSS and healthy rate',
  run: (context) => stalledSubscriber(context, 0),
};

const stalledQos1: Scenario = {
  name: 'stalled-qos1',
  description: '1 publisher QoS 1 (100 unacknowledged) -> 2 QoS 1 subscribers, one never reads',
  run: (context) => stalledSubscriber(context, 1),
};

export const scenarios: readonly Scenario[] = [fanIn, fanOut, qos1, latency, latencyQos1, idle, idleConnections, resumeStorm, stalledQos0, stalledQos1, tlsFanIn, tlsHandshakes, webSocketFanIn];
