/**
 * A seeded model of NATS as the cluster link sees it (contract.ts ClusterRequest), on the world's
 * event queue: every effect is an event at a simulated time, so a run replays exactly.
 *
 * - Links: each node has one link to NATS, up or down (a partition between that node and NATS, a
 *   NATS restart, or the node's own crash). A link carries requests and deliveries in order, each
 *   after a latency; when it goes down whatever is in flight on it is lost, so what NATS took of a
 *   node's requests is a prefix of what the node sent (one TCP connection). The node hears
 *   `disconnected` and, once the link is back, `connected` (after NATS set the node's consumer and
 *   buckets up, as the Node host does).
 * - Core NATS: a publish is delivered at most once to every subscription of every linked node
 *   whose subject matches at the moment NATS handles it (one copy per matching subscription, as
 *   NATS does); subscriptions are forgotten with the link.
 * - The hand-off stream: sequence numbers from 1, kept across NATS restarts; a `publish-durable`
 *   whose dedupe id the stream already holds is answered with the first one's sequence and not
 *   stored again (the dedupe window outlives every run). Such a resend must be the same message
 *   (subject, headers, payload) as the one stored: JetStream would drop a different one silently,
 *   so the world fails the run (`dedupe-mismatch`). Batches whose members are QoS 2 are counted
 *   (`qos2BatchesStored`, the coverage situation `qos2-batches-in-cluster`).
 * - Per node, a durable consumer (kept across restarts of the node and of NATS): delivers the
 *   stream in order, at most `ackPendingMax` unacknowledged at once, and redelivers a delivery not
 *   acknowledged within `ackWaitMs` (first the oldest); an `ack` of a sequence removes it and
 *   every one below it for good (cumulative, as the host's consumer: JetStream's ack policy
 *   "all"). Acks travel on the link like anything else and are lost with it. A `consume` is
 *   answered with the consumer's ack floor as JetStream keeps it (the highest sequence with every
 *   one up to it acknowledged: below the oldest delivery still pending, else below the next never
 *   delivered), on the link ahead of any delivery of that consume, as the Node host reads the
 *   consumer's info before it starts pulling; the answer draws no latency, so the world's random
 *   choices stay as they were. A consume sent on a link that is down is not answered (the node has
 *   heard `disconnected` first, and the next `connected` brings a new consume).
 * - Key-value buckets: one revision counter per bucket (a bucket is a stream, kept across NATS
 *   restarts); a set with an expected revision succeeds only at that revision, else fails with
 *   `wrong-revision`; a null value deletes (a tombstone with its own revision, which a later set
 *   may expect, as JetStream's expected last subject sequence does); expected revision 0 succeeds
 *   on a key absent or deleted (what nats.js's `create` does: it retries on a tombstone's
 *   revision). A watch sends the last entry of every key, tombstones included (JetStream's last
 *   message per subject), then that it is current, then every change, in revision order, until
 *   the link drops.
 * - Size: a message or a key-value put over NATS's max_payload (1 MiB, headers counted) is refused,
 *   and the world fails the run (`nats-message-too-large`): a node must never send one. A session's
 *   state larger than that goes into the hand-over bucket in parts (src/cluster/handover-parts.ts),
 *   each a put of its own under a key of its own; the model counts the hand-overs that did
 *   (`handoversInParts`, the coverage situation `handover-in-parts`).
 * - Restarts: NATS goes down for a while (every link drops) and comes back with its stream and
 *   consumers (JetStream's store survives a process restart).
 * - Slow watches (chosen per world): a watch replays its keys one by one, each a random while
 *   after the one before, as a watch of many keys does over JetStream; its entries, and the
 *   changes behind them, come on the watch's own lane, interleaved with the stream's deliveries
 *   (which may overtake the replay). Otherwise a watch replays at once on the link.
 * - A slow store (chosen per world): the answer to a durable publish is held back a while, and
 *   the node's link with it (what follows on it keeps its order).
 * - Pacing (`pace`) is the host's, not NATS's: while the node has paused its consumer, deliveries
 *   reaching the node's end of the link are held there, one per sequence (a redelivery replaces
 *   it), and handed over in sequence order on resume; a dropped link forgets them, as the Node
 *   host does (io/cluster/nats-link.ts).
 */

