/**
 * Proves the CRC-32C implementation against published check values and against a bit-by-bit
 * reference on random inputs, including incremental (chunked) computation, and views at any
 * offset of a larger buffer (the word loop reads the buffer's aligned words, whatever the view).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/store/crc32c.js';

function referenceCrc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('crc32c', () => {
  it('matches the standard check values', () => {
    expect(crc32c(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it('agrees with a bit-by-bit reference, whole and in two pieces', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (bytes, cut) => {
        const split = bytes.length === 0 ? 0 : cut % bytes.length;
        const whole = crc32c(bytes);
        expect(whole).toBe(referenceCrc32c(bytes));
        expect(crc32c(bytes, crc32c(bytes, 0, 0, split), split)).toBe(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with the reference on views at any offset of shared buffers, long enough for the word loop', () => {
    const buffers = [new ArrayBuffer(4096), new ArrayBuffer(4099)];
    fc.assert(
      fc.property(fc.nat(1), fc.nat(4095), fc.nat(1200), fc.nat(), fc.uint8Array({ minLength: 64, maxLength: 64 }), (which, offset, length, cut, seed) => {
        const buffer = buffers[which]!;
        const all = new Uint8Array(buffer);
        for (let index = 0; index < all.length; index++) all[index] = seed[index % 64]! ^ (index * 31);
        const view = new Uint8Array(buffer, Math.min(offset, buffer.byteLength), Math.min(length, buffer.byteLength - Math.min(offset, buffer.byteLength)));
        const whole = crc32c(view);
        expect(whole).toBe(referenceCrc32c(view));
        const split = view.length === 0 ? 0 : cut % view.length;
        expect(crc32c(view, crc32c(view, 0, 0, split), split)).toBe(whole);
      }),
      { numRuns: 300 },
    );
  });
});
