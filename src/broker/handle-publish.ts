/**
 * PUBLISH and PUBREL from a client: the inbound half of QoS 0/1/2.
 *
 * Checks, each a ProtocolViolation with its MQTT 5.0 reason code: topic alias 0 or above our
 * Topic Alias Maximum (0x94) [MQTT-3.3.2-9, -10], an unknown alias with an empty topic (0x82),
 * an invalid topic name (0x90), a subscription identifier (0x82) [MQTT-3.3.4-6], QoS above our
 * Maximum QoS (0x9B) [MQTT-3.2.2-11], RETAIN when retain is unavailable (0x9A) [MQTT-3.2.2-14],
 * more unacknowledged QoS 1/2 PUBLISHes than our Receive Maximum (0x93) [MQTT-3.3.4-7], more
 * PUBLISH packets per second than publishRatePerSecondMax (0x96; 3.1.1 has no code, so a plain
 * close). The limits among these are counted in `stats.limits`.
 *
 * QoS 2 is exactly once on the way in: the packet identifier is recorded and kept until PUBREL;
 * a PUBLISH with a recorded identifier is answered with PUBREC and not routed again
 * [MQTT-4.3.3-9]. The identifier's record is appended after the routing records, not before:
 * recovery keeps a prefix of the log, and a batch may be cut between two writes, so a surviving
 * identifier must imply that the routing it stands for survived too (else the client's resend
 * would be acknowledged and never routed: simulator seed 218). PUBACK / PUBREC / PUBCOMP wait for the records they depend on
 * to be durable. MQTT 5.0 PUBACK/PUBREC say 0x10 when nobody matched, and PUBACK says 0x97 when
 * a retained message was refused by the retained limits.
 *
 * Inbound topic aliases are resolved here (a per-connection map, bounded by our Topic Alias
 * Maximum). Aliases towards a client, up to the maximum it announced, are chosen where PUBLISHes
 * are encoded for it (outgoing-topic-alias.ts).
 */
import { encodePacket } from '../codec/encoder.js';
import { PacketType, type PublishPacket, type PubrelPacket } from '../codec/packets.js';
import { ReasonCode } from '../codec/reason-codes.js';
import { checkTopicName, isReservedTopic } from '../topics/validate.js';
import { answerDeniedPublish } from './access-control.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import { protocolError, violation } from './errors.js';
import { countTopicLimit } from './limits.js';
import { emptyTransientMessage, fillTransientMessage } from './message.js';
import { retainMessage } from './retained.js';

function resolveTopic(broker: Broker, connection: Connection, packet: PublishPacket): string {
  const alias = packet.properties?.topicAlias;
  if (alias === undefined) {
    if (packet.topic.length === 0) throw protocolError('empty-topic', 'PUBLISH without topic name or alias');
    return packet.topic;
  }
  if (alias === 0 || alias > broker.config.topicAliasMaximum) {
    throw violation(ReasonCode.TopicAliasInvalid, 'topic-alias-invalid', `topic alias ${alias} outside 1..${broker.config.topicAliasMaximum}`);
  }
  if (packet.topic.length > 0) return packet.topic;
  const topic = connection.topicAliases?.get(alias);
  if (topic === undefined) throw protocolError('topic-alias-unknown', `topic alias ${alias} was never set`);
  return topic;
}

function checkPublish(broker: Broker, connection: Connection, packet: PublishPacket, topic: string): void {
  const problem = checkTopicName(topic, broker.config);
  if (problem !== null) {
    countTopicLimit(broker.stats.limits, broker.config, topic);
    throw violation(ReasonCode.TopicNameInvalid, 'topic-name-invalid', problem);
  }
  if (packet.properties?.subscriptionIdentifiers !== undefined) throw protocolError('publish-subscription-id', 'a client PUBLISH must not carry a subscription identifier');
  if (packet.qos > broker.config.maximumQos) throw violation(ReasonCode.QosNotSupported, 'qos-not-supported', `QoS ${packet.qos} above maximum ${broker.config.maximumQos}`);
  if (packet.retain && !broker.config.retainAvailable) throw violation(ReasonCode.RetainNotSupported, 'retain-not-supported', 'retain is not available');
  // A cluster node refuses what NATS would refuse for ever (cluster/message-size.ts), before anything is routed.
  if (broker.cluster !== null && !broker.cluster.carries(topic, packet.payload, packet.qos, packet.retain, packet.properties)) {
    broker.stats.limits.clusterMessageBytesMax += 1;
    throw violation(ReasonCode.PacketTooLarge, 'cluster-message-too-large', `PUBLISH larger than the cluster carries (cluster.messageBytesMax ${broker.cluster.messageBytesMax})`);
  }
  const session = connection.session!;
  const isDuplicate = packet.qos === 2 && session.incomingQos2.has(packet.packetId!);
  if (connection.version === 5 && packet.qos > 0 && !isDuplicate && session.incomingQos2.size + connection.pendingPubacks >= broker.config.receiveMaximum) {
    broker.stats.limits.receiveMaximum += 1;
    throw violation(ReasonCode.ReceiveMaximumExceeded, 'receive-maximum-exceeded', 'too many unacknowledged QoS 1/2 PUBLISH packets');
  }
}

/**
 * The message being handled, reused for every PUBLISH (handlers run one at a time and never
 * nest): routing stores a copy when it must keep one, so nothing refers to it afterwards.
 */
const scratchMessage = emptyTransientMessage();
const noPayload = scratchMessage.payload;

