/**
 * The cluster's figures (README "Cluster"): what the NATS hop costs and what two nodes buy.
 *
 *   node dist/bench/cluster-bench.js [--seconds 5] [--payload 64] [--subscribers 50] [--wide 200] [--runs 1]
 *                                    [--only fan-in|fan-out|qos1|wide]
 *
 * `--only` runs one scenario (to profile it: KEEL_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR'
 * makes every node write a profile; nodes are then stopped with SIGTERM so that they can write it).
 *
 * Each run starts a fresh `nats-server -js` (temporary store) and fresh `keel serve` child
 * processes (syncPolicy none for QoS 0 and the default for QoS 1, in-memory footing as in
 * bench/load), and the load generator of bench/load (bare sockets, closed loop) in this process:
 *
 * - fan-in QoS 0: 10 publishers → 1 subscriber; single node (all on A) vs cluster (publishers on A,
 *   subscriber on B): delivered messages per second and their ratio;
 * - fan-out QoS 0: 1 publisher → `--subscribers` subscribers; single vs cluster (subscribers on B);
 * - QoS 1 across nodes: one publisher with a window of 100 unacknowledged → 1 subscriber that
 *   acknowledges; single vs cluster (PUBACK waits for A's log and the JetStream acknowledgement);
 * - CPU per message of the NATS hop: the CPU time (user + system, /proc/<pid>/stat) of every
 *   broker-side process (Keel nodes and nats-server) per delivered message, cluster minus single;
 * - wide fan-out: 2 publishers → `--wide` subscribers, a load bounded by one node's CPU; single
 *   (all on A) vs two nodes (one publisher and half the subscribers on each).
 *
 * Honesty: the machine has 2 cores, shared by the load generator, nats-server and every node. A
 * figure here is what this machine does, not what the cluster scales to; the README derives the
 * expected scaling on more cores from the per-message costs, and says how.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BenchClient } from './load/client.js';
import { startNats, until } from './load/nats-peer.js';
import { encodePublish } from './load/packets.js';
import { freePort, readCpuMicros, spawnKeelServe } from './load/peers.js';
import { FloodPublisher, makePayload, WindowPublisher } from './load/publishers.js';

interface Options {
  seconds: number;
  payloadBytes: number;
  subscribers: number;
  wide: number;
  runs: number;
  only: Scenario | null;
}

const scenarios = ['fan-in', 'fan-out', 'qos1', 'wide'] as const;
type Scenario = (typeof scenarios)[number];

interface Process {
  readonly child: ChildProcess;
  readonly port: number;
}

interface Measure {
  delivered: number;
  /** Deliveries that were owed and never came (QoS 0 may be dropped under load; counted, not hidden). */
  lost: number;
  seconds: number;
  cpuMicros: number;
  /** The same CPU split per broker-side process, in start order (nats-server first when clustered). */
  cpuMicrosPerProcess: number[];
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function parseOptions(argv: string[]): Options {
  const options: Options = { seconds: 5, payloadBytes: 64, subscribers: 50, wide: 200, runs: 1, only: null };
  for (let index = 0; index < argv.length; index += 2) {
    const key = argv[index]!.replace(/^--/, '');
    if (key === 'only') {
      const name = argv[index + 1] as Scenario;
      if (!scenarios.includes(name)) throw new Error(`--only needs one of ${scenarios.join(', ')}`);
      options.only = name;
      continue;
    }
    const value = Number(argv[index + 1]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`--${key} needs a positive number`);
    if (key === 'seconds') options.seconds = value;
    else if (key === 'payload') options.payloadBytes = value;
    else if (key === 'subscribers') options.subscribers = value;
    else if (key === 'wide') options.wide = value;
    else if (key === 'runs') options.runs = value;
    else throw new Error(`unknown option --${key}`);
  }
  return options;
}

/** A `keel serve` child; with `natsPort` a cluster node that is up only once its link is. */
async function startKeel(directory: string, name: string, natsPort: number | null, syncPolicy: string): Promise<Process> {
  const port = await freePort();
  const configFile = join(directory, `${name}.json`);
  writeFileSync(configFile, JSON.stringify({ syncPolicy, queuedMessagesPerSessionMax: 10_000 }));
  const cluster = natsPort === null ? [] : ['--cluster', `nats://127.0.0.1:${natsPort}`, '--node-id', name];
  const { child, output } = spawnKeelServe(['--port', String(port), '--data-dir', join(directory, name), '--config', configFile, '--no-admin', ...cluster]);
  children.add(child);
  await until(() => output().includes('"event":"listening"'), `${name} listening`);
  if (natsPort !== null) await until(() => output().includes('"event":"cluster-link-up"'), `${name} cluster link`);
  return { child, port };
}

/**
 * Stops the children: at once (SIGKILL), or, when the nodes write CPU profiles, in an orderly way
 * (SIGTERM, then SIGKILL after 10 s) so that they can.
 */
