/**
 * Routing one message to every session that should get it: the publish hot path.
 *
 * One trie match collects targets into reusable scratch arrays (no closures, no per-message
 * maps beyond the scratch one, which is cleared): non-shared matches merge per session, so a
 * session with overlapping subscriptions gets one copy at the highest granted QoS with every
 * matching subscription identifier [MQTT-3.3.4-2, -3]; each matching shared group contributes one
 * member, chosen round robin among members that are connected and have window room, else among
 * all members (an offline member's queue still takes it). A message is never delivered to two
 * members of one group.
 *
 * The message is stored once (only if some delivery is QoS 1/2) and each PUBLISH variant
 * (protocol version, QoS, RETAIN flag, subscription identifiers) is encoded once per route; QoS
 * 1/2 receivers get the shared encoding through `withPacketId` (the first one the encoding
 * itself, each later one a copy).
 *
 * Allocation per routed message is kept to what leaves the router (the encoding, the stored
 * message, delivery records): targets and variants are reused slots; a target without
 * subscription identifiers shares one frozen empty list, and a fresh list is made only when an
 * identifier is added (deliveries keep a reference to it); merging by session scans the targets
 * while they are few and uses the map only for large fan-outs (a Map's clear() allocates), and is
 * skipped while all matches come from one filter (no session can repeat there).
 */
import { assert } from '../assert.js';
import type { EncodedPublish } from '../codec/encoder.js';
import { ownCopy } from '../codec/own-copy.js';
import type { ProtocolVersion, Qos } from '../codec/packets.js';
import type { SessionState, StoredMessage, SubscriptionState } from '../store/state-store.js';
import { type MatchSink, pickSharedMember, type SharedGroup, type TrieEntry } from '../topics/trie.js';
import type { AccessControl } from './access-control.js';
import type { Broker } from './broker.js';
import { deliverNew, encodePublishFor, hasWindowRoom } from './outbound-queue.js';
import { PayloadSlab } from './payload-slab.js';

interface Target {
  session: SessionState;
  /** Picked for a shared group: never merged with the session's own non-shared matches. */
  shared: boolean;
  qos: Qos;
  retain: boolean;
  subscriptionIds: number[];
}

interface Variant {
  version: ProtocolVersion;
  qos: Qos;
  retain: boolean;
  subscriptionIds: readonly number[];
  encoded: EncodedPublish;
}

/**
 * A cluster node's say over shared groups (src/cluster/shared-groups.ts): asked, per matching group
 * with a member here, whether this node delivers the message to the group at all (the group's
 * message may be another node's to deliver). Null on a single broker: every group delivers.
 */
export interface ShareGate {
  delivers(group: SharedGroup<unknown>, topic: string, qos: Qos): boolean;
}

/** Shared by every target without subscription identifiers; frozen, so nobody can add to it. */
const noSubscriptionIds: number[] = Object.freeze([]) as unknown as number[];
/** Up to this many targets, merging by session scans them; past it a map is used. */
const targetsScannedMax = 16;

export class Router implements MatchSink<SubscriptionState> {
  private readonly targets: Target[] = [];
  private targetCount = 0;
  private readonly targetIndexByClient = new Map<string, number>();
  private readonly variants: Variant[] = [];
  private variantCount = 0;
  /** Whether `targetIndexByClient` holds entries from this route (it is filled past targetsScannedMax). */
  private targetIndexUsed = false;
  /** The filter of this route's first non-shared match (null before it), and whether another followed (see repeatable). */
  private firstFilter: string | null = null;
  private severalFilters = false;
  private publisherClientId = '';
  private messageQos: Qos = 0;
  private messageRetain = false;
  private messageTopic = '';
  /** broker.access, read once: without an authorizer the hot path pays one null test per match. */
  private readonly access: AccessControl | null;
  private readonly eligibleWithRoom: (entry: TrieEntry<SubscriptionState>) => boolean;
  private readonly eligibleAny: (entry: TrieEntry<SubscriptionState>) => boolean;
  /** Where stored messages' small payloads are copied to (payload-slab.ts). */
  readonly payloads: PayloadSlab;
  /** Set by a cluster node (cluster-node.ts); null on a single broker. */
  shareGate: ShareGate | null = null;
  /**
   * A cluster node's session hand-over (session-handover.ts) routes some hand-offs to one session
   * alone (`onlyClientId`: no other session, no group, no stream) or to all but some
   * (`exceptClientIds`); '' and null for every other route.
   */
  private onlyClientId = '';
  private exceptClientIds: ReadonlySet<string> | null = null;
  /**
   * Set by a cluster node (session-handover.ts, windows): the sessions a message published on this
   * node must reach through the hand-off stream for now, not at once (null: none; the common case).
   */
  localHold: ((message: StoredMessage) => ReadonlySet<string> | null) | null = null;

