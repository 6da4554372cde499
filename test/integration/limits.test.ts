/**
 * The configured limits over real TCP, in MQTT 3.1.1 and 5.0: each test starts its own broker in
 * this process (127.0.0.1, port 0) with one limit set low, drives it with the `mqtt` client (or a
 * raw socket where the library would refuse to misbehave), checks the client sees the defined
 * outcome (CONNACK / SUBACK / PUBACK / DISCONNECT reason code, or a plain close on 3.1.1), and
 * checks the limit's counter in the broker's stats.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import type { Broker } from '../../src/broker/broker.js';
import type { BrokerConfig } from '../../src/config.js';
import { Clients, closedWithReason, type RawClient, RawClients, startBroker, subscribeCodes, type Version, versions, waitUntil } from './helpers.js';

let server: RunningServer | null = null;
const clients = new Clients(() => server!.port);
const raws = new RawClients(() => server!.port);

afterEach(async () => {
  await clients.endAll();
  raws.destroyAll();
  await server?.close();
  server = null;
});

async function start(config: Partial<BrokerConfig>): Promise<Broker> {
  server = await startBroker(config);
  return server.core as Broker;
}

const raw = (version: Version): Promise<RawClient> => raws.open(version);

const connackCode = (connack: { returnCode?: number; reasonCode?: number }, version: Version): number | undefined => (version === 5 ? connack.reasonCode : connack.returnCode);

describe.each(versions)('MQTT protocol level %i: limits over TCP', (version) => {
  it('connectionsMax: the connection past the limit is refused (0x97 / rc 3) and counted', async () => {
    const broker = await start({ connectionsMax: 2 });
    await clients.connect(version);
    await clients.connect(version);
    const third = await raw(version);
    expect(connackCode(await third.connect(), version)).toBe(version === 5 ? 0x97 : 3);
    await third.closed;
    expect(broker.stats.limits.connectionsMax).toBe(1);
  });

  it('connectionRatePerSecondMax: connections past the rate are refused (0x9F / rc 3) and counted', async () => {
    const broker = await start({ connectionRatePerSecondMax: 2 });
    const codes: (number | undefined)[] = [];
    for (let index = 0; index < 4; index++) codes.push(connackCode(await (await raw(version)).connect(), version));
    // The bucket holds two; the test's four connects take far less than the half second a refill needs.
    expect(codes.slice(0, 2)).toEqual([0, 0]);
    expect(codes.slice(2)).toEqual(version === 5 ? [0x9f, 0x9f] : [3, 3]);
    expect(broker.stats.limits.connectionRatePerSecondMax).toBe(2);
  });

  it('publishRatePerSecondMax: a client publishing too fast is disconnected (0x96 on 5.0) and counted', async () => {
    const broker = await start({ publishRatePerSecondMax: 5 });
    const { client } = await clients.connect(version);
    const closed = closedWithReason(client);
    for (let index = 0; index < 20; index++) client.publish('rate/t', `m${index}`, { qos: 0 });
    const reason = await closed;
    if (version === 5) expect(reason).toBe(0x96);
    expect(broker.stats.limits.publishRatePerSecondMax).toBe(1);
  });

  it('packetBytesMax: a larger packet closes the connection (0x95 on 5.0) and is counted', async () => {
    const broker = await start({ packetBytesMax: 1_024 });
    const { client } = await clients.connect(version);
    const closed = closedWithReason(client);
    client.publish('big', Buffer.alloc(2_000, 1), { qos: 0 });
    const reason = await closed;
    if (version === 5) expect(reason).toBe(0x95);
    expect(broker.stats.limits.packetBytesMax).toBe(1);
  });

  it('subscriptionsPerSessionMax: extra filters are refused in the SUBACK (0x97 / 0x80) and counted', async () => {
    const broker = await start({ subscriptionsPerSessionMax: 1 });
    const { client } = await clients.connect(version);
    expect(await subscribeCodes(client, ['one', 'two'], { qos: 1 })).toEqual([1, version === 5 ? 0x97 : 0x80]);
    expect(broker.stats.limits.subscriptionsPerSessionMax).toBe(1);
  });

  it('topicBytesMax / topicLevelsMax: filters are refused (0x8F / 0x80), names close the connection (0x90 on 5.0)', async () => {
    const broker = await start({ topicBytesMax: 16, topicLevelsMax: 3 });
    const { client } = await clients.connect(version);
    const refused = version === 5 ? 0x8f : 0x80;
    expect(await subscribeCodes(client, ['ok/+', 'a/b/c/d', 'x'.repeat(17)], { qos: 0 })).toEqual([0, refused, refused]);
    expect(broker.stats.limits.topicLevelsMax).toBe(1);
    expect(broker.stats.limits.topicBytesMax).toBe(1);
    const closed = closedWithReason(client);
    client.publish('a/b/c/d/e', 'x', { qos: 0 });
    const reason = await closed;
    if (version === 5) expect(reason).toBe(0x90);
    expect(broker.stats.limits.topicLevelsMax).toBe(2);
  });

  it('queuedMessagesPerSessionMax: an offline session keeps the newest messages (drop-oldest), drops are counted', async () => {
    const broker = await start({ queuedMessagesPerSessionMax: 3, queueOverflowPolicy: 'drop-oldest' });
    const clientId = clients.id('offline');
    const persistent = version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
    const first = await clients.connect(version, { clientId, ...persistent });
    await subscribeCodes(first.client, 'queue/t', { qos: 1 });
    await first.client.endAsync();
    const { client: publisher } = await clients.connect(version);
    for (let index = 0; index < 5; index++) await publisher.publishAsync('queue/t', `m${index}`, { qos: 1 });
    expect(broker.stats.drops.queueOverflow).toBe(2);
    const back = await clients.connect(version, { clientId, ...persistent });
    await back.inbox.waitFor(3);
    expect(back.inbox.payloads()).toEqual(['m2', 'm3', 'm4']);
  });
});

describe('limits with a 5.0-only outcome', () => {
  it('retainedMessagesMax: a new retained topic past the limit gets PUBACK 0x97, is still delivered, and is counted', async () => {
    const broker = await start({ retainedMessagesMax: 1 });
    const { client: subscriber, inbox } = await clients.connect(5);
    await subscribeCodes(subscriber, 'ret/#', { qos: 1 });
    const publisher = await raw(5);
    expect((await publisher.connect()).reasonCode).toBe(0);
    publisher.send({ cmd: 'publish', topic: 'ret/1', payload: Buffer.from('a'), qos: 1, messageId: 1, retain: true, dup: false });
    expect((await publisher.next('puback')).reasonCode ?? 0).toBe(0);
    publisher.send({ cmd: 'publish', topic: 'ret/2', payload: Buffer.from('b'), qos: 1, messageId: 2, retain: true, dup: false });
    expect((await publisher.next('puback')).reasonCode).toBe(0x97);
    await inbox.waitFor(2);
    expect(broker.stats.retainedRefused).toBe(1);
    expect([...broker.state.retained.keys()].filter((topic) => !topic.startsWith('$SYS/'))).toEqual(['ret/1']);
  });

  it('receiveMaximum: more unacknowledged QoS 2 PUBLISHes than allowed is DISCONNECT 0x93, counted', async () => {
    const broker = await start({ receiveMaximum: 2 });
    const client = await raw(5);
    const connack = await client.connect();
    expect(connack.properties?.receiveMaximum).toBe(2);
    for (let messageId = 1; messageId <= 3; messageId++) {
      client.send({ cmd: 'publish', topic: 'rm/t', payload: Buffer.from('x'), qos: 2, messageId, retain: false, dup: false });
    }
    expect((await client.next('disconnect')).reasonCode).toBe(0x93);
    await client.closed;
    await waitUntil(() => broker.stats.limits.receiveMaximum === 1);
  });
});

/*
 * connectionOutputBytesMax over real sockets: a raw subscriber stops reading (socket paused), so
 * what the broker writes to it piles up in the kernel and then in Node's socket buffer; the host
 * reports that figure and the core stops sending past the cap. A publisher floods QoS 0 with
 * 32 KiB payloads in paced batches (each batch waits for the healthy subscriber, so the healthy
 * one never nears the cap). Proves: output-full drops are counted for the stalled connection,
 * the figure the host reports for it stays near the cap (not the ~25 MiB published), and the
 * healthy subscriber gets every message, in order.
 */
