/**
 * Proves CONNECT handling: protocol levels, client identifiers, session present, takeover,
 * keepalive at 1.5x, server keepalive, connect timeout, packets before or after CONNECT,
 * CONNACK 5.0 properties, authentication method refusal and the connection/session limits.
 * Each test drives the broker with encoded packets and inspects the decoded replies and closes.
 */
import { describe, expect, it } from 'vitest';
import type { Authenticator } from '../../src/broker/authenticator.js';
import { Broker } from '../../src/broker/broker.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { type ConnectPacket, PacketType } from '../../src/codec/packets.js';
import { defaultConfig, resolveConfig } from '../../src/config.js';
import { defaultListener } from '../../src/contract.js';
import { MemoryStateStore } from '../../src/store/memory-store.js';
import { Harness, will } from './harness.js';

function connectBytes(level: number): Uint8Array {
  const packet: ConnectPacket = { type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 4, cleanStart: true, keepAliveSeconds: 0, clientId: 'c' };
  const bytes = encodePacket(packet, 4);
  // Fixed header (2 bytes), protocol name (2 + 4 bytes), then the level byte.
  expect(bytes[8]).toBe(4);
  bytes[8] = level;
  return bytes;
}

describe('protocol levels', () => {
  it('accepts MQTT 3.1 (MQIsdp, level 3)', () => {
    const harness = new Harness();
    const client = harness.open(3);
    expect(client.connect('old-timer').reasonCode).toBe(0);
    client.subscribe(['t']);
    harness.connect('pub', 4).publish('t', 'x', 1);
    expect(client.publishes()).toHaveLength(1);
  });

  it('refuses an unsupported level with the 3.1.1 CONNACK return code 1 and closes', () => {
    const harness = new Harness();
    const client = harness.open(4);
    client.sendBytes(connectBytes(6));
    const connack = client.takeOne(PacketType.Connack);
    expect(connack.reasonCode).toBe(1);
    expect(client.closed).toBe(true);
    expect(harness.logEvents()).toContain('protocol-violation');
  });
});

describe('client identifiers', () => {
  it('5.0: assigns an identifier to an empty client id and returns it', () => {
    const harness = new Harness();
    const client = harness.open(5);
    const connack = client.connect('');
    expect(connack.reasonCode).toBe(0);
    const assigned = connack.properties?.assignedClientIdentifier;
    expect(assigned).toMatch(/^keel-\d+$/);
    expect(harness.broker.online.has(assigned!)).toBe(true);
  });

  it('3.1.1: accepts an empty client id with a clean session', () => {
    const harness = new Harness();
    const client = harness.open(4);
    expect(client.connect('', { cleanStart: true }).reasonCode).toBe(0);
  });

  it('3.1.1: refuses an empty client id with a persistent session (rc 2)', () => {
    const harness = new Harness();
    const client = harness.open(4);
    expect(client.connect('', { cleanStart: false }).reasonCode).toBe(2);
    expect(client.closed).toBe(true);
  });

  it('refuses a client id longer than clientIdBytesMax (0x85 / rc 2)', () => {
    const harness = new Harness({ clientIdBytesMax: 8 });
    expect(harness.open(5).connect('123456789').reasonCode).toBe(0x85);
    expect(harness.open(4).connect('123456789').reasonCode).toBe(2);
    expect(harness.open(4).connect('12345678').reasonCode).toBe(0);
  });
});

describe('session present', () => {
  for (const version of [4, 5] as const) {
    it(`version ${version}: is set when a persistent session is resumed, not after clean start`, () => {
      const harness = new Harness();
      const persistent = version === 5 ? { cleanStart: false, properties: { sessionExpiryInterval: 60 } } : { cleanStart: false };
      const first = harness.open(version);
      expect(first.connect('p', persistent).sessionPresent).toBe(false);
      first.disconnect();
      const second = harness.open(version);
      expect(second.connect('p', persistent).sessionPresent).toBe(true);
      second.disconnect();
      const third = harness.open(version);
      expect(third.connect('p', { ...persistent, cleanStart: true }).sessionPresent).toBe(false);
    });
  }
});

