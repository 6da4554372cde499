/**
 * Proves reading by subscribing: `$stream/<name>` from `earliest`, `latest`, `offset:<n>` and
 * `time:<unix ms>` delivers the stored entries in offset order, then goes on live with no gap and
 * no duplicate at the seam, under a window of 1 and with messages published during the replay;
 * a replay reads the files once the entries left memory, never more than the read-ahead at a
 * time, and what waits for a PUBACK holds a copy of its entry, not the read it came from; narrowing filters, MQTT 3.1.1 readers (latest, or earliest by the filter), QoS 0 readers,
 * and the grant of QoS 1 at most.
 */
import { describe, expect, it } from 'vitest';
import type { PublishPacket } from '../../src/codec/packets.js';
import { ReadEntry } from '../../src/store/streams/stream-entry.js';
import { decodeText, type TestClient } from '../broker/harness.js';
import { offsetOf, StreamHarness, takeAndAck } from './stream-harness.js';

function publishMany(harness: StreamHarness, count: number, from = 0, size = 40): void {
  const publisher = harness.connect(`publisher-${from}`, 5);
  for (let index = from; index < from + count; index++) publisher.publish(`sensors/${index % 7}`, `${index}:${'x'.repeat(size)}`, 1);
  publisher.disconnect();
}

/** Acknowledges deliveries one at a time (window of 1) until none come; `between` runs after each. */
function drain(client: TestClient, between: (delivered: number) => void = () => {}): PublishPacket[] {
  const all: PublishPacket[] = [];
  for (let round = 0; round < 100_000; round++) {
    const publishes = client.publishes();
    if (publishes.length === 0) return all;
    for (const publish of publishes) {
      all.push(publish);
      if (publish.qos > 0) client.acknowledge(publish);
      between(all.length);
    }
  }
  throw new Error('drain did not end');
}

function subscribeFrom(client: TestClient, from: string, filter = '$stream/sensors'): number[] {
  return client.subscribe([{ topicFilter: filter, qos: 1 }], { userProperties: [['stream-offset', from]] }).reasonCodes;
}

