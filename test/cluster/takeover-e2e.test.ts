/**
 * Client ids unique across a cluster, end to end (src/cluster/session-registry.ts): two
 * `keel serve --cluster` child processes on one `nats-server -js`, MQTT.js clients.
 *
 * - takeover across nodes: a client connected on node A with a will connects again on node B; A's
 *   connection gets DISCONNECT 0x8E Session taken over, the will reaches a subscriber exactly once,
 *   and B's connection stays up;
 * - a persistent session moves with its client (src/cluster/session-handover.ts): an MQTT 5 client
 *   with a QoS 1 subscription on node A disconnects, three QoS 1 messages are published for it,
 *   and it connects with clean start 0 on node B: session present 1, the three queued messages
 *   arrive, and its subscription (which it does not make again) gets a new publication on B;
 * - a live move: connected on A, the client connects on B; A's connection gets DISCONNECT 0x8E
 *   and B answers session present 1;
 * - the `keel-sessions` key of a session that expired is deleted (read from the bucket itself).
 */
import { Kvm } from '@nats-io/kv';
import { connect as connectNats } from '@nats-io/transport-node';
import mqtt, { type IDisconnectPacket } from 'mqtt';
import { describe, expect, test } from 'vitest';
import { sessionKey } from '../../src/cluster/session-registry.js';
import { waitUntil } from '../integration/helpers.js';
import { useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const { startNode, connect, clients } = useClusterTestBed('keel-takeover-e2e-');

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

/** Polls an asynchronous condition every 100 ms until it holds, or fails after `timeoutMs`. */
async function waitFor(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const startMs = Date.now();
  while (!(await condition())) {
    if (Date.now() - startMs > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe('client ids across a keel cluster on nats-server -js', () => {
  test('takeover across nodes: DISCONNECT 0x8E on the old node, the will once, the new connection stays', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'ta'), await startNode(nats, 'tb')];
    const { client: watcher } = await connect(b, 'watcher');
    await watcher.subscribeAsync('wills/#', { qos: 1 });
    const wills: string[] = [];
    watcher.on('message', (_topic, payload) => wills.push(payload.toString('utf8')));
    await sleep(300);
    const { client: first } = await connect(a, 'roamer', { will: { topic: 'wills/roamer', payload: Buffer.from('roamer gone'), qos: 1, retain: false } });
    const disconnects: number[] = [];
    first.on('disconnect', (packet: IDisconnectPacket) => disconnects.push(packet.reasonCode ?? 0));
    const { client: second } = await connect(b, 'roamer');
    await waitUntil(() => disconnects.length >= 1, 10_000, 'DISCONNECT on node a');
    expect(disconnects).toEqual([0x8e]);
    await waitUntil(() => wills.length >= 1, 10_000, 'the will');
    await sleep(1_500);
    expect(wills).toEqual(['roamer gone']);
    expect(second.connected).toBe(true);
    expect(a.stdout()).toContain('"event":"session-takeover"');
    await nats.stop();
  }, 90_000);

  test('a persistent session moves to another node: session present 1, its queued messages, its subscription', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'ha'), await startNode(nats, 'hb')];
    const persistent = { clean: false, properties: { sessionExpiryInterval: 3_600 } };
    const onA = await connect(a, 'keeper', persistent);
    expect(onA.sessionPresent).toBe(false);
    await onA.client.subscribeAsync('kept/#', { qos: 1 });
    await onA.client.endAsync();
    const { client: publisher } = await connect(a, 'publisher');
    for (const text of ['one', 'two', 'three']) await publisher.publishAsync('kept/x', text, { qos: 1 });
    // Listening before the CONNACK: the queued messages follow it at once.
    const received: string[] = [];
    const keeper = mqtt.connect({ host: '127.0.0.1', port: b.port, protocolVersion: 5, clientId: 'keeper', reconnectPeriod: 0, connectTimeout: 10_000, ...persistent });
    clients.push(keeper);
    keeper.on('message', (_topic, payload) => received.push(payload.toString('utf8')));
    const sessionPresent = await new Promise<boolean>((resolve, reject) => {
      keeper.once('connect', (connack) => resolve(connack.sessionPresent));
      keeper.once('error', reject);
    });
    expect(sessionPresent).toBe(true);
    await waitUntil(() => received.length >= 3, 10_000, 'the queued messages on node b');
    expect(received.slice(0, 3)).toEqual(['one', 'two', 'three']);
    // The subscription came with the session: a new publication through node b reaches it.
    const { client: publisherOnB } = await connect(b, 'publisher-b');
    await publisherOnB.publishAsync('kept/y', 'four', { qos: 1 });
    await waitUntil(() => received.includes('four'), 10_000, 'a new publication on node b');
    expect(b.stdout()).toContain('"event":"session-adopted"');
    expect(a.stdout()).toContain('"event":"session-handed-over"');
    await nats.stop();
  }, 90_000);

  test('a live move: DISCONNECT 0x8E on the old node, session present 1 on the new one', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'la'), await startNode(nats, 'lb')];
    const persistent = { clean: false, properties: { sessionExpiryInterval: 3_600 } };
    const { client: first } = await connect(a, 'walker', persistent);
    await first.subscribeAsync('walk/#', { qos: 1 });
    const disconnects: number[] = [];
    first.on('disconnect', (packet: IDisconnectPacket) => disconnects.push(packet.reasonCode ?? 0));
    const second = await connect(b, 'walker', persistent);
    expect(second.sessionPresent).toBe(true);
    await waitUntil(() => disconnects.length >= 1, 10_000, 'DISCONNECT on node a');
    expect(disconnects).toEqual([0x8e]);
    const received: string[] = [];
    second.client.on('message', (_topic, payload) => received.push(payload.toString('utf8')));
    const { client: publisher } = await connect(a, 'walk-publisher');
    await publisher.publishAsync('walk/1', 'after the move', { qos: 1 });
    await waitUntil(() => received.length >= 1, 10_000, 'a publication after the move');
    expect(received).toEqual(['after the move']);
    await nats.stop();
  }, 90_000);

  test('the keel-sessions key of a session that expired is deleted', async () => {
    const nats = await startNats();
    const a = await startNode(nats, 'ka');
    const link = await connectNats({ servers: nats.url });
    try {
      const bucket = await new Kvm(link).open('keel-sessions');
      const { client } = await connect(a, 'brief', { clean: false, properties: { sessionExpiryInterval: 1 } });
      await waitFor(async () => (await bucket.get(sessionKey('brief')))?.operation === 'PUT', 10_000, 'the claim in keel-sessions');
      await client.endAsync();
      // Expiry after 1 s offline; the node then deletes the key it owns.
      await waitFor(async () => (await bucket.get(sessionKey('brief')))?.operation !== 'PUT', 15_000, 'the key deleted');
      const entry = await bucket.get(sessionKey('brief'));
      expect(entry === null || entry.operation !== 'PUT').toBe(true);
    } finally {
      await link.close();
      await nats.stop();
    }
  }, 90_000);
});
