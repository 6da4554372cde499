/**
 * A consumer group on a stream: `$share/<group>/$stream/<name>` spreads the stream's entries over
 * the group's members, one member per entry.
 *
 * The group reads the stream through one cursor and hands each entry to a member that is
 * connected, may read its topic (ACL) and has room (its session's window for QoS 1, its output
 * cap always), round robin among those. While no member can take the next entry, the group
 * waits; an entry no connected member may read is passed over (counted as a receive denial), so
 * that one forbidden topic cannot stop the group.
 *
 * Its position, the lowest offset no member has acknowledged, is the group's and not a member's:
 * it is committed (`stream-group-position`) once per input in which it moved, and survives every
 * member leaving and the broker restarting; the next member to come goes on from it. A member
 * whose connection ends with deliveries unacknowledged gives them back: they go to another member
 * first, before the group reads on (MQTT 5.0 section 4.8.2 lets the server send a shared
 * subscription's message to another member when the connection breaks). The member's session
 * forgets them, so they are not sent to it again when it returns.
 *
 * The dispatch state (what is inflight to whom, what waits to be given again) lives in memory; a
 * restart rebuilds the group from its committed position, and every member's subscription.
 */
import { assert } from '../../assert.js';
import type { Qos } from '../../codec/packets.js';
import type { SubscriptionState } from '../../store/state-store.js';
import type { StreamEntry } from '../../store/streams/stream-entry.js';
import { matchesFilter } from '../../topics/match-filter.js';
import type { Connection } from '../connection.js';
import { StreamCursor } from './stream-cursor.js';
import { type DeliveryOwner, type SessionDeliveries, sendEntry } from './stream-delivery.js';
import type { PumpEnd } from './stream-reader.js';
import type { Streams } from './streams.js';

interface Member {
  readonly clientId: string;
  subscription: SubscriptionState;
}

/** A delivery inflight to a member: where it is held, under which identifier, and what it announced. */
interface GroupDelivery {
  readonly deliveries: SessionDeliveries;
  readonly packetId: number;
  readonly skipped: number;
}

type Pick = { member: Member; connection: Connection; deliveries: SessionDeliveries; qos: Qos } | 'wait' | 'nobody-may';

export class GroupReader implements DeliveryOwner {
  readonly cursor: StreamCursor;
  /** Gives the cursor a token for its next storage read (made once: a fill is asked per entry). */
  private readonly newToken = (): number => this.streams.tokenFor(this);
  readonly members = new Map<string, Member>();
  /** `members` in order, for the round robin (rebuilt when the membership changes). */
  private memberList: Member[] = [];
  /** Deliveries inflight to members, by offset. */
  readonly inflight = new Map<number, GroupDelivery>();
  /** Entries a leaving member did not acknowledge, oldest first: given again before reading on. */
  readonly redeliver: StreamEntry[] = [];
  /** The position last committed (or recovered). */
  committed: number;
  /** The `pendingSkipped()` last committed (or recovered). */
  committedSkipped: number;
  /** Offsets announced (`stream-skipped`) on QoS 1 deliveries still inflight: told, but not yet known to be heard. */
  private announcedInflight = 0;
  private roundRobin = 0;

  constructor(
    private readonly streams: Streams,
    readonly stream: string,
    /** The group's key (stream-filter.ts): share name, and narrowing. */
    readonly key: string,
    readonly narrow: string | null,
    offset: number,
    /** Offsets the group lost to retention that no member was known to be told of when it was last committed. */
    skipped = 0,
  ) {
    this.cursor = new StreamCursor(offset);
    this.cursor.skipped = skipped;
    this.committed = offset;
    this.committedSkipped = skipped;
  }

  /**
   * Offsets lost to retention that no member is known to have been told of: not yet announced, or
   * announced on a delivery not yet acknowledged. Committed with the position, so that after a
   * restart the group's next delivery announces them again (`stream-skipped`); a member that had
   * the announcement and acknowledged it is not told twice.
   */
  pendingSkipped(): number {
    return this.cursor.skipped + this.announcedInflight;
  }

  join(clientId: string, subscription: SubscriptionState): void {
    const member = this.members.get(clientId);
    if (member !== undefined) member.subscription = subscription;
    else this.members.set(clientId, { clientId, subscription });
    this.memberList = [...this.members.values()];
  }

  leave(clientId: string): void {
    this.members.delete(clientId);
    this.memberList = [...this.members.values()];
  }

  /** The lowest offset no member has acknowledged. */
  position(): number {
    let offset = this.redeliver.length > 0 ? Math.min(this.redeliver[0]!.offset, this.cursor.position) : this.cursor.position;
    for (const inflight of this.inflight.keys()) if (inflight < offset) offset = inflight;
    return offset;
  }

  acknowledged(packetId: number, offset: number, skipped: number): void {
    assert(this.inflight.get(offset)?.packetId === packetId, 'a group acknowledgement is for its own delivery');
    this.inflight.delete(offset);
    this.announcedInflight -= skipped;
    assert(this.announcedInflight >= 0, 'announced offsets inflight never negative');
    this.streams.groupMoved(this);
  }

