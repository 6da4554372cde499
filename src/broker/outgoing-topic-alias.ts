/**
 * Topic aliases from the broker to a client (MQTT 5.0 section 3.3.2.3.4).
 *
 * A client that announces a Topic Alias Maximum above zero in CONNECT lets the broker replace
 * topic names by small integers on that connection. The first PUBLISH of a topic carries the
 * name and a fresh alias; later ones carry an empty name and the alias. Aliases are handed out
 * first come, first served until the client's maximum is reached; topics after that are always
 * sent by name (no eviction, so a mapping never changes under a client). Mappings live and die
 * with the network connection [MQTT-3.3.2-7]; a resumed session starts a new map.
 *
 * Because a mapping exists for the client only once a packet carrying it was sent, the broker
 * applies aliases at the moment of sending, after every drop decision: `aliasedPublishBytes`
 * both chooses and records. Connections without aliases keep the shared encode-once path.
 */
import { type EncodedPublish, encodePacket, withPacketId } from '../codec/encoder.js';
import type { PublishPacket, Qos } from '../codec/packets.js';
import type { StoredMessage } from '../store/state-store.js';
import type { Connection } from './connection.js';
import { publishPacketFor } from './outbound-queue.js';

/**
 * The bytes of one fresh PUBLISH for `connection`: the shared encoding (with this receiver's
 * packet identifier) when the client takes no aliases, else a per-connection aliased encoding.
 */
export function publishBytesFor(
  connection: Connection,
  encoded: EncodedPublish,
  message: StoredMessage,
  qos: Qos,
  retain: boolean,
  subscriptionIds: readonly number[],
  nowMs: number,
  packetId: number,
): Uint8Array {
  if (connection.outgoingAliasMaximum === 0) return packetId === 0 ? encoded.bytes : withPacketId(encoded, packetId, false);
  return aliasedPublishBytes(connection, publishPacketFor(message, connection.version, qos, retain, subscriptionIds, nowMs), packetId);
}

/**
 * Encodes `packet` for `connection`, replacing or registering its topic alias. An alias adds up
 * to a few bytes over the plain form the caller checked against the client's Maximum Packet
 * Size; if that tips it over, the packet goes by name and no mapping is made.
 */
export function aliasedPublishBytes(connection: Connection, packet: PublishPacket, packetId: number): Uint8Array {
  connection.outgoingAliases ??= new Map();
  const aliases = connection.outgoingAliases;
  const topic = packet.topic;
  if (packetId !== 0) packet.packetId = packetId;
  const existing = aliases.get(topic);
  const alias = existing ?? (aliases.size < connection.outgoingAliasMaximum ? aliases.size + 1 : 0);
  if (alias === 0) return encodePacket(packet, connection.version);
  const plainProperties = packet.properties;
  packet.properties = { ...plainProperties, topicAlias: alias };
  if (existing !== undefined) packet.topic = '';
  const bytes = encodePacket(packet, connection.version);
  if (bytes.length > connection.maximumPacketSize) {
    packet.topic = topic;
    packet.properties = plainProperties;
    return encodePacket(packet, connection.version);
  }
  if (existing === undefined) aliases.set(topic, alias);
  return bytes;
}
