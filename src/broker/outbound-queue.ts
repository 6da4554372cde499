/**
 * Messages on their way from the broker to one session: the inflight window, the queue behind
 * it, redelivery on resume, and the limits.
 *
 * - The window is min(client Receive Maximum, inflightPerSessionMax) QoS 1/2 PUBLISHes without
 *   their final acknowledgement [MQTT-4.9.0-2]; the rest waits in the session's queue, in order.
 *   A delivery takes a packet identifier only when it leaves the queue, so identifiers in use are
 *   bounded by the window, and a session's deliveries leave in the order they were queued (order
 *   per topic per publisher holds [MQTT-4.6.0-5]).
 * - QoS 0 goes straight to a connected client and is never stored; for a session without a
 *   connection it is dropped and counted (`drops.qos0Offline`). The spec lets a server queue it;
 *   we do not, because QoS 0 promises nothing and queueing it would spend the session's queue
 *   budget on messages nobody acknowledged.
 * - Queue limits (queuedMessagesPerSessionMax, queuedBytesPerSessionMax): on overflow,
 *   `drop-oldest` drops the oldest waiting delivery, `reject-new` the new one; every drop is a
 *   `delivery-dropped` record, a counter and a debug log.
 * - A PUBLISH larger than the client's Maximum Packet Size is not sent [MQTT-3.1.2-25]; it is
 *   counted and, for QoS 1/2, treated as delivered.
 * - Expired messages (MQTT 5.0 message expiry) are dropped when they reach the head of the queue;
 *   the forwarded expiry is the time remaining [MQTT-3.3.2-6].
 * - A QoS 2 PUBLISH leaves only once everything appended before it is durable: its delivery
 *   records and the records of the input that produced the message (the publisher's packet
 *   identifier, a will's deletion). Sent earlier, a crash could make the broker route it again
 *   under another identifier, even towards a volatile session that writes nothing, and the client
 *   would take the copy as a new message (exactly once broken across a crash; seeds 24, 2163).
 *   QoS 1 goes at once; a repeat is within its promise.
 * - Output cap (connectionOutputBytesMax): the host reports what it still buffers per connection
 *   (a reader that stopped reading), and every send of the current input adds to it. A new
 *   message for a connection at or past the cap is not sent: QoS 0 is dropped and counted
 *   (`drops.outputFull`, logged like every drop), QoS 1/2 waits in the queue like behind a full
 *   window (so the queue limits and policy bound it), and the queue moves again once a report
 *   says less than half the cap is buffered. Redeliveries, PUBREL and acknowledgements are
 *   never held by it: the inflight window bounds them, and holding them could stall a session.
 * - On resume, inflight deliveries are sent again first, PUBLISH with DUP=1 or PUBREL depending on
 *   their state [MQTT-4.4.0-1], then the queue is pumped.
 * - Retained messages owed to a new subscription go first, paced by the same window and cap
 *   (retained-replay.ts); the queue moves once they are all out.
 * - Stream deliveries (`$stream` subscriptions, streams/stream-delivery.ts) share the window and
 *   the packet identifiers: `inflightCount` counts both kinds, `allocatePacketId` skips both.
 *   They take what room is left once the queue has moved.
 */
import { assert } from '../assert.js';
import { type EncodedPublish, encodePacket, encodePublish } from '../codec/encoder.js';
import { PacketType, type Properties, type ProtocolVersion, type PublishPacket, type Qos } from '../codec/packets.js';
import { outputResumeBytes } from '../config.js';
import { crc32c } from '../store/crc32c.js';
import { nextPacketIdAfter, type SessionState, type StoredMessage } from '../store/state-store.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import { aliasedPublishBytes, publishBytesFor } from './outgoing-topic-alias.js';
import { advanceRetainedReplay, type ReplaySink } from './retained-replay.js';

export function windowSize(broker: Broker, connection: Connection): number {
  return Math.min(connection.receiveMaximum, broker.config.inflightPerSessionMax);
}

