/**
 * Output buffers for the encoder, carved from a fixed-size slab.
 *
 * Allocating a fresh ArrayBuffer for every encoded packet costs far more than writing it once the
 * packet is past V8's on-heap limit for small typed arrays (64 bytes): the backing store is
 * allocated, zero-filled and tracked outside the JS heap. So medium packets (65 bytes to 4 KiB)
 * are handed out as views into a 32 KiB slab, the same trade Node makes for Buffer.allocUnsafe:
 * one allocation serves many packets, and a view keeps at most one slab alive. Small packets stay
 * ordinary on-heap arrays, large ones get their own buffer. A slab is never reused once full, so
 * views never alias and every byte starts as zero; the pool holds one slab at most and never
 * grows. Callers must use `byteOffset`/`byteLength` and not assume a view owns its `buffer`.
 *
 * `allocatePooledBytes` takes even a small packet from the slab. A small `new Uint8Array` is
 * three young-generation objects (the array, its ArrayBuffer and the bytes: about 200 bytes for
 * a 4-byte PUBACK), a view one (about 100). That is for packets made on every message and let go
 * soon after (the acknowledgements of QoS 1 and 2); a view kept long keeps its slab alive.
 */
import { assert } from '../assert.js';

const slabBytes = 32 * 1024;
const onHeapBytesMax = 64;
const pooledBytesMax = 4 * 1024;

let slab = new Uint8Array(slabBytes);
let slabOffset = 0;

/** A zero-filled Uint8Array of `length` bytes that the caller owns. */
export function allocateBytes(length: number): Uint8Array {
  assert(Number.isInteger(length) && length >= 0, 'allocation length is a non-negative integer');
  if (length <= onHeapBytesMax || length > pooledBytesMax) return new Uint8Array(length);
  return sliceOfSlab(length);
}

/** Like `allocateBytes`, but a view of the shared slab from 0 bytes on (see above). */
export function allocatePooledBytes(length: number): Uint8Array {
  assert(Number.isInteger(length) && length >= 0, 'allocation length is a non-negative integer');
  if (length > pooledBytesMax) return new Uint8Array(length);
  return sliceOfSlab(length);
}

function sliceOfSlab(length: number): Uint8Array {
  assert(length <= pooledBytesMax, 'a slab view is at most pooledBytesMax long');
  if (slabOffset + length > slabBytes) {
    slab = new Uint8Array(slabBytes);
    slabOffset = 0;
  }
  const view = slab.subarray(slabOffset, slabOffset + length);
  // Keep views 8-byte aligned so that a later DataView or wider typed array over them is cheap.
  slabOffset = (slabOffset + length + 7) & ~7;
  return view;
}
