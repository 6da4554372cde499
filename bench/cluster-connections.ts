/**
 * Idle connections spread over the nodes of a cluster (issue 16's connection figure): how many a
 * cluster on this machine holds, at what rate they connect, and what each costs in memory on the
 * nodes and on nats-server.
 *
 *   node dist/bench/cluster-connections.js [--connections 100000] [--nodes N] [--concurrency 100] [--level 4|5]
 *
 * One `nats-server -js` (temporary store) and N `keel serve --cluster` nodes, each with its admin
 * listener on a free loopback port (for `nodejs_heap_size_used_bytes`). The connections are split
 * evenly over the nodes, and each node's share is opened by a generator process of its own (this
 * file, `--generator`): a process may hold at most `ulimit -n` descriptors (20,000 on the machines
 * this was written on), so one process can neither open 100,000 connections nor accept them, and
 * N defaults to the fewest nodes that keep every process under 19,000 connections. Every
 * connection is a clean-start MQTT CONNECT whose CONNACK must say 0; on a cluster node that CONNACK
 * waits for the client id's claim in the `keel-sessions` bucket (src/cluster/session-registry.ts),
 * so the rate includes one key-value compare-and-set per connection.
 *
 * Memory is read before the first connection and once every connection is open and idle (after a
 * settling pause): each node's resident set (`/proc/<pid>/status` VmRSS) and V8 heap in use (its
 * `/metrics`), and nats-server's resident set, whose bucket then holds one key per client id.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IdleConnections } from './load/idle-connections.js';
import { startNats, until } from './load/nats-peer.js';
import type { ProtocolLevel } from './load/packets.js';
import { canConnect, freePort, readCpuMicros, readRssBytes, spawnKeelServe } from './load/peers.js';
import { plainTcp } from './load/transport.js';

interface Options {
  connections: number;
  nodes: number | null;
  concurrency: number;
  level: ProtocolLevel;
}

interface Node {
  readonly name: string;
  readonly child: ChildProcess;
  readonly port: number;
  readonly adminPort: number;
}

/** What a generator prints once all of its connections are open. */
interface GeneratorReport {
  opened: number;
  seconds: number;
  connackP50Ms: number;
  connackP99Ms: number;
}

/** Connections one process (a node or a generator) is given at most: under a 20,000 descriptor limit. */
const connectionsPerProcessMax = 19_000;
const settleMs = 3_000;
const mebibyte = 1024 * 1024;

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function parseOptions(argv: string[]): Options {
  const options: Options = { connections: 100_000, nodes: null, concurrency: 100, level: 4 };
  for (let index = 0; index < argv.length; index += 2) {
    const key = argv[index]!.replace(/^--/, '');
    const value = Number(argv[index + 1]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`--${key} needs a positive whole number`);
    if (key === 'connections') options.connections = value;
    else if (key === 'nodes') options.nodes = value;
    else if (key === 'concurrency') options.concurrency = value;
    else if (key === 'level') {
      if (value !== 4 && value !== 5) throw new Error('--level is 4 (MQTT 3.1.1) or 5');
      options.level = value;
    } else throw new Error(`unknown option --${key}`);
  }
  return options;
}

async function startNode(directory: string, name: string, natsPort: number): Promise<Node> {
  const port = await freePort();
  const adminPort = await freePort();
  const { child } = spawnKeelServe([
    '--port',
    String(port),
    '--admin-port',
    String(adminPort),
    '--data-dir',
    join(directory, name),
    '--log-level',
    'warn',
    '--cluster',
    `nats://127.0.0.1:${natsPort}`,
    '--node-id',
    name,
  ]);
  children.add(child);
  await until(() => canConnect(port), `${name} listening`);
  await until(() => canConnect(adminPort), `${name} admin listener`);
  return { name, child, port, adminPort };
}

