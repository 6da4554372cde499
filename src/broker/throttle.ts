/**
 * Publisher throttling: backpressure on the publishers whose messages the broker would otherwise
 * have to hold, by asking the host to stop reading from them (`pause-reading`) and to read again
 * (`resume-reading`) once the reason is gone. The publisher's packets then wait in its own socket
 * and its client's writes slow down to what the receivers take: nothing is dropped, nothing is
 * refused, and every other connection is still read and served.
 *
 * Two reasons pause a connection right after it published:
 * - a QoS 1/2 copy of its message was kept (queued) for a receiver whose unsent output is at
 *   connectionOutputBytesMax: it resumes once that receiver is back under half the cap (the level
 *   at which its queue moves again, outbound-queue.ts) or has gone. QoS 0 copies for such a
 *   receiver are dropped instead (the cap's defined outcome) and never pause anyone: a reader that
 *   stopped for good must not stop its publishers, and through them everybody else's messages.
 *   A connection is never paused for its own output (its client may be waiting to write before
 *   it reads again).
 *   A receiver that keeps a publisher paused for publisherPauseMsMax without draining is taken
 *   for stalled, not slow: the publisher resumes, and that receiver pauses nobody until it is
 *   back under half its cap; its copies wait in its session queue, whose limits and overflow
 *   policy then apply. Without this bound, a client that answers pings but never reads would
 *   stop every publisher of its topics for as long as it stays connected.
 * - the output held by the host for all connections together (the hosts' reports, summed) is at
 *   outputBufferedBytesTotalMax (when set): it resumes once the total is under half of it. This
 *   pause has no time bound: it protects the whole broker's memory.
 * - its message was appended to a stream while the streams' backlog (the entries held in memory,
 *   appended and not yet synced to their segments: the store's `memoryBytes`; plus the log's
 *   records not yet written, `unwrittenBytes`) is at streamBacklogBytesMax: it
 *   resumes once they are under half of it, which the stream writers reach by writing and syncing
 *   at once while over half (store/streams/stream-log.ts). No time bound either: it is the
 *   writers' pace, the disk's, that the publishers are held to; nothing is dropped, and their
 *   acknowledgements still wait for their records to be durable.
 *   Messages that come from no connection (a will, a message from another cluster node) cannot be
 *   paused like a publisher: they are admitted past the bound. Their outcome is defined and
 *   visible rather than silent: every entry appended while the backlog is at or past the bound is
 *   counted (`stats.streams.backlogOverrunEntries`; of those, `backlogOverrunUnpausedEntries` came
 *   from no connection), the first unpaused one of an episode is logged (`stream-backlog-overrun`),
 *   and the writers are syncing at once meanwhile, so the overrun drains at the disk's pace while
 *   every connection publisher stays paused. What bounds it: a will is one message per session
 *   (sessionsMax of them, each at most packetBytesMax). A QoS 1/2 message from another cluster node
 *   that overran the bound pauses the node's hand-off consumer instead (cluster-node.ts `pace`):
 *   the host then holds at most the consumer's unacknowledged deliveries until the backlog is
 *   under half. A QoS 0 message from another node, which nothing can hold back, is not appended to
 *   the streams while the backlog is at its bound (`clusterArrival`; its sessions still get it,
 *   and QoS 0 may be lost): counted in `stats.streams.backlogDroppedEntries`.
 * The decision to resume is taken at the end of every input, so a report that a receiver drained,
 * or its close, releases the publishers waiting on it in the same turn. Pausing is advisory (a
 * host may keep delivering bytes, and the simulator's does), so nothing here depends on it taking
 * effect; the counters say how often it was asked.
 */
import { assert } from '../assert.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import { isOutputDrained, isOutputFull } from './outbound-queue.js';

/** Why a publisher is paused: a receiver at its output cap, the output budget, or the streams' backlog. */
type PauseReason = 'receiver' | 'budget' | 'streams';

export class PublisherThrottle {
  /** Paused publishers, with the receiver each waits for (null: the total budget or the streams' backlog, `reason`) and until when. */
  private readonly paused = new Map<Connection, { receiver: Connection | null; untilMs: number; reason: PauseReason }>();
  /** Receivers that held a publisher for publisherPauseMsMax: they pause nobody until they drain. */
  private readonly stalled = new Set<Connection>();
  /** The receiver at its cap that a QoS 1/2 copy of the message being routed was kept for. */
  private keptForFullReceiver: Connection | null = null;
  /** The message being routed was appended to a stream. */
  private appendedToStreams = false;
  /** A connection's PUBLISH is being routed (between `beforeRoute` and `afterPublish`); false for wills and cluster arrivals. */
  private routingPublish = false;
  /** An unpaused overrun of the streams' backlog was logged; cleared once it is under half. */
  private streamBacklogOverrun = false;
  /** The streams' backlog reached its bound and was logged; cleared once it is under half. */
  private streamBacklogFull = false;
  /** A QoS 0 message from another cluster node is being routed (set by cluster-node.ts around it). */
  clusterArrival = false;
  /** Sum of every open connection's last reported unsent output. */
  private outputReportedBytesTotal = 0;