describe('session takeover', () => {
  it('5.0: the old connection gets DISCONNECT 0x8E, is closed, and its will is published', () => {
    const harness = new Harness();
    const watcher = harness.connect('watcher', 5);
    watcher.subscribe(['wills/#']);
    const old = harness.open(5);
    old.connect('dup', { will: will('wills/dup', 'gone') });
    const replacement = harness.open(5);
    expect(replacement.connect('dup').reasonCode).toBe(0);
    const disconnect = old.takeOne(PacketType.Disconnect);
    expect(disconnect.reasonCode).toBe(0x8e);
    expect(old.closed).toBe(true);
    expect(watcher.publishes().map((p) => p.topic)).toEqual(['wills/dup']);
    expect(harness.broker.stats.takeovers).toBe(1);
    expect(harness.broker.online.get('dup')!.id).toBe(replacement.id);
  });

  it('3.1.1: the old connection is closed without a packet and the new one resumes the session', () => {
    const harness = new Harness();
    const old = harness.open(4);
    old.connect('dup', { cleanStart: false });
    old.subscribe(['t']);
    const replacement = harness.open(4);
    expect(replacement.connect('dup', { cleanStart: false }).sessionPresent).toBe(true);
    expect(old.take()).toEqual([]);
    expect(old.closed).toBe(true);
    harness.connect('pub', 4).publish('t', 'after', 0);
    expect(replacement.publishes()).toHaveLength(1);
  });

  it('5.0: a will with a delay is not published when the taking-over connection resumes the session', () => {
    const harness = new Harness();
    const watcher = harness.connect('watcher', 5);
    watcher.subscribe(['wills/#']);
    const old = harness.open(5);
    old.connect('dup', { cleanStart: false, properties: { sessionExpiryInterval: 100 }, will: will('wills/dup', 'gone', { properties: { willDelayInterval: 10 } }) });
    harness.open(5).connect('dup', { cleanStart: false, properties: { sessionExpiryInterval: 100 } });
    harness.advance(20_000);
    expect(watcher.publishes()).toEqual([]);
    expect(harness.broker.state.wills.has('dup')).toBe(false);
  });
});

describe('keepalive', () => {
  for (const version of [4, 5] as const) {
    it(`version ${version}: closes after 1.5x the keepalive without packets, not before`, () => {
      const harness = new Harness();
      const client = harness.open(version);
      client.connect('sleepy', { keepAliveSeconds: 10 });
      harness.advance(14_999);
      expect(client.closed).toBe(false);
      client.send({ type: PacketType.Pingreq });
      client.take();
      harness.advance(14_999);
      expect(client.closed).toBe(false);
      harness.advance(1);
      expect(client.closed).toBe(true);
      if (version === 5) expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x8d);
      else expect(client.take()).toEqual([]);
      expect(harness.broker.stats.keepAliveTimeouts).toBe(1);
    });
  }

  it('5.0: serverKeepAliveSeconds overrides the client and is announced in CONNACK', () => {
    const harness = new Harness({ serverKeepAliveSeconds: 2 });
    const client = harness.open(5);
    const connack = client.connect('k', { keepAliveSeconds: 600 });
    expect(connack.properties?.serverKeepAlive).toBe(2);
    harness.advance(3_001);
    expect(client.closed).toBe(true);
  });

  it('keepalive 0 disables the check when keepAliveSecondsMax is null', () => {
    const harness = new Harness({ keepAliveSecondsMax: null });
    const client = harness.connect('forever', 4);
    harness.advance(1_000_000_000);
    expect(client.closed).toBe(false);
  });

  for (const version of [4, 5] as const) {
    it(`version ${version}: keepAliveSecondsMax holds a longer keepalive, and keepalive 0, to the ceiling`, () => {
      const harness = new Harness({ keepAliveSecondsMax: 60 });
      const long = harness.open(version);
      const none = harness.open(version);
      const short = harness.open(version);
      const connacks = [long.connect('long', { keepAliveSeconds: 600 }), none.connect('none', { keepAliveSeconds: 0 }), short.connect('short', { keepAliveSeconds: 5 })];
      // 5.0 is told the ceiling (Server Keep Alive); a client within it keeps its own, unannounced.
      expect(connacks.map((connack) => connack.properties?.serverKeepAlive)).toEqual(version === 5 ? [60, 60, undefined] : [undefined, undefined, undefined]);
      harness.advance(7_500);
      expect([long.closed, none.closed, short.closed]).toEqual([false, false, true]);
      harness.advance(90_000 - 7_500 - 1);
      expect([long.closed, none.closed]).toEqual([false, false]);
      harness.advance(1);
      expect([long.closed, none.closed]).toEqual([true, true]);
    });
  }

  it('rejects a keepAliveSecondsMax outside 1..65535', () => {
    expect(resolveConfig({ keepAliveSecondsMax: 0 })).toMatchObject({ ok: false });
    expect(resolveConfig({ keepAliveSecondsMax: 65_536 })).toMatchObject({ ok: false });
    expect(resolveConfig({ keepAliveSecondsMax: null })).toMatchObject({ ok: true });
  });
});

