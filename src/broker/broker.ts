/**
 * The broker core: a deterministic, sans-IO MQTT 3.1/3.1.1/5.0 state machine.
 *
 * A driver feeds inputs (connection opened, bytes, connection closed, storage completed, tick),
 * each with the current time; every input runs to completion and queues actions (send, close,
 * storage, log) that the driver drains. Nothing here reads a clock or does I/O.
 *
 * This file holds the state and the primitives every handler uses, and the dispatch:
 * - `commit(record)`: the only way durable state changes (append to the store, then
 *   `applyRecord`, keeping the subscription trie in step). Records about volatile sessions
 *   (session expiry 0: they end with their connection, so a crash ends them too) are applied
 *   without being written.
 * - `send(connection, bytes, lsn)`: bytes that depend on records not yet durable (CONNACK of a
 *   persistent session, PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK) wait in the connection's held
 *   queue until the store's durable LSN reaches theirs; later bytes queue behind them so a
 *   connection's packets keep their order.
 * - `fail(connection, violation)`: the one place a protocol violation becomes an outcome.
 * - `closeConnection`: the one place a connection ends, binding will and session consequences.
 * One handler per packet type lives in the handle-*.ts files.
 */
import { assert } from '../assert.js';
import { ClusterNode } from '../cluster/cluster-node.js';
import { PacketDecoder } from '../codec/decoder.js';
import { encodePacket } from '../codec/encoder.js';
import { ProtocolViolation, protocolError } from '../codec/errors.js';
import { type Packet, PacketType } from '../codec/packets.js';
import { ReasonCode } from '../codec/reason-codes.js';
import type { BrokerConfig } from '../config.js';
import type {
  Action,
  AdminCommand,
  AdminOutcome,
  BrokerCore,
  ClusterKeyChange,
  ClusterMessage,
  ClusterRequest,
  ClusterResult,
  ConnectionId,
  ConnectionPeer,
  ListenerInfo,
  LogFields,
  LogLevel,
  StorageResult,
} from '../contract.js';
import { recordProblem, replayRecord } from '../store/record-check.js';
import type { SubscriptionState } from '../store/state-store.js';
import { applyRecord, createDurableState, type DurableState, finishReplay, type RecordOrigin, type StateRecord, type StateStore } from '../store/state-store.js';
import { SubscriptionTrie } from '../topics/trie.js';
import { AccessControl } from './access-control.js';
import { handleAdminCommand } from './admin.js';
import type { Authenticator, EnhancedAuthenticator } from './authenticator.js';
import type { Authorizer } from './authorizer.js';
import { Connection, connectionLogFields, type HeldSend } from './connection.js';
import { type DeadlineEntry, DeadlineHeap } from './deadline-heap.js';
import { violationOutcome } from './errors.js';
import { handlePuback, handlePubcomp, handlePubrec } from './handle-acks.js';
import { routeAuthentication } from './handle-auth.js';
import { handleConnect } from './handle-connect.js';
import { handleDisconnect } from './handle-disconnect.js';
import { handlePublish, handlePubrel } from './handle-publish.js';
import { handleSubscribe, handleUnsubscribe } from './handle-subscribe.js';
import { type FilterInterest, rebuildTrie, updateTrieForRecord } from './indexes.js';
import { onKeepAliveDeadline, scheduleKeepAlive } from './keepalive.js';
import { rateBucket } from './limits.js';
import { pump, resumeOutput } from './outbound-queue.js';
import type { RetainedReplay } from './retained-replay.js';
import { Router } from './routing.js';
import { detachSession, onSessionExpiryDeadline, scheduleRecoveredSessions } from './session-lifecycle.js';
import { type BrokerStats, createStats } from './stats.js';
import { reconcileConfiguredStreams } from './streams/stream-admin.js';
import { applyRetention, compactLastValueStreams } from './streams/stream-retention.js';
import { Streams } from './streams/streams.js';
import { SysTopics } from './sys-topics.js';
import { PublisherThrottle } from './throttle.js';
import type { TokenBucket } from './token-bucket.js';
import { BrokerInspection } from './view.js';
import { onWillDeadline, type PendingWill, scheduleRecoveredWills } from './will.js';

export interface BrokerOptions {
  config: BrokerConfig;
  /** Time at construction; inputs after it must not be earlier. */
  nowMs: number;
  /**
   * Where durable state goes. A store that already holds records (a restart after a crash) is
   * replayed into the new broker before it becomes `ready`.
   */
  store: StateStore;
  /** Decides on credentials; absent means anonymous access for everyone. */
  authenticator?: Authenticator;
  /** MQTT 5.0 enhanced authentication methods; absent means a CONNECT naming a method gets 0x8C. */
  enhancedAuthenticator?: EnhancedAuthenticator;
  /** Decides who may publish, subscribe to and receive which topics; absent means everybody may. */
  authorizer?: Authorizer;
  /** Named in `$SYS/broker/version`, e.g. `keel 0.1.0`; default `keel`. */
  version?: string;
  /**
   * Whether `debug` log actions are queued (default true). A host whose logger drops debug lines
   * says false, so that per-message debug lines (one per dropped message, with a payload
   * checksum) are not built only to be thrown away: a subscriber that stopped reading makes
   * every message it misses a drop.
   */
  logDebug?: boolean;
  /**
   * Whether `info` log actions are queued (default true). False when the host's logger drops
   * them (`--log-level warn` or above): one line per connect and disconnect is otherwise built
   * and thrown away for every client of a reconnect storm.
   */
  logInfo?: boolean;
  /**
   * Unix time minus core time, in milliseconds: the core has no wall clock, and stream entries
   * are stamped with Unix time (for `time:` seeks and `retentionMs`, which must mean the same
   * across restarts). The Node host passes `Date.now()` minus its monotonic clock at start; the
   * simulator 0 or a fixed value. Default 0.
   */
  wallClockOffsetMs?: number;
}

