/**
 * A benchmark client on a bare socket (TCP, TLS or a WebSocket stream, transport.ts): connects, subscribes, counts what arrives, and
 * optionally acknowledges QoS 1 and 2 deliveries and reads a send timestamp out of each payload.
 *
 * Per received chunk it scans packets in place (see packets.ts), bumps counters, gathers the
 * PUBACKs it owes into one buffer written once per chunk, and then calls the owner's per-chunk
 * hooks with how many PUBLISH / PUBACK packets the chunk held. Nothing is allocated per message.
 * Setup steps (CONNACK, SUBACK) are promises with a deadline, so a broker that never answers
 * fails the run instead of hanging it. Socket errors after setup are recorded, never thrown:
 * a benchmark must survive a broker that drops a connection under load.
 */
import type { Duplex } from 'node:stream';
import { encodeConnect, encodeDisconnect, encodeSubscribe, PacketScanner, PacketType, type ProtocolLevel, PubackBatch, publishPacketId, publishPayloadStart, readVarint } from './packets.js';
import { type BenchTransport, connectTransport, plainTcp } from './transport.js';

/** Collects publish→receive latencies in nanoseconds, up to a fixed number of samples. */
export class LatencyRecorder {
  readonly samplesNs: Float64Array;
  count = 0;
  /** Samples are taken only while this is true (so warm-up can be left out). */
  recording = false;

  constructor(capacity: number) {
    this.samplesNs = new Float64Array(capacity);
  }

  record(latencyNs: number): void {
    if (!this.recording || this.count >= this.samplesNs.length) return;
    this.samplesNs[this.count++] = latencyNs;
  }
}

export interface BenchClientOptions {
  port: number;
  clientId: string;
  level: ProtocolLevel;
  keepAliveSeconds?: number;
  /** Answer every QoS 1 PUBLISH with a PUBACK, every QoS 2 one with a PUBREC (and its PUBREL with a PUBCOMP). */
  acknowledge?: boolean;
  /** Read a process.hrtime.bigint() stamp from the first 8 payload bytes of each PUBLISH. */
  latency?: LatencyRecorder;
  /** Count every PUBLISH whose payload is not exactly this long in `wrongSizePublishes`. */
  expectedPayloadBytes?: number;
  /** TCP (default), TLS or WebSocket (transport.ts). */
  transport?: BenchTransport;
  /** Clean Session (3.1.1) / Clean Start (5.0); true unless set. False with 3.1.1 keeps the session after the connection ends. */
  clean?: boolean;
}

type Waiter = { resolve: () => void; reject: (error: Error) => void; timer: NodeJS.Timeout };

export class BenchClient {
  /** A TCP or TLS socket, or a WebSocket as a stream (transport.ts). */
  readonly socket: Duplex;
  publishesReceived = 0;
  pubacksReceived = 0;
  /** Deliveries whose payload length differed from `expectedPayloadBytes` (a broker bug). */
  wrongSizePublishes = 0;
  error: Error | null = null;
  closed = false;
  /** Called after each received chunk that held at least one PUBLISH / PUBACK (or PUBCOMP: a QoS 2 publication done). */
  onPublishes: ((count: number) => void) | null = null;
  onPubacks: ((count: number) => void) | null = null;

  private readonly scanner = new PacketScanner();
  private readonly pubacks = new PubackBatch();
  private chunkPublishes = 0;
  private chunkPubacks = 0;
  private connackWaiter: Waiter | null = null;
  private subackWaiter: Waiter | null = null;
  private readonly visit = this.visitPacket.bind(this);

