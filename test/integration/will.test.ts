/**
 * Will messages over real TCP: an abnormal close publishes the will ([MQTT-3.1.2-8]), a normal
 * DISCONNECT discards it ([MQTT-3.1.2-10]), 5.0 DISCONNECT with reason 0x04 publishes it anyway,
 * a retained will is stored as retained, and the 5.0 Will Delay Interval holds the will back and
 * cancels it when the client reconnects in time ([MQTT-3.1.3-9]). Abnormal close is a destroyed
 * socket without DISCONNECT. "Not published" is proven with a marker message sent afterwards.
 */

import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { Clients, type Inbox, sleep, startBroker, versions } from './helpers.js';

let server: RunningServer;
const clients = new Clients(() => server.port);

beforeAll(async () => {
  server = await startBroker();
});
afterEach(async () => {
  await clients.endAll();
});
afterAll(async () => {
  await server?.close();
});

function dropConnection(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    client.once('close', () => resolve());
    client.stream.destroy();
  });
}

async function watcher(version: 4 | 5, topic: string): Promise<{ client: MqttClient; inbox: Inbox; marker: () => Promise<void> }> {
  const { client, inbox } = await clients.connect(version);
  await client.subscribeAsync([topic, `${topic}/marker`], { qos: 1 });
  let markers = 0;
  const marker = async (): Promise<void> => {
    const label = `marker-${++markers}`;
    await client.publishAsync(`${topic}/marker`, label, { qos: 1 });
    await inbox.waitForPayload(label);
  };
  return { client, inbox, marker };
}

describe.each(versions)('MQTT protocol level %i: wills', (version) => {
  it('publishes the will when the connection drops', async () => {
    const topic = `will/${version}/dropped`;
    const watch = await watcher(version, topic);
    const { client } = await clients.connect(version, { will: { topic, payload: Buffer.from('gone'), qos: 1, retain: false } });
    await dropConnection(client);
    await watch.inbox.waitForPayload('gone');
    const will = watch.inbox.messages.find((message) => message.topic === topic)!;
    expect(will.qos).toBe(1);
  });

  it('discards the will on a normal DISCONNECT', async () => {
    const topic = `will/${version}/clean`;
    const watch = await watcher(version, topic);
    const { client } = await clients.connect(version, { will: { topic, payload: Buffer.from('should not'), qos: 1, retain: false } });
    await client.endAsync();
    await watch.marker();
    expect(watch.inbox.payloads()).toEqual(['marker-1']);
  });

  it('stores a retained will as the retained message', async () => {
    const topic = `will/${version}/retained`;
    const { client } = await clients.connect(version, { will: { topic, payload: Buffer.from('last words'), qos: 1, retain: true } });
    await dropConnection(client);
    // Poll with fresh subscribers: the will is published asynchronously to this test.
    let found = false;
    for (let attempt = 0; attempt < 20 && !found; attempt++) {
      const watch = await watcher(version, topic);
      await watch.marker();
      found = watch.inbox.messages.some((message) => message.topic === topic && message.retain && Buffer.from(message.payload).toString() === 'last words');
      await watch.client.endAsync();
      if (!found) await sleep(50);
    }
    expect(found).toBe(true);
    const { client: cleaner } = await clients.connect(version);
    await cleaner.publishAsync(topic, '', { qos: 1, retain: true });
  });
});

describe('MQTT 5.0 will specifics', () => {
  it('DISCONNECT with reason 0x04 publishes the will', async () => {
    const topic = 'will/5/with-will';
    const watch = await watcher(5, topic);
    const { client } = await clients.connect(5, { will: { topic, payload: Buffer.from('asked for'), qos: 0, retain: false } });
    await client.endAsync(false, { reasonCode: 0x04 });
    await watch.inbox.waitForPayload('asked for');
  });

  it('holds the will for the Will Delay Interval', async () => {
    const topic = 'will/5/delayed';
    const watch = await watcher(5, topic);
    const { client } = await clients.connect(5, {
      clean: true,
      properties: { sessionExpiryInterval: 30 },
      will: { topic, payload: Buffer.from('late'), qos: 1, retain: false, properties: { willDelayInterval: 1 } },
    });
    const droppedMs = Date.now();
    await dropConnection(client);
    await sleep(500);
    await watch.marker();
    expect(watch.inbox.payloads()).not.toContain('late');
    await watch.inbox.waitForPayload('late', 4_000);
    expect(Date.now() - droppedMs).toBeGreaterThanOrEqual(900);
  }, 8_000);

  it('cancels a delayed will when the client reconnects in time', async () => {
    const topic = 'will/5/cancelled';
    const watch = await watcher(5, topic);
    const clientId = clients.id('will-delay');
    const options = {
      clientId,
      clean: false,
      properties: { sessionExpiryInterval: 30 },
      will: { topic, payload: Buffer.from('never'), qos: 1 as const, retain: false, properties: { willDelayInterval: 1 } },
    };
    const { client } = await clients.connect(5, options);
    await dropConnection(client);
    await clients.connect(5, { ...options, will: undefined });
    await sleep(1_600);
    await watch.marker();
    expect(watch.inbox.payloads()).toEqual(['marker-1']);
  }, 8_000);
});
