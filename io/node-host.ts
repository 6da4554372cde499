/**
 * The Node backend's `Host`: real connections, a real timer, real files, for the shared Driver.
 *
 * Connections arrive through the transport seam (io/transport.ts): a listener (io/listeners/)
 * finishes its transport's own handshakes and hands over a TCP or TLS socket or a WebSocket
 * adapter; from then on every kind takes the same path here. Each accepted connection gets a ConnectionId from a counter (never reused, as the contract asks).
 * Socket events become driver inputs stamped with the monotonic clock; driver actions become
 * socket writes, socket ends, fs requests and log lines. Three rules keep the core's contract:
 *
 * - The core hears `connectionClosed` at most once per connection, and never for a connection it
 *   closed itself; bytes that arrive after the core closed a connection are dropped.
 * - Nothing calls into the driver while it executes actions: socket events and storage results
 *   always arrive on later event-loop turns.
 * - Writes are batched per input: every send the core makes while it handles one input is
 *   collected per connection, and when the driver call returns each connection's bytes go out in
 *   one `write` (several small packets are first copied into one buffer), so the many small
 *   packets one input produces (a PUBACK and a fan-out of PUBLISHes) cost one syscall per socket.
 *   Every input reaches the driver through this class, so "the driver call returned" is a point
 *   we own; no deferred callback is needed. That matters for latency and garbage: the previous
 *   default (cork on the first send, uncork in a queueMicrotask) paid for an AsyncResource per
 *   flush, Node's per-write bookkeeping while corked and a writev request, and it showed as young-
 *   generation churn (about 2 KiB per routed QoS 0 message) whose scavenges set the p99 latency.
 *   `writeBatching` keeps the earlier modes ('microtask', 'immediate': cork and a deferred uncork;
 *   'none': write at once) for comparison; 'input' is the default.
 * - The wakeup timer is re-armed only when the core's deadline moves earlier; when it moves later
 *   the armed timer, on firing, re-arms for the new deadline instead of ticking early. Re-arming
 *   on every input (clearTimeout + setTimeout) cost a timer object per packet.
 *
 * Backpressure: a slow subscriber's unsent bytes accumulate in its socket (`writableLength`).
 * The host reports that figure to the core (`outputBuffered`), which caps each connection's
 * output (connectionOutputBytesMax: QoS 0 dropped, QoS 1/2 kept queued). A report is made after
 * an input's bytes are written, when the figure moved by at least `outputReportStepBytes` or fell
 * to 0, and when the socket drains. 'drain' fires only after a write found the buffer over its
 * high-water mark; a smaller remainder that the kernel takes later is noticed by a slow poll of
 * the few connections left in that state, so the core never waits on a figure that went stale.
 * Reports are inputs like any other, made after the driver returned; what the core sends in
 * answer (a queue that resumes) is written in the same pass. The core may answer with
 * `pause-reading` for a publisher whose messages pile up for such a reader (or past the total
 * output budget), and with `resume-reading` once they drained: the socket is paused and resumed.
 *
 * Admin requests (io/admin/): `requestAdmin` hands the core an operator's command as an input and
 * returns a promise settled by the core's `admin-result` (sent once the change is durable). The
 * input is fed on its own event-loop turn (setImmediate), never from inside the driver's execution
 * of actions, whoever calls. A request waits at most its timeout, and is rejected at once if the
 * core halts or the host stops; at most `adminRequestsPendingMax` wait at a time.
 *
 * The cluster link (io/cluster/, a node of a cluster only): the core's `cluster` actions go to the
 * link attached with `attachCluster`; what the link hears comes back through `feedCluster`, which
 * the link calls on its own event-loop turns (io/cluster/input-queue.ts), never from inside the
 * driver's execution of actions. Nothing reaches the core from it once the host stops or halts.
 */
import {
  type AdminCommand,
  type AdminOutcome,
  type ClusterMessage,
  type ClusterRequest,
  type ConnectionId,
  type ConnectionPeer,
  defaultListener,
  type LogFields,
  type LogLevel,
  type StorageRequest,
  type StorageResult,
} from '../src/contract.js';
import type { Driver, Host } from '../src/driver.js';
import type { Clock } from './clock.js';
import { type ClusterInput, feedDriver } from './cluster/input-queue.js';
import type { Logger } from './logger.js';
import { NodeStorage, type SyncTimer } from './node-storage.js';
import { type ConnectionOpening, peerAddress, type Transport } from './transport.js';

