/**
 * Proves the batch format of durable hand-offs (src/cluster/handoff-batch.ts): what is encoded
 * decodes to the same messages in the same order (subjects and headers with any UTF-8, empty and
 * binary payloads), the size measured beforehand is exact, and a payload that is not a whole
 * batch of this version (truncated, trailing bytes, another version, fewer than two messages,
 * ill-formed UTF-8) is refused as null rather than read in part.
 */
import { describe, expect, it } from 'vitest';
import { type BatchEntry, batchEntryBytes, decodeBatch, encodeBatch, handoffBatchMessagesMax } from '../../src/cluster/handoff-batch.js';

const entries: BatchEntry[] = [
  { subject: '$KEEL.handoff.a.b', headers: { 'Keel-Origin': 'n1', 'Keel-Qos': '1', 'Keel-Seq': '3-7' }, payload: new Uint8Array([1, 2, 3]) },
  { subject: '$KEEL.handoff.été.//', headers: { 'Keel-Origin': 'n1', 'Keel-User-Properties': '[["ключ","値"]]' }, payload: new Uint8Array(0) },
  { subject: '$KEEL.handoff.x', headers: {}, payload: new Uint8Array([0, 255, 0, 10, 13]) },
];

function encoded(list: readonly BatchEntry[]): Uint8Array {
  return encodeBatch(
    list,
    list.reduce((sum, entry) => sum + batchEntryBytes(entry), 0),
  );
}

describe('hand-off batches', () => {
  it('decodes what it encodes, in order, with the size measured beforehand', () => {
    const bytes = encoded(entries);
    expect(decodeBatch(bytes)).toEqual(entries);
    // Decoding a view into a larger buffer reads only the view.
    const padded = new Uint8Array(bytes.length + 8);
    padded.set(bytes, 4);
    expect(decodeBatch(padded.subarray(4, 4 + bytes.length))).toEqual(entries);
  });

  it('refuses truncated, padded, foreign and ill-formed payloads', () => {
    const bytes = encoded(entries);
    for (let cut = 0; cut < bytes.length; cut += 7) expect(decodeBatch(bytes.subarray(0, cut))).toBeNull();
    expect(decodeBatch(bytes.subarray(0, bytes.length - 1))).toBeNull();
    expect(decodeBatch(new Uint8Array([...bytes, 0]))).toBeNull();
    const otherVersion = bytes.slice();
    otherVersion[0] = 2;
    expect(decodeBatch(otherVersion)).toBeNull();
    const one = encoded(entries.slice(0, 2));
    new DataView(one.buffer).setUint32(1, 1);
    expect(decodeBatch(one)).toBeNull();
    const invalid = encoded([
      { subject: 'ab', headers: {}, payload: new Uint8Array(0) },
      { subject: 'cd', headers: {}, payload: new Uint8Array(0) },
    ]);
    // The first subject's bytes start after version, count and its length: make them ill-formed UTF-8.
    invalid[9] = 0xc0;
    expect(decodeBatch(invalid)).toBeNull();
    expect(decodeBatch(new TextEncoder().encode('a NATS-native payload'))).toBeNull();
  });

  it('asserts its bounds when encoding', () => {
    expect(() => encoded(entries.slice(0, 1))).toThrow();
    const many = Array.from({ length: handoffBatchMessagesMax + 1 }, () => entries[2]!);
    expect(() => encoded(many)).toThrow();
  });
});
