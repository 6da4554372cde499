/**
 * The simulated network: TCP-like links between model clients and the broker.
 *
 * Each link carries two byte streams. Bytes sent on a stream are cut into segments (down to one
 * byte) and each segment is delivered after a latency with jitter, never before the segment sent
 * before it on the same stream (delivery times are monotone per stream, and the event queue
 * breaks ties by insertion order), so a stream stays in order while different links overtake each
 * other freely. Stalls hold a stream for a while; partitions hold every stream of one client until
 * they heal. A stream that breaks (reset, crash) drops everything still in flight on it.
 *
 * Who learns what, and when, is the point of the model: an orderly close (FIN) reaches the other
 * side after the data sent before it; a reset reaches the other side after one latency and
 * discards in-flight data; a half-open link tells the other side nothing at all. The broker side
 * of a link is told through `BrokerSide`, the client side through the link's `ClientSide`.
 *
 * Like a socket's send buffer, bytes the broker sent on a link count as buffered until they reach
 * the client; the broker hears the figure (`BrokerSide.outputBuffered`) as a Node host would tell
 * it: after an input whose sends moved it (`flushOutputReports`, called by the world after every
 * broker input) and as deliveries lower it, each time it moved by at least
 * `outputReportStepBytes` or fell to 0. Partitions and stalls thus fill a link's buffer and the
 * broker's output cap (connectionOutputBytesMax) takes effect.
 */
import type { EventQueue } from './event-queue.js';
import type { Random } from './random.js';

export interface NetworkShape {
  latencyMsMin: number;
  latencyMsMax: number;
  /** Largest segment; segments are uniform in 1..this. */
  segmentBytesMax: number;
  /** Probability that a segment is held back by a stall. */
  stallProbability: number;
  stallMsMax: number;
}

export interface ClientSide {
  connected(link: Link): void;
  connectFailed(link: Link): void;
  bytes(link: Link, bytes: Uint8Array): void;
  /** The broker side closed (FIN) or the link was reset. */
  closed(link: Link, how: 'fin' | 'reset'): void;
}

export interface BrokerSide {
  /** Whether a broker is up and accepting connections right now; returns its incarnation. */
  acceptingIncarnation(): number | null;
  opened(link: Link): void;
  bytes(link: Link, bytes: Uint8Array): void;
  closed(link: Link): void;
  /** Bytes the broker sent on the link that have not reached the client yet. */
  outputBuffered(link: Link, bufferedBytes: number): void;
}

interface Stream {
  /** Delivery time of the last segment scheduled; the next one may not be earlier. */
  lastDeliveryMs: number;
  /** False once the stream broke; segments still in flight are dropped on arrival. */
  alive: boolean;
}

export class Link {
  /** The broker knows this connection: opened and not yet closed from its point of view. */
  brokerOpen = false;
  /** The client believes the link is up. */
  clientOpen = false;
  /** The broker incarnation that accepted it (its connections die with it). */
  incarnation = -1;
  /** When the broker side of this link ended (close action, close input, or crash), if it did. */
  brokerEndMs: number | null = null;
  bytesSentToBroker = 0;
  bytesDeliveredToBroker = 0;
  bytesSentToClient = 0;
  bytesDeliveredToClient = 0;
  /** The buffered figure the broker last heard for this link. */
  reportedBufferedBytes = 0;
  /** Listed in `Network.outputDirty`. */
  outputDirty = false;
  readonly toBroker: Stream = { lastDeliveryMs: 0, alive: true };
  readonly toClient: Stream = { lastDeliveryMs: 0, alive: true };

  constructor(
    readonly id: number,
    readonly clientIndex: number,
    readonly client: ClientSide,
  ) {}
}

export class Network {
  private linkIdNext = 1;
  /** Every link ever made, by id; ids are never reused, across broker restarts too. */
  readonly links = new Map<number, Link>();
  /** Per client index: until when its traffic is held by a partition. */
  private readonly partitionUntilMs = new Map<number, number>();
  broker: BrokerSide | null = null;
  private stallsEnabled = true;
  /** See the module comment; the world sets it from connectionOutputBytesMax. */
  outputReportStepBytes = 1;
  /** Links the broker sent on since the last `flushOutputReports`. */
  private readonly outputDirty: Link[] = [];
  private flushingOutputReports = false;