/** Admin requests that may wait for their result at once; more are refused (`busy`). */
export const adminRequestsPendingMax = 256;

/** Why an admin request got no outcome from the core. */
export type AdminRequestFailure = 'timeout' | 'halted' | 'stopping' | 'busy';

export class AdminRequestError extends Error {
  constructor(
    readonly failure: AdminRequestFailure,
    message: string,
  ) {
    super(message);
    this.name = 'AdminRequestError';
  }
}

interface AdminWaiter {
  resolve(outcome: AdminOutcome): void;
  reject(error: AdminRequestError): void;
  timer: NodeJS.Timeout;
}

/**
 * When a connection's sends are written: when the input that produced them returns ('input'),
 * after the current macrotask's microtasks or in the next check phase (cork, then a deferred
 * uncork), or at once ('none'). Only 'input', the default and the one `keel serve` uses, goes
 * through writeChunks and its rule that a write queued behind unsent bytes owns its bytes; the
 * other modes are kept for comparison (benchmarks, tests) and write the core's bytes as they are.
 */
export type WriteBatching = 'input' | 'microtask' | 'immediate' | 'none';

/** How long a connection the core closed may take to drain its writes before it is destroyed. */
const closeGraceMs = 2_000;
/** setTimeout's largest delay; deadlines further out are re-armed when this one fires. */
const timerDelayMsMax = 2_147_483_647;
/**
 * Several packets for one socket up to this many bytes in total are copied into one buffer and
 * written once; above it they are written corked (a writev), since copying large payloads costs
 * more than the per-chunk bookkeeping it saves.
 */
const coalesceBytesMax = 64 * 1024;
/** How often connections with a small unsent remainder (no 'drain' coming) are looked at again. */
const outputPollMs = 20;
/** Cluster messages fed as one core input at most (the link's turn feeds at most 256 inputs anyway). */
const clusterMessagesPerInputMax = 256;

interface Connection {
  readonly id: ConnectionId;
  /** A TCP or TLS socket, or a WebSocket adapter: whatever the listener accepted (io/transport.ts). */
  readonly socket: Transport;
  readonly host: NodeHost;
  /** Looks at the first chunk before the core does (see ConnectionOpening); null once done. */
  screenFirstChunk: ((chunk: Buffer, transport: Transport) => boolean) | null;
  corked: boolean;
  /** 'input' batching: bytes sent during the current input, written when it returns; null when none. */
  pending: Uint8Array[] | null;
  pendingBytes: number;
  /** The core asked to close it; no further input may reach the core for it. */
  closedByCore: boolean;
  graceTimer: NodeJS.Timeout | null;
  /** The unsent byte count last reported to the core (`outputBuffered`), or due to be. */
  reportedBytes: number;
  /** In `dueReports`. */
  reportDue: boolean;
}

export interface NodeHostOptions {
  clock: Clock;
  logger: Logger;
  /** Directory for the core's storage requests; created if missing. */
  dataDirectory: string;
  writeBatching?: WriteBatching;
  /** Called once if the core halts; the owner decides how the process ends. */
  onHalt?: (reason: string) => void;
  /**
   * A connection's unsent bytes are reported to the core when they moved by at least this much
   * since the last report (or fell to 0); a quarter of connectionOutputBytesMax keeps the core's
   * figure close enough. Default 16 KiB.
   */
  outputReportStepBytes?: number;
  /**
   * The unsent level below which the core moves a held-back queue and resumes throttled
   * publishers (half of connectionOutputBytesMax). When an input's sends took the core's figure
   * of a connection to it or above, and the socket took them at once, that is reported even if the
   * figure did not move since the last report: the core would otherwise wait for a report that
   * never comes. Default: never (no such reports).
   */
  outputResumeBytes?: number;
  /** Told how long each sync of a file or of the directory took (metrics: sync latency). */
  onStorageSync?: SyncTimer;
}

