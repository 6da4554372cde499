/**
 * Proves the bucket form of a large hand-over answer (src/cluster/handover-parts.ts): an answer
 * that fits one value goes whole, as before parts; a larger one is cut into parts within the
 * value bound and a head (the same puts for the same answer, as a replay after a restart needs),
 * and comes back byte for byte only when every part the head names is there and agrees with it: a missing part, a part of another count, a part of another answer
 * (a stale one under the same answer key) and a damaged part all leave it unassembled. A node
 * from before parts decodes neither a head nor a part as a state.
 */
import { describe, expect, it } from 'vitest';
import { answerKeyOfPart, answerLayout, answerPut, answerPutCount, assemble, decodeHead, decodePart, partKey, valueBytesMaxOf } from '../../src/cluster/handover-parts.js';
import { decodeHandoverState, encodeHandoverState, type HandoverState } from '../../src/cluster/session-handover.js';

const answerKey = 'YzE.42';

function stateOf(bytes: number): Uint8Array {
  const state = new Uint8Array(bytes);
  for (let index = 0; index < bytes; index++) state[index] = (index * 31 + 7) & 0xff;
  return state;
}

/** Whether `assembled` holds `expected`'s bytes (compared as buffers: fast on megabytes). */
function same(assembled: Uint8Array | null, expected: Uint8Array): boolean {
  return assembled !== null && Buffer.from(assembled.buffer, assembled.byteOffset, assembled.length).equals(Buffer.from(expected.buffer, expected.byteOffset, expected.length));
}

/** Every put of an answer, as the watch would deliver them: parts by key, then the head. */
function putsOf(state: Uint8Array, valueBytesMax: number): { parts: Map<string, Uint8Array>; head: Uint8Array } {
  const layout = answerLayout(state, 'n2', valueBytesMax);
  const parts = new Map<string, Uint8Array>();
  for (let index = 0; index < layout.parts; index++) {
    const put = answerPut(answerKey, layout, state, index);
    parts.set(put.key, put.value);
  }
  const head = answerPut(answerKey, layout, state, layout.parts);
  expect(head.key).toBe(answerKey);
  return { parts, head: head.value };
}

