/**
 * Durable streams in the broker core: the one object the rest of the broker calls for them.
 *
 * Theory of operation. A stream is a named log of every message published to a topic its filter
 * matches. Appending is part of routing (routing.ts calls `append`): the stream filters sit in a
 * trie of their own, and a message they match becomes one `stream-appended` record naming each
 * stream with the offset it gets there, committed in the same group as the input's other records
 * (so a publish's acknowledgement waits for its stream entries to be durable, and a crash keeps
 * all of an input or none of it). The store keeps the entries (store/streams/) and releases them
 * to readers only once the record is durable.
 *
 * Reading is subscribing. A `$stream` subscription is a session subscription like any other
 * (durable, replaced by a re-subscribe, removed by UNSUBSCRIBE, ended with the session), but it is
 * never in the subscription trie: it reads the stream through a cursor (stream-reader.ts), or,
 * shared, through its consumer group's (stream-groups.ts). Readers send into the session's window
 * and packet identifier space (stream-delivery.ts) and move on as their client acknowledges; each
 * input commits, once, the positions that moved (`stream-position`, `stream-group-position`).
 *
 * Every change is an input: SUBSCRIBE, PUBACK, a connection's end, `storageCompleted` (a read's
 * result, durability advancing), `tick` (a reader's next step, retention), an admin command.
 * Every outcome is observable: the deliveries themselves (with their offsets), the records, the
 * counters in `stats.streams`, the log lines, and `view.streams()`.
 *
 * Work per input is bounded: a reader or group looks at `entriesPerStepMax` entries per step and
 * goes on a millisecond later (`stream-pump` deadline) when it had to stop for that reason alone.
 */
import { assert } from '../../assert.js';
import { ownCopy } from '../../codec/own-copy.js';
import type { Properties, Qos, Subscription } from '../../codec/packets.js';
import { ReasonCode } from '../../codec/reason-codes.js';
import type { SessionState, StateRecord, StoredMessage, StreamEntryRef, StreamPosition, StreamState, SubscriptionState } from '../../store/state-store.js';
import type { StreamStore } from '../../store/streams/stream-store.js';
import { type MatchSink, SubscriptionTrie, type TrieEntry } from '../../topics/trie.js';
import type { Broker } from '../broker.js';
import type { Connection } from '../connection.js';
import { isOutputFull, outputBytes, windowSize } from '../outbound-queue.js';
import type { StreamCursor } from './stream-cursor.js';
import { createSessionDeliveries, PublishRun, resendInflight, type SessionDeliveries } from './stream-delivery.js';
import { parseStreamFilter, type StreamStart, type StreamSubscriptionSpec, streamOffsetOf, streamPrefix } from './stream-filter.js';
import { GroupReader } from './stream-groups.js';
import { type PumpEnd, StreamReader } from './stream-reader.js';

/** Entries one reader or group looks at per step: bounds the time one input takes. */
export const entriesPerStepMax = 4096;

/** One session's stream state: its inflight stream deliveries and its `$stream` readers by filter. */
interface SessionStreams {
  readonly deliveries: SessionDeliveries;
  readonly readers: Map<string, StreamReader>;
}

/** Why a `$stream` filter was refused: the SUBACK code and, for MQTT 5.0, its reason string. */
export interface StreamRefusal {
  readonly code: number;
  readonly reason: string;
}

export class Streams implements MatchSink<string> {
  /** Stream filters, keyed by stream name: which streams a topic belongs to. */
  readonly trie = new SubscriptionTrie<string>();
  private readonly sessions = new Map<string, SessionStreams>();
  private readonly readersByStream = new Map<string, Set<StreamReader>>();
  /** Consumer groups by stream, then by key; and the groups each client is a member of. */
  private readonly groups = new Map<string, Map<string, GroupReader>>();
  private readonly memberships = new Map<string, Set<GroupReader>>();
  private readonly readOwners = new Map<number, StreamReader | GroupReader>();
  private nextToken = 1;
  private readonly movedReaders = new Set<StreamReader>();
  private readonly movedGroups = new Set<GroupReader>();
  /** Readers and groups that stopped at their step budget: they go on at the next `stream-pump`. */
  private readonly unfinished = new Set<StreamReader | GroupReader>();
  /** Stream names a topic matched, filled by the trie match (`subscriber`). */
  private matched: string[] = [];
  /** Whether a `stream-maintenance` deadline is pending (there is one only while some stream needs it). */
  private maintenanceScheduled = false;
  /** The buffer a reader's pump writes its PUBLISHes into (one pump at a time: the core is not re-entrant). */
  readonly publishRun = new PublishRun();

