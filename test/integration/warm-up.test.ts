/**
 * Proves the warm start (io/warm-up.ts): a server asked for it runs its connections through a
 * throwaway broker before it listens, logs one `warm-up` line with the count and duration, and
 * leaves nothing of them in the real server: no log line of the real core (its client lines are
 * on, at info level), no connection, client or session in its statistics, nothing on `/metrics`,
 * no temporary directory left behind. While it runs `/readyz` answers 503 "warming up" and the
 * MQTT listener is not open; then 200 "ready". A bad `warmUpConnections` is a configuration error;
 * `keel serve` warms up with `--warm-up-connections N` and not without it (the default). Servers
 * listen on 127.0.0.1, port 0, and are closed by the tests; the warm-up is bounded by its deadline.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MonotonicClock } from '../../io/clock.js';
import { Logger } from '../../io/logger.js';
import { ConfigError, type RunningServer, startServer } from '../../io/server.js';
import { warmUp } from '../../io/warm-up.js';
import type { BrokerStats } from '../../src/broker/stats.js';
import { Clients, ensureBuilt, runKeel, sleep, waitUntil } from './helpers.js';

let directory = '';

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), 'keel-wu-test-'));
});

afterAll(() => {
  rmSync(directory, { recursive: true, force: true });
});

/** The warm-up's own temporary directories now in the system's temporary directory. */
function warmUpDirectories(): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith('keel-warm-up-'));
}

describe('warmUp', () => {
  it('connects every client through a throwaway broker, 3.1.1 and 5.0, and removes its directory', async () => {
    const before = new Set(warmUpDirectories());
    const report = await warmUp({ connections: 120, concurrency: 16, deadlineMs: 20_000, clock: new MonotonicClock(), logInfo: true });
    expect(report).toMatchObject({ connected: 120, failed: 0, timedOut: false });
    expect(report.durationMs).toBeGreaterThanOrEqual(0);
    expect(warmUpDirectories().filter((name) => !before.has(name))).toEqual([]);
  });

  it('stops at its deadline and counts the connections it cut as failed', async () => {
    const report = await warmUp({ connections: 100_000, concurrency: 50, deadlineMs: 150, clock: new MonotonicClock(), logInfo: false });
    expect(report.timedOut).toBe(true);
    expect(report.connected + report.failed).toBeLessThan(100_000);
    expect(report.failed).toBeGreaterThan(0);
  });
});

describe('a server with warmUpConnections', () => {
  let server: RunningServer | null = null;
  const lines: Record<string, unknown>[] = [];
  const clients = new Clients(() => server!.port);

  afterAll(async () => {
    await clients.endAll();
    await server?.close();
  });

  it('warms up before listening, logs one line, and leaves no trace in the real broker', async () => {
    const logger = new Logger('info', { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
    const config = { warmUpConnections: 200, sysIntervalSeconds: 0, admin: { host: '127.0.0.1', port: 0 } };
    server = await startServer({ host: '127.0.0.1', port: 0, dataDirectory: join(directory, 'server'), config, logger });
    const warmUpLines = lines.filter((line) => line.event === 'warm-up');
    expect(warmUpLines).toHaveLength(1);
    expect(warmUpLines[0]).toMatchObject({ level: 'info', connections: 200 });
    expect(typeof warmUpLines[0]!.durationMs).toBe('number');
    const events = lines.map((line) => line.event);
    expect(events.indexOf('warm-up')).toBeLessThan(events.indexOf('listening'));
    // Nothing of the throwaway clients reached the real core, its log or its metrics.
    expect(JSON.stringify(lines)).not.toContain('keel-warm-up-');
    expect(events).not.toContain('client-connected');
    const stats = (server.core as unknown as { stats: BrokerStats }).stats;
    expect({ opened: stats.connectionsOpened, clients: stats.clientsConnectedMax, sessions: stats.sessionsCurrent }).toEqual({ opened: 0, clients: 0, sessions: 0 });
    const metrics = await (await fetch(`http://127.0.0.1:${server.admin!.port}/metrics`)).text();
    expect(metrics).toMatch(/^keel_connections_opened_total 0$/m);
    expect(metrics).toMatch(/^keel_clients_connected_max 0$/m);
    // A real client is the first the real broker counts, and its line is logged.
    await clients.connect(4, { clientId: 'first-real-client' });
    expect(stats.connectionsOpened).toBe(1);
    expect(lines.filter((line) => line.event === 'client-connected').map((line) => line.clientId)).toEqual(['first-real-client']);
  });

  it('refuses a warmUpConnections that is not a count, with the other problems', async () => {
    const attempt = startServer({ host: '127.0.0.1', port: 0, dataDirectory: join(directory, 'bad'), config: { warmUpConnections: -1, keepAliveSecondsMax: 'x' } });
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow(/warmUpConnections must be an integer from 0 \(no warm-up\) to 100000/);
  });
});

describe('keel serve', () => {
  beforeAll(() => ensureBuilt());

  async function probe(port: number): Promise<{ status: number; body: { status: string } }> {
    const response = await fetch(`http://127.0.0.1:${port}/readyz`);
    return { status: response.status, body: (await response.json()) as { status: string } };
  }

  it('is not ready while it warms up (503 "warming up", no MQTT listener), then ready, and logs the warm-up', async () => {
    const keel = runKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(directory, 'serve'), '--warm-up-connections', '2000']);
    try {
      let adminPort = 0;
      await waitUntil(
        () => {
          const match = /"event":"admin-listening".*"port":(\d+)/.exec(keel.stdout());
          if (match !== null) adminPort = Number(match[1]);
          return adminPort > 0 || keel.child.exitCode !== null;
        },
        10_000,
        'the admin-listening line',
      );
      expect(adminPort, keel.stderr()).toBeGreaterThan(0);
      // Recovery of an empty directory is short; the warm-up (2,000 connections, up to 5 s) is not.
      let answer = await probe(adminPort);
      const deadlineMs = Date.now() + 20_000;
      while (answer.body.status === 'recovering' && Date.now() < deadlineMs) {
        await sleep(5);
        answer = await probe(adminPort);
      }
      const listeningWhileWarming = keel.stdout().includes('"event":"listening"');
      expect(answer).toEqual({ status: 503, body: { status: 'warming up' } });
      expect(listeningWhileWarming).toBe(false);
      while (answer.status !== 200 && Date.now() < deadlineMs) {
        await sleep(25);
        answer = await probe(adminPort);
      }
      expect(answer).toEqual({ status: 200, body: { status: 'ready' } });
      // 2,000 connections, or fewer when its deadline cut it short on a busy machine (a warning then).
      expect(keel.stdout()).toMatch(/"event":"warm-up","connections":\d+,"durationMs":\d+/);
      expect(keel.stdout()).toContain('"event":"listening"');
    } finally {
      keel.child.kill('SIGTERM');
      await keel.exited;
    }
  }, 40_000);

  it('does not warm up unless asked, and refuses a --warm-up-connections that is not a count (exit 2)', async () => {
    const keel = runKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(directory, 'cold')]);
    try {
      await waitUntil(() => keel.stdout().includes('"event":"listening"') || keel.child.exitCode !== null, 10_000, 'the listening line');
      expect(keel.stdout(), keel.stderr()).toContain('"event":"listening"');
      expect(keel.stdout()).not.toContain('"event":"warm-up"');
    } finally {
      keel.child.kill('SIGTERM');
      await keel.exited;
    }
    const bad = runKeel(['serve', '--port', '0', '--data-dir', join(directory, 'never'), '--warm-up-connections', 'many']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toContain('must be an integer from 0 (no warm-up) to 100000');
  }, 20_000);
});