/** The node's V8 heap in use, from its `/metrics`. */
async function heapUsedBytes(node: Node): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${node.adminPort}/metrics`);
  const text = await response.text();
  const match = /^nodejs_heap_size_used_bytes (\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/m.exec(text);
  if (match === null) throw new Error(`${node.name}: /metrics has no nodejs_heap_size_used_bytes`);
  return Number(match[1]);
}

/** Starts a generator process for `count` connections to `port`; resolves with its report once all are open. */
function startGenerator(port: number, count: number, prefix: string, options: Options): { child: ChildProcess; report: Promise<GeneratorReport> } {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [script, '--generator', String(port), String(count), prefix, String(options.concurrency), String(options.level)], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const report = new Promise<GeneratorReport>((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const line = output.split('\n').find((candidate) => candidate.startsWith('{'));
      if (line !== undefined) resolve(JSON.parse(line) as GeneratorReport);
    });
    child.once('exit', (code) => reject(new Error(`generator for port ${port} exited with ${code} before its connections were open`)));
  });
  return { child, report };
}

/** The generator process: opens its connections, reports, holds them until its stdin closes. */
async function generator(argv: string[]): Promise<void> {
  const [port, count, prefix, concurrency, level] = argv;
  const startNs = process.hrtime.bigint();
  const batch = await IdleConnections.open({
    port: Number(port),
    level: Number(level) as ProtocolLevel,
    clientIdPrefix: prefix!,
    count: Number(count),
    concurrency: Number(concurrency),
    stallTimeoutMs: 30_000,
    transport: plainTcp,
  });
  const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  const latencies = [...batch.connackLatenciesMs].sort((a, b) => a - b);
  const at = (fraction: number): number => latencies[Math.min(latencies.length - 1, Math.floor(fraction * latencies.length))] ?? 0;
  const report: GeneratorReport = { opened: batch.accepted, seconds, connackP50Ms: at(0.5), connackP99Ms: at(0.99) };
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('end', resolve));
  batch.assertOpen();
  batch.resetAll();
}

function format(bytes: number): string {
  return `${(bytes / mebibyte).toFixed(1)} MiB`;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const nodeCount = options.nodes ?? Math.ceil(options.connections / connectionsPerProcessMax);
  const perNode = Math.ceil(options.connections / nodeCount);
  if (perNode > connectionsPerProcessMax) throw new Error(`${perNode} connections per node is above ${connectionsPerProcessMax}: use more --nodes`);
  const directory = mkdtempSync(join(tmpdir(), 'keel-cluster-connections-'));
  try {
    const nats = await startNats(directory, children);
    const nodes: Node[] = [];
    for (let index = 0; index < nodeCount; index++) nodes.push(await startNode(directory, `n${index + 1}`, nats.port));
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const rssBefore = nodes.map((node) => readRssBytes(node.child.pid!));
    const heapBefore = await Promise.all(nodes.map(heapUsedBytes));
    const natsRssBefore = readRssBytes(nats.child.pid!);
    const cpuBefore = [nats, ...nodes].map(({ child }) => readCpuMicros(child.pid!));
    console.log(
      `${nodeCount} nodes on one nats-server, ${perNode * nodeCount} connections (${perNode} per node, ${options.concurrency} in flight per node), MQTT ${options.level === 5 ? '5.0' : '3.1.1'}`,
    );
    const startNs = process.hrtime.bigint();
    const generators = nodes.map((node, index) => startGenerator(node.port, perNode, `c${index + 1}-`, options));
    const reports = await Promise.all(generators.map((generator) => generator.report));
    const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
    const cpuAfter = [nats, ...nodes].map(({ child }) => readCpuMicros(child.pid!));
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const rssAfter = nodes.map((node) => readRssBytes(node.child.pid!));
    const heapAfter = await Promise.all(nodes.map(heapUsedBytes));
    const natsRssAfter = readRssBytes(nats.child.pid!);
    const opened = reports.reduce((sum, report) => sum + report.opened, 0);
    console.log(`opened ${opened} connections in ${seconds.toFixed(1)} s: ${Math.round(opened / seconds)} CONNACK/s`);
    console.log(
      `${'node'.padEnd(6)} ${'conns'.padStart(7)} ${'rate/s'.padStart(7)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'RSS idle'.padStart(10)} ${'RSS full'.padStart(10)} ${'RSS/conn'.padStart(9)} ${'heap/conn'.padStart(9)} ${'CPU/conn'.padStart(9)}`,
    );
    for (let index = 0; index < nodes.length; index++) {
      const report = reports[index]!;
      const rssPerConnection = (rssAfter[index]! - rssBefore[index]!) / report.opened;
      const heapPerConnection = (heapAfter[index]! - heapBefore[index]!) / report.opened;
      const cpuPerConnection = (cpuAfter[index + 1]! - cpuBefore[index + 1]!) / report.opened;
      console.log(
        `${nodes[index]!.name.padEnd(6)} ${String(report.opened).padStart(7)} ${String(Math.round(report.opened / report.seconds)).padStart(7)} ${report.connackP50Ms.toFixed(0).padStart(7)} ${report.connackP99Ms.toFixed(0).padStart(7)} ${format(rssBefore[index]!).padStart(10)} ${format(rssAfter[index]!).padStart(10)} ${`${(rssPerConnection / 1024).toFixed(2)} KiB`.padStart(9)} ${`${(heapPerConnection / 1024).toFixed(2)} KiB`.padStart(9)} ${`${Math.round(cpuPerConnection)} µs`.padStart(9)}`,
      );
    }
    const rssGrowth = rssAfter.reduce((sum, value, index) => sum + value - rssBefore[index]!, 0);
    const heapGrowth = heapAfter.reduce((sum, value, index) => sum + value - heapBefore[index]!, 0);
    const natsCpu = cpuAfter[0]! - cpuBefore[0]!;
    console.log(
      `all nodes: RSS ${format(rssGrowth)} more (${(rssGrowth / opened / 1024).toFixed(2)} KiB per connection), heap ${format(heapGrowth)} more (${(heapGrowth / opened / 1024).toFixed(2)} KiB per connection)`,
    );
    console.log(
      `nats-server: RSS ${format(natsRssBefore)} → ${format(natsRssAfter)} (${((natsRssAfter - natsRssBefore) / opened / 1024).toFixed(2)} KiB per client id in keel-sessions), CPU ${Math.round(natsCpu / opened)} µs per connection`,
    );
    for (const { child } of generators) child.stdin!.end();
    await Promise.all(generators.map(({ child }) => new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)))));
  } finally {
    for (const child of children) child.kill('SIGKILL');
    children.clear();
    rmSync(directory, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--generator') await generator(process.argv.slice(3));
else await main();
