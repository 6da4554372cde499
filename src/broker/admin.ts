/**
 * An operator's commands (contract.ts AdminCommand), applied by the core as inputs.
 *
 * Every change the admin API makes goes through here, never through io/ reaching into the
 * core's tables: so it is logged (`admin-*` lines), made durable like any other change (records
 * through `Broker.commit`), answered only once durable (the broker holds the `admin-result` until
 * the records it depends on are synced, like an acknowledgement), and the simulator can issue it.
 *
 * - disconnect-client: the connection ends as a server-initiated close (5.0: DISCONNECT 0x98
 *   Administrative action first); like any end without DISCONNECT its will is published, and its
 *   session stays (or ends, if its expiry is 0).
 * - delete-session: the session ends for good, online (disconnected with 0x98 first) or offline;
 *   a will still pending is published, as at any end of a session [MQTT-3.1.3-9].
 * - delete-retained: the topic's retained message is cleared.
 * - create-stream, delete-stream: streams/stream-admin.ts.
 */

import { PacketType } from '../codec/packets.js';
import { ReasonCode } from '../codec/reason-codes.js';
import type { AdminCommand, AdminOutcome } from '../contract.js';
import { checkTopicName } from '../topics/validate.js';
import type { Broker } from './broker.js';
import { endSession } from './session-lifecycle.js';
import { createStream, deleteStream } from './streams/stream-admin.js';

const done: AdminOutcome = Object.freeze({ ok: true });

function notFound(message: string): AdminOutcome {
  return { ok: false, status: 'not-found', message };
}

export function handleAdminCommand(broker: Broker, command: AdminCommand, nowMs: number): AdminOutcome {
  switch (command.kind) {
    case 'disconnect-client':
      return disconnectClient(broker, command.clientId, nowMs) ? done : notFound(`no client ${command.clientId} is connected`);
    case 'delete-session':
      return deleteSession(broker, command.clientId, nowMs);
    case 'delete-retained':
      return deleteRetained(broker, command.topic);
    case 'create-stream': {
      const outcome = createStream(broker, { ...command.stream });
      broker.streams.scheduleMaintenance(nowMs);
      return outcome;
    }
    case 'delete-stream':
      return deleteStream(broker, command.name);
  }
}

/** Ends the client's connection as an administrative action; false when it is not connected. */
function disconnectClient(broker: Broker, clientId: string, nowMs: number): boolean {
  const connection = broker.online.get(clientId);
  if (connection === undefined) return false;
  broker.log('info', 'admin-disconnect', { clientId, connectionId: connection.id });
  if (connection.version === 5) broker.sendPacket(connection, { type: PacketType.Disconnect, reasonCode: ReasonCode.AdministrativeAction }, 0, true);
  broker.closeConnection(connection, nowMs, 'administrative action', 'publish', true);
  return true;
}

function deleteSession(broker: Broker, clientId: string, nowMs: number): AdminOutcome {
  if (!broker.state.sessions.has(clientId)) return notFound(`no session ${clientId}`);
  broker.log('info', 'admin-delete-session', { clientId });
  disconnectClient(broker, clientId, nowMs);
  // Closing may already have ended a session whose expiry is 0.
  if (broker.state.sessions.has(clientId)) endSession(broker, clientId, nowMs);
  return done;
}

function deleteRetained(broker: Broker, topic: string): AdminOutcome {
  const problem = checkTopicName(topic, broker.config);
  if (problem !== null) return { ok: false, status: 'invalid', message: problem };
  if (!broker.state.retained.has(topic)) return notFound(`no retained message on ${topic}`);
  broker.log('info', 'admin-delete-retained', { topic });
  broker.commit({ kind: 'retained-cleared', topic });
  return done;
}
