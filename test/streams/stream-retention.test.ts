/**
 * Proves retention: whole sealed segments go, by size (`retentionBytes`) and by age
 * (`retentionMs`, in Unix time through the host's wall-clock offset), on the core's maintenance
 * deadline, the active segment never; age never cuts what a live consumer group has not
 * acknowledged, size does, and then the group's position moves forward, the skip is logged,
 * counted and announced to the member that gets the next delivery (`stream-skipped`); a reader
 * asking for an offset below the oldest kept one starts at the oldest; a lagging individual
 * reader is told what it lost the same way; the trimmed files are deleted, and stay so after a
 * restart. A group's loss not yet announced survives a restart (committed with its position): the
 * first delivery after it still says `stream-skipped`, again if the delivery that said it was
 * not acknowledged before the crash, and never once one that said it was acknowledged.
 */
import { describe, expect, it } from 'vitest';
import { offsetOf, StreamHarness, takeAndAck, userProperty } from './stream-harness.js';

const bySize = { name: 'sensors', filter: 'sensors/#', retentionMs: 0, retentionBytes: 6000, lastValue: false };
const byAge = { name: 'sensors', filter: 'sensors/#', retentionMs: 5_000, retentionBytes: 0, lastValue: false };

function publishMany(harness: StreamHarness, count: number, from = 0): void {
  const publisher = harness.connect(`publisher-${from}`, 5);
  for (let index = from; index < from + count; index++) publisher.publish('sensors/r', `${index}:${'z'.repeat(80)}`, 1);
  publisher.disconnect();
}

function segmentFiles(harness: StreamHarness): string[] {
  return harness.disk
    .listFiles()
    .map((file) => file.name)
    .filter((name) => name.startsWith('stream-sensors-') && name.endsWith('.seg'));
}

