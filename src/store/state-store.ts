/**
 * Durable state: its shape, the records that change it, and the store interface that keeps them.
 *
 * The broker never mutates durable state directly. Every change (a session created, a
 * subscription added, a message stored or queued for a session, an acknowledgement, a retained
 * message set, a will stored ...) is a `StateRecord`; the broker appends it to a `StateStore` and
 * applies it to its `DurableState` through `applyRecord`, the one function that also rebuilds
 * state on recovery. Replaying the records a store holds therefore reproduces exactly the state
 * the broker had, and a crash between any two records leaves a state that replay accepts
 * (`finishReplay` sweeps what a torn sequence can leave behind: messages nobody refers to).
 *
 * A message body is stored once (`message-stored`) and referred to by id from per-session
 * delivery records and from the retained table, with a reference count; a publish to a thousand
 * offline sessions writes its payload once.
 *
 * Streams (src/broker/streams/) keep only their counters here: each stream's next and first
 * offset, its newest entry's time, its consumer groups' committed positions, and every session's
 * position per `$stream` subscription. The entries themselves are carried by `stream-appended`
 * records into the store, which keeps them in the stream's segment files (store/streams/).
 *
 * Acknowledgement depends on durability: `append` returns a log sequence number (LSN) and the
 * broker holds back every acknowledgement until `durableLsn` reaches the LSN of the records it
 * depends on. A store that writes through storage actions hands the broker its `StorageRequest`s
 * via `drainRequests` and gets the results back through `storageCompleted`; the broker asks again
 * for `durableLsn` after each input, which is how it learns that durability advanced.
 */
import { assert } from '../assert.js';
import type { Properties, ProtocolVersion, Qos, Will } from '../codec/packets.js';
import type { StreamDefinition } from '../config.js';
import type { StorageRequest, StorageResult } from '../contract.js';
import { isBrokerTopic } from '../topics/validate.js';
import { IntegerKeyTable } from './integer-key-table.js';
import type { StreamStore } from './streams/stream-store.js';

/** A subscription as a session holds it. `filter` is the full filter (with any `$share/` prefix). */
export interface SubscriptionState {
  readonly filter: string;
  readonly qos: Qos;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
  /** MQTT 5.0 subscription identifier, 0 when none. */
  readonly subscriptionId: number;
}

/** A message body, stored once, referred to by deliveries and by the retained table. */
export interface StoredMessage {
  readonly messageId: number;
  readonly topic: string;
  /**
   * Its bytes never change, but the buffer holding them may: the payload slab moves a small
   * payload that outlived its neighbours into another slab (payload-slab.ts). Read it when
   * needed; do not keep the view, or its buffer, as the message's identity.
   */
  readonly payload: Uint8Array;
  readonly qos: Qos;
  readonly retain: boolean;
  /** Properties forwarded to receivers (no topic alias, expiry or subscription identifiers). */
  readonly properties: Properties | undefined;
  readonly createdAtMs: number;
  /** When the MQTT 5.0 message expiry interval runs out, or null for never. */
  readonly expiryAtMs: number | null;
  /** Deliveries and retained slots that refer to this message; it is dropped at zero. */
  references: number;
}

export type DeliveryPhase = 'queued' | 'publish' | 'pubrel';

/** One message on its way to one session. */
export interface Delivery {
  /** Per-session, increasing: identifies a delivery before it has a packet identifier. */
  readonly sequence: number;
  readonly messageId: number;
  /** QoS towards this session: min(message QoS, granted QoS); 1 or 2 (QoS 0 is never stored). */
  readonly qos: Qos;
  /** The RETAIN flag this session receives. */
  readonly retain: boolean;
  readonly subscriptionIds: readonly number[];
  /** 0 while queued, else the packet identifier in use. */
  packetId: number;
  phase: DeliveryPhase;
}

export interface SessionState {
  readonly clientId: string;
  protocolVersion: ProtocolVersion;
  /** 0: ends with its connection (volatile, never written); 0xFFFFFFFF: never expires. */
  expiryIntervalSeconds: number;
  /** When its connection went away, or null while connected. */
  offlineSinceMs: number | null;
  /**
   * This and `inflight`, `incomingQos2` and `streamPositions` start as shared empty collections
   * (see `noSubscriptions`) and get their own on the first write, through the `own*` functions.
   */
  subscriptions: Map<string, SubscriptionState>;
  /** Deliveries with a packet identifier, in the order they were first sent (integer-key-table.ts: no Map, whose deletes make garbage). */
  inflight: IntegerKeyTable<Delivery>;
  /**
   * Deliveries waiting for room in the inflight window, oldest first (increasing sequence). Starts
   * as the shared empty queue like the collections below, and gets its own on the first push
   * (`ownQueue`); a drained queue is kept.
   */
  queue: DeliveryQueue;
  /** Payload bytes of `queue`. */
  queuedBytes: number;
  /** QoS 2 packet identifiers received and not yet released by PUBREL. */
  incomingQos2: Set<number>;
  /**
   * Where each `$stream` subscription (by its filter) continues after a reconnect or a restart:
   * its first unacknowledged offset. Written for persistent sessions only (stream-position).
   */
  streamPositions: Map<string, StreamPosition>;
  nextPacketId: number;
  nextDeliverySequence: number;
  /**
   * Who owns the session, for topic authorization: the authenticated user name of the last
   * connection bound to it; null when that connection gave none (anonymous); undefined when
   * unknown (the session's records were written by a version that did not store it). Durable, so
   * that a restarted broker decides deliveries to an offline session as it did before.
   */
  username?: string | null;
  /**
   * A cluster node's own fact: the `keel-sessions` revision of the claim under which this session
   * was made (fresh, or resumed without a hand-over) or adopted (a hand-over applied); undefined
   * when unknown (a single node, or records written before it existed). The cluster layer passes it
   * in (session-registry.ts, session-handover.ts); the core only keeps it.
   */
  claimRevision?: number;
}

/**
 * A `$stream` reader's committed place: the first offset it has not acknowledged and, after a
 * seek by time that no entry answered yet, the time before which entries are skipped (null: none).
 */
export interface StreamPosition {
  readonly offset: number;
  readonly notBeforeMs: number | null;
  /** Offsets the reader lost (retention, damage) that it is not known to have been told of (`stream-skipped`); absent: none. */
  readonly skipped?: number;
}

