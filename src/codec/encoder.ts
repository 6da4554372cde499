/**
 * Encoders: a packet in, one Uint8Array of exactly the packet's size out.
 *
 * Each packet type has a size pass and a write pass: the size pass computes the remaining length
 * (string byte lengths, property lengths), the buffer is allocated once, and the write pass fills
 * it front to back. No intermediate arrays, nothing cached between calls.
 *
 * Versions. For 3.1 and 3.1.1 nothing MQTT 5.0-only is written: no properties, the 3.1.1 CONNACK
 * return code (a 5.0 reason code is mapped to its closest return code), the 3.1.1 SUBACK return
 * codes (any failure becomes 0x80), UNSUBACK without payload, two-byte PUBACK-family packets and
 * an empty DISCONNECT. For 5.0 the short forms the spec allows are used: a PUBACK-family packet
 * with reason 0 and no properties is two bytes long, with another reason and no properties three;
 * DISCONNECT and AUTH with reason 0 and no properties have remaining length 0.
 *
 * A PUBLISH going to many receivers is encoded once with `encodePublish`; `withPacketId` then
 * gives the first QoS 1/2 receiver the encoding itself with its packet identifier and DUP flag
 * written in, and each later one a copy (one memcpy and three byte writes): with one subscriber,
 * the common case, the PUBLISH is written once and never copied.
 * Output buffers come from byte-pool.ts: a medium-sized packet may be a view into a shared slab,
 * so users of the bytes must honour `byteOffset` and `byteLength`.
 * Malformed input to the encoder (a string over 65535 bytes, a property in a packet that cannot
 * carry it, AUTH on 3.1.1) is a programmer error and fails an assertion.
 */
import { assert } from '../assert.js';
import { allocateBytes, allocatePooledBytes } from './byte-pool.js';
import { binaryLength, stringLength, variableIntegerLength, writeBinary, writeString, writeUint16, writeVariableInteger } from './byte-writer.js';
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
  type SubackPacket,
  type SubscribePacket,
  type UnsubackPacket,
  type UnsubscribePacket,
} from './packets.js';
import { propertiesContentLength, willContext, writeProperties } from './properties.js';

/** Encodes one packet for a connection of the given version into a buffer of exactly its size. */
export function encodePacket(packet: Packet, version: ProtocolVersion): Uint8Array {
  switch (packet.type) {
    case PacketType.Connect:
      return encodeConnect(packet, version);
    case PacketType.Connack:
      return encodeConnack(packet, version);
    case PacketType.Publish:
      assert(packet.qos === 0 || packet.packetId !== undefined, 'PUBLISH with QoS > 0 needs a packet identifier');
      return encodePublish(packet, version).bytes;
    case PacketType.Puback:
    case PacketType.Pubrec:
    case PacketType.Pubrel:
    case PacketType.Pubcomp:
      return encodeAck(packet, version);
    case PacketType.Subscribe:
      return encodeSubscribe(packet, version);
    case PacketType.Suback:
      return encodeSuback(packet, version);
    case PacketType.Unsubscribe:
      return encodeUnsubscribe(packet, version);
    case PacketType.Unsuback:
      return encodeUnsuback(packet, version);
    case PacketType.Pingreq:
      return new Uint8Array([0xc0, 0]);
    case PacketType.Pingresp:
      return new Uint8Array([0xd0, 0]);
    case PacketType.Disconnect:
      return encodeDisconnect(packet, version);
    case PacketType.Auth:
      return encodeAuth(packet, version);
  }
}

/** A PUBLISH encoded once for many receivers. */
export interface EncodedPublish {
  bytes: Uint8Array;
  /** Offset of the two packet identifier bytes, or -1 for QoS 0. */
  packetIdOffset: number;
  /**
   * Whether `withPacketId` gave `bytes` itself to a receiver: from then on they are that
   * receiver's (read-only, maybe still waiting to be written), and later receivers get copies.
   */
  handedOut: boolean;
}

/**
 * Encodes a PUBLISH once; `packet.packetId` may be absent, and is filled per receiver. `into`, when
 * given, is filled and returned instead of a new object (a router's reusable variant slot).
 */
