/**
 * Proves that the simulated disk's unsynced writes apply what was written, though a write keeps no
 * copy of its bytes while the visible image holds them, and the two images share a buffer after a
 * sync of a file written whole and after a crash: random writes (appends, overwrites of
 * unsynced bytes, writes past the end), truncations, syncs and crashes on one file, against a
 * reference that copies every write's bytes at once (as the disk did before), fed the random
 * numbers the disk drew in each crash, and with the caller's buffer overwritten after each write (it belongs to the
 * caller again). After every step both hold the same visible bytes, and after a crash the same
 * durable ones (a tear that keeps an odd count of a write that grew the file leaves it grown to
 * the write's end, in zeros).
 */
import fc from 'fast-check';
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { SimulatedDisk } from '../../sim/simulated-disk.js';

type Step = { kind: 'write'; offset: number; length: number; fill: number } | { kind: 'truncate'; length: number } | { kind: 'sync' } | { kind: 'crash' };

/** The disk's model of one file with a copy of every unsynced write, and no directory. */
class ReferenceFile {
  visible: Uint8Array = new Uint8Array(0);
  durable: Uint8Array = new Uint8Array(0);
  unsynced: ({ kind: 'write'; offset: number; bytes: Uint8Array } | { kind: 'truncate'; length: number })[] = [];

  write(offset: number, bytes: Uint8Array): void {
    this.visible = applied(this.visible, offset, bytes);
    this.unsynced.push({ kind: 'write', offset, bytes: bytes.slice() });
  }

  truncate(length: number): void {
    this.visible = resized(this.visible, length);
    this.unsynced.push({ kind: 'truncate', length });
  }

  sync(): void {
    for (const pending of this.unsynced) this.durable = pending.kind === 'truncate' ? resized(this.durable, pending.length) : applied(this.durable, pending.offset, pending.bytes);
    this.unsynced = [];
  }

  /** `draws`: what the disk drew in its crash, in order. */
  crash(tornWriteRate: number, draws: number[]): void {
    let drawn = 0;
    const random = (): number => draws[drawn++]!;
    for (const pending of this.unsynced) {
      const roll = random();
      if (roll < 0.5) continue;
      if (pending.kind === 'truncate') this.durable = resized(this.durable, pending.length);
      else {
        const kept = roll < 0.5 + tornWriteRate * 0.5 ? Math.floor(random() * pending.bytes.length) : pending.bytes.length;
        this.durable = applied(this.durable, pending.offset, pending.bytes.subarray(0, kept));
        // A tear with an odd count kept leaves a file the write grew at the write's end, in zeros.
        const end = pending.offset + pending.bytes.length;
        if (kept < pending.bytes.length && kept % 2 === 1 && this.durable.length < end) this.durable = resized(this.durable, end);
      }
    }
    this.visible = this.durable.slice();
    this.unsynced = [];
    // The disk's last draw is how many directory operations the crash keeps.
    expect(drawn).toBe(draws.length - 1);
  }
}

function resized(bytes: Uint8Array, length: number): Uint8Array {
  const result = new Uint8Array(length);
  result.set(bytes.subarray(0, Math.min(length, bytes.length)));
  return result;
}

function applied(image: Uint8Array, offset: number, bytes: Uint8Array): Uint8Array {
  const result = image.length < offset + bytes.length ? resized(image, offset + bytes.length) : image.slice();
  result.set(bytes, offset);
  return result;
}

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('write' as const), offset: fc.nat(9000), length: fc.integer({ min: 1, max: 5000 }), fill: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), length: fc.nat(12000) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'sync' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'crash' as const }) },
);

describe('simulated disk', () => {
  it('applies at a sync and a crash exactly the bytes each unsynced write wrote', () => {
    const tornWriteRate = 0.5;
    fc.assert(
      fc.property(fc.string(), fc.array(stepArbitrary, { maxLength: 40 }), (seed, steps) => {
        const source = seedrandom(seed);
        const draws: number[] = [];
        const random = (): number => {
          const value = source();
          draws.push(value);
          return value;
        };
        const disk = new SimulatedDisk(random, { ioErrorRate: 0, readErrorRate: 0, tornWriteRate, capacityBytes: Number.MAX_SAFE_INTEGER });
        const reference = new ReferenceFile();
        // One buffer for every write, as the encoder's slab is reused: the disk must not keep it.
        const caller = new Uint8Array(5000);
        let requestId = 0;
        let created = false;
        for (const step of steps) {
          if (step.kind === 'write') {
            for (let index = 0; index < step.length; index++) caller[index] = (step.fill + index) & 0xff;
            const bytes = caller.subarray(0, step.length);
            expect(disk.execute({ op: 'write', requestId: requestId++, file: 'f', offset: step.offset, bytes }).ok).toBe(true);
            reference.write(step.offset, bytes);
            caller.fill(0);
            if (!created) {
              // The file's creation reaches the durable directory, so a crash keeps the file.
              disk.execute({ op: 'sync-directory', requestId: requestId++ });
              created = true;
            }
          } else if (!created) {
            continue;
          } else if (step.kind === 'truncate') {
            expect(disk.execute({ op: 'truncate', requestId: requestId++, file: 'f', length: step.length }).ok).toBe(true);
            reference.truncate(step.length);
          } else if (step.kind === 'sync') {
            expect(disk.execute({ op: 'sync', requestId: requestId++, file: 'f' }).ok).toBe(true);
            reference.sync();
          } else {
            const drawnBefore = draws.length;
            disk.crash();
            reference.crash(tornWriteRate, draws.slice(drawnBefore));
          }
          expect(Buffer.from(disk.fileBytes('f')!).equals(Buffer.from(reference.visible))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