export function handlePublish(broker: Broker, connection: Connection, packet: PublishPacket, nowMs: number): void {
  if (connection.publishBucket !== null && !connection.publishBucket.take(nowMs)) {
    broker.stats.limits.publishRatePerSecondMax += 1;
    throw violation(ReasonCode.MessageRateTooHigh, 'publish-rate-exceeded', `more than ${broker.config.publishRatePerSecondMax} PUBLISH packets per second`);
  }
  const topic = resolveTopic(broker, connection, packet);
  checkPublish(broker, connection, packet, topic);
  const alias = packet.properties?.topicAlias;
  if (alias !== undefined && packet.topic.length > 0) {
    connection.topicAliases ??= new Map();
    connection.topicAliases.set(alias, packet.topic);
  }
  const session = connection.session!;
  const packetId = packet.packetId ?? 0;
  if (packet.qos === 2 && session.incomingQos2.has(packetId)) {
    // [MQTT-4.3.3-9] Already received and not released: acknowledge again, do not route again. A
    // cluster node first finishes handing it over (and its retained put), or what its outbox held
    // at start if it was received before (cluster-node.ts incomingQos2Ticket). No LSN is needed:
    // on the first copy's connection this PUBREC queues behind the first one, and on a later
    // connection behind a CONNACK that waits for the resume's own, later record.
    broker.sendPacket(connection, { type: PacketType.Pubrec, packetId, reasonCode: 0 }, 0, false, broker.cluster === null ? 0 : broker.cluster.incomingQos2Ticket(session.clientId, packetId));
    return;
  }
  // Not routed, not retained; answered per version (access-control.ts).
  if (broker.access !== null && !broker.access.mayPublish(connection, topic)) return answerDeniedPublish(broker, connection, packet);
  // $SYS is the broker's own (sys-topics.ts), and $stream/ names are for reading streams: both
  // refused like a topic the rules deny.
  if (isReservedTopic(topic)) {
    broker.stats.authorization.publishDenied += 1;
    broker.log('info', 'not-authorized', { action: 'publish', clientId: connection.clientId, username: connection.username ?? null, topic, why: 'reserved for the broker' });
    return answerDeniedPublish(broker, connection, packet);
  }
  broker.stats.messagesReceived += 1;
  const appendedBefore = broker.store.appendedLsn;
  // Outbound QoS 2 copies wait for the inbound identifier's record too (broker.ts, inboundQos2Holds).
  if (packet.qos === 2) broker.beginInboundQos2Routing();
  const message = fillTransientMessage(scratchMessage, topic, packet.payload, packet.qos, packet.retain, packet.properties, nowMs);
  let retainRefused = false;
  let routed = message;
  if (packet.retain) {
    const outcome = retainMessage(broker, message);
    retainRefused = outcome.refused;
    if (outcome.stored !== null) routed = outcome.stored;
  }
  broker.throttle.beforeRoute();
  const matched = broker.router.route(routed, session.clientId, nowMs);
  // A cluster node hands the message to the others, a retained one to the bucket too; the acknowledgement waits for both.
  let handoff = broker.cluster === null ? 0 : broker.cluster.forward(routed, nowMs);
  if (broker.cluster !== null && packet.retain && !retainRefused) {
    handoff = broker.cluster.putRetained(topic, packet.qos, packet.payload, message.properties, packet.properties?.messageExpiryInterval ?? null, handoff);
  }
  // Let go of the payload: it is a view of the receive buffer.
  scratchMessage.payload = noPayload;
  scratchMessage.properties = undefined;
  // Pauses reading from this publisher if a receiver of a kept copy is at its output cap (throttle.ts).
  broker.throttle.afterPublish(connection, nowMs);
  if (packet.qos === 0) return;
  if (packet.qos === 2) broker.endInboundQos2Routing(broker.commit({ kind: 'incoming-qos2-recorded', clientId: session.clientId, packetId }));
  if (packet.qos === 2 && broker.cluster !== null) broker.cluster.incomingQos2Handled(session.clientId, packetId, handoff);
  const lsn = broker.lsnSince(appendedBefore);
  let reasonCode: number = ReasonCode.Success;
  // A cluster node cannot know whether another node had subscribers: it never says 0x10.
  if (connection.version === 5 && matched === 0 && broker.cluster === null) reasonCode = ReasonCode.NoMatchingSubscribers;
  if (packet.qos === 1) {
    if (connection.version === 5 && retainRefused) reasonCode = ReasonCode.QuotaExceeded;
    connection.pendingPubacks += 1;
    broker.send(connection, encodePacket({ type: PacketType.Puback, packetId, reasonCode }, connection.version), lsn, true, handoff);
    return;
  }
  broker.sendPacket(connection, { type: PacketType.Pubrec, packetId, reasonCode }, lsn, false, handoff);
}

export function handlePubrel(broker: Broker, connection: Connection, packet: PubrelPacket, _nowMs: number): void {
  const session = connection.session!;
  if (!session.incomingQos2.has(packet.packetId)) {
    // Unknown identifier (already released, e.g. a PUBREL resent after our PUBCOMP was lost).
    const reasonCode = connection.version === 5 ? ReasonCode.PacketIdentifierNotFound : 0;
    broker.sendPacket(connection, { type: PacketType.Pubcomp, packetId: packet.packetId, reasonCode });
    return;
  }
  const appendedBefore = broker.store.appendedLsn;
  broker.commit({ kind: 'incoming-qos2-released', clientId: session.clientId, packetId: packet.packetId });
  broker.sendPacket(connection, { type: PacketType.Pubcomp, packetId: packet.packetId, reasonCode: 0 }, broker.lsnSince(appendedBefore));
}
