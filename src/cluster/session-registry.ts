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
 * CONNECT of a client id to reach the bucket wins. An attempt whose answer says nothing of its
 * outcome (the link dropped while it was out, or it failed with `unavailable` or `timeout`) may
 * have won all the same: the watch showing its generation is the claim's win, with the hand-over
 * that attempt asked for (the other nodes acted on that value already: the old owner keeps its
 * session for that hand-over). Taking it for lost and claiming again over it would ask again with
 * what the node sees then, which may be its own claim and a stale copy of the session (seed 6600379).
 *
 * Every node watches the bucket. A node that sees a client id owned by another node closes its
 * own connection of that id (MQTT 5: DISCONNECT 0x8E Session taken over; 3.1.1: a close), as an
 * abnormal end, so the will follows the single-node rules, and ends the session it held for that
 * id (its queued messages and subscriptions are dropped and counted, a delayed will fires now).
 * A node that was cut off from NATS, or down, while its client moved does the same once its
 * watch replays the bucket: until then the client has two sessions, one on each side of the cut.
 *
 * A CONNECT with clean start 0 over a key another node owns asks that node for the session
 * (`handoverFrom` in the claim's value; session-handover.ts): the won CONNECT stays parked until
 * the session arrived or the hand-over gave up (or a newer claim elsewhere replaced its claim: it
 * is closed then, unanswered), and the old owner keeps its session (offline) for
 * the hand-over instead of ending it. A claim without a hand-over (clean start 1) ends it there.
 * A node's CONNECT that comes while its own earlier claim's hand-over is still on its way queues
 * no marker (`awaitsEarlier`): its value names the earlier claim whose marker carries the
 * hand-over (`markerRevision`), so the source knows at which marker the newest claim expects it.
 * A claim that asks for a hand-over also names its session's line (`lineageRevision`: the newest
 * claim of its chain that asked no one), and every session a node makes or adopts records the
 * revision of its claim (SessionState.claimRevision, passed to acceptConnect): a source keeps a copy
 * for a newer claim only when it is of that claim's line (session-handover.ts sourceServes), and a
 * CONNECT over this node's own claim takes a session here for that claim's only when it was made
 * or adopted under it (claimSession). Both hold after a restart, which keeps only the newest claim.
 * A hand-over given up (its CONNECT answered with a fresh session) is written as a claim of this
 * node that asks no one and names the given-up claim as its line (claimGivenUp): the key then says
 * where the client's session is, and an older copy elsewhere is ended, not handed over later.
 * A claim that asks for a hand-over names its priors too (`priors`): the node the key's claim asked
 * and the priors that claim named, unless this node has read that claim's marker; the marker names
 * them all, and one of them may still hold the session (session-handover.ts, the chain of priors).
 *
 * Without NATS a node cannot claim: a CONNECT waits up to `claimWaitMs` for the link and the
 * bucket, then is refused with CONNACK 0x88 Server unavailable (3.1.1: 3), so that the client
 * tries again, possibly through another node. Connections already up keep being served. A claim
 * that reaches the bucket after its CONNECT was refused (or its client left) still moves the
 * ownership: the client did ask to take its id over.
 *
 * Costs: one key-value compare-and-set round trip to NATS before every CONNACK; one key per client
 * id whose session lives, held by the bucket and, as (revision, owner) pairs, in every node's
 * memory. A session that ends on a node (expiry, a clean session's end) has its key deleted there
 * at the end of the input, with a compare-and-set at the revision the node owns: a newer claim by
 * another node is never deleted. A deletion that fails for another reason than the revision is
 * tried again at the end of a later input while the link is up.
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
import { type KnownKey, KnownKeys } from './known-keys.js';
import { retainedKey, topicOfRetainedKey } from './retained-entries.js';
import type { SessionHandover } from './session-handover.js';

export const sessionsBucket = 'keel-sessions';
/** How long a CONNECT waits for its claim before it is refused with 0x88 Server unavailable. */
export const claimWaitMs = 5_000;
/** A claim that failed for another reason than the revision is tried again after this long. */
export const claimRetryMs = 250;
/** Hand-overs given up while the link was down that wait to be written at most (more are logged, not written: SessionRegistry.claimGivenUp). */
const givenUpUnwrittenMax = 4_096;
/** Ended sessions whose keys wait for deletion at most (more are left in the bucket, harmless: a later claim overwrites them). */
const endedKeysMax = 65_536;

export interface SessionOwner {
  readonly node: string;
  readonly generation: string;
  /** The node asked to hand the session over (session-handover.ts); absent: none (a clean start, or no other owner). */
  readonly handoverFrom?: string;
  /**
   * The revision of the earlier claim of the same node whose marker carries this claim's
   * hand-over, for a claim that queued no marker of its own (awaitsEarlier); absent: its own
   * marker carries it. A source reads it to tell whether a newer claim that asks it for the
   * session still has a marker to come after the one it stands at (session-handover.ts sourceServes).
   */
  readonly markerRevision?: number;
  /**
   * The session's line: the revision of the newest claim, in the chain of hand-overs this claim
   * continues, that asked no node for the session (a fresh start, or a resume where the session
   * was). Every session of the client handed along the chain since descends from the one made
   * under that claim, so a copy made before it (SessionState.claimRevision) is not the session this
   * claim asks for: its source ends it instead of keeping it for this claim (session-handover.ts
   * sourceServes, seed 8100075). Absent: unknown (a node of before it, or a chain through one),
   * and the source keeps any copy, as it did then. On a claim that asks no one it marks the claim
   * written for a hand-over given up (SessionRegistry.claimGivenUp): the line starts at the claim
   * whose hand-over was given up, under which the fresh session was made, not at this one. A node
   * of before it reads such a value as a claim that asks no one (its line this claim itself).
   */
  readonly lineageRevision?: number;
  /**
   * The node whose claim started the line (`lineageRevision`), on a claim that asks for a hand-over;
   * a claim that asks no one starts its line itself (or, written for a hand-over given up, at its
   * own node's given-up claim). A copy older than the line is stale only on another node than this
   * one: on the line's own node it may be the session itself, when the record of the claim's
   * resume (or fresh start) was lost in a crash before it was durable, and the client was never
   * answered (session-handover.ts copyStale). Absent: unknown (a node of before it), and a copy
   * older than the line is taken for stale, as before.
   */
  readonly lineageNode?: string;
  /**
   * The nodes this claim's marker names besides the one it asks (its priors): the earlier sources
   * of the chain of moves still short of the stream when the claim was made, nearest first, at
   * most handoverPriorsMax (session-handover.ts, the chain of priors). The next claim that asks
   * this claim's node extends it. Absent: none (a claim that asked no one, one whose node had read
   * the marker before it, or a node of before chains, whose marker names at most one: the next
   * claim then names only the node this one asked, as before).
   */
  readonly priors?: readonly string[];
}

/**
 * Priors one marker names at most. A cluster of K nodes names at most K - 2 (a node never names
 * itself or the node it asks, nor one node twice), so the bound matters only past ten nodes; past
 * it the farthest are left out, logged (`handover-priors-truncated`): a node left out that still
 * holds the session ends it at the marker as a copy (`handover-copy-ended`), and the client is
 * told session present 0, as before chains.
 */
export const handoverPriorsMax = 8;

const noPriors: readonly string[] = Object.freeze([]);

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
  const value: Record<string, string | number | readonly string[]> = { node: owner.node, generation: owner.generation };
  if (owner.handoverFrom !== undefined) value.handoverFrom = owner.handoverFrom;
  if (owner.markerRevision !== undefined) value.markerRevision = owner.markerRevision;
  if (owner.lineageRevision !== undefined) value.lineageRevision = owner.lineageRevision;
  if (owner.lineageNode !== undefined) value.lineageNode = owner.lineageNode;
  if (owner.priors !== undefined && owner.priors.length > 0) value.priors = owner.priors;
  return textEncoder.encode(JSON.stringify(value));
}