import { decodeBatch, handoffBatchSubject } from '../../src/cluster/handoff-batch.js';
import { decodeHead } from '../../src/cluster/handover-parts.js';
import { headerQos } from '../../src/cluster/headers.js';
import { natsHeaderBytes } from '../../src/cluster/message-size.js';
import { subjectMatches } from '../../src/cluster/subjects.js';
import type { ClusterHeaders, ClusterKeyChange, ClusterMessage, ClusterRequest, ClusterResult } from '../../src/contract.js';
import type { EventQueue } from '../event-queue.js';
import type { Random } from '../random.js';

/** The model's hand-off stream keeps its store through every restart: one identity per world. */
const handoffStreamIdentity = 'model-stream-1';

export interface NatsNodeSink {
  /** With `connected`, the hand-off stream's identity (contract.ts clusterStatus). */
  status(status: 'connected' | 'disconnected', stream?: string): void;
  message(message: ClusterMessage): void;
  completed(result: ClusterResult): void;
  keyChanged(change: ClusterKeyChange): void;
  /** The watch `requestId` of `bucket` has replayed every key (contract.ts clusterWatchCurrent). */
  watchCurrent(bucket: string, requestId: number): void;
}

interface StreamEntry {
  readonly sequence: number;
  /** When NATS stored it. */
  readonly storedMs: number;
  readonly subject: string;
  readonly headers: ClusterHeaders;
  readonly payload: Uint8Array;
}

interface Consumer {
  readonly node: number;
  /** The next sequence never delivered. */
  nextSequence: number;
  /** Delivered, not acknowledged: sequence → time of the last delivery. */
  readonly pending: Map<number, number>;
  /** Set while the node's link is up and it asked to consume: the link epoch. */
  activeEpoch: number | null;
  consumerId: number;
}

interface Bucket {
  revision: number;
  readonly entries: Map<string, { value: Uint8Array | null; revision: number }>;
  /** Nodes watching it, with the link epoch they watch on. */
  readonly watchers: Map<number, Watcher>;
}

/** A node's watch of a bucket. */
interface Watcher {
  /** The link epoch it watches on. */
  readonly epoch: number;
  /**
   * Slow replays only (slowWatches): when its last entry reaches the node. A watch is a consumer
   * of its own, apart from the node's link: its entries keep their order among themselves but
   * not with the stream's deliveries.
   */
  laneMs: number;
}

interface NodeLink {
  /** Bumped whenever the link goes down; events of an older epoch are dropped. */
  epoch: number;
  up: boolean;
  /** Partitioned away from NATS (independent of NATS being up). */
  partitioned: boolean;
  /** The node's process is running and wants a link. */
  nodeRunning: boolean;
  sink: NatsNodeSink | null;
  readonly subscriptions: Map<number, string>;
  /** The node paused its consumer (`pace`): deliveries held at its end of the link, by sequence. */
  held: Map<number, ClusterMessage> | null;
  /** Last time something was scheduled on the link in each direction (FIFO). */
  toNatsMs: number;
  toNodeMs: number;
}

export const ackWaitMs = 2_000;
const ackPendingMax = 64;
const pumpIntervalMs = 250;

/** The hand-over bucket (src/cluster/session-handover.ts; named here so the model does not load the broker's modules). */
const handoverBucketName = 'keel-handover';

/** NATS's default max_payload, which the nodes' default cluster.messageBytesMax matches. */
const natsMaxPayloadBytes = 1024 * 1024;

export class NatsModel {
  private readonly stream: StreamEntry[] = [];
  private readonly dedupe = new Map<string, number>();
  private readonly consumers: Consumer[] = [];
  private readonly links: NodeLink[] = [];
  private readonly buckets = new Map<string, Bucket>();
  private serverUp = true;
  private pumpScheduled = false;
  /** Told of every key set as NATS takes it (the world's checkers follow the retained bucket's history). */
  keySet: ((change: ClusterKeyChange) => void) | null = null;
  /** A slow store (slowStore): each durable publish holds the node's side of its link for up to this long. */
  private storeDelayMsMax = 0;
  private storeRandom: Random | null = null;
  /** Slow watches (slowWatches): each replayed entry comes up to this long after the one before. */
  private watchStepMsMax = 0;
  private watchRandom: Random | null = null;
  private linkUpAtMs = 0;
  readonly counters = {
    corePublishes: 0,
    coreDeliveries: 0,
    stored: 0,
    batchesStored: 0,
    /** Batches stored with a QoS 2 member (src/cluster/handoff-batch.ts: logged hand-offs). */
    qos2BatchesStored: 0,
    deduplicated: 0,
    deliveries: 0,
    redeliveries: 0,
    acks: 0,
    restarts: 0,
    partitions: 0,
    pacedReleased: 0,
    handoversInParts: 0,
  };

