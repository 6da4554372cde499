/**
 * The brokers under test, each started as its own child process on a fresh loopback port:
 * Keel (`node dist/io/cli.js serve`), Aedes (`node dist/bench/load/aedes-server.js`) and
 * Mosquitto (the system binary with a generated config file); and beside them `node-floor`
 * (`node dist/bench/load/node-floor-server.js`), not a broker but the least a Node program does
 * to answer a CONNECT, under Keel's node flags: the runtime's floor under Keel's figures.
 *
 * A separate process per broker keeps the load generator off the broker's event loop and lets the
 * harness read each broker's memory from /proc/<pid>/status alone. Every start is fresh (new
 * process, new temporary directory), so no run inherits another run's heap or sessions. A broker
 * is "ready" when its port accepts a TCP connection; a child that exits first fails the start
 * with the tail of its stderr. Children still running when the harness exits are killed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchCertificates } from './certificates.js';
import type { HeapReading } from './heap-probe.js';

export const brokerNames = ['keel', 'aedes', 'mosquitto'] as const;
/**
 * Keel with its operations on (broker-bench --operations): the admin listener open, `$SYS`
 * published every second, and `/metrics` scraped every second by the harness, to be compared
 * with a plain `keel` run interleaved with it.
 */
export const operationsBrokerName = 'keel-ops';
/**
 * Keel with its warm start (`"warmUpConnections": 2000`, as `keel serve --warm-up-connections
 * 2000`): named in --brokers beside `keel` to measure what the warm-up buys in the same run.
 */
export const warmBrokerName = 'keel-warm';
/**
 * Not a broker: a Node program that accepts, answers each CONNECT with a fixed CONNACK and holds
 * the socket (node-floor-server.ts), started with Keel's launcher flags. Named in --brokers beside
 * `keel` to measure Node's own cost per connection and at rest in the same run; only scenarios
 * that mark `floor` run it.
 */
export const nodeFloorName = 'node-floor';
export type BrokerName = (typeof brokerNames)[number] | typeof operationsBrokerName | typeof warmBrokerName | typeof nodeFloorName;

/** How often the harness scrapes a keel-ops broker's /metrics. */
export const scrapeIntervalMs = 1_000;

export type Availability = { available: true; version: string } | { available: false; reason: string };

