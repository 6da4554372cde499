/**
 * Proves that sessions start with shared empty collections without sharing state: a session that
 * subscribes, records an incoming QoS 2 identifier or starts a delivery gets collections of its
 * own, and every other session (created before or after) still reads empty; and that writing to
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

  it('refuses a direct write to a shared empty collection', () => {
    const state = createDurableState();
    applyRecord(state, created('a'));
    const session: SessionState = state.sessions.get('a')!;
    expect(() => session.incomingQos2.add(1)).toThrow(/shared empty set/);
    expect(() => session.inflight.set(1, undefined as never)).toThrow(/shared empty map/);
    applyRecord(state, created('b'));
    expect(state.sessions.get('b')!.incomingQos2.size).toBe(0);
  });
});
