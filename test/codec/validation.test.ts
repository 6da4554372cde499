/**
 * One test per validation rule of the decoder: each feeds a hand-built byte sequence that breaks
 * exactly one rule of MQTT 3.1.1 or 5.0 and asserts the ProtocolViolation's reason code (and its
 * stable code), plus, where the rule has an allowed neighbour (a user property may repeat, 5.0
 * allows a password without user name, an empty topic with a topic alias), that the neighbour
 * decodes. Packets are built byte by byte here, independently of the encoder.
 */
import { describe, expect, it } from 'vitest';
import { PacketDecoder } from '../../src/codec/decoder.js';
import { ProtocolViolation } from '../../src/codec/errors.js';
import type { Packet, ProtocolVersion } from '../../src/codec/packets.js';

const Malformed = 0x81;
const ProtocolError = 0x82;

function varint(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    bytes.push(byte);
  } while (value > 0);
  return bytes;
}

function utf8(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

/** A length-prefixed string from raw bytes (for invalid UTF-8). */
function rawString(bytes: number[]): number[] {
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

function frame(firstByte: number, body: number[]): Uint8Array {
  return new Uint8Array([firstByte, ...varint(body.length), ...body]);
}

function properties(...entries: number[][]): number[] {
  const content = entries.flat();
  return [...varint(content.length), ...content];
}

/** 'unknown' makes a server-side decoder that has not seen CONNECT yet. */
type Version = ProtocolVersion | 'unknown';

function decode(bytes: Uint8Array, version: Version = 5, packetBytesMax = 1024): Packet | null {
  const decoder = new PacketDecoder({ packetBytesMax, protocolVersion: version === 'unknown' ? undefined : version });
  decoder.push(bytes);
  return decoder.next();
}

function violation(bytes: Uint8Array, version: Version = 5, packetBytesMax = 1024): ProtocolViolation {
  try {
    decode(bytes, version, packetBytesMax);
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolViolation);
    return error as ProtocolViolation;
  }
  throw new Error('expected a ProtocolViolation');
}

function expectViolation(bytes: Uint8Array, reasonCode: number, code: string, version: Version = 5): void {
  const error = violation(bytes, version);
  expect({ reasonCode: error.reasonCode, code: error.code }).toEqual({ reasonCode, code });
}

const connectHeader = (name: string, level: number, flags: number, props: number[] = level === 5 ? [0] : []): number[] => [...utf8(name), level, flags, 0, 60, ...props];
const publishV5 = (topic: number[], props: number[], payload: number[] = []): Uint8Array => frame(0x30, [...topic, ...props, ...payload]);

describe('fixed header', () => {
  it('a remaining length of more than four bytes is malformed', () => {
    expectViolation(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), Malformed, 'remaining-length-malformed');
  });
  it('a remaining length that is not minimally encoded is malformed [MQTT-1.5.5-1]', () => {
    expectViolation(new Uint8Array([0xc0, 0x80, 0x00]), Malformed, 'remaining-length-not-minimal');
  });
  it('reserved flag bits of PUBREL, SUBSCRIBE, UNSUBSCRIBE must be 0010', () => {
    expectViolation(frame(0x60, [0, 1]), Malformed, 'fixed-header-flags');
    expectViolation(frame(0x80, [0, 1, ...utf8('a'), 0]), Malformed, 'fixed-header-flags');
    expectViolation(frame(0xa3, [0, 1, ...utf8('a')]), Malformed, 'fixed-header-flags');
    expect(decode(frame(0x62, [0, 1]))).toEqual({ type: 6, packetId: 1, reasonCode: 0 });
  });
  it('reserved flag bits of the other packets must be 0', () => {
    expectViolation(frame(0x41, [0, 1]), Malformed, 'fixed-header-flags');
    expectViolation(frame(0xc8, []), Malformed, 'fixed-header-flags');
    expectViolation(frame(0x11, connectHeader('MQTT', 4, 2)), Malformed, 'fixed-header-flags', 'unknown');
  });
  it('packet type 0 is reserved, and AUTH does not exist before 5.0', () => {
    expectViolation(frame(0x00, []), Malformed, 'packet-type-reserved');
    expectViolation(frame(0xf0, []), Malformed, 'packet-type-reserved', 4);
    expect(decode(frame(0xf0, []))).toEqual({ type: 15, reasonCode: 0 });
  });
  it('PUBLISH with QoS 3 is malformed [MQTT-3.3.1-4]', () => {
    expectViolation(frame(0x36, [...utf8('a'), 0, 1, 0]), Malformed, 'publish-qos-invalid');
  });
  it('PUBLISH QoS 0 with DUP set is malformed [MQTT-3.3.1-2]', () => {
    expectViolation(frame(0x38, [...utf8('a'), 0]), Malformed, 'publish-dup-qos0');
  });
  it('the first packet must be CONNECT [MQTT-3.1.0-1]', () => {
    expectViolation(frame(0xc0, []), ProtocolError, 'first-packet-not-connect', 'unknown');
  });
});

