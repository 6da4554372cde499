/**
 * Proves that a reader's read of a segment that last-value compaction is rewriting is never
 * parsed against the wrong index, whatever the moment it is issued: storage requests run in the
 * order they are issued, so a read issued after the rename reads the rewritten file (and must use
 * the new index), and one issued before it reads the old file (and must come back stale, to be
 * made again). Driven without a broker, request by request on the simulated disk, with a read
 * issued just before each step of the switch (simulator seed 1010413 found the read issued
 * between the rename and the directory sync after it parsed with the old index: a frame length
 * taken from the middle of a topic, reported as damage the disk never had).
 */
import { describe, expect, it } from 'vitest';
import type { StorageRequest } from '../../src/contract.js';
import type { StreamEntry } from '../../src/store/streams/stream-entry.js';
import { newDisk, StoreRig, text } from './store-rig.js';

const state = { name: 'state', filter: 'state/#', retentionMs: 0, retentionBytes: 0, lastValue: true };

/** A last-value stream over several sealed segments: `a` and `b` rewritten often, `once-N` written once each. */
function filled(): StoreRig {
  const rig = new StoreRig(newDisk(7));
  expect(rig.open()).toBe(true);
  rig.commit({ kind: 'stream-created', stream: state });
  rig.run();
  for (let index = 0; index < 200; index++) {
    const topic = index % 7 === 3 ? `state/once-${index}` : `state/${index % 2 === 0 ? 'a' : 'b'}`;
    const offset = rig.state.streams.get('state')!.nextOffset;
    rig.commit({ kind: 'stream-appended', timeMs: 1_000 + index, topic, qos: 1, payload: text(`${topic}=${index}:${'p'.repeat(40)}`), entries: [{ stream: 'state', offset }] });
    if (index % 4 === 3) rig.run();
  }
  rig.run();
  expect(rig.store.streams.segments('state').length).toBeGreaterThan(2);
  return rig;
}

/**
 * Starts compacting the first sealed segment and drives its requests one by one; just before the
 * first request that `before` picks runs, issues a read from `from`. Returns the read's outcome.
 */
function readDuringCompaction(before: (request: StorageRequest) => boolean, from: number): { stale: boolean; entries: StreamEntry[]; after: StreamEntry[] } {
  const rig = filled();
  const streams = rig.store.streams;
  expect(streams.compact('state', rig.state.streams.get('state')!.nextOffset)).toBe(true);
  let issued = false;
  for (let round = 0; round < 10_000; round++) {
    const requests = rig.store.drainRequests();
    if (requests.length === 0) break;
    for (const request of requests) {
      if (!issued && before(request)) {
        streams.startRead('state', from, 4096, 1);
        issued = true;
      }
      rig.store.storageCompleted(0, rig.disk.execute(request));
      rig.endInput();
    }
  }
  expect(issued).toBe(true);
  expect(streams.stats.compactions).toBe(1);
  const [result] = streams.takeReadResults();
  expect(result).toBeDefined();
  expect(result!.damaged).toBeNull();
  expect(streams.stats.damagedFrames).toBe(0);
  return { stale: result!.stale, entries: result!.entries, after: rig.readAll('state', from) };
}

const offsets = (entries: readonly StreamEntry[]): number[] => entries.map((entry) => entry.offset);

describe('last-value compaction switching a segment under a reader', () => {
  it('a read issued before the rename (as the copy is synced) reads the old file and comes back stale', () => {
    expect(readDuringCompaction((request) => request.op === 'sync' && request.file.endsWith('.tmp'), 20).stale).toBe(true);
  });

  for (const op of ['rename', 'sync-directory'] as const) {
    it(`a read issued after the rename, before the ${op} runs, uses the new index`, () => {
      const outcome = readDuringCompaction((request) => request.op === op, 20);
      expect(outcome.stale).toBe(false);
      // What it got is what the rewritten segment holds from there: the entries written once.
      expect(outcome.entries.length).toBeGreaterThan(0);
      expect(offsets(outcome.entries)).toEqual(offsets(outcome.after.slice(0, outcome.entries.length)));
      expect(outcome.entries[0]!.topic).toMatch(/^state\/once-/);
    });
  }

  it('a read issued as the compaction starts reading reads the old file or comes back stale', () => {
    const outcome = readDuringCompaction((request) => request.op === 'read', 20);
    // The old file, every entry from 20 on in it (the rewritten one no longer has 20).
    if (!outcome.stale) expect(offsets(outcome.entries)).toEqual([...Array(outcome.entries.length).keys()].map((index) => 20 + index));
    expect(outcome.after[0]!.offset).toBeGreaterThan(20);
  });
});