export class NodeHost implements Host {
  readonly connections = new Map<ConnectionId, Connection>();
  readonly fileStorage: NodeStorage;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly writeBatching: WriteBatching;
  private driver: Driver | null = null;
  private clusterLink: ClusterRequestSink | null = null;
  /** The end of the link's turn is queued as a microtask (see feedCluster). */
  private clusterTurnQueued = false;
  /** Cluster messages of this turn not yet fed to the core (see feedCluster). */
  private clusterMessagesGathered: ClusterMessage[] = [];
  private nextConnectionId: ConnectionId = 1;
  private wakeupTimer: NodeJS.Timeout | null = null;
  /** The deadline the armed timer was set for, and the latest one the core asked for. */
  private wakeupTimerDeadlineMs = 0;
  private wakeupDeadlineMs: number | null = null;
  private readonly corked: Connection[] = [];
  /** 'input' batching: connections with pending bytes, in the order they first got some. */
  private readonly withPending: Connection[] = [];
  /**
   * Emptied chunk lists, reused by the next input: one list per connection that is being sent
   * to, rather than a fresh one per connection per input (or one held by every idle connection).
   * Bounded: lists return here only after being taken from it or made, so it never holds more
   * than the most connections one input ever sent to.
   */
  private readonly spareChunkLists: Uint8Array[][] = [];
  private flushScheduled = false;
  private stopping = false;
  /** The core halted: it takes no more input, so every event is dropped from then on. */
  private halted = false;
  private readonly onHalt: (reason: string) => void;
  private readonly outputReportStepBytes: number;
  private readonly outputResumeBytes: number;
  /** Connections whose unsent figure changed and is due to be reported, in order. */
  private readonly dueReports: Connection[] = [];
  /** Connections with unsent bytes but no 'drain' coming (under the high-water mark): polled. */
  private readonly outputWatched = new Set<Connection>();
  private outputPollTimer: NodeJS.Timeout | null = null;
  private readonly flushCorked = (): void => this.uncorkAll();
  private readyWaiters: (() => void)[] = [];
  private readonly adminWaiters = new Map<number, AdminWaiter>();
  private nextAdminRequestId = 1;

  constructor(options: NodeHostOptions) {
    this.clock = options.clock;
    this.logger = options.logger;
    this.writeBatching = options.writeBatching ?? 'input';
    this.onHalt = options.onHalt ?? (() => undefined);
    this.outputReportStepBytes = options.outputReportStepBytes ?? 16 * 1024;
    this.outputResumeBytes = options.outputResumeBytes ?? Number.POSITIVE_INFINITY;
    if (!(Number.isInteger(this.outputReportStepBytes) && this.outputReportStepBytes >= 1)) throw new Error('outputReportStepBytes must be a positive integer');
    this.fileStorage = new NodeStorage(options.dataDirectory, (result) => this.onStorageCompleted(result), options.onStorageSync);
  }

  attach(driver: Driver): void {
    if (this.driver !== null) throw new Error('NodeHost.attach called twice');
    this.driver = driver;
  }

  /** Makes this host a cluster node's: the core's cluster requests go to `link`. */
  attachCluster(link: ClusterRequestSink): void {
    if (this.clusterLink !== null) throw new Error('NodeHost.attachCluster called twice');
    this.clusterLink = link;
  }

  /** A cluster request of the core (called by the driver while it executes actions). */
  cluster(request: ClusterRequest): void {
    // A core built without a cluster never asks; one that does has a bug the host must not hide.
    if (this.clusterLink === null) throw new Error(`cluster request ${request.op} to a host without a cluster link`);
    this.clusterLink.request(request);
  }

  /**
   * An input from the cluster link, on its own event-loop turn. The link feeds up to a few hundred
   * inputs in one turn (io/cluster/input-queue.ts). Messages are gathered and fed to the core as
   * one input per run of consecutive messages (`clusterMessages`: one group commit, and one pass
   * releasing acknowledgements, per burst rather than per message); any other input feeds the
   * gathered ones first, so the core sees the link's inputs in the link's order. What the turn's
   * inputs send is written once, after the last of them (a microtask, which runs before any other
   * input of this process), so a subscriber gets one socket write per turn rather than one per
   * message that crossed NATS.
   */
  feedCluster(input: ClusterInput): void {
    if (this.stopping || this.halted) return;
    if (input.kind === 'message' && this.clusterMessagesGathered.length < clusterMessagesPerInputMax) {
      this.clusterMessagesGathered.push(input.message);
    } else {
      this.feedGatheredClusterMessages();
      if (input.kind === 'message') this.clusterMessagesGathered.push(input.message);
      else feedDriver(this.requireDriver(), this.clock.nowMs(), input);
    }
    if (this.clusterTurnQueued) return;
    this.clusterTurnQueued = true;
    queueMicrotask(this.endClusterTurn);
  }

