/**
 * Proves the sparse segment index and the damage rules: points every interval, binary searches by
 * offset and by time; the `.idx` file round-trips and is refused when damaged, stale or not an
 * index; a damaged or missing index is rebuilt from its segment at start-up (logged), seeks stay
 * exact and the rebuilt file is trusted next time; a damaged frame in a segment is detected when
 * read, reported (log, counter) and skipped, and the reader is told how many offsets it lost.
 */
import { describe, expect, it } from 'vitest';
import { decodeIndexFile, encodeIndexFile, SparseIndex } from '../../src/store/streams/stream-index.js';
import type { TestClient } from '../broker/harness.js';
import { offsetOf, StreamHarness, takeAndAck, userProperty } from './stream-harness.js';

function publishTimed(harness: StreamHarness, count: number): number[] {
  const publisher = harness.connect('publisher', 5);
  const times: number[] = [];
  for (let index = 0; index < count; index++) {
    harness.advance(3);
    times.push(harness.nowMs);
    publisher.publish('sensors/i', `${index}:${'q'.repeat(70)}`, 1);
  }
  return times;
}

function firstOffsetFrom(harness: StreamHarness, id: string, from: string): number | null {
  const reader: TestClient = harness.connect(id, 5);
  reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', from]] });
  const got = takeAndAck(reader);
  return got[0] === undefined ? null : offsetOf(got[0]);
}

describe('sparse index', () => {
  it('keeps a point per interval and finds offsets and times by binary search', () => {
    const index = new SparseIndex(100);
    for (let offset = 10; offset < 60; offset++) index.offer(offset, (offset - 10) * 30, 1_000 + offset * 2);
    expect(index.length).toBe(13);
    expect(index.offsetAt(0)).toBe(10);
    expect(index.pointAtOrBefore(9)).toBe(-1);
    expect(index.offsetAt(index.pointAtOrBefore(25))).toBeLessThanOrEqual(25);
    expect(index.offsetAt(index.pointAtOrBefore(25) + 1)).toBeGreaterThan(25);
    expect(index.pointBeforeTime(1_020)).toBe(-1);
    const point = index.pointBeforeTime(1_080);
    expect(index.timeAt(point)).toBeLessThan(1_080);
    expect(index.timeAt(point + 1)).toBeGreaterThanOrEqual(1_080);
  });

  it('round-trips its file and refuses a damaged, stale or foreign one', () => {
    const index = new SparseIndex(64);
    for (let offset = 0; offset < 40; offset++) index.offer(offset, offset * 20, offset);
    const summary = { baseOffset: 0, segmentBytes: 800, endOffset: 40, lastTimeMs: 39, entryCount: 40 };
    const bytes = encodeIndexFile(index, summary);
    const decoded = decodeIndexFile(bytes, 0, 800, 64);
    expect(decoded?.summary).toEqual(summary);
    expect(decoded?.index.length).toBe(index.length);
    const flipped = bytes.slice();
    flipped[60]! ^= 1;
    expect(decodeIndexFile(flipped, 0, 800, 64)).toBeNull();
    expect(decodeIndexFile(bytes, 0, 801, 64)).toBeNull();
    expect(decodeIndexFile(bytes, 5, 800, 64)).toBeNull();
    expect(decodeIndexFile(bytes.subarray(0, 30), 0, 800, 64)).toBeNull();
  });
});

describe('damaged stream files', () => {
  it('rebuild a damaged or missing index from its segment; seeks stay exact', () => {
    const harness = new StreamHarness();
    const times = publishTimed(harness, 150);
    const indexes = harness.disk
      .listFiles()
      .map((file) => file.name)
      .filter((name) => name.startsWith('stream-sensors-') && name.endsWith('.idx'));
    expect(indexes.length).toBeGreaterThan(2);
    harness.disk.corrupt(indexes[0]!, 20, 0xee);
    harness.disk.execute({ op: 'delete', requestId: 0, file: indexes[1]! });
    harness.restartAfterCrash();
    expect(harness.logs.filter((log) => log.event === 'stream-index-rebuilt').length).toBe(1);
    for (const index of [0, 17, 63, 90, 149]) {
      expect(firstOffsetFrom(harness, `time-${index}`, `time:${times[index]!}`), `time of ${index}`).toBe(index);
      expect(firstOffsetFrom(harness, `offset-${index}`, `offset:${index}`)).toBe(index);
    }
    // Both were written back: the next start trusts them.
    harness.logs.length = 0;
    harness.restartAfterCrash();
    expect(harness.logs.filter((log) => log.event === 'stream-index-rebuilt')).toEqual([]);
    expect(firstOffsetFrom(harness, 'after', `time:${times[40]!}`)).toBe(40);
  });

  it('skip a damaged frame when reading, reporting it and telling the reader', () => {
    const harness = new StreamHarness();
    publishTimed(harness, 150);
    const segments = harness.disk.listFiles().filter((file) => file.name.startsWith('stream-sensors-') && file.name.endsWith('.seg'));
    // A flipped byte in the middle of the second segment's data (a payload byte of some entry).
    const damaged = segments[1]!;
    harness.disk.corrupt(damaged.name, Math.floor(damaged.bytes.length / 2), damaged.bytes[Math.floor(damaged.bytes.length / 2)]! ^ 0x40);
    harness.restartAfterCrash();
    const reader = harness.connect('reader', 5);
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const got = takeAndAck(reader);
    const offsets = got.map(offsetOf) as number[];
    const missing = [...Array(150).keys()].filter((offset) => !offsets.includes(offset));
    expect(missing.length).toBeGreaterThan(0);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    const after = got.find((publish) => offsetOf(publish)! > missing[0]!)!;
    expect(Number(userProperty(after, 'stream-skipped'))).toBe(missing.length);
    expect(harness.logEvents()).toContain('stream-entry-damaged');
    expect(harness.broker.stats.streams.damagedFrames).toBe(1);
  });
});