/** What `drainActions` returns when nothing was queued; frozen, so that no caller can fill it. */
const noActions: readonly Action[] = Object.freeze([]);

/** How a connection ends, as far as its will is concerned. */
export type WillOutcome = 'publish' | 'discard';

export class Broker implements BrokerCore {
  readonly config: BrokerConfig;
  readonly store: StateStore;
  readonly authenticator: Authenticator | undefined;
  readonly enhancedAuthenticator: EnhancedAuthenticator | undefined;
  /** Topic authorization (access-control.ts); null without an authorizer, so every check is one test. */
  readonly access: AccessControl | null;
  readonly state: DurableState = createDurableState();
  readonly trie = new SubscriptionTrie<SubscriptionState>();
  readonly connections = new Map<ConnectionId, Connection>();
  /** Connected clients per listener, for listeners with their own connectionsMax and for operators. */
  private readonly clientsByListener = new Map<ListenerInfo, number>();
  /** Connected clients by client id. */
  readonly online = new Map<string, Connection>();
  readonly pendingWills = new Map<string, PendingWill>();
  /** Retained messages owed to new subscriptions, by client id (retained-replay.ts). */
  readonly retainedReplays = new Map<string, RetainedReplay>();
  readonly sessionExpiryDeadlines = new Map<string, number>();
  readonly deadlines = new DeadlineHeap();
  readonly stats: BrokerStats = createStats();
  readonly router: Router;
  /** Backpressure on publishers whose messages would pile up (throttle.ts). */
  readonly throttle: PublisherThrottle;
  /** `$SYS` publication (sys-topics.ts); null when sysIntervalSeconds is 0. */
  readonly sys: SysTopics | null;
  /** BrokerOptions.logDebug: false skips debug log actions (and building their fields). */
  readonly logDebug: boolean;
  /** BrokerOptions.logInfo: false skips info log actions. */
  readonly logInfo: boolean;
  /** connectionRatePerSecondMax, shared by every CONNECT; null when unlimited. */
  readonly connectionBucket: TokenBucket | null;
  private actions: Action[] = [];
  /** Records replayed at start-up, for the `recovered` log line. */
  private recoveredRecords = 0;
  private readonly connectionsWithHeld = new Set<Connection>();
  /** Session deletions appended but not yet durable, by client id: their LSN (see pendingDeletionLsn). */
  private readonly pendingDeletions = new Map<string, number>();
  /** Admin results waiting for their records to be durable, in order. */
  private readonly heldAdminResults: { lsn: number; requestId: number; outcome: AdminOutcome }[] = [];
  /** The read-only view for metrics and the admin API (view.ts). */
  readonly view: BrokerInspection;
  /** Durable streams (streams/streams.ts). */
  readonly streams: Streams;
  /** This node's part of a cluster (src/cluster/); null for a single broker, which then pays one test per publish. */
  readonly cluster: ClusterNode | null;
  /** The cluster node's interest in filters entering and leaving the trie; null without a cluster. */
  private readonly filterInterest: FilterInterest;
  /** Set once the log's replay is over (recovery may still be reconciling the stream files). */
  private replayed = false;
  /**
   * While an inbound QoS 2 PUBLISH is routed: the outbound QoS 2 PUBLISHes it produced, each with
   * the LSN of its own delivery record. They must also wait for the inbound identifier's record,
   * appended after routing (see handle-publish.ts), or a crash could lose that record while a
   * subscriber already holds a copy, and the publisher's resend would be routed again.
   */
  private inboundQos2Holds: { item: HeldSend; ownLsn: number }[] | null = null;
  private lastNowMs: number;
  private isReady = false;
  private haltReasonValue: string | null = null;
  private generatedClientIdCount = 0;
  /**
   * Counts inputs; a connection's output accounting from an earlier input is stale (see
   * Connection.outputInput). Starts at 1 so that a new connection's 0 is already stale.
   */
  inputSequence = 1;

