/**
 * Proves last-value compaction: a `lastValue` stream's sealed segments are rewritten, on the
 * maintenance deadline, to keep only the newest entry of each topic; the active segment is kept
 * whole; offsets keep their meaning (readers step over the gaps, in order, nothing twice); after
 * a restart the topics the files hold are learnt again before anything more is dropped, so the
 * newest value of every topic survives; past streamLastValueTopicsMax compaction stops, said once.
 */
import { describe, expect, it } from 'vitest';
import type { PublishPacket } from '../../src/codec/packets.js';
import { decodeText, type TestClient } from '../broker/harness.js';
import { offsetOf, StreamHarness } from './stream-harness.js';

const state = { name: 'state', filter: 'state/+', retentionMs: 0, retentionBytes: 0, lastValue: true };

function publishRounds(harness: StreamHarness, rounds: number, topics: readonly string[], from = 0): void {
  const publisher = harness.connect(`publisher-${from}`, 5);
  for (let round = from; round < from + rounds; round++) {
    for (const topic of topics) publisher.publish(`state/${topic}`, `${topic}=${round}:${'w'.repeat(60)}`, 1);
  }
  publisher.disconnect();
}

function readAll(harness: StreamHarness, id: string, receiveMaximum = 65_535): PublishPacket[] {
  const reader: TestClient = harness.connect(id, 5, { properties: { receiveMaximum } });
  reader.subscribe([{ topicFilter: '$stream/state', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
  const all: PublishPacket[] = [];
  for (let round = 0; round < 10_000; round++) {
    const publishes = reader.publishes();
    if (publishes.length === 0) return all;
    for (const publish of publishes) {
      all.push(publish);
      reader.acknowledge(publish);
    }
  }
  throw new Error('reader did not finish');
}

function compactFully(harness: StreamHarness): void {
  for (let tick = 0; tick < 50; tick++) harness.advance(harness.config.streamMaintenanceIntervalMs);
}

/** The newest payload per topic among deliveries. */
function newest(publishes: readonly PublishPacket[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const publish of publishes) values.set(publish.topic, decodeText(publish.payload).split(':')[0]!);
  return values;
}

describe('last-value compaction', () => {
  it('keeps only the newest entry of each topic in sealed segments, every entry of the active one', () => {
    const harness = new StreamHarness({ streams: [state] });
    const topics = ['a', 'b', 'c', 'd'];
    publishRounds(harness, 40, topics);
    const before = readAll(harness, 'before');
    expect(before.length).toBe(160);
    compactFully(harness);
    expect(harness.broker.stats.streams.compactions).toBeGreaterThan(0);
    expect(harness.logEvents()).toContain('stream-segment-compacted');
    const after = readAll(harness, 'after');
    const offsets = after.map((p) => Number(offsetOf(p)));
    expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(after.length).toBeLessThan(80);
    expect(newest(after)).toEqual(newest(before));
    // Entries of the active segment are all there.
    const activeBase = harness.store.streams.segments('state').at(-1)!.baseOffset;
    expect(offsets.filter((offset) => offset >= activeBase)).toEqual([...Array(160 - activeBase).keys()].map((index) => index + activeBase));
    // In the sealed segments, no topic appears before a newer entry of itself that is also sealed.
    const sealed = after.filter((p) => Number(offsetOf(p)) < activeBase);
    expect(new Set(sealed.map((p) => p.topic)).size).toBe(sealed.length);
  });

  it('learns the topics the files hold after a restart before dropping anything more', () => {
    const harness = new StreamHarness({ streams: [state] });
    publishRounds(harness, 30, ['a', 'b', 'c']);
    // A topic written once, early, and never again: its only entry must survive every rewrite.
    harness.connect('once', 5).publish('state/once', 'once=0:only', 1);
    publishRounds(harness, 30, ['a', 'b', 'c'], 30);
    harness.restartAfterCrash();
    compactFully(harness);
    publishRounds(harness, 30, ['a', 'b'], 60);
    compactFully(harness);
    const values = newest(readAll(harness, 'reader'));
    expect(values).toEqual(
      new Map([
        ['state/a', 'a=89'],
        ['state/b', 'b=89'],
        ['state/c', 'c=59'],
        ['state/once', 'once=0'],
      ]),
    );
    expect(harness.broker.stats.streams.entriesCompacted).toBeGreaterThan(100);
  });

  it('replays consistently while segments are rewritten under a slow reader', () => {
    const harness = new StreamHarness({ streams: [state], streamReadAheadBytesMax: 1024 });
    publishRounds(harness, 40, ['a', 'b']);
    const reader = harness.connect('slow', 5, { properties: { receiveMaximum: 1 } });
    reader.subscribe([{ topicFilter: '$stream/state', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const got: PublishPacket[] = [];
    for (let round = 0; round < 1_000; round++) {
      const publishes = reader.publishes();
      if (publishes.length === 0) break;
      for (const publish of publishes) {
        got.push(publish);
        reader.acknowledge(publish);
      }
      if (round === 3) compactFully(harness);
    }
    const offsets = got.map((p) => Number(offsetOf(p)));
    expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(newest(got)).toEqual(
      new Map([
        ['state/a', 'a=39'],
        ['state/b', 'b=39'],
      ]),
    );
  });

  it('stops compacting a stream past streamLastValueTopicsMax topics, and says so once', () => {
    const harness = new StreamHarness({ streams: [state], streamLastValueTopicsMax: 3 });
    publishRounds(harness, 20, ['a', 'b', 'c', 'd', 'e']);
    compactFully(harness);
    expect(harness.logs.filter((log) => log.event === 'stream-compaction-stopped').length).toBe(1);
    expect(harness.broker.stats.streams.compactions).toBe(0);
    expect(readAll(harness, 'reader').length).toBe(100);
  });
});
