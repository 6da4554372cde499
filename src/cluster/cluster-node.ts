/**
 * One node of a Keel cluster: how the pure core reaches the other nodes through the cluster link
 * (contract.ts ClusterRequest / ClusterInputs), which the Node host maps onto NATS.
 *
 * Design (README "Cluster" takes its figures from here):
 *
 * Every node is a full broker with its own data directory; NATS connects them. A message published
 * on a node is routed to that node's own sessions as on a single broker and handed to the others:
 * - QoS 0: a core NATS publish on the mapped subject (subjects.ts), at most once. A node
 *   subscribes on core NATS to the mapped subjects of every filter its sessions hold (counted, so
 *   a subject is subscribed once however many filters map to it, and dropped with the last);
 *   copies NATS delivers once per overlapping subscription are recognised by `Keel-Seq`.
 * - QoS 1/2: a durable publish into the hand-off stream (`$KEEL.handoff.<subject>`). Every node
 *   reads the whole stream through its own durable consumer, ignores what it published itself,
 *   routes the rest to its sessions and acknowledges a delivery only once its own log holds what
 *   routing it wrote plus a `cluster-applied` record of the stream sequence, in stream order (an
 *   ack covers every sequence up to it: contract.ts `ack`). A redelivery at or
 *   below the applied sequence is acknowledged again and not routed again (exactly once per
 *   node); a delivery beyond the next expected sequence is left unacknowledged, so the stream
 *   redelivers in order what a crash made this node forget (the stream holds only hand-offs and
 *   the consumer takes all of it, so its sequences are consecutive). A node expects sequence 1
 *   first; past a gap that lasts handoffGapWaitMs of connected time (the stream no longer holds
 *   the missing sequences: its first message is later, or it discarded some) it takes the lowest
 *   it was given, and logs it. A node on a fresh log (a new data directory, or its disk lost)
 *   takes its first delivery at once: nothing below it is owed to a session it holds. A gap whose
 *   missing sequences are all at or below the consumer's ack floor (the answer to this link's
 *   `consume`) is given up at once: this node id acknowledged them, so its log lost them and the
 *   consumer never delivers them again (belowAckFloor).
 * - Markers of session hand-overs (session-handover.ts) are read only once the node's watch of
 *   `keel-sessions` has replayed the bucket since the link came up (contract.ts
 *   clusterWatchCurrent), when what this node does at them rests on the claims (it is asked for
 *   the session, or holds a copy of it): until then the reader stands at the first such marker,
 *   holding what comes behind it (at most what NATS delivers unacknowledged). Hand-offs and other
 *   markers before it are read at once, so a reconnection pays for the replay (README "Cluster"
 *   has its time for a large bucket) only when such a marker is among the first deliveries.
 * - Batches (handoff-batch.ts): at most handoffUnitsInFlightMax stream messages of a node wait for
 *   JetStream's acknowledgement at once; the QoS 1 hand-offs queued meanwhile go out together as
 *   one stream message (`$KEEL.handoff.$batch`), so under load JetStream stores, and every node's
 *   consumer takes and acknowledges, one message per batch rather than per MQTT message (that
 *   per-message cost bounded QoS 1 across nodes at about 2,400/s on the 2-core machine). A batch is
 *   one stream sequence: the rules above (applied record, redelivery, gaps) hold per batch, and a
 *   receiving node routes its messages in order in one input. Logged hand-offs (QoS 2, wills)
 *   queued so go as batches of their own, each named in the log before it is published (a
 *   membership record whose outbox id makes its dedupe id), so that an outbox resend after a crash
 *   meets the same dedupe id with the same message; markers go alone, and so does a lone hand-off.
 * - Backpressure: a hand-off that a stream took while the streams' entries in memory were at
 *   streamBacklogBytesMax (throttle.ts) pauses this node's consumer (`pace`) until they are under
 *   half; the host holds at most the consumer's unacknowledged deliveries meanwhile, so the
 *   hand-offs wait in the stream at the disk's pace rather than in memory at NATS's. A QoS 0
 *   message from core NATS skips the streams at the bound instead (nothing can hold it back).
 * - The publisher's PUBACK / PUBREC waits until both its own log is synced (as on one node) and
 *   the stream acknowledged the hand-off: an acknowledged message is then safe from the loss of
 *   any one node and from a NATS restart (JetStream keeps the stream). While NATS is away the
 *   acknowledgement waits (nothing is acknowledged that is not safe); local subscribers are served
 *   meanwhile, and the hand-offs go out, in order, when NATS returns.
 * - QoS 2 is exactly once across nodes: its hand-off is first written to this node's log (the
 *   outbox) and published only once that record is durable, under a dedupe id made of the node id
 *   and the outbox id (in a batch: the batch record's outbox id, handoff-batch.ts), so a resend
 *   after a crash (recovery re-issues the outbox) is stored once by the stream; the record is
 *   dropped once the stream holds it. QoS 1 hand-offs are not logged
 *   (a crash before the PUBACK leaves the resend to the client, and a duplicate is allowed); their
 *   dedupe ids carry an epoch claimed durably at start, so ids never repeat across restarts.
 * - Order: hand-offs are issued in publish order and a failure re-issues the failed one and every
 *   later one in order (the dedupe ids keep what the stream already holds from being stored
 *   twice); the link is one ordered connection, so what the stream holds of one node's hand-offs
 *   is a prefix of what was issued, and order per publisher and topic holds across nodes for
 *   what a publisher sends through one node. A client that moves to another node may see what it
 *   publishes there overtake, at that node's subscribers, what it published through the first
 *   node, while the new node is behind on the stream (it was cut off from NATS): the new node
 *   routes its own publications at once. Closing that gap would mean holding a CONNACK until the
 *   node has caught up with the stream; not done (the simulator checks order per node).
 *
 * What is durable where: a node's log holds its sessions (subscriptions, queued and inflight
 * messages), its retained table and its outbox; the hand-off stream holds every QoS 1/2 message
 * until each node's consumer acknowledged it (JetStream keeps consumer positions). A node killed
 * and restarted on its data directory loses nothing acknowledged: what its sessions were owed is
 * in its log or still unacknowledged in the stream. A node whose disk is gone loses the sessions
 * that lived on it (their queued messages and subscriptions) and the QoS 1/2 messages its clients
 * published that were acknowledged but not yet delivered to its own local subscribers; messages
 * it handed off still reach every other node, and the retained messages it put into the bucket
 * stay the cluster's. Wills live in the log of the node their connection was on.
 *
 * Retained messages are cluster-wide through the `keel-retained` key-value bucket
 * (retained-sync.ts, which states the rule for which write of a topic wins): a node applies a
 * retained PUBLISH to its own table at once and puts it into the bucket (an empty payload deletes
 * the key) as a compare-and-set at the revision it knew when the message arrived; the PUBACK /
 * PUBREC waits for the put too. Every node watches the bucket and applies its changes in revision
 * order, its own puts included, so all nodes converge on the bucket's order and a new subscriber on
 * any node gets the newest. A put that meets a change it did not know of goes again only while
 * someone here is still to be answered for it, else it is dropped: a value does not land after
 * its publication was acknowledged elsewhere (but for a publisher that left unnoticed, see
 * retained-sync.ts). Puts of QoS 2 messages and of wills are logged in the
 * outbox with their base revision and issued again after a crash; a QoS 2 resend answered from
 * its recorded packet id waits until what the outbox held at start is done.
 *
 * Next step (designed, not built): replicate sessions through JetStream. Each session's changes
 * (subscribe, unsubscribe, delivery queued / acknowledged) are appended to a per-session subject
 * of a replicated stream (`$KEEL.session.<client id>`, R3) before they are acknowledged, and the
 * node's local log becomes a cache; a node taking a session over reads its subject from the
 * last snapshot. Cost per QoS 1 delivery: one more replicated JetStream write (on this machine a
 * JetStream R1 publish with acknowledgement costs about the same as an fsync, 0.1–0.5 ms; R3 adds
 * a network round trip between NATS servers), batched per input like the local group commit;
 * storage: the sessions' records once per NATS server. A node's permanent loss then costs nothing
 * acknowledged, only the connections it held.
 *
 * Client ids are unique cluster-wide (session-registry.ts): a node claims a client id in the
 * `keel-sessions` bucket (compare-and-set) before it accepts the CONNECT, and a node that sees an
 * id it serves claimed by another closes that connection (0x8E) and ends its copy of the session.
 * A persistent session moves with its client (session-handover.ts): the new owner puts a marker
 * into the hand-off stream; the old owner serializes the session into the `keel-handover` bucket
 * when its reader reaches the marker, the new owner writes it into its log when its reader does,
 * and the stream's order makes the marker a seam between what each of them routed. Every durable
 * hand-off carries this node's counter (`Keel-Seq`, `<epoch>-<ticket>`) so that the seam also
 * holds for the messages a node routes to its own sessions at once.
 *
 * `$share` groups are cluster-wide (shared-groups.ts): each node keeps a key per group it has
 * members of in the `keel-shared` bucket and watches the bucket; the node a message is published
 * on chooses one node per matching group among those with members (round robin) and sends the
 * choices in the `Keel-Share` header; a node delivers a group's copy only where it was chosen. A
 * chosen node that is down gets its copies when it returns (delayed, not re-routed).
 */
