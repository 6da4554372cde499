/**
 * Proves that progress is committed by acknowledgement: a persistent session's `$stream` reader
 * continues after a reconnect (unacknowledged deliveries again, DUP, same identifiers, then on)
 * and after a broker restart from its first unacknowledged offset, with nothing skipped and
 * nothing acknowledged before the last commit sent again; positions are one record per input,
 * not per acknowledgement; a volatile session writes none; and after a crash at every step of a
 * small history (power loss on the simulated disk), the recovered position lies between the last
 * position whose record was durable and the last one committed, and every entry is intact.
 */
import { describe, expect, it } from 'vitest';
import type { PublishPacket } from '../../src/codec/packets.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { decodeText, type TestClient } from '../broker/harness.js';
import { newDisk } from './store-rig.js';
import { offsetOf, StreamHarness, takeAndAck } from './stream-harness.js';

const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };

function publishMany(harness: StreamHarness, from: number, count: number): void {
  const publisher = harness.connect('publisher', 5);
  for (let index = from; index < from + count; index++) publisher.publish('sensors/p', `${index}`, 1);
  publisher.disconnect();
}

function connectReader(harness: StreamHarness, version: 4 | 5 = 5, receiveMaximum = 65_535): TestClient {
  const client = harness.open(version);
  const options = version === 5 ? { ...persistent, properties: { ...persistent.properties, receiveMaximum } } : { cleanStart: false };
  const connack = client.connect('reader', options);
  expect(connack.reasonCode).toBe(0);
  return client;
}

describe('stream positions', () => {
  it('continue after a reconnect: unacknowledged again with DUP and the same identifiers, then on', () => {
    const harness = new StreamHarness();
    publishMany(harness, 0, 6);
    const reader = connectReader(harness);
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const first = reader.publishes();
    expect(first.map(offsetOf)).toEqual([0, 1, 2, 3, 4, 5]);
    // Acknowledge 0, 1 and 3; 2, 4 and 5 stay unacknowledged.
    for (const publish of [first[0]!, first[1]!, first[3]!]) reader.acknowledge(publish);
    reader.drop();
    const again = connectReader(harness);
    const resent = again.publishes();
    expect(resent.map((p) => [offsetOf(p), p.dup, p.packetId])).toEqual([first[2]!, first[4]!, first[5]!].map((p) => [offsetOf(p), true, p.packetId]));
    for (const publish of resent) again.acknowledge(publish);
    publishMany(harness, 6, 1);
    expect(takeAndAck(again).map(offsetOf)).toEqual([6]);
    expect(harness.broker.state.sessions.get('reader')!.streamPositions.get('$stream/sensors')).toEqual({ offset: 7, notBeforeMs: null });
  });

  it('continue after a restart from the first unacknowledged offset: nothing skipped, nothing acknowledged again', () => {
    const harness = new StreamHarness();
    publishMany(harness, 0, 10);
    const reader = connectReader(harness, 5, 4);
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const window = reader.publishes();
    expect(window.map(offsetOf)).toEqual([0, 1, 2, 3]);
    // 0, 1 and 3 acknowledged: the first unacknowledged is 2.
    for (const publish of [window[0]!, window[1]!, window[3]!]) reader.acknowledge(publish);
    const more = reader.publishes();
    expect(more.map(offsetOf)).toEqual([4, 5, 6]);
    harness.restartAfterCrash();
    const again = connectReader(harness, 5, 100);
    const replayed = takeAndAck(again);
    // 3 was acknowledged but lies above the first unacknowledged offset: it comes again.
    expect(replayed.map(offsetOf)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(replayed.map((p) => decodeText(p.payload))).toEqual(['2', '3', '4', '5', '6', '7', '8', '9']);
    harness.restartAfterCrash();
    const third = connectReader(harness);
    expect(takeAndAck(third)).toEqual([]);
    publishMany(harness, 10, 2);
    expect(takeAndAck(third).map(offsetOf)).toEqual([10, 11]);
  });

  it('commit one position record per input, however many acknowledgements it held, and none for a volatile session', () => {
    const harness = new StreamHarness();
    publishMany(harness, 0, 20);
    const reader = connectReader(harness);
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const publishes = reader.publishes();
    const appended: StateRecord[] = [];
    const store = harness.store;
    const original = store.append.bind(store);
    store.append = (record) => {
      appended.push(record);
      return original(record);
    };
    // Twenty PUBACKs in one packet burst: one input.
    const bytes = publishes.map((p) => new Uint8Array([0x40, 2, p.packetId! >> 8, p.packetId! & 0xff]));
    reader.sendBytes(Buffer.concat(bytes));
    expect(appended.filter((record) => record.kind === 'stream-position')).toEqual([{ kind: 'stream-position', clientId: 'reader', filter: '$stream/sensors', offset: 20 }]);
    appended.length = 0;
    const volatile = harness.connect('volatile', 5);
    volatile.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    takeAndAck(volatile);
    expect(appended.filter((record) => record.kind === 'stream-position' || record.kind === 'subscription-added')).toEqual([]);
  });

  it('after a crash at any step, resume between the last durable position and the last committed one, entries intact', () => {
    let steps = 0;
    let checked = 0;
    for (let budget = 30; ; budget += 5) {
      const disk = newDisk(budget);
      const harness = new StreamHarness({}, disk);
      const durablePositions: { lsn: number; offset: number }[] = [];
      const store = harness.store;
      const original = store.append.bind(store);
      store.append = (record) => {
        const lsn = original(record);
        if (record.kind === 'stream-position' && record.clientId === 'reader') durablePositions.push({ lsn, offset: record.offset });
        return lsn;
      };
      harness.gate.budget = budget;
      const publisher = harness.connect('publisher', 5);
      const reader = connectReader(harness, 5, 3);
      reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }]);
      let acknowledgedThrough = -1;
      for (let index = 0; index < 25 && harness.gate.executed < budget; index++) {
        publisher.publish('sensors/p', `${index}`, 1);
        for (const publish of reader.publishes()) {
          if (Number(offsetOf(publish)) % 4 === 3) continue;
          reader.acknowledge(publish);
          acknowledgedThrough = Math.max(acknowledgedThrough, Number(offsetOf(publish)));
        }
      }
      const finished = harness.gate.executed < budget;
      const durableLsn = store.durableLsn;
      const durable = durablePositions.filter((position) => position.lsn <= durableLsn).at(-1)?.offset ?? 0;
      const committed = durablePositions.at(-1)?.offset ?? 0;
      harness.powerLoss();
      const recovered = harness.broker.state.sessions.get('reader')?.streamPositions.get('$stream/sensors')?.offset;
      if (recovered !== undefined) {
        checked += 1;
        expect(recovered, `budget ${budget}`).toBeGreaterThanOrEqual(durable);
        expect(recovered, `budget ${budget}`).toBeLessThanOrEqual(committed);
        expect(recovered).toBeLessThanOrEqual(acknowledgedThrough + 1);
        const again = connectReader(harness);
        const replayed: PublishPacket[] = takeAndAck(again);
        const stream = harness.broker.state.streams.get('sensors')!;
        expect(replayed.map(offsetOf)).toEqual([...Array(stream.nextOffset - recovered).keys()].map((index) => index + recovered));
        expect(replayed.map((p) => decodeText(p.payload))).toEqual(replayed.map((p) => String(offsetOf(p))));
      }
      steps += 1;
      if (finished) break;
    }
    expect(steps).toBeGreaterThan(10);
    expect(checked).toBeGreaterThan(steps / 2);
  });
});
