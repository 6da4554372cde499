/**
 * End-to-end tests of the `keel` executable as users run it: a real child process of
 * `node dist/io/cli.js` (built first if stale). They prove the help lists every command, a bad
 * configuration file exits 2 naming the file and every problem, `serve` listens on this machine
 * only unless `--host` opens it up (and says which in its log), SIGTERM makes a running broker say
 * goodbye to 5.0 clients with DISCONNECT 0x8B and exit 0, `keel pub`/`keel sub` round-trip a
 * message, the client commands fail with readable messages and meaningful exit codes, and
 * `keel sim`/`keel vopr` reach the simulator (same seed, same output, across processes), and a
 * failing run's reproduce line works as printed (`npx keel sim ...`) from the checkout.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSimulation } from '../../sim/simulation.js';
import { Clients, closedWithReason, ensureBuilt, type KeelProcess, repositoryRoot, runKeel, startKeelProcess, waitUntil } from './helpers.js';

let workDirectory: string;
const children: KeelProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  workDirectory = mkdtempSync(join(tmpdir(), 'keel-cli-'));
}, 60_000);

afterAll(() => {
  for (const keel of children) keel.child.kill('SIGKILL');
  rmSync(workDirectory, { recursive: true, force: true });
});

function track<T extends KeelProcess>(keel: T): T {
  children.push(keel);
  return keel;
}

/** The error code of a TCP connection attempt to `host`:`port`, or 'connected'. */
function connectError(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(3_000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
}

/** A port that was free a moment ago: connecting to it is refused. */
async function unusedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('keel command line', () => {
  it('--help lists every command', async () => {
    const keel = track(runKeel(['--help']));
    expect(await keel.exited).toBe(0);
    for (const command of ['serve', 'pub', 'sub']) expect(keel.stdout()).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });

  it('keel sim prints the same trace hash for the same seed, in separate processes', async () => {
    const first = track(runKeel(['sim', '--seed', '7']));
    const second = track(runKeel(['sim', '--seed', '7']));
    expect(await first.exited).toBe(0);
    expect(await second.exited).toBe(0);
    expect(first.stdout()).toMatch(/seed=7 .*trace_hash=[0-9a-f]+/);
    expect(second.stdout()).toBe(first.stdout());
  });

  it('keel sim --no-workload replays a seed in the world it had before the workload streams', async () => {
    const keel = track(runKeel(['sim', '--seed', '7', '--no-workload']));
    expect(await keel.exited).toBe(0);
    const expected = runSimulation({ seed: 7, workload: false, stdout: () => {}, stderr: () => {} });
    expect(keel.stdout()).toContain(`trace_hash=${expected.traceHash}`);
    expect(runSimulation({ seed: 7, stdout: () => {}, stderr: () => {} }).traceHash).not.toBe(expected.traceHash);
  });

  it('a reproduce line, run as printed from the checkout (or a folder in it), replays the failing run', async () => {
    const lines: string[] = [];
    const expected = runSimulation({ seed: 6, plant: 'qos2-twice', stdout: (line) => lines.push(line), stderr: () => {} });
    expect(expected.reproduce).toBe('npx keel sim --seed 6 --plant qos2-twice');
    // Offline: `npx keel` must find this checkout's own command, never ask the registry.
    const environment = { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' };
    const runs = [repositoryRoot, join(repositoryRoot, 'test', 'sim')].map((cwd) => {
      const child = spawn('sh', ['-c', expected.reproduce], { cwd, env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      return new Promise<{ code: number | null; stdout: string }>((resolve) => child.once('close', (code) => resolve({ code, stdout })));
    });
    for (const run of await Promise.all(runs)) {
      expect(run.code).toBe(1);
      expect(run.stdout).toBe(lines.map((line) => `${line}\n`).join(''));
      expect(run.stdout).toContain(`trace_hash=${expected.traceHash}`);
    }
    // Two `npx` start-ups (npm itself, then keel): 4 to 10 s alone, past 60 s at a load average of 14.
  }, 120_000);

  it('keel vopr runs the seeds it is asked for', async () => {
    const keel = track(runKeel(['vopr', '--count', '2', '--seed-start', '3']));
    expect(await keel.exited).toBe(0);
    expect(keel.stdout()).toContain('vopr seed_start=3 seeds=2 failures=0');
  });

  it('exits 2 naming the file when the config is not valid JSON', async () => {
    const file = join(workDirectory, 'broken.json');
    writeFileSync(file, '{ "packetBytesMax": ');
    const keel = track(runKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(workDirectory, 'd1'), '--config', file]));
    expect(await keel.exited).toBe(2);
    expect(keel.stderr()).toContain(file);
    expect(keel.stderr()).toMatch(/not valid JSON/);
  });

  it('exits 2 listing every problem when config values are bad', async () => {
    const file = join(workDirectory, 'bad.json');
    writeFileSync(file, JSON.stringify({ packetBytesMax: 10, maximumQos: 3, inflightPerSessoinMax: 5 }));
    const keel = track(runKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(workDirectory, 'd2'), '--config', file]));
    expect(await keel.exited).toBe(2);
    const stderr = keel.stderr();
    expect(stderr).toContain(file);
    expect(stderr).toContain('"packetBytesMax" must be an integer from 64');
    expect(stderr).toContain('"maximumQos" must be one of 0, 1, 2');
    expect(stderr).toContain('unknown setting "inflightPerSessoinMax"');
  });

  it('exits 2 on a bad option value', async () => {
    const keel = track(runKeel(['serve', '--port', 'seventy']));
    expect(await keel.exited).toBe(2);
    expect(keel.stderr()).toMatch(/port/);
  });

  it('pub exits 1 with a readable message when no broker listens', async () => {
    const port = await unusedPort();
    const keel = track(runKeel(['pub', '-h', '127.0.0.1', '-p', String(port), '-t', 'a', '-m', 'x']));
    expect(await keel.exited).toBe(1);
    expect(keel.stderr()).toMatch(new RegExp(`keel pub: cannot connect to 127\\.0\\.0\\.1:${port}.*ECONNREFUSED`));
  });

  it('pub and sub keep -h for the host, as mosquitto does, and say so in --help and after a usage error', async () => {
    const helps = ['pub', 'sub'].map((command) => track(runKeel([command, '--help'])));
    for (const help of helps) {
      expect(await help.exited).toBe(0);
      expect(help.stdout()).toMatch(/^ {2}-h, --host <host> +broker host \(not help: see --help\)/m);
      expect(help.stdout()).toContain('As in mosquitto_pub and mosquitto_sub, -h is the broker host; help is --help only.');
    }
    const bareH = track(runKeel(['pub', '-h']));
    expect(await bareH.exited).toBe(2);
    expect(bareH.stderr()).toContain("option '-h, --host <host>' argument missing\n(see --help; here -h is the broker host, not help)");
  }, 30_000);

  it('pub and sub exit 2 on usage errors', async () => {
    const noTopic = track(runKeel(['pub', '-m', 'x']));
    const twoSources = track(runKeel(['pub', '-t', 'a', '-m', 'x', '-n']));
    const persistentWithoutId = track(runKeel(['sub', '-t', 'a', '-c']));
    expect(await noTopic.exited).toBe(2);
    expect(noTopic.stderr()).toMatch(/topic is required/);
    expect(await twoSources.exited).toBe(2);
    expect(twoSources.stderr()).toMatch(/exactly one of/);
    expect(await persistentWithoutId.exited).toBe(2);
    expect(persistentWithoutId.stderr()).toMatch(/needs a client id/);
  });

  it('serve creates its data directory, and SIGTERM sends 5.0 clients DISCONNECT 0x8B and exits 0', async () => {
    const dataDirectory = join(workDirectory, 'serve-data');
    const keel = track(await startKeelProcess(dataDirectory));
    // Only the lock that says this broker owns the directory (io/data-directory-lock.ts).
    expect(readdirSync(dataDirectory)).toEqual(['keel.lock']);
    const clients = new Clients(() => keel.port);
    try {
      const { client } = await clients.connect(5);
      const reason = closedWithReason(client);
      keel.child.kill('SIGTERM');
      expect(await reason).toBe(0x8b);
      expect(await keel.exited).toBe(0);
      expect(keel.stdout()).toMatch(/"event":"shutdown".*"signal":"SIGTERM"/);
    } finally {
      await clients.endAll();
    }
  }, 10_000);

  it('serve listens on 127.0.0.1 unless --host is given, and says so', async () => {
    const keel = track(runKeel(['serve', '--port', '0', '--data-dir', join(workDirectory, 'local-data')]));
    await waitUntil(() => /"event":"local-only"/.test(keel.stdout()), 8_000, 'the local-only line');
    const listening = JSON.parse(
      keel
        .stdout()
        .split('\n')
        .find((line) => line.includes('"event":"listening"'))!,
    ) as { host: string; port: number };
    expect(listening.host).toBe('127.0.0.1');
    expect(keel.stdout()).toMatch(/"level":"warn","event":"local-only".*reachable from this machine only; pass --host 0\.0\.0\.0/);
    const clients = new Clients(() => listening.port);
    await clients.connect(4);
    await clients.endAll();
    // Another address of this machine, if it has one, is refused: nothing listens there.
    const outside = Object.values(networkInterfaces())
      .flat()
      .find((address) => address !== undefined && address.family === 'IPv4' && !address.internal);
    if (outside !== undefined) expect(await connectError(outside.address, listening.port)).toBe('ECONNREFUSED');
    keel.child.kill('SIGTERM');
    expect(await keel.exited).toBe(0);
  }, 10_000);

  it('serve --host 0.0.0.0 listens on every interface and warns that anonymous clients may connect', async () => {
    const keel = track(runKeel(['serve', '--host', '0.0.0.0', '--port', '0', '--data-dir', join(workDirectory, 'open-data')]));
    await waitUntil(() => /"event":"anonymous-access"/.test(keel.stdout()), 8_000, 'the anonymous-access line');
    expect(keel.stdout()).toMatch(/"event":"listening","host":"0\.0\.0\.0"/);
    expect(keel.stdout()).not.toContain('local-only');
    keel.child.kill('SIGTERM');
    expect(await keel.exited).toBe(0);
  }, 10_000);

  it('keel sub receives what keel pub publishes, as "topic payload"', async () => {
    const keel = track(await startKeelProcess(join(workDirectory, 'pubsub-data')));
    const port = String(keel.port);
    const sub = track(runKeel(['sub', '-h', '127.0.0.1', '-p', port, '-t', 'cli/+', '-q', '1', '-v', '-C', '1', '-W', '8']));
    // Nothing tells us when the subscriber's SUBSCRIBE has been handled, so publish until it exits.
    let published = 0;
    const deadlineMs = Date.now() + 6_000;
    while (sub.child.exitCode === null && Date.now() < deadlineMs) {
      const pub = runKeel(['pub', '-h', '127.0.0.1', '-p', port, '-t', 'cli/round-trip', '-q', '1', '-m', 'hello from pub', '-V', '3.1.1']);
      expect(await pub.exited).toBe(0);
      published++;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(await sub.exited).toBe(0);
    expect(sub.stdout()).toBe('cli/round-trip hello from pub\n');
    expect(published).toBeGreaterThan(0);
    keel.child.kill('SIGTERM');
    expect(await keel.exited).toBe(0);
  }, 10_000);
});