/** A stream as durable state keeps it: its definition and its counters (never its entries). */
export interface StreamState {
  readonly name: string;
  /** The definition may change (a config file edited between starts): `stream-created` again. */
  filter: string;
  retentionMs: number;
  retentionBytes: number;
  lastValue: boolean;
  /** The offset the next appended entry gets. */
  nextOffset: number;
  /** The oldest offset retention kept (entries below are gone); compaction may leave gaps above it. */
  firstOffset: number;
  /** The time of the newest entry (Unix milliseconds); entries' times never decrease. */
  lastTimeMs: number;
  /** Consumer groups' committed positions: group key (stream-groups.ts) to first unacknowledged offset. */
  readonly groups: Map<string, number>;
  /** Of those groups, the ones with offsets lost to retention not yet known to be announced, and how many. */
  readonly groupsSkipped: Map<string, number>;
}

/** One entry of a `stream-appended` record: which stream got the message, at which offset. */
export interface StreamEntryRef {
  readonly stream: string;
  readonly offset: number;
}

/** A user name as records and state keep it: null is anonymous, undefined (absent) unknown. */
export type StoredUsername = string | null | undefined;

export interface DurableState {
  readonly sessions: Map<string, SessionState>;
  readonly messages: Map<number, StoredMessage>;
  /** Topic name to message id. */
  readonly retained: Map<string, number>;
  retainedBytes: number;
  /** Wills of connections that have not ended normally, by client id. */
  readonly wills: Map<string, Will>;
  /**
   * The user name of the connection that left each will (null: anonymous), by client id; a will
   * without an entry has an unknown owner (written by an older version). A will outlives a
   * volatile session, so its owner cannot be read from the session. Optional only so that states
   * built as literals before it existed still type; `createDurableState` always makes it.
   */
  readonly willUsernames?: Map<string, string | null>;
  nextMessageId: number;
  /** Durable streams by name. */
  readonly streams: Map<string, StreamState>;
  /**
   * A cluster node's hand-off state (src/cluster/): the highest sequence of the hand-off stream
   * applied to this node's sessions, and the durable messages it still has to hand to the cluster
   * (its outbox) with the next outbox id. Optional only so that states built as literals before it
   * existed still type; `createDurableState` always makes it.
   */
  cluster?: ClusterDurableState;
}

/** A message waiting in a node's outbox for the hand-off stream to take it. */
export interface ClusterOutboxEntry {
  readonly id: number;
  readonly subject: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly payload: Uint8Array;
}

export interface ClusterDurableState {
  appliedSequence: number;
  /**
   * The hand-off stream `appliedSequence` counts in (the host's name for it, contract.ts
   * clusterStatus), undefined until a record names one: a stream made anew numbers from 1 again.
   */
  appliedStream?: string;
  nextOutboxId: number;
  readonly outbox: Map<number, ClusterOutboxEntry>;
}

export type StoredMessageFields = Omit<StoredMessage, 'references'>;

/*
 * `username` in session-created, session-resumed and will-set: the owner's user name (null:
 * anonymous). Absent in records written before it existed, which then mean "unknown".
 * `claimRevision` in session-created and session-resumed: SessionState.claimRevision, written by
 * cluster nodes only; absent means "unknown" (a single node, or a log of before it).
 */
export type StateRecord =
  | { kind: 'session-created'; clientId: string; protocolVersion: ProtocolVersion; expiryIntervalSeconds: number; username?: string | null; claimRevision?: number }
  | { kind: 'session-resumed'; clientId: string; protocolVersion: ProtocolVersion; expiryIntervalSeconds: number; username?: string | null; claimRevision?: number }
  | { kind: 'session-disconnected'; clientId: string; atMs: number; expiryIntervalSeconds: number }
  | { kind: 'session-deleted'; clientId: string }
  | { kind: 'session-counters'; clientId: string; nextPacketId: number; nextDeliverySequence: number }
  | { kind: 'subscription-added'; clientId: string; subscription: SubscriptionState }
  | { kind: 'subscription-removed'; clientId: string; filter: string }
  | { kind: 'message-stored'; message: StoredMessageFields }
  /** A stored message that ended up with no delivery (all receivers dropped it). */
  | { kind: 'message-discarded'; messageId: number }
  | { kind: 'message-counter'; nextMessageId: number }
  | { kind: 'retained-set'; topic: string; messageId: number }
  | { kind: 'retained-cleared'; topic: string }
  | {
      kind: 'delivery-queued';
      clientId: string;
      sequence: number;
      messageId: number;
      qos: Qos;
      retain: boolean;
      subscriptionIds: readonly number[];
      /** 0: waits in the queue; else sent at once with this packet identifier. */
      packetId: number;
      /** Only snapshots write 'pubrel' here; live deliveries start in 'queued' or 'publish'. */
      phase: DeliveryPhase;
    }
  | { kind: 'delivery-sent'; clientId: string; sequence: number; packetId: number }
  | { kind: 'delivery-released'; clientId: string; packetId: number }
  | { kind: 'delivery-completed'; clientId: string; packetId: number }
  | { kind: 'delivery-dropped'; clientId: string; sequence: number; reason: string }
  | { kind: 'incoming-qos2-recorded'; clientId: string; packetId: number }
  | { kind: 'incoming-qos2-released'; clientId: string; packetId: number }
  | { kind: 'will-set'; clientId: string; will: Will; username?: string | null }
  | { kind: 'will-cleared'; clientId: string }
  /**
   * A stream defined, or redefined when it exists (its counters stay). Snapshots add the counters:
   * `nextOffset` is then the persisted offset (entries below it are synced in the stream's
   * segments) and the snapshot's `stream-appended` records that follow bring it to the live one.
   */
  | { kind: 'stream-created'; stream: StreamDefinition; nextOffset?: number; firstOffset?: number; lastTimeMs?: number }
  | { kind: 'stream-deleted'; stream: string }
  /** A message appended to one or more streams: its fields once, the offset it got in each. */
  | { kind: 'stream-appended'; timeMs: number; topic: string; qos: Qos; payload: Uint8Array; properties?: Properties; entries: readonly StreamEntryRef[] }
  /** Retention deleted the entries below `firstOffset` (whole segments). */
  | { kind: 'stream-trimmed'; stream: string; firstOffset: number }
  /**
   * A repair after damage: the stream ends at `nextOffset` (the entries from there on were lost,
   * `lost` of them), the next append takes that offset again, and every position past it moves
   * back to it (stream-recovery.ts).
   */
  | { kind: 'stream-cut'; stream: string; nextOffset: number; lost: number }
  /** A session's `$stream` subscription committed its position (once per input that moved it). */
  | { kind: 'stream-position'; clientId: string; filter: string; offset: number; notBeforeMs?: number; skipped?: number }
  /**
   * A consumer group committed its position: the lowest offset no member has acknowledged; and,
   * when some, how many offsets retention cut from under it that no member is known to have been
   * told of (`stream-skipped`), so that its next delivery after a restart still says so. Records
   * written before `skipped` existed have none (0).
   */
  | { kind: 'stream-group-position'; stream: string; group: string; offset: number; skipped?: number }
  /**
   * A cluster node applied the hand-off stream up to this sequence (src/cluster/); `stream` names
   * the stream (absent in records of before), and a record of another stream than the one known
   * starts the count again at its sequence.
   */
  | { kind: 'cluster-applied'; sequence: number; stream?: string }
  /** A durable message this node must hand to the cluster, kept until the stream holds it. */
  | { kind: 'cluster-outbox-added'; entry: ClusterOutboxEntry }
  /** The hand-off stream holds the outbox entry (or, from a snapshot, only the id counter moves). */
  | { kind: 'cluster-outbox-done'; id: number };