export interface RunningBroker {
  readonly name: BrokerName;
  readonly pid: number;
  readonly port: number;
  /** Resident set size of the broker process now, in bytes (0 once it has gone). */
  rssBytes(): number;
  /** The same, split into the process's own (anonymous) pages and file-backed ones (zeros once gone). */
  memory(): ProcessMemory;
  /**
   * The V8 heap after a full collection, for the Node brokers (read by heap-probe.ts inside the
   * broker); null for Mosquitto, whose own memory is its anonymous RSS. Read the RSS first: the
   * collection frees garbage.
   */
  heap(): Promise<HeapReading | null>;
  /** CPU time the broker process has used so far, all threads, user and system, in µs (0 once gone). */
  cpuMicros(): number;
  /** The same, user and system time apart (a reconnect storm costs both: accept and write are syscalls). */
  cpuSplitMicros(): CpuSplit;
  /** True while the child process is alive. */
  alive(): boolean;
  /**
   * Stops the broker cleanly (SIGTERM) and starts it again on the same port and data, resolving
   * with the milliseconds from the new process's spawn to its port accepting connections.
   */
  restart(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A listener other than plain MQTT for a scenario: MQTT over TLS (with the benchmark's
 * certificates) or over WebSocket. The broker then listens on that one only.
 */
export interface BenchListener {
  readonly protocol: 'mqtts' | 'ws';
  readonly certificates?: BenchCertificates;
}

export interface PeerOptions {
  /** Settings for Keel's --config file (BrokerConfig overrides). */
  keelConfig: Record<string, unknown>;
  /** Queue limit written into mosquitto.conf (max_queued_messages). */
  mosquittoQueuedMessagesMax: number;
  /**
   * `set_tcp_nodelay true` in mosquitto.conf. Mosquitto's default leaves Nagle's algorithm on for
   * its clients' sockets (Keel's listener turns it off), which holds back small writes behind an
   * unacknowledged segment and shows in its latency tails.
   */
  mosquittoNoDelay?: boolean;
}

/**
 * How long a broker may take from spawn to listening. Keel's warm start (keel-warm, io/warm-up.ts)
 * runs a couple of thousand loopback connections first: over a second of CPU, and up to its own
 * 5 s bound when other work shares the cores; a recovery comes before it.
 */
const readyTimeoutMs = 30_000;
const stopTimeoutMs = 3_000;
const liveChildren = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** The repository root: the nearest parent directory holding Keel's package.json. */
export function repositoryRoot(): string {
  let directory = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    const manifest = join(directory, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'keel') return directory;
    directory = dirname(directory);
  }
  throw new Error('cannot find the Keel repository root above bench/load');
}

export function aedesServerScript(): string {
  return join(repositoryRoot(), 'dist', 'bench', 'load', 'aedes-server.js');
}

export function nodeFloorScript(): string {
  return join(repositoryRoot(), 'dist', 'bench', 'load', 'node-floor-server.js');
}

function keelCli(): string {
  return join(repositoryRoot(), 'dist', 'io', 'cli.js');
}

/**
 * A `keel serve` child with `serveArguments`, under the node flags of its launcher line
 * (`keelNodeArguments`); stderr goes to ours. `output` is its stdout so far, up to 64 kB: the
 * start-up lines a bench waits for (later output is read and dropped).
 */
export function spawnKeelServe(serveArguments: string[]): { child: ChildProcess; output: () => string } {
  const child = spawn(process.execPath, [...keelNodeArguments(), keelCli(), 'serve', ...serveArguments], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    if (output.length < 64_000) output += chunk.toString('utf8');
  });
  return { child, output: () => output };
}

/** Whether a broker can be started here, and its version for the report. */
export function probeBroker(name: BrokerName): Availability {
  if (name === 'mosquitto') return probeMosquitto();
  if (name === operationsBrokerName || name === warmBrokerName) return probeBroker('keel');
  if (name === nodeFloorName) {
    if (!existsSync(nodeFloorScript())) return { available: false, reason: `${nodeFloorScript()} missing (npm run build)` };
    if (!existsSync(keelCli())) return { available: false, reason: 'dist/io/cli.js missing (npm run build): node-floor takes its node flags from it' };
    return { available: true, version: `not a broker, Node ${process.version}` };
  }
  if (name === 'aedes') {
    if (!existsSync(aedesServerScript())) return { available: false, reason: `${aedesServerScript()} missing (npm run build)` };
    const manifest = join(repositoryRoot(), 'node_modules', 'aedes', 'package.json');
    return { available: true, version: (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version };
  }
  if (!existsSync(keelCli())) return { available: false, reason: 'dist/io/cli.js missing (npm run build)' };
  const help = spawnSync(process.execPath, [keelCli(), 'serve', '--help'], { encoding: 'utf8', timeout: 10_000 });
  if (help.status !== 0) return { available: false, reason: `\`keel serve --help\` failed: ${(help.stderr || help.stdout || String(help.error)).trim().split('\n').slice(-1)[0]}` };
  const version = spawnSync(process.execPath, [keelCli(), '--version'], { encoding: 'utf8', timeout: 10_000 });
  return { available: true, version: version.stdout.trim() || 'unknown' };
}

function probeMosquitto(): Availability {
  const result = spawnSync('mosquitto', ['-h'], { encoding: 'utf8', timeout: 5_000 });
  if (result.error !== undefined) return { available: false, reason: 'not installed (apt-get install mosquitto)' };
  const match = /mosquitto version (\S+)/.exec(result.stdout + result.stderr);
  return { available: true, version: match?.[1] ?? 'unknown' };
}

/** A port the OS considers free right now: bind port 0, read it, close the probe. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ host: '127.0.0.1', port: 0 }, () => {
      const port = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(port));
    });
  });
}

export function readRssBytes(pid: number): number {
  return readProcessStatusBytes(pid, 'VmRSS');
}

/** Clock ticks per second of /proc/<pid>/stat (sysconf(_SC_CLK_TCK)), 100 on every Linux this runs on. */
const clockTicksPerSecond = 100;

/**
 * User plus system CPU time of a live process, every thread included, from /proc/<pid>/stat
 * (fields 14 and 15, after the parenthesized command name), in µs; 0 if unreadable. Resolution:
 * one clock tick (10 ms), so it is read over spans of seconds.
 */
export function readCpuMicros(pid: number): number {
  const split = readCpuSplitMicros(pid);
  return split.userMicros + split.systemMicros;
}

export interface CpuSplit {
  userMicros: number;
  systemMicros: number;
}

/** User and system CPU time of a live process, as readCpuMicros; zeros if unreadable. */
export function readCpuSplitMicros(pid: number): CpuSplit {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    const userTicks = Number(fields[11]);
    const systemTicks = Number(fields[12]);
    if (!Number.isFinite(userTicks) || !Number.isFinite(systemTicks)) return { userMicros: 0, systemMicros: 0 };
    return { userMicros: (userTicks * 1_000_000) / clockTicksPerSecond, systemMicros: (systemTicks * 1_000_000) / clockTicksPerSecond };
  } catch {
    return { userMicros: 0, systemMicros: 0 };
  }
}