  constructor(options: BrokerOptions) {
    assert(Number.isFinite(options.nowMs), 'nowMs must be a finite number');
    this.config = options.config;
    this.store = options.store;
    this.authenticator = options.authenticator;
    this.enhancedAuthenticator = options.enhancedAuthenticator;
    // Before the router, which reads it once when it is built.
    this.access = options.authorizer === undefined ? null : new AccessControl(this, options.authorizer);
    this.lastNowMs = options.nowMs;
    this.router = new Router(this);
    this.throttle = new PublisherThrottle(this);
    const sysIntervalMs = options.config.sysIntervalSeconds * 1000;
    this.sys = sysIntervalMs === 0 ? null : new SysTopics(this, sysIntervalMs, options.nowMs, options.version ?? 'keel');
    this.logDebug = options.logDebug ?? true;
    this.logInfo = options.logInfo ?? true;
    this.connectionBucket = rateBucket(options.config.connectionRatePerSecondMax, options.nowMs);
    this.view = new BrokerInspection(this, options.nowMs);
    this.streams = new Streams(this, options.wallClockOffsetMs ?? 0);
    this.cluster = options.config.cluster === null ? null : new ClusterNode(this, options.config.cluster);
    const cluster = this.cluster;
    this.filterInterest = cluster === null ? null : (filter, delta) => cluster.filterChanged(filter, delta);
    assert(options.config.streams.length === 0 || options.store.streams !== undefined, 'configured streams need a store that keeps streams');
    this.tryRecover(options.nowMs);
    this.afterInput(options.nowMs);
  }

  get ready(): boolean {
    return this.isReady;
  }

  /** The time of the input being handled (or the last one). */
  get lastInputMs(): number {
    return this.lastNowMs;
  }

  // ---- inputs -------------------------------------------------------------------------------

  connectionOpened(nowMs: number, connectionId: ConnectionId, peer: ConnectionPeer): void {
    if (!this.enter(nowMs)) return;
    assert(this.isReady, 'connection opened before the broker is ready');
    assert(!this.connections.has(connectionId), `connection id ${connectionId} reused`);
    const decoder = new PacketDecoder({ packetBytesMax: this.config.packetBytesMax });
    const connection = new Connection(connectionId, peer.remoteAddress, peer.listener, decoder, nowMs);
    connection.verifiedUsername = peer.verifiedUsername;
    this.connections.set(connectionId, connection);
    this.stats.connectionsOpened += 1;
    this.stats.connectionsCurrent += 1;
    this.deadlines.push(nowMs + this.config.connectTimeoutMs, 'connect-timeout', connectionId, '');
    this.afterInput(nowMs);
  }

  bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void {
    if (!this.enter(nowMs)) return;
    const connection = this.connections.get(connectionId);
    // Bytes after a close decision (or for a connection we never saw) are ignored.
    if (connection !== undefined && connection.phase !== 'closing') {
      this.stats.bytesReceived += bytes.length;
      this.receive(connection, bytes, nowMs);
    }
    this.afterInput(nowMs);
  }

  connectionClosed(nowMs: number, connectionId: ConnectionId): void {
    if (!this.enter(nowMs)) return;
    const connection = this.connections.get(connectionId);
    if (connection !== undefined && connection.phase !== 'closing') {
      this.closeConnection(connection, nowMs, 'peer closed', 'publish', false);
    }
    this.afterInput(nowMs);
  }

  outputBuffered(nowMs: number, connectionId: ConnectionId, bufferedBytes: number): void {
    if (!this.enter(nowMs)) return;
    assert(Number.isInteger(bufferedBytes) && bufferedBytes >= 0, 'buffered bytes must be a non-negative integer');
    const connection = this.connections.get(connectionId);
    // A report may cross a close decision; a closing connection is sent nothing more anyway.
    if (connection !== undefined && connection.phase !== 'closing') {
      this.throttle.outputReported(connection, bufferedBytes);
      connection.outputReportedBytes = bufferedBytes;
      connection.outputBufferedBytes = bufferedBytes;
      connection.outputInput = this.inputSequence;
      if (connection.phase === 'connected') resumeOutput(this, connection, nowMs);
    }
    this.afterInput(nowMs);
  }

  storageCompleted(nowMs: number, result: StorageResult): void {
    if (!this.enter(nowMs)) return;
    this.store.storageCompleted(nowMs, result);
    if (!this.isReady) this.tryRecover(nowMs);
    this.afterInput(nowMs);
  }

  tick(nowMs: number): void {
    if (!this.enter(nowMs)) return;
    if (this.isReady) {
      // Bounded by the heap: every entry is popped once, and handlers push only future deadlines.
      for (let entry = this.deadlines.popDue(nowMs); entry !== null; entry = this.deadlines.popDue(nowMs)) {
        this.fire(entry, nowMs);
      }
    }
    this.afterInput(nowMs);
  }

  adminRequest(nowMs: number, requestId: number, command: AdminCommand): void {
    if (!this.enter(nowMs)) return;
    if (!this.isReady) {
      this.actions.push({ kind: 'admin-result', requestId, outcome: { ok: false, status: 'invalid', message: 'the broker is still recovering' } });
    } else {
      const appendedBefore = this.store.appendedLsn;
      const outcome = handleAdminCommand(this, command, nowMs);
      // Answered once what it changed is durable, like an acknowledgement (admin.ts).
      this.heldAdminResults.push({ lsn: this.lsnSince(appendedBefore), requestId, outcome });
    }
    this.afterInput(nowMs);
  }

