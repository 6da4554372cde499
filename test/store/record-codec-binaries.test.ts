/**
 * Proves the record codec's binary lifting (record-codec.ts `liftBinaries`, which replaced a
 * JSON.stringify replacer on the hot path) writes exactly the bytes the replacer wrote: for
 * records of any shape (fast-check: nested objects and arrays, Uint8Arrays and Node Buffers at any
 * depth, empty ones, undefined fields), the body equals the one built by the former encoder, kept
 * here as the reference; and that lifting never changes the record it was given.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeStateRecord, encodeJsonRecord, encodeStateRecord } from '../../src/store/record-codec.js';
import type { StateRecord } from '../../src/store/state-store.js';

/** The encoder as it was before binaries were lifted out ahead of JSON.stringify. */
function referenceEncode(record: StateRecord): Uint8Array {
  const binaries: Uint8Array[] = [];
  const json = JSON.stringify(record, function (this: Record<string, unknown>, key: string, value: unknown) {
    const original = this[key];
    if (original instanceof Uint8Array) {
      binaries.push(original);
      return { $binary: binaries.length - 1 };
    }
    return value;
  });
  const jsonBytes = new TextEncoder().encode(json);
  let size = 4 + jsonBytes.length;
  for (const binary of binaries) size += 4 + binary.length;
  const body = new Uint8Array(size);
  const view = new DataView(body.buffer);
  view.setUint32(0, jsonBytes.length, true);
  body.set(jsonBytes, 4);
  let offset = 4 + jsonBytes.length;
  for (const binary of binaries) {
    view.setUint32(offset, binary.length, true);
    body.set(binary, offset + 4);
    offset += 4 + binary.length;
  }
  return body;
}

const binary = fc.oneof(
  fc.uint8Array({ maxLength: 80 }),
  fc.uint8Array({ maxLength: 80 }).map((bytes) => Buffer.from(bytes)),
);
const { value } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    binary,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 4 }),
  ),
}));

describe('record codec binaries', () => {
  it('encodes any record shape to the bytes the former replacer-based encoder wrote', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 8 }), value, { maxKeys: 6 }), binary, (fields, payload) => {
        const record = { kind: 'stream-appended', timeMs: 1, topic: 't', qos: 1, payload, entries: [{ stream: 's', offset: 0 }], ...fields, extra: fields } as unknown as StateRecord;
        const before = JSON.stringify(record);
        // The generic (JSON) body, which earlier versions wrote for stream-appended too.
        const body = encodeJsonRecord(record);
        expect(Buffer.from(body).equals(Buffer.from(referenceEncode(record)))).toBe(true);
        // The record handed in is left as it was (lifting copies what it changes).
        expect(JSON.stringify(record)).toBe(before);
      }),
      { numRuns: 500 },
    );
  });

  it('writes any text (non-ASCII, lone surrogates) as the former encoder did, each body its own bytes', () => {
    // The body is measured and written in place (utf8Length, writeUtf8) into a view of the
    // encoder's slab, where the former encoder used TextEncoder and an array of its own.
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }), fc.uint8Array({ maxLength: 300 }), (topic, clientId, payload) => {
        const record = { kind: 'message-stored', messageId: 7, topic, clientId, qos: 1, payload } as unknown as StateRecord;
        const expected = referenceEncode(record);
        const first = encodeJsonRecord(record);
        const second = encodeJsonRecord(record);
        expect(Buffer.from(first).equals(Buffer.from(expected))).toBe(true);
        // Two bodies never share bytes: writing one leaves the other as it was.
        first.fill(0xee);
        expect(Buffer.from(second).equals(Buffer.from(expected))).toBe(true);
      }),
      { numRuns: 300 },
    );
    // Generating grapheme strings is slow: about 1 s alone, past vitest's 5 s default at a load average of 8.
  }, 30_000);

  it('round-trips a stream append with properties holding binary correlation data', () => {
    const record = {
      kind: 'stream-appended',
      timeMs: 1_767_225_600_000,
      topic: 'sensors/a',
      qos: 1,
      payload: Buffer.from('payload'),
      properties: { correlationData: new Uint8Array([1, 2, 3]), userProperties: [['k', 'v']] },
      entries: [{ stream: 'sensors', offset: 41 }],
    } as StateRecord;
    const { type, body } = encodeStateRecord(record);
    const decoded = decodeStateRecord(type, body) as Extract<StateRecord, { kind: 'stream-appended' }>;
    expect(Buffer.from(decoded.payload).toString()).toBe('payload');
    expect([...decoded.properties!.correlationData!]).toEqual([1, 2, 3]);
    expect(decoded.properties!.userProperties).toEqual([['k', 'v']]);
    expect(decoded.entries).toEqual([{ stream: 'sensors', offset: 41 }]);
  });
});
