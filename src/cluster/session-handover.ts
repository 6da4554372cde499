/**
 * Session hand-over between cluster nodes: a client that connects with clean start 0 on node B
 * while node A owns its client id (session-registry.ts) gets A's session, with its subscriptions,
 * queued and inflight messages, QoS 2 receive state and pending will, and CONNACK session present 1.
 *
 * The seam is a marker in the hand-off stream. Every node reads the whole stream in order
 * (cluster-node.ts), so a message has one place relative to the marker: what comes before it was
 * routed by A into the session it hands over, what comes after it is routed by B into the session
 * it adopted. The marker goes into the stream only after B won the claim, through B's ordered,
 * durable hand-off queue (its outbox, so a crash of B cannot lose it).
 *
 * 1. B wins the claim of a client id whose key named another node A and whose CONNECT asks for
 *    clean start 0: the claim's value names A as the source (`handoverFrom`). B puts the marker
 *    (`$KEEL.handoff.$session`, the client id, A, the revision the claim won at) into its outbox
 *    and parks the CONNECT, reading paused, as the claim did.
 * 2. A, seeing the claim in `keel-sessions`, closes its connection of the id (DISCONNECT 0x8E, the
 *    will by the single-node rules: fired now, or pending when delayed) but keeps the session.
 * 3. A reaches the marker in the stream and stops applying the stream there. It decides whether
 *    to hand the session over or to answer that it has none (sourceServes: from the order of the
 *    claims, so that a replay decides alike), serializes the session (its records as a snapshot
 *    writes them, message bodies included, and the rules below that go with it) and, in one
 *    commit, logs that answer in its outbox and deletes its copy. Once the entry is durable it
 *    puts the answer into the `keel-handover` bucket under `<client key>.<marker sequence>` (one
 *    put, or, for a state larger than one NATS message, its parts one after the other and then a
 *    head naming them: handover-parts.ts); once the bucket holds it all, A records the marker as
 *    applied, then ends the entry, and goes on.
 * 4. B reaches the marker and stops applying the stream there until the state is in its watch of
 *    `keel-handover` (whole: a head counts only with every part it names), then writes the
 *    session into its own log (new message ids, times moved into its own clock) with the rules it
 *    brings, records the marker as applied, answers the parked CONNECT (session present 1,
 *    inflight messages resent with DUP), deletes the keys and goes on with the stream. A node that is neither A nor B (nor the prior, below) and still holds a copy
 *    of the session ends it there. A marker of B older than the one its CONNECT waits for (an earlier claim of B's, say
 *    before a restart) is applied the same way but does not answer that CONNECT.
 *
 * What is durable where, step by step, and who finishes the move after a crash:
 * - Before B's marker is durable in B's outbox: nothing moved. A crash of B loses the claim's
 *   CONNECT (the client connects again); the key names B, and B's next CONNECT of the id asks A
 *   again, with a marker of its own, when the earlier one is neither in its outbox nor noted as
 *   stored in the stream and not yet read (`markerSentOutboxSubject`): it was never queued (seed
 *   19100002). Within one life, or with that marker in the outbox or noted, it waits for the same
 *   hand-over instead (session-registry.ts, `awaitsEarlier`; seed 175).
 * - The marker in B's outbox, then in the stream: B's recovery publishes it again (dedupe id), so
 *   it reaches the stream once. The session is in A's log.
 * - B's CONNECT parked for the hand-over loses its claim to a newer one elsewhere (the client moved
 *   on): it is closed, never accepted, and B makes no session for it; B still takes the state if
 *   A serves it, and answers the next marker as any holder (session-registry.ts, seed 2500585: a
 *   fresh session made for that CONNECT was handed on as the client's, over its real session).
 * - A at the marker: the answer is in A's outbox and the session is gone from A's log, in one
 *   commit (a torn commit that kept the entry and not the deletion deletes it at recovery). A
 *   crash before that commit replays the marker and decides again, alike. A crash after it finds
 *   the entry at recovery and puts the same bytes again when the reader reaches the marker; the
 *   session is never in two places on A (seed 1200029: a session put, then still on A after a
 *   crash, was resumed there too). The bucket keeps the last put until B deletes it.
 * - B at the marker: the adopted session, its rules and the applied record go into B's log in one
 *   input; a crash before they are durable replays the marker and applies the state again (still
 *   in the bucket: B deletes the key only after). Once durable, the move is done.
 * - A down, or cut from NATS, for longer than `handoverWaitMs`: B gives up (session present 0,
 *   logged `handover-timed-out`); A finishes its part when it returns, and the state it puts then
 *   is dropped at B, its pending will published (it fires once, on B). B writes the give-up into
 *   `keel-sessions` (session-registry.ts claimGivenUp): a claim of B that asks no one, whose line
 *   is the given-up claim, where the fresh session was made. A node that sees it ends its copy (as
 *   at any claim that asks no one); one that sees only a later claim of that line (a watch that
 *   replays the bucket shows each key's newest) finds its copy older than the line and ends it at
 *   a marker (copyStale), instead of keeping it for a claim that asks it and handing it over there,
 *   over the fresh session (handover-give-up.test.ts). A cannot tell that B gave
 *   up, so at a marker whose claim is no longer the newest A hands nothing over that a newer claim
 *   counts on getting from A: when the newest claim asks A itself for the session (the client
 *   went from B on to a node that asks A, B again included), A keeps it for that claim's marker
 *   (sourceServes; seed 5010652: n1, back after a cut, handed the session at n0's older, given-up
 *   marker to n0, which dropped it, and had nothing for n0's newer claim, that asked n1).
 * - A's disk gone: the session is lost with it (as on one node); B gives up as above.
 *
 * A client that moves again before its previous move reached the stream (seeds 2100503, 2100903,
 * 2400367, 2400569): it moved from A' to A, and A's marker is still in A's outbox (A crashed, or
 * is cut off from NATS) when the client moves on to B. The key names A, so B asks A; but A has
 * not received the session, and B's marker reaches the stream before A's. At B's marker A' still
 * holds it (A' gives it up only at A's marker, which comes after). So B's claim reads A's own
 * source from the key (A's claim asked A', `handoverFrom`) and its marker names A' as the prior
 * (`Keel-Handover-Prior`). At the marker:
 * - A answers as a source always does: its session, or none (it has not received it);
 * - A' answers too, under a key of its own (`<client key>.p<marker sequence>`), the same way a
 *   source does (sourceServes, the answer logged with the session's deletion in one commit, put
 *   once durable, the reader held until the bucket has it): the session if it still holds it,
 *   else none;
 * - B applies A's answer when it is a session; when A has none, it waits for A''s and applies
 *   that (both keys go once the applied record is durable). A session from A' when A had one is
 *   a stale copy (A gave its client a fresh session since): dropped as late, its will fired.
 * B names no prior when its reader has passed A's marker already (the registry notes it per
 * claim): A's move is then ahead of B's in the stream. So the prior's extra put (most often
 * "none") and its reader's pause are paid only by a move that follows the previous one closely.
 * Each node decides from the marker's place in the stream and its own log, so a replay after a
 * crash decides alike. Later, at A's marker, A' has no session any more and answers none; A
 * applies that and, its CONNECT long taken over by B, has nothing. Who cannot be helped: A' down
 * or cut off for longer than `handoverWaitMs` (B gives up, as above).
 *
 * The chain of priors: the client may move on again while two or more of its moves are short of
 * the stream (A' to A, A to B, both markers unsent, then B to C; or, on three nodes, A's marker
 * lost in a crash before it was durable and the client back on A after B). So a claim's value
 * names its priors (`priors`), and the next claim asks the key's node and names, nearest first,
 * the node that claim asked and the priors it named, leaving out itself and the node it asks and
 * naming each node once (session-registry.ts), unless its reader has passed that claim's marker.
 * The marker carries them all (`Keel-Handover-Priors`; `Keel-Handover-Prior` still names the
 * nearest, for a node of before chains). Each prior answers as A' does above, under a key of its
 * own (the nearest under the key of before, prior number i under `<client key>.p<sequence>-<i>`),
 * and B takes the first session in the chain's order (the asked node's, then each prior's, nearest
 * first), waiting for each answer before it; those behind it are late. A nearer session than the
 * one first held is the client's newer one (a node gave its client a fresh session since), so a
 * farther one is a stale copy. At most handoverPriorsMax priors (8; a cluster of K nodes names at
 * most K - 2): past it the farthest are left out, logged (`handover-priors-truncated`), and a node
 * left out that holds the session ends it as a copy (`handover-copy-ended`): session present 0.
 * A prior of before chains, named past the nearest, does not answer: B waits up to its deadline
 * when every nearer answer is none, and gives up (session present 0), as it would have at once.
 * The markers of such a chain also reach the stream late: a node keeps its copy at the marker of
 * an older claim that does not name it when the newest claim it knows asks it for the session
 * (seed 2600276: it got the session after that older claim, as a prior).
 *
 * Local publications do not wait for the stream: a node routes what its own clients publish at
 * once and the stream gives the copy to the others. The holes this leaves at the seam are closed
 * with the per-node counter every hand-off carries (`Keel-Seq`, `<epoch>-<ticket>`, increasing in
 * the order the node queued them, across restarts), by rules each logged as an outbox entry:
 * - A routed its own publications into the session up to the moment it serialized it, and some of
 *   them may land in the stream after the marker, where B would route them again. The state
 *   carries A's counter at serialization (`cut`): B does not route A's messages at or below it
 *   to the session (a skip rule, ended when B meets a message of A above the cut). A skip rule
 *   still open when the session moves on goes with it (`carried`): the next owner would otherwise
 *   route again what an earlier source put into the session (seed 3).
 * - B routed its own publications queued after the marker and before it adopted the session
 *   without the session (unless the session was still on B: then routing put them in it, and the
 *   session comes back with B's own rule, below), and they are in the stream after the marker,
 *   where A does not route them either. B keeps them while it waits, whatever session of the
 *   client it has meanwhile (any other than the client's own is replaced by the adopted state:
 *   seed 2500593), and routes them to the adopted session alone right after the state. When B restarted in between, those copies
 *   are gone: B routes its own hand-offs since the marker from the stream to the session alone (a
 *   window). So does B when a newer claim of its own replaced the hand-over, and its copies, while
 *   its reader stood at the older marker (seed 2500836). The copies a newer hand-over keeps stay
 *   kept when B adopts at an older marker of its own with a window: they go to the session of the
 *   newer marker but for those an open window of the client still holds (they come from the
 *   stream, seed 2100095), since the session may leave with that window first (seed 2501259). While a window is open, B's newer
 *   publications reach that session through the stream too (the window grows to hold them), or
 *   they would overtake the older ones (order per publisher).
 * - A session handed on while a window is open goes with the window as a hole in its cut
 *   (`holes`): the next owner routes those of B's messages to it after all (seed 9), and when the
 *   session comes back to B, B opens the window again. A session that comes back to B with B's
 *   own rule still open (no holder read a message of B above its cut) gets B's publications
 *   above that cut from the stream too, not from the copies B kept, so they stay behind those of
 *   the holes (seed 2100398).
 * - That rule also says what the session holds of B's own hand-offs: every one at or below B's
 *   cut but those of the holes (B routed them into it while it held it, or they came to it through
 *   a window, now a hole). So a window B opens because it restarted since its marker starts at
 *   that cut, not at the marker, when the session brings the rule. B may have queued its marker
 *   while it still held the session for an older claim (of A, whose marker B reaches first), so its
 *   publications after its own marker and before it handed the session on at A's went into the
 *   session at once; a window from the marker routed them again (seeds 2300366, 2100545 with 2
 *   nodes, 2100107 with 3: a QoS 2 message twice, under two packet identifiers). The rule is still
 *   open then: B's hand-offs above its cut are all behind B's marker in the stream (B queued its
 *   marker before it read A's), so no holder met one before B's marker, whatever the moves and
 *   crashes between; and it is durable wherever the session is (logged with it, carried with it).
 *
 * Every decision at a marker rests on the claims the node has seen in `keel-sessions`: after its
 * link comes up (a reconnection, a restart) a node reads no marker until its watch has replayed
 * the bucket (cluster-node.ts, session-registry.ts `current`; seeds 3400116, 5000791), or it could
 * take an older claim's marker for the newest and hand away a session its newer claim holds.
 *
 * Bounds and costs: B holds the CONNACK and its stream reader for at most `handoverWaitMs` from
 * the claim (the stream behind the marker waits in memory meanwhile: at most what NATS delivers
 * unacknowledged); a hand-over costs one durable publish (the marker), one key-value put and
 * delete (one more of each per part of a large state), and every node's reader pausing at the
 * marker until the node's own part is done. If the state does not come in time (A down or cut from
 * NATS), B answers session present 0 with a fresh session and stops waiting (see above). The
 * serialized state holds the whole session, bounded by the session's own limits (queued messages
 * and bytes, inflight window), and crosses the bucket in values of at most
 * `cluster.messageBytesMax` less what NATS adds (handover-parts.ts); nothing is left out. Not
 * handed over: `$stream/` subscriptions and their positions (streams are per node).
 * A chain of moves still short of the stream longer than handoverPriorsMax priors can lose the
 * session (see the chain of priors above); the client is then told session present 0.
 */
