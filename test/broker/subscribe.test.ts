/**
 * Proves SUBSCRIBE / UNSUBSCRIBE: granted QoS, each failure code (5.0 and 3.1.1 forms), the
 * per-session subscription limit, subscription options (No Local, Retain As Published), the
 * protocol error for No Local on a shared subscription, subscription identifiers, overlapping
 * subscriptions (one copy, highest QoS, all identifiers), re-subscribe replacing, shared
 * subscriptions (round robin, never two members, prefers connected members) and UNSUBACK codes.
 */
import { describe, expect, it } from 'vitest';
import { PacketType } from '../../src/codec/packets.js';
import { Harness } from './harness.js';

describe('SUBACK codes', () => {
  it('grants min(requested, maximumQos)', () => {
    const harness = new Harness({ maximumQos: 1 });
    const client = harness.connect('c', 5);
    const suback = client.subscribe([
      { topicFilter: 'a', qos: 0 },
      { topicFilter: 'b', qos: 1 },
      { topicFilter: 'c', qos: 2 },
    ]);
    expect(suback.reasonCodes).toEqual([0, 1, 1]);
  });

  it('5.0: reports invalid filter 0x8F, 3.1.1: 0x80, per filter', () => {
    const harness = new Harness();
    expect(harness.connect('five', 5).subscribe(['a/#/b', 'ok']).reasonCodes).toEqual([0x8f, 2]);
    expect(harness.connect('four', 4).subscribe(['a/#/b', 'ok']).reasonCodes).toEqual([0x80, 2]);
  });

  it('reports unavailable shared (0x9E), wildcard (0xA2) and subscription identifier (0xA1) subscriptions', () => {
    const harness = new Harness({ sharedSubscriptionAvailable: false, wildcardSubscriptionAvailable: false, subscriptionIdentifiersAvailable: false });
    const client = harness.connect('c', 5);
    expect(client.subscribe(['$share/g/t', 'a/+', 'plain']).reasonCodes).toEqual([0x9e, 0xa2, 2]);
    expect(client.subscribe(['plain2'], { subscriptionIdentifiers: [7] }).reasonCodes).toEqual([0xa1]);
  });

  it('refuses filters beyond subscriptionsPerSessionMax with 0x97, but a replaced filter still fits', () => {
    const harness = new Harness({ subscriptionsPerSessionMax: 2 });
    const client = harness.connect('c', 5);
    expect(client.subscribe(['a', 'b', 'c']).reasonCodes).toEqual([2, 2, 0x97]);
    expect(client.subscribe(['a']).reasonCodes).toEqual([2]);
  });

  it('No Local on a shared subscription is a protocol error [MQTT-3.8.3-4]', () => {
    const harness = new Harness();
    const client = harness.connect('c', 5);
    client.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: '$share/g/t', qos: 1, noLocal: true, retainAsPublished: false, retainHandling: 0 }] });
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x82);
    expect(client.closed).toBe(true);
  });
});

describe('subscription options', () => {
  it('No Local: a client does not receive its own messages on that subscription', () => {
    const harness = new Harness();
    const client = harness.connect('self', 5);
    client.subscribe([{ topicFilter: 'mine', noLocal: true }, { topicFilter: 'yours' }]);
    client.publish('mine', 'x', 0);
    client.publish('yours', 'y', 0);
    expect(client.publishes().map((p) => p.topic)).toEqual(['yours']);
    harness.connect('other', 5).publish('mine', 'z', 0);
    expect(client.publishes().map((p) => p.topic)).toEqual(['mine']);
  });

  it('Retain As Published keeps RETAIN=1 on forwarded messages; otherwise it is cleared [MQTT-3.3.1-12, -13]', () => {
    const harness = new Harness();
    const keep = harness.connect('keep', 5);
    keep.subscribe([{ topicFilter: 'r', retainAsPublished: true }]);
    const clear = harness.connect('clear', 5);
    clear.subscribe([{ topicFilter: 'r' }]);
    harness.connect('pub', 5).publish('r', 'v', 0, { retain: true });
    expect(keep.publishes()[0]!.retain).toBe(true);
    expect(clear.publishes()[0]!.retain).toBe(false);
  });
});

