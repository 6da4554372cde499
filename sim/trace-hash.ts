/**
 * FNV-1a over 64 bits, computed in two 32-bit halves so it needs no BigInt on the hot path.
 *
 * The simulator feeds every trace line (and the bytes each network segment carries) into one
 * running hash; the hex digest printed at the end of a run is the run's fingerprint: the same
 * seed must give the same digest in any process on any day. It is not cryptographic and does not
 * need to be: it detects accidental divergence, not an adversary.
 */

// FNV-1a 64-bit offset basis 0xcbf29ce484222325 and prime 0x100000001b3, split into halves.
const offsetHigh = 0xcbf29ce4;
const offsetLow = 0x84222325;
const primeLow = 0x1b3; // the prime's high half is 0x100, i.e. a shift by 8 of the low half.

export class TraceHash {
  private high = offsetHigh;
  private low = offsetLow;

  byte(value: number): void {
    this.low = (this.low ^ (value & 0xff)) >>> 0;
    // (high:low) * (0x100 << 32 | 0x1b3), keeping 64 bits. Split low into 16-bit halves so the
    // partial products stay exact in doubles.
    const lowLow = this.low & 0xffff;
    const lowHigh = this.low >>> 16;
    const productLowLow = lowLow * primeLow;
    const productLowHigh = lowHigh * primeLow + (productLowLow >>> 16);
    const newLow = ((productLowHigh & 0xffff) << 16) | (productLowLow & 0xffff);
    const carry = Math.floor(productLowHigh / 0x10000);
    const newHigh = this.high * primeLow + carry + ((this.low << 8) >>> 0);
    this.low = newLow >>> 0;
    this.high = newHigh >>> 0;
  }

  bytes(values: Uint8Array): void {
    for (let index = 0; index < values.length; index++) this.byte(values[index]!);
  }

  /** Feeds the UTF-16 code units of `text` (two bytes each), then a separator. */
  text(value: string): void {
    for (let index = 0; index < value.length; index++) {
      const unit = value.charCodeAt(index);
      this.byte(unit & 0xff);
      this.byte(unit >>> 8);
    }
    this.byte(0x0a);
  }

  hex(): string {
    return this.high.toString(16).padStart(8, '0') + this.low.toString(16).padStart(8, '0');
  }
}