describe('log lines about clients', () => {
  it('logs every accepted connection and its end with who, from where and how', () => {
    const harness = new Harness();
    const client = harness.open(5);
    client.connect('lamp', { username: 'alice', keepAliveSeconds: 30, cleanStart: true });
    client.drop();
    const connected = harness.logs.find((log) => log.event === 'client-connected');
    expect(connected).toMatchObject({
      level: 'info',
      fields: { clientId: 'lamp', username: 'alice', address: expect.stringMatching(/:1883$/), protocolVersion: 5, cleanStart: true, keepAliveSeconds: 30, sessionPresent: false },
    });
    const disconnected = harness.logs.find((log) => log.event === 'client-disconnected');
    expect(disconnected).toMatchObject({ level: 'info', fields: { clientId: 'lamp', username: 'alice', reason: 'peer closed' } });
  });

  it('logs a refusal with the client id the CONNECT named', () => {
    const harness = new Harness({ clientIdBytesMax: 4 });
    harness.open(4).connect('too-long', { username: 'bob' });
    expect(harness.logs.find((log) => log.event === 'connect-refused')?.fields).toMatchObject({ clientId: 'too-long', username: 'bob', protocolVersion: 4, reasonCode: 2 });
  });
});

describe('connection phases', () => {
  it('closes a connection that sends no CONNECT within connectTimeoutMs', () => {
    const harness = new Harness({ connectTimeoutMs: 500 });
    const client = harness.open(4);
    harness.advance(499);
    expect(client.closed).toBe(false);
    harness.advance(1);
    expect(client.closed).toBe(true);
    expect(harness.broker.stats.connectTimeouts).toBe(1);
  });

  it('treats a second CONNECT as a protocol violation [MQTT-3.1.0-2] (5.0: DISCONNECT 0x82)', () => {
    const harness = new Harness();
    const client = harness.connect('twice', 5);
    client.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: true, keepAliveSeconds: 0, clientId: 'twice' });
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x82);
    expect(client.closed).toBe(true);
    expect(harness.broker.stats.protocolViolations).toBe(1);
  });

  it('3.1.1: a second CONNECT closes the connection without a packet', () => {
    const harness = new Harness();
    const client = harness.connect('twice', 4);
    client.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 4, cleanStart: true, keepAliveSeconds: 0, clientId: 'twice' });
    expect(client.take()).toEqual([]);
    expect(client.closed).toBe(true);
  });

  it('closes a connection whose first packet is not CONNECT', () => {
    const harness = new Harness();
    const client = harness.open(4);
    client.send({ type: PacketType.Pingreq });
    expect(client.closed).toBe(true);
  });

  it('ignores bytes after the close decision and keeps other clients unaffected', () => {
    const harness = new Harness();
    const good = harness.connect('good', 5);
    good.subscribe(['t']);
    const bad = harness.connect('bad', 5);
    bad.sendBytes(new Uint8Array([0xf0, 0x00]).slice(0, 1));
    bad.sendBytes(new Uint8Array([0x05, 1, 2, 3, 4, 5]));
    expect(bad.closed).toBe(true);
    harness.connect('pub', 5).publish('t', 'still fine', 1);
    expect(good.publishes()).toHaveLength(1);
  });
});

