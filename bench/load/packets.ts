/**
 * The load generator's own tiny MQTT codec: encoders for the handful of packets a benchmark client
 * sends, and a streaming scanner that splits what comes back into packets without decoding them.
 *
 * It is deliberately separate from Keel's codec (src/codec): a benchmark that measured Keel with
 * Keel's own encoder could hide a shared mistake, and a client library (mqtt.js) would put its own
 * allocation and parsing cost into every figure. Packets are encoded once into Buffers and written
 * many times; the scanner only reads the fixed header and hands the caller the byte range of each
 * packet, so the cost per received message is a few integer reads.
 *
 * Only what the scenarios need is supported: MQTT 3.1.1 (level 4) and 5.0 (level 5) with empty
 * property sets (but a CONNECT's Session Expiry Interval), no will, no credentials.
 */

export type ProtocolLevel = 4 | 5;

export const PacketType = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  pubrec: 5,
  pubrel: 6,
  pubcomp: 7,
  subscribe: 8,
  suback: 9,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
} as const;

/** The largest value a Remaining Length field can carry (four 7-bit groups). */
const remainingLengthMax = 268_435_455;

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

function varintBytes(value: number): number {
  assert(value >= 0 && value <= remainingLengthMax, `remaining length out of range: ${value}`);
  return value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4;
}

function writeVarint(target: Buffer, offset: number, value: number): number {
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    target[offset++] = byte;
  } while (rest > 0);
  return offset;
}

/** Builds one packet from its first byte and its body (everything after Remaining Length). */
export function framePacket(firstByte: number, body: Buffer): Buffer {
  const packet = Buffer.allocUnsafe(1 + varintBytes(body.length) + body.length);
  packet[0] = firstByte;
  const bodyStart = writeVarint(packet, 1, body.length);
  body.copy(packet, bodyStart);
  return packet;
}

/** A Variable Byte Integer on its own (a properties length, say). */
export function varintBuffer(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(varintBytes(value));
  writeVarint(bytes, 0, value);
  return bytes;
}

export function utf8String(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  assert(bytes.length <= 0xffff, 'string longer than 65535 bytes');
  const framed = Buffer.allocUnsafe(2 + bytes.length);
  framed.writeUInt16BE(bytes.length, 0);
  bytes.copy(framed, 2);
  return framed;
}

function uint16(value: number): Buffer {
  assert(Number.isInteger(value) && value >= 0 && value <= 0xffff, `not a 16-bit value: ${value}`);
  const bytes = Buffer.allocUnsafe(2);
  bytes.writeUInt16BE(value, 0);
  return bytes;
}

/** An empty MQTT 5.0 property set (length 0); nothing for 3.1.1. */
function emptyProperties(level: ProtocolLevel): Buffer {
  return level === 5 ? Buffer.from([0]) : Buffer.alloc(0);
}

export interface ConnectOptions {
  clientId: string;
  level: ProtocolLevel;
  keepAliveSeconds: number;
  /** Clean Session (3.1.1) / Clean Start (5.0). */
  clean: boolean;
  /** MQTT 5.0 Session Expiry Interval (absent: 0, the session ends with the connection). */
  sessionExpirySeconds?: number;
}

export function encodeConnect(options: ConnectOptions): Buffer {
  const header = Buffer.concat([utf8String('MQTT'), Buffer.from([options.level, options.clean ? 0x02 : 0x00]), uint16(options.keepAliveSeconds)]);
  const expiry = options.sessionExpirySeconds ?? 0;
  // Property 0x11, Session Expiry Interval, a four-byte integer: the property set is 5 bytes long.
  const properties = options.level === 5 && expiry > 0 ? Buffer.from([5, 0x11, expiry >>> 24, (expiry >>> 16) & 0xff, (expiry >>> 8) & 0xff, expiry & 0xff]) : emptyProperties(options.level);
  const body = Buffer.concat([header, properties, utf8String(options.clientId)]);
  return framePacket(PacketType.connect << 4, body);
}