  private constructor(private readonly options: BenchClientOptions) {
    this.socket = connectTransport(options.port, options.transport ?? plainTcp);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error) => {
      this.error ??= error;
    });
    this.socket.on('close', () => {
      this.closed = true;
      const failure = this.error ?? new Error('connection closed by the broker');
      this.failWaiter('connackWaiter', failure);
      this.failWaiter('subackWaiter', failure);
    });
  }

  /** Opens the connection and resolves once the broker accepted the CONNECT. */
  static async open(options: BenchClientOptions, timeoutMs: number): Promise<BenchClient> {
    const client = new BenchClient(options);
    const accepted = client.wait('connackWaiter', timeoutMs, `CONNACK for ${options.clientId}`);
    client.socket.write(encodeConnect({ clientId: options.clientId, level: options.level, keepAliveSeconds: options.keepAliveSeconds ?? 0, clean: options.clean ?? true }));
    try {
      await accepted;
    } catch (error) {
      client.destroy();
      throw error;
    }
    return client;
  }

  /** Subscribes to one filter and resolves once the SUBACK granted it. */
  subscribe(filter: string, qos: 0 | 1 | 2, timeoutMs: number): Promise<void> {
    const granted = this.wait('subackWaiter', timeoutMs, `SUBACK for ${filter}`);
    this.socket.write(encodeSubscribe(this.options.level, 1, [{ filter, qos }]));
    return granted;
  }

  /** Sends DISCONNECT and closes; for abrupt teardown use destroy(). */
  disconnect(): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.end(encodeDisconnect());
  }

  destroy(): void {
    if (!this.socket.destroyed) this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.chunkPublishes = 0;
    this.chunkPubacks = 0;
    this.scanner.feed(chunk, this.visit);
    const pubacks = this.pubacks.take();
    if (pubacks !== null) this.socket.write(pubacks);
    if (this.chunkPublishes > 0 && this.onPublishes !== null) this.onPublishes(this.chunkPublishes);
    if (this.chunkPubacks > 0 && this.onPubacks !== null) this.onPubacks(this.chunkPubacks);
  }

  private visitPacket(type: number, flags: number, bytes: Buffer, start: number, end: number): void {
    if (type === PacketType.publish) {
      this.publishesReceived += 1;
      this.chunkPublishes += 1;
      if (this.options.latency !== undefined) this.recordLatency(flags, bytes, start, end);
      const expected = this.options.expectedPayloadBytes;
      if (expected !== undefined && end - publishPayloadStart(this.options.level, flags, bytes, start) !== expected) this.wrongSizePublishes += 1;
      const qos = (flags >> 1) & 0x03;
      if (this.options.acknowledge === true && qos !== 0) this.pubacks.add(publishPacketId(flags, bytes, start), qos === 1 ? PacketType.puback << 4 : PacketType.pubrec << 4);
    } else if (type === PacketType.puback || type === PacketType.pubcomp) {
      this.pubacksReceived += 1;
      this.chunkPubacks += 1;
    } else if (type === PacketType.pubrec) {
      // Our QoS 2 publication was received: release it (its PUBCOMP then counts as its acknowledgement).
      this.pubacks.add(bytes.readUInt16BE(start), (PacketType.pubrel << 4) | 0x02);
    } else if (type === PacketType.pubrel) {
      this.pubacks.add(bytes.readUInt16BE(start), PacketType.pubcomp << 4);
    } else if (type === PacketType.connack) {
      const returnCode = bytes[start + 1]!;
      if (returnCode === 0) this.settleWaiter('connackWaiter');
      else this.failWaiter('connackWaiter', new Error(`CONNACK refused with code 0x${returnCode.toString(16)}`));
    } else if (type === PacketType.suback) {
      this.onSuback(bytes, start, end);
    }
  }

  private onSuback(bytes: Buffer, start: number, end: number): void {
    let offset = start + 2;
    if (this.options.level === 5) {
      // SUBACK properties (a length-prefixed block) carry nothing the benchmark needs.
      const [propertiesLength, used] = readVarint(bytes, offset);
      offset += used + propertiesLength;
    }
    const refused = offset >= end || bytes[offset]! >= 0x80;
    if (refused) this.failWaiter('subackWaiter', new Error(`SUBACK refused (code 0x${(bytes[offset] ?? 0).toString(16)})`));
    else this.settleWaiter('subackWaiter');
  }

  private recordLatency(flags: number, bytes: Buffer, start: number, end: number): void {
    const payloadStart = publishPayloadStart(this.options.level, flags, bytes, start);
    if (end - payloadStart < 8) return;
    const sentNs = bytes.readBigUInt64BE(payloadStart);
    this.options.latency!.record(Number(process.hrtime.bigint() - sentNs));
  }

  private wait(slot: 'connackWaiter' | 'subackWaiter', timeoutMs: number, what: string): Promise<void> {
    if (this[slot] !== null) throw new Error(`assertion failed: a ${slot} is already pending`);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.failWaiter(slot, new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this[slot] = { resolve, reject, timer };
    });
  }

  private settleWaiter(slot: 'connackWaiter' | 'subackWaiter'): void {
    const waiter = this[slot];
    if (waiter === null) return;
    this[slot] = null;
    clearTimeout(waiter.timer);
    waiter.resolve();
  }

  private failWaiter(slot: 'connackWaiter' | 'subackWaiter', error: Error): void {
    const waiter = this[slot];
    if (waiter === null) return;
    this[slot] = null;
    clearTimeout(waiter.timer);
    waiter.reject(error);
  }
}
