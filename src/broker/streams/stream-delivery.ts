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
import { allocateBytes } from '../../codec/byte-pool.js';
import { stringLength, variableIntegerLength, writeString, writeUint16, writeVariableInteger } from '../../codec/byte-writer.js';
import { encodePacket } from '../../codec/encoder.js';
import { PacketType, type Properties, type ProtocolVersion, type PublishPacket, type Qos, type UserProperty } from '../../codec/packets.js';
import type { SessionState } from '../../store/state-store.js';
import { nextPacketIdAfter } from '../../store/state-store.js';
import { copyPayload, payloadLength, type StreamEntry } from '../../store/streams/stream-entry.js';
import type { Broker } from '../broker.js';
import type { Connection } from '../connection.js';
import { aliasedPublishBytes } from '../outgoing-topic-alias.js';
import { type DeliveryOwner, InflightTable } from './inflight-table.js';
import { streamOffsetProperty } from './stream-filter.js';

export const streamNameProperty = 'stream';
export const streamSkippedProperty = 'stream-skipped';
export type { DeliveryOwner } from './inflight-table.js';

/** A session's stream deliveries waiting for PUBACK (inflight-table.ts). */
export interface SessionDeliveries {
  readonly session: SessionState;
  readonly inflight: InflightTable;
  /** Where the next identifier search starts (a hint; both identifier spaces are checked). */
  nextPacketId: number;
}

export function createSessionDeliveries(session: SessionState): SessionDeliveries {
  return { session, inflight: new InflightTable(), nextPacketId: session.nextPacketId };
}

/**
 * A packet identifier free in the session's queued deliveries and its stream deliveries, whose
 * slot in the stream deliveries' table is free too (inflight-table.ts): the table's slots are
 * doubled when no such identifier exists at their count; at 65,536 slots the slot is always free.
 */
export function allocateStreamPacketId(deliveries: SessionDeliveries): number {
  const session = deliveries.session;
  const table = deliveries.inflight;
  table.reserveSlot();
  for (;;) {
    let candidate = deliveries.nextPacketId;
    // Bounded: the window (at most 65,535) holds fewer identifiers than there are.
    for (let attempt = 0; attempt < 0xffff; attempt++) {
      if (!session.inflight.has(candidate) && table.slotFree(candidate)) {
        deliveries.nextPacketId = nextPacketIdAfter(candidate);
        return candidate;
      }
      candidate = nextPacketIdAfter(candidate);
    }
    assert(table.growSlots(), 'no free packet identifier');
  }
}

/** The subscription identifiers of a delivery (one at most); the array is a scratch one, read before the next call. */
function subscriptionIdsOf(subscriptionId: number): readonly number[] {
  if (subscriptionId === 0) return noSubscriptionIds;
  oneSubscriptionId[0] = subscriptionId;
  return oneSubscriptionId;
}

const noSubscriptionIds: readonly number[] = Object.freeze([]);
const oneSubscriptionId: number[] = [0];

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

const streamNameKeyBytes = stringLength(streamNameProperty);
const streamOffsetKeyBytes = stringLength(streamOffsetProperty);
const streamSkippedKeyBytes = stringLength(streamSkippedProperty);
/** MQTT 5.0 property identifiers written by `encodeStreamPublish`. */
const subscriptionIdentifierId = 0x0b;
const userPropertyId = 0x26;

/** Digits of a non-negative integer written in decimal. */
function decimalDigits(value: number): number {
  let digits = 1;
  for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits += 1;
  return digits;
}

