/**
 * Proves session behaviour: persistence across disconnects, expiry (5.0 interval, 0, never, and
 * DISCONNECT changing it), offline queueing with its limits and overflow policies, QoS 0 for
 * offline sessions, redelivery with DUP=1 (and PUBREL) on resume, and the outgoing window
 * (min(client Receive Maximum, inflightPerSessionMax)) with the rest queued in order.
 */
import { describe, expect, it } from 'vitest';
import { type ConnectPacket, PacketType, type ProtocolVersion } from '../../src/codec/packets.js';
import { decodeText, Harness } from './harness.js';

const persistent = (version: ProtocolVersion, expirySeconds = 3600): Partial<ConnectPacket> =>
  version === 5 ? { cleanStart: false, properties: { sessionExpiryInterval: expirySeconds } } : { cleanStart: false };

for (const version of [4, 5] as ProtocolVersion[]) {
  describe(`persistent sessions, version ${version}`, () => {
    it('queues QoS 1 messages while offline and delivers them in order on resume', () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version, persistent(version));
      subscriber.subscribe([{ topicFilter: 'q/#', qos: 1 }]);
      subscriber.disconnect();
      const publisher = harness.connect('pub', version);
      for (let index = 0; index < 5; index++) publisher.publish('q/a', `m${index}`, 1);
      expect(harness.broker.state.sessions.get('sub')!.queue).toHaveLength(5);
      const back = harness.open(version);
      expect(back.connect('sub', persistent(version)).sessionPresent).toBe(true);
      const received = back.publishes();
      expect(received.map((p) => decodeText(p.payload))).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
      expect(received.every((p) => !p.dup && p.qos === 1)).toBe(true);
    });

    it('drops QoS 0 for an offline session and counts it', () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version, persistent(version));
      subscriber.subscribe(['z']);
      subscriber.disconnect();
      harness.connect('pub', version).publish('z', 'lost', 0);
      expect(harness.broker.stats.drops.qos0Offline).toBe(1);
      const back = harness.open(version);
      back.connect('sub', persistent(version));
      expect(back.publishes()).toEqual([]);
    });

    it('redelivers unacknowledged QoS 1 with DUP=1 and the same packet id on resume [MQTT-4.4.0-1]', () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version, persistent(version));
      subscriber.subscribe(['r']);
      harness.connect('pub', version).publish('r', 'again', 1);
      const [first] = subscriber.publishes();
      expect(first!.dup).toBe(false);
      subscriber.drop();
      const back = harness.open(version);
      back.connect('sub', persistent(version));
      const [again] = back.publishes();
      expect(again!.dup).toBe(true);
      expect(again!.packetId).toBe(first!.packetId);
      expect(decodeText(again!.payload)).toBe('again');
      back.acknowledge(again!);
      expect(harness.broker.state.sessions.get('sub')!.inflight.size).toBe(0);
    });

    it('resends PUBREL, not PUBLISH, for a QoS 2 delivery that got its PUBREC', () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version, persistent(version));
      subscriber.subscribe(['r']);
      harness.connect('pub', version).publish('r', 'exactly once', 2);
      const [first] = subscriber.publishes();
      subscriber.send({ type: PacketType.Pubrec, packetId: first!.packetId!, reasonCode: 0 });
      subscriber.take();
      subscriber.drop();
      const back = harness.open(version);
      back.connect('sub', persistent(version));
      const pubrel = back.takeOne(PacketType.Pubrel);
      expect(pubrel.packetId).toBe(first!.packetId);
      back.send({ type: PacketType.Pubcomp, packetId: first!.packetId!, reasonCode: 0 });
      expect(harness.broker.state.sessions.get('sub')!.inflight.size).toBe(0);
    });

    it('a clean start discards the stored session', () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version, persistent(version));
      subscriber.subscribe(['c']);
      subscriber.disconnect();
      harness.connect('pub', version).publish('c', 'x', 1);
      const back = harness.open(version);
      expect(back.connect('sub', { cleanStart: true }).sessionPresent).toBe(false);
      expect(back.publishes()).toEqual([]);
      expect(harness.broker.state.messages.size).toBe(0);
      expect(harness.broker.stats.drops.sessionEnded).toBe(1);
    });
  });
}

