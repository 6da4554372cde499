/**
 * `$share` groups across a Keel cluster: each message goes to one member of a group cluster-wide,
 * not one per node (issue 16).
 *
 * Theory of operation.
 * - Membership. A group is `(name, filter)` as MQTT names it (`$share/g/a` and `$share/g/b` are
 *   two groups). While a node has at least one member of a group (a subscription in its trie, of
 *   an online or offline session), it keeps a key `<base64url(name/filter)>.<node id>` in the
 *   `keel-shared` bucket (value: a small JSON for operators), and deletes it with its last member.
 *   Every node watches the bucket, so each knows which nodes have members of which group: its
 *   *view*, a subscription trie whose group members are node ids (its own node's entries come
 *   from its own trie at once, not through the bucket). A node is the only writer of its own
 *   keys: on every (re)connection it puts again what it holds and deletes what it does not (a key
 *   of its own the watch shows that it no longer holds, say after a crash lost a subscription
 *   that was never synced).
 * - Choice by the publisher's node. For a message published on a node (a client's, or a will),
 *   the node chooses, for each group of its view whose filter matches the topic, ONE node among
 *   those with members, round robin per group (fair per node, not per member: a node with three
 *   members gets as many messages as one with one), and writes the choices into the hand-off's
 *   `Keel-Share` header (`<encoded name/filter>=<node>,...`, headers.ts conventions; the QoS 0
 *   core NATS path carries it too). It delivers to a local member only for the groups it chose
 *   itself. There is no preference for the publisher's own node: with all publishers on one node,
 *   that would starve the members elsewhere.
 * - Delivery. A node that receives a message delivers a shared copy only for the groups whose
 *   choice names it, to one of its local members by the single-node rule (round robin, connected
 *   with room first). A group the publisher did not know of (its view lagged) gets nothing from
 *   that message. A node named for a group it has no member of any more (its last member left
 *   after the publisher looked) drops the copy and counts it (`staleChoices`, and a log line):
 *   MQTT lets a group's message be lost when the member chosen for it is gone, and this is the
 *   only case where a chosen copy is dropped.
 * - Liveness. Every node publishes a heartbeat on core NATS (`$KEEL.alive.<node id>`, every
 *   second: cluster-node.ts) and listens for the others'. A node choosing for a group passes over
 *   the member nodes it has not heard from for aliveSilenceMs (crashed, stopped, or cut off from
 *   NATS), as long as a member node it has heard from (or itself) is left; a group whose member
 *   nodes are all silent keeps its round robin over them. A node that cannot tell (cut off itself,
 *   or connected for less than aliveSilenceMs) passes over nobody. Passing a node over costs it
 *   nothing it was owed: it is simply not chosen until it is heard again. A message already chosen
 *   for a node that then goes down gets there when it comes back (QoS 1/2 wait in the stream for
 *   its consumer; QoS 0 is lost, as at most once allows): re-routing a choice already made would
 *   need the other nodes to agree that the chosen one is gone for good.
 * - Messages from NATS-native publishers carry no `Keel-Origin` and no choice: for them a group is
 *   served by the node with the smallest id among those with members in the receiver's view, so
 *   nodes whose views agree deliver once (they are QoS 0: at most once).
 * - What is not cluster-wide: a topic that cannot be mapped to a subject (subjects.ts) stays on its
 *   node, and so do its groups (the single-node rule); a QoS 0 message published while the node is
 *   cut off from NATS is not handed to the others at all, so its groups use the local rule too.
 *
 * Views lag: a node learns of another node's first member one NATS round trip after the put (and
 * a node that just started knows only its own groups until its watch has replayed the bucket).
 * A message published in that window is not chosen for the new node; if no node of the view has a
 * member, the group misses it. The simulator's checker judges the group guarantee against the
 * publishing node's view as NATS delivered it (sim/cluster/shared-checker.ts).
 *
 * When the choice is made: the router asks `delivers` for each matching group with a local
 * member while it routes a message published here, and the first question chooses for every
 * group of the view at once; `take`, when the cluster node hands the message off right after,
 * chooses for the groups the router did not ask about (no local member) and forgets the choices.
 * A message from the cluster is bracketed by `receiving` / `received` around its routing. A node
 * connected before its recovery ended dropped what its watch delivered meanwhile (broker.ts), so
 * it watches the bucket again at the end of recovery (`rewatch`); applying a change twice is
 * harmless.
 *
 * Bounds: this node's memberships are bounded by its subscriptions; the view by the keys of the
 * bucket (other nodes' memberships, bounded by their subscriptions). A message's `Keel-Share`
 * names each matching group once.
 *
 * Pure: driven by the cluster node's inputs (cluster-node.ts) and the router's gate
 * (routing.ts `shareGate`); its outputs are cluster requests and log lines.
 */
