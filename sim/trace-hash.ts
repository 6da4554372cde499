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
// The prime squared modulo 2^64, 0x00036600_0002e329, in halves: one multiplication by it is two
// steps that feed a zero byte, which is what the high byte of every Latin-1 code unit is.
const primeSquaredHigh = 0x36600;
const primeSquaredLow = 0x2e329;
const twoTo32 = 4_294_967_296;
/** Scratch for `integer`: the decimal digits of an int32, least significant first. */
const integerDigits = new Int32Array(10);

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
      if (unit < 0x100) {
        // Trace lines are almost all ASCII: the zero high byte changes nothing before its step,
        // so both steps are one multiplication by the prime squared. The carry out of the low
        // halves' product is below 2^18, and the product itself below 2^50, exact in a double.
        high = (Math.imul(high, primeSquaredLow) + Math.imul(low, primeSquaredHigh) + ((((low >>> 0) * primeSquaredLow) / twoTo32) | 0)) | 0;
        low = Math.imul(low, primeSquaredLow);
        continue;
      }
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
   * `integer(n); text(s)` hashes as `text(\`${n}${s}\`)`; non-negative integers below 2^31
   * (simulated times, ids, lengths) without building the string: their digits are taken with
   * int32 arithmetic into a scratch array, then fed most significant first.
   */
  integer(value: number): void {
    if (!(value >= 0 && value <= 0x7fffffff && (value | 0) === value)) return this.units(String(value));
    const digits = integerDigits;
    let count = 0;
    let rest = value;
    do {
      const quotient = (rest / 10) | 0;
      digits[count++] = rest - quotient * 10;
      rest = quotient;
    } while (rest > 0);
    let high = this.high;
    let low = this.low;
    while (count > 0) {
      // A digit's unit and its zero high byte, as in `units`.
      low ^= 0x30 + digits[--count]!;
      high = (Math.imul(high, primeSquaredLow) + Math.imul(low, primeSquaredHigh) + ((((low >>> 0) * primeSquaredLow) / twoTo32) | 0)) | 0;
      low = Math.imul(low, primeSquaredLow);
    }
    this.high = high;
    this.low = low;
  }

  hex(): string {
    return (this.high >>> 0).toString(16).padStart(8, '0') + (this.low >>> 0).toString(16).padStart(8, '0');
  }
}

/** The bits above 2^32 of (low read as unsigned) * 0x1b3, from 16-bit halves so every product is a small integer. */
function carryOfLowTimesPrime(low: number): number {
  return ((low >>> 16) * primeLow + (((low & 0xffff) * primeLow) >>> 16)) >>> 16;
}
