/**
 * Connection and session lifecycle over real TCP, in MQTT 3.1.1 and 5.0, against a broker started
 * in this process. Proves CONNACK and session-present ([MQTT-3.2.2-1..3]), persistent sessions
 * keeping subscriptions, zero-length client ids ([MQTT-3.1.3-6], [MQTT-3.1.3-8], 5.0 assigned id
 * [MQTT-3.2.2-16]), session takeover ([MQTT-3.1.4-2], 5.0 DISCONNECT 0x8E [MQTT-3.1.4-3]), keepalive
 * expiry after one and a half keepalive periods ([MQTT-3.1.2-24]; a raw socket that never pings),
 * and that a second CONNECT is a protocol violation that closes the connection ([MQTT-3.1.0-2]).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { Clients, closedWithReason, Inbox, persistent, type RawClient, RawClients, sleep, startBroker, type Version, versions } from './helpers.js';

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

describe.each(versions)('MQTT protocol level %i: connecting', (version) => {
  const code = (connack: { returnCode?: number; reasonCode?: number }): number | undefined => (version === 5 ? connack.reasonCode : connack.returnCode);

  it('accepts a clean connection with session present 0', async () => {
    const { connack } = await clients.connect(version, { clean: true });
    expect(code(connack) ?? 0).toBe(0);
    expect(connack.sessionPresent).toBe(false);
  });

  it('resumes a persistent session with session present 1 and its subscriptions', async () => {
    const clientId = clients.id('persistent');
    const first = await clients.connect(version, { clientId, ...persistent(version) });
    expect(first.connack.sessionPresent).toBe(false);
    await first.client.subscribeAsync('session/kept', { qos: 1 });
    await first.client.endAsync();

    const second = await clients.connect(version, { clientId, ...persistent(version) });
    expect(second.connack.sessionPresent).toBe(true);
    const inbox = new Inbox(second.client);
    const { client: publisher } = await clients.connect(version);
    await publisher.publishAsync('session/kept', 'still subscribed', { qos: 1 });
    await inbox.waitForPayload('still subscribed');
    await second.client.endAsync();

    // A clean connection discards the session [MQTT-3.1.2-6] / clean start [MQTT-3.1.2-4].
    const third = await clients.connect(version, { clientId, clean: true });
    expect(third.connack.sessionPresent).toBe(false);
  });

  it('a persistent session with the same id after a clean one starts fresh', async () => {
    const clientId = clients.id('fresh');
    const { client } = await clients.connect(version, { clientId, clean: true });
    await client.endAsync();
    const again = await clients.connect(version, { clientId, ...persistent(version) });
    expect(again.connack.sessionPresent).toBe(false);
  });

  it('takes over a connected client id and closes the old connection', async () => {
    const clientId = clients.id('takeover');
    const { client: old } = await clients.connect(version, { clientId });
    const oldClosed = closedWithReason(old);
    const { client: fresh } = await clients.connect(version, { clientId });
    const reason = await oldClosed;
    // 5.0: the old client is told why [MQTT-3.1.4-3]; 3.1.1 has no DISCONNECT from the server.
    if (version === 5) expect(reason).toBe(0x8e);
    else expect(reason).toBeNull();
    // The new connection works.
    const inbox = new Inbox(fresh);
    await fresh.subscribeAsync('takeover/echo', { qos: 1 });
    await fresh.publishAsync('takeover/echo', 'new owner', { qos: 1 });
    await inbox.waitForPayload('new owner');
    expect(fresh.connected).toBe(true);
  });

  it('closes a connection that stops sending within one and a half keepalive periods', async () => {
    const client = await raw(version);
    const connack = await client.connect({ keepalive: 1 });
    expect(connack.cmd).toBe('connack');
    const connectedMs = Date.now();
    await client.closed;
    const elapsedMs = Date.now() - connectedMs;
    expect(elapsedMs).toBeGreaterThanOrEqual(1_000);
    expect(elapsedMs).toBeLessThan(3_000);
    if (version === 5 && client.count('disconnect') > 0) {
      expect(((await client.next('disconnect')) as { reasonCode?: number }).reasonCode).toBe(0x8d);
    }
  }, 6_000);

  it('keeps a connection that pings within its keepalive', async () => {
    const client = await raw(version);
    await client.connect({ keepalive: 1 });
    for (let index = 0; index < 5; index++) {
      await sleep(400);
      client.send({ cmd: 'pingreq' });
      await client.next('pingresp');
    }
    expect(client.isOpen).toBe(true);
  }, 6_000);

  it('closes a connection that sends a second CONNECT', async () => {
    const client = await raw(version);
    await client.connect();
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clean: true, keepalive: 0, clientId: 'second' });
    await client.closed;
    if (version === 5) {
      expect(((await client.next('disconnect')) as { reasonCode?: number }).reasonCode).toBe(0x82);
    }
    expect(client.count('connack')).toBe(0);
  });

  it('closes a connection whose first packet is not CONNECT', async () => {
    const client = await raw(version);
    client.send({ cmd: 'pingreq' });
    await client.closed;
    expect(client.count('pingresp')).toBe(0);
  });
});

describe('zero-length client identifiers', () => {
  it('3.1.1: accepted with clean session', async () => {
    const client = await raw(4);
    const connack = await client.connect({ clientId: '', clean: true });
    expect(connack.returnCode).toBe(0);
  });

  it('3.1.1: refused with CONNACK 0x02 without clean session [MQTT-3.1.3-8]', async () => {
    const client = await raw(4);
    // mqtt-packet refuses to build this CONNECT, so write it byte by byte: protocol "MQTT" level 4,
    // flags 0 (clean session 0), keepalive 0, client id of length 0.
    client.sendBytes(Uint8Array.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 0, 0, 0]));
    const connack = await client.next('connack');
    expect(connack.returnCode).toBe(0x02);
    await client.closed;
  });

  it('5.0: the broker assigns an identifier and returns it in CONNACK [MQTT-3.2.2-16]', async () => {
    const first = await raw(5);
    const second = await raw(5);
    const one = await first.connect({ clientId: '', clean: true });
    const two = await second.connect({ clientId: '', clean: true });
    expect(one.reasonCode ?? 0).toBe(0);
    const assignedOne = one.properties?.assignedClientIdentifier;
    const assignedTwo = two.properties?.assignedClientIdentifier;
    expect(typeof assignedOne).toBe('string');
    expect(assignedOne!.length).toBeGreaterThan(0);
    expect(assignedTwo).not.toBe(assignedOne);
  });
});
