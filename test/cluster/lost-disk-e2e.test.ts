/**
 * A node's disk lost for good, with real processes (issue 16, point 3): two `keel serve --cluster`
 * nodes on one `nats-server -js`. Node `la` is killed (SIGKILL), its data directory deleted, and
 * it is started again under the same node id on the empty directory, while NATS still holds its
 * durable consumer, its claims in `keel-sessions` and the dedupe ids of its hand-offs. What it
 * proves, by what the clients receive:
 *
 * - the subscriber on the other node gets every QoS 1 message acknowledged through `la`, before
 *   the loss and after it (a node that started its counters again from 1 had its first hand-offs
 *   after the loss taken by JetStream for duplicates of its earlier ones, acknowledged and never
 *   stored: the simulator's seed 12, fixed by the epoch's clock floor in cluster-node.ts);
 * - the persistent session that lived on `la` is gone: its client gets session present 0;
 * - the restarted node serves new clients: a new subscriber there gets what is published on it
 *   and, from the stream, what is published on the other node.
 */
import { rmSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { describe, expect, test } from 'vitest';
import { waitUntil } from '../integration/helpers.js';
import { type ClusterNode, useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const bed = useClusterTestBed('keel-lost-disk-e2e-');

async function client(node: ClusterNode, clientId: string, options: Parameters<typeof bed.connect>[2] = {}): Promise<MqttClient> {
  return (await bed.connect(node, clientId, { connectTimeout: 5_000, ...options })).client;
}

function collect(subscriber: MqttClient): string[] {
  const received: string[] = [];
  subscriber.on('message', (_topic, payload) => received.push(payload.toString('utf8')));
  return received;
}

/** Lets a node's new NATS interest reach the server before the first publish. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 300));
}

describe('a cluster node whose disk is lost', () => {
  test('comes back empty under its node id: nothing acknowledged is lost for the other node, its own session is gone, it serves new clients', async () => {
    const nats = await startNats();
    let a = await startNode('la');
    const b = await startNode('lb');
    const session = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const subscriber = await client(b, 'lost-sub', session);
    await subscriber.subscribeAsync('lost/#', { qos: 1 });
    const received = collect(subscriber);
    const living = await client(a, 'lost-session-a', session);
    await living.subscribeAsync('lost/#', { qos: 1 });
    await settle();
    const acknowledged: string[] = [];
    const before = await client(a, 'lost-pub-1');
    for (let index = 0; index < 20; index++) {
      await before.publishAsync('lost/x', `before${index}`, { qos: 1 });
      acknowledged.push(`before${index}`);
    }
    a.child.kill('SIGKILL');
    await a.exited;
    rmSync(a.dataDirectory, { recursive: true, force: true });
    a = await startNode('la', a.dataDirectory);

    // The session that lived on a went with its disk.
    const back = await bed.connect(a, 'lost-session-a', session);
    expect(back.sessionPresent).toBe(false);
    const fresh = await client(a, 'lost-fresh-sub');
    await fresh.subscribeAsync('lost/#', { qos: 1 });
    const freshReceived = collect(fresh);
    await settle();
    const after = await client(a, 'lost-pub-2');
    for (let index = 0; index < 20; index++) {
      await after.publishAsync('lost/x', `after${index}`, { qos: 1 });
      acknowledged.push(`after${index}`);
    }
    const onB = await client(b, 'lost-pub-b');
    await onB.publishAsync('lost/b', 'from-b', { qos: 1 });

    const texts = (): Set<string> => new Set(received);
    await waitUntil(() => acknowledged.every((text) => texts().has(text)), 30_000, `all ${acknowledged.length} acknowledged messages on lb`);
    // Published on a in order: they reach b in that order (a redelivery may repeat one).
    expect([...new Set(received.filter((text) => text !== 'from-b'))]).toEqual(acknowledged);
    // The new subscriber on a gets a's own publications at once, and b's from the stream once a
    // has waited out the gap below its consumer's first redelivery (handoffGapWaitMs, 15 s).
    await waitUntil(() => acknowledged.slice(20).every((text) => freshReceived.includes(text)), 15_000, "a's publications on its new subscriber");
    await waitUntil(() => freshReceived.includes('from-b'), 40_000, "lb's publication on la's new subscriber");
    await nats.stop();

    function startNode(nodeId: string, dataDirectory?: string): Promise<ClusterNode> {
      return bed.startNode(nats, nodeId, dataDirectory);
    }
  }, 120_000);
});
