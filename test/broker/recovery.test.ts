/**
 * Proves crash-and-replay: a new Broker over the same MemoryStateStore holds the same sessions,
 * subscriptions, retained messages, queued and inflight deliveries and incoming QoS 2 state;
 * resumed sessions get their inflight messages again with DUP=1; wills of connections the crash
 * ended are published; volatile (expiry 0) sessions are not written at all; replay tolerates a
 * crash between any two records (every prefix of a real record log recovers to a consistent
 * state); compaction keeps the log bounded and replays to the same state.
 */
import { describe, expect, it } from 'vitest';
import { PacketType } from '../../src/codec/packets.js';
import { MemoryStateStore } from '../../src/store/memory-store.js';
import { checkConsistent, picture } from './durable-state-checks.js';
import { decodeText, Harness, will } from './harness.js';

/** A workload touching every kind of durable state; returns the harness mid-flight. */
function busyBroker(store = new MemoryStateStore()): Harness {
  const harness = new Harness({}, store);
  const slow = harness.open(5);
  slow.connect('slow', { cleanStart: false, properties: { sessionExpiryInterval: 3600, receiveMaximum: 1 } });
  slow.subscribe([{ topicFilter: 'data/#', qos: 2 }], { subscriptionIdentifiers: [4] });
  const away = harness.connect('away', 4, { cleanStart: false });
  away.subscribe([
    { topicFilter: 'data/+', qos: 1 },
    { topicFilter: '$share/g/data/x', qos: 1 },
  ]);
  away.disconnect();
  const publisher = harness.open(5);
  publisher.connect('pub', { cleanStart: false, properties: { sessionExpiryInterval: 3600 }, will: will('wills/pub', 'pub died') });
  publisher.publish('data/x', 'first', 2);
  publisher.publish('data/x', 'second', 1, { retain: true });
  publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 'data/y', packetId: 900, payload: new TextEncoder().encode('unreleased') });
  publisher.take();
  publisher.publish('status', 'up', 0, { retain: true });
  const [delivery] = slow.publishes();
  slow.send({ type: PacketType.Pubrec, packetId: delivery!.packetId!, reasonCode: 0 });
  slow.take();
  return harness;
}

