/**
 * Proves the PUBLISH rules beyond the basic flows: QoS 2 exactly-once on the way in (a
 * duplicate before PUBREL is not routed again), unknown PUBREL / PUBREC identifiers, topic
 * aliases and their errors, receive maximum both ways, maximum packet size both ways, maximum QoS
 * and retain availability, 0x10 No matching subscribers, subscription identifiers refused in a
 * client PUBLISH, invalid topic names, message expiry, and property pass-through.
 */
import { describe, expect, it } from 'vitest';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import { decodeText, Harness, text } from './harness.js';

const publish = (topic: string, qos: 0 | 1 | 2, packetId?: number, extra: Partial<PublishPacket> = {}): PublishPacket => {
  const packet: PublishPacket = { type: PacketType.Publish, dup: false, qos, retain: false, topic, payload: text('p'), ...extra };
  if (packetId !== undefined) packet.packetId = packetId;
  return packet;
};

describe('QoS 2 exactly once inbound', () => {
  for (const version of [4, 5] as const) {
    it(`version ${version}: a duplicate PUBLISH before PUBREL gets PUBREC again and is not routed again`, () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version);
      subscriber.subscribe(['e']);
      const publisher = harness.connect('pub', version);
      publisher.send(publish('e', 2, 7));
      expect(publisher.takeOne(PacketType.Pubrec).packetId).toBe(7);
      publisher.send(publish('e', 2, 7, { dup: true }));
      expect(publisher.takeOne(PacketType.Pubrec).packetId).toBe(7);
      expect(subscriber.publishes()).toHaveLength(1);
      publisher.send({ type: PacketType.Pubrel, packetId: 7, reasonCode: 0 });
      expect(publisher.takeOne(PacketType.Pubcomp).reasonCode).toBe(0);
      // After release the identifier is free: the same id is a new message.
      publisher.send(publish('e', 2, 7));
      publisher.take();
      expect(subscriber.publishes()).toHaveLength(1);
    });
  }

  it('5.0: PUBREL for an unknown identifier gets PUBCOMP 0x92', () => {
    const harness = new Harness();
    const client = harness.connect('c', 5);
    client.send({ type: PacketType.Pubrel, packetId: 44, reasonCode: 0 });
    expect(client.takeOne(PacketType.Pubcomp).reasonCode).toBe(0x92);
    expect(client.closed).toBe(false);
  });

  it('5.0: PUBREC for an unknown identifier gets PUBREL 0x92; unknown PUBACK is ignored', () => {
    const harness = new Harness();
    const client = harness.connect('c', 5);
    client.send({ type: PacketType.Pubrec, packetId: 45, reasonCode: 0 });
    expect(client.takeOne(PacketType.Pubrel).reasonCode).toBe(0x92);
    client.send({ type: PacketType.Puback, packetId: 46, reasonCode: 0 });
    expect(client.take()).toEqual([]);
    expect(client.closed).toBe(false);
  });
});

describe('topic aliases (5.0)', () => {
  it('sets an alias with a topic and uses it with an empty topic', () => {
    const harness = new Harness({ topicAliasMaximum: 4 });
    const subscriber = harness.connect('sub', 5);
    subscriber.subscribe(['long/topic/name']);
    const publisher = harness.connect('pub', 5);
    publisher.send(publish('long/topic/name', 0, undefined, { properties: { topicAlias: 3 } }));
    publisher.send(publish('', 0, undefined, { properties: { topicAlias: 3 } }));
    const received = subscriber.publishes();
    expect(received.map((p) => p.topic)).toEqual(['long/topic/name', 'long/topic/name']);
    expect(received[0]!.properties?.topicAlias).toBeUndefined();
  });

  it('alias above topicAliasMaximum is DISCONNECT 0x94', () => {
    const harness = new Harness({ topicAliasMaximum: 4 });
    const client = harness.connect('c', 5);
    client.send(publish('t', 0, undefined, { properties: { topicAlias: 5 } }));
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x94);
  });

  it('an alias when aliases are disabled is DISCONNECT 0x94', () => {
    const harness = new Harness({ topicAliasMaximum: 0 });
    const client = harness.connect('c', 5);
    client.send(publish('t', 0, undefined, { properties: { topicAlias: 1 } }));
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x94);
  });

  it('an unknown alias with an empty topic is a protocol error', () => {
    const harness = new Harness();
    const client = harness.connect('c', 5);
    client.send(publish('', 0, undefined, { properties: { topicAlias: 2 } }));
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x82);
  });
});

