/**
 * A Keel cluster end to end: two and three `keel serve --cluster` child processes on one
 * `nats-server -js` (test/cluster/nats-fixture.ts), with MQTT.js clients on different nodes.
 * What it proves, each by what the clients receive:
 *
 * - a message published on one node reaches subscribers on the others at the QoS of the
 *   subscription (QoS 0, 1 and 2 each once), with its MQTT 5 properties, and in publish order;
 * - a will fired on one node reaches a subscriber on another;
 * - retained messages are cluster-wide: a new subscriber on any node gets the newest, whichever
 *   node it was published on, and a deletion on one node clears it everywhere;
 * - SIGKILL of the publisher's node in the middle of a QoS 1 stream loses nothing it acknowledged
 *   for the subscriber on another node;
 * - SIGKILL of the subscriber's node: restarted on its data directory, its persistent session gets
 *   every acknowledged message published meanwhile on the other node;
 * - a NATS SIGKILL and restart in the middle of a QoS 1 stream loses nothing acknowledged (the
 *   publisher's acknowledgements wait while NATS is away);
 * - on a three-server NATS cluster (JetStream with three copies), nodes attached to different NATS
 *   servers: SIGKILL of the publisher node's NATS server mid QoS 1 stream loses nothing
 *   acknowledged (the node fails over to another NATS server).
 *
 * Takeover across nodes has its own file (takeover-e2e.test.ts), `$share` groups across nodes
 * theirs (shared-groups-e2e.test.ts).
 */
import mqtt, { type MqttClient } from 'mqtt';
import { describe, expect, test } from 'vitest';
import { waitUntil } from '../integration/helpers.js';
import { type ClusterNode, useClusterTestBed } from './cluster-test-bed.js';
import { startNats, startNatsCluster } from './nats-fixture.js';

type Node = ClusterNode;

const bed = useClusterTestBed('keel-cluster-e2e-');
const { clients, startNode } = bed;

function linkUps(node: Node): number {
  return node
    .stdout()
    .split('\n')
    .filter((line) => line.includes('"event":"cluster-link-up"')).length;
}

async function client(node: Node, clientId: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return (await bed.connect(node, clientId, { connectTimeout: 5_000, ...options })).client;
}

/** Payloads a client receives, with the QoS and user properties of each. */
function collect(subscriber: MqttClient): { text: string; qos: number; user: Record<string, unknown> | undefined }[] {
  const received: { text: string; qos: number; user: Record<string, unknown> | undefined }[] = [];
  subscriber.on('message', (_topic, payload, packet) => received.push({ text: payload.toString('utf8'), qos: packet.qos, user: packet.properties?.userProperties }));
  return received;
}

