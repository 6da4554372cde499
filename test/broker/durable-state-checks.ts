/**
 * Checks on a broker's durable state shared by the recovery tests: a comparable picture of it
 * (connection-dependent fields and volatile sessions left out) and the invariants any recovered
 * state must keep, whatever prefix of the log it came from.
 */
import { expect } from 'vitest';
import type { DurableState } from '../../src/store/state-store.js';
import { decodeText } from './harness.js';

/** A comparable picture of durable state; connection-dependent fields and volatile sessions left out. */
export function picture(state: DurableState): unknown {
  return {
    sessions: [...state.sessions.values()]
      .filter((session) => session.expiryIntervalSeconds !== 0)
      .map((session) => ({
        clientId: session.clientId,
        expiry: session.expiryIntervalSeconds,
        subscriptions: [...session.subscriptions.values()],
        inflight: [...session.inflight.values()].map((d) => ({ ...d })),
        queue: session.queue.toArray().map((d) => ({ ...d })),
        incomingQos2: [...session.incomingQos2],
        nextPacketId: session.nextPacketId,
      })),
    messages: [...state.messages.values()].map((m) => ({ ...m, payload: decodeText(m.payload) })),
    retained: [...state.retained],
    retainedBytes: state.retainedBytes,
  };
}

/** Checks the invariants a recovered state must keep, whatever prefix it came from. */
export function checkConsistent(state: DurableState): void {
  const references = new Map<number, number>();
  const count = (id: number): void => {
    expect(state.messages.has(id)).toBe(true);
    references.set(id, (references.get(id) ?? 0) + 1);
  };
  for (const session of state.sessions.values()) {
    for (const [packetId, delivery] of session.inflight) {
      expect(delivery.packetId).toBe(packetId);
      count(delivery.messageId);
    }
    for (const delivery of session.queue) count(delivery.messageId);
  }
  for (const id of state.retained.values()) count(id);
  for (const [id, message] of state.messages) expect(message.references).toBe(references.get(id));
}
