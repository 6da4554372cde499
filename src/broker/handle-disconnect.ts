/**
 * DISCONNECT from a client: a normal end. The will is discarded [MQTT-3.1.2-10] when the reason is
 * 0x00 Normal disconnection (always in 3.1.1), and published for any other (0x04 Disconnect with
 * Will Message, or an error the client reports) [MQTT-3.14.4-3]. MQTT 5.0 may change the session expiry here, but not
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
  // [MQTT-3.14.4-3] Only a normal disconnection (0x00) discards the will: 0x04 asks for it, and a
  // client that reports an error (0x80 and above) did not end normally either.
  const will = connection.version === 5 && packet.reasonCode !== ReasonCode.NormalDisconnection ? 'publish' : 'discard';
  broker.closeConnection(connection, nowMs, 'client disconnected', will, true);
}
