/**
 * Real NATS for the cluster tests: Debian's `nats-server -js` as a child process on a free
 * 127.0.0.1 port with a temporary store, and a three-server NATS cluster joined by routes.
 *
 * `start` resolves once the server accepts TCP connections (and, for a cluster, once every
 * member's routes are up, read from its log); `kill` is a SIGKILL (no orderly shutdown: the store
 * is left as a crash leaves it); `restart` starts the same server again on the same port and
 * store, so a test sees JetStream recover from what it had synced. `stop` ends the process and
 * removes the store. Every server a test file started is tracked so `stopAllNats` can end them
 * in `afterAll`, whatever the test did.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../bench/load/peers.js';

/** How long a starting server may take to accept connections before the fixture gives up. */
const startTimeoutMs = 15_000;
/** The lines of a server's output kept for a failure message. */
const outputLinesMax = 40;

const running = new Set<NatsServer>();

interface ServerShape {
  readonly name: string;
  readonly port: number;
  readonly storeDirectory: string;
  /** Cluster members only: this server's route port, its peers' route URLs and the cluster's name. */
  readonly clusterPort: number | null;
  readonly routes: readonly string[];
  readonly clusterName: string | null;
}

export class NatsServer {
  private child: ChildProcess | null = null;
  private output: string[] = [];
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly shape: ServerShape) {}

  get url(): string {
    return `nats://127.0.0.1:${this.shape.port}`;
  }

  get port(): number {
    return this.shape.port;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** The server's recent output, for failure messages. */
  get recentOutput(): string {
    return this.output.join('\n');
  }

  /** Starts the process; resolves once it accepts TCP connections on its client port. */
  async start(): Promise<void> {
    if (this.child !== null) throw new Error(`${this.shape.name} is already running`);
    this.output = [];
    const child = spawn('nats-server', this.arguments(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    running.add(this);
    const keep = (chunk: Buffer): void => {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') this.output.push(line);
      if (this.output.length > outputLinesMax) this.output.splice(0, this.output.length - outputLinesMax);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.once('exit', () => {
      if (this.child === child) this.child = null;
    });
    await this.untilAccepting(child);
  }

  /** SIGKILL: the store stays as the crash left it. Resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /**
   * SIGSTOP: the process holds its sockets but answers nothing (a hung server, a silent partition).
   * Resolves once every thread of it is stopped: the signal takes effect thread by thread, and on
   * a loaded machine a thread still running answered a publish sent right after the kill.
   */
  async pause(): Promise<void> {
    const child = this.child;
    if (child === null || child.pid === undefined) return;
    child.kill('SIGSTOP');
    const tasks = `/proc/${child.pid}/task`;
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const states = readdirSync(tasks).map((task) => threadState(join(tasks, task, 'stat')));
      if (states.every((state) => state === 'T' || state === 't' || state === null)) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`nats-server ${child.pid} did not stop within 5 s of SIGSTOP`);
  }

  /** SIGCONT after `pause`. */
  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** SIGKILL, then start again on the same port and store. */
  async restart(): Promise<void> {
    await this.kill();
    await this.start();
  }

  /** SIGKILL, then start again on the same port with its store gone (a NATS that lost its disk). */
  async restartWithoutStore(): Promise<void> {
    await this.kill();
    rmSync(this.shape.storeDirectory, { recursive: true, force: true });
    mkdirSync(this.shape.storeDirectory, { recursive: true });
    await this.start();
  }

  /** Ends the process (SIGTERM, then SIGKILL after a grace) and deletes its store. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child !== null) {
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const grace = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await this.exited;
      clearTimeout(grace);
    }
    running.delete(this);
    rmSync(this.shape.storeDirectory, { recursive: true, force: true });
  }

  /** Resolves once the log shows `count` routes up (cluster members). */
  async untilRoutes(count: number, timeoutMs = startTimeoutMs): Promise<void> {
    const startMs = Date.now();
    while (this.output.filter((line) => line.includes('Route connection created')).length < count) {
      if (Date.now() - startMs > timeoutMs) throw new Error(`${this.shape.name}: ${count} routes not up after ${timeoutMs} ms\n${this.recentOutput}`);
      await sleep(50);
    }
  }

  private arguments(): string[] {
    const shape = this.shape;
    const base = ['-js', '-a', '127.0.0.1', '-p', String(shape.port), '-sd', shape.storeDirectory, '-n', shape.name];
    if (shape.clusterPort === null) return base;
    return [...base, '--cluster_name', shape.clusterName!, '--cluster', `nats://127.0.0.1:${shape.clusterPort}`, '--routes', shape.routes.join(',')];
  }

  private async untilAccepting(child: ChildProcess): Promise<void> {
    const startMs = Date.now();
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${this.shape.name} exited at start-up\n${this.recentOutput}`);
      if (await accepts(this.shape.port)) return;
      if (Date.now() - startMs > startTimeoutMs) throw new Error(`${this.shape.name} not accepting after ${startTimeoutMs} ms\n${this.recentOutput}`);
      await sleep(50);
    }
  }
}

/**
 * Free ports, none twice: each probe closes before the next, so the system may hand out the same
 * port again (a cluster once got one port for a client and a route listener, and its server
 * failed to start). Returned as groups of the given sizes.
 */
async function distinctFreePorts(...sizes: number[]): Promise<number[][]> {
  const total = sizes.reduce((sum, size) => sum + size, 0);
  const found = new Set<number>();
  for (let attempt = 0; found.size < total; attempt++) {
    if (attempt > total * 20) throw new Error(`could not find ${total} distinct free ports`);
    found.add(await freePort());
  }
  const all = [...found];
  const groups: number[][] = [];
  for (const size of sizes) groups.push(all.splice(0, size));
  return groups;
}

/** One `nats-server -js` on a free port with a new temporary store (started). */
export async function startNats(): Promise<NatsServer> {
  const port = await freePort();
  const storeDirectory = mkdtempSync(join(tmpdir(), 'keel-nats-'));
  const server = new NatsServer({ name: `keel-test-${port}`, port, storeDirectory, clusterPort: null, routes: [], clusterName: null });
  await server.start();
  return server;
}

/**
 * Three `nats-server -js` joined by routes into one NATS cluster (JetStream replicated by its own
 * Raft groups), each with its own store; resolves once every member has its two routes.
 */
export async function startNatsCluster(): Promise<NatsServer[]> {
  const [ports, clusterPorts] = await distinctFreePorts(3, 3);
  const routes = clusterPorts.map((port) => `nats://127.0.0.1:${port}`);
  const clusterName = `keel-test-${ports[0]}`;
  const servers = ports.map(
    (port, index) =>
      new NatsServer({
        name: `keel-test-${port}`,
        port,
        storeDirectory: mkdtempSync(join(tmpdir(), 'keel-nats-')),
        clusterPort: clusterPorts[index]!,
        routes: routes.filter((_, other) => other !== index),
        clusterName,
      }),
  );
  await Promise.all(servers.map((server) => server.start()));
  await Promise.all(servers.map((server) => server.untilRoutes(2)));
  return servers;
}

/** Stops every server this process started and has not stopped (for `afterAll`). */
export async function stopAllNats(): Promise<void> {
  await Promise.all([...running].map((server) => server.stop()));
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The state letter of a thread from its `/proc/.../stat` line (after the command's closing parenthesis), or null once it is gone. */
function threadState(statFile: string): string | null {
  try {
    const stat = readFileSync(statFile, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}
