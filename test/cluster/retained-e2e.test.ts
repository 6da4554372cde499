/**
 * Which write of a retained value wins (src/cluster/retained-sync.ts), end to end: two
 * `keel serve --cluster` child processes on one `nats-server -js`, MQTT.js clients.
 *
 * Two publishers, one on each node, send 25 retained QoS 1 messages each to the same topic at the
 * same time, each waiting for its PUBACK before the next. Their puts race in the bucket as
 * compare-and-sets at revisions each node learns from its watch, so many meet a conflict and go
 * again (their publisher still waits) on real NATS. Once both are done, a new subscriber on either
 * node gets the same retained message, and it is one of the two last ones: every earlier message
 * of a publisher was acknowledged before its last one was sent, so none may outlive it.
 */
import { describe, expect, test } from 'vitest';
import { type ClusterNode, useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const { startNode, connect } = useClusterTestBed('keel-retained-e2e-');

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));
const messagesPerPublisher = 25;

describe('retained messages racing across a keel cluster on nats-server -js', () => {
  test('concurrent retained publishers on two nodes: every node ends on the same value, one of the two last ones', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'ra'), await startNode(nats, 'rb')];
    const { client: onA } = await connect(a, 'racer-a');
    const { client: onB } = await connect(b, 'racer-b');
    const race = async (client: typeof onA, name: string) => {
      for (let index = 1; index <= messagesPerPublisher; index++) await client.publishAsync('race/x', `${name}-${index}`, { qos: 1, retain: true });
    };
    await Promise.all([race(onA, 'a'), race(onB, 'b')]);
    const retainedOn = async (node: ClusterNode, clientId: string): Promise<string[]> => {
      const { client } = await connect(node, clientId);
      const received: string[] = [];
      client.on('message', (_topic, payload, packet) => {
        if (packet.retain) received.push(payload.toString('utf8'));
      });
      await client.subscribeAsync('race/x', { qos: 1 });
      await sleep(300);
      await client.endAsync();
      return received;
    };
    const lasts = [`a-${messagesPerPublisher}`, `b-${messagesPerPublisher}`];
    // Both PUBACKs mean the bucket holds a final value; each node applies it from its watch.
    const startMs = Date.now();
    let seenA: string[] = [];
    let seenB: string[] = [];
    do {
      seenA = await retainedOn(a, `reader-a-${Date.now()}`);
      seenB = await retainedOn(b, `reader-b-${Date.now()}`);
    } while (!(seenA.length === 1 && seenA[0] === seenB[0]) && Date.now() - startMs < 15_000);
    expect(seenA).toHaveLength(1);
    expect(lasts).toContain(seenA[0]);
    expect(seenB).toEqual(seenA);
    await nats.stop();
  }, 90_000);
});