/** Lets a node's new NATS interest reach the server before the first publish. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 300));
}

describe('keel cluster on nats-server -js', () => {
  test('QoS 0, 1 and 2 cross nodes once each, at the subscription QoS, with MQTT 5 properties, in order, to two other nodes', async () => {
    const nats = await startNats();
    const [a, b, c] = [await startNode(nats, 'a'), await startNode(nats, 'b'), await startNode(nats, 'c')];
    const onB = await client(b, 'sub-b');
    const onC = await client(c, 'sub-c');
    await onB.subscribeAsync('e2e/#', { qos: 2 });
    await onC.subscribeAsync('e2e/+/x', { qos: 1 });
    const [fromB, fromC] = [collect(onB), collect(onC)];
    const publisher = await client(a, 'pub-a');
    // QoS 0 reaches another node only once its NATS interest is in place: warm up until it is.
    for (let attempt = 0; attempt < 100 && !(fromB.length > 0 && fromC.length > 0); attempt++) {
      await publisher.publishAsync('e2e/warm/x', 'warm', { qos: 0 });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    fromB.length = 0;
    fromC.length = 0;
    await publisher.publishAsync('e2e/q0/x', 'zero', { qos: 0, properties: { userProperties: { k: 'v0' } } });
    await publisher.publishAsync('e2e/q1/x', 'one', { qos: 1, properties: { userProperties: { k: 'v1' } } });
    await publisher.publishAsync('e2e/q2/x', 'two', { qos: 2, properties: { userProperties: { k: 'v2' } } });
    for (let index = 0; index < 30; index++) await publisher.publishAsync('e2e/order/x', `n${index}`, { qos: 1 });
    await waitUntil(() => fromB.length >= 33 && fromC.length >= 33, 15_000, '33 messages on b and c');
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Order is promised per publisher and topic: each topic is looked at on its own.
    const onTopic = (received: typeof fromB, texts: string[]): typeof fromB => received.filter((message) => texts.includes(message.text));
    expect(onTopic(fromB, ['zero', 'one', 'two']).sort((x, y) => x.text.localeCompare(y.text))).toEqual([
      { text: 'one', qos: 1, user: { k: 'v1' } },
      { text: 'two', qos: 2, user: { k: 'v2' } },
      { text: 'zero', qos: 0, user: { k: 'v0' } },
    ]);
    expect(
      onTopic(fromC, ['zero', 'one', 'two'])
        .map((message) => [message.text, message.qos])
        .sort(),
    ).toEqual([
      ['one', 1],
      ['two', 1],
      ['zero', 0],
    ]);
    const order = Array.from({ length: 30 }, (_, index) => `n${index}`);
    expect(onTopic(fromB, order).map((message) => message.text)).toEqual(order);
    expect(onTopic(fromC, order).map((message) => message.text)).toEqual(order);
    expect(fromB.length).toBe(33);
    expect(fromC.length).toBe(33);
    await nats.stop();
  }, 90_000);

  test('a will fired on one node reaches a subscriber on another', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'wa'), await startNode(nats, 'wb')];
    const watcher = await client(b, 'watcher');
    await watcher.subscribeAsync('wills/#', { qos: 1 });
    const received = collect(watcher);
    await settle();
    const doomed = await client(a, 'doomed', { will: { topic: 'wills/doomed', payload: Buffer.from('gone'), qos: 1, retain: false } });
    (doomed as unknown as { stream: { destroy(): void } }).stream.destroy();
    await waitUntil(() => received.length >= 1, 15_000, 'the will on the other node');
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(received.map((message) => message.text)).toEqual(['gone']);
    await nats.stop();
  }, 60_000);

  test('retained messages are cluster-wide: the newest reaches a new subscriber on any node; a deletion clears it everywhere', async () => {
    const nats = await startNats();
    const [a, b, c] = [await startNode(nats, 'ta'), await startNode(nats, 'tb'), await startNode(nats, 'tc')];
    const first = await client(a, 'retain-pub-a');
    await first.publishAsync('retained/x', 'from a', { qos: 1, retain: true });
    const retainedOn = async (node: Node, clientId: string): Promise<string[]> => {
      const subscriber = await client(node, clientId);
      const received = collect(subscriber);
      await subscriber.subscribeAsync('retained/#', { qos: 1 });
      await new Promise((resolve) => setTimeout(resolve, 500));
      await subscriber.endAsync();
      return received.map((message) => message.text);
    };
    let onB: string[] = [];
    const startMs = Date.now();
    // The put is acknowledged once the bucket holds it; the other nodes apply it from their watch.
    while (!onB.includes('from a') && Date.now() - startMs < 10_000) onB = await retainedOn(b, `retain-sub-b-${Date.now()}`);
    expect(onB).toEqual(['from a']);
    const second = await client(c, 'retain-pub-c');
    await second.publishAsync('retained/x', 'from c', { qos: 1, retain: true });
    let onA: string[] = [];
    while (!onA.includes('from c') && Date.now() - startMs < 20_000) onA = await retainedOn(a, `retain-sub-a-${Date.now()}`);
    expect(onA).toEqual(['from c']);
    await second.publishAsync('retained/x', '', { qos: 1, retain: true });
    let cleared = ['?'];
    while (cleared.length > 0 && Date.now() - startMs < 30_000) cleared = await retainedOn(b, `retain-sub-b2-${Date.now()}`);
    expect(cleared).toEqual([]);
    await nats.stop();
  }, 90_000);

  test('SIGKILL of the publisher node mid QoS 1 stream: every acknowledged message reaches the subscriber on another node', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'ka'), await startNode(nats, 'kb')];
    const subscriber = await client(b, 'kill-sub');
    await subscriber.subscribeAsync('stream/kill', { qos: 1 });
    const received = collect(subscriber);
    await settle();
    const publisher = await client(a, 'kill-pub');
    const acknowledged: string[] = [];
    const stream = (async () => {
      for (let index = 0; index < 2_000; index++) {
        try {
          await publisher.publishAsync('stream/kill', `k${index}`, { qos: 1 });
          acknowledged.push(`k${index}`);
        } catch {
          return;
        }
      }
    })();
    await waitUntil(() => acknowledged.length >= 50, 15_000, '50 acknowledged');
    a.child.kill('SIGKILL');
    await a.exited;
    await Promise.race([stream, new Promise((resolve) => setTimeout(resolve, 3_000))]);
    const texts = (): Set<string> => new Set(received.map((message) => message.text));
    await waitUntil(() => acknowledged.every((text) => texts().has(text)), 15_000, `all ${acknowledged.length} acknowledged messages on b`);
    expect(acknowledged.length).toBeGreaterThanOrEqual(50);
    await nats.stop();
  }, 90_000);

  test('SIGKILL of the subscriber node: restarted on its data directory, the persistent session gets every acknowledged message', async () => {
    const nats = await startNats();
    const a = await startNode(nats, 'ra');
    let b = await startNode(nats, 'rb');
    const session = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await client(b, 'restart-sub', session);
    await first.subscribeAsync('stream/restart', { qos: 1 });
    await settle();
    const publisher = await client(a, 'restart-pub');
    const acknowledged: string[] = [];
    for (let index = 0; index < 20; index++) {
      await publisher.publishAsync('stream/restart', `r${index}`, { qos: 1 });
      acknowledged.push(`r${index}`);
    }
    b.child.kill('SIGKILL');
    await b.exited;
    for (let index = 20; index < 60; index++) {
      await publisher.publishAsync('stream/restart', `r${index}`, { qos: 1 });
      acknowledged.push(`r${index}`);
    }
    b = await startNode(nats, 'rb', b.dataDirectory);
    const again = mqtt.connect({ host: '127.0.0.1', port: b.port, protocolVersion: 5, clientId: 'restart-sub', reconnectPeriod: 0, ...session });
    clients.push(again);
    const received = collect(again);
    await waitUntil(() => acknowledged.slice(20).every((text) => received.some((message) => message.text === text)), 30_000, 'the messages published while b was down');
    const texts = received.map((message) => message.text).filter((text) => Number(text.slice(1)) >= 20);
    // In publish order (a duplicate of an unacknowledged delivery may repeat one; none is lost).
    expect([...new Set(texts)]).toEqual(acknowledged.slice(20));
    await nats.stop();
  }, 90_000);

  test('a NATS SIGKILL and restart mid QoS 1 stream loses nothing acknowledged', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'na'), await startNode(nats, 'nb')];
    const subscriber = await client(b, 'nats-sub');
    await subscriber.subscribeAsync('stream/nats', { qos: 1 });
    const received = collect(subscriber);
    await settle();
    const publisher = await client(a, 'nats-pub');
    const acknowledged: string[] = [];
    let stop = false;
    const stream = (async () => {
      for (let index = 0; index < 400 && !stop; index++) {
        await publisher.publishAsync('stream/nats', `s${index}`, { qos: 1 });
        acknowledged.push(`s${index}`);
      }
    })();
    await waitUntil(() => acknowledged.length >= 40, 15_000, '40 acknowledged');
    await nats.restart();
    await waitUntil(() => linkUps(a) >= 2 && linkUps(b) >= 2, 20_000, 'both links up again');
    await waitUntil(() => acknowledged.length >= 80, 30_000, '80 acknowledged');
    stop = true;
    await stream;
    const texts = (): Set<string> => new Set(received.map((message) => message.text));
    await waitUntil(() => acknowledged.every((text) => texts().has(text)), 30_000, `all ${acknowledged.length} acknowledged messages on b`);
    const firsts = [...new Set(received.map((message) => message.text))];
    expect(firsts).toEqual(acknowledged.slice(0, firsts.length));
    await nats.stop();
  }, 120_000);

  test('three NATS servers: SIGKILL of the NATS server under the publisher node mid QoS 1 stream loses nothing acknowledged', async () => {
    const servers = await startNatsCluster();
    // Each node lists every server, its own first: nats.js starts with a random one unless told.
    const urls = (first: number): string => [servers[first]!, ...servers.filter((_, index) => index !== first)].map((server) => server.url).join(',');
    const a = await startNode(urls(0), 'ca');
    const b = await startNode(urls(1), 'cb');
    const subscriber = await client(b, 'cluster-sub');
    await subscriber.subscribeAsync('stream/nats-cluster', { qos: 1 });
    const received = collect(subscriber);
    await settle();
    const publisher = await client(a, 'cluster-pub');
    const acknowledged: string[] = [];
    let stop = false;
    const stream = (async () => {
      for (let index = 0; index < 400 && !stop; index++) {
        await publisher.publishAsync('stream/nats-cluster', `c${index}`, { qos: 1 });
        acknowledged.push(`c${index}`);
      }
    })();
    await waitUntil(() => acknowledged.length >= 30, 20_000, '30 acknowledged');
    const serverOfA = /"event":"cluster-link-up".*?"server":"127\.0\.0\.1:(\d+)"/.exec(a.stdout());
    const killed = servers.find((server) => String(server.port) === serverOfA?.[1]) ?? servers[0]!;
    await killed.kill();
    await waitUntil(() => acknowledged.length >= 60, 40_000, '60 acknowledged after the failover');
    stop = true;
    await stream;
    const texts = (): Set<string> => new Set(received.map((message) => message.text));
    await waitUntil(() => acknowledged.every((text) => texts().has(text)), 30_000, `all ${acknowledged.length} acknowledged messages on b`);
    await Promise.all(servers.map((server) => server.stop()));
  }, 150_000);
});
