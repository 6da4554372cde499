/**
 * The cluster link on real NATS: carries out the core's `cluster` requests (src/contract.ts
 * ClusterRequest) with nats.js, and turns what NATS does into the core's ClusterInputs, fed
 * through the driver on later event-loop turns (io/cluster/input-queue.ts).
 *
 * Objects the host owns (the core names only subjects, buckets and keys):
 * - the JetStream stream `KEEL_HANDOFF` on `$KEEL.handoff.>` (file storage, interest retention:
 *   a message is kept until every node's consumer acknowledged it; discard-new at its byte bound,
 *   so a full stream refuses hand-offs rather than dropping acknowledged ones);
 * - this node's durable pull consumer `keel-reader-<nodeId>` (ack policy "all": an ack covers
 *   every delivery up to it, so the consumer's state is one number, its ack floor, and nothing
 *   above the floor is done with; deliver all, ack wait `ackWaitMs`, redelivery unbounded, at most
 *   `deliveriesUnackedMax` unacknowledged). The core acknowledges only in stream order (a sequence
 *   once its log holds every one up to it as applied). An earlier version's `keel-node-<nodeId>`
 *   (one explicit ack per delivery) is replaced by it at start;
 * - the key-value buckets `keel-retained`, `keel-sessions`, `keel-shared` (history 1), and any
 *   other bucket a request names, created on first use.
 *
 * Link status. nats.js connects to any of the URLs and reconnects forever. After every (re)connect
 * the link makes sure the objects above exist (a NATS server restarted without its store lost
 * them), retrying every `setupRetryMs` until JetStream answers, and only then reports `connected`.
 * On a loss it reports `disconnected` (if it had reported `connected`), drops its subscriptions,
 * consumers and watches (the core re-issues them after the next `connected`), and fails every
 * request still waiting with `unavailable`. A request made while the link is down fails at once
 * (`unavailable`) or, for core NATS publishes, is dropped and counted. A dead peer is noticed by
 * NATS pings (`pingIntervalMs`, two missed), a closed socket at once.
 *
 * Ordering: core NATS publishes and durable publishes go out on one connection in request order,
 * so the stream sequences of a node's hand-offs follow its requests. The consumer delivers in
 * stream order. A delivery the core does not acknowledge within the ack wait comes again,
 * flagged `redelivered`, possibly after later sequences (NATS's own rule) while the session goes
 * on; at the start of a session (after a crash or a reconnection) the link holds later
 * deliveries back until the unacknowledged earlier ones have come again (RedeliveryGate), so the
 * core sees what it had not made safe before anything newer. Key changes of one
 * watch come in revision order: first the current value of every key, then `watch-current`, then
 * every change.
 *
 * Limits and their outcomes:
 * - `requestsPendingMax` durable publishes and key-value sets waiting for NATS: past it a request
 *   fails at once with `unavailable` (the core does not acknowledge what it could not hand off);
 * - `requestTimeoutMs`: a request NATS did not answer by then fails with `timeout` (a durable
 *   publish may still have been stored: its `dedupeId` makes the core's retry store it once);
 * - `inputsQueuedMax`: see InputQueue (core NATS messages past it are dropped and counted, the
 *   durable consumer and watches wait);
 * - `deliveriesUnackedMax` (the consumer's max ack pending): NATS sends no more hand-offs until the
 *   core acknowledges some; while the core has paused the consumer (`pace`), the deliveries it
 *   did not take yet are held here, one per stream sequence, so at most that many;
 * - `handoffStreamBytesMax`: a full stream refuses durable publishes (`unavailable`);
 * - nats.js buffers core NATS publishes in memory while a write to a slow NATS server is pending;
 *   it has no bound we can set, so while the link is up that buffer is the one unbounded place
 *   (its size is that of the QoS 0 traffic NATS has not yet read).
 */
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type Msg, type MsgHdrs, type NatsConnection, nanos, headers as natsHeaders, type Subscription } from '@nats-io/transport-node';
import type { ClusterHeaders, ClusterRequest, ClusterResult } from '../../src/contract.js';
import type { Logger } from '../logger.js';
import { type ClusterInput, InputQueue } from './input-queue.js';
import { guardNatsWriteAfterEnd } from './nats-write-after-end.js';
import { RedeliveryGate } from './redelivery-gate.js';

