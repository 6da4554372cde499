/**
 * What the publish path keeps per stored message, and that keeping less changes nothing a client
 * can see. Proves, through the real decoder and broker: (1) the decoder's last-topic cache never
 * returns a wrong topic: publishes alternate between topics of equal length that differ in one
 * byte (first, middle, last), an empty topic with an alias, and a topic whose bytes are not UTF-8
 * is still refused right after a cached topic of the same length; (2) queued messages' small
 * payloads share slabs yet are copies: changing the bytes a client sent does not change what is
 * queued, and a retained message gets a buffer of its own (it may be kept for ever); (3) a few
 * long-lived messages among many short-lived ones do not keep a slab each: 1 message for an
 * offline session among every 32 that an online subscriber acknowledges at once would otherwise
 * pin one 8 KiB slab per queued message; the slabs still referenced stay within a small multiple
 * of the live payload bytes, and the offline session gets every message intact when it returns.
 */
import { describe, expect, it } from 'vitest';
import { PacketDecoder } from '../../src/codec/decoder.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { ProtocolViolation } from '../../src/codec/errors.js';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import { decodeText, Harness } from './harness.js';

function publishBytes(topic: string, payload: string, version: 4 | 5 = 4, properties?: PublishPacket['properties']): Uint8Array {
  const packet: PublishPacket = { type: PacketType.Publish, dup: false, qos: 0, retain: false, topic, payload: new TextEncoder().encode(payload) };
  if (properties !== undefined) packet.properties = properties;
  return encodePacket(packet, version);
}

describe('decoder topic cache', () => {
  it('returns the topic each packet carries, whatever came before', () => {
    const decoder = new PacketDecoder({ packetBytesMax: 1024, protocolVersion: 5 });
    const topics = ['a/b/c', 'a/b/c', 'x/b/c', 'a/x/c', 'a/b/x', 'a/b/c', '', 'a/b/c', 'longer/topic', 'a/b/c'];
    const decoded: string[] = [];
    for (const topic of topics) {
      decoder.push(publishBytes(topic, 'p', 5, topic === '' ? { topicAlias: 1 } : undefined));
      const packet = decoder.next() as PublishPacket;
      decoded.push(packet.topic);
    }
    expect(decoded).toEqual(topics);
  });

  it('still refuses a topic that is not UTF-8 after a cached topic of the same length', () => {
    const decoder = new PacketDecoder({ packetBytesMax: 1024, protocolVersion: 4 });
    decoder.push(publishBytes('ab', 'p'));
    expect((decoder.next() as PublishPacket).topic).toBe('ab');
    const bad = publishBytes('ab', 'p');
    // The topic bytes sit after the fixed header (2 bytes) and the length (2 bytes): 0xC3 0x28 is ill-formed.
    bad[4] = 0xc3;
    bad[5] = 0x28;
    decoder.push(bad);
    expect(() => decoder.next()).toThrow(ProtocolViolation);
  });
});

/** A harness with a persistent session 'offline', subscribed to `filter` at QoS 1 and gone offline. */
function withOfflineSubscriber(filter: string): Harness {
  const harness = new Harness();
  const subscriber = harness.connect('offline', 4, { cleanStart: false });
  subscriber.subscribe([{ topicFilter: filter, qos: 1 }]);
  subscriber.drop();
  return harness;
}

describe('stored payloads', () => {
  it('queues copies that share slabs, and gives a retained message a buffer of its own', () => {
    const harness = withOfflineSubscriber('q/#');
    const publisher = harness.connect('pub', 4);
    const sent = new TextEncoder().encode('first');
    publisher.publish('q/1', sent, 1);
    sent.fill(0x21);
    publisher.publish('q/2', 'second', 1);
    publisher.publish('q/retained', 'kept', 1, { retain: true });
    const messages = [...harness.broker.state.messages.values()];
    const queued = messages.filter((message) => !message.retain);
    expect(queued.map((message) => decodeText(message.payload))).toEqual(['first', 'second']);
    expect(queued[0]!.payload.buffer).toBe(queued[1]!.payload.buffer);
    const retained = messages.find((message) => message.retain)!;
    expect(decodeText(retained.payload)).toBe('kept');
    expect(retained.payload.buffer.byteLength).toBe(retained.payload.length);
    // The subscriber comes back and gets what was queued, intact.
    const back = harness.connect('offline', 4, { cleanStart: false });
    expect(back.publishes().map((publish) => decodeText(publish.payload))).toEqual(['first', 'second', 'kept']);
  });

  it('does not let long-lived messages among short-lived ones keep a slab each', () => {
    const harness = withOfflineSubscriber('slow/#');
    const online = harness.connect('online', 4);
    online.subscribe([{ topicFilter: 'fast/#', qos: 1 }]);
    const publisher = harness.connect('pub', 4);
    const payloadBytes = 256;
    const rounds = 300;
    const payload = (tag: string, index: number): Uint8Array => new TextEncoder().encode(`${tag}-${index}-`.padEnd(payloadBytes, '.'));
    for (let round = 0; round < rounds; round++) {
      // 31 messages that live for one input (delivered and acknowledged at once), then 1 that stays.
      for (let index = 0; index < 31; index++) {
        publisher.publish('fast/t', payload('fast', index), 1);
        for (const publish of online.publishes()) online.acknowledge(publish);
      }
      publisher.publish('slow/t', payload('slow', round), 1);
    }
    const live = [...harness.broker.state.messages.values()];
    expect(live).toHaveLength(rounds);
    const liveBytes = live.reduce((total, message) => total + message.payload.length, 0);
    const buffers = new Set(live.map((message) => message.payload.buffer));
    const referencedBytes = [...buffers].reduce((total, buffer) => total + buffer.byteLength, 0);
    // Without compaction: one 8 KiB slab per live message, 32 times the live bytes.
    expect(referencedBytes).toBeLessThanOrEqual(4 * liveBytes + 3 * 8192);
    const back = harness.connect('offline', 4, { cleanStart: false });
    const received = back.publishes().map((publish) => decodeText(publish.payload));
    expect(received).toEqual(Array.from({ length: rounds }, (_, round) => decodeText(payload('slow', round))));
  });
});