async function stop(processes: Process[]): Promise<void> {
  const orderly = (process.env.KEEL_BENCH_NODE_ARGS ?? '').includes('--cpu-prof');
  for (const { child } of processes) {
    if (orderly && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    }
    child.kill('SIGKILL');
    children.delete(child);
  }
}

function cpuOf(brokers: Process[]): number[] {
  return brokers.map((broker) => readCpuMicros(broker.child.pid!));
}

function minus(after: number[], before: number[]): number[] {
  return after.map((value, index) => value - before[index]!);
}

/** Subscribers on `port` to `filter`, at `qos`, acknowledging QoS 1. */
async function subscribers(port: number, count: number, prefix: string, filter: string, qos: 0 | 1): Promise<BenchClient[]> {
  const clients: BenchClient[] = [];
  for (let index = 0; index < count; index++) {
    const client = await BenchClient.open({ port, clientId: `${prefix}-${index}`, level: 4, acknowledge: qos === 1 }, 10_000);
    await client.subscribe(filter, qos, 10_000);
    clients.push(client);
  }
  return clients;
}

function received(clients: BenchClient[]): number {
  let total = 0;
  for (const client of clients) total += client.publishesReceived;
  return total;
}

/**
 * QoS 0 floods from `publisherPorts` (one publisher per entry) to the subscribers, closed loop:
 * each publisher may be at most `window` messages ahead of what every subscriber has received.
 */
async function floodQos0(publisherPorts: number[], subscriberPorts: number[], options: Options, brokers: Process[], window: number): Promise<Measure> {
  const subscribed: BenchClient[][] = [];
  for (let index = 0; index < subscriberPorts.length; index++) subscribed.push(await subscribers(subscriberPorts[index]!, 1, `s${index}`, 'bench/flood', 0));
  const all = subscribed.flat();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const payload = makePayload(options.payloadBytes);
  const deadlineMs = Date.now() + options.seconds * 1_000;
  const publishers: FloodPublisher[] = [];
  const perSubscriber = (): number => received(all) / all.length;
  const cpuBefore = cpuOf(brokers);
  const startMs = Date.now();
  for (let index = 0; index < publisherPorts.length; index++) {
    const client = await BenchClient.open({ port: publisherPorts[index]!, clientId: `p${index}`, level: 4 }, 10_000);
    const publisher = new FloodPublisher(
      client,
      { level: 4, topic: 'bench/flood', payload, messagesPerBatch: 16 },
      { messagesMax: Number.MAX_SAFE_INTEGER, deadlineMs },
      () => window - (totalSent() - perSubscriber()),
    );
    publishers.push(publisher);
  }
  function totalSent(): number {
    return publishers.reduce((sum, publisher) => sum + publisher.sent, 0);
  }
  const timer = setInterval(() => {
    for (const publisher of publishers) publisher.pump();
  }, 1);
  for (const publisher of publishers) publisher.pump();
  await new Promise((resolve) => setTimeout(resolve, options.seconds * 1_000));
  clearInterval(timer);
  const seconds = (Date.now() - startMs) / 1_000;
  const delivered = received(all);
  const cpuMicrosPerProcess = minus(cpuOf(brokers), cpuBefore);
  // What is still in flight arrives within a second; what has not by then was dropped.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const lost = totalSent() * all.length - received(all);
  for (const client of all) client.destroy();
  return { delivered, lost, seconds, cpuMicros: sum(cpuMicrosPerProcess), cpuMicrosPerProcess };
}

/** One QoS 1 publisher with `window` unacknowledged, to one acknowledging subscriber. */
async function windowQos1(publisherPort: number, subscriberPort: number, options: Options, brokers: Process[]): Promise<Measure> {
  const [subscriber] = await subscribers(subscriberPort, 1, 'q1s', 'bench/qos1', 1);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const client = await BenchClient.open({ port: publisherPort, clientId: 'q1p', level: 4 }, 10_000);
  const cpuBefore = cpuOf(brokers);
  const startMs = Date.now();
  const publisher = new WindowPublisher(
    client,
    { level: 4, topic: 'bench/qos1', payload: makePayload(options.payloadBytes), window: 100 },
    { messagesMax: Number.MAX_SAFE_INTEGER, deadlineMs: startMs + options.seconds * 1_000 },
  );
  publisher.pump();
  await new Promise((resolve) => setTimeout(resolve, options.seconds * 1_000));
  const seconds = (Date.now() - startMs) / 1_000;
  const cpuMicrosPerProcess = minus(cpuOf(brokers), cpuBefore);
  const delivered = subscriber!.publishesReceived;
  subscriber!.destroy();
  client.destroy();
  return { delivered, lost: 0, seconds, cpuMicros: sum(cpuMicrosPerProcess), cpuMicrosPerProcess };
}