import { assert } from '../assert.js';
import type { Broker } from '../broker/broker.js';
import { transientMessage } from '../broker/message.js';
import { ownCopy } from '../codec/own-copy.js';
import type { Properties, Qos } from '../codec/packets.js';
import { type ClusterConfig, clusterMessageBytesMaxDefault, clusterNodeIdPattern, handoverWaitMsDefault } from '../config.js';
import type { ClusterKeyChange, ClusterMessage, ClusterRequest, ClusterResult } from '../contract.js';
import type { ClusterDurableState, StateRecord, StoredMessage } from '../store/state-store.js';
import { parseSharedFilter } from '../topics/validate.js';
import {
  type BatchEntry,
  batchEntryBytes,
  decodeBatch,
  encodeBatch,
  handoffBatchBytesMax,
  handoffBatchMessagesMax,
  handoffBatchSubject,
  headerBatch,
  unitHeaders,
  unitMembersOfHeaders,
  unitOutboxSubject,
} from './handoff-batch.js';
import { decodeHeaders, encodeHeaders, headerOrigin, headerQos, headerSequence } from './headers.js';
import { natsBytes, natsBytesBound } from './message-size.js';
import { retainedBucket } from './retained-entries.js';
import { RetainedSync, retainedOutboxPrefix } from './retained-sync.js';
import {
  answerOutboxSubject,
  formatCounter,
  handoverBucket,
  handoverMarkerSubject,
  holdDelivery,
  type LocalCounter,
  markerSentOutboxSubject,
  SessionHandover,
  skipOfHeaders,
  skipOutboxSubject,
  windowOfHeaders,
  windowOutboxSubject,
} from './session-handover.js';
import { SessionRegistry, sessionsBucket } from './session-registry.js';
import { headerShare, SharedGroups, sharedBucket } from './shared-groups.js';
import { newerFormat } from './stream-format.js';
import { filterToSubjects, handoffPrefix, handoffSubject, subjectOfHandoff, subjectToTopic, topicToSubject } from './subjects.js';

/** A durable message on its way into the hand-off stream. */
interface Handoff {
  readonly ticket: number;
  readonly subject: string;
  readonly headers: Record<string, string>;
  readonly payload: Uint8Array;
  readonly dedupeId: string;
  /** The outbox id (QoS 2), or 0 (QoS 1). */
  readonly outboxId: number;
  /** The LSN that must be durable before it is published (its outbox record), 0 when none. */
  readonly readyLsn: number;
  /** The stream message it goes in, fixed when it is first issued (null: not issued yet). */
  unit: HandoffUnit | null;
  /**
   * Queued again from the outbox at start: it may have been published alone before (under its own
   * dedupe id), so it goes alone again unless the log names the batch it went in (restoreUnit).
   */
  readonly recovered: boolean;
  done: boolean;
}

/**
 * One stream message of hand-offs: a lone hand-off, or a batch of consecutive ones that are all
 * unlogged (QoS 1) or all logged (QoS 2, wills: handoff-batch.ts). Fixed once formed, so a resend
 * is the same message under the same dedupe id; a batch of logged ones is fixed in the log too.
 */
interface HandoffUnit {
  readonly members: readonly Handoff[];
  readonly subject: string;
  readonly headers: Record<string, string>;
  readonly payload: Uint8Array;
  readonly dedupeId: string;
  /** The LSN of its membership record (a batch of logged hand-offs), which must be durable before it is published; 0 when none. */
  readonly readyLsn: number;
  /** The outbox id of its membership record, 0 when none. */
  readonly outboxId: number;
  /** The request id of its latest publish, 0 while not issued. */
  requestId: number;
}

/**
 * Which hand-offs may share a batch: unlogged ones (QoS 1) with each other, logged ones (QoS 2,
 * wills) with each other; a hand-over marker goes alone (session-handover.ts reads it as its own
 * stream message), and so does a logged one queued again at start that no batch record names (it
 * may be in the stream alone already, under its own dedupe id: seed 19 with 3 nodes stored a QoS 2
 * message twice when such a one joined a new batch). A batch never mixes the two kinds: after a
 * crash only the logged ones can be sent again, so a batch of both could not be rebuilt.
 */
function batchKind(handoff: Handoff): 'unlogged' | 'logged' | 'alone' {
  if (handoff.subject === handoverMarkerSubject || handoff.recovered) return 'alone';
  return handoff.outboxId === 0 ? 'unlogged' : 'logged';
}

interface Interest {
  readonly subscriptionId: number;
  filters: number;
}

/**
 * At most this many stream messages of hand-offs wait for JetStream's acknowledgement at once;
 * what is queued meanwhile goes in the next ones, as batches (handoff-batch.ts), the way a group
 * commit shares one fsync: under load fewer, larger stream messages, and no wait when idle.
 */
export const handoffUnitsInFlightMax = 1;
/** Retry a failed hand-off after this long (a failure other than NATS being away). */
export const handoffRetryMs = 500;
/**
 * How long, connected, a node waits for a missing stream sequence before it takes the lowest it
 * has seen instead: well past the consumer's ack wait (a few seconds), after which NATS has
 * redelivered everything still pending. Only a sequence the stream no longer holds (a node
 * whose first delivery is past sequence 1, a stream that dropped messages) is skipped so; one at
 * or below the consumer's ack floor is skipped at once (belowAckFloor).
 */
export const handoffGapWaitMs = 15_000;
/** The consumer id of the hand-off stream (one per node). */
const consumerId = 1;
/** Core NATS subjects of the nodes' heartbeats: `$KEEL.alive.<node id>` (shared-groups.ts, "Liveness"). */
export const aliveSubjectPrefix = '$KEEL.alive.';
/** A node publishes its heartbeat this often while it is connected to NATS. */
export const aliveIntervalMs = 1_000;
/** A node not heard from for this long is passed over by `$share` choices (while another member node is heard). */
export const aliveSilenceMs = 3_500;
/** Nodes whose heartbeats are remembered at most (a cluster is far smaller; ids past it are ignored). */
const heardNodesMax = 1_024;
/** Outbox ids (and epochs) per millisecond of Unix time in the epoch's clock floor (recovered): 2^10, so the floor stays a safe integer until the year 2248. */
const epochIdsPerMs = 1_024;