  constructor(private readonly broker: Broker) {}

  get pausedCount(): number {
    return this.paused.size;
  }

  get outputBytesTotal(): number {
    return this.outputReportedBytesTotal;
  }

  /** A host report for `connection`: keeps the total in step (call before storing the figure). */
  outputReported(connection: Connection, bufferedBytes: number): void {
    this.outputReportedBytesTotal += bufferedBytes - connection.outputReportedBytes;
    assert(this.outputReportedBytesTotal >= 0, 'reported output total went negative');
  }

  /** Whether the broker is not reading `connection` now (its packets may be waiting unread). */
  isPaused(connection: Connection): boolean {
    return this.paused.has(connection);
  }

  /** The connection ends: its output no longer counts, and it is no longer paused. */
  connectionClosed(connection: Connection): void {
    this.outputReportedBytesTotal -= connection.outputReportedBytes;
    assert(this.outputReportedBytesTotal >= 0, 'reported output total went negative');
    if (this.paused.delete(connection)) this.broker.stats.throttle.pausedCurrent -= 1;
    this.stalled.delete(connection);
    if (this.keptForFullReceiver === connection) this.keptForFullReceiver = null;
  }

  beforeRoute(): void {
    this.keptForFullReceiver = null;
    this.appendedToStreams = false;
    this.routingPublish = true;
  }

  /**
   * Routing appended the message as `entries` stream entries. Past the backlog bound they are
   * admitted all the same and counted; a connection's publisher is paused after its PUBLISH
   * (`afterPublish`), a message from no connection pauses nobody (see the module comment).
   */
  appendedToStream(entries: number): void {
    this.appendedToStreams = true;
    if (!this.overStreamBacklog(1)) return;
    const stats = this.broker.stats.streams;
    stats.backlogOverrunEntries += entries;
    if (this.routingPublish) return;
    stats.backlogOverrunUnpausedEntries += entries;
    if (this.streamBacklogOverrun) return;
    this.streamBacklogOverrun = true;
    const memoryBytes = this.broker.store.streams?.stats.memoryBytes ?? 0;
    this.broker.log('warn', 'stream-backlog-overrun', {
      memoryBytes,
      streamBacklogBytesMax: this.broker.config.streamBacklogBytesMax,
      why: 'a will or a message from another node: no publisher connection to pause',
    });
  }

  /** Whether a message about to be appended to streams is left out of them: a QoS 0 cluster arrival while the backlog is at its bound. */
  refusesStreamAppend(qos: number): boolean {
    return qos === 0 && this.clusterArrival && this.overStreamBacklog(1);
  }

  /** Whether the streams' backlog is under half its bound, where paused publishers (and a paused hand-off consumer) resume. */
  streamBacklogReleased(): boolean {
    return !this.overStreamBacklog(2);
  }

  /** Routing kept a QoS 1/2 copy for `receiver`, which is connected; noted if its output is full. */
  kept(receiver: Connection): void {
    if (isOutputFull(this.broker, receiver)) this.keptForFullReceiver = receiver;
  }

  /** `publisher`'s PUBLISH was routed: pause it if its messages now pile up. */
  afterPublish(publisher: Connection, nowMs: number): void {
    const receiver = this.keptForFullReceiver;
    const appended = this.appendedToStreams;
    this.keptForFullReceiver = null;
    this.appendedToStreams = false;
    this.routingPublish = false;
    if (publisher.phase !== 'connected' || this.paused.has(publisher)) return;
    if (this.overBudget(1)) return this.pause(publisher, null, Infinity, 'budget');
    if (appended && this.overStreamBacklog(1)) {
      this.noteStreamBacklogFull();
      return this.pause(publisher, null, Infinity, 'streams');
    }
    const pauseMs = this.broker.config.publisherPauseMsMax;
    if (receiver === null || receiver === publisher || receiver.phase !== 'connected' || pauseMs === 0 || this.stalled.has(receiver)) return;
    this.pause(publisher, receiver, nowMs + pauseMs, 'receiver');
    this.broker.deadlines.push(nowMs + pauseMs, 'publisher-pause', publisher.id, '');
  }