import { assert } from '../assert.js';
import type { ShareGate } from '../broker/routing.js';
import type { Qos } from '../codec/packets.js';
import type { ClusterHeaders, ClusterKeyChange, ClusterRequest, ClusterResult } from '../contract.js';
import type { SharedGroup, TrieEntry } from '../topics/trie.js';
import { pickSharedMember, SubscriptionTrie } from '../topics/trie.js';
import { checkTopicFilter } from '../topics/validate.js';
import { retainedKey as base64urlKey, topicOfRetainedKey as textOfBase64urlKey } from './retained-entries.js';
import { filterToSubjects, topicToSubject } from './subjects.js';

export const sharedBucket = 'keel-shared';
export const headerShare = 'Keel-Share';

/** Valid structure only: the view holds what members elsewhere were allowed to subscribe to. */
const unlimited = { topicBytesMax: Number.POSITIVE_INFINITY, topicLevelsMax: Number.POSITIVE_INFINITY };
const textEncoder = new TextEncoder();

/** The bucket key of a node's membership of group `name` under `filter`. */
export function sharedKey(name: string, filter: string, nodeId: string): string {
  return `${base64urlKey(`${name}/${filter}`)}.${nodeId}`;
}

/** The group and node of a bucket key, or null for a key this encoding never makes. */
export function parseSharedKey(key: string): { name: string; filter: string; nodeId: string } | null {
  const dot = key.lastIndexOf('.');
  if (dot <= 0 || dot === key.length - 1) return null;
  const text = textOfBase64urlKey(key.slice(0, dot));
  if (text === null) return null;
  const slash = text.indexOf('/');
  if (slash <= 0 || slash === text.length - 1) return null;
  return { name: text.slice(0, slash), filter: text.slice(slash + 1), nodeId: key.slice(dot + 1) };
}

/** `Keel-Share`: `<encodeURIComponent(name/filter)>=<node>` per group, comma separated. */
export function encodeShareChoices(choices: ReadonlyMap<string, string>): string {
  const parts: string[] = [];
  for (const [group, nodeId] of choices) parts.push(`${encodeURIComponent(group)}=${encodeURIComponent(nodeId)}`);
  return parts.join(',');
}

/** The choices of a `Keel-Share` header (group `name/filter` → node id); malformed parts are skipped. */
export function decodeShareChoices(text: string): Map<string, string> {
  const choices = new Map<string, string>();
  for (const part of text.split(',')) {
    const equals = part.indexOf('=');
    if (equals <= 0) continue;
    try {
      choices.set(decodeURIComponent(part.slice(0, equals)), decodeURIComponent(part.slice(equals + 1)));
    } catch {
      // A part that is not percent-encoded text names no group Keel made.
    }
  }
  return choices;
}

/** A group this node has members of, or had until a delete not yet confirmed. */
interface Membership {
  readonly name: string;
  readonly filter: string;
  readonly key: string;
  members: number;
  /** The request id of the latest kv-set for this key, 0 while none is out. */
  requestId: number;
}

/** What the shared-group logic needs from its cluster node. */
export interface SharedGroupsHost {
  readonly nodeId: string;
  readonly connected: boolean;
  nextRequestId(): number;
  request(request: ClusterRequest): void;
  /** Ask for `retry()` a little later (a failed bucket write). */
  scheduleRetry(nowMs: number): void;
  /** Whether a choice may go to this node now (liveness: heard from lately, or no way to tell). */
  heardLately(nodeId: string): boolean;
  log(event: string, fields: Record<string, string | number>): void;
}

export class SharedGroups implements ShareGate {
  private readonly memberships = new Map<string, Membership>();
  private readonly requests = new Map<number, Membership>();
  /** Which nodes have members of which group: members are node ids. */
  private readonly view = new SubscriptionTrie<true>();
  /** Bucket keys of other nodes in the view. */
  private readonly remoteKeys = new Set<string>();
  /** The choices of the message being routed from the cluster (null: none), with the groups served. */
  private incoming: Map<string, string> | null = null;
  private incomingNative = false;
  private readonly incomingServed = new Set<string>();
  /** The choices made for the message being published here, until `take` hands them to the hand-off. */
  private outgoingTopic: string | null = null;
  private readonly outgoing = new Map<string, string>();
  /** Match sinks made once (the publish path allocates no closure per message). */
  private readonly chooser = { subscriber: () => {}, sharedGroup: (group: SharedGroup<true>) => this.choose(group) };
  private readonly missingChooser = { subscriber: () => {}, sharedGroup: (group: SharedGroup<true>) => this.chooseMissing(group) };
  private readonly heardLately = (member: TrieEntry<true>): boolean => this.host.heardLately(member.key);
  private readonly anyNode = (): boolean => true;
  readonly counters = { choices: 0, chosenHere: 0, delivered: 0, staleChoices: 0, silentPassedOver: 0, bucketWrites: 0, bucketFailures: 0, viewChanges: 0 };

