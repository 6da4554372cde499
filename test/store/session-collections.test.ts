/**
 * Proves that sessions start with shared empty collections without sharing state: a session that
 * subscribes, records an incoming QoS 2 identifier, starts a delivery or queues one gets
 * collections of its own, and every other session (created before or after) still reads empty; and that writing to
 * a shared empty collection directly is refused by an assertion rather than leaking into every
 * session. Driven through applyRecord, as the broker and recovery apply records.
 */
import { describe, expect, it } from 'vitest';
import { applyRecord, createDurableState, type SessionState } from '../../src/store/state-store.js';

function created(clientId: string) {
  return { kind: 'session-created' as const, clientId, protocolVersion: 4 as const, expiryIntervalSeconds: 60 };
}

describe('session collections', () => {
  it('are each session’s own once written, and stay empty for the others', () => {
    const state = createDurableState();
    applyRecord(state, created('a'));
    applyRecord(state, created('b'));
    applyRecord(state, { kind: 'subscription-added', clientId: 'a', subscription: { filter: 't/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: 0 } });
    applyRecord(state, { kind: 'incoming-qos2-recorded', clientId: 'a', packetId: 7 });
    applyRecord(state, created('c'));
    const a = state.sessions.get('a')!;
    expect([...a.subscriptions.keys()]).toEqual(['t/#']);
    expect([...a.incomingQos2]).toEqual([7]);
    for (const other of [state.sessions.get('b')!, state.sessions.get('c')!]) {
      expect(other.subscriptions.size).toBe(0);
      expect(other.incomingQos2.size).toBe(0);
      expect(other.inflight.size).toBe(0);
      expect(other.streamPositions.size).toBe(0);
    }
    // Removing the last one leaves the session's own, now empty, collection in place.
    applyRecord(state, { kind: 'subscription-removed', clientId: 'a', filter: 't/#' });
    applyRecord(state, { kind: 'incoming-qos2-released', clientId: 'a', packetId: 7 });
    expect(a.subscriptions.size).toBe(0);
    expect(a.incomingQos2.size).toBe(0);
  });

  it('give a session its own delivery queue on the first queued delivery, and keep it once drained', () => {
    const state = createDurableState();
    applyRecord(state, created('a'));
    applyRecord(state, created('b'));
    const [a, b] = [state.sessions.get('a')!, state.sessions.get('b')!];
    expect(a.queue).toBe(b.queue);
    applyRecord(state, { kind: 'message-stored', message: { messageId: 1, topic: 't', payload: new Uint8Array(3), qos: 1, retain: false, properties: undefined, createdAtMs: 0, expiryAtMs: null } });
    applyRecord(state, { kind: 'delivery-queued', clientId: 'a', sequence: 1, messageId: 1, qos: 1, retain: false, subscriptionIds: [], packetId: 0, phase: 'queued' });
    applyRecord(state, created('c'));
    expect(a.queue).not.toBe(b.queue);
    expect(a.queue.length).toBe(1);
    expect(a.queuedBytes).toBe(3);
    for (const other of [b, state.sessions.get('c')!]) {
      expect(other.queue).toBe(b.queue);
      expect(other.queue.length).toBe(0);
    }
    const own = a.queue;
    applyRecord(state, { kind: 'delivery-dropped', clientId: 'a', sequence: 1, reason: 'test' });
    expect(a.queue).toBe(own);
    expect(a.queue.length).toBe(0);
    expect(b.queue.length).toBe(0);
  });

  it('refuses a direct write to a shared empty collection', () => {
    const state = createDurableState();
    applyRecord(state, created('a'));
    const session: SessionState = state.sessions.get('a')!;
    expect(() => session.incomingQos2.add(1)).toThrow(/shared empty set/);
    expect(() => session.inflight.set(1, undefined as never)).toThrow(/shared empty table/);
    expect(() => session.queue.push({ sequence: 1, messageId: 1, qos: 1, retain: false, subscriptionIds: [], packetId: 0, phase: 'queued' })).toThrow(/shared empty queue/);
    applyRecord(state, created('b'));
    expect(state.sessions.get('b')!.incomingQos2.size).toBe(0);
  });
});
