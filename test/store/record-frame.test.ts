/**
 * Proves the record frame format: frames round-trip; a log cut anywhere inside its last frame
 * scans as a torn tail whose valid part is every earlier frame; a flipped bit anywhere before the
 * last frame scans as corruption at the damaged frame's offset, never as a clean or torn log, also
 * when the last frame is damaged too, so that no valid frame follows the first damage.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame, frameHeaderBytes, scanFrames } from '../../src/store/record-frame.js';

function buildLog(bodies: Uint8Array[], firstLsn = 1): { bytes: Uint8Array; offsets: number[] } {
  const frames = bodies.map((body, index) => encodeFrame(firstLsn + index, 1 + (index % 200), body));
  const offsets: number[] = [];
  const bytes = new Uint8Array(frames.reduce((sum, frame) => sum + frame.length, 0));
  let offset = 0;
  for (const frame of frames) {
    offsets.push(offset);
    bytes.set(frame, offset);
    offset += frame.length;
  }
  return { bytes, offsets };
}

const bodiesArbitrary = fc.array(fc.uint8Array({ minLength: 0, maxLength: 40 }), { minLength: 1, maxLength: 12 });

describe('record frames', () => {
  it('round-trip every frame with its sequence number, type and body', () => {
    fc.assert(
      fc.property(bodiesArbitrary, (bodies) => {
        const { bytes } = buildLog(bodies, 5);
        const scan = scanFrames(bytes, 5, 1 << 20);
        expect(scan.ending).toBe('clean');
        expect(scan.records.map((r) => [r.lsn, Array.from(r.body)])).toEqual(bodies.map((b, i) => [5 + i, Array.from(b)]));
      }),
      { numRuns: 200 },
    );
  });

  it('treat a cut inside the last frame as a torn tail', () => {
    fc.assert(
      fc.property(bodiesArbitrary, fc.nat(), (bodies, cutSeed) => {
        const { bytes, offsets } = buildLog(bodies);
        const lastStart = offsets[offsets.length - 1]!;
        const cut = lastStart + 1 + (cutSeed % (bytes.length - lastStart - 1 || 1));
        const kept = bytes.subarray(0, Math.min(cut, bytes.length - 1));
        const scan = scanFrames(kept, 1, 1 << 20);
        // A kept piece that happens to be all zero bytes reads as zero fill, which is just as safe.
        expect(scan.ending).toBe(kept.subarray(lastStart).every((byte) => byte === 0) ? 'clean' : 'torn');
        expect(scan.validEnd).toBe(lastStart);
        expect(scan.records.length).toBe(bodies.length - 1);
      }),
      { numRuns: 200 },
    );
  });

  it('report a flipped bit before the last frame as corruption at that frame', () => {
    fc.assert(
      fc.property(
        bodiesArbitrary.filter((b) => b.length >= 2),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        (bodies, where, bit) => {
          const { bytes, offsets } = buildLog(bodies);
          const lastStart = offsets[offsets.length - 1]!;
          const position = where % lastStart;
          bytes[position]! ^= 1 << bit;
          const damaged = offsets.filter((o) => o <= position).pop()!;
          const scan = scanFrames(bytes, 1, 1 << 20);
          expect(scan.ending).toBe('corrupt');
          expect(scan.problem?.offset).toBe(damaged);
          expect(scan.records.length).toBe(offsets.indexOf(damaged));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('treat a cut inside the last frame followed by zeros (a file extended before its data landed) as a torn tail', () => {
    fc.assert(
      fc.property(bodiesArbitrary, fc.nat(), fc.nat({ max: 600 }), (bodies, cutSeed, extra) => {
        const { bytes, offsets } = buildLog(bodies);
        const lastStart = offsets[offsets.length - 1]!;
        const cut = lastStart + 1 + (cutSeed % (bytes.length - lastStart - 1 || 1));
        const kept = Math.min(cut, bytes.length - 1);
        const zeroFilled = new Uint8Array(bytes.length + extra);
        zeroFilled.set(bytes.subarray(0, kept));
        const scan = scanFrames(zeroFilled, 1, 1 << 20);
        expect(scan.ending).not.toBe('corrupt');
        // Where the write had only zeros left to write, the zeros finish the frame: it is whole.
        const whole = bytes.subarray(kept).every((byte) => byte === 0);
        expect(scan.validEnd).toBe(whole ? bytes.length : lastStart);
        expect(scan.records.length).toBe(whole ? bodies.length : bodies.length - 1);
      }),
      { numRuns: 300 },
    );
  });

  it('report rot in the last two frames as corruption, though no valid frame follows it (seed 19701986)', () => {
    fc.assert(
      fc.property(
        bodiesArbitrary.filter((b) => b.length >= 2),
        fc.nat(),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        fc.integer({ min: 0, max: 7 }),
        (bodies, where, whereLast, bit, bitLast) => {
          const { bytes, offsets } = buildLog(bodies);
          const lastStart = offsets[offsets.length - 1]!;
          const damaged = offsets[offsets.length - 2]!;
          // Anywhere in the second-to-last frame but its length field (a wrong length there can
          // make the frame seem to run past the end: a tear, the one case this cannot tell).
          const inFrame = [...Array(lastStart - damaged).keys()].filter((index) => index < 4 || index >= 8);
          bytes[damaged + inFrame[where % inFrame.length]!]! ^= 1 << bit;
          bytes[lastStart + (whereLast % (bytes.length - lastStart))]! ^= 1 << bitLast;
          const scan = scanFrames(bytes, 1, 1 << 20);
          expect(scan.ending).toBe('corrupt');
          expect(scan.problem?.offset).toBe(damaged);
          expect(scan.records.length).toBe(bodies.length - 2);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('accept a zero-filled tail as a clean end and reject a broken sequence', () => {
    const { bytes } = buildLog([new Uint8Array([1, 2, 3])]);
    const padded = new Uint8Array(bytes.length + 64);
    padded.set(bytes);
    expect(scanFrames(padded, 1, 1024)).toMatchObject({ ending: 'clean', validEnd: bytes.length });
    expect(scanFrames(bytes, 2, 1024).ending).toBe('torn');
    expect(frameHeaderBytes).toBe(17);
  });
});
