/**
 * Retained messages cluster-wide through the `keel-retained` bucket (retained-entries.ts): which
 * write of a topic's retained value wins, also across a cut from NATS and a crash.
 *
 * A node applies a retained PUBLISH to its own table at once and puts it into the bucket; the
 * publisher's PUBACK / PUBREC waits for the put. Every node watches the bucket and applies its
 * changes in revision order (per topic, a revision at or below the last applied one is ignored),
 * its own included, so all nodes end on the bucket's value. The bucket's order is the order of a
 * topic's retained messages, and the rule is about what may land in it, and when:
 *
 * 1. Every put is a compare-and-set at a base revision: the revision of the key as the node knew
 *    it when the message arrived (from its watch, or the landing of its own last put of the key
 *    if the watch has not shown that yet), 0 when it knew none. The base is kept when the put goes
 *    again after a link loss, and after a crash (the outbox entry of a logged put holds it). So a
 *    put lands only if nothing reached the key since its message arrived.
 * 2. `wrong-revision`: something reached the key since. The node waits until its watch shows the
 *    key past the base (the watch is its read), then:
 *    a. the key holds this very put (a value names its node and a put id): an earlier attempt went
 *       in and its answer was lost; the put is done.
 *    b. someone is still to be answered for it: a publisher whose connection here waits for its
 *       acknowledgement, or it is logged (QoS 2 and wills: their acknowledgement can only come from
 *       this node, their session or will lives here). It goes again at the revision now known: its
 *       publisher has not been answered, so coming after what got there first is a valid order,
 *       and it must, since what got there may have been acknowledged before this message was sent
 *       (this node was behind, or cut off).
 *    c. nobody here waits for it (its publisher left before the answer): it is dropped. What got
 *       there may be the very same publication, resent through another node and acknowledged
 *       there, and newer ones after it; landing now would bring an acknowledged value back over a
 *       newer one. Its publisher resends it wherever it reconnects, as a new put (QoS 1).
 * 3. An outbox entry stays until the record saying its put is done is durable, and the
 *    acknowledgement of a logged put waits for that record: after a crash, an outbox entry is a
 *    put nobody was answered for, which rule 2b may then land.
 * 4. Puts of one topic go one at a time, in arrival order; a newer message for a topic whose put
 *    is not out yet replaces it (both publishers wait for the newer). A put that follows one that
 *    landed on its own base takes the revision that one landed at as its base. The put keeps the
 *    messages it stands for (its members), and rule 2 decides on them one by one: what goes again
 *    is the newest member someone here still waits for, not the newest member. The newest may
 *    come from a publisher that left, resent it through another node and was answered there, and
 *    sent a newer one since, which the newest member would then replace (seed 7401535: two
 *    publishers' messages merged while the node was cut off; one publisher left and went on
 *    through the other node; the other publisher's wait landed the leaver's older message over
 *    its newer one). Members nobody can wait for (QoS 0, not logged) are not kept behind a newer
 *    one, and members whose publishers left are pruned once a put holds many (membersPruneAt).
 *
 * What a client sees: an acknowledged retained message is in the bucket until a later write
 * replaces it; a retained message sent after another was acknowledged replaces it. Not covered:
 * a publisher that left a node without the node noticing (a half-open connection), resent through
 * another node and was answered there, while this node's put of it met a conflict; this node then
 * still thinks someone waits and may land it again (rule 2b) over a newer message. Nor a NATS
 * that lost its store: the bucket's revisions start again below what the nodes knew, so the
 * changes it replays are taken for old ones, and a put that met a conflict waits for its watch to
 * pass a revision the new bucket has not reached (the link does not say which revision it found).
 */
import { assert } from '../assert.js';
import type { Broker } from '../broker/broker.js';
import { transientMessage } from '../broker/message.js';
import { retainMessage } from '../broker/retained.js';
import type { Properties, Qos } from '../codec/packets.js';
import type { ClusterKeyChange, ClusterRequest, ClusterResult } from '../contract.js';
import type { ClusterDurableState } from '../store/state-store.js';
import { decodeRetainedValue, encodeRetainedValue, retainedBucket, retainedKey, topicOfRetainedKey } from './retained-entries.js';
import { topicToSubject } from './subjects.js';

/** Outbox entries for retained puts carry this subject prefix and the key (other entries are hand-offs). */
export const retainedOutboxPrefix = '$KEEL.retained.';
/** The outbox entry header that keeps a logged put's base revision across a crash. */
const headerBase = 'Keel-Base';

/** One message a put stands for (rule 4): its value, and who waits for it. */
interface PutMember {
  readonly value: Uint8Array | null;
  readonly putId: string | null;
  /** Its publisher's acknowledgement waits for it (QoS 1/2), or it is logged: someone may wait. */
  readonly awaitable: boolean;
  readonly tickets: readonly number[];
  readonly outboxIds: readonly number[];
}

