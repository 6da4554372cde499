/**
 * FNV-1a over 64 bits, computed in two 32-bit halves so it needs no BigInt on the hot path.
 *
 * The simulator feeds every trace line (and the bytes each network segment carries) into one
 * running hash; the hex digest printed at the end of a run is the run's fingerprint: the same
 * seed must give the same digest in any process on any day. It is not cryptographic and does not
 * need to be: it detects accidental divergence, not an adversary.
 *
 * Every event of a run passes through here, so the loops keep both halves in locals (as int32,
 * which V8 keeps unboxed) and write them back once per call. One step multiplies (high:low) by
 * the prime 0x100_000001b3 modulo 2^64: the new low half is low * 0x1b3 modulo 2^32, and the new
 * high half is high * 0x1b3 + (low << 8) + the carry out of low * 0x1b3, modulo 2^32.
 */

// FNV-1a 64-bit offset basis 0xcbf29ce484222325 and prime 0x100000001b3, split into halves.
const offsetHigh = 0xcbf29ce4;
const offsetLow = 0x84222325;
const primeLow = 0x1b3; // the prime's high half is 0x100, i.e. a shift by 8 of the low half.

export class TraceHash {
  // Both halves are kept as signed 32-bit integers (the same bits), which V8 keeps unboxed.
  private high = offsetHigh | 0;
  private low = offsetLow | 0;

  byte(value: number): void {
    const low = this.low ^ (value & 0xff);
    this.high = (Math.imul(this.high, primeLow) + (low << 8) + carryOfLowTimesPrime(low)) | 0;
    this.low = Math.imul(low, primeLow);
  }

  bytes(values: Uint8Array): void {
    let high = this.high;
    let low = this.low;
    for (let index = 0; index < values.length; index++) {
      low ^= values[index]!;
      high = (Math.imul(high, primeLow) + (low << 8) + carryOfLowTimesPrime(low)) | 0;
      low = Math.imul(low, primeLow);
    }
    this.high = high;
    this.low = low;
  }

  /** Feeds the UTF-16 code units of `text` (two bytes each, low first), then a separator. */
  text(value: string): void {
    this.units(value);
    this.byte(0x0a);
  }

  /**
   * Feeds the UTF-16 code units of `value` with no separator: `units(a); text(b)` hashes exactly
   * as `text(a + b)` does, without building the joined string.
   */
  units(value: string): void {
    let high = this.high;
    let low = this.low;
    for (let index = 0; index < value.length; index++) {
      const unit = value.charCodeAt(index);
      low ^= unit & 0xff;
      high = (Math.imul(high, primeLow) + (low << 8) + carryOfLowTimesPrime(low)) | 0;
      low = Math.imul(low, primeLow);
      low ^= unit >>> 8;
      high = (Math.imul(high, primeLow) + (low << 8) + carryOfLowTimesPrime(low)) | 0;
      low = Math.imul(low, primeLow);
    }
    this.high = high;
    this.low = low;
  }

  /**
   * Feeds a number as its decimal text (as UTF-16 units, like `units`), so that
   * `integer(n); text(s)` hashes as `text(\`${n}${s}\`)`; non-negative safe integers (simulated
   * times) without building the string.
   */
  integer(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) return this.units(String(value));
    let divisor = 1;
    while (divisor * 10 <= value) divisor *= 10;
    for (let rest = value; divisor >= 1; divisor /= 10) {
      const digit = Math.floor(rest / divisor);
      rest -= digit * divisor;
      this.byte(0x30 + digit);
      this.byte(0);
    }
  }

  hex(): string {
    return (this.high >>> 0).toString(16).padStart(8, '0') + (this.low >>> 0).toString(16).padStart(8, '0');
  }
}

/** The bits above 2^32 of (low read as unsigned) * 0x1b3, from 16-bit halves so every product is a small integer. */
function carryOfLowTimesPrime(low: number): number {
  return ((low >>> 16) * primeLow + (((low & 0xffff) * primeLow) >>> 16)) >>> 16;
}