export function encodePublish(packet: PublishPacket, version: ProtocolVersion, into?: EncodedPublish): EncodedPublish {
  assert(packet.qos >= 0 && packet.qos <= 2, 'PUBLISH QoS is 0, 1 or 2');
  assert(packet.qos > 0 || !packet.dup, 'DUP must be 0 on QoS 0 [MQTT-3.3.1-2]');
  const topicLength = stringLength(packet.topic);
  const propertiesLength = version === 5 ? propertiesContentLength(packet.properties, PacketType.Publish) : 0;
  const propertiesBlock = version === 5 ? variableIntegerLength(propertiesLength) + propertiesLength : 0;
  const remainingLength = topicLength + (packet.qos > 0 ? 2 : 0) + propertiesBlock + packet.payload.length;
  const firstByte = 0x30 | (packet.dup ? 0x08 : 0) | (packet.qos << 1) | (packet.retain ? 0x01 : 0);
  const bytes = allocatePacket(remainingLength);
  let offset = writeFixedHeader(bytes, firstByte, remainingLength);
  offset = writeString(bytes, offset, packet.topic);
  let packetIdOffset = -1;
  if (packet.qos > 0) {
    packetIdOffset = offset;
    offset = writeUint16(bytes, offset, checkPacketIdOrAbsent(packet.packetId));
  }
  if (version === 5) offset = writePropertiesBlock(bytes, offset, packet.properties, propertiesLength);
  bytes.set(packet.payload, offset);
  assert(offset + packet.payload.length === bytes.length, 'PUBLISH size pass and write pass agree');
  if (into === undefined) return { bytes, packetIdOffset, handedOut: false };
  into.bytes = bytes;
  into.packetIdOffset = packetIdOffset;
  into.handedOut = false;
  return into;
}

/**
 * The PUBLISH for one receiver, with its packet identifier and DUP flag: the first time, the
 * encoding itself, written in place (a copy made for it alone was the larger part of a QoS 1
 * message's young-generation garbage); after that a copy of it, which leaves the bytes already
 * given out untouched.
 */
export function withPacketId(encoded: EncodedPublish, packetId: number, dup: boolean): Uint8Array {
  assert(encoded.packetIdOffset > 0, 'withPacketId needs a QoS 1 or 2 PUBLISH');
  assert(Number.isInteger(packetId) && packetId >= 1 && packetId <= 0xffff, 'packet identifier is 1..65535');
  let bytes = encoded.bytes;
  if (encoded.handedOut) {
    bytes = allocateBytes(encoded.bytes.length);
    bytes.set(encoded.bytes);
  } else {
    encoded.handedOut = true;
  }
  bytes[0] = dup ? bytes[0]! | 0x08 : bytes[0]! & 0xf7;
  bytes[encoded.packetIdOffset] = packetId >>> 8;
  bytes[encoded.packetIdOffset + 1] = packetId & 0xff;
  return bytes;
}

function checkPacketId(packetId: number): number {
  assert(Number.isInteger(packetId) && packetId >= 1 && packetId <= 0xffff, 'packet identifier is 1..65535 [MQTT-2.2.1-3]');
  return packetId;
}

function checkPacketIdOrAbsent(packetId: number | undefined): number {
  return packetId === undefined ? 0 : checkPacketId(packetId);
}

function allocatePacket(remainingLength: number): Uint8Array {
  return allocateBytes(1 + variableIntegerLength(remainingLength) + remainingLength);
}

function writeFixedHeader(bytes: Uint8Array, firstByte: number, remainingLength: number): number {
  bytes[0] = firstByte;
  return writeVariableInteger(bytes, 1, remainingLength);
}

/** Bytes of a property length prefix plus the list; 0 on 3.1/3.1.1. */
function propertiesBlockLength(properties: Properties | undefined, context: number, version: ProtocolVersion): number {
  if (version < 5) return 0;
  const length = propertiesContentLength(properties, context);
  return variableIntegerLength(length) + length;
}

function writePropertiesBlock(bytes: Uint8Array, offset: number, properties: Properties | undefined, contentLength: number): number {
  const start = writeVariableInteger(bytes, offset, contentLength);
  const end = writeProperties(bytes, start, properties);
  assert(end - start === contentLength, 'property size pass and write pass agree');
  return end;
}