/** A put keeps at most about this many members before those nobody waits for any more are pruned. */
const membersPruneAt = 64;

/** A retained message (or its deletion) on its way into the bucket. */
interface RetainedPut {
  readonly topic: string;
  /** The encoded value, null for a deletion: the newest member's, or the member rule 2b chose. */
  value: Uint8Array | null;
  /** `<node>|<put id>` of the value, null for a deletion: how the node knows its own value in the bucket. */
  putId: string | null;
  /** The messages it stands for, oldest first (rule 4). */
  members: PutMember[];
  /** Members past which the next merge prunes those nobody waits for. */
  pruneAt: number;
  /** The revision this put may replace (rule 1). */
  base: number;
  /** Tickets whose acknowledgements wait for this put (the publisher's PUBACK / PUBREC). */
  readonly tickets: number[];
  /** Outbox entries (QoS 2, wills) that stand for this put until the bucket holds it. */
  readonly outboxIds: number[];
  /** The request id of its latest attempt, 0 while not out. */
  requestId: number;
  /** Failed with `wrong-revision` at `base`: waits until the watch shows the key past it (rule 2). */
  conflicted: boolean;
}

/** What the watch last showed of a key, and where this node's own last put of it landed. */
interface KnownKey {
  /** The revision the watch last showed (0: none yet); changes at or below it are not applied. */
  revision: number;
  /**
   * The revision this node's last put of the key landed at, as its answer said (the watch may not
   * have shown it yet). Only a base: the table follows the watch alone, or an older change still
   * on its way would be taken for one already applied.
   */
  landed: number;
  /** The value's `<node>|<put id>`, null for a deletion or a value without one. */
  putId: string | null;
  deleted: boolean;
}

/** Tickets released once a record is durable (rule 3). */
interface PendingRelease {
  readonly lsn: number;
  readonly tickets: number[];
}

/** What the retained part needs of its node (cluster-node.ts). */
export interface RetainedHost {
  readonly nodeId: string;
  readonly connected: boolean;
  /** Claimed durably at start: put ids never repeat across restarts. */
  readonly epoch: number;
  nextRequestId(): number;
  request(request: ClusterRequest): void;
  scheduleRetry(nowMs: number): void;
  holdTicket(ticket: number): void;
  releaseTicket(ticket: number): void;
}

export class RetainedSync {
  /** Per topic, the puts not yet done, oldest first: at most one out, at most one behind it. */
  private readonly puts = new Map<string, RetainedPut[]>();
  private readonly requests = new Map<number, RetainedPut>();
  /** Per topic, the key as the watch last showed it (this process's life; a restart replays the bucket). */
  private readonly known = new Map<string, KnownKey>();
  private readonly pendingReleases: PendingRelease[] = [];
  private nextPutId = 1;
  readonly counters = { puts: 0, applied: 0, conflicts: 0, rebased: 0, alreadyIn: 0, dropped: 0 };

  constructor(
    private readonly broker: Broker,
    private readonly host: RetainedHost,
  ) {}

  private get durable(): ClusterDurableState {
    const state = this.broker.state.cluster;
    assert(state !== undefined, 'a cluster node keeps its outbox');
    return state;
  }

  /**
   * Puts a retained message (an empty payload: its deletion) into the bucket, `ticket` held until
   * it is done. `logged` puts (QoS 2, wills) go through the outbox, and recovery issues them again.
   */
  put(topic: string, qos: Qos, payload: Uint8Array, properties: Properties | undefined, expirySeconds: number | null, ticket: number, logged: boolean): void {
    assert(ticket > 0, 'a retained put has a ticket');
    assert(topicToSubject(topic) !== null, 'only a topic the cluster maps is put');
    this.host.holdTicket(ticket);
    const sequence = `${this.host.epoch}-r${this.nextPutId++}`;
    const value = payload.length === 0 ? null : encodeRetainedValue(this.host.nodeId, qos, payload, properties, expirySeconds, sequence);
    const base = this.baseOf(topic);
    const outboxIds: number[] = [];
    if (logged) {
      const id = this.durable.nextOutboxId;
      const entry = { id, subject: `${retainedOutboxPrefix}${retainedKey(topic)}`, headers: { [headerBase]: String(base) }, payload: value ?? new Uint8Array(0) };
      this.broker.commit({ kind: 'cluster-outbox-added', entry });
      outboxIds.push(id);
    }
    const putId = value === null ? null : `${this.host.nodeId}|${sequence}`;
    const member: PutMember = { value, putId, awaitable: qos > 0 || logged, tickets: [ticket], outboxIds };
    this.queue({ topic, value, putId, members: [member], pruneAt: membersPruneAt, base, tickets: [ticket], outboxIds: [...outboxIds], requestId: 0, conflicted: false });
  }