export interface ProcessMemory {
  rssBytes: number;
  /** RssAnon: the process's own pages (heaps, stacks, buffers): what it costs the machine. */
  anonymousBytes: number;
  /** RssFile: pages of mapped files (for Node, mostly the `node` binary's code, shared with every Node process). */
  fileBytes: number;
}

/** RSS and its anonymous and file-backed parts, from /proc/<pid>/status; zeros if unreadable. */
export function readProcessMemory(pid: number): ProcessMemory {
  return { rssBytes: readProcessStatusBytes(pid, 'VmRSS'), anonymousBytes: readProcessStatusBytes(pid, 'RssAnon'), fileBytes: readProcessStatusBytes(pid, 'RssFile') };
}

/** How long a heap reading may take (a full collection of a large heap, on a loaded machine). */
const heapReadTimeoutMs = 10_000;

/** Node flags that load heap-probe.ts into a Node broker, with `gc` exposed for its collection. */
export function heapProbeArguments(): string[] {
  return ['--expose-gc', '--import', pathToFileURL(join(repositoryRoot(), 'dist', 'bench', 'load', 'heap-probe.js')).href];
}

/** Asks a broker's heap probe for a reading (SIGUSR2) and waits for its file. */
async function readHeap(child: ChildProcess, file: string): Promise<HeapReading> {
  rmSync(file, { force: true });
  child.kill('SIGUSR2');
  const deadlineMs = Date.now() + heapReadTimeoutMs;
  while (Date.now() < deadlineMs) {
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as HeapReading;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no heap reading from pid ${child.pid} within ${heapReadTimeoutMs} ms`);
}

/** A kB figure of a live process's /proc status (VmRSS, VmHWM, ...), in bytes; 0 if unreadable. */
export function readProcessStatusBytes(pid: number, field: string): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

/** What a broker keeps across a restart in `RunningBroker.restart`. */
export interface BrokerStartOptions {
  /**
   * Sessions kept on disk across restarts: Keel always keeps them (its data directory stays); for
   * Mosquitto, `persistence true` in the run's directory (written at its clean exit). Aedes keeps
   * nothing (in-memory store) and cannot be asked to.
   */
  persistence?: boolean;
}

/** Starts a fresh broker process and resolves once its port accepts connections. */
export async function startBroker(name: BrokerName, options: PeerOptions, listener: BenchListener | null = null, start: BrokerStartOptions = {}): Promise<RunningBroker> {
  if (listener !== null && name === 'aedes') throw new Error(`the benchmark runs Aedes on plain TCP only, not ${listener.protocol}`);
  if (start.persistence === true && name === 'aedes') throw new Error('the benchmark runs Aedes with its in-memory store: it keeps no session across a restart');
  if (name === nodeFloorName && (listener !== null || start.persistence === true)) throw new Error('node-floor answers plain-TCP CONNECTs only and keeps no session');
  const port = await freePort();
  const spareListenerPort = name === 'mosquitto' && listener?.protocol === 'ws' ? await freePort() : null;
  const workDirectory = mkdtempSync(join(tmpdir(), `keel-bench-${name}-`));
  const adminPort = name === operationsBrokerName ? await freePort() : null;
  const peerOptions = adminPort === null ? options : withOperations(options, adminPort);
  const [command, args] = commandFor(name, port, workDirectory, peerOptions, listener, spareListenerPort, start.persistence === true);
  const heapFile = name === 'mosquitto' ? null : join(workDirectory, 'heap.json');
  const environment = heapFile === null ? process.env : { ...process.env, KEEL_BENCH_HEAP_FILE: heapFile };
  let child = launch(command, args, environment);
  const scraper = adminPort === null ? null : new MetricsScraper(adminPort);
  const halt = async (): Promise<void> => {
    if (!child.exited()) child.process.kill('SIGTERM');
    const timer = setTimeout(() => child.process.kill('SIGKILL'), stopTimeoutMs);
    await child.exit;
    clearTimeout(timer);
  };
  const stop = async (): Promise<void> => {
    scraper?.stop();
    await halt();
    rmSync(workDirectory, { recursive: true, force: true });
  };
  const ready = (): Promise<void> =>
    waitForPort(
      port,
      () => child.exited(),
      () => child.stderrTail(),
    );
  try {
    await ready();
  } catch (error) {
    await stop();
    throw error;
  }
  scraper?.start();
  return {
    name,
    get pid() {
      return child.process.pid!;
    },
    port,
    rssBytes: () => (child.exited() ? 0 : readRssBytes(child.process.pid!)),
    memory: () => (child.exited() ? { rssBytes: 0, anonymousBytes: 0, fileBytes: 0 } : readProcessMemory(child.process.pid!)),
    heap: () => (heapFile === null || child.exited() ? Promise.resolve(null) : readHeap(child.process, heapFile)),
    cpuMicros: () => (child.exited() ? 0 : readCpuMicros(child.process.pid!)),
    cpuSplitMicros: () => (child.exited() ? { userMicros: 0, systemMicros: 0 } : readCpuSplitMicros(child.process.pid!)),
    alive: () => !child.exited(),
    restart: async () => {
      await halt();
      const startNs = process.hrtime.bigint();
      child = launch(command, args, environment);
      await ready();
      return Number(process.hrtime.bigint() - startNs) / 1e6;
    },
    stop,
  };
}

interface Launched {
  readonly process: ChildProcess;
  readonly exit: Promise<void>;
  exited(): boolean;
  /** The last 2,000 characters the process wrote to stderr. */
  stderrTail(): string;
}

/** Spawns a broker process, watched until it exits (and killed if this process exits first). */
function launch(command: string, args: string[], environment: NodeJS.ProcessEnv): Launched {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: environment });
  liveChildren.add(child);
  let stderrTail = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-2_000);
  });
  child.stdout!.resume();
  let exited = child.exitCode !== null;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      liveChildren.delete(child);
      resolve();
    }),
  );
  return { process: child, exit, exited: () => exited, stderrTail: () => stderrTail };
}

/** Keel's settings for a keel-ops run: its admin listener on `adminPort`, `$SYS` every second. */
function withOperations(options: PeerOptions, adminPort: number): PeerOptions {
  return { ...options, keelConfig: { ...options.keelConfig, sysIntervalSeconds: 1, admin: { host: '127.0.0.1', port: adminPort } } };
}

/**
 * Scrapes /metrics once a second, as Prometheus would, one scrape at a time; a scrape that fails
 * is written to stderr (the run goes on: its figures say what the scraping cost).
 */
class MetricsScraper {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  scrapes = 0;

  constructor(private readonly adminPort: number) {}

  start(): void {
    this.timer = setInterval(() => void this.scrape(), scrapeIntervalMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private async scrape(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const response = await fetch(`http://127.0.0.1:${this.adminPort}/metrics`);
      const text = await response.text();
      if (response.status !== 200 || !text.includes('keel_messages_received_total')) throw new Error(`status ${response.status}`);
      this.scrapes += 1;
    } catch (error) {
      process.stderr.write(`keel-ops: a /metrics scrape failed: ${(error as Error).message}\n`);
    } finally {
      this.busy = false;
    }
  }
}

