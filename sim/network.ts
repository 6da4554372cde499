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
 *
 * A client may stop reading (`holdReads`): bytes the broker sent it then reach its socket but not
 * its application, so they stay counted as buffered, exactly like a stalled reader's socket,
 * until `releaseReads` hands them over in order (an orderly close waits behind them; a reset
 * discards them). The world releases every hold when it goes quiet.
 *
 * The broker may stop reading a link (`pauseBrokerReads`, the host's pause-reading for publisher
 * throttling): the client's segments then wait at the broker's side, in order, as they would in
 * its socket's receive buffer, and a FIN waits behind them; `resumeBrokerReads` hands them over
 * (in a later event, never inside the broker input that asked). A reset discards them.
 *
 * For the checker's timing rules a link remembers when the broker handed over each chunk of its
 * output (`brokerSendTimeMs`: the time the broker decided to send the bytes at a given offset) and
 * can tell when the bytes a client sent up to an offset reached the broker (`watchArrival`).
 */
import type { EventQueue } from './event-queue.js';
import type { InputChunks } from './input-chunks.js';
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
  /** The protocol level of the CONNECT its client sent (null before one). */
  protocolVersion: number | null = null;
  /**
   * When that CONNECT reached the broker whole, and when the broker handed over the CONNACK that
   * accepted it (null: not yet, or not known to the client): the world's count of connected
   * clients, which `$SYS` must agree with, is read from these (sys-watch.ts).
   */
  connectArrivedMs: number | null = null;
  connackSentMs: number | null = null;
  /** The client believes the link is up. */
  clientOpen = false;
  /** The broker incarnation that accepted it (its connections die with it). */
  incarnation = -1;
  /** When the broker side of this link ended (close action, close input, or crash), if it did. */
  brokerEndMs: number | null = null;
  bytesSentToBroker = 0;
  bytesDeliveredToBroker = 0;
  /** When bytes from the client last reached the broker (its connection's keepalive counts from there). */
  lastDeliveredToBrokerMs = 0;
  /** When the broker last resumed reading the link after a pause (0: never paused). */
  brokerReadsResumedMs = 0;
  bytesSentToClient = 0;
  bytesDeliveredToClient = 0;
  /** The buffered figure the broker last heard for this link. */
  reportedBufferedBytes = 0;
  /** Listed in `Network.outputDirty`. */
  outputDirty = false;
  readonly toBroker: Stream = { lastDeliveryMs: 0, alive: true };
  readonly toClient: Stream = { lastDeliveryMs: 0, alive: true };
  /** The client is not reading: arriving segments wait in `heldSegments`. */
  readsHeld = false;
  readonly heldSegments: Uint8Array[] = [];
  /** A FIN that arrived behind held data; seen once the data is read. */
  heldFin = false;
  /** The broker is not reading: the client's arriving segments wait in `heldToBroker`. */
  brokerReadsHeld = false;
  readonly heldToBroker: Uint8Array[] = [];
  /** The client's FIN that arrived behind held data; the broker sees it once the data is read. */
  heldBrokerFin = false;
  /** Start offsets and times of the broker's sends not yet wholly read by the client. */
  private readonly sendOffsets: number[] = [];
  private readonly sendTimesMs: number[] = [];
  private sendHead = 0;
  /**
   * Segments on their way, oldest first from the head: each has exactly one event in the queue,
   * and a stream's events run in the order they were pushed (its delivery times never decrease,
   * and the queue runs a time's events in push order), so each event takes the oldest. One event
   * callback per link and direction (`Network.arriveAtBroker` and `arriveAtClient`, made on the
   * first segment) instead of a closure per segment: most of a run's events are segments.
   */
  readonly inFlightToBroker = new InFlight();
  readonly inFlightToClient = new InFlight();
  arrivalAtBroker: (() => void) | null = null;
  arrivalAtClient: (() => void) | null = null;
  /** Offsets of the client's output whose arrival at the broker someone waits for, ascending. */
  private readonly arrivalWatches: { offset: number; arrived: (atMs: number) => void }[] = [];

  noteBrokerSend(atMs: number, length: number): void {
    this.sendOffsets.push(this.bytesSentToClient);
    this.sendTimesMs.push(atMs);
    this.bytesSentToClient += length;
  }

  /**
   * When the broker handed over the byte at `offset` of its output on this link (so decided to send
   * it at or before then); chunks wholly before `offset` are forgotten, so ask in ascending order.
   */
  brokerSendTimeMs(offset: number): number {
    if (offset >= this.bytesSentToClient || offset < 0) throw new Error(`L${this.id}: no broker send covers offset ${offset}`);
    while (this.sendHead + 1 < this.sendOffsets.length && this.sendOffsets[this.sendHead + 1]! <= offset) this.sendHead += 1;
    if (this.sendHead > 1024) {
      this.sendOffsets.splice(0, this.sendHead);
      this.sendTimesMs.splice(0, this.sendHead);
      this.sendHead = 0;
    }
    return this.sendTimesMs[this.sendHead]!;
  }

  /** Calls `arrived` with the time the broker has received every byte the client sent so far. */
  watchArrival(arrived: (atMs: number) => void): void {
    this.arrivalWatches.push({ offset: this.bytesSentToBroker, arrived });
  }

  noteDeliveredToBroker(length: number, nowMs: number): void {
    this.bytesDeliveredToBroker += length;
    this.lastDeliveredToBrokerMs = nowMs;
    while (this.arrivalWatches.length > 0 && this.arrivalWatches[0]!.offset <= this.bytesDeliveredToBroker) this.arrivalWatches.shift()!.arrived(nowMs);
  }

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
  /** Scratch for `cutSegments`. */
  private readonly segmentSizes: number[] = [];
  /** Links the broker sent on since the last `flushOutputReports`. */
  private readonly outputDirty: Link[] = [];
  private flushingOutputReports = false;
  /** Times a client stopped reading a link. */
  readStalls = 0;
  /** Times the broker stopped reading a link (publisher throttling). */
  brokerReadPauses = 0;
  /**
   * Traces a segment's arrival: the line `net c>b L{link} {bytes}B` (`b>c` towards the client) and
   * its bytes. The world replaces it with one that hashes the line without building it (most of a
   * run's trace lines are these).
   */
  traceSegment: (toBroker: boolean, linkId: number, segment: Uint8Array) => void = (toBroker, linkId, segment) => this.trace(`net ${toBroker ? 'c>b' : 'b>c'} L${linkId} ${segment.length}B`, segment);
  /**
   * Where a client's bytes are copied when sent, so that the broker receives its segments as Node
   * Buffers viewing a shared chunk, as from a socket (input-chunks.ts); null: plain copies.
   */
  inputChunks: InputChunks | null = null;

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
    link.lastDeliveredToBrokerMs = this.clock.nowMs;
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

  /**
   * Cuts `length` bytes into segments: their sizes in `segmentSizes` (a scratch list, reused), and
   * how many. Every size is drawn before the first segment is scheduled, whose delivery time takes
   * draws of its own: the order of draws is part of what a seed means.
   */
  private cutSegments(length: number): number {
    const sizes = this.segmentSizes;
    let count = 0;
    for (let offset = 0; offset < length; count++) {
      const size = Math.min(length - offset, this.random.int(1, this.shape.segmentBytesMax));
      sizes[count] = size;
      offset += size;
    }
    return count;
  }

  clientSend(link: Link, bytes: Uint8Array): void {
    if (!link.clientOpen) return;
    const copy = this.inputChunks === null ? bytes.slice() : this.inputChunks.copy(bytes);
    link.bytesSentToBroker += copy.length;
    const count = this.cutSegments(copy.length);
    // The copy is ours: a segment that is all of it needs no view of its own (a segment of a
    // Buffer is a Buffer too: `subarray` keeps the class).
    if (count === 1) return this.scheduleToBroker(link, copy);
    for (let index = 0, offset = 0; index < count; index++) {
      const size = this.segmentSizes[index]!;
      this.scheduleToBroker(link, copy.subarray(offset, offset + size));
      offset += size;
    }
  }

  private scheduleToBroker(link: Link, segment: Uint8Array): void {
    link.inFlightToBroker.add(segment);
    link.arrivalAtBroker ??= () => this.arriveAtBroker(link);
    this.queue.push(this.deliveryMs(link.toBroker, link.clientIndex), link.arrivalAtBroker);
  }

  /** The event of the oldest segment in flight to the broker (see `Link.inFlightToBroker`). */
  private arriveAtBroker(link: Link): void {
    const segment = link.inFlightToBroker.take();
    if (!link.toBroker.alive || !link.brokerOpen) return;
    // Behind held segments even once resumed: they are handed over first (in a later event).
    if (link.brokerReadsHeld || link.heldToBroker.length > 0) {
      link.heldToBroker.push(segment);
      return;
    }
    this.deliverToBroker(link, segment);
  }

  private deliverToBroker(link: Link, segment: Uint8Array): void {
    link.noteDeliveredToBroker(segment.length, this.clock.nowMs);
    this.traceSegment(true, link.id, segment);
    this.broker!.bytes(link, segment);
  }

  /** The broker stops reading the link (see the module comment). */
  pauseBrokerReads(link: Link): void {
    if (!link.brokerOpen || link.brokerReadsHeld) return;
    link.brokerReadsHeld = true;
    this.brokerReadPauses += 1;
    this.trace(`net broker-reads-paused L${link.id}`);
  }

  /** The broker reads again: held segments, then a FIN behind them, from the next event on. */
  resumeBrokerReads(link: Link): void {
    if (!link.brokerReadsHeld) return;
    link.brokerReadsHeld = false;
    link.brokerReadsResumedMs = this.clock.nowMs;
    this.trace(`net broker-reads-resumed L${link.id} ${link.heldToBroker.length} segment(s)`);
    this.queue.push(this.clock.nowMs, () => this.drainHeldToBroker(link));
  }

  /** Bounded by the held list; the broker may pause the link again while reading it. */
  private drainHeldToBroker(link: Link): void {
    // By index and cut once, as in releaseReads (a broker input may clear the list: then it ends).
    const held = link.heldToBroker;
    let delivered = 0;
    while (delivered < held.length && !link.brokerReadsHeld) {
      if (!link.toBroker.alive || !link.brokerOpen) {
        held.length = 0;
        return;
      }
      this.deliverToBroker(link, held[delivered++]!);
    }
    held.splice(0, Math.min(delivered, held.length));
    if (link.heldBrokerFin && !link.brokerReadsHeld && link.heldToBroker.length === 0) {
      link.heldBrokerFin = false;
      this.endAtBroker(link, 'fin');
    }
  }

  brokerSend(link: Link, bytes: Uint8Array): void {
    if (!link.brokerOpen) return;
    // No copy: the segments in flight are views of the broker's own bytes, as Node's socket.write
    // keeps a reference to a buffer it could not write at once. A sent buffer belongs to the host
    // (contract.ts, the send action), so a broker that writes into one again changes what its
    // client reads here, and the client or the checker fails the run (planted send-buffer-reused).
    link.noteBrokerSend(this.clock.nowMs, bytes.length);
    if (!link.outputDirty) {
      link.outputDirty = true;
      this.outputDirty.push(link);
    }
    const count = this.cutSegments(bytes.length);
    if (count === 1) return this.scheduleToClient(link, bytes);
    for (let index = 0, offset = 0; index < count; index++) {
      const size = this.segmentSizes[index]!;
      this.scheduleToClient(link, bytes.subarray(offset, offset + size));
      offset += size;
    }
  }

  private scheduleToClient(link: Link, segment: Uint8Array): void {
    link.inFlightToClient.add(segment);
    link.arrivalAtClient ??= () => this.arriveAtClient(link);
    this.queue.push(this.deliveryMs(link.toClient, link.clientIndex), link.arrivalAtClient);
  }

  /** The event of the oldest segment in flight to the client (see `Link.inFlightToBroker`). */
  private arriveAtClient(link: Link): void {
    const segment = link.inFlightToClient.take();
    if (!link.toClient.alive || !link.clientOpen) return;
    if (link.readsHeld) {
      link.heldSegments.push(segment);
      return;
    }
    this.readSegment(link, segment);
  }

  private readSegment(link: Link, segment: Uint8Array): void {
    link.bytesDeliveredToClient += segment.length;
    this.traceSegment(false, link.id, segment);
    link.client.bytes(link, segment);
    this.reportOutputIfDue(link);
  }

  /** The client stops reading the link (see the module comment); a hung client's hold is not counted as a stall. */
  holdReads(link: Link, countAsStall = true): void {
    if (!link.clientOpen || link.readsHeld) return;
    link.readsHeld = true;
    if (countAsStall) this.readStalls += 1;
    this.trace(`net reads-held L${link.id}`);
  }

  /** The client reads again: everything held is read in order, then a FIN that waited behind it. */
  releaseReads(link: Link): void {
    if (!link.readsHeld) return;
    link.readsHeld = false;
    this.trace(`net reads-released L${link.id} ${link.heldSegments.length} segment(s)`);
    // Bounded by the held list; the client may close the link while reading (then the rest is moot).
    // Read by index and cut once: a stalled reader can hold thousands of segments, and a shift per
    // segment made the release quadratic.
    const held = link.heldSegments;
    let read = 0;
    while (read < held.length && link.clientOpen && link.toClient.alive && !link.readsHeld) this.readSegment(link, held[read++]!);
    held.splice(0, Math.min(read, held.length));
    if (!link.clientOpen || !link.toClient.alive) held.length = 0;
    if (link.heldFin && !link.readsHeld) {
      link.heldFin = false;
      this.endAtClient(link, 'fin');
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
      if (!link.toBroker.alive) return;
      if (link.brokerReadsHeld || link.heldToBroker.length > 0) {
        link.heldBrokerFin = true;
        return;
      }
      this.endAtBroker(link, 'fin');
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
    link.heldToBroker.length = 0;
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
    if (how === 'fin' && link.readsHeld) {
      link.heldFin = true;
      return;
    }
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

  /** The world turned quiet: no more stalls (partitions already end by then), every reader reads. */
  quiet(): void {
    this.stallsEnabled = false;
    for (const link of this.links.values()) if (link.readsHeld) this.releaseReads(link);
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

/**
 * The segments in flight on one stream of a link, oldest first: a list used from `head` to
 * `tail` and rewound to its start whenever it runs empty, so that after a link's first bursts
 * nothing is allocated per segment (a list emptied by `length = 0` gave up its storage, and
 * every burst grew it again). A taken slot keeps its segment until overwritten or the list is cut.
 */
export class InFlight {
  private readonly segments: Uint8Array[] = [];
  private head = 0;
  private tail = 0;

  add(segment: Uint8Array): void {
    if (this.tail === this.segments.length) this.segments.push(segment);
    else this.segments[this.tail] = segment;
    this.tail += 1;
  }

  /** The oldest segment, removed; there must be one (its event is running). */
  take(): Uint8Array {
    if (this.head === this.tail) throw new Error('no segment in flight');
    const segment = this.segments[this.head]!;
    this.head += 1;
    if (this.head === this.tail) {
      this.head = 0;
      this.tail = 0;
    } else if (this.head >= inFlightCutAt) {
      // A link that never runs empty (a long stall): drop the taken slots so the list stays bounded.
      this.segments.splice(0, this.head);
      this.tail -= this.head;
      this.head = 0;
    }
    return segment;
  }
}

/** Taken slots are cut from a list that has not run empty once this many lead it. */
const inFlightCutAt = 1024;