import { assert } from '../assert.js';
import type { Broker } from '../broker/broker.js';
import { storeMessage } from '../broker/routing.js';
import { endSession, scheduleSessionExpiry } from '../broker/session-lifecycle.js';
import { publishWill } from '../broker/will.js';
import { ownCopy } from '../codec/own-copy.js';
import { PacketType } from '../codec/packets.js';
import { ReasonCode } from '../codec/reason-codes.js';
import type { ClusterHeaders, ClusterKeyChange, ClusterMessage, ClusterResult } from '../contract.js';
import { decodeStateRecord, encodeStateRecord } from '../store/record-codec.js';
import { DeliveryQueue, type StateRecord, type StoredMessage, sessionCreatedRecord } from '../store/state-store.js';
import { type AnswerLayout, answerKeyOfPart, answerLayout, answerPut, answerPutCount, assemble, decodeHead, decodePart, valueBytesMaxOf } from './handover-parts.js';
import { headerOrigin, headerSequence } from './headers.js';
import { clientIdOfSessionKey, handoverPriorsMax, type NewestClaim, priorsOfValue, sessionKey } from './session-registry.js';
import { handoffPrefix } from './subjects.js';

export const handoverBucket = 'keel-handover';
/** The marker's subject: in the hand-off stream, never a mapped topic (`$` topics do not map). */
export const handoverMarkerSubject = `${handoffPrefix}$session`;
const headerClient = 'Keel-Handover-Client';
const headerFrom = 'Keel-Handover-From';
/** The revision at which the marker's claim won the client's key in `keel-sessions`. */
const headerRevision = 'Keel-Handover-Revision';
/** The node the asked one was waiting for the session from when the claim was made (the nearest prior; absent: none). */
const headerPrior = 'Keel-Handover-Prior';
/**
 * Every prior of the marker, nearest first, comma-separated (node ids hold no comma): the chain of
 * earlier sources still short of the stream. Absent: the one of `Keel-Handover-Prior`, if any (a
 * node of before chains). That header names the first of them still, for such a node.
 */
const headerPriors = 'Keel-Handover-Priors';
/** Stream deliveries held behind a marker at most (NATS delivers no more unacknowledged: nats-link.ts). */
export const heldDeliveriesMax = 4_096;

/**
 * Keeps a stream delivery the reader stands still in front of (at a marker, here or in
 * cluster-node.ts), in sequence order, at most heldDeliveriesMax: a redelivery or a later one past
 * the bound is left to NATS, which delivers it again once the reader goes on. False when not kept.
 */
export function holdDelivery(held: ClusterMessage[], message: ClusterMessage): boolean {
  if (held.length >= heldDeliveriesMax) return false;
  const last = held.at(-1);
  if (last !== undefined && last.streamSequence! >= message.streamSequence!) return false;
  // Its payload copied: the host's is a view of what it read, which would stay pinned behind it
  // for as long as the node stands still (kept-bytes.ts).
  held.push({ ...message, payload: ownCopy(message.payload) });
  return true;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** A node's hand-off counter (`Keel-Seq` of a durable hand-off): compared as (epoch, ticket). */
export interface LocalCounter {
  readonly epoch: number;
  readonly ticket: number;
}

export function formatCounter(counter: LocalCounter): string {
  return `${counter.epoch}-${counter.ticket}`;
}

export function parseCounter(text: string | undefined): LocalCounter | null {
  if (text === undefined) return null;
  const match = /^([0-9]+)-([0-9]+)$/.exec(text);
  if (match === null) return null;
  return { epoch: Number(match[1]), ticket: Number(match[2]) };
}

export function compareCounters(a: LocalCounter, b: LocalCounter): number {
  return a.epoch !== b.epoch ? a.epoch - b.epoch : a.ticket - b.ticket;
}

/** The header of a serialized state; the session's records follow it. */
interface StateHeader {
  readonly client: string;
  readonly from: string;
  readonly to: string;
  readonly sequence: number;
  /** The source's clock when it serialized: message times move by (B's now - this). */
  readonly nowMs: number;
  /** The source's counter at serialization (see the module comment). */
  readonly cut: string;
  /** The pending will's time left, null when none. */
  readonly willInMs: number | null;
  /** No session there: B starts a fresh one. */
  readonly none: boolean;
  /** The source's own hand-offs at or below `cut` that the session does not hold (its open windows), `[from, to]` each. */
  readonly holes?: readonly (readonly [string, string])[];
  /** The rules the source kept for the session from earlier hand-overs (see Skip), passed on with it. */
  readonly carried?: readonly CarriedRule[];
  /** The answer of one of the marker's priors (put under priorKey), not of the node it asked. */
  readonly prior?: boolean;
  /** With `prior`: which of the marker's priors answers (0, the nearest, when absent: a node of before chains). */
  readonly priorIndex?: number;
  /**
   * The `keel-sessions` revision of the marker's claim, which the recipient records the adopted
   * session under (SessionState.claimRevision, adoptedUnder) when its marker names none. Absent
   * from a source of before it, or for a marker without one (unknown).
   */
  readonly revision?: number;
}

/** A skip rule as a state carries it: counters as text. */
interface CarriedRule {
  readonly origin: string;
  readonly cut: string;
  readonly holes: readonly (readonly [string, string])[];
}

/** An interval of one node's counters: above `from`, up to `to`. */
export interface CounterHole {
  readonly from: LocalCounter;
  readonly to: LocalCounter;
}

function formatHoles(holes: readonly CounterHole[]): [string, string][] {
  return holes.map((hole) => [formatCounter(hole.from), formatCounter(hole.to)]);
}

function parseHoles(holes: readonly (readonly [string, string])[] | undefined): CounterHole[] {
  const parsed: CounterHole[] = [];
  for (const [fromText, toText] of holes ?? []) {
    const from = parseCounter(fromText);
    const to = parseCounter(toText);
    if (from !== null && to !== null && compareCounters(from, to) < 0) parsed.push({ from, to });
  }
  return parsed;
}

function inHoles(counter: LocalCounter, holes: readonly CounterHole[]): boolean {
  for (const hole of holes) if (compareCounters(counter, hole.from) > 0 && compareCounters(counter, hole.to) <= 0) return true;
  return false;
}

export interface HandoverState {
  readonly header: StateHeader;
  readonly records: StateRecord[];
}

/** Serializes a state: u32 header bytes | header JSON | (u8 type | u32 length | body) per record. */
export function encodeHandoverState(state: HandoverState): Uint8Array {
  const header = textEncoder.encode(JSON.stringify(state.header));
  const bodies = state.records.map((record) => encodeStateRecord(record));
  let size = 4 + header.length;
  for (const body of bodies) size += 5 + body.body.length;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, header.length, true);
  bytes.set(header, 4);
  let offset = 4 + header.length;
  for (const body of bodies) {
    view.setUint8(offset, body.type);
    view.setUint32(offset + 1, body.body.length, true);
    bytes.set(body.body, offset + 5);
    offset += 5 + body.body.length;
  }
  assert(offset === size, 'a serialized state fills its buffer');
  return bytes;
}

/** The state in `bytes`, or null for bytes this encoding never makes. */
export function decodeHandoverState(bytes: Uint8Array): HandoverState | null {
  try {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headerBytes = view.getUint32(0, true);
    const header = JSON.parse(textDecoder.decode(bytes.subarray(4, 4 + headerBytes))) as StateHeader;
    if (typeof header.client !== 'string' || typeof header.to !== 'string' || typeof header.sequence !== 'number') return null;
    const records: StateRecord[] = [];
    let offset = 4 + headerBytes;
    while (offset < bytes.length) {
      const type = view.getUint8(offset);
      const length = view.getUint32(offset + 1, true);
      if (offset + 5 + length > bytes.length) return null;
      records.push(decodeStateRecord(type, bytes.subarray(offset + 5, offset + 5 + length)));
      offset += 5 + length;
    }
    return { header, records };
  } catch {
    return null;
  }
}

/** The bucket key of a hand-over: the client's key and the marker's stream sequence. */
export function handoverKey(clientId: string, sequence: number): string {
  return `${sessionKey(clientId)}.${sequence}`;
}

/**
 * The bucket key of the answer of the marker's prior number `index` (a key of its own: the asked
 * node and the other priors answer too): `<client key>.p<sequence>` for the nearest, as before
 * chains, `<client key>.p<sequence>-<index>` for the others.
 */
export function priorKey(clientId: string, sequence: number, index = 0): string {
  assert(Number.isSafeInteger(index) && index >= 0 && index < handoverPriorsMax, 'a prior of the marker');
  return index === 0 ? `${sessionKey(clientId)}.p${sequence}` : `${sessionKey(clientId)}.p${sequence}-${index}`;
}

function answerKey(header: StateHeader): string {
  return header.prior === true ? priorKey(header.client, header.sequence, header.priorIndex ?? 0) : handoverKey(header.client, header.sequence);
}

function parseHandoverKey(key: string): { clientId: string; sequence: number } | null {
  const dot = key.lastIndexOf('.');
  if (dot <= 0) return null;
  const clientId = clientIdOfSessionKey(key.slice(0, dot));
  const match = /^(?:p([0-9]+)(?:-[1-9][0-9]*)?|([0-9]+))$/.exec(key.slice(dot + 1));
  if (clientId === null || match === null) return null;
  const sequence = Number(match[1] ?? match[2]);
  if (!Number.isSafeInteger(sequence) || sequence <= 0) return null;
  return { clientId, sequence };
}

/**
 * The priors a marker names, nearest first: `Keel-Handover-Priors`, or, from a node of before
 * chains, `Keel-Handover-Prior` alone. A list this encoding never makes (a name twice, an empty
 * one, the marker's own ends, more than handoverPriorsMax) counts as the first prior alone.
 */
function priorsOfMarker(headers: ClusterHeaders, to: string, from: string): readonly string[] {
  const first = headers[headerPrior];
  const fallback = first === undefined || first === to || first === from ? noPriors : [first];
  const list = headers[headerPriors];
  if (list === undefined) return fallback;
  const priors = list.split(',');
  if (priors.length > handoverPriorsMax || priors[0] !== first || priorsOfValue(priors, to, from).length !== priors.length) return fallback;
  return priors;
}

/**
 * The session's records as a snapshot writes them, its messages first (with their ids on this
 * node), `$stream/` subscriptions left out. All of its deliveries go: the state is bounded by the
 * session's own limits (queued messages and bytes, inflight window), and goes into the bucket in
 * as many parts as it takes (handover-parts.ts).
 */
