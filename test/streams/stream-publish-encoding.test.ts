/**
 * Proves the direct encoding of a stream delivery (stream-delivery.ts `encodeStreamPublish`, the
 * replay's hot path) writes exactly the bytes of the general path, a PublishPacket built by
 * `streamPublishPacket` and encoded by the codec: for MQTT 3.1, 3.1.1 and 5.0, QoS 0 and 1, any
 * number of subscription identifiers, with and without a `stream-skipped` announcement, offsets
 * and counts of every width, topics with multi-byte characters, and payloads whose size makes the
 * Remaining Length one to three bytes long (fast-check, against the codec as the reference).
 * And that a reader's pump sends its run of deliveries as one chunk, each delivery intact and
 * counted as a packet sent. The same for an entry decoded from a segment read (`ReadEntry`, whose
 * payload stays in the read's bytes): decoded from its frame at a position inside a larger read,
 * it encodes to the bytes of the original entry, and `detachEntry` gives it a payload of its own.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../src/broker/connection.js';
import { encodeStreamPublish, streamPublishPacket } from '../../src/broker/streams/stream-delivery.js';
import { encodePacket } from '../../src/codec/encoder.js';
import type { ProtocolVersion, Qos } from '../../src/codec/packets.js';
import { frameHeaderBytes } from '../../src/store/record-frame.js';
import { decodeEntryAt, detachEntry, entryFrameBytes, ReadEntry, type StreamEntry, writeEntryFrame } from '../../src/store/streams/stream-entry.js';
import { offsetOf, StreamHarness } from './stream-harness.js';

function reference(version: ProtocolVersion, stream: string, entry: StreamEntry, qos: Qos, packetId: number, subscriptionIds: number[], skipped: number): Uint8Array {
  const packet = streamPublishPacket({ version } as Connection, stream, entry, qos, subscriptionIds, skipped);
  if (packetId !== 0) packet.packetId = packetId;
  return encodePacket(packet, version);
}

describe('the direct encoding of stream deliveries', () => {
  it('writes the bytes the codec writes for the same delivery', () => {
    const delivery = fc.record({
      version: fc.constantFrom<ProtocolVersion>(3, 4, 5),
      stream: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
      offset: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.maxSafeNat()),
      timeMs: fc.integer({ min: 0, max: 2 ** 45 }),
      topic: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((topic) => !topic.includes('+') && !topic.includes('#') && !topic.includes('\u0000')),
      qos: fc.constantFrom<Qos>(0, 1),
      packetId: fc.integer({ min: 1, max: 0xffff }),
      payloadBytes: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 16_000, max: 20_000 })),
      subscriptionIds: fc.array(fc.integer({ min: 1, max: 268_435_455 }), { maxLength: 3 }),
      skipped: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 9 }), fc.maxSafeNat()),
    });
    fc.assert(
      fc.property(delivery, (d) => {
        const entry: StreamEntry = { offset: d.offset, timeMs: d.timeMs, topic: d.topic, qos: d.qos, properties: undefined, payload: new Uint8Array(d.payloadBytes).fill(0x61) };
        const packetId = d.qos === 0 ? 0 : d.packetId;
        const direct = encodeStreamPublish(d.version, d.stream, entry, d.qos, packetId, d.subscriptionIds, d.skipped);
        expect(Buffer.from(direct).equals(Buffer.from(reference(d.version, d.stream, entry, d.qos, packetId, d.subscriptionIds, d.skipped)))).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });

  it('encodes an entry decoded in place from a read exactly like the entry it was written from', () => {
    const delivery = fc.record({
      version: fc.constantFrom<ProtocolVersion>(4, 5),
      offset: fc.integer({ min: 0, max: 2 ** 40 }),
      topic: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((topic) => !topic.includes('+') && !topic.includes('#') && !topic.includes('\u0000')),
      qos: fc.constantFrom<Qos>(0, 1),
      payload: fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ minLength: 1_000, maxLength: 3_000 })),
      before: fc.integer({ min: 0, max: 50 }),
    });
    fc.assert(
      fc.property(delivery, (d) => {
        const entry: StreamEntry = { offset: d.offset, timeMs: 1_700_000_000_000, topic: d.topic, qos: d.qos, properties: undefined, payload: d.payload };
        const read = new Uint8Array(d.before + entryFrameBytes(entry) + 7).fill(0xee);
        writeEntryFrame(read, d.before, entry);
        const decoded = decodeEntryAt(d.offset, read, d.before + frameHeaderBytes, d.before + entryFrameBytes(entry));
        expect(decoded).toBeInstanceOf(ReadEntry);
        expect(decoded.source).toBe(read);
        const packetId = d.qos === 0 ? 0 : 9;
        const fromRead = encodeStreamPublish(d.version, 's', decoded, d.qos, packetId, [], 0);
        expect(Buffer.from(fromRead).equals(Buffer.from(encodeStreamPublish(d.version, 's', entry, d.qos, packetId, [], 0)))).toBe(true);
        const detached = detachEntry(decoded);
        expect(detached).not.toBeInstanceOf(ReadEntry);
        expect(Buffer.from(detached.payload).equals(Buffer.from(d.payload))).toBe(true);
        expect(detached.payload.buffer).not.toBe(read.buffer);
      }),
      { numRuns: 1_000 },
    );
  });

  it('refuses an entry with properties of its own (those take the general path)', () => {
    const entry: StreamEntry = { offset: 1, timeMs: 0, topic: 't', qos: 1, properties: { contentType: 'text/plain' }, payload: new Uint8Array(1) };
    expect(() => encodeStreamPublish(5, 's', entry, 1, 7, [], 0)).toThrow(/without properties/);
  });

  it("sends a reader's run of deliveries as one chunk, every packet intact and counted", () => {
    const harness = new StreamHarness();
    const publisher = harness.connect('publisher', 5);
    for (let index = 0; index < 100; index++) publisher.publish(`sensors/${index % 3}`, `m${index}`, 1);
    const reader = harness.connect('reader', 5);
    const chunks: number[] = [];
    const receive = reader.receiveBytes.bind(reader);
    reader.receiveBytes = (bytes: Uint8Array): void => {
      chunks.push(bytes.length);
      receive(bytes);
    };
    const sentBefore = harness.broker.stats.packetsSent;
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const publishes = reader.publishes();
    expect(publishes.map(offsetOf)).toEqual([...Array(100).keys()]);
    expect(publishes.map((publish) => Buffer.from(publish.payload).toString())).toEqual([...Array(100).keys()].map((index) => `m${index}`));
    // The SUBACK, then the hundred PUBLISHes in one chunk; the count is per packet.
    expect(chunks.length).toBe(2);
    expect(harness.broker.stats.packetsSent - sentBefore).toBe(101);
  });
});
