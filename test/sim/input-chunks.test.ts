/**
 * Proves that the simulated world hands the broker its input as the Node host does: Node Buffers
 * that are views of larger shared chunks, whose `slice` is a view too. The pool is checked on its
 * own (shared chunks, a chunk of its own for a large input, a large input handed over adopted
 * without a copy, `holds` telling views from copies),
 * then a whole run is watched from inside the broker: every received segment and every disk read
 * arrives as such a Buffer.
 */
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { InputChunks, inputChunkBytes } from '../../sim/input-chunks.js';
import { runSimulation } from '../../sim/simulation.js';
import { Broker, type BrokerOptions } from '../../src/broker/broker.js';
import { ownCopy } from '../../src/codec/own-copy.js';
import type { StorageResult } from '../../src/contract.js';

describe('the world input chunks', () => {
  it('copies small inputs back to back into one shared chunk, as Buffers whose slice is a view', () => {
    const chunks = new InputChunks();
    const first = chunks.copy(new Uint8Array([1, 2, 3]));
    const second = chunks.copy(new Uint8Array([4, 5]));
    expect(first).toBeInstanceOf(Buffer);
    expect([...first]).toEqual([1, 2, 3]);
    expect([...second]).toEqual([4, 5]);
    expect(second.buffer).toBe(first.buffer);
    expect(first.buffer.byteLength).toBe(inputChunkBytes);
    expect(second.byteOffset).toBe(3);
    // Buffer's slice is a view: exactly what a core must not keep.
    const sliced = second.slice(0, 1);
    expect(sliced.buffer).toBe(first.buffer);
    expect(chunks.holds(sliced)).toBe(true);
    expect(chunks.holds(first.subarray(1))).toBe(true);
    // A copy of its own is not the world's.
    expect(chunks.holds(ownCopy(second))).toBe(false);
    expect(chunks.holds(new Uint8Array(second))).toBe(false);
    expect(chunks.chunksMade).toBe(1);
  });

  it('starts a new shared chunk when one is full, and gives a large input a chunk of its own', () => {
    const chunks = new InputChunks();
    const quarter = new Uint8Array(inputChunkBytes / 4).fill(9);
    const views = [chunks.copy(quarter), chunks.copy(quarter), chunks.copy(quarter), chunks.copy(quarter)];
    expect(new Set(views.map((view) => view.buffer)).size).toBe(1);
    const fifth = chunks.copy(new Uint8Array(1));
    expect(fifth.buffer).not.toBe(views[0]!.buffer);
    const large = chunks.copy(new Uint8Array(inputChunkBytes / 4 + 1).fill(7));
    expect(large.buffer.byteLength).toBe(inputChunkBytes / 4 + 1);
    expect(large[0]).toBe(7);
    expect(chunks.holds(large)).toBe(true);
    expect(chunks.chunksMade).toBe(3);
  });

  it('adopts a large input handed over in a buffer of its own without copying it, and copies any other', () => {
    const chunks = new InputChunks();
    const large = new Uint8Array(inputChunkBytes / 4 + 1).fill(5);
    const adopted = chunks.adopt(large);
    expect(adopted).toBeInstanceOf(Buffer);
    expect(adopted.buffer).toBe(large.buffer);
    expect(chunks.holds(adopted)).toBe(true);
    // A view of a larger buffer, or a small input, is copied into the pool as `copy` does.
    const within = new Uint8Array(inputChunkBytes).fill(6).subarray(1, inputChunkBytes / 4 + 2);
    const copied = chunks.adopt(within);
    expect(copied.buffer).not.toBe(within.buffer);
    expect(copied[0]).toBe(6);
    const small = chunks.adopt(new Uint8Array([1, 2]));
    expect(small.buffer.byteLength).toBe(inputChunkBytes);
    expect(chunks.chunksMade).toBe(3);
  });
});

describe('what a simulated broker receives', () => {
  it('every segment is a Buffer viewing a shared chunk, and every disk read a Buffer', () => {
    const seen = { segments: 0, segmentsInSharedChunks: 0, reads: 0, plain: 0 };
    const note = (bytes: Uint8Array): void => {
      if (!(bytes instanceof Buffer)) seen.plain += 1;
    };
    const brokerFactory = (options: BrokerOptions): Broker => {
      const broker = new Broker(options);
      const bytesReceived = broker.bytesReceived.bind(broker);
      const storageCompleted = broker.storageCompleted.bind(broker);
      broker.bytesReceived = (nowMs, connectionId, bytes) => {
        seen.segments += 1;
        if (bytes.buffer.byteLength === inputChunkBytes && bytes.byteLength < inputChunkBytes) seen.segmentsInSharedChunks += 1;
        note(bytes);
        bytesReceived(nowMs, connectionId, bytes);
      };
      broker.storageCompleted = (nowMs: number, result: StorageResult) => {
        if (result.ok && result.bytes !== undefined) {
          seen.reads += 1;
          note(result.bytes);
        }
        storageCompleted(nowMs, result);
      };
      return broker;
    };
    // Seed 13 crashes its broker, so recovery reads the disk back.
    const result = runSimulation({ seed: 13, brokerFactory, stdout: () => {}, stderr: () => {} });
    expect(result.ok).toBe(true);
    expect(result.brokerRestarts).toBeGreaterThan(0);
    expect(seen.segments).toBeGreaterThan(100);
    expect(seen.segmentsInSharedChunks).toBe(seen.segments);
    expect(seen.reads).toBeGreaterThan(0);
    expect(seen.plain).toBe(0);
  });
});