export function sessionRecords(broker: Broker, clientId: string): StateRecord[] {
  const session = broker.state.sessions.get(clientId);
  assert(session !== undefined, 'only a session this node holds is serialized');
  const deliveries = [...session.inflight.values(), ...DeliveryQueue.items(session.queue)].sort((a, b) => a.sequence - b.sequence);
  const records: StateRecord[] = [];
  const messages = new Set<number>();
  for (const delivery of deliveries) {
    if (messages.has(delivery.messageId)) continue;
    messages.add(delivery.messageId);
    const { references: _references, ...fields } = broker.state.messages.get(delivery.messageId)!;
    records.push({ kind: 'message-stored', message: fields });
  }
  // The claim the session was made or adopted under goes with it: the destination records the
  // newer of it and its own claim (applyRecord).
  records.push(sessionCreatedRecord(session));
  for (const subscription of session.subscriptions.values()) {
    if (!subscription.filter.startsWith('$stream/')) records.push({ kind: 'subscription-added', clientId, subscription });
  }
  for (const { sequence, messageId, qos, retain, subscriptionIds, packetId, phase } of deliveries) {
    records.push({ kind: 'delivery-queued', clientId, sequence, messageId, qos, retain, subscriptionIds, packetId, phase });
  }
  for (const packetId of session.incomingQos2) records.push({ kind: 'incoming-qos2-recorded', clientId, packetId });
  records.push({ kind: 'session-counters', clientId, nextPacketId: session.nextPacketId, nextDeliverySequence: session.nextDeliverySequence });
  const will = broker.state.wills.get(clientId);
  if (will !== undefined && broker.pendingWills.has(clientId)) {
    const username = broker.state.willUsernames?.get(clientId);
    records.push(username === undefined ? { kind: 'will-set', clientId, will } : { kind: 'will-set', clientId, will, username });
  }
  return records;
}

/** What the cluster node lends the hand-over. */
export interface HandoverHost {
  readonly broker: Broker;
  readonly nodeId: string;
  readonly connected: boolean;
  /** The largest NATS message this node sends (`cluster.messageBytesMax`): an answer goes in parts of it. */
  readonly messageBytesMax: number;
  /** How long B waits for the state from its claim on (`cluster.handoverWaitMs`). */
  readonly handoverWaitMs: number;
  nextRequestId(): number;
  /** This node's counter now: every hand-off it queued so far is at or below it. */
  counter(): LocalCounter;
  /** Queues the marker in the node's ordered, durable hand-off queue; returns its counter. */
  queueMarker(headers: Record<string, string>): LocalCounter;
  /** The marker at `sequence` is done here: record it as applied, acknowledge it once durable, and read on with `buffered`. */
  markerDone(sequence: number, nowMs: number, buffered: readonly ClusterMessage[]): void;
  /**
   * Answers the CONNECT of `clientId` parked for a hand-over: with the session in the log now
   * (session present 1), or, `fresh`, with a new one. False when no CONNECT waited any more.
   */
  answer(clientId: string, nowMs: number, fresh: boolean): boolean;
  /** Routes one of this node's own hand-offs to `clientId`'s session alone. */
  routeOnly(clientId: string, handoff: OwnHandoff, nowMs: number): void;
  /** Whether the newest claim of `clientId` this node knows of is its own. */
  ownedHere(clientId: string): boolean;
  /** The reader reached the marker of `node`'s claim of `clientId` at `revision`. */
  markerPassed(clientId: string, node: string, revision: number): void;
  /** The newest claim of `clientId` this node has seen in `keel-sessions`, null when none. */
  newestClaim(clientId: string): NewestClaim | null;
  /** Whether this node's claim of `clientId` at `revision` won (the watch shows it) and its answer has not come yet (session-registry.ts). */
  pendingWin(clientId: string, revision: number): boolean;
  /** A stale copy of `clientId` ended here: its key in `keel-sessions` stays (session-registry.ts copyEnded). */
  copyEnded(clientId: string): void;
  /** Logs an outbox entry that is no hand-off (a rule, a source's answer); returns its id. */
  logEntry(subject: string, headers: Record<string, string>, payload?: Uint8Array): number;
  /** The entry is done. */
  entryDone(outboxId: number): void;
}

/** A hand-over this node (B) waits for: from its claim until the state is applied or it gave up. */
interface Incoming {
  readonly clientId: string;
  readonly from: string;
  readonly deadlineMs: number;
  /** This node's own hand-offs queued since the marker, for the session once adopted. */
  readonly own: OwnHandoff[];
  /** Whether `own` holds all of them: false when the marker was queued before this node's last start. */
  readonly ownSinceMarker: boolean;
  /**
   * The counter of its marker, null when it waits on a marker queued before this node's last
   * start (any marker of this node for the client then stands for it). An older marker of this
   * node for the same client (an earlier claim's) is not this hand-over's: its state is applied,
   * but the CONNECT waits on for its own marker (seed 1200029).
   */
  readonly markerCounter: LocalCounter | null;
  /** Whether a CONNECT waits for it. */
  parked: boolean;
  gaveUp: boolean;
}

/** Where this node's stream reader stands still: at a marker, until its part is done. */
interface Hold {
  readonly sequence: number;
  readonly clientId: string;
  readonly role: 'source' | 'destination';
  readonly deadlineMs: number;
  /** The marker's counter (`Keel-Seq`): the start of a window when no copies were kept. */
  readonly markerCounter: LocalCounter | null;
  /** The revision of the marker's claim (destination only), null for a marker without one (a node of before it). */
  readonly revision: number | null;
  /**
   * Whether the marker is the one the client's `Incoming` waits for (destination only); false from
   * the moment a newer claim of this node replaces that `Incoming` (begin).
   */
  matched: boolean;
  /** The marker's priors, nearest first (destination only): one's answer counts when the asked node and every nearer prior have no session. */
  readonly priors: readonly string[];
  /** The source's put: request id, 0 while not out. */
  requestId: number;
  /** The source's next put of its answer (answerPut): its parts in order, then the head. */
  putIndex: number;
  /** The source's state, its bytes, its outbox entry and the LSN that entry is durable at (the put waits for it). */
  readonly state: HandoverState | null;
  readonly answer: LoggedAnswer | null;
  readonly buffered: ClusterMessage[];
}

/**
 * Route a message from `origin` at or below `cut` to everyone but `clientId` (the state holds it),
 * but for those in `holes` (the state does not hold them: they were in a window of `origin` when it
 * handed the session on), until the reader meets a message from `origin` above `cut` (one node's
 * hand-offs are in the stream in the order of their counters, across its restarts: recovery issues
 * its outbox first). Durable as an entry of the node's outbox (written with the adopted session,
 * done when the rule ends or the session is handed on with it), so a restart brings it back before
 * the reader reads on.
 */
export interface Skip {
  readonly clientId: string;
  readonly origin: string;
  readonly cut: LocalCounter;
  readonly holes: readonly CounterHole[];
  readonly outboxId: number;
}

/** The outbox subject of a skip rule (cluster-node.ts recovers it instead of publishing it). */
export const skipOutboxSubject = '$KEEL.skip';
/** The outbox subject of a window rule. */
export const windowOutboxSubject = '$KEEL.window';
/** The outbox subject of a source's answer at a marker (the serialized state, or "none"). */
export const answerOutboxSubject = '$KEEL.answer';
/**
 * The outbox subject of a note that the stream holds this node's marker of a claim (headers
 * `client`, `revision`) and its reader has not reached it yet (SessionHandover.markerStored): never
 * published, recovered as such.
 */
export const markerSentOutboxSubject = '$KEEL.marker-sent';

/** The key of a marker-sent note: the client's key and the claim's revision. */
function sentKey(client: string, revision: string): string {
  return `${client}\n${revision}`;
}

/** A source's answer at a marker, logged before it is put: a replay of the marker puts the same bytes. */
interface LoggedAnswer {
  readonly sequence: number;
  /** Its key in the bucket (answerKey). */
  readonly key: string;
  readonly bytes: Uint8Array;
  /** How the bytes go into the bucket: whole, or in parts under keys of their own (handover-parts.ts). */
  readonly layout: AnswerLayout;
  readonly outboxId: number;
  readonly readyLsn: number;
}

/**
 * Route this node's own hand-offs above `from` and up to `to` to `clientId` alone: the window
 * between a marker and the adoption when this node restarted in between (its in-memory copies of
 * them were lost). Durable as an outbox entry, done once the reader meets an own hand-off at or
 * past `to`.
 */
export interface OwnWindow {
  readonly clientId: string;
  readonly from: LocalCounter;
  readonly to: LocalCounter;
  readonly outboxId: number;
}

export function windowOfHeaders(headers: ClusterHeaders, outboxId: number): OwnWindow | null {
  const from = parseCounter(headers.from);
  const to = parseCounter(headers.to);
  if (from === null || to === null || headers.client === undefined) return null;
  return { clientId: headers.client, from, to, outboxId };
}

export function skipOfHeaders(headers: ClusterHeaders, outboxId: number): Skip | null {
  const cut = parseCounter(headers.cut);
  if (cut === null || headers.client === undefined || headers.origin === undefined) return null;
  let holes: CounterHole[] = [];
  if (headers.holes !== undefined) {
    try {
      holes = parseHoles(JSON.parse(headers.holes) as [string, string][]);
    } catch {
      return null;
    }
  }
  return { clientId: headers.client, origin: headers.origin, cut, holes, outboxId };
}

/** A hand-off this node queued while a hand-over to it was on its way. */
export interface OwnHandoff {
  readonly subject: string;
  readonly headers: ClusterHeaders;
  readonly payload: Uint8Array;
}

const noClients: readonly string[] = Object.freeze([]);
const noPriors: readonly string[] = Object.freeze([]);
const noParts: ReadonlyMap<string, Uint8Array> = new Map();

/**
 * Which of the answers at a marker (the asked node's, then each prior's) B goes by, by index, or
 * null while it waits (answerOf): the session made or adopted under the newest claim, the nearest
 * on a tie (a session without a revision counts as the oldest); with no session, the last answer.
 * It waits for every answer, unless `final` (its deadline): then it goes by those here, and with
 * no session among them takes none.
 */
function chooseAnswer(states: readonly (HandoverState | null | undefined)[], final: boolean): number | null {
  let best: number | null = null;
  let bestRevision = -1;
  for (let index = 0; index < states.length; index++) {
    const state = states[index];
    if (state === undefined) {
      if (!final) return null;
      continue;
    }
    if (state === null || state.header.none) continue;
    const revision = sessionRevisionOf(state);
    if (revision > bestRevision) {
      best = index;
      bestRevision = revision;
    }
  }
  if (best !== null || final) return best;
  return states.length - 1;
}

/** The claim a state's session was made or adopted under at its source (sessionRecords), 0 when it names none. */
function sessionRevisionOf(state: HandoverState): number {
  for (const record of state.records) if (record.kind === 'session-created') return record.claimRevision ?? 0;
  return 0;
}

/** The node an answer in the bucket is addressed to, null for bytes no node makes. */
function recipientOf(value: Uint8Array): string | null {
  const head = decodeHead(value);
  if (head !== null) return head.recipient;
  return decodeHandoverState(value)?.header.to ?? null;
}

/** The keys the answers at a marker come under: the asked node's, then each prior's, nearest first. */
function answerKeys(clientId: string, sequence: number, priors: readonly string[]): string[] {
  const keys = [handoverKey(clientId, sequence)];
  for (let index = 0; index < priors.length; index++) keys.push(priorKey(clientId, sequence, index));
  return keys;
}

/** What a source does at a marker (sourceServes): hand its session over, keep it (answering none), or end a stale copy (answering none). */
type SourceAnswer = 'hand-over' | 'keep' | 'end';

/** Own hand-offs kept per waiting hand-over at most; past it they are not routed to the session (counted, logged). */
const ownHandoffsMax = 10_000;

