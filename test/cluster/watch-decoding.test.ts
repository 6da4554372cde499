/**
 * Proves that the fast paths a watch's replay takes for every key decode exactly what the general
 * rules decode: a bucket key back to its client id or topic (retained-entries.ts
 * topicOfRetainedKey, ASCII read char for char with the key's spelling checked while decoding),
 * and an owner value back to its owner (session-registry.ts decodeOwner, the form of a claim
 * without a hand-over read without JSON.parse). Each is compared, on generated inputs that hit
 * both the fast path and every way out of it, with the rule as it was written before the fast
 * paths (kept here as the reference): decode, then encode again and compare.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { retainedKey, topicOfRetainedKey } from '../../src/cluster/retained-entries.js';
import { decodeOwner, encodeOwner } from '../../src/cluster/session-registry.js';

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const fatalDecoder = new TextDecoder('utf-8', { fatal: true });

/** topicOfRetainedKey as written before its fast path. */
function referenceTopic(key: string): string | null {
  if (key.length % 4 === 1) return null;
  const bytes: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const char of key) {
    const value = alphabet.indexOf(char);
    if (value < 0) return null;
    buffer = (buffer << 6) | value;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((buffer >> bits) & 0xff);
    }
  }
  if (bytes.length === 0) return null;
  try {
    const topic = fatalDecoder.decode(new Uint8Array(bytes));
    return retainedKey(topic) === key ? topic : null;
  } catch {
    return null;
  }
}

/** decodeOwner as written before its fast path. */
function referenceOwner(value: Uint8Array): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fatalDecoder.decode(value));
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const { node, generation, handoverFrom, markerRevision } = parsed as Record<string, unknown>;
  if (typeof node !== 'string' || node.length === 0 || typeof generation !== 'string') return null;
  if (typeof handoverFrom !== 'string' || handoverFrom.length === 0) return { node, generation };
  if (typeof markerRevision === 'number' && Number.isSafeInteger(markerRevision) && markerRevision > 0) return { node, generation, handoverFrom, markerRevision };
  return { node, generation, handoverFrom };
}

const keyText = fc.oneof(
  // Keys the encoding makes, from any text (ASCII short and long, other planes, NUL, a byte-order mark).
  fc.string({ unit: 'binary', maxLength: 40 }).map(retainedKey),
  fc.string({ maxLength: 30 }).map(retainedKey),
  fc.constantFrom('\uFEFFtopic', '\uFEFF', 'a\u0000b', 'client-12345678901').map(retainedKey),
  // Any spelling over the alphabet: non-zero trailing bits, lengths of 4n+1, bytes that are not UTF-8.
  fc.string({ unit: fc.constantFrom(...alphabet), maxLength: 40 }),
  // Characters outside it.
  fc.string({ maxLength: 12 }),
);

describe('a watched key decodes as the general rule decodes it', () => {
  test('topicOfRetainedKey equals decode-then-encode-again on every key', () => {
    fc.assert(
      fc.property(keyText, (key) => {
        expect(topicOfRetainedKey(key)).toBe(referenceTopic(key));
      }),
      { numRuns: 20_000 },
    );
  });

  test('a client id of 13 or more ASCII characters and one with a byte-order mark', () => {
    expect(topicOfRetainedKey(retainedKey('client-1234567890123'))).toBe('client-1234567890123');
    // The decoder strips a leading byte-order mark: that key is not one the encoding makes.
    expect(topicOfRetainedKey(retainedKey('\uFEFFx'))).toBeNull();
  });
});

const encoder = new TextEncoder();
const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength: 40 });
const ownerValue = fc.oneof(
  // What claims write, with and without a hand-over, node names of any length.
  fc.record({ node: printable, generation: printable }).map((owner) => encodeOwner(owner)),
  fc.record({ node: printable, generation: printable, handoverFrom: printable }).map((owner) => encodeOwner(owner)),
  fc.record({ node: printable, generation: printable, handoverFrom: printable, markerRevision: fc.integer({ min: 1 }) }).map((owner) => encodeOwner(owner)),
  // Near misses of the plain form: other strings, escapes, extra or reordered fields, trailing bytes.
  fc.record({ node: fc.string({ unit: 'binary', maxLength: 8 }), generation: fc.string({ unit: 'binary', maxLength: 8 }) }).map((owner) => encoder.encode(JSON.stringify(owner))),
  fc.tuple(printable, printable, fc.constantFrom('', ' ', '\n', 'x', '}', ',"extra":1')).map(([node, generation, tail]) => encoder.encode(`{"node":"${node}","generation":"${generation}"${tail}}`)),
  fc.tuple(printable, printable).map(([node, generation]) => encoder.encode(`{"generation":"${generation}","node":"${node}"}`)),
  fc.uint8Array({ maxLength: 48 }),
);

describe('a watched owner value decodes as JSON.parse decodes it', () => {
  test('decodeOwner equals the JSON rule on every value', () => {
    fc.assert(
      fc.property(ownerValue, (value) => {
        expect(decodeOwner(value)).toEqual(referenceOwner(value));
      }),
      { numRuns: 20_000 },
    );
  });

  test('the plain form: a node of 13 or more characters, an empty node, an escape', () => {
    expect(decodeOwner(encoder.encode('{"node":"node-with-a-long-name","generation":"7.12"}'))).toEqual({ node: 'node-with-a-long-name', generation: '7.12' });
    expect(decodeOwner(encoder.encode('{"node":"","generation":"7.12"}'))).toBeNull();
    expect(decodeOwner(encoder.encode('{"node":"n\\u0030","generation":"7.12"}'))).toEqual({ node: 'n0', generation: '7.12' });
  });
});
