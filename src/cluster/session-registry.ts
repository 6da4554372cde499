/**
 * Client ids unique across a cluster: which node owns each client's session, kept in the
 * `keel-sessions` key-value bucket, and what a node does when a session's ownership moves.
 *
 * Ownership: one key per client id (encoded as retained-entries.ts encodes topics, so every id is
 * a valid NATS key), whose value names the owning node and a generation unique to the claim
 * (`<epoch>.<counter>`: the node's epoch is claimed durably at start, so it never repeats). On an
 * accepted CONNECT (after authentication and the CONNECT's own refusals) the node claims the
 * client id before it touches any session: a compare-and-set of the key at the revision this node
 * last saw (create-only when it saw none). The connection waits, reading paused, with its CONNECT
 * parked here; nothing of the session changes and no CONNACK goes out until the claim is in the
 * bucket. Then the CONNECT goes on as on one node (a connection of the same id on this node is
 * taken over locally). A claim that fails on `wrong-revision` is tried again at the revision the
 * watch shows next (a node never reads a key otherwise: the watch is its read), so the last
 * CONNECT of a client id to reach the bucket wins.
 *
 * Every node watches the bucket. A node that sees a client id owned by another node closes its
 * own connection of that id (MQTT 5: DISCONNECT 0x8E Session taken over; 3.1.1: a close), as an
 * abnormal end, so the will follows the single-node rules, and ends the session it held for that
 * id (its queued messages and subscriptions are dropped and counted, a delayed will fires now).
 * A node that was cut off from NATS, or down, while its client moved does the same once its
 * watch replays the bucket: until then the client has two sessions, one on each side of the cut.
 *
 * Sessions are not handed over yet: the new owner starts the session it finds in its own log (a
 * session present 1 only if the client had a persistent session on that very node that no other
 * node has claimed since; otherwise a new one), and what the old owner held is ended there.
 *
 * Without NATS a node cannot claim: a CONNECT waits up to `claimWaitMs` for the link and the
 * bucket, then is refused with CONNACK 0x88 Server unavailable (3.1.1: 3), so that the client
 * tries again, possibly through another node. Connections already up keep being served. A claim
 * that reaches the bucket after its CONNECT was refused (or its client left) still moves the
 * ownership: the client did ask to take its id over.
 *
 * Costs: one key-value compare-and-set round trip to NATS before every CONNACK; one key per client
 * id that ever connected (keys are not deleted when sessions end), held by the bucket and, as
 * (revision, owner) pairs, in every node's memory.
 */
import { assert } from '../assert.js';
import type { Broker } from '../broker/broker.js';
import type { Connection } from '../broker/connection.js';
import { acceptConnect, type ConnackAuthentication, refuse } from '../broker/handle-connect.js';
import { scheduleKeepAlive } from '../broker/keepalive.js';
import { endSession } from '../broker/session-lifecycle.js';
import { type ConnectPacket, PacketType } from '../codec/packets.js';
import { ReasonCode } from '../codec/reason-codes.js';
import type { ClusterKeyChange, ClusterResult, ConnectionId } from '../contract.js';
import { retainedKey, topicOfRetainedKey } from './retained-entries.js';

export const sessionsBucket = 'keel-sessions';
/** How long a CONNECT waits for its claim before it is refused with 0x88 Server unavailable. */
export const claimWaitMs = 5_000;
/** A claim that failed for another reason than the revision is tried again after this long. */
export const claimRetryMs = 250;

export interface SessionOwner {
  readonly node: string;
  readonly generation: string;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** The bucket key of a client id: its UTF-8 bytes in base64url (retained-entries.ts). */
export function sessionKey(clientId: string): string {
  return retainedKey(clientId);
}

/** The client id of a key, or null for a key this encoding never makes. */
export function clientIdOfSessionKey(key: string): string | null {
  return topicOfRetainedKey(key);
}

export function encodeOwner(owner: SessionOwner): Uint8Array {
  return textEncoder.encode(JSON.stringify({ node: owner.node, generation: owner.generation }));
}

/** The owner in a value, or null for a value this encoding never makes. */
export function decodeOwner(value: Uint8Array): SessionOwner | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(textDecoder.decode(value));
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const { node, generation } = parsed as Record<string, unknown>;
  if (typeof node !== 'string' || node.length === 0 || typeof generation !== 'string') return null;
  return { node, generation };
}