function commandFor(
  name: BrokerName,
  port: number,
  workDirectory: string,
  options: PeerOptions,
  listener: BenchListener | null,
  spareListenerPort: number | null,
  persistence: boolean,
): [string, string[]] {
  if (name === 'aedes') return [process.execPath, [...heapProbeArguments(), aedesServerScript(), String(port)]];
  if (name === nodeFloorName) return [process.execPath, [...keelLauncherNodeFlags(), ...heapProbeArguments(), nodeFloorScript(), String(port)]];
  if (name === 'keel' || name === operationsBrokerName || name === warmBrokerName) {
    const configFile = join(workDirectory, 'keel.json');
    const listeners = listener === null ? {} : { listeners: [keelListener(port, listener)] };
    const warm = name === warmBrokerName ? { warmUpConnections: 2_000 } : {};
    // No admin listener unless the scenario asks for one: the default port would be shared.
    writeFileSync(configFile, JSON.stringify({ admin: null, ...options.keelConfig, ...warm, ...listeners }));
    const dataDirectory = join(workDirectory, 'data');
    // With a listeners list the config file says where to listen, and --host/--port may not.
    const where = listener === null ? ['--host', '127.0.0.1', '--port', String(port)] : [];
    return [process.execPath, [...keelNodeArguments(), ...heapProbeArguments(), keelCli(), 'serve', ...where, '--data-dir', dataDirectory, '--config', configFile, '--log-level', 'error']];
  }
  const configFile = join(workDirectory, 'mosquitto.conf');
  writeFileSync(configFile, mosquittoConfig(port, options.mosquittoQueuedMessagesMax, listener, spareListenerPort, persistence ? workDirectory : null, options.mosquittoNoDelay === true));
  return ['mosquitto', ['-c', configFile]];
}