describe('flow control and limits', () => {
  it('5.0: more unacknowledged QoS 2 PUBLISHes than our Receive Maximum is DISCONNECT 0x93', () => {
    const harness = new Harness({ receiveMaximum: 2 });
    const client = harness.connect('c', 5);
    client.send(publish('t', 2, 1));
    client.send(publish('t', 2, 2));
    expect(client.take().map((p) => p.type)).toEqual([PacketType.Pubrec, PacketType.Pubrec]);
    client.send(publish('t', 2, 3));
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x93);
  });

  it('QoS above maximumQos is DISCONNECT 0x9B; RETAIN when unavailable is 0x9A', () => {
    const harness = new Harness({ maximumQos: 1, retainAvailable: false });
    const first = harness.connect('a', 5);
    first.send(publish('t', 2, 1));
    expect(first.takeOne(PacketType.Disconnect).reasonCode).toBe(0x9b);
    const second = harness.connect('b', 5);
    second.send(publish('t', 0, undefined, { retain: true }));
    expect(second.takeOne(PacketType.Disconnect).reasonCode).toBe(0x9a);
  });

  it('3.1.1: QoS above maximumQos closes without a packet', () => {
    const harness = new Harness({ maximumQos: 0 });
    const client = harness.connect('a', 4);
    client.send(publish('t', 1, 1));
    expect(client.take()).toEqual([]);
    expect(client.closed).toBe(true);
  });

  it('an invalid topic name is 0x90 (5.0) or a plain close (3.1.1)', () => {
    const harness = new Harness({ topicLevelsMax: 2 });
    const five = harness.connect('five', 5);
    five.send(publish('a/b/c', 0));
    expect(five.takeOne(PacketType.Disconnect).reasonCode).toBe(0x90);
    const four = harness.connect('four', 4);
    four.send(publish('a/b/c', 0));
    expect(four.closed).toBe(true);
  });

  it('a subscription identifier in a client PUBLISH is a protocol error', () => {
    const harness = new Harness();
    const client = harness.connect('c', 5);
    client.send(publish('t', 0, undefined, { properties: { subscriptionIdentifiers: [3] } }));
    expect(client.closed).toBe(true);
    expect(harness.broker.stats.protocolViolations).toBe(1);
  });

  it('a packet larger than packetBytesMax is DISCONNECT 0x95', () => {
    const harness = new Harness({ packetBytesMax: 128 });
    const client = harness.connect('c', 5);
    client.send(publish('t', 0, undefined, { payload: new Uint8Array(200) }));
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x95);
  });

  it('a message larger than the client Maximum Packet Size is not sent to it, counted, QoS 1 treated as delivered', () => {
    const harness = new Harness();
    const small = harness.open(5);
    small.connect('small', { properties: { maximumPacketSize: 64 } });
    small.subscribe([{ topicFilter: 't', qos: 1 }]);
    const publisher = harness.connect('pub', 5);
    publisher.publish('t', new Uint8Array(100), 1);
    publisher.publish('t', 'fits', 1);
    expect(small.publishes().map((p) => decodeText(p.payload))).toEqual(['fits']);
    expect(harness.broker.stats.drops.packetTooLarge).toBe(1);
    expect(harness.broker.state.sessions.get('small')!.queue).toHaveLength(0);
  });
});

describe('5.0 acknowledgement reason codes', () => {
  it('PUBACK and PUBREC say 0x10 when no subscription matched; 3.1.1 says 0', () => {
    const harness = new Harness();
    const five = harness.connect('five', 5);
    expect(five.publish('nobody', 'x', 1).map((p) => ('reasonCode' in p ? p.reasonCode : -1))).toEqual([0x10]);
    expect(five.publish('nobody', 'x', 2)[0]).toMatchObject({ type: PacketType.Pubrec, reasonCode: 0x10 });
    const four = harness.connect('four', 4);
    expect(four.publish('nobody', 'x', 1)[0]).toMatchObject({ type: PacketType.Puback, reasonCode: 0 });
    expect(harness.broker.stats.messagesUnmatched).toBe(3);
  });
});

describe('message expiry and properties (5.0)', () => {
  it('forwards the remaining expiry, and drops a queued message once it expired', () => {
    const harness = new Harness();
    const subscriber = harness.connect('sub', 5, { cleanStart: false, properties: { sessionExpiryInterval: 1000 } });
    subscriber.subscribe([{ topicFilter: 'x', qos: 1 }]);
    subscriber.disconnect();
    const publisher = harness.connect('pub', 5);
    publisher.publish('x', 'short', 1, { properties: { messageExpiryInterval: 5 } });
    publisher.publish('x', 'long', 1, { properties: { messageExpiryInterval: 60 } });
    harness.advance(10_000);
    const back = harness.open(5);
    back.connect('sub', { cleanStart: false, properties: { sessionExpiryInterval: 1000 } });
    const received = back.publishes();
    expect(received.map((p) => decodeText(p.payload))).toEqual(['long']);
    expect(received[0]!.properties?.messageExpiryInterval).toBe(50);
    expect(harness.broker.stats.drops.expired).toBe(1);
  });

  it('passes through user properties, response topic, correlation data, content type and payload format', () => {
    const harness = new Harness();
    const subscriber = harness.connect('sub', 5);
    subscriber.subscribe(['req']);
    const properties = {
      userProperties: [
        ['a', '1'],
        ['a', '2'],
      ] as [string, string][],
      responseTopic: 'resp/1',
      correlationData: text('corr'),
      contentType: 'text/plain',
      payloadFormatIndicator: 1,
    };
    harness.connect('pub', 5).publish('req', 'q', 0, { properties });
    const [received] = subscriber.publishes();
    expect(received!.properties).toEqual(properties);
  });

  it('3.1.1 subscribers get no properties', () => {
    const harness = new Harness();
    const subscriber = harness.connect('sub', 4);
    subscriber.subscribe(['req']);
    harness.connect('pub', 5).publish('req', 'q', 0, { properties: { contentType: 'x' } });
    expect(subscriber.publishes()[0]!.properties).toBeUndefined();
  });
});