describe('connectionOutputBytesMax over TCP', () => {
  it('drops QoS 0 for a subscriber that stopped reading, keeps serving a healthy one', async () => {
    const outputBytesMax = 256 * 1024;
    const broker = await start({ connectionOutputBytesMax: outputBytesMax });
    const stalled = await raw(4);
    await stalled.connect({ clientId: 'stalled-reader' });
    stalled.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] });
    await stalled.next('suback');
    stalled.socket.pause();
    const { client: healthy, inbox } = await clients.connect(4);
    await healthy.subscribeAsync('flood/#', { qos: 0 });
    const publisher = await raw(4);
    await publisher.connect();
    const payload = Buffer.alloc(32 * 1024, 7);
    const batches = 200;
    const perBatch = 4;
    for (let batch = 0; batch < batches; batch++) {
      for (let index = 0; index < perBatch; index++) {
        payload.writeUInt32BE(batch * perBatch + index, 0);
        publisher.send({ cmd: 'publish', topic: 'flood/t', payload, qos: 0, retain: false, dup: false });
      }
      await inbox.waitFor((batch + 1) * perBatch, 5_000);
    }
    const sequence = inbox.messages.map((message) => Buffer.from(message.payload).readUInt32BE(0));
    expect(sequence).toEqual([...Array(batches * perBatch).keys()]);
    expect(broker.stats.drops.outputFull).toBeGreaterThan(0);
    const stalledConnection = broker.online.get('stalled-reader')!;
    expect(stalledConnection).toBeDefined();
    // Past the cap by at most one input's worth (one publisher chunk), far below what was published.
    expect(stalledConnection.outputReportedBytes).toBeGreaterThanOrEqual(outputBytesMax / 2);
    expect(stalledConnection.outputReportedBytes).toBeLessThan(outputBytesMax + 256 * 1024);
    expect(broker.stats.drops.outputFull).toBeGreaterThan((batches * perBatch) / 4);
  }, 10_000);
});