export type StateRecordKind = StateRecord['kind'];

/**
 * What a store has done since it was made, for operators ($SYS, metrics): plain counters the
 * store updates in place. Durations are measured in the core's own time (the inputs' nowMs).
 */
export interface StoreStats {
  recordsAppended: number;
  /** Encoded record bytes appended (bodies, before framing). */
  bytesAppended: number;
  /** Syncs of the log that completed (group commit: one per batch). */
  syncs: number;
  snapshotsWritten: number;
  /** How long the last snapshot took from its first write to its last completion; null before one. */
  lastSnapshotMs: number | null;
}

export function createStoreStats(): StoreStats {
  return { recordsAppended: 0, bytesAppended: 0, syncs: 0, snapshotsWritten: 0, lastSnapshotMs: null };
}

/** Where a recovered record was read: its file, the offset of its frame, its LSN. */
export interface RecordOrigin {
  readonly file: string;
  readonly offset: number;
  readonly lsn: number;
  /** Read from a snapshot (its LSN is the snapshot's own numbering) rather than a log segment. */
  readonly snapshot: boolean;
}

/**
 * Where durable state goes. The broker calls `recover` until it returns the records to replay,
 * then `append` for every durable change, `flush` at the end of every input (a batching store
 * starts its write/sync there: group commit), and reads `durableLsn` to release acknowledgements.
 */
export interface StateStore {
  /** The records to replay, or null while the store is still reading them through storage requests. */
  recover(nowMs: number): readonly StateRecord[] | null;
  /**
   * Optional: the records read so far that are final (whole groups), handed over once each, while
   * recovery is still going; `recover` then returns only the rest. A caller that applies them as
   * they come holds one segment's records at a time instead of the whole log's.
   */
  takeRecovered?(): readonly StateRecord[];
  /**
   * Optional: where the record at `index` of the batch last returned by `recover` or
   * `takeRecovered` was read from, for a report that names it; null when unknown.
   */
  recoveredOrigin?(index: number): RecordOrigin | null;
  /** Takes a record; returns its LSN (increasing, starting at 1). */
  append(record: StateRecord): number;
  /** Every record with an LSN up to this one is durable. */
  readonly durableLsn: number;
  /** The LSN of the last appended record (0 when none). */
  readonly appendedLsn: number;
  /**
   * Optional: bytes of appended records not yet handed to storage (a log writer's queue, which
   * grows while a write and its sync are in flight). The publisher throttle counts them with the
   * streams' backlog: every appended stream entry is also such a record.
   */
  readonly unwrittenBytes?: number;
  /** End of an input: start writing / syncing what was appended. */
  flush(nowMs: number): void;
  /** Storage requests the store wants performed, in order; emptied by the call. */
  drainRequests(): readonly StorageRequest[];
  /** Result of a request from `drainRequests`. */
  storageCompleted(nowMs: number, result: StorageResult): void;
  /** When the store wants `flush` called again even without input (interval sync), or null. */
  nextDeadlineMs(): number | null;
  /**
   * Set when the store can no longer keep its promises (a failed write or sync, damage found by
   * recovery). Final: the broker halts, and a restart recovers from what storage holds.
   */
  readonly failure: string | null;
  /** Optional: counters for operators (see StoreStats). */
  readonly stats?: StoreStats;
  /** Offered the live state after each input; a store may rewrite its log as `snapshotRecords(state)`. */
  maybeCompact(state: DurableState): void;
  /** Optional: the store keeps durable streams' entries (streams/stream-store.ts); without it the broker has no streams. */
  readonly streams?: StreamStore;
}

/**
 * A session's queued deliveries: a ring buffer, O(1) at both ends, because a subscriber that
 * falls behind may have a backlog of `queuedMessagesPerSessionMax` (say 100,000) deliveries and
 * every one of them leaves from the head. (An array with `splice(0, 1)` made draining such a
 * backlog quadratic.) Sequences increase from head to tail, so a delivery is found by binary
 * search; removal anywhere but the head (only replay of an unusual log asks for it) moves the
 * deliveries behind it up by one. Capacity is a power of two, grows by doubling and halves when a drained queue
 * uses under a quarter of it, so an idle session holds no slots and a drained one gives its
 * memory back.
 *
 * The ring is kept as columns (sequence, message id, QoS and RETAIN, subscription identifiers),
 * not as one object per delivery: a waiting delivery is always in phase 'queued' with packet
 * identifier 0, so those two need no room, and a slot costs 25 bytes instead of a pointer plus an
 * 88-byte object. With a 100,000-delivery backlog per stalled subscriber that is most of the
 * queue's memory, and objects that live that long are promoted to the old generation, whose
 * garbage is what a flood leaves behind. Reads (`queue[0]`, `at`, `shift`, iteration) build a
 * Delivery from the columns: changing it does not change the queue, and nothing needs to (a
 * delivery leaves the queue before its state changes).
 */
