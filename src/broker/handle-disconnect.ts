/**
 * DISCONNECT from a client: a normal end. The will is discarded [MQTT-3.1.2-10] unless the reason
 * is 0x04 Disconnect with Will Message. MQTT 5.0 may change the session expiry here, but not
 * from 0 to non-zero [MQTT-3.14.2-2] (a protocol error: the session was never meant to last).
 */
import type { DisconnectPacket } from '../codec/packets.js';
import { ReasonCode } from '../codec/reason-codes.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import { protocolError } from './errors.js';

export function handleDisconnect(broker: Broker, connection: Connection, packet: DisconnectPacket, nowMs: number): void {
  const session = connection.session!;
  const requested = packet.properties?.sessionExpiryInterval;
  if (connection.version === 5 && requested !== undefined) {
    if (session.expiryIntervalSeconds === 0 && requested !== 0) {
      throw protocolError('session-expiry-from-zero', 'DISCONNECT set a session expiry after CONNECT set 0');
    }
    connection.expiryOnDisconnectSeconds = Math.min(requested, broker.config.sessionExpirySecondsMax);
  }
  const will = connection.version === 5 && packet.reasonCode === ReasonCode.DisconnectWithWillMessage ? 'publish' : 'discard';
  broker.closeConnection(connection, nowMs, 'client disconnected', will, true);
}
