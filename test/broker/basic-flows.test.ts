/**
 * Proves the basic MQTT flows end to end through the state machine, for 3.1.1 and 5.0: CONNECT /
 * CONNACK, SUBSCRIBE / SUBACK, PUBLISH at QoS 0, 1 and 2 in both directions, PINGREQ, DISCONNECT.
 * Each test feeds encoded packets to a Broker over a MemoryStateStore (see harness.ts) and
 * decodes exactly what the broker sent back on each connection.
 */
import { describe, expect, it } from 'vitest';
import { PacketType, type ProtocolVersion } from '../../src/codec/packets.js';
import { decodeText, Harness } from './harness.js';

for (const version of [4, 5] as ProtocolVersion[]) {
  describe(`basic flows, protocol version ${version}`, () => {
    it('accepts CONNECT with CONNACK 0 and no session present for a clean session', () => {
      const harness = new Harness();
      const client = harness.open(version);
      const connack = client.connect('alpha');
      expect(connack.reasonCode).toBe(0);
      expect(connack.sessionPresent).toBe(false);
      expect(harness.broker.stats.clientsConnected).toBe(1);
    });

    it('routes QoS 0 from a publisher to a subscriber', () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version);
      const suback = subscriber.subscribe(['a/b']);
      expect(suback.reasonCodes).toEqual([2]);
      const publisher = harness.connect('pub', version);
      publisher.publish('a/b', 'hello', 0);
      const received = subscriber.publishes();
      expect(received).toHaveLength(1);
      expect(received[0]!.topic).toBe('a/b');
      expect(decodeText(received[0]!.payload)).toBe('hello');
      expect(received[0]!.qos).toBe(0);
      expect(received[0]!.retain).toBe(false);
    });

    it('acknowledges QoS 1 with PUBACK and delivers QoS 1 with a packet id the subscriber acknowledges', () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version);
      subscriber.subscribe(['a/#']);
      const publisher = harness.connect('pub', version);
      const acks = publisher.publish('a/b', 'one', 1);
      expect(acks.map((p) => p.type)).toEqual([PacketType.Puback]);
      const [delivery] = subscriber.publishes();
      expect(delivery!.qos).toBe(1);
      expect(delivery!.packetId).toBeGreaterThan(0);
      expect(delivery!.dup).toBe(false);
      expect(harness.broker.state.sessions.get('sub')!.inflight.size).toBe(1);
      subscriber.acknowledge(delivery!);
      expect(harness.broker.state.sessions.get('sub')!.inflight.size).toBe(0);
    });

    it('runs the QoS 2 handshake both ways', () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version);
      subscriber.subscribe(['x']);
      const publisher = harness.connect('pub', version);
      const acks = publisher.publish('x', 'two', 2);
      expect(acks.map((p) => p.type)).toEqual([PacketType.Pubrec, PacketType.Pubcomp]);
      const [delivery] = subscriber.publishes();
      expect(delivery!.qos).toBe(2);
      subscriber.send({ type: PacketType.Pubrec, packetId: delivery!.packetId!, reasonCode: 0 });
      const pubrel = subscriber.takeOne(PacketType.Pubrel);
      expect(pubrel.packetId).toBe(delivery!.packetId);
      expect(harness.broker.state.sessions.get('sub')!.inflight.get(delivery!.packetId!)!.phase).toBe('pubrel');
      subscriber.send({ type: PacketType.Pubcomp, packetId: delivery!.packetId!, reasonCode: 0 });
      expect(harness.broker.state.sessions.get('sub')!.inflight.size).toBe(0);
      expect(harness.broker.state.messages.size).toBe(0);
    });

    it('answers PINGREQ with PINGRESP', () => {
      const harness = new Harness();
      const client = harness.connect('pinger', version);
      client.send({ type: PacketType.Pingreq });
      expect(client.takeOne(PacketType.Pingresp).type).toBe(PacketType.Pingresp);
    });

    it('closes on DISCONNECT and ends a clean session', () => {
      const harness = new Harness();
      const client = harness.connect('leaver', version);
      client.disconnect();
      expect(client.closed).toBe(true);
      expect(harness.broker.state.sessions.has('leaver')).toBe(false);
      expect(harness.broker.stats.clientsConnected).toBe(0);
    });

    it('downgrades to the granted QoS', () => {
      const harness = new Harness();
      const subscriber = harness.connect('sub', version);
      subscriber.subscribe([{ topicFilter: 't', qos: 1 }]);
      const publisher = harness.connect('pub', version);
      publisher.publish('t', 'm', 2);
      const [delivery] = subscriber.publishes();
      expect(delivery!.qos).toBe(1);
    });
  });
}