describe('stream reading', () => {
  it('replays from earliest into live, with a window of 1 and publishes during the replay: no gap, no duplicate', () => {
    const harness = new StreamHarness();
    publishMany(harness, 60);
    const reader = harness.connect('reader', 5, { properties: { receiveMaximum: 1 } });
    expect(subscribeFrom(reader, 'earliest')).toEqual([1]);
    const live = harness.connect('live-publisher', 5);
    let published = 60;
    const got = drain(reader, (delivered) => {
      // Every third delivery, one more message is published while the replay is still going.
      if (delivered % 3 === 0 && published < 100) live.publish(`sensors/live`, `${published++}:live`, 1);
    });
    expect(published).toBeGreaterThan(80);
    expect(got.map(offsetOf)).toEqual([...Array(published).keys()]);
    expect(got.map((p) => Number(decodeText(p.payload).split(':')[0]))).toEqual([...Array(published).keys()]);
    // Live from here on.
    live.publish('sensors/after', 'after', 1);
    expect(takeAndAck(reader).map(offsetOf)).toEqual([published]);
  });

  it('reads replays from the files once entries left memory, a read-ahead at a time', () => {
    const harness = new StreamHarness({ streamReadAheadBytesMax: 1024 });
    publishMany(harness, 200, 0, 100);
    expect(harness.store.streams.filesFor('sensors')!.tailStart).toBeGreaterThan(150);
    expect(harness.store.streams.segments('sensors').length).toBeGreaterThan(4);
    const reader = harness.connect('reader', 5);
    subscribeFrom(reader, 'earliest');
    // A delivery waiting for its PUBACK keeps a copy of its payload (inflight-table.ts), never a view into a whole read.
    const session = harness.broker.state.sessions.get('reader')!;
    const table = harness.broker.streams.deliveriesOf(session).inflight;
    expect(table.size).toBeGreaterThan(0);
    for (const packetId of table.packetIdsInSendOrder()) expect(table.entryOf(packetId)).not.toBeInstanceOf(ReadEntry);
    const got = drain(reader);
    expect(got.map(offsetOf)).toEqual([...Array(200).keys()]);
    const stats = harness.broker.stats.streams;
    expect(stats.replayReads).toBeGreaterThan(20);
    // Each read asks for the read-ahead (a single frame larger than it would be read alone).
    expect(stats.replayReadBytes).toBeLessThanOrEqual(stats.replayReads * 1024);
  });

  it('starts at latest by default, at an offset, and clamps offsets outside the stream', () => {
    const harness = new StreamHarness();
    publishMany(harness, 10);
    const latest = harness.connect('latest', 5);
    expect(latest.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }]).reasonCodes).toEqual([1]);
    const middle = harness.connect('middle', 5);
    subscribeFrom(middle, 'offset:7');
    const beyond = harness.connect('beyond', 5);
    subscribeFrom(beyond, 'offset:999');
    expect(takeAndAck(latest)).toEqual([]);
    expect(takeAndAck(middle).map(offsetOf)).toEqual([7, 8, 9]);
    expect(takeAndAck(beyond)).toEqual([]);
    publishMany(harness, 1, 10);
    expect(takeAndAck(latest).map(offsetOf)).toEqual([10]);
    expect(takeAndAck(middle).map(offsetOf)).toEqual([10]);
    expect(takeAndAck(beyond).map(offsetOf)).toEqual([10]);
  });

  it('starts at the first entry appended at or after a time', () => {
    const harness = new StreamHarness({}, undefined, { wallClockOffsetMs: 1_700_000_000_000 });
    const publisher = harness.connect('publisher', 5);
    const times: number[] = [];
    for (let index = 0; index < 120; index++) {
      harness.advance(10);
      times.push(harness.nowMs + 1_700_000_000_000);
      publisher.publish('sensors/t', `${index}:${'y'.repeat(60)}`, 1);
    }
    expect(harness.store.streams.segments('sensors').length).toBeGreaterThan(2);
    for (const index of [0, 1, 37, 64, 119]) {
      const reader = harness.connect(`at-${index}`, 5);
      subscribeFrom(reader, `time:${times[index]! - 5}`);
      const got = drain(reader);
      expect(got[0] === undefined ? null : offsetOf(got[0]), `time of entry ${index}`).toBe(index);
      expect(got.length).toBe(120 - index);
    }
    const future = harness.connect('future', 5);
    subscribeFrom(future, `time:${times[119]! + 1_000}`);
    expect(drain(future)).toEqual([]);
    harness.advance(500);
    publisher.publish('sensors/t', 'too early', 1);
    harness.advance(1_000);
    publisher.publish('sensors/t', 'in time', 1);
    expect(drain(future).map((p) => decodeText(p.payload))).toEqual(['in time']);
  });

  it('narrows a stream to a sub-filter, and serves MQTT 3.1.1 from latest or from the filter’s earliest', () => {
    const harness = new StreamHarness();
    publishMany(harness, 14);
    const narrow = harness.connect('narrow', 5);
    subscribeFrom(narrow, 'earliest', '$stream/sensors/sensors/3');
    expect(takeAndAck(narrow).map(offsetOf)).toEqual([3, 10]);
    const old = harness.connect('old', 4);
    expect(old.subscribe([{ topicFilter: '$stream/sensors', qos: 2 }]).reasonCodes).toEqual([1]);
    const oldEarliest = harness.connect('old-earliest', 4);
    expect(oldEarliest.subscribe([{ topicFilter: '$stream/sensors/earliest/sensors/+', qos: 1 }]).reasonCodes).toEqual([1]);
    expect(takeAndAck(old)).toEqual([]);
    const replayed = takeAndAck(oldEarliest);
    expect(replayed.map((p) => Number(decodeText(p.payload).split(':')[0]))).toEqual([...Array(14).keys()]);
    expect(replayed[0]!.properties).toBeUndefined();
    publishMany(harness, 1, 14);
    expect(takeAndAck(old).map((p) => p.topic)).toEqual(['sensors/0']);
  });

  it('keeps offset order when an entry too large for a run buffer follows a smaller one in the same pump (sim seed 1839)', () => {
    // Segments and the unsynced allowance large enough that the entries are still in memory when read.
    const harness = new StreamHarness({ streamSegmentBytesMax: 1 << 20, streamUnsyncedBytesMax: 1 << 20 });
    // A window of one holds the entries back until the first PUBACK; then one pump sends the rest.
    const reader = harness.connect('reader', 5, { properties: { receiveMaximum: 1 } });
    expect(subscribeFrom(reader, 'latest')).toEqual([1]);
    const publisher = harness.connect('publisher', 5);
    publisher.publish('sensors/0', '0:first', 1);
    const [first] = reader.publishes();
    expect(offsetOf(first!)).toBe(0);
    // A small QoS 1 entry, then one over the 64 KiB run buffer (sent on its own), then small ones.
    const sizes = [20, 100_000, 30, 70_000, 10];
    for (const [index, size] of sizes.entries()) publisher.publish(`sensors/${index + 1}`, `${index + 1}:${'x'.repeat(size)}`, index % 2 === 0 ? 1 : 0);
    expect(reader.publishes()).toEqual([]);
    reader.acknowledge(first!);
    const got = drain(reader);
    expect(got.map(offsetOf)).toEqual([1, 2, 3, 4, 5]);
    expect(got.map((p) => p.payload.length)).toEqual(sizes.map((size, index) => `${index + 1}:`.length + size));
  });

  it('delivers QoS 0 to a QoS 0 reader without waiting for acknowledgements', () => {
    const harness = new StreamHarness();
    publishMany(harness, 30);
    const reader = harness.connect('reader', 5, { properties: { receiveMaximum: 1 } });
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 0 }], { userProperties: [['stream-offset', 'earliest']] });
    const got = reader.publishes();
    expect(got.map(offsetOf)).toEqual([...Array(30).keys()]);
    expect(new Set(got.map((p) => p.qos))).toEqual(new Set([0]));
  });

  it('moves a reader when re-subscribed with a stream-offset, and keeps its place when re-subscribed without', () => {
    const harness = new StreamHarness();
    publishMany(harness, 6);
    const reader = harness.connect('reader', 5);
    subscribeFrom(reader, 'earliest');
    expect(takeAndAck(reader).map(offsetOf)).toEqual([0, 1, 2, 3, 4, 5]);
    subscribeFrom(reader, 'offset:3');
    expect(takeAndAck(reader).map(offsetOf)).toEqual([3, 4, 5]);
    expect(reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }]).reasonCodes).toEqual([1]);
    expect(takeAndAck(reader)).toEqual([]);
    publishMany(harness, 1, 6);
    expect(takeAndAck(reader).map(offsetOf)).toEqual([6]);
  });
});