  constructor(
    private readonly queue: EventQueue,
    private readonly random: Random,
    private readonly shape: NetworkShape,
    private readonly clock: { nowMs: number },
    private readonly trace: (line: string, bytes?: Uint8Array) => void,
  ) {}

  private latencyMs(): number {
    return this.random.int(this.shape.latencyMsMin, this.shape.latencyMsMax);
  }

  connect(clientIndex: number, client: ClientSide): Link {
    const link = new Link(this.linkIdNext++, clientIndex, client);
    this.links.set(link.id, link);
    this.trace(`net connect L${link.id} c${clientIndex}`);
    this.queue.push(this.clock.nowMs + this.latencyMs(), () => this.arriveSyn(link));
    return link;
  }

  private arriveSyn(link: Link): void {
    const incarnation = this.broker?.acceptingIncarnation() ?? null;
    const answerMs = this.clock.nowMs + this.latencyMs();
    if (incarnation === null) {
      this.trace(`net refused L${link.id}`);
      this.queue.push(answerMs, () => link.client.connectFailed(link));
      return;
    }
    link.incarnation = incarnation;
    link.brokerOpen = true;
    link.clientOpen = true;
    link.toClient.lastDeliveryMs = answerMs;
    this.broker!.opened(link);
    this.queue.push(answerMs, () => {
      if (link.toClient.alive) link.client.connected(link);
    });
  }

  private deliveryMs(stream: Stream, clientIndex: number): number {
    let timeMs = this.clock.nowMs + this.latencyMs();
    if (this.stallsEnabled && this.random.chance(this.shape.stallProbability)) timeMs += this.random.int(1, this.shape.stallMsMax);
    const heldUntilMs = this.partitionUntilMs.get(clientIndex) ?? 0;
    if (heldUntilMs > timeMs) timeMs = heldUntilMs + this.latencyMs();
    if (timeMs < stream.lastDeliveryMs) timeMs = stream.lastDeliveryMs;
    stream.lastDeliveryMs = timeMs;
    return timeMs;
  }

  private segments(bytes: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let offset = 0;
    while (offset < bytes.length) {
      const size = Math.min(bytes.length - offset, this.random.int(1, this.shape.segmentBytesMax));
      out.push(bytes.subarray(offset, offset + size));
      offset += size;
    }
    return out;
  }

  clientSend(link: Link, bytes: Uint8Array): void {
    if (!link.clientOpen) return;
    const copy = bytes.slice();
    link.bytesSentToBroker += copy.length;
    for (const segment of this.segments(copy)) {
      this.queue.push(this.deliveryMs(link.toBroker, link.clientIndex), () => {
        if (!link.toBroker.alive || !link.brokerOpen) return;
        link.bytesDeliveredToBroker += segment.length;
        this.trace(`net c>b L${link.id} ${segment.length}B`, segment);
        this.broker!.bytes(link, segment);
      });
    }
  }

  brokerSend(link: Link, bytes: Uint8Array): void {
    if (!link.brokerOpen) return;
    const copy = bytes.slice();
    link.bytesSentToClient += copy.length;
    if (!link.outputDirty) {
      link.outputDirty = true;
      this.outputDirty.push(link);
    }
    for (const segment of this.segments(copy)) {
      this.queue.push(this.deliveryMs(link.toClient, link.clientIndex), () => {
        if (!link.toClient.alive || !link.clientOpen) return;
        link.bytesDeliveredToClient += segment.length;
        this.trace(`net b>c L${link.id} ${segment.length}B`, segment);
        link.client.bytes(link, segment);
        this.reportOutputIfDue(link);
      });
    }
  }

  /**
   * After a broker input: reports the buffered figure of every link it sent on, where it moved.
   * The broker may send again in answer (a queue resuming); those links join the list being
   * walked. Bounded: it answers only a lower figure, and each pass reports only moved figures.
   */
  flushOutputReports(): void {
    if (this.flushingOutputReports) return;
    this.flushingOutputReports = true;
    try {
      const dirty = this.outputDirty;
      for (let index = 0; index < dirty.length; index++) {
        const link = dirty[index]!;
        link.outputDirty = false;
        this.reportOutputIfDue(link);
      }
      dirty.length = 0;
    } finally {
      this.flushingOutputReports = false;
    }
  }