  constructor(private readonly broker: Broker) {
    this.payloads = new PayloadSlab(broker.state.messages);
    this.eligibleWithRoom = (entry) => {
      const connection = broker.online.get(entry.key);
      const session = broker.state.sessions.get(entry.key);
      return connection !== undefined && session !== undefined && hasWindowRoom(broker, session, connection);
    };
    this.eligibleAny = () => true;
    this.access = broker.access;
    const access = this.access;
    if (access !== null) {
      // A shared group's message goes to a member that may read the topic, if any may.
      const withRoom = this.eligibleWithRoom;
      this.eligibleWithRoom = (entry) => access.allowsReceive(entry.key, entry.value, this.messageTopic) && withRoom(entry);
      this.eligibleAny = (entry) => access.allowsReceive(entry.key, entry.value, this.messageTopic);
    }
  }

  /**
   * Delivers `message` (messageId 0 while not stored) to every matching session and appends it
   * to every stream whose filter matches its topic (streams/streams.ts); returns how many
   * sessions and streams it went to. `publisherClientId` drives No Local.
   */
  route(message: StoredMessage, publisherClientId: string, nowMs: number): number {
    // A message published here (a client's, a will) leaves out the sessions the cluster node holds back.
    const held = this.localHold === null || publisherClientId === '' || this.exceptClientIds !== null ? null : this.localHold(message);
    if (held === null) return this.routeTo(message, publisherClientId, nowMs);
    assert(this.onlyClientId === '', 'a message published here is not routed to one session alone');
    this.exceptClientIds = held;
    try {
      return this.routeTo(message, publisherClientId, nowMs);
    } finally {
      this.exceptClientIds = null;
    }
  }

  private routeTo(message: StoredMessage, publisherClientId: string, nowMs: number): number {
    const appended = this.onlyClientId === '' ? this.broker.streams.append(message, nowMs) : 0;
    this.targetCount = 0;
    if (this.targetIndexUsed) {
      this.targetIndexByClient.clear();
      this.targetIndexUsed = false;
    }
    this.variantCount = 0;
    this.firstFilter = null;
    this.severalFilters = false;
    this.publisherClientId = publisherClientId;
    this.messageQos = message.qos;
    this.messageRetain = message.retain;
    this.messageTopic = message.topic;
    this.broker.trie.match(message.topic, this);
    const count = this.targetCount;
    if (count === 0) {
      if (appended === 0) this.broker.stats.messagesUnmatched += 1;
      return appended;
    }
    const stored = this.storeIfNeeded(message);
    for (let index = 0; index < count; index++) {
      const target = this.targets[index]!;
      const connection = this.broker.online.get(target.session.clientId);
      const encoded = connection === undefined ? null : this.encoded(stored, connection.version, target, nowMs);
      deliverNew(this.broker, target.session, stored, target.qos, target.retain, target.subscriptionIds, encoded, nowMs);
    }
    if (stored.messageId !== 0 && stored.references === 0) {
      this.broker.commit({ kind: 'message-discarded', messageId: stored.messageId }, !this.anyDurableTarget());
    }
    return count + appended;
  }