export class DeliveryQueue implements Iterable<Delivery> {
  private sequences: Float64Array = emptyNumbers;
  private messageIds: Float64Array = emptyNumbers;
  /** QoS in bits 0-1, RETAIN in bit 2. */
  private flags: Uint8Array = emptyFlags;
  /** Mostly one shared empty list (routing.ts), so a slot is a pointer, not a list. */
  private subscriptionIds: (readonly number[] | undefined)[] = emptyLists;
  private head = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** The oldest delivery (kept so that `queue[0]` reads the head, as it did when this was an array). */
  get 0(): Delivery | undefined {
    return this.count === 0 ? undefined : DeliveryQueue.build(this, this.head);
  }

  /** The delivery `index` places behind the head; the index must be in range. */
  at(index: number): Delivery {
    // The message is built only on failure: this runs for every queued delivery.
    if (!(index >= 0 && index < this.count)) assert(false, `queue index ${index} out of range 0..${this.count - 1}`);
    return DeliveryQueue.build(this, (this.head + index) & (this.sequences.length - 1));
  }

  push(delivery: Delivery): void {
    assert(delivery.packetId === 0, 'a queued delivery has no packet identifier');
    assert(delivery.phase === 'queued', 'a queued delivery is in phase queued');
    if (this.count === this.sequences.length) this.resize(Math.max(queueCapacityMin, this.sequences.length * 2));
    const slot = (this.head + this.count) & (this.sequences.length - 1);
    this.sequences[slot] = delivery.sequence;
    this.messageIds[slot] = delivery.messageId;
    this.flags[slot] = delivery.qos | (delivery.retain ? 4 : 0);
    this.subscriptionIds[slot] = delivery.subscriptionIds;
    this.count += 1;
  }

  shift(): Delivery {
    assert(this.count > 0, 'shift from an empty queue');
    const delivery = DeliveryQueue.build(this, this.head);
    this.subscriptionIds[this.head] = undefined;
    this.head = (this.head + 1) & (this.sequences.length - 1);
    this.count -= 1;
    this.maybeShrink();
    return delivery;
  }

  /** Position of the delivery with this sequence, or -1. */
  indexOfSequence(sequence: number): number {
    const mask = this.sequences.length - 1;
    let low = 0;
    let high = this.count - 1;
    // Bounded by log2(count) passes: each halves the range.
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const found = this.sequences[(this.head + middle) & mask]!;
      if (found === sequence) return middle;
      if (found < sequence) low = middle + 1;
      else high = middle - 1;
    }
    return -1;
  }

  /** Removes and returns the delivery with this sequence, which must be queued. */
  removeSequence(sequence: number): Delivery {
    // The head is by far the common case: the window opens in order.
    if (this.count > 0 && this.sequences[this.head] === sequence) return this.shift();
    const index = this.indexOfSequence(sequence);
    assert(index >= 0, `queued delivery ${sequence} not found`);
    const delivery = this.at(index);
    const mask = this.sequences.length - 1;
    // Closes the gap from the tail side; removal from the middle is rare, so O(n) is fine here.
    for (let position = index; position < this.count - 1; position++) {
      const to = (this.head + position) & mask;
      const from = (this.head + position + 1) & mask;
      this.sequences[to] = this.sequences[from]!;
      this.messageIds[to] = this.messageIds[from]!;
      this.flags[to] = this.flags[from]!;
      this.subscriptionIds[to] = this.subscriptionIds[from];
    }
    this.subscriptionIds[(this.head + this.count - 1) & mask] = undefined;
    this.count -= 1;
    this.maybeShrink();
    return delivery;
  }

  [Symbol.iterator](): Iterator<Delivery> {
    return DeliveryQueue.items(this)[Symbol.iterator]();
  }

  toArray(): Delivery[] {
    return DeliveryQueue.items(this);
  }

  /**
   * The deliveries, head first, read from the queue's own fields only: it also works on a
   * structured clone of a state (tools and tests clone states; a clone keeps the fields but not
   * the class), which is why the store's own sweeps and snapshots go through it.
   */
  static items(queue: DeliveryQueue): Delivery[] {
    const items: Delivery[] = [];
    const mask = queue.sequences.length - 1;
    for (let index = 0; index < queue.count; index++) items.push(DeliveryQueue.build(queue, (queue.head + index) & mask));
    return items;
  }

  /** The delivery in `slot`, from the queue's fields only (see `items`). */
  private static build(queue: DeliveryQueue, slot: number): Delivery {
    const flags = queue.flags[slot]!;
    return {
      sequence: queue.sequences[slot]!,
      messageId: queue.messageIds[slot]!,
      qos: (flags & 3) as Qos,
      retain: (flags & 4) !== 0,
      subscriptionIds: queue.subscriptionIds[slot]!,
      packetId: 0,
      phase: 'queued',
    };
  }

  private maybeShrink(): void {
    if (this.count === 0 && this.sequences.length <= queueCapacityMin) {
      this.head = 0;
      return;
    }
    if (this.sequences.length > queueCapacityMin && this.count < this.sequences.length / 4) this.resize(this.sequences.length / 2);
  }

  private resize(capacity: number): void {
    assert(capacity >= this.count, 'queue resized below its length');
    assert((capacity & (capacity - 1)) === 0, 'queue capacity must be a power of two');
    const sequences = new Float64Array(capacity);
    const messageIds = new Float64Array(capacity);
    const flags = new Uint8Array(capacity);
    const subscriptionIds = new Array<readonly number[] | undefined>(capacity).fill(undefined);
    const mask = this.sequences.length - 1;
    for (let index = 0; index < this.count; index++) {
      const slot = (this.head + index) & mask;
      sequences[index] = this.sequences[slot]!;
      messageIds[index] = this.messageIds[slot]!;
      flags[index] = this.flags[slot]!;
      subscriptionIds[index] = this.subscriptionIds[slot];
    }
    this.sequences = sequences;
    this.messageIds = messageIds;
    this.flags = flags;
    this.subscriptionIds = subscriptionIds;
    this.head = 0;
  }
}

/** Shared by every empty queue until its first push: an idle session allocates no slots. */
const emptyNumbers = new Float64Array(0);
const emptyFlags = new Uint8Array(0);
const emptyLists: (readonly number[] | undefined)[] = [];
const queueCapacityMin = 8;

export function createDurableState(): DurableState {
  return {
    sessions: new Map(),
    messages: new Map(),
    retained: new Map(),
    retainedBytes: 0,
    wills: new Map(),
    willUsernames: new Map(),
    nextMessageId: 1,
    streams: new Map(),
    cluster: { appliedSequence: 0, nextOutboxId: 1, outbox: new Map() },
  };
}

