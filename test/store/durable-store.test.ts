/**
 * Proves the durable StateStore end to end on the simulated disk: records of a realistic broker
 * history (sessions, subscriptions, stored and retained messages, deliveries moving through their
 * phases) are appended, synced in groups and compacted into snapshots; after a crash at any step
 * the recovered state equals the live state after some prefix of the history that includes
 * every record whose LSN was released for acknowledgement. Also proves the record codec round
 * trip, binary fields included.
 */
import fc from 'fast-check';
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import { DurableStateStore } from '../../src/store/durable-store.js';
import { decodeStateRecord, encodeJsonRecord, encodeLogRecord, encodeStateRecord } from '../../src/store/record-codec.js';
import { applyRecord, createDurableState, type DurableState, finishReplay, type StateRecord, snapshotRecords } from '../../src/store/state-store.js';

/** A valid record history: each record is legal against the state built by the ones before. */
function history(seed: string, length: number): StateRecord[] {
  const random = seedrandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const state = createDurableState();
  const records: StateRecord[] = [];
  let nextMessageId = 1;
  const emit = (record: StateRecord): void => {
    applyRecord(state, record);
    records.push(record);
  };
  while (records.length < length) {
    const sessions = [...state.sessions.values()];
    const roll = random();
    if (sessions.length === 0 || roll < 0.08) {
      emit({ kind: 'session-created', clientId: `c${Math.floor(random() * 6)}`, protocolVersion: pick([4, 5] as const), expiryIntervalSeconds: pick([60, 0xffffffff]) });
    } else if (roll < 0.16) {
      const session = pick(sessions);
      emit({
        kind: 'subscription-added',
        clientId: session.clientId,
        subscription: {
          filter: pick(['a/#', 'a/+', '$share/g/a/b']),
          qos: pick([0, 1, 2] as const),
          noLocal: false,
          retainAsPublished: random() < 0.5,
          retainHandling: 0,
          subscriptionId: Math.floor(random() * 3),
        },
      });
    } else if (roll < 0.5) {
      const messageId = nextMessageId++;
      const payload = Uint8Array.from({ length: Math.floor(random() * 40) }, () => Math.floor(random() * 256));
      const properties = random() < 0.5 ? undefined : { correlationData: Uint8Array.of(1, 2, 3), userProperties: [['k', 'v'] as [string, string]], contentType: 'text/plain' };
      emit({ kind: 'message-stored', message: { messageId, topic: 'a/b', payload, qos: 1, retain: false, properties, createdAtMs: records.length, expiryAtMs: null } });
      const session = pick(sessions);
      const sequence = session.nextDeliverySequence;
      emit({ kind: 'delivery-queued', clientId: session.clientId, sequence, messageId, qos: pick([1, 2] as const), retain: false, subscriptionIds: [1], packetId: 0, phase: 'queued' });
      if (random() < 0.3) emit({ kind: 'retained-set', topic: `t/${Math.floor(random() * 4)}`, messageId });
    } else if (roll < 0.7) {
      const session = pick(sessions);
      const head = session.queue[0];
      if (head && !session.inflight.has(session.nextPacketId)) emit({ kind: 'delivery-sent', clientId: session.clientId, sequence: head.sequence, packetId: session.nextPacketId });
    } else if (roll < 0.85) {
      const session = pick(sessions);
      const delivery = [...session.inflight.values()][0];
      if (delivery?.qos === 2 && delivery.phase === 'publish') emit({ kind: 'delivery-released', clientId: session.clientId, packetId: delivery.packetId });
      else if (delivery) emit({ kind: 'delivery-completed', clientId: session.clientId, packetId: delivery.packetId });
    } else if (roll < 0.9) {
      emit({ kind: 'retained-cleared', topic: `t/${Math.floor(random() * 4)}` });
    } else if (roll < 0.95) {
      const session = pick(sessions);
      emit({ kind: 'session-disconnected', clientId: session.clientId, atMs: records.length, expiryIntervalSeconds: session.expiryIntervalSeconds });
    } else {
      emit({ kind: 'session-deleted', clientId: pick(sessions).clientId });
    }
  }
  return records;
}

/** The state after `records`, made afresh: canonical() finishes a replay, which changes the state. */
function stateAfter(records: readonly StateRecord[]): DurableState {
  const state = createDurableState();
  for (const record of records) applyRecord(state, record);
  return state;
}

/**
 * The state as text, keys sorted: a binary record's MQTT 5.0 properties read back in the codec's
 * order (by identifier), not in the order the live record's object had them.
 */