/** Writes `value` in decimal as a two-byte length prefixed string; returns the offset after it. */
function writeDecimalString(bytes: Uint8Array, offset: number, value: number, digits: number): number {
  writeUint16(bytes, offset, digits);
  let rest = value;
  for (let index = offset + 1 + digits; index > offset + 1; index--) {
    bytes[index] = 0x30 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  return offset + 2 + digits;
}

function writeUserProperty(bytes: Uint8Array, offset: number, key: string, value: string): number {
  bytes[offset] = userPropertyId;
  return writeString(bytes, writeString(bytes, offset + 1, key), value);
}

/**
 * Bytes a stream PUBLISH repeats from one delivery to the next, encoded once and copied after:
 * the topic as a length-prefixed string, and the user properties `stream` = the stream's name and
 * the key of `stream-offset` (its value, the offset, is written in digits each time). One of each
 * is remembered (a replay sends one stream's entries, mostly of one topic, thousands in a row).
 */
class EncodedStrings {
  private topic = '';
  private topicBytes = new Uint8Array(2);
  private stream = '';
  private streamPrefixBytes = new Uint8Array(0);

  /** The topic as an MQTT string (length prefix included). */
  topicOf(topic: string): Uint8Array {
    if (topic !== this.topic) {
      const bytes = new Uint8Array(stringLength(topic));
      writeString(bytes, 0, topic);
      this.topic = topic;
      this.topicBytes = bytes;
    }
    return this.topicBytes;
  }

  /** User property `stream` = `stream`, then the identifier and key of `stream-offset`. */
  streamPrefixOf(stream: string): Uint8Array {
    if (stream !== this.stream || this.streamPrefixBytes.length === 0) {
      const bytes = new Uint8Array(1 + streamNameKeyBytes + stringLength(stream) + 1 + streamOffsetKeyBytes);
      const end = writeUserProperty(bytes, 0, streamNameProperty, stream);
      bytes[end] = userPropertyId;
      writeString(bytes, end + 1, streamOffsetProperty);
      this.stream = stream;
      this.streamPrefixBytes = bytes;
    }
    return this.streamPrefixBytes;
  }
}

const encodedStrings = new EncodedStrings();

/** Copies `source` into `target` at `at`, byte by byte when short (no view made); returns the offset after it. */
function copyBytes(source: Uint8Array, target: Uint8Array, at: number): number {
  const length = source.length;
  if (length > 64) target.set(source, at);
  else for (let index = 0; index < length; index++) target[at + index] = source[index]!;
  return at + length;
}

/** The sizes `writeStreamPublish` works from, computed once per delivery by `measureStreamPublish`. */
export interface StreamPublishSize {
  /** The whole packet. */
  packetBytes: number;
  remainingLength: number;
  propertiesLength: number;
  offsetDigits: number;
  skippedDigits: number;
}

/**
 * The size pass of the direct encoding of an entry without properties of its own (see
 * `encodeStreamPublish`), into `into` (a scratch object the caller reuses); returns the packet's size.
 */
export function measureStreamPublish(version: ProtocolVersion, stream: string, entry: StreamEntry, qos: Qos, subscriptionIds: readonly number[], skipped: number, into: StreamPublishSize): number {
  assert(entry.properties === undefined, 'the direct encoding is for entries without properties');
  const offsetDigits = decimalDigits(entry.offset);
  const skippedDigits = skipped > 0 ? decimalDigits(skipped) : 0;
  let propertiesLength = 0;
  if (version === 5) {
    for (const identifier of subscriptionIds) propertiesLength += 1 + variableIntegerLength(identifier);
    propertiesLength += encodedStrings.streamPrefixOf(stream).length + 2 + offsetDigits;
    if (skipped > 0) propertiesLength += 1 + streamSkippedKeyBytes + 2 + skippedDigits;
  }
  const propertiesBlock = version === 5 ? variableIntegerLength(propertiesLength) + propertiesLength : 0;
  const remainingLength = encodedStrings.topicOf(entry.topic).length + (qos > 0 ? 2 : 0) + propertiesBlock + payloadLength(entry);
  into.packetBytes = 1 + variableIntegerLength(remainingLength) + remainingLength;
  into.remainingLength = remainingLength;
  into.propertiesLength = propertiesLength;
  into.offsetDigits = offsetDigits;
  into.skippedDigits = skippedDigits;
  return into.packetBytes;
}

/** The write pass: the packet `size` was measured for, at `bytes[start]`; returns the offset after it. */
export function writeStreamPublish(
  bytes: Uint8Array,
  start: number,
  version: ProtocolVersion,
  stream: string,
  entry: StreamEntry,
  qos: Qos,
  packetId: number,
  subscriptionIds: readonly number[],
  skipped: number,
  size: StreamPublishSize,
): number {
  assert((qos === 0) === (packetId === 0), 'a packet identifier exactly for QoS 1');
  bytes[start] = 0x30 | (qos << 1);
  let offset = copyBytes(encodedStrings.topicOf(entry.topic), bytes, writeVariableInteger(bytes, start + 1, size.remainingLength));
  if (qos > 0) offset = writeUint16(bytes, offset, packetId);
  if (version === 5) {
    offset = writeVariableInteger(bytes, offset, size.propertiesLength);
    for (const identifier of subscriptionIds) {
      bytes[offset] = subscriptionIdentifierId;
      offset = writeVariableInteger(bytes, offset + 1, identifier);
    }
    offset = writeDecimalString(bytes, copyBytes(encodedStrings.streamPrefixOf(stream), bytes, offset), entry.offset, size.offsetDigits);
    if (skipped > 0) {
      bytes[offset] = userPropertyId;
      offset = writeDecimalString(bytes, writeString(bytes, offset + 1, streamSkippedProperty), skipped, size.skippedDigits);
    }
  }
  offset = copyPayload(entry, bytes, offset);
  assert(offset - start === size.packetBytes, 'stream PUBLISH size pass and write pass agree');
  return offset;
}

const scratchSize: StreamPublishSize = { packetBytes: 0, remainingLength: 0, propertiesLength: 0, offsetDigits: 0, skippedDigits: 0 };

/**
 * The PUBLISH of an entry without properties of its own, written straight into one buffer: the
 * bytes `encodePacket(streamPublishPacket(...))` gives, without the packet and property objects
 * and the offset's string that the general path builds per delivery (a replay sends hundreds of
 * thousands a second, and those objects were most of its garbage). Properties go in the codec's
 * order: subscription identifiers (0x0B), then the user properties `stream`, `stream-offset` and
 * `stream-skipped`.
 */
export function encodeStreamPublish(version: ProtocolVersion, stream: string, entry: StreamEntry, qos: Qos, packetId: number, subscriptionIds: readonly number[], skipped: number): Uint8Array {
  const bytes = allocateBytes(measureStreamPublish(version, stream, entry, qos, subscriptionIds, skipped, scratchSize));
  writeStreamPublish(bytes, 0, version, stream, entry, qos, packetId, subscriptionIds, skipped, scratchSize);
  return bytes;
}

/** Bytes of one run buffer: PUBLISHes larger than this are sent on their own. */
export const publishRunBytes = 64 * 1024;

/**
 * Consecutive stream PUBLISHes for one connection, written into one buffer and sent as one chunk
 * (`Broker.send` with their count) when the run ends, the buffer is full, or something else must
 * be sent first. One send instead of one per entry: the host writes one buffer instead of a
 * writev of thousands of small views. The bytes on the wire are the same, in the same order.
 * A buffer is never written again once part of it was sent (the host may still hold that part),
 * so a full one is replaced, not reused; what is pending counts against the connection's output
 * cap (`pendingBytes`), so the cap is applied as if every PUBLISH had been sent at once.
 */
export class PublishRun {
  private bytes = new Uint8Array(publishRunBytes);
  /** Start of the pending PUBLISHes in `bytes`, and the end of what is written. */
  private start = 0;
  private end = 0;
  private packets = 0;
  private connection: Connection | null = null;
  readonly size: StreamPublishSize = { packetBytes: 0, remainingLength: 0, propertiesLength: 0, offsetDigits: 0, skippedDigits: 0 };

  get pendingBytes(): number {
    return this.end - this.start;
  }

  /**
   * Room for `packetBytes` more for `connection` (after sending what was pending, if need be);
   * false when one never fits, after sending what was pending: the caller sends that PUBLISH on
   * its own, and it must not overtake those before it (sim seed 1839: offset 8 went out ahead of
   * offset 7, which waited in the run).
   */
  reserve(broker: Broker, connection: Connection, packetBytes: number): boolean {
    if (packetBytes > publishRunBytes) {
      this.flush(broker);
      return false;
    }
    if (this.connection !== connection) this.flush(broker);
    if (this.end + packetBytes > this.bytes.length) {
      this.flush(broker);
      this.bytes = new Uint8Array(publishRunBytes);
      this.start = 0;
      this.end = 0;
    }
    this.connection = connection;
    return true;
  }

  /** Writes the PUBLISH measured into `size` (room was reserved). */
  write(version: ProtocolVersion, stream: string, entry: StreamEntry, qos: Qos, packetId: number, subscriptionIds: readonly number[], skipped: number): void {
    assert(this.end + this.size.packetBytes <= this.bytes.length, 'room was reserved for the PUBLISH');
    this.end = writeStreamPublish(this.bytes, this.end, version, stream, entry, qos, packetId, subscriptionIds, skipped, this.size);
    this.packets += 1;
  }

  /** Sends what is pending, as one chunk. */
  flush(broker: Broker): void {
    if (this.packets === 0) return;
    assert(this.connection !== null && this.end > this.start, 'pending PUBLISHes have a connection and bytes');
    broker.send(this.connection, this.bytes.subarray(this.start, this.end), 0, false, 0, this.packets);
    this.start = this.end;
    this.packets = 0;
  }
}

/**
 * Sends an entry to `connection` (the caller checked the window and the output cap). A QoS 1
 * delivery becomes inflight, owned by `owner`, and its packet identifier is returned; 0 when
 * nothing waits for an acknowledgement (QoS 0, or too large for the client: not sent, counted,
 * passed like delivered). `subscriptionId` is 0 for none.
 */
export function sendEntry(
  broker: Broker,
  connection: Connection,
  deliveries: SessionDeliveries,
  stream: string,
  entry: StreamEntry,
  qos: Qos,
  subscriptionId: number,
  skipped: number,
  owner: DeliveryOwner,
  run: PublishRun | null = null,
): number {
  assert(qos <= 1, 'stream deliveries are QoS 0 or 1');
  const packetId = qos === 0 ? 0 : allocateStreamPacketId(deliveries);
  const subscriptionIds = subscriptionIdsOf(subscriptionId);
  // The common case (no topic aliases, an entry without properties of its own) is written
  // straight from the entry, into the run when there is one; anything else goes through a
  // packet object and the codec, after what the run holds.
  if (run !== null && connection.outgoingAliasMaximum === 0 && entry.properties === undefined) {
    const packetBytes = measureStreamPublish(connection.version, stream, entry, qos, subscriptionIds, skipped, run.size);
    if (packetBytes > connection.maximumPacketSize) return tooLarge(broker);
    if (run.reserve(broker, connection, packetBytes)) run.write(connection.version, stream, entry, qos, packetId, subscriptionIds, skipped);
    else broker.send(connection, encodeStreamPublish(connection.version, stream, entry, qos, packetId, subscriptionIds, skipped));
  } else {
    run?.flush(broker);
    const packet = streamPublishPacket(connection, stream, entry, qos, subscriptionIds, skipped);
    if (packetId !== 0) packet.packetId = packetId;
    const plain = encodePacket(packet, connection.version);
    if (plain.length > connection.maximumPacketSize) return tooLarge(broker);
    broker.send(connection, connection.outgoingAliasMaximum === 0 ? plain : aliasedPublishBytes(connection, packet, packetId));
  }
  broker.stats.messagesSent += 1;
  broker.stats.streams.deliveries += 1;
  // It may wait long for its PUBACK: the table keeps a copy of its payload, not a read's whole buffer (stream-entry.ts ReadEntry).
  if (packetId !== 0) deliveries.inflight.add(packetId, entry, stream, subscriptionId, skipped, owner);
  return packetId;
}

/** [MQTT-3.1.2-25] Not sent; like any delivery too large for its client, counted and passed. */
function tooLarge(broker: Broker): 0 {
  broker.stats.drops.packetTooLarge += 1;
  return 0;
}

/**
 * On resume: every unacknowledged stream delivery again, in the order first sent, DUP=1, same
 * identifier [MQTT-4.4.0-1]. Returns the identifiers of those the new connection cannot take
 * (larger than its Maximum Packet Size): the caller treats them as delivered, like a fresh
 * delivery that is too large.
 */
export function resendInflight(broker: Broker, connection: Connection, deliveries: SessionDeliveries): number[] {
  const tooLarge: number[] = [];
  const table = deliveries.inflight;
  for (const packetId of table.packetIdsInSendOrder()) {
    const entry = table.entryOf(packetId);
    const subscriptionIds = subscriptionIdsOf(table.subscriptionIdOf(packetId));
    const packet = streamPublishPacket(connection, table.streamOf(packetId), entry, 1, subscriptionIds, table.skippedOf(packetId));
    packet.dup = true;
    packet.packetId = packetId;
    const plain = encodePacket(packet, connection.version);
    if (plain.length > connection.maximumPacketSize) {
      broker.stats.drops.packetTooLarge += 1;
      tooLarge.push(packetId);
      continue;
    }
    const bytes = connection.outgoingAliasMaximum === 0 ? plain : aliasedPublishBytes(connection, packet, packetId);
    broker.send(connection, bytes);
    broker.stats.messagesSent += 1;
  }
  return tooLarge;
}