export class ClusterNode {
  readonly nodeId: string;
  /** The largest NATS message this node sends (config `cluster.messageBytesMax`, message-size.ts). */
  readonly messageBytesMax: number;
  private connected = false;
  private nextRequestId = 1;
  private nextSubscriptionId = 1;
  private nextTicket = 1;
  /** Per-start sequence of core publishes (`Keel-Seq`). */
  private nextCoreSequence = 1;
  /** Claimed durably at start: QoS 1 dedupe ids and `Keel-Seq` values never repeat across restarts. */
  private epoch = 0;
  private epochLsn = 0;
  private readonly interests = new Map<string, Interest>();
  /** Hand-offs not yet held by the stream, in publish order; `issued` of them are out. */
  private readonly handoffs: Handoff[] = [];
  private issued = 0;
  /** Tickets not yet released, with how many things (a hand-off, a retained put) each still waits for. */
  private readonly pendingTickets = new Map<number, number>();
  /**
   * The pending ticket of each inbound QoS 2 PUBLISH handled since this start, by client and packet
   * identifier, and back: a resend of it (its client came back before the PUBREC) is acknowledged
   * once that ticket is released, as the first would have been (seed 18301230: the resend's PUBREC
   * went at once while the retained put waited on a conflict, and a newer retained message lost
   * its place to an older one). An entry goes with its ticket, so there are no more than tickets
   * pending.
   */
  private readonly incomingQos2Tickets = new Map<string, number>();
  private readonly incomingQos2KeyOfTicket = new Map<number, string>();
  private readonly requests = new Map<number, HandoffUnit>();
  /** Units issued on this link whose latest publish is not answered yet (at most handoffUnitsInFlightMax). */
  private readonly unitsInFlight = new Set<HandoffUnit>();
  /** Acknowledgements of hand-off deliveries, waiting for their records to be durable, in LSN order. */
  private readonly pendingAcks: { lsn: number; sequence: number }[] = [];
  /** The last `Keel-Seq` routed per origin node (copies of one core message arrive together). */
  private readonly lastCoreSequence = new Map<string, string>();
  private retryScheduled = false;
  /**
   * Held until every outbox entry found at start is done: a QoS 2 resend answered from its
   * recorded packet id (not routed again) waits for it, since what it stands for may be among them.
   */
  private recoveryTicket = 0;
  /** While deliveries come past a missing sequence: since when (connected time), and the lowest seen. */
  private gapSinceMs: number | null = null;
  /**
   * The node started on a log that never held a record of its own (a new data directory, or its
   * disk lost): the first hand-off it is given is taken without waiting for anything below it
   * (handoffArrived).
   */
  private freshLog = false;
  /** The hand-off stream the link reads (contract.ts clusterStatus), null until it said. */
  private stream: string | null = null;
  private gapLowest = 0;
  /** The request id of the `consume` issued on the current link, 0 while cut off (an answer to any other is an older consume's). */
  private consumeRequestId = 0;
  /**
   * The ack floor of this node's consumer as the current link's `consume` was answered (contract.ts
   * ClusterRequest `consume`): every stream sequence at or below it was acknowledged by this node
   * id's consumer; 0 until that answer, and from every change of link status on.
   */
  private ackFloor = 0;
  readonly counters = {
    coreSent: 0,
    coreReceived: 0,
    coreDuplicates: 0,
    handoffsSent: 0,
    /** Durable publishes that carried more than one hand-off (handoff-batch.ts). */
    handoffBatchesSent: 0,
    /** Batches applied from other nodes. */
    handoffBatchesApplied: 0,
    /** Of the batches sent, those of logged hand-offs (QoS 2, wills), named in the log before they went (handoff-batch.ts). */
    loggedBatchesSent: 0,
    handoffsStored: 0,
    handoffFailures: 0,
    handoffsApplied: 0,
    handoffRedeliveries: 0,
    handoffGaps: 0,
    /** Gaps given up at once because every missing sequence was at or below the consumer's ack floor (belowAckFloor). */
    handoffGapsBelowFloor: 0,
    unmappable: 0,
    consumerPauses: 0,
    /** Times the reader stopped at a message of a newer format (stream-format.ts): at most once per start. */
    readerHolds: 0,
    /** Times the reader stood at a marker until the sessions watch had replayed the bucket. */
    markersHeldForWatch: 0,
  };
  /**
   * Stream deliveries held from a hand-over marker on, in sequence order, while the watch of
   * `keel-sessions` has not replayed the bucket since the link came up (session-registry.ts
   * `current`); null while none are held. At most heldDeliveriesMax (holdDelivery), what NATS delivers
   * unacknowledged: the rest comes again once the reader goes on.
   */
  private heldForWatch: ClusterMessage[] | null = null;
  /** The hand-off consumer is paused (`pace`): the streams' backlog is at its bound, or the reader is stopped. */
  private consumerPaused = false;
  /** The stream sequence of a message of a newer format the reader stopped at (stream-format.ts), for good. */
  private readerHeld: number | null = null;
  /** The core NATS subscription to the other nodes' heartbeats. */
  private readonly aliveSubscriptionId: number;
  /** When the link last came up (null while it is down): before aliveSilenceMs of it, silence means nothing. */
  private connectedSinceMs: number | null = null;
  /** When each other node's heartbeat last arrived. */
  private readonly heardMs = new Map<string, number>();
  /** When the next heartbeat is due, null while none is scheduled (the link is down). */
  private nextAliveMs: number | null = null;
  /** `$share` groups cluster-wide (shared-groups.ts): membership in `keel-shared`, one node chosen per message. */
  readonly shares: SharedGroups;

  /** Client ids unique cluster-wide through the `keel-sessions` bucket (session-registry.ts). */
  readonly sessions: SessionRegistry;
  /** Sessions handed over between nodes at a marker in the hand-off stream (session-handover.ts). */
  readonly handover: SessionHandover;

  /** Retained messages cluster-wide through the `keel-retained` bucket (retained-sync.ts). */
  readonly retained: RetainedSync;

  constructor(
    private readonly broker: Broker,
    config: ClusterConfig,
  ) {
    this.nodeId = config.nodeId;
    this.messageBytesMax = config.messageBytesMax ?? clusterMessageBytesMaxDefault;
    assert(this.nodeId.length > 0, 'a cluster node has an id');
    this.aliveSubscriptionId = this.nextSubscriptionId++;
    const node = this;
    this.handover = new SessionHandover({
      broker,
      nodeId: this.nodeId,
      get connected() {
        return node.connected;
      },
      messageBytesMax: this.messageBytesMax,
      handoverWaitMs: config.handoverWaitMs ?? handoverWaitMsDefault,
      nextRequestId: () => this.nextRequestId++,
      counter: () => ({ epoch: this.epoch, ticket: this.nextTicket - 1 }),
      queueMarker: (headers) => this.queueMarker(headers),
      markerDone: (sequence, nowMs, buffered) => this.markerDone(sequence, nowMs, buffered),
      answer: (clientId, nowMs, fresh) => this.sessions.answer(clientId, nowMs, fresh),
      routeOnly: (clientId, handoff, nowMs) => this.routeOwn(clientId, handoff, nowMs),
      ownedHere: (clientId) => this.sessions.ownedHere(clientId),
      newestClaim: (clientId) => this.sessions.newestClaim(clientId),
      pendingWin: (clientId, revision) => this.sessions.pendingWin(clientId, revision),
      copyEnded: (clientId) => this.sessions.copyEnded(clientId),
      markerPassed: (clientId, node, revision) => this.sessions.markerPassed(clientId, node, revision),
      logEntry: (subject, headers, payload) => {
        const id = this.durable.nextOutboxId;
        this.broker.commit({ kind: 'cluster-outbox-added', entry: { id, subject, headers, payload: payload ?? new Uint8Array(0) } });
        return id;
      },
      entryDone: (id) => this.broker.commit({ kind: 'cluster-outbox-done', id }),
    });
    this.sessions = new SessionRegistry(
      broker,
      this.nodeId,
      () => this.nextRequestId++,
      () => this.epoch,
      this.handover,
    );
    this.shares = new SharedGroups({
      nodeId: this.nodeId,
      get connected() {
        return node.connected;
      },
      nextRequestId: () => this.nextRequestId++,
      request: (request) => this.request(request),
      scheduleRetry: (nowMs) => this.scheduleRetry(nowMs),
      heardLately: (nodeId) => this.heardLately(nodeId),
      log: (event, fields) => this.broker.log('info', event, { nodeId: this.nodeId, ...fields }),
    });
    broker.router.shareGate = this.shares;
    // While a hand-over window is open, this node's own durable publications reach its session through the stream.
    broker.router.localHold = (message) => (message.qos === 0 || topicToSubject(message.topic) === null ? null : this.handover.heldClients());
    this.retained = new RetainedSync(broker, {
      nodeId: this.nodeId,
      get connected() {
        return node.connected;
      },
      get epoch() {
        return node.epoch;
      },
      nextRequestId: () => this.nextRequestId++,
      request: (request) => this.request(request),
      scheduleRetry: (nowMs) => this.scheduleRetry(nowMs),
      holdTicket: (ticket) => this.holdTicket(ticket),
      releaseTicket: (ticket) => this.releaseTicket(ticket),
    });
  }

  private get durable(): ClusterDurableState {
    const state = this.broker.state.cluster;
    assert(state !== undefined, 'a cluster node keeps its hand-off state');
    return state;
  }