  constructor(private readonly host: SharedGroupsHost) {}

  /** The group key (`name/filter`) the header and the bucket use. */
  static groupKey(name: string, filter: string): string {
    return `${name}/${filter}`;
  }

  // ---- membership ---------------------------------------------------------------------------

  /** A member of `$share/name/filter` came into this node's trie (1) or left it (-1). */
  localChanged(name: string, filter: string, delta: 1 | -1): void {
    const group = SharedGroups.groupKey(name, filter);
    let membership = this.memberships.get(group);
    if (membership === undefined) {
      assert(delta === 1, 'a member leaves only a group it was counted in');
      membership = { name, filter, key: sharedKey(name, filter, this.host.nodeId), members: 0, requestId: 0 };
      this.memberships.set(group, membership);
    }
    membership.members += delta;
    assert(membership.members >= 0, 'a group counts no fewer than zero members');
    if (delta === 1 && membership.members === 1) {
      this.view.subscribe(`$share/${name}/${filter}`, this.host.nodeId, true);
      this.write(membership);
    } else if (membership.members === 0) {
      this.view.unsubscribe(`$share/${name}/${filter}`, this.host.nodeId);
      this.write(membership);
    }
  }

  /** Puts (members) or deletes (none) this node's key of the group; the newest write wins. */
  private write(membership: Membership): void {
    if (!this.host.connected) {
      membership.requestId = 0;
      return;
    }
    const requestId = this.host.nextRequestId();
    if (membership.requestId !== 0) this.requests.delete(membership.requestId);
    membership.requestId = requestId;
    this.requests.set(requestId, membership);
    this.counters.bucketWrites += 1;
    const value = membership.members === 0 ? null : textEncoder.encode(JSON.stringify({ node: this.host.nodeId, group: membership.name, filter: membership.filter }));
    this.host.request({ op: 'kv-set', requestId, bucket: sharedBucket, key: membership.key, value, expectedRevision: null });
  }

  /** True when `result` answers one of this module's writes (then it is handled). */
  completed(nowMs: number, result: ClusterResult): boolean {
    const membership = this.requests.get(result.requestId);
    if (membership === undefined) return false;
    this.requests.delete(result.requestId);
    if (membership.requestId !== result.requestId) return true;
    membership.requestId = 0;
    if (!result.ok) {
      this.counters.bucketFailures += 1;
      membership.requestId = -1;
      if (this.host.connected) this.host.scheduleRetry(nowMs);
      return true;
    }
    if (membership.members === 0) this.memberships.delete(SharedGroups.groupKey(membership.name, membership.filter));
    return true;
  }

  /** The retry deadline: write again what failed. */
  retry(): void {
    for (const membership of this.memberships.values()) if (membership.requestId === -1) this.write(membership);
  }

  /** The link is up (again): write every key of this node, whatever the bucket holds. */
  connected(): void {
    this.host.request({ op: 'kv-watch', requestId: this.host.nextRequestId(), bucket: sharedBucket });
    for (const membership of this.memberships.values()) this.write(membership);
  }

  /** Watches the bucket again (the node was connected before its recovery ended, and dropped what came). */
  rewatch(): void {
    this.host.request({ op: 'kv-watch', requestId: this.host.nextRequestId(), bucket: sharedBucket });
  }

  /** The link went down: whatever is out is written again on return. */
  disconnected(): void {
    for (const membership of this.memberships.values()) membership.requestId = 0;
    this.requests.clear();
  }

  /** A change of the `keel-shared` bucket: another node's membership, or a stale one of this node's. */
  keyChanged(change: ClusterKeyChange): void {
    assert(change.bucket === sharedBucket, 'only keel-shared changes reach the shared groups');
    const parsed = parseSharedKey(change.key);
    if (parsed === null || parsed.filter.length === 0) return;
    const filter = `$share/${parsed.name}/${parsed.filter}`;
    if (checkTopicFilter(filter, unlimited) !== null || filterToSubjects(parsed.filter) === null) return;
    if (parsed.nodeId === this.host.nodeId) {
      const membership = this.memberships.get(SharedGroups.groupKey(parsed.name, parsed.filter));
      if (change.value !== null && membership === undefined) {
        // A key this node no longer stands behind (a subscription its crash lost): delete it.
        const stale: Membership = { name: parsed.name, filter: parsed.filter, key: change.key, members: 0, requestId: 0 };
        this.memberships.set(SharedGroups.groupKey(parsed.name, parsed.filter), stale);
        this.write(stale);
      }
      return;
    }
    this.counters.viewChanges += 1;
    const group = SharedGroups.groupKey(parsed.name, parsed.filter);
    if (change.value === null) {
      if (!this.remoteKeys.delete(change.key)) return;
      this.view.unsubscribe(filter, parsed.nodeId);
      this.host.log('cluster-shared-view', { group, node: parsed.nodeId, members: 'none' });
      return;
    }
    if (this.remoteKeys.has(change.key)) return;
    this.remoteKeys.add(change.key);
    this.view.subscribe(filter, parsed.nodeId, true);
    this.host.log('cluster-shared-view', { group, node: parsed.nodeId, members: 'some' });
  }