describe('subscription identifiers and overlapping subscriptions', () => {
  it('sends one copy at the highest granted QoS with every matching identifier', () => {
    const harness = new Harness();
    const client = harness.connect('c', 5);
    client.subscribe([{ topicFilter: 'a/+', qos: 0 }], { subscriptionIdentifiers: [1] });
    client.subscribe([{ topicFilter: 'a/#', qos: 1 }], { subscriptionIdentifiers: [2] });
    client.subscribe([{ topicFilter: 'a/b', qos: 2 }]);
    harness.connect('pub', 5).publish('a/b', 'm', 2);
    const received = client.publishes();
    expect(received).toHaveLength(1);
    expect(received[0]!.qos).toBe(2);
    expect([...received[0]!.properties!.subscriptionIdentifiers!].sort()).toEqual([1, 2]);
  });

  it('3.1.1: overlapping subscriptions also give one copy at the highest QoS', () => {
    const harness = new Harness();
    const client = harness.connect('c', 4);
    client.subscribe([
      { topicFilter: 'a/+', qos: 0 },
      { topicFilter: '#', qos: 1 },
    ]);
    harness.connect('pub', 4).publish('a/b', 'm', 1);
    const received = client.publishes();
    expect(received).toHaveLength(1);
    expect(received[0]!.qos).toBe(1);
  });

  it('re-subscribing replaces the subscription (QoS and identifier)', () => {
    const harness = new Harness();
    const client = harness.connect('c', 5);
    client.subscribe([{ topicFilter: 't', qos: 2 }], { subscriptionIdentifiers: [5] });
    client.subscribe([{ topicFilter: 't', qos: 0 }], { subscriptionIdentifiers: [6] });
    harness.connect('pub', 5).publish('t', 'm', 2);
    const [received] = client.publishes();
    expect(received!.qos).toBe(0);
    expect(received!.properties?.subscriptionIdentifiers).toEqual([6]);
    expect(harness.broker.trie.size).toBe(1);
  });
});

describe('shared subscriptions', () => {
  it('delivers each message to exactly one member, round robin', () => {
    const harness = new Harness();
    const members = ['m1', 'm2', 'm3'].map((id) => {
      const client = harness.connect(id, 5);
      client.subscribe([{ topicFilter: '$share/g/jobs/+', qos: 1 }]);
      return client;
    });
    const publisher = harness.connect('pub', 5);
    for (let index = 0; index < 6; index++) publisher.publish('jobs/x', `j${index}`, 0);
    const counts = members.map((member) => member.publishes().length);
    expect(counts).toEqual([2, 2, 2]);
  });

  it('prefers connected members over offline ones, and a non-shared subscription gets its own copy', () => {
    const harness = new Harness();
    const offline = harness.connect('off', 5, { cleanStart: false, properties: { sessionExpiryInterval: 100 } });
    offline.subscribe([{ topicFilter: '$share/g/t', qos: 1 }]);
    offline.disconnect();
    const online = harness.connect('on', 5);
    online.subscribe([
      { topicFilter: '$share/g/t', qos: 1 },
      { topicFilter: 't', qos: 1 },
    ]);
    const publisher = harness.connect('pub', 5);
    for (let index = 0; index < 4; index++) publisher.publish('t', `m${index}`, 1);
    const received = online.publishes();
    // Four shared copies plus four from the plain subscription.
    expect(received).toHaveLength(8);
    expect(harness.broker.state.sessions.get('off')!.queue).toHaveLength(0);
  });

  it('falls back to an offline member when no member is connected (the message waits in its queue)', () => {
    const harness = new Harness();
    const member = harness.connect('off', 5, { cleanStart: false, properties: { sessionExpiryInterval: 100 } });
    member.subscribe([{ topicFilter: '$share/g/t', qos: 1 }]);
    member.disconnect();
    harness.connect('pub', 5).publish('t', 'waits', 1);
    expect(harness.broker.state.sessions.get('off')!.queue).toHaveLength(1);
  });
});

describe('UNSUBSCRIBE', () => {
  it('5.0: UNSUBACK says 0x00 for a removed filter and 0x11 when none existed; delivery stops', () => {
    const harness = new Harness();
    const client = harness.connect('c', 5);
    client.subscribe(['a']);
    client.send({ type: PacketType.Unsubscribe, packetId: 9, topicFilters: ['a', 'b'] });
    const unsuback = client.takeOne(PacketType.Unsuback);
    expect(unsuback.packetId).toBe(9);
    expect(unsuback.reasonCodes).toEqual([0x00, 0x11]);
    harness.connect('pub', 5).publish('a', 'x', 0);
    expect(client.publishes()).toEqual([]);
  });

  it('3.1.1: UNSUBACK has no reason codes', () => {
    const harness = new Harness();
    const client = harness.connect('c', 4);
    client.subscribe(['a']);
    client.send({ type: PacketType.Unsubscribe, packetId: 3, topicFilters: ['a'] });
    const unsuback = client.takeOne(PacketType.Unsuback);
    expect(unsuback.reasonCodes).toEqual([]);
    expect(harness.broker.state.sessions.get('c')!.subscriptions.size).toBe(0);
  });
});
