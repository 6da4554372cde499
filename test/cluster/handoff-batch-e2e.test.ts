/**
 * Batched hand-offs on a real `nats-server -js` (src/cluster/handoff-batch.ts): a burst of QoS 1
 * messages published on node a, with many unacknowledged at once, reaches the subscriber on node
 * b once each and in publish order, while the hand-off stream stored fewer messages than were
 * published (its last sequence counts every message it ever took, markers and batches alike), so
 * the burst crossed as batches. A NATS-native reader of `$KEEL.handoff.>` sees those batches
 * under `$KEEL.handoff.$batch`, with `Keel-Batch` saying how many messages each carries. The same
 * with QoS 2 (publisher and subscription): the batches are of QoS 2 messages, each named in a's log
 * first (`sent_logged`), and every message reaches b exactly once.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { MqttClient } from 'mqtt';
import { describe, expect, test } from 'vitest';
import { handoffStreamName } from '../../io/cluster/nats-link.js';
import { decodeBatch } from '../../src/cluster/handoff-batch.js';
import { waitUntil } from '../integration/helpers.js';
import { useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const bed = useClusterTestBed('keel-batch-e2e-');
const burst = 400;

describe('batched hand-offs on nats-server -js', () => {
  test.each([1, 2] as const)(
    'a burst of QoS %i from a reaches b once each, in order, in fewer stream messages than it has',
    async (qos) => {
      const nats = await startNats();
      const [a, b] = [await bed.startNode(nats, 'a'), await bed.startNode(nats, 'b')];
      const subscriber: MqttClient = (await bed.connect(b, 'sub-b')).client;
      await subscriber.subscribeAsync('burst/x', { qos });
      const received: string[] = [];
      subscriber.on('message', (_topic, payload) => received.push(payload.toString('utf8')));
      // Watch the stream as a NATS-native reader would: every message on the hand-off subjects.
      const observer = await connect({ servers: [nats.url] });
      const batchSizes: number[] = [];
      const unreadable: number[] = [];
      const watch = observer.subscribe('$KEEL.handoff.>', {
        callback: (_error, message) => {
          if (message.subject !== '$KEEL.handoff.$batch') return;
          batchSizes.push(Number(message.headers?.get('Keel-Batch')));
          if (decodeBatch(message.data)?.length !== batchSizes.at(-1)) unreadable.push(message.data.length);
        },
      });
      const publisher: MqttClient = (await bed.connect(a, 'pub-a')).client;
      const before = (await (await jetstreamManager(observer)).streams.info(handoffStreamName)).state.last_seq;
      // All at once: MQTT.js keeps them unacknowledged together, so a's hand-offs queue behind the one in JetStream.
      await Promise.all(Array.from({ length: burst }, (_, index) => publisher.publishAsync('burst/x', `m${index}`, { qos })));
      await waitUntil(() => received.length >= burst, 20_000, `${burst} messages on b`);
      const stored = (await (await jetstreamManager(observer)).streams.info(handoffStreamName)).state.last_seq - before;
      watch.unsubscribe();
      await observer.close();
      expect(received).toEqual(Array.from({ length: burst }, (_, index) => `m${index}`));
      expect(stored).toBeGreaterThan(0);
      expect(stored).toBeLessThan(burst);
      expect(batchSizes.length).toBeGreaterThan(0);
      expect(batchSizes.every((size) => size >= 2)).toBe(true);
      expect(unreadable).toEqual([]);
      // Each node counts its side in its metrics: a the batches it sent, b those it applied.
      const batches = async (node: typeof a, direction: string): Promise<number> => {
        const port = /"event":"admin-listening".*"port":(\d+)/.exec(node.stdout())?.[1];
        expect(port).toBeDefined();
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return Number(new RegExp(`keel_cluster_handoff_batches_total\\{direction="${direction}"\\} (\\d+)`).exec(text)?.[1] ?? -1);
      };
      expect(await batches(a, 'sent')).toBe(batchSizes.length);
      expect(await batches(a, 'sent_logged')).toBe(qos === 2 ? batchSizes.length : 0);
      expect(await batches(b, 'applied')).toBe(batchSizes.length);
    },
    60_000,
  );
});
