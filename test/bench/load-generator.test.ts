/**
 * Proves the benchmark's load generator speaks MQTT correctly, so its figures count real packets:
 *
 * - its encoder: every packet it builds (CONNECT, SUBSCRIBE, PUBLISH QoS 0/1, PUBACK, PINGREQ,
 *   DISCONNECT, in 3.1.1 and 5.0) is parsed by an independent implementation, mqtt-packet, into
 *   the fields it was asked to encode, and in 3.1.1 is byte-identical to mqtt-packet's encoding;
 * - its streaming scanner: a stream of packets encoded by mqtt-packet, cut at arbitrary points
 *   (fast-check), is split back into exactly those packets, with the right payload and packet
 *   identifier read out of each PUBLISH;
 * - the harness end to end: a 1-second fan-in run against Aedes in a child process on loopback
 *   delivers messages and loses none.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import fc from 'fast-check';
import mqttPacket, { type Packet } from 'mqtt-packet';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import {
  encodeConnect,
  encodeDisconnect,
  encodePingreq,
  encodePuback,
  encodePublish,
  encodeSubscribe,
  PacketScanner,
  type ProtocolLevel,
  publishPacketId,
  publishPayloadStart,
} from '../../bench/load/packets.js';
import { aedesServerScript, repositoryRoot, startBroker } from '../../bench/load/peers.js';
import { scenarios } from '../../bench/load/scenarios.js';
import { scenarioContext } from './scenario-context.js';

// biome-ignore lint/suspicious/noExplicitAny: a loosely typed view of another library's objects, read field by field.
type Loose = Record<string, any>;

function parseWithMqttPacket(bytes: Buffer, level: ProtocolLevel): Loose[] {
  const parser = mqttPacket.parser({ protocolVersion: level });
  const packets: Loose[] = [];
  parser.on('packet', (packet: Packet) => packets.push(packet as Loose));
  parser.on('error', (error: Error) => {
    throw error;
  });
  parser.parse(bytes);
  return packets;
}

function parseOne(bytes: Buffer, level: ProtocolLevel): Loose {
  const packets = parseWithMqttPacket(bytes, level);
  expect(packets).toHaveLength(1);
  return packets[0]!;
}

const levels: ProtocolLevel[] = [4, 5];
const topicArbitrary = fc.stringMatching(/^[a-z0-9]{1,12}(\/[a-z0-9]{1,12}){0,4}$/);
const payloadArbitrary = fc.uint8Array({ minLength: 0, maxLength: 300 });

describe('load generator encoder agrees with mqtt-packet', () => {
  for (const level of levels) {
    it(`CONNECT, SUBSCRIBE and the one-byte packets parse as intended (level ${level})`, () => {
      fc.assert(
        fc.property(fc.stringMatching(/^[A-Za-z0-9-]{1,40}$/), fc.integer({ min: 0, max: 65_535 }), fc.boolean(), (clientId, keepAliveSeconds, clean) => {
          const connect = parseOne(encodeConnect({ clientId, level, keepAliveSeconds, clean }), level);
          expect(connect).toMatchObject({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: level, clientId, keepalive: keepAliveSeconds, clean });
        }),
        { numRuns: 100 },
      );
      const subscribe = parseOne(
        encodeSubscribe(level, 7, [
          { filter: 'bench/#', qos: 1 },
          { filter: 'a/+/c', qos: 0 },
        ]),
        level,
      );
      expect(subscribe.cmd).toBe('subscribe');
      expect(subscribe.messageId).toBe(7);
      expect(subscribe.subscriptions.map((entry: Loose) => [entry.topic, entry.qos])).toEqual([
        ['bench/#', 1],
        ['a/+/c', 0],
      ]);
      expect(parseOne(encodePuback(513), level)).toMatchObject({ cmd: 'puback', messageId: 513 });
      const persistent = parseOne(encodeConnect({ clientId: 'keep', level, keepAliveSeconds: 0, clean: false, sessionExpirySeconds: 86_400 }), level);
      expect(persistent).toMatchObject({ cmd: 'connect', clientId: 'keep', clean: false });
      // The expiry is a 5.0 property; 3.1.1 has none (a clean session 0 lasts until the broker drops it).
      expect(persistent.properties?.sessionExpiryInterval).toBe(level === 5 ? 86_400 : undefined);
      expect(parseOne(encodePingreq(), level).cmd).toBe('pingreq');
      expect(parseOne(encodeDisconnect(), level).cmd).toBe('disconnect');
    });

    it(`PUBLISH QoS 0 and 1 carry topic, payload and packet identifier (level ${level})`, () => {
      fc.assert(
        fc.property(topicArbitrary, payloadArbitrary, fc.constantFrom(0 as const, 1 as const), fc.integer({ min: 1, max: 65_535 }), (topic, payload, qos, id) => {
          const packetId = qos === 1 ? id : undefined;
          const parsed = parseOne(encodePublish({ level, topic, payload, qos, packetId }), level);
          expect(parsed).toMatchObject({ cmd: 'publish', topic, qos, retain: false, dup: false });
          expect(new Uint8Array(parsed.payload)).toEqual(payload);
          if (qos === 1) expect(parsed.messageId).toBe(id);
        }),
        { numRuns: 200 },
      );
    });
  }

  it('3.1.1 encodings are byte-identical to mqtt-packet', () => {
    const payload = Buffer.from('0123456789abcdef');
    const pairs: [Buffer, Loose][] = [
      [
        encodeConnect({ clientId: 'bench-1', level: 4, keepAliveSeconds: 30, clean: true }),
        { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'bench-1', keepalive: 30, clean: true },
      ],
      [encodeSubscribe(4, 1, [{ filter: 'bench/#', qos: 0 }]), { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/#', qos: 0 }] }],
      [encodePublish({ level: 4, topic: 'bench/x', payload, qos: 0 }), { cmd: 'publish', topic: 'bench/x', payload, qos: 0, retain: false, dup: false }],
      [encodePublish({ level: 4, topic: 'bench/x', payload, qos: 1, packetId: 300 }), { cmd: 'publish', topic: 'bench/x', payload, qos: 1, messageId: 300, retain: false, dup: false }],
      [encodePuback(300), { cmd: 'puback', messageId: 300 }],
      [encodePingreq(), { cmd: 'pingreq' }],
      [encodeDisconnect(), { cmd: 'disconnect' }],
    ];
    for (const [ours, theirs] of pairs) expect(ours.toString('hex')).toBe(mqttPacket.generate(theirs as Packet).toString('hex'));
  });
});

interface Expected {
  type: number;
  payload?: Buffer;
  packetId?: number;
}

/** A packet mqtt-packet encodes, and what the scanner must find in it. */
const streamPacketArbitrary = (level: ProtocolLevel): fc.Arbitrary<[Buffer, Expected]> =>
  fc.oneof(
    fc.tuple(topicArbitrary, fc.uint8Array({ minLength: 0, maxLength: 20_000 }), fc.constantFrom(0, 1), fc.integer({ min: 1, max: 65_535 })).map(([topic, bytes, qos, id]): [Buffer, Expected] => {
      const payload = Buffer.from(bytes);
      const packet = { cmd: 'publish', topic, payload, qos, retain: false, dup: false, ...(qos === 1 ? { messageId: id } : {}) } as Loose;
      return [mqttPacket.generate(packet as Packet, { protocolVersion: level }), { type: 3, payload, packetId: qos === 1 ? id : 0 }];
    }),
    fc.integer({ min: 1, max: 65_535 }).map((id): [Buffer, Expected] => [mqttPacket.generate({ cmd: 'puback', messageId: id } as Packet, { protocolVersion: level }), { type: 4 }]),
    fc.constant<[Buffer, Expected]>([mqttPacket.generate({ cmd: 'connack', returnCode: 0, reasonCode: 0, sessionPresent: false } as Packet, { protocolVersion: level }), { type: 2 }]),
    fc.constant<[Buffer, Expected]>([mqttPacket.generate({ cmd: 'suback', messageId: 1, granted: [0] } as Packet, { protocolVersion: level }), { type: 9 }]),
    fc.constant<[Buffer, Expected]>([mqttPacket.generate({ cmd: 'pingresp' } as Packet), { type: 13 }]),
  );