/**
 * Empty collections shared by every session until it writes its own: a session's four maps and
 * sets were about 900 bytes of each idle connection (an empty Map or Set already holds its hash
 * table), and most connections never subscribe to a stream, receive QoS 2 or hold an inflight
 * message; the delivery queue (72 bytes even empty) likewise, since most never queue one. They can be read like any other; a write to one is a bug (the writer must go through
 * an `own*` function), so it fails loudly instead of leaking state into every session.
 */
class SharedEmptyMap<K, V> extends Map<K, V> {
  override set(): this {
    assert(false, 'a shared empty map is never written: take the session its own first');
  }
}

class SharedEmptyTable<V> extends IntegerKeyTable<V> {
  override set(): this {
    assert(false, 'a shared empty table is never written: take the session its own first');
  }
}

class SharedEmptySet<T> extends Set<T> {
  override add(): this {
    assert(false, 'a shared empty set is never written: take the session its own first');
  }
}

class SharedEmptyQueue extends DeliveryQueue {
  override push(): void {
    assert(false, 'the shared empty queue is never written: take the session its own first');
  }
}

const noSubscriptions: Map<string, SubscriptionState> = new SharedEmptyMap();
const noInflight: IntegerKeyTable<Delivery> = new SharedEmptyTable();
const noIncomingQos2: Set<number> = new SharedEmptySet();
const noStreamPositions: Map<string, StreamPosition> = new SharedEmptyMap();
/** Only `push` adds to a queue, so the shared one stays empty and its other methods are safe. */
const noQueue: DeliveryQueue = new SharedEmptyQueue();

/** The session's own subscription map, made on its first write. */
export function ownSubscriptions(session: SessionState): Map<string, SubscriptionState> {
  if (session.subscriptions === noSubscriptions) session.subscriptions = new Map();
  return session.subscriptions;
}

/** The session's own inflight map, made on its first write. */
export function ownInflight(session: SessionState): IntegerKeyTable<Delivery> {
  if (session.inflight === noInflight) session.inflight = new IntegerKeyTable();
  return session.inflight;
}

/** The session's own delivery queue, made on its first push. */
function ownQueue(session: SessionState): DeliveryQueue {
  if (session.queue === noQueue) session.queue = new DeliveryQueue();
  return session.queue;
}

function createSession(clientId: string, protocolVersion: ProtocolVersion, expiryIntervalSeconds: number, username: StoredUsername, claimRevision: number | undefined): SessionState {
  return {
    clientId,
    protocolVersion,
    expiryIntervalSeconds,
    offlineSinceMs: null,
    subscriptions: noSubscriptions,
    inflight: noInflight,
    queue: noQueue,
    queuedBytes: 0,
    incomingQos2: noIncomingQos2,
    streamPositions: noStreamPositions,
    nextPacketId: 1,
    nextDeliverySequence: 1,
    username,
    claimRevision,
  };
}

function sessionOf(state: DurableState, clientId: string): SessionState {
  const session = state.sessions.get(clientId);
  // Messages with values are built only on failure: these run for every record.
  if (session === undefined) assert(false, `record for unknown session ${clientId}`);
  return session;
}

function messageOf(state: DurableState, messageId: number): StoredMessage {
  const message = state.messages.get(messageId);
  if (message === undefined) assert(false, `record refers to unknown message ${messageId}`);
  return message;
}

function release(state: DurableState, messageId: number): void {
  const message = messageOf(state, messageId);
  assert(message.references > 0, 'message reference count underflow');
  message.references -= 1;
  if (message.references === 0) state.messages.delete(messageId);
}

function dropSession(state: DurableState, session: SessionState): void {
  for (const delivery of session.inflight.values()) release(state, delivery.messageId);
  for (const delivery of DeliveryQueue.items(session.queue)) release(state, delivery.messageId);
  state.sessions.delete(session.clientId);
}

/** The one place durable state changes, live and during replay. */
export function applyRecord(state: DurableState, record: StateRecord): void {
  switch (record.kind) {
    case 'session-created': {
      const existing = state.sessions.get(record.clientId);
      if (existing !== undefined) dropSession(state, existing);
      state.sessions.set(record.clientId, createSession(record.clientId, record.protocolVersion, record.expiryIntervalSeconds, record.username, record.claimRevision));
      return;
    }
    case 'session-resumed': {
      const session = sessionOf(state, record.clientId);
      session.protocolVersion = record.protocolVersion;
      session.expiryIntervalSeconds = record.expiryIntervalSeconds;
      session.offlineSinceMs = null;
      // Whoever connected now owns it; a record without a user name leaves the owner unknown.
      session.username = record.username;
      // Resumed under a claim: the session is that claim's now (absent: unknown, as on one node).
      session.claimRevision = record.claimRevision;
      return;
    }
    case 'session-disconnected': {
      const session = sessionOf(state, record.clientId);
      session.offlineSinceMs = record.atMs;
      session.expiryIntervalSeconds = record.expiryIntervalSeconds;
      return;
    }
    case 'session-deleted':
      dropSession(state, sessionOf(state, record.clientId));
      return;
    case 'session-counters': {
      const session = sessionOf(state, record.clientId);
      session.nextPacketId = record.nextPacketId;
      session.nextDeliverySequence = record.nextDeliverySequence;
      return;
    }
    case 'subscription-added':
      ownSubscriptions(sessionOf(state, record.clientId)).set(record.subscription.filter, record.subscription);
      return;
    case 'subscription-removed':
      return removeSubscription(sessionOf(state, record.clientId), record.filter);
    case 'message-stored':
      applyMessageStored(state, record.message);
      return;
    case 'message-discarded': {
      const message = messageOf(state, record.messageId);
      assert(message.references === 0, 'discarding a message that is still referred to');
      state.messages.delete(record.messageId);
      return;
    }
    case 'message-counter':
      state.nextMessageId = Math.max(state.nextMessageId, record.nextMessageId);
      return;
    case 'retained-set':
    case 'retained-cleared':
      applyRetained(state, record.topic, record.kind === 'retained-set' ? record.messageId : 0);
      return;
    case 'will-set':
      return setWill(state, record.clientId, record.will, record.username);
    case 'will-cleared':
      return setWill(state, record.clientId, null, undefined);
    case 'stream-created':
    case 'stream-deleted':
    case 'stream-appended':
    case 'stream-trimmed':
    case 'stream-cut':
    case 'stream-position':
    case 'stream-group-position':
      return applyStreamRecord(state, record);
    case 'cluster-applied':
    case 'cluster-outbox-added':
    case 'cluster-outbox-done':
      return applyClusterRecord(state, record);
    default:
      applyDeliveryRecord(state, record);
  }
}