export class SessionHandover {
  private readonly incoming = new Map<string, Incoming>();
  private hold: Hold | null = null;
  /** This node's markers in the stream that its reader has not reached yet, by sentKey: the outbox id of their note. */
  private readonly sentMarkers = new Map<string, number>();
  /** States addressed to this node, by key, as the watch delivered them. */
  private readonly arrived = new Map<string, Uint8Array>();
  private readonly skips: Skip[] = [];
  private readonly windows: OwnWindow[] = [];
  /** Windows the current hand-off ended, whose entries are done once it is recorded applied. */
  private readonly endedWindows: number[] = [];
  /** Keys of states applied here, deleted once the applied record is durable (a key left by a cut link goes when the watch replays it). */
  private readonly keysToDelete: { key: string; lsn: number }[] = [];
  /** Answers this node gave as a source whose puts are not known to be done (logged; restored at start), by marker. */
  private readonly answers = new Map<number, LoggedAnswer>();
  /** Keys of answers at markers this node passed without them (it gave up, or took another answer): a state that comes under one is late. */
  private readonly gaveUpKeys = new Set<string>();
  /** Parts of answers addressed to this node, by answer key, then by part key (handover-parts.ts). */
  private readonly parts = new Map<string, Map<string, Uint8Array>>();
  readonly counters = { markers: 0, sent: 0, sentInParts: 0, received: 0, empty: 0, timedOut: 0, late: 0, endedElsewhere: 0, endedStale: 0 };

  constructor(private readonly host: HandoverHost) {}

  private get broker(): Broker {
    return this.host.broker;
  }

  /** True while the stream reader stands still at a marker. */
  get holding(): boolean {
    return this.hold !== null;
  }

  /** Whether a hand-over of `clientId` to this node is on its way. */
  waitingFor(clientId: string): boolean {
    return this.incoming.has(clientId) || (this.hold?.role === 'destination' && this.hold.clientId === clientId);
  }

  /** Hand-overs waiting, for tests and metrics. */
  get waiting(): number {
    return this.incoming.size;
  }

  /**
   * The bytes kept while hand-overs wait, for inspection (broker/kept-bytes.ts): states that
   * arrived, deliveries held at a marker, answers given and this node's own hand-offs kept for
   * a session on its way. The visitor reads them and changes nothing.
   */
  forEachKeptBytes(visit: (key: string | number, field: string, bytes: Uint8Array) => void): void {
    for (const [key, value] of this.arrived) visit(key, 'state', value);
    for (const parts of this.parts.values()) for (const [key, value] of parts) visit(key, 'state-part', value);
    for (const message of this.hold?.buffered ?? []) visit(message.streamSequence ?? 0, 'held-payload', message.payload);
    for (const answer of this.answers.values()) visit(answer.key, 'answer', answer.bytes);
    for (const incoming of this.incoming.values()) for (const own of incoming.own) visit(incoming.clientId, 'own-payload', own.payload);
  }

  // ---- B: the claim is won ------------------------------------------------------------------

  /**
   * B won the claim of `clientId` from `from`: queue the marker (`marker`; false when an earlier
   * claim's marker stands for it) and wait for the state (`parked`: a CONNECT waits). `priors`: the
   * node `from` was itself waiting for the session from, when its claim asked one, and the ones
   * that claim named in turn, nearest first (empty: none).
   */
  begin(clientId: string, from: string, nowMs: number, parked: boolean, marker: boolean, revision: number, priors: readonly string[] = noPriors): void {
    assert(from !== this.host.nodeId, 'a node does not hand a session over to itself');
    assert(!priors.includes(from) && !priors.includes(this.host.nodeId), 'a prior is neither end of the hand-over');
    assert(priors.length <= handoverPriorsMax, 'a marker names at most handoverPriorsMax priors');
    const earlier = this.incoming.get(clientId);
    if (!marker && earlier !== undefined && !earlier.gaveUp) {
      earlier.parked = earlier.parked || parked;
      return;
    }
    const headers: Record<string, string> = { [headerOrigin]: this.host.nodeId, [headerClient]: sessionKey(clientId), [headerFrom]: from, [headerRevision]: String(revision) };
    if (priors.length > 0) headers[headerPrior] = priors[0]!;
    if (priors.length > 0) headers[headerPriors] = priors.join(',');
    const markerCounter = marker ? this.host.queueMarker(headers) : null;
    const deadlineMs = nowMs + this.host.handoverWaitMs;
    // The reader already stands at the marker of the hand-over this one replaces: that marker is
    // an older claim's now. Its state comes with a window from that marker, which holds the copies
    // the replaced hand-over kept (they are lost with it), and it does not answer this CONNECT
    // (seed 2500836: n1 adopted at its older marker with only the copies kept since its newer one).
    const hold = this.hold;
    if (hold !== null && hold.role === 'destination' && hold.clientId === clientId) hold.matched = false;
    this.incoming.set(clientId, { clientId, from, deadlineMs, own: [], ownSinceMarker: marker, markerCounter, parked, gaveUp: false });
    this.broker.deadlines.push(deadlineMs, 'cluster-retry', 0, '');
    this.counters.markers += 1;
    this.broker.log('info', 'handover-requested', { clientId, fromNode: from });
  }

  /**
   * Whether the hand-over of `clientId` that this node's claim at `markerRevision` asked for is
   * still on its way here by that claim's marker: this life waits for it (not given up), or the
   * marker is in the outbox, queued in an earlier life and not yet in the stream, or the stream
   * holds it and the reader has not reached it (its marker-sent note: seed 175, where a marker of
   * its own, queued instead, started a chain that lost the session).
   */
  awaiting(clientId: string, markerRevision: number): boolean {
    const incoming = this.incoming.get(clientId);
    if (incoming !== undefined && !incoming.gaveUp) return true;
    const key = sessionKey(clientId);
    const revision = String(markerRevision);
    if (this.sentMarkers.has(sentKey(key, revision))) return true;
    for (const entry of this.broker.state.cluster?.outbox.values() ?? []) {
      if (entry.subject === handoverMarkerSubject && entry.headers[headerClient] === key && entry.headers[headerRevision] === revision) return true;
    }
    return false;
  }

  /**
   * The stream stored this node's marker with `headers` at `sequence`. Until the reader reaches it,
   * a note in the outbox says so, so that after a restart a claim over this node's own claim can
   * tell that claim's marker in the stream from one never queued (awaiting). None when the reader
   * is at or past it already (the marker can reach it before the stream's acknowledgement does).
   */
  markerStored(headers: ClusterHeaders, sequence: number): void {
    const client = headers[headerClient];
    const revision = headers[headerRevision];
    if (client === undefined || revision === undefined) return;
    const applied = this.broker.state.cluster?.appliedSequence ?? 0;
    if (sequence <= applied || (this.hold !== null && sequence <= this.hold.sequence)) return;
    const key = sentKey(client, revision);
    if (!this.sentMarkers.has(key)) this.sentMarkers.set(key, this.host.logEntry(markerSentOutboxSubject, { client, revision }));
  }

  /** A marker-sent note found in the log at recovery. */
  restoreSentMarker(outboxId: number, headers: Readonly<Record<string, string>>): void {
    const { client, revision } = headers;
    if (client === undefined || revision === undefined || this.sentMarkers.has(sentKey(client, revision))) return this.host.entryDone(outboxId);
    this.sentMarkers.set(sentKey(client, revision), outboxId);
  }

  /** A CONNECT of `clientId` won a claim while a hand-over to this node is still on its way: it waits for it too. */
  park(clientId: string): boolean {
    const incoming = this.incoming.get(clientId);
    if (incoming === undefined || incoming.gaveUp) return false;
    incoming.parked = true;
    return true;
  }

  // ---- the stream reader --------------------------------------------------------------------

  /** A delivery while the reader stands still: kept, in order, for when it reads on. */
  buffer(message: ClusterMessage): void {
    const hold = this.hold;
    assert(hold !== null, 'deliveries are buffered only at a marker');
    const sequence = message.streamSequence!;
    if (sequence <= hold.sequence) return;
    holdDelivery(hold.buffered, message);
  }

  /**
   * Whether what this node does at `marker` rests on the claims it has seen in `keel-sessions`
   * (markerArrived): as the marker's source or prior (sourceServes), or as a node holding a copy
   * of the session or its pending will (kept for a newer claim, or ended). The node the marker is
   * for, and any other node, do the same whatever the claims. Only a marker that depends on them
   * waits for the watch's replay after the link came up (cluster-node.ts).
   */
  decidesByClaims(marker: ClusterMessage): boolean {
    const clientId = clientIdOfSessionKey(marker.headers[headerClient] ?? '');
    const to = marker.headers[headerOrigin];
    const from = marker.headers[headerFrom];
    if (clientId === null || to === undefined || from === undefined || to === this.host.nodeId) return false;
    if (from === this.host.nodeId || priorsOfMarker(marker.headers, to, from).includes(this.host.nodeId)) return true;
    return this.broker.state.sessions.has(clientId) || this.broker.pendingWills.has(clientId);
  }

  /** The reader reached this node's own marker with `headers`: its marker-sent note ends. */
  private sentMarkerReached(headers: ClusterHeaders): void {
    const client = headers[headerClient];
    const revision = headers[headerRevision];
    if (client === undefined || revision === undefined) return;
    const outboxId = this.sentMarkers.get(sentKey(client, revision));
    if (outboxId === undefined) return;
    this.sentMarkers.delete(sentKey(client, revision));
    this.host.entryDone(outboxId);
  }

  /** The marker at `sequence` (the next one to apply) arrived. */
  markerArrived(message: ClusterMessage, sequence: number, nowMs: number): void {
    const clientId = clientIdOfSessionKey(message.headers[headerClient] ?? '');
    const to = message.headers[headerOrigin];
    const from = message.headers[headerFrom];
    if (clientId === null || to === undefined || from === undefined) return this.host.markerDone(sequence, nowMs, []);
    const priors = priorsOfMarker(message.headers, to, from);
    // The revision of the marker's claim; null from a node of before markers named it.
    const revisionText = message.headers[headerRevision];
    const revision = revisionText === undefined || !Number.isSafeInteger(Number(revisionText)) ? null : Number(revisionText);
    if (revision !== null) this.host.markerPassed(clientId, to, revision);
    if (to === this.host.nodeId) this.sentMarkerReached(message.headers);
    if (to === this.host.nodeId) return this.awaitState(clientId, sequence, parseCounter(message.headers[headerSequence]), revision, priors, nowMs);
    // A marker of a claim older than this node's own (markers of two claims can reach the stream
    // in the other order): this node keeps the session, and a source answers that it has none.
    if (from === this.host.nodeId) return this.serialize(clientId, to, sequence, revision, nowMs, this.sourceServes(clientId, to, revision), null);
    // The asked node's own move of the session (from this node, or through nodes that are priors
    // too) has not reached the stream before this marker: this node may still hold the session here
    // and answers for it, under a key of its own (the asked node answers that it has none). Seeds
    // 2100503, 2100903, 2400367, 2400569; a chain of two such moves, handover-chain.test.ts.
    const priorIndex = priors.indexOf(this.host.nodeId);
    if (priorIndex >= 0) return this.serialize(clientId, to, sequence, revision, nowMs, this.sourceServes(clientId, to, revision), priorIndex);
    const stale = this.host.ownedHere(clientId);
    if (stale) return this.host.markerDone(sequence, nowMs, []);
    // A newer claim asks this node for the session: it goes at that claim's marker. This marker's
    // claim is older (the client moved on since, through this node): ending the copy here would
    // lose the session this node got after it (seed 2600276: a marker held in a crashed node's
    // outbox reached the stream after the move it was overtaken by). Unless the copy is older than
    // that newer claim's line (copyStale, seed 8100075): then it is ended below.
    const newest = this.host.newestClaim(clientId);
    if (newest !== null && this.askedBy(newest) && !this.copyStale(clientId, newest)) return this.host.markerDone(sequence, nowMs, []);
    // Neither end nor a prior: a copy this node still holds is ended. It is stale when the session
    // moved on without it; it is the session itself only when the chain of moves still short of
    // the stream went past handoverPriorsMax priors (session-registry.ts): lost then, and the
    // client is told so (session present 0).
    if (this.broker.state.sessions.has(clientId) || this.broker.pendingWills.has(clientId)) {
      this.counters.endedElsewhere += 1;
      this.broker.log('info', 'handover-copy-ended', { clientId, toNode: to, askedNode: from });
      endSession(this.broker, clientId, nowMs);
    }
    this.host.markerDone(sequence, nowMs, []);
  }

