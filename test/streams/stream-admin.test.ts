/**
 * Proves streams made and unmade: configured streams are created at start-up (and redefined when
 * the configuration changed, keeping their entries); `create-stream` and `delete-stream` are
 * admin inputs answered once durable, refusing what they must (invalid definitions, a name in
 * use, a name still being deleted, past streamsMax, a store without streams); deleting a stream
 * removes every subscription to it and its files; the view lists streams with their offsets,
 * bytes, segments, readers and groups.
 */
import { describe, expect, it } from 'vitest';
import type { AdminCommand } from '../../src/contract.js';
import { Harness } from '../broker/harness.js';
import { StreamHarness, sensors, takeAndAck } from './stream-harness.js';

function admin(harness: StreamHarness | Harness, command: AdminCommand) {
  const requestId = harness.adminResults.length + 1000;
  harness.broker.adminRequest(harness.nowMs, requestId, command);
  harness.collect();
  return harness.adminResults.find((result) => result.requestId === requestId)?.outcome;
}

describe('stream administration', () => {
  it('creates and deletes streams at run time, durably', () => {
    const harness = new StreamHarness({ streams: [] });
    expect(admin(harness, { kind: 'create-stream', stream: { name: 'logs', filter: 'logs/#', retentionBytes: 1 << 20 } })).toEqual({ ok: true });
    const publisher = harness.connect('publisher', 5);
    publisher.publish('logs/a', 'kept', 1);
    harness.restartAfterCrash();
    expect(harness.broker.view.streams().map((stream) => [stream.name, stream.nextOffset, stream.retentionBytes])).toEqual([['logs', 1, 1 << 20]]);
    const reader = harness.connect('reader', 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
    reader.subscribe([{ topicFilter: '$stream/logs', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    expect(takeAndAck(reader).length).toBe(1);
    expect(admin(harness, { kind: 'delete-stream', name: 'logs' })).toEqual({ ok: true });
    expect(harness.broker.state.sessions.get('reader')!.subscriptions.has('$stream/logs')).toBe(false);
    expect(harness.disk.listFiles().some((file) => file.name.startsWith('stream-logs-'))).toBe(false);
    harness.restartAfterCrash();
    expect(harness.broker.view.streams()).toEqual([]);
    expect(admin(harness, { kind: 'delete-stream', name: 'logs' })).toMatchObject({ ok: false, status: 'not-found' });
  });

  it('answers a create only once it is durable', () => {
    const harness = new StreamHarness({ streams: [] });
    harness.gate.hold.add('sync');
    harness.broker.adminRequest(harness.nowMs, 7, { kind: 'create-stream', stream: { name: 'late', filter: 'late/#' } });
    harness.collect();
    expect(harness.adminResults).toEqual([]);
    harness.releaseHeld();
    expect(harness.adminResults).toEqual([{ kind: 'admin-result', requestId: 7, outcome: { ok: true } }]);
  });

  it('refuses what it must', () => {
    const harness = new StreamHarness({ streams: [sensors], streamsMax: 2 });
    expect(admin(harness, { kind: 'create-stream', stream: { name: 'sensors', filter: 'x' } })).toMatchObject({ ok: false, status: 'invalid', message: 'stream sensors exists' });
    expect(admin(harness, { kind: 'create-stream', stream: { name: 'bad/name', filter: '$share/g/x' } })).toMatchObject({
      ok: false,
      message: '"name" must match [A-Za-z0-9_-]{1,64}, got "bad/name"; "filter" must not be a shared subscription',
    });
    expect(admin(harness, { kind: 'create-stream', stream: { name: 'second', filter: 'b/#' } })).toEqual({ ok: true });
    expect(admin(harness, { kind: 'create-stream', stream: { name: 'third', filter: 'c/#' } })).toMatchObject({ ok: false, message: 'streamsMax (2) streams exist' });
    // A deleted stream's name is free again only once its files are gone (their removal durable).
    harness.gate.hold.add('sync-directory');
    expect(admin(harness, { kind: 'delete-stream', name: 'second' })).toEqual({ ok: true });
    expect(admin(harness, { kind: 'create-stream', stream: { name: 'second', filter: 'b/#' } })).toMatchObject({ ok: false, message: 'stream second is still being deleted; try again' });
    harness.releaseHeld();
    expect(admin(harness, { kind: 'create-stream', stream: { name: 'second', filter: 'b/#' } })).toEqual({ ok: true });
    // A store without streams (the memory store) cannot have any.
    const memory = new Harness();
    expect(admin(memory, { kind: 'create-stream', stream: { name: 'x', filter: 'x' } })).toMatchObject({ ok: false, message: 'this broker keeps no streams (its store cannot)' });
  });

  it('creates configured streams at start-up and redefines them when the configuration changed', () => {
    const harness = new StreamHarness({ streams: [sensors] });
    harness.connect('publisher', 5).publish('sensors/a', 'one', 1);
    expect(harness.logEvents()).toContain('stream-created');
    // The operator edits the configuration: same stream, new filter and retention.
    const changed = new StreamHarness({ streams: [{ ...sensors, filter: 'sensors/+', retentionMs: 60_000 }] }, harness.disk);
    expect(changed.logEvents()).toContain('stream-redefined');
    const [summary] = changed.broker.view.streams();
    expect(summary).toMatchObject({ name: 'sensors', filter: 'sensors/+', retentionMs: 60_000, nextOffset: 1 });
    // A stream created at run time and not configured stays.
    expect(admin(changed, { kind: 'create-stream', stream: { name: 'extra', filter: 'extra' } })).toEqual({ ok: true });
    const again = new StreamHarness({ streams: [sensors] }, changed.disk);
    expect(again.broker.view.streams().map((stream) => stream.name)).toEqual(['extra', 'sensors']);
  });

  it('shows streams in the view: offsets, time, bytes, segments, readers and groups', () => {
    const harness = new StreamHarness({}, undefined, { wallClockOffsetMs: 1_000_000 });
    const publisher = harness.connect('publisher', 5);
    for (let index = 0; index < 60; index++) publisher.publish('sensors/v', 'v'.repeat(100), 1);
    const reader = harness.connect('reader', 5);
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }]);
    harness.connect('member', 5).subscribe([{ topicFilter: '$share/g/$stream/sensors', qos: 1 }]);
    const [summary] = harness.broker.view.streams();
    expect(summary).toMatchObject({
      name: 'sensors',
      filter: 'sensors/#',
      firstOffset: 0,
      nextOffset: 60,
      lastTimeMs: harness.nowMs + 1_000_000,
      readers: 1,
      groups: [{ group: 'g', offset: 60, members: 1 }],
    });
    expect(summary!.segments).toBeGreaterThan(1);
    expect(summary!.bytes).toBeGreaterThan(6000);
    expect(harness.broker.view.counters().streams).toMatchObject({ entriesAppended: 60, entriesWritten: 60 });
  });
});
