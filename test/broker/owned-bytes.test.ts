/**
 * Proves that what the broker keeps of a packet owns its bytes and does not pin the chunk it was
 * decoded from. The Node host hands the core Buffers, whose `slice` is a view: a retained message,
 * a will or a large stored payload "copied" with it would keep the whole socket chunk alive,
 * beyond every byte bound that counts only the kept bytes. Here each packet arrives as a Node
 * Buffer behind a large message in the same chunk, as it does from a fast publisher.
 */
import { describe, expect, it } from 'vitest';
import { encodePacket } from '../../src/codec/encoder.js';
import { type ConnectPacket, PacketType, type PublishPacket } from '../../src/codec/packets.js';
import { Harness, text } from '../broker/harness.js';

const filler = 60_000;

const big: PublishPacket = { type: PacketType.Publish, topic: 'elsewhere', payload: new Uint8Array(filler), qos: 0, retain: false, dup: false };

/** One Node Buffer: a large QoS 0 PUBLISH to nobody, then `packet`. */
function chunkWith(packet: Uint8Array): Buffer {
  return Buffer.concat([encodePacket(big, 5), packet]);
}

/** Whether `bytes` owns a buffer of about its own size (not a view of a chunk). */
function owns(bytes: Uint8Array): boolean {
  return bytes.buffer.byteLength < filler;
}

describe('bytes the broker keeps', () => {
  it('a retained payload, a will and correlation data own their bytes, however the chunk came', () => {
    const harness = new Harness();
    const raw = harness.openRaw();
    const connect: ConnectPacket = {
      type: PacketType.Connect,
      protocolName: 'MQTT',
      protocolVersion: 5,
      cleanStart: true,
      keepAliveSeconds: 0,
      clientId: 'publisher',
      will: { topic: 'wills/publisher', payload: text('gone'), qos: 1, retain: false, properties: {} },
    };
    // The CONNECT and a large PUBLISH after it in one chunk.
    raw.sendBytes(Buffer.concat([encodePacket(connect, 5), encodePacket(big, 5)]));
    const retained: PublishPacket = {
      type: PacketType.Publish,
      topic: 'status/a',
      payload: text('up'),
      qos: 0,
      retain: true,
      dup: false,
      properties: { correlationData: text('cd') },
    };
    raw.sendBytes(chunkWith(encodePacket(retained, 5)));
    const state = harness.broker.state;
    const stored = state.messages.get(state.retained.get('status/a')!)!;
    expect(new TextDecoder().decode(stored.payload)).toBe('up');
    expect(owns(stored.payload)).toBe(true);
    expect(owns(stored.properties!.correlationData!)).toBe(true);
    const will = state.wills.get('publisher')!;
    expect(new TextDecoder().decode(will.payload)).toBe('gone');
    expect(owns(will.payload)).toBe(true);
  });

  it('a large stored payload owns its bytes', () => {
    const harness = new Harness();
    const subscriber = harness.connect('subscriber', 5);
    // Connected and not acknowledging: the message stays stored while its delivery is inflight.
    subscriber.subscribe([{ topicFilter: 'big/#', qos: 1 }]);
    const raw = harness.openRaw();
    raw.sendBytes(Buffer.from(encodePacket({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: true, keepAliveSeconds: 0, clientId: 'p' }, 5)));
    const large: PublishPacket = { type: PacketType.Publish, topic: 'big/one', payload: new Uint8Array(20_000).fill(7), qos: 1, retain: false, dup: false, packetId: 1 };
    raw.sendBytes(chunkWith(encodePacket(large, 5)));
    const kept = [...harness.broker.state.messages.values()].find((message) => message.topic === 'big/one')!;
    expect(kept.payload.length).toBe(20_000);
    expect(kept.payload.buffer.byteLength).toBeLessThan(filler);
  });
});
