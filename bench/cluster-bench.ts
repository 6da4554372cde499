/**
 * The cluster's figures (README "Cluster"): what the NATS hop costs and what two nodes buy.
 *
 *   node dist/bench/cluster-bench.js [--seconds 5] [--payload 64] [--subscribers 50] [--wide 200] [--runs 1]
 *                                    [--only fan-in|fan-out|qos1|qos2|wide|aggregate]
 *                                    [--aggregate-subscribers 200] [--aggregate-window 1024] [--rounds 3]
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
 * - QoS 2 across nodes: the same with QoS 2 publications and a QoS 2 subscription (each exchange
 *   PUBLISH, PUBREC, PUBREL, PUBCOMP on both sides; the PUBREC waits as the PUBACK does, and the
 *   hand-off is logged in A's outbox first);
 * - CPU per message of the NATS hop: the CPU time (user + system, /proc/<pid>/stat) of every
 *   broker-side process (Keel nodes and nats-server) per delivered message, cluster minus single;
 * - wide fan-out: 2 publishers → `--wide` subscribers, a load bounded by one node's CPU; single
 *   (all on A) vs two nodes (one publisher and half the subscribers on each).
 * - aggregate: the load the issue names for "two nodes carry more than one", a CPU-bound fan-out
 *   over many connections: one publisher per node and `--aggregate-subscribers` subscribers per
 *   node (one node: both publishers and all the subscribers on it), so each message crosses NATS
 *   once and is delivered to many subscribers on each node. Its load generator is a process of its
 *   own (load/fanout-worker.ts: counting subscribers, pre-encoded batches, its CPU reported), and
 *   one node and two nodes are measured in turn for `--rounds` rounds (the order alternating), each
 *   line giving deliveries/s and every process's share of a core and CPU per delivery.
 *
 * Honesty: the machine has 2 cores, shared by the load generator, nats-server and every node. A
 * figure here is what this machine does, not what the cluster scales to; the README derives the
 * expected scaling on more cores from the per-message costs, and says how.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BenchClient } from './load/client.js';
import type { FanoutPlan, FanoutResult } from './load/fanout-load.js';
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
  /** The aggregate scenario: subscribers per node, messages in flight, rounds of one node then two. */
  aggregateSubscribers: number;
  aggregateWindow: number;
  rounds: number;
}

const scenarios = ['fan-in', 'fan-out', 'qos1', 'qos2', 'wide', 'aggregate'] as const;
type Scenario = (typeof scenarios)[number];

interface Process {
  readonly child: ChildProcess;
  readonly port: number;
  /** A Keel node's warning lines so far (at most `warningLinesMax`), for those it logged during a run. */
  readonly warnings?: string[];
  /** A Keel node's admin listener (its /metrics). */
  readonly adminPort?: number;
}

/**
 * The non-zero drop counters of a node's /metrics (messages not delivered to a session, QoS 0
 * messages the cluster link dropped), as `name{labels} value` joined; '' when there are none.
 */