  /** End of an input: resume every publisher whose reason is gone. Bounded by the paused count. */
  releaseDue(nowMs: number): void {
    // After every input: the set is nearly always empty, and then no iterator is made.
    if (this.stalled.size > 0) for (const receiver of this.stalled) if (!this.isStillFull(receiver)) this.stalled.delete(receiver);
    // An episode of the streams' backlog ends under half, whether or not anybody was paused for it
    // (an overrun of wills or cluster arrivals pauses nobody): its next one is logged again.
    if ((this.streamBacklogFull || this.streamBacklogOverrun) && !this.overStreamBacklog(2)) {
      this.streamBacklogFull = false;
      this.streamBacklogOverrun = false;
    }
    if (this.paused.size === 0) return;
    // Half, like the output cap itself: a total hovering at the budget does not flap.
    const budgetHeld = this.overBudget(2);
    const streamsHeld = this.overStreamBacklog(2);
    for (const [publisher, { receiver, untilMs, reason }] of this.paused) {
      if (receiver !== null && nowMs >= untilMs && this.isStillFull(receiver)) this.markStalled(receiver);
      if (budgetHeld || (reason === 'streams' && streamsHeld)) continue;
      if (receiver !== null && this.isStillFull(receiver) && !this.stalled.has(receiver)) continue;
      this.paused.delete(publisher);
      this.broker.stats.throttle.pausedCurrent -= 1;
      this.broker.pushReading(publisher, false);
      // What it sent meanwhile sat unread here: its keepalive counts from now (keepalive.ts).
      if (publisher.lastPacketMs < nowMs) publisher.lastPacketMs = nowMs;
    }
  }

  private markStalled(receiver: Connection): void {
    if (this.stalled.has(receiver)) return;
    this.stalled.add(receiver);
    this.broker.stats.throttle.stalledReceivers += 1;
    this.broker.log('info', 'receiver-stalled', { clientId: receiver.clientId, pauseMsMax: this.broker.config.publisherPauseMsMax });
  }

  private pause(publisher: Connection, receiver: Connection | null, untilMs: number, reason: PauseReason): void {
    assert((receiver === null) === (reason !== 'receiver'), 'a receiver pause names its receiver, and only it');
    this.paused.set(publisher, { receiver, untilMs, reason });
    const stats = this.broker.stats.throttle;
    stats.publisherPauses += 1;
    if (reason === 'budget') stats.budgetPauses += 1;
    if (reason === 'streams') stats.streamPauses += 1;
    stats.pausedCurrent += 1;
    this.broker.pushReading(publisher, true);
  }

  /** Whether `factor` times the total is at the budget (never when no budget is set). */
  private overBudget(factor: number): boolean {
    const budget = this.broker.config.outputBufferedBytesTotalMax;
    return budget > 0 && this.outputReportedBytesTotal * factor >= budget;
  }

  /** Said once each time the backlog reaches its bound (not per publisher paused). */
  private noteStreamBacklogFull(): void {
    if (this.streamBacklogFull) return;
    this.streamBacklogFull = true;
    const memoryBytes = this.broker.store.streams?.stats.memoryBytes ?? 0;
    const unwrittenLogBytes = this.broker.store.unwrittenBytes ?? 0;
    this.broker.log('info', 'stream-backlog-full', { memoryBytes, unwrittenLogBytes, streamBacklogBytesMax: this.broker.config.streamBacklogBytesMax });
  }

  /**
   * Whether `factor` times the streams' backlog is at streamBacklogBytesMax (never without a
   * stream store). The backlog is the stream entries in memory plus the log's records not yet
   * written: each appended entry is both an entry in its stream's tail and a `stream-appended`
   * record in the log's queue, and the log, written and synced 4 MiB at a time, can fall behind
   * the segments (a QoS 0 fill held about 100,000 such records, some 50 MiB of heap, that no
   * bound counted).
   */
  private overStreamBacklog(factor: number): boolean {
    const streams = this.broker.store.streams;
    if (streams === undefined) return false;
    const held = streams.stats.memoryBytes + (this.broker.store.unwrittenBytes ?? 0);
    return held > 0 && held * factor >= this.broker.config.streamBacklogBytesMax;
  }

  private isStillFull(receiver: Connection): boolean {
    if (receiver.phase !== 'connected') return false;
    return !isOutputDrained(this.broker, receiver);
  }
}
