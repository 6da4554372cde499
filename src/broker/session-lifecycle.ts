/**
 * Sessions outliving connections: detaching a session when its connection ends, expiring it,
 * ending it, and restoring the timers after recovery.
 *
 * A session with expiry 0 ends with its connection. Otherwise it goes offline (`session-
 * disconnected`, with the expiry the client may have changed in DISCONNECT) and a timer ends it
 * after its expiry interval (never for 0xFFFFFFFF, which is also what a 3.1.1 clean-session=0
 * session gets). Ending a session publishes its pending will first [MQTT-3.1.3-9] and counts its
 * undelivered messages as dropped.
 */
import type { SessionState } from '../store/state-store.js';
import type { Broker, WillOutcome } from './broker.js';
import type { Connection } from './connection.js';
import type { DeadlineEntry } from './deadline-heap.js';
import { endRetainedReplay } from './retained-replay.js';
import { discardWill, firePendingWill, scheduleWill } from './will.js';

const expiryNever = 0xffffffff;

export function detachSession(broker: Broker, connection: Connection, nowMs: number, willOutcome: WillOutcome): void {
  const session = connection.session;
  if (session === null) return;
  const clientId = session.clientId;
  if (broker.online.get(clientId) === connection) broker.online.delete(clientId);
  const expirySeconds = connection.expiryOnDisconnectSeconds ?? session.expiryIntervalSeconds;
  if (connection.will !== null) {
    if (willOutcome === 'publish') scheduleWill(broker, clientId, connection.will, expirySeconds, nowMs);
    else discardWill(broker, clientId);
    connection.will = null;
  }
  connection.session = null;
  // Consumer groups give what this connection had not acknowledged to their other members.
  broker.streams.connectionLost(session);
  if (!broker.state.sessions.has(clientId)) return;
  if (expirySeconds === 0) {
    endSession(broker, clientId, nowMs);
    return;
  }
  broker.commit({ kind: 'session-disconnected', clientId, atMs: nowMs, expiryIntervalSeconds: expirySeconds });
  scheduleSessionExpiry(broker, session, nowMs);
}

export function scheduleSessionExpiry(broker: Broker, session: SessionState, offlineSinceMs: number): void {
  if (session.expiryIntervalSeconds === expiryNever) return;
  const deadlineMs = offlineSinceMs + session.expiryIntervalSeconds * 1000;
  broker.sessionExpiryDeadlines.set(session.clientId, deadlineMs);
  broker.deadlines.push(deadlineMs, 'session-expiry', 0, session.clientId);
}

/** Ends a session for good: its pending will goes out first, then its state is deleted. */
export function endSession(broker: Broker, clientId: string, nowMs: number): void {
  firePendingWill(broker, clientId, nowMs);
  const session = broker.state.sessions.get(clientId);
  broker.sessionExpiryDeadlines.delete(clientId);
  if (session === undefined) return;
  broker.stats.drops.sessionEnded += session.inflight.size + session.queue.length;
  endRetainedReplay(broker, clientId);
  broker.streams.sessionEnded(clientId);
  broker.commit({ kind: 'session-deleted', clientId });
  // A cluster node deletes the session's key in `keel-sessions` if it still owns it (session-registry.ts).
  broker.cluster?.sessions.sessionEnded(clientId);
}

export function onSessionExpiryDeadline(broker: Broker, entry: DeadlineEntry, nowMs: number): void {
  if (broker.sessionExpiryDeadlines.get(entry.clientId) !== entry.deadlineMs) return;
  if (broker.online.has(entry.clientId)) return;
  broker.stats.sessionsExpired += 1;
  broker.log('info', 'session-expired', { clientId: entry.clientId });
  endSession(broker, entry.clientId, nowMs);
}

/**
 * After recovery every session is offline. Those that were connected when the broker stopped go
 * offline now; expiry counts from when they went offline (or now, if that time is from another
 * clock domain: a restarted process's monotonic clock may start lower).
 */
export function scheduleRecoveredSessions(broker: Broker, nowMs: number): void {
  for (const session of [...broker.state.sessions.values()]) {
    if (session.offlineSinceMs === null) {
      broker.commit({ kind: 'session-disconnected', clientId: session.clientId, atMs: nowMs, expiryIntervalSeconds: session.expiryIntervalSeconds });
    }
    const since = session.offlineSinceMs!;
    scheduleSessionExpiry(broker, session, Math.min(since, nowMs));
  }
}
