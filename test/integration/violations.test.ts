/**
 * Bad input costs only the offender its connection. For each violation (garbage bytes, a
 * malformed remaining length, a reserved packet type, PUBLISH with QoS 3 [MQTT-3.3.1-4], a
 * wildcard in a topic name [MQTT-3.3.2-2], a SUBSCRIBE with reserved flags [MQTT-3.8.1-1]) a raw
 * client is closed (5.0: with a DISCONNECT carrying the reason code where the packet was parsed
 * far enough), while a well-behaved bystander subscribed throughout keeps its connection and
 * keeps receiving messages, and the server keeps accepting new clients.
 */

import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { Clients, type Inbox, type RawClient, RawClients, startBroker, type Version, versions } from './helpers.js';

let server: RunningServer;
const clients = new Clients(() => server.port);
const raws = new RawClients(() => server.port);
let bystander: MqttClient;
let bystanderInbox: Inbox;
let rounds = 0;

beforeAll(async () => {
  server = await startBroker();
  ({ client: bystander, inbox: bystanderInbox } = await clients.connect(5, { clientId: 'bystander' }));
  await bystander.subscribeAsync('bystander/#', { qos: 1 });
});
afterEach(async () => {
  raws.destroyAll();
});
afterAll(async () => {
  await clients.endAll();
  await server?.close();
});

async function connectedRaw(version: Version): Promise<RawClient> {
  const client = await raws.open(version);
  const connack = await client.connect();
  expect(connack.cmd).toBe('connack');
  return client;
}

/** The bystander is still connected and a fresh client can publish to it. */
async function othersUnaffected(): Promise<void> {
  expect(bystander.connected).toBe(true);
  const label = `round ${++rounds}`;
  const { client } = await clients.connect(4);
  await client.publishAsync('bystander/check', label, { qos: 1 });
  await bystanderInbox.waitForPayload(label);
  await client.endAsync();
}

const violations: { name: string; bytes: number[]; reason5?: number }[] = [
  { name: 'garbage bytes', bytes: [0x00, 0xde, 0xad, 0xbe, 0xef] },
  { name: 'a remaining length longer than four bytes', bytes: [0x30, 0xff, 0xff, 0xff, 0xff, 0x7f] },
  { name: 'PUBLISH with QoS 3', bytes: [0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01], reason5: 0x81 },
  { name: 'SUBSCRIBE with reserved flags 0', bytes: [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00], reason5: 0x81 },
];

describe.each(versions)('MQTT protocol level %i: protocol violations close only the offender', (version) => {
  for (const violation of violations) {
    it(violation.name, async () => {
      const offender = await connectedRaw(version);
      offender.sendBytes(Uint8Array.from(violation.bytes));
      await offender.closed;
      if (version === 5 && violation.reason5 !== undefined && offender.count('disconnect') > 0) {
        expect((await offender.next('disconnect')).reasonCode).toBe(violation.reason5);
      }
      await othersUnaffected();
    });
  }

  it('a wildcard in a PUBLISH topic name', async () => {
    const offender = await connectedRaw(version);
    offender.send({ cmd: 'publish', topic: 'bystander/+', payload: Buffer.from('x'), qos: 0, retain: false, dup: false });
    await offender.closed;
    if (version === 5) expect((await offender.next('disconnect')).reasonCode).toBe(0x90);
    await othersUnaffected();
    expect(bystanderInbox.payloads()).not.toContain('x');
  });
});