/** The owner in a value, or null for a value this encoding never makes. */
export function decodeOwner(value: Uint8Array): SessionOwner | null {
  const plain = decodePlainOwner(value);
  if (plain !== undefined) return plain;
  let parsed: unknown;
  try {
    parsed = JSON.parse(textDecoder.decode(value));
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const { node, generation, handoverFrom, markerRevision, lineageRevision, lineageNode, priors } = parsed as Record<string, unknown>;
  if (typeof node !== 'string' || node.length === 0 || typeof generation !== 'string') return null;
  if (typeof handoverFrom !== 'string' || handoverFrom.length === 0) {
    // A claim that asks no one names a line only when it writes a hand-over given up (claimGivenUp).
    return isRevision(lineageRevision) ? { node, generation, lineageRevision } : { node, generation };
  }
  // Only a claim that asks for a hand-over waits for an earlier one's marker, and asks from a claim.
  const owner: { -readonly [K in keyof SessionOwner]: SessionOwner[K] } = { node, generation, handoverFrom };
  if (isRevision(markerRevision)) owner.markerRevision = markerRevision;
  if (isRevision(lineageRevision)) owner.lineageRevision = lineageRevision;
  if (typeof lineageNode === 'string' && lineageNode.length > 0) owner.lineageNode = lineageNode;
  const chain = priorsOfValue(priors, node, handoverFrom);
  if (chain.length > 0) owner.priors = chain;
  return owner;
}

/**
 * The priors a claim's value names (SessionOwner.priors): node names, neither the claim's node nor
 * the one it asks, each once, at most handoverPriorsMax. Anything else in the field names none.
 */
export function priorsOfValue(value: unknown, node: string, handoverFrom: string): readonly string[] {
  if (!Array.isArray(value) || value.length === 0) return noPriors;
  const priors: string[] = [];
  for (const each of value.slice(0, handoverPriorsMax)) {
    if (typeof each !== 'string' || each.length === 0 || each === node || each === handoverFrom || priors.includes(each)) return noPriors;
    priors.push(each);
  }
  return priors;
}

/**
 * A claim's line: the one it carries when it asked a node for the session; when it asked no one, a
 * new line starts there, at its own revision, or, for the claim that writes a hand-over given up
 * (claimGivenUp), at the given-up claim's revision it names (the fresh session was made under it).
 */
function lineageOf(handoverFrom: string | null, lineageRevision: number | null, revision: number): number | null {
  if (handoverFrom !== null) return lineageRevision;
  return lineageRevision === null || lineageRevision > revision ? revision : lineageRevision;
}

/** The node of a claim's line (lineageOf): the one its value names when it asked a node for the session, else its own. */
function lineageNodeOf(handoverFrom: string | null, lineageNode: string | null, node: string | null): string | null {
  return handoverFrom !== null ? lineageNode : node;
}

function isRevision(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

const plainOwnerStart = textEncoder.encode('{"node":"');
const plainOwnerMiddle = textEncoder.encode('","generation":"');
const plainOwnerEnd = textEncoder.encode('"}');

/**
 * The owner of a value in the form encodeOwner gives a claim without a hand-over,
 * `{"node":"<node>","generation":"<generation>"}` with both strings printable ASCII other than
 * `"` and `\` (so each reads as it is written), decoded without JSON.parse: nearly every key a
 * watch replays. Undefined for any other value (decodeOwner parses it); null where decodeOwner's
 * rule gives null (an empty node).
 */
function decodePlainOwner(value: Uint8Array): SessionOwner | null | undefined {
  if (!bytesAt(value, 0, plainOwnerStart)) return undefined;
  const nodeStart = plainOwnerStart.length;
  const nodeEnd = plainStringEnd(value, nodeStart);
  if (!bytesAt(value, nodeEnd, plainOwnerMiddle)) return undefined;
  const generationStart = nodeEnd + plainOwnerMiddle.length;
  const generationEnd = plainStringEnd(value, generationStart);
  if (generationEnd + plainOwnerEnd.length !== value.length || !bytesAt(value, generationEnd, plainOwnerEnd)) return undefined;
  if (nodeEnd === nodeStart) return null;
  return { node: nodeText(value, nodeStart, nodeEnd), generation: asciiText(value, generationStart, generationEnd) };
}

function bytesAt(value: Uint8Array, offset: number, expected: Uint8Array): boolean {
  if (offset + expected.length > value.length) return false;
  for (let index = 0; index < expected.length; index++) if (value[offset + index] !== expected[index]) return false;
  return true;
}

/** Where a run of bytes that a JSON string holds as they are (0x20 to 0x7e, not `"` or `\`) from `start` ends. */
function plainStringEnd(value: Uint8Array, start: number): number {
  let index = start;
  for (; index < value.length; index++) {
    const byte = value[index]!;
    if (byte < 0x20 || byte > 0x7e || byte === 0x22 || byte === 0x5c) break;
  }
  return index;
}

/** Node names decoded lately, with their bytes, newest last: a cluster has a handful of nodes. */
const recentNodes: { readonly bytes: Uint8Array; readonly text: string }[] = [];
const recentNodesMax = 16;

/**
 * A node name as text, the same string as the last time these bytes were decoded: every known
 * key of a node's clients then shares its owner's name (as JSON.parse shares short strings it
 * makes) instead of holding a copy (24 bytes a key).
 */
function nodeText(value: Uint8Array, start: number, end: number): string {
  for (let index = recentNodes.length - 1; index >= 0; index--) {
    const recent = recentNodes[index]!;
    if (recent.bytes.length === end - start && bytesAt(value, start, recent.bytes)) return recent.text;
  }
  const text = asciiText(value, start, end);
  if (recentNodes.length === recentNodesMax) recentNodes.shift();
  recentNodes.push({ bytes: value.slice(start, end), text });
  return text;
}

/** ASCII bytes as text: char by char up to 12 (V8 keeps that flat; codec/utf8.ts), else through TextDecoder. */
function asciiText(value: Uint8Array, start: number, end: number): string {
  if (end - start > 12) return textDecoder.decode(value.subarray(start, end));
  let text = '';
  for (let index = start; index < end; index++) text += String.fromCharCode(value[index]!);
  return text;
}

/** The newest claim of a client id a node has seen (SessionRegistry.newestClaim). */
export interface NewestClaim {
  readonly revision: number;
  readonly node: string;
  readonly handoverFrom: string | null;
  /** The revision of the claim whose marker carries its hand-over: `revision`, or an earlier claim's (SessionOwner.markerRevision). */
  readonly markerRevision: number;
  /** Its session's line (SessionOwner.lineageRevision; `revision` for a claim that asked no one), null when unknown. */
  readonly lineageRevision: number | null;
  /** The node of the claim that started that line (SessionOwner.lineageNode), null when unknown. */
  readonly lineageNode: string | null;
  /** The earlier sources its marker names after `handoverFrom` (SessionOwner.priors; the chain of priors). */
  readonly priors: readonly string[];
}

/** The value a claim puts into `keel-sessions`. */
function ownerOfClaim(
  nodeId: string,
  generation: string,
  claim: { handoverFrom: string | null; markerRevision: number | null; lineageRevision: number | null; lineageNode: string | null; priors: readonly string[] },
): SessionOwner {
  if (claim.handoverFrom === null) return { node: nodeId, generation };
  const owner: { -readonly [K in keyof SessionOwner]: SessionOwner[K] } = { node: nodeId, generation, handoverFrom: claim.handoverFrom };
  if (claim.markerRevision !== null) owner.markerRevision = claim.markerRevision;
  if (claim.lineageRevision !== null) owner.lineageRevision = claim.lineageRevision;
  if (claim.lineageNode !== null) owner.lineageNode = claim.lineageNode;
  if (claim.priors.length > 0) owner.priors = claim.priors;
  return owner;
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
  /** The node its last attempt asked to hand the session over, null for none. */
  handoverFrom: string | null;
  /** Its hand-over is the one an earlier claim of this node asked for (no marker of its own). */
  awaitsEarlier: boolean;
  /** With awaitsEarlier: the revision of the claim whose marker carries the hand-over (SessionOwner.markerRevision). */
  markerRevision: number | null;
  /** With handoverFrom: its session's line (SessionOwner.lineageRevision), the one of the claim it replaces; null when unknown. */
  lineageRevision: number | null;
  /** With handoverFrom: the node of its line's first claim (SessionOwner.lineageNode); null when unknown. */
  lineageNode: string | null;
  /**
   * The nodes the asked one was itself waiting for the session from, when the key showed such a
   * claim, and the ones that node's claim named in turn, nearest first (session-handover.ts, the
   * chain of priors): one of them still holds the session if the earlier moves have not reached
   * the stream before this one's marker. Empty for none.
   */
  priors: readonly string[];
  /** The generation its last attempt wrote, '' before the first. */
  generation: string;
  /**
   * The revision at which the watch showed the attempt out now (its generation) in the bucket,
   * before the attempt's own answer came; null otherwise. The claim won there, and its hand-over
   * begins when that answer comes (`pendingWin`).
   */
  shownAt: number | null;
  /**
   * Attempts whose answer never came or said nothing of the outcome (the link dropped while they
   * were out, or they failed with `unavailable` or `timeout`): any of them may have won in the
   * bucket. The watch showing one's generation is this claim's win (`wonUnanswered`), with the
   * hand-over that attempt asked for. At most `unansweredMax`, the oldest forgotten first.
   */
  readonly unanswered: Attempt[];
}

/** What a claim's attempt wrote: its generation, and the hand-over it asked for. */
interface Attempt {
  readonly generation: string;
  readonly handoverFrom: string | null;
  readonly awaitsEarlier: boolean;
  readonly markerRevision: number | null;
  readonly lineageRevision: number | null;
  readonly lineageNode: string | null;
  readonly priors: readonly string[];
}

/** Unanswered attempts a claim remembers at most: one per link drop or failed attempt within claimWaitMs. */
const unansweredMax = 16;

const noClaims: readonly Claim[] = [];

export class SessionRegistry {
  private connected = false;
  /** The request id of the newest watch of the bucket, 0 before the first. */
  private watchRequestId = 0;
  /**
   * The newest watch has replayed the whole bucket (contract.ts clusterWatchCurrent): what this
   * node knows of every key is at least as new as the moment it asked. Until then a key it does
   * not know may well be claimed, newer than a marker the stream brings first, so the stream
   * reader does not read markers (cluster-node.ts): what the hand-over decides at a marker by
   * (newestClaim, ownedHere) is whole by then. Seed 3400116: n0, back on NATS, met an older claim's
   * marker that asked it for the session before its watch replayed its own newer claim; taking the
   * marker's claim for the newest, it closed its client and handed the session to the older
   * claim's node, which handed it back at n0's own marker, where n0 (its CONNECT long answered
   * with a fresh session) dropped it as late. Seed 5000791: the same after a restart, when a node
   * has no memory of its claims at all.
   */
  private current = false;
  private nextGeneration = 1;
  private readonly known = new KnownKeys();
  private readonly claims = new Map<ConnectionId, Claim>();
  /**
   * The same claims by client id, each list in the order of `claims`: a key change and an ended
   * session look up their client's claims here instead of walking every claim (a reconnect storm
   * during a watch's replay makes thousands of claims meet a hundred thousand key changes).
   */
  private readonly claimsByClient = new Map<string, Claim[]>();
  private readonly requests = new Map<number, Claim>();
  /** CONNECTs whose claim is won, waiting for their hand-over, by client id. */
  private readonly parked = new Map<string, { claim: Claim; revision: number }>();
  /** Sessions that ended here since the last input's end, whose keys may go (afterInput). */
  private readonly endedKeys = new Set<string>();
  /** Key deletions out: request id → client id. */
  private readonly deletions = new Map<number, string>();
  /** Claims out that write a hand-over given up (claimGivenUp): request id → client id and the given-up claim's revision. */
  private readonly givenUp = new Map<number, { readonly clientId: string; readonly revision: number }>();
  /** Hand-overs given up while the link was down, to write once the watch has replayed the bucket: client id → the given-up claim's revision. */
  private readonly givenUpUnwritten = new Map<string, number>();
  readonly counters = { claims: 0, claimsWon: 0, claimRetries: 0, claimsRefused: 0, takenOver: 0, sessionsDropped: 0, keysDeleted: 0 };

  constructor(
    private readonly broker: Broker,
    private readonly nodeId: string,
    private readonly newRequestId: () => number,
    private readonly epoch: () => number,
    private readonly handover: SessionHandover,
  ) {}

  /** Whether the newest claim of `clientId` this node has seen is its own. */
  ownedHere(clientId: string): boolean {
    const known = this.known.get(clientId);
    return known?.present === true && known.node === this.nodeId;
  }

  /** The newest claim of `clientId` this node has seen (revision, owner, the node it asked), null when none. */
  /**
   * Whether the claim of `clientId` at `revision` is one of this node's whose attempt the watch
   * showed winning before the attempt's answer came: its hand-over (if it asked for one) has not
   * begun here yet, and begins when that answer comes.
   */
  pendingWin(clientId: string, revision: number): boolean {
    for (const claim of this.claimsByClient.get(clientId) ?? noClaims) if (claim.requestId !== 0 && claim.shownAt === revision) return true;
    return false;
  }

  newestClaim(clientId: string): NewestClaim | null {
    const known = this.known.get(clientId);
    if (known === undefined || !known.present || known.node === null) return null;
    return {
      revision: known.revision,
      node: known.node,
      handoverFrom: known.handoverFrom,
      markerRevision: known.markerRevision,
      lineageRevision: known.lineageRevision,
      lineageNode: known.lineageNode,
      priors: known.priors,
    };
  }

  /** Whether the watch has replayed the bucket since the link came up (or the node started): markers may be read. */
  get watchCurrent(): boolean {
    return this.current;
  }

  /** The stream reader reached the marker of `node`'s claim of `clientId` at `revision` (session-handover.ts). */
  markerPassed(clientId: string, node: string, revision: number): void {
    const known = this.known.get(clientId);
    if (known !== undefined && known.revision === revision && known.node === node && !known.markerPassed) this.known.set(clientId, { ...known, markerPassed: true });
  }

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
    const claim: Claim = {
      connection,
      packet,
      authentication,
      clientId,
      deadlineMs: nowMs + claimWaitMs,
      requestId: 0,
      triedRevision: null,
      handoverFrom: null,
      awaitsEarlier: false,
      markerRevision: null,
      lineageRevision: null,
      lineageNode: null,
      priors: noPriors,
      generation: '',
      shownAt: null,
      unanswered: [],
    };
    this.claims.set(connection.id, claim);
    const ofClient = this.claimsByClient.get(claim.clientId);
    if (ofClient === undefined) this.claimsByClient.set(claim.clientId, [claim]);
    else ofClient.push(claim);
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
    // Clean start 0 over another node's key: that node is asked for the session (session-handover.ts).
    const owner = known?.present === true ? known.node : null;
    claim.handoverFrom = !claim.packet.cleanStart && owner !== null && owner !== this.nodeId ? owner : null;
    // A claim that asks for the session continues the line of the claim it replaces.
    claim.lineageRevision = claim.handoverFrom === null || known?.present !== true ? null : known.lineageRevision;
    claim.lineageNode = claim.handoverFrom === null || known?.present !== true ? null : known.lineageNode;
    // The owner's own claim asked a node for the session: unless this node has read that claim's
    // marker already (so the owner's move is ahead of this one in the stream), the marker names
    // that node too, which may still hold the session there, and the nodes that claim named in
    // turn (session-handover.ts, the chain of priors).
    claim.priors = claim.handoverFrom === null || known?.present !== true || known.markerPassed ? noPriors : this.priorsOf(claim.clientId, claim.handoverFrom, known);
    // This node's own earlier claim asked for a hand-over that has not come (a session here is that
    // hand-over's only when it was made or adopted under that claim: claimSession): the CONNECT
    // asks the same node again. While this life waits for that hand-over, or the earlier claim's
    // marker is still in the outbox (queued before a restart), the CONNECT waits for that marker
    // too, without a new one (awaitsEarlier). Otherwise the earlier marker may never have been
    // queued: the node crashed after its claim won and before the marker was durable in its outbox,
    // and a CONNECT waiting for it waited in vain while the asked node held the session (seed
    // 19100002). So it queues a marker of its own. If the earlier one is in the stream after all,
    // the asked node keeps the session there for this newer claim, which asks it too
    // (sourceServes), or hands it over there, where this node adopts it as an older claim's marker
    // and answers the CONNECT with it at its own.
    claim.awaitsEarlier = false;
    claim.markerRevision = null;
    if (!claim.packet.cleanStart && owner === this.nodeId && known?.handoverFrom != null && !this.claimSession(claim.clientId, known.markerRevision)) {
      claim.handoverFrom = known.handoverFrom;
      claim.awaitsEarlier = this.handover.awaiting(claim.clientId, known.markerRevision);
      // Waiting: the key names this node's earlier claim, whose marker (or the one it waits for in turn) carries the hand-over.
      if (claim.awaitsEarlier) claim.markerRevision = known.markerRevision;
      claim.lineageRevision = known.lineageRevision;
      claim.lineageNode = known.lineageNode;
      // The earlier claim's marker names its priors; the value passes them on to the next claim.
      claim.priors = known.priors;
    }
    claim.requestId = this.newRequestId();
    this.requests.set(claim.requestId, claim);
    const generation = `${this.epoch()}.${this.nextGeneration++}`;
    claim.generation = generation;
    const value = encodeOwner(ownerOfClaim(this.nodeId, generation, claim));
    this.broker.pushCluster({ op: 'kv-set', requestId: claim.requestId, bucket: sessionsBucket, key: sessionKey(claim.clientId), value, expectedRevision });
  }

  /**
   * The priors of a claim that asks `asked`, over the key `owner` (asked's claim): the node asked's
   * claim asked and the priors it named, nearest first, but for this node (it holds what it holds)
   * and the node asked (it answers as such), each once, at most handoverPriorsMax, the farthest
   * left out past it (logged).
   */
  private priorsOf(clientId: string, asked: string, owner: KnownKey): readonly string[] {
    if (owner.handoverFrom === null) return noPriors;
    const priors: string[] = [];
    const left: string[] = [];
    for (const node of [owner.handoverFrom, ...owner.priors]) {
      if (node === this.nodeId || node === asked || priors.includes(node) || left.includes(node)) continue;
      if (priors.length < handoverPriorsMax) priors.push(node);
      else left.push(node);
    }
    if (left.length > 0) this.broker.log('warn', 'handover-priors-truncated', { clientId, priors: priors.join(','), leftOut: left.join(',') });
    assert(priors.length <= handoverPriorsMax, 'a marker names at most handoverPriorsMax priors');
    return priors.length === 0 ? noPriors : priors;
  }

  /**
   * Whether this node holds the session of its own claim whose hand-over comes at the marker of
   * `markerRevision`: a session made or adopted under that claim or a later one (its give-up's fresh
   * session, or the state adopted at that marker), or one whose claim is unknown (a log of before
   * revisions: today's rule, any session). A copy made under an older claim is not it: one this node
   * still owed to an older claim elsewhere when it won its own (the restart variant of seed 6600379:
   * taken for the session after a restart before the marker, it was resumed with session present 1
   * while the node asked ended the client's real one).
   */
  private claimSession(clientId: string, markerRevision: number): boolean {
    const session = this.broker.state.sessions.get(clientId);
    if (session === undefined) return false;
    return session.claimRevision === undefined || session.claimRevision >= markerRevision;
  }

  /** The link came up (watch the bucket, claim again) or went down (what is out may be lost). */
  linkChanged(up: boolean): void {
    this.connected = up;
    this.current = false;
    // An attempt out when the link changed may have reached the bucket: its answer is lost.
    for (const claim of this.claims.values()) {
      if (claim.requestId !== 0) this.unanswered(claim);
      claim.requestId = 0;
    }
    // A give-up's claim out now may have won or not: the watch shows which (claimGivenUp).
    this.givenUp.clear();
    if (!up) return;
    // The watch replays every key: what it does not replay is gone (a NATS that lost its store
    // starts its revisions again from 1, which the old ones would hide). Markers wait meanwhile
    // (`current`), so nothing is decided on the half-replayed view.
    this.known.clear();
    this.rewatch();
    for (const claim of this.claims.values()) this.issue(claim);
  }

  /** Watches the bucket (again: the node was connected before its recovery ended, and dropped what came). */
  rewatch(): void {
    this.current = false;
    this.watchRequestId = this.newRequestId();
    this.broker.pushCluster({ op: 'kv-watch', requestId: this.watchRequestId, bucket: sessionsBucket });
  }

  /**
   * A watch of the bucket has replayed it (contract.ts clusterWatchCurrent). For the newest watch
   * the registry is current: the stream reader may read markers again. Returns whether it became
   * current. An older watch's answer (replaced since, or from before the link dropped) is ignored:
   * what that watch delivered may have been dropped (a node still recovering drops key changes).
   */
  watchReplayed(requestId: number): boolean {
    if (requestId !== this.watchRequestId || !this.connected || this.current) return false;
    this.current = true;
    for (const [clientId, revision] of this.givenUpUnwritten) this.claimGivenUp(clientId, revision);
    this.givenUpUnwritten.clear();
    return true;
  }

  /** Handles a completion if it answers a claim; false when it is someone else's. */
  completed(nowMs: number, result: ClusterResult): boolean {
    const givenUp = this.givenUp.get(result.requestId);
    if (givenUp !== undefined) {
      this.givenUp.delete(result.requestId);
      this.givenUpCompleted(givenUp, result);
      return true;
    }
    const deleted = this.deletions.get(result.requestId);
    if (deleted !== undefined) {
      this.deletions.delete(result.requestId);
      // Another claim came first (wrong-revision): the key is not this node's to delete any more.
      if (!result.ok && result.code !== 'wrong-revision') this.sessionEnded(deleted);
      return true;
    }
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
    // Only a wrong revision says the attempt did not win; after any other failure it may have.
    if (result.code !== 'wrong-revision') this.unanswered(claim);
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

  /** The claim's last attempt may have won without this node learning it: remember what it wrote. */
  private unanswered(claim: Claim): void {
    assert(claim.generation !== '', 'only an attempt that went out is unanswered');
    if (claim.unanswered.length === unansweredMax) claim.unanswered.shift();
    claim.unanswered.push({
      generation: claim.generation,
      handoverFrom: claim.handoverFrom,
      awaitsEarlier: claim.awaitsEarlier,
      markerRevision: claim.markerRevision,
      lineageRevision: claim.lineageRevision,
      lineageNode: claim.lineageNode,
      priors: claim.priors,
    });
  }

  /**
   * The watch shows `owner` at `revision`: if it is an unanswered attempt of a claim still
   * waiting here, that claim won there, with the hand-over that attempt asked for. Taken for a
   * claim lost instead, the claim went out again over its own win with what the node saw then
   * (seed 6600379: n1's claim asking n0 for the session won while n1 was cut from NATS; its next
   * attempt, holding a stale copy n1 had not yet handed over, took that copy for the session,
   * asked no one and resumed it with session present 1, while n0 ended the client's real session
   * at the claim without a hand-over; a will routed into both reached the client twice).
   */
  private wonUnanswered(clientId: string, owner: SessionOwner, revision: number, nowMs: number): void {
    // won() finishes the claim, and the loop returns right after it.
    for (const claim of this.claimsByClient.get(clientId) ?? noClaims) {
      const attempt = claim.unanswered.find((candidate) => candidate.generation === owner.generation);
      if (attempt === undefined) continue;
      assert(owner.node === this.nodeId, 'a generation of this node is claimed by this node');
      assert((owner.handoverFrom ?? null) === attempt.handoverFrom, 'the key holds what the attempt wrote');
      assert((owner.markerRevision ?? null) === attempt.markerRevision, 'the key names the marker the attempt wrote');
      // Whatever attempt is out now is stale: its answer is ignored (completed), the claim finished.
      claim.requestId = 0;
      claim.handoverFrom = attempt.handoverFrom;
      claim.awaitsEarlier = attempt.awaitsEarlier;
      claim.markerRevision = attempt.markerRevision;
      claim.lineageRevision = attempt.lineageRevision;
      claim.lineageNode = attempt.lineageNode;
      claim.priors = attempt.priors;
      this.won(claim, revision, nowMs);
      return;
    }
  }

  private won(claim: Claim, revision: number, nowMs: number): void {
    const connection = claim.connection;
    this.finish(claim);
    const known = this.known.get(claim.clientId);
    const markerRevision = claim.markerRevision ?? revision;
    assert(markerRevision <= revision, "a claim's hand-over comes at its own marker or an earlier claim's");
    if (known === undefined || known.revision < revision)
      this.known.set(claim.clientId, {
        revision,
        present: true,
        node: this.nodeId,
        handoverFrom: claim.handoverFrom,
        markerRevision,
        lineageRevision: lineageOf(claim.handoverFrom, claim.lineageRevision, revision),
        lineageNode: lineageNodeOf(claim.handoverFrom, claim.lineageNode, this.nodeId),
        priors: claim.priors,
        markerPassed: false,
      });
    const waiting = connection.phase === 'awaiting-connect';
    // A claim that waits for this node's earlier hand-over, without a marker of its own, finds it
    // done when the session was adopted here between the claim's issue and its win: nothing is left
    // to wait for (seed 22800176: n0's claim 40 went out while the session was still on its way for
    // claim 39, which adopted it 2 ms before 40 won; 40's CONNECT waited for the passed marker,
    // timed out and took the session over with a fresh one).
    const arrived = claim.awaitsEarlier && this.claimSession(claim.clientId, markerRevision);
    // Asked for a hand-over (or one is still on its way here): the CONNECT waits for the session.
    const asks = claim.handoverFrom !== null && !arrived;
    if (asks) this.handover.begin(claim.clientId, claim.handoverFrom!, nowMs, waiting, !claim.awaitsEarlier, revision, claim.priors);
    if (waiting && (asks || this.handover.park(claim.clientId))) return this.park(claim, revision, nowMs);
    // The client left (or timed out) meanwhile: the bucket says this node owns it, nothing else to do.
    if (!waiting) return;
    this.accept(claim, revision, nowMs);
  }

  /** Holds a won CONNECT, reading paused, until its hand-over is applied or given up (`answer`). */
  private park(claim: Claim, revision: number, nowMs: number): void {
    const previous = this.parked.get(claim.clientId);
    this.parked.set(claim.clientId, { claim, revision });
    claim.connection.claimPending = true;
    // An older CONNECT of the id parked here gives way to this one. It was never accepted, so
    // there is no session to take over from it (no DISCONNECT 0x8E): it is closed.
    if (previous !== undefined && previous.claim.connection.phase === 'awaiting-connect') {
      previous.claim.connection.claimPending = false;
      this.broker.closeConnection(previous.claim.connection, nowMs, 'a newer CONNECT of its client id came while it waited', 'discard', true);
    }
  }

  /** The hand-over of `clientId` is applied (or, `fresh`, given up): answer its parked CONNECT. */
  answer(clientId: string, nowMs: number, fresh: boolean): boolean {
    const parked = this.parked.get(clientId);
    if (parked === undefined) return false;
    this.parked.delete(clientId);
    parked.claim.connection.claimPending = false;
    if (parked.claim.connection.phase !== 'awaiting-connect') return false;
    // A fresh session: whatever this node still held of the id is not the client's any more.
    if (fresh && (this.broker.state.sessions.has(clientId) || this.broker.pendingWills.has(clientId))) endSession(this.broker, clientId, nowMs);
    this.accept(parked.claim, parked.revision, nowMs);
    if (fresh && this.broker.state.sessions.get(clientId)?.claimRevision === parked.revision) this.claimGivenUp(clientId, parked.revision);
    return true;
  }

  /**
   * The hand-over this node's claim at `revision` asked for was given up, and its CONNECT got a
   * fresh session made under that claim: the key says so, in a claim of this node that asks no one
   * and names `revision` as its line (SessionOwner.lineageRevision), at the key's revision (the
   * claim's: a newer one of another node would have dropped the CONNECT). Without it the key went
   * on naming the given-up claim, which asked a node for the session and so started no line: the
   * claims after it carried the line of the client's older session, and a node still holding a
   * copy of that session (the node asked, cut off, or a prior) could not tell it from the client's
   * session and kept it for a claim that asks it, to hand it over later over the fresh one
   * (handover-give-up.test.ts). With it, such a copy is older than the newest claim's line and is
   * ended (session-handover.ts copyStale); a node that sees the claim ends its copy at once, as at
   * any claim that asks no one (evict); and a claim after it names no priors behind this node.
   * Given up while the link is down (or the watch is replaying it), it is written once the watch
   * has replayed the bucket, if the key and the fresh session are still that claim's (in memory,
   * at most givenUpUnwrittenMax: a restart meanwhile forgets it). Not written when the key moved
   * on (a claim elsewhere): logged. Its answer needs nothing more: the watch shows it when it won
   * (an answer lost with the link included).
   */
  private claimGivenUp(clientId: string, revision: number): void {
    if (!this.connected || !this.current) {
      if (this.givenUpUnwritten.size < givenUpUnwrittenMax) this.givenUpUnwritten.set(clientId, revision);
      else this.broker.log('warn', 'handover-give-up-unclaimed', { clientId, claimRevision: revision, linkUp: this.connected });
      return;
    }
    const known = this.known.get(clientId);
    if (known === undefined || !known.present || known.revision !== revision || known.node !== this.nodeId || this.broker.state.sessions.get(clientId)?.claimRevision !== revision) {
      this.broker.log('warn', 'handover-give-up-unclaimed', { clientId, claimRevision: revision, linkUp: true });
      return;
    }
    // A claim that asked no one and waited for an earlier claim's hand-over (park) started a line already.
    if (known.handoverFrom === null) return;
    const requestId = this.newRequestId();
    this.givenUp.set(requestId, { clientId, revision });
    const value = encodeOwner({ node: this.nodeId, generation: `${this.epoch()}.${this.nextGeneration++}`, lineageRevision: revision });
    this.broker.pushCluster({ op: 'kv-set', requestId, bucket: sessionsBucket, key: sessionKey(clientId), value, expectedRevision: revision });
  }

  /** The answer to a claim written for a hand-over given up (claimGivenUp): known at once when it won. */
  private givenUpCompleted(request: { readonly clientId: string; readonly revision: number }, result: ClusterResult): void {
    if (!result.ok) {
      this.broker.log('warn', 'handover-give-up-unclaimed', { clientId: request.clientId, claimRevision: request.revision, code: result.code });
      return;
    }
    assert(result.sequence > request.revision, 'a claim wins at a newer revision than the one it replaces');
    const known = this.known.get(request.clientId);
    if (known !== undefined && known.revision >= result.sequence) return;
    this.known.set(request.clientId, {
      revision: result.sequence,
      present: true,
      node: this.nodeId,
      handoverFrom: null,
      markerRevision: result.sequence,
      lineageRevision: request.revision,
      lineageNode: this.nodeId,
      priors: noPriors,
      markerPassed: false,
    });
  }

  /**
   * A CONNECT parked here for a hand-over lost its claim to another node's. It was never accepted,
   * so it has no session to take over (no DISCONNECT 0x8E) and it gets none: it is closed, as one
   * that gives way here (park). A fresh session made for it would stay here, offline, and be taken
   * for the client's own: replaced by the state of the hand-over still on its way here, with the
   * copies of this node's own publications not kept (seed 2500593), or handed on to a node that
   * asks this one, over the session that node held (seed 2500585).
   */
  private dropParked(clientId: string, node: string, nowMs: number): void {
    const parked = this.parked.get(clientId);
    assert(parked !== undefined, 'only a parked CONNECT is dropped');
    this.parked.delete(clientId);
    const connection = parked.claim.connection;
    connection.claimPending = false;
    if (connection.phase !== 'awaiting-connect') return;
    this.broker.closeConnection(connection, nowMs, `its client id was claimed on node ${node} while it waited`, 'discard', true);
  }

  private accept(claim: Claim, revision: number, nowMs: number): void {
    const connection = claim.connection;
    this.counters.claimsWon += 1;
    acceptConnect(this.broker, connection, claim.packet, nowMs, claim.authentication, claim.clientId, revision);
    if ((connection.phase as string) !== 'connected') return;
    // The CONNECT's handler schedules the keepalive only for a CONNECT accepted at once.
    scheduleKeepAlive(this.broker, connection, nowMs);
    this.broker.continueReading(connection, nowMs);
    // A newer claim by another node, seen before this answer, wins over this one. The key may be
    // unknown here: the link came back and the watch has not replayed it yet (it evicts then).
    const newest = this.known.get(claim.clientId);
    if (newest === undefined) return;
    if (newest.revision > revision && newest.node !== null && newest.node !== this.nodeId) this.evict(claim.clientId, newest.node, newest.handoverFrom, nowMs);
  }

  private finish(claim: Claim): void {
    this.claims.delete(claim.connection.id);
    const ofClient = this.claimsByClient.get(claim.clientId)!;
    if (ofClient.length === 1) this.claimsByClient.delete(claim.clientId);
    else ofClient.splice(ofClient.indexOf(claim), 1);
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
    const knownRevision = this.known.revisionOf(clientId);
    if (knownRevision !== undefined && change.revision <= knownRevision) return;
    const owner = change.value === null ? null : decodeOwner(change.value);
    const markerRevision = owner?.markerRevision ?? change.revision;
    this.known.set(clientId, {
      revision: change.revision,
      present: change.value !== null,
      node: owner?.node ?? null,
      handoverFrom: owner?.handoverFrom ?? null,
      markerRevision,
      lineageRevision: owner === null ? null : lineageOf(owner.handoverFrom ?? null, owner.lineageRevision ?? null, change.revision),
      lineageNode: owner === null ? null : lineageNodeOf(owner.handoverFrom ?? null, owner.lineageNode ?? null, owner.node),
      priors: owner?.priors ?? noPriors,
      markerPassed: false,
    });
    if (owner !== null && owner.node === this.nodeId) {
      this.wonUnanswered(clientId, owner, change.revision, nowMs);
      for (const claim of this.claimsByClient.get(clientId) ?? noClaims) if (claim.requestId !== 0 && claim.generation === owner.generation) claim.shownAt = change.revision;
    }
    // Claims that failed on the revision this change replaces go again at this one.
    for (const claim of this.claimsByClient.get(clientId) ?? noClaims) {
      if (claim.requestId === 0 && claim.triedRevision !== null) this.issue(claim);
    }
    if (owner !== null && owner.node !== this.nodeId) this.evict(clientId, owner.node, owner.handoverFrom ?? null, nowMs);
  }

  /**
   * Another node owns `clientId`: close this node's connection of it (0x8E) and end its session
   * here, unless the new owner asked for a hand-over (`handoverFrom`): then the session waits,
   * offline, for the marker in the stream (session-handover.ts).
   */
  private evict(clientId: string, node: string, handoverFrom: string | null, nowMs: number): void {
    const connection = this.broker.online.get(clientId);
    if (connection !== undefined) {
      this.counters.takenOver += 1;
      this.broker.stats.takeovers += 1;
      this.broker.log('info', 'session-takeover', { clientId, connectionId: connection.id, byNode: node });
      // [MQTT-3.1.4-3] The existing connection is closed; 5.0 says why first.
      if (connection.version === 5) this.broker.sendPacket(connection, { type: PacketType.Disconnect, reasonCode: ReasonCode.SessionTakenOver }, 0, true);
      this.broker.closeConnection(connection, nowMs, `session taken over by node ${node}`, 'publish', true);
    }
    // A CONNECT parked here for a hand-over lost its claim before it was answered: it is closed,
    // as a parked CONNECT that gives way to a newer one here is (park). Accepting it would give it
    // a fresh session that the session handed over at its marker replaces; a publication of this
    // node's routed meanwhile would reach neither (seed 2600667: the session was here, so the
    // hand-over kept no copy for it, and the fresh one had no subscription).
    if (this.parked.has(clientId)) this.dropParked(clientId, node, nowMs);
    // The new owner asked for a hand-over: the session waits, offline, for its marker in the
    // stream, which hands it over from here or (the owner asked another node) ends it here.
    if (handoverFrom !== null) return;
    if (!this.broker.state.sessions.has(clientId) && !this.broker.pendingWills.has(clientId)) return;
    this.counters.sessionsDropped += 1;
    this.broker.log('info', 'session-moved', { clientId, toNode: node });
    endSession(this.broker, clientId, nowMs);
  }

  // ---- keys of ended sessions ---------------------------------------------------------------

  /**
   * A stale copy ended here (session-handover.ts endStale): its key stays. The key names a claim
   * that asks a node for the session of its line (this node's own, whose hand-over may never come
   * now, or another node's), and that session lives on there: deleted, the key would let the
   * client's next claim ask no one, and the node holding the session would end it (seed 13800053).
   */
  copyEnded(clientId: string): void {
    this.endedKeys.delete(clientId);
  }

  /** A session ended on this node (expiry, a clean start at disconnect): its key goes, at the end of the input. */
  sessionEnded(clientId: string): void {
    if (this.endedKeys.size < endedKeysMax) this.endedKeys.add(clientId);
  }

  /**
   * End of an input: delete the keys of sessions that ended here and stayed ended (no connection,
   * no claim, no hand-over), with a compare-and-set at the revision this node owns, so that a newer
   * claim by another node is never deleted. A key this node does not own (or has not seen yet on
   * its watch) is left alone.
   */
  afterInput(): void {
    if (this.endedKeys.size === 0 || !this.connected) return;
    for (const clientId of this.endedKeys) {
      this.endedKeys.delete(clientId);
      if (this.broker.state.sessions.has(clientId) || this.broker.online.has(clientId) || this.parked.has(clientId) || this.handover.waitingFor(clientId)) continue;
      if (this.claimsByClient.has(clientId)) continue;
      const known = this.known.get(clientId);
      if (known === undefined || !known.present || known.node !== this.nodeId) continue;
      const requestId = this.newRequestId();
      this.deletions.set(requestId, clientId);
      this.counters.keysDeleted += 1;
      this.broker.pushCluster({ op: 'kv-set', requestId, bucket: sessionsBucket, key: sessionKey(clientId), value: null, expectedRevision: known.revision });
    }
  }
}