function keelListener(port: number, listener: BenchListener): Record<string, unknown> {
  if (listener.protocol === 'ws') return { protocol: 'ws', host: '127.0.0.1', port, path: '/mqtt' };
  const certificates = requireCertificates(listener);
  return { protocol: 'mqtts', host: '127.0.0.1', port, certFile: certificates.certFile, keyFile: certificates.keyFile };
}

function requireCertificates(listener: BenchListener): BenchCertificates {
  if (listener.certificates === undefined) throw new Error(`assertion failed: a ${listener.protocol} listener needs certificates`);
  return listener.certificates;
}

/**
 * Node flags for the Keel child: the ones its launcher line gives it (the `keel` command and
 * `npm start` run it that way), then extras from KEEL_BENCH_NODE_ARGS (space-separated), so that a
 * profile can be taken under the benchmark's own load: `KEEL_BENCH_NODE_ARGS="--cpu-prof
 * --cpu-prof-dir=/tmp/prof"` (node refuses --cpu-prof in NODE_OPTIONS).
 */
export function keelNodeArguments(): string[] {
  const flags = process.env.KEEL_BENCH_NODE_ARGS?.trim();
  return [...keelLauncherNodeFlags(), ...(flags === undefined || flags === '' ? [] : flags.split(/\s+/))];
}

