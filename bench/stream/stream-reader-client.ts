/**
 * A lean MQTT 5.0 stream reader on a bare socket, for the stream benchmark's replay and seek.
 *
 * MQTT.js parses every packet into an object and calls a handler per message; at the rates a
 * replay reaches, that client, not the broker, would set the figure. This reader connects with
 * Receive Maximum 65,535 (so that the broker's window, not the client's, bounds what is in
 * flight), subscribes to one `$stream/NAME` filter at QoS 1 with a `stream-offset` user property,
 * and then, per received chunk, splits packets in place (bench/load/packets.ts PacketScanner),
 * decodes each PUBLISH far enough to read its packet identifier, its `stream-offset` user
 * property and its payload length, and answers all the chunk's PUBACKs in one write. Nothing is
 * allocated per message.
 *
 * It checks what it counts: offsets must rise by exactly one from the first (a replay of a stream
 * without gaps), and every payload must have the expected length; departures are counted, never
 * hidden. Setup steps have deadlines, so a broker that never answers fails the run.
 */
import net from 'node:net';
import { framePacket, PacketScanner, PacketType, PubackBatch, readVarint, utf8String, varintBuffer } from '../load/packets.js';

/** MQTT 5.0 property identifiers the reader meets in a stream delivery. */
const Property = {
  payloadFormat: 0x01,
  messageExpiry: 0x02,
  contentType: 0x03,
  responseTopic: 0x08,
  correlationData: 0x09,
  subscriptionIdentifier: 0x0b,
  topicAlias: 0x23,
  userProperty: 0x26,
  receiveMaximum: 0x21,
} as const;

const offsetKey = Buffer.from('stream-offset', 'utf8');

/** CONNECT, MQTT 5.0, clean start, keep-alive off, Receive Maximum 65,535. */
export function encodeReaderConnect(clientId: string): Buffer {
  const properties = Buffer.from([Property.receiveMaximum, 0xff, 0xff]);
  const header = Buffer.concat([utf8String('MQTT'), Buffer.from([5, 0x02, 0, 0])]);
  return framePacket(PacketType.connect << 4, Buffer.concat([header, varintBuffer(properties.length), properties, utf8String(clientId)]));
}

/** SUBSCRIBE to one filter at QoS 1 with the user property `stream-offset` = `start`. */
export function encodeStreamSubscribe(filter: string, start: string): Buffer {
  const properties = Buffer.concat([Buffer.from([Property.userProperty]), utf8String('stream-offset'), utf8String(start)]);
  const body = Buffer.concat([Buffer.from([0, 1]), varintBuffer(properties.length), properties, utf8String(filter), Buffer.from([1])]);
  return framePacket((PacketType.subscribe << 4) | 0x02, body);
}

/** What the decoder reads of one PUBLISH. */
export interface DecodedDelivery {
  packetId: number;
  /** The `stream-offset` user property, or -1 when the PUBLISH has none. */
  offset: number;
  payloadBytes: number;
}

