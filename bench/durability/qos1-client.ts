/**
 * The two raw-socket clients of the write-path benchmark, built on the load generator's own codec
 * (bench/load/packets.ts: pre-encoded packets, a scanner that reads only fixed headers):
 *
 * - AckingSubscriber: connects with Clean Session 0 (a persistent session, so every delivery to
 *   it is stored and its completion logged), subscribes at QoS 1 and answers each PUBLISH with a
 *   PUBACK in the same turn, one write per received chunk.
 * - TimedPublisher: keeps at most `window` QoS 1 PUBLISHes unacknowledged. It stamps the write
 *   time of each packet identifier (process.hrtime) into a table and, on the PUBACK for that
 *   identifier, records now minus the stamp: the acknowledgement latency a durable broker adds
 *   by holding the PUBACK until its records are synced. Identifiers cycle through a ring far
 *   larger than the window, so one is never reused while still unacknowledged.
 *
 * The bench/load BenchClient is not reused because it always connects with a clean session and
 * reports PUBACKs as counts, not identifiers; both facts matter here. Setup waits have deadlines,
 * and socket errors after setup are recorded, never thrown.
 */
import net from 'node:net';
import { encodeConnect, encodePublish, encodeSubscribe, PacketScanner, PacketType, type ProtocolLevel, PubackBatch, publishPacketId } from '../load/packets.js';

function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

/** Latencies in nanoseconds, up to a fixed capacity; only recorded while `recording`. */
export class LatencySamples {
  readonly valuesNs: Float64Array;
  count = 0;
  recording = false;

  constructor(capacity: number) {
    assert(capacity > 0, 'latency capacity must be positive');
    this.valuesNs = new Float64Array(capacity);
  }

  record(latencyNs: number): void {
    if (!this.recording || this.count >= this.valuesNs.length) return;
    this.valuesNs[this.count++] = latencyNs;
  }
}

/** A connected socket whose packets go to `onPacket`; resolves `connected` on CONNACK 0. */
abstract class RawClient {
  readonly socket: net.Socket;
  error: Error | null = null;
  closed = false;
  private readonly scanner = new PacketScanner();
  private readonly visit = this.onPacket.bind(this);
  private setupWaiter: { resolve: () => void; reject: (error: Error) => void } | null = null;

  protected constructor(port: number) {
    this.socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => {
      this.scanner.feed(chunk, this.visit);
      this.afterChunk();
    });
    this.socket.on('error', (error) => {
      this.error ??= error;
    });
    this.socket.on('close', () => {
      this.closed = true;
      this.settleSetup(this.error ?? new Error('connection closed by the broker'));
    });
  }

  /** Writes `packet` and waits (bounded) for the setup answer that `onPacket` reports. */
  protected request(packet: Buffer, timeoutMs: number, what: string): Promise<void> {
    assert(this.setupWaiter === null, 'one setup request at a time');
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.settleSetup(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      this.setupWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.socket.write(packet);
    });
  }

  protected settleSetup(failure: Error | null): void {
    const waiter = this.setupWaiter;
    if (waiter === null) return;
    this.setupWaiter = null;
    if (failure === null) waiter.resolve();
    else waiter.reject(failure);
  }

  /** Handles CONNACK and SUBACK for every client; the rest goes to `onOtherPacket`. */
  private onPacket(type: number, flags: number, bytes: Buffer, start: number, end: number): void {
    if (type === PacketType.connack) {
      const returnCode = bytes[start + 1]!;
      this.settleSetup(returnCode === 0 ? null : new Error(`CONNACK refused with code 0x${returnCode.toString(16)}`));
    } else if (type === PacketType.suback) {
      // 3.1.1 SUBACK: packet identifier, then one return code per filter (0x80 = refused).
      const code = bytes[start + 2] ?? 0x80;
      this.settleSetup(code < 0x80 ? null : new Error(`SUBACK refused with code 0x${code.toString(16)}`));
    } else {
      this.onOtherPacket(type, flags, bytes, start, end);
    }
  }

  protected abstract onOtherPacket(type: number, flags: number, bytes: Buffer, start: number, end: number): void;
  protected abstract afterChunk(): void;

  destroy(): void {
    if (!this.socket.destroyed) this.socket.destroy();
  }
}

export class AckingSubscriber extends RawClient {
  received = 0;
  private readonly pubacks = new PubackBatch();

  private constructor(port: number) {
    super(port);
  }

