/**
 * Proves the encoder's version-specific choices byte for byte: the 5.0 short forms (PUBACK family,
 * DISCONNECT, AUTH), the 3.1.1 forms (no properties, CONNACK return codes mapped from 5.0 reason
 * codes, SUBACK failures as 0x80, UNSUBACK without payload), deterministic property order, the
 * packet identifier placeholder of encodePublish, and that programmer errors fail an assertion
 * instead of producing bytes a peer would reject.
 */
import { describe, expect, it } from 'vitest';
import { encodePacket, encodePublish, withPacketId } from '../../src/codec/encoder.js';

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

describe('MQTT 5.0 short forms', () => {
  it('PUBACK with reason 0 and no properties is two bytes, with another reason three', () => {
    expect(encodePacket({ type: 4, packetId: 0x0102, reasonCode: 0 }, 5)).toEqual(bytes(0x40, 2, 1, 2));
    expect(encodePacket({ type: 5, packetId: 1, reasonCode: 0x10 }, 5)).toEqual(bytes(0x50, 3, 0, 1, 0x10));
    expect(encodePacket({ type: 6, packetId: 1, reasonCode: 0, properties: { reasonString: 'x' } }, 5)).toEqual(bytes(0x62, 8, 0, 1, 0, 4, 0x1f, 0, 1, 0x78));
  });
  it('DISCONNECT with reason 0 and no properties has remaining length 0', () => {
    expect(encodePacket({ type: 14, reasonCode: 0 }, 5)).toEqual(bytes(0xe0, 0));
    expect(encodePacket({ type: 14, reasonCode: 0x8e }, 5)).toEqual(bytes(0xe0, 1, 0x8e));
    expect(encodePacket({ type: 14, reasonCode: 0, properties: { sessionExpiryInterval: 1 } }, 5)).toEqual(bytes(0xe0, 7, 0, 5, 0x11, 0, 0, 0, 1));
  });
  it('AUTH omits reason and property length together', () => {
    expect(encodePacket({ type: 15, reasonCode: 0 }, 5)).toEqual(bytes(0xf0, 0));
    expect(encodePacket({ type: 15, reasonCode: 0x18 }, 5)).toEqual(bytes(0xf0, 2, 0x18, 0));
  });
});

describe('MQTT 3.1.1 forms', () => {
  it('writes no properties and two-byte acknowledgements', () => {
    expect(encodePacket({ type: 4, packetId: 1, reasonCode: 0x10, properties: { reasonString: 'x' } }, 4)).toEqual(bytes(0x40, 2, 0, 1));
    expect(encodePacket({ type: 14, reasonCode: 0x8e }, 4)).toEqual(bytes(0xe0, 0));
  });
  it('maps 5.0 CONNACK reason codes to 3.1.1 return codes', () => {
    const returnCode = (reasonCode: number): number => encodePacket({ type: 2, sessionPresent: false, reasonCode }, 4)[3]!;
    expect([0, 3, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x80].map(returnCode)).toEqual([0, 3, 1, 2, 4, 5, 3, 3, 5, 4, 3]);
  });
  it('writes SUBACK failures as 0x80 and UNSUBACK without payload', () => {
    expect(encodePacket({ type: 9, packetId: 1, reasonCodes: [0, 2, 0x87] }, 4)).toEqual(bytes(0x90, 5, 0, 1, 0, 2, 0x80));
    expect(encodePacket({ type: 11, packetId: 1, reasonCodes: [0x11] }, 4)).toEqual(bytes(0xb0, 2, 0, 1));
  });
  it('writes "MQIsdp" level 3 for MQTT 3.1', () => {
    const encoded = encodePacket({ type: 1, protocolName: 'MQIsdp', protocolVersion: 3, cleanStart: true, keepAliveSeconds: 10, clientId: 'c' }, 3);
    expect(encoded).toEqual(bytes(0x10, 15, 0, 6, 0x4d, 0x51, 0x49, 0x73, 0x64, 0x70, 3, 2, 0, 10, 0, 1, 0x63));
  });
});