  /** A retained put found in the outbox at start: nobody was answered for it (rule 3). */
  recover(id: number, key: string, headers: Readonly<Record<string, string>>, value: Uint8Array, ticket: number): void {
    const topic = topicOfRetainedKey(key);
    if (topic === null || topicToSubject(topic) === null) return;
    this.host.holdTicket(ticket);
    // An entry written before bases were kept has none: create-only, and rule 2b decides.
    const baseText = headers[headerBase];
    const base = baseText === undefined ? 0 : Number(baseText);
    assert(Number.isSafeInteger(base) && base >= 0, 'an outbox base is a revision');
    const entry = value.length === 0 ? null : decodeRetainedValue(value);
    const putId = entry === null || entry.origin === null || entry.sequence === null ? null : `${entry.origin}|${entry.sequence}`;
    const member: PutMember = { value: value.length === 0 ? null : value, putId, awaitable: true, tickets: [ticket], outboxIds: [id] };
    this.queue({ topic, value: member.value, putId, members: [member], pruneAt: membersPruneAt, base, tickets: [ticket], outboxIds: [id], requestId: 0, conflicted: false });
  }

  /** The base of a put that arrives now (rule 1): the newest revision the node knows the key at, 0 when none. */
  private baseOf(topic: string): number {
    const known = this.known.get(topic);
    return known === undefined ? 0 : Math.max(known.revision, known.landed);
  }

  /** Rule 4: the put waits behind one that is out; one not out yet is replaced by it. */
  private queue(put: RetainedPut): void {
    const queued = this.puts.get(put.topic);
    if (queued === undefined) {
      this.puts.set(put.topic, [put]);
      return this.issue(put);
    }
    const last = queued[queued.length - 1]!;
    if (last.requestId !== 0) {
      assert(queued.length === 1, 'only the first put of a topic is out');
      queued.push(put);
      return;
    }
    // The newer message stands for both; the base is what the node knew when the newer arrived.
    last.value = put.value;
    last.putId = put.putId;
    last.base = Math.max(last.base, put.base);
    last.conflicted = false;
    last.tickets.push(...put.tickets);
    last.outboxIds.push(...put.outboxIds);
    this.addMembers(last, put.members);
    if (queued.length === 1) this.issue(last);
  }

  /**
   * Rule 4: `put` stands for `members` too, after its own. A member nobody can wait for is not
   * kept behind a newer one; past `pruneAt` members, those whose publishers no longer wait go too
   * (their tickets stay with the put until it is done), so a put holds the values of about as
   * many messages as its publishers have unacknowledged, plus one.
   */
  private addMembers(put: RetainedPut, members: readonly PutMember[]): void {
    const newest = put.members[put.members.length - 1];
    if (newest !== undefined && !newest.awaitable) put.members.pop();
    put.members.push(...members);
    if (put.members.length <= put.pruneAt) return;
    const last = put.members[put.members.length - 1]!;
    put.members = put.members.filter((member) => member === last || this.awaited(member));
    put.pruneAt = Math.max(membersPruneAt, 2 * put.members.length);
  }

  /** Someone here still waits for the member: it is logged, or its publisher's acknowledgement waits on this node. */
  private awaited(member: PutMember): boolean {
    return member.outboxIds.length > 0 || member.tickets.some((ticket) => this.broker.ticketAwaited(ticket));
  }

  private issue(put: RetainedPut): void {
    if (!this.host.connected || put.requestId !== 0 || put.conflicted) return;
    assert(this.puts.get(put.topic)?.[0] === put, 'only the first put of a topic goes out');
    const requestId = this.host.nextRequestId();
    put.requestId = requestId;
    this.requests.set(requestId, put);
    this.counters.puts += 1;
    this.host.request({ op: 'kv-set', requestId, bucket: retainedBucket, key: retainedKey(put.topic), value: put.value, expectedRevision: put.base });
  }

  /** Issues the first put of every topic that is not out (after a reconnection, on the retry deadline). */
  issueAll(): void {
    for (const queued of this.puts.values()) this.issue(queued[0]!);
  }

  /** The link dropped: whatever is out may or may not have landed; it goes again at the same base (rule 1). */
  disconnected(): void {
    for (const queued of this.puts.values()) queued[0]!.requestId = 0;
    this.requests.clear();
  }

  /** True when `result` answers a retained put (handled). */
  completed(nowMs: number, result: ClusterResult): boolean {
    const put = this.requests.get(result.requestId);
    if (put === undefined) return false;
    this.requests.delete(result.requestId);
    if (put.requestId !== result.requestId) return true;
    put.requestId = 0;
    if (result.ok) {
      this.landed(put.topic, result.sequence);
      this.done(put, result.sequence);
      return true;
    }
    if (result.code !== 'wrong-revision') {
      if (this.host.connected) this.host.scheduleRetry(nowMs);
      return true;
    }
    this.counters.conflicts += 1;
    put.conflicted = true;
    this.resolve(put);
    return true;
  }

