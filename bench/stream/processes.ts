/**
 * The stream benchmark's broker processes: `keel serve` and `nats-server -js`, each a child
 * process on a fresh loopback port, over a data directory the benchmark owns.
 *
 * Unlike bench/load/peers.ts (a fresh temporary directory per start, deleted at stop), a replay
 * needs the same data directory across a restart: the stream is filled, the broker stopped, and
 * a new one reads what the first left on disk. So the directory is the caller's, and stopping
 * leaves it. A child that exits before it is ready fails the start with the tail of its stderr;
 * children still running when the harness exits are killed (peers.ts's exit hook does the same
 * for its own).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, freePort, keelNodeArguments, readCpuMicros, readRssBytes, repositoryRoot } from '../load/peers.js';

export interface BrokerProcess {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  /** performance.now() when it was spawned and when it became ready. */
  readonly spawnedAtMs: number;
  readonly readyAtMs: number;
  rssBytes(): number;
  cpuMicros(): number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

const readyTimeoutMs = 120_000;
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Spawns `command` and resolves once `ready()` holds (polled), or rejects if it exits first. */
async function spawnUntilReady(name: string, command: string, args: string[], port: number, ready: (stdout: string) => Promise<boolean>): Promise<BrokerProcess> {
  const spawnedAtMs = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderrTail = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    // Only the start-up lines matter; later output is read and dropped.
    if (stdout.length < 64_000) stdout += chunk.toString('utf8');
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-2_000);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      children.delete(child);
      resolve();
    }),
  );
  const deadlineMs = Date.now() + readyTimeoutMs;
  while (!(await ready(stdout))) {
    if (exited) throw new Error(`${name} exited before it was ready: ${stderrTail.trim() || stdout.slice(-500) || '(no output)'}`);
    if (Date.now() > deadlineMs) {
      child.kill('SIGKILL');
      throw new Error(`${name} not ready after ${readyTimeoutMs} ms: ${stderrTail.trim()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const readyAtMs = performance.now();
  const stop = async (graceMs = 30_000): Promise<void> => {
    if (!exited) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exit;
    clearTimeout(timer);
  };
  const pid = child.pid!;
  return { name, port, pid, spawnedAtMs, readyAtMs, rssBytes: () => (exited ? 0 : readRssBytes(pid)), cpuMicros: () => (exited ? 0 : readCpuMicros(pid)), stop };
}

/**
 * `keel serve` over `dataDirectory` with `config` (BrokerConfig settings), no admin listener;
 * ready once it announced that it listens (after recovering what the directory holds).
 */
export async function startKeel(dataDirectory: string, configFile: string, config: Record<string, unknown>): Promise<BrokerProcess> {
  const port = await freePort();
  writeFileSync(configFile, JSON.stringify({ admin: null, ...config }));
  const cli = join(repositoryRoot(), 'dist', 'io', 'cli.js');
  const args = [...keelNodeArguments(), cli, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDirectory, '--config', configFile, '--log-level', 'warn'];
  return spawnUntilReady('keel', process.execPath, args, port, async (stdout) => stdout.includes('"event":"listening"') && (await canConnect(port)));
}

/** `nats-server -js` with its store in `storeDirectory`; ready once its port accepts connections. */
export async function startNats(storeDirectory: string): Promise<BrokerProcess> {
  const port = await freePort();
  return spawnUntilReady('nats-server', 'nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDirectory], port, () => canConnect(port));
}

/** Samples a process's RSS every `intervalMs` until stopped; keeps the peak. */
export class RssSampler {
  peakBytes = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly broker: BrokerProcess,
    intervalMs = 50,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peakBytes;
  }

  private sample(): void {
    this.peakBytes = Math.max(this.peakBytes, this.broker.rssBytes());
  }
}