  private feedGatheredClusterMessages(): void {
    const messages = this.clusterMessagesGathered;
    if (messages.length === 0) return;
    this.clusterMessagesGathered = [];
    const driver = this.requireDriver();
    if (messages.length === 1) driver.clusterMessage(this.clock.nowMs(), messages[0]!);
    else driver.clusterMessages(this.clock.nowMs(), messages);
  }

  private readonly endClusterTurn = (): void => {
    this.clusterTurnQueued = false;
    if (this.stopping || this.halted) {
      this.clusterMessagesGathered = [];
      return;
    }
    this.feedGatheredClusterMessages();
    this.writePending();
  };

  /**
   * Wires a new connection to the core. Called by a listener once the transport is ready for MQTT
   * bytes (after its PROXY header, TLS handshake or WebSocket upgrade, if any), with what that
   * listener knows of the peer.
   */
  accept(socket: Transport, opening: ConnectionOpening = {}): void {
    const driver = this.requireDriver();
    if (this.stopping || this.halted) {
      socket.destroy();
      return;
    }
    const connection: Connection = {
      id: this.nextConnectionId++,
      socket,
      host: this,
      screenFirstChunk: opening.screenFirstChunk ?? null,
      corked: false,
      pending: null,
      pendingBytes: 0,
      closedByCore: false,
      graceTimer: null,
      reportedBytes: 0,
      reportDue: false,
    };
    this.connections.set(connection.id, connection);
    // One set of listeners shared by every socket (found again through the socket): three
    // closures per connection were a measurable part of an idle connection's memory.
    connectionOfSocket.set(socket, connection);
    socket.on('data', onSocketData);
    socket.on('error', onSocketError);
    socket.on('close', onSocketClose);
    socket.on('drain', onSocketDrain);
    const peer: ConnectionPeer = {
      remoteAddress: opening.remoteAddress ?? peerAddress(socket),
      listener: opening.listener ?? defaultListener,
      ...(opening.verifiedUsername === undefined ? {} : { verifiedUsername: opening.verifiedUsername }),
    };
    driver.connectionOpened(this.clock.nowMs(), connection.id, peer);
    this.writePending();
  }

  send(connectionId: ConnectionId, bytes: Uint8Array): void {
    const connection = this.connections.get(connectionId);
    // The peer may have vanished in this same turn; its 'close' input is already on its way.
    if (connection === undefined || connection.socket.destroyed) return;
    if (connection.closedByCore) throw new Error(`core sent on connection ${connectionId} after closing it`);
    if (this.writeBatching === 'input') {
      if (connection.pending === null) {
        connection.pending = this.spareChunkLists.pop() ?? [];
        this.withPending.push(connection);
      }
      connection.pending.push(bytes);
      connection.pendingBytes += bytes.length;
      return;
    }
    if (this.writeBatching !== 'none' && !connection.corked) {
      connection.socket.cork();
      connection.corked = true;
      this.corked.push(connection);
      this.scheduleFlush();
    }
    connection.socket.write(bytes);
  }

  close(connectionId: ConnectionId, reason: string): void {
    const connection = this.connections.get(connectionId);
    if (connection === undefined || connection.closedByCore) return;
    connection.closedByCore = true;
    this.logger.debug('connection-close', { connectionId, reason });
    this.writeConnection(connection);
    this.uncork(connection);
    // end() sends FIN after everything written so far; a peer that never reads would hold the
    // socket open forever, hence the grace timer.
    connection.socket.end();
    connection.graceTimer = setTimeout(() => connection.socket.destroy(), closeGraceMs);
    connection.graceTimer.unref();
  }

  /**
   * Publisher throttling (src/broker/throttle.ts): the socket stops being read, so its kernel
   * buffer fills and the client's writes slow down. Its output is still written, and a chunk
   * already read is still delivered (the core accepts it: the pause is advisory).
   */
  pauseReading(connectionId: ConnectionId): void {
    const connection = this.connections.get(connectionId);
    if (connection === undefined || connection.socket.destroyed) return;
    connection.socket.pause();
  }

  resumeReading(connectionId: ConnectionId): void {
    const connection = this.connections.get(connectionId);
    if (connection === undefined || connection.socket.destroyed || connection.closedByCore) return;
    connection.socket.resume();
  }