  // ---- the cluster link (contract.ts ClusterInputs; only for a node built with `cluster`) -----

  clusterStatus(nowMs: number, status: 'connected' | 'disconnected', stream?: string): void {
    if (!this.enter(nowMs)) return;
    this.clusterNode().status(nowMs, status, stream);
    this.afterInput(nowMs);
  }

  clusterMessage(nowMs: number, message: ClusterMessage): void {
    if (!this.enter(nowMs)) return;
    // Nothing is routed before recovery is over: the stream redelivers what was not acknowledged.
    if (this.isReady) this.clusterNode().message(nowMs, message);
    this.afterInput(nowMs);
  }

  clusterMessages(nowMs: number, messages: readonly ClusterMessage[]): void {
    if (!this.enter(nowMs)) return;
    assert(messages.length > 0, 'a batch of cluster messages is not empty');
    if (this.isReady) for (let index = 0; index < messages.length; index++) this.clusterNode().message(nowMs, messages[index]!);
    this.afterInput(nowMs);
  }

  clusterCompleted(nowMs: number, result: ClusterResult): void {
    if (!this.enter(nowMs)) return;
    this.clusterNode().completed(nowMs, result);
    this.afterInput(nowMs);
  }

  clusterKeyChanged(nowMs: number, change: ClusterKeyChange): void {
    if (!this.enter(nowMs)) return;
    // Before recovery is over a change is dropped: the watches are issued again at its end and after every connect.
    if (this.isReady) this.clusterNode().keyChanged(nowMs, change);
    this.afterInput(nowMs);
  }

  clusterWatchCurrent(nowMs: number, bucket: string, requestId: number): void {
    if (!this.enter(nowMs)) return;
    // Before recovery is over the replay's changes were dropped: the watches issued again at its end answer anew.
    if (this.isReady) this.clusterNode().watchCurrent(nowMs, bucket, requestId);
    this.afterInput(nowMs);
  }

  private clusterNode(): ClusterNode {
    assert(this.cluster !== null, 'a cluster input reached a broker without a cluster');
    return this.cluster;
  }

  /** Queues a request on the cluster link (cluster-node.ts). */
  pushCluster(request: ClusterRequest): void {
    assert(this.cluster !== null, 'only a cluster node uses the cluster link');
    this.actions.push({ kind: 'cluster', request });
  }

  shutdown(nowMs: number): void {
    if (!this.enter(nowMs)) return;
    for (const connection of [...this.connections.values()]) {
      if (connection.phase === 'closing') continue;
      if (connection.phase === 'connected' && connection.version === 5) {
        this.sendPacket(connection, { type: PacketType.Disconnect, reasonCode: ReasonCode.ServerShuttingDown }, 0, true);
      }
      this.closeConnection(connection, nowMs, 'server shutting down', 'publish', true);
    }
    this.afterInput(nowMs);
  }

  drainActions(): readonly Action[] {
    const actions = this.actions;
    // The driver drains after every input, and most inputs queue nothing (in the simulator, a
    // segment of a packet): the empty queue is kept instead of a new one made.
    if (actions.length === 0) return noActions;
    this.actions = [];
    return actions;
  }

  nextDeadlineMs(): number | null {
    const mine = this.isReady ? this.deadlines.peekMs() : null;
    const store = this.store.nextDeadlineMs();
    if (mine === null) return store;
    if (store === null) return mine;
    return Math.min(mine, store);
  }

  // ---- primitives used by the handlers --------------------------------------------------------

  /** Appends (unless volatile) and applies one durable change; returns its LSN, 0 if not written. */
  commit(record: StateRecord, volatile: boolean = this.isVolatile(record)): number {
    // Before the record is written: recovery must be able to apply whatever reaches the log
    // (record-check.ts). Handlers validate client input; failing here is a Keel bug.
    const problem = recordProblem(record);
    if (problem !== null) assert(false, `record ${record.kind} must not be committed: ${problem}`);
    updateTrieForRecord(this.trie, this.state, record, this.filterInterest);
    const lsn = volatile ? 0 : this.store.append(record);
    if (lsn !== 0 && record.kind === 'session-deleted') this.pendingDeletions.set(record.clientId, lsn);
    applyRecord(this.state, record);
    return lsn;
  }

  /**
   * The LSN of the deletion of `clientId`'s durable session when it is not durable yet, else 0. A
   * CONNACK waits for it: a session deleted by an earlier input (a clean start taken over since,
   * an operator's command) must not come back after a crash once a later CONNACK said it is gone.
   */
  pendingDeletionLsn(clientId: string): number {
    const lsn = this.pendingDeletions.get(clientId);
    if (lsn === undefined) return 0;
    if (lsn > this.store.durableLsn) return lsn;
    this.pendingDeletions.delete(clientId);
    return 0;
  }

  /** The LSN an acknowledgement must wait for, given the store's appended LSN before the work. */
  lsnSince(appendedBefore: number): number {
    const now = this.store.appendedLsn;
    return now > appendedBefore ? now : 0;
  }

