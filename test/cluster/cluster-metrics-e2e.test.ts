/**
 * A cluster node's own counters in `/metrics` (io/admin/metrics.ts, from the core's view): two
 * `keel serve --cluster` nodes on a real `nats-server -js`, clients that publish across them, take
 * a client id over from one node to the other and set a retained message; each node's scrape then
 * counts what it did: claims won, hand-offs sent and stored by the publisher's node and applied by
 * the subscriber's, the takeover on the node that lost the client, retained puts and applications,
 * and the client ids each node knows in `keel-sessions`. `promtool check metrics` accepts the text.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { type ClusterNode, useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const bed = useClusterTestBed('keel-cluster-metrics-');
const promtoolPresent = spawnSync('promtool', ['--version']).status === 0;

async function until(condition: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const startMs = Date.now();
  while (!(await condition())) {
    if (Date.now() - startMs > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function adminPort(node: ClusterNode): number {
  const match = /"event":"admin-listening".*"port":(\d+)/.exec(node.stdout());
  if (match === null) throw new Error(`${node.nodeId}: no admin-listening line`);
  return Number(match[1]);
}

async function scrape(node: ClusterNode): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${adminPort(node)}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

/** The value of one sample (`name` or `name{labels}` exactly as printed), or null when absent. */
function sample(text: string, series: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return null;
}

describe('a cluster node in /metrics', () => {
  test('claims, hand-offs, takeovers and retained puts are counted on the node that made them', async () => {
    const nats = await startNats();
    const a = await bed.startNode(nats, 'metrics-a');
    const b = await bed.startNode(nats, 'metrics-b');
    const { client: subscriber } = await bed.connect(b, 'metrics-subscriber');
    const received: string[] = [];
    subscriber.on('message', (_topic, payload) => received.push(payload.toString()));
    await subscriber.subscribeAsync('metrics/#', { qos: 1 });
    const { client: publisher } = await bed.connect(a, 'metrics-publisher');
    // The subscription must be known on A before its publications are handed off to B.
    await until(
      async () => {
        await publisher.publishAsync('metrics/probe', 'probe', { qos: 1 });
        return received.includes('probe');
      },
      10_000,
      'the subscription on B to be seen from A',
    );
    const count = 5;
    for (let index = 0; index < count; index++) await publisher.publishAsync('metrics/qos1', `m${index}`, { qos: 1 });
    await publisher.publishAsync('metrics/retained', 'kept', { qos: 1, retain: true });
    await until(() => received.filter((text) => text.startsWith('m')).length === count, 10_000, 'the QoS 1 messages on B');
    // The publisher's client id moves to B: A loses it.
    const { client: moved } = await bed.connect(b, 'metrics-publisher');
    expect(moved.connected).toBe(true);

    await until(async () => (sample(await scrape(a), 'keel_cluster_sessions_taken_over_total') ?? 0) >= 1, 10_000, 'the takeover counted on A');
    const onA = await scrape(a);
    const onB = await scrape(b);
    // A: one claim won (the publisher), its hand-offs sent and stored, one retained put, one takeover.
    expect(sample(onA, 'keel_cluster_session_claims_total{outcome="won"}')).toBe(1);
    expect(sample(onA, 'keel_cluster_handoffs_total{outcome="sent"}')).toBeGreaterThanOrEqual(count);
    expect(sample(onA, 'keel_cluster_handoffs_total{outcome="stored"}')).toBeGreaterThanOrEqual(count);
    expect(sample(onA, 'keel_cluster_retained_total{op="put"}')).toBe(1);
    expect(sample(onA, 'keel_cluster_sessions_taken_over_total')).toBe(1);
    expect(sample(onA, 'keel_cluster_session_claims_pending')).toBe(0);
    // No gap in these nodes' reading, so none given up at the ack floor (the counter is exported).
    expect(sample(onA, 'keel_cluster_handoff_gaps_below_floor_total')).toBe(0);
    // B: two claims won (the subscriber and the moved publisher), A's hand-offs applied, the
    // retained message applied from the bucket, nothing taken over from it.
    expect(sample(onB, 'keel_cluster_session_claims_total{outcome="won"}')).toBe(2);
    expect(sample(onB, 'keel_cluster_handoffs_total{outcome="applied"}')).toBeGreaterThanOrEqual(count);
    expect(sample(onB, 'keel_cluster_retained_total{op="applied"}')).toBeGreaterThanOrEqual(1);
    expect(sample(onB, 'keel_cluster_sessions_taken_over_total')).toBe(0);
    // Both nodes watch the whole bucket: each knows both client ids.
    await until(async () => sample(await scrape(a), 'keel_cluster_session_keys_known') === 2, 10_000, 'A to know both client ids');
    expect(sample(await scrape(b), 'keel_cluster_session_keys_known')).toBe(2);
    expect(sample(onA, 'keel_cluster_link_up')).toBe(1);

    if (promtoolPresent || process.env.CI === 'true') {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: onB, encoding: 'utf8' });
      expect(check.error).toBeUndefined();
      expect(`${check.stdout}${check.stderr}`).toBe('');
      expect(check.status).toBe(0);
    }
  }, 60_000);
});