  constructor(
    private readonly queue: EventQueue,
    private readonly clock: { nowMs: number },
    private readonly random: Random,
    nodes: number,
    private readonly trace: (line: string) => void,
    /** A node sent a message larger than NATS's max_payload (the world fails it: `nats-message-too-large`). */
    private readonly tooLarge: (line: string) => void = () => {},
    /** A resend under a stored dedupe id was not the same message (the world fails it: `dedupe-mismatch`). */
    private readonly dedupeMismatch: (line: string) => void = () => {},
  ) {
    for (let node = 0; node < nodes; node++) {
      this.links.push({ epoch: 0, up: false, partitioned: false, nodeRunning: false, sink: null, subscriptions: new Map(), held: null, toNatsMs: 0, toNodeMs: 0 });
      this.consumers.push({ node, nextSequence: 1, pending: new Map(), activeEpoch: null, consumerId: 0 });
    }
  }

  get streamLength(): number {
    return this.stream.length;
  }

  /** What the hand-off stream holds, in order (the world's lost-disk excuse reads which publications it has). */
  storedEntries(): readonly { readonly subject: string; readonly payload: Uint8Array }[] {
    return this.stream;
  }

  /** True when every consumer acknowledged every stored message. */
  drained(): boolean {
    return this.consumers.every((consumer) => consumer.nextSequence > this.stream.length && consumer.pending.size === 0);
  }

  /**
   * JetStream stores slowly in this world (a busy disk): the answer to each durable publish, and
   * what follows it on that node's link, comes up to `delayMsMax` later. The node's hand-offs
   * then queue behind the one waiting, and go out as batches (src/cluster/handoff-batch.ts).
   * Draws from its own stream, so the rest of the model's choices stay as they were.
   */
  slowStore(random: Random, delayMsMax: number): void {
    this.storeRandom = random;
    this.storeDelayMsMax = delayMsMax;
  }

  /**
   * Watches replay slowly in this world (a bucket of many keys): each key of the replay comes up
   * to `stepMsMax` after the one before, on the watch's own lane, so the stream's deliveries after
   * a (re)connection can overtake the replay. Draws from its own stream, so the rest of the
   * model's choices stay as they were.
   */
  slowWatches(random: Random, stepMsMax: number): void {
    this.watchRandom = random;
    this.watchStepMsMax = stepMsMax;
  }

  private latencyMs(): number {
    return this.random.int(0, 3);
  }

  // ---- the node side ------------------------------------------------------------------------

  private countBatch(payload: Uint8Array): void {
    this.counters.batchesStored += 1;
    const members = decodeBatch(payload);
    if (members?.some((member) => member.headers[headerQos] === '2') === true) this.counters.qos2BatchesStored += 1;
  }

  /** A node (re)started: it links up when NATS is reachable. */
  nodeStarted(node: number, sink: NatsNodeSink): void {
    const link = this.links[node]!;
    link.nodeRunning = true;
    link.sink = sink;
    this.relink(node);
  }

  /** A node crashed: its link is gone at once. */
  nodeCrashed(node: number): void {
    const link = this.links[node]!;
    link.nodeRunning = false;
    link.sink = null;
    this.dropLink(node, false);
  }

