/**
 * The three ways the load generator publishes, all from packets encoded once up front:
 *
 * - FloodPublisher (QoS 0): writes one pre-encoded batch of packets again and again, as long as
 *   the socket accepts it (socket.write returns true) and the caller's credit allows; it resumes
 *   on 'drain' or when the caller calls pump() after granting credit. Credit lets a scenario keep
 *   a bounded number of messages in flight through the broker (closed loop), so a throughput
 *   figure is what the broker sustains, not how much it can buffer.
 * - WindowPublisher (QoS 1): keeps at most `window` unacknowledged PUBLISH packets outstanding,
 *   sending the next ones as PUBACKs come back. Packets for identifiers 1..ringSize are laid out
 *   in one buffer and sent as contiguous slices; the window is far smaller than the ring, so an
 *   identifier is never reused while still unacknowledged (acknowledgements come back in order).
 * - PacedPublisher (QoS 0): sends at a fixed rate, stamping process.hrtime.bigint() into the
 *   first 8 payload bytes just before each write, for latency.
 *
 * Every publisher stops by itself at its message limit or its deadline, whichever comes first.
 */
import type { BenchClient } from './client.js';
import { encodePublish, type ProtocolLevel } from './packets.js';

/** Batches written per pump() call before yielding to the event loop. */
const batchesPerTurn = 32;

export function makePayload(payloadBytes: number): Buffer {
  return Buffer.alloc(payloadBytes, 0x78);
}

export class FloodPublisher {
  sent = 0;
  private stopped = false;
  private waitingForDrain = false;
  /** One continuation at a time, however many callers call pump(). */
  private continuationQueued = false;
  private readonly batch: Buffer;
  private readonly messagesPerBatch: number;

  constructor(
    private readonly client: BenchClient,
    options: { level: ProtocolLevel; topic: string; payload: Buffer; messagesPerBatch: number },
    private readonly limits: { messagesMax: number; deadlineMs: number },
    /** How many more messages may be sent now; Infinity for an open-loop flood. */
    private readonly credit: () => number = () => Infinity,
  ) {
    const packet = encodePublish({ level: options.level, topic: options.topic, payload: options.payload, qos: 0 });
    this.batch = Buffer.concat(Array.from({ length: options.messagesPerBatch }, () => packet));
    this.messagesPerBatch = options.messagesPerBatch;
    client.socket.on('drain', () => {
      this.waitingForDrain = false;
      this.pump();
    });
  }

  pump(): void {
    if (this.stopped || this.waitingForDrain || this.client.closed) return;
    for (let turn = 0; turn < batchesPerTurn; turn++) {
      if (this.sent >= this.limits.messagesMax || Date.now() >= this.limits.deadlineMs) return this.stop();
      // Blocked on credit: whoever grants credit calls pump() again.
      if (this.credit() < this.messagesPerBatch) return;
      this.sent += this.messagesPerBatch;
      if (!this.client.socket.write(this.batch)) {
        this.waitingForDrain = true;
        return;
      }
    }
    if (this.continuationQueued) return;
    this.continuationQueued = true;
    setImmediate(() => {
      this.continuationQueued = false;
      this.pump();
    });
  }

  stop(): void {
    this.stopped = true;
  }
}

export class WindowPublisher {
  sent = 0;
  acknowledged = 0;
  private outstanding = 0;
  private ringIndex = 0;
  private stopped = false;
  private waitingForDrain = false;
  private readonly ring: Buffer;
  private readonly packetBytes: number;
  private readonly ringSize: number;
  private readonly window: number;

  constructor(
    private readonly client: BenchClient,
    options: { level: ProtocolLevel; topic: string; payload: Buffer; window: number; qos?: 1 | 2 },
    private readonly limits: { messagesMax: number; deadlineMs: number },
  ) {
    this.ringSize = Math.max(1_024, options.window * 4);
    if (this.ringSize > 65_535) throw new Error('assertion failed: QoS 1 window too large for 16-bit packet identifiers');
    const qos = options.qos ?? 1;
    const packets = Array.from({ length: this.ringSize }, (_, index) => encodePublish({ level: options.level, topic: options.topic, payload: options.payload, qos, packetId: index + 1 }));
    this.packetBytes = packets[0]!.length;
    this.ring = Buffer.concat(packets);
    this.window = options.window;
    client.onPubacks = (count) => {
      this.outstanding -= count;
      this.acknowledged += count;
      this.pump();
    };
    client.socket.on('drain', () => {
      this.waitingForDrain = false;
      this.pump();
    });
  }