  /**
   * Recovery is over: claim an epoch, and queue the outbox again (its entries are durable).
   *
   * The epoch is also at least the Unix time in milliseconds times epochIdsPerMs. A node whose
   * disk was lost starts from an empty log under the same node id, while the stream's dedupe
   * window, the other nodes' hand-over rules and the `keel-sessions` claims still hold what its
   * earlier life issued: with its log's counter alone it would start again at 1, and its first
   * hand-offs would meet the dedupe ids of its earlier ones and be answered as duplicates without
   * being stored (acknowledged, then lost: seed 12). The clock floor passes every epoch and outbox
   * id of an earlier life as long as that life issued fewer than epochIdsPerMs outbox ids per
   * millisecond on average and the wall clock did not go back by more than the gap between them.
   */
  recovered(): void {
    const durable = this.durable;
    // No epoch was ever claimed in this log: nothing of its own was ever applied or logged here.
    this.freshLog = durable.nextOutboxId === 1 && durable.appliedSequence === 0;
    const clockFloor = Math.floor(this.broker.streams.wallClockMs(this.broker.lastInputMs)) * epochIdsPerMs;
    this.epoch = Math.max(durable.nextOutboxId, clockFloor);
    this.epochLsn = this.broker.commit({ kind: 'cluster-outbox-done', id: this.epoch });
    assert(durable.nextOutboxId > this.epoch, 'the epoch is claimed');
    if (durable.outbox.size > 0) this.recoveryTicket = this.nextTicket++;
    const units = this.recoveredUnits(durable);
    for (const entry of durable.outbox.values()) {
      if (entry.subject === unitOutboxSubject || units.stored.has(entry.id)) continue;
      if (entry.subject === skipOutboxSubject) {
        const skip = skipOfHeaders(entry.headers, entry.id);
        if (skip !== null) this.handover.restoreSkip(skip);
        continue;
      }
      if (entry.subject === markerSentOutboxSubject) {
        this.handover.restoreSentMarker(entry.id, entry.headers);
        continue;
      }
      if (entry.subject === answerOutboxSubject) {
        this.handover.restoreAnswer(entry.id, entry.payload, durable.appliedSequence);
        continue;
      }
      if (entry.subject === windowOutboxSubject) {
        const window = windowOfHeaders(entry.headers, entry.id);
        if (window !== null) this.handover.restoreWindow(window);
        continue;
      }
      if (entry.subject.startsWith(retainedOutboxPrefix)) {
        this.retained.recover(entry.id, entry.subject.slice(retainedOutboxPrefix.length), entry.headers, entry.payload, this.recoveryTicket);
        continue;
      }
      this.enqueue({
        ticket: this.recoveryTicket,
        subject: entry.subject,
        headers: { ...entry.headers },
        payload: entry.payload,
        dedupeId: `${this.nodeId}-o${entry.id}`,
        outboxId: entry.id,
        readyLsn: 0,
        unit: null,
        recovered: true,
        done: false,
      });
    }
    for (const unit of units.pending) this.restoreUnit(unit.id, unit.memberIds);
    // Changes the watches delivered during recovery were dropped (broker.ts): read every watched
    // bucket again (a watch issued again replaces the old one and replays every key).
    if (this.connected) {
      this.request({ op: 'kv-watch', requestId: this.nextRequestId++, bucket: retainedBucket });
      this.sessions.rewatch();
      this.request({ op: 'kv-watch', requestId: this.nextRequestId++, bucket: handoverBucket });
      this.shares.rewatch();
    }
    this.broker.log('info', 'cluster-node-started', { nodeId: this.nodeId, outbox: durable.outbox.size, appliedSequence: durable.appliedSequence });
  }

  /**
   * The batches of logged hand-offs the log names (their membership records, handoff-batch.ts):
   * those whose members are all still in the outbox go again as they were (`pending`); a record
   * with a member gone was stored (its members are dropped together, after the stream took it,
   * and the record after them), so what is left of it is dropped now (`stored`).
   */
  private recoveredUnits(durable: ClusterDurableState): { pending: { id: number; memberIds: number[] }[]; stored: Set<number> } {
    const pending: { id: number; memberIds: number[] }[] = [];
    const stored = new Set<number>();
    for (const entry of durable.outbox.values()) {
      if (entry.subject !== unitOutboxSubject) continue;
      const memberIds = unitMembersOfHeaders(entry.headers);
      assert(memberIds !== null && memberIds.length > 1, 'a membership record names the members of a batch');
      if (memberIds.every((id) => durable.outbox.has(id))) {
        pending.push({ id: entry.id, memberIds });
        continue;
      }
      for (const id of memberIds) {
        if (!durable.outbox.has(id)) continue;
        stored.add(id);
        this.broker.commit({ kind: 'cluster-outbox-done', id });
      }
      this.broker.commit({ kind: 'cluster-outbox-done', id: entry.id });
    }
    return { pending, stored };
  }

  /** Forms again, byte for byte, the batch the membership record `id` names, of hand-offs just queued from the outbox. */
  private restoreUnit(id: number, memberIds: readonly number[]): void {
    const start = this.handoffs.findIndex((handoff) => handoff.outboxId === memberIds[0]);
    assert(start >= 0, 'the first member of a recovered batch is queued');
    const members = this.handoffs.slice(start, start + memberIds.length);
    assert(
      members.every((member, index) => member.outboxId === memberIds[index] && member.unit === null),
      'the members of a recovered batch are queued together, in their order',
    );
    const bytes = members.reduce((sum, member) => sum + batchEntryBytes(member), 0);
    const unit = this.batchUnit(members, bytes, `${this.nodeId}-o${id}`, 0, id);
    for (const member of members) member.unit = unit;
  }

  // ---- interest: the core NATS subjects of this node's filters ------------------------------

  /** A filter came into the trie (`delta` 1) or left it (-1). */
  filterChanged(filter: string, delta: 1 | -1): void {
    const shared = parseSharedFilter(filter);
    const subjects = filterToSubjects(shared === null ? filter : shared.filter);
    if (subjects === null) return;
    if (shared !== null) this.shares.localChanged(shared.group, shared.filter, delta);
    for (const subject of subjects) {
      const interest = this.interests.get(subject);
      if (interest === undefined) {
        assert(delta === 1, 'a filter leaves only a subject it was counted in');
        const subscriptionId = this.nextSubscriptionId++;
        this.interests.set(subject, { subscriptionId, filters: 1 });
        if (this.connected) this.request({ op: 'subscribe', subscriptionId, subject, queueGroup: null });
        continue;
      }
      interest.filters += delta;
      assert(interest.filters >= 0, 'a subject counts no fewer than zero filters');
      if (interest.filters === 0) {
        this.interests.delete(subject);
        if (this.connected) this.request({ op: 'unsubscribe', subscriptionId: interest.subscriptionId });
      }
    }
  }

  /** How many core NATS subjects this node listens on (for tests and metrics). */
  get interestSubjects(): number {
    return this.interests.size;
  }

  // ---- the publish path ---------------------------------------------------------------------

  /**
   * Hands a message published on this node to the cluster. Returns the ticket the publisher's
   * acknowledgement must wait for (0: nothing to wait for). Topics that cannot be mapped stay here.
   * `logged` sends a QoS 1 message through the outbox too (wills: nobody would resend them).
   */
  forward(message: StoredMessage, nowMs: number, logged = false): number {
    const subject = topicToSubject(message.topic);
    if (subject === null) {
      this.counters.unmappable += 1;
      return 0;
    }
    const expirySeconds = message.expiryAtMs === null ? null : Math.max(0, Math.ceil((message.expiryAtMs - nowMs) / 1000));
    // The node chosen per shared group travels with the message (shared-groups.ts).
    const share = message.qos === 0 && !this.connected ? this.shares.discard() : this.shares.take(message.topic);
    if (message.qos === 0) {
      if (!this.connected) return 0;
      const sequence = `${this.epoch}-${this.nextCoreSequence++}`;
      const headers = encodeHeaders(this.nodeId, 0, message.retain, sequence, message.properties, expirySeconds);
      if (share !== null) headers[headerShare] = share;
      this.counters.coreSent += 1;
      this.request({ op: 'publish', subject, headers, payload: ownCopy(message.payload) });
      return 0;
    }
    const ticket = this.nextTicket++;
    // The counter lets a session hand-over tell what this node routed itself (session-handover.ts).
    const headers = encodeHeaders(this.nodeId, message.qos, message.retain, formatCounter({ epoch: this.epoch, ticket }), message.properties, expirySeconds);
    if (share !== null) headers[headerShare] = share;
    const payload = ownCopy(message.payload);
    const target = handoffSubject(subject);
    this.handover.forwarded({ subject: target, headers, payload });
    this.handover.extendWindows({ epoch: this.epoch, ticket });
    if (message.qos === 1 && !logged) {
      this.enqueue({ ticket, subject: target, headers, payload, dedupeId: `${this.nodeId}-e${this.epoch}-${ticket}`, outboxId: 0, readyLsn: this.epochLsn, unit: null, recovered: false, done: false });
      return ticket;
    }
    const outboxId = this.durable.nextOutboxId;
    const lsn = this.broker.commit({ kind: 'cluster-outbox-added', entry: { id: outboxId, subject: target, headers, payload } });
    this.enqueue({ ticket, subject: target, headers, payload, dedupeId: `${this.nodeId}-o${outboxId}`, outboxId, readyLsn: lsn, unit: null, recovered: false, done: false });
    return ticket;
  }

  /**
   * Whether a message published here can go to the other nodes: its NATS form within
   * messageBytesMax (message-size.ts). A PUBLISH or will that cannot is refused as too large.
   */
  carries(topic: string, payload: Uint8Array, qos: Qos, retain: boolean, properties: Properties | undefined): boolean {
    if (natsBytesBound(topic, payload, properties) <= this.messageBytesMax) return true;
    return natsBytes(this.nodeId, topic, payload, qos, retain, properties) <= this.messageBytesMax;
  }

  /** The ticket an acknowledgement that stands for a message handled before the last start waits for (0: none). */
  get startupTicket(): number {
    return this.recoveryTicket !== 0 && this.pendingTickets.has(this.recoveryTicket) ? this.recoveryTicket : 0;
  }

