/**
 * Copies of small payloads packed into shared slabs, for stored (queued) messages.
 *
 * A stored message must own its payload (the decoded one is a view of the receive buffer), and a
 * copy of its own costs far more than the bytes for small payloads: a 64-byte payload copied by
 * `slice()` was about 275 bytes of heap (a typed array, an ArrayBuffer, its backing store), half of
 * what a queued QoS 1 message cost in all. Here small payloads are copied back to back into 8 KiB
 * slabs and each gets a view of its bytes: one view per message, the slab shared by about a
 * hundred of them. A slab is freed by the garbage collector once no view of it is left.
 *
 * The price is retention: one long-lived message keeps its whole slab. That is why only small
 * payloads are packed (at most `pooledBytesMax`, so a slab holds at least sixteen), and why the
 * caller keeps retained messages, which may live for ever, out of it (routing.ts). Node's own
 * Buffer pool makes the same trade with the same sizes.
 */
import { assert } from '../assert.js';

/** Slab size; a power of two keeps the allocator's bookkeeping simple. */
const slabBytes = 8 * 1024;
/** Larger payloads get a copy of their own. */
const pooledBytesMax = 512;

export class PayloadSlab {
  private slab: Uint8Array = new Uint8Array(0);
  private used = 0;

  /** A copy of `bytes` that shares nothing with it. */
  copy(bytes: Uint8Array): Uint8Array {
    const length = bytes.length;
    if (length === 0 || length > pooledBytesMax) return bytes.slice();
    if (this.used + length > this.slab.length) {
      this.slab = new Uint8Array(slabBytes);
      this.used = 0;
    }
    const view = this.slab.subarray(this.used, this.used + length);
    view.set(bytes);
    this.used += length;
    assert(this.used <= slabBytes, 'slab overrun');
    return view;
  }
}
