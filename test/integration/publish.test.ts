/**
 * Publishing over real TCP in MQTT 3.1.1 and 5.0: QoS 0, 1 and 2 flows from publisher to broker
 * and broker to subscriber, delivery at the lower of published and granted QoS ([MQTT-3.8.4-6]),
 * order per topic and QoS from one publisher ([MQTT-4.6.0-6]), queued delivery to a resumed persistent
 * session and redelivery of an unacknowledged message with DUP set ([MQTT-4.4.0-1]; a raw client
 * withholds the PUBACK/PUBREC), and retained messages being set, replaced and deleted by an empty
 * payload ([MQTT-3.3.1-5], [MQTT-3.3.1-10]/[MQTT-3.3.1-6 and -7] in 5.0).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { Clients, Inbox, persistent, type RawClient, RawClients, startBroker, type Version, versions } from './helpers.js';

let server: RunningServer;
const clients = new Clients(() => server.port);
const raws = new RawClients(() => server.port);

beforeAll(async () => {
  server = await startBroker();
});
afterEach(async () => {
  await clients.endAll();
  raws.destroyAll();
});
afterAll(async () => {
  await server?.close();
});

const raw = (version: Version): Promise<RawClient> => raws.open(version);

describe.each(versions)('MQTT protocol level %i: publishing', (version) => {
  for (const qos of [0, 1, 2] as const) {
    it(`delivers QoS ${qos} end to end at QoS ${qos}`, async () => {
      const { client: subscriber } = await clients.connect(version);
      const inbox = new Inbox(subscriber);
      await subscriber.subscribeAsync(`flow/${qos}`, { qos: 2 });
      const { client: publisher } = await clients.connect(version);
      const payload = Buffer.from([0, 1, 2, 255, 254, 128]);
      await publisher.publishAsync(`flow/${qos}`, payload, { qos });
      const [message] = await inbox.waitFor(1);
      expect(message!.qos).toBe(qos);
      expect(Buffer.from(message!.payload).equals(payload)).toBe(true);
      expect(message!.topic).toBe(`flow/${qos}`);
    });
  }

  it('downgrades to the granted QoS', async () => {
    const { client: subscriber } = await clients.connect(version);
    const inbox = new Inbox(subscriber);
    await subscriber.subscribeAsync('downgrade/0', { qos: 0 });
    await subscriber.subscribeAsync('downgrade/1', { qos: 1 });
    const { client: publisher } = await clients.connect(version);
    await publisher.publishAsync('downgrade/0', 'a', { qos: 2 });
    await publisher.publishAsync('downgrade/1', 'b', { qos: 2 });
    await publisher.publishAsync('downgrade/1', 'c', { qos: 0 });
    await inbox.waitFor(3);
    expect(inbox.messages.map((message) => [message.topic, message.qos])).toEqual([
      ['downgrade/0', 0],
      ['downgrade/1', 1],
      ['downgrade/1', 0],
    ]);
  });

  it('keeps the order of one publisher on one topic', async () => {
    const { client: subscriber } = await clients.connect(version);
    const inbox = new Inbox(subscriber);
    await subscriber.subscribeAsync('order/t', { qos: 2 });
    const { client: publisher } = await clients.connect(version);
    const count = 60;
    const sends: Promise<unknown>[] = [];
    for (let index = 0; index < count; index++) sends.push(publisher.publishAsync('order/t', String(index), { qos: (index % 3) as 0 | 1 | 2 }));
    await Promise.all(sends);
    await inbox.waitFor(count);
    // The guarantee is per topic and QoS [MQTT-4.6.0-6]: a QoS 2 message may be forwarded only on
    // PUBREL, after later QoS 0/1 messages, so each QoS's sequence is checked on its own.
    for (const qos of [0, 1, 2]) {
      const sent = Array.from({ length: count }, (_, index) => index)
        .filter((index) => index % 3 === qos)
        .map(String);
      const got = inbox.messages.filter((message) => message.qos === qos).map((message) => Buffer.from(message.payload).toString());
      expect(got).toEqual(sent);
    }
  });

  it('queues QoS 1 and 2 messages for an offline persistent session and delivers them on resume', async () => {
    const clientId = clients.id('offline');
    const first = await clients.connect(version, { clientId, ...persistent(version) });
    await first.client.subscribeAsync('offline/t', { qos: 2 });
    await first.client.endAsync();
    const { client: publisher } = await clients.connect(version);
    // Queuing QoS 0 for an offline session is optional (4.4.0), so it is excluded below.
    await publisher.publishAsync('offline/t', 'zero', { qos: 0 });
    await publisher.publishAsync('offline/t', 'one', { qos: 1 });
    await publisher.publishAsync('offline/t', 'two', { qos: 2 });
    const resumed = await clients.connect(version, { clientId, ...persistent(version) });
    expect(resumed.connack.sessionPresent).toBe(true);
    const inbox = resumed.inbox;
    await inbox.waitForPayload('two');
    const durable = inbox.messages.filter((message) => message.qos > 0).map((message) => [Buffer.from(message.payload).toString(), message.qos]);
    expect(durable).toEqual([
      ['one', 1],
      ['two', 2],
    ]);
  });

  it('redelivers an unacknowledged QoS 1 message with DUP set when the session resumes', async () => {
    const clientId = clients.id('redeliver');
    const subscriber = await raw(version);
    const sessionExpiry = version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {};
    await subscriber.connect({ clientId, clean: false, ...sessionExpiry });
    subscriber.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'redeliver/t', qos: 1 }] } as never);
    await subscriber.next('suback');
    const { client: publisher } = await clients.connect(version);
    await publisher.publishAsync('redeliver/t', 'unacked', { qos: 1 });
    const first = await subscriber.next('publish');
    expect(first.dup).toBe(false);
    // Leave without PUBACK.
    subscriber.destroy();
    await subscriber.closed;

    const again = await raw(version);
    const connack = await again.connect({ clientId, clean: false, ...sessionExpiry });
    expect(connack.sessionPresent).toBe(true);
    const second = await again.next('publish');
    expect(second.dup).toBe(true);
    expect(second.messageId).toBe(first.messageId);
    expect(Buffer.from(second.payload as Buffer).toString()).toBe('unacked');
    again.send({ cmd: 'puback', messageId: second.messageId! } as never);
  });

  it('redelivers an unacknowledged QoS 2 message, then completes the flow once', async () => {
    const clientId = clients.id('redeliver2');
    const sessionExpiry = version === 5 ? { properties: { sessionExpiryInterval: 300 } } : {};
    const subscriber = await raw(version);
    await subscriber.connect({ clientId, clean: false, ...sessionExpiry });
    subscriber.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'redeliver2/t', qos: 2 }] } as never);
    await subscriber.next('suback');
    const { client: publisher } = await clients.connect(version);
    await publisher.publishAsync('redeliver2/t', 'exactly once', { qos: 2 });
    const first = await subscriber.next('publish');
    subscriber.destroy();
    await subscriber.closed;

    const again = await raw(version);
    await again.connect({ clientId, clean: false, ...sessionExpiry });
    const second = await again.next('publish');
    expect(second.dup).toBe(true);
    expect(second.messageId).toBe(first.messageId);
    again.send({ cmd: 'pubrec', messageId: second.messageId! } as never);
    const pubrel = await again.next('pubrel');
    expect(pubrel.messageId).toBe(second.messageId);
    again.send({ cmd: 'pubcomp', messageId: second.messageId! } as never);
    // A marker proves no further copy follows.
    again.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'redeliver2/marker', qos: 0 }] } as never);
    await again.next('suback');
    await publisher.publishAsync('redeliver2/marker', 'marker', { qos: 0 });
    const marker = await again.next('publish');
    expect(marker.topic).toBe('redeliver2/marker');
    expect(again.count('publish')).toBe(0);
  });

  it('sets, replaces and deletes a retained message', async () => {
    const { client: publisher } = await clients.connect(version);
    const topic = `retained/${version}`;
    await publisher.publishAsync(topic, 'first', { qos: 1, retain: true });
    await publisher.publishAsync(topic, 'second', { qos: 1, retain: true });

    const readRetained = async (): Promise<string[]> => {
      const { client } = await clients.connect(version);
      const inbox = new Inbox(client);
      await client.subscribeAsync([topic, `${topic}-marker`], { qos: 1 });
      await publisher.publishAsync(`${topic}-marker`, 'marker', { qos: 1 });
      await inbox.waitForPayload('marker');
      const retained = inbox.messages.filter((message) => message.topic === topic);
      expect(retained.every((message) => message.retain)).toBe(true);
      await client.endAsync();
      return retained.map((message) => Buffer.from(message.payload).toString());
    };
    expect(await readRetained()).toEqual(['second']);
    await publisher.publishAsync(topic, '', { qos: 1, retain: true });
    expect(await readRetained()).toEqual([]);
  });

  it('forwards a retained publish to existing subscribers (3.1.1: retain cleared; 5.0: cleared without Retain As Published)', async () => {
    const { client: subscriber } = await clients.connect(version);
    const inbox = new Inbox(subscriber);
    await subscriber.subscribeAsync('retained-live/t', { qos: 1 });
    const { client: publisher } = await clients.connect(version);
    await publisher.publishAsync('retained-live/t', 'live', { qos: 1, retain: true });
    const [message] = await inbox.waitFor(1);
    // [MQTT-3.3.1-9] (3.1.1): a message sent to an established subscription has RETAIN 0.
    expect(message!.retain).toBe(false);
    await publisher.publishAsync('retained-live/t', '', { qos: 1, retain: true });
  });
});