/** QoS 1/2 deliveries of the session awaiting acknowledgement: queued ones sent, and stream ones. */
export function inflightCount(broker: Broker, session: SessionState): number {
  return session.inflight.size + broker.streams.inflightCount(session);
}

/**
 * Bytes sent to the connection that are not yet known to have left the host: the host's last
 * report plus what this input sent (an earlier input's sends are covered by the host's report,
 * which it makes after writing them whenever the figure changed).
 */
export function outputBytes(broker: Broker, connection: Connection): number {
  return connection.outputInput === broker.inputSequence ? connection.outputBufferedBytes : connection.outputReportedBytes;
}

/** True when the connection's unsent output has reached connectionOutputBytesMax. */
export function isOutputFull(broker: Broker, connection: Connection): boolean {
  return outputBytes(broker, connection) >= broker.config.connectionOutputBytesMax;
}

/** True when the connection's unsent output is below the resume level (outputResumeBytes). */
export function isOutputDrained(broker: Broker, connection: Connection): boolean {
  return outputBytes(broker, connection) < outputResumeBytes(broker.config);
}

/**
 * True when a new QoS 1/2 delivery could be sent at once: nothing waits ahead of it (a queue, or
 * retained messages still owed to a new subscription: retained-replay.ts) and there is room.
 */
export function hasWindowRoom(broker: Broker, session: SessionState, connection: Connection): boolean {
  return session.queue.length === 0 && connection.retainedReplay === null && inflightCount(broker, session) < windowSize(broker, connection) && !isOutputFull(broker, connection);
}

/** The host reported the connection's buffered output: once drained, the session's queue moves again. */
export function resumeOutput(broker: Broker, connection: Connection, nowMs: number): void {
  const session = connection.session;
  if (session === null || (session.queue.length === 0 && connection.retainedReplay === null && !broker.streams.wantsOutput(session))) return;
  if (!isOutputDrained(broker, connection)) return;
  pump(broker, session, connection, nowMs);
}

function remainingExpirySeconds(message: StoredMessage, nowMs: number): number | undefined {
  if (message.expiryAtMs === null) return undefined;
  return Math.max(1, Math.ceil((message.expiryAtMs - nowMs) / 1000));
}

export function isExpired(message: StoredMessage, nowMs: number): boolean {
  return message.expiryAtMs !== null && nowMs >= message.expiryAtMs;
}

/** The PUBLISH a session receives for `message`, without a packet identifier. */
export function publishPacketFor(message: StoredMessage, version: ProtocolVersion, qos: Qos, retain: boolean, subscriptionIds: readonly number[], nowMs: number): PublishPacket {
  const packet: PublishPacket = { type: PacketType.Publish, dup: false, qos, retain, topic: message.topic, payload: message.payload };
  if (version !== 5) return packet;
  const expiry = remainingExpirySeconds(message, nowMs);
  if (message.properties === undefined && expiry === undefined && subscriptionIds.length === 0) return packet;
  const properties: Properties = { ...message.properties };
  if (expiry !== undefined) properties.messageExpiryInterval = expiry;
  if (subscriptionIds.length > 0) properties.subscriptionIdentifiers = subscriptionIds.slice();
  packet.properties = properties;
  return packet;
}

/**
 * A PUBLISH without properties, reused by `encodePublishFor`: most PUBLISHes carry none (every
 * 3.1.1 one), and the encoder only reads the packet, so one object serves every message instead
 * of one per message and receiver variant (young-generation garbage on the hot path).
 */
const plainPacket: PublishPacket = { type: PacketType.Publish, dup: false, qos: 0, retain: false, topic: '', payload: new Uint8Array(0) };
const noPayload = plainPacket.payload;

/**
 * `encodePublish(publishPacketFor(...))`, without building a packet when it has no properties;
 * into `into` when given (encoder.ts).
 */
