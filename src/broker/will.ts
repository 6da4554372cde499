/**
 * Wills: the message a client leaves to be published if its connection ends abnormally
 * (transport closed without DISCONNECT, keepalive expiry, protocol violation, takeover, server
 * shutdown) [MQTT-3.1.2-8], and not on a normal DISCONNECT [MQTT-3.1.2-10] unless its reason is
 * 0x04 Disconnect with Will Message.
 *
 * MQTT 5.0 delays it by the Will Delay Interval, but never past the end of the session: it is
 * published at min(will delay, session expiry) after the connection ends [MQTT-3.1.3-9], and
 * cancelled if a connection resumes the session first. A will is durable (`will-set` at CONNECT,
 * `will-cleared` when it is published or discarded), so after a broker crash the wills of the
 * connections the crash ended are published (after their delay), as the spec asks for a
 * connection that ended without DISCONNECT.
 */
import type { Will } from '../codec/packets.js';
import type { Broker } from './broker.js';
import type { DeadlineEntry } from './deadline-heap.js';
import { transientMessage } from './message.js';
import { retainMessage } from './retained.js';

export interface PendingWill {
  readonly will: Will;
  readonly deadlineMs: number;
}

const expiryNever = 0xffffffff;

/** Publishes now or schedules the will of a connection that ended abnormally. */
export function scheduleWill(broker: Broker, clientId: string, will: Will, sessionExpirySeconds: number, nowMs: number): void {
  const delaySeconds = will.properties?.willDelayInterval ?? 0;
  const effectiveSeconds = sessionExpirySeconds === expiryNever ? delaySeconds : Math.min(delaySeconds, sessionExpirySeconds);
  if (effectiveSeconds === 0) {
    publishWill(broker, clientId, will, nowMs);
    return;
  }
  const deadlineMs = nowMs + effectiveSeconds * 1000;
  broker.pendingWills.set(clientId, { will, deadlineMs });
  broker.deadlines.push(deadlineMs, 'will', 0, clientId);
}

/** Discards a stored will (normal DISCONNECT, or a resumed session cancelling a delayed one). */
export function discardWill(broker: Broker, clientId: string): void {
  broker.pendingWills.delete(clientId);
  if (broker.state.wills.has(clientId)) broker.commit({ kind: 'will-cleared', clientId });
}

export function publishWill(broker: Broker, clientId: string, will: Will, nowMs: number): void {
  // Checked again now: the rules may have changed since CONNECT (access-control.ts). Asked before
  // discardWill, which forgets the stored will and with it the durable owner the check reads.
  const allowed = broker.access === null || broker.access.mayPublishWill(clientId, will, will.topic);
  discardWill(broker, clientId);
  if (!allowed) return;
  broker.stats.willsPublished += 1;
  broker.log('info', 'will-published', { clientId, topic: will.topic });
  const message = transientMessage(will.topic, will.payload, will.qos, will.retain, will.properties, nowMs);
  if (will.retain && broker.config.retainAvailable) {
    const outcome = retainMessage(broker, message);
    broker.router.route(outcome.stored ?? message, clientId, nowMs);
  } else {
    broker.router.route(message, clientId, nowMs);
  }
  // A will goes through the node's outbox whatever its QoS, so a crash cannot lose its hand-off.
  broker.cluster?.forward(message, nowMs, true);
  if (will.retain && broker.config.retainAvailable) broker.cluster?.putRetained(will.topic, will.qos, will.payload, message.properties, will.properties?.messageExpiryInterval ?? null, 0, true);
}

/** Fires the pending will of `clientId` now, if any (its session is ending). */
export function firePendingWill(broker: Broker, clientId: string, nowMs: number): void {
  const pending = broker.pendingWills.get(clientId);
  if (pending !== undefined) publishWill(broker, clientId, pending.will, nowMs);
}

export function onWillDeadline(broker: Broker, entry: DeadlineEntry, nowMs: number): void {
  const pending = broker.pendingWills.get(entry.clientId);
  if (pending === undefined || pending.deadlineMs !== entry.deadlineMs) return;
  publishWill(broker, entry.clientId, pending.will, nowMs);
}

/** After recovery: every stored will belongs to a connection the crash ended. */
export function scheduleRecoveredWills(broker: Broker, nowMs: number): void {
  for (const [clientId, will] of [...broker.state.wills]) {
    const session = broker.state.sessions.get(clientId);
    scheduleWill(broker, clientId, will, session === undefined ? 0 : session.expiryIntervalSeconds, nowMs);
  }
}