  constructor(
    readonly broker: Broker,
    /** Added to core time to get Unix time (BrokerOptions.wallClockOffsetMs). */
    readonly wallClockOffsetMs: number,
  ) {}

  /** The store's stream side; streams exist only over a store that keeps them. */
  get store(): StreamStore {
    const store = this.broker.store.streams;
    assert(store !== undefined, 'streams need a store that keeps them');
    return store;
  }

  get available(): boolean {
    return this.broker.store.streams !== undefined;
  }

  get readAheadBytes(): number {
    return this.broker.config.streamReadAheadBytesMax;
  }

  /** Unix time now, as entries are stamped with it. */
  wallClockMs(nowMs: number): number {
    return nowMs + this.wallClockOffsetMs;
  }

  tokenFor(owner: StreamReader | GroupReader): number {
    const token = this.nextToken++;
    this.readOwners.set(token, owner);
    return token;
  }

  // ---- appending ------------------------------------------------------------------------------

  subscriber(entry: TrieEntry<string>): void {
    this.matched.push(entry.key);
  }

  sharedGroup(): void {
    assert(false, 'stream filters are never shared');
  }

  /** Appends a routed message to every stream whose filter matches its topic; returns how many. */
  append(message: StoredMessage, nowMs: number): number {
    if (this.trie.size === 0) return 0;
    this.matched.length = 0;
    this.trie.match(message.topic, this);
    const count = this.matched.length;
    if (count === 0) return 0;
    assert(count <= this.broker.state.streams.size, 'a topic matches each stream once');
    if (this.broker.throttle.refusesStreamAppend(message.qos)) {
      this.broker.stats.streams.backlogDroppedEntries += count;
      return 0;
    }
    const state = this.broker.state;
    // Entry times never decrease in a stream (seeks by time are binary searches), whatever the clock did.
    let timeMs = this.wallClockMs(nowMs);
    const entries: StreamEntryRef[] = [];
    for (const name of this.matched) {
      const stream = state.streams.get(name)!;
      if (stream.lastTimeMs > timeMs) timeMs = stream.lastTimeMs;
      entries.push({ stream: name, offset: stream.nextOffset });
    }
    const payload = ownCopy(message.payload);
    const record: StateRecord = { kind: 'stream-appended', timeMs, topic: message.topic, qos: message.qos, payload, entries };
    if (message.properties !== undefined) record.properties = message.properties;
    this.broker.commit(record);
    // Its publisher is paused if the streams' backlog is at its bound; a will or a cluster arrival is admitted and counted (throttle.ts).
    this.broker.throttle.appendedToStream(count);
    const stats = this.broker.stats.streams;
    stats.entriesAppended += count;
    stats.bytesAppended += payload.length * count;
    return count;
  }

  // ---- subscribing ----------------------------------------------------------------------------

  /** Why a `$stream` filter cannot be granted (unknown stream, malformed stream-offset, ACL), or null. */
  refusal(session: SessionState, request: Subscription, properties: Properties | undefined): StreamRefusal | null {
    const spec = parseStreamFilter(request.topicFilter, this.broker.config);
    if (typeof spec === 'string') return { code: ReasonCode.TopicFilterInvalid, reason: `${request.topicFilter}: ${spec}` };
    const stream = this.available ? this.broker.state.streams.get(spec.stream) : undefined;
    if (stream === undefined) return { code: ReasonCode.TopicFilterInvalid, reason: `${request.topicFilter}: no stream named "${spec.stream}"` };
    const start = streamOffsetOf(properties);
    if (start !== null && 'problem' in start) return { code: ReasonCode.ImplementationSpecificError, reason: `${request.topicFilter}: ${start.problem}` };
    // Reading a stream needs read permission on what it reads: its filter, or the narrower one asked for.
    if (this.broker.access !== null && !this.broker.access.maySubscribe(session, spec.narrow ?? stream.filter)) {
      return { code: ReasonCode.NotAuthorized, reason: `${request.topicFilter}: not authorized to read ${spec.narrow ?? stream.filter}` };
    }
    // Every group has a durable position from its first member on; those with members now are in memory too.
    const groups = this.groups.get(stream.name);
    const groupCount = Math.max(stream.groups.size, groups?.size ?? 0);
    if (spec.group !== null && !stream.groups.has(spec.group) && !(groups?.has(spec.group) ?? false) && groupCount >= this.broker.config.streamGroupsMax) {
      return { code: ReasonCode.QuotaExceeded, reason: `${request.topicFilter}: stream ${stream.name} has streamGroupsMax consumer groups` };
    }
    return null;
  }

