/**
 * Proves the decoder is total on hostile input: random bytes and mutated valid encodings (bytes
 * overwritten, the stream truncated, ranges deleted, random bytes spliced in), pushed in random
 * chunks, only ever yield packets or a ProtocolViolation: never another exception, never an
 * unbounded loop, never more than packetBytesMax + 5 bytes buffered once `next` returns null.
 * Every packet accepted from such input must also be a valid canonical packet: it re-encodes
 * without an assertion failure and decodes back to itself. The hostile-client streams of the
 * broker fuzz tests (hostile-arbitraries.ts) go through the same check.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PacketDecoder } from '../../src/codec/decoder.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { ProtocolViolation } from '../../src/codec/errors.js';
import type { Packet, ProtocolVersion } from '../../src/codec/packets.js';
import { connectPacketArbitrary, mutate, mutation, packetArbitrary, split } from './arbitraries.js';
import { connectScript, fuzzLimits, hostileTopic, publishScript, sequenceScript, stepBytes } from './hostile-arbitraries.js';

const packetBytesMax = 256;

function reencodes(packet: Packet, version: ProtocolVersion): void {
  const wireVersion = packet.type === 1 ? packet.protocolVersion : version;
  const decoder = new PacketDecoder({ packetBytesMax: 1 << 20, protocolVersion: packet.type === 1 ? undefined : wireVersion });
  decoder.push(encodePacket(packet, wireVersion));
  expect(decoder.next()).toEqual(packet);
}

/** Feeds the chunks; returns how the stream ended. Fails the test on any non-protocol error. */
function feed(chunks: Uint8Array[], version: ProtocolVersion | undefined): 'violation' | 'end' {
  const decoder = new PacketDecoder({ packetBytesMax, protocolVersion: version });
  const totalBytes = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  let packets = 0;
  for (const chunk of chunks) {
    decoder.push(chunk);
    try {
      for (let packet = decoder.next(); packet !== null; packet = decoder.next()) {
        packets++;
        expect(packets).toBeLessThanOrEqual(totalBytes / 2); // every packet takes at least two bytes
        reencodes(packet, decoder.protocolVersion ?? 5);
      }
    } catch (error) {
      if (error instanceof ProtocolViolation) {
        expect(error.reasonCode).toBeGreaterThanOrEqual(0x80);
        expect(decoder.bufferedBytes).toBe(0);
        return 'violation';
      }
      throw error;
    }
    expect(decoder.bufferedBytes).toBeLessThanOrEqual(packetBytesMax + 5);
  }
  return 'end';
}

const versionOrUnknown = fc.constantFrom<ProtocolVersion | undefined>(undefined, 3, 4, 5);

describe('hostile input', () => {
  it('random bytes yield packets or a ProtocolViolation only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 10 }), versionOrUnknown, (bytes, points, version) => {
        feed(split(bytes, points), version);
      }),
      { numRuns: 1000 },
    );
  });

  for (const version of [4, 5] as const) {
    it(`version ${version}: mutated valid streams yield packets or a ProtocolViolation only`, () => {
      const stream = fc.tuple(connectPacketArbitrary(version), fc.array(packetArbitrary(version, false), { minLength: 1, maxLength: 5 }));
      fc.assert(
        fc.property(stream, fc.array(mutation, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), ([connect, rest], mutations, points, known) => {
          const valid = [connect, ...rest].flatMap((packet) => [...encodePacket(packet, version)]);
          feed(split(mutate(valid, mutations), points), known ? version : undefined);
        }),
        { numRuns: 800 },
      );
    });
  }

  it('hostile CONNECT and PUBLISH streams (edge values, misplaced and repeated properties, bad strings) yield packets or a ProtocolViolation only', () => {
    const options = { timing: 'simulated' as const, limits: fuzzLimits, pool: 'codec' };
    const script = fc.oneof(connectScript({ ...options, willTopic: hostileTopic(fuzzLimits, 20) }), publishScript(options), sequenceScript(options));
    fc.assert(
      fc.property(script, fc.array(fc.nat(), { maxLength: 8 }), (value, points) => {
        const bytes = new Uint8Array(Buffer.concat(value.steps.map((step) => stepBytes(step, value.version))));
        feed(split(bytes, points), undefined);
      }),
      { numRuns: 400 },
    );
  });

  it('a header announcing a huge packet fails at once without waiting for its body', () => {
    const decoder = new PacketDecoder({ packetBytesMax, protocolVersion: 4 });
    decoder.push(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0x7f]));
    expect(() => decoder.next()).toThrow(expect.objectContaining({ reasonCode: 0x95 }));
  });
});