/** A CONNECT waiting for its client id to be claimed. */
interface Claim {
  readonly connection: Connection;
  readonly packet: ConnectPacket;
  readonly authentication: ConnackAuthentication | null;
  readonly clientId: string;
  readonly deadlineMs: number;
  /** The request out for it, 0 while none. */
  requestId: number;
  /** The revision its last attempt expected, null before the first. */
  triedRevision: number | null;
}

/** What this node last saw of a key: its revision (order), whether it exists, and its owner. */
interface KnownKey {
  revision: number;
  present: boolean;
  node: string | null;
}

export class SessionRegistry {
  private connected = false;
  private nextGeneration = 1;
  private readonly known = new Map<string, KnownKey>();
  private readonly claims = new Map<ConnectionId, Claim>();
  private readonly requests = new Map<number, Claim>();
  readonly counters = { claims: 0, claimsWon: 0, claimRetries: 0, claimsRefused: 0, takenOver: 0, sessionsDropped: 0 };

  constructor(
    private readonly broker: Broker,
    private readonly nodeId: string,
    private readonly newRequestId: () => number,
    private readonly epoch: () => number,
  ) {}

  /** How many CONNECTs wait for their claim (tests and metrics). */
  get claimsPending(): number {
    return this.claims.size;
  }

  /** How many client ids this node knows an owner (or a deletion) of: every key of the bucket it has seen (metrics). */
  get knownKeys(): number {
    return this.known.size;
  }

  /** Parks an accepted CONNECT until its client id is this node's in the bucket. */
  claim(connection: Connection, packet: ConnectPacket, authentication: ConnackAuthentication | null, clientId: string, nowMs: number): void {
    assert(connection.phase === 'awaiting-connect', 'only a connection not yet accepted claims its client id');
    assert(!this.claims.has(connection.id), 'a connection claims once');
    const claim: Claim = { connection, packet, authentication, clientId, deadlineMs: nowMs + claimWaitMs, requestId: 0, triedRevision: null };
    this.claims.set(connection.id, claim);
    connection.claimPending = true;
    // Packets the client sends behind its CONNECT stay in the decoder until the claim is settled.
    this.broker.pushReading(connection, true);
    this.broker.deadlines.push(claim.deadlineMs, 'cluster-claim', connection.id, '');
    this.counters.claims += 1;
    this.issue(claim);
  }

  private issue(claim: Claim): void {
    if (!this.connected || claim.requestId !== 0) return;
    const known = this.known.get(claim.clientId);
    const expectedRevision = known === undefined || !known.present ? 0 : known.revision;
    claim.triedRevision = expectedRevision;
    claim.requestId = this.newRequestId();
    this.requests.set(claim.requestId, claim);
    const value = encodeOwner({ node: this.nodeId, generation: `${this.epoch()}.${this.nextGeneration++}` });
    this.broker.pushCluster({ op: 'kv-set', requestId: claim.requestId, bucket: sessionsBucket, key: sessionKey(claim.clientId), value, expectedRevision });
  }

  /** The link came up (watch the bucket, claim again) or went down (what is out may be lost). */
  linkChanged(up: boolean): void {
    this.connected = up;
    for (const claim of this.claims.values()) claim.requestId = 0;
    if (!up) return;
    // The watch replays every key: what it does not replay is gone (a NATS that lost its store
    // starts its revisions again from 1, which the old ones would hide).
    this.known.clear();
    this.broker.pushCluster({ op: 'kv-watch', bucket: sessionsBucket });
    for (const claim of this.claims.values()) this.issue(claim);
  }

  /** Handles a completion if it answers a claim; false when it is someone else's. */
  completed(nowMs: number, result: ClusterResult): boolean {
    const claim = this.requests.get(result.requestId);
    if (claim === undefined) return false;
    this.requests.delete(result.requestId);
    // A stale answer (the claim went out again since, or was given up) changes nothing.
    if (claim.requestId !== result.requestId || this.claims.get(claim.connection.id) !== claim) return true;
    claim.requestId = 0;
    if (result.ok) {
      this.won(claim, result.sequence, nowMs);
      return true;
    }
    this.counters.claimRetries += 1;
    const known = this.known.get(claim.clientId);
    const knownRevision = known === undefined || !known.present ? 0 : known.revision;
    // Someone else wrote the key: try again at the revision the watch shows, now if it already did.
    if (result.code === 'wrong-revision') {
      if (knownRevision !== claim.triedRevision) this.issue(claim);
      return true;
    }
    this.broker.deadlines.push(nowMs + claimRetryMs, 'cluster-claim', claim.connection.id, '');
    return true;
  }

