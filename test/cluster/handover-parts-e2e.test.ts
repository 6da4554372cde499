/**
 * A session larger than one NATS message moves between two nodes with nothing lost, end to end
 * (src/cluster/handover-parts.ts): two `keel serve --cluster` child processes on one
 * `nats-server -js` (max_payload 1 MiB, the default `cluster.messageBytesMax`). An MQTT 5 client
 * with a QoS 1 subscription on node A goes offline; eight messages of 700,000 bytes (5.6 MB
 * queued, 5.3 MiB) are published for it; it connects with clean start 0 on node B. Before
 * parts, A kept the state to 512 KiB and left the newest queued messages out. Now B answers
 * session present 1 and every message arrives there, in order and intact; A put the state in
 * parts (each within max_payload, or NATS would have refused it), and once B adopted it the
 * `keel-handover` bucket holds no key any more, neither the head nor a part; A counts the hand-over
 * in `keel_cluster_handovers_sent_in_parts_total`.
 */
import { Kvm } from '@nats-io/kv';
import { connect as connectNats } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import { describe, expect, test } from 'vitest';
import { waitUntil } from '../integration/helpers.js';
import { useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const { startNode, connect, clients } = useClusterTestBed('keel-handover-parts-e2e-');

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

/** Message `index`'s payload: `bytes` long, its own pattern, so a part out of place shows. */
function payloadOf(index: number, bytes: number): Buffer {
  const payload = Buffer.alloc(bytes);
  for (let offset = 0; offset < bytes; offset++) payload[offset] = (offset * 7 + index * 13) & 0xff;
  payload.writeUInt32BE(index, 0);
  return payload;
}

/** `keel_cluster_handovers_sent_in_parts_total` in the /metrics of the node whose output is `stdout`. */
async function sentInParts(stdout: string): Promise<number | null> {
  const port = /"event":"admin-listening".*"port":(\d+)/.exec(stdout)?.[1];
  expect(port).toBeDefined();
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((item) => item.startsWith('keel_cluster_handovers_sent_in_parts_total '));
  return line === undefined ? null : Number(line.split(' ')[1]);
}

describe('a session larger than one NATS message', () => {
  test('moves to another node whole: session present 1, every queued message, no key left in keel-handover', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'pa'), await startNode(nats, 'pb')];
    const persistent = { clean: false, properties: { sessionExpiryInterval: 3_600 } };
    const onA = await connect(a, 'hoarder', persistent);
    await onA.client.subscribeAsync('big/#', { qos: 1 });
    await onA.client.endAsync();
    const count = 8;
    const bytes = 700_000;
    const { client: publisher } = await connect(a, 'big-publisher');
    for (let index = 0; index < count; index++) await publisher.publishAsync('big/x', payloadOf(index, bytes), { qos: 1 });
    // Every message is in the session on A before the move (routed locally as it was acknowledged).
    await sleep(500);
    const received: Buffer[] = [];
    const hoarder = mqtt.connect({ host: '127.0.0.1', port: b.port, protocolVersion: 5, clientId: 'hoarder', reconnectPeriod: 0, connectTimeout: 20_000, ...persistent });
    clients.push(hoarder);
    hoarder.on('message', (_topic, payload) => received.push(payload));
    const sessionPresent = await new Promise<boolean>((resolve, reject) => {
      hoarder.once('connect', (connack) => resolve(connack.sessionPresent));
      hoarder.once('error', reject);
    });
    expect(sessionPresent).toBe(true);
    await waitUntil(() => received.length >= count, 20_000, 'the queued messages on node b');
    expect(received.length).toBe(count);
    for (let index = 0; index < count; index++) expect(received[index]!.equals(payloadOf(index, bytes))).toBe(true);
    expect(b.stdout()).toContain('"event":"session-adopted"');
    // The state went in parts (5.6 MB in parts of under 1 MiB: six at least).
    const handedOver = a
      .stdout()
      .split('\n')
      .find((line) => line.includes('"event":"session-handed-over"'));
    expect(handedOver).toBeDefined();
    expect(Number(/"parts":([0-9]+)/.exec(handedOver!)?.[1])).toBeGreaterThanOrEqual(6);
    expect(a.stdout()).not.toContain('handover-truncated');
    // A counts it in /metrics.
    expect(await sentInParts(a.stdout())).toBe(1);
    // B deletes the head and its parts once its log holds the session.
    const link = await connectNats({ servers: nats.url });
    try {
      const bucket = await new Kvm(link).open('keel-handover');
      const live = async () => {
        const keys: string[] = [];
        for await (const key of await bucket.keys()) {
          const entry = await bucket.get(key);
          if (entry?.operation === 'PUT') keys.push(key);
        }
        return keys;
      };
      const startMs = Date.now();
      while ((await live()).length > 0 && Date.now() - startMs < 10_000) await sleep(200);
      expect(await live()).toEqual([]);
    } finally {
      await link.close();
      await nats.stop();
    }
  }, 120_000);
});