  /** A member's connection ended (or it left): its unacknowledged entries go to the others. */
  memberGone(deliveries: SessionDeliveries): void {
    const returned: StreamEntry[] = [];
    const table = deliveries.inflight;
    for (const packetId of table.size === 0 ? noIds : table.packetIdsInSendOrder(this)) {
      const entry = table.entryOf(packetId);
      const skipped = table.skippedOf(packetId);
      table.remove(packetId);
      this.inflight.delete(entry.offset);
      returned.push(entry);
      // Its announcement was perhaps never heard: the next member is told instead.
      this.announcedInflight -= skipped;
      this.cursor.skipped += skipped;
    }
    if (returned.length === 0) return;
    this.redeliver.push(...returned);
    this.redeliver.sort((a, b) => a.offset - b.offset);
    this.streams.groupMoved(this);
  }

  /**
   * Retention cut the stream below the group's position: deliveries inflight below `firstOffset`
   * are no longer the group's (their acknowledgements only free their identifiers), entries
   * waiting to be given again are dropped, and the cursor moves on. Returns the offsets the group
   * loses, which its next delivery announces.
   */
  dropBelow(firstOffset: number): number {
    let skipped = 0;
    for (const [offset, delivery] of this.inflight) {
      if (offset >= firstOffset) continue;
      delivery.deliveries.inflight.disownOne(delivery.packetId);
      this.inflight.delete(offset);
      this.announcedInflight -= delivery.skipped;
    }
    while (this.redeliver.length > 0 && this.redeliver[0]!.offset < firstOffset) {
      this.redeliver.shift();
      skipped += 1;
    }
    const position = this.cursor.position;
    if (position < firstOffset) {
      skipped += firstOffset - position;
      this.cursor.jumpTo(firstOffset);
    }
    this.cursor.skipped += skipped;
    return skipped;
  }

  /** Hands entries to members while one can take them; at most `budget` entries looked at. */
  dispatch(budget: number): PumpEnd {
    const streams = this.streams;
    const stream = streams.broker.state.streams.get(this.stream);
    if (stream === undefined || this.members.size === 0) return 'idle';
    for (let examined = 0; examined < budget; examined++) {
      const again = this.redeliver.length > 0;
      if (!again && this.cursor.fill(streams.store, stream, streams.readAheadBytes, this.newToken) !== 'ready') return 'idle';
      const entry = again ? this.redeliver[0]! : this.cursor.peek()!;
      if (!again && this.narrow !== null && !matchesFilter(this.narrow, entry.topic)) {
        this.cursor.take();
        streams.groupMoved(this);
        continue;
      }
      const pick = this.pick(entry);
      if (pick === 'wait') return 'idle';
      if (again) this.redeliver.shift();
      else this.cursor.take();
      streams.groupMoved(this);
      if (pick === 'nobody-may') continue;
      const skipped = streams.announceSkipped(pick.member.clientId, stream.name, this.cursor);
      const subscriptionId = pick.member.subscription.subscriptionId;
      assert(!this.inflight.has(entry.offset), 'an entry is inflight to one member at a time');
      assert(entry.offset < streams.store.releasedOffset(stream.name), 'a group sends released entries only');
      const packetId = sendEntry(streams.broker, pick.connection, pick.deliveries, stream.name, entry, pick.qos, subscriptionId, skipped, this);
      if (packetId === 0) continue;
      this.inflight.set(entry.offset, { deliveries: pick.deliveries, packetId, skipped });
      this.announcedInflight += skipped;
    }
    return 'budget';
  }

  /** The next member, round robin, that may read the entry and can take it now. */
  private pick(entry: StreamEntry): Pick {
    const members = this.memberList;
    const access = this.streams.broker.access;
    let allowed = false;
    let connected = false;
    for (let step = 0; step < members.length; step++) {
      const member = members[(this.roundRobin + step) % members.length]!;
      const connection = this.streams.broker.online.get(member.clientId);
      if (connection === undefined || connection.session === null) continue;
      connected = true;
      if (access !== null && !access.allowsReceive(member.clientId, member.subscription, entry.topic)) continue;
      allowed = true;
      const qos = Math.min(entry.qos, member.subscription.qos) as Qos;
      const deliveries = this.streams.deliveriesOf(connection.session);
      if (!this.streams.canSend(deliveries, connection, qos)) continue;
      this.roundRobin = (this.roundRobin + step + 1) % members.length;
      return { member, connection, deliveries, qos };
    }
    if (!connected || allowed) return 'wait';
    // Connected members, none of which may read it: passed over, so the group does not stop here.
    if (access !== null) access.receiveDenied(members[0]!.clientId, entry.topic);
    return 'nobody-may';
  }
}

const noIds: readonly number[] = Object.freeze([]);