  /** An inbound QoS 2 PUBLISH was handled here, its PUBREC held by `ticket` (0: none). */
  incomingQos2Handled(clientId: string, packetId: number, ticket: number): void {
    if (ticket === 0 || !this.pendingTickets.has(ticket)) return;
    assert(!this.incomingQos2KeyOfTicket.has(ticket), 'a ticket stands for one inbound QoS 2 PUBLISH');
    const key = incomingQos2Key(clientId, packetId);
    const earlier = this.incomingQos2Tickets.get(key);
    if (earlier !== undefined) this.incomingQos2KeyOfTicket.delete(earlier);
    this.incomingQos2Tickets.set(key, ticket);
    this.incomingQos2KeyOfTicket.set(ticket, key);
  }

  /** The ticket the PUBREC of a resent inbound QoS 2 PUBLISH waits for: its first handling's while pending, else the start's (0: none). */
  incomingQos2Ticket(clientId: string, packetId: number): number {
    const ticket = this.incomingQos2Tickets.get(incomingQos2Key(clientId, packetId));
    if (ticket === undefined) return this.startupTicket;
    assert(this.pendingTickets.has(ticket), 'an entry goes with its ticket');
    return ticket;
  }

  /** True while the hand-off (or retained put) behind `ticket` is not yet held by NATS. */
  handoffPending(ticket: number): boolean {
    return this.pendingTickets.has(ticket);
  }

  private enqueue(handoff: Handoff): void {
    this.handoffs.push(handoff);
    this.holdTicket(handoff.ticket);
  }

  private holdTicket(ticket: number): void {
    this.pendingTickets.set(ticket, (this.pendingTickets.get(ticket) ?? 0) + 1);
  }

  private releaseTicket(ticket: number): void {
    const count = this.pendingTickets.get(ticket);
    assert(count !== undefined && count > 0, 'a ticket is released once per hold');
    if (count > 1) {
      this.pendingTickets.set(ticket, count - 1);
      return;
    }
    this.pendingTickets.delete(ticket);
    const key = this.incomingQos2KeyOfTicket.get(ticket);
    if (key === undefined) return;
    this.incomingQos2KeyOfTicket.delete(ticket);
    this.incomingQos2Tickets.delete(key);
  }

  // ---- retained messages, cluster-wide through the keel-retained bucket ---------------------

  /**
   * Puts a retained message (an empty payload: its deletion) into the bucket (retained-sync.ts).
   * The acknowledgement behind `ticket` (0: a new one) waits for the put too, so an acknowledged
   * retained message is the cluster's. Returns the ticket; `ticket` unchanged for a topic that
   * stays on this node. `logged`: a will (nobody would resend it); QoS 2 puts are logged too.
   */
  putRetained(topic: string, qos: Qos, payload: Uint8Array, properties: Properties | undefined, expirySeconds: number | null, ticket: number, logged = false): number {
    if (topicToSubject(topic) === null) return ticket;
    const held = ticket === 0 ? this.nextTicket++ : ticket;
    // A QoS 2 resend after a crash is acknowledged without being routed again, and nobody resends
    // a will: their puts are logged, and recovery issues them again.
    this.retained.put(topic, qos, payload, properties, expirySeconds, held, qos === 2 || logged);
    return held;
  }

  /** A change of a watched bucket. */
  keyChanged(nowMs: number, change: ClusterKeyChange): void {
    if (change.bucket === sessionsBucket) return this.sessions.keyChanged(nowMs, change);
    if (change.bucket === sharedBucket) return this.shares.keyChanged(change);
    if (change.bucket === handoverBucket) return this.handover.keyChanged(nowMs, change, this.durable.appliedSequence);
    if (change.bucket === retainedBucket) this.retained.keyChanged(nowMs, change);
  }

  /**
   * Publishes, in order, every hand-off whose records are durable, while NATS is there; consecutive
   * QoS 1 ones go as one batch, and so do consecutive logged ones (handoff-batch.ts). A unit issued
   * before goes again as it was. `formLogged`: a batch of logged hand-offs may be formed now; only
   * before the input's records are flushed (beforeFlush), so that its membership record goes with
   * them and nothing waits for a later input to write it.
   */
  private issueReady(formLogged = false): void {
    if (!this.connected) return;
    const durableLsn = this.broker.store.durableLsn;
    while (this.issued < this.handoffs.length && this.unitsInFlight.size < handoffUnitsInFlightMax) {
      const handoff = this.handoffs[this.issued]!;
      if (handoff.readyLsn > durableLsn) return;
      if (handoff.done) {
        this.issued += 1;
        continue;
      }
      const unit = handoff.unit ?? this.formUnit(this.issued, durableLsn, formLogged);
      if (unit === null) return;
      assert(unit.members[0] === handoff, 'a hand-off unit is issued from its first member');
      // A batch of logged hand-offs goes out only once the log names its members (restoreUnit).
      if (unit.readyLsn > durableLsn) return;
      this.issued += unit.members.length;
      assert(this.issued <= this.handoffs.length, 'a unit holds only queued hand-offs');
      const requestId = this.nextRequestId++;
      unit.requestId = requestId;
      this.requests.set(requestId, unit);
      this.unitsInFlight.add(unit);
      this.counters.handoffsSent += unit.members.length;
      if (unit.members.length > 1) this.counters.handoffBatchesSent += 1;
      if (unit.outboxId !== 0) this.counters.loggedBatchesSent += 1;
      this.request({ op: 'publish-durable', requestId, subject: unit.subject, headers: unit.headers, payload: unit.payload, dedupeId: unit.dedupeId });
    }
  }

  /**
   * The stream message for the hand-off at `start` and the ready ones of its kind right behind it
   * (batchKind), within the batch bounds. A batch of logged hand-offs is first named in the log
   * (its membership record, whose outbox id makes its dedupe id): null when it may not be formed
   * now (`formLogged`).
   */
  private formUnit(start: number, durableLsn: number, formLogged: boolean): HandoffUnit | null {
    const first = this.handoffs[start]!;
    assert(first.unit === null && !first.done, 'a unit is formed once, of hand-offs still to store');
    const kind = batchKind(first);
    const members: Handoff[] = [first];
    let bytes = batchEntryBytes(first);
    for (let index = start + 1; kind !== 'alone' && index < this.handoffs.length && members.length < handoffBatchMessagesMax; index++) {
      const next = this.handoffs[index]!;
      if (batchKind(next) !== kind || next.unit !== null || next.done || next.readyLsn > durableLsn) break;
      const nextBytes = batchEntryBytes(next);
      if (bytes + nextBytes > handoffBatchBytesMax) break;
      bytes += nextBytes;
      members.push(next);
    }
    let unit: HandoffUnit;
    if (members.length === 1) {
      unit = { members, subject: first.subject, headers: first.headers, payload: first.payload, dedupeId: first.dedupeId, readyLsn: 0, outboxId: 0, requestId: 0 };
    } else if (kind === 'unlogged') {
      unit = this.batchUnit(members, bytes, `${first.dedupeId}-b${members.length}`, 0, 0);
    } else {
      if (!formLogged) return null;
      const id = this.durable.nextOutboxId;
      const headers = unitHeaders(members.map((member) => member.outboxId));
      const lsn = this.broker.commit({ kind: 'cluster-outbox-added', entry: { id, subject: unitOutboxSubject, headers, payload: new Uint8Array(0) } });
      unit = this.batchUnit(members, bytes, `${this.nodeId}-o${id}`, lsn, id);
    }
    for (const member of members) member.unit = unit;
    return unit;
  }

  /** A batch of `members` (`bytes`: their batchEntryBytes), as it goes into the stream. */
  private batchUnit(members: readonly Handoff[], bytes: number, dedupeId: string, readyLsn: number, outboxId: number): HandoffUnit {
    assert(members.length > 1, 'a batch has several members');
    const headers = { [headerOrigin]: this.nodeId, [headerBatch]: String(members.length) };
    return { members, subject: handoffBatchSubject, headers, payload: encodeBatch(members, bytes), dedupeId, readyLsn, outboxId, requestId: 0 };
  }

  /** Before the input's records are flushed: issue what is ready, forming batches of logged hand-offs (issueReady). */
  beforeFlush(): void {
    if (this.issued < this.handoffs.length) this.issueReady(true);
  }

  // ---- inputs -------------------------------------------------------------------------------

  /** The record that `sequence` of the stream the link reads is applied (named, once known). */
  private appliedRecord(sequence: number): Extract<StateRecord, { kind: 'cluster-applied' }> {
    return this.stream === null ? { kind: 'cluster-applied', sequence } : { kind: 'cluster-applied', sequence, stream: this.stream };
  }

  /**
   * The link reads `stream`. Another stream than the one this node's log counts in was made anew
   * (a NATS that lost its store): its sequences start again at 1, and the node would take them
   * for redeliveries of the old stream's up to the sequence it had applied there, acknowledged and
   * never routed. So the count starts again, and acknowledgements still waiting go (they name
   * sequences of the old stream, and an acknowledgement covers every sequence up to it).
   */
  private streamIs(stream: string): void {
    const known = this.durable.appliedStream;
    this.stream = stream;
    if (known === undefined || known === stream) return;
    this.broker.log('warn', 'cluster-stream-replaced', { nodeId: this.nodeId, was: known, now: stream, appliedSequence: this.durable.appliedSequence });
    this.broker.commit(this.appliedRecord(0));
    this.pendingAcks.length = 0;
  }

