/**
 * Client ids unique across a cluster, end to end (src/cluster/session-registry.ts): two
 * `keel serve --cluster` child processes on one `nats-server -js`, MQTT.js clients.
 *
 * - takeover across nodes: a client connected on node A with a will connects again on node B; A's
 *   connection gets DISCONNECT 0x8E Session taken over, the will reaches a subscriber exactly once,
 *   and B's connection stays up;
 * - a persistent session is not handed over yet: the client that moves to B with clean start 0
 *   gets session present 0 there, and the session A held is ended (back on A: session present 0).
 */
import type { IDisconnectPacket } from 'mqtt';
import { describe, expect, test } from 'vitest';
import { waitUntil } from '../integration/helpers.js';
import { useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const { startNode, connect } = useClusterTestBed('keel-takeover-e2e-');

const sleep = (milliseconds: number) => new Promise((resolve) => setTimeout(resolve, milliseconds));

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

  test('a persistent session is not handed over yet: session present 0 on the new node, and the old node ends its copy', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'pa'), await startNode(nats, 'pb')];
    const persistent = { clean: false, properties: { sessionExpiryInterval: 3_600 } };
    const onA = await connect(a, 'keeper', persistent);
    expect(onA.sessionPresent).toBe(false);
    await onA.client.subscribeAsync('kept/#', { qos: 1 });
    await onA.client.endAsync();
    const onAAgain = await connect(a, 'keeper', persistent);
    expect(onAAgain.sessionPresent).toBe(true);
    await onAAgain.client.endAsync();
    const onB = await connect(b, 'keeper', persistent);
    expect(onB.sessionPresent).toBe(false);
    await onB.client.endAsync();
    await waitUntil(() => a.stdout().includes('"event":"session-moved"'), 10_000, 'node a ends its copy');
    // B claimed last; back on A the claim moves the id again, and A's own copy is gone.
    const back = await connect(a, 'keeper', persistent);
    expect(back.sessionPresent).toBe(false);
    await nats.stop();
  }, 90_000);
});
