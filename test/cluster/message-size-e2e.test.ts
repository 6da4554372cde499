/**
 * A message larger than the cluster carries, on a real `nats-server -js` (default max_payload
 * 1 MiB, the default `cluster.messageBytesMax`; src/cluster/message-size.ts). Before, a QoS 1
 * PUBLISH just under `packetBytesMax` (1 MiB) was taken, its hand-off refused by NATS on every
 * retry, and every QoS 1 message published after it on that node waited behind it for good. Now
 * the node refuses that PUBLISH (DISCONNECT 0x95, counted), and what comes after crosses; a
 * message of about 1,000,000 bytes, which fits, crosses whole.
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, test } from 'vitest';
import { waitUntil } from '../integration/helpers.js';
import { useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const bed = useClusterTestBed('keel-size-e2e-');

describe('messages near the NATS payload limit', () => {
  test('one too large for NATS is refused at once and holds nothing up; one that fits crosses', async () => {
    const nats = await startNats();
    const [a, b] = [await bed.startNode(nats, 'a'), await bed.startNode(nats, 'b')];
    const subscriber: MqttClient = (await bed.connect(b, 'sub-b')).client;
    await subscriber.subscribeAsync('big/#', { qos: 1 });
    const received: number[] = [];
    let probed = false;
    subscriber.on('message', (topic, payload) => {
      if (topic === 'big/probe') probed = true;
      else received.push(payload.length);
    });
    const publisher: MqttClient = (await bed.connect(a, 'pub-a')).client;
    // The subscription must be known on a before what a publishes is handed off to b.
    for (let tries = 0; tries < 100 && !probed; tries++) {
      await publisher.publishAsync('big/probe', 'p', { qos: 1 });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(probed).toBe(true);

    await publisher.publishAsync('big/x', Buffer.alloc(1_000_000, 7), { qos: 1 });
    await waitUntil(() => received.includes(1_000_000), 15_000, 'the 1,000,000-byte message on b');

    const disconnected = new Promise<number | undefined>((resolve) => publisher.once('disconnect', (packet) => resolve(packet.reasonCode)));
    publisher.publish('big/x', Buffer.alloc(1_048_400, 8), { qos: 1 });
    expect(await disconnected).toBe(0x95);
    expect(a.stdout()).toContain('"code":"cluster-message-too-large"');

    const { client: again } = await bed.connect(a, 'pub-a2');
    await again.publishAsync('big/x', 'after', { qos: 1 });
    await waitUntil(() => received.includes(5), 10_000, '"after" on b');
    expect(received).toEqual([1_000_000, 5]);
  }, 90_000);
});