  storage(request: StorageRequest): void {
    this.fileStorage.submit(request);
  }

  log(level: LogLevel, event: string, fields: LogFields): void {
    this.logger.log(level, event, fields);
  }

  /**
   * The core cannot go on safely. Nothing more is fed to it; every socket is destroyed (there is
   * no orderly goodbye from a core that stopped) and the owner is told, so that the process can
   * exit non-zero and a supervisor can restart it into recovery.
   */
  halt(reason: string): void {
    if (this.halted) return;
    this.halted = true;
    this.logger.error('halt', { reason });
    this.setWakeup(null);
    this.clearOutputPoll();
    this.discardPending();
    for (const connection of this.connections.values()) connection.socket.destroy();
    this.failAdminRequests('halted', `the broker halted: ${reason}`);
    // Deferred: we are inside the driver's flush, and the owner may stop the server.
    queueMicrotask(() => this.onHalt(reason));
  }

  get isHalted(): boolean {
    return this.halted;
  }

  setWakeup(deadlineMs: number | null): void {
    if (this.stopping || this.halted) deadlineMs = null;
    this.wakeupDeadlineMs = deadlineMs;
    if (deadlineMs === null) {
      this.clearWakeupTimer();
      return;
    }
    // An armed timer at or before the deadline will do: on firing it re-arms if it is early.
    if (this.wakeupTimer !== null && this.wakeupTimerDeadlineMs <= deadlineMs) return;
    this.armWakeupTimer(deadlineMs);
  }

  /**
   * Orderly stop: the core says goodbye to every client (5.0: DISCONNECT 0x8B) and closes them;
   * sockets still open after `graceMs` are destroyed. Resolves when every socket is gone.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.stopping) return;
    const driver = this.requireDriver();
    if (!this.halted) driver.shutdown(this.clock.nowMs());
    this.writePending();
    this.stopping = true;
    this.failAdminRequests('stopping', 'the broker is stopping');
    this.setWakeup(null);
    this.clearOutputPoll();
    this.uncorkAll();
    const remaining = [...this.connections.values()];
    for (const connection of remaining) {
      if (!connection.closedByCore) connection.socket.end();
    }
    await Promise.race([Promise.all(remaining.map((connection) => socketClosed(connection.socket))), delay(graceMs)]);
    for (const connection of this.connections.values()) connection.socket.destroy();
    await Promise.all(remaining.map((connection) => socketClosed(connection.socket)));
    // Whatever the core wrote during shutdown (its last records) completes before we report done.
    await this.fileStorage.close();
  }

  /**
   * Gives the core an operator's command and resolves with its outcome, once what it changed is
   * durable. Rejects with an AdminRequestError when no outcome comes within `timeoutMs` (the
   * command may still take effect later: it was handed over), when the core halts or the host
   * stops first, or at once when `adminRequestsPendingMax` requests are waiting.
   */
  requestAdmin(command: AdminCommand, timeoutMs: number): Promise<AdminOutcome> {
    if (this.halted) return Promise.reject(new AdminRequestError('halted', 'the broker halted'));
    if (this.stopping) return Promise.reject(new AdminRequestError('stopping', 'the broker is stopping'));
    if (this.adminWaiters.size >= adminRequestsPendingMax) return Promise.reject(new AdminRequestError('busy', `${adminRequestsPendingMax} admin requests are already waiting`));
    const requestId = this.nextAdminRequestId++;
    return new Promise<AdminOutcome>((resolve, reject) => {
      const timer = setTimeout(() => this.settleAdmin(requestId, new AdminRequestError('timeout', `no outcome within ${timeoutMs} ms; the command may still take effect`)), timeoutMs);
      timer.unref();
      this.adminWaiters.set(requestId, { resolve, reject, timer });
      // Its own turn: the caller may be anywhere, even inside a host callback of the driver.
      setImmediate(() => this.issueAdmin(requestId, command));
    });
  }

  /** Admin requests waiting for their outcome. */
  get adminRequestsPending(): number {
    return this.adminWaiters.size;
  }

  /** The core's answer to an admin request (called by the driver while it executes actions). */
  adminResult(requestId: number, outcome: AdminOutcome): void {
    const waiter = this.adminWaiters.get(requestId);
    // Timed out (or failed) earlier: nobody waits any more.
    if (waiter === undefined) return;
    this.adminWaiters.delete(requestId);
    clearTimeout(waiter.timer);
    // A promise settles on a later microtask: the waiter's code never runs inside the flush.
    waiter.resolve(outcome);
  }

