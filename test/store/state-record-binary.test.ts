/**
 * Proves the binary record bodies (state-record-binary.ts), which the log and snapshots take
 * (`encodeLogRecord`; records sent to another node keep the JSON forms), read back field for
 * field what the JSON form gives: for records of every kind with a binary form (fast-check), decoding the body the
 * encoder wrote equals decoding the record's JSON body under its old type, optional fields
 * included (a user name absent, null or a string; properties absent, empty or set; Node Buffers
 * as payloads). Values the binary form cannot hold (negative, fractional or huge numbers, lone
 * surrogates, U+0000, properties a stored message never forwards) must make the encoder fall back
 * to the JSON form under the old type, so the equality holds for them too. Records of valid
 * values must take the binary form, and be smaller for it. A body cut short or with unknown flag
 * bits fails with a readable error. A record planned for a snapshot (`planLogRecord`, its body
 * written into a view of a larger image) has the type and the body bytes `encodeLogRecord` gives.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Properties } from '../../src/codec/packets.js';
import { decodeStateRecord, encodeJsonRecord, encodeLogRecord, encodeStateRecord, planLogRecord, recordTypes, writePlannedBody } from '../../src/store/record-codec.js';
import { binaryRecordTypes, decodeBinaryRecord } from '../../src/store/state-record-binary.js';
import { applyRecord, createDurableState, type StateRecord, type StateRecordKind, snapshotRecords } from '../../src/store/state-store.js';

/** `record` planned and written at an odd offset of a larger image gives `type` and `body`. */
function expectPlannedAsEncoded(record: StateRecord, type: number, body: Uint8Array): void {
  const planned = planLogRecord(record);
  expect(planned.type).toBe(type);
  expect(planned.bodyBytes).toBe(body.length);
  const image = new Uint8Array(body.length + 10).fill(0xee);
  writePlannedBody(planned, image.subarray(3, 3 + body.length));
  expect(Buffer.from(image.subarray(3, 3 + body.length)).equals(Buffer.from(body))).toBe(true);
  expect(image[2]).toBe(0xee);
  expect(image[3 + body.length]).toBe(0xee);
}

/** Arbitraries of valid values (what the broker writes), or of any value when `wild`. */
function fields(wild: boolean) {
  const text = wild
    ? fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 8 }), fc.constant('a\u0000b'), fc.constant('\ud800'), fc.string({ maxLength: 300 }))
    : fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }), fc.string({ minLength: 130, maxLength: 300 }));
  const count = wild ? fc.oneof(fc.nat(), fc.maxSafeNat(), fc.integer({ min: -3, max: -1 }), fc.double(), fc.constant(2 ** 60)) : fc.oneof(fc.nat({ max: 200 }), fc.nat(), fc.maxSafeNat());
  const qos = wild ? fc.oneof(fc.constantFrom(0, 1, 2), fc.integer({ min: -1, max: 300 })) : fc.constantFrom(0, 1, 2);
  const username = fc.oneof(fc.constant(undefined), fc.constant(null), text);
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: 80 }),
    fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes)),
    fc.uint8Array({ minLength: 4000, maxLength: 5000 }),
  );
  const mqttText = fc.string({ unit: 'grapheme', maxLength: 10 });
  const forwarded: fc.Arbitrary<Properties> = fc.record(
    {
      payloadFormatIndicator: fc.constantFrom(0, 1),
      contentType: mqttText,
      responseTopic: mqttText,
      correlationData: fc.oneof(
        fc.uint8Array({ maxLength: 20 }),
        fc.uint8Array({ maxLength: 20 }).map((bytes) => Buffer.from(bytes)),
      ),
      userProperties: fc.array(fc.tuple(mqttText, mqttText), { minLength: 1, maxLength: 3 }),
    },
    { requiredKeys: [] },
  );
  const properties: fc.Arbitrary<Properties | undefined> = wild
    ? fc.oneof(
        fc.constant(undefined),
        forwarded,
        fc.constant<Properties>({ messageExpiryInterval: 5 }),
        fc.constant<Properties>({ userProperties: [] }),
        fc.constant<Properties>({ contentType: 'a\u0000' }),
      )
    : fc.oneof(fc.constant(undefined), forwarded);
  return { text, count, qos, username, payload, properties };
}