  /**
   * `handoff`: a cluster hand-off ticket the bytes also wait for (an acknowledgement of a message
   * handed to the cluster). `packets`: how many packets `bytes` holds (a run of stream PUBLISHes
   * is sent as one chunk: stream-delivery.ts PublishRun), for the sent-packets count.
   */
  send(connection: Connection, bytes: Uint8Array, lsn = 0, isPuback = false, handoff = 0, packets = 1): void {
    assert(connection.phase !== 'closing', 'send on a closing connection');
    assert(packets >= 1 && (packets === 1 || !isPuback), 'a chunk holds one packet or more, and a PUBACK alone');
    if ((connection.held !== null && connection.held.length > 0) || lsn > this.store.durableLsn || handoff !== 0) {
      heldOf(connection).push({ lsn, bytes, isPuback, handoff, packets });
      this.connectionsWithHeld.add(connection);
      return;
    }
    if (isPuback) connection.pendingPubacks -= 1;
    this.emitSend(connection, bytes, packets);
  }

  /**
   * True while an open connection holds bytes (an acknowledgement) that wait for cluster ticket
   * `ticket`: its publisher is still there to be answered (cluster/retained-sync.ts, rule 2). A
   * scan of the connections with held bytes, made only when a retained put met a conflict.
   */
  ticketAwaited(ticket: number): boolean {
    assert(ticket > 0, 'a cluster ticket is positive');
    for (const connection of this.connectionsWithHeld) for (const item of heldOf(connection)) if (item.handoff === ticket) return true;
    return false;
  }

  /** An outbound QoS 2 PUBLISH whose delivery record has `lsn`; see `inboundQos2Holds`. */
  sendQos2Publish(connection: Connection, bytes: Uint8Array, lsn: number): void {
    if (this.inboundQos2Holds === null) return this.send(connection, bytes, lsn);
    assert(connection.phase !== 'closing', 'send on a closing connection');
    // Held unconditionally: its final LSN is known only once routing is over.
    const item: HeldSend = { lsn: Number.MAX_SAFE_INTEGER, bytes, isPuback: false, handoff: 0, packets: 1 };
    heldOf(connection).push(item);
    this.connectionsWithHeld.add(connection);
    this.inboundQos2Holds.push({ item, ownLsn: lsn });
  }

  /** Starts collecting outbound QoS 2 PUBLISHes produced by routing an inbound QoS 2 PUBLISH. */
  beginInboundQos2Routing(): void {
    assert(this.inboundQos2Holds === null, 'inbound QoS 2 routing does not nest');
    this.inboundQos2Holds = [];
  }

  /** Routing is over; `recordLsn` is the inbound identifier's record (0 when not written). */
  endInboundQos2Routing(recordLsn: number): void {
    const holds = this.inboundQos2Holds;
    assert(holds !== null, 'inbound QoS 2 routing was not begun');
    for (const hold of holds) hold.item.lsn = Math.max(hold.ownLsn, recordLsn);
    this.inboundQos2Holds = null;
  }

  /** `immediate` skips the held queue: only for a last packet before a close. */
  sendPacket(connection: Connection, packet: Packet, lsn = 0, immediate = false, handoff = 0): void {
    const bytes = encodePacket(packet, connection.version);
    if (immediate) this.emitSend(connection, bytes);
    else this.send(connection, bytes, lsn, false, handoff);
  }