  /** A request from a node, carried over its link. */
  request(node: number, request: ClusterRequest): void {
    const link = this.links[node]!;
    // NATS refuses a message over its max_payload (headers count), every time: the node must never
    // send one (src/cluster/message-size.ts), or what it queued behind it would wait for good.
    if (request.op === 'publish' || request.op === 'publish-durable' || (request.op === 'kv-set' && request.value !== null)) {
      const payload = request.op === 'kv-set' ? request.value! : request.payload;
      const bytes = payload.length + natsHeaderBytes(request.op === 'kv-set' ? {} : request.headers);
      if (bytes > natsMaxPayloadBytes) {
        this.tooLarge(`n${node} sent ${request.op} of ${bytes} bytes${request.op === 'kv-set' ? ` (key ${request.key})` : ` on ${request.subject}`}, over NATS's max_payload ${natsMaxPayloadBytes}`);
        if (request.op !== 'publish')
          this.toNode(node, link.epoch, (sink) => sink.completed({ requestId: request.requestId, ok: false, code: 'unavailable', message: 'maximum payload exceeded' }), true);
        return;
      }
    }
    if (!link.up) {
      // The client library fails durable requests at once while it is disconnected.
      if (request.op === 'publish-durable' || request.op === 'kv-set')
        this.toNode(node, link.epoch, (sink) => sink.completed({ requestId: request.requestId, ok: false, code: 'unavailable', message: 'no link to NATS' }), true);
      return;
    }
    const epoch = link.epoch;
    link.toNatsMs = Math.max(link.toNatsMs, this.clock.nowMs + this.latencyMs());
    this.queue.push(link.toNatsMs, () => {
      if (link.epoch !== epoch || !link.up) return;
      this.handle(node, request);
    });
  }

  /** Schedules `run` on the node's side of the link, in order; `always` also after the link dropped (local failures). */
  private toNode(node: number, epoch: number, run: (sink: NatsNodeSink) => void, always = false): void {
    const link = this.links[node]!;
    link.toNodeMs = Math.max(link.toNodeMs, this.clock.nowMs + this.latencyMs());
    this.queue.push(link.toNodeMs, () => {
      if (link.sink === null) return;
      if (!always && (link.epoch !== epoch || !link.up)) return;
      run(link.sink);
    });
  }

  /** As toNode, without a latency of its own: next on the node's side of the link, after what is already on its way (draws nothing). */
  private toNodeNow(node: number, epoch: number, run: (sink: NatsNodeSink) => void): void {
    const link = this.links[node]!;
    link.toNodeMs = Math.max(link.toNodeMs, this.clock.nowMs);
    this.queue.push(link.toNodeMs, () => {
      if (link.sink === null || link.epoch !== epoch || !link.up) return;
      run(link.sink);
    });
  }

  /** The ack floor of `node`'s consumer now (tests): see ackFloor. */
  consumerAckFloor(node: number): number {
    return ackFloor(this.consumers[node]!);
  }

  private handle(node: number, request: ClusterRequest): void {
    const link = this.links[node]!;
    switch (request.op) {
      case 'publish':
        return this.corePublish(request.subject, request.headers, request.payload);
      case 'publish-durable': {
        let sequence = this.dedupe.get(request.dedupeId);
        if (sequence === undefined) {
          sequence = this.stream.length + 1;
          this.stream.push({ sequence, storedMs: this.clock.nowMs, subject: request.subject, headers: request.headers, payload: request.payload });
          this.dedupe.set(request.dedupeId, sequence);
          this.counters.stored += 1;
          if (request.subject === handoffBatchSubject) this.countBatch(request.payload);
          this.schedulePump();
        } else {
          this.counters.deduplicated += 1;
          const stored = this.stream[sequence - 1]!;
          if (!sameMessage(stored, request))
            this.dedupeMismatch(
              `n${node} resent dedupe id ${request.dedupeId} as a different message (${request.subject}, ${request.payload.length} bytes) from the one stored at ${sequence} (${stored.subject}, ${stored.payload.length} bytes)`,
            );
        }
        const stored = sequence;
        if (this.storeRandom !== null) link.toNodeMs = Math.max(link.toNodeMs, this.clock.nowMs + this.storeRandom.int(0, this.storeDelayMsMax));
        this.toNode(node, link.epoch, (sink) => sink.completed({ requestId: request.requestId, ok: true, sequence: stored }));
        return;
      }
      case 'subscribe':
        link.subscriptions.set(request.subscriptionId, request.subject);
        return;
      case 'unsubscribe':
        link.subscriptions.delete(request.subscriptionId);
        return;
      case 'consume': {
        const consumer = this.consumers[node]!;
        consumer.activeEpoch = link.epoch;
        consumer.consumerId = request.consumerId;
        const floor = ackFloor(consumer);
        this.toNodeNow(node, link.epoch, (sink) => sink.completed({ requestId: request.requestId, ok: true, sequence: floor }));
        // Deliveries a previous link never had acknowledged come again after their ack wait.
        this.schedulePump();
        return;
      }
      case 'ack': {
        // Cumulative, as the host's consumer (JetStream's ack policy "all"): every delivery up to
        // the acknowledged one is done with.
        const consumer = this.consumers[node]!;
        let acked = false;
        for (const sequence of consumer.pending.keys()) {
          if (sequence > request.streamSequence) continue;
          consumer.pending.delete(sequence);
          acked = true;
        }
        if (acked) this.counters.acks += 1;
        return;
      }
      case 'kv-set':
        return this.kvSet(node, link, request);
      case 'kv-watch':
        return this.kvWatch(node, link, request.bucket, request.requestId);
    }
  }