function recordOf(wild: boolean): fc.Arbitrary<StateRecord> {
  const { text, count, qos, username, payload, properties } = fields(wild);
  const claimRevision = fc.oneof(fc.constant(undefined), count);
  const session = (kind: 'session-created' | 'session-resumed') =>
    fc.record({ clientId: text, protocolVersion: fc.constantFrom(3, 4, 5), expiryIntervalSeconds: count, username, claimRevision }).map(({ username: name, claimRevision: revision, ...rest }) => {
      const record: StateRecord = { kind, ...rest } as StateRecord & { username?: string | null };
      if (name !== undefined) (record as { username?: string | null }).username = name;
      if (revision !== undefined) (record as { claimRevision?: number }).claimRevision = revision;
      return record;
    });
  const subscription = fc.record({ filter: text, qos, noLocal: fc.boolean(), retainAsPublished: fc.boolean(), retainHandling: fc.constantFrom(0, 1, 2), subscriptionId: count });
  const message = fc.record({ messageId: count, topic: text, payload, qos, retain: fc.boolean(), properties, createdAtMs: count, expiryAtMs: fc.oneof(fc.constant(null), count) });
  const phase = fc.constantFrom('queued', 'publish', 'pubrel');
  const packet = (kind: 'delivery-released' | 'delivery-completed' | 'incoming-qos2-recorded' | 'incoming-qos2-released') =>
    fc.record({ clientId: text, packetId: count }).map((rest) => ({ kind, ...rest }));
  const records: fc.Arbitrary<unknown>[] = [
    session('session-created'),
    session('session-resumed'),
    fc.record({ clientId: text, atMs: count, expiryIntervalSeconds: count }).map((rest) => ({ kind: 'session-disconnected', ...rest })),
    fc.record({ clientId: text }).map((rest) => ({ kind: 'session-deleted', ...rest })),
    fc.record({ clientId: text, nextPacketId: count, nextDeliverySequence: count }).map((rest) => ({ kind: 'session-counters', ...rest })),
    fc.record({ clientId: text, subscription }).map((rest) => ({ kind: 'subscription-added', ...rest })),
    fc.record({ clientId: text, filter: text }).map((rest) => ({ kind: 'subscription-removed', ...rest })),
    message.map((fieldsOf) => ({ kind: 'message-stored', message: fieldsOf })),
    fc.record({ messageId: count }).map((rest) => ({ kind: 'message-discarded', ...rest })),
    fc.record({ nextMessageId: count }).map((rest) => ({ kind: 'message-counter', ...rest })),
    fc.record({ topic: text, messageId: count }).map((rest) => ({ kind: 'retained-set', ...rest })),
    fc.record({ topic: text }).map((rest) => ({ kind: 'retained-cleared', ...rest })),
    fc
      .record({ clientId: text, sequence: count, messageId: count, qos, retain: fc.boolean(), subscriptionIds: fc.array(count, { maxLength: 4 }), packetId: count, phase })
      .map((rest) => ({ kind: 'delivery-queued', ...rest })),
    fc.record({ clientId: text, sequence: count, packetId: count }).map((rest) => ({ kind: 'delivery-sent', ...rest })),
    fc.record({ clientId: text, sequence: count, reason: text }).map((rest) => ({ kind: 'delivery-dropped', ...rest })),
    packet('delivery-released'),
    packet('delivery-completed'),
    packet('incoming-qos2-recorded'),
    packet('incoming-qos2-released'),
    fc.record({ clientId: text }).map((rest) => ({ kind: 'will-cleared', ...rest })),
  ];
  return fc.oneof(...records) as fc.Arbitrary<StateRecord>;
}

/** The record as the JSON form reads it back. */
function viaJson(record: StateRecord): StateRecord {
  return decodeStateRecord(recordTypes[record.kind], encodeJsonRecord(record));
}

