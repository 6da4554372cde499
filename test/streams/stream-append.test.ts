/**
 * Proves appending: every message published to a topic a stream's filter matches gets the next
 * offset of that stream (0, 1, 2 ...), with its time, topic, QoS, payload and MQTT 5.0 properties;
 * a message in two streams gets an offset in each; QoS 1/2 publishes are acknowledged only once
 * their stream entries are durable, and nobody reads an entry before; wills are appended like any
 * publish; clients may not publish to `$stream/...` (refused like `$SYS`), nor leave a will there.
 */
import { describe, expect, it } from 'vitest';
import { PacketType } from '../../src/codec/packets.js';
import { decodeText } from '../broker/harness.js';
import { offsetOf, StreamHarness, sensors, takeAndAck } from './stream-harness.js';

const everything = { name: 'everything', filter: '#', retentionMs: 0, retentionBytes: 0, lastValue: false };

function reader(harness: StreamHarness, id: string, filter: string, from = 'earliest') {
  const client = harness.connect(id, 5);
  expect(client.subscribe([{ topicFilter: filter, qos: 1 }], { userProperties: [['stream-offset', from]] }).reasonCodes).toEqual([1]);
  return client;
}

describe('stream appends', () => {
  it('give each stream its own offsets in publish order, a message in two streams one in each', () => {
    const harness = new StreamHarness({ streams: [sensors, everything] });
    const publisher = harness.connect('publisher', 5);
    publisher.publish('sensors/a', 'one', 1);
    publisher.publish('other', 'two', 0);
    publisher.publish('sensors/b', 'three', 2, { properties: { contentType: 'text/plain', userProperties: [['k', 'v']], correlationData: Uint8Array.of(7) } });
    const fromSensors = takeAndAck(reader(harness, 'r1', '$stream/sensors'));
    const fromEverything = takeAndAck(reader(harness, 'r2', '$stream/everything'));
    expect(fromSensors.map((p) => [offsetOf(p), p.topic, decodeText(p.payload), p.qos])).toEqual([
      [0, 'sensors/a', 'one', 1],
      [1, 'sensors/b', 'three', 1],
    ]);
    expect(fromEverything.map((p) => [offsetOf(p), p.topic])).toEqual([
      [0, 'sensors/a'],
      [1, 'other'],
      [2, 'sensors/b'],
    ]);
    // QoS 0 stays QoS 0; QoS 2 is delivered at the granted QoS 1; properties travel with the entry.
    expect(fromEverything.map((p) => p.qos)).toEqual([1, 0, 1]);
    const third = fromSensors[1]!;
    expect(third.properties?.contentType).toBe('text/plain');
    expect(third.properties?.correlationData).toEqual(Uint8Array.of(7));
    expect(third.properties?.userProperties).toEqual([
      ['k', 'v'],
      ['stream', 'sensors'],
      ['stream-offset', '1'],
    ]);
    expect(third.retain).toBe(false);
    expect(harness.broker.state.streams.get('everything')!.nextOffset).toBe(3);
    expect(harness.broker.stats.streams.entriesAppended).toBe(5);
  });

  it('acknowledge a QoS 1/2 publish, and release the entry to readers, only once it is durable', () => {
    const harness = new StreamHarness();
    const live = reader(harness, 'live', '$stream/sensors', 'latest');
    const publisher = harness.connect('publisher', 5);
    harness.gate.hold.add('sync');
    const acknowledgements = publisher.publish('sensors/x', 'held', 1);
    expect(acknowledgements).toEqual([]);
    expect(live.publishes()).toEqual([]);
    expect(harness.store.streams.releasedOffset('sensors')).toBe(0);
    harness.releaseHeld();
    expect(publisher.take().map((packet) => packet.type)).toEqual([PacketType.Puback]);
    expect(live.publishes().map((p) => [offsetOf(p), decodeText(p.payload)])).toEqual([[0, 'held']]);
  });

  it('counts a message that only a stream took as matched (no 0x10)', () => {
    const harness = new StreamHarness();
    const publisher = harness.connect('publisher', 5);
    const [puback] = publisher.publish('sensors/a', 'kept', 1);
    expect(puback).toMatchObject({ type: PacketType.Puback, reasonCode: 0 });
    const [unmatched] = publisher.publish('elsewhere', 'lost', 1);
    expect(unmatched).toMatchObject({ type: PacketType.Puback, reasonCode: 0x10 });
  });

  it('appends wills like any publish', () => {
    const harness = new StreamHarness();
    const client = harness.open(5);
    client.connect('lamp', { will: { topic: 'sensors/lamp', payload: new TextEncoder().encode('gone'), qos: 1, retain: false } });
    client.drop();
    const got = takeAndAck(reader(harness, 'r', '$stream/sensors'));
    expect(got.map((p) => [p.topic, decodeText(p.payload)])).toEqual([['sensors/lamp', 'gone']]);
  });

  it('refuse publishes and wills to $stream/... like $SYS', () => {
    const harness = new StreamHarness({ streams: [sensors, everything] });
    const publisher = harness.connect('publisher', 5);
    expect(publisher.publish('$stream/sensors', 'forged', 1)).toMatchObject([{ type: PacketType.Puback, reasonCode: 0x87 }]);
    expect(harness.broker.state.streams.get('everything')!.nextOffset).toBe(0);
    const willing = harness.open(5);
    const connack = willing.connect('w', { will: { topic: '$stream/sensors', payload: new Uint8Array(0), qos: 0, retain: false } });
    expect(connack.reasonCode).toBe(0x87);
    // MQTT 3.1.1 has no refusal code: acknowledged, not appended.
    const old = harness.connect('old', 4);
    expect(old.publish('$stream/x', 'forged', 1)).toMatchObject([{ type: PacketType.Puback }]);
    expect(harness.broker.state.streams.get('everything')!.nextOffset).toBe(0);
    expect(takeAndAck(reader(harness, 'r', '$stream/everything'))).toEqual([]);
  });
});