describe('load generator scanner splits any segmentation of a stream', () => {
  for (const level of levels) {
    it(`finds every packet, payload and packet identifier (level ${level})`, () => {
      fc.assert(
        fc.property(fc.array(streamPacketArbitrary(level), { minLength: 1, maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (packets, cutSeeds) => {
          const stream = Buffer.concat(packets.map(([bytes]) => bytes));
          const cuts = [...new Set(cutSeeds.map((seed) => seed % stream.length))].sort((a, b) => a - b);
          const found: Expected[] = [];
          const scanner = new PacketScanner();
          const visit = (type: number, flags: number, bytes: Buffer, start: number, end: number): void => {
            if (type !== 3) return void found.push({ type });
            const payload = Buffer.from(bytes.subarray(publishPayloadStart(level, flags, bytes, start), end));
            found.push({ type, payload, packetId: publishPacketId(flags, bytes, start) });
          };
          let previous = 0;
          for (const cut of [...cuts, stream.length]) {
            if (cut > previous) scanner.feed(stream.subarray(previous, cut), visit);
            previous = Math.max(previous, cut);
          }
          expect(scanner.pendingBytes).toBe(0);
          expect(found).toEqual(packets.map(([, expected]) => expected));
        }),
        { numRuns: 150 },
      );
    });
  }

  it('keeps a partial packet until its last byte arrives, even one byte at a time', () => {
    const packet = mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(200, 1), qos: 0, retain: false, dup: false } as Packet);
    const scanner = new PacketScanner();
    let seen = 0;
    for (let index = 0; index < packet.length; index++) {
      scanner.feed(packet.subarray(index, index + 1), () => (seen += 1));
      expect(seen).toBe(index === packet.length - 1 ? 1 : 0);
    }
  });
});