export function encodeSubscribe(level: ProtocolLevel, packetId: number, filters: { filter: string; qos: 0 | 1 | 2 }[]): Buffer {
  assert(packetId > 0, 'SUBSCRIBE needs a non-zero packet identifier');
  assert(filters.length > 0, 'SUBSCRIBE needs at least one filter');
  const entries = filters.map((entry) => Buffer.concat([utf8String(entry.filter), Buffer.from([entry.qos])]));
  // The low nibble of SUBSCRIBE's first byte is fixed at 0b0010 by the protocol.
  return framePacket((PacketType.subscribe << 4) | 0x02, Buffer.concat([uint16(packetId), emptyProperties(level), ...entries]));
}

export interface PublishOptions {
  level: ProtocolLevel;
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1 | 2;
  /** Required (non-zero) for QoS 1 and 2, absent for QoS 0. */
  packetId?: number;
}

export function encodePublish(options: PublishOptions): Buffer {
  const parts = [utf8String(options.topic)];
  if (options.qos > 0) {
    assert(options.packetId !== undefined && options.packetId > 0, 'QoS 1/2 PUBLISH needs a packet identifier');
    parts.push(uint16(options.packetId));
  } else {
    assert(options.packetId === undefined, 'QoS 0 PUBLISH has no packet identifier');
  }
  parts.push(emptyProperties(options.level), Buffer.from(options.payload));
  return framePacket((PacketType.publish << 4) | (options.qos << 1), Buffer.concat(parts));
}

/** PUBACK with success; 5.0 allows the reason code to be omitted when it is 0x00. */
export function encodePuback(packetId: number): Buffer {
  return framePacket(PacketType.puback << 4, uint16(packetId));
}

/**
 * PUBACKs gathered while one received chunk is scanned, written in one go after it: one write per
 * chunk instead of one per acknowledged PUBLISH. The buffer is reused, so `take` copies out.
 */
export class PubackBatch {
  private bytes = Buffer.allocUnsafe(4 * 256);
  private used = 0;

  /** `firstByte`: a PUBACK by default; a PUBREC, PUBREL (flags 0x02) or PUBCOMP for the QoS 2 exchange. */
  add(packetId: number, firstByte: number = PacketType.puback << 4): void {
    if (this.used + 4 > this.bytes.length) {
      const grown = Buffer.allocUnsafe(this.bytes.length * 2);
      this.bytes.copy(grown, 0, 0, this.used);
      this.bytes = grown;
    }
    this.bytes[this.used] = firstByte;
    this.bytes[this.used + 1] = 2;
    this.bytes.writeUInt16BE(packetId, this.used + 2);
    this.used += 4;
  }

  /** The PUBACKs added since the last take, in a buffer of their own; null when there are none. */
  take(): Buffer | null {
    if (this.used === 0) return null;
    const packets = Buffer.from(this.bytes.subarray(0, this.used));
    this.used = 0;
    return packets;
  }
}

export function encodePingreq(): Buffer {
  return Buffer.from([PacketType.pingreq << 4, 0]);
}

/** DISCONNECT, normal; in 5.0 an empty body means reason code 0x00. */
export function encodeDisconnect(): Buffer {
  return Buffer.from([PacketType.disconnect << 4, 0]);
}

/**
 * Called once per complete packet. `bytes[start .. end)` is the body (after the fixed header).
 * `bytes` may be a buffer the scanner reuses: read what you need before returning, keep nothing.
 */
export type PacketVisitor = (type: number, flags: number, bytes: Buffer, start: number, end: number) => void;

/**
 * Parses the fixed header at `offset`. Returns the header length, or 0 when the bytes so far do
 * not hold the whole header yet. The remaining length goes to `scratch[0]`.
 */
function readFixedHeader(bytes: Buffer, offset: number, limit: number, scratch: Int32Array): number {
  let value = 0;
  let multiplier = 1;
  for (let index = 1; index <= 4; index++) {
    if (offset + index >= limit) return 0;
    const byte = bytes[offset + index]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) {
      scratch[0] = value;
      return index + 1;
    }
    multiplier *= 128;
  }
  throw new Error('malformed Remaining Length from the broker (more than four bytes)');
}