describe('session expiry (5.0)', () => {
  it('ends the session after its expiry interval while offline, not before', () => {
    const harness = new Harness();
    const client = harness.connect('e', 5, persistent(5, 10));
    client.subscribe(['t']);
    client.disconnect();
    harness.advance(9_999);
    expect(harness.broker.state.sessions.has('e')).toBe(true);
    harness.advance(1);
    expect(harness.broker.state.sessions.has('e')).toBe(false);
    expect(harness.broker.stats.sessionsExpired).toBe(1);
    expect(harness.broker.trie.size).toBe(0);
  });

  it('a reconnect before expiry keeps the session, and the old expiry timer does nothing', () => {
    const harness = new Harness();
    harness.connect('e', 5, persistent(5, 10)).disconnect();
    harness.advance(5_000);
    const back = harness.open(5);
    expect(back.connect('e', persistent(5, 10)).sessionPresent).toBe(true);
    harness.advance(20_000);
    expect(harness.broker.state.sessions.has('e')).toBe(true);
  });

  it('DISCONNECT may change the expiry (here to 0: the session ends at once)', () => {
    const harness = new Harness();
    harness.connect('e', 5, persistent(5, 100)).disconnect(0, { sessionExpiryInterval: 0 });
    expect(harness.broker.state.sessions.has('e')).toBe(false);
  });

  it('DISCONNECT may lengthen a non-zero expiry', () => {
    const harness = new Harness();
    harness.connect('e', 5, persistent(5, 1)).disconnect(0, { sessionExpiryInterval: 100 });
    harness.advance(50_000);
    expect(harness.broker.state.sessions.has('e')).toBe(true);
  });

  it('DISCONNECT changing expiry from 0 to non-zero is a protocol error [MQTT-3.14.2-2]', () => {
    const harness = new Harness();
    const client = harness.connect('e', 5);
    client.disconnect(0, { sessionExpiryInterval: 100 });
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x82);
    expect(client.closed).toBe(true);
    expect(harness.broker.state.sessions.has('e')).toBe(false);
  });

  it('0xFFFFFFFF never expires, and 3.1.1 persistent sessions never expire', () => {
    const harness = new Harness();
    harness.connect('forever5', 5, persistent(5, 0xffffffff)).disconnect();
    harness.connect('forever4', 4, persistent(4)).disconnect();
    harness.advance(10 * 365 * 24 * 3600 * 1000);
    expect(harness.broker.state.sessions.has('forever5')).toBe(true);
    expect(harness.broker.state.sessions.has('forever4')).toBe(true);
  });
});

describe('outgoing window and queue limits', () => {
  it('5.0: sends at most the client Receive Maximum unacknowledged, queues the rest in order', () => {
    const harness = new Harness();
    const subscriber = harness.open(5);
    subscriber.connect('slow', { properties: { receiveMaximum: 2 } });
    subscriber.subscribe([{ topicFilter: 'w', qos: 1 }]);
    const publisher = harness.connect('pub', 5);
    for (let index = 0; index < 5; index++) publisher.publish('w', `m${index}`, 1);
    const firstBatch = subscriber.publishes();
    expect(firstBatch.map((p) => decodeText(p.payload))).toEqual(['m0', 'm1']);
    subscriber.acknowledge(firstBatch[0]!);
    const next = subscriber.publishes();
    expect(next.map((p) => decodeText(p.payload))).toEqual(['m2']);
    subscriber.acknowledge(firstBatch[1]!);
    subscriber.acknowledge(next[0]!);
    expect(subscriber.publishes().map((p) => decodeText(p.payload))).toEqual(['m3', 'm4']);
  });

  it('inflightPerSessionMax caps the window for 3.1.1 clients too', () => {
    const harness = new Harness({ inflightPerSessionMax: 1 });
    const subscriber = harness.connect('slow', 4);
    subscriber.subscribe([{ topicFilter: 'w', qos: 1 }]);
    const publisher = harness.connect('pub', 4);
    publisher.publish('w', 'a', 1);
    publisher.publish('w', 'b', 1);
    const [first] = subscriber.publishes();
    expect(subscriber.publishes()).toEqual([]);
    subscriber.acknowledge(first!);
    expect(subscriber.publishes().map((p) => decodeText(p.payload))).toEqual(['b']);
  });

  // Three QoS 1 messages into a two-message queue of an offline session: what comes back on resume.
  for (const [policy, outcome, kept] of [
    ['drop-oldest', 'loses its oldest message', ['b', 'c']],
    ['reject-new', 'refuses the new message', ['a', 'b']],
  ] as const) {
    it(`${policy}: a full queue ${outcome}, counted`, () => {
      const harness = new Harness({ queuedMessagesPerSessionMax: 2, queueOverflowPolicy: policy });
      const subscriber = harness.connect('sub', 4, { cleanStart: false });
      subscriber.subscribe([{ topicFilter: 'o', qos: 1 }]);
      subscriber.disconnect();
      const publisher = harness.connect('pub', 4);
      for (const payload of ['a', 'b', 'c']) publisher.publish('o', payload, 1);
      expect(harness.broker.stats.drops.queueOverflow).toBe(1);
      const back = harness.open(4);
      back.connect('sub', { cleanStart: false });
      expect(back.publishes().map((p) => decodeText(p.payload))).toEqual(kept);
    });
  }

  it('queuedBytesPerSessionMax bounds the queued payload bytes', () => {
    const harness = new Harness({ queuedBytesPerSessionMax: 10 });
    const subscriber = harness.connect('sub', 4, { cleanStart: false });
    subscriber.subscribe([{ topicFilter: 'o', qos: 1 }]);
    subscriber.disconnect();
    const publisher = harness.connect('pub', 4);
    publisher.publish('o', '123456', 1);
    publisher.publish('o', '789012', 1);
    publisher.publish('o', '12345678901', 1);
    const session = harness.broker.state.sessions.get('sub')!;
    expect(session.queuedBytes).toBeLessThanOrEqual(10);
    expect(session.queue).toHaveLength(1);
    expect(harness.broker.stats.drops.queueOverflow).toBe(2);
  });
});
