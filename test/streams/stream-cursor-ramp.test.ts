/**
 * Proves a stream cursor's read sizing: the first storage read after it is placed (created, or
 * moved by a re-subscribe) asks for `firstReadBytes`, each further read for twice the one before,
 * never more than the read-ahead; so the first delivery of a replay or a seek waits for a small
 * read, and a long replay still reads a whole read-ahead at a time. Driven through `fill` and
 * `readCompleted` over a store that records what it is asked to read.
 */
import { describe, expect, it } from 'vitest';
import { firstReadBytes, StreamCursor } from '../../src/broker/streams/stream-cursor.js';
import type { StreamState } from '../../src/store/state-store.js';
import type { StreamEntry } from '../../src/store/streams/stream-entry.js';
import type { StreamStore } from '../../src/store/streams/stream-store.js';

function recordingStore(asked: number[]): StreamStore {
  const store: Partial<StreamStore> = {
    releasedOffset: () => 1_000_000,
    readMemory: () => null,
    startRead: (_stream, _offset, bytesMax) => void asked.push(bytesMax),
  };
  return store as StreamStore;
}

function entryAt(offset: number): StreamEntry {
  return { offset, timeMs: 0, topic: 't', qos: 1, properties: undefined, payload: new Uint8Array(1) };
}

/** Fills, completes the read with one entry, takes it: one storage read per call. */
function readOnce(cursor: StreamCursor, store: StreamStore, stream: StreamState, readAheadBytes: number, token: number): void {
  expect(cursor.fill(store, stream, readAheadBytes, () => token)).toBe('pending');
  const offset = cursor.nextOffset;
  expect(cursor.readCompleted(token, [entryAt(offset)], offset + 1, false, null)).toBe(true);
  expect(cursor.fill(store, stream, readAheadBytes, () => token + 1)).toBe('ready');
  cursor.take();
}

describe('stream cursor read sizing', () => {
  it('starts small, doubles up to the read-ahead, and starts small again when moved', () => {
    const asked: number[] = [];
    const store = recordingStore(asked);
    const stream = { name: 's', firstOffset: 0 } as StreamState;
    const readAheadBytes = 1024 * 1024;
    const cursor = new StreamCursor(0);
    for (let read = 0; read < 7; read++) readOnce(cursor, store, stream, readAheadBytes, 10 + read * 2);
    expect(asked).toEqual([firstReadBytes, 2 * firstReadBytes, 4 * firstReadBytes, 8 * firstReadBytes, readAheadBytes, readAheadBytes, readAheadBytes]);
    cursor.jumpTo(500);
    readOnce(cursor, store, stream, readAheadBytes, 100);
    expect(asked.at(-1)).toBe(firstReadBytes);
  });

  it('never asks for more than a read-ahead smaller than the first read', () => {
    const asked: number[] = [];
    const cursor = new StreamCursor(0);
    readOnce(cursor, recordingStore(asked), { name: 's', firstOffset: 0 } as StreamState, 4096, 1);
    expect(asked).toEqual([4096]);
  });
});