describe('crash and replay', () => {
  it('a new broker over the same store holds the same durable state', () => {
    const harness = busyBroker();
    const before = picture(harness.broker.state);
    harness.restart();
    expect(picture(harness.broker.state)).toEqual(before);
    expect(harness.broker.ready).toBe(true);
    expect(harness.broker.trie.size).toBe(3);
    checkConsistent(harness.broker.state);
  });

  it('a resumed session gets PUBREL for its released QoS 2 delivery, then the queue', () => {
    const harness = busyBroker();
    harness.restart();
    const slow = harness.open(5);
    expect(slow.connect('slow', { cleanStart: false, properties: { sessionExpiryInterval: 3600, receiveMaximum: 1 } }).sessionPresent).toBe(true);
    const packets = slow.take();
    expect(packets[0]!.type).toBe(PacketType.Pubrel);
    slow.send({ type: PacketType.Pubcomp, packetId: (packets[0] as { packetId: number }).packetId, reasonCode: 0 });
    const next = slow.publishes();
    expect(next.map((p) => decodeText(p.payload))).toEqual(['second']);
    expect(next[0]!.properties?.subscriptionIdentifiers).toEqual([4]);
  });

  it('an inflight QoS 1 delivery comes back with DUP=1 after a crash', () => {
    const harness = new Harness();
    const sub = harness.connect('sub', 4, { cleanStart: false });
    sub.subscribe([{ topicFilter: 't', qos: 1 }]);
    harness.connect('pub', 4).publish('t', 'once', 1);
    const [first] = sub.publishes();
    harness.restart();
    const back = harness.open(4);
    back.connect('sub', { cleanStart: false });
    const [again] = back.publishes();
    expect(again).toMatchObject({ dup: true, packetId: first!.packetId });
  });

  it('the incoming QoS 2 state survives: a resent PUBLISH is not routed twice, PUBREL completes it', () => {
    const harness = busyBroker();
    harness.restart();
    const watcher = harness.connect('watcher', 5);
    watcher.subscribe(['data/y']);
    const publisher = harness.open(5);
    publisher.connect('pub', { cleanStart: false, properties: { sessionExpiryInterval: 3600 } });
    publisher.take();
    publisher.send({ type: PacketType.Publish, dup: true, qos: 2, retain: false, topic: 'data/y', packetId: 900, payload: new TextEncoder().encode('unreleased') });
    expect(publisher.takeOne(PacketType.Pubrec).packetId).toBe(900);
    expect(watcher.publishes()).toEqual([]);
    publisher.send({ type: PacketType.Pubrel, packetId: 900, reasonCode: 0 });
    expect(publisher.takeOne(PacketType.Pubcomp).reasonCode).toBe(0);
  });

  it('publishes the wills of connections the crash ended', () => {
    const harness = busyBroker();
    harness.restart();
    expect(harness.broker.state.wills.size).toBe(0);
    expect(harness.broker.stats.willsPublished).toBe(1);
    // 'away' (3.1.1, persistent) subscribed to data/+ only; the will went to wills/pub: nobody.
    expect(harness.broker.stats.messagesUnmatched).toBe(1);
  });

  it('retained messages survive and are served after restart', () => {
    const harness = busyBroker();
    harness.restart();
    const late = harness.connect('late', 4);
    late.subscribe(['#']);
    expect(
      late
        .publishes()
        .map((p) => decodeText(p.payload))
        .sort(),
    ).toEqual(['second', 'up']);
  });

  it('volatile sessions (expiry 0) write no records and are gone after a crash', () => {
    const harness = new Harness();
    const client = harness.connect('volatile', 5);
    client.subscribe(['t']);
    harness.connect('pub', 5).publish('t', 'x', 1);
    const kinds = harness.store.records().map((record) => record.kind);
    expect(kinds).not.toContain('session-created');
    expect(kinds).not.toContain('subscription-added');
    expect(kinds).not.toContain('delivery-queued');
    harness.restart();
    expect(harness.broker.state.sessions.size).toBe(0);
    expect(harness.broker.state.messages.size).toBe(0);
  });

  it('a session that turned volatile on resume is not recovered', () => {
    const harness = new Harness();
    harness.connect('p', 5, { cleanStart: false, properties: { sessionExpiryInterval: 100 } }).drop();
    harness.connect('p', 5, { cleanStart: false, properties: { sessionExpiryInterval: 0 } });
    harness.restart();
    expect(harness.broker.state.sessions.has('p')).toBe(false);
  });

  it('tolerates a crash between any two records', () => {
    const records = busyBroker().store.records();
    expect(records.length).toBeGreaterThan(10);
    for (let length = 0; length <= records.length; length++) {
      const recovered = new Harness({}, new MemoryStateStore({ records: records.slice(0, length) }));
      checkConsistent(recovered.broker.state);
      // Recovering again from what that recovery appended is stable too.
      const again = new Harness({}, recovered.store);
      expect(picture(again.broker.state)).toEqual(picture(recovered.broker.state));
    }
  });

  it('survives a crash during recovery (restart twice in a row)', () => {
    const harness = busyBroker();
    const before = picture(harness.broker.state);
    harness.restart();
    harness.restart();
    expect(picture(harness.broker.state)).toEqual(before);
  });
});

describe('compaction', () => {
  it('keeps the log bounded in a long run and replays to the same state', () => {
    const store = new MemoryStateStore({ compactRecordsMin: 64 });
    const harness = new Harness({}, store);
    const sub = harness.connect('sub', 4, { cleanStart: false });
    sub.subscribe([{ topicFilter: 't/#', qos: 1 }]);
    const publisher = harness.connect('pub', 4);
    let maxRecords = 0;
    for (let index = 0; index < 2_000; index++) {
      publisher.publish(`t/${index % 7}`, `m${index}`, 1, { retain: index % 3 === 0 });
      for (const delivery of sub.publishes()) sub.acknowledge(delivery);
      maxRecords = Math.max(maxRecords, store.records().length);
    }
    expect(store.compactions).toBeGreaterThan(0);
    expect(maxRecords).toBeLessThan(1_000);
    const before = picture(harness.broker.state);
    harness.restart();
    expect(picture(harness.broker.state)).toEqual(before);
  });
});