  private reportOutputIfDue(link: Link): void {
    if (!link.brokerOpen || this.broker === null) return;
    const bufferedBytes = link.bytesSentToClient - link.bytesDeliveredToClient;
    const reported = link.reportedBufferedBytes;
    if (bufferedBytes === reported) return;
    if (bufferedBytes !== 0 && Math.abs(bufferedBytes - reported) < this.outputReportStepBytes) return;
    link.reportedBufferedBytes = bufferedBytes;
    this.trace(`net buffered L${link.id} ${bufferedBytes}B`);
    this.broker.outputBuffered(link, bufferedBytes);
  }

  /** The client closes in order (after DISCONNECT): the broker sees FIN after the data. */
  clientClose(link: Link): void {
    if (!link.clientOpen) return;
    link.clientOpen = false;
    this.trace(`net client-fin L${link.id}`);
    this.queue.push(this.deliveryMs(link.toBroker, link.clientIndex), () => {
      if (link.toBroker.alive) this.endAtBroker(link, 'fin');
    });
  }

  /** The client aborts the link (or its process dies and the OS resets it). */
  clientReset(link: Link): void {
    if (!link.clientOpen) return;
    link.clientOpen = false;
    link.toBroker.alive = false;
    this.trace(`net client-rst L${link.id}`);
    this.queue.push(this.clock.nowMs + this.latencyMs(), () => this.endAtBroker(link, 'rst'));
  }

  /** The client disappears without a trace; the broker can only find out by keepalive. */
  clientVanish(link: Link): void {
    if (!link.clientOpen) return;
    link.clientOpen = false;
    this.trace(`net client-vanish L${link.id}`);
  }

  private endAtBroker(link: Link, how: string): void {
    if (!link.brokerOpen) return;
    link.brokerOpen = false;
    link.brokerEndMs = this.clock.nowMs;
    this.trace(`net broker-sees-${how} L${link.id}`);
    this.broker!.closed(link);
  }

  /** The broker closed the connection: no input for it afterwards; the client sees FIN after the data. */
  brokerClose(link: Link): void {
    if (!link.brokerOpen) return;
    link.brokerOpen = false;
    link.brokerEndMs = this.clock.nowMs;
    this.queue.push(this.deliveryMs(link.toClient, link.clientIndex), () => this.endAtClient(link, 'fin'));
  }

  private endAtClient(link: Link, how: 'fin' | 'reset'): void {
    if (!link.clientOpen || (how === 'fin' && !link.toClient.alive)) return;
    link.clientOpen = false;
    this.trace(`net client-sees-${how} L${link.id}`);
    link.client.closed(link, how);
  }

  /** A middlebox resets the link: both sides learn after a latency; data in flight is lost. */
  reset(link: Link): void {
    link.toBroker.alive = false;
    link.toClient.alive = false;
    this.trace(`fault reset L${link.id}`);
    this.queue.push(this.clock.nowMs + this.latencyMs(), () => this.endAtBroker(link, 'rst'));
    this.queue.push(this.clock.nowMs + this.latencyMs(), () => this.endAtClient(link, 'reset'));
  }

  /** The broker process died: it forgets its links silently; clients get a reset. */
  brokerCrashed(incarnation: number): void {
    for (const link of this.links.values()) {
      if (link.incarnation !== incarnation || !link.brokerOpen) continue;
      link.brokerOpen = false;
      link.brokerEndMs = this.clock.nowMs;
      link.toBroker.alive = false;
      link.toClient.alive = false;
      this.queue.push(this.clock.nowMs + this.latencyMs(), () => {
        if (!link.clientOpen) return;
        link.clientOpen = false;
        this.trace(`net client-sees-reset L${link.id}`);
        link.client.closed(link, 'reset');
      });
    }
  }

  /** The world turned quiet: no more stalls (partitions already end by then). */
  quiet(): void {
    this.stallsEnabled = false;
  }

  partition(clientIndex: number, untilMs: number): void {
    this.trace(`fault partition c${clientIndex} until ${untilMs}`);
    this.partitionUntilMs.set(clientIndex, Math.max(untilMs, this.partitionUntilMs.get(clientIndex) ?? 0));
  }

  /** Links that are still open on both sides, in id order. */
  liveLinks(): Link[] {
    const out: Link[] = [];
    for (const link of this.links.values()) if (link.brokerOpen && link.clientOpen) out.push(link);
    return out;
  }
}