/** The node flags of Keel's launcher line alone (node-floor runs under them, without KEEL_BENCH_NODE_ARGS). */
export function keelLauncherNodeFlags(): string[] {
  return launcherNodeFlags(readFileSync(keelCli(), 'utf8'));
}

/**
 * The node flags on a script's launcher line (`#!/usr/bin/env -S node --flag ...`), or none: how
 * the installed `keel` command starts the broker.
 */
export function launcherNodeFlags(script: string): string[] {
  const firstLine = script.split('\n', 1)[0]!;
  const match = /^#!\/usr\/bin\/env(?: -S)? node((?: +\S+)*)\s*$/.exec(firstLine);
  if (match === null) throw new Error(`unexpected launcher line in the Keel CLI: ${JSON.stringify(firstLine)}`);
  return match[1]!.trim() === '' ? [] : match[1]!.trim().split(/ +/);
}

/**
 * In-memory, anonymous, silent: the same footing as Aedes with its default in-memory store (with
 * `persistenceDirectory`, sessions are kept there across restarts, saved at a clean exit). A TLS
 * listener gets the same certificate and key as Keel (and Mosquitto's default versions, TLS 1.2
 * and 1.3, as Keel's); a WebSocket one is Mosquitto's `protocol websockets` (libwebsockets).
 */
export function mosquittoConfig(
  port: number,
  queuedMessagesMax: number,
  listener: BenchListener | null = null,
  spareListenerPort: number | null = null,
  persistenceDirectory: string | null = null,
  noDelay = false,
): string {
  const lines = [`listener ${port} 127.0.0.1`];
  if (listener?.protocol === 'mqtts') lines.push(`certfile ${requireCertificates(listener).certFile}`, `keyfile ${requireCertificates(listener).keyFile}`);
  if (listener?.protocol === 'ws') {
    lines.push('protocol websockets');
    // Mosquitto 2.0.11 does not count a websockets listener as a listening socket and exits
    // ("Unable to start any listening sockets") unless a plain one exists too; it stays idle.
    if (spareListenerPort === null) throw new Error('assertion failed: a websockets listener needs a spare plain listener in Mosquitto 2.0.11');
    lines.push(`listener ${spareListenerPort} 127.0.0.1`);
  }
  // Started as root, Mosquitto switches to the user "mosquitto", who cannot read the benchmark's
  // key or write its store in the private temporary directory; staying the invoking user changes
  // nothing measured.
  if ((listener !== null || persistenceDirectory !== null) && process.getuid?.() === 0) lines.push('user root');
  const persistence = persistenceDirectory === null ? ['persistence false'] : ['persistence true', `persistence_location ${persistenceDirectory}/`];
  const nagle = noDelay ? ['set_tcp_nodelay true'] : [];
  return [...lines, 'allow_anonymous true', ...persistence, 'log_dest none', `max_queued_messages ${queuedMessagesMax}`, 'max_connections -1', ...nagle, ''].join('\n');
}

async function waitForPort(port: number, exited: () => boolean, stderrTail: () => string): Promise<void> {
  const deadlineMs = Date.now() + readyTimeoutMs;
  while (Date.now() < deadlineMs) {
    if (exited()) throw new Error(`broker exited before listening: ${stderrTail().trim() || '(no stderr)'}`);
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`broker not listening on ${port} after ${readyTimeoutMs} ms: ${stderrTail().trim()}`);
}

/** Whether a TCP connection to 127.0.0.1:`port` succeeds now. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
