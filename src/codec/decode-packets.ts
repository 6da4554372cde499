/**
 * One decoding function per control packet type, each reading the variable header and payload of
 * one whole packet from a bounds-checked ByteReader and returning the packet in canonical form
 * (see decoder.ts). They also hold the fixed-header flag rules. The framing (fixed header, size
 * limit, chunk handling) lives in decoder.ts; these functions never see partial packets.
 *
 * Every rule that rejects input cites the spec statement behind it: the first id is MQTT 5.0, a
 * "3.1.1" id follows where that spec numbers the same rule differently.
 */

import type { ByteReader } from './byte-reader.js';
import { malformed, ProtocolViolation, protocolError } from './errors.js';
import {
  type AckPacket,
  type AuthPacket,
  type ConnackPacket,
  type ConnectPacket,
  type DisconnectPacket,
  type Packet,
  PacketType,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  type Qos,
  type SubackPacket,
  type SubscribePacket,
  type Subscription,
  type UnsubackPacket,
  type UnsubscribePacket,
  type Will,
} from './packets.js';
import { readProperties, willContext } from './properties.js';
import {
  authReasonCodes,
  connackReasonCodes,
  connackReturnCodes311,
  disconnectReasonCodes,
  publishAckReasonCodes,
  publishReleaseReasonCodes,
  subackReasonCodes,
  subackReturnCodes311,
  unsubackReasonCodes,
} from './reason-code-sets.js';
import { ReasonCode } from './reason-codes.js';

/**
 * Checks the packet type and the four flag bits of the first byte ([MQTT-2.1.3-1]; 3.1.1
 * [MQTT-2.2.2-1], [MQTT-2.2.2-2]). `version` is the connection's version, undefined before CONNECT.
 */
export function checkFixedHeader(type: number, flags: number, version: ProtocolVersion | undefined): void {
  if (version === undefined && type !== PacketType.Connect) {
    // [MQTT-3.1.0-1] the first packet from a client must be CONNECT.
    throw protocolError('first-packet-not-connect', `first packet has type ${type}, not CONNECT`);
  }
  if (type === 0 || (type === PacketType.Auth && version !== undefined && version < 5)) {
    throw malformed('packet-type-reserved', `packet type ${type} is reserved`);
  }
  if (type === PacketType.Publish) {
    const qos = (flags >> 1) & 3;
    // [MQTT-3.3.1-4] QoS 3 is malformed.
    if (qos === 3) throw malformed('publish-qos-invalid', 'PUBLISH with QoS 3');
    // [MQTT-3.3.1-2] DUP must be 0 on QoS 0.
    if (qos === 0 && (flags & 0x08) !== 0) throw malformed('publish-dup-qos0', 'PUBLISH QoS 0 with DUP set');
    return;
  }
  // [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1]: these three carry 0b0010; all others 0.
  const expected = type === PacketType.Pubrel || type === PacketType.Subscribe || type === PacketType.Unsubscribe ? 2 : 0;
  if (flags !== expected) throw malformed('fixed-header-flags', `packet type ${type} has reserved flags ${flags}`);
}

/** Decodes the body (everything after the fixed header) of a packet whose header passed. */
export function decodeBody(reader: ByteReader, type: number, flags: number, version: ProtocolVersion): Packet {
  switch (type) {
    case PacketType.Connect:
      return decodeConnect(reader);
    case PacketType.Connack:
      return decodeConnack(reader, version);
    case PacketType.Publish:
      return decodePublish(reader, flags, version);
    case PacketType.Puback:
    case PacketType.Pubrec:
      return decodeAck(reader, type, version, publishAckReasonCodes);
    case PacketType.Pubrel:
    case PacketType.Pubcomp:
      return decodeAck(reader, type, version, publishReleaseReasonCodes);
    case PacketType.Subscribe:
      return decodeSubscribe(reader, version);
    case PacketType.Suback:
      return decodeSuback(reader, version);
    case PacketType.Unsubscribe:
      return decodeUnsubscribe(reader, version);
    case PacketType.Unsuback:
      return decodeUnsuback(reader, version);
    case PacketType.Pingreq:
      return { type: PacketType.Pingreq };
    case PacketType.Pingresp:
      return { type: PacketType.Pingresp };
    case PacketType.Disconnect:
      return decodeDisconnect(reader, version);
    default:
      return decodeAuth(reader);
  }
}

