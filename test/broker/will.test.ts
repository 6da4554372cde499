/**
 * Proves wills: published on abnormal ends (transport closed, keepalive expiry, protocol
 * violation), not on a normal DISCONNECT, published on 5.0 DISCONNECT 0x04; the 5.0 will delay
 * (cancelled by a reconnect before it runs out, capped by the session expiry); will properties and
 * will retain carried to the published message.
 */
import { describe, expect, it } from 'vitest';
import { PacketType } from '../../src/codec/packets.js';
import { decodeText, Harness, will } from './harness.js';

for (const version of [4, 5] as const) {
  describe(`wills, version ${version}`, () => {
    it('is published when the connection drops without DISCONNECT', () => {
      const harness = new Harness();
      const watcher = harness.connect('w', version);
      watcher.subscribe(['last/#']);
      const client = harness.open(version);
      client.connect('c', { will: will('last/c', 'bye', { qos: 1 }) });
      client.drop();
      const [message] = watcher.publishes();
      expect(message!.topic).toBe('last/c');
      expect(decodeText(message!.payload)).toBe('bye');
      expect(message!.qos).toBe(1);
      expect(harness.broker.stats.willsPublished).toBe(1);
    });

    it('is not published on a normal DISCONNECT', () => {
      const harness = new Harness();
      const watcher = harness.connect('w', version);
      watcher.subscribe(['last/#']);
      const client = harness.open(version);
      client.connect('c', { will: will('last/c', 'bye') });
      client.disconnect();
      harness.advance(100_000);
      expect(watcher.publishes()).toEqual([]);
      expect(harness.broker.state.wills.size).toBe(0);
    });

    it('is published on keepalive expiry and on a protocol violation', () => {
      const harness = new Harness();
      const watcher = harness.connect('w', version);
      watcher.subscribe(['last/#']);
      const sleepy = harness.open(version);
      sleepy.connect('sleepy', { keepAliveSeconds: 1, will: will('last/sleepy', 'z') });
      const rude = harness.open(version);
      rude.connect('rude', { will: will('last/rude', 'r') });
      rude.send({ type: PacketType.Connack, sessionPresent: false, reasonCode: 0 });
      harness.advance(1_500);
      expect(watcher.publishes().map((p) => p.topic)).toEqual(['last/rude', 'last/sleepy']);
    });

    it('will retain stores the will as the retained message', () => {
      const harness = new Harness();
      const client = harness.open(version);
      client.connect('c', { will: will('status/c', 'offline', { retain: true }) });
      client.drop();
      const late = harness.connect('late', version);
      late.subscribe(['status/c']);
      const [message] = late.publishes();
      expect(decodeText(message!.payload)).toBe('offline');
      expect(message!.retain).toBe(true);
    });
  });
}

describe('will delay and properties (5.0)', () => {
  it('DISCONNECT with 0x04 publishes the will', () => {
    const harness = new Harness();
    const watcher = harness.connect('w', 5);
    watcher.subscribe(['last/#']);
    const client = harness.open(5);
    client.connect('c', { will: will('last/c', 'bye') });
    client.disconnect(0x04);
    expect(watcher.publishes()).toHaveLength(1);
  });

  it('waits for the will delay, and a reconnect before it cancels the will', () => {
    const harness = new Harness();
    const watcher = harness.connect('w', 5);
    watcher.subscribe(['last/#']);
    const options = { cleanStart: false, properties: { sessionExpiryInterval: 300 }, will: will('last/c', 'bye', { properties: { willDelayInterval: 30 } }) };
    const client = harness.open(5);
    client.connect('c', options);
    client.drop();
    harness.advance(29_000);
    expect(watcher.publishes()).toEqual([]);
    const back = harness.open(5);
    back.connect('c', { cleanStart: false, properties: { sessionExpiryInterval: 300 } });
    harness.advance(60_000);
    expect(watcher.publishes()).toEqual([]);
  });

  it('is published after the delay when nobody reconnects', () => {
    const harness = new Harness();
    const watcher = harness.connect('w', 5);
    watcher.subscribe(['last/#']);
    const client = harness.open(5);
    client.connect('c', { cleanStart: false, properties: { sessionExpiryInterval: 300 }, will: will('last/c', 'bye', { properties: { willDelayInterval: 30 } }) });
    client.drop();
    harness.advance(29_999);
    expect(watcher.publishes()).toEqual([]);
    harness.advance(1);
    expect(watcher.publishes()).toHaveLength(1);
  });

  it('the session expiry caps the delay: published when the session ends', () => {
    const harness = new Harness();
    const watcher = harness.connect('w', 5);
    watcher.subscribe(['last/#']);
    const client = harness.open(5);
    client.connect('c', { cleanStart: false, properties: { sessionExpiryInterval: 5 }, will: will('last/c', 'bye', { properties: { willDelayInterval: 30 } }) });
    client.drop();
    harness.advance(5_000);
    expect(watcher.publishes()).toHaveLength(1);
    expect(harness.broker.state.sessions.has('c')).toBe(false);
  });

  it('carries will properties (content type, user properties, expiry) and not the delay', () => {
    const harness = new Harness();
    const watcher = harness.connect('w', 5);
    watcher.subscribe(['last/#']);
    const client = harness.open(5);
    client.connect('c', { will: will('last/c', 'bye', { properties: { contentType: 'text/plain', userProperties: [['k', 'v']], messageExpiryInterval: 60 } }) });
    client.drop();
    const [message] = watcher.publishes();
    expect(message!.properties).toEqual({ contentType: 'text/plain', userProperties: [['k', 'v']], messageExpiryInterval: 60 });
  });
});