  /** Connects a persistent session (Clean Session 0) and subscribes to `topic` at QoS 1. */
  static async open(port: number, clientId: string, topic: string, level: ProtocolLevel, timeoutMs: number): Promise<AckingSubscriber> {
    assert(level === 4, 'the acking subscriber speaks MQTT 3.1.1, where Clean Session 0 alone makes a session persistent');
    const client = new AckingSubscriber(port);
    try {
      await client.request(encodeConnect({ clientId, level, keepAliveSeconds: 0, clean: false }), timeoutMs, `CONNACK for ${clientId}`);
      await client.request(encodeSubscribe(level, 1, [{ filter: topic, qos: 1 }]), timeoutMs, `SUBACK for ${topic}`);
    } catch (error) {
      client.destroy();
      throw error;
    }
    return client;
  }

  protected onOtherPacket(type: number, flags: number, bytes: Buffer, start: number): void {
    if (type !== PacketType.publish) return;
    this.received += 1;
    if ((flags & 0x06) === 0) return;
    this.pubacks.add(publishPacketId(flags, bytes, start));
  }

  protected afterChunk(): void {
    const pubacks = this.pubacks.take();
    if (pubacks !== null) this.socket.write(pubacks);
  }
}

export interface TimedPublisherOptions {
  level: ProtocolLevel;
  topic: string;
  payloadBytes: number;
  window: number;
  deadlineMs: number;
  samples: LatencySamples;
}

export class TimedPublisher extends RawClient {
  sent = 0;
  acknowledged = 0;
  /** PUBACKs for identifiers that had no PUBLISH outstanding (a broker bug if ever non-zero). */
  unexpectedAcks = 0;
  private outstanding = 0;
  private ringIndex = 0;
  private stopped = false;
  private waitingForDrain = false;
  private readonly ring: Buffer;
  private readonly packetBytes: number;
  private readonly ringSize: number;
  /** Write time of each packet identifier (index = identifier), 0 when none is outstanding. */
  private readonly sentAtNs: Float64Array;

  private constructor(
    port: number,
    private readonly options: TimedPublisherOptions,
  ) {
    super(port);
    assert(options.window >= 1, 'window of at least one PUBLISH');
    this.ringSize = Math.max(1_024, options.window * 8);
    assert(this.ringSize <= 65_535, 'window too large for 16-bit packet identifiers');
    const payload = Buffer.alloc(options.payloadBytes, 0x64);
    const packets = Array.from({ length: this.ringSize }, (_, index) => encodePublish({ level: options.level, topic: options.topic, payload, qos: 1, packetId: index + 1 }));
    this.packetBytes = packets[0]!.length;
    this.ring = Buffer.concat(packets);
    this.sentAtNs = new Float64Array(this.ringSize + 1);
    this.socket.on('drain', () => {
      this.waitingForDrain = false;
      this.pump();
    });
  }

  static async open(port: number, clientId: string, options: TimedPublisherOptions, timeoutMs: number): Promise<TimedPublisher> {
    const client = new TimedPublisher(port, options);
    try {
      await client.request(encodeConnect({ clientId, level: options.level, keepAliveSeconds: 0, clean: true }), timeoutMs, `CONNACK for ${clientId}`);
    } catch (error) {
      client.destroy();
      throw error;
    }
    return client;
  }

  /** Fills the window; called again on every PUBACK and on drain until the deadline. */
  pump(): void {
    while (!this.stopped && !this.waitingForDrain && !this.closed && this.outstanding < this.options.window) {
      if (Date.now() >= this.options.deadlineMs) {
        this.stopped = true;
        return;
      }
      const count = Math.min(this.options.window - this.outstanding, this.ringSize - this.ringIndex);
      const nowNs = Number(process.hrtime.bigint());
      for (let index = 0; index < count; index++) this.sentAtNs[this.ringIndex + index + 1] = nowNs;
      const slice = this.ring.subarray(this.ringIndex * this.packetBytes, (this.ringIndex + count) * this.packetBytes);
      this.ringIndex = (this.ringIndex + count) % this.ringSize;
      this.outstanding += count;
      this.sent += count;
      if (!this.socket.write(slice)) this.waitingForDrain = true;
    }
  }

  stop(): void {
    this.stopped = true;
  }

  protected onOtherPacket(type: number, _flags: number, bytes: Buffer, start: number): void {
    if (type !== PacketType.puback) return;
    const packetId = bytes.readUInt16BE(start);
    const sentAtNs = packetId <= this.ringSize ? this.sentAtNs[packetId]! : 0;
    if (sentAtNs === 0) {
      this.unexpectedAcks += 1;
      return;
    }
    this.sentAtNs[packetId] = 0;
    this.outstanding -= 1;
    this.acknowledged += 1;
    this.options.samples.record(Number(process.hrtime.bigint()) - sentAtNs);
  }

  protected afterChunk(): void {
    this.pump();
  }
}