  /**
   * A `$stream` subscription was committed (granted QoS at most 1). Its reader starts from the
   * `stream-offset` asked for; else a re-subscribe keeps its place, and a new one starts where its
   * filter says, or at `latest`. A group starts where its first member says, then keeps its place.
   */
  subscribed(session: SessionState, subscription: SubscriptionState, properties: Properties | undefined): void {
    assert(subscription.qos <= 1, 'a stream subscription is granted QoS 1 at most');
    const spec = parseStreamFilter(subscription.filter, this.broker.config);
    assert(typeof spec !== 'string', 'a granted stream filter parses');
    const requested = streamOffsetOf(properties);
    assert(requested === null || !('problem' in requested), 'a granted stream-offset parses');
    const start = requested ?? spec.start;
    if (spec.group !== null) return this.joinGroup(session, subscription, spec, start ?? latest);
    const streams = this.sessionStreams(session);
    const existing = streams.readers.get(subscription.filter);
    if (existing !== undefined && requested === null) {
      existing.subscription = subscription;
      return;
    }
    if (existing !== undefined) this.removeReader(streams, existing);
    const position = this.resolve(this.broker.state.streams.get(spec.stream)!, start ?? latest);
    this.broker.commit(streamPositionRecord(session.clientId, subscription.filter, position));
    this.addReader(streams, subscription, spec, position);
  }

  private joinGroup(session: SessionState, subscription: SubscriptionState, spec: StreamSubscriptionSpec, start: StreamStart): void {
    assert(spec.group !== null, 'a group subscription names its group');
    const stream = this.broker.state.streams.get(spec.stream)!;
    let group = this.groups.get(stream.name)?.get(spec.group!);
    if (group === undefined) {
      const committed = stream.groups.get(spec.group!);
      const offset = committed ?? this.resolve(stream, start).offset;
      group = this.addGroup(stream.name, spec.group!, spec.narrow, offset, stream.groupsSkipped.get(spec.group!) ?? 0);
      // A new group's start is durable with the SUBACK, so that it means the same after a restart.
      if (committed === undefined) this.broker.commit({ kind: 'stream-group-position', stream: stream.name, group: group.key, offset });
    }
    group.join(session.clientId, subscription);
    let groups = this.memberships.get(session.clientId);
    if (groups === undefined) {
      groups = new Set();
      this.memberships.set(session.clientId, groups);
    }
    groups.add(group);
  }

  /** Where a start points in `stream` now. Out of range offsets are clamped: below the oldest kept, beyond the end. */
  resolve(stream: StreamState, start: StreamStart): StreamPosition {
    switch (start.kind) {
      case 'earliest':
        return { offset: stream.firstOffset, notBeforeMs: null };
      case 'latest':
        return { offset: stream.nextOffset, notBeforeMs: null };
      case 'offset':
        return { offset: Math.min(Math.max(start.offset, stream.firstOffset), stream.nextOffset), notBeforeMs: null };
      case 'time': {
        const offset = Math.min(Math.max(this.store.locateTime(stream.name, start.timeMs), stream.firstOffset), stream.nextOffset);
        return { offset, notBeforeMs: start.timeMs };
      }
    }
  }

