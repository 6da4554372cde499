/**
 * Proves that the decoder inverts the encoder on the canonical form: for arbitrary valid packets
 * of every type, in MQTT 3.1 (CONNECT), 3.1.1 and 5.0, decode(encode(p)) deep-equals p, the encoded
 * length is exactly what the fixed header declares, and the decoder consumes every byte. It also
 * proves the result does not depend on how the stream is cut: several packets concatenated and
 * split at random points (down to one byte per push) decode to the same list, also when two
 * decoders are fed in turns.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PacketDecoder } from '../../src/codec/decoder.js';
import { encodePacket, encodePublish, withPacketId } from '../../src/codec/encoder.js';
import type { Packet, ProtocolVersion } from '../../src/codec/packets.js';
import { connectPacketArbitrary, packetArbitraries, packetArbitrary, publishArbitrary, split } from './arbitraries.js';

const packetBytesMax = 1 << 20;

function decodeAll(chunks: Uint8Array[], version: ProtocolVersion | undefined): Packet[] {
  const decoder = new PacketDecoder({ packetBytesMax, protocolVersion: version });
  const packets: Packet[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let packet = decoder.next(); packet !== null; packet = decoder.next()) packets.push(packet);
    expect(decoder.bufferedBytes).toBeLessThanOrEqual(packetBytesMax + 5);
  }
  expect(decoder.bufferedBytes).toBe(0);
  return packets;
}

function concatenate(parts: Uint8Array[]): Uint8Array {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    joined.set(part, offset);
    offset += part.length;
  }
  return joined;
}

function declaredLength(bytes: Uint8Array): number {
  let value = 0;
  let multiplier = 1;
  let index = 1;
  for (;;) {
    const byte = bytes[index]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return index + 1 + value;
    multiplier *= 128;
    index++;
  }
}

describe('decode(encode(p)) equals p', () => {
  for (const version of [4, 5] as const) {
    packetArbitraries(version).forEach((arbitrary, index) => {
      it(`version ${version}, packet kind ${index}`, () => {
        fc.assert(
          fc.property(arbitrary, (packet) => {
            const bytes = encodePacket(packet, version);
            expect(declaredLength(bytes)).toBe(bytes.length);
            const decodeVersion = packet.type === 1 ? undefined : version;
            expect(decodeAll([bytes], decodeVersion)).toEqual([packet]);
          }),
          { numRuns: 150 },
        );
      });
    });
  }

  it('MQTT 3.1 CONNECT ("MQIsdp", level 3) round-trips and sets the decoder version', () => {
    fc.assert(
      fc.property(connectPacketArbitrary(3), (packet) => {
        const decoder = new PacketDecoder({ packetBytesMax });
        decoder.push(encodePacket(packet, 3));
        expect(decoder.next()).toEqual(packet);
        expect(decoder.protocolVersion).toBe(3);
      }),
      { numRuns: 200 },
    );
  });

  it('a decoder that learns the version from CONNECT decodes what follows in that version', () => {
    const stream = fc
      .constantFrom<ProtocolVersion>(3, 4, 5)
      .chain((version) => fc.tuple(fc.constant(version), connectPacketArbitrary(version), fc.array(packetArbitrary(version === 3 ? 4 : version, false), { maxLength: 6 })));
    fc.assert(
      fc.property(stream, ([version, connect, rest]) => {
        const wireVersion = version;
        const bytes = [encodePacket(connect, version), ...rest.map((packet) => encodePacket(packet, wireVersion))];
        expect(decodeAll(bytes, undefined)).toEqual([connect, ...rest]);
      }),
      { numRuns: 200 },
    );
  });
});

describe('decoding is independent of chunking', () => {
  for (const version of [4, 5] as const) {
    it(`version ${version}: random split points give the same packets as one chunk`, () => {
      fc.assert(
        fc.property(fc.array(packetArbitrary(version, false), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (packets, points) => {
          const joined = concatenate(packets.map((packet) => encodePacket(packet, version)));
          expect(decodeAll(split(joined, points), version)).toEqual(packets);
        }),
        { numRuns: 300 },
      );
    });

    it(`version ${version}: two decoders fed in turns (one reader shared for all but PUBLISH) each give their own packets`, () => {
      const streams = fc.array(packetArbitrary(version, false), { minLength: 1, maxLength: 6 });
      fc.assert(
        fc.property(streams, streams, fc.array(fc.nat(), { maxLength: 12 }), (first, second, points) => {
          const chunks = [first, second].map((packets) => split(concatenate(packets.map((packet) => encodePacket(packet, version))), points));
          const decoders = [0, 1].map(() => new PacketDecoder({ packetBytesMax, protocolVersion: version }));
          const decoded: Packet[][] = [[], []];
          for (let turn = 0; turn < Math.max(chunks[0]!.length, chunks[1]!.length); turn++) {
            for (const side of [0, 1]) {
              const chunk = chunks[side]![turn];
              if (chunk !== undefined) decoders[side]!.push(chunk);
              for (let packet = decoders[side]!.next(); packet !== null; packet = decoders[side]!.next()) decoded[side]!.push(packet);
            }
          }
          expect(decoded).toEqual([first, second]);
        }),
        { numRuns: 200 },
      );
    });

    it(`version ${version}: one byte per push gives the same packets`, () => {
      fc.assert(
        fc.property(fc.array(packetArbitrary(version, false), { minLength: 1, maxLength: 4 }), (packets) => {
          const joined = concatenate(packets.map((packet) => encodePacket(packet, version)));
          const single = Array.from(joined, (byte) => new Uint8Array([byte]));
          expect(decodeAll(single, version)).toEqual(packets);
        }),
        { numRuns: 100 },
      );
    });
  }
});

describe('zero-copy payloads', () => {
  it('a PUBLISH inside one chunk has its payload as a view of that chunk', () => {
    const bytes = encodePacket({ type: 3, dup: false, qos: 0, retain: false, topic: 't', payload: new Uint8Array([1, 2, 3]) }, 4);
    const decoder = new PacketDecoder({ packetBytesMax, protocolVersion: 4 });
    decoder.push(bytes);
    const packet = decoder.next();
    expect(packet?.type).toBe(3);
    if (packet?.type !== 3) return;
    expect(packet.payload.buffer).toBe(bytes.buffer);
    expect(packet.payload.byteOffset).toBe(bytes.byteOffset + bytes.length - 3);
  });

  it('a PUBLISH straddling chunks is copied once and still decodes', () => {
    const bytes = encodePacket({ type: 3, dup: false, qos: 0, retain: false, topic: 't', payload: new Uint8Array([1, 2, 3]) }, 4);
    const decoder = new PacketDecoder({ packetBytesMax, protocolVersion: 4 });
    decoder.push(bytes.slice(0, 4));
    expect(decoder.next()).toBeNull();
    decoder.push(bytes.slice(4));
    const packet = decoder.next();
    if (packet?.type !== 3) throw new Error('expected PUBLISH');
    expect(packet.payload).toEqual(new Uint8Array([1, 2, 3]));
    expect(packet.payload.buffer).not.toBe(bytes.buffer);
  });

  it('a chunk the decoder has read to its end is let go at once, even while a packet straddles it', () => {
    // Every chunk ends inside a packet, the pattern of a flood read in 64 KiB pieces. A decoder
    // that kept spent chunks until a later compaction held dozens of receive buffers alive long
    // enough for the garbage collector to promote them.
    const packet = encodePacket({ type: 3, dup: false, qos: 0, retain: false, topic: 'a/b', payload: new Uint8Array(40).fill(7) }, 4);
    const stream = concatenate(Array.from({ length: 100 }, () => packet));
    const chunkBytes = packet.length * 2 + 5;
    const decoder = new PacketDecoder({ packetBytesMax, protocolVersion: 4 });
    let decoded = 0;
    for (let offset = 0; offset < stream.length; offset += chunkBytes) {
      decoder.push(stream.slice(offset, offset + chunkBytes));
      for (let next = decoder.next(); next !== null; next = decoder.next()) decoded++;
      // Only the chunk holding the unfinished packet's start (and the newest) may be referenced.
      expect(decoder.retainedBytes).toBeLessThanOrEqual(chunkBytes);
      expect(decoder.retainedBytes).toBeGreaterThanOrEqual(decoder.bufferedBytes);
    }
    expect(decoded).toBe(100);
  });
});

describe('encodePublish and withPacketId', () => {
  for (const version of [4, 5] as const) {
    // The first receiver gets the encoding itself, patched in place; every later one a copy, made
    // without touching the bytes already given out (they may still wait to be written).
    it(`version ${version}: the first receiver's bytes and later copies equal a direct encoding with that id and DUP`, () => {
      fc.assert(
        fc.property(publishArbitrary(version), fc.integer({ min: 1, max: 0xffff }), fc.boolean(), fc.integer({ min: 1, max: 0xffff }), fc.boolean(), (packet, packetId, dup, laterId, laterDup) => {
          const { packetId: _ignored, ...withoutId } = packet;
          const encoded = encodePublish(withoutId, version);
          if (packet.qos === 0) {
            expect(encoded.packetIdOffset).toBe(-1);
            expect(encoded.bytes).toEqual(encodePacket(packet, version));
            return;
          }
          const first = withPacketId(encoded, packetId, dup);
          expect(first).toBe(encoded.bytes);
          const expectedFirst = encodePacket({ ...packet, packetId, dup }, version);
          expect(first).toEqual(expectedFirst);
          const later = withPacketId(encoded, laterId, laterDup);
          expect(later).not.toBe(first);
          expect(later).toEqual(encodePacket({ ...packet, packetId: laterId, dup: laterDup }, version));
          expect(first).toEqual(expectedFirst); // the bytes given out are untouched
        }),
        { numRuns: 300 },
      );
    });
  }
});