export const handoffStreamName = 'KEEL_HANDOFF';
export const handoffSubjects = '$KEEL.handoff.>';
/** The buckets the clustered core uses; created before the link reports `connected`. */
export const clusterBuckets: readonly string[] = ['keel-retained', 'keel-sessions', 'keel-shared'];
/** How many ack waits a new consumer session holds later deliveries for pending ones (RedeliveryGate). */
const redeliveryHoldAckWaits = 3;
/**
 * Entries a key-value watch asks NATS for at a time (runWatch): at most so many wait in this
 * process beyond the input queue's high water; each batch is one pull request (a round trip).
 */
const watchBatchMax = 1_024;
/** How long a watch's pull request waits for entries before it is made again (nats.js's default). */
const watchFetchExpiresMs = 30_000;
/** JetStream's error code for a compare-and-set that found another revision. */
const wrongLastSequenceCode = 10071;

/** This node's durable consumer of the hand-off stream (cumulative acknowledgement). */
export function consumerName(nodeId: string): string {
  return `keel-reader-${nodeId}`;
}

/**
 * The consumer an earlier version read through, with an explicit acknowledgement per delivery:
 * replaced at start (ensureObjects), since JetStream does not change a consumer's ack policy.
 */
export function explicitAckConsumerName(nodeId: string): string {
  return `keel-node-${nodeId}`;
}

export interface NatsLinkLimits {
  inputsQueuedMax: number;
  requestsPendingMax: number;
  requestTimeoutMs: number;
  deliveriesUnackedMax: number;
  ackWaitMs: number;
  handoffStreamBytesMax: number;
  pingIntervalMs: number;
  reconnectWaitMs: number;
  setupRetryMs: number;
  /**
   * Copies JetStream keeps of the stream and the buckets when the link creates them: 1 to 5, or
   * 'auto': 3 when the NATS server says it is part of a cluster of at least three (its INFO names
   * a cluster and two or more other servers), else 1. Objects that exist keep their own setting.
   */
  replicas: number | 'auto';
}

export const defaultNatsLinkLimits: NatsLinkLimits = Object.freeze({
  inputsQueuedMax: 16_384,
  requestsPendingMax: 4_096,
  requestTimeoutMs: 5_000,
  deliveriesUnackedMax: 1_024,
  ackWaitMs: 5_000,
  handoffStreamBytesMax: 1024 * 1024 * 1024,
  pingIntervalMs: 5_000,
  reconnectWaitMs: 500,
  setupRetryMs: 1_000,
  replicas: 'auto',
});

export interface NatsLinkOptions {
  /** NATS URLs (`nats://host:port`); nats.js picks any and fails over to the others. */
  servers: readonly string[];
  nodeId: string;
  /** The node's `cluster.messageBytesMax`: a server whose max_payload is smaller is named in an error line at link-up. */
  messageBytesMax?: number;
  logger: Logger;
  /** Feeds one input to the driver; called on its own event-loop turn, one at a time, in order. */
  deliver: (input: ClusterInput) => void;
  limits?: Partial<NatsLinkLimits>;
}

/** What the link counts, for metrics. */
export interface NatsLinkCounters {
  requests: Record<ClusterRequest['op'], number>;
  failures: Record<'wrong-revision' | 'unavailable' | 'timeout', number>;
  /** Core NATS publishes dropped because the link was down. */
  publishesDropped: number;
  /** Core NATS messages dropped because the input queue was full. */
  messagesDropped: number;
  /** Acknowledgements for a delivery the link no longer holds (it was lost with a connection). */
  acksUnmatched: number;
  /** Times the link went down after having been up. */
  linkLosses: number;
}

export class NatsLink {
  readonly limits: NatsLinkLimits;
  readonly counters: NatsLinkCounters = {
    requests: { publish: 0, 'publish-durable': 0, subscribe: 0, unsubscribe: 0, consume: 0, ack: 0, pace: 0, 'kv-set': 0, 'kv-watch': 0 },
    failures: { 'wrong-revision': 0, unavailable: 0, timeout: 0 },
    publishesDropped: 0,
    messagesDropped: 0,
    acksUnmatched: 0,
    linkLosses: 0,
  };
  private readonly queue: InputQueue;
  private connection: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private manager: JetStreamManager | null = null;
  /** The hand-off stream's creation time as NATS last told it (contract.ts clusterStatus `stream`). */
  private streamCreated: string | null = null;
  /** Reported `connected` to the core and not lost since. */
  private up = false;
  /** Bumped on every loss: asynchronous work of an earlier epoch finds it changed and stops. */
  private epoch = 0;
  private closed = false;
  private readonly pending = new Set<number>();
  private readonly subscriptions = new Map<number, Subscription>();
  private readonly consumers = new Map<number, ConsumerMessages>();
  /** Deliveries not yet acknowledged, by stream sequence (one consumer per node). */
  private readonly unacked = new Map<number, JsMsg>();
  /** Set while the core paused the consumer (`pace`): deliveries held, by stream sequence, for the resume. */
  private held: Map<number, { consumerId: number; message: JsMsg }> | null = null;
  /** The live watch of each bucket: a `kv-watch` of a watched bucket replaces it (as the simulator's NATS model does). */
  private readonly watchers = new Map<string, { stop(): void }>();
  private readonly buckets = new Map<string, Promise<KV>>();
  private droppedSinceLog = 0;

