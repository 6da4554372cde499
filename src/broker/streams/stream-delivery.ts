/**
 * Stream entries on their way to one session: the PUBLISH they become, and the session's stream
 * deliveries that wait for a PUBACK.
 *
 * A stream delivery shares the session's packet identifiers and its inflight window with every
 * other delivery (outbound-queue.ts counts these too): the client's Receive Maximum bounds them
 * all together [MQTT-3.3.4-9]. Unlike a queued delivery it is not written to the log: the stream
 * holds the entry, and the reader's committed position (a `stream-position` record once per
 * input) says what was acknowledged, so a delivery costs no record. Its inflight state lives only
 * here, in memory, for as long as the session does while the broker runs; on a resumed session
 * it is sent again with DUP and the same identifier [MQTT-4.4.0-1]; after a restart the reader
 * starts again from its committed position, which is the first unacknowledged offset.
 *
 * That is also why `$stream` subscriptions are granted QoS 1 at most: a QoS 2 delivery's state
 * must survive a restart (the client keeps its packet identifier until PUBREL), which would cost
 * a record per message, and the offset each delivery carries lets a consumer drop a duplicate.
 *
 * What a delivery says (MQTT 5.0): the entry's own properties, then the user properties `stream`
 * (its name) and `stream-offset` (its offset), and `stream-skipped` (how many offsets the reader
 * lost before it, to retention or damage) when there were some; the subscription identifier of
 * the `$stream` subscription; RETAIN 0; the topic the message was published to. MQTT 3.1.1 gets
 * the bare message.
 */
import { assert } from '../../assert.js';
import { encodePacket } from '../../codec/encoder.js';
import { PacketType, type Properties, type PublishPacket, type Qos, type UserProperty } from '../../codec/packets.js';
import type { SessionState } from '../../store/state-store.js';
import { nextPacketIdAfter } from '../../store/state-store.js';
import type { StreamEntry } from '../../store/streams/stream-entry.js';
import type { Broker } from '../broker.js';
import type { Connection } from '../connection.js';
import { aliasedPublishBytes } from '../outgoing-topic-alias.js';
import { streamOffsetProperty } from './stream-filter.js';

export const streamNameProperty = 'stream';
export const streamSkippedProperty = 'stream-skipped';

/** Who a delivery is for: a reader's or a group's; null once its subscription is gone. */
export interface DeliveryOwner {
  acknowledged(delivery: StreamDelivery): void;
}

export interface StreamDelivery {
  readonly packetId: number;
  readonly entry: StreamEntry;
  readonly stream: string;
  readonly subscriptionIds: readonly number[];
  owner: DeliveryOwner | null;
}

/** A session's stream deliveries waiting for PUBACK, by packet identifier, oldest first. */
export interface SessionDeliveries {
  readonly session: SessionState;
  readonly inflight: Map<number, StreamDelivery>;
  /** Where the next identifier search starts (a hint; both identifier spaces are checked). */
  nextPacketId: number;
}

export function createSessionDeliveries(session: SessionState): SessionDeliveries {
  return { session, inflight: new Map(), nextPacketId: session.nextPacketId };
}

/** A packet identifier free in the session's queued deliveries and its stream deliveries. */
export function allocateStreamPacketId(deliveries: SessionDeliveries): number {
  const session = deliveries.session;
  let candidate = deliveries.nextPacketId;
  // Bounded: the window (at most 65,535) holds fewer identifiers than there are.
  for (let attempt = 0; attempt < 0xffff; attempt++) {
    if (!session.inflight.has(candidate) && !deliveries.inflight.has(candidate)) {
      deliveries.nextPacketId = nextPacketIdAfter(candidate);
      return candidate;
    }
    candidate = nextPacketIdAfter(candidate);
  }
  assert(false, 'no free packet identifier');
}

/** The PUBLISH for an entry, without a packet identifier. */
export function streamPublishPacket(connection: Connection, stream: string, entry: StreamEntry, qos: Qos, subscriptionIds: readonly number[], skipped: number): PublishPacket {
  const packet: PublishPacket = { type: PacketType.Publish, dup: false, qos, retain: false, topic: entry.topic, payload: entry.payload };
  if (connection.version !== 5) return packet;
  const userProperties: UserProperty[] = entry.properties?.userProperties === undefined ? [] : entry.properties.userProperties.slice();
  userProperties.push([streamNameProperty, stream], [streamOffsetProperty, String(entry.offset)]);
  if (skipped > 0) userProperties.push([streamSkippedProperty, String(skipped)]);
  const properties: Properties = { ...entry.properties, userProperties };
  if (subscriptionIds.length > 0) properties.subscriptionIdentifiers = subscriptionIds.slice();
  packet.properties = properties;
  return packet;
}

/**
 * Sends an entry to `connection` (the caller checked the window and the output cap). A QoS 1
 * delivery becomes inflight, owned by `owner`, and is returned; null when nothing waits for an
 * acknowledgement (QoS 0, or too large for the client: not sent, counted, passed like delivered).
 */
export function sendEntry(
  broker: Broker,
  connection: Connection,
  deliveries: SessionDeliveries,
  stream: string,
  entry: StreamEntry,
  qos: Qos,
  subscriptionIds: readonly number[],
  skipped: number,
  owner: DeliveryOwner,
): StreamDelivery | null {
  assert(qos <= 1, 'stream deliveries are QoS 0 or 1');
  const packet = streamPublishPacket(connection, stream, entry, qos, subscriptionIds, skipped);
  const packetId = qos === 0 ? 0 : allocateStreamPacketId(deliveries);
  if (packetId !== 0) packet.packetId = packetId;
  const plain = encodePacket(packet, connection.version);
  if (plain.length > connection.maximumPacketSize) {
    // [MQTT-3.1.2-25] Not sent; like any delivery too large for its client, counted and passed.
    broker.stats.drops.packetTooLarge += 1;
    return null;
  }
  const bytes = connection.outgoingAliasMaximum === 0 ? plain : aliasedPublishBytes(connection, packet, packetId);
  broker.send(connection, bytes);
  broker.stats.messagesSent += 1;
  broker.stats.streams.deliveries += 1;
  if (packetId === 0) return null;
  const delivery: StreamDelivery = { packetId, entry, stream, subscriptionIds, owner };
  deliveries.inflight.set(packetId, delivery);
  return delivery;
}

/**
 * On resume: every unacknowledged stream delivery again, DUP=1, same identifier [MQTT-4.4.0-1].
 * Returns those the new connection cannot take (larger than its Maximum Packet Size): the caller
 * treats them as delivered, like a fresh delivery that is too large.
 */
export function resendInflight(broker: Broker, connection: Connection, deliveries: SessionDeliveries): StreamDelivery[] {
  const tooLarge: StreamDelivery[] = [];
  for (const delivery of deliveries.inflight.values()) {
    const packet = streamPublishPacket(connection, delivery.stream, delivery.entry, 1, delivery.subscriptionIds, 0);
    packet.dup = true;
    packet.packetId = delivery.packetId;
    const plain = encodePacket(packet, connection.version);
    if (plain.length > connection.maximumPacketSize) {
      broker.stats.drops.packetTooLarge += 1;
      tooLarge.push(delivery);
      continue;
    }
    const bytes = connection.outgoingAliasMaximum === 0 ? plain : aliasedPublishBytes(connection, packet, delivery.packetId);
    broker.send(connection, bytes);
    broker.stats.messagesSent += 1;
  }
  return tooLarge;
}