/** [MQTT-2.2.1-3] packet identifiers in use are non-zero. */
function readPacketId(reader: ByteReader): number {
  const packetId = reader.readUint16();
  if (packetId === 0) throw malformed('packet-id-zero', 'packet identifier 0');
  return packetId;
}

function checkReasonCode(code: number, allowed: ReadonlySet<number>, packetName: string): number {
  if (!allowed.has(code)) throw protocolError('reason-code-invalid', `reason code 0x${code.toString(16)} is not valid in ${packetName}`);
  return code;
}

/** [MQTT-3.1.2-1], [MQTT-3.1.2-2]: "MQTT" with level 4 or 5, or "MQIsdp" with level 3 (MQTT 3.1). */
function protocolVersionOf(protocolName: string, level: number): ProtocolVersion {
  if (protocolName === 'MQTT' && (level === 4 || level === 5)) return level;
  if (protocolName === 'MQIsdp' && level === 3) return 3;
  throw new ProtocolViolation(ReasonCode.UnsupportedProtocolVersion, 'protocol-unsupported', `unsupported protocol name ${JSON.stringify(protocolName)} with level ${level}`);
}

function decodeConnect(reader: ByteReader): ConnectPacket {
  const protocolName = reader.readString();
  const protocolVersion = protocolVersionOf(protocolName, reader.readByte());
  const flags = reader.readByte();
  // [MQTT-3.1.2-3] the reserved flag must be 0.
  if ((flags & 0x01) !== 0) throw malformed('connect-reserved-flag', 'CONNECT reserved flag set');
  const willFlag = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 3;
  const willRetain = (flags & 0x20) !== 0;
  const passwordFlag = (flags & 0x40) !== 0;
  const usernameFlag = (flags & 0x80) !== 0;
  // Section 3.1.2.6 (3.1.1 [MQTT-3.1.2-14]): will QoS 3 is malformed.
  if (willQos === 3) throw malformed('will-qos-invalid', 'will QoS 3');
  // Sections 3.1.2.6, 3.1.2.7 (3.1.1 [MQTT-3.1.2-13], [MQTT-3.1.2-15]): no will, no will QoS/retain.
  if (!willFlag && (willQos !== 0 || willRetain)) throw malformed('will-flags-inconsistent', 'will QoS or retain without will flag');
  // 3.1.1 [MQTT-3.1.2-22]: a password needs a user name (5.0 dropped this rule).
  if (protocolVersion < 5 && passwordFlag && !usernameFlag) {
    throw malformed('password-without-username', 'password flag without user name flag');
  }
  const keepAliveSeconds = reader.readUint16();
  const properties = protocolVersion === 5 ? readProperties(reader, PacketType.Connect) : undefined;
  const clientId = reader.readString();
  const packet: ConnectPacket = { type: PacketType.Connect, protocolName, protocolVersion, cleanStart: (flags & 0x02) !== 0, keepAliveSeconds, clientId };
  if (willFlag) packet.will = decodeWill(reader, protocolVersion, willQos as Qos, willRetain);
  if (usernameFlag) packet.username = reader.readString();
  if (passwordFlag) packet.password = reader.readBinaryCopy();
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeWill(reader: ByteReader, version: ProtocolVersion, qos: Qos, retain: boolean): Will {
  const properties = version === 5 ? readProperties(reader, willContext) : undefined;
  const topic = reader.readString();
  const will: Will = { topic, payload: reader.readBinaryCopy(), qos, retain };
  if (properties !== undefined) will.properties = properties;
  return will;
}

function decodeConnack(reader: ByteReader, version: ProtocolVersion): ConnackPacket {
  const acknowledgeFlags = reader.readByte();
  // [MQTT-3.2.2-1] bits 7-1 of the acknowledge flags are reserved.
  if ((acknowledgeFlags & 0xfe) !== 0) throw malformed('connack-reserved-flags', 'CONNACK reserved flags set');
  const sessionPresent = acknowledgeFlags === 1;
  const reasonCode = checkReasonCode(reader.readByte(), version === 5 ? connackReasonCodes : connackReturnCodes311, 'CONNACK');
  // [MQTT-3.2.2-6] (3.1.1 [MQTT-3.2.2-4]) a refused connection has no session.
  if (sessionPresent && reasonCode !== 0) throw protocolError('connack-session-present', 'session present on a refused CONNACK');
  const packet: ConnackPacket = { type: PacketType.Connack, sessionPresent, reasonCode };
  const properties = version === 5 ? readProperties(reader, PacketType.Connack) : undefined;
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodePublish(reader: ByteReader, flags: number, version: ProtocolVersion): PublishPacket {
  const qos = ((flags >> 1) & 3) as Qos;
  const topic = reader.readTopic();
  const packetId = qos > 0 ? readPacketId(reader) : 0;
  const properties = version === 5 ? readProperties(reader, PacketType.Publish) : undefined;
  checkPublishTopic(topic, version, properties);
  const packet: PublishPacket = { type: PacketType.Publish, dup: (flags & 0x08) !== 0, qos, retain: (flags & 0x01) !== 0, topic, payload: reader.readRestView() };
  // [MQTT-2.2.1-2] a QoS 0 PUBLISH has no packet identifier, so the field is absent.
  if (qos > 0) packet.packetId = packetId;
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function checkPublishTopic(topic: string, version: ProtocolVersion, properties: Properties | undefined): void {
  for (let index = 0; index < topic.length; index++) {
    const code = topic.charCodeAt(index);
    // [MQTT-3.3.2-2] the topic name of a PUBLISH must not contain wildcards.
    if (code === 0x2b || code === 0x23) throw new ProtocolViolation(ReasonCode.TopicNameInvalid, 'publish-topic-wildcard', 'wildcard in PUBLISH topic');
  }
  if (topic.length > 0) return;
  // [MQTT-4.7.3-1] topic names are at least one character; 5.0 lets a Topic Alias stand in
  // (section 3.3.2.3.4: a zero length topic without a Topic Alias is a Protocol Error).
  if (version < 5 || properties?.topicAlias === undefined) throw protocolError('publish-topic-empty', 'empty PUBLISH topic without topic alias');
}

function decodeAck<T extends 4 | 5 | 6 | 7>(reader: ByteReader, type: T, version: ProtocolVersion, allowed: ReadonlySet<number>): AckPacket<T> {
  const packet: AckPacket<T> = { type, packetId: readPacketId(reader), reasonCode: 0 };
  // Sections 3.4.2.1 and following: the reason code and property length may be omitted.
  if (version === 5 && reader.remaining > 0) {
    packet.reasonCode = checkReasonCode(reader.readByte(), allowed, `packet type ${type}`);
    if (reader.remaining > 0) {
      const properties = readProperties(reader, type);
      if (properties !== undefined) packet.properties = properties;
    }
  }
  return packet;
}

function decodeSubscribe(reader: ByteReader, version: ProtocolVersion): SubscribePacket {
  const packet: SubscribePacket = { type: PacketType.Subscribe, packetId: readPacketId(reader), subscriptions: [] };
  const properties = version === 5 ? readProperties(reader, PacketType.Subscribe) : undefined;
  while (reader.remaining > 0) {
    const topicFilter = reader.readString();
    packet.subscriptions.push(decodeSubscriptionOptions(topicFilter, reader.readByte(), version));
  }
  // [MQTT-3.8.3-2] (3.1.1 [MQTT-3.8.3-3]) at least one topic filter.
  if (packet.subscriptions.length === 0) throw protocolError('subscribe-empty', 'SUBSCRIBE without topic filters');
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeSubscriptionOptions(topicFilter: string, options: number, version: ProtocolVersion): Subscription {
  const qos = options & 3;
  if (version < 5) {
    // 3.1.1 [MQTT-3-8.3-4]: reserved bits and QoS 3 make the packet malformed.
    if ((options & 0xfc) !== 0 || qos === 3) throw malformed('subscription-options-invalid', 'SUBSCRIBE options reserved bits or QoS 3');
    return { topicFilter, qos: qos as Qos, noLocal: false, retainAsPublished: false, retainHandling: 0 };
  }
  // [MQTT-3.8.3-5] bits 7-6 are reserved.
  if ((options & 0xc0) !== 0) throw malformed('subscription-options-reserved', 'SUBSCRIBE options reserved bits set');
  // Section 3.8.3.1: Maximum QoS 3 and Retain Handling 3 are Protocol Errors.
  if (qos === 3) throw protocolError('subscription-qos-invalid', 'SUBSCRIBE maximum QoS 3');
  const retainHandling = (options >> 4) & 3;
  if (retainHandling === 3) throw protocolError('subscription-retain-handling-invalid', 'retain handling 3');
  const noLocal = (options & 0x04) !== 0;
  // [MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error.
  if (noLocal && topicFilter.startsWith('$share/')) throw protocolError('subscription-shared-no-local', 'No Local on a shared subscription');
  return { topicFilter, qos: qos as Qos, noLocal, retainAsPublished: (options & 0x08) !== 0, retainHandling: retainHandling as 0 | 1 | 2 };
}

function decodeSuback(reader: ByteReader, version: ProtocolVersion): SubackPacket {
  const packet: SubackPacket = { type: PacketType.Suback, packetId: readPacketId(reader), reasonCodes: [] };
  const properties = version === 5 ? readProperties(reader, PacketType.Suback) : undefined;
  const allowed = version === 5 ? subackReasonCodes : subackReturnCodes311;
  while (reader.remaining > 0) packet.reasonCodes.push(checkReasonCode(reader.readByte(), allowed, 'SUBACK'));
  // Section 3.9.3: one reason code per topic filter of the SUBSCRIBE, which had at least one.
  if (packet.reasonCodes.length === 0) throw protocolError('suback-empty', 'SUBACK without reason codes');
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeUnsubscribe(reader: ByteReader, version: ProtocolVersion): UnsubscribePacket {
  const packet: UnsubscribePacket = { type: PacketType.Unsubscribe, packetId: readPacketId(reader), topicFilters: [] };
  const properties = version === 5 ? readProperties(reader, PacketType.Unsubscribe) : undefined;
  while (reader.remaining > 0) packet.topicFilters.push(reader.readString());
  // [MQTT-3.10.3-2] at least one topic filter.
  if (packet.topicFilters.length === 0) throw protocolError('unsubscribe-empty', 'UNSUBSCRIBE without topic filters');
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeUnsuback(reader: ByteReader, version: ProtocolVersion): UnsubackPacket {
  const packet: UnsubackPacket = { type: PacketType.Unsuback, packetId: readPacketId(reader), reasonCodes: [] };
  // 3.1.1 UNSUBACK has no payload (section 3.11.3); trailing bytes are caught by the framer.
  if (version < 5) return packet;
  const properties = readProperties(reader, PacketType.Unsuback);
  while (reader.remaining > 0) packet.reasonCodes.push(checkReasonCode(reader.readByte(), unsubackReasonCodes, 'UNSUBACK'));
  if (packet.reasonCodes.length === 0) throw protocolError('unsuback-empty', 'UNSUBACK without reason codes');
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function decodeDisconnect(reader: ByteReader, version: ProtocolVersion): DisconnectPacket {
  const packet: DisconnectPacket = { type: PacketType.Disconnect, reasonCode: 0 };
  // Section 3.14.2.1: no reason code means 0; no property length (remaining < 2) means none.
  if (version === 5 && reader.remaining > 0) {
    packet.reasonCode = checkReasonCode(reader.readByte(), disconnectReasonCodes, 'DISCONNECT');
    if (reader.remaining > 0) {
      const properties = readProperties(reader, PacketType.Disconnect);
      if (properties !== undefined) packet.properties = properties;
    }
  }
  return packet;
}

function decodeAuth(reader: ByteReader): AuthPacket {
  const packet: AuthPacket = { type: PacketType.Auth, reasonCode: 0 };
  // Section 3.15.2.1: reason code and property length are omitted together (0, none) or both present.
  if (reader.remaining === 0) return packet;
  packet.reasonCode = checkReasonCode(reader.readByte(), authReasonCodes, 'AUTH');
  const properties = readProperties(reader, PacketType.Auth);
  if (properties !== undefined) packet.properties = properties;
  return packet;
}