  // ---- choosing and delivering --------------------------------------------------------------

  private choose(group: SharedGroup<true>): void {
    const cursor = group.cursor;
    // Round robin over the member nodes heard from lately; over all of them when none is.
    let node = pickSharedMember(group, this.heardLately);
    if (node === undefined) node = pickSharedMember(group, this.anyNode);
    else if (group.members[cursor === group.members.length ? 0 : cursor] !== node) this.counters.silentPassedOver += 1;
    assert(node !== undefined, 'the view reports only groups with a member node');
    this.outgoing.set(SharedGroups.groupKey(group.name, group.filter), node.key);
    this.counters.choices += 1;
  }

  /** Chooses a node per matching group of the view for a message published here on `topic`. */
  private chooseFor(topic: string): void {
    this.outgoing.clear();
    this.outgoingTopic = topic;
    this.view.match(topic, this.chooser);
  }

  delivers(group: SharedGroup<unknown>, topic: string, qos: Qos): boolean {
    const key = SharedGroups.groupKey(group.name, group.filter);
    if (this.incoming !== null) return this.servesIncoming(key);
    if (this.incomingNative) return this.servesNative(key);
    // Published here: a topic that stays on this node, or QoS 0 while cut off, keeps the local rule.
    if (topicToSubject(topic) === null || (qos === 0 && !this.host.connected)) return true;
    if (this.outgoingTopic !== topic) this.chooseFor(topic);
    const chosen = this.outgoing.get(key) === this.host.nodeId;
    if (chosen) this.counters.chosenHere += 1;
    return chosen;
  }

  private servesIncoming(key: string): boolean {
    if (this.incoming!.get(key) !== this.host.nodeId) return false;
    this.incomingServed.add(key);
    this.counters.delivered += 1;
    return true;
  }

  /** A NATS-native message: the node with the smallest id among those with members serves the group. */
  private servesNative(key: string): boolean {
    let smallest: string | null = null;
    for (const remote of this.remoteKeys) {
      const parsed = parseSharedKey(remote);
      if (parsed === null || SharedGroups.groupKey(parsed.name, parsed.filter) !== key) continue;
      if (smallest === null || parsed.nodeId < smallest) smallest = parsed.nodeId;
    }
    return smallest === null || this.host.nodeId < smallest;
  }

  /**
   * The `Keel-Share` value for the message published here on `topic` (null: no group anywhere),
   * choosing for every group the router did not ask about; the choices are then forgotten.
   */
  take(topic: string): string | null {
    if (this.outgoingTopic !== topic) this.chooseFor(topic);
    else this.view.match(topic, this.missingChooser);
    const header = this.outgoing.size === 0 ? null : encodeShareChoices(this.outgoing);
    this.discard();
    return header;
  }

  private chooseMissing(group: SharedGroup<true>): void {
    if (!this.outgoing.has(SharedGroups.groupKey(group.name, group.filter))) this.choose(group);
  }

  /** Forgets the choices of the message published here (it does not leave this node). */
  discard(): null {
    this.outgoing.clear();
    this.outgoingTopic = null;
    return null;
  }

  /** A message from the cluster is about to be routed: deliver for the groups it chose this node for. */
  receiving(headers: ClusterHeaders, native: boolean): void {
    assert(this.incoming === null && !this.incomingNative, 'one message from the cluster is routed at a time');
    this.incomingServed.clear();
    if (native) {
      this.incomingNative = true;
      return;
    }
    const text = headers[headerShare];
    this.incoming = text === undefined ? new Map() : decodeShareChoices(text);
  }

  /** The message from the cluster was routed: count the groups chosen here that had no member left. */
  received(topic: string): void {
    const incoming = this.incoming;
    this.incoming = null;
    this.incomingNative = false;
    if (incoming === null) return;
    for (const [group, nodeId] of incoming) {
      if (nodeId !== this.host.nodeId || this.incomingServed.has(group)) continue;
      this.counters.staleChoices += 1;
      this.host.log('cluster-shared-stale-choice', { group, topic });
    }
  }

  /** How many groups this node has members of (tests and metrics). */
  get localGroups(): number {
    let count = 0;
    for (const membership of this.memberships.values()) if (membership.members > 0) count += 1;
    return count;
  }
}