  status(nowMs: number, status: 'connected' | 'disconnected', stream?: string): void {
    if (status === 'disconnected') {
      if (!this.connected) return;
      this.connected = false;
      // The consumer may have delivered hand-offs this life that never reached the node (they
      // come again after their ack wait, maybe behind newer ones): they may be owed to sessions
      // opened here since the start, so the first hand-off of a later link is no fresh start
      // (see freshStart; seed 7403090).
      this.freshLog = false;
      // Whatever is out may or may not be stored: all of it goes again, in order, on return.
      this.issued = 0;
      this.unitsInFlight.clear();
      this.retained.disconnected();
      this.sessions.linkChanged(false);
      this.handover.linkChanged(false);
      this.shares.disconnected();
      this.connectedSinceMs = null;
      // The floor belonged to this link's consume; the next link's consume answers its own.
      this.consumeRequestId = 0;
      this.ackFloor = 0;
      this.broker.log('warn', 'cluster-disconnected', { nodeId: this.nodeId, handoffsWaiting: this.handoffs.length });
      return;
    }
    this.connected = true;
    if (stream !== undefined) this.streamIs(stream);
    this.issued = 0;
    this.unitsInFlight.clear();
    // Time cut off from NATS does not count towards giving up on a missing sequence.
    this.gapSinceMs = null;
    this.broker.log('info', 'cluster-connected', { nodeId: this.nodeId, subjects: this.interests.size, handoffsWaiting: this.handoffs.length });
    for (const [subject, interest] of this.interests) this.request({ op: 'subscribe', subscriptionId: interest.subscriptionId, subject, queueGroup: null });
    // Its answer carries the consumer's ack floor (ackFloorAnswered); an older consume's is ignored.
    this.consumeRequestId = this.nextRequestId++;
    this.ackFloor = 0;
    this.request({ op: 'consume', requestId: this.consumeRequestId, consumerId, filterSubject: `${handoffPrefix}>` });
    // A new consume starts unpaused; the next overrun pauses it again, as a stopped reader does at once.
    this.consumerPaused = false;
    if (this.readerHeld !== null) this.pace(true);
    this.request({ op: 'kv-watch', requestId: this.nextRequestId++, bucket: retainedBucket });
    this.sessions.linkChanged(true);
    this.handover.linkChanged(true);
    this.shares.connected();
    this.connectedSinceMs = nowMs;
    this.request({ op: 'subscribe', subscriptionId: this.aliveSubscriptionId, subject: `${aliveSubjectPrefix}*`, queueGroup: null });
    this.publishAlive(nowMs);
    this.issueReady();
    this.retained.issueAll();
  }

  // ---- liveness: heartbeats for the `$share` choice (shared-groups.ts) ----------------------

  /** The heartbeat deadline: publish this node's heartbeat and schedule the next, while connected. */
  aliveDue(nowMs: number): void {
    // A deadline replaced at a reconnection (the heartbeat went out then) changes nothing.
    if (this.nextAliveMs !== null && nowMs < this.nextAliveMs) return;
    this.nextAliveMs = null;
    if (this.connected) this.publishAlive(nowMs);
  }

  private publishAlive(nowMs: number): void {
    this.request({ op: 'publish', subject: `${aliveSubjectPrefix}${this.nodeId}`, headers: {}, payload: new Uint8Array(0) });
    this.nextAliveMs = nowMs + aliveIntervalMs;
    this.broker.deadlines.push(this.nextAliveMs, 'cluster-alive', 0, '');
  }

  /** A heartbeat arrived on `subject` (any subscription: a node listening on `>` hears them too). */
  private heard(subject: string, nowMs: number): void {
    const nodeId = subject.slice(aliveSubjectPrefix.length);
    if (nodeId === this.nodeId || !clusterNodeIdPattern.test(nodeId)) return;
    if (!this.heardMs.has(nodeId) && this.heardMs.size >= heardNodesMax) return;
    this.heardMs.set(nodeId, nowMs);
  }

  /**
   * Whether a `$share` choice may go to `nodeId`: this node, a node heard from within
   * aliveSilenceMs, or any node while this node cannot tell (cut off from NATS, or connected for
   * less than aliveSilenceMs, so that every heartbeat has had its chance to arrive).
   */
  private heardLately(nodeId: string): boolean {
    if (nodeId === this.nodeId || this.connectedSinceMs === null) return true;
    const nowMs = this.broker.lastInputMs;
    if (nowMs - this.connectedSinceMs < aliveSilenceMs) return true;
    const heardMs = this.heardMs.get(nodeId);
    return heardMs !== undefined && nowMs - heardMs < aliveSilenceMs;
  }

  completed(nowMs: number, result: ClusterResult): void {
    if (this.consumeRequestId !== 0 && result.requestId === this.consumeRequestId) return this.ackFloorAnswered(result);
    if (this.sessions.completed(nowMs, result)) return;
    if (this.handover.completed(nowMs, result)) return;
    if (this.shares.completed(nowMs, result)) return;
    if (this.retained.completed(nowMs, result)) return;
    const unit = this.requests.get(result.requestId);
    if (unit === undefined) return;
    this.requests.delete(result.requestId);
    if (unit.requestId === result.requestId) this.unitsInFlight.delete(unit);
    if (result.ok) return this.stored(unit, result.sequence);
    const first = unit.members[0]!;
    // A stale request (the unit went out again since) changes nothing.
    if (first.done || unit.requestId !== result.requestId) return;
    this.counters.handoffFailures += 1;
    const index = this.handoffs.indexOf(first);
    assert(index >= 0, 'a pending hand-off is queued');
    // This unit and every later one go again, in order (their dedupe ids keep what is stored once).
    if (index < this.issued) this.issued = index;
    if (this.connected) this.scheduleRetry(nowMs);
  }

  private scheduleRetry(nowMs: number): void {
    if (this.retryScheduled) return;
    this.retryScheduled = true;
    this.broker.deadlines.push(nowMs + handoffRetryMs, 'cluster-retry', 0, '');
  }

  /** The retry deadline: issue again what failed; a hand-over's deadline too. */
  retryDue(nowMs: number): void {
    this.handover.due(nowMs);
    this.retryScheduled = false;
    this.issueReady();
    this.retained.issueAll();
    this.shares.retry();
  }

  /** The stream holds `unit` at `sequence`: every hand-off in it is done (a batch is stored whole or not at all). */
  private stored(unit: HandoffUnit, sequence: number): void {
    if (unit.members[0]!.done) return;
    for (const handoff of unit.members) {
      assert(!handoff.done, 'the hand-offs of a unit are stored together');
      handoff.done = true;
      this.counters.handoffsStored += 1;
      this.releaseTicket(handoff.ticket);
      // Noted before the entry ends, so that a log never lacks both (session-handover.ts awaiting).
      if (handoff.subject === handoverMarkerSubject) this.handover.markerStored(handoff.headers, sequence);
      if (handoff.outboxId !== 0) this.broker.commit({ kind: 'cluster-outbox-done', id: handoff.outboxId });
    }
    // After its members: a log that still names the batch either holds all of them (it goes
    // again) or has lost one, which says it was stored (recoveredUnits).
    if (unit.outboxId !== 0) this.broker.commit({ kind: 'cluster-outbox-done', id: unit.outboxId });
    let finished = 0;
    while (finished < this.handoffs.length && this.handoffs[finished]!.done) finished += 1;
    if (finished === 0) return;
    this.handoffs.splice(0, finished);
    this.issued = Math.max(0, this.issued - finished);
  }

  message(nowMs: number, message: ClusterMessage): void {
    if (message.consumerId !== null) {
      const overrun = this.broker.stats.streams.backlogOverrunUnpausedEntries;
      this.handoffArrived(nowMs, message);
      if (this.broker.stats.streams.backlogOverrunUnpausedEntries !== overrun) this.pauseConsumer();
      return;
    }
    if (message.subject.startsWith(aliveSubjectPrefix)) return this.heard(message.subject, nowMs);
    const envelope = decodeHeaders(message.headers);
    if (envelope.origin === this.nodeId) return;
    if (envelope.origin !== null && envelope.sequence !== null) {
      if (this.lastCoreSequence.get(envelope.origin) === envelope.sequence) {
        this.counters.coreDuplicates += 1;
        return;
      }
      this.lastCoreSequence.set(envelope.origin, envelope.sequence);
    }
    const topic = subjectToTopic(message.subject);
    if (topic === null) {
      this.counters.unmappable += 1;
      return;
    }
    this.counters.coreReceived += 1;
    const properties = envelope.expirySeconds === null ? envelope.properties : { ...envelope.properties, messageExpiryInterval: envelope.expirySeconds };
    this.shares.receiving(message.headers, envelope.origin === null);
    // Nothing holds a QoS 0 message back: past the streams' backlog bound it skips the streams (throttle.ts).
    this.broker.throttle.clusterArrival = true;
    try {
      this.broker.router.route(transientMessage(topic, message.payload, 0, envelope.retain, properties, nowMs), '', nowMs);
    } finally {
      this.broker.throttle.clusterArrival = false;
    }
    this.shares.received(topic);
  }