  /** `route` restricted to the session of `only` (when not '') or to every session but those of `except`. */
  routeRestricted(message: StoredMessage, nowMs: number, only: string, except: ReadonlySet<string> | null): number {
    assert(only === '' || except === null, 'a route is restricted one way');
    assert(only !== '' || except !== null, 'a restricted route is restricted');
    this.onlyClientId = only;
    this.exceptClientIds = except;
    try {
      return this.routeTo(message, '', nowMs);
    } finally {
      this.onlyClientId = '';
      this.exceptClientIds = null;
    }
  }

  subscriber(entry: TrieEntry<SubscriptionState>, filter: string): void {
    if (this.onlyClientId !== '' || this.exceptClientIds !== null) {
      if (this.onlyClientId !== '' && entry.key !== this.onlyClientId) return;
      if (this.exceptClientIds?.has(entry.key) === true) return;
    }
    const subscription = entry.value;
    // [MQTT-3.8.3-3] No Local: not back to the publishing client's own subscription.
    if (subscription.noLocal && entry.key === this.publisherClientId) return;
    // A subscription never carries a topic its client may not read (access-control.ts).
    if (this.access !== null && !this.access.allowsReceive(entry.key, subscription, this.messageTopic)) return this.access.receiveDenied(entry.key, this.messageTopic);
    const qos = Math.min(subscription.qos, this.messageQos) as Qos;
    // [MQTT-3.3.1-12, -13] RETAIN is forwarded only under Retain As Published.
    const retain = subscription.retainAsPublished && this.messageRetain;
    const index = this.repeatable(filter) ? this.targetIndexOf(entry.key) : -1;
    if (index < 0) {
      if (this.targetIndexUsed) this.targetIndexByClient.set(entry.key, this.targetCount);
      this.addTarget(entry.key, qos, retain, subscription.subscriptionId, false);
      return;
    }
    const target = this.targets[index]!;
    if (qos > target.qos) target.qos = qos;
    if (retain) target.retain = true;
    if (subscription.subscriptionId !== 0) addSubscriptionId(target, subscription.subscriptionId);
  }

  /**
   * Whether a session reported under `filter` may already be a target. The trie reports each
   * filter's entries together, keyed by session (one entry per session and filter), so while every
   * non-shared match of a route comes from its first filter no session can repeat and the lookup
   * is skipped: a wide fan-out under one filter (hundreds of subscribers to `sensors/#`) paid a map
   * write and read per subscriber for nothing. From a second filter on, targetIndexOf looks (and
   * sees every target collected so far).
   */
  private repeatable(filter: string): boolean {
    if (this.severalFilters) return true;
    if (this.firstFilter === null) {
      this.firstFilter = filter;
      return false;
    }
    if (filter === this.firstFilter) return false;
    this.severalFilters = true;
    return true;
  }

  /** The target already collected for this session (a non-shared match), or -1. */
  private targetIndexOf(clientId: string): number {
    if (this.targetIndexUsed) return this.targetIndexByClient.get(clientId) ?? -1;
    const count = this.targetCount;
    for (let index = 0; index < count; index++) {
      const target = this.targets[index]!;
      if (!target.shared && target.session.clientId === clientId) return index;
    }
    if (count >= targetsScannedMax) {
      // From here on the map answers; it starts with every non-shared target collected so far.
      this.targetIndexUsed = true;
      for (let index = 0; index < count; index++) {
        const target = this.targets[index]!;
        if (!target.shared) this.targetIndexByClient.set(target.session.clientId, index);
      }
    }
    return -1;
  }

