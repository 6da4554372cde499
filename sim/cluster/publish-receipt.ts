/**
 * What the cluster world's model clients and its checkers do alike with a PUBLISH that reaches a
 * client: answer it as the protocol asks while handing it to the application once, and find the
 * publication its payload names.
 */
import { type Packet, PacketType, type PublishPacket } from '../../src/codec/packets.js';
import { parsePayload } from '../clients/payload.js';

/**
 * Hands `packet` to `deliver` once (QoS 2: once per packet identifier handshake, `incomingQos2`
 * holding the identifiers received and not yet released) and sends its PUBACK or PUBREC.
 */
export function receivePublish(packet: PublishPacket, incomingQos2: Set<number>, deliver: (packet: PublishPacket) => void, send: (packet: Packet) => void): void {
  if (packet.qos === 2) {
    const packetId = packet.packetId!;
    if (!incomingQos2.has(packetId)) {
      incomingQos2.add(packetId);
      deliver(packet);
    }
    send({ type: PacketType.Pubrec, packetId, reasonCode: 0 });
    return;
  }
  deliver(packet);
  if (packet.qos === 1) send({ type: PacketType.Puback, packetId: packet.packetId!, reasonCode: 0 });
}

/**
 * The publication (`publisher|sequence`) the payload of `packet` names, sent on that very topic;
 * null after reporting `never-published` or `payload-topic` through `fail`.
 */
export function publicationOf<P extends { readonly topic: string }>(
  client: number,
  packet: PublishPacket,
  publications: ReadonlyMap<string, P>,
  fail: (rule: string, detail: string) => void,
): { key: string; publication: P } | null {
  const identity = parsePayload(packet.payload);
  if (identity === null || identity.kind !== 'message') {
    fail('never-published', `c${client}: unrecognised payload on ${packet.topic}`);
    return null;
  }
  const key = `${identity.publisher}|${identity.sequence}`;
  const publication = publications.get(key);
  if (publication === undefined) {
    fail('never-published', `c${client}: ${key} was never sent`);
    return null;
  }
  if (packet.topic !== publication.topic) {
    fail('payload-topic', `c${client}: ${key} published on ${publication.topic} arrived on ${packet.topic}`);
    return null;
  }
  return { key, publication };
}