  /**
   * A hand-off was admitted past the streams' backlog bound (throttle.ts): the host stops handing
   * this node deliveries, holding at most the consumer's unacknowledged ones, until the backlog is
   * under half (`afterInput`). The stream keeps the rest; nothing is dropped or acknowledged early.
   */
  private pauseConsumer(): void {
    if (this.consumerPaused || !this.connected) return;
    this.counters.consumerPauses += 1;
    this.pace(true);
  }

  private pace(paused: boolean): void {
    if (this.consumerPaused === paused || !this.connected) return;
    this.consumerPaused = paused;
    this.request({ op: 'pace', consumerId, paused });
  }

  private handoffArrived(nowMs: number, message: ClusterMessage): void {
    const sequence = message.streamSequence;
    assert(sequence !== null && sequence > 0, 'a hand-off delivery has a stream sequence');
    const durable = this.durable;
    if (sequence <= durable.appliedSequence) {
      // Applied before: acknowledge again once the record that says so is durable.
      this.counters.handoffRedeliveries += 1;
      this.pendingAcks.push({ lsn: this.broker.store.appendedLsn, sequence });
      return;
    }
    // Stopped at a message of a newer format (stream-format.ts): nothing behind it is applied or
    // acknowledged, so the stream keeps it all for this node's next version.
    if (this.readerHeld !== null) return;
    // The reader stands still at a marker (session-handover.ts): what comes behind it waits.
    if (this.handover.holding) return this.handover.buffer(message);
    if (this.heldForWatch !== null) return this.holdForWatch(message);
    if (sequence !== durable.appliedSequence + 1 && !this.freshStart(sequence) && !this.belowAckFloor(sequence) && !this.gapGivenUp(nowMs, sequence)) {
      // An earlier one is missing (this node forgot it in a crash): the stream redelivers it.
      this.counters.handoffGaps += 1;
      return;
    }
    this.gapSinceMs = null;
    const newer = newerFormat(message.subject, message.headers);
    if (newer !== null) return this.holdReader(sequence, message, newer);
    if (message.subject === handoverMarkerSubject) {
      // What the hand-over decides at a marker may rest on the newest claims this node knows: not
      // before its watch has replayed `keel-sessions` since the link came up (session-registry.ts).
      if (!this.sessions.watchCurrent && this.handover.decidesByClaims(message)) return this.holdForWatch(message);
      return this.handover.markerArrived(message, sequence, nowMs);
    }
    this.applyHandoffs(nowMs, message.subject === handoffBatchSubject ? this.batchEntries(message) : [message], sequence);
  }

  /**
   * Stops the reader at `sequence`, a message written by a newer version (stream-format.ts), for
   * as long as this node runs: its consumer is paused (and paused again after every reconnection),
   * and `/readyz` says so through the view's `readerHeldAt`.
   */
  private holdReader(sequence: number, message: ClusterMessage, why: string): void {
    this.readerHeld = sequence;
    this.counters.readerHolds += 1;
    this.broker.log('error', 'cluster-handoff-format-newer', {
      nodeId: this.nodeId,
      sequence,
      subject: message.subject,
      origin: message.headers[headerOrigin] ?? null,
      why,
      action: 'reading stopped here, nothing behind it applied or acknowledged: upgrade this node',
    });
    this.pace(true);
  }

  /** The stream sequence this node's reader stopped at (a newer format), or null while it reads. */
  get readerHeldAt(): number | null {
    return this.readerHeld;
  }

  /**
   * Holds a delivery, from a marker on, until the sessions watch is current (watchCurrent). Only
   * a marker whose outcome here depends on the claims waits so (SessionHandover.decidesByClaims:
   * this node is asked for the session, or holds a copy of it), not the hand-offs before it nor
   * other markers: a node back on NATS routes what the stream brings at once, and its reader
   * stops only at such a marker before the replay ends (a replay of 100,000 keys takes seconds).
   */
  private holdForWatch(message: ClusterMessage): void {
    const held = this.heldForWatch ?? [];
    if (held.length === 0) assert(message.subject === handoverMarkerSubject, 'the reader is held at a marker');
    if (!holdDelivery(held, message) || held.length > 1) return;
    this.counters.markersHeldForWatch += 1;
    this.heldForWatch = held;
  }

  /**
   * A watch has replayed its bucket (contract.ts clusterWatchCurrent). The newest watch of
   * `keel-sessions` makes the registry current: the reader goes on from the marker it held at.
   */
  watchCurrent(nowMs: number, bucket: string, requestId: number): void {
    if (bucket !== sessionsBucket || !this.sessions.watchReplayed(requestId)) return;
    const held = this.heldForWatch;
    if (held === null) return;
    this.heldForWatch = null;
    const overrun = this.broker.stats.streams.backlogOverrunUnpausedEntries;
    for (const message of held) this.handoffArrived(nowMs, message);
    if (this.broker.stats.streams.backlogOverrunUnpausedEntries !== overrun) this.pauseConsumer();
  }

  /** The messages of a batch from the stream; none (it is recorded applied and acknowledged) when it cannot be read. */
  private batchEntries(message: ClusterMessage): readonly BatchEntry[] {
    const entries = decodeBatch(message.payload);
    if (entries === null) {
      this.counters.unmappable += 1;
      this.broker.log('warn', 'cluster-batch-unreadable', { nodeId: this.nodeId, origin: message.headers[headerOrigin] ?? null, bytes: message.payload.length });
      return [];
    }
    if (message.headers[headerOrigin] !== this.nodeId) this.counters.handoffBatchesApplied += 1;
    return entries;
  }

  /**
   * Applies the hand-offs of one stream message (one, or a batch's in order) and records its
   * sequence applied, once: a crash before that record is durable replays all of them.
   */
  private applyHandoffs(nowMs: number, entries: readonly BatchEntry[], sequence: number): void {
    // Outbound QoS 2 copies wait for the applied record too, or a crash could route it twice.
    const qos2 = entries.some((entry) => entry.headers[headerQos] === '2' && entry.headers[headerOrigin] !== this.nodeId);
    if (qos2) this.broker.beginInboundQos2Routing();
    for (const entry of entries) this.applyHandoff(nowMs, entry);
    const lsn = this.broker.commit(this.appliedRecord(sequence));
    if (qos2) this.broker.endInboundQos2Routing(lsn);
    this.pendingAcks.push({ lsn, sequence });
    // The windows that ended are done once the hand-off that ended them is recorded applied.
    this.handover.windowsRouted();
  }

  /**
   * One hand-off from the stream: another node's is routed to this node's sessions (but those a
   * hand-over's skip rule leaves out); one of this node's own only to the sessions whose windows
   * hold it (session-handover.ts); a NATS-native message or an unmappable subject is not routed.
   */
  private applyHandoff(nowMs: number, entry: BatchEntry): void {
    const envelope = decodeHeaders(entry.headers);
    const subject = subjectOfHandoff(entry.subject);
    const topic = subject === null ? null : subjectToTopic(subject);
    if (envelope.origin === null || topic === null || envelope.qos === 0) return;
    if (envelope.origin === this.nodeId) {
      for (const clientId of this.handover.ownWindows(entry.headers)) this.routeOwn(clientId, entry, nowMs);
      return;
    }
    const except = this.handover.except(entry.headers, envelope.origin);
    this.counters.handoffsApplied += 1;
    const properties = envelope.expirySeconds === null ? envelope.properties : { ...envelope.properties, messageExpiryInterval: envelope.expirySeconds };
    const routed = transientMessage(topic, entry.payload, envelope.qos, envelope.retain, properties, nowMs);
    this.shares.receiving(entry.headers, false);
    if (except === null) this.broker.router.route(routed, '', nowMs);
    else this.broker.router.routeRestricted(routed, nowMs, '', except);
    this.shares.received(topic);
  }

  /** Routes one of this node's own hand-offs to one session (a hand-over's, session-handover.ts). */
  private routeOwn(clientId: string, handoff: { subject: string; headers: Record<string, string> | Readonly<Record<string, string>>; payload: Uint8Array }, nowMs: number): void {
    const subject = subjectOfHandoff(handoff.subject);
    const topic = subject === null ? null : subjectToTopic(subject);
    if (topic === null) return;
    const envelope = decodeHeaders(handoff.headers);
    const properties = envelope.expirySeconds === null ? envelope.properties : { ...envelope.properties, messageExpiryInterval: envelope.expirySeconds };
    this.broker.router.routeRestricted(transientMessage(topic, handoff.payload, envelope.qos, envelope.retain, properties, nowMs), nowMs, clientId, null);
  }