  private won(claim: Claim, revision: number, nowMs: number): void {
    const connection = claim.connection;
    this.finish(claim);
    const known = this.known.get(claim.clientId);
    if (known === undefined || known.revision < revision) this.known.set(claim.clientId, { revision, present: true, node: this.nodeId });
    // The client left (or timed out) meanwhile: the bucket says this node owns it, nothing else to do.
    if (connection.phase !== 'awaiting-connect') return;
    this.counters.claimsWon += 1;
    acceptConnect(this.broker, connection, claim.packet, nowMs, claim.authentication, claim.clientId);
    if ((connection.phase as string) !== 'connected') return;
    // The CONNECT's handler schedules the keepalive only for a CONNECT accepted at once.
    scheduleKeepAlive(this.broker, connection, nowMs);
    this.broker.continueReading(connection, nowMs);
    // A newer claim by another node, seen before this answer, wins over this one.
    const newest = this.known.get(claim.clientId)!;
    if (newest.revision > revision && newest.node !== null && newest.node !== this.nodeId) this.evict(claim.clientId, newest.node, nowMs);
  }

  private finish(claim: Claim): void {
    this.claims.delete(claim.connection.id);
    claim.connection.claimPending = false;
  }

  /** The claim deadline of a connection: retry a failed claim, or refuse a CONNECT that waited too long. */
  claimDue(connectionId: ConnectionId, nowMs: number): void {
    const claim = this.claims.get(connectionId);
    if (claim === undefined) return;
    if (claim.connection.phase !== 'awaiting-connect') {
      this.finish(claim);
      return;
    }
    if (nowMs < claim.deadlineMs) {
      this.issue(claim);
      return;
    }
    this.finish(claim);
    this.counters.claimsRefused += 1;
    refuse(this.broker, claim.connection, ReasonCode.ServerUnavailable, nowMs, 'the cluster did not confirm the client id in time', undefined, { waitedMs: claimWaitMs });
  }

  /** A change of the `keel-sessions` bucket. */
  keyChanged(nowMs: number, change: ClusterKeyChange): void {
    assert(change.bucket === sessionsBucket, 'the registry watches the sessions bucket');
    const clientId = clientIdOfSessionKey(change.key);
    if (clientId === null) return;
    const known = this.known.get(clientId);
    if (known !== undefined && change.revision <= known.revision) return;
    const owner = change.value === null ? null : decodeOwner(change.value);
    this.known.set(clientId, { revision: change.revision, present: change.value !== null, node: owner?.node ?? null });
    // Claims that failed on the revision this change replaces go again at this one.
    for (const claim of this.claims.values()) {
      if (claim.clientId === clientId && claim.requestId === 0 && claim.triedRevision !== null) this.issue(claim);
    }
    if (owner !== null && owner.node !== this.nodeId) this.evict(clientId, owner.node, nowMs);
  }

  /** Another node owns `clientId`: close this node's connection of it (0x8E) and end its session here. */
  private evict(clientId: string, node: string, nowMs: number): void {
    const connection = this.broker.online.get(clientId);
    if (connection !== undefined) {
      this.counters.takenOver += 1;
      this.broker.stats.takeovers += 1;
      this.broker.log('info', 'session-takeover', { clientId, connectionId: connection.id, byNode: node });
      // [MQTT-3.1.4-3] The existing connection is closed; 5.0 says why first.
      if (connection.version === 5) this.broker.sendPacket(connection, { type: PacketType.Disconnect, reasonCode: ReasonCode.SessionTakenOver }, 0, true);
      this.broker.closeConnection(connection, nowMs, `session taken over by node ${node}`, 'publish', true);
    }
    if (!this.broker.state.sessions.has(clientId) && !this.broker.pendingWills.has(clientId)) return;
    this.counters.sessionsDropped += 1;
    this.broker.log('info', 'session-moved', { clientId, toNode: node });
    endSession(this.broker, clientId, nowMs);
  }
}
