/**
 * The broker's side of topic authorization: it asks the `Authorizer` (authorizer.ts), caches its
 * answers where the publish path would otherwise ask again for every message, and turns every
 * refusal into its MQTT outcome, a counter in `stats.authorization` and a `not-authorized` log.
 * The broker has one only when BrokerOptions.authorizer is given; without it nothing here runs
 * and every path is as it was (the router tests one field for null).
 *
 * Identities. A session belongs to the identity (client id, authenticated user name) of the last
 * connection bound to it; a delivery to an offline session is decided for that identity. The user
 * name is durable state (`SessionState.username`, written by session-created / session-resumed),
 * so a restarted broker decides for the same owner as before the restart. A will is decided for
 * the identity that left it (`DurableState.willUsernames`, written by will-set): a will outlives
 * a volatile session, so its owner cannot be read from the session. Only records written by a
 * version that did not store user names leave an owner unknown: such a session gets nothing until
 * its client connects again, and such a will is not published (fail closed, counted as receive /
 * will denials, logged with why).
 *
 * Caches, all dropped when `authorizer.generation` changes (live reload):
 * - per subscription (a WeakMap keyed by the subscription object, which a re-subscribe replaces):
 *   whether the owner reads everything its filter matches (`readsEverything`), so the common case
 *   costs one lookup per delivery; otherwise a bounded map of topic → canReceive;
 * - per connection: a bounded map of topic → canPublish.
 * Bounds keep memory fixed: a full map is cleared, never grown.
 *
 * Counting: `receiveDenied` counts per matching subscription that withheld a message (a session
 * with two subscriptions matching a denied topic counts two); a shared group in which no member
 * may read the topic simply has no member picked, which is not counted.
 */
import { assert } from '../assert.js';
import { encodePacket } from '../codec/encoder.js';
import { PacketType, type PublishPacket } from '../codec/packets.js';
import { ReasonCode } from '../codec/reason-codes.js';
import type { SessionState, SubscriptionState } from '../store/state-store.js';
import type { Authorizer, Identity } from './authorizer.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';

/** Topics remembered per subscription that needs per-topic checks, and per publishing connection. */
export const topicVerdictsMax = 256;

interface Grant {
  readonly generation: number;
  /** null: the session's owner is unknown (records of an older version): nothing is delivered. */
  readonly owner: Identity | null;
  readonly everything: boolean;
  readonly topics: Map<string, boolean>;
}

interface PublisherVerdicts {
  generation: number;
  readonly topics: Map<string, boolean>;
}

/** Why a decision was made without an owner. */
const ownerUnknown = 'owner unknown: stored by a version that did not record user names';

export class AccessControl {
  /** Each session's owner as an Identity, made once per stored user name (not once per question). */
  private readonly identities = new WeakMap<SessionState, Identity>();
  private readonly grants = new WeakMap<SubscriptionState, Grant>();
  private readonly publishers = new WeakMap<Connection, PublisherVerdicts>();
  /** Per connection: topic → may its client receive it (deliveries from its queue and resends). */
  private readonly receivers = new WeakMap<Connection, PublisherVerdicts>();

  constructor(
    private readonly broker: Broker,
    readonly authorizer: Authorizer,
  ) {}

  private get generation(): number {
    return this.authorizer.generation ?? 0;
  }

  /** A CONNECT with a will: may this identity publish to its topic? Refusals are counted here. */
  mayLeaveWill(identity: Identity, topic: string): boolean {
    if (this.authorizer.canPublish(identity, topic)) return true;
    this.broker.stats.authorization.willDenied += 1;
    this.deny('info', 'connect', identity, topic);
    return false;
  }