  /** The marker of a session hand-over is queued like a QoS 2 hand-off: logged first, so a crash cannot lose it. */
  private queueMarker(headers: Record<string, string>): LocalCounter {
    const ticket = this.nextTicket++;
    const counter = { epoch: this.epoch, ticket };
    const withCounter = { ...headers, [headerSequence]: formatCounter(counter) };
    const outboxId = this.durable.nextOutboxId;
    const payload = new Uint8Array(0);
    const lsn = this.broker.commit({ kind: 'cluster-outbox-added', entry: { id: outboxId, subject: handoverMarkerSubject, headers: withCounter, payload } });
    this.enqueue({
      ticket,
      subject: handoverMarkerSubject,
      headers: withCounter,
      payload,
      dedupeId: `${this.nodeId}-o${outboxId}`,
      outboxId,
      readyLsn: lsn,
      unit: null,
      recovered: false,
      done: false,
    });
    return counter;
  }

  /** A marker is done on this node: recorded as applied, acknowledged once durable; then what waited behind it. */
  private markerDone(sequence: number, nowMs: number, buffered: readonly ClusterMessage[]): void {
    this.pendingAcks.push({ lsn: this.broker.commit(this.appliedRecord(sequence)), sequence });
    for (const message of buffered) this.handoffArrived(nowMs, message);
  }

  /**
   * Whether a node on a fresh log takes `sequence`, its first hand-off, past the missing ones below
   * it. Nothing below it is owed to anyone here: the node's consumer is new (it delivers from the
   * stream's first message, so there is no gap unless the stream discarded them) or it is the
   * consumer of this node id before its disk was lost, whose deliveries below the first one now
   * (those it redelivers, and those acknowledged before) were delivered before the loss, for
   * sessions that went with the disk (a session opened since subscribed after them). Waiting the
   * gap out instead stalled the node's reader for handoffGapWaitMs after a lost disk: its new
   * sessions got nothing from the other nodes, and a session moving to it timed out its hand-over
   * (the marker waited behind the gap) and was lost though it lived on another node.
   *
   * Only on the node's first link of this life: once a link has dropped, deliveries of that link
   * that never reached the node are missing below the next link's first one, and they were
   * stored while the node's sessions were subscribed (seed 7403090: a node cut off from NATS just
   * after a QoS 2 hand-off was delivered to it, then through a NATS restart, took its first
   * hand-off after both for a fresh start, and the redelivery of the earlier one was dropped as
   * already applied: an acknowledged message lost). A node whose first link drops before any
   * hand-off reached it waits a gap out, as any node does.
   */
  private freshStart(sequence: number): boolean {
    if (!this.freshLog || this.durable.appliedSequence !== 0) return false;
    this.freshLog = false;
    this.broker.log('info', 'cluster-handoff-fresh-start', { nodeId: this.nodeId, taken: sequence });
    // The decision is logged as the sequences below applied, so that a later life goes by it: its
    // log is no longer fresh (the epoch is claimed at every start), and without this it waited
    // handoffGapWaitMs for sequences the stream no longer had, its reader standing still and its
    // hand-overs timing out meanwhile (seed 12000052: a node back from a lost disk crashed before
    // the marker it stood at was applied).
    if (sequence > 1) this.broker.commit(this.appliedRecord(sequence - 1));
    return true;
  }

  /**
   * Whether to apply `sequence` past a missing one: only once the gap has lasted handoffGapWaitMs
   * of connected time and `sequence` is the lowest seen since (the stream no longer holds the
   * missing ones). Logged, since a skipped sequence is a lost hand-off if the stream still had it.
   */
  private gapGivenUp(nowMs: number, sequence: number): boolean {
    if (this.gapSinceMs === null) {
      this.gapSinceMs = nowMs;
      this.gapLowest = sequence;
      return false;
    }
    this.gapLowest = Math.min(this.gapLowest, sequence);
    if (nowMs - this.gapSinceMs < handoffGapWaitMs || sequence !== this.gapLowest) return false;
    this.broker.log('warn', 'cluster-handoff-gap-skipped', {
      nodeId: this.nodeId,
      expected: this.durable.appliedSequence + 1,
      taken: sequence,
      why: 'gap-wait',
      waitedMs: nowMs - this.gapSinceMs,
      ackFloor: this.ackFloor,
    });
    return true;
  }

  /**
   * The current link's `consume` was answered (contract.ts): ok, its `sequence` is the consumer's
   * ack floor; failed, the floor stays unknown (0) and gaps wait as they did without it. Only the
   * answer to this link's consume gets here (completed): one of an earlier link's is not this
   * consume's, and is dropped with its request id.
   */
  private ackFloorAnswered(result: ClusterResult): void {
    assert(this.connected, 'a consume is answered on its own link');
    this.consumeRequestId = 0;
    if (!result.ok) return;
    assert(result.sequence >= 0, 'an ack floor is a stream sequence or 0');
    this.ackFloor = result.sequence;
  }

  /**
   * Whether to take `sequence` past missing ones at once because every one of them is at or below
   * the consumer's ack floor (contract.ts `consume`): they were acknowledged by this node id's
   * consumer, so it will never deliver them again, and waiting handoffGapWaitMs for them only
   * stalls the reader (seed 19010026 before the fresh start was kept: a node back from a lost disk
   * crashed before its first delivery; in its next life, no longer on a fresh log, it waited 15 s
   * for sequences 1..floor, and a session moving to it timed out its hand-over meanwhile). Missing
   * sequences above the floor still wait (gapGivenUp): they may be delivered, unacknowledged, on
   * a link that dropped (seed 7403090's rule holds, since the floor never passes a sequence this
   * consumer has not had acknowledged).
   *
   * Why it is safe. A node acknowledges a delivery only once its log holds `cluster-applied` for it
   * durably, so a sequence at or below the floor that this log does not hold was applied by an
   * earlier life of this node whose log is gone (a lost disk): it was stored before any session of
   * this log subscribed, so it is owed to none of them, as for a fresh start. (A data directory
   * put back from an older copy is the exception: its sessions may be owed such sequences, but the
   * consumer will not deliver them again either way, and waiting only put off the same loss.) That
   * holds for any floor ever reported for this node id's consumer, so the cases below cost at
   * most a wait:
   * - the answer comes after deliveries (a host need not order it first): those waited as a gap
   *   does, unacknowledged; the stream redelivers them after its ack wait and they are taken then;
   * - a reconnection: each `connected` issues a new consume under a new request id, and the floor
   *   goes back to 0 at every change of link status, so an earlier consume's answer (the host may
   *   have found another consumer then) is never read for the current one;
   * - the consumer was deleted and made again: its floor is 0 and nothing is taken early. Were a
   *   floor of the old one read for the new one, the new one might deliver sequences at or below
   *   it again: they would be acknowledged as applied and not routed, which by the argument above
   *   loses nothing a session of this log is owed.
   * The sequences below the one taken are logged as applied (as a fresh start does), so that a
   * crash before it is applied does not leave the next life waiting for them again.
   */
  private belowAckFloor(sequence: number): boolean {
    const expected = this.durable.appliedSequence + 1;
    assert(sequence > expected, 'only a delivery past a missing sequence asks');
    if (sequence - 1 > this.ackFloor) return false;
    this.counters.handoffGapsBelowFloor += 1;
    this.broker.log('warn', 'cluster-handoff-gap-skipped', { nodeId: this.nodeId, expected, taken: sequence, why: 'ack-floor', waitedMs: 0, ackFloor: this.ackFloor });
    this.broker.commit(this.appliedRecord(sequence - 1));
    return true;
  }

  /** End of every input: acknowledge what became durable, publish what became ready. */
  afterInput(): void {
    this.sessions.afterInput();
    this.handover.afterInput();
    const durableLsn = this.broker.store.durableLsn;
    let released = 0;
    while (released < this.pendingAcks.length && this.pendingAcks[released]!.lsn <= durableLsn) {
      if (this.connected) this.request({ op: 'ack', consumerId, streamSequence: this.pendingAcks[released]!.sequence });
      released += 1;
    }
    if (released > 0) this.pendingAcks.splice(0, released);
    if (this.consumerPaused && this.readerHeld === null && this.broker.throttle.streamBacklogReleased()) {
      if (this.connected) this.pace(false);
      else this.consumerPaused = false;
    }
    this.retained.afterInput();
    if (this.issued < this.handoffs.length) this.issueReady();
  }

  private request(request: ClusterRequest): void {
    this.broker.pushCluster(request);
  }
}

function incomingQos2Key(clientId: string, packetId: number): string {
  return `${packetId} ${clientId}`;
}