describe('CONNACK 5.0 properties', () => {
  it('announces limits that differ from the protocol defaults', () => {
    const harness = new Harness({
      receiveMaximum: 10,
      maximumQos: 1,
      retainAvailable: false,
      packetBytesMax: 4096,
      topicAliasMaximum: 5,
      wildcardSubscriptionAvailable: false,
      subscriptionIdentifiersAvailable: false,
      sharedSubscriptionAvailable: false,
      sessionExpirySecondsMax: 30,
    });
    const connack = harness.open(5).connect('props', { keepAliveSeconds: 60, properties: { sessionExpiryInterval: 3600 } });
    expect(connack.properties).toEqual({
      receiveMaximum: 10,
      maximumQos: 1,
      retainAvailable: 0,
      maximumPacketSize: 4096,
      topicAliasMaximum: 5,
      wildcardSubscriptionAvailable: 0,
      subscriptionIdentifiersAvailable: 0,
      sharedSubscriptionAvailable: 0,
      sessionExpiryInterval: 30,
    });
  });

  it('3.1.1 CONNACK carries no properties', () => {
    const harness = new Harness({ receiveMaximum: 10 });
    expect(harness.open(4).connect('plain').properties).toBeUndefined();
  });
});

describe('authentication', () => {
  it('5.0: refuses a CONNECT with an authentication method with 0x8C', () => {
    const harness = new Harness();
    const client = harness.open(5);
    expect(client.connect('auth', { properties: { authenticationMethod: 'SCRAM-SHA-1' } }).reasonCode).toBe(0x8c);
    expect(client.closed).toBe(true);
  });

  it('consults the authenticator seam and maps its refusal to 3.1.1 return codes', () => {
    const authenticator: Authenticator = {
      authenticate: (request) => (request.username === 'ok' ? { ok: true } : { ok: false, reasonCode: 0x86 }),
    };
    const broker = new Broker({ config: defaultConfig, nowMs: 0, store: new MemoryStateStore(), authenticator });
    const connect = (username: string): number => {
      broker.connectionOpened(0, username.length, { remoteAddress: 'peer', listener: defaultListener });
      broker.bytesReceived(
        0,
        username.length,
        encodePacket({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 4, cleanStart: true, keepAliveSeconds: 0, clientId: username, username }, 4),
      );
      const send = broker.drainActions().find((action) => action.kind === 'send');
      return send !== undefined && send.kind === 'send' ? send.bytes[3]! : -1;
    };
    expect(connect('ok')).toBe(0);
    expect(connect('nope')).toBe(4);
  });

  it('counts refusals for who the client is as authentication failures, and no other refusal', () => {
    const authenticator: Authenticator = {
      authenticate: (request) => (request.username === 'ok' ? { ok: true } : { ok: false, reasonCode: request.username === 'banned' ? 0x8a : 0x86 }),
    };
    const harness = new Harness({ sessionsMax: 1 });
    harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authenticator });
    harness.collect();
    expect(harness.open(5).connect('a', { username: 'nope' }).reasonCode).toBe(0x86);
    expect(harness.open(4).connect('b', { username: 'nope' }).reasonCode).toBe(4);
    expect(harness.open(5).connect('c', { username: 'banned' }).reasonCode).toBe(0x8a);
    expect(harness.open(5).connect('d', { username: 'ok', properties: { authenticationMethod: 'SCRAM-SHA-1' } }).reasonCode).toBe(0x8c);
    expect(harness.broker.stats.authenticationFailures).toBe(4);
    // Refusals for a limit or a bad client id are not about identity.
    harness.open(5).connect('e', { username: 'ok' });
    expect(harness.open(5).connect('f', { username: 'ok' }).reasonCode).toBe(0x97);
    expect(harness.open(4).connect('x'.repeat(300), { username: 'ok' }).reasonCode).toBe(2);
    expect(harness.broker.stats.connectsRefused).toBe(6);
    expect(harness.broker.stats.authenticationFailures).toBe(4);
  });
});

describe('limits', () => {
  it('refuses a new session beyond sessionsMax (0x97 / rc 3)', () => {
    const harness = new Harness({ sessionsMax: 1 });
    harness.connect('one', 5);
    expect(harness.open(5).connect('two').reasonCode).toBe(0x97);
    expect(harness.open(4).connect('three').reasonCode).toBe(3);
  });

  it('refuses a connection beyond connectionsMax, but still allows a takeover', () => {
    const harness = new Harness({ connectionsMax: 1 });
    harness.connect('one', 5);
    expect(harness.open(5).connect('two').reasonCode).toBe(0x97);
    expect(harness.open(5).connect('one').reasonCode).toBe(0);
  });
});