export function encodePublishFor(
  message: StoredMessage,
  version: ProtocolVersion,
  qos: Qos,
  retain: boolean,
  subscriptionIds: readonly number[],
  nowMs: number,
  into?: EncodedPublish,
): EncodedPublish {
  const hasProperties = version === 5 && (message.properties !== undefined || message.expiryAtMs !== null || subscriptionIds.length > 0);
  if (hasProperties) return encodePublish(publishPacketFor(message, version, qos, retain, subscriptionIds, nowMs), version, into);
  assert(plainPacket.packetId === undefined && plainPacket.properties === undefined, 'the plain packet stays plain');
  plainPacket.qos = qos;
  plainPacket.retain = retain;
  plainPacket.topic = message.topic;
  plainPacket.payload = message.payload;
  const encoded = encodePublish(plainPacket, version, into);
  // Let go of the payload: it may be a view of a whole receive buffer.
  plainPacket.payload = noPayload;
  plainPacket.topic = '';
  return encoded;
}

export function allocatePacketId(broker: Broker, session: SessionState): number {
  let candidate = session.nextPacketId;
  // The window never exceeds 65535, so a free identifier exists; the loop is bounded by it.
  for (let attempt = 0; attempt < 0xffff; attempt++) {
    if (!session.inflight.has(candidate) && !broker.streams.packetIdInUse(session, candidate)) return candidate;
    candidate = nextPacketIdAfter(candidate);
  }
  assert(false, 'no free packet identifier');
}

function countSent(broker: Broker): void {
  broker.stats.messagesSent += 1;
}

/**
 * The drop report names the exact message: its stored id (0 when it was never stored) and a
 * CRC-32C of its payload, an identity the publisher can compute too. Drops are rare, except for
 * a reader that stopped reading (every QoS 0 message for it is one), which is why a host that
 * does not want debug lines turns them off (BrokerOptions.logDebug) and they are not built.
 */
function logDrop(broker: Broker, clientId: string, reason: string, message: StoredMessage): void {
  // Not even built when debug lines are not wanted: a stalled reader makes every message a drop.
  if (!broker.logDebug) return;
  broker.log('debug', 'message-dropped', { clientId, reason, topic: message.topic, messageId: message.messageId, payloadCrc32c: crc32c(message.payload) });
}

/**
 * Hands a freshly routed message to one session. `encoded` is the PUBLISH for the connected
 * client's version, qos, retain flag and subscription identifiers (null when offline).
 */
export function deliverNew(
  broker: Broker,
  session: SessionState,
  message: StoredMessage,
  qos: Qos,
  retain: boolean,
  subscriptionIds: readonly number[],
  encoded: EncodedPublish | null,
  nowMs: number,
): void {
  const connection = broker.online.get(session.clientId);
  if (qos === 0) {
    if (connection === undefined || encoded === null) {
      broker.stats.drops.qos0Offline += 1;
      return;
    }
    if (encoded.bytes.length > connection.maximumPacketSize) return dropTooLarge(broker, session.clientId, message);
    if (isOutputFull(broker, connection)) return dropOutputFull(broker, session.clientId, message);
    broker.send(connection, publishBytesFor(connection, encoded, message, qos, retain, subscriptionIds, nowMs, 0));
    countSent(broker);
    return;
  }
  assert(message.messageId !== 0, 'a QoS 1/2 delivery needs a stored message');
  if (connection !== undefined && encoded !== null && hasWindowRoom(broker, session, connection)) {
    sendInflight(broker, session, connection, message, qos, retain, subscriptionIds, encoded, nowMs);
    return;
  }
  // A copy kept for a receiver at its output cap throttles the publisher (throttle.ts).
  if (connection !== undefined) broker.throttle.kept(connection);
  enqueue(broker, session, message, qos, retain, subscriptionIds);
}

/** A new QoS 1/2 delivery straight into the window (the caller checked there is room). */
function sendInflight(
  broker: Broker,
  session: SessionState,
  connection: Connection,
  message: StoredMessage,
  qos: Qos,
  retain: boolean,
  subscriptionIds: readonly number[],
  encoded: EncodedPublish,
  nowMs: number,
): void {
  if (encoded.bytes.length > connection.maximumPacketSize) return dropTooLarge(broker, session.clientId, message);
  const packetId = allocatePacketId(broker, session);
  const sequence = session.nextDeliverySequence;
  broker.commit({ kind: 'delivery-queued', clientId: session.clientId, sequence, messageId: message.messageId, qos, retain, subscriptionIds, packetId, phase: 'publish' });
  const bytes = publishBytesFor(connection, encoded, message, qos, retain, subscriptionIds, nowMs, packetId);
  if (qos === 2) broker.sendQos2Publish(connection, bytes, broker.store.appendedLsn);
  else broker.send(connection, bytes);
  countSent(broker);
}