function protocolNameOf(version: ProtocolVersion): string {
  return version === 3 ? 'MQIsdp' : 'MQTT';
}

function encodeConnect(packet: ConnectPacket, version: ProtocolVersion): Uint8Array {
  assert(packet.protocolVersion === version, 'CONNECT is encoded in its own protocol version');
  assert(packet.protocolName === protocolNameOf(version), 'protocol name matches the level');
  assert(version === 5 || packet.password === undefined || packet.username !== undefined, '3.1.1 password needs a user name [MQTT-3.1.2-22]');
  const will = packet.will;
  const propertiesLength = version === 5 ? propertiesContentLength(packet.properties, PacketType.Connect) : 0;
  const willPropertiesLength = version === 5 && will !== undefined ? propertiesContentLength(will.properties, willContext) : 0;
  let remainingLength = stringLength(packet.protocolName) + 4 + stringLength(packet.clientId);
  if (version === 5) remainingLength += variableIntegerLength(propertiesLength) + propertiesLength;
  if (will !== undefined) {
    remainingLength += stringLength(will.topic) + binaryLength(will.payload);
    if (version === 5) remainingLength += variableIntegerLength(willPropertiesLength) + willPropertiesLength;
  }
  if (packet.username !== undefined) remainingLength += stringLength(packet.username);
  if (packet.password !== undefined) remainingLength += binaryLength(packet.password);
  const bytes = allocatePacket(remainingLength);
  let offset = writeFixedHeader(bytes, 0x10, remainingLength);
  offset = writeString(bytes, offset, packet.protocolName);
  bytes[offset++] = version;
  bytes[offset++] = connectFlags(packet);
  offset = writeUint16(bytes, offset, packet.keepAliveSeconds);
  if (version === 5) offset = writePropertiesBlock(bytes, offset, packet.properties, propertiesLength);
  offset = writeString(bytes, offset, packet.clientId);
  if (will !== undefined) {
    if (version === 5) offset = writePropertiesBlock(bytes, offset, will.properties, willPropertiesLength);
    offset = writeString(bytes, offset, will.topic);
    offset = writeBinary(bytes, offset, will.payload);
  }
  if (packet.username !== undefined) offset = writeString(bytes, offset, packet.username);
  if (packet.password !== undefined) offset = writeBinary(bytes, offset, packet.password);
  assert(offset === bytes.length, 'CONNECT size pass and write pass agree');
  return bytes;
}

function connectFlags(packet: ConnectPacket): number {
  let flags = packet.cleanStart ? 0x02 : 0;
  if (packet.will !== undefined) {
    assert(packet.will.qos >= 0 && packet.will.qos <= 2, 'will QoS is 0, 1 or 2');
    flags |= 0x04 | (packet.will.qos << 3) | (packet.will.retain ? 0x20 : 0);
  }
  if (packet.password !== undefined) flags |= 0x40;
  if (packet.username !== undefined) flags |= 0x80;
  return flags;
}

/** The 3.1.1 return code closest to a 5.0 CONNACK reason code (3.1.1 codes pass unchanged). */
function connackReturnCode311(reasonCode: number): number {
  if (reasonCode <= 5) return reasonCode;
  switch (reasonCode) {
    case 0x84:
      return 1; // unacceptable protocol version
    case 0x85:
      return 2; // identifier rejected
    case 0x86:
    case 0x8c:
      return 4; // bad user name or password
    case 0x87:
    case 0x8a:
      return 5; // not authorized
    default:
      return 3; // server unavailable
  }
}

function encodeConnack(packet: ConnackPacket, version: ProtocolVersion): Uint8Array {
  assert(!packet.sessionPresent || packet.reasonCode === 0, 'a refused CONNACK has no session [MQTT-3.2.2-6]');
  const propertiesLength = version === 5 ? propertiesContentLength(packet.properties, PacketType.Connack) : 0;
  const remainingLength = 2 + (version === 5 ? variableIntegerLength(propertiesLength) + propertiesLength : 0);
  const bytes = allocatePacket(remainingLength);
  let offset = writeFixedHeader(bytes, 0x20, remainingLength);
  bytes[offset++] = packet.sessionPresent ? 1 : 0;
  bytes[offset++] = version === 5 ? packet.reasonCode : connackReturnCode311(packet.reasonCode);
  if (version === 5) offset = writePropertiesBlock(bytes, offset, packet.properties, propertiesLength);
  assert(offset === bytes.length, 'CONNACK size pass and write pass agree');
  return bytes;
}

