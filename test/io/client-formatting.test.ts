/**
 * Proves the pieces of `keel pub`/`keel sub` that do not need a broker: -F templates and JSON
 * output of received messages (binary payloads survive as base64), -D pairing of user
 * properties, and the protocol version / QoS / port parsers with their error cases.
 */

import type { IPublishPacket } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { parsePort, parseProtocolVersion, parseQos, UsageError, userProperties } from '../../io/client-options.js';
import { formatJson, formatTemplate } from '../../io/message-format.js';

function packet(payload: Buffer, extra: Partial<IPublishPacket> = {}): IPublishPacket {
  return { cmd: 'publish', topic: 'a/b', payload, qos: 1, retain: true, dup: false, messageId: 7, ...extra };
}

describe('message formatting', () => {
  it('expands every template code and escape', () => {
    const line = formatTemplate('%t|%p|%q|%r|%m|%l|%x|%%|%z\\t\\n', packet(Buffer.from('hi')));
    expect(line).toBe('a/b|hi|1|1|7|2|6869|%|%z\t\n');
  });

  it('prints JSON with a text payload and properties', () => {
    const json = JSON.parse(formatJson(packet(Buffer.from('héllo'), { properties: { contentType: 'text/plain', correlationData: Buffer.from([1, 2, 3]), userProperties: { a: 'b' } } }))) as Record<
      string,
      unknown
    >;
    expect(json).toEqual({
      topic: 'a/b',
      payload: 'héllo',
      qos: 1,
      retain: true,
      properties: { contentType: 'text/plain', correlationData: 'AQID', userProperties: { a: 'b' } },
    });
  });

  it('prints a payload that is not UTF-8 as base64 and says so', () => {
    const json = JSON.parse(formatJson(packet(Buffer.from([0xff, 0x00, 0xfe])))) as Record<string, unknown>;
    expect(json.payload).toBe(Buffer.from([0xff, 0x00, 0xfe]).toString('base64'));
    expect(json.payloadEncoding).toBe('base64');
    expect(formatTemplate('%j', packet(Buffer.from('x')))).toBe(formatJson(packet(Buffer.from('x'))));
  });
});

describe('command-line parsing', () => {
  it('pairs user properties and keeps repeated names in order', () => {
    expect(userProperties(['a', '1', 'b', '2', 'a', '3'])).toEqual({ a: ['1', '3'], b: '2' });
    expect(userProperties(undefined)).toBeUndefined();
    expect(() => userProperties(['lonely'])).toThrow(UsageError);
  });

  it('accepts the protocol version spellings users know', () => {
    expect(['5', 'mqttv5', '5.0'].map(parseProtocolVersion)).toEqual([5, 5, 5]);
    expect(['3.1.1', 'mqttv311', 'MQTTV311'].map(parseProtocolVersion)).toEqual([4, 4, 4]);
    expect(parseProtocolVersion('mqttv31')).toBe(3);
    expect(() => parseProtocolVersion('6')).toThrow(/3\.1\.1 or 5/);
  });

  it('validates QoS and port', () => {
    expect(parseQos('2')).toBe(2);
    expect(() => parseQos('3')).toThrow();
    expect(() => parseQos('1.0')).toThrow();
    expect(parsePort('0')).toBe(0);
    expect(() => parsePort('65536')).toThrow();
    expect(() => parsePort('http')).toThrow();
  });
});