  /**
   * Whether this node (A, the source) hands its session over at a marker to `to`, or answers that
   * it has none (and keeps it). The answer must not change when A replays the marker after a crash
   * (B may have passed the marker on the first answer: a session put after it is dropped there,
   * seed 1200029), so it rests on the order of claims in `keel-sessions` (the marker carries its
   * claim's revision), not on who owns the key now:
   * - the marker's claim is the newest A has seen (or newer): hand over; but when it is the newest
   *   and asks A, not a copy older than its line (copyStale), which is ended instead (seed
   *   13800036: back from a crash that undid the ending of its copy of an older line, n0 was asked
   *   by the newest claim at that claim's own marker and handed the copy over, to be adopted over
   *   the session the client had moved on with: a QoS 2 will twice);
   * - a newer claim by another node that asks A itself for the session at a newer marker: keep it
   *   for that marker, whoever made the claim (B too). Not when it names A as a prior only: as the
   *   source of an older claim's marker, A hands over there, and the session goes on along the
   *   chain (seed 10200550: kept for the newer marker instead, it was lost three moves later). Handed to B here it would count on B
   *   adopting it at this older marker, but B may have given this hand-over up (its CONNECT
   *   answered with a fresh session) and drop the state as late, leaving A nothing for the newer
   *   marker (seed 5010652; 5010381 in the run it was found in). A claim that queued no marker of
   *   its own (awaitsEarlier) is carried by its node's earlier claim's marker, named in its value
   *   (`markerRevision`): at that marker A hands over (seed 7400512). A copy held for a claim that
   *   asks this node is kept alike (markerArrived). But only when the copy is of that claim's
   *   line (`lineageRevision`: the newest claim of its chain of hand-overs that asked no one, where
   *   the session it asks for was made; the copy was made or adopted under it or later), or either
   *   revision is unknown (a log or a claim of before them): a copy older than the line is stale, a
   *   leftover whose ending (at the claim that started the line) a crash undid, and is ended here
   *   instead (seed 8100075: n0's copy of claim 7, back after a crash lost its ending at claim 19,
   *   n1's resume of the session it had made, was kept for claim 22 of the line of 19 and adopted
   *   at 22's marker over the client's live session: a QoS 2 message twice). Not "made under the
   *   claim the newer one asks from": along a chain of moves whose markers are all still to come
   *   the copy of the line's first claims is the session (seed 7203919);
   * - any other newer claim by B itself, by a node that asked B for the session, or naming B as a
   *   prior: hand over (it goes on from B at that claim's marker); and any newer claim of another
   *   node that names neither A nor B (asks neither, nor names either as a prior): the claims between it and B's are past this node's sight (its
   *   watch shows each key's newest), so the session goes on along the chain from B. Kept, it would
   *   be ended at that claim's marker, which does not name A (seeds 16900023 and 16900084, 4 nodes:
   *   a prior, back from a crash, kept the session at the older marker and ended it at the newest;
   *   the client got session present 0);
   * - a newer claim by A that asked for the session back (a hand-over to A is still on its way):
   *   hand over (it comes back at A's own marker); but not when A's newest claim asked no one (A
   *   holds the session as that claim's: it was adopted under an earlier claim of A whose own
   *   hand-over is still open), then keep it (seed 10100156: handed over there, it went to a claim
   *   the client had left, and no claim asked for it back); and not a copy older than that claim's
   *   line, which is ended instead (seed 12000228), also when that hand-over is not on its way (A
   *   forgot it in a restart, or gave it up), where A would otherwise keep the copy (seed 13800053);
   * - any other newer claim (A's own, its client back here, or one asking A or naming A as a
   *   prior): keep it for that claim.
   */
  private sourceServes(clientId: string, to: string, revision: number | null): SourceAnswer {
    // A marker without its claim's revision (a node of before the rule): the newest claim decides.
    if (revision === null) return this.host.ownedHere(clientId) ? 'keep' : 'hand-over';
    const newest = this.host.newestClaim(clientId);
    if (newest === null || newest.revision < revision) return 'hand-over';
    if (newest.revision === revision) return newest.handoverFrom === this.host.nodeId && this.copyStale(clientId, newest) ? 'end' : 'hand-over';
    if (newest.node === this.host.nodeId) {
      // This node's newest claim asked no one: it holds the session as that claim's own (its
      // client back here after it came), whatever an earlier claim of this node still waits for.
      if (newest.handoverFrom === null) return 'keep';
      const incoming = this.incoming.get(clientId);
      // Its hand-over has not begun yet when the watch showed the claim before the claim's own
      // answer came: it is on its way all the same (seed 13200130: kept here, the session stayed
      // behind as a copy, and the fresh session the older claim's node made for want of it came
      // back at this claim's marker over it, with an acknowledged QoS 2 message it lacked).
      const comesBack = incoming === undefined ? this.host.pendingWin(clientId, newest.revision) : !incoming.gaveUp;
      // The session that claim asks for is its line's: a copy here older than the line is a
      // leftover (its ending undone by a crash), not that session, whether that claim's hand-over
      // is on its way or not. Handed over, it would replace the session the older claim's node
      // holds, and come back here as the client's (seed 12000228: n0's copy of claim 4, restored by
      // a crash, went to n1 at the marker of n1's claim 25 over n1's live session of line 15, and
      // back to n0 at n0's claim 28: a will the copy had queued reached the client twice). Kept, it
      // waits for the next claim that asks this node, and goes there over the session of the line
      // (seed 13800053: n0 won claim 18 of line 16 and crashed before it learned so, its copy of
      // claim 4 back; kept at n2's older marker, it went at n1's claim 39 over n2's live session,
      // the prior's answer, with a message older than those the client had). It is ended, and the
      // answer is none.
      if (this.copyStale(clientId, newest)) return 'end';
      return comesBack ? 'hand-over' : 'keep';
    }
    // The newest claim asks this node, at a marker after this one: the session waits here for it
    // (seed 5010652), when it is the session that claim asks for (seed 8100075). A claim without a
    // marker of its own may wait for this one (seed 7400512).
    if (newest.handoverFrom === this.host.nodeId && newest.markerRevision > revision) return this.copyStale(clientId, newest) ? 'end' : 'keep';
    if (newest.node === to || newest.handoverFrom === to || newest.priors.includes(to)) return 'hand-over';
    return newest.priors.includes(this.host.nodeId) || newest.handoverFrom === this.host.nodeId ? 'keep' : 'hand-over';
  }

  /**
   * Whether `claim`'s marker asks this node for the session: as the node it asked, or as one of the
   * priors it names (the chain of priors; seed 10200144: n2, named as a prior by the newest claim,
   * ended its copy, the session, at an older claim's marker that did not name it). Used where a
   * node neither end nor prior of a marker decides whether to keep its copy (markerArrived).
   */
  private askedBy(claim: NewestClaim): boolean {
    return claim.handoverFrom === this.host.nodeId || claim.priors.includes(this.host.nodeId);
  }

  /**
   * Whether the session this node holds of `clientId` is not the one `newest` (a claim that asks
   * this node) asks for: it was made or adopted under a claim older than `newest`'s line (the
   * claim that made the session `newest` asks for), and that claim was another node's. Unknown on
   * either side (a log or a claim of before revisions): not stale, as before. A line this node
   * started itself (its own resume or fresh start, or a hand-over it gave up) proves nothing of a
   * copy older than it: the claim's session record may have been lost in a crash before it was
   * durable (the client was never answered), and the copy is then the client's session.
   */
  private copyStale(clientId: string, newest: NewestClaim): boolean {
    const copyRevision = this.broker.state.sessions.get(clientId)?.claimRevision;
    if (copyRevision === undefined || newest.lineageRevision === null || newest.lineageNode === this.host.nodeId) return false;
    return copyRevision < newest.lineageRevision;
  }

  /**
   * A (or, `priorIndex` not null, the marker's prior of that number): put the session (or an empty
   * answer) into the bucket; the reader waits for the put. A stale copy (`end`) is ended in the same
   * input as the empty answer is logged, so that a replay of the marker finds both or neither.
   */
  private serialize(clientId: string, to: string, sequence: number, revision: number | null, nowMs: number, answer: SourceAnswer, priorIndex: number | null): void {
    const broker = this.broker;
    // An answer given before the last start is given again, byte for byte (see handOff).
    const logged = this.answers.get(sequence);
    if (logged !== undefined) return this.holdAnswer(clientId, logged);
    const serves = answer === 'hand-over';
    const connection = broker.online.get(clientId);
    // The claim's watch may not have closed the connection yet: the marker does it.
    if (connection !== undefined && serves) {
      if (connection.version === 5) broker.sendPacket(connection, { type: PacketType.Disconnect, reasonCode: ReasonCode.SessionTakenOver }, 0, true);
      broker.closeConnection(connection, nowMs, `session taken over by node ${to}`, 'publish', true);
    }
    const present = serves && broker.state.sessions.has(clientId);
    const records = present ? sessionRecords(broker, clientId) : [];
    const pending = broker.pendingWills.get(clientId);
    const willInMs = pending === undefined ? null : Math.max(0, pending.deadlineMs - nowMs);
    const counter = this.host.counter();
    const rules = present ? this.rulesOf(clientId) : { holes: [], carried: [] };
    const base: StateHeader = { client: clientId, from: this.host.nodeId, to, sequence, nowMs, cut: formatCounter(counter), willInMs, none: !present, ...rules };
    // The nearest prior's answer reads as before chains (no index), for a recipient of before them.
    const withPrior: StateHeader = priorIndex === null ? base : priorIndex === 0 ? { ...base, prior: true } : { ...base, prior: true, priorIndex };
    const header: StateHeader = revision === null ? withPrior : { ...withPrior, revision };
    const given = this.handOff({ header, records });
    if (answer === 'end') this.endStale(clientId, to, nowMs);
    this.holdAnswer(clientId, given);
  }

  /** A copy that is not the session a newer claim asks this node for (copyStale): ended, as a node ends one whose client moved (session-moved). */
  private endStale(clientId: string, to: string, nowMs: number): void {
    if (!this.broker.state.sessions.has(clientId) && !this.broker.pendingWills.has(clientId)) return;
    this.counters.endedStale += 1;
    const copyRevision = this.broker.state.sessions.get(clientId)?.claimRevision ?? null;
    this.broker.log('info', 'session-moved', { clientId, toNode: to, stale: true, copyRevision, lineRevision: this.host.newestClaim(clientId)?.lineageRevision ?? null });
    endSession(this.broker, clientId, nowMs);
    this.host.copyEnded(clientId);
  }

  /**
   * Logs the answer and, for a session, ends it here in the same commit: from then on the session
   * lives in this node's outbox until the bucket holds it (a crash brings the entry back and the
   * marker's replay puts it again), never in two places on this node (seed 1200029: a session put
   * into the bucket, then still here after a crash, was resumed here too). The put waits for the
   * entry to be durable.
   */
  private handOff(state: HandoverState): LoggedAnswer {
    const broker = this.broker;
    const clientId = state.header.client;
    const bytes = encodeHandoverState(state);
    const outboxId = this.host.logEntry(answerOutboxSubject, { sequence: String(state.header.sequence), client: sessionKey(clientId) }, bytes);
    if (!state.header.none) this.endHandedOver(clientId);
    const layout = answerLayout(bytes, state.header.to, valueBytesMaxOf(this.host.messageBytesMax));
    const answer: LoggedAnswer = { sequence: state.header.sequence, key: answerKey(state.header), bytes, layout, outboxId, readyLsn: broker.store.appendedLsn };
    this.answers.set(answer.sequence, answer);
    return answer;
  }