  /** A `$stream` filter left its session (UNSUBSCRIBE, or the stream was deleted). */
  unsubscribed(session: SessionState, filter: string): void {
    const streams = this.existingSessionStreams(session);
    const reader = streams?.readers.get(filter);
    if (streams !== undefined && reader !== undefined) this.removeReader(streams, reader);
    for (const group of this.memberships.get(session.clientId) ?? []) {
      if (group.members.get(session.clientId)?.subscription.filter !== filter) continue;
      this.leaveGroup(session, group);
    }
  }

  private leaveGroup(session: SessionState, group: GroupReader): void {
    const streams = this.existingSessionStreams(session);
    if (streams !== undefined) group.memberGone(streams.deliveries);
    group.leave(session.clientId);
    this.memberships.get(session.clientId)?.delete(group);
    this.pumpOwner(group);
  }

  // ---- sessions and connections ---------------------------------------------------------------

  private sessionStreams(session: SessionState): SessionStreams {
    let streams = this.existingSessionStreams(session);
    if (streams === undefined) {
      streams = { deliveries: createSessionDeliveries(session), readers: new Map() };
      this.sessions.set(session.clientId, streams);
    }
    return streams;
  }

  /** The session's stream state, if it has any (one of a session that has since ended is dropped). */
  private existingSessionStreams(session: SessionState): SessionStreams | undefined {
    const streams = this.sessions.get(session.clientId);
    if (streams === undefined || streams.deliveries.session === session) return streams;
    this.dropSession(streams);
    return undefined;
  }

  deliveriesOf(session: SessionState): SessionDeliveries {
    return this.sessionStreams(session).deliveries;
  }

  private addReader(streams: SessionStreams, subscription: SubscriptionState, spec: StreamSubscriptionSpec, position: StreamPosition): StreamReader {
    const reader = new StreamReader(this, streams.deliveries, subscription, spec, position);
    streams.readers.set(subscription.filter, reader);
    let readers = this.readersByStream.get(spec.stream);
    if (readers === undefined) {
      readers = new Set();
      this.readersByStream.set(spec.stream, readers);
    }
    readers.add(reader);
    return reader;
  }

  private removeReader(streams: SessionStreams, reader: StreamReader): void {
    reader.retire();
    streams.readers.delete(reader.subscription.filter);
    this.readersByStream.get(reader.spec.stream)?.delete(reader);
    this.movedReaders.delete(reader);
    this.unfinished.delete(reader);
  }

  private addGroup(stream: string, key: string, narrow: string | null, offset: number, skipped: number): GroupReader {
    const group = new GroupReader(this, stream, key, narrow, offset, skipped);
    let groups = this.groups.get(stream);
    if (groups === undefined) {
      groups = new Map();
      this.groups.set(stream, groups);
    }
    groups.set(key, group);
    return group;
  }

  /**
   * A connection bound to `session`: on a resumed session its unacknowledged stream deliveries go
   * out again first, then every `$stream` subscription has a reader (made from its committed
   * position after a restart).
   */
  sessionBound(session: SessionState, connection: Connection): void {
    if (!this.available) return;
    const streams = this.existingSessionStreams(session);
    if (streams !== undefined && streams.deliveries.inflight.size > 0) {
      for (const packetId of resendInflight(this.broker, connection, streams.deliveries)) this.acknowledge(session, packetId);
    }
    for (const subscription of session.subscriptions.values()) {
      // Shared ones are groups' (restored at start-up, `restoreMemberships`).
      if (!subscription.filter.startsWith(streamPrefix) || streams?.readers.has(subscription.filter)) continue;
      const spec = parseStreamFilter(subscription.filter, protocolLimits);
      if (typeof spec === 'string' || !this.broker.state.streams.has(spec.stream)) continue;
      const position = session.streamPositions.get(subscription.filter) ?? this.resolve(this.broker.state.streams.get(spec.stream)!, latest);
      this.addReader(this.sessionStreams(session), subscription, spec, position);
    }
  }

  /** The session's connection ended: its groups give back what it had not acknowledged. */
  connectionLost(session: SessionState): void {
    const streams = this.existingSessionStreams(session);
    if (streams === undefined) return;
    for (const group of this.memberships.get(session.clientId) ?? []) {
      group.memberGone(streams.deliveries);
      // What it gave back goes to the members still connected, now.
      this.pumpOwner(group);
    }
    for (const reader of streams.readers.values()) reader.dropReadAhead();
  }