  /** Clients connected per listener name, for operators. */
  clientsPerListener(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const [listener, count] of this.clientsByListener) counts[listener.name] = (counts[listener.name] ?? 0) + count;
    return counts;
  }

  /** Clients connected through `listener` now (for its own connectionsMax). */
  listenerClients(listener: ListenerInfo): number {
    return this.clientsByListener.get(listener) ?? 0;
  }

  /** A client connected (+1) or went (-1) through `listener`. */
  countListenerClient(listener: ListenerInfo, change: 1 | -1): void {
    const count = this.listenerClients(listener) + change;
    assert(count >= 0, 'listener client count went negative');
    if (count === 0) this.clientsByListener.delete(listener);
    else this.clientsByListener.set(listener, count);
  }

  /** A cluster claim settled (session-registry.ts): read on, starting with what waited in the decoder. */
  continueReading(connection: Connection, nowMs: number): void {
    assert(!connection.claimPending, 'reading goes on once the claim is settled');
    this.pushReading(connection, false);
    this.receive(connection, new Uint8Array(0), nowMs);
  }

  /** Asks the host to stop (`pause`) or start reading from a connection again (throttle.ts). */
  pushReading(connection: Connection, pause: boolean): void {
    assert(connection.phase !== 'closing', 'reading paused or resumed on a closing connection');
    this.actions.push(pause ? { kind: 'pause-reading', connectionId: connection.id } : { kind: 'resume-reading', connectionId: connection.id });
  }

  log(level: LogLevel, event: string, fields: LogFields): void {
    if (level === 'debug' && !this.logDebug) return;
    if (level === 'info' && !this.logInfo) return;
    this.actions.push({ kind: 'log', level, event, fields });
  }

  generateClientId(): string {
    // Counter-based for determinism; skips ids a stored session already uses.
    for (;;) {
      this.generatedClientIdCount += 1;
      // A cluster node's ids carry its node id: client ids are claimed cluster-wide (session-registry.ts).
      const candidate = this.cluster === null ? `keel-${this.generatedClientIdCount}` : `keel-${this.cluster.nodeId}-${this.generatedClientIdCount}`;
      if (!this.state.sessions.has(candidate) && !this.online.has(candidate)) return candidate;
    }
  }

  /** The one place a protocol violation turns into an outcome for the offending connection. */
  fail(connection: Connection, violation: ProtocolViolation, nowMs: number): void {
    const connected = connection.phase === 'connected';
    const known = connected ? connection.version : connection.decoder.protocolVersion;
    const outcome = violationOutcome(connected, known, violation);
    this.stats.protocolViolations += 1;
    // The decoder raises this one before any handler runs, so it is counted here.
    if (violation.code === 'packet-too-large') this.stats.limits.packetBytesMax += 1;
    this.log('warn', 'protocol-violation', {
      ...connectionLogFields(connection),
      code: violation.code,
      reasonCode: violation.reasonCode,
      message: violation.message,
    });
    if (outcome.packet !== null) this.emitSend(connection, encodePacket(outcome.packet, outcome.version));
    this.closeConnection(connection, nowMs, `protocol violation: ${violation.code}`, 'publish', true);
  }

  /**
   * Ends a connection: queues the close action, then unbinds its session (publishing or
   * discarding its will). `brokerInitiated` is false when the transport already closed.
   */
  closeConnection(connection: Connection, nowMs: number, reason: string, will: WillOutcome, brokerInitiated: boolean): void {
    if (connection.phase === 'closing') return;
    const wasConnected = connection.phase === 'connected';
    connection.phase = 'closing';
    // Held acknowledgements die with the connection: the client resends what it needs.
    if (connection.held !== null) connection.held.length = 0;
    this.connectionsWithHeld.delete(connection);
    this.connections.delete(connection.id);
    this.throttle.connectionClosed(connection);
    this.stats.connectionsCurrent -= 1;
    if (brokerInitiated) this.actions.push({ kind: 'close', connectionId: connection.id, reason });
    if (wasConnected) {
      this.stats.clientsConnected -= 1;
      this.countListenerClient(connection.listener, -1);
      if (this.logInfo) this.log('info', 'client-disconnected', { ...connectionLogFields(connection), reason });
      detachSession(this, connection, nowMs, will);
    }
  }

  // ---- internals ------------------------------------------------------------------------------

  /** Checks time and returns false once halted: a halted broker takes no more input. */
  private enter(nowMs: number): boolean {
    assert(Number.isFinite(nowMs), 'nowMs must be a finite number');
    // The message is built only on failure: this runs for every input.
    if (nowMs < this.lastNowMs) assert(false, `time went backwards: ${nowMs} < ${this.lastNowMs}`);
    this.lastNowMs = nowMs;
    this.inputSequence += 1;
    return this.haltReasonValue === null;
  }

  get haltReason(): string | null {
    return this.haltReasonValue;
  }

  /**
   * Stops for good: held acknowledgements stay unsent (what they promise is not durable), and
   * the host is told to end the process so that recovery can run from what storage holds.
   */
  private halt(reason: string): void {
    assert(this.haltReasonValue === null, 'halted twice');
    this.haltReasonValue = reason;
    this.log('error', 'halted', { reason });
    this.actions.push({ kind: 'halt', reason });
  }

  private emitSend(connection: Connection, bytes: Uint8Array, packets = 1): void {
    // Output accounting for connectionOutputBytesMax: the host's last report plus this input's sends.
    if (connection.outputInput !== this.inputSequence) {
      connection.outputInput = this.inputSequence;
      connection.outputBufferedBytes = connection.outputReportedBytes;
    }
    connection.outputBufferedBytes += bytes.length;
    this.stats.packetsSent += packets;
    this.stats.bytesSent += bytes.length;
    this.actions.push({ kind: 'send', connectionId: connection.id, bytes });
  }

  private isVolatile(record: StateRecord): boolean {
    switch (record.kind) {
      case 'session-created':
        return record.expiryIntervalSeconds === 0;
      case 'message-stored':
      case 'message-discarded':
      case 'message-counter':
      case 'retained-set':
      case 'retained-cleared':
      case 'will-set':
      case 'will-cleared':
      case 'stream-created':
      case 'stream-deleted':
      case 'stream-appended':
      case 'stream-trimmed':
      case 'stream-cut':
      case 'stream-group-position':
      case 'cluster-applied':
      case 'cluster-outbox-added':
      case 'cluster-outbox-done':
        return false;
      case 'session-resumed': {
        // A session going from durable to volatile must still reach the store once, so that
        // recovery knows it ended with its connection.
        const session = this.state.sessions.get(record.clientId);
        return session !== undefined && session.expiryIntervalSeconds === 0 && record.expiryIntervalSeconds === 0;
      }
      default: {
        const session = this.state.sessions.get(record.clientId);
        if (session === undefined) assert(false, `record ${record.kind} for unknown session`);
        return session.expiryIntervalSeconds === 0;
      }
    }
  }

  private receive(connection: Connection, bytes: Uint8Array, nowMs: number): void {
    try {
      connection.decoder.push(bytes);
      // A CONNECT waiting for its cluster claim leaves what follows it in the decoder (continueReading).
      for (let packet = connection.claimPending ? null : connection.decoder.next(); packet !== null; packet = connection.claimPending ? null : connection.decoder.next()) {
        this.stats.packetsReceived += 1;
        connection.lastPacketMs = nowMs;
        this.dispatch(connection, packet, nowMs);
        if (connection.phase === 'closing') return;
      }
    } catch (error) {
      if (!(error instanceof ProtocolViolation)) throw error;
      if (connection.phase !== 'closing') this.fail(connection, error, nowMs);
    }
  }

  /** One handler per packet type. */
  private dispatch(connection: Connection, packet: Packet, nowMs: number): void {
    // Enhanced authentication (AUTH, and what may be sent while it runs) has its own rules.
    if ((connection.authentication !== null || packet.type === PacketType.Auth) && routeAuthentication(this, connection, packet, nowMs)) return;
    if (packet.type === PacketType.Connect) {
      // [MQTT-3.1.0-2] A second CONNECT is a protocol violation.
      if (connection.phase !== 'awaiting-connect') throw protocolError('second-connect', 'CONNECT received twice');
      handleConnect(this, connection, packet, nowMs);
      if ((connection.phase as string) === 'connected') scheduleKeepAlive(this, connection, nowMs);
      return;
    }
    // [MQTT-3.1.0-1] Nothing but CONNECT before the connection is accepted.
    if (connection.phase !== 'connected') throw protocolError('packet-before-connect', 'the first packet must be CONNECT');
    switch (packet.type) {
      case PacketType.Publish:
        return handlePublish(this, connection, packet, nowMs);
      case PacketType.Puback:
        return handlePuback(this, connection, packet, nowMs);
      case PacketType.Pubrec:
        return handlePubrec(this, connection, packet, nowMs);
      case PacketType.Pubrel:
        return handlePubrel(this, connection, packet, nowMs);
      case PacketType.Pubcomp:
        return handlePubcomp(this, connection, packet, nowMs);
      case PacketType.Subscribe:
        return handleSubscribe(this, connection, packet, nowMs);
      case PacketType.Unsubscribe:
        return handleUnsubscribe(this, connection, packet, nowMs);
      case PacketType.Pingreq:
        return this.sendPacket(connection, { type: PacketType.Pingresp });
      case PacketType.Disconnect:
        return handleDisconnect(this, connection, packet, nowMs);
      default:
        throw protocolError('wrong-direction', `packet type ${packet.type} is only sent by servers`);
    }
  }

  private fire(entry: DeadlineEntry, nowMs: number): void {
    switch (entry.kind) {
      case 'connect-timeout': {
        const connection = this.connections.get(entry.connectionId);
        if (connection === undefined || connection.phase !== 'awaiting-connect') return;
        this.stats.connectTimeouts += 1;
        this.log('info', 'connect-timeout', { connectionId: connection.id });
        this.closeConnection(connection, nowMs, 'no CONNECT in time', 'discard', true);
        return;
      }
      case 'keepalive':
        return onKeepAliveDeadline(this, entry, nowMs);
      case 'session-expiry':
        return onSessionExpiryDeadline(this, entry, nowMs);
      case 'will':
        return onWillDeadline(this, entry, nowMs);
      case 'publisher-pause':
        // Nothing to do here: the end of this input (releaseDue) resumes what is due.
        return;
      case 'sys-publish':
        this.sys?.onDeadline(nowMs);
        return;
      case 'retained-replay': {
        // A replay that used up one step's budget goes on (retained-replay.ts).
        const connection = this.connections.get(entry.connectionId);
        if (connection?.phase === 'connected' && connection.session !== null) pump(this, connection.session, connection, nowMs);
        return;
      }
      case 'stream-pump':
        return this.streams.onPumpDeadline();
      case 'cluster-retry':
        this.cluster?.retryDue(nowMs);
        return;
      case 'cluster-claim':
        this.cluster?.sessions.claimDue(entry.connectionId, nowMs);
        return;
      case 'cluster-alive':
        this.cluster?.aliveDue(nowMs);
        return;
      case 'stream-maintenance':
        this.streams.maintenanceDue();
        applyRetention(this.streams, nowMs);
        compactLastValueStreams(this.streams);
        this.streams.scheduleMaintenance(nowMs);
        return;
    }
  }

  private tryRecover(nowMs: number): void {
    if (!this.replayed) {
      // Records are applied as the store hands them over, so recovery holds one segment's worth
      // of records at a time, not the whole log's (a 1 GiB log once needed 2 GiB of heap).
      if (!this.applyRecovered(this.store.takeRecovered?.() ?? [])) return;
      const records = this.store.recover(nowMs);
      if (records === null) return;
      if (!this.applyRecovered(records)) return;
      finishReplay(this.state);
      this.replayed = true;
      // The stream files are reconciled with the replayed state before anything else happens.
      this.store.streams?.finishRecovery(this.state);
    }
    if (this.store.streams !== undefined && !this.store.streams.ready) return;
    rebuildTrie(this.trie, this.state, this.filterInterest);
    this.isReady = true;
    this.cluster?.recovered();
    scheduleRecoveredWills(this, nowMs);
    scheduleRecoveredSessions(this, nowMs);
    if (this.store.streams !== undefined) {
      // A repair cut a stream's damaged entries away: it ends there, durably, before anyone reads it.
      for (const cut of this.store.streams.takeRecoveryCuts()) this.commit({ kind: 'stream-cut', stream: cut.stream, nextOffset: cut.nextOffset, lost: cut.lost });
      // A repair cut a retention trim off the log after its segments were deleted: the stream starts where they did.
      for (const trim of this.store.streams.takeRecoveryTrims()) this.commit({ kind: 'stream-trimmed', stream: trim.stream, firstOffset: trim.firstOffset });
      reconcileConfiguredStreams(this);
      this.streams.restoreMemberships();
      this.streams.scheduleMaintenance(nowMs);
    }
    this.sys?.start(nowMs);
    this.view.readyAtMs = nowMs;
    this.log('info', 'recovered', { records: this.recoveredRecords, sessions: this.state.sessions.size, retained: this.state.retained.size });
  }

  /**
   * Applies a batch of recovered records; false after halting on one that cannot be applied
   * (record-check.ts), which is reported like damage, with its file and offset, so that the
   * documented repair can cut the log there instead of the broker failing on every start.
   */
  private applyRecovered(records: readonly StateRecord[]): boolean {
    for (let index = 0; index < records.length; index++) {
      const record = records[index]!;
      const problem = replayRecord(this.state, record);
      if (problem === null) continue;
      this.halt(unusableRecordReason(record, problem, this.store.recoveredOrigin?.(index) ?? null));
      return false;
    }
    this.recoveredRecords += records.length;
    return true;
  }

  /** End of every input: let the store write, release what became durable, offer compaction. */
  private afterInput(nowMs: number): void {
    // Streams first: entries that became durable go to readers, and positions that moved this
    // input are committed in its group, before the group is closed by the flush.
    if (this.isReady && this.haltReasonValue === null) this.streams.afterInput();
    // A cluster node may name a batch of hand-offs in the log before it sends it: in this group.
    if (this.cluster !== null && this.isReady && this.haltReasonValue === null) this.cluster.beforeFlush();
    this.store.flush(nowMs);
    if (this.isReady) this.store.maybeCompact(this.state);
    const requests = this.store.drainRequests();
    for (let index = 0; index < requests.length; index++) this.actions.push({ kind: 'storage', request: requests[index]! });
    if (this.store.failure !== null) {
      this.halt(this.store.failure);
      return;
    }
    if (this.cluster !== null && this.isReady) this.cluster.afterInput();
    if (this.pendingDeletions.size > 0) this.forgetDurableDeletions();
    if (this.connectionsWithHeld.size > 0) this.releaseHeld();
    if (this.heldAdminResults.length > 0) this.releaseAdminResults();
    this.throttle.releaseDue(nowMs);
    this.stats.sessionsCurrent = this.state.sessions.size;
  }

  private releaseAdminResults(): void {
    const durable = this.store.durableLsn;
    let released = 0;
    while (released < this.heldAdminResults.length && this.heldAdminResults[released]!.lsn <= durable) {
      const { requestId, outcome } = this.heldAdminResults[released]!;
      this.actions.push({ kind: 'admin-result', requestId, outcome });
      released += 1;
    }
    if (released > 0) this.heldAdminResults.splice(0, released);
  }

  private forgetDurableDeletions(): void {
    const durable = this.store.durableLsn;
    for (const [clientId, lsn] of this.pendingDeletions) if (lsn <= durable) this.pendingDeletions.delete(clientId);
  }

  private releaseHeld(): void {
    const durable = this.store.durableLsn;
    for (const connection of this.connectionsWithHeld) {
      const held = heldOf(connection);
      let released = 0;
      while (released < held.length && held[released]!.lsn <= durable) {
        const item = held[released]!;
        if (item.handoff !== 0 && this.cluster !== null && this.cluster.handoffPending(item.handoff)) break;
        if (item.isPuback) connection.pendingPubacks -= 1;
        this.emitSend(connection, item.bytes, item.packets);
        released += 1;
      }
      if (released > 0) held.splice(0, released);
      if (held.length === 0) this.connectionsWithHeld.delete(connection);
    }
  }
}

/** The connection's held sends, the list made on its first use (see Connection.held). */
function heldOf(connection: Connection): HeldSend[] {
  connection.held ??= [];
  return connection.held;
}

/** The halt reason for a recovered record that cannot be applied, worded like other damage. */
function unusableRecordReason(record: StateRecord, problem: string, origin: RecordOrigin | null): string {
  const what = `record ${origin?.lsn ?? '?'} (${record.kind}) cannot be applied: ${problem}`;
  if (origin === null) return `corrupt log: ${what}`;
  return `corrupt ${origin.snapshot ? 'snapshot' : 'log'}: ${origin.file} at offset ${origin.offset}: ${what}`;
}