  /** A session handed over, not ended: its will went with it (or fired when the connection closed), its rules too. */
  private endHandedOver(clientId: string): void {
    const broker = this.broker;
    if (!broker.state.sessions.has(clientId)) return;
    broker.pendingWills.delete(clientId);
    if (broker.state.wills.has(clientId)) broker.commit({ kind: 'will-cleared', clientId });
    broker.sessionExpiryDeadlines.delete(clientId);
    broker.commit({ kind: 'session-deleted', clientId });
    this.dropRules(clientId);
  }

  private holdAnswer(clientId: string, answer: LoggedAnswer): void {
    const state = decodeHandoverState(answer.bytes);
    assert(state !== null, 'a logged answer decodes');
    this.hold = {
      sequence: answer.sequence,
      clientId,
      role: 'source',
      deadlineMs: Number.POSITIVE_INFINITY,
      markerCounter: null,
      revision: null,
      matched: false,
      priors: noPriors,
      requestId: 0,
      putIndex: 0,
      state,
      answer,
      buffered: [],
    };
    this.issuePut();
  }

  /**
   * What the session does not hold of this node's own hand-offs at or below its counter (its
   * open windows for the client: read from the stream after the marker, they are the next owner's
   * to route) and the rules it keeps for the session from earlier hand-overs (seed 3: without them
   * the next owner routes a message again that an earlier source had put into the session).
   */
  private rulesOf(clientId: string): { holes: [string, string][]; carried: CarriedRule[] } {
    const holes = formatHoles(this.windows.filter((window) => window.clientId === clientId));
    const carried = this.skips.filter((skip) => skip.clientId === clientId).map((skip) => ({ origin: skip.origin, cut: formatCounter(skip.cut), holes: formatHoles(skip.holes) }));
    return { holes, carried };
  }

  /** The session went with its windows and rules: they are the next owner's now. */
  private dropRules(clientId: string): void {
    for (const list of [this.windows, this.skips] as { clientId: string; outboxId: number }[][]) {
      for (let index = 0; index < list.length; index++) {
        if (list[index]!.clientId !== clientId) continue;
        this.host.entryDone(list[index]!.outboxId);
        list.splice(index--, 1);
      }
    }
  }

  /** An answer logged before the last start (cluster-node.ts recovery): a session still here (a torn commit) goes now. */
  restoreAnswer(outboxId: number, payload: Uint8Array, appliedSequence: number): void {
    const state = decodeHandoverState(payload);
    // The marker's applied record made it before the entry's end did: nothing is left to do.
    if (state === null || state.header.sequence <= appliedSequence) return this.host.entryDone(outboxId);
    // Laid out again from the logged bytes: the parts' keys name the state's checksum, so a layout
    // that differs from the first life's (messageBytesMax changed) never mixes with its parts.
    const layout = answerLayout(payload, state.header.to, valueBytesMaxOf(this.host.messageBytesMax));
    this.answers.set(state.header.sequence, { sequence: state.header.sequence, key: answerKey(state.header), bytes: payload, layout, outboxId, readyLsn: 0 });
    if (!state.header.none) this.endHandedOver(state.header.client);
  }

  private issuePut(): void {
    const hold = this.hold;
    if (hold === null || hold.role !== 'source' || hold.requestId !== 0 || hold.answer === null || !this.host.connected) return;
    if (hold.answer.readyLsn > this.broker.store.durableLsn) return;
    hold.requestId = this.host.nextRequestId();
    // One put at a time, the head last: a watch then brings every part before the head that names them.
    assert(hold.putIndex < answerPutCount(hold.answer.layout), 'a put of the answer is left');
    const { key, value } = answerPut(hold.answer.key, hold.answer.layout, hold.answer.bytes, hold.putIndex);
    this.broker.pushCluster({ op: 'kv-set', requestId: hold.requestId, bucket: handoverBucket, key, value, expectedRevision: null });
  }

  /** Handles a completion if it answers a put of this module; false when it is someone else's. */
  completed(nowMs: number, result: ClusterResult): boolean {
    const hold = this.hold;
    if (hold === null || hold.role !== 'source' || hold.requestId !== result.requestId) return false;
    hold.requestId = 0;
    if (!result.ok) {
      this.broker.deadlines.push(nowMs + 250, 'cluster-retry', 0, '');
      return true;
    }
    hold.putIndex += 1;
    if (hold.putIndex < answerPutCount(hold.answer!.layout)) {
      this.issuePut();
      return true;
    }
    this.counters.sent += 1;
    if (hold.answer!.layout.parts > 0) this.counters.sentInParts += 1;
    this.broker.log('info', 'session-handed-over', { clientId: hold.clientId, sequence: hold.sequence, bytes: hold.answer!.bytes.length, parts: hold.answer!.layout.parts });
    this.release(nowMs);
    // After the marker's applied record: a replay before that is durable finds the answer logged.
    this.answers.delete(hold.sequence);
    this.host.entryDone(hold.answer!.outboxId);
    return true;
  }

  /** End of an input: a put whose logged answer became durable goes out, and keys of states applied durably go. */
  afterInput(): void {
    if (this.hold?.role === 'source') this.issuePut();
    if (this.keysToDelete.length === 0) return;
    const durableLsn = this.broker.store.durableLsn;
    let done = 0;
    while (done < this.keysToDelete.length && this.keysToDelete[done]!.lsn <= durableLsn) this.deleteKey(this.keysToDelete[done++]!.key);
    if (done > 0) this.keysToDelete.splice(0, done);
  }

  /** B at its marker: apply the state if it is here, else wait for it (up to the claim's deadline). */
  private awaitState(clientId: string, sequence: number, markerCounter: LocalCounter | null, revision: number | null, priors: readonly string[], nowMs: number): void {
    const incoming = this.incomingOf(clientId, markerCounter);
    // The CONNECT gave up waiting and has a fresh session: the state is dropped as late. So it is
    // after a restart, when the give-up is no longer in memory: the fresh session was made under
    // the claim this marker carries (seed 4002210: applied over the fresh session, the old one
    // went on with a will the fresh one had too). A hand-over still waited for here decides by
    // what it knows instead (a session adopted at an older marker of this node for it is no give-up).
    if (incoming?.gaveUp === true || (incoming === undefined && this.madeFreshUnder(clientId, revision))) {
      this.incoming.delete(clientId);
      this.dropAnswers(clientId, sequence, priors, nowMs);
      this.host.markerDone(sequence, nowMs, []);
      return;
    }
    // A CONNECT waits until its claim's deadline; without one (it left, or this node restarted
    // since the claim) the reader waits a full bound from here.
    const deadlineMs = incoming?.parked === true ? incoming.deadlineMs : nowMs + this.host.handoverWaitMs;
    this.broker.deadlines.push(deadlineMs, 'cluster-retry', 0, '');
    this.hold = {
      sequence,
      clientId,
      role: 'destination',
      deadlineMs,
      markerCounter,
      revision,
      matched: incoming !== undefined,
      priors,
      requestId: 0,
      putIndex: 0,
      state: null,
      answer: null,
      buffered: [],
    };
    this.tryApply(nowMs);
  }

  /**
   * The claim whose hand-over this node's marker of `revision` carries: the newest claim of this
   * node when that marker carries it (a claim with no marker of its own, awaitsEarlier), else the
   * marker's own. Null for a marker without a revision (unknown).
   */
  private claimOfMarker(clientId: string, revision: number | null): number | null {
    if (revision === null) return null;
    const newest = this.host.newestClaim(clientId);
    if (newest !== null && newest.node === this.host.nodeId && newest.markerRevision === revision) return newest.revision;
    return revision;
  }

  /**
   * The claim a session adopted at this node's marker of `revision` is recorded under: this node's
   * newest claim when that claim waits for a hand-over at this marker or a later one (what it
   * adopts at an older marker of its own is what the newer claim gets: the source handed it over
   * here, and answers none at the newer marker; a CONNECT after a restart resumes it, registry
   * claimSession), else the marker's claim. Null for a marker without a revision (unknown).
   */
  private adoptedUnder(clientId: string, revision: number | null): number | null {
    if (revision === null) return null;
    const newest = this.host.newestClaim(clientId);
    if (newest !== null && newest.node === this.host.nodeId && newest.handoverFrom !== null && newest.markerRevision >= revision) return newest.revision;
    return revision;
  }

  /**
   * The claim the session `state` brings at this node's marker of `revision` is recorded under
   * when adopted: the newer of the claim it is adopted for (adoptedUnder) and the one its source
   * made or adopted it under, so that it never reads older than the line it is of (seed 7203919:
   * n1's fresh session of a give-up at claim 43, adopted by n0 at the marker of its claim 40, read
   * as a copy older than line 43 and was ended as stale). Null when unknown here.
   */
  private adoptedRevision(clientId: string, revision: number | null, state: HandoverState): number | null {
    const adopted = this.adoptedUnder(clientId, revision);
    return adopted === null ? null : Math.max(adopted, sessionRevisionOf(state));
  }

  /**
   * Whether a session adopted under `adopted` (adoptedRevision) is older than the line of the newest
   * claim of `clientId`, when that line was started on another node: the client's session is then
   * that line's, made after this one. A line of this node's own, or a revision unknown on either
   * side, proves nothing (as copyStale); nor, for a state's own revision, a state `from` the node
   * that started the line (its session is the line's: see tryApply).
   */
  private olderThanLine(clientId: string, adopted: number | null, from: string | null = null): boolean {
    const newest = this.host.newestClaim(clientId);
    if (newest === null || adopted === null || newest.lineageRevision === null || newest.lineageNode === null || newest.lineageNode === this.host.nodeId) return false;
    if (newest.lineageNode === from) return false;
    return adopted < newest.lineageRevision;
  }

  /**
   * Whether this node holds a session of `clientId` made under the claim its marker of `revision`
   * carries, before that marker was applied: only a hand-over given up makes one (the CONNECT got a
   * fresh session; adopting at the marker records the marker applied in the same input).
   */
  private madeFreshUnder(clientId: string, revision: number | null): boolean {
    const claim = this.claimOfMarker(clientId, revision);
    if (claim === null) return false;
    return this.broker.state.sessions.get(clientId)?.claimRevision === claim;
  }

  /** The hand-over a marker of this node for `clientId` stands for, undefined when it is an older claim's. */
  private incomingOf(clientId: string, markerCounter: LocalCounter | null): Incoming | undefined {
    const incoming = this.incoming.get(clientId);
    if (incoming === undefined || incoming.markerCounter === null) return incoming;
    // A marker queued before the one the hand-over waits for: an earlier claim of this node.
    if (markerCounter === null || compareCounters(markerCounter, incoming.markerCounter) < 0) return undefined;
    return incoming;
  }

