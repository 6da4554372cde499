/**
 * Proves the stream records: each kind round-trips through the record codec (payloads and binary
 * properties raw), applies as documented (offsets handed out one by one and checked on replay,
 * trims only forward, a redefinition keeps the counters, positions belong to subscriptions and
 * go with them), `recordProblem` refuses what recovery could not apply, and a snapshot of the
 * state replays to the same state, with the entries a store says are unsynced carried along.
 */
import { describe, expect, it } from 'vitest';
import { recordProblem, replayRecord } from '../../src/store/record-check.js';
import { decodeStateRecord, encodeStateRecord, recordTypes } from '../../src/store/record-codec.js';
import { applyRecord, createDurableState, type DurableState, type StateRecord, snapshotRecords } from '../../src/store/state-store.js';

const definition = { name: 'sensors', filter: 'sensors/#', retentionMs: 0, retentionBytes: 0, lastValue: false };
const payload = Uint8Array.of(0, 1, 2, 255);

function appended(offsets: [string, number][], timeMs = 10): StateRecord {
  return { kind: 'stream-appended', timeMs, topic: 'sensors/a', qos: 1, payload, entries: offsets.map(([stream, offset]) => ({ stream, offset })) };
}

const history: StateRecord[] = [
  { kind: 'stream-created', stream: definition },
  { kind: 'stream-created', stream: { ...definition, name: 'all', filter: '#', lastValue: true, retentionBytes: 4096 } },
  appended([
    ['sensors', 0],
    ['all', 0],
  ]),
  {
    kind: 'stream-appended',
    timeMs: 12,
    topic: 'sensors/b',
    qos: 0,
    payload: new Uint8Array(0),
    properties: { correlationData: Uint8Array.of(9, 8), userProperties: [['k', 'v']], contentType: 'text/plain' },
    entries: [{ stream: 'sensors', offset: 1 }],
  },
  { kind: 'session-created', clientId: 'reader', protocolVersion: 5, expiryIntervalSeconds: 3600, username: null },
  { kind: 'subscription-added', clientId: 'reader', subscription: { filter: '$stream/sensors', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: 0 } },
  { kind: 'stream-position', clientId: 'reader', filter: '$stream/sensors', offset: 1 },
  { kind: 'stream-position', clientId: 'reader', filter: '$stream/sensors', offset: 3, skipped: 2 },
  { kind: 'stream-position', clientId: 'reader', filter: '$stream/sensors', offset: 0, notBeforeMs: 11 },
  { kind: 'stream-group-position', stream: 'sensors', group: 'workers', offset: 1 },
  { kind: 'stream-group-position', stream: 'sensors', group: 'late', offset: 0, skipped: 4 },
  { kind: 'stream-trimmed', stream: 'all', firstOffset: 1 },
];

function replay(records: readonly StateRecord[]): DurableState {
  const state = createDurableState();
  for (const record of records) applyRecord(state, record);
  return state;
}