async function dropsOf(node: Process): Promise<string> {
  if (node.adminPort === undefined || !Number.isFinite(node.adminPort)) return 'no admin port';
  const text = await (await fetch(`http://127.0.0.1:${node.adminPort}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => /^keel_(cluster_)?messages_dropped_total/.test(line) && !/ 0$/.test(line))
    .map((line) => line.replace(/^keel_/, ''))
    .join(', ');
}

interface Measure {
  delivered: number;
  /** Deliveries that were owed and never came (QoS 0 may be dropped under load; counted, not hidden). */
  lost: number;
  seconds: number;
  cpuMicros: number;
  /** The same CPU split per broker-side process, in start order (nats-server first when clustered). */
  cpuMicrosPerProcess: number[];
  /** CPU µs of this process, the load generator of these scenarios, in the same window. */
  generatorCpuMicros: number;
}

function ownCpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function parseOptions(argv: string[]): Options {
  const options: Options = { seconds: 5, payloadBytes: 64, subscribers: 50, wide: 200, runs: 1, only: null, aggregateSubscribers: 200, aggregateWindow: 1_024, rounds: 3 };
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
    else if (key === 'aggregate-subscribers') options.aggregateSubscribers = value;
    else if (key === 'aggregate-window') options.aggregateWindow = value;
    else if (key === 'rounds') options.rounds = value;
    else throw new Error(`unknown option --${key}`);
  }
  return options;
}

/** Warning lines a node may log before the rest are ignored (a flood of them would be a finding already). */
const warningLinesMax = 1_000;

/**
 * The warning lines of a node's stdout, whole lines only, as they come. spawnKeelServe keeps only
 * the first 64 kB of output, which 400 `client-connected` lines fill before a run starts.
 */
function collectWarnings(child: ChildProcess): string[] {
  const warnings: string[] = [];
  let partial = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) if (line.includes('"level":"warn"') && warnings.length < warningLinesMax) warnings.push(line);
  });
  return warnings;
}

/** A `keel serve` child; with `natsPort` a cluster node that is up only once its link is. */
async function startKeel(directory: string, name: string, natsPort: number | null, syncPolicy: string): Promise<Process> {
  const port = await freePort();
  const configFile = join(directory, `${name}.json`);
  writeFileSync(configFile, JSON.stringify({ syncPolicy, queuedMessagesPerSessionMax: 10_000 }));
  const cluster = natsPort === null ? [] : ['--cluster', `nats://127.0.0.1:${natsPort}`, '--node-id', name];
  // The admin listener (port chosen by the system) serves /metrics, read after a run for its drops.
  const { child, output } = spawnKeelServe(['--port', String(port), '--data-dir', join(directory, name), '--config', configFile, '--admin-port', '0', ...cluster]);
  children.add(child);
  const warnings = collectWarnings(child);
  await until(() => output().includes('"event":"listening"'), `${name} listening`);
  if (natsPort !== null) await until(() => output().includes('"event":"cluster-link-up"'), `${name} cluster link`);
  const adminPort = Number(/"event":"admin-listening"[^\n]*"port":(\d+)/.exec(output())?.[1] ?? Number.NaN);
  return { child, port, warnings, adminPort };
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

/** Subscribers on `port` to `filter`, at `qos`, acknowledging QoS 1 and 2. */
async function subscribers(port: number, count: number, prefix: string, filter: string, qos: 0 | 1 | 2): Promise<BenchClient[]> {
  const clients: BenchClient[] = [];
  for (let index = 0; index < count; index++) {
    const client = await BenchClient.open({ port, clientId: `${prefix}-${index}`, level: 4, acknowledge: qos !== 0 }, 10_000);
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
  const generatorBefore = ownCpuMicros();
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
  const generatorCpuMicros = ownCpuMicros() - generatorBefore;
  // What is still in flight arrives within a second; what has not by then was dropped.
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const lost = totalSent() * all.length - received(all);
  for (const client of all) client.destroy();
  return { delivered, lost, seconds, cpuMicros: sum(cpuMicrosPerProcess), cpuMicrosPerProcess, generatorCpuMicros };
}

/** One QoS 1 (or 2) publisher with `window` unacknowledged, to one acknowledging subscriber at that QoS. */
async function windowQos1(publisherPort: number, subscriberPort: number, options: Options, brokers: Process[], qos: 1 | 2 = 1): Promise<Measure> {
  const [subscriber] = await subscribers(subscriberPort, 1, `q${qos}s`, 'bench/qos1', qos);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const client = await BenchClient.open({ port: publisherPort, clientId: `q${qos}p`, level: 4 }, 10_000);
  const cpuBefore = cpuOf(brokers);
  const generatorBefore = ownCpuMicros();
  const startMs = Date.now();
  const publisher = new WindowPublisher(
    client,
    { level: 4, topic: 'bench/qos1', payload: makePayload(options.payloadBytes), window: 100, qos },
    { messagesMax: Number.MAX_SAFE_INTEGER, deadlineMs: startMs + options.seconds * 1_000 },
  );
  publisher.pump();
  await new Promise((resolve) => setTimeout(resolve, options.seconds * 1_000));
  const seconds = (Date.now() - startMs) / 1_000;
  const cpuMicrosPerProcess = minus(cpuOf(brokers), cpuBefore);
  const generatorCpuMicros = ownCpuMicros() - generatorBefore;
  const delivered = subscriber!.publishesReceived;
  subscriber!.destroy();
  client.destroy();
  return { delivered, lost: 0, seconds, cpuMicros: sum(cpuMicrosPerProcess), cpuMicrosPerProcess, generatorCpuMicros };
}

/** Starts what a scenario needs, runs it, stops everything. */
async function withBrokers<T>(clustered: boolean, syncPolicy: string, body: (nodes: Process[], all: Process[]) => Promise<T>): Promise<T> {
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
  const generatorPerDelivery = cluster.delivered === 0 ? 0 : cluster.generatorCpuMicros / cluster.delivered;
  const generator = `${Math.round((cluster.generatorCpuMicros / (cluster.seconds * 1_000_000)) * 100)}% (${generatorPerDelivery.toFixed(2)} µs/msg)`;
  const load = `  cores nats/A/B ${shares.join('/')}, generator ${generator}`;
  return `${name.padEnd(34)} ${Math.round(rate(single)).toString().padStart(10)} ${Math.round(rate(cluster)).toString().padStart(10)} ${ratio.toFixed(2).padStart(6)}x ${cpuPerMessage(single).toFixed(1).padStart(9)} ${cpuPerMessage(cluster).toFixed(1).padStart(9)} ${hop.toFixed(1).padStart(9)}${load}${lost}`;
}

/** One measurement of the aggregate scenario: the generator's result and which process was which. */
interface AggregateMeasure {
  result: FanoutResult;
  /** Names of `result.watchedCpuMicros`, in order. */
  processes: string[];
  /** Per node, the distinct warning events it logged (a dropped message is counted there). */
  warnings: string[];
  /** Per node, its non-zero drop counters after the run. */
  drops: string[];
}

/** The distinct `event`s of a node's warning lines from the `from`th on, with how many lines each. */
function warningsOf(node: Process, from: number): string {
  const counts = new Map<string, number>();
  for (const line of (node.warnings ?? []).slice(from)) {
    const event = /"event":"([^"]+)"/.exec(line)?.[1] ?? 'unknown';
    counts.set(event, (counts.get(event) ?? 0) + 1);
  }
  return [...counts].map(([event, count]) => `${event} ×${count}`).join(', ');
}

/** Runs the aggregate load generator in its own process and returns what it measured. */
function runFanoutWorker(plan: FanoutPlan): Promise<FanoutResult> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'load', 'fanout-worker.js');
  // No inherited node flags: a profile (KEEL_BENCH_NODE_ARGS) is the nodes', never the generator's.
  const worker = fork(script, [JSON.stringify(plan)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(worker);
  return new Promise<FanoutResult>((resolve, reject) => {
    let answered = false;
    worker.on('message', (message: { result?: FanoutResult; error?: string }) => {
      answered = true;
      if (message.result !== undefined) resolve(message.result);
      else reject(new Error(`load generator: ${message.error}`));
    });
    worker.on('exit', (code) => {
      children.delete(worker);
      if (!answered) reject(new Error(`load generator exited with code ${code} without a result`));
    });
  });
}

/** One node (both publishers, every subscriber on A) or two (one publisher and half on each). */
async function aggregateOnce(clustered: boolean, options: Options): Promise<AggregateMeasure> {
  return withBrokers(clustered, 'none', async (nodes, all) => {
    const perNode = options.aggregateSubscribers;
    const [a, b] = [nodes[0]!, nodes[1] ?? nodes[0]!];
    const plan: FanoutPlan = {
      subscriberPorts: [...Array(perNode).fill(a.port), ...Array(perNode).fill(b.port)],
      publisherPorts: [a.port, b.port],
      topic: 'bench/aggregate',
      payloadBytes: options.payloadBytes,
      windowMessages: options.aggregateWindow,
      messagesPerBatch: 16,
      warmupSeconds: 1,
      seconds: options.seconds,
      watchPids: all.map((process) => process.child.pid!),
    };
    // Only what the nodes log once the load starts (not their start-up lines).
    const logFrom = nodes.map((node) => node.warnings?.length ?? 0);
    const result = await runFanoutWorker(plan);
    const warnings = nodes.map((node, index) => warningsOf(node, logFrom[index]!));
    const drops = await Promise.all(nodes.map(dropsOf));
    return { result, processes: clustered ? ['nats', 'A', 'B'] : ['A'], warnings, drops };
  });
}

function aggregateRate(measure: AggregateMeasure): number {
  return measure.result.delivered / measure.result.seconds;
}

/** One line per measurement: rate, and each process's share of a core and its CPU µs per delivery. */
function aggregateLine(round: number, measure: AggregateMeasure): string {
  const { result } = measure;
  const share = (micros: number): string => `${Math.round((micros / (result.seconds * 1_000_000)) * 100)}%`;
  const perDelivery = (micros: number): string => (result.delivered === 0 ? '-' : (micros / result.delivered).toFixed(2));
  const processes = [
    ...measure.processes.map((name, index) => [name, result.watchedCpuMicros[index]!, result.watchedRunnable[index]!] as const),
    ['generator', result.generatorCpuMicros, result.generatorRunnable] as const,
  ];
  const ours = processes.reduce((total, [, micros]) => total + micros, 0);
  // nats-server's main thread says nothing about its other threads: its runnable share is left out.
  const runnable = (name: string, fraction: number): string => (name === 'nats' ? '' : ` (runnable ${Math.round(fraction * 100)}%)`);
  const cpu = processes.map(([name, micros, fraction]) => `${name} ${share(micros)}${runnable(name, fraction)} ${perDelivery(micros)}`).join(', ');
  const mode = measure.processes.length === 1 ? 'one node ' : 'two nodes';
  const spread = `per subscriber ${result.perSubscriberMin}..${result.perSubscriberMax}`;
  const machine = `machine ${share(result.machineBusyMicros)} of ${result.machineCores * 100}% busy, other work ${share(Math.max(0, result.machineBusyMicros - ours))}`;
  const lost = result.lost === 0 ? '' : `, lost ${result.lost}`;
  const warned = measure.warnings.map((text, index) => (text === '' ? '' : `; node ${'AB'[index]} warned: ${text}`)).join('');
  const dropped = measure.drops.map((text, index) => (text === '' ? '' : `; node ${'AB'[index]} dropped: ${text}`)).join('');
  return `  round ${round} ${mode} ${Math.round(aggregateRate(measure)).toString().padStart(9)} deliveries/s | core share, CPU µs/delivery: ${cpu} | ${machine}; ${spread}${lost}${warned}${dropped}`;
}

/** Rounds of one node and two nodes in turn (order alternating), then the median of each and of the ratios. */
async function aggregate(options: Options): Promise<void> {
  const total = options.aggregateSubscribers * 2;
  console.log(
    `aggregate fan-out QoS 0: 2 publishers → ${total} subscribers (${options.aggregateSubscribers} per node with two nodes), window ${options.aggregateWindow} messages, ${options.rounds} rounds`,
  );
  const ratios: number[] = [];
  const singles: number[] = [];
  const clusters: number[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    const order = round % 2 === 1 ? [false, true] : [true, false];
    const measures = new Map<boolean, AggregateMeasure>();
    for (const clustered of order) {
      const measure = await aggregateOnce(clustered, options);
      measures.set(clustered, measure);
      console.log(aggregateLine(round, measure));
    }
    const single = aggregateRate(measures.get(false)!);
    const cluster = aggregateRate(measures.get(true)!);
    singles.push(single);
    clusters.push(cluster);
    ratios.push(single === 0 ? 0 : cluster / single);
    console.log(`  round ${round} ratio two nodes / one node: ${ratios[ratios.length - 1]!.toFixed(2)}x`);
  }
  const median = (values: number[]): number => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
  console.log(
    `aggregate fan-out (2 → ${total}), median of ${options.rounds}: one node ${Math.round(median(singles))}/s, two nodes ${Math.round(median(clusters))}/s, ratio ${median(ratios).toFixed(2)}x (per round: ${ratios.map((ratio) => ratio.toFixed(2)).join(', ')})`,
  );
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
    if (runs('qos2')) {
      const qos2Single = await withBrokers(false, 'interval', ([a], all) => windowQos1(a!.port, a!.port, options, all, 2));
      const qos2Cluster = await withBrokers(true, 'interval', ([a, b], all) => windowQos1(a!.port, b!.port, options, all, 2));
      console.log(line('QoS 2 across nodes (window 100)', qos2Single, qos2Cluster));
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
  if (runs('aggregate')) await aggregate(options);
  console.log('single/s, cluster/s: deliveries per second; µs/msg: CPU of every broker-side process (Keel nodes, nats-server) per delivery; hop: the difference');
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