  /** The session ended for good. */
  sessionEnded(clientId: string): void {
    const streams = this.sessions.get(clientId);
    const groups = [...(this.memberships.get(clientId) ?? [])];
    this.memberships.delete(clientId);
    for (const group of groups) {
      if (streams !== undefined) group.memberGone(streams.deliveries);
      group.leave(clientId);
      this.pumpOwner(group);
    }
    if (streams !== undefined) this.dropSession(streams);
  }

  private dropSession(streams: SessionStreams): void {
    for (const reader of [...streams.readers.values()]) this.removeReader(streams, reader);
    if (this.sessions.get(streams.deliveries.session.clientId) === streams) this.sessions.delete(streams.deliveries.session.clientId);
  }

  // ---- the window, acknowledgements, pumping --------------------------------------------------

  /** Stream deliveries of the session waiting for PUBACK (they share the inflight window). */
  inflightCount(session: SessionState): number {
    // On the publish path for every QoS 1/2 receiver: one size test when nobody reads a stream.
    if (this.sessions.size === 0) return 0;
    const streams = this.sessions.get(session.clientId);
    return streams === undefined || streams.deliveries.session !== session ? 0 : streams.deliveries.inflight.size;
  }

  packetIdInUse(session: SessionState, packetId: number): boolean {
    if (this.sessions.size === 0) return false;
    const streams = this.sessions.get(session.clientId);
    return streams !== undefined && streams.deliveries.session === session && streams.deliveries.inflight.has(packetId);
  }

  /** Whether a delivery of `qos` may go to `connection` now: output under its cap, and window room for QoS 1. */
  /** `pendingBytes`: written for the connection in this pump and not yet sent (PublishRun), counted as sent. */
  canSend(deliveries: SessionDeliveries, connection: Connection, qos: Qos, pendingBytes = 0): boolean {
    if (pendingBytes === 0 ? isOutputFull(this.broker, connection) : outputBytes(this.broker, connection) + pendingBytes >= this.broker.config.connectionOutputBytesMax) return false;
    if (qos === 0) return true;
    return deliveries.session.inflight.size + deliveries.inflight.size < windowSize(this.broker, connection);
  }

  /** A PUBACK: true when it acknowledged a stream delivery. */
  acknowledge(session: SessionState, packetId: number): boolean {
    const streams = this.existingSessionStreams(session);
    const table = streams?.deliveries.inflight;
    if (table === undefined || !table.has(packetId)) return false;
    assert(!session.inflight.has(packetId), 'a packet identifier is not in use twice');
    const owner = table.ownerOf(packetId);
    const offset = table.offsetOf(packetId);
    const skipped = table.skippedOf(packetId);
    table.remove(packetId);
    owner?.acknowledged(packetId, offset, skipped);
    return true;
  }

  /** Whether the session has anything stream-related that output room could move. */
  wantsOutput(session: SessionState): boolean {
    const streams = this.sessions.get(session.clientId);
    return (streams !== undefined && streams.readers.size > 0) || (this.memberships.get(session.clientId)?.size ?? 0) > 0;
  }

  /** Lets the session's readers and groups send what its connection can take. */
  pumpSession(session: SessionState, connection: Connection): void {
    const streams = this.existingSessionStreams(session);
    if (streams !== undefined) for (const reader of streams.readers.values()) this.finish(reader, reader.pump(connection, entriesPerStepMax));
    for (const group of this.memberships.get(session.clientId) ?? []) this.finish(group, group.dispatch(entriesPerStepMax));
  }

  private pumpOwner(owner: StreamReader | GroupReader): void {
    if (owner instanceof GroupReader) return this.finish(owner, owner.dispatch(entriesPerStepMax));
    const connection = this.broker.online.get(owner.clientId);
    if (connection === undefined || connection.session !== owner.deliveries.session || connection.phase !== 'connected') return;
    this.finish(owner, owner.pump(connection, entriesPerStepMax));
  }

  private finish(owner: StreamReader | GroupReader, end: PumpEnd): void {
    if (end === 'idle') return;
    if (this.unfinished.size === 0) this.broker.deadlines.push(this.broker.lastInputMs + 1, 'stream-pump', 0, '');
    this.unfinished.add(owner);
  }