function canonical(state: DurableState): string {
  finishReplay(state);
  return JSON.stringify(snapshotRecords(state), (_k, v: unknown) => {
    if (v instanceof Uint8Array) return Array.from(v);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

function pumpStore(disk: SimulatedDisk, store: DurableStateStore, budget: number): number {
  let used = 0;
  for (;;) {
    const requests = store.drainRequests();
    if (requests.length === 0) return used;
    for (const request of requests) {
      if (used >= budget) return used;
      used++;
      store.storageCompleted(0, disk.execute(request));
    }
  }
}

function open(disk: SimulatedDisk, snapshotLogBytes: number): { store: DurableStateStore; state: DurableState } {
  const store = new DurableStateStore({ syncPolicy: 'always', syncIntervalMs: 10, segmentBytesMax: 4096, snapshotLogBytes, writeBytesMax: 2048 });
  pumpStore(disk, store, Infinity);
  const records = store.recover(0);
  expect(store.failure).toBeNull();
  expect(records).not.toBeNull();
  const state = createDurableState();
  for (const record of records!) applyRecord(state, record);
  return { store, state };
}

describe('durable state store', () => {
  it('round-trips every record kind through the record codec', () => {
    for (const record of history('codec', 300)) {
      // Both forms: the log's (binary where the kind has one) and the one sent to other nodes (JSON).
      for (const { type, body } of [encodeLogRecord(record), encodeStateRecord(record)]) expect(decodeStateRecord(type, body)).toEqual(record);
    }
    // A Node Buffer (what sockets deliver) must round-trip as raw bytes, not as its toJSON form.
    const fromSocket = Buffer.from('payload bytes');
    const stored: StateRecord = { kind: 'will-set', clientId: 'w', will: { topic: 't', payload: fromSocket, qos: 1, retain: false } };
    const encoded = encodeStateRecord(stored);
    expect(new TextDecoder().decode(encoded.body.subarray(encoded.body.length - 13))).toBe('payload bytes');
    const decoded = decodeStateRecord(encoded.type, encoded.body) as Extract<StateRecord, { kind: 'will-set' }>;
    expect(decoded.will.payload).toBeInstanceOf(Uint8Array);
    expect(new TextDecoder().decode(decoded.will.payload)).toBe('payload bytes');
    expect(() => decodeStateRecord(1, encodeJsonRecord({ kind: 'session-deleted', clientId: 'x' }))).toThrow(/says it is "session-deleted"/);
  });

  it('recovers a released prefix of the history after a crash at any step, with compaction', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 300 }), fc.constantFrom(1500, 1 << 30), (seed, crashAfter, snapshotLogBytes) => {
        const records = history(seed, 160);
        const prefixStates: string[] = [];
        for (let length = 0; length <= records.length; length++) prefixStates.push(canonical(stateAfter(records.slice(0, length))));
        const disk = new SimulatedDisk(seedrandom(`${seed}-disk`), { ioErrorRate: 0, readErrorRate: 0, tornWriteRate: 0.5, capacityBytes: 1 << 30 });
        const { store, state } = open(disk, snapshotLogBytes);
        let budget = crashAfter;
        let released = 0;
        // LSNs are not record counts (the writer adds seals), so count the records released.
        const lsns: number[] = [];
        for (let index = 0; index < records.length && budget > 0; index++) {
          lsns.push(store.append(records[index]!));
          applyRecord(state, records[index]!);
          if (index % 4 === 3) {
            store.flush(0);
            store.maybeCompact(state);
            budget -= pumpStore(disk, store, budget);
          }
          released = lsns.filter((lsn) => lsn <= store.durableLsn).length;
        }
        expect(store.failure).toBeNull();
        disk.crash();
        const recovered = open(disk, snapshotLogBytes);
        const recoveredState = canonical(recovered.state);
        const matching = prefixStates.lastIndexOf(recoveredState);
        expect(matching).toBeGreaterThanOrEqual(0);
        expect(matching).toBeGreaterThanOrEqual(released);
      }),
      { numRuns: 120 },
    );
    // Each run replays and serialises 160 prefix states: seconds of work on a busy machine.
  }, 30_000);

  it('compacts: snapshots replace covered segments and the state survives restarts', () => {
    const records = history('compaction', 400);
    const disk = new SimulatedDisk(seedrandom('compaction-disk'));
    // Records are about 30 bytes in their binary forms: a snapshot every kilobyte of them.
    let { store, state } = open(disk, 1000);
    for (let index = 0; index < records.length; index++) {
      store.append(records[index]!);
      applyRecord(state, records[index]!);
      store.flush(0);
      store.maybeCompact(state);
      pumpStore(disk, store, Infinity);
    }
    expect(store.stats.snapshotsWritten).toBeGreaterThan(3);
    const files = disk.describe().split(',');
    expect(files.filter((f) => f.startsWith('snapshot-')).length).toBe(1);
    expect(files.filter((f) => f.startsWith('wal-')).length).toBeLessThanOrEqual(3);
    const before = canonical(state);
    disk.crash();
    ({ store, state } = open(disk, 1000));
    expect(canonical(state)).toBe(before);
    expect(store.recoveryOutcome!.snapshotLsn).toBeGreaterThan(0);
  });
});
