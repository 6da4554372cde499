/**
 * Proves the encodings that carry an MQTT message through NATS (src/cluster/headers.ts and
 * retained-entries.ts): every forwarded MQTT 5.0 property survives headers and a retained value,
 * user properties travel as plain headers when they can and as exact JSON (repeats, order, odd
 * names) when they cannot, a NATS-native message is QoS 0 without properties, and every topic
 * makes a valid NATS KV key that maps back to it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeHeaders, encodeHeaders } from '../../src/cluster/headers.js';
import { decodeRetainedValue, encodeRetainedValue, retainedKey, topicOfRetainedKey } from '../../src/cluster/retained-entries.js';
import type { Properties } from '../../src/codec/packets.js';

const full: Properties = {
  payloadFormatIndicator: 1,
  contentType: 'text/plain; charset=utf-8 ü\n',
  responseTopic: 'replies/é/1',
  correlationData: new Uint8Array([0, 1, 254, 255]),
  userProperties: [
    ['a', '1'],
    ['a', '2'],
    ['naïve name', 'x\r\ny'],
  ],
};

describe('cluster headers', () => {
  it('carry QoS, retain, expiry and every forwarded property', () => {
    const headers = encodeHeaders('n1', 2, true, null, full, 30);
    expect(headers['Keel-Origin']).toBe('n1');
    const envelope = decodeHeaders(headers);
    expect(envelope).toEqual({ origin: 'n1', qos: 2, retain: true, sequence: null, properties: full, expirySeconds: 30 });
  });

  it('put simple user properties in plain headers, in order', () => {
    const properties: Properties = {
      userProperties: [
        ['unit', 'celsius'],
        ['site', 'b-7'],
      ],
    };
    const headers = encodeHeaders('n1', 1, false, null, properties, null);
    expect(headers.unit).toBe('celsius');
    expect(headers['Keel-User-Properties']).toBeUndefined();
    expect(decodeHeaders({ ...headers, 'Nats-Msg-Id': 'x' }).properties).toEqual(properties);
  });

  it('read a NATS-native message as QoS 0 without properties', () => {
    expect(decodeHeaders({ unit: 'celsius' })).toEqual({ origin: null, qos: 0, retain: false, sequence: null, properties: undefined, expirySeconds: null });
  });

  it('round-trip random user properties exactly', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ minLength: 0, maxLength: 6 }), fc.string({ maxLength: 6 })), { minLength: 1, maxLength: 4 }), (list) => {
        const properties: Properties = { userProperties: list };
        expect(decodeHeaders(encodeHeaders('n', 1, false, null, properties, null)).properties).toEqual(properties);
      }),
      { numRuns: 500 },
    );
  });
});

describe('retained entries', () => {
  it('make a valid KV key of every topic, and map it back', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 30 }), (topic) => {
        const key = retainedKey(topic);
        expect(key).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(topicOfRetainedKey(key)).toBe(topic);
      }),
      { numRuns: 1_000 },
    );
    expect(topicOfRetainedKey('!')).toBeNull();
  });

  it('carry the message in the value, with the node and put id that tell a node its own value', () => {
    const payload = new Uint8Array([1, 2, 3]);
    expect(decodeRetainedValue(encodeRetainedValue('n2', 1, payload, full, 12, '7-r3'))).toEqual({ origin: 'n2', sequence: '7-r3', qos: 1, payload, properties: full, expirySeconds: 12 });
    expect(decodeRetainedValue(encodeRetainedValue('n2', 0, payload, undefined, null, null))).toEqual({ origin: 'n2', sequence: null, qos: 0, payload, properties: undefined, expirySeconds: null });
    expect(decodeRetainedValue(new Uint8Array([9, 0, 0, 0, 1]))).toBeNull();
  });
});