/** Reads an ASCII decimal number from `bytes[start, end)`; -1 when it is not one. */
function readDecimal(bytes: Buffer, start: number, end: number): number {
  if (end <= start) return -1;
  let value = 0;
  for (let index = start; index < end; index++) {
    const digit = bytes[index]! - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/** Whether `bytes[start, start + key.length)` equals `key`. */
function equalsKey(bytes: Buffer, start: number, length: number, key: Buffer): boolean {
  if (length !== key.length) return false;
  for (let index = 0; index < length; index++) if (bytes[start + index] !== key[index]) return false;
  return true;
}

/** Walks a PUBLISH's properties; returns the `stream-offset` value or -1. Throws on an unknown property. */
function readOffsetProperty(bytes: Buffer, start: number, end: number): number {
  let position = start;
  let offset = -1;
  while (position < end) {
    const id = bytes[position]!;
    position += 1;
    if (id === Property.userProperty) {
      const keyLength = bytes.readUInt16BE(position);
      const keyStart = position + 2;
      const valueLength = bytes.readUInt16BE(keyStart + keyLength);
      const valueStart = keyStart + keyLength + 2;
      if (equalsKey(bytes, keyStart, keyLength, offsetKey)) offset = readDecimal(bytes, valueStart, valueStart + valueLength);
      position = valueStart + valueLength;
    } else if (id === Property.payloadFormat) position += 1;
    else if (id === Property.topicAlias) position += 2;
    else if (id === Property.messageExpiry) position += 4;
    else if (id === Property.contentType || id === Property.responseTopic || id === Property.correlationData) position += 2 + bytes.readUInt16BE(position);
    else if (id === Property.subscriptionIdentifier) position += readVarint(bytes, position)[1];
    else throw new Error(`unexpected PUBLISH property 0x${id.toString(16)}`);
  }
  return offset;
}

/** Decodes the parts of a 5.0 PUBLISH body `bytes[start, end)` the reader needs into `into`. */
export function decodeDelivery(flags: number, bytes: Buffer, start: number, end: number, into: DecodedDelivery): void {
  let position = start + 2 + bytes.readUInt16BE(start);
  into.packetId = 0;
  if ((flags & 0x06) !== 0) {
    into.packetId = bytes.readUInt16BE(position);
    position += 2;
  }
  const [propertiesLength, used] = readVarint(bytes, position);
  position += used;
  into.offset = readOffsetProperty(bytes, position, position + propertiesLength);
  into.payloadBytes = end - position - propertiesLength;
}

export interface ReaderCounts {
  received: number;
  firstOffset: number;
  lastOffset: number;
  /** Deliveries whose offset was not the previous one plus one (or had none). */
  outOfOrder: number;
  /** Deliveries whose payload length was not the expected one. */
  wrongSize: number;
  /** Deliveries with a packet identifier (QoS 1 or 2), and PUBACKs written back. */
  withPacketId: number;
  pubacksSent: number;
  /** performance.now() when the SUBSCRIBE was written, the first and the latest PUBLISH arrived. */
  subscribedAtMs: number;
  firstAtMs: number;
  lastAtMs: number;
}

export class StreamReaderClient {
  readonly counts: ReaderCounts = { received: 0, firstOffset: -1, lastOffset: -1, outOfOrder: 0, wrongSize: 0, withPacketId: 0, pubacksSent: 0, subscribedAtMs: 0, firstAtMs: 0, lastAtMs: 0 };
  /** Called once when `counts.received` reaches `target` (see `whenReceived`). */
  private target = Number.POSITIVE_INFINITY;
  private reached: (() => void) | null = null;
  private setup: { resolve: () => void; reject: (error: Error) => void } | null = null;
  private readonly scanner = new PacketScanner();
  private readonly pubacks = new PubackBatch();
  private readonly delivery: DecodedDelivery = { packetId: 0, offset: -1, payloadBytes: 0 };
  private readonly visit = this.visitPacket.bind(this);
  private failure: Error | null = null;

  private constructor(
    private readonly socket: net.Socket,
    private readonly payloadBytes: number,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed by the broker')));
  }

  /** Connects and resolves once the broker accepted the CONNECT. */
  static async open(port: number, clientId: string, payloadBytes: number, timeoutMs: number): Promise<StreamReaderClient> {
    const client = new StreamReaderClient(net.connect({ host: '127.0.0.1', port }), payloadBytes);
    client.socket.write(encodeReaderConnect(clientId));
    await client.awaitSetup(timeoutMs, 'CONNACK');
    return client;
  }

  /** Subscribes and resolves once the SUBACK granted QoS 0 or 1. */
  async subscribe(filter: string, start: string, timeoutMs: number): Promise<void> {
    const granted = this.awaitSetup(timeoutMs, `SUBACK for ${filter}`);
    this.counts.subscribedAtMs = performance.now();
    this.socket.write(encodeStreamSubscribe(filter, start));
    await granted;
  }

  /** Resolves once `count` deliveries arrived; rejects after `timeoutMs` or on a failure. */
  whenReceived(count: number, timeoutMs: number): Promise<void> {
    if (this.counts.received >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms with ${this.counts.received} of ${count} deliveries`)), timeoutMs);
      this.target = count;
      this.reached = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  get error(): Error | null {
    return this.failure;
  }

  destroy(): void {
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }

  private awaitSetup(timeoutMs: number, what: string): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.setup = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const setup = this.setup;
    this.setup = null;
    setup?.reject(error);
  }

  private onData(chunk: Buffer): void {
    const before = this.counts.received;
    this.scanner.feed(chunk, this.visit);
    if (this.counts.received > before) this.counts.lastAtMs = performance.now();
    const pubacks = this.pubacks.take();
    if (pubacks !== null) {
      this.counts.pubacksSent += pubacks.length / 4;
      this.socket.write(pubacks);
    }
    if (this.counts.received >= this.target && this.reached !== null) {
      const reached = this.reached;
      this.reached = null;
      reached();
    }
  }

  private visitPacket(type: number, flags: number, bytes: Buffer, start: number, end: number): void {
    if (type === PacketType.publish) return this.onPublish(flags, bytes, start, end);
    if (type === PacketType.connack) return this.onAcknowledgement(bytes[start + 1]!, 'CONNACK');
    if (type === PacketType.suback) {
      // After the packet identifier, the properties (length-prefixed), then one reason code.
      const [propertiesLength, used] = readVarint(bytes, start + 2);
      this.onAcknowledgement(bytes[start + 2 + used + propertiesLength]!, 'SUBACK');
    }
  }

  private onAcknowledgement(code: number, what: string): void {
    const setup = this.setup;
    this.setup = null;
    if (code < 0x80) setup?.resolve();
    else setup?.reject(new Error(`${what} refused with reason code 0x${code.toString(16)}`));
  }

  private onPublish(flags: number, bytes: Buffer, start: number, end: number): void {
    const delivery = this.delivery;
    decodeDelivery(flags, bytes, start, end, delivery);
    const counts = this.counts;
    if (counts.received === 0) {
      counts.firstAtMs = performance.now();
      counts.firstOffset = delivery.offset;
    } else if (delivery.offset !== counts.lastOffset + 1) counts.outOfOrder += 1;
    counts.lastOffset = delivery.offset;
    counts.received += 1;
    if (delivery.payloadBytes !== this.payloadBytes) counts.wrongSize += 1;
    if (delivery.packetId !== 0) {
      counts.withPacketId += 1;
      this.pubacks.add(delivery.packetId);
    }
  }
}
