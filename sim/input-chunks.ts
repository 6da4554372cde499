/**
 * The memory the world hands the broker its input in: Node Buffers that are views of larger
 * shared chunks, as the Node host hands them.
 *
 * The real host gives the core a socket's bytes as a `Buffer` cut from a read buffer that other
 * bytes share, and a NATS client gives a payload as a view of what it read off its connection.
 * `Buffer.prototype.slice` makes a view, where `Uint8Array.prototype.slice` makes a copy: a core
 * that keeps a `.slice()` of its input keeps the whole chunk alive behind a few bytes, beyond
 * every byte bound that counts only those bytes. A world that handed the core plain Uint8Arrays
 * could not see that (both kinds of `slice` give the same bytes), so every byte the world hands a
 * broker (a client's segments, a disk read, a cluster delivery or key value) is copied into a
 * chunk of this pool first and handed over as a Buffer view of it. Small inputs share 64 KiB
 * chunks back to back; an input too large to share one gets a chunk of its own, as a large read
 * does. The copy happens once per input (the network copies a client's send once, as it did
 * before), and the bytes are the same, so no run's events change.
 *
 * The pool remembers its chunks weakly, so that a checker can ask whether an array the broker
 * keeps is a view of the world's input (`holds`): that is the `kept-bytes-alias` rule. The
 * broker's own storage (its payload slabs, its arenas, its copies) never is.
 */
import { Buffer } from 'node:buffer';
import { assert } from '../src/assert.js';

/** The size of a shared chunk: a Node socket reads into buffers of this size. */
export const inputChunkBytes = 64 * 1024;
/** Inputs above this get a chunk of their own (a shared chunk holds at least four of the largest shared ones). */
const sharedInputBytesMax = inputChunkBytes / 4;

export class InputChunks {
  private readonly chunks = new WeakSet<ArrayBufferLike>();
  private chunk: ArrayBuffer | null = null;
  private chunkUsedBytes = 0;
  /** Chunks made so far (shared and own), for tests. */
  chunksMade = 0;

  /** A Buffer holding a copy of `bytes`: a view of one of the pool's chunks. */
  copy(bytes: Uint8Array): Buffer {
    const length = bytes.length;
    if (length > sharedInputBytesMax) {
      const own = this.newChunk(length);
      const view = Buffer.from(own, 0, length);
      view.set(bytes);
      return view;
    }
    if (this.chunk === null || this.chunkUsedBytes + length > inputChunkBytes) {
      this.chunk = this.newChunk(inputChunkBytes);
      this.chunkUsedBytes = 0;
    }
    const view = Buffer.from(this.chunk, this.chunkUsedBytes, length);
    view.set(bytes);
    this.chunkUsedBytes += length;
    return view;
  }

  /**
   * A Buffer holding `bytes`, which the caller hands over (a disk read's fresh copy, that nothing
   * else holds): one too large to share a chunk becomes a chunk of its own without another copy,
   * as a large read lands in a buffer of its own; any other is copied as `copy` does.
   */
  adopt(bytes: Uint8Array): Buffer {
    const length = bytes.length;
    if (length <= sharedInputBytesMax || bytes.byteOffset !== 0 || bytes.buffer.byteLength !== length || !(bytes.buffer instanceof ArrayBuffer)) return this.copy(bytes);
    assert(!this.chunks.has(bytes.buffer), 'an adopted input is not a chunk already');
    this.chunks.add(bytes.buffer);
    this.chunksMade += 1;
    return Buffer.from(bytes.buffer, 0, length);
  }

  /** Whether `bytes` is a view of one of the pool's chunks (whatever its length). */
  holds(bytes: Uint8Array): boolean {
    return this.chunks.has(bytes.buffer);
  }

  private newChunk(bytes: number): ArrayBuffer {
    const chunk = new ArrayBuffer(bytes);
    this.chunks.add(chunk);
    this.chunksMade += 1;
    return chunk;
  }
}