  /**
   * A connection was bound to its session, whose records (session-created / session-resumed, and
   * will-set) already name `identity` as its owner: grants computed for another owner, or for an
   * unknown one, no longer hold.
   */
  bind(connection: Connection, identity: Identity): void {
    const session = connection.session;
    assert(session !== null, 'bind after the session is attached');
    assert(session.clientId === identity.clientId, 'an identity names its session');
    assert(session.username === (identity.username ?? null), 'the session records its owner before it is bound');
    for (const subscription of session.subscriptions.values()) {
      const grant = this.grants.get(subscription);
      if (grant !== undefined && (grant.owner === null || grant.owner.username !== identity.username)) this.grants.delete(subscription);
    }
  }

  /** The owner of `session` from its stored user name, or null when that is unknown. */
  ownerOf(session: SessionState): Identity | null {
    const stored = session.username;
    if (stored === undefined) return null;
    const username = stored ?? undefined;
    const cached = this.identities.get(session);
    if (cached !== undefined && cached.username === username) return cached;
    const identity: Identity = { clientId: session.clientId, username };
    this.identities.set(session, identity);
    return identity;
  }

  maySubscribe(session: SessionState, filter: string): boolean {
    const owner = this.ownerOf(session);
    assert(owner !== null, 'a connected session has an owner');
    if (this.authorizer.canSubscribe(owner, filter)) return true;
    this.broker.stats.authorization.subscribeDenied += 1;
    this.deny('info', 'subscribe', owner, filter);
    return false;
  }

  /** May this connection publish to `topic`? Refusals are counted and logged here. */
  mayPublish(connection: Connection, topic: string): boolean {
    let verdicts = this.publishers.get(connection);
    const generation = this.generation;
    if (verdicts === undefined) {
      verdicts = { generation, topics: new Map() };
      this.publishers.set(connection, verdicts);
    } else if (verdicts.generation !== generation) {
      verdicts.generation = generation;
      verdicts.topics.clear();
    }
    let allowed = verdicts.topics.get(topic);
    if (allowed === undefined) {
      const owner = this.ownerOf(connection.session!);
      assert(owner !== null, 'a connected session has an owner');
      allowed = this.authorizer.canPublish(owner, topic);
      if (verdicts.topics.size >= topicVerdictsMax) verdicts.topics.clear();
      verdicts.topics.set(topic, allowed);
    }
    if (allowed) return true;
    this.broker.stats.authorization.publishDenied += 1;
    this.deny('info', 'publish', { clientId: connection.clientId, username: this.ownerOf(connection.session!)?.username }, topic);
    return false;
  }

  /**
   * The last check before a stored delivery (queued, or inflight and sent again on resume) goes
   * out on `connection`: may the client connected now read `topic`? It was decided for the
   * session's owner when the message was routed; this asks again for whoever holds the session
   * now (the same user: handle-connect.ts refuses or starts afresh a session of another user)
   * under the rules in force now (the ACL may have been reloaded since). No side effects: the
   * caller drops the delivery and calls `receiveDenied`.
   */
  mayDeliver(connection: Connection, topic: string): boolean {
    const session = connection.session;
    assert(session !== null, 'deliveries go to a bound connection');
    let verdicts = this.receivers.get(connection);
    const generation = this.generation;
    if (verdicts === undefined) {
      verdicts = { generation, topics: new Map() };
      this.receivers.set(connection, verdicts);
    } else if (verdicts.generation !== generation) {
      verdicts.generation = generation;
      verdicts.topics.clear();
    }
    let allowed = verdicts.topics.get(topic);
    if (allowed === undefined) {
      const owner = this.ownerOf(session);
      assert(owner !== null, 'a connected session has an owner');
      assert(owner.username === connection.username, 'a session is held by its owner');
      allowed = this.authorizer.canReceive(owner, topic);
      if (verdicts.topics.size >= topicVerdictsMax) verdicts.topics.clear();
      verdicts.topics.set(topic, allowed);
    }
    return allowed;
  }

