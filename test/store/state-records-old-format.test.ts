/**
 * Proves that a data directory written before the sessions, subscriptions, messages and
 * deliveries had binary records (every record a JSON body under the types of `recordTypes`) still
 * recovers: the log is built here frame by frame with the generic encoder, as those versions wrote
 * it; a store opened on it rebuilds the state those records make, appends records of the same
 * history in the binary forms after them, and a second restart on the log holding both forms
 * rebuilds the state of the whole history. Also that a snapshot written by this version (binary
 * records) replaces such a log and recovers the same state.
 */
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import { DurableStateStore } from '../../src/store/durable-store.js';
import { encodeLogRecord } from '../../src/store/record-codec.js';
import { binaryRecordTypes } from '../../src/store/state-record-binary.js';
import { applyRecord, createDurableState, type DurableState, finishReplay, type StateRecord, snapshotRecords } from '../../src/store/state-store.js';
import { writeOldLog } from './old-format-log.js';

const options = { syncPolicy: 'always' as const, syncIntervalMs: 10, segmentBytesMax: 1 << 20, snapshotLogBytes: 1 << 30, writeBytesMax: 1 << 16 };

function pump(disk: SimulatedDisk, store: DurableStateStore): void {
  for (let requests = store.drainRequests(); requests.length > 0; requests = store.drainRequests()) {
    for (const request of requests) store.storageCompleted(0, disk.execute(request));
  }
}

function open(disk: SimulatedDisk, snapshotLogBytes = options.snapshotLogBytes): { store: DurableStateStore; state: DurableState } {
  const store = new DurableStateStore({ ...options, snapshotLogBytes });
  pump(disk, store);
  const records = store.recover(0);
  expect(store.failure).toBeNull();
  const state = createDurableState();
  for (const record of records!) applyRecord(state, record);
  return { store, state };
}

/** The records of `sessions` persistent sessions, each subscribed and sent `messages` QoS 1 messages, some acknowledged. */
function history(prefix: string, sessions: number, messages: number, firstMessageId: number): StateRecord[] {
  const records: StateRecord[] = [];
  let messageId = firstMessageId;
  for (let index = 0; index < sessions; index++) {
    const clientId = `${prefix}-${index}`;
    const username = index % 3 === 0 ? null : index % 3 === 1 ? `user-${index}` : undefined;
    const created: StateRecord = { kind: 'session-created', clientId, protocolVersion: index % 2 === 0 ? 4 : 5, expiryIntervalSeconds: 0xffffffff };
    if (username !== undefined) created.username = username;
    records.push(created);
    records.push({
      kind: 'subscription-added',
      clientId,
      subscription: { filter: `devices/${index}/#`, qos: 1, noLocal: false, retainAsPublished: index % 2 === 0, retainHandling: 0, subscriptionId: index % 4 },
    });
    for (let sequence = 1; sequence <= messages; sequence++) {
      const properties = sequence % 2 === 0 ? { contentType: 'text/plain', userProperties: [['seq', String(sequence)] as [string, string]] } : undefined;
      records.push({
        kind: 'message-stored',
        message: {
          messageId,
          topic: `devices/${index}/temp`,
          payload: Uint8Array.of(index & 0xff, sequence),
          qos: 1,
          retain: false,
          properties,
          createdAtMs: 1000 + sequence,
          expiryAtMs: sequence === 3 ? 90_000 : null,
        },
      });
      records.push({ kind: 'delivery-queued', clientId, sequence, messageId, qos: 1, retain: false, subscriptionIds: [index % 4], packetId: 0, phase: 'queued' });
      messageId += 1;
    }
    records.push({ kind: 'delivery-sent', clientId, sequence: 1, packetId: 1 });
    records.push({ kind: 'delivery-completed', clientId, packetId: 1 });
    records.push({ kind: 'delivery-sent', clientId, sequence: 2, packetId: 2 });
    records.push({ kind: 'session-counters', clientId, nextPacketId: 3, nextDeliverySequence: messages + 1 });
    records.push({ kind: 'incoming-qos2-recorded', clientId, packetId: 7 });
    records.push({ kind: 'session-disconnected', clientId, atMs: 5000 + index, expiryIntervalSeconds: 0xffffffff });
  }
  return records;
}

/** The state as text, keys sorted (properties read back from a binary record are in the codec's order). */
function canonical(state: DurableState): string {
  finishReplay(state);
  return JSON.stringify(snapshotRecords(state), (_key, value: unknown) => {
    if (value instanceof Uint8Array) return Array.from(value);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

function stateOf(records: readonly StateRecord[]): string {
  const state = createDurableState();
  for (const record of records) applyRecord(state, record);
  return canonical(state);
}

describe('state records of earlier versions', () => {
  it('recover, and recover again once binary records follow them in the log', () => {
    const old = history('old', 12, 5, 1);
    const disk = new SimulatedDisk(seedrandom('old-format'));
    writeOldLog(disk, old);
    const first = open(disk);
    expect(canonical(first.state)).toBe(stateOf(old));
    expect(first.state.sessions.get('old-1')!.username).toBe('user-1');
    expect(first.state.sessions.get('old-0')!.username).toBeNull();

    const current = history('new', 12, 5, 1 + 12 * 5);
    for (const record of current) {
      expect(encodeLogRecord(record).type).toBe(binaryRecordTypes[record.kind]);
      first.store.append(record);
      applyRecord(first.state, record);
      first.store.flush(0);
    }
    pump(disk, first.store);
    expect(first.store.durableLsn).toBe(first.store.appendedLsn);
    disk.crash();

    const second = open(disk);
    expect(canonical(second.state)).toBe(stateOf([...old, ...current]));
    expect(second.state.sessions.get('new-4')!.username).toBe('user-4');
    expect(second.state.sessions.get('new-5')!.username).toBeUndefined();
    // Five queued, the first sent and acknowledged, the second sent and awaiting its PUBACK.
    expect(second.state.sessions.get('new-3')!.queue.length).toBe(3);
    expect(second.state.sessions.get('new-3')!.inflight.size).toBe(1);
  });

  it('are replaced by a snapshot of binary records that recovers the same state', () => {
    const old = history('old', 30, 4, 1);
    const disk = new SimulatedDisk(seedrandom('old-format-snapshot'));
    writeOldLog(disk, old);
    const first = open(disk, 1);
    // One record past the threshold starts a snapshot covering the old log and it.
    const record: StateRecord = { kind: 'session-created', clientId: 'after', protocolVersion: 5, expiryIntervalSeconds: 60, username: 'late' };
    first.store.append(record);
    applyRecord(first.state, record);
    first.store.flush(0);
    pump(disk, first.store);
    first.store.maybeCompact(first.state);
    pump(disk, first.store);
    expect(first.store.stats.snapshotsWritten).toBe(1);
    expect(disk.describe()).toMatch(/snapshot-\d+\.snap/);
    disk.crash();
    const second = open(disk, 1);
    expect(second.store.recoveryOutcome!.snapshotLsn).toBeGreaterThan(0);
    expect(canonical(second.state)).toBe(stateOf([...old, record]));
  });
});