function applyClusterRecord(state: DurableState, record: Extract<StateRecord, { kind: 'cluster-applied' | 'cluster-outbox-added' | 'cluster-outbox-done' }>): void {
  const cluster = state.cluster;
  assert(cluster !== undefined, 'a cluster record needs a state made by createDurableState');
  switch (record.kind) {
    case 'cluster-applied':
      if (record.stream !== undefined && cluster.appliedStream !== undefined && record.stream !== cluster.appliedStream) cluster.appliedSequence = record.sequence;
      else cluster.appliedSequence = Math.max(cluster.appliedSequence, record.sequence);
      if (record.stream !== undefined) cluster.appliedStream = record.stream;
      return;
    case 'cluster-outbox-added':
      assert(!cluster.outbox.has(record.entry.id), 'an outbox id is used once');
      cluster.outbox.set(record.entry.id, record.entry);
      cluster.nextOutboxId = Math.max(cluster.nextOutboxId, record.entry.id + 1);
      return;
    case 'cluster-outbox-done':
      cluster.outbox.delete(record.id);
      cluster.nextOutboxId = Math.max(cluster.nextOutboxId, record.id + 1);
      return;
  }
}

/** Stores a client's will with its owner (undefined: unknown), or clears it (null). */
function setWill(state: DurableState, clientId: string, will: Will | null, username: StoredUsername): void {
  if (will === null) state.wills.delete(clientId);
  else state.wills.set(clientId, will);
  if (will === null || username === undefined) state.willUsernames?.delete(clientId);
  else state.willUsernames?.set(clientId, username);
}

/** A subscription ends, and with it its stream position if it read a stream. */
function removeSubscription(session: SessionState, filter: string): void {
  session.subscriptions.delete(filter);
  session.streamPositions.delete(filter);
}

type StreamRecord = Extract<StateRecord, { kind: 'stream-created' | 'stream-deleted' | 'stream-appended' | 'stream-trimmed' | 'stream-cut' | 'stream-position' | 'stream-group-position' }>;

function streamOf(state: DurableState, name: string): StreamState {
  const stream = state.streams.get(name);
  if (stream === undefined) assert(false, `record for unknown stream ${name}`);
  return stream;
}

function applyStreamRecord(state: DurableState, record: StreamRecord): void {
  switch (record.kind) {
    case 'stream-created':
      applyStreamCreated(state, record);
      return;
    case 'stream-deleted':
      streamOf(state, record.stream);
      state.streams.delete(record.stream);
      return;
    case 'stream-appended':
      for (const entry of record.entries) {
        const stream = streamOf(state, entry.stream);
        // Offsets are handed out in order, one each; a record saying otherwise is not this log's.
        if (entry.offset !== stream.nextOffset) assert(false, `stream ${entry.stream} offset ${entry.offset} where ${stream.nextOffset} was next`);
        stream.nextOffset += 1;
        if (record.timeMs > stream.lastTimeMs) stream.lastTimeMs = record.timeMs;
      }
      return;
    case 'stream-trimmed': {
      const stream = streamOf(state, record.stream);
      assert(record.firstOffset <= stream.nextOffset, 'a stream is not trimmed past its end');
      if (record.firstOffset > stream.firstOffset) stream.firstOffset = record.firstOffset;
      return;
    }
    case 'stream-cut':
      applyStreamCut(state, record);
      return;
    case 'stream-position': {
      const session = sessionOf(state, record.clientId);
      assert(session.subscriptions.has(record.filter), 'a stream position belongs to a subscription of its session');
      if (session.streamPositions === noStreamPositions) session.streamPositions = new Map();
      const position: StreamPosition = { offset: record.offset, notBeforeMs: record.notBeforeMs ?? null };
      session.streamPositions.set(record.filter, (record.skipped ?? 0) > 0 ? { ...position, skipped: record.skipped! } : position);
      return;
    }
    case 'stream-group-position': {
      const stream = streamOf(state, record.stream);
      stream.groups.set(record.group, record.offset);
      if ((record.skipped ?? 0) > 0) stream.groupsSkipped.set(record.group, record.skipped!);
      else stream.groupsSkipped.delete(record.group);
      return;
    }
  }
}

/**
 * The stream ends at the cut: offsets from there on are handed out again, so no position may
 * stay past it (a reader or group there would wait for offsets that now mean other messages).
 */
function applyStreamCut(state: DurableState, record: Extract<StateRecord, { kind: 'stream-cut' }>): void {
  const stream = streamOf(state, record.stream);
  const end = record.nextOffset;
  assert(end <= stream.nextOffset, 'a cut does not lengthen a stream');
  assert(end >= stream.firstOffset, 'a cut keeps the entries retention kept');
  stream.nextOffset = end;
  for (const [group, offset] of stream.groups) if (offset > end) stream.groups.set(group, end);
  for (const session of state.sessions.values()) {
    for (const [filter, position] of session.streamPositions) {
      if (position.offset > end && streamOfFilter(filter) === record.stream) session.streamPositions.set(filter, { offset: end, notBeforeMs: position.notBeforeMs });
    }
  }
}

/** The stream a plain `$stream/NAME[/...]` filter reads (positions of shared ones are their groups'). */
function streamOfFilter(filter: string): string | null {
  if (!filter.startsWith('$stream/')) return null;
  const rest = filter.slice('$stream/'.length);
  const slash = rest.indexOf('/');
  return slash < 0 ? rest : rest.slice(0, slash);
}

function applyStreamCreated(state: DurableState, record: Extract<StateRecord, { kind: 'stream-created' }>): void {
  const { name, filter, retentionMs, retentionBytes, lastValue } = record.stream;
  const existing = state.streams.get(name);
  if (existing !== undefined) {
    existing.filter = filter;
    existing.retentionMs = retentionMs;
    existing.retentionBytes = retentionBytes;
    existing.lastValue = lastValue;
    return;
  }
  const nextOffset = record.nextOffset ?? 0;
  const firstOffset = record.firstOffset ?? 0;
  assert(firstOffset <= nextOffset, 'a stream starts at or before its end');
  state.streams.set(name, { name, filter, retentionMs, retentionBytes, lastValue, nextOffset, firstOffset, lastTimeMs: record.lastTimeMs ?? 0, groups: new Map(), groupsSkipped: new Map() });
}