  private bucket(name: string): Bucket {
    let bucket = this.buckets.get(name);
    if (bucket === undefined) {
      bucket = { revision: 0, entries: new Map(), watchers: new Map() };
      this.buckets.set(name, bucket);
    }
    return bucket;
  }

  /** The value of a key as NATS holds it now (tests and the checker). */
  kvValue(bucketName: string, key: string): Uint8Array | null {
    return this.buckets.get(bucketName)?.entries.get(key)?.value ?? null;
  }

  private kvSet(node: number, link: NodeLink, request: Extract<ClusterRequest, { op: 'kv-set' }>): void {
    const bucket = this.bucket(request.bucket);
    const current = bucket.entries.get(request.key);
    const currentRevision = current === undefined ? 0 : current.revision;
    const absent = current === undefined || current.value === null;
    if (request.expectedRevision !== null && request.expectedRevision !== currentRevision && !(request.expectedRevision === 0 && absent)) {
      const message = `${request.bucket}/${request.key} is at revision ${currentRevision}, not ${request.expectedRevision}`;
      this.toNode(node, link.epoch, (sink) => sink.completed({ requestId: request.requestId, ok: false, code: 'wrong-revision', message }));
      return;
    }
    // A hand-over whose state took several puts (src/cluster/handover-parts.ts): its head (coverage, sim/simulation.ts).
    if (request.value !== null && request.bucket === handoverBucketName && decodeHead(request.value) !== null) this.counters.handoversInParts += 1;
    bucket.revision += 1;
    const revision = bucket.revision;
    bucket.entries.set(request.key, { value: request.value, revision });
    this.toNode(node, link.epoch, (sink) => sink.completed({ requestId: request.requestId, ok: true, sequence: revision }));
    const change: ClusterKeyChange = { bucket: request.bucket, key: request.key, value: request.value, revision };
    this.keySet?.(change);
    for (const [node, watcher] of bucket.watchers) {
      const watcherLink = this.links[node]!;
      if (!watcherLink.up || watcherLink.epoch !== watcher.epoch) continue;
      this.toWatcher(node, watcher, 0, (sink) => sink.keyChanged(change));
    }
  }

  private kvWatch(node: number, link: NodeLink, name: string, requestId: number): void {
    const bucket = this.bucket(name);
    // A watch issued again replaces the old one (its lane starts where the old one's ends).
    const watcher: Watcher = { epoch: link.epoch, laneMs: Math.max(this.clock.nowMs, bucket.watchers.get(node)?.laneMs ?? 0) };
    bucket.watchers.set(node, watcher);
    const last = [...bucket.entries].sort((a, b) => a[1].revision - b[1].revision);
    for (const [key, entry] of last) {
      const change: ClusterKeyChange = { bucket: name, key, value: entry.value, revision: entry.revision };
      this.toWatcher(node, watcher, this.watchRandom === null ? 0 : this.watchRandom.int(0, this.watchStepMsMax), (sink) => sink.keyChanged(change));
    }
    // After the last replayed entry, on the same lane: the replay is complete.
    this.toWatcher(node, watcher, 0, (sink) => sink.watchCurrent(name, requestId));
  }