describe('hand-over answers in parts', () => {
  it('puts an answer that fits one value whole, under its answer key', () => {
    const state = stateOf(1_000);
    const layout = answerLayout(state, 'n2', 1_000);
    expect(layout.parts).toBe(0);
    expect(answerPutCount(layout)).toBe(1);
    expect(answerPut(answerKey, layout, state, 0)).toEqual({ key: answerKey, value: state });
  });

  it('cuts a larger answer into parts within the bound and a head, and assembles it byte for byte', () => {
    const valueBytesMax = valueBytesMaxOf(64 * 1024);
    const state = stateOf(5 * 1024 * 1024 + 17);
    // A 64 KiB link: 5 MiB in about 80 parts.
    const layout = answerLayout(state, 'n2', valueBytesMax);
    expect(layout.parts).toBe(Math.ceil(state.length / layout.bodyBytesMax));
    expect(answerPutCount(layout)).toBe(layout.parts + 1);
    const { parts, head } = putsOf(state, valueBytesMax);
    expect(parts.size).toBe(layout.parts);
    for (const [key, value] of parts) {
      expect(value.length).toBeLessThanOrEqual(valueBytesMax);
      expect(answerKeyOfPart(key)).toBe(answerKey);
      expect(decodePart(value)?.recipient).toBe('n2');
    }
    expect(answerKeyOfPart(answerKey)).toBeNull();
    const decoded = decodeHead(head);
    expect(decoded).toEqual({ recipient: 'n2', checksum: layout.checksum, count: layout.parts, stateBytes: state.length });
    expect(same(assemble(answerKey, decoded!, parts), state)).toBe(true);
  });

  it('lays the same answer out into the same puts (a replay after a restart puts the same bytes under the same keys)', () => {
    const state = stateOf(300_000);
    const first = putsOf(state, 100_000);
    const again = putsOf(new Uint8Array(state), 100_000);
    expect([...again.parts.keys()]).toEqual([...first.parts.keys()]);
    for (const [key, value] of first.parts) expect(Buffer.from(again.parts.get(key)!).equals(Buffer.from(value))).toBe(true);
    expect(Buffer.from(again.head).equals(Buffer.from(first.head))).toBe(true);
  });

  it('leaves an answer unassembled while a part is missing', () => {
    const state = stateOf(300_000);
    const { parts, head } = putsOf(state, 100_000);
    const partial = new Map(parts);
    partial.delete([...parts.keys()][1]!);
    expect(assemble(answerKey, decodeHead(head)!, partial)).toBeNull();
  });

  it('refuses a part whose count or index does not agree with the head', () => {
    const state = stateOf(300_000);
    const { parts, head } = putsOf(state, 100_000);
    const decoded = decodeHead(head)!;
    // The head claims one part more than was put: the last is missing.
    expect(assemble(answerKey, { ...decoded, count: decoded.count + 1 }, parts)).toBeNull();
    // A part moved under another index's key.
    const keys = [...parts.keys()];
    const swapped = new Map(parts);
    swapped.set(keys[0]!, parts.get(keys[1]!)!);
    expect(assemble(answerKey, decoded, swapped)).toBeNull();
  });

  it('never takes a stale part of another answer under the same answer key', () => {
    const first = stateOf(300_000);
    const second = stateOf(300_000).map((byte) => byte ^ 0x5a);
    const stale = putsOf(first, 100_000);
    const fresh = putsOf(second, 100_000);
    // The other answer's parts are under other keys: with only them, nothing assembles.
    for (const key of stale.parts.keys()) expect(fresh.parts.has(key)).toBe(false);
    expect(assemble(answerKey, decodeHead(fresh.head)!, stale.parts)).toBeNull();
    // A stale part's value put under a fresh part's key does not agree with that key.
    const mixed = new Map(fresh.parts);
    const firstKey = [...fresh.parts.keys()][0]!;
    mixed.set(firstKey, [...stale.parts.values()][0]!);
    expect(assemble(answerKey, decodeHead(fresh.head)!, mixed)).toBeNull();
    // Both sets together: the head picks its own.
    expect(same(assemble(answerKey, decodeHead(fresh.head)!, new Map([...stale.parts, ...fresh.parts])), second)).toBe(true);
  });

  it('refuses a damaged part (the checksum of the whole fails)', () => {
    const state = stateOf(300_000);
    const { parts, head } = putsOf(state, 100_000);
    const key = [...parts.keys()][2]!;
    const damaged = new Uint8Array(parts.get(key)!);
    damaged[damaged.length - 1] ^= 1;
    expect(assemble(answerKey, decodeHead(head)!, new Map(parts).set(key, damaged))).toBeNull();
    // A part cut short leaves the whole short.
    expect(assemble(answerKey, decodeHead(head)!, new Map(parts).set(key, parts.get(key)!.subarray(0, 100)))).toBeNull();
  });

  it('gives a node from before parts nothing it could adopt', () => {
    const state = encodeHandoverState({
      header: { client: 'c1', from: 'n1', to: 'n2', sequence: 42, nowMs: 0, cut: '1-1', willInMs: null, none: false },
      records: [],
    } as unknown as HandoverState);
    const padded = new Uint8Array(300_000);
    padded.set(state);
    const { parts, head } = putsOf(padded, 100_000);
    // That node's decoder is this one's: a state's header is never empty, a head's and a part's is.
    expect(decodeHandoverState(head)).toBeNull();
    for (const value of parts.values()) expect(decodeHandoverState(value)).toBeNull();
    expect(decodeHead(state)).toBeNull();
    expect(decodePart(state)).toBeNull();
    expect(partKey(answerKey, 0xabc, 3, 1)).toBe(`${answerKey}.00000abc-3-1`);
  });
});