  sharedGroup(group: SharedGroup<SubscriptionState>): void {
    if (this.onlyClientId !== '') return;
    if (this.shareGate !== null && !this.shareGate.delivers(group, this.messageTopic, this.messageQos)) return;
    const member = pickSharedMember(group, this.eligibleWithRoom) ?? pickSharedMember(group, this.eligibleAny);
    if (member === undefined) return;
    const subscription = member.value;
    const qos = Math.min(subscription.qos, this.messageQos) as Qos;
    this.addTarget(member.key, qos, subscription.retainAsPublished && this.messageRetain, subscription.subscriptionId, true);
  }

  private addTarget(clientId: string, qos: Qos, retain: boolean, subscriptionId: number, shared: boolean): void {
    const session = this.broker.state.sessions.get(clientId)!;
    let target = this.targets[this.targetCount];
    if (target === undefined) {
      target = { session, shared, qos, retain, subscriptionIds: noSubscriptionIds };
      this.targets.push(target);
    } else {
      target.session = session;
      target.shared = shared;
      target.qos = qos;
      target.retain = retain;
      target.subscriptionIds = noSubscriptionIds;
    }
    if (subscriptionId !== 0) addSubscriptionId(target, subscriptionId);
    this.targetCount += 1;
  }

  private anyDurableTarget(): boolean {
    for (let index = 0; index < this.targetCount; index++) {
      const target = this.targets[index]!;
      if (target.qos > 0 && target.session.expiryIntervalSeconds !== 0) return true;
    }
    return false;
  }

  private storeIfNeeded(message: StoredMessage): StoredMessage {
    if (message.messageId !== 0) return message;
    let needed = false;
    for (let index = 0; index < this.targetCount && !needed; index++) needed = this.targets[index]!.qos > 0;
    if (!needed) return message;
    return storeMessage(this.broker, message, !this.anyDurableTarget());
  }

  private encoded(message: StoredMessage, version: ProtocolVersion, target: Target, nowMs: number): EncodedPublish {
    const variants = this.variants;
    for (let index = 0; index < this.variantCount; index++) {
      const variant = variants[index]!;
      if (variant.version === version && variant.qos === target.qos && variant.retain === target.retain && sameIds(variant.subscriptionIds, target.subscriptionIds)) {
        return variant.encoded;
      }
    }
    let variant = variants[this.variantCount];
    if (variant === undefined) {
      const encoded = encodePublishFor(message, version, target.qos, target.retain, target.subscriptionIds, nowMs);
      variant = { version, qos: target.qos, retain: target.retain, subscriptionIds: target.subscriptionIds, encoded };
      variants.push(variant);
    } else {
      variant.version = version;
      variant.qos = target.qos;
      variant.retain = target.retain;
      variant.subscriptionIds = target.subscriptionIds;
      // The slot's own EncodedPublish is refilled: nothing holds it past the route that made it.
      encodePublishFor(message, version, target.qos, target.retain, target.subscriptionIds, nowMs, variant.encoded);
    }
    this.variantCount += 1;
    return variant.encoded;
  }
}

/** Adds an identifier, giving the target its own list first (deliveries keep the list they got). */
function addSubscriptionId(target: Target, subscriptionId: number): void {
  if (target.subscriptionIds === noSubscriptionIds) target.subscriptionIds = [];
  target.subscriptionIds.push(subscriptionId);
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}

/**
 * Stores a transient message (messageId 0) and returns the stored one. The payload is copied: a
 * retained message (it may be kept for ever) into a buffer of its own, any other into a shared
 * slab when small (payload-slab.ts).
 */
export function storeMessage(broker: Broker, message: StoredMessage, volatile: boolean): StoredMessage {
  const messageId = broker.state.nextMessageId;
  const fields = {
    messageId,
    topic: message.topic,
    payload: message.retain ? ownCopy(message.payload) : broker.router.payloads.copy(message.payload, messageId),
    qos: message.qos,
    retain: message.retain,
    properties: message.properties,
    createdAtMs: message.createdAtMs,
    expiryAtMs: message.expiryAtMs,
  };
  broker.commit({ kind: 'message-stored', message: fields }, volatile);
  return broker.state.messages.get(messageId)!;
}