  /** Schedules `run` for a watch: on the link, or, with slow watches, on the watch's own lane `stepMs` after its last entry. */
  private toWatcher(node: number, watcher: Watcher, stepMs: number, run: (sink: NatsNodeSink) => void): void {
    if (this.watchRandom === null) return this.toNode(node, watcher.epoch, run);
    const link = this.links[node]!;
    watcher.laneMs = Math.max(watcher.laneMs, this.clock.nowMs + this.watchRandom.int(0, 3)) + stepMs;
    this.queue.push(watcher.laneMs, () => {
      if (link.sink === null || link.epoch !== watcher.epoch || !link.up) return;
      run(link.sink);
    });
  }

  private corePublish(subject: string, headers: ClusterHeaders, payload: Uint8Array): void {
    this.counters.corePublishes += 1;
    for (let node = 0; node < this.links.length; node++) {
      const link = this.links[node]!;
      if (!link.up) continue;
      for (const [subscriptionId, pattern] of link.subscriptions) {
        if (!subjectMatches(pattern, subject)) continue;
        this.counters.coreDeliveries += 1;
        this.toNode(node, link.epoch, (sink) => sink.message({ subject, headers, payload, subscriptionId, consumerId: null, streamSequence: null, redelivered: false }));
      }
    }
  }

  // ---- consumers ----------------------------------------------------------------------------

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    this.queue.push(this.clock.nowMs + 1, () => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    let busy = false;
    for (const consumer of this.consumers) {
      const link = this.links[consumer.node]!;
      if (!link.up || consumer.activeEpoch !== link.epoch) continue;
      this.redeliver(consumer, link);
      while (consumer.pending.size < ackPendingMax && consumer.nextSequence <= this.stream.length) {
        this.deliver(consumer, link, this.stream[consumer.nextSequence - 1]!, false);
        consumer.nextSequence += 1;
      }
      if (consumer.pending.size > 0 || consumer.nextSequence <= this.stream.length) busy = true;
    }
    if (busy && !this.pumpScheduled) {
      this.pumpScheduled = true;
      this.queue.push(this.clock.nowMs + pumpIntervalMs, () => this.pump());
    }
  }

  private redeliver(consumer: Consumer, link: NodeLink): void {
    const due: number[] = [];
    for (const [sequence, deliveredMs] of consumer.pending) if (deliveredMs + ackWaitMs <= this.clock.nowMs) due.push(sequence);
    due.sort((a, b) => a - b);
    for (const sequence of due) {
      this.counters.redeliveries += 1;
      this.deliver(consumer, link, this.stream[sequence - 1]!, true);
    }
  }

  private deliver(consumer: Consumer, link: NodeLink, entry: StreamEntry, redelivered: boolean): void {
    consumer.pending.set(entry.sequence, this.clock.nowMs);
    this.counters.deliveries += 1;
    const consumerId = consumer.consumerId;
    const message: ClusterMessage = { subject: entry.subject, headers: entry.headers, payload: entry.payload, subscriptionId: null, consumerId, streamSequence: entry.sequence, redelivered };
    this.toNode(consumer.node, link.epoch, (sink) => {
      if (link.held !== null) link.held.set(entry.sequence, message);
      else sink.message(message);
    });
  }

  /**
   * How long ago NATS stored the oldest entry the node's consumer has not had acknowledged
   * (delivered or not), null when it has every entry: how far its reader is behind the stream.
   */
  readerBehindMs(node: number): number | null {
    const consumer = this.consumers.find((each) => each.node === node);
    if (consumer === undefined) return null;
    let oldest = consumer.nextSequence <= this.stream.length ? consumer.nextSequence : Number.POSITIVE_INFINITY;
    for (const sequence of consumer.pending.keys()) oldest = Math.min(oldest, sequence);
    const entry = this.stream[oldest - 1];
    return entry === undefined ? null : this.clock.nowMs - entry.storedMs;
  }

  /** When a node's link last came up (a node started, NATS came back, a partition healed): what follows it is catch-up. */
  get lastLinkUpMs(): number {
    return this.linkUpAtMs;
  }

  /** Whether the node's link to NATS is up. */
  linkUp(node: number): boolean {
    return this.links[node]!.up;
  }

  /** Whether the node's host holds its deliveries (it asked `pace` paused on this link). */
  paced(node: number): boolean {
    return this.links[node]!.held !== null;
  }