function encodeAck(packet: AckPacket<4 | 5 | 6 | 7>, version: ProtocolVersion): Uint8Array {
  const firstByte = (packet.type << 4) | (packet.type === PacketType.Pubrel ? 0x02 : 0);
  const propertiesLength = version === 5 ? propertiesContentLength(packet.properties, packet.type) : 0;
  let remainingLength = 2;
  // Sections 3.4.2.1 and following: reason code and property length may be left out.
  if (version === 5 && (packet.reasonCode !== 0 || propertiesLength > 0)) remainingLength = 3;
  if (version === 5 && propertiesLength > 0) remainingLength += variableIntegerLength(propertiesLength) + propertiesLength;
  // From the slab even when tiny: one is made per QoS 1/2 message (byte-pool.ts).
  const bytes = allocatePooledBytes(1 + variableIntegerLength(remainingLength) + remainingLength);
  let offset = writeFixedHeader(bytes, firstByte, remainingLength);
  offset = writeUint16(bytes, offset, checkPacketId(packet.packetId));
  if (remainingLength >= 3) bytes[offset++] = packet.reasonCode;
  if (remainingLength >= 4) offset = writePropertiesBlock(bytes, offset, packet.properties, propertiesLength);
  assert(offset === bytes.length, 'ack size pass and write pass agree');
  return bytes;
}

function subscriptionOptions(subscription: SubscribePacket['subscriptions'][number], version: ProtocolVersion): number {
  assert(subscription.qos >= 0 && subscription.qos <= 2, 'subscription QoS is 0, 1 or 2');
  if (version < 5) return subscription.qos;
  assert(subscription.retainHandling >= 0 && subscription.retainHandling <= 2, 'retain handling is 0, 1 or 2');
  return subscription.qos | (subscription.noLocal ? 0x04 : 0) | (subscription.retainAsPublished ? 0x08 : 0) | (subscription.retainHandling << 4);
}

function encodeSubscribe(packet: SubscribePacket, version: ProtocolVersion): Uint8Array {
  assert(packet.subscriptions.length > 0, 'SUBSCRIBE carries at least one topic filter [MQTT-3.8.3-2]');
  const propertiesLength = version === 5 ? propertiesContentLength(packet.properties, PacketType.Subscribe) : 0;
  let remainingLength = 2 + propertiesBlockLength(packet.properties, PacketType.Subscribe, version);
  for (const subscription of packet.subscriptions) remainingLength += stringLength(subscription.topicFilter) + 1;
  const bytes = allocatePacket(remainingLength);
  let offset = writeFixedHeader(bytes, 0x82, remainingLength);
  offset = writeUint16(bytes, offset, checkPacketId(packet.packetId));
  if (version === 5) offset = writePropertiesBlock(bytes, offset, packet.properties, propertiesLength);
  for (const subscription of packet.subscriptions) {
    offset = writeString(bytes, offset, subscription.topicFilter);
    bytes[offset++] = subscriptionOptions(subscription, version);
  }
  assert(offset === bytes.length, 'SUBSCRIBE size pass and write pass agree');
  return bytes;
}

function encodeSuback(packet: SubackPacket, version: ProtocolVersion): Uint8Array {
  assert(packet.reasonCodes.length > 0, 'SUBACK carries one reason code per topic filter');
  const propertiesLength = version === 5 ? propertiesContentLength(packet.properties, PacketType.Suback) : 0;
  const remainingLength = 2 + propertiesBlockLength(packet.properties, PacketType.Suback, version) + packet.reasonCodes.length;
  const bytes = allocatePacket(remainingLength);
  let offset = writeFixedHeader(bytes, 0x90, remainingLength);
  offset = writeUint16(bytes, offset, checkPacketId(packet.packetId));
  if (version === 5) offset = writePropertiesBlock(bytes, offset, packet.properties, propertiesLength);
  for (const code of packet.reasonCodes) {
    // 3.1.1 has one failure code, 0x80 (section 3.9.3); every 5.0 failure maps onto it.
    bytes[offset++] = version === 5 || code < 0x80 ? code : 0x80;
  }
  assert(offset === bytes.length, 'SUBACK size pass and write pass agree');
  return bytes;
}