  /**
   * Makes sure the maintenance deadline (retention, last-value compaction: stream-retention.ts)
   * is pending when some stream has retention or is a last-value stream; a broker without such
   * streams has no periodic wakeup for them.
   */
  scheduleMaintenance(nowMs: number): void {
    if (this.maintenanceScheduled || !this.available) return;
    let needed = false;
    for (const stream of this.broker.state.streams.values()) needed ||= stream.lastValue || stream.retentionMs > 0 || stream.retentionBytes > 0;
    if (!needed) return;
    this.maintenanceScheduled = true;
    this.broker.deadlines.push(nowMs + this.broker.config.streamMaintenanceIntervalMs, 'stream-maintenance', 0, '');
  }

  /** The maintenance deadline fired. */
  maintenanceDue(): void {
    this.maintenanceScheduled = false;
  }

  /** `stream-pump` deadline: readers and groups that stopped at their budget go on. */
  onPumpDeadline(): void {
    const owners = [...this.unfinished];
    this.unfinished.clear();
    for (const owner of owners) this.pumpOwner(owner);
  }

  positionMoved(reader: StreamReader): void {
    this.movedReaders.add(reader);
  }

  groupMoved(group: GroupReader): void {
    this.movedGroups.add(group);
  }

  /**
   * The offsets a cursor lost since its owner last said so (retention, damage): logged and
   * counted here, and returned for the next delivery to announce (`stream-skipped`).
   */
  announceSkipped(clientId: string, stream: string, cursor: StreamCursor): number {
    const skipped = cursor.skipped;
    if (skipped === 0) return 0;
    cursor.skipped = 0;
    this.broker.stats.streams.entriesSkipped += skipped;
    this.broker.log('warn', 'stream-entries-skipped', { clientId, stream, skipped, why: 'no longer stored when the reader reached them' });
    return skipped;
  }

  // ---- the end of every input -----------------------------------------------------------------

  /**
   * After every input, before the log is flushed: what became durable is released to readers,
   * read results reach their cursors, readers at the tail get what was released, and the
   * positions that moved are committed (in this input's group).
   */
  afterInput(): void {
    const store = this.broker.store.streams;
    if (store === undefined) return;
    store.release(this.broker.store.durableLsn);
    // This runs after every input and usually finds every list empty: indexed loops, so that no
    // iterator is made for nothing.
    const results = store.takeReadResults();
    for (let index = 0; index < results.length; index++) {
      const result = results[index]!;
      const owner = this.readOwners.get(result.token);
      this.readOwners.delete(result.token);
      if (owner === undefined) continue;
      if (owner.cursor.readCompleted(result.token, result.entries, result.nextOffset, result.stale, result.damaged)) this.pumpOwner(owner);
    }
    const released = store.takeReleased();
    for (let index = 0; index < released.length; index++) {
      const name = released[index]!;
      for (const reader of this.readersByStream.get(name) ?? []) this.pumpOwner(reader);
      for (const group of this.groups.get(name)?.values() ?? []) this.pumpOwner(group);
    }
    const notes = store.takeNotes();
    for (let index = 0; index < notes.length; index++) this.broker.log(notes[index]!.level, notes[index]!.event, notes[index]!.fields);
    this.commitPositions();
    this.copyStoreStats(store);
  }

  private commitPositions(): void {
    // Called after every input: iterate (and allocate an iterator) only when something moved.
    if (this.movedReaders.size > 0) this.commitReaderPositions();
    if (this.movedGroups.size > 0) this.commitGroupPositions();
  }

  private commitReaderPositions(): void {
    const state = this.broker.state;
    for (const reader of this.movedReaders) {
      const session = reader.deliveries.session;
      if (state.sessions.get(session.clientId) !== session || session.expiryIntervalSeconds === 0) continue;
      if (session.subscriptions.get(reader.subscription.filter) !== reader.subscription) continue;
      const position = reader.position();
      const same = position.offset === reader.committed.offset && position.notBeforeMs === reader.committed.notBeforeMs;
      if (same && (position.skipped ?? 0) === (reader.committed.skipped ?? 0)) continue;
      this.broker.commit(streamPositionRecord(session.clientId, reader.subscription.filter, position));
      reader.committed = position;
    }
    this.movedReaders.clear();
  }

