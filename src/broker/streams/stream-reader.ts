/**
 * One session's `$stream` subscription, read through a cursor (stream-cursor.ts).
 *
 * The reader sends what its connection can take, in offset order: QoS 0 entries while the
 * connection's unsent output is under its cap, QoS 1 entries while the session's inflight window
 * (shared with every other delivery) has room too. Entries its narrowing filter does not match,
 * entries older than a time it was asked to start from, and entries its client may not read (the
 * ACL, asked per delivery like for any other) are passed over.
 *
 * Its position is the first offset it has not had acknowledged (QoS 0: not yet sent): the oldest
 * inflight delivery, else the next entry it would send. For a persistent session the position is
 * committed (`stream-position`) once per input in which it moved, not once per acknowledgement;
 * after a reconnect the reader goes on in memory, after a restart from the committed position:
 * nothing skipped, and nothing acknowledged before the last commit is sent again.
 */
import { assert } from '../../assert.js';
import type { Qos } from '../../codec/packets.js';
import type { StreamPosition, SubscriptionState } from '../../store/state-store.js';
import type { StreamEntry } from '../../store/streams/stream-entry.js';
import { matchesFilter } from '../../topics/match-filter.js';
import type { Connection } from '../connection.js';
import { StreamCursor } from './stream-cursor.js';
import { type DeliveryOwner, type PublishRun, type SessionDeliveries, sendEntry } from './stream-delivery.js';
import type { StreamSubscriptionSpec } from './stream-filter.js';
import type { Streams } from './streams.js';

/** Why a pump stopped: nothing more to do now, or the per-step budget ran out. */
export type PumpEnd = 'idle' | 'budget';

export class StreamReader implements DeliveryOwner {
  readonly cursor: StreamCursor;
  /** Gives the cursor a token for its next storage read (made once: a fill is asked per entry). */
  private readonly newToken = (): number => this.streams.tokenFor(this);
  /** Entries appended before this time are passed over (a seek by time); null once passed. */
  notBeforeMs: number | null;
  /** The position last committed (or recovered). */
  committed: StreamPosition;
  private unacknowledged: number[] = [];
  private unacknowledgedHead = 0;
  private readonly acknowledgedEarly = new Set<number>();
  /** Offsets announced (`stream-skipped`) on QoS 1 deliveries still waiting for their PUBACK. */
  private announcedInflight = 0;

  constructor(
    private readonly streams: Streams,
    readonly deliveries: SessionDeliveries,
    /** Replaced by a re-subscribe that keeps the reader's place (its QoS or identifier may change). */
    public subscription: SubscriptionState,
    readonly spec: StreamSubscriptionSpec,
    position: StreamPosition,
  ) {
    this.cursor = new StreamCursor(position.offset);
    this.cursor.skipped = position.skipped ?? 0;
    this.notBeforeMs = position.notBeforeMs;
    this.committed = position;
  }

  get clientId(): string {
    return this.deliveries.session.clientId;
  }

  /**
   * The first offset not acknowledged, the time seek still in force, and the offsets lost that the
   * reader is not known to have been told of (not yet announced, or announced on a delivery not
   * yet acknowledged): committed together, so a restart announces them again.
   */
  position(): StreamPosition {
    const offset = this.unacknowledgedHead < this.unacknowledged.length ? this.unacknowledged[this.unacknowledgedHead]! : this.cursor.position;
    const skipped = this.cursor.skipped + this.announcedInflight;
    return skipped === 0 ? { offset, notBeforeMs: this.notBeforeMs } : { offset, notBeforeMs: this.notBeforeMs, skipped };
  }

  acknowledged(_packetId: number, offset: number, skipped: number): void {
    this.announcedInflight -= skipped;
    assert(this.announcedInflight >= 0, 'announced offsets inflight never negative');
    if (this.unacknowledged[this.unacknowledgedHead] === offset) this.unacknowledgedHead += 1;
    else this.acknowledgedEarly.add(offset);
    // Acknowledgements may come out of order; the position moves past a run of them at once.
    while (this.unacknowledgedHead < this.unacknowledged.length && this.acknowledgedEarly.delete(this.unacknowledged[this.unacknowledgedHead]!)) this.unacknowledgedHead += 1;
    if (this.unacknowledgedHead > 64 && this.unacknowledgedHead * 2 > this.unacknowledged.length) {
      this.unacknowledged = this.unacknowledged.slice(this.unacknowledgedHead);
      this.unacknowledgedHead = 0;
    }
    this.streams.positionMoved(this);
  }

  /** The subscription was replaced or removed: its inflight deliveries are no longer its business. */
  retire(): void {
    this.deliveries.inflight.disown(this);
    this.cursor.jumpTo(this.cursor.position);
  }

  /**
   * Sends what `connection` can take now; at most `budget` entries looked at. The PUBLISHes go out
   * as one run (stream-delivery.ts PublishRun), sent when the pump ends.
   */
  pump(connection: Connection, budget: number): PumpEnd {
    const run = this.streams.publishRun;
    const end = this.pumpInto(connection, budget, run);
    run.flush(this.streams.broker);
    return end;
  }

  private pumpInto(connection: Connection, budget: number, run: PublishRun): PumpEnd {
    const streams = this.streams;
    const stream = streams.broker.state.streams.get(this.spec.stream);
    if (stream === undefined) return 'idle';
    for (let examined = 0; examined < budget; examined++) {
      if (this.cursor.fill(streams.store, stream, streams.readAheadBytes, this.newToken) !== 'ready') return 'idle';
      const entry = this.cursor.peek()!;
      if (!this.wants(connection, entry)) {
        this.cursor.take();
        streams.positionMoved(this);
        continue;
      }
      const qos = Math.min(entry.qos, this.subscription.qos) as Qos;
      if (!streams.canSend(this.deliveries, connection, qos, run.pendingBytes)) return 'idle';
      this.cursor.take();
      // Nobody reads an entry whose record a crash could still lose (store/streams/stream-log.ts).
      assert(entry.offset < streams.store.releasedOffset(stream.name), 'a reader sends released entries only');
      const previous = this.unacknowledged[this.unacknowledged.length - 1];
      if (previous !== undefined && previous >= entry.offset) assert(false, `reader offsets go back: ${entry.offset} after ${previous}`);
      const skipped = streams.announceSkipped(this.clientId, stream.name, this.cursor);
      const packetId = sendEntry(streams.broker, connection, this.deliveries, stream.name, entry, qos, this.subscription.subscriptionId, skipped, this, run);
      if (packetId !== 0) {
        this.unacknowledged.push(entry.offset);
        this.announcedInflight += skipped;
      }
      streams.positionMoved(this);
    }
    return 'budget';
  }

  /** Whether the entry is for this reader: its narrowing, its time seek, its client's read permission. */
  private wants(connection: Connection, entry: StreamEntry): boolean {
    if (this.notBeforeMs !== null) {
      if (entry.timeMs < this.notBeforeMs) return false;
      this.notBeforeMs = null;
    }
    if (this.spec.narrow !== null && !matchesFilter(this.spec.narrow, entry.topic)) return false;
    const access = this.streams.broker.access;
    if (access !== null && !access.mayDeliver(connection, entry.topic)) {
      access.receiveDenied(this.clientId, entry.topic);
      return false;
    }
    return true;
  }

  /** The read-ahead is dropped while the session is offline (it is read again on resume). */
  dropReadAhead(): void {
    this.cursor.jumpTo(this.cursor.position);
  }
}
