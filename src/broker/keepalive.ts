/**
 * Keepalive enforcement [MQTT-3.1.2-24]: a connection that sends nothing for one and a half
 * times its keepalive is closed (MQTT 5.0: DISCONNECT 0x8D) and its will published.
 *
 * Each connection has at most one keepalive entry in the deadline heap. Receiving a packet only
 * updates `lastPacketMs`; when the entry fires, the real deadline is recomputed and, if it moved,
 * the entry is pushed again. That keeps the per-packet cost at one assignment.
 *
 * A connection the broker itself stopped reading (publisher throttling) is never timed out while
 * paused: its packets may be waiting unread in the host, and the silence is ours, not the
 * client's. Its keepalive counts from when reading resumes.
 */
import { PacketType } from '../codec/packets.js';
import { ReasonCode } from '../codec/reason-codes.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import type { DeadlineEntry } from './deadline-heap.js';

export function keepAliveDeadlineMs(connection: Connection): number {
  return connection.lastPacketMs + Math.floor((connection.keepAliveMs * 3) / 2);
}

export function scheduleKeepAlive(broker: Broker, connection: Connection, _nowMs: number): void {
  if (connection.keepAliveMs === 0) return;
  broker.deadlines.push(keepAliveDeadlineMs(connection), 'keepalive', connection.id, '');
}

export function onKeepAliveDeadline(broker: Broker, entry: DeadlineEntry, nowMs: number): void {
  const connection = broker.connections.get(entry.connectionId);
  if (connection === undefined || connection.phase !== 'connected' || connection.keepAliveMs === 0) return;
  const deadlineMs = keepAliveDeadlineMs(connection);
  if (deadlineMs > nowMs) {
    broker.deadlines.push(deadlineMs, 'keepalive', connection.id, '');
    return;
  }
  // A publisher the throttle stopped reading may have sent its packets in time: they wait unread
  // at our side. Its keepalive counts again from when reading resumes (throttle.ts).
  if (broker.throttle.isPaused(connection)) {
    broker.deadlines.push(nowMs + Math.floor((connection.keepAliveMs * 3) / 2), 'keepalive', connection.id, '');
    return;
  }
  broker.stats.keepAliveTimeouts += 1;
  broker.log('info', 'keepalive-timeout', { connectionId: connection.id, clientId: connection.clientId, keepAliveSeconds: connection.keepAliveMs / 1000 });
  if (connection.version === 5) {
    broker.sendPacket(connection, { type: PacketType.Disconnect, reasonCode: ReasonCode.KeepAliveTimeout }, 0, true);
  }
  broker.closeConnection(connection, nowMs, 'keepalive timeout', 'publish', true);
}
