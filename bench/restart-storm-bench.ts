/**
 * A restart storm end to end: what a client that reconnects the moment a broker restarts waits
 * for. broker-bench's idle-connections times the storm from the moment the port accepts; a warm
 * start (io/warm-up.ts) moves work from the storm to before that moment, so its cost and its gain
 * have to be read together, from the spawn.
 *
 *   node dist/bench/restart-storm-bench.js [count 2000] [in flight 100] [rounds 2]
 *
 * Per round, one after the other on fresh processes and fresh directories: Keel with
 * `--warm-up-connections 2000`, Keel as it starts by default, Mosquitto (`persistence false`), and
 * node-floor, which is not a broker: a Node program that answers each CONNECT with a fixed
 * CONNACK (bench/load/node-floor-server.ts) under Keel's node flags, the floor for any Node broker.
 * Each broker is spawned and polled with TCP connects every 20 ms until it listens; then `count`
 * bare clean-start CONNECTs (`in flight` at once, bench/load/idle-connections.ts) must all get
 * their CONNACK. Printed per run: spawn to listening, the storm, spawn to all connected, and the
 * broker's CPU before listening and during the storm. Keel runs as broker-bench runs it (its
 * launcher's node flags, `syncPolicy: "none"`, no admin listener, log level error). The count is
 * capped below the open-files limit: the generator holds one descriptor per connection.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdleConnections } from './load/idle-connections.js';
import { canConnect, freePort, keelLauncherNodeFlags, keelNodeArguments, nodeFloorScript, readCpuMicros } from './load/peers.js';
import { idleConnectionCount } from './load/scenarios.js';

const kinds = ['keel-warm', 'keel', 'mosquitto', 'node-floor'] as const;
type Kind = (typeof kinds)[number];
/** A broker that does not listen within this is a failed run. */
const listenTimeoutMs = 60_000;

function positiveArgument(index: number, fallback: number): number {
  const text = process.argv[index];
  const value = text === undefined ? fallback : Number(text);
  if (!(Number.isInteger(value) && value >= 1)) throw new Error(`argument ${index - 1} must be a positive integer, not ${text}`);
  return value;
}

function launch(kind: Kind, port: number, directory: string): ChildProcess {
  if (kind === 'mosquitto') {
    writeFileSync(join(directory, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    return spawn('mosquitto', ['-c', join(directory, 'mosquitto.conf')], { stdio: 'ignore' });
  }
  if (kind === 'node-floor') return spawn(process.execPath, [...keelLauncherNodeFlags(), nodeFloorScript(), String(port)], { stdio: ['ignore', 'ignore', 'inherit'] });
  writeFileSync(join(directory, 'keel.json'), JSON.stringify({ syncPolicy: 'none', ...(kind === 'keel-warm' ? { warmUpConnections: 2_000 } : {}) }));
  const serve = ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(directory, 'data'), '--config', join(directory, 'keel.json'), '--no-admin', '--log-level', 'error'];
  return spawn(process.execPath, [...keelNodeArguments(), join(import.meta.dirname, '..', 'io', 'cli.js'), ...serve], { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function runOnce(kind: Kind, round: number, count: number, concurrency: number): Promise<string> {
  const directory = mkdtempSync(join(tmpdir(), 'keel-restart-storm-'));
  const port = await freePort();
  const startMs = performance.now();
  const child = launch(kind, port, directory);
  try {
    while (!(await canConnect(port))) {
      if (child.exitCode !== null || performance.now() - startMs > listenTimeoutMs) throw new Error(`${kind} did not listen`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const listeningMs = performance.now() - startMs;
    const cpuBeforeMicros = readCpuMicros(child.pid!);
    const batch = await IdleConnections.open({ port, level: 4, clientIdPrefix: `storm-${round}-`, count, concurrency, stallTimeoutMs: 60_000 });
    const allMs = performance.now() - startMs;
    const cpuStormMicros = readCpuMicros(child.pid!) - cpuBeforeMicros;
    batch.resetAll();
    const ms = (value: number): string => `${Math.round(value).toLocaleString('en-US')} ms`;
    return `${kind.padEnd(10)}  spawn to listening ${ms(listeningMs)}, storm ${ms(allMs - listeningMs)}, spawn to all connected ${ms(allMs)}; broker CPU before listening ${ms(cpuBeforeMicros / 1000)}, during the storm ${ms(cpuStormMicros / 1000)}`;
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
    rmSync(directory, { recursive: true, force: true });
  }
}

const count = idleConnectionCount(positiveArgument(2, 2_000));
const concurrency = positiveArgument(3, 100);
const rounds = positiveArgument(4, 2);
process.stdout.write(`restart storm: ${count} connections, ${concurrency} in flight, ${rounds} rounds, Node ${process.version}\n`);
for (let round = 0; round < rounds; round++) {
  for (const kind of kinds) process.stdout.write(`${await runOnce(kind, round, count, concurrency)}\n`);
}
