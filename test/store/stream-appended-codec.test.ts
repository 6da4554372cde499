/**
 * Proves the binary form of the `stream-appended` record (store/stream-appended-codec.ts):
 * - any record the broker can commit (fast-check: several streams, offsets up to 2^53 - 1, any
 *   QoS, UTF-8 topics, payloads of any size, forwarded properties present, empty or absent; an
 *   empty list of user properties is never forwarded, message.ts `forwardedProperties`)
 *   encodes as type 32 and decodes to an equal record, and decodes to the same record as its old
 *   JSON form (type 24), which is still read;
 * - the end of the record's bytes is the entry's segment frame body: a frame written from them is
 *   byte for byte the frame encoded from the entry's fields;
 * - it is smaller than the JSON form (the figure the benchmark's log bytes per message show);
 * - a damaged body (cut anywhere, unknown flags, no stream) is refused with a readable error,
 *   never decoded into something else.
 * Recovery of a log written by an earlier version (type 24 records) is in
 * test/streams/stream-appended-old-format.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Properties, Qos } from '../../src/codec/packets.js';
import { decodeStateRecord, encodeJsonRecord, encodeStateRecord, recordTypes } from '../../src/store/record-codec.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { streamAppendedBinaryType, streamAppendedEntryBodyStart } from '../../src/store/stream-appended-codec.js';
import { entryFrameBytes, writeEntryFrame } from '../../src/store/streams/stream-entry.js';

type StreamAppended = Extract<StateRecord, { kind: 'stream-appended' }>;

const streamName = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const topic = fc
  .array(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }).filter((level) => !/[#+/]/.test(level) && !level.includes('\u0000')),
    { minLength: 1, maxLength: 4 },
  )
  .map((levels) => levels.join('/'));
const properties: fc.Arbitrary<Properties | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constant({}),
  fc.record(
    {
      payloadFormatIndicator: fc.constantFrom(0, 1),
      contentType: fc.string({ maxLength: 12 }).filter((text) => !text.includes('\u0000')),
      responseTopic: topic,
      correlationData: fc.uint8Array({ maxLength: 16 }),
      userProperties: fc.array(fc.tuple(fc.stringMatching(/^[a-z]{0,6}$/), fc.stringMatching(/^[a-z0-9 ]{0,8}$/)), { minLength: 1, maxLength: 3 }),
    },
    { requiredKeys: [] },
  ) as fc.Arbitrary<Properties>,
);
const record: fc.Arbitrary<StreamAppended> = fc
  .record({
    timeMs: fc.integer({ min: 0, max: 2 ** 45 }),
    topic,
    qos: fc.constantFrom<Qos>(0, 1, 2),
    payload: fc.uint8Array({ maxLength: 300 }),
    names: fc.uniqueArray(streamName, { minLength: 1, maxLength: 4 }),
    offsets: fc.array(fc.oneof(fc.nat(1000), fc.constant(Number.MAX_SAFE_INTEGER)), { minLength: 4, maxLength: 4 }),
    properties,
  })
  .map(({ timeMs, topic, qos, payload, names, offsets, properties }) => {
    const appended: StreamAppended = { kind: 'stream-appended', timeMs, topic, qos, payload, entries: names.map((stream, index) => ({ stream, offset: offsets[index]! })) };
    if (properties !== undefined) appended.properties = properties;
    return appended;
  });

/** The record as plain data, so that a payload's class (Buffer or Uint8Array) does not matter. */
function plain(value: StateRecord): unknown {
  return JSON.parse(JSON.stringify(value, (_key, field: unknown) => (field instanceof Uint8Array ? [...field] : field)));
}

describe('stream-appended binary record', () => {
  it('round-trips every committable record, and its old JSON form decodes to the same record', () => {
    fc.assert(
      fc.property(record, (appended) => {
        const { type, body } = encodeStateRecord(appended);
        expect(type).toBe(streamAppendedBinaryType);
        const decoded = decodeStateRecord(type, body);
        expect(plain(decoded)).toEqual(plain(appended));
        expect('properties' in decoded).toBe(appended.properties !== undefined);
        const old = decodeStateRecord(recordTypes['stream-appended'], encodeJsonRecord(appended));
        expect(plain(old)).toEqual(plain(decoded));
      }),
      { numRuns: 400 },
    );
  });

  it('ends with the entry body its segment frame holds, so the frame is written from those bytes', () => {
    fc.assert(
      fc.property(record, (appended) => {
        const { body } = encodeStateRecord(appended);
        const entryBody = body.subarray(streamAppendedEntryBodyStart(body));
        const entry = { offset: appended.entries[0]!.offset % 2 ** 40, timeMs: appended.timeMs, topic: appended.topic, qos: appended.qos, properties: appended.properties, payload: appended.payload };
        const frameBytes = entryFrameBytes(entry);
        expect(frameBytes).toBe(17 + entryBody.length);
        const fromFields = new Uint8Array(frameBytes);
        const fromRecord = new Uint8Array(frameBytes);
        expect(writeEntryFrame(fromFields, 0, entry)).toBe(frameBytes);
        expect(writeEntryFrame(fromRecord, 0, entry, entryBody)).toBe(frameBytes);
        expect(Buffer.from(fromRecord).equals(Buffer.from(fromFields))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('is about half the size of the JSON form for a small message', () => {
    const appended: StreamAppended = {
      kind: 'stream-appended',
      timeMs: 1_767_225_600_000,
      topic: 'bench/append/0',
      qos: 1,
      payload: new Uint8Array(64).fill(7),
      entries: [{ stream: 'append-0', offset: 123_456 }],
    };
    const binary = encodeStateRecord(appended).body.length;
    const json = encodeJsonRecord(appended).length;
    // 2 + (1 + 8 + 8) + 1 flags + (8 + 1 + 2 + 14 + 1 + 64) entry body.
    expect(binary).toBe(110);
    expect(json).toBeGreaterThan(200);
  });

  it('refuses a damaged body with a readable error', () => {
    const appended: StreamAppended = {
      kind: 'stream-appended',
      timeMs: 5,
      topic: 'a/b',
      qos: 1,
      payload: new Uint8Array([1, 2, 3]),
      properties: { contentType: 'text/plain' },
      entries: [
        { stream: 'one', offset: 1 },
        { stream: 'two', offset: 2 },
      ],
    };
    const { type, body } = encodeStateRecord(appended);
    const entryStart = streamAppendedEntryBodyStart(body);
    // Cut anywhere before the payload: never a record (a cut inside the payload is the checksum's to catch).
    for (let length = 0; length < body.length - appended.payload.length; length++) {
      expect(() => decodeStateRecord(type, body.subarray(0, length)), `cut at ${length}`).toThrow(/stream/);
    }
    const flags = body.slice();
    flags[entryStart - 1] = 0x02;
    expect(() => decodeStateRecord(type, flags)).toThrow(/flags 0x2 unknown/);
    const noFlag = body.slice();
    noFlag[entryStart - 1] = 0;
    expect(() => decodeStateRecord(type, noFlag)).toThrow(/properties where its flags say none/);
    const noStream = body.slice();
    noStream[0] = 0;
    noStream[1] = 0;
    expect(() => decodeStateRecord(type, noStream)).toThrow(/names no stream/);
  });
});
