/**
 * A node meets a hand-off written by a newer Keel, on a real `nats-server -js`
 * (src/cluster/stream-format.ts). A NATS-native writer plays the newer node: it stores a message of
 * a kind this version does not know in the hand-off stream, then an ordinary QoS 1 hand-off behind
 * it. The node stops reading at the first: its subscriber gets neither, `/readyz` answers 503
 * degraded with the sequence, `keel_cluster_reader_stopped` is 1, the log says
 * `cluster-handoff-format-newer`, and the node's consumer has acknowledged neither, so the stream
 * still holds both for the version that reads them. `/healthz` stays live.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers } from '@nats-io/transport-node';
import { describe, expect, test } from 'vitest';
import { consumerName, handoffStreamName } from '../../io/cluster/nats-link.js';
import { waitUntil } from '../integration/helpers.js';
import { useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const bed = useClusterTestBed('keel-format-e2e-');

describe('a hand-off of a newer format on nats-server -js', () => {
  test('stops the reader there, reports it, and acknowledges nothing from it on', async () => {
    const nats = await startNats();
    const node = await bed.startNode(nats, 'a');
    const adminPort = /"event":"admin-listening".*"port":(\d+)/.exec(node.stdout())?.[1];
    expect(adminPort).toBeDefined();
    const admin = (path: string): Promise<Response> => fetch(`http://127.0.0.1:${adminPort}${path}`);
    const { client: subscriber } = await bed.connect(node, 'sub-a');
    await subscriber.subscribeAsync('future/x', { qos: 1 });
    const received: string[] = [];
    subscriber.on('message', (_topic, payload) => received.push(payload.toString('utf8')));

    const writer = await connect({ servers: [nats.url] });
    const js = jetstream(writer);
    const handoff = (subject: string, fields: Record<string, string>, text: string) => {
      const h = headers();
      for (const [name, value] of Object.entries(fields)) h.set(name, value);
      return js.publish(subject, new TextEncoder().encode(text), { headers: h });
    };
    // An ordinary hand-off from "node b" first: the reader works.
    await handoff('$KEEL.handoff.future.x', { 'Keel-Origin': 'b', 'Keel-Qos': '1', 'Keel-Seq': '1-1' }, 'before');
    await waitUntil(() => received.includes('before'), 10_000, 'the ordinary hand-off on a');
    const future = await handoff('$KEEL.handoff.$rules', { 'Keel-Origin': 'b' }, 'a kind from a newer version');
    await handoff('$KEEL.handoff.future.x', { 'Keel-Origin': 'b', 'Keel-Qos': '1', 'Keel-Seq': '1-2' }, 'after');

    for (const startMs = Date.now(); (await admin('/readyz')).status !== 503; ) {
      if (Date.now() - startMs > 10_000) throw new Error('timed out waiting for /readyz 503');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const readyz = (await (await admin('/readyz')).json()) as { status: string; reason: string };
    expect(readyz.status).toBe('degraded');
    expect(readyz.reason).toContain(`message ${future.seq}`);
    expect((await admin('/healthz')).status).toBe(200);
    expect(await (await admin('/metrics')).text()).toMatch(/^keel_cluster_reader_stopped 1$/m);
    expect(node.stdout()).toContain('"event":"cluster-handoff-format-newer"');
    // Give the "after" message time it would have needed to arrive, then check nothing did.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(received).toEqual(['before']);
    const mine = await (await jetstreamManager(writer)).consumers.info(handoffStreamName, consumerName('a'));
    expect(mine.ack_floor.stream_seq).toBe(future.seq - 1);
    await writer.close();
  }, 60_000);
});
