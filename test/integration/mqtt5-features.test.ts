/**
 * MQTT 5.0 features over real TCP: message expiry (dropped once expired, forwarded with the
 * remaining interval otherwise, [MQTT-3.3.2-5], [MQTT-3.3.2-6]), topic aliases from the client
 * (mapping set and used, out-of-range alias is DISCONNECT 0x94 [MQTT-3.3.2-8], unknown alias is a
 * protocol error) and towards the client (never above its Topic Alias Maximum [MQTT-3.3.2-10]),
 * Receive Maximum both ways ([MQTT-3.3.4-9]; our own limit, DISCONNECT 0x93 [MQTT-3.3.4-8]),
 * Maximum Packet Size both ways ([MQTT-3.1.2-25]; ours, DISCONNECT 0x95), and publication
 * properties passed through unaltered ([MQTT-3.3.2-15..20]).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { Clients, type RawClient, RawClients, sleep, startBroker } from './helpers.js';

let server: RunningServer;
let strict: RunningServer;
const clients = new Clients(() => server.port);
const raws = new RawClients(() => server.port);

beforeAll(async () => {
  server = await startBroker();
  strict = await startBroker({ receiveMaximum: 2, packetBytesMax: 1024 });
});
afterEach(async () => {
  await clients.endAll();
  raws.destroyAll();
});
afterAll(async () => {
  await server?.close();
  await strict?.close();
});

const raw = (port = server.port): Promise<RawClient> => raws.open(5, port);

const text = (payload: Buffer | string | Uint8Array): string => Buffer.from(payload).toString('utf8');

describe('message expiry', () => {
  it('drops an expired message for an offline session and forwards a live one with less time left', async () => {
    const clientId = clients.id('expiry');
    const options = { clientId, clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await clients.connect(5, options);
    await first.client.subscribeAsync('expiry/t', { qos: 1 });
    await first.client.endAsync();
    const { client: publisher } = await clients.connect(5);
    await publisher.publishAsync('expiry/t', 'short', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await publisher.publishAsync('expiry/t', 'long', { qos: 1, properties: { messageExpiryInterval: 60 } });
    await sleep(1_600);
    const resumed = await clients.connect(5, options);
    await resumed.inbox.waitForPayload('long');
    expect(resumed.inbox.payloads()).toEqual(['long']);
    const remaining = resumed.inbox.messages[0]!.properties?.messageExpiryInterval;
    expect(remaining).toBeGreaterThanOrEqual(55);
    expect(remaining).toBeLessThanOrEqual(59);
  }, 6_000);

  it('does not send an expired retained message to a new subscriber', async () => {
    const { client: publisher } = await clients.connect(5);
    await publisher.publishAsync('expiry/retained', 'brief', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } });
    await sleep(1_600);
    const { client, inbox } = await clients.connect(5);
    await client.subscribeAsync(['expiry/retained', 'expiry/marker'], { qos: 1 });
    await publisher.publishAsync('expiry/marker', 'marker', { qos: 1 });
    await inbox.waitForPayload('marker');
    expect(inbox.payloads()).toEqual(['marker']);
  }, 6_000);
});

describe('topic aliases', () => {
  it('resolves an alias the client set, on later alias-only publishes', async () => {
    const { client: subscriber, inbox } = await clients.connect(5);
    await subscriber.subscribeAsync('alias/t', { qos: 0 });
    const publisher = await raw();
    const connack = await publisher.connect();
    expect(connack.properties?.topicAliasMaximum).toBeGreaterThanOrEqual(1);
    publisher.send({ cmd: 'publish', topic: 'alias/t', payload: Buffer.from('with name'), qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } });
    publisher.send({ cmd: 'publish', topic: '', payload: Buffer.from('alias only'), qos: 0, retain: false, dup: false, properties: { topicAlias: 1 } });
    await inbox.waitFor(2);
    expect(inbox.messages.map((message) => [message.topic, text(message.payload)])).toEqual([
      ['alias/t', 'with name'],
      ['alias/t', 'alias only'],
    ]);
  });

  it('disconnects with 0x94 for an alias above its Topic Alias Maximum', async () => {
    const publisher = await raw();
    const connack = await publisher.connect();
    const maximum = connack.properties?.topicAliasMaximum ?? 0;
    publisher.send({ cmd: 'publish', topic: 'alias/x', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { topicAlias: maximum + 1 } });
    await publisher.closed;
    expect((await publisher.next('disconnect')).reasonCode).toBe(0x94);
  });

  it('treats an alias-only publish with an unknown alias as a protocol error', async () => {
    const publisher = await raw();
    await publisher.connect();
    publisher.send({ cmd: 'publish', topic: '', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { topicAlias: 3 } });
    await publisher.closed;
    expect((await publisher.next('disconnect')).reasonCode).toBe(0x82);
  });

  it('never uses an alias towards a client that allows none, and stays within what it allows', async () => {
    const none = await raw();
    await none.connect({ clientId: 'alias-none' });
    const some = await raw();
    await some.connect({ clientId: 'alias-some', properties: { topicAliasMaximum: 2 } });
    for (const client of [none, some]) {
      client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'outbound/#', qos: 0 }] } as never);
      await client.next('suback');
    }
    const { client: publisher } = await clients.connect(5);
    for (let index = 0; index < 6; index++) await publisher.publishAsync(`outbound/${index % 4}`, String(index), { qos: 0 });
    const received = async (client: RawClient): Promise<{ topic: string; alias?: number }[]> => {
      const all = [];
      for (let index = 0; index < 6; index++) {
        const message = await client.next('publish');
        all.push({ topic: message.topic, alias: message.properties?.topicAlias, payload: text(message.payload as Buffer) });
      }
      return all;
    };
    const toNone = await received(none);
    expect(toNone.every((message) => message.alias === undefined && message.topic.length > 0)).toBe(true);
    const toSome = await received(some);
    expect(toSome.every((message) => message.alias === undefined || (message.alias >= 1 && message.alias <= 2))).toBe(true);
    // Every message is resolvable: a message without a topic name carries an alias set before.
    const known = new Map<number, string>();
    for (const message of toSome) {
      if (message.topic.length > 0 && message.alias !== undefined) known.set(message.alias, message.topic);
      if (message.topic.length === 0) expect(known.has(message.alias!)).toBe(true);
    }
  });
});

describe('receive maximum', () => {
  it('sends a client no more unacknowledged QoS 1 messages than its Receive Maximum', async () => {
    const subscriber = await raw();
    await subscriber.connect({ properties: { receiveMaximum: 2 } });
    subscriber.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'recvmax/t', qos: 1 }] } as never);
    await subscriber.next('suback');
    const { client: publisher } = await clients.connect(5);
    for (let index = 0; index < 5; index++) await publisher.publishAsync('recvmax/t', String(index), { qos: 1 });
    await sleep(300);
    expect(subscriber.count('publish')).toBe(2);
    const first = await subscriber.next('publish');
    subscriber.send({ cmd: 'puback', messageId: first.messageId! } as never);
    await sleep(300);
    expect(subscriber.count('publish')).toBe(2);
    const payloads = [text(first.payload as Buffer)];
    while (subscriber.count('publish') > 0) {
      const next = await subscriber.next('publish');
      payloads.push(text(next.payload as Buffer));
      subscriber.send({ cmd: 'puback', messageId: next.messageId! } as never);
      await sleep(50);
    }
    expect(payloads).toEqual(['0', '1', '2', '3', '4']);
  });

  it('announces its own Receive Maximum and disconnects with 0x93 when a client exceeds it', async () => {
    const publisher = await raw(strict.port);
    const connack = await publisher.connect();
    expect(connack.properties?.receiveMaximum).toBe(2);
    for (let messageId = 1; messageId <= 3; messageId++) {
      publisher.send({ cmd: 'publish', topic: 'recvmax/ours', payload: Buffer.from('x'), qos: 2, retain: false, dup: false, messageId });
    }
    await publisher.closed;
    expect(publisher.count('pubrec')).toBe(2);
    expect((await publisher.next('disconnect')).reasonCode).toBe(0x93);
  });
});

describe('maximum packet size', () => {
  it('does not send a client a packet above its Maximum Packet Size, and goes on with the next', async () => {
    const { client, inbox } = await clients.connect(5, { properties: { maximumPacketSize: 200 } });
    await client.subscribeAsync('maxsize/t', { qos: 1 });
    const { client: publisher } = await clients.connect(5);
    await publisher.publishAsync('maxsize/t', 'x'.repeat(500), { qos: 1 });
    await publisher.publishAsync('maxsize/t', 'small', { qos: 1 });
    await inbox.waitForPayload('small');
    expect(inbox.payloads()).toEqual(['small']);
  });

  it('announces its own maximum and disconnects with 0x95 a client that exceeds it', async () => {
    const publisher = await raw(strict.port);
    const connack = await publisher.connect();
    expect(connack.properties?.maximumPacketSize).toBe(1024);
    publisher.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(2_000), qos: 0, retain: false, dup: false });
    await publisher.closed;
    expect((await publisher.next('disconnect')).reasonCode).toBe(0x95);
  });

  it('3.1.1: closes a connection that exceeds the packet size limit', async () => {
    const publisher = await raws.open(4, strict.port);
    await publisher.connect();
    publisher.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(2_000), qos: 0, retain: false, dup: false });
    await publisher.closed;
  });
});

describe('publication properties', () => {
  it('passes user properties, response topic, correlation data, content type and payload format through', async () => {
    const { client: subscriber, inbox } = await clients.connect(5);
    await subscriber.subscribeAsync('props/t', { qos: 1 });
    const { client: publisher } = await clients.connect(5);
    const properties = {
      userProperties: { first: '1', repeated: ['a', 'b'], 'with space': 'ü' },
      responseTopic: 'props/reply',
      correlationData: Buffer.from([0xde, 0xad, 0xbe, 0xef]),
      contentType: 'application/json',
      payloadFormatIndicator: true,
    };
    await publisher.publishAsync('props/t', '{"ok":true}', { qos: 1, properties });
    const [message] = await inbox.waitFor(1);
    const got = message!.properties!;
    expect(got.userProperties).toEqual(properties.userProperties);
    expect(got.responseTopic).toBe('props/reply');
    expect(Buffer.from(got.correlationData!).equals(properties.correlationData)).toBe(true);
    expect(got.contentType).toBe('application/json');
    expect(got.payloadFormatIndicator).toBe(true);
  });
});
