/**
 * `keel serve` as a cluster node, with the link wired into the server (io/server.ts, io/node-host.ts)
 * and a scripted clustered core (startServer's createCore) against a real `nats-server -js`:
 *
 * - the core hears `connected` once NATS is set up; the requests it makes come out on NATS (a held
 *   subscription, re-issued after `connected`, receives a NATS-native publish) and what NATS says
 *   comes back as inputs through the host;
 * - while NATS is down `/readyz` is 503 "degraded", `/healthz` stays 200, `keel_cluster_link_up` is 0
 *   and the log says `cluster-link-down` with the URL; once NATS returns all three say so again;
 * - the CLI takes --cluster (repeatable, comma lists) and --node-id, and a bad or incomplete
 *   cluster setting is exit 2 with what is wrong.
 */
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { Logger } from '../../io/logger.js';
import { type RunningServer, startServer } from '../../io/server.js';
import { ensureBuilt, runKeel } from '../integration/helpers.js';
import { startNats, stopAllNats } from './nats-fixture.js';
import { ScriptedClusterCore } from './scripted-cluster-core.js';

const servers: RunningServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});
afterAll(stopAllNats);

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const startMs = Date.now();
  while (!(await condition())) {
    if (Date.now() - startMs > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function get(port: number, path: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, text: await response.text() };
}

function linkUpMetric(metrics: string): number | null {
  const match = /^keel_cluster_link_up (\d+)$/m.exec(metrics);
  return match === null ? null : Number(match[1]);
}

describe('keel serve with a cluster link', () => {
  test('the link carries the core requests and inputs; /readyz, /metrics and the log follow the link through a NATS restart', async () => {
    const nats = await startNats();
    const core = new ScriptedClusterCore();
    // Held: issued at start (the link is not up yet: dropped) and again after every `connected`.
    core.queue([{ op: 'subscribe', subscriptionId: 1, subject: 'native.>', queueGroup: null }], true);
    const lines: string[] = [];
    const logger = new Logger('info', { write: (line: string) => lines.push(line) });
    const server = await startServer({
      host: '127.0.0.1',
      port: 0,
      config: { cluster: { nats: [nats.url], nodeId: 'serve-a' }, admin: { host: '127.0.0.1', port: 0 } },
      createCore: () => core,
      logger,
      clusterLimits: { setupRetryMs: 200, reconnectWaitMs: 100, pingIntervalMs: 1_000 },
    });
    servers.push(server);
    const adminPort = server.admin!.port;
    await until(() => core.statuses().includes('connected'), 'connected');
    expect((await get(adminPort, '/readyz')).status).toBe(200);
    expect(linkUpMetric((await get(adminPort, '/metrics')).text)).toBe(1);
    const native = await connect({ servers: [nats.url] });
    native.publish('native.one', 'from nats');
    await native.flush();
    await until(() => core.messages().length === 1, 'the NATS-native message');
    expect(core.messages()[0]).toMatchObject({ subject: 'native.one', text: 'from nats', subscriptionId: 1 });
    await native.close();

    await nats.kill();
    await until(async () => (await get(adminPort, '/readyz')).status === 503, '/readyz 503');
    const degraded = await get(adminPort, '/readyz');
    expect(JSON.parse(degraded.text)).toMatchObject({ status: 'degraded' });
    expect((await get(adminPort, '/healthz')).status).toBe(200);
    expect(linkUpMetric((await get(adminPort, '/metrics')).text)).toBe(0);
    const down = lines.find((line) => line.includes('"event":"cluster-link-down"'));
    expect(down).toContain(nats.url);
    expect(core.statuses()).toEqual(['connected', 'disconnected']);

    await nats.start();
    await until(() => core.statuses().length === 3, 'connected again');
    expect((await get(adminPort, '/readyz')).status).toBe(200);
    const metrics = (await get(adminPort, '/metrics')).text;
    expect(linkUpMetric(metrics)).toBe(1);
    expect(metrics).toMatch(/^keel_cluster_requests_total\{op="subscribe"\} 3$/m);
    expect(metrics).toMatch(/^keel_cluster_link_losses_total 1$/m);
    expect(lines.filter((line) => line.includes('"event":"cluster-link-up"')).length).toBe(2);
    await server.close();
    await nats.stop();
  }, 30_000);

  test('keel serve refuses an incomplete or malformed cluster setting with exit 2', async () => {
    ensureBuilt();
    const noNodeId = runKeel(['serve', '--port', '0', '--data-dir', '/nonexistent-keel-never-created', '--cluster', 'nats://127.0.0.1:4222']);
    expect(await noNodeId.exited).toBe(2);
    expect(noNodeId.stderr()).toContain('cluster.nodeId');
    const badUrl = runKeel(['serve', '--port', '0', '--data-dir', '/nonexistent-keel-never-created', '--cluster', 'nats://a:1,http://b', '--node-id', 'x']);
    expect(await badUrl.exited).toBe(2);
    expect(badUrl.stderr()).toContain('cluster.nats');
    const badNode = runKeel(['serve', '--port', '0', '--data-dir', '/nonexistent-keel-never-created', '--cluster', 'nats://127.0.0.1:4222', '--node-id', 'no spaces']);
    expect(await badNode.exited).toBe(2);
    expect(badNode.stderr()).toContain('cluster.nodeId');
  }, 60_000);
});