  constructor(private readonly options: NatsLinkOptions) {
    this.limits = { ...defaultNatsLinkLimits, ...options.limits };
    if (options.servers.length === 0) throw new Error('the cluster link needs at least one NATS URL');
    const replicas = this.limits.replicas;
    if (replicas !== 'auto' && !(Number.isInteger(replicas) && replicas >= 1 && replicas <= 5)) throw new Error(`replicas must be 'auto' or 1 to 5, got ${replicas}`);
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(options.nodeId)) throw new Error(`invalid node id ${JSON.stringify(options.nodeId)}: 1 to 32 of A-Z a-z 0-9 _ -`);
    this.queue = new InputQueue(options.deliver, this.limits.inputsQueuedMax);
    guardNatsWriteAfterEnd();
  }

  /** Reported `connected` to the core and not lost since. */
  get isUp(): boolean {
    return this.up;
  }

  /** The NATS server the link is connected to (`host:port`), or null. */
  get server(): string | null {
    return this.connection === null || this.connection.isClosed() ? null : this.connection.getServer();
  }

  /** Starts connecting; returns at once. `connected` reaches the core once NATS is set up. */
  start(): void {
    void this.run().catch((error: unknown) => {
      if (!this.closed) this.options.logger.error('cluster-link-failed', { message: errorMessage(error) });
    });
  }

  /** Ends the link: nothing more reaches the core; the NATS connection is closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    this.epoch++;
    this.dropInterest();
    this.queue.stop();
    const connection = this.connection;
    if (connection !== null && !connection.isClosed()) await connection.close();
  }

  /** Carries out one request (called by the host while the driver executes actions: never feeds it here). */
  request(request: ClusterRequest): void {
    this.counters.requests[request.op]++;
    switch (request.op) {
      case 'publish':
        return this.publish(request.subject, request.headers, request.payload);
      case 'publish-durable':
        return this.publishDurable(request);
      case 'subscribe':
        return this.subscribe(request.subscriptionId, request.subject, request.queueGroup);
      case 'unsubscribe':
        return this.unsubscribe(request.subscriptionId);
      case 'consume':
        return this.consume(request.requestId, request.consumerId, request.filterSubject);
      case 'ack':
        return this.ack(request.streamSequence);
      case 'pace':
        return this.pace(request.paused);
      case 'kv-set':
        return this.keyValueSet(request);
      case 'kv-watch':
        return this.watch(request.bucket, request.requestId);
    }
  }

  private async run(): Promise<void> {
    const limits = this.limits;
    const connection = await connect({
      servers: [...this.options.servers],
      name: `keel-${this.options.nodeId}`,
      waitOnFirstConnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: limits.reconnectWaitMs,
      pingInterval: limits.pingIntervalMs,
      maxPingOut: 2,
      timeout: limits.requestTimeoutMs,
      // nats.js otherwise makes two Error objects, stack traces and all, for every request up
      // front (every durable publish and key-value put), in case it fails: about 40 % of the
      // client's CPU per request here. The link reports a failure by its message, not its stack.
      noAsyncTraces: true,
    });
    if (this.closed) return void (await connection.close());
    this.connection = connection;
    this.js = jetstream(connection, { timeout: limits.requestTimeoutMs });
    void this.setUp(this.epoch);
    for await (const status of connection.status()) {
      if (this.closed) break;
      if (status.type === 'disconnect' || status.type === 'staleConnection') this.lose(`${status.type} from ${connection.getServer()}`);
      else if (status.type === 'reconnect') void this.setUp(this.epoch);
      else if (status.type === 'error' || status.type === 'ldm') this.options.logger.warn('cluster-link-notice', { kind: status.type, server: connection.getServer() });
    }
  }

  /**
   * Makes sure the stream, this node's consumer and the buckets exist, retrying until JetStream
   * answers, then reports `connected`. Abandoned if the connection is lost meanwhile (the next
   * reconnection starts it again).
   */
  private async setUp(epoch: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed || epoch !== this.epoch) return;
      try {
        await this.ensureObjects();
        break;
      } catch (error) {
        if (this.closed || epoch !== this.epoch) return;
        this.options.logger.warn('cluster-setup-failed', { server: this.server, attempt, message: errorMessage(error) });
        await delay(this.limits.setupRetryMs);
      }
    }
    if (this.closed || epoch !== this.epoch) return;
    this.up = true;
    this.options.logger.info('cluster-link-up', { server: this.server, url: this.options.servers.join(','), nodeId: this.options.nodeId });
    // The node refuses messages above messageBytesMax (src/cluster/message-size.ts); NATS refuses
    // above its max_payload, again on every retry, holding up what is queued behind.
    const maxPayload = this.connection?.info?.max_payload;
    const wanted = this.options.messageBytesMax;
    if (maxPayload !== undefined && wanted !== undefined && maxPayload < wanted) {
      this.options.logger.error('cluster-max-payload-low', {
        server: this.server,
        maxPayload,
        messageBytesMax: wanted,
        action: "set cluster.messageBytesMax to at most the servers' max_payload, or raise max_payload: larger messages would be refused by NATS and hold up the hand-offs queued behind them",
      });
    }
    this.queue.push(this.streamCreated === null ? { kind: 'status', status: 'connected' } : { kind: 'status', status: 'connected', stream: this.streamCreated });
  }

  private async ensureObjects(): Promise<void> {
    const connection = this.connection!;
    const limits = this.limits;
    const manager = await jetstreamManager(connection, { timeout: limits.requestTimeoutMs });
    this.manager = manager;
    const stream = await manager.streams.info(handoffStreamName).catch(notFoundAsNull);
    // Its creation time names it to the core: a stream made anew numbers from 1 again.
    this.streamCreated = stream?.created ?? null;
    if (stream === null) {
      const made = await manager.streams.add({
        name: handoffStreamName,
        subjects: [handoffSubjects],
        storage: StorageType.File,
        retention: RetentionPolicy.Interest,
        discard: DiscardPolicy.New,
        max_bytes: limits.handoffStreamBytesMax,
        num_replicas: this.replicas(),
      });
      this.streamCreated = made.created;
    }
    const name = consumerName(this.options.nodeId);
    const consumer = await manager.consumers.info(handoffStreamName, name).catch(notFoundAsNull);
    const explicitName = explicitAckConsumerName(this.options.nodeId);
    const explicit = await manager.consumers.info(handoffStreamName, explicitName).catch(notFoundAsNull);
    // An earlier version's consumer acknowledged everything up to its ack floor; above it, some
    // deliveries one by one. The new one starts after the floor: what it delivers again that the
    // node applied before is acknowledged again and not routed again (its log says so).
    const start = explicit === null ? 1 : explicit.ack_floor.stream_seq + 1;
    if (consumer === null) {
      await manager.consumers.add(handoffStreamName, {
        durable_name: name,
        ack_policy: AckPolicy.All,
        ...(start === 1 ? { deliver_policy: DeliverPolicy.All } : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start }),
        ack_wait: nanos(limits.ackWaitMs),
        max_deliver: -1,
        max_ack_pending: limits.deliveriesUnackedMax,
        filter_subject: handoffSubjects,
      });
    }
    // Only once the new consumer exists: under interest retention the stream would drop what no
    // consumer is left to want.
    if (explicit !== null) {
      await manager.consumers.delete(handoffStreamName, explicitName);
      this.options.logger.info('cluster-consumer-replaced', { removed: explicitName, consumer: name, startSequence: consumer === null ? start : null });
    }
    // A server restarted without its store lost the buckets too: open (or create) them anew.
    this.buckets.clear();
    for (const bucket of clusterBuckets) await this.bucket(bucket);
  }

  /** Called on a disconnection, or when a consumer or watch failed and must be set up again. */
  private lose(reason: string): void {
    this.epoch++;
    if (this.up) {
      this.up = false;
      this.counters.linkLosses++;
      this.options.logger.warn('cluster-link-down', { url: this.options.servers.join(','), reason });
      this.queue.push({ kind: 'status', status: 'disconnected' });
    }
    this.dropInterest();
    for (const requestId of this.pending) this.complete(requestId, failed(requestId, 'unavailable', `the cluster link was lost: ${reason}`));
  }

  /** Forgets every subscription, consumer and watch (the core re-issues them after `connected`). */
  private dropInterest(): void {
    for (const subscription of this.subscriptions.values()) subscription.unsubscribe();
    this.subscriptions.clear();
    for (const messages of this.consumers.values()) messages.stop();
    this.consumers.clear();
    this.unacked.clear();
    this.held = null;
    for (const watcher of this.watchers.values()) watcher.stop();
    this.watchers.clear();
  }

  private publish(subject: string, headers: ClusterHeaders, payload: Uint8Array): void {
    if (!this.up) {
      this.counters.publishesDropped++;
      return;
    }
    try {
      this.connection!.publish(subject, payload, { headers: toNatsHeaders(headers) });
    } catch (error) {
      this.options.logger.error('cluster-publish-refused', { subject, message: errorMessage(error) });
    }
  }

  private publishDurable(request: Extract<ClusterRequest, { op: 'publish-durable' }>): void {
    if (!this.admit(request.requestId)) return;
    const options = { msgID: request.dedupeId, headers: toNatsHeaders(request.headers), timeout: this.limits.requestTimeoutMs };
    this.js!.publish(request.subject, request.payload, options).then(
      (ack) => this.complete(request.requestId, { requestId: request.requestId, ok: true, sequence: ack.seq }),
      (error: unknown) => this.complete(request.requestId, failure(request.requestId, error)),
    );
  }

  /** Takes a request that NATS must answer, or fails it at once (link down, too many waiting). */
  private admit(requestId: number): boolean {
    if (this.pending.has(requestId)) throw new Error(`cluster request ${requestId} issued twice`);
    if (!this.up) {
      this.failNow(requestId, 'the cluster link is down');
      return false;
    }
    if (this.pending.size >= this.limits.requestsPendingMax) {
      this.failNow(requestId, `${this.limits.requestsPendingMax} cluster requests are already waiting for NATS`);
      return false;
    }
    this.pending.add(requestId);
    return true;
  }

  private failNow(requestId: number, message: string): void {
    this.counters.failures.unavailable++;
    this.queue.push({ kind: 'completed', result: failed(requestId, 'unavailable', message) });
  }

  /** Queues a request's outcome, once: a request failed at a loss ignores NATS's late answer. */
  private complete(requestId: number, result: ClusterResult): void {
    if (!this.pending.delete(requestId)) return;
    if (!result.ok) this.counters.failures[result.code]++;
    this.queue.push({ kind: 'completed', result });
  }

  private subscribe(subscriptionId: number, subject: string, queueGroup: string | null): void {
    // While down nothing is subscribed: the core subscribes again after `connected`.
    if (!this.up) return;
    if (this.subscriptions.has(subscriptionId)) throw new Error(`cluster subscription ${subscriptionId} made twice`);
    try {
      const subscription = this.connection!.subscribe(subject, {
        ...(queueGroup === null ? {} : { queue: queueGroup }),
        callback: (error, message) => this.onCoreMessage(subscriptionId, error, message),
      });
      this.subscriptions.set(subscriptionId, subscription);
    } catch (error) {
      this.options.logger.error('cluster-subscribe-refused', { subject, message: errorMessage(error) });
    }
  }

  private unsubscribe(subscriptionId: number): void {
    const subscription = this.subscriptions.get(subscriptionId);
    if (subscription === undefined) return;
    this.subscriptions.delete(subscriptionId);
    subscription.unsubscribe();
  }

  private onCoreMessage(subscriptionId: number, error: Error | null, message: Msg): void {
    if (error !== null) {
      this.options.logger.error('cluster-subscription-failed', { subscriptionId, message: error.message });
      return;
    }
    if (!this.subscriptions.has(subscriptionId)) return;
    if (!this.queue.hasRoom) return this.dropMessage(message.subject);
    this.queue.push({
      kind: 'message',
      message: { subject: message.subject, headers: fromNatsHeaders(message.headers), payload: message.data, subscriptionId, consumerId: null, streamSequence: null, redelivered: false },
    });
  }

  /** Counts a dropped core NATS message; logs the first of a run of drops and then every 1,000th. */
  private dropMessage(subject: string): void {
    this.counters.messagesDropped++;
    if (this.droppedSinceLog++ % 1_000 === 0) this.options.logger.warn('cluster-messages-dropped', { subject, dropped: this.counters.messagesDropped, inputsQueuedMax: this.limits.inputsQueuedMax });
  }

  /**
   * Starts handing the core this node's consumer's deliveries. The consume is answered (contract.ts)
   * with the consumer's ack floor as its info shows it when it is bound here, before any delivery:
   * the answer is queued for the core before the pull that brings the first one begins. While
   * the link is down it fails at once; a loss before the answer fails it (`lose`), so an answer
   * always belongs to the link the consume was made on.
   */
  private consume(requestId: number, consumerId: number, filterSubject: string): void {
    if (!this.up) return this.failNow(requestId, 'the cluster link is down');
    if (this.consumers.has(consumerId)) throw new Error(`cluster consumer ${consumerId} started twice`);
    if (this.pending.has(requestId)) throw new Error(`cluster request ${requestId} issued twice`);
    // Not bounded by requestsPendingMax: one per link, and refusing it would leave the core unfed.
    this.pending.add(requestId);
    const epoch = this.epoch;
    this.runConsumer(epoch, requestId, consumerId, filterSubject).catch((error: unknown) => this.sourceFailed(epoch, 'consume', error));
  }

  private async runConsumer(epoch: number, requestId: number, consumerId: number, filterSubject: string): Promise<void> {
    const name = consumerName(this.options.nodeId);
    let info = await this.manager!.consumers.info(handoffStreamName, name);
    if (info.config.filter_subject !== filterSubject) info = await this.manager!.consumers.update(handoffStreamName, name, { filter_subject: filterSubject });
    if (epoch !== this.epoch) return;
    // Every sequence up to it was acknowledged by this consumer: it never delivers them again.
    this.complete(requestId, { requestId, ok: true, sequence: info.ack_floor.stream_seq });
    const consumer = await this.js!.consumers.get(handoffStreamName, name);
    // Heartbeats every second: a pull stalled by a NATS server or consumer leader going away is
    // noticed and re-issued in seconds, not after nats.js's default of 30.
    const messages = await consumer.consume({ max_messages: Math.min(256, this.limits.deliveriesUnackedMax), expires: 5_000, idle_heartbeat: 1_000 });
    if (epoch !== this.epoch) return void messages.stop();
    this.consumers.set(consumerId, messages);
    const gate = new RedeliveryGate<JsMsg>(info.delivered.stream_seq, info.num_ack_pending);
    const giveUp = setTimeout(() => this.releaseGate(epoch, consumerId, gate), redeliveryHoldAckWaits * this.limits.ackWaitMs);
    giveUp.unref();
    try {
      for await (const message of messages) {
        await this.queue.whenBelowHighWater();
        if (epoch !== this.epoch) return;
        const ready = gate.offer(message);
        for (let index = 0; index < ready.length; index++) this.forwardDelivery(consumerId, ready[index]!);
        if (gate.open) clearTimeout(giveUp);
      }
    } finally {
      clearTimeout(giveUp);
    }
    if (epoch === this.epoch) throw new Error('the hand-off consumer stopped');
  }

  /** A pending delivery never came back (deleted from the stream?): the held ones go on. */
  private releaseGate(epoch: number, consumerId: number, gate: RedeliveryGate<JsMsg>): void {
    if (epoch !== this.epoch || gate.open) return;
    this.options.logger.warn('cluster-redelivery-hold-released', { held: gate.heldCount, waitedMs: redeliveryHoldAckWaits * this.limits.ackWaitMs });
    for (const message of gate.release()) this.forwardDelivery(consumerId, message);
  }

  private forwardDelivery(consumerId: number, message: JsMsg): void {
    // Paused: held, at most one per sequence (a redelivery replaces it), so at most the consumer's
    // max ack pending, since NATS sends nothing new past it.
    if (this.held !== null) return void this.held.set(message.seq, { consumerId, message });
    this.unacked.set(message.seq, message);
    this.queue.push({
      kind: 'message',
      message: {
        subject: message.subject,
        headers: fromNatsHeaders(message.headers),
        payload: message.data,
        subscriptionId: null,
        consumerId,
        streamSequence: message.seq,
        redelivered: message.info.redelivered,
      },
    });
  }

  /** The core pauses the consumer while its streams' backlog is full, and resumes it (contract.ts `pace`). */
  private pace(paused: boolean): void {
    if (paused) {
      this.held ??= new Map();
      return;
    }
    const held = this.held;
    this.held = null;
    if (held === null) return;
    const sequences = [...held.keys()].sort((a, b) => a - b);
    for (const sequence of sequences) {
      const { consumerId, message } = held.get(sequence)!;
      this.forwardDelivery(consumerId, message);
    }
  }

  private ack(streamSequence: number): void {
    const message = this.unacked.get(streamSequence);
    if (message === undefined) {
      // Delivered before a loss: NATS redelivers it, and the core acknowledges that delivery.
      this.counters.acksUnmatched++;
      return;
    }
    this.unacked.delete(streamSequence);
    message.ack();
  }

  private keyValueSet(request: Extract<ClusterRequest, { op: 'kv-set' }>): void {
    if (!this.admit(request.requestId)) return;
    const requestId = request.requestId;
    this.setKey(request).then(
      (revision) => this.complete(requestId, { requestId, ok: true, sequence: revision }),
      (error: unknown) => this.complete(requestId, failure(requestId, error)),
    );
  }

  private async setKey(request: Extract<ClusterRequest, { op: 'kv-set' }>): Promise<number> {
    const bucket = await withTimeout(this.bucket(request.bucket), this.limits.requestTimeoutMs);
    const { key, value, expectedRevision } = request;
    if (value === null) return this.deleteKey(request.bucket, key, expectedRevision);
    if (expectedRevision === null) return bucket.put(key, value);
    if (expectedRevision === 0) return bucket.create(key, value);
    return bucket.update(key, value, expectedRevision);
  }

  /**
   * A delete is a `KV-Operation: DEL` marker published on the key's subject (what nats.js's own
   * delete sends), here through JetStream's publish so that the answer carries the marker's
   * revision and a compare-and-set can use the expected-last-subject-sequence header.
   */
  private async deleteKey(bucket: string, key: string, expectedRevision: number | null): Promise<number> {
    const headers = natsHeaders();
    headers.set('KV-Operation', 'DEL');
    const expect = expectedRevision === null ? {} : { expect: { lastSubjectSequence: expectedRevision } };
    const ack = await this.js!.publish(`$KV.${bucket}.${key}`, new Uint8Array(0), { headers, timeout: this.limits.requestTimeoutMs, ...expect });
    return ack.seq;
  }

  private watch(bucketName: string, requestId: number): void {
    if (!this.up) return;
    const epoch = this.epoch;
    this.runWatch(epoch, bucketName, requestId).catch((error: unknown) => this.sourceFailed(epoch, 'kv-watch', error));
  }

  /**
   * Watches a bucket: its keys, then `watch-current` once the initial replay is in, then every
   * change. The watch is an ordered pull consumer on the bucket's stream (`KV_<bucket>`, last value
   * per key, then every new one: what nats.js's `watch` delivers, in the same order), read in
   * batches of `watchBatchMax` that the link asks for only while the input queue is below its high
   * water: NATS keeps what the core is not ready for, and an entry lives in this process only from
   * its batch to the core, so it dies young (nats.js's push watch buffered the whole replay ahead of
   * a slower core, and each entry outlived a few collections: most of the replay's CPU was the
   * garbage collector's). The replay is the consumer's pending count when it is made: its end is
   * the entry that count reaches, or an earlier one with nothing pending behind it (the count is
   * as of a moment after the request; the consumer of an empty bucket is current at once).
   */
  private async runWatch(epoch: number, bucketName: string, requestId: number): Promise<void> {
    await this.bucket(bucketName);
    const subjects = `$KV.${bucketName}.>`;
    const consumer = await this.js!.consumers.get(`KV_${bucketName}`, { deliver_policy: DeliverPolicy.LastPerSubject, filter_subjects: subjects });
    const replayLength = (await consumer.info(true)).num_pending;
    let stopped = false;
    let batch: ConsumerMessages | null = null;
    const watcher = {
      stop(): void {
        stopped = true;
        batch?.stop();
        consumer.delete().catch(() => undefined);
      },
    };
    if (epoch !== this.epoch) return watcher.stop();
    // A second watch of the bucket would deliver every change twice from now on: the new one,
    // which replays every key, takes over.
    this.watchers.get(bucketName)?.stop();
    this.watchers.set(bucketName, watcher);
    const current = (): boolean => !stopped && epoch === this.epoch;
    let replayed = replayLength === 0;
    if (replayed) this.queue.push({ kind: 'watch-current', bucket: bucketName, requestId });
    const keyOffset = subjects.length - 1;
    let received = 0;
    while (current()) {
      if (!this.queue.belowHighWater) await this.queue.whenBelowHighWater();
      if (!current()) return;
      batch = await consumer.fetch({ max_messages: watchBatchMax, expires: watchFetchExpiresMs });
      const fetchedAtMs = Date.now();
      let fetched = 0;
      for await (const message of batch) {
        if (!current()) return;
        fetched += 1;
        received += 1;
        const key = message.subject.substring(keyOffset);
        this.queue.push({ kind: 'key-changed', change: { bucket: bucketName, key, value: watchedValue(message), revision: message.seq } });
        if (replayed || !(received >= replayLength || message.info.pending === 0)) continue;
        replayed = true;
        this.queue.push({ kind: 'watch-current', bucket: bucketName, requestId });
      }
      // A batch that ended empty well before its expiry (nats.js ends one early on some server
      // statuses) is asked for again only after a pause: never a loop of pull requests.
      if (fetched === 0 && Date.now() - fetchedAtMs < watchFetchExpiresMs / 2) await delay(this.limits.setupRetryMs);
    }
  }

  /**
   * A consumer or watch ended while the link was up (its NATS object was deleted, or the server
   * refused it): the core would wait forever for what it asked, so the link goes down and is set
   * up again, after which the core asks again.
   */
  private sourceFailed(epoch: number, what: string, error: unknown): void {
    if (this.closed || epoch !== this.epoch) return;
    this.options.logger.error('cluster-source-failed', { what, message: errorMessage(error) });
    this.lose(`${what} failed`);
    const next = this.epoch;
    setTimeout(() => void this.setUp(next), this.limits.setupRetryMs).unref();
  }

  /** How many copies new JetStream objects get (NatsLinkLimits.replicas). */
  private replicas(): number {
    const configured = this.limits.replicas;
    if (configured !== 'auto') return configured;
    const info = this.connection?.info;
    const peers = info?.connect_urls?.length ?? 0;
    return info?.cluster !== undefined && peers >= 2 ? 3 : 1;
  }

  /** The bucket, opened (created if missing, history 1) on first use. */
  private bucket(name: string): Promise<KV> {
    let bucket = this.buckets.get(name);
    if (bucket === undefined) {
      bucket = new Kvm(this.js!).create(name, { history: 1, replicas: this.replicas(), timeout: this.limits.requestTimeoutMs });
      // A failed open is not kept: the next use tries again.
      bucket.catch(() => this.buckets.delete(name));
      this.buckets.set(name, bucket);
    }
    return bucket;
  }
}