  /**
   * A will whose time came: published only if its owner may (still) publish to its topic. Asked
   * while the will is still stored (will.ts), since the owner is read from durable state.
   */
  mayPublishWill(clientId: string, will: object, topic: string): boolean {
    const owner = this.willOwner(clientId, will);
    if (owner !== null && this.authorizer.canPublish(owner, topic)) return true;
    this.broker.stats.authorization.willDenied += 1;
    this.deny('info', 'will', owner ?? { clientId, username: undefined }, topic, owner === null ? ownerUnknown : null);
    return false;
  }

  private willOwner(clientId: string, will: object): Identity | null {
    const state = this.broker.state;
    assert(state.wills.get(clientId) === will, 'a will is decided while it is stored');
    const stored = state.willUsernames?.get(clientId);
    if (stored === undefined) return null;
    return { clientId, username: stored ?? undefined };
  }

  /**
   * The publish hot path: may a message on `topic` go to `clientId` through `subscription`? No
   * side effects (shared-group picking asks it for several members); see `receiveDenied`.
   */
  allowsReceive(clientId: string, subscription: SubscriptionState, topic: string): boolean {
    let grant = this.grants.get(subscription);
    if (grant === undefined || grant.generation !== this.generation) grant = this.grant(clientId, subscription);
    if (grant.everything) return true;
    if (grant.owner === null) return false;
    let allowed = grant.topics.get(topic);
    if (allowed === undefined) {
      allowed = this.authorizer.canReceive(grant.owner, topic);
      if (grant.topics.size >= topicVerdictsMax) grant.topics.clear();
      grant.topics.set(topic, allowed);
    }
    return allowed;
  }

  /** Counts and logs (debug: one line per withheld delivery) a delivery `allowsReceive` refused. */
  receiveDenied(clientId: string, topic: string): void {
    this.broker.stats.authorization.receiveDenied += 1;
    const session = this.broker.state.sessions.get(clientId);
    const owner = session === undefined ? null : this.ownerOf(session);
    this.deny('debug', 'receive', owner ?? { clientId, username: undefined }, topic, owner === null ? ownerUnknown : null);
  }

  private grant(clientId: string, subscription: SubscriptionState): Grant {
    const session = this.broker.state.sessions.get(clientId);
    assert(session !== undefined, 'a subscription belongs to a session');
    const owner = this.ownerOf(session);
    const readsEverything = this.authorizer.readsEverything;
    const everything = owner !== null && readsEverything?.call(this.authorizer, owner, subscription.filter) === true;
    const grant: Grant = { generation: this.generation, owner, everything, topics: new Map() };
    this.grants.set(subscription, grant);
    return grant;
  }

  private deny(level: 'debug' | 'info', action: string, identity: Identity, topic: string, why: string | null = null): void {
    const fields = { action, clientId: identity.clientId, username: identity.username ?? null, topic };
    this.broker.log(level, 'not-authorized', why === null ? fields : { ...fields, why });
  }
}

/**
 * The answer to a PUBLISH that was not authorized, which is then not routed: MQTT 5.0 QoS 1/2
 * get PUBACK / PUBREC 0x87 Not authorized (sections 3.4.2.1, 3.5.2.1); QoS 0 has no answer.
 * 3.1.1 has no way to say no: the server must acknowledge as usual or close the connection
 * [MQTT-3.3.5-2]; we acknowledge (and log), so a misconfigured rule does not become a reconnect
 * loop. No QoS 2 identifier is recorded: a 5.0 PUBREC of 0x80 or above ends the exchange
 * (section 4.3.3), and a 3.1.1 PUBREL for it gets the usual PUBCOMP for an unknown identifier.
 */
export function answerDeniedPublish(broker: Broker, connection: Connection, packet: PublishPacket): void {
  if (packet.qos === 0) return;
  const reasonCode = connection.version === 5 ? ReasonCode.NotAuthorized : ReasonCode.Success;
  const type = packet.qos === 1 ? PacketType.Puback : PacketType.Pubrec;
  broker.send(connection, encodePacket({ type, packetId: packet.packetId!, reasonCode }, connection.version));
}