describe('packet size limit', () => {
  it('a packet larger than packetBytesMax fails from its header, before the body arrives', () => {
    const decoder = new PacketDecoder({ packetBytesMax: 100, protocolVersion: 4 });
    decoder.push(new Uint8Array([0x30, ...varint(98)])); // 1 + 1 + 98 = 100: allowed
    expect(decoder.next()).toBeNull();
    const tooLarge = new PacketDecoder({ packetBytesMax: 100, protocolVersion: 4 });
    tooLarge.push(new Uint8Array([0x30, ...varint(99)])); // 101 bytes in total
    expect(() => tooLarge.next()).toThrow(expect.objectContaining({ reasonCode: 0x95, code: 'packet-too-large' }));
    expect(tooLarge.bufferedBytes).toBe(0);
  });
  it('after a violation the decoder keeps failing with the same error and holds nothing', () => {
    const decoder = new PacketDecoder({ packetBytesMax: 100, protocolVersion: 4 });
    decoder.push(new Uint8Array([0x00, 0x00]));
    let first: unknown;
    try {
      decoder.next();
    } catch (error) {
      first = error;
    }
    expect(first).toBeInstanceOf(ProtocolViolation);
    decoder.push(frame(0xc0, []));
    expect(() => decoder.next()).toThrow(first as Error);
    expect(decoder.bufferedBytes).toBe(0);
  });
});

