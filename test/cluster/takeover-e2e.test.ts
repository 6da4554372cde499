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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IDisconnectPacket, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt, type KeelProcess, startKeelProcess, waitUntil } from '../integration/helpers.js';
import { type NatsServer, startNats, stopAllNats } from './nats-fixture.js';

type Node = KeelProcess & { port: number; nodeId: string };

let directory = '';
const nodes: Node[] = [];
const clients: MqttClient[] = [];

beforeAll(() => {
  ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), 'keel-takeover-e2e-'));
}, 120_000);

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.endAsync(true).catch(() => undefined)));
  for (const node of nodes.splice(0)) {
    if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL');
    await node.exited;
  }
});

afterAll(async () => {
  await stopAllNats();
  rmSync(directory, { recursive: true, force: true });
});

async function startNode(nats: NatsServer, nodeId: string): Promise<Node> {
  const keel = await startKeelProcess(join(directory, `${nodeId}-${Date.now()}`), ['--cluster', nats.url, '--node-id', nodeId]);
  const node = { ...keel, nodeId };
  nodes.push(node);
  await waitUntil(() => node.stdout().includes('"event":"cluster-link-up"'), 15_000, `${nodeId}: cluster-link-up`);
  return node;
}

/** Connects and resolves with the client and its CONNACK's session present flag. */
async function connect(node: Node, clientId: string, options: mqtt.IClientOptions = {}): Promise<{ client: MqttClient; sessionPresent: boolean }> {
  const client = mqtt.connect({ host: '127.0.0.1', port: node.port, protocolVersion: 5, clientId, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  clients.push(client);
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', (connack) => resolve(connack.sessionPresent));
    client.once('error', reject);
  });
  return { client, sessionPresent };
}

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