describe('encodePublish', () => {
  it('leaves a zero placeholder for the packet identifier and reports its offset', () => {
    const encoded = encodePublish({ type: 3, dup: false, qos: 1, retain: true, topic: 'ab', payload: bytes(9) }, 5);
    expect(encoded.bytes).toEqual(bytes(0x33, 8, 0, 2, 0x61, 0x62, 0, 0, 0, 9));
    expect(encoded.packetIdOffset).toBe(6);
    expect(withPacketId(encoded, 0x0a0b, true)).toEqual(bytes(0x3b, 8, 0, 2, 0x61, 0x62, 0x0a, 0x0b, 0, 9));
    expect(withPacketId(encoded, 7, false)[0]).toBe(0x33);
  });
  it('refills a given EncodedPublish, which hands out its new bytes again', () => {
    const encoded = encodePublish({ type: 3, dup: false, qos: 1, retain: false, topic: 'a', payload: bytes(1) }, 4);
    const first = withPacketId(encoded, 1, false);
    expect(encoded.handedOut).toBe(true);
    const refilled = encodePublish({ type: 3, dup: false, qos: 1, retain: false, topic: 'b', payload: bytes(2) }, 4, encoded);
    expect(refilled).toBe(encoded);
    expect(refilled.handedOut).toBe(false);
    expect(withPacketId(refilled, 2, false)).toBe(refilled.bytes);
    expect(refilled.bytes).toEqual(bytes(0x32, 6, 0, 1, 0x62, 0, 2, 2));
    expect(first).toEqual(bytes(0x32, 6, 0, 1, 0x61, 0, 1, 1));
  });
  it('writes non-ASCII topics as UTF-8 with the byte length as prefix', () => {
    const encoded = encodePublish({ type: 3, dup: false, qos: 0, retain: false, topic: 'é😀', payload: bytes() }, 4);
    expect(encoded.bytes).toEqual(bytes(0x30, 8, 0, 6, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80));
    expect(encoded.packetIdOffset).toBe(-1);
  });
  it('encodes large payloads exactly (multi-byte remaining length, pooled and unpooled sizes)', () => {
    for (const size of [100, 127, 128, 5000, 20000]) {
      const encoded = encodePacket({ type: 3, dup: false, qos: 0, retain: false, topic: 't', payload: new Uint8Array(size).fill(7) }, 4);
      expect(encoded.length).toBe(1 + (size + 3 < 128 ? 1 : size + 3 < 16384 ? 2 : 3) + 3 + size);
      expect(encoded[encoded.length - 1]).toBe(7);
    }
  });
});

describe('properties', () => {
  it('are written in identifier order whatever the object key order', () => {
    const a = encodePacket({ type: 2, sessionPresent: false, reasonCode: 0, properties: { serverKeepAlive: 5, receiveMaximum: 9 } }, 5);
    const b = encodePacket({ type: 2, sessionPresent: false, reasonCode: 0, properties: { receiveMaximum: 9, serverKeepAlive: 5 } }, 5);
    expect(a).toEqual(b);
    expect(a).toEqual(bytes(0x20, 9, 0, 0, 6, 0x13, 0, 5, 0x21, 0, 9));
  });
});

describe('programmer errors fail an assertion', () => {
  it('a property the packet cannot carry', () => {
    expect(() => encodePacket({ type: 4, packetId: 1, reasonCode: 0, properties: { topicAlias: 1 } }, 5)).toThrow(/assertion failed/);
  });
  it('QoS 1 without packet identifier, packet identifier 0, DUP on QoS 0, AUTH on 3.1.1', () => {
    expect(() => encodePacket({ type: 3, dup: false, qos: 1, retain: false, topic: 't', payload: bytes() }, 4)).toThrow(/assertion failed/);
    expect(() => encodePacket({ type: 4, packetId: 0, reasonCode: 0 }, 4)).toThrow(/assertion failed/);
    expect(() => encodePacket({ type: 3, dup: true, qos: 0, retain: false, topic: 't', payload: bytes() }, 4)).toThrow(/assertion failed/);
    expect(() => encodePacket({ type: 15, reasonCode: 0 }, 4)).toThrow(/assertion failed/);
  });
  it('a string longer than 65535 bytes', () => {
    expect(() => encodePacket({ type: 3, dup: false, qos: 0, retain: false, topic: 'x'.repeat(65536), payload: bytes() }, 4)).toThrow(/assertion failed/);
  });
});