/**
 * Where a retained replay (retained-replay.ts) sends: the same window and output cap as every
 * other delivery, and RETAIN=1 on every copy [MQTT-3.3.1-9]. Made only for a step of a replay.
 */
function replaySink(broker: Broker, session: SessionState, connection: Connection, nowMs: number): ReplaySink {
  return {
    canSend: (qos) => !isOutputFull(broker, connection) && (qos === 0 || inflightCount(broker, session) < windowSize(broker, connection)),
    send: (message, qos, subscriptionIds) => {
      const encoded = encodePublishFor(message, connection.version, qos, true, subscriptionIds, nowMs);
      if (qos > 0) return sendInflight(broker, session, connection, message, qos, true, subscriptionIds, encoded, nowMs);
      if (encoded.bytes.length > connection.maximumPacketSize) return dropTooLarge(broker, session.clientId, message);
      broker.send(connection, publishBytesFor(connection, encoded, message, 0, true, subscriptionIds, nowMs, 0));
      countSent(broker);
    },
  };
}

function dropTooLarge(broker: Broker, clientId: string, message: StoredMessage): void {
  broker.stats.drops.packetTooLarge += 1;
  logDrop(broker, clientId, 'packet-too-large', message);
}

/** A stored delivery whose receiver may not read its topic (any more): access-control.ts `mayDeliver`. */
function dropNotAuthorized(broker: Broker, clientId: string, message: StoredMessage): void {
  broker.access!.receiveDenied(clientId, message.topic);
  logDrop(broker, clientId, 'not-authorized', message);
}

/** QoS 0 for a reader that stopped reading: QoS 0 promises nothing, and buffering it has no bound. */
function dropOutputFull(broker: Broker, clientId: string, message: StoredMessage): void {
  broker.stats.drops.outputFull += 1;
  logDrop(broker, clientId, 'output-full', message);
}

function enqueue(broker: Broker, session: SessionState, message: StoredMessage, qos: Qos, retain: boolean, subscriptionIds: readonly number[]): void {
  const { queuedMessagesPerSessionMax, queuedBytesPerSessionMax, queueOverflowPolicy } = broker.config;
  const bytes = message.payload.length;
  const fitsAlone = queuedMessagesPerSessionMax > 0 && bytes <= queuedBytesPerSessionMax;
  // Bounded by the queue length: each pass removes one waiting delivery.
  while (fitsAlone && queueOverflowPolicy === 'drop-oldest' && isFull(broker, session, bytes)) {
    const oldest = session.queue[0]!;
    // Logged before the record: the record may release the last reference to the message.
    logDrop(broker, session.clientId, 'queue-overflow', broker.state.messages.get(oldest.messageId)!);
    broker.commit({ kind: 'delivery-dropped', clientId: session.clientId, sequence: oldest.sequence, reason: 'queue-overflow' });
    broker.stats.drops.queueOverflow += 1;
  }
  if (!fitsAlone || isFull(broker, session, bytes)) {
    broker.stats.drops.queueOverflow += 1;
    logDrop(broker, session.clientId, 'queue-overflow', message);
    return;
  }
  const sequence = session.nextDeliverySequence;
  broker.commit({ kind: 'delivery-queued', clientId: session.clientId, sequence, messageId: message.messageId, qos, retain, subscriptionIds, packetId: 0, phase: 'queued' });
}

function isFull(broker: Broker, session: SessionState, bytes: number): boolean {
  return session.queue.length >= broker.config.queuedMessagesPerSessionMax || session.queuedBytes + bytes > broker.config.queuedBytesPerSessionMax;
}