describe('stream records', () => {
  it('round-trip through the record codec with appended type numbers', () => {
    for (const record of history) {
      const { type, body } = encodeStateRecord(record);
      expect(decodeStateRecord(type, body)).toEqual(record);
      expect(recordProblem(record)).toBeNull();
    }
    expect([recordTypes['stream-created'], recordTypes['stream-group-position']]).toEqual([22, 27]);
  });

  it('apply: offsets, times, positions, groups and trims', () => {
    const state = replay(history);
    const sensors = state.streams.get('sensors')!;
    expect([sensors.nextOffset, sensors.firstOffset, sensors.lastTimeMs]).toEqual([2, 0, 12]);
    expect(sensors.groups.get('workers')).toBe(1);
    expect(state.streams.get('all')!.firstOffset).toBe(1);
    expect(state.sessions.get('reader')!.streamPositions.get('$stream/sensors')).toEqual({ offset: 0, notBeforeMs: 11 });
    expect(state.streams.get('sensors')!.groupsSkipped.get('late')).toBe(4);
    // A position with offsets the reader was not told of keeps them; the next without drops them.
    applyRecord(state, { kind: 'stream-position', clientId: 'reader', filter: '$stream/sensors', offset: 5, skipped: 2 });
    expect(state.sessions.get('reader')!.streamPositions.get('$stream/sensors')).toEqual({ offset: 5, notBeforeMs: null, skipped: 2 });
    applyRecord(state, { kind: 'stream-position', clientId: 'reader', filter: '$stream/sensors', offset: 6 });
    expect(state.sessions.get('reader')!.streamPositions.get('$stream/sensors')).toEqual({ offset: 6, notBeforeMs: null });
    // A redefinition keeps the counters.
    applyRecord(state, { kind: 'stream-created', stream: { ...definition, filter: 'sensors/+' } });
    expect(state.streams.get('sensors')).toMatchObject({ filter: 'sensors/+', nextOffset: 2 });
    // Removing the subscription removes its position.
    applyRecord(state, { kind: 'subscription-removed', clientId: 'reader', filter: '$stream/sensors' });
    expect(state.sessions.get('reader')!.streamPositions.size).toBe(0);
    applyRecord(state, { kind: 'stream-deleted', stream: 'sensors' });
    expect(state.streams.has('sensors')).toBe(false);
  });

  it('refuse on replay what this log could not have written', () => {
    const state = replay(history.slice(0, 3));
    expect(replayRecord(state, appended([['sensors', 5]]))).toMatch(/offset 5 where 1 was next/);
    expect(replayRecord(replay(history.slice(0, 3)), appended([['nowhere', 0]]))).toMatch(/unknown stream nowhere/);
    const positionless = replay(history.slice(0, 5));
    expect(replayRecord(positionless, { kind: 'stream-position', clientId: 'reader', filter: '$stream/x', offset: 0 })).toMatch(/belongs to a subscription/);
    expect(replayRecord(replay(history.slice(0, 3)), { kind: 'stream-trimmed', stream: 'sensors', firstOffset: 9 })).toMatch(/not trimmed past its end/);
  });

  it('recordProblem names malformed stream records', () => {
    expect(recordProblem({ kind: 'stream-created', stream: { ...definition, name: 'no/slash' } })).toMatch(/stream name/);
    expect(recordProblem({ kind: 'stream-created', stream: { ...definition, filter: '$share/g/a' } })).toMatch(/not shared/);
    expect(recordProblem({ kind: 'stream-created', stream: definition, nextOffset: 1, firstOffset: 2 })).toMatch(/starts after its end/);
    expect(recordProblem(appended([]))).toMatch(/names no stream/);
    expect(
      recordProblem(
        appended([
          ['sensors', 0],
          ['sensors', 1],
        ]),
      ),
    ).toMatch(/named twice/);
    expect(recordProblem({ ...appended([['sensors', 0]]), topic: 'a/#' } as StateRecord)).toMatch(/wildcard/);
    expect(recordProblem(appended([['sensors', -1]]))).toMatch(/not an offset/);
    expect(recordProblem({ kind: 'stream-group-position', stream: 'sensors', group: '', offset: 0 })).toMatch(/empty consumer group/);
    expect(recordProblem({ kind: 'stream-group-position', stream: 'sensors', group: 'g', offset: 0, skipped: 0 })).toMatch(/skipped count 0/);
    expect(recordProblem({ kind: 'stream-group-position', stream: 'sensors', group: 'g', offset: 0, skipped: 2.5 })).toMatch(/skipped count 2.5/);
    expect(recordProblem({ kind: 'stream-group-position', stream: 'sensors', group: 'g', offset: 0, skipped: 3 })).toBeNull();
    expect(recordProblem({ kind: 'stream-position', clientId: 'c', filter: '$stream/s', offset: 1.5 })).toMatch(/not an offset/);
    expect(recordProblem({ kind: 'stream-position', clientId: 'c', filter: '$stream/s', offset: 1, skipped: -1 })).toMatch(/skipped count -1/);
  });

  it('snapshot: replays to the same counters, carrying the unsynced entries a store names', () => {
    const state = replay(history);
    const plain = replay(snapshotRecords(state));
    expect(plain.streams).toEqual(state.streams);
    expect(plain.sessions.get('reader')!.streamPositions).toEqual(state.sessions.get('reader')!.streamPositions);
    // A store that synced sensors up to offset 1: the snapshot carries entry 1.
    const withSource = snapshotRecords(state, {
      unsynced: (stream) =>
        stream.name === 'sensors'
          ? { persistedOffset: 1, records: [{ ...(appended([['sensors', 1]], 12) as object), topic: 'sensors/b' } as StateRecord] }
          : { persistedOffset: stream.nextOffset, records: [] },
    });
    const created = withSource.find((record) => record.kind === 'stream-created' && record.stream.name === 'sensors');
    expect(created).toMatchObject({ nextOffset: 1, firstOffset: 0, lastTimeMs: 12 });
    expect(replay(withSource).streams).toEqual(state.streams);
  });
});