  private landed(topic: string, revision: number): void {
    assert(revision > 0, 'a put lands at a revision');
    const known = this.known.get(topic);
    if (known === undefined) this.known.set(topic, { revision: 0, landed: revision, putId: null, deleted: false });
    else known.landed = Math.max(known.landed, revision);
  }

  /** Rule 2, once the watch shows the key past the base. */
  private resolve(put: RetainedPut): void {
    const known = this.known.get(put.topic);
    if (known === undefined || known.revision <= put.base) return;
    put.conflicted = false;
    if (put.value === null ? known.deleted : put.putId !== null && known.putId === put.putId) {
      this.counters.alreadyIn += 1;
      return this.done(put, known.revision);
    }
    // The newest member someone still waits for goes again (rule 4: not the newest member).
    let chosen: PutMember | undefined;
    for (let index = put.members.length - 1; index >= 0 && chosen === undefined; index--) {
      if (this.awaited(put.members[index]!)) chosen = put.members[index];
    }
    if (chosen !== undefined) {
      this.counters.rebased += 1;
      put.base = known.revision;
      put.value = chosen.value;
      put.putId = chosen.putId;
      return this.issue(put);
    }
    this.counters.dropped += 1;
    this.broker.log('info', 'cluster-retained-superseded', { nodeId: this.host.nodeId, topic: put.topic, base: put.base, revision: known.revision });
    this.done(put, 0);
  }

  /** The put is over: landed at `revision` (0: dropped). Its tickets go once its outbox records are durable (rule 3). */
  private done(put: RetainedPut, revision: number): void {
    const queued = this.puts.get(put.topic);
    assert(queued !== undefined && queued[0] === put, 'the put that ends is the first of its topic');
    queued.shift();
    let lsn = 0;
    for (const id of put.outboxIds) lsn = this.broker.commit({ kind: 'cluster-outbox-done', id });
    if (lsn === 0) for (const ticket of put.tickets) this.host.releaseTicket(ticket);
    else this.pendingReleases.push({ lsn, tickets: put.tickets });
    const next = queued[0];
    if (next === undefined) {
      this.puts.delete(put.topic);
      return;
    }
    // Rule 4: the next put knew the key as this one did; it now replaces this one's landing.
    if (revision > 0 && next.base === put.base) next.base = revision;
    this.issue(next);
  }

  /** End of every input: release the tickets whose outbox records became durable. */
  afterInput(): void {
    const durableLsn = this.broker.store.durableLsn;
    let released = 0;
    while (released < this.pendingReleases.length && this.pendingReleases[released]!.lsn <= durableLsn) {
      for (const ticket of this.pendingReleases[released]!.tickets) this.host.releaseTicket(ticket);
      released += 1;
    }
    if (released > 0) this.pendingReleases.splice(0, released);
  }

  /** A change of the bucket: applied to the table in revision order, and a conflicted put of the key decided. */
  keyChanged(nowMs: number, change: ClusterKeyChange): void {
    assert(change.bucket === retainedBucket, 'only keel-retained changes reach the retained part');
    const topic = topicOfRetainedKey(change.key);
    if (topic === null || topicToSubject(topic) === null) return;
    const known = this.known.get(topic);
    if (known !== undefined && change.revision <= known.revision) return;
    const entry = change.value === null ? null : decodeRetainedValue(change.value);
    const putId = entry === null || entry.origin === null || entry.sequence === null ? null : `${entry.origin}|${entry.sequence}`;
    this.known.set(topic, { revision: change.revision, landed: known?.landed ?? 0, putId, deleted: change.value === null });
    this.apply(nowMs, topic, entry);
    const first = this.puts.get(topic)?.[0];
    if (first?.conflicted) this.resolve(first);
  }

  private apply(nowMs: number, topic: string, entry: ReturnType<typeof decodeRetainedValue>): void {
    const state = this.broker.state;
    const currentId = state.retained.get(topic);
    if (entry === null || entry.payload.length === 0) {
      if (currentId !== undefined) this.broker.commit({ kind: 'retained-cleared', topic });
      return;
    }
    const current = currentId === undefined ? undefined : state.messages.get(currentId);
    if (current !== undefined && current.qos === entry.qos && sameBytes(current.payload, entry.payload)) return;
    this.counters.applied += 1;
    const properties = entry.expirySeconds === null ? entry.properties : { ...entry.properties, messageExpiryInterval: entry.expirySeconds };
    retainMessage(this.broker, transientMessage(topic, entry.payload, entry.qos, true, properties, nowMs));
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}