/**
 * The value of a key-value entry, null for a deletion: nats.js's rule for a watch entry's operation
 * (a `KV-Operation` header of DEL or PURGE, or a server's marker for a value that aged out).
 */
function watchedValue(message: JsMsg): Uint8Array | null {
  const headers = message.headers;
  if (headers === undefined) return message.data;
  if (headers.get('Nats-Marker-Reason') === 'MaxAge') return null;
  const operation = headers.get('KV-Operation');
  return operation === '' || operation === 'PUT' ? message.data : null;
}

function toNatsHeaders(headers: ClusterHeaders): MsgHdrs | undefined {
  let result: MsgHdrs | undefined;
  for (const key in headers) {
    result ??= natsHeaders();
    result.set(key, headers[key]!);
  }
  return result;
}

/** Header values NATS carries more than once are joined with `,` (HTTP's rule for lists). */
function fromNatsHeaders(headers: MsgHdrs | undefined): ClusterHeaders {
  const result: Record<string, string> = {};
  if (headers === undefined) return result;
  for (const [key, values] of headers) result[key] = values.join(',');
  return result;
}

function failed(requestId: number, code: 'wrong-revision' | 'unavailable' | 'timeout', message: string): ClusterResult {
  return { requestId, ok: false, code, message };
}

function failure(requestId: number, error: unknown): ClusterResult {
  if (error instanceof JetStreamApiError && error.code === wrongLastSequenceCode) return failed(requestId, 'wrong-revision', error.message);
  return failed(requestId, isTimeout(error) ? 'timeout' : 'unavailable', errorMessage(error));
}

function isTimeout(error: unknown): boolean {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 4; cause = cause.cause, depth++) {
    if (cause.name === 'TimeoutError' || cause.message.includes('timeout')) return true;
  }
  return false;
}

function notFoundAsNull(error: unknown): null {
  if (error instanceof JetStreamApiError && error.status === 404) return null;
  throw error;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout after ${timeoutMs} ms`)), timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