describe('stream retention', () => {
  it('by size deletes the oldest whole segments, cutting a lagging group, which is told', () => {
    const harness = new StreamHarness({ streams: [bySize] });
    const member = harness.connect('member', 5, { properties: { receiveMaximum: 2 } });
    member.subscribe([{ topicFilter: '$share/g/$stream/sensors', qos: 1 }]);
    publishMany(harness, 120);
    const held = member.publishes();
    expect(held.map(offsetOf)).toEqual([0, 1]);
    const before = harness.broker.view.streams()[0]!;
    expect(before.bytes).toBeGreaterThan(6000);
    harness.advance(harness.config.streamMaintenanceIntervalMs);
    const after = harness.broker.view.streams()[0]!;
    expect(after.bytes).toBeLessThanOrEqual(6000 + 4096);
    expect(after.firstOffset).toBeGreaterThan(2);
    expect(segmentFiles(harness).length).toBe(after.segments);
    expect(harness.logEvents()).toContain('stream-group-cut');
    expect(harness.broker.stats.streams.groupsCut).toBe(1);
    expect(harness.broker.stats.streams.groupEntriesCut).toBe(after.firstOffset - 2);
    // The held deliveries are acknowledged; the next one says how much the group lost.
    for (const publish of held) member.acknowledge(publish);
    const next = member.publishes();
    expect(offsetOf(next[0]!)).toBe(after.firstOffset);
    expect(userProperty(next[0]!, 'stream-skipped')).toBe(String(after.firstOffset - 2));
    expect(userProperty(next[1]!, 'stream-skipped')).toBeUndefined();
    expect(harness.broker.state.streams.get('sensors')!.groups.get('g')).toBe(after.firstOffset);
    // A reader asking for an offset below the oldest kept starts at the oldest.
    const late = harness.connect('late', 5);
    late.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'offset:0']] });
    expect(offsetOf(takeAndAck(late)[0]!)).toBe(after.firstOffset);
    // After a restart the trimmed files stay gone.
    harness.restartAfterCrash();
    expect(harness.broker.view.streams()[0]!.firstOffset).toBe(after.firstOffset);
    expect(segmentFiles(harness).length).toBe(after.segments);
  });

  it("keeps a group's unannounced loss across restarts until a delivery that announced it is acknowledged", () => {
    const harness = new StreamHarness({ streams: [bySize] });
    const persistent = { cleanStart: false, properties: { receiveMaximum: 2, sessionExpiryInterval: 3_600 } };
    const member = harness.connect('member', 5, persistent);
    member.subscribe([{ topicFilter: '$share/g/$stream/sensors', qos: 1 }]);
    publishMany(harness, 120);
    expect(member.publishes().map(offsetOf)).toEqual([0, 1]);
    member.drop();
    harness.advance(harness.config.streamMaintenanceIntervalMs);
    const firstOffset = harness.broker.view.streams()[0]!.firstOffset;
    expect(firstOffset).toBeGreaterThan(2);
    // Every offset below the first kept one is lost to the group (0 and 1 were given back when the member went).
    const lost = harness.broker.stats.streams.groupEntriesCut;
    expect(lost).toBe(firstOffset);
    expect(harness.broker.state.streams.get('sensors')!.groupsSkipped.get('g')).toBe(lost);
    // A crash before any member was told: the first delivery after the restart tells.
    harness.restartAfterCrash();
    let again = harness.connect('member', 5, persistent);
    let next = again.publishes();
    expect(offsetOf(next[0]!)).toBe(firstOffset);
    expect(userProperty(next[0]!, 'stream-skipped')).toBe(String(lost));
    expect(userProperty(next[1]!, 'stream-skipped')).toBeUndefined();
    // Told, but the delivery was not acknowledged before the next crash: told again.
    harness.restartAfterCrash();
    again = harness.connect('member', 5, persistent);
    next = again.publishes();
    expect(offsetOf(next[0]!)).toBe(firstOffset);
    expect(userProperty(next[0]!, 'stream-skipped')).toBe(String(lost));
    // Acknowledged: the loss is no longer pending, and a later restart does not announce it.
    again.acknowledge(next[0]!);
    expect(harness.broker.state.streams.get('sensors')!.groupsSkipped.has('g')).toBe(false);
    harness.restartAfterCrash();
    again = harness.connect('member', 5, persistent);
    next = again.publishes();
    expect(offsetOf(next[0]!)).toBe(firstOffset + 1);
    for (const publish of next) expect(userProperty(publish, 'stream-skipped')).toBeUndefined();
  });

  it('by age deletes expired segments, but never what a live group has not acknowledged', () => {
    const harness = new StreamHarness({ streams: [byAge] }, undefined, { wallClockOffsetMs: 1_700_000_000_000 });
    const member = harness.connect('member', 5, { cleanStart: false, properties: { sessionExpiryInterval: 3600, receiveMaximum: 1 } });
    member.subscribe([{ topicFilter: '$share/g/$stream/sensors', qos: 1 }]);
    publishMany(harness, 100);
    const first = member.publishes();
    expect(first.map(offsetOf)).toEqual([0]);
    member.drop();
    harness.advance(10_000);
    // The group (its member offline, so still live) has not acknowledged offset 0: nothing goes.
    expect(harness.broker.view.streams()[0]!.firstOffset).toBe(0);
    const back = harness.connect('member', 5, { cleanStart: false, properties: { sessionExpiryInterval: 3600 } });
    const got = takeAndAck(back);
    expect(got.map(offsetOf)).toEqual([...Array(100).keys()]);
    harness.advance(harness.config.streamMaintenanceIntervalMs);
    const after = harness.broker.view.streams()[0]!;
    expect(after.firstOffset).toBeGreaterThan(0);
    // The active segment stays, whatever its age.
    expect(after.segments).toBe(1);
    expect(harness.logEvents()).not.toContain('stream-group-cut');
  });

  it('tells a lagging reader what retention cut before it reached it', () => {
    const harness = new StreamHarness({ streams: [bySize] });
    const reader = harness.connect('reader', 5, { properties: { receiveMaximum: 1 } });
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }]);
    publishMany(harness, 120);
    const [first] = reader.publishes();
    expect(offsetOf(first!)).toBe(0);
    harness.advance(harness.config.streamMaintenanceIntervalMs);
    const firstOffset = harness.broker.view.streams()[0]!.firstOffset;
    reader.acknowledge(first!);
    const [next] = reader.publishes();
    expect(offsetOf(next!)).toBe(firstOffset);
    expect(userProperty(next!, 'stream-skipped')).toBe(String(firstOffset - 1));
    expect(harness.broker.stats.streams.entriesSkipped).toBe(firstOffset - 1);
  });

  it('tells a persistent reader again after a restart until a delivery that told it is acknowledged', () => {
    const harness = new StreamHarness({ streams: [bySize] });
    const persistent = { cleanStart: false, properties: { receiveMaximum: 1, sessionExpiryInterval: 3_600 } };
    const reader = harness.connect('reader', 5, persistent);
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    publishMany(harness, 120);
    const [first] = reader.publishes();
    harness.advance(harness.config.streamMaintenanceIntervalMs);
    const firstOffset = harness.broker.view.streams()[0]!.firstOffset;
    reader.acknowledge(first!);
    const [told] = reader.publishes();
    expect(offsetOf(told!)).toBe(firstOffset);
    expect(userProperty(told!, 'stream-skipped')).toBe(String(firstOffset - 1));
    // The delivery that told it was not acknowledged before the crash: the first one after the restart tells it again.
    harness.restartAfterCrash();
    let again = harness.connect('reader', 5, persistent);
    let [next] = again.publishes();
    expect(offsetOf(next!)).toBe(firstOffset);
    expect(userProperty(next!, 'stream-skipped')).toBe(String(firstOffset - 1));
    // Acknowledged: a later restart does not tell it again.
    again.acknowledge(next!);
    harness.restartAfterCrash();
    again = harness.connect('reader', 5, persistent);
    [next] = again.publishes();
    expect(offsetOf(next!)).toBe(firstOffset + 1);
    expect(userProperty(next!, 'stream-skipped')).toBeUndefined();
  });
});
