/**
 * Proves the stream benchmark's lean reader speaks MQTT 5.0 correctly, so its replay figures count
 * real deliveries:
 *
 * - the CONNECT and SUBSCRIBE it builds are parsed by an independent implementation,
 *   mqtt-packet, into what it meant (Receive Maximum 65,535; the filter at QoS 1 with the
 *   `stream-offset` user property);
 * - its decoder reads the packet identifier, the `stream-offset` user property and the payload
 *   length out of PUBLISH packets encoded by mqtt-packet, with and without the other properties a
 *   stream delivery may carry, and refuses a property it does not know instead of misreading it.
 */
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { PacketScanner } from '../../bench/load/packets.js';
import { type DecodedDelivery, decodeDelivery, encodeReaderConnect, encodeStreamSubscribe } from '../../bench/stream/stream-reader-client.js';

// biome-ignore lint/suspicious/noExplicitAny: a loosely typed view of another library's objects, read field by field.
type Loose = Record<string, any>;

function parse(bytes: Buffer): Loose[] {
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  const packets: Loose[] = [];
  parser.on('packet', (packet) => packets.push(packet as Loose));
  parser.on('error', (error) => {
    throw error;
  });
  parser.parse(bytes);
  return packets;
}

function decode(packet: Loose): DecodedDelivery {
  const bytes = mqttPacket.generate(packet as mqttPacket.Packet, { protocolVersion: 5 });
  const into: DecodedDelivery = { packetId: -1, offset: -2, payloadBytes: -1 };
  new PacketScanner().feed(bytes, (_type, flags, body, start, end) => decodeDelivery(flags, body, start, end, into));
  return into;
}

describe('the stream bench reader', () => {
  it('connects with Receive Maximum 65535 and subscribes with stream-offset', () => {
    const [connect] = parse(encodeReaderConnect('reader-1'));
    expect(connect).toMatchObject({ cmd: 'connect', protocolVersion: 5, clientId: 'reader-1', clean: true, properties: { receiveMaximum: 65_535 } });
    const [subscribe] = parse(encodeStreamSubscribe('$stream/replay', 'time:1767225600000'));
    expect(subscribe).toMatchObject({
      cmd: 'subscribe',
      messageId: 1,
      subscriptions: [{ topic: '$stream/replay', qos: 1 }],
      properties: { userProperties: { 'stream-offset': 'time:1767225600000' } },
    });
  });

  it('reads packet identifier, offset and payload length of stream deliveries', () => {
    const payload = Buffer.alloc(64, 0x78);
    const base = { cmd: 'publish', topic: 'bench/replay/x', payload, qos: 1, messageId: 4242, dup: false, retain: false };
    expect(decode({ ...base, properties: { userProperties: { stream: 'replay', 'stream-offset': '1234567' } } })).toEqual({ packetId: 4242, offset: 1234567, payloadBytes: 64 });
    const rich = { payloadFormatIndicator: true, messageExpiryInterval: 60, contentType: 'text/plain', responseTopic: 'reply', correlationData: Buffer.from('c'), subscriptionIdentifier: 7 };
    expect(decode({ ...base, payload: Buffer.alloc(3), properties: { ...rich, userProperties: { 'stream-offset': '0', 'stream-skipped': '5' } } })).toEqual({
      packetId: 4242,
      offset: 0,
      payloadBytes: 3,
    });
    expect(decode({ ...base, qos: 0, messageId: undefined, properties: { userProperties: { stream: 'replay' } } })).toEqual({ packetId: 0, offset: -1, payloadBytes: 64 });
  });

  it('refuses a property it cannot skip instead of misreading the packet', () => {
    const bytes = Buffer.from(
      mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(1), qos: 0, dup: false, retain: false, properties: { userProperties: { a: 'b' } } } as mqttPacket.Packet, {
        protocolVersion: 5,
      }),
    );
    // Turn the user property (0x26) into Maximum Packet Size (0x27), which a PUBLISH never carries.
    bytes[bytes.indexOf(0x26)] = 0x27;
    const into: DecodedDelivery = { packetId: 0, offset: 0, payloadBytes: 0 };
    expect(() => new PacketScanner().feed(bytes, (_type, flags, body, start, end) => decodeDelivery(flags, body, start, end, into))).toThrow(/unexpected PUBLISH property 0x27/);
  });
});