  private issueAdmin(requestId: number, command: AdminCommand): void {
    if (!this.adminWaiters.has(requestId)) return;
    if (this.halted || this.stopping) return this.settleAdmin(requestId, new AdminRequestError(this.halted ? 'halted' : 'stopping', 'the broker stopped first'));
    this.requireDriver().adminRequest(this.clock.nowMs(), requestId, command);
    this.writePending();
  }

  private settleAdmin(requestId: number, error: AdminRequestError): void {
    const waiter = this.adminWaiters.get(requestId);
    if (waiter === undefined) return;
    this.adminWaiters.delete(requestId);
    clearTimeout(waiter.timer);
    waiter.reject(error);
  }

  private failAdminRequests(failure: AdminRequestFailure, message: string): void {
    for (const requestId of [...this.adminWaiters.keys()]) this.settleAdmin(requestId, new AdminRequestError(failure, message));
  }

  /**
   * Resolves once the core reports `ready` (it may first replay its state through storage
   * requests). The server starts listening only then, as the contract asks.
   */
  whenReady(): Promise<void> {
    const driver = this.requireDriver();
    if (driver.core.ready) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private onStorageCompleted(result: StorageResult): void {
    const driver = this.requireDriver();
    if (this.halted) return;
    driver.storageCompleted(this.clock.nowMs(), result);
    this.writePending();
    if (this.readyWaiters.length > 0 && driver.core.ready) {
      const waiters = this.readyWaiters;
      this.readyWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private readonly onWakeup = (): void => {
    this.wakeupTimer = null;
    const deadlineMs = this.wakeupDeadlineMs;
    if (this.halted || deadlineMs === null) return;
    const nowMs = this.clock.nowMs();
    // The deadline moved later after this timer was armed: wait for it rather than tick early.
    if (nowMs < deadlineMs) return this.armWakeupTimer(deadlineMs);
    this.requireDriver().tick(nowMs);
    this.writePending();
  };

  private armWakeupTimer(deadlineMs: number): void {
    this.clearWakeupTimer();
    const delayMs = Math.min(timerDelayMsMax, Math.max(0, deadlineMs - this.clock.nowMs()));
    this.wakeupTimer = setTimeout(this.onWakeup, delayMs);
    this.wakeupTimerDeadlineMs = deadlineMs;
    // The listening server keeps the process alive; a pending deadline alone must not.
    this.wakeupTimer.unref();
  }

  private clearOutputPoll(): void {
    if (this.outputPollTimer !== null) clearTimeout(this.outputPollTimer);
    this.outputPollTimer = null;
    this.outputWatched.clear();
  }

  private clearWakeupTimer(): void {
    if (this.wakeupTimer === null) return;
    clearTimeout(this.wakeupTimer);
    this.wakeupTimer = null;
  }

  /** @internal Called by the shared socket listeners. */
  onData(connection: Connection, chunk: Buffer): void {
    if (connection.closedByCore || this.stopping || this.halted) return;
    if (connection.screenFirstChunk !== null && !this.screened(connection, chunk)) return;
    // Buffer is a Uint8Array: handed over as is, no copy. The core must not keep a view of it
    // beyond the call unless it copies (the decoder owns that decision).
    this.requireDriver().bytesReceived(this.clock.nowMs(), connection.id, chunk);
    this.writePending();
  }

  /**
   * Runs a listener's check of the first chunk (a plain listener refusing a TLS handshake). A
   * refused connection is destroyed: the core hears that it closed, and never sees its bytes.
   */
  private screened(connection: Connection, chunk: Buffer): boolean {
    const screen = connection.screenFirstChunk!;
    connection.screenFirstChunk = null;
    if (screen(chunk, connection.socket)) return true;
    connection.socket.destroy();
    return false;
  }

  /**
   * 'input' batching: writes what every connection was sent during the input that just returned,
   * then reports the unsent figures that moved; the core may answer a report with more sends (a
   * queue resuming below half its cap), written by the next pass. Bounded: the core sends in
   * answer only to a report of a smaller figure, and each pass reports only figures that moved.
   */
  private writePending(): void {
    const connections = this.withPending;
    for (;;) {
      // Bounded by the connections sent to in one input; writeConnection never adds to the list.
      for (let index = 0; index < connections.length; index++) this.writeConnection(connections[index]!);
      connections.length = 0;
      if (this.dueReports.length === 0) return;
      this.reportDueOutput();
    }
  }

  /** Feeds every due report to the core (sends it makes land in `withPending`). */
  private reportDueOutput(): void {
    const due = this.dueReports;
    const driver = this.requireDriver();
    for (let index = 0; index < due.length; index++) {
      const connection = due[index]!;
      connection.reportDue = false;
      if (connection.closedByCore || connection.socket.destroyed || this.stopping || this.halted) continue;
      driver.outputBuffered(this.clock.nowMs(), connection.id, connection.reportedBytes);
    }
    due.length = 0;
  }

  /**
   * Notes a connection's unsent figure after a write; a report is made if it moved enough, or if
   * `assumedBytes` (what the core counted for it during the input: the last report plus the
   * input's sends) held its queue or publishers back and the socket has already taken the bytes.
   */
  private noteOutput(connection: Connection, assumedBytes = connection.reportedBytes): void {
    if (connection.closedByCore) return;
    const socket = connection.socket;
    const unsentBytes = socket.writableLength;
    const reported = connection.reportedBytes;
    if (unsentBytes > 0 && !socket.writableNeedDrain) this.watchOutput(connection);
    const heldBack = assumedBytes >= this.outputResumeBytes && unsentBytes < this.outputResumeBytes;
    if (!heldBack && !this.movedEnough(unsentBytes, reported)) return;
    // Queued once: a connection already due has its figure updated in place.
    if (!connection.reportDue) {
      connection.reportDue = true;
      this.dueReports.push(connection);
    }
    connection.reportedBytes = unsentBytes;
  }

  private movedEnough(unsentBytes: number, reported: number): boolean {
    if (unsentBytes === reported) return false;
    const moved = unsentBytes > reported ? unsentBytes - reported : reported - unsentBytes;
    return unsentBytes === 0 || moved >= this.outputReportStepBytes;
  }

  private watchOutput(connection: Connection): void {
    this.outputWatched.add(connection);
    if (this.outputPollTimer !== null) return;
    this.outputPollTimer = setTimeout(this.pollOutput, outputPollMs);
    this.outputPollTimer.unref();
  }

  private readonly pollOutput = (): void => {
    this.outputPollTimer = null;
    if (this.stopping || this.halted) return;
    const watched = [...this.outputWatched];
    this.outputWatched.clear();
    // noteOutput puts back each connection that still has a remainder and no 'drain' coming.
    for (const connection of watched) if (!connection.socket.destroyed) this.noteOutput(connection);
    this.writePending();
  };

  /** @internal Called by the shared socket listeners: everything written has left the process. */
  onDrain(connection: Connection): void {
    if (this.stopping || this.halted) return;
    this.noteOutput(connection);
    this.writePending();
  }

  private writeConnection(connection: Connection): void {
    const chunks = connection.pending;
    if (chunks === null) return;
    const totalBytes = connection.pendingBytes;
    connection.pending = null;
    connection.pendingBytes = 0;
    const socket = connection.socket;
    if (!socket.destroyed) {
      writeChunks(socket, chunks, totalBytes);
      this.noteOutput(connection, connection.reportedBytes + totalBytes);
    }
    chunks.length = 0;
    this.spareChunkLists.push(chunks);
  }

  private discardPending(): void {
    for (const connection of this.withPending) {
      connection.pending = null;
      connection.pendingBytes = 0;
    }
    this.withPending.length = 0;
  }

  /** @internal Called by the shared socket listeners. */
  onError(connection: Connection, error: NodeJS.ErrnoException): void {
    // Resets and broken pipes are how TCP peers usually leave; they are not the operator's problem.
    const routine = error.code === 'ECONNRESET' || error.code === 'EPIPE';
    this.logger.log(routine ? 'debug' : 'warn', 'socket-error', {
      connectionId: connection.id,
      code: error.code ?? null,
      message: error.message,
    });
  }

  /** @internal Called by the shared socket listeners. */
  onClose(connection: Connection): void {
    if (connection.graceTimer !== null) clearTimeout(connection.graceTimer);
    this.outputWatched.delete(connection);
    this.connections.delete(connection.id);
    if (connection.closedByCore || this.stopping || this.halted) return;
    this.requireDriver().connectionClosed(this.clock.nowMs(), connection.id);
    this.writePending();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (this.writeBatching === 'immediate') setImmediate(this.flushCorked);
    else queueMicrotask(this.flushCorked);
  }

  private uncorkAll(): void {
    this.flushScheduled = false;
    for (let index = 0; index < this.corked.length; index++) this.uncork(this.corked[index]!);
    this.corked.length = 0;
  }

  private uncork(connection: Connection): void {
    if (!connection.corked) return;
    connection.corked = false;
    connection.socket.uncork();
  }

  private requireDriver(): Driver {
    if (this.driver === null) throw new Error('NodeHost used before attach');
    return this.driver;
  }
}

/** Socket to its connection, for the listeners shared by every socket. */
const connectionOfSocket = new WeakMap<Transport, Connection>();

function onSocketData(this: Transport, chunk: Buffer): void {
  const connection = connectionOfSocket.get(this);
  if (connection !== undefined) connection.host.onData(connection, chunk);
}

function onSocketError(this: Transport, error: NodeJS.ErrnoException): void {
  const connection = connectionOfSocket.get(this);
  if (connection !== undefined) connection.host.onError(connection, error);
}

function onSocketDrain(this: Transport): void {
  const connection = connectionOfSocket.get(this);
  if (connection !== undefined) connection.host.onDrain(connection);
}

function onSocketClose(this: Transport): void {
  const connection = connectionOfSocket.get(this);
  if (connection !== undefined) connection.host.onClose(connection);
}

/** Where a cluster node's host sends the core's cluster requests (io/cluster/nats-link.ts NatsLink). */
export interface ClusterRequestSink {
  request(request: ClusterRequest): void;
}

/** What writeChunks needs of a socket (a Transport in production; a recorder in tests). */
export interface ChunkSocket {
  readonly writableLength: number;
  write(bytes: Uint8Array): boolean;
  cork(): void;
  uncork(): void;
}

/**
 * Writes a connection's pending chunks in as few writes as is cheap (see coalesceBytesMax).
 *
 * A chunk the core sends may be a view of a larger buffer (the encoder's 32 KiB slab, shared by
 * every packet encoded around it), and Node's shared pool backs small `Buffer.allocUnsafe`s. A
 * write the socket takes at once lets go of its bytes; a write queued behind unsent bytes keeps
 * them, and with them the whole buffer they are a view of. A slow reader that gets one small
 * packet now and then would so pin a 32 KiB slab per queued packet, far beyond the bytes its
 * output cap counts. So once a socket has unsent bytes, what is written to it is copied into
 * buffers of its own exact size: a backed-up connection holds the bytes it is owed, not slabs.
 */
export function writeChunks(socket: ChunkSocket, chunks: readonly Uint8Array[], totalBytes: number): void {
  if (chunks.length === 0) return;
  const queued = socket.writableLength > 0;
  if (chunks.length === 1) {
    const chunk = chunks[0]!;
    socket.write(queued ? ownedBytes(chunk) : chunk);
    return;
  }
  if (totalBytes <= coalesceBytesMax) {
    socket.write(concatenate(chunks, totalBytes, queued));
    return;
  }
  socket.cork();
  for (let index = 0; index < chunks.length; index++) {
    const chunk = chunks[index]!;
    socket.write(queued ? ownedBytes(chunk) : chunk);
  }
  socket.uncork();
}

/** `chunk` itself if it owns its whole buffer, else a copy that does. */
function ownedBytes(chunk: Uint8Array): Uint8Array {
  if (chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength) return chunk;
  const copy = Buffer.allocUnsafeSlow(chunk.byteLength);
  copy.set(chunk);
  return copy;
}

/**
 * One buffer holding `chunks` back to back: from Node's shared pool when small, unless it is to
 * wait in a socket's queue (`owned`), where it gets an allocation of its own.
 */
function concatenate(chunks: readonly Uint8Array[], totalBytes: number, owned: boolean): Uint8Array {
  // allocUnsafeSlow: a buffer of its own, not a share of the pool; every byte is written below.
  const buffer = owned ? Buffer.allocUnsafeSlow(totalBytes) : Buffer.allocUnsafe(totalBytes);
  let offset = 0;
  for (let index = 0; index < chunks.length; index++) {
    const chunk = chunks[index]!;
    buffer.set(chunk, offset);
    offset += chunk.length;
  }
  return buffer;
}

function socketClosed(socket: Transport): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