  /** B at its marker tries to go by the answers here (answerOf); `final` at its deadline, with what has come. Whether it went. */
  private tryApply(nowMs: number, final = false): boolean {
    const hold = this.hold;
    if (hold === null || hold.role !== 'destination') return false;
    const answer = this.answerOf(hold, nowMs, final);
    if (answer === null) return false;
    const { state, key } = answer;
    const incoming = hold.matched ? this.incoming.get(hold.clientId) : undefined;
    const empty = state === null || state.header.none;
    const claimRevision = empty ? null : this.adoptedRevision(hold.clientId, hold.revision ?? state.header.revision ?? null, state);
    // The client connected here again meanwhile and was answered: this state comes too late for it.
    const answered = !empty && this.broker.online.has(hold.clientId) && incoming?.parked !== true;
    // The client's line started after this state's session, on another node (a give-up's fresh
    // session, or a resume there): adopted, it would be a stale copy here (seed 17200102). The
    // state's own revision counts too: adopted at an older marker while a newer claim of this
    // node waits, it would be recorded under that claim and pass for the line's (seed 20700027:
    // n2 handed over a copy of claim 16 at the marker of n0's claim 21, n0 recorded it under its
    // claim 29, in the line of 26, and the client resumed it over the session it had on n1).
    // Not when the state comes from the node that started the line: that node's one session is
    // the line's, though a crash may have taken the record of its resume under the line's claim
    // (seed 22800063: n2 resumed its session under claim 37, which asked no one, and crashed
    // before the record was durable; handed over at n0's older marker, it still said 15).
    const stale = !empty && !answered && (this.olderThanLine(hold.clientId, claimRevision) || this.olderThanLine(hold.clientId, sessionRevisionOf(state) || null, state.header.from));
    // A hand-over this node waits for without a marker of its own (an earlier claim's, from before
    // a restart: awaitsEarlier) stands for any of its markers of the client, older claims' too: an
    // empty answer at one of them may be an older claim's, with the session still to come at the
    // earlier claim's marker (seed 4010380), and so may a stale copy dropped there (seed 24200246:
    // n2, back from a crash, dropped at its claim's older marker a copy of n1 older than the line
    // and gave its CONNECT a fresh session, while n0 had handed the session over at the marker of
    // n2's earlier claim, still ahead). A CONNECT waiting for it waits on, up to its deadline, for a
    // session (without one, a marker that comes finds no hand-over and applies it).
    const waitsOn = (empty || stale) && incoming?.parked === true && incoming.markerCounter === null;
    if (hold.matched && !waitsOn) this.incoming.delete(hold.clientId);
    let applied = true;
    if (empty) {
      this.counters.empty += 1;
    } else if (answered || stale) {
      this.late(state, key, nowMs);
      applied = false;
    } else {
      // Without every copy since the marker (it was queued in an earlier life) the stream brings them: a window.
      const own = incoming?.ownSinceMarker === true ? incoming.own : null;
      // An older marker's session, while a newer hand-over waits: its window from the older marker
      // holds the copies the newer one keeps; they stay kept, for when the session leaves with the
      // window before the newer marker (seed 2501259), and apply skips those a window still holds.
      this.apply(state, own, own === null ? hold.markerCounter : null, claimRevision, nowMs);
    }
    if (incoming?.parked === true && !waitsOn) this.host.answer(hold.clientId, nowMs, false);
    this.release(nowMs);
    // The key goes once the marker's applied record is durable: a crash before replays the marker and needs the state again.
    const lsn = this.broker.store.appendedLsn;
    if (applied) for (const each of this.answerKeysOf(key)) this.keysToDelete.push({ key: each, lsn });
    for (const passed of answer.passedKeys) for (const each of this.answerKeysOf(passed)) this.keysToDelete.push({ key: each, lsn });
    return true;
  }

  /**
   * The answer B goes by at its marker, taken out of `arrived`; null while B waits. Without priors
   * it is the asked node's. When the marker names priors, each of them may answer with a copy of
   * the session too, and B waits for every answer (up to its deadline: `final`, then it goes by
   * those here) and takes the session made or adopted under the newest claim (the revision a
   * state's session carries, sessionRecords), the nearest on a tie. Along the chain of moves a
   * session is only ever made or adopted under a newer claim than the one it leaves behind, so
   * the newest is the client's and any other is a leftover: a copy whose ending a crash undid, or
   * the session a node kept when the hand-over it was asked for was given up elsewhere and the
   * give-up could not be written as a claim (seed 12200045: the asked node's copy of the client's
   * first session, taken at once, won over the prior's copy of the fresh session the client had
   * been given since). A session without a revision (a node of before them) is taken as before:
   * the first session in the chain's order, nearest first. With no session among the answers, the
   * farthest prior's empty answer is taken. `passedKeys` are the empty answers before the one
   * taken, deleted with it; a session not taken is late, like every answer after the one taken
   * (late if here, its will fires, and late when it comes).
   */
  private answerOf(hold: Hold, nowMs: number, final: boolean): { state: HandoverState | null; key: string; passedKeys: readonly string[] } | null {
    const keys = answerKeys(hold.clientId, hold.sequence, hold.priors);
    // Each answer as far as it is here: undefined while it (or a part of it) is still to come.
    const states: (HandoverState | null | undefined)[] = [];
    for (const key of keys) {
      const value = this.arrived.get(key);
      states.push(value === undefined ? undefined : this.resolve(key, value));
    }
    const index = chooseAnswer(states, final);
    if (index === null) return null;
    const state = states[index]!;
    assert(index === 0 || state === null || (state.header.prior === true && (state.header.priorIndex ?? 0) === index - 1), "a prior's key holds that prior's answer");
    const passedKeys: string[] = [];
    for (let each = 0; each < keys.length; each++) {
      const key = keys[each]!;
      const other = states[each];
      if (each === index) this.arrived.delete(key);
      else if (each < index && (other === null || other?.header.none === true)) {
        this.arrived.delete(key);
        passedKeys.push(key);
      } else this.dropAnswer(key, nowMs);
    }
    return { state, key: keys[index]!, passedKeys };
  }

  /** The rule for the source's own messages behind the marker, logged with the session. */
  private addSkip(state: HandoverState): LocalCounter | null {
    const clientId = state.header.client;
    // Skip rules of an earlier stay of the session here are replaced by those the state brings.
    for (let index = 0; index < this.skips.length; index++) {
      if (this.skips[index]!.clientId !== clientId) continue;
      this.host.entryDone(this.skips[index]!.outboxId);
      this.skips.splice(index--, 1);
    }
    const rules: CarriedRule[] = [{ origin: state.header.from, cut: state.header.cut, holes: state.header.holes ?? [] }, ...(state.header.carried ?? [])];
    let ownCut: LocalCounter | null = null;
    for (const rule of rules) {
      const cut = parseCounter(rule.cut);
      if (cut === null) continue;
      const holes = parseHoles(rule.holes);
      // This node's own hand-offs the session does not hold come to it from the stream (windows);
      // the others it routes itself, at once, or has kept since the marker.
      if (rule.origin === this.host.nodeId) {
        for (const hole of holes) this.logWindow(clientId, hole.from, hole.to);
        ownCut = cut;
        continue;
      }
      const headers: Record<string, string> = { client: clientId, origin: rule.origin, cut: rule.cut };
      if (holes.length > 0) headers.holes = JSON.stringify(formatHoles(holes));
      const outboxId = this.host.logEntry(skipOutboxSubject, headers);
      this.skips.push({ clientId, origin: rule.origin, cut, holes, outboxId });
    }
    return ownCut;
  }

  /** A rule logged before the last start (cluster-node.ts recovery). */
  restoreSkip(skip: Skip): void {
    this.skips.push(skip);
  }

  /** A window logged before the last start (cluster-node.ts recovery). */
  restoreWindow(window: OwnWindow): void {
    this.windows.push(window);
  }

  /** Adopted without the copies of this node's own hand-offs since the marker (it restarted): they come from the stream. */
  private addWindow(clientId: string, from: LocalCounter): void {
    this.logWindow(clientId, from, this.host.counter());
  }

  private logWindow(clientId: string, from: LocalCounter, to: LocalCounter): void {
    if (compareCounters(to, from) <= 0) return;
    const outboxId = this.host.logEntry(windowOutboxSubject, { client: clientId, from: formatCounter(from), to: formatCounter(to) });
    this.windows.push({ clientId, from, to, outboxId });
  }

  /**
   * The sessions this node's own durable publications reach only through the stream for now: those
   * with an open window. A window's messages come from the stream, behind the reader; a newer
   * publication routed at once would overtake them (order per publisher, seed 1200029), so it
   * joins the window instead (extendWindows) and the session gets it in the stream's order. Null
   * when no window is open (the common case).
   */
  heldClients(): ReadonlySet<string> | null {
    if (this.windows.length === 0) return null;
    const held = new Set<string>();
    for (const window of this.windows) held.add(window.clientId);
    return held;
  }

  /**
   * This node queued a durable hand-off at `counter` that it did not route to the windows' sessions
   * (heldClients): every open window now reaches up to it. Logged before the publisher's
   * acknowledgement (it is in the same input), so a crash cannot leave it out of the window.
   */
  extendWindows(counter: LocalCounter): void {
    for (let index = 0; index < this.windows.length; index++) {
      const window = this.windows[index]!;
      if (compareCounters(counter, window.to) <= 0) continue;
      const outboxId = this.host.logEntry(windowOutboxSubject, { client: window.clientId, from: formatCounter(window.from), to: formatCounter(counter) });
      this.host.entryDone(window.outboxId);
      this.windows[index] = { clientId: window.clientId, from: window.from, to: counter, outboxId };
    }
  }

  /** For one of this node's own hand-offs from the stream: the client id whose window holds it, or ''. */
  ownWindows(headers: ClusterHeaders): readonly string[] {
    if (this.windows.length === 0) return noClients;
    const counter = parseCounter(headers[headerSequence]);
    if (counter === null) return noClients;
    const clients: string[] = [];
    for (let index = 0; index < this.windows.length; index++) {
      const window = this.windows[index]!;
      // Windows overlap (extendWindows): the hand-off goes to every session whose window holds it.
      if (compareCounters(counter, window.from) > 0 && compareCounters(counter, window.to) <= 0 && !clients.includes(window.clientId)) clients.push(window.clientId);
      if (compareCounters(counter, window.to) >= 0) {
        this.windows.splice(index--, 1);
        this.endedWindows.push(window.outboxId);
      }
    }
    return clients;
  }

  /** After the hand-off that ended windows is routed and recorded applied: the windows' entries are done (a replay before finds them). */
  windowsRouted(): void {
    for (const outboxId of this.endedWindows) this.host.entryDone(outboxId);
    this.endedWindows.length = 0;
  }

  private deleteKey(key: string): void {
    if (this.host.connected) this.broker.pushCluster({ op: 'kv-set', requestId: this.host.nextRequestId(), bucket: handoverBucket, key, value: null, expectedRevision: null });
  }

  /**
   * Writes a handed-over session into this node's log, as an offline session, with the rules for
   * this node's own hand-offs since the marker: the copies kept of them (`own`), or, when they
   * were lost in a restart (`own` null), a window from `markerCounter` on.
   */
  private apply(state: HandoverState, own: readonly OwnHandoff[] | null, markerCounter: LocalCounter | null, claimRevision: number | null, nowMs: number): void {
    const broker = this.broker;
    const clientId = state.header.client;
    this.counters.received += 1;
    if (broker.state.sessions.has(clientId) || broker.pendingWills.has(clientId)) endSession(broker, clientId, nowMs);
    const shiftMs = nowMs - state.header.nowMs;
    const ids = new Map<number, number>();
    for (const record of state.records) applyRecord(broker, record, ids, shiftMs, nowMs, state.header.willInMs, claimRevision);
    const session = broker.state.sessions.get(clientId);
    assert(session !== undefined, 'a handed-over state creates its session');
    if (session.expiryIntervalSeconds !== 0) scheduleSessionExpiry(broker, session, nowMs);
    const ownCut = this.addSkip(state);
    // This node's own publications since the marker, which nobody routed to the session yet. When
    // the session left this node before with a rule still open (every own message above its cut
    // is behind the marker, and some below it may come from the stream through the holes'
    // windows), they come from the stream too, in order behind those (seed 2100398). Those at or
    // below that cut the session holds already (routing put them into it while it was here, and
    // the holes are windows of their own), so a window from the marker must not reach below it:
    // this node may have queued the marker while it still held the session for an older claim,
    // restarted, and got the session back (seed 2300366: a QoS 2 message twice).
    if (ownCut !== null) this.logWindow(clientId, ownCut, this.host.counter());
    else if (own === null) {
      if (markerCounter !== null) this.addWindow(clientId, markerCounter);
    } else {
      // A copy an open window of this node holds reaches the session from the stream, in order (an
      // older marker's window, seed 2100095); the others go now.
      for (const handoff of own) if (!this.inOwnWindow(clientId, handoff.headers)) this.host.routeOnly(clientId, handoff, nowMs);
    }
    broker.log('info', 'session-adopted', { clientId, fromNode: state.header.from, deliveries: session.inflight.size + session.queue.length });
  }

