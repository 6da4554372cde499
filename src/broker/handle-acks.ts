/**
 * PUBACK, PUBREC and PUBCOMP from a client: the outbound half of QoS 1/2.
 *
 * PUBACK completes a QoS 1 delivery (a queued one, or a stream entry's: streams/stream-delivery.ts); PUBREC moves a QoS 2 delivery to the PUBREL state (or ends
 * it, when its reason code reports failure [MQTT-4.3.3-?: a PUBREC >= 0x80 ends the exchange]);
 * PUBCOMP completes it; the PUBREL waits until that state is durable. Each completion frees a window slot, so the queue is pumped. An
 * acknowledgement for an identifier we do not have inflight is ignored for PUBACK/PUBCOMP, and
 * answered with PUBREL 0x92 Packet Identifier not found for PUBREC (5.0), so the client can
 * finish its side.
 */
import type { PubackPacket, PubcompPacket, PubrecPacket } from '../codec/packets.js';
import { PacketType } from '../codec/packets.js';
import { isFailureReasonCode, ReasonCode } from '../codec/reason-codes.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import { pump } from './outbound-queue.js';

function complete(broker: Broker, connection: Connection, packetId: number, nowMs: number): void {
  const session = connection.session!;
  broker.commit({ kind: 'delivery-completed', clientId: session.clientId, packetId });
  pump(broker, session, connection, nowMs);
}

function ignoreUnknown(broker: Broker, connection: Connection, kind: string, packetId: number): void {
  broker.log('debug', 'unknown-acknowledgement', { connectionId: connection.id, clientId: connection.clientId, kind, packetId });
}

export function handlePuback(broker: Broker, connection: Connection, packet: PubackPacket, nowMs: number): void {
  const session = connection.session!;
  const delivery = session.inflight.get(packet.packetId);
  if (delivery !== undefined && delivery.qos === 1) return complete(broker, connection, packet.packetId, nowMs);
  // A stream delivery (streams/stream-delivery.ts): its reader's position moves; no record per ack.
  if (delivery === undefined && broker.streams.acknowledge(session, packet.packetId)) return pump(broker, session, connection, nowMs);
  ignoreUnknown(broker, connection, 'puback', packet.packetId);
}

export function handlePubrec(broker: Broker, connection: Connection, packet: PubrecPacket, nowMs: number): void {
  const session = connection.session!;
  const delivery = session.inflight.get(packet.packetId);
  if (delivery === undefined || delivery.qos !== 2) {
    const reasonCode = connection.version === 5 ? ReasonCode.PacketIdentifierNotFound : 0;
    broker.sendPacket(connection, { type: PacketType.Pubrel, packetId: packet.packetId, reasonCode });
    return;
  }
  if (isFailureReasonCode(packet.reasonCode)) {
    // The client refused the message: the exchange ends here, no PUBREL follows.
    complete(broker, connection, packet.packetId, nowMs);
    return;
  }
  // PUBREL tells the client it may forget the identifier; if the broker could still forget the
  // PUBREC after a crash it would resend the PUBLISH, and the client would take it as a new
  // message. So PUBREL waits until the released state is durable (simulator seed 33).
  const appendedBefore = broker.store.appendedLsn;
  if (delivery.phase === 'publish') broker.commit({ kind: 'delivery-released', clientId: session.clientId, packetId: packet.packetId });
  broker.sendPacket(connection, { type: PacketType.Pubrel, packetId: packet.packetId, reasonCode: 0 }, broker.lsnSince(appendedBefore));
}

export function handlePubcomp(broker: Broker, connection: Connection, packet: PubcompPacket, nowMs: number): void {
  const delivery = connection.session!.inflight.get(packet.packetId);
  if (delivery === undefined || delivery.phase !== 'pubrel') return ignoreUnknown(broker, connection, 'pubcomp', packet.packetId);
  complete(broker, connection, packet.packetId, nowMs);
}