function encodeUnsubscribe(packet: UnsubscribePacket, version: ProtocolVersion): Uint8Array {
  assert(packet.topicFilters.length > 0, 'UNSUBSCRIBE carries at least one topic filter [MQTT-3.10.3-2]');
  const propertiesLength = version === 5 ? propertiesContentLength(packet.properties, PacketType.Unsubscribe) : 0;
  let remainingLength = 2 + propertiesBlockLength(packet.properties, PacketType.Unsubscribe, version);
  for (const topicFilter of packet.topicFilters) remainingLength += stringLength(topicFilter);
  const bytes = allocatePacket(remainingLength);
  let offset = writeFixedHeader(bytes, 0xa2, remainingLength);
  offset = writeUint16(bytes, offset, checkPacketId(packet.packetId));
  if (version === 5) offset = writePropertiesBlock(bytes, offset, packet.properties, propertiesLength);
  for (const topicFilter of packet.topicFilters) offset = writeString(bytes, offset, topicFilter);
  assert(offset === bytes.length, 'UNSUBSCRIBE size pass and write pass agree');
  return bytes;
}

function encodeUnsuback(packet: UnsubackPacket, version: ProtocolVersion): Uint8Array {
  if (version < 5) {
    // 3.1.1 section 3.11.3: UNSUBACK has no payload.
    const bytes = allocatePacket(2);
    writeUint16(bytes, writeFixedHeader(bytes, 0xb0, 2), checkPacketId(packet.packetId));
    return bytes;
  }
  assert(packet.reasonCodes.length > 0, '5.0 UNSUBACK carries one reason code per topic filter');
  const propertiesLength = propertiesContentLength(packet.properties, PacketType.Unsuback);
  const remainingLength = 2 + variableIntegerLength(propertiesLength) + propertiesLength + packet.reasonCodes.length;
  const bytes = allocatePacket(remainingLength);
  let offset = writeFixedHeader(bytes, 0xb0, remainingLength);
  offset = writeUint16(bytes, offset, checkPacketId(packet.packetId));
  offset = writePropertiesBlock(bytes, offset, packet.properties, propertiesLength);
  for (const code of packet.reasonCodes) bytes[offset++] = code;
  assert(offset === bytes.length, 'UNSUBACK size pass and write pass agree');
  return bytes;
}

/** DISCONNECT and AUTH: a reason code and properties, both omitted when 0 and empty. */
function encodeReasonAndProperties(firstByte: number, packet: DisconnectPacket | AuthPacket, version: ProtocolVersion): Uint8Array {
  if (version < 5) return new Uint8Array([firstByte, 0]);
  const propertiesLength = propertiesContentLength(packet.properties, packet.type);
  let remainingLength = 0;
  if (packet.reasonCode !== 0 || propertiesLength > 0) remainingLength = 1;
  // DISCONNECT may stop after the reason code (section 3.14.2.2.1); AUTH carries both or neither.
  if (propertiesLength > 0 || (remainingLength === 1 && packet.type === PacketType.Auth)) {
    remainingLength += variableIntegerLength(propertiesLength) + propertiesLength;
  }
  const bytes = allocatePacket(remainingLength);
  let offset = writeFixedHeader(bytes, firstByte, remainingLength);
  if (remainingLength >= 1) bytes[offset++] = packet.reasonCode;
  if (remainingLength >= 2) offset = writePropertiesBlock(bytes, offset, packet.properties, propertiesLength);
  assert(offset === bytes.length, 'DISCONNECT/AUTH size pass and write pass agree');
  return bytes;
}

function encodeDisconnect(packet: DisconnectPacket, version: ProtocolVersion): Uint8Array {
  return encodeReasonAndProperties(0xe0, packet, version);
}

function encodeAuth(packet: AuthPacket, version: ProtocolVersion): Uint8Array {
  assert(version === 5, 'AUTH exists only in MQTT 5.0');
  return encodeReasonAndProperties(0xf0, packet, version);
}
