/**
 * Proves the stream benchmark's lean reader speaks MQTT 5.0 correctly, so its replay figures count
 * real deliveries:
 *
 * - the CONNECT and SUBSCRIBE it builds are parsed by an independent implementation,
 *   mqtt-packet, into what it meant (Receive Maximum 65,535; the filter at QoS 1 with the
 *   `stream-offset` user property);
 * - its decoder reads the packet identifier, the `stream-offset` user property and the payload
 *   length out of PUBLISH packets encoded by mqtt-packet, with and without the other properties a
 *   stream delivery may carry, and refuses a property it does not know instead of misreading it;
 * - against a scripted server on a free loopback port, it answers every QoS 1 delivery of a
 *   chunk with its PUBACK and counts QoS 1 deliveries and PUBACKs (the QoS 1 replay relies on it).
 */
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { PacketScanner } from '../../bench/load/packets.js';
import { type DecodedDelivery, decodeDelivery, encodeReaderConnect, encodeStreamSubscribe, StreamReaderClient } from '../../bench/stream/stream-reader-client.js';

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

/** A server that accepts one reader, grants its SUBSCRIBE, then sends `deliveries` in one write and records what comes back. */
async function scriptedServer(deliveries: Buffer): Promise<{ port: number; received: Loose[]; close: () => Promise<void> }> {
  const received: Loose[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    const parser = mqttPacket.parser({ protocolVersion: 5 });
    parser.on('packet', (packet) => {
      received.push(packet as Loose);
      if (packet.cmd === 'connect') socket.write(mqttPacket.generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0 }, { protocolVersion: 5 }));
      if (packet.cmd === 'subscribe') {
        socket.write(mqttPacket.generate({ cmd: 'suback', messageId: packet.messageId, granted: [1] } as mqttPacket.Packet, { protocolVersion: 5 }));
        socket.write(deliveries);
      }
    });
    socket.on('data', (chunk) => parser.parse(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return { port, received, close };
}

describe('the stream bench reader on a connection', () => {
  it('acknowledges every QoS 1 delivery and counts them', async () => {
    const publish = (offset: number, qos: 0 | 1): Buffer =>
      mqttPacket.generate(
        {
          cmd: 'publish',
          topic: 'bench/replay/x',
          payload: Buffer.alloc(64, 0x78),
          qos,
          messageId: qos === 1 ? 100 + offset : undefined,
          dup: false,
          retain: false,
          properties: { userProperties: { stream: 'replay', 'stream-offset': String(offset) } },
        } as mqttPacket.Packet,
        { protocolVersion: 5 },
      );
    // Three QoS 1 deliveries and one QoS 0 one (which must not be acknowledged), in one chunk.
    const server = await scriptedServer(Buffer.concat([publish(0, 1), publish(1, 1), publish(2, 0), publish(3, 1)]));
    const reader = await StreamReaderClient.open(server.port, 'reader-acks', 64, 5_000);
    try {
      await reader.subscribe('$stream/replay', 'earliest', 5_000);
      await reader.whenReceived(4, 5_000);
      const deadline = Date.now() + 5_000;
      while (server.received.filter((packet) => packet.cmd === 'puback').length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(server.received.filter((packet) => packet.cmd === 'puback').map((packet) => packet.messageId)).toEqual([100, 101, 103]);
      expect(reader.counts).toMatchObject({ received: 4, firstOffset: 0, lastOffset: 3, outOfOrder: 0, wrongSize: 0, withPacketId: 3, pubacksSent: 3 });
    } finally {
      reader.destroy();
      await server.close();
    }
  });
});