  private commitGroupPositions(): void {
    const state = this.broker.state;
    for (const group of this.movedGroups) {
      if (!state.streams.has(group.stream) || this.groups.get(group.stream)?.get(group.key) !== group) continue;
      const offset = group.position();
      const skipped = group.pendingSkipped();
      if (offset === group.committed && skipped === group.committedSkipped) continue;
      this.broker.commit(groupPositionRecord(group.stream, group.key, offset, skipped));
      group.committed = offset;
      group.committedSkipped = skipped;
    }
    this.movedGroups.clear();
  }

  private copyStoreStats(store: StreamStore): void {
    const stats = this.broker.stats.streams;
    stats.replayReads = store.stats.reads;
    stats.replayReadBytes = store.stats.readBytes;
    stats.entriesWritten = store.stats.entriesWritten;
    stats.segmentSyncs = store.stats.segmentSyncs;
    stats.segmentsDeleted = store.stats.segmentsDeleted;
    stats.damagedFrames = store.stats.damagedFrames;
    stats.compactionSteps = store.stats.compactionSteps;
    stats.compactions = store.stats.compactions;
    stats.entriesCompacted = store.stats.entriesCompacted;
    stats.memoryBytes = store.stats.memoryBytes;
    stats.recoveryHeldBytesPeak = store.stats.recoveryHeldBytesPeak;
  }

  // ---- what others look up --------------------------------------------------------------------

  /** Consumer groups of a stream, by key. */
  groupsOf(stream: string): ReadonlyMap<string, GroupReader> {
    return this.groups.get(stream) ?? noGroups;
  }

  readersOf(stream: string): ReadonlySet<StreamReader> {
    return this.readersByStream.get(stream) ?? noReaders;
  }

  /** Registers every group a recovered session is a member of (at start-up). */
  restoreMemberships(): void {
    for (const session of this.broker.state.sessions.values()) {
      for (const subscription of session.subscriptions.values()) {
        const spec = parseStreamFilter(subscription.filter, protocolLimits);
        if (typeof spec === 'string' || spec.group === null || !this.broker.state.streams.has(spec.stream)) continue;
        this.joinGroup(session, subscription, spec, latest);
      }
    }
  }

  /** Forgets a deleted stream's readers and groups (their subscriptions were removed first). */
  streamDeleted(name: string): void {
    for (const reader of [...(this.readersByStream.get(name) ?? [])]) {
      const streams = this.sessions.get(reader.clientId);
      if (streams !== undefined) this.removeReader(streams, reader);
    }
    this.readersByStream.delete(name);
    for (const group of this.groups.get(name)?.values() ?? []) {
      for (const clientId of [...group.members.keys()]) this.memberships.get(clientId)?.delete(group);
      this.unfinished.delete(group);
      this.movedGroups.delete(group);
    }
    this.groups.delete(name);
  }
}

const latest: StreamStart = Object.freeze({ kind: 'latest' });
const noGroups: ReadonlyMap<string, GroupReader> = new Map();
const noReaders: ReadonlySet<StreamReader> = new Set();
/** Stored filters were checked against the limits in force when they were made. */
const protocolLimits = { topicBytesMax: 65_535, topicLevelsMax: 65_535 };

/** A group's position, with the offsets it lost that no member is known to have been told of (when there are some). */
function groupPositionRecord(stream: string, group: string, offset: number, skipped: number) {
  return skipped === 0 ? { kind: 'stream-group-position' as const, stream, group, offset } : { kind: 'stream-group-position' as const, stream, group, offset, skipped };
}

function streamPositionRecord(clientId: string, filter: string, position: StreamPosition): StateRecord {
  const record: StateRecord = { kind: 'stream-position', clientId, filter, offset: position.offset };
  if (position.notBeforeMs !== null) record.notBeforeMs = position.notBeforeMs;
  // Offsets it lost and was not known to be told of: its first delivery after a restart tells it.
  if ((position.skipped ?? 0) > 0) record.skipped = position.skipped!;
  return record;
}