describe('UTF-8 strings [MQTT-1.5.4-1] [MQTT-1.5.4-2]', () => {
  const cases: [string, number[]][] = [
    ['overlong encoding', [0xc0, 0xaf]],
    ['overlong NUL', [0xc0, 0x80]],
    ['encoded surrogate', [0xed, 0xa0, 0x80]],
    ['invalid byte', [0x61, 0xff]],
    ['truncated sequence', [0xe2, 0x82]],
    ['code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ];
  for (const [name, bytes] of cases) {
    it(`${name} is malformed`, () => {
      expectViolation(frame(0x30, [...rawString(bytes), 0]), Malformed, 'utf8-invalid');
    });
  }
  it('U+0000 is malformed, in topics and in any other string', () => {
    expectViolation(frame(0x30, [...rawString([0x61, 0x00]), 0]), Malformed, 'utf8-null');
    expectViolation(frame(0xa2, [0, 1, 0, ...rawString([0x00])]), Malformed, 'utf8-null');
    expectViolation(frame(0x10, [...utf8('MQTT'), 5, 2, 0, 0, 0, ...rawString([0x62, 0x00, 0x63])]), Malformed, 'utf8-null', 'unknown');
  });
  it('a byte order mark is kept, not stripped [MQTT-1.5.4-3], and multi-byte text decodes', () => {
    const packet = decode(frame(0x30, [...utf8('\ufeffa/é/😀'), 0]));
    expect(packet).toMatchObject({ type: 3, topic: '\ufeffa/é/😀' });
  });
});

describe('PUBLISH topic', () => {
  it('wildcards are not allowed in a topic name [MQTT-3.3.2-2]', () => {
    expectViolation(frame(0x30, [...utf8('a/+'), 0]), 0x90, 'publish-topic-wildcard');
    expectViolation(frame(0x30, [...utf8('a/#')]), 0x90, 'publish-topic-wildcard', 4);
  });
  it('an empty topic is a protocol error on 3.1.1 and on 5.0 without topic alias', () => {
    expectViolation(frame(0x30, [...utf8('')]), ProtocolError, 'publish-topic-empty', 4);
    expectViolation(publishV5(utf8(''), [0]), ProtocolError, 'publish-topic-empty');
    expect(decode(publishV5(utf8(''), properties([0x23, 0, 7]), [9]))).toMatchObject({ topic: '', properties: { topicAlias: 7 } });
  });
  it('QoS 1 needs a non-zero packet identifier [MQTT-2.2.1-3]', () => {
    expectViolation(frame(0x32, [...utf8('a'), 0, 0, 0]), Malformed, 'packet-id-zero');
  });
});

describe('properties', () => {
  it('an unknown property identifier is malformed', () => {
    expectViolation(publishV5(utf8('a'), properties([0x05, 1])), Malformed, 'property-unknown');
  });
  it('a property the packet may not carry is a protocol error', () => {
    expectViolation(publishV5(utf8('a'), properties([0x11, 0, 0, 0, 1])), ProtocolError, 'property-not-allowed');
    expectViolation(frame(0x40, [0, 1, 0, ...properties([0x23, 0, 1])]), ProtocolError, 'property-not-allowed');
  });
  it('a repeated property is a protocol error, except User Property', () => {
    expectViolation(publishV5(utf8('a'), properties([0x23, 0, 1], [0x23, 0, 2])), ProtocolError, 'property-duplicate');
    const packet = decode(publishV5(utf8('a'), properties([0x26, ...utf8('k'), ...utf8('1')], [0x26, ...utf8('k'), ...utf8('2')])));
    expect(packet).toMatchObject({
      properties: {
        userProperties: [
          ['k', '1'],
          ['k', '2'],
        ],
      },
    });
  });
  it('Subscription Identifier may repeat in PUBLISH but not in SUBSCRIBE', () => {
    expect(decode(publishV5(utf8('a'), properties([0x0b, 1], [0x0b, 2])))).toMatchObject({ properties: { subscriptionIdentifiers: [1, 2] } });
    expectViolation(frame(0x82, [0, 1, ...properties([0x0b, 1], [0x0b, 2]), ...utf8('a'), 0]), ProtocolError, 'property-duplicate');
  });
  it('a property length running past the packet is malformed', () => {
    expectViolation(frame(0x30, [...utf8('a'), 10, 0x23, 0, 1]), Malformed, 'properties-length');
  });
  it('a property value running past the property length is malformed', () => {
    expectViolation(frame(0x30, [...utf8('a'), 2, 0x23, 0, 1]), Malformed, 'truncated');
  });
  it('a Variable Byte Integer of five bytes is malformed', () => {
    expectViolation(publishV5(utf8('a'), properties([0x0b, 0xff, 0xff, 0xff, 0xff, 0x01])), Malformed, 'variable-integer-too-long');
  });
  const zeroForbidden: [string, number[], number][] = [
    ['Receive Maximum', [0x21, 0, 0], 0x10],
    ['Maximum Packet Size', [0x27, 0, 0, 0, 0], 0x10],
    ['Topic Alias', [0x23, 0, 0], 0x30],
    ['Subscription Identifier', [0x0b, 0], 0x30],
  ];
  for (const [name, bytes, firstByte] of zeroForbidden) {
    it(`${name} 0 is a protocol error`, () => {
      const body = firstByte === 0x10 ? connectHeader('MQTT', 5, 2, properties(bytes)).concat(utf8('c')) : [...utf8('a'), ...properties(bytes)];
      expectViolation(frame(firstByte, body), ProtocolError, 'property-zero', firstByte === 0x10 ? 'unknown' : 5);
    });
  }
  it('one-byte flags other than 0 or 1 are protocol errors', () => {
    expectViolation(publishV5(utf8('a'), properties([0x01, 2])), ProtocolError, 'property-value');
    expectViolation(frame(0x10, [...connectHeader('MQTT', 5, 2, properties([0x17, 2])), ...utf8('c')]), ProtocolError, 'property-value', 'unknown');
    expectViolation(frame(0x20, [0, 0, ...properties([0x24, 2])]), ProtocolError, 'property-value');
  });
});

describe('CONNECT', () => {
  const connect = (name: string, level: number, flags: number, payload: number[] = utf8('c')): Uint8Array => frame(0x10, [...connectHeader(name, level, flags), ...payload]);
  it('accepts MQTT 3.1 ("MQIsdp", 3), 3.1.1 ("MQTT", 4) and 5.0 ("MQTT", 5)', () => {
    expect(decode(connect('MQIsdp', 3, 2), 'unknown')).toMatchObject({ protocolName: 'MQIsdp', protocolVersion: 3 });
    expect(decode(connect('MQTT', 4, 2), 'unknown')).toMatchObject({ protocolVersion: 4 });
    expect(decode(connect('MQTT', 5, 2), 'unknown')).toMatchObject({ protocolVersion: 5 });
  });
  it('a wrong protocol name or level, or a mismatched pair, is 0x84 [MQTT-3.1.2-1] [MQTT-3.1.2-2]', () => {
    expectViolation(connect('MQTT', 3, 2), 0x84, 'protocol-unsupported', 'unknown');
    expectViolation(connect('MQIsdp', 4, 2), 0x84, 'protocol-unsupported', 'unknown');
    expectViolation(connect('MQTT', 6, 2), 0x84, 'protocol-unsupported', 'unknown');
    expectViolation(connect('MQTX', 4, 2), 0x84, 'protocol-unsupported', 'unknown');
  });
  it('the reserved connect flag must be 0 [MQTT-3.1.2-3]', () => {
    expectViolation(connect('MQTT', 4, 0x03), Malformed, 'connect-reserved-flag', 'unknown');
  });
  it('will QoS or will retain without the will flag is malformed', () => {
    expectViolation(connect('MQTT', 4, 0x08), Malformed, 'will-flags-inconsistent', 'unknown');
    expectViolation(connect('MQTT', 5, 0x20), Malformed, 'will-flags-inconsistent', 'unknown');
  });
  it('will QoS 3 is malformed', () => {
    expectViolation(connect('MQTT', 4, 0x1c, [...utf8('c'), ...utf8('w'), 0, 0]), Malformed, 'will-qos-invalid', 'unknown');
  });
  it('a password without a user name is malformed on 3.1.1 [MQTT-3.1.2-22] but allowed on 5.0', () => {
    expectViolation(connect('MQTT', 4, 0x42, [...utf8('c'), 0, 1, 7]), Malformed, 'password-without-username', 'unknown');
    expect(decode(connect('MQTT', 5, 0x42, [...utf8('c'), 0, 1, 7]), 'unknown')).toMatchObject({ password: new Uint8Array([7]) });
  });
  it('a missing payload field is malformed', () => {
    expectViolation(connect('MQTT', 4, 0x82), Malformed, 'truncated', 'unknown');
  });
});

describe('acknowledgements and reason codes', () => {
  it('a zero packet identifier is malformed in every packet that carries one', () => {
    expectViolation(frame(0x40, [0, 0]), Malformed, 'packet-id-zero', 4);
    expectViolation(frame(0x82, [0, 0, ...utf8('a'), 0]), Malformed, 'packet-id-zero', 4);
    expectViolation(frame(0xb0, [0, 0]), Malformed, 'packet-id-zero', 4);
  });
  it('3.1.1 acknowledgements have exactly two bytes; extra bytes are malformed', () => {
    expectViolation(frame(0x40, [0, 1, 0]), Malformed, 'trailing-bytes', 4);
    expectViolation(frame(0xb0, [0, 1, 0]), Malformed, 'trailing-bytes', 4);
    expectViolation(frame(0xe0, [0]), Malformed, 'trailing-bytes', 4);
    expectViolation(frame(0xc0, [0]), Malformed, 'trailing-bytes', 4);
  });
  it('5.0 short forms decode to reason code 0 and no properties', () => {
    expect(decode(frame(0x40, [0, 1]))).toEqual({ type: 4, packetId: 1, reasonCode: 0 });
    expect(decode(frame(0x50, [0, 1, 0x10]))).toEqual({ type: 5, packetId: 1, reasonCode: 0x10 });
    expect(decode(frame(0xe0, []))).toEqual({ type: 14, reasonCode: 0 });
    expect(decode(frame(0xe0, [0x04]))).toEqual({ type: 14, reasonCode: 4 });
  });
  it('a reason code the packet does not define is a protocol error', () => {
    expectViolation(frame(0x40, [0, 1, 0x01]), ProtocolError, 'reason-code-invalid');
    expectViolation(frame(0x70, [0, 1, 0x10]), ProtocolError, 'reason-code-invalid');
    expectViolation(frame(0xe0, [0x05]), ProtocolError, 'reason-code-invalid');
    expectViolation(frame(0xf0, [0x01, 0]), ProtocolError, 'reason-code-invalid');
    expectViolation(frame(0x90, [0, 1, 0, 0x03]), ProtocolError, 'reason-code-invalid');
    expectViolation(frame(0x20, [0, 6]), ProtocolError, 'reason-code-invalid', 4);
  });
  it('AUTH with a reason code must carry a property length', () => {
    expectViolation(frame(0xf0, [0x18]), Malformed, 'truncated');
  });
  it('CONNACK reserved flags and a session on a refused connection are rejected', () => {
    expectViolation(frame(0x20, [0x02, 0]), Malformed, 'connack-reserved-flags', 4);
    expectViolation(frame(0x20, [0x01, 0x05]), ProtocolError, 'connack-session-present', 4);
  });
});

describe('SUBSCRIBE and UNSUBSCRIBE', () => {
  it('need at least one topic filter [MQTT-3.8.3-2] [MQTT-3.10.3-2]', () => {
    expectViolation(frame(0x82, [0, 1]), ProtocolError, 'subscribe-empty', 4);
    expectViolation(frame(0x82, [0, 1, 0]), ProtocolError, 'subscribe-empty');
    expectViolation(frame(0xa2, [0, 1]), ProtocolError, 'unsubscribe-empty', 4);
  });
  it('3.1.1 options: reserved bits or QoS 3 are malformed', () => {
    expectViolation(frame(0x82, [0, 1, ...utf8('a'), 0x04]), Malformed, 'subscription-options-invalid', 4);
    expectViolation(frame(0x82, [0, 1, ...utf8('a'), 0x03]), Malformed, 'subscription-options-invalid', 4);
  });
  it('5.0 options: reserved bits are malformed, QoS 3 and retain handling 3 are protocol errors', () => {
    expectViolation(frame(0x82, [0, 1, 0, ...utf8('a'), 0x40]), Malformed, 'subscription-options-reserved');
    expectViolation(frame(0x82, [0, 1, 0, ...utf8('a'), 0x03]), ProtocolError, 'subscription-qos-invalid');
    expectViolation(frame(0x82, [0, 1, 0, ...utf8('a'), 0x30]), ProtocolError, 'subscription-retain-handling-invalid');
    expect(decode(frame(0x82, [0, 1, 0, ...utf8('a'), 0x2e]))).toMatchObject({
      subscriptions: [{ topicFilter: 'a', qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2 }],
    });
  });
  it('No Local on a shared subscription is a protocol error [MQTT-3.8.3-4]', () => {
    expectViolation(frame(0x82, [0, 1, 0, ...utf8('$share/g/a'), 0x04]), ProtocolError, 'subscription-shared-no-local');
  });
  it('a topic filter whose options byte is missing is malformed', () => {
    expectViolation(frame(0x82, [0, 1, ...utf8('a')]), Malformed, 'truncated', 4);
  });
  it('SUBACK and 5.0 UNSUBACK need at least one reason code', () => {
    expectViolation(frame(0x90, [0, 1]), ProtocolError, 'suback-empty', 4);
    expectViolation(frame(0xb0, [0, 1, 0]), ProtocolError, 'unsuback-empty');
  });
});
