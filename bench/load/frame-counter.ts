/**
 * Counts deliveries on a subscriber's byte stream without parsing MQTT: the cheapest receiver the
 * aggregate fan-out load can have (bench/load/fanout-worker.ts), so that the brokers, not the load
 * generator, are what runs out of CPU.
 *
 * It relies on what the load guarantees: after its SUBACK, a subscriber receives nothing but QoS 0
 * PUBLISH packets of one topic and one payload length (MQTT 3.1.1, no properties), so every
 * delivery is the same number of bytes (`frameBytes`) and starts with the same two bytes (the
 * fixed header's type and flags, and its one-byte Remaining Length). Counting is then arithmetic
 * over the chunk lengths, and each frame is checked at its start: if anything else arrived (another
 * packet type, a retained flag, a truncated message), the stream falls out of step, the next frame
 * start holds a payload or topic byte instead, and the counter records a framing error (and stops
 * counting) instead of a wrong figure. The check reads two bytes per delivery; nothing is copied
 * and nothing is allocated per chunk.
 */

export class FrameCounter {
  /** Complete frames counted since construction. */
  frames = 0;
  /** Bytes of a frame started in an earlier chunk (0 when the stream is between frames). */
  private phase = 0;
  /** Set at the first frame start that did not hold the expected header; counting stops there. */
  framingError: string | null = null;

  constructor(
    /** Length of one delivery, fixed header included. */
    readonly frameBytes: number,
    /** Its first byte (type and flags) and second byte (Remaining Length, one byte). */
    private readonly headerFirst: number,
    private readonly headerSecond: number,
  ) {
    if (!(Number.isInteger(frameBytes) && frameBytes >= 4 && frameBytes <= 129)) throw new Error('assertion failed: a counted frame has a one-byte Remaining Length');
    if (headerSecond !== frameBytes - 2) throw new Error('assertion failed: the Remaining Length must be the frame less its two header bytes');
  }

  /** Whether the stream ends between frames (nothing partial held). */
  get aligned(): boolean {
    return this.phase === 0;
  }

  /** Counts the frames completed by `bytes[start .. end)`; returns how many. */
  feed(bytes: Uint8Array, start: number, end: number): number {
    if (this.framingError !== null || end <= start) return 0;
    const before = this.frames;
    let offset = start;
    if (this.phase > 0) {
      // The header's second byte may be the first byte of this chunk.
      if (this.phase === 1 && bytes[offset] !== this.headerSecond) {
        this.fail(offset - start);
        return this.frames - before;
      }
      const missing = this.frameBytes - this.phase;
      if (end - offset < missing) {
        this.phase += end - offset;
        return 0;
      }
      offset += missing;
      this.phase = 0;
      this.frames += 1;
    }
    const frameBytes = this.frameBytes;
    while (end - offset >= frameBytes) {
      if (bytes[offset] !== this.headerFirst || bytes[offset + 1] !== this.headerSecond) {
        this.fail(offset - start);
        return this.frames - before;
      }
      offset += frameBytes;
      this.frames += 1;
    }
    if (offset < end) {
      if (bytes[offset] !== this.headerFirst || (end - offset >= 2 && bytes[offset + 1] !== this.headerSecond)) {
        this.fail(offset - start);
        return this.frames - before;
      }
      this.phase = end - offset;
    }
    return this.frames - before;
  }

  private fail(at: number): void {
    this.framingError = `a delivery did not start with the expected PUBLISH header (byte ${at} of a chunk, after ${this.frames} frames)`;
  }
}