/**
 * Splits a byte stream into packets. Whole packets inside a chunk are visited in place; only a
 * packet that straddles chunks is copied, and only its own bytes, into a reusable hold buffer.
 */
export class PacketScanner {
  private hold = Buffer.allocUnsafe(1024);
  private heldBytes = 0;
  private readonly scratch = new Int32Array(1);

  feed(chunk: Buffer, visit: PacketVisitor): void {
    let offset = this.heldBytes > 0 ? this.completeHeld(chunk, visit) : 0;
    while (offset < chunk.length) {
      const headerBytes = readFixedHeader(chunk, offset, chunk.length, this.scratch);
      const total = headerBytes + this.scratch[0]!;
      if (headerBytes === 0 || offset + total > chunk.length) {
        this.append(chunk, offset, chunk.length);
        return;
      }
      const first = chunk[offset]!;
      visit(first >> 4, first & 0x0f, chunk, offset + headerBytes, offset + total);
      offset += total;
    }
  }

  /** Bytes of a partial packet waiting for the next chunk. */
  get pendingBytes(): number {
    return this.heldBytes;
  }

  /** Feeds the held partial packet from `chunk`; returns how much of the chunk it consumed. */
  private completeHeld(chunk: Buffer, visit: PacketVisitor): number {
    let offset = 0;
    let headerBytes = readFixedHeader(this.hold, 0, this.heldBytes, this.scratch);
    // The header itself may be split: take one byte at a time until it parses (at most 4).
    while (headerBytes === 0) {
      if (offset === chunk.length) return offset;
      this.append(chunk, offset, offset + 1);
      offset += 1;
      headerBytes = readFixedHeader(this.hold, 0, this.heldBytes, this.scratch);
    }
    const total = headerBytes + this.scratch[0]!;
    const take = Math.min(total - this.heldBytes, chunk.length - offset);
    this.append(chunk, offset, offset + take);
    offset += take;
    if (this.heldBytes < total) return offset;
    this.heldBytes = 0;
    const first = this.hold[0]!;
    visit(first >> 4, first & 0x0f, this.hold, headerBytes, total);
    return offset;
  }

  private append(source: Buffer, start: number, end: number): void {
    const needed = this.heldBytes + (end - start);
    if (needed > this.hold.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.hold.length * 2));
      this.hold.copy(grown, 0, 0, this.heldBytes);
      this.hold = grown;
    }
    source.copy(this.hold, this.heldBytes, start, end);
    this.heldBytes = needed;
  }
}

/** Reads a 5.0 Variable Byte Integer at `offset`; returns [value, bytes used]. */
export function readVarint(bytes: Buffer, offset: number): [number, number] {
  let value = 0;
  let multiplier = 1;
  for (let index = 0; index < 4; index++) {
    const byte = bytes[offset + index]!;
    value += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return [value, index + 1];
    multiplier *= 128;
  }
  throw new Error('malformed Variable Byte Integer');
}

/**
 * Offset of a received PUBLISH's payload inside `bytes`, given its body range and flags: after the
 * topic, the packet identifier (QoS > 0) and, in 5.0, the properties.
 */
export function publishPayloadStart(level: ProtocolLevel, flags: number, bytes: Buffer, start: number): number {
  let offset = start + 2 + bytes.readUInt16BE(start);
  if ((flags & 0x06) !== 0) offset += 2;
  if (level === 5) {
    const [propertiesLength, used] = readVarint(bytes, offset);
    offset += used + propertiesLength;
  }
  return offset;
}

/** Packet identifier of a received QoS 1 PUBLISH (0 for QoS 0). */
export function publishPacketId(flags: number, bytes: Buffer, start: number): number {
  if ((flags & 0x06) === 0) return 0;
  return bytes.readUInt16BE(start + 2 + bytes.readUInt16BE(start));
}