  /** The node's host pauses or resumes handing it deliveries (contract.ts `pace`): at once, no link latency. */
  pace(node: number, paused: boolean): void {
    const link = this.links[node]!;
    if (paused) {
      if (link.up) link.held ??= new Map();
      return;
    }
    const held = link.held;
    link.held = null;
    if (held === null || held.size === 0) return;
    const epoch = link.epoch;
    const messages = [...held.values()].sort((a, b) => a.streamSequence! - b.streamSequence!);
    this.counters.pacedReleased += messages.length;
    this.queue.push(this.clock.nowMs, () => {
      if (link.sink === null || link.epoch !== epoch || !link.up) return;
      for (const message of messages) link.sink.message(message);
    });
  }

  // ---- faults -------------------------------------------------------------------------------

  /** NATS goes down for `downMs` and comes back with its stream and consumers. */
  restart(downMs: number): void {
    if (!this.serverUp) return;
    this.trace(`nats restart down=${downMs}`);
    this.counters.restarts += 1;
    this.serverUp = false;
    for (let node = 0; node < this.links.length; node++) this.dropLink(node, true);
    this.queue.push(this.clock.nowMs + downMs, () => {
      this.serverUp = true;
      this.trace('nats up');
      for (let node = 0; node < this.links.length; node++) this.relink(node);
    });
  }

  /** The node cannot reach NATS for `durationMs`. */
  partition(node: number, durationMs: number): void {
    const link = this.links[node]!;
    if (link.partitioned) return;
    this.trace(`nats partition n${node} for=${durationMs}`);
    this.counters.partitions += 1;
    link.partitioned = true;
    this.dropLink(node, true);
    this.queue.push(this.clock.nowMs + durationMs, () => {
      link.partitioned = false;
      this.trace(`nats partition n${node} healed`);
      this.relink(node);
    });
  }

  get up(): boolean {
    return this.serverUp;
  }

  private dropLink(node: number, tell: boolean): void {
    const link = this.links[node]!;
    if (!link.up) return;
    link.up = false;
    link.epoch += 1;
    link.subscriptions.clear();
    link.held = null;
    this.consumers[node]!.activeEpoch = null;
    if (tell && link.sink !== null) {
      const sink = link.sink;
      // The client library notices after a moment.
      this.queue.push(this.clock.nowMs + this.latencyMs(), () => {
        if (link.sink === sink && !link.up) sink.status('disconnected');
      });
    }
  }

  private relink(node: number): void {
    const link = this.links[node]!;
    if (link.up || !link.nodeRunning || link.partitioned || !this.serverUp) return;
    // The client reconnects after a moment; the host sets up the stream, consumer and buckets first.
    const atMs = this.clock.nowMs + this.random.int(5, 200);
    const sink = link.sink;
    this.queue.push(atMs, () => {
      if (link.up || link.sink !== sink || sink === null || !link.nodeRunning || link.partitioned || !this.serverUp) return;
      link.up = true;
      link.epoch += 1;
      this.linkUpAtMs = this.clock.nowMs;
      link.toNatsMs = this.clock.nowMs;
      link.toNodeMs = this.clock.nowMs;
      this.trace(`nats link n${node} up`);
      sink.status('connected', handoffStreamIdentity);
    });
  }
}

/** Whether a resend is the message stored under its dedupe id: same subject, same headers (in any order), same payload bytes. */
function sameMessage(stored: StreamEntry, resent: { subject: string; headers: ClusterHeaders; payload: Uint8Array }): boolean {
  if (stored.subject !== resent.subject || stored.payload.length !== resent.payload.length) return false;
  const names = Object.keys(stored.headers);
  if (names.length !== Object.keys(resent.headers).length || names.some((name) => stored.headers[name] !== resent.headers[name])) return false;
  for (let index = 0; index < stored.payload.length; index++) if (stored.payload[index] !== resent.payload[index]) return false;
  return true;
}

/**
 * A consumer's ack floor as JetStream reports it (`ack_floor.stream_seq`): every sequence up to it
 * was delivered and acknowledged. The stream's sequences are consecutive and the consumer takes
 * them all, so it is just below the oldest delivery still pending, or below the next one never
 * delivered when none is pending.
 */
function ackFloor(consumer: Consumer): number {
  let floor = consumer.nextSequence - 1;
  for (const sequence of consumer.pending.keys()) floor = Math.min(floor, sequence - 1);
  return floor;
}