/** The child process runs compiled JavaScript; transpile the one script if the build is older. */
function ensureAedesServerBuilt(): void {
  const source = `${repositoryRoot()}/bench/load/aedes-server.ts`;
  const target = aedesServerScript();
  if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) return;
  const output = ts.transpileModule(readFileSync(source, 'utf8'), { compilerOptions: { module: ts.ModuleKind.NodeNext, target: ts.ScriptTarget.ES2022 } });
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, output.outputText);
}

describe('harness smoke run', () => {
  it('a 1-second fan-in against Aedes in a child process delivers every message', async () => {
    ensureAedesServerBuilt();
    const broker = await startBroker('aedes', { keelConfig: {}, mosquittoQueuedMessagesMax: 1_000 });
    try {
      expect(broker.rssBytes()).toBeGreaterThan(1024 * 1024);
      const fanIn = scenarios.find((scenario) => scenario.name === 'fan-in')!;
      const context = scenarioContext(broker, { latencyWarmupSeconds: 1 });
      const metrics = await fanIn.run(context);
      const received = metrics.find((metric) => metric.name === 'received')!;
      const loss = metrics.find((metric) => metric.name === 'QoS 0 loss')!;
      expect(received.value).toBeGreaterThan(100);
      expect(loss.value).toBe(0);
      expect(broker.alive()).toBe(true);
    } finally {
      await broker.stop();
    }
    expect(broker.alive()).toBe(false);
  }, 10_000);

  it('paced QoS 1 latency: every sample is a delivery and the broker acknowledged what was sent', async () => {
    ensureAedesServerBuilt();
    const broker = await startBroker('aedes', { keelConfig: {}, mosquittoQueuedMessagesMax: 1_000 });
    try {
      const scenario = scenarios.find((candidate) => candidate.name === 'latency-qos1')!;
      const context = { ...scenarioContext(broker, { latencyWarmupSeconds: 1 }), seconds: 1, rateMessagesPerSecond: 500 };
      const metrics = await scenario.run(context);
      const value = (name: string): number => metrics.find((metric) => metric.name === name)!.value;
      // One second recorded at 500/s after one of warm-up: about 500 samples, and the publisher
      // got a PUBACK for each message of both seconds (its last ones may still be on the way).
      expect(value('samples')).toBeGreaterThan(300);
      expect(value('samples')).toBeLessThanOrEqual(600);
      expect(value('PUBACKs received by the publisher')).toBeGreaterThan(value('samples'));
      expect(value('p50')).toBeGreaterThan(0);
      expect(value('p99')).toBeGreaterThanOrEqual(value('p50'));
    } finally {
      await broker.stop();
    }
  }, 20_000);
});