  pump(): void {
    while (!this.stopped && !this.waitingForDrain && !this.client.closed && this.outstanding < this.window) {
      if (this.sent >= this.limits.messagesMax || Date.now() >= this.limits.deadlineMs) return this.stop();
      const count = Math.min(this.window - this.outstanding, this.ringSize - this.ringIndex, this.limits.messagesMax - this.sent);
      const slice = this.ring.subarray(this.ringIndex * this.packetBytes, (this.ringIndex + count) * this.packetBytes);
      this.ringIndex = (this.ringIndex + count) % this.ringSize;
      this.outstanding += count;
      this.sent += count;
      if (!this.client.socket.write(slice)) this.waitingForDrain = true;
    }
  }

  stop(): void {
    this.stopped = true;
  }
}

export class PacedPublisher {
  sent = 0;
  skipped = 0;
  private scheduled = 0;
  private timer: NodeJS.Timeout | null = null;
  private startNs = 0n;
  private readonly template: Buffer;
  private readonly stampOffset: number;
  /** Where a QoS 1 PUBLISH's packet identifier sits in the template; -1 at QoS 0. */
  private readonly packetIdOffset: number;
  private packetId = 0;
  /**
   * After a stall, send at most this many late messages at once instead of a huge burst: 2 ms
   * worth at the rate, and never under 50 (a timer of 1 ms fires every 1.1 ms or so, so a cap
   * of one tick's worth would itself hold the rate under what was asked).
   */
  private readonly catchUpMax: number;

  constructor(
    private readonly client: BenchClient,
    options: { level: ProtocolLevel; topic: string; payload: Buffer; qos?: 0 | 1 },
    private readonly ratePerSecond: number,
    private readonly limits: { messagesMax: number; deadlineMs: number },
  ) {
    if (options.payload.length < 8) throw new Error('assertion failed: latency payload needs 8 bytes for the timestamp');
    this.catchUpMax = Math.max(50, Math.ceil(ratePerSecond / 500));
    const qos = options.qos ?? 0;
    this.template = encodePublish({ level: options.level, topic: options.topic, payload: options.payload, qos, packetId: qos === 0 ? undefined : 1 });
    this.stampOffset = this.template.length - options.payload.length;
    // Before the payload: the properties' length byte (5.0, none here), before it the identifier.
    this.packetIdOffset = qos === 0 ? -1 : this.stampOffset - (options.level === 5 ? 1 : 0) - 2;
  }

  start(): void {
    this.startNs = process.hrtime.bigint();
    this.tick();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private tick(): void {
    if (this.scheduled >= this.limits.messagesMax || Date.now() >= this.limits.deadlineMs || this.client.closed) return this.stop();
    const elapsedNs = Number(process.hrtime.bigint() - this.startNs);
    const due = Math.min(this.limits.messagesMax, Math.floor((elapsedNs / 1e9) * this.ratePerSecond));
    const behind = due - this.scheduled;
    const sendNow = Math.min(behind, this.catchUpMax);
    for (let index = 0; index < sendNow; index++) {
      const packet = Buffer.from(this.template);
      if (this.packetIdOffset >= 0) {
        this.packetId = (this.packetId % 0xffff) + 1;
        packet.writeUInt16BE(this.packetId, this.packetIdOffset);
      }
      packet.writeBigUInt64BE(process.hrtime.bigint(), this.stampOffset);
      this.client.socket.write(packet);
    }
    // Messages further behind than catchUpMax are skipped, not sent late in one burst.
    this.sent += sendNow;
    this.skipped += behind - sendNow;
    this.scheduled = due;
    this.timer = setTimeout(() => this.tick(), 1);
  }
}