describe('binary state records', () => {
  it('covers every kind it names, under types of their own below the group-end flag', () => {
    const types = Object.values(binaryRecordTypes);
    expect(new Set(types).size).toBe(types.length);
    for (const type of types) {
      expect(type).toBeGreaterThan(32);
      expect(type).toBeLessThan(0x80);
      expect(Object.values(recordTypes)).not.toContain(type);
    }
    expect(binaryRecordTypes['session-created']).toBe(33);
    expect(binaryRecordTypes['will-cleared']).toBe(52);
    // What is sent to another node (the cluster's session hand-over) keeps the JSON forms, which a
    // node of an earlier version reads.
    const created: StateRecord = { kind: 'session-created', clientId: 'c', protocolVersion: 5, expiryIntervalSeconds: 60, username: null };
    expect(encodeLogRecord(created).type).toBe(33);
    expect(encodeStateRecord(created).type).toBe(recordTypes['session-created']);
  });

  it('read back valid records in the binary form, field for field what the JSON form gives', () => {
    fc.assert(
      fc.property(recordOf(false), (record) => {
        const { type, body } = encodeLogRecord(record);
        expect(type).toBe(binaryRecordTypes[record.kind]);
        expect(body.length).toBeLessThan(encodeJsonRecord(record).length);
        expect(decodeStateRecord(type, body)).toStrictEqual(viaJson(record));
        expectPlannedAsEncoded(record, type, body);
      }),
      { numRuns: 1500 },
    );
    // A few seconds on an idle machine, several on a shared one.
  }, 30_000);

  it('read back any record field for field as the JSON form does, falling back to it for values the binary form cannot hold', () => {
    let fellBack = 0;
    fc.assert(
      fc.property(recordOf(true), (record) => {
        const { type, body } = encodeLogRecord(record);
        if (type === recordTypes[record.kind]) fellBack += 1;
        else expect(type).toBe(binaryRecordTypes[record.kind]);
        expect(decodeStateRecord(type, body)).toStrictEqual(viaJson(record));
        expectPlannedAsEncoded(record, type, body);
      }),
      { numRuns: 1500 },
    );
    // The wild values must have made the fallback happen, and not for every record.
    expect(fellBack).toBeGreaterThan(150);
    expect(fellBack).toBeLessThan(1350);
  }, 30_000);

  it('fail with a readable error on a body cut short, trailing bytes or unknown flags', () => {
    const record: StateRecord = {
      kind: 'subscription-added',
      clientId: 'client-1',
      subscription: { filter: 'a/+/c', qos: 1, noLocal: true, retainAsPublished: false, retainHandling: 1, subscriptionId: 300 },
    };
    const { type, body } = encodeLogRecord(record);
    expect(type).toBe(binaryRecordTypes['subscription-added']);
    for (let length = 0; length < body.length; length++) {
      expect(() => decodeBinaryRecord(type, body.subarray(0, length)), `cut at ${length}`).toThrow(/binary record/);
    }
    expect(() => decodeBinaryRecord(type, Uint8Array.of(...body, 0))).toThrow(/1 bytes past its fields/);
    const flags = body.slice();
    // clientId is 1 + 8 bytes, the filter 1 + 5, the QoS 1: the flags byte is the 17th.
    expect(flags[16]).toBe(1);
    flags[16] = 0x04;
    expect(() => decodeBinaryRecord(type, flags)).toThrow(/flags 0x4 unknown/);
    const session = encodeLogRecord({ kind: 'session-created', clientId: 'c', protocolVersion: 5, expiryIntervalSeconds: 0, username: null }).body.slice();
    session[0] = 3;
    expect(() => decodeStateRecord(binaryRecordTypes['session-created']!, session)).toThrow(/user name state/);
  });

  it("keep a session's claim revision (a cluster node's), in its record and its snapshot; a record without it, as earlier versions wrote, reads as unknown", () => {
    const created: StateRecord = { kind: 'session-created', clientId: 'c', protocolVersion: 5, expiryIntervalSeconds: 60, username: null, claimRevision: 300 };
    const { type, body } = encodeLogRecord(created);
    expect(type).toBe(33);
    expect(body[0]).toBe(0x04 | 1);
    expect(decodeStateRecord(type, body)).toStrictEqual(created);
    const resumed: StateRecord = { kind: 'session-resumed', clientId: 'c', protocolVersion: 5, expiryIntervalSeconds: 60, claimRevision: 301 };
    expect(decodeStateRecord(34, encodeLogRecord(resumed).body)).toStrictEqual(resumed);
    // An earlier version's record: no flag, nothing after the user name.
    const { claimRevision: _revision, ...old } = created;
    const oldBody = encodeLogRecord(old).body;
    expect(oldBody[0]).toBe(1);
    expect(decodeStateRecord(33, oldBody)).toStrictEqual(old);
    // Replayed and written again by a snapshot, the revision stays; a resume without one makes it unknown.
    const state = createDurableState();
    applyRecord(state, created);
    expect(state.sessions.get('c')?.claimRevision).toBe(300);
    expect(snapshotRecords(state).find((record) => record.kind === 'session-created')).toMatchObject({ claimRevision: 300 });
    applyRecord(state, resumed);
    expect(state.sessions.get('c')?.claimRevision).toBe(301);
    applyRecord(state, { kind: 'session-resumed', clientId: 'c', protocolVersion: 5, expiryIntervalSeconds: 60 });
    expect(state.sessions.get('c')?.claimRevision).toBeUndefined();
    expect(snapshotRecords(state).find((record) => record.kind === 'session-created')).not.toHaveProperty('claimRevision');
  });

  it('write the records of a persistent QoS 1 publish in a fraction of the JSON bytes', () => {
    const records: StateRecord[] = [
      {
        kind: 'message-stored',
        message: { messageId: 123_456, topic: 'bench/append/7', payload: new Uint8Array(64), qos: 1, retain: false, properties: undefined, createdAtMs: 1_234_567, expiryAtMs: null },
      },
      { kind: 'delivery-queued', clientId: 'bench-subscriber-0001', sequence: 98_765, messageId: 123_456, qos: 1, retain: false, subscriptionIds: [], packetId: 0, phase: 'queued' },
      { kind: 'delivery-sent', clientId: 'bench-subscriber-0001', sequence: 98_765, packetId: 4321 },
      { kind: 'delivery-completed', clientId: 'bench-subscriber-0001', packetId: 4321 },
    ];
    const sizes = records.map((record) => ({ kind: record.kind as StateRecordKind, json: encodeJsonRecord(record).length, binary: encodeLogRecord(record).body.length }));
    expect(sizes.map((size) => size.binary)).toEqual([64 + 3 + 15 + 1 + 1 + 3, 22 + 3 + 3 + 1 + 1 + 1 + 1 + 1, 22 + 3 + 2, 22 + 2]);
    for (const size of sizes) expect(size.binary * 2, size.kind).toBeLessThan(size.json);
  });
});