/** Starts what a scenario needs, runs it, stops everything. */
async function withBrokers(clustered: boolean, syncPolicy: string, body: (nodes: Process[], all: Process[]) => Promise<Measure>): Promise<Measure> {
  const directory = mkdtempSync(join(tmpdir(), 'keel-cluster-bench-'));
  const started: Process[] = [];
  try {
    const nats = clustered ? await startNats(directory, children) : null;
    if (nats !== null) started.push(nats);
    const nodes = [await startKeel(directory, 'a', nats?.port ?? null, syncPolicy)];
    if (clustered) nodes.push(await startKeel(directory, 'b', nats!.port, syncPolicy));
    started.push(...nodes);
    return await body(nodes, started);
  } finally {
    await stop(started);
    rmSync(directory, { recursive: true, force: true });
  }
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

function rate(measure: Measure): number {
  return measure.delivered / measure.seconds;
}

function cpuPerMessage(measure: Measure): number {
  return measure.delivered === 0 ? 0 : measure.cpuMicros / measure.delivered;
}

function line(name: string, single: Measure, cluster: Measure): string {
  const ratio = rate(single) === 0 ? 0 : rate(cluster) / rate(single);
  const hop = cpuPerMessage(cluster) - cpuPerMessage(single);
  const lost = single.lost + cluster.lost === 0 ? '' : `  lost ${single.lost} / ${cluster.lost}`;
  // Each clustered process's share of one core: which of them is the bottleneck, if any.
  const shares = cluster.cpuMicrosPerProcess.map((micros) => `${Math.round((micros / (cluster.seconds * 1_000_000)) * 100)}%`);
  const load = `  cores nats/A/B ${shares.join('/')}`;
  return `${name.padEnd(34)} ${Math.round(rate(single)).toString().padStart(10)} ${Math.round(rate(cluster)).toString().padStart(10)} ${ratio.toFixed(2).padStart(6)}x ${cpuPerMessage(single).toFixed(1).padStart(9)} ${cpuPerMessage(cluster).toFixed(1).padStart(9)} ${hop.toFixed(1).padStart(9)}${load}${lost}`;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  // The encoder is checked once so that a broken build fails before minutes of load.
  if (encodePublish({ level: 4, topic: 't', payload: makePayload(1), qos: 0 }).length === 0) throw new Error('encoder broken');
  console.log(`cluster bench: ${options.seconds} s per figure, ${options.payloadBytes}-byte payloads, node ${process.version}, ${(await import('node:os')).cpus().length} cores`);
  console.log(`${'scenario'.padEnd(34)} ${'single/s'.padStart(10)} ${'cluster/s'.padStart(10)} ${'ratio'.padStart(7)} ${'µs/msg 1'.padStart(9)} ${'µs/msg 2'.padStart(9)} ${'hop µs'.padStart(9)}`);
  const runs = (scenario: Scenario): boolean => options.only === null || options.only === scenario;
  for (let run = 0; run < options.runs; run++) {
    if (runs('fan-in')) {
      const fanInSingle = await withBrokers(false, 'none', ([a], all) => floodQos0(Array(10).fill(a!.port), [a!.port], options, all, 4_096));
      const fanInCluster = await withBrokers(true, 'none', ([a, b], all) => floodQos0(Array(10).fill(a!.port), [b!.port], options, all, 4_096));
      console.log(line('fan-in QoS 0 (10 → 1)', fanInSingle, fanInCluster));
    }
    if (runs('fan-out')) {
      const fanOutSingle = await withBrokers(false, 'none', ([a], all) => floodQos0([a!.port], Array(options.subscribers).fill(a!.port), options, all, 512));
      const fanOutCluster = await withBrokers(true, 'none', ([a, b], all) => floodQos0([a!.port], Array(options.subscribers).fill(b!.port), options, all, 512));
      console.log(line(`fan-out QoS 0 (1 → ${options.subscribers})`, fanOutSingle, fanOutCluster));
    }
    if (runs('qos1')) {
      const qos1Single = await withBrokers(false, 'interval', ([a], all) => windowQos1(a!.port, a!.port, options, all));
      const qos1Cluster = await withBrokers(true, 'interval', ([a, b], all) => windowQos1(a!.port, b!.port, options, all));
      console.log(line('QoS 1 across nodes (window 100)', qos1Single, qos1Cluster));
    }
    if (runs('wide')) {
      const wideSingle = await withBrokers(false, 'none', ([a], all) => floodQos0([a!.port, a!.port], Array(options.wide).fill(a!.port), options, all, 256));
      const half = Math.floor(options.wide / 2);
      const wideCluster = await withBrokers(true, 'none', ([a, b], all) =>
        floodQos0([a!.port, b!.port], [...Array(half).fill(a!.port), ...Array(options.wide - half).fill(b!.port)], options, all, 256),
      );
      console.log(line(`wide fan-out QoS 0 (2 → ${options.wide}), 2 nodes`, wideSingle, wideCluster));
    }
  }
  console.log('single/s, cluster/s: deliveries per second; µs/msg: CPU of every broker-side process (Keel nodes, nats-server) per delivery; hop: the difference');
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