function applyMessageStored(state: DurableState, fields: StoredMessageFields): void {
  if (state.messages.has(fields.messageId)) assert(false, `message ${fields.messageId} stored twice`);
  // Spelled out rather than spread: every stored message then has one shape (fast property
  // access on the publish path), and no spread helper runs per message.
  const message: StoredMessage = {
    messageId: fields.messageId,
    topic: fields.topic,
    payload: fields.payload,
    qos: fields.qos,
    retain: fields.retain,
    properties: fields.properties,
    createdAtMs: fields.createdAtMs,
    expiryAtMs: fields.expiryAtMs,
    references: 0,
  };
  state.messages.set(fields.messageId, message);
  state.nextMessageId = Math.max(state.nextMessageId, fields.messageId + 1);
}

/** Replaces the retained message of `topic` with `messageId`, or clears it when 0. */
function applyRetained(state: DurableState, topic: string, messageId: number): void {
  const previous = state.retained.get(topic);
  if (previous !== undefined) {
    state.retainedBytes -= messageOf(state, previous).payload.length;
    state.retained.delete(topic);
    release(state, previous);
  }
  if (messageId === 0) return;
  const message = messageOf(state, messageId);
  message.references += 1;
  state.retained.set(topic, messageId);
  state.retainedBytes += message.payload.length;
}

type DeliveryRecord = Extract<
  StateRecord,
  { kind: 'delivery-queued' | 'delivery-sent' | 'delivery-released' | 'delivery-completed' | 'delivery-dropped' | 'incoming-qos2-recorded' | 'incoming-qos2-released' }
>;

function applyDeliveryRecord(state: DurableState, record: DeliveryRecord): void {
  const session = sessionOf(state, record.clientId);
  switch (record.kind) {
    case 'delivery-queued':
      applyDeliveryQueued(state, session, record);
      return;
    case 'delivery-sent': {
      const delivery = session.queue.removeSequence(record.sequence);
      session.queuedBytes -= messageOf(state, delivery.messageId).payload.length;
      assert(!session.inflight.has(record.packetId), 'packet identifier already in use');
      delivery.packetId = record.packetId;
      delivery.phase = 'publish';
      ownInflight(session).set(record.packetId, delivery);
      session.nextPacketId = nextPacketIdAfter(record.packetId);
      return;
    }
    case 'delivery-released': {
      const delivery = session.inflight.get(record.packetId);
      assert(delivery !== undefined && delivery.qos === 2, 'PUBREC state for an unknown QoS 2 delivery');
      delivery.phase = 'pubrel';
      return;
    }
    case 'delivery-completed': {
      const delivery = session.inflight.get(record.packetId);
      assert(delivery !== undefined, 'completion of an unknown delivery');
      session.inflight.delete(record.packetId);
      release(state, delivery.messageId);
      return;
    }
    case 'delivery-dropped': {
      const delivery = session.queue.removeSequence(record.sequence);
      session.queuedBytes -= messageOf(state, delivery.messageId).payload.length;
      release(state, delivery.messageId);
      return;
    }
    case 'incoming-qos2-recorded':
      if (session.incomingQos2 === noIncomingQos2) session.incomingQos2 = new Set();
      session.incomingQos2.add(record.packetId);
      return;
    case 'incoming-qos2-released':
      session.incomingQos2.delete(record.packetId);
      return;
  }
}

function applyDeliveryQueued(state: DurableState, session: SessionState, record: Extract<StateRecord, { kind: 'delivery-queued' }>): void {
  assert(record.qos > 0, 'QoS 0 deliveries are never stored');
  assert(record.sequence >= session.nextDeliverySequence, 'delivery sequence went backwards');
  // The queue relies on it: sequences in it increase from head to tail.
  assert(session.queue.length === 0 || session.queue.at(session.queue.length - 1).sequence < record.sequence, 'queued sequences must increase');
  const message = messageOf(state, record.messageId);
  message.references += 1;
  const delivery: Delivery = {
    sequence: record.sequence,
    messageId: record.messageId,
    qos: record.qos,
    retain: record.retain,
    subscriptionIds: record.subscriptionIds,
    packetId: record.packetId,
    phase: record.packetId === 0 ? 'queued' : record.phase,
  };
  session.nextDeliverySequence = record.sequence + 1;
  if (record.packetId === 0) {
    ownQueue(session).push(delivery);
    session.queuedBytes += message.payload.length;
    return;
  }
  assert(delivery.phase !== 'queued', 'an inflight delivery needs a phase');
  assert(!session.inflight.has(record.packetId), 'packet identifier already in use');
  ownInflight(session).set(record.packetId, delivery);
  session.nextPacketId = nextPacketIdAfter(record.packetId);
}

export function nextPacketIdAfter(packetId: number): number {
  return packetId >= 0xffff ? 1 : packetId + 1;
}

/**
 * After replaying every record: drop messages nothing refers to (a crash between storing a
 * message and queueing it) and volatile sessions that reached the store (none should).
 */
export function finishReplay(state: DurableState): void {
  for (const session of [...state.sessions.values()]) {
    if (session.expiryIntervalSeconds === 0) dropSession(state, session);
  }
  for (const [messageId, message] of [...state.messages]) {
    if (message.references === 0) state.messages.delete(messageId);
  }
}

/**
 * What a store that keeps stream segments adds to a snapshot of a stream: the offset below which
 * its entries are synced in the segments, and the entries from there to the stream's end as
 * `stream-appended` records (each naming this stream alone), which the snapshot must carry
 * because the log records that held them are about to be deleted.
 */
export interface StreamSnapshotSource {
  unsynced(stream: StreamState): { persistedOffset: number; records: StateRecord[] };
}

/**
 * The live durable state as a minimal record list: replaying it yields the same state (volatile
 * sessions excepted; they are never durable). Used by stores to compact their logs. Without a
 * `streams` source a stream's counters are written as they are and no entry is carried.
 */