  /** Whether an open window of `clientId` holds this node's hand-off with `headers`. */
  private inOwnWindow(clientId: string, headers: ClusterHeaders): boolean {
    const counter = parseCounter(headers[headerSequence]);
    if (counter === null) return false;
    for (const window of this.windows) {
      if (window.clientId === clientId && compareCounters(counter, window.from) > 0 && compareCounters(counter, window.to) <= 0) return true;
    }
    return false;
  }

  /** The reader reads on: the marker is applied, then what waited behind it. */
  private release(nowMs: number): void {
    const hold = this.hold;
    assert(hold !== null, 'only a standing reader is released');
    this.hold = null;
    this.host.markerDone(hold.sequence, nowMs, hold.buffered);
  }

  // ---- deadlines, the link, the bucket --------------------------------------------------------

  /** A hand-over deadline (or a retry) may be due. */
  due(nowMs: number): void {
    this.issuePut();
    // At its deadline B goes by the answers that came (a session among them is taken, answerOf)
    // before its CONNECT is given up for want of one.
    const held = this.hold;
    if (held !== null && held.role === 'destination' && nowMs >= held.deadlineMs) this.tryApply(nowMs, true);
    for (const incoming of this.incoming.values()) {
      if (!incoming.parked || nowMs < incoming.deadlineMs) continue;
      incoming.parked = false;
      this.counters.timedOut += 1;
      this.broker.log('warn', 'handover-timed-out', { clientId: incoming.clientId, fromNode: incoming.from, waitedMs: this.host.handoverWaitMs });
      // Session present 0 and a fresh session; a state that comes later is dropped.
      incoming.gaveUp = this.host.answer(incoming.clientId, nowMs, true);
    }
    const hold = this.hold;
    if (hold !== null && hold.role === 'destination' && nowMs >= hold.deadlineMs) {
      if (hold.matched) this.incoming.delete(hold.clientId);
      this.counters.timedOut += 1;
      this.broker.log('warn', 'handover-gave-up', { clientId: hold.clientId, sequence: hold.sequence });
      // The asked node's empty answer may be here, a prior's not: they go now.
      this.dropAnswers(hold.clientId, hold.sequence, hold.priors, nowMs);
      this.release(nowMs);
    }
  }

  linkChanged(up: boolean): void {
    if (this.hold !== null) {
      // A source puts its answer again from its first part: what a put lost with the link did is unknown.
      this.hold.requestId = 0;
      this.hold.putIndex = 0;
    }
    if (!up) return;
    this.arrived.clear();
    this.parts.clear();
    this.broker.pushCluster({ op: 'kv-watch', requestId: this.host.nextRequestId(), bucket: handoverBucket });
    this.issuePut();
  }

  /** A change of `keel-handover`: keep the states addressed to this node. */
  keyChanged(nowMs: number, change: ClusterKeyChange, appliedSequence: number): void {
    assert(change.bucket === handoverBucket, 'the hand-over watches its own bucket');
    const partOf = answerKeyOfPart(change.key);
    if (partOf !== null) return this.partChanged(nowMs, change, partOf, appliedSequence);
    if (change.value === null) {
      this.arrived.delete(change.key);
      return;
    }
    const parsed = parseHandoverKey(change.key);
    if (parsed === null) return;
    if (recipientOf(change.value) !== this.host.nodeId) return;
    const waiting = this.hold?.role === 'destination' && this.hold.sequence === parsed.sequence;
    if (waiting || parsed.sequence > appliedSequence) {
      // A copy: the host's value is a view of what it read, and the state may wait here a while.
      this.arrived.set(change.key, ownCopy(change.value));
      if (waiting) this.tryApply(nowMs);
      return;
    }
    // A marker this node has passed: a state it gave up on is late; any other is stale (its
    // deletion was lost with the link).
    if (this.gaveUpKeys.delete(change.key)) return this.lateValue(change.key, change.value, nowMs);
    this.deleteAnswer(change.key);
  }

  /**
   * A change of a part of the answer under `answerKey`: kept, addressed to this node, while its
   * marker is ahead or waited at, or its answer would be late (the head that follows needs it);
   * deleted when its marker is passed (stale: an answer this node applied, or never will).
   */
  private partChanged(nowMs: number, change: ClusterKeyChange, answerKey: string, appliedSequence: number): void {
    const parsed = parseHandoverKey(answerKey);
    if (parsed === null) return;
    if (change.value === null) {
      this.parts.get(answerKey)?.delete(change.key);
      return;
    }
    const part = decodePart(change.value);
    if (part === null || part.recipient !== this.host.nodeId) return;
    const waiting = this.hold?.role === 'destination' && this.hold.sequence === parsed.sequence;
    if (!waiting && parsed.sequence <= appliedSequence && !this.gaveUpKeys.has(answerKey)) return this.deleteKey(change.key);
    let parts = this.parts.get(answerKey);
    if (parts === undefined) {
      parts = new Map();
      this.parts.set(answerKey, parts);
    }
    parts.set(change.key, ownCopy(change.value));
    if (waiting) this.tryApply(nowMs);
  }

  /**
   * The state of the answer `value` under `key`: a whole state, or the one its parts make
   * (handover-parts.ts); undefined while a part it names is not here (or does not agree with it),
   * null for bytes no node makes.
   */
  private resolve(key: string, value: Uint8Array): HandoverState | null | undefined {
    const head = decodeHead(value);
    if (head === null) return decodeHandoverState(value);
    const state = assemble(key, head, this.parts.get(key) ?? noParts);
    return state === null ? undefined : decodeHandoverState(state);
  }

  /** An answer under `key` that came for a marker passed without it: late (its will fires), or, its parts not all here, dropped. */
  private lateValue(key: string, value: Uint8Array, nowMs: number): void {
    const state = this.resolve(key, value);
    if (state !== undefined && state !== null) return this.late(state, key, nowMs);
    if (state === undefined) this.broker.log('warn', 'handover-late', { clientId: parseHandoverKey(key)?.clientId ?? '', partsMissing: true });
    this.deleteAnswer(key);
  }

  /** Deletes the answer under `key` and the parts of it this node holds. */
  private deleteAnswer(key: string): void {
    for (const each of this.answerKeysOf(key)) this.deleteKey(each);
  }

  /** The keys of the answer under `key`: its own and its parts' this node holds, which it forgets. */
  private answerKeysOf(key: string): string[] {
    const parts = this.parts.get(key);
    this.parts.delete(key);
    return parts === undefined ? [key] : [key, ...parts.keys()];
  }

  /** Answers at a marker passed without them: those here are late now, those to come when they come. */
  private dropAnswers(clientId: string, sequence: number, priors: readonly string[], nowMs: number): void {
    for (const key of answerKeys(clientId, sequence, priors)) this.dropAnswer(key, nowMs);
  }

  /** The answer under `key` is not taken: late if it is here (its will fires), and late when it comes. */
  private dropAnswer(key: string, nowMs: number): void {
    const value = this.arrived.get(key);
    this.arrived.delete(key);
    if (value === undefined) return this.gaveUp(key);
    const state = this.resolve(key, value);
    if (state === null) return this.gaveUp(key);
    this.lateValue(key, value, nowMs);
  }

  /** A state under `key` that comes from now on is late (see late). */
  private gaveUp(key: string): void {
    // Bounded: the oldest are forgotten (a state that comes that late is only deleted, its will lost).
    if (this.gaveUpKeys.size >= 1_024) {
      const oldest = this.gaveUpKeys.values().next().value!;
      this.gaveUpKeys.delete(oldest);
      this.parts.delete(oldest);
    }
    this.gaveUpKeys.add(key);
  }

  /** A state for a marker this node has passed (it gave up waiting, or took another answer): its will fires here, the rest is dropped. */
  private late(state: HandoverState, key: string, nowMs: number): void {
    // An empty answer brings nothing: its key goes.
    if (state.header.none) return this.deleteAnswer(key);
    this.counters.late += 1;
    const will = state.records.find((record) => record.kind === 'will-set');
    if (will !== undefined && will.kind === 'will-set') publishWill(this.broker, state.header.client, will.will, nowMs);
    const dropped = state.records.filter((record) => record.kind === 'delivery-queued').length;
    this.broker.stats.drops.sessionEnded += dropped;
    this.broker.log('warn', 'handover-late', { clientId: state.header.client, fromNode: state.header.from, dropped });
    this.deleteAnswer(key);
  }

  // ---- routing rules for the seam -----------------------------------------------------------

  /** This node queued a hand-off: every hand-over on its way here keeps it for its session. */
  forwarded(handoff: OwnHandoff): void {
    for (const incoming of this.incoming.values()) {
      if (incoming.gaveUp) continue;
      // Kept even when a session of the client is here: the copies reach the adopted session only
      // when its state does not bring this node's own rule (apply), and then the session here is
      // not the one coming back but one the adopted state replaces, whatever routing put into it
      // with it (seed 2500593: a fresh session, without the subscription, given to a CONNECT parked
      // here that lost its claim; such a CONNECT is closed now, session-registry.ts). When the
      // session here is the client's own, handed on first at an earlier marker (seed 2100063), it
      // comes back with this node's rule, and the copies are not used.
      if (incoming.own.length < ownHandoffsMax) incoming.own.push(handoff);
      else this.broker.log('warn', 'handover-own-dropped', { clientId: incoming.clientId });
    }
  }

  /**
   * For a hand-off from another node: the client ids to leave out (sessions whose handed-over
   * state already holds it), or null.
   */
  except(headers: ClusterHeaders, origin: string): ReadonlySet<string> | null {
    if (this.skips.length === 0) return null;
    const counter = parseCounter(headers[headerSequence]);
    if (counter === null) return null;
    let except: Set<string> | null = null;
    for (let index = 0; index < this.skips.length; index++) {
      const skip = this.skips[index]!;
      if (skip.origin !== origin) continue;
      if (compareCounters(counter, skip.cut) > 0) {
        this.skips.splice(index--, 1);
        this.host.entryDone(skip.outboxId);
        continue;
      }
      if (inHoles(counter, skip.holes)) continue;
      except ??= new Set();
      except.add(skip.clientId);
    }
    return except;
  }
}

/**
 * Applies one handed-over record to this node's log: message ids renumbered, times moved to this
 * clock, the session made under `claimRevision` (this node's claim it is adopted for; null: unknown).
 */
function applyRecord(broker: Broker, record: StateRecord, ids: Map<number, number>, shiftMs: number, nowMs: number, willInMs: number | null, claimRevision: number | null): void {
  switch (record.kind) {
    case 'message-stored': {
      const fields = record.message;
      const message: StoredMessage = {
        ...fields,
        messageId: 0,
        createdAtMs: fields.createdAtMs + shiftMs,
        expiryAtMs: fields.expiryAtMs === null ? null : fields.expiryAtMs + shiftMs,
        references: 0,
      };
      ids.set(fields.messageId, storeMessage(broker, message, false).messageId);
      return;
    }
    case 'session-created': {
      // Recorded under the claim adoptedRevision chose (null: unknown, as before), not the source's.
      const { claimRevision: _source, ...created } = record;
      broker.commit(claimRevision === null ? created : { ...created, claimRevision });
      broker.commit({ kind: 'session-disconnected', clientId: record.clientId, atMs: nowMs, expiryIntervalSeconds: record.expiryIntervalSeconds });
      return;
    }
    case 'delivery-queued': {
      const messageId = ids.get(record.messageId);
      assert(messageId !== undefined, 'a handed-over delivery names a handed-over message');
      broker.commit({ ...record, messageId });
      return;
    }
    case 'will-set':
      broker.commit(record);
      broker.pendingWills.set(record.clientId, { will: record.will, deadlineMs: nowMs + (willInMs ?? 0) });
      broker.deadlines.push(nowMs + (willInMs ?? 0), 'will', 0, record.clientId);
      return;
    case 'subscription-added':
    case 'incoming-qos2-recorded':
    case 'session-counters':
      broker.commit(record);
      return;
    default:
      assert(false, `a handed-over state holds no ${record.kind} record`);
  }
}
