/**
 * Proves consumer groups: `$share/<group>/$stream/<name>` spreads the stream over the members,
 * each entry to exactly one; a member whose connection ends with unacknowledged entries has them
 * given to another member; the group's committed position survives every member leaving and a
 * broker restart, and the next member goes on from it; the first member's start decides where a
 * new group begins; a narrowing makes another group; streamGroupsMax bounds the groups.
 */
import { describe, expect, it } from 'vitest';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import type { TestClient } from '../broker/harness.js';
import { offsetOf, StreamHarness, takeAndAck } from './stream-harness.js';

const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };

function publishMany(harness: StreamHarness, from: number, count: number): void {
  const publisher = harness.connect(`publisher-${from}`, 5);
  for (let index = from; index < from + count; index++) publisher.publish(`sensors/${index % 3}`, `${index}`, 1);
  publisher.disconnect();
}

function member(harness: StreamHarness, id: string, filter = '$share/workers/$stream/sensors', from?: string, receiveMaximum = 65_535): TestClient {
  const client = harness.open(5);
  expect(client.connect(id, { ...persistent, properties: { ...persistent.properties, receiveMaximum } }).reasonCode).toBe(0);
  const properties = from === undefined ? undefined : { userProperties: [['stream-offset', from]] as [string, string][] };
  expect(client.subscribe([{ topicFilter: filter, qos: 1 }], properties).reasonCodes).toEqual([1]);
  return client;
}

function offsets(publishes: readonly PublishPacket[]): number[] {
  return publishes.map((p) => Number(offsetOf(p)));
}

describe('consumer groups', () => {
  it('spread the stream over the members, each entry to exactly one', () => {
    const harness = new StreamHarness();
    publishMany(harness, 0, 30);
    const a = member(harness, 'a', undefined, 'earliest', 2);
    const b = member(harness, 'b', undefined, 'earliest', 2);
    const got: number[][] = [[], []];
    for (let round = 0; round < 100; round++) {
      const fromA = takeAndAck(a);
      const fromB = takeAndAck(b);
      got[0]!.push(...offsets(fromA));
      got[1]!.push(...offsets(fromB));
      if (fromA.length + fromB.length === 0) break;
    }
    expect([...got[0]!, ...got[1]!].sort((x, y) => x - y)).toEqual([...Array(30).keys()]);
    expect(got[0]!.length).toBeGreaterThan(5);
    expect(got[1]!.length).toBeGreaterThan(5);
    expect(harness.broker.state.streams.get('sensors')!.groups.get('workers')).toBe(30);
    expect(harness.broker.view.streams()[0]!.groups).toEqual([{ group: 'workers', offset: 30, members: 2 }]);
  });

  it('give a leaving member’s unacknowledged entries to another member', () => {
    const harness = new StreamHarness();
    const a = member(harness, 'a');
    publishMany(harness, 0, 4);
    const held = a.publishes();
    expect(offsets(held)).toEqual([0, 1, 2, 3]);
    a.acknowledge(held[0]!);
    const b = member(harness, 'b');
    a.drop();
    expect(offsets(takeAndAck(b))).toEqual([1, 2, 3]);
    // When a returns, its session does not get them again.
    const back = harness.open(5);
    back.connect('a', persistent);
    expect(back.publishes()).toEqual([]);
  });

  it('keep the group’s position through every member leaving and a restart', () => {
    const harness = new StreamHarness();
    publishMany(harness, 0, 5);
    const a = member(harness, 'a', undefined, 'earliest');
    const first = a.publishes();
    expect(offsets(first)).toEqual([0, 1, 2, 3, 4]);
    for (const publish of first.slice(0, 3)) a.acknowledge(publish);
    a.disconnect();
    expect(harness.broker.state.streams.get('sensors')!.groups.get('workers')).toBe(3);
    publishMany(harness, 5, 2);
    harness.restartAfterCrash();
    // A new member (another session) joins the existing group: its own start is ignored.
    const c = member(harness, 'c', undefined, 'latest');
    expect(offsets(takeAndAck(c))).toEqual([3, 4, 5, 6]);
    expect(harness.broker.state.streams.get('sensors')!.groups.get('workers')).toBe(7);
  });

  it('make another group of another share name or narrowing; streamGroupsMax bounds them', () => {
    const harness = new StreamHarness({ streamGroupsMax: 2 });
    publishMany(harness, 0, 6);
    const whole = member(harness, 'whole', '$share/g/$stream/sensors', 'earliest');
    const narrow = member(harness, 'narrow', '$share/g/$stream/sensors/sensors/1', 'earliest');
    expect(offsets(takeAndAck(whole))).toEqual([0, 1, 2, 3, 4, 5]);
    expect(offsets(takeAndAck(narrow))).toEqual([1, 4]);
    expect([...harness.broker.state.streams.get('sensors')!.groups.keys()]).toEqual(['g', 'g/sensors/1']);
    const third = harness.connect('third', 5);
    const suback = third.subscribe([{ topicFilter: '$share/h/$stream/sensors', qos: 1 }]);
    expect(suback.reasonCodes).toEqual([0x97]);
    expect(suback.properties?.reasonString).toMatch(/streamGroupsMax/);
  });

  it('give an unsubscribing member’s unacknowledged entries to another member', () => {
    const harness = new StreamHarness();
    const a = member(harness, 'a');
    const b = member(harness, 'b', undefined, undefined, 1);
    publishMany(harness, 0, 3);
    const toA = a.publishes();
    const toB = b.publishes();
    expect(offsets(toA).length + offsets(toB).length).toBe(3);
    a.send({ type: PacketType.Unsubscribe, packetId: 99, topicFilters: ['$share/workers/$stream/sensors'] });
    expect(a.take().map((packet) => packet.type)).toEqual([PacketType.Unsuback]);
    // b acknowledges what it holds and gets what a left, one at a time (its window is 1).
    const received: number[] = [...offsets(toB)];
    let pending = toB;
    for (let round = 0; round < 10 && pending.length > 0; round++) {
      for (const publish of pending) b.acknowledge(publish);
      pending = b.publishes();
      received.push(...offsets(pending));
    }
    expect(received.sort((x, y) => x - y)).toEqual([0, 1, 2]);
  });
});