/*
 * Publisher throttling over real sockets (src/broker/throttle.ts, io/node-host.ts): a raw QoS 1
 * subscriber stops reading, and a raw publisher sends it far more QoS 1 data (32 KiB payloads)
 * than its output cap. Once a copy has to wait for the stalled reader at its cap, the broker stops
 * reading the publisher: its PUBACKs stop while it still has messages in flight, and the counters
 * say it is paused. Meanwhile another publisher and subscriber are served. When the reader reads
 * again, the publisher is resumed: every message arrives, in order, and every PUBLISH is acknowledged.
 */
describe('publisher throttling over TCP', () => {
  it('pauses reading from a publisher feeding a stalled QoS 1 reader, serves others, resumes when it drains', async () => {
    const outputBytesMax = 64 * 1024;
    const broker = await start({ connectionOutputBytesMax: outputBytesMax });
    const stalled = await raw(4);
    await stalled.connect({ clientId: 'stalled-qos1' });
    stalled.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'load/#', qos: 1 }] });
    await stalled.next('suback');
    stalled.socket.pause();
    const publisher = await raw(4);
    await publisher.connect({ clientId: 'heavy-publisher' });
    const count = 600;
    const payload = Buffer.alloc(32 * 1024, 3);
    for (let index = 0; index < count; index++) {
      payload.writeUInt32BE(index, 0);
      publisher.send({ cmd: 'publish', topic: 'load/t', payload, qos: 1, messageId: index + 1, retain: false, dup: false });
    }
    await waitUntil(() => broker.stats.throttle.pausedCurrent === 1, 5_000, 'publisher paused');
    expect(broker.stats.throttle.publisherPauses).toBeGreaterThanOrEqual(1);
    // Paused: the acknowledgements stop short of what was sent, and stay there. Messages read
    // before the pause are still acknowledged as their log syncs complete (slowly on a loaded
    // machine), so wait until the count has held still for 300 ms.
    let acknowledged = publisher.count('puback');
    for (let round = 0; round < 30; round++) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const now = publisher.count('puback');
      if (now === acknowledged) break;
      acknowledged = now;
    }
    expect(publisher.count('puback')).toBe(acknowledged);
    expect(acknowledged).toBeLessThan(count);
    expect(broker.stats.throttle.pausedCurrent).toBe(1);
    // Everybody else is still read and served.
    const { client: healthy, inbox } = await clients.connect(4);
    await healthy.subscribeAsync('other/#', { qos: 0 });
    const other = await raw(4);
    await other.connect();
    other.send({ cmd: 'publish', topic: 'other/t', payload: Buffer.from('still served'), qos: 0, retain: false, dup: false });
    await inbox.waitFor(1, 3_000);
    // The reader reads again: its backlog drains, the publisher is read again, nothing is lost.
    stalled.socket.resume();
    await waitUntil(() => publisher.count('puback') === count, 10_000, 'every PUBLISH acknowledged');
    await waitUntil(() => stalled.count('publish') === count, 10_000, 'every message delivered');
    const sequence = stalled.packets.filter((packet) => packet.cmd === 'publish').map((packet) => Buffer.from((packet as { payload: Buffer }).payload).readUInt32BE(0));
    expect(sequence).toEqual([...Array(count).keys()]);
    expect(broker.stats.throttle.pausedCurrent).toBe(0);
  }, 40_000);
});