export function snapshotRecords(state: DurableState, streams?: StreamSnapshotSource): StateRecord[] {
  const records: StateRecord[] = [{ kind: 'message-counter', nextMessageId: state.nextMessageId }];
  // Streams before sessions: a session's stream positions refer to subscriptions, not streams,
  // but a reader resumed right after replay looks its stream up.
  for (const stream of state.streams.values()) snapshotStream(stream, records, streams);
  for (const message of state.messages.values()) {
    if (isVolatileRetained(state, message)) continue;
    const { references: _references, ...fields } = message;
    records.push({ kind: 'message-stored', message: fields });
  }
  for (const [topic, messageId] of state.retained) {
    if (!isVolatileRetained(state, state.messages.get(messageId)!)) records.push({ kind: 'retained-set', topic, messageId });
  }
  for (const [clientId, will] of state.wills) records.push(withUsername({ kind: 'will-set', clientId, will }, state.willUsernames?.get(clientId)));
  snapshotCluster(state, records);
  for (const session of state.sessions.values()) {
    if (session.expiryIntervalSeconds === 0) continue;
    snapshotSession(session, records);
  }
  return records;
}

/** A cluster node's hand-off position and outbox; nothing for a single broker. */
function snapshotCluster(state: DurableState, records: StateRecord[]): void {
  const cluster = state.cluster;
  if (cluster === undefined) return;
  if (cluster.appliedStream !== undefined) records.push({ kind: 'cluster-applied', sequence: cluster.appliedSequence, stream: cluster.appliedStream });
  else if (cluster.appliedSequence > 0) records.push({ kind: 'cluster-applied', sequence: cluster.appliedSequence });
  // The id counter survives even when the outbox is empty: ids are the stream's dedupe keys.
  if (cluster.nextOutboxId > 1) records.push({ kind: 'cluster-outbox-done', id: cluster.nextOutboxId - 1 });
  for (const entry of cluster.outbox.values()) records.push({ kind: 'cluster-outbox-added', entry });
}

/**
 * The broker's own $SYS values (broker/sys-topics.ts): retained without ever being written, so
 * left out of snapshots too, which would otherwise bring stale figures back after a restart.
 * Only a message nothing but its retained slot refers to: anything else must replay.
 */
function isVolatileRetained(state: DurableState, message: StoredMessage): boolean {
  return isBrokerTopic(message.topic) && message.references === 1 && state.retained.get(message.topic) === message.messageId;
}

/** The record that makes `session` again: its protocol, expiry, owner and the claim it was made or adopted under (a snapshot's, or a hand-over state's). */
export function sessionCreatedRecord(session: SessionState): Extract<StateRecord, { kind: 'session-created' }> {
  const created: Extract<StateRecord, { kind: 'session-created' }> = {
    kind: 'session-created',
    clientId: session.clientId,
    protocolVersion: session.protocolVersion,
    expiryIntervalSeconds: session.expiryIntervalSeconds,
  };
  if (session.claimRevision !== undefined) created.claimRevision = session.claimRevision;
  if (session.username !== undefined) created.username = session.username;
  return created;
}

function snapshotSession(session: SessionState, records: StateRecord[]): void {
  const clientId = session.clientId;
  records.push(sessionCreatedRecord(session));
  if (session.offlineSinceMs !== null) {
    records.push({ kind: 'session-disconnected', clientId, atMs: session.offlineSinceMs, expiryIntervalSeconds: session.expiryIntervalSeconds });
  }
  for (const subscription of session.subscriptions.values()) records.push({ kind: 'subscription-added', clientId, subscription });
  for (const [filter, position] of session.streamPositions) records.push(streamPositionRecord(clientId, filter, position));
  // Inflight and queued deliveries interleave by sequence; replay requires increasing sequences.
  const deliveries = [...session.inflight.values(), ...DeliveryQueue.items(session.queue)].sort((a, b) => a.sequence - b.sequence);
  for (const delivery of deliveries) {
    const { sequence, messageId, qos, retain, subscriptionIds, packetId, phase } = delivery;
    records.push({ kind: 'delivery-queued', clientId, sequence, messageId, qos, retain, subscriptionIds, packetId, phase });
  }
  for (const packetId of session.incomingQos2) records.push({ kind: 'incoming-qos2-recorded', clientId, packetId });
  records.push({ kind: 'session-counters', clientId, nextPacketId: session.nextPacketId, nextDeliverySequence: session.nextDeliverySequence });
}

function snapshotStream(stream: StreamState, records: StateRecord[], source: StreamSnapshotSource | undefined): void {
  const { name, filter, retentionMs, retentionBytes, lastValue, firstOffset, lastTimeMs } = stream;
  const definition = { name, filter, retentionMs, retentionBytes, lastValue };
  const unsynced = source?.unsynced(stream) ?? { persistedOffset: stream.nextOffset, records: [] };
  assert(unsynced.persistedOffset <= stream.nextOffset, 'a stream persists no more than it holds');
  assert(unsynced.records.length === stream.nextOffset - unsynced.persistedOffset, 'a snapshot carries every unsynced entry');
  // A trim may have passed entries not yet synced: the stream then restarts at its first offset.
  const nextOffset = Math.max(unsynced.persistedOffset, Math.min(firstOffset, stream.nextOffset));
  records.push({ kind: 'stream-created', stream: definition, nextOffset, firstOffset, lastTimeMs });
  for (const record of unsynced.records) {
    assert(record.kind === 'stream-appended' && record.entries.length === 1 && record.entries[0]!.stream === name, 'unsynced entries name their stream alone');
    if (record.entries[0]!.offset >= nextOffset) records.push(record);
  }
  for (const [group, offset] of stream.groups) {
    const skipped = stream.groupsSkipped.get(group) ?? 0;
    records.push(skipped === 0 ? { kind: 'stream-group-position', stream: name, group, offset } : { kind: 'stream-group-position', stream: name, group, offset, skipped });
  }
}

export function streamPositionRecord(clientId: string, filter: string, position: StreamPosition): StateRecord {
  const record: StateRecord = { kind: 'stream-position', clientId, filter, offset: position.offset };
  if (position.notBeforeMs !== null) record.notBeforeMs = position.notBeforeMs;
  if ((position.skipped ?? 0) > 0) record.skipped = position.skipped!;
  return record;
}

/** The record with its owner's user name, or without the field when the owner is unknown. */
function withUsername(record: Extract<StateRecord, { kind: 'session-created' | 'will-set' }>, username: StoredUsername): StateRecord {
  if (username !== undefined) record.username = username;
  return record;
}