/** Moves retained messages owed to new subscriptions, then queued deliveries, then stream entries, into the window while it has room. */
export function pump(broker: Broker, session: SessionState, connection: Connection, nowMs: number): void {
  if (connection.retainedReplay !== null && !advanceRetainedReplay(broker, connection, replaySink(broker, session, connection, nowMs), nowMs)) return;
  const window = windowSize(broker, connection);
  // Bounded by the queue length: every pass removes the head (or the loop stops at the output cap).
  while (session.queue.length > 0 && inflightCount(broker, session) < window && !isOutputFull(broker, connection)) {
    const head = session.queue[0]!;
    const message = broker.state.messages.get(head.messageId)!;
    if (isExpired(message, nowMs)) {
      broker.commit({ kind: 'delivery-dropped', clientId: session.clientId, sequence: head.sequence, reason: 'expired' });
      broker.stats.drops.expired += 1;
      logDrop(broker, session.clientId, 'expired', message);
      continue;
    }
    if (broker.access !== null && !broker.access.mayDeliver(connection, message.topic)) {
      broker.commit({ kind: 'delivery-dropped', clientId: session.clientId, sequence: head.sequence, reason: 'not-authorized' });
      dropNotAuthorized(broker, session.clientId, message);
      continue;
    }
    const encoded = encodePublishFor(message, connection.version, head.qos, head.retain, head.subscriptionIds, nowMs);
    if (encoded.bytes.length > connection.maximumPacketSize) {
      broker.commit({ kind: 'delivery-dropped', clientId: session.clientId, sequence: head.sequence, reason: 'packet-too-large' });
      dropTooLarge(broker, session.clientId, message);
      continue;
    }
    const packetId = allocatePacketId(broker, session);
    broker.commit({ kind: 'delivery-sent', clientId: session.clientId, sequence: head.sequence, packetId });
    const bytes = publishBytesFor(connection, encoded, message, head.qos, head.retain, head.subscriptionIds, nowMs, packetId);
    broker.send(connection, bytes, head.qos === 2 ? broker.store.appendedLsn : 0);
    countSent(broker);
  }
  // Then the session's stream readers take what room is left (streams/streams.ts).
  broker.streams.pumpSession(session, connection);
}

/**
 * On resume: every unacknowledged delivery again, in order, then the unacknowledged stream
 * deliveries, then whatever fits from the queue and the stream readers.
 */
export function redeliver(broker: Broker, session: SessionState, connection: Connection, nowMs: number): void {
  // values() is a new array: the loop may complete deliveries (and so change the table) as it goes.
  for (const delivery of session.inflight.values()) {
    if (delivery.phase === 'pubrel') {
      broker.sendPacket(connection, { type: PacketType.Pubrel, packetId: delivery.packetId, reasonCode: 0 });
      continue;
    }
    const message = broker.state.messages.get(delivery.messageId)!;
    if (broker.access !== null && !broker.access.mayDeliver(connection, message.topic)) {
      // Not sent again to a client that may no longer read it; its session forgets it.
      broker.commit({ kind: 'delivery-completed', clientId: session.clientId, packetId: delivery.packetId });
      dropNotAuthorized(broker, session.clientId, message);
      continue;
    }
    const packet = publishPacketFor(message, connection.version, delivery.qos, delivery.retain, delivery.subscriptionIds, nowMs);
    packet.dup = true;
    packet.packetId = delivery.packetId;
    const plainBytes = encodePacket(packet, connection.version);
    if (plainBytes.length > connection.maximumPacketSize) {
      // The new connection cannot take it: treated as delivered, like a fresh one would be.
      broker.commit({ kind: 'delivery-completed', clientId: session.clientId, packetId: delivery.packetId });
      dropTooLarge(broker, session.clientId, message);
      continue;
    }
    const bytes = connection.outgoingAliasMaximum === 0 ? plainBytes : aliasedPublishBytes(connection, packet, delivery.packetId);
    broker.send(connection, bytes, delivery.qos === 2 ? broker.store.appendedLsn : 0);
    countSent(broker);
  }
  broker.streams.sessionBound(session, connection);
  pump(broker, session, connection, nowMs);
}
