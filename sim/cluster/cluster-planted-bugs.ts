/**
 * Deliberately broken cluster nodes, to prove the cluster checker is not a rubber stamp. Like the
 * single-node planted bugs (sim/planted-bugs.ts) each wraps the real Broker from the outside and
 * rewrites its inputs or actions; nothing in src/ knows about them.
 *
 * - `handoff-ack-before-log`: acknowledges every hand-off delivery to the stream the moment it
 *   arrives, before the node's log holds what routing it wrote; a crash before the sync then loses
 *   the message for that node's sessions, and the stream never redelivers it.
 * - `retained-out-of-order`: applies changes of the retained bucket in the order they arrive
 *   rather than by revision: it holds each change back until the next one arrives and hands the
 *   two over swapped (with their revisions swapped, so the node cannot tell), as a node would that
 *   trusted arrival order over revisions.
 * - `takeover-keeps-both`: rewrites every change of the `keel-sessions` bucket that names another
 *   node as owner so that it names this node, as a node would that ignored ownership moving: its
 *   connection of a client id that connected elsewhere stays open, with its session.
 * - `share-per-node`: every node delivers a `$share` group's message to one of its own members,
 *   as nodes did before groups were cluster-wide: each message from another node has its
 *   `Keel-Share` choices rewritten to name the receiving node (the publishing node still serves
 *   only the groups it chose itself), so a group with members on two other nodes gets it twice.
 * - `share-choice-dropped`: drops the `Keel-Share` choices of every message from another node, so
 *   a group's copy chosen for a node other than the publisher's is delivered nowhere.
 * - `retained-conflict-dropped`: a retained put answered `wrong-revision` is taken as done (its
 *   answer rewritten to success), as a node would that took every conflict for a newer message
 *   having replaced its own: a message that arrived at a node still behind on the bucket (or cut
 *   off) is acknowledged while the older value it should have replaced stays.
 * - `retained-plain-put`: the retained puts a node issues as its link to NATS comes back (those
 *   that waited through the cut) go out unconditionally (no expected revision), as they did before
 *   retained-sync.ts: a put whose publisher left and resent it through another node, where it was
 *   acknowledged and then replaced by a newer message, lands over that newer one.
 * - `handover-drops-queued`: rewrites every session state the node puts into `keel-handover`
 *   (session-handover.ts) without its queued deliveries (inflight ones stay), as a node would
 *   that serialized only what it had sent; the messages a moving client was owed while offline
 *   are lost (`acknowledged-lost`, in worlds run with `--handover-movers`).
 * - `handover-truncates`: puts every session state it hands over whole, as one value, and past
 *   512 KiB without its newest queued deliveries (inflight ones stay), as nodes did before states
 *   went in parts (src/cluster/handover-parts.ts): it collects the parts the node puts and puts the
 *   truncated state instead of their head. A moving client with a large queue loses messages it
 *   was owed, acknowledged ones among them (`acknowledged-lost`, in large-payload worlds run with
 *   `--handover-movers`; seed 6701296 showed it before parts).
 * - `handover-serves-older-marker`: rewrites every claim of `keel-sessions` by another node that
 *   asks this node for the session so that its hand-over seems carried by a marker older than any
 *   in the stream (`markerRevision` 1). The node then hands the session over at an older claim's
 *   marker by the newest claim's owner alone, as before session-handover.ts sourceServes kept it
 *   for the newer claim's marker: when the older marker's node had given that hand-over up, it
 *   drops the state as late and the newer marker finds nothing (`session-lost`, in worlds run with
 *   `--handover-movers`; seed 5010652 until QoS 2 batches changed its run; the faults aimed at
 *   hand-over steps, handover-faults.ts, reach the shape in about 1 seed in 60 without failing by
 *   it; the shaped plans, handover-shapes.ts, failed by it on seed 12000052 with 2 nodes until a
 *   fresh start was kept through crashes, and on seed 99 with 3 nodes until a node noted its
 *   markers in the stream, and on seed 62 with 3 nodes and every plan `older-marker` until a node
 *   gave up at once the sequences at or below its consumer's ack floor; no seed found since: the
 *   test is skipped, test/cluster/cluster-sim.test.ts says what was searched).
 * - `session-revision-ignored`: rewrites every claim of `keel-sessions` by another node without its
 *   session's line (`lineageRevision`), so the node cannot tell a stale copy from the session a
 *   newer claim asks it for and keeps it for that claim's marker, as before sessions carried the
 *   revision of their claim (session-handover.ts sourceServes): a copy whose ending a crash undid
 *   is handed over at the newer marker over the client's live session (`qos2-duplicate` on seed
 *   8100075 with 2 nodes, in the world it was found in, until QoS 2 batches changed its run; since
 *   the shaped plans, handover-shapes.ts `stale-copy`, seed 3 with 2 nodes and
 *   `--handover-shapes`, 6 of the first 150 seeds).
 * - `backlog-never-paces`: drops the node's requests to pause its hand-off consumer, as a node would
 *   that admitted hand-offs past its streams' backlog bound without holding NATS back
 *   (`backlog-unbounded`, in worlds run with `--cluster-streams`).
 * - `lost-disk-drops-handoffs`: a node that finds its data directory empty when it starts again
 *   (its disk lost, ClusterShape.lostDisk) acknowledges every hand-off the stream delivers to it
 *   without routing it, as a node would that took everything below its empty log for the lost
 *   disk's business: the sessions its clients open after the loss miss what other nodes publish.
 *   The lost disk excuses only the sessions that lived on it, so the checker catches it
 *   (`acknowledged-lost`, or `shared-lost` for a group member at home there).
 * - `claim-answer-forgotten`: every won claim that asked another node for the session is answered
 *   as timed out (as if the answer were lost with the link), and the node does not know the claim
 *   when its watch shows it (the generation rewritten), as the registry was before seed 6600379:
 *   it claims again over its own win with what it sees then. Holding a copy of the session (one it
 *   has not handed over yet), it takes that copy for the session and asks no one, and the other
 *   node ends the client's real session; a message routed into both, a will among them, reaches
 *   the client twice (`qos2-duplicate`); holding none, it waits for a marker never sent and gives
 *   the client a fresh session while the real one stays elsewhere. Since sessions know their claim
 *   the registry would not take that copy either (it was made under an older claim: claimSession),
 *   so while the node holds one the claim shows to it as asking no one, as the registry took it then.
 * - `qos2-batch-regrouped`: a node started again on its data directory sends every batch with a
 *   QoS 2 member under a dedupe id of its own making (the batch's id with `-r` and the start's
 *   number), as a node would that grouped the logged hand-offs it recovered into new batches
 *   rather than the ones its log named (src/cluster/handoff-batch.ts): a batch the stream stored
 *   before the crash, whose acknowledgement the node never heard, is stored again, and every other
 *   node routes its QoS 2 messages twice (`qos2-duplicate`). A resend within one start keeps its
 *   new id, so only what crosses a crash is stored twice.
 * - `backlog-stays-paused`: drops the node's requests to resume its hand-off consumer, so a node
 *   once paused for its streams' backlog takes no hand-off again until its link drops: messages
 *   from other nodes wait (`acknowledged-lost` or `not-idle`, with `--cluster-streams`).
 */
import { Broker, type BrokerOptions } from '../../src/broker/broker.js';
import { decodeBatch, handoffBatchSubject } from '../../src/cluster/handoff-batch.js';
import { answerKeyOfPart, assemble, decodeHead } from '../../src/cluster/handover-parts.js';
import { headerQos } from '../../src/cluster/headers.js';
import { retainedBucket } from '../../src/cluster/retained-entries.js';
import { decodeHandoverState, encodeHandoverState, handoverBucket } from '../../src/cluster/session-handover.js';
import { clientIdOfSessionKey, decodeOwner, encodeOwner, type SessionOwner, sessionsBucket } from '../../src/cluster/session-registry.js';
import { decodeShareChoices, encodeShareChoices, headerShare } from '../../src/cluster/shared-groups.js';
import type { Action, AdminCommand, BrokerCore, BrokerView, ClusterKeyChange, ClusterMessage, ClusterResult, ConnectionId, ConnectionPeer, StorageResult } from '../../src/contract.js';
import type { StateRecord } from '../../src/store/state-store.js';
import type { ClusterPlantedBugName } from '../planted-bug-names.js';
import type { ClusterBrokerFactory } from './cluster-world.js';

/** Passes every input through and lets a subclass add actions. */
class WrappedClusterBroker implements BrokerCore {
  protected extra: Action[] = [];

  constructor(protected readonly inner: BrokerCore) {}

  /** The core inside, so that the kept-bytes rule reads the broker behind a planted bug too (kept-bytes-check.ts). */
  get wrappedCore(): BrokerCore {
    return this.inner;
  }
  get ready(): boolean {
    return this.inner.ready;
  }
  get view(): BrokerView {
    return this.inner.view;
  }
  get haltReason(): string | null {
    return this.inner.haltReason;
  }
  connectionOpened(nowMs: number, connectionId: ConnectionId, peer: ConnectionPeer): void {
    this.inner.connectionOpened(nowMs, connectionId, peer);
  }
  bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void {
    this.inner.bytesReceived(nowMs, connectionId, bytes);
  }
  connectionClosed(nowMs: number, connectionId: ConnectionId): void {
    this.inner.connectionClosed(nowMs, connectionId);
  }
  outputBuffered(nowMs: number, connectionId: ConnectionId, bufferedBytes: number): void {
    this.inner.outputBuffered(nowMs, connectionId, bufferedBytes);
  }
  storageCompleted(nowMs: number, result: StorageResult): void {
    this.inner.storageCompleted(nowMs, result);
  }
  tick(nowMs: number): void {
    this.inner.tick(nowMs);
  }
  adminRequest(nowMs: number, requestId: number, command: AdminCommand): void {
    this.inner.adminRequest(nowMs, requestId, command);
  }
  shutdown(nowMs: number): void {
    this.inner.shutdown(nowMs);
  }
  clusterStatus(nowMs: number, status: 'connected' | 'disconnected', stream?: string): void {
    this.inner.clusterStatus!(nowMs, status, stream);
  }
  clusterMessage(nowMs: number, message: ClusterMessage): void {
    this.inner.clusterMessage!(nowMs, message);
  }
  clusterCompleted(nowMs: number, result: ClusterResult): void {
    this.inner.clusterCompleted!(nowMs, result);
  }
  clusterKeyChanged(nowMs: number, change: ClusterKeyChange): void {
    this.inner.clusterKeyChanged!(nowMs, change);
  }
  clusterWatchCurrent(nowMs: number, bucket: string, requestId: number): void {
    this.inner.clusterWatchCurrent!(nowMs, bucket, requestId);
  }
  drainActions(): readonly Action[] {
    const actions = this.inner.drainActions();
    if (this.extra.length === 0) return actions;
    const all = [...this.extra, ...actions];
    this.extra = [];
    return all;
  }
  nextDeadlineMs(): number | null {
    return this.inner.nextDeadlineMs();
  }
}

class HandoffAckBeforeLog extends WrappedClusterBroker {
  override clusterMessage(nowMs: number, message: ClusterMessage): void {
    super.clusterMessage(nowMs, message);
    if (message.consumerId !== null && message.streamSequence !== null && this.inner.ready) {
      this.extra.push({ kind: 'cluster', request: { op: 'ack', consumerId: message.consumerId, streamSequence: message.streamSequence } });
    }
  }
}

class RetainedOutOfOrder extends WrappedClusterBroker {
  private held: ClusterKeyChange | null = null;

  override clusterKeyChanged(nowMs: number, change: ClusterKeyChange): void {
    if (change.bucket !== 'keel-retained') return super.clusterKeyChanged(nowMs, change);
    const held = this.held;
    if (held === null) {
      this.held = change;
      return;
    }
    this.held = null;
    super.clusterKeyChanged(nowMs, { ...change, revision: held.revision });
    super.clusterKeyChanged(nowMs, { ...held, revision: change.revision });
  }

  override clusterStatus(nowMs: number, status: 'connected' | 'disconnected', stream?: string): void {
    // A watch starts over after a reconnection; what was held back is dropped with it.
    this.held = null;
    super.clusterStatus(nowMs, status, stream);
  }
}

/** A node that sees each claim of `keel-sessions` by another node as `rewrite` makes it (null: as it is). */
abstract class RewritesOthersClaims extends WrappedClusterBroker {
  constructor(
    inner: BrokerCore,
    protected readonly nodeId: string,
  ) {
    super(inner);
  }

  protected abstract rewrite(owner: SessionOwner): SessionOwner | null;

  override clusterKeyChanged(nowMs: number, change: ClusterKeyChange): void {
    const owner = change.bucket === sessionsBucket && change.value !== null ? decodeOwner(change.value) : null;
    const rewritten = owner === null || owner.node === this.nodeId ? null : this.rewrite(owner);
    if (rewritten === null) return super.clusterKeyChanged(nowMs, change);
    super.clusterKeyChanged(nowMs, { ...change, value: encodeOwner(rewritten) });
  }
}

class TakeoverKeepsBoth extends RewritesOthersClaims {
  protected rewrite(owner: SessionOwner): SessionOwner {
    return { node: this.nodeId, generation: owner.generation };
  }
}

class SharePerNode extends WrappedClusterBroker {
  constructor(
    inner: BrokerCore,
    private readonly nodeId: string,
  ) {
    super(inner);
  }

  override clusterMessage(nowMs: number, message: ClusterMessage): void {
    const share = message.headers[headerShare];
    if (share === undefined) return super.clusterMessage(nowMs, message);
    const choices = decodeShareChoices(share);
    for (const group of choices.keys()) choices.set(group, this.nodeId);
    super.clusterMessage(nowMs, { ...message, headers: { ...message.headers, [headerShare]: encodeShareChoices(choices) } });
  }
}

class ShareChoiceDropped extends WrappedClusterBroker {
  override clusterMessage(nowMs: number, message: ClusterMessage): void {
    if (message.headers[headerShare] === undefined) return super.clusterMessage(nowMs, message);
    const headers = { ...message.headers };
    delete headers[headerShare];
    super.clusterMessage(nowMs, { ...message, headers });
  }
}

class RetainedConflictDropped extends WrappedClusterBroker {
  /** Retained puts out: request id → key and expected revision. */
  private readonly retainedRequests = new Map<number, { key: string; expectedRevision: number }>();
  /** The newest revision of each retained key the node's watch showed. */
  private readonly revisions = new Map<string, number>();

  override clusterCompleted(nowMs: number, result: ClusterResult): void {
    const request = this.retainedRequests.get(result.requestId);
    this.retainedRequests.delete(result.requestId);
    if (request === undefined || result.ok || result.code !== 'wrong-revision') return super.clusterCompleted(nowMs, result);
    // Answered as if the put had landed on what it found (a revision past the one it expected).
    const sequence = Math.max(this.revisions.get(request.key) ?? 0, request.expectedRevision + 1);
    super.clusterCompleted(nowMs, { requestId: result.requestId, ok: true, sequence });
  }

  override clusterKeyChanged(nowMs: number, change: ClusterKeyChange): void {
    if (change.bucket === retainedBucket) this.revisions.set(change.key, Math.max(this.revisions.get(change.key) ?? 0, change.revision));
    super.clusterKeyChanged(nowMs, change);
  }

  override drainActions(): readonly Action[] {
    const actions = super.drainActions();
    for (const action of actions) {
      const request = action.kind === 'cluster' ? action.request : null;
      if (request?.op === 'kv-set' && request.bucket === retainedBucket) this.retainedRequests.set(request.requestId, { key: request.key, expectedRevision: request.expectedRevision ?? 0 });
    }
    return actions;
  }
}

class RetainedPlainPut extends WrappedClusterBroker {
  override clusterStatus(nowMs: number, status: 'connected' | 'disconnected', stream?: string): void {
    super.clusterStatus(nowMs, status, stream);
    if (status !== 'connected') return;
    // What the node asks for as the link comes back, with the retained puts made unconditional.
    for (const action of this.inner.drainActions()) {
      const request = action.kind === 'cluster' ? action.request : null;
      if (request?.op === 'kv-set' && request.bucket === retainedBucket) this.extra.push({ kind: 'cluster', request: { ...request, expectedRevision: null } });
      else this.extra.push(action);
    }
  }
}

class HandoverDropsQueued extends WrappedClusterBroker {
  override drainActions(): readonly Action[] {
    return super.drainActions().map((action) => {
      if (action.kind !== 'cluster' || action.request.op !== 'kv-set' || action.request.bucket !== handoverBucket || action.request.value === null) return action;
      const state = decodeHandoverState(action.request.value);
      if (state === null) return action;
      const records = state.records.filter((record) => record.kind !== 'delivery-queued' || record.packetId !== 0);
      return { ...action, request: { ...action.request, value: encodeHandoverState({ header: state.header, records }) } };
    });
  }
}

/** The bound states were truncated to before they went in parts. */
const truncatedBytesMax = 512 * 1024;

class HandoverTruncates extends WrappedClusterBroker {
  /** The parts the node put, by key, until their head goes. */
  private readonly parts = new Map<string, Uint8Array>();

  override drainActions(): readonly Action[] {
    return super.drainActions().map((action) => {
      if (action.kind !== 'cluster' || action.request.op !== 'kv-set' || action.request.bucket !== handoverBucket || action.request.value === null) return action;
      const { key, value } = action.request;
      if (answerKeyOfPart(key) !== null) {
        this.parts.set(key, value);
        return action;
      }
      const head = decodeHead(value);
      const whole = head === null ? value : assemble(key, head, this.parts);
      const state = whole === null ? null : decodeHandoverState(whole);
      if (state === null) return action;
      return { ...action, request: { ...action.request, value: encodeHandoverState({ header: state.header, records: truncated(state.records) }) } };
    });
  }
}

/** A state's records without the newest queued deliveries past truncatedBytesMax, as sessionRecords kept them before parts. */
function truncated(records: StateRecord[]): StateRecord[] {
  const sizes = new Map<number, number>();
  for (const record of records) if (record.kind === 'message-stored') sizes.set(record.message.messageId, record.message.payload.length + record.message.topic.length * 2 + 256);
  const deliveries = records.filter((record) => record.kind === 'delivery-queued').sort((a, b) => a.sequence - b.sequence);
  const kept = new Set<number>();
  let bytes = 0;
  for (const delivery of deliveries) {
    const size = sizes.get(delivery.messageId) ?? 0;
    if (bytes + size > truncatedBytesMax && delivery.packetId === 0) break;
    bytes += size;
    kept.add(delivery.sequence);
  }
  const messages = new Set<number>();
  for (const delivery of deliveries) if (kept.has(delivery.sequence)) messages.add(delivery.messageId);
  return records.filter((record) => {
    if (record.kind === 'delivery-queued') return kept.has(record.sequence);
    if (record.kind === 'message-stored') return messages.has(record.message.messageId);
    return true;
  });
}

class HandoverServesOlderMarker extends RewritesOthersClaims {
  protected rewrite(owner: SessionOwner): SessionOwner | null {
    // The claim's hand-over as if it came at a marker older than any in the stream.
    return owner.handoverFrom === this.nodeId ? { ...owner, markerRevision: 1 } : null;
  }
}

class SessionRevisionIgnored extends RewritesOthersClaims {
  protected rewrite(owner: SessionOwner): SessionOwner | null {
    if (owner.lineageRevision === undefined) return null;
    const { lineageRevision: _line, ...rest } = owner;
    return rest;
  }
}

class ClaimAnswerForgotten extends WrappedClusterBroker {
  /** Claims out that asked for a hand-over: request id → the key, the revision they expected and the generation they wrote. */
  private readonly handoverClaims = new Map<number, { key: string; expectedRevision: number; generation: string }>();
  /** Generations of won claims answered as timed out, which the node must not know again. */
  private readonly forgotten = new Set<string>();
  /** The keys and revisions those claims won at (`<key>@<revision>`): a claim over one is answered (the node tries once more). */
  private readonly forgottenRevisions = new Set<string>();

  override clusterCompleted(nowMs: number, result: ClusterResult): void {
    const claim = this.handoverClaims.get(result.requestId);
    this.handoverClaims.delete(result.requestId);
    if (claim === undefined || !result.ok || this.forgottenRevisions.has(`${claim.key}@${claim.expectedRevision}`)) return super.clusterCompleted(nowMs, result);
    this.forgotten.add(claim.generation);
    this.forgottenRevisions.add(`${claim.key}@${result.sequence}`);
    super.clusterCompleted(nowMs, { requestId: result.requestId, ok: false, code: 'timeout', message: 'planted: the answer is forgotten' });
  }

  constructor(private readonly broker: Broker) {
    super(broker);
  }

  override clusterKeyChanged(nowMs: number, change: ClusterKeyChange): void {
    const owner = change.bucket === sessionsBucket && change.value !== null ? decodeOwner(change.value) : null;
    if (owner === null || !this.forgotten.has(owner.generation)) return super.clusterKeyChanged(nowMs, change);
    const clientId = clientIdOfSessionKey(change.key);
    const copy = clientId !== null && this.broker.state.sessions.has(clientId);
    const forgotten = copy ? { node: owner.node, generation: owner.generation } : owner;
    super.clusterKeyChanged(nowMs, { ...change, value: encodeOwner({ ...forgotten, generation: `${owner.generation}.forgotten` }) });
  }

  override drainActions(): readonly Action[] {
    const actions = super.drainActions();
    for (const action of actions) {
      const request = action.kind === 'cluster' ? action.request : null;
      if (request?.op !== 'kv-set' || request.bucket !== sessionsBucket || request.value === null) continue;
      const owner = decodeOwner(request.value);
      if (owner?.handoverFrom !== undefined) this.handoverClaims.set(request.requestId, { key: request.key, expectedRevision: request.expectedRevision ?? 0, generation: owner.generation });
    }
    return actions;
  }
}

/** How many times each node of a world was started, by its config (one object per node and world). */
const startsOfNode = new WeakMap<object, number>();

class LostDiskDropsHandoffs extends WrappedClusterBroker {
  /** Started on an empty data directory after an earlier life. */
  private emptyAfterLife = false;

  constructor(
    inner: BrokerCore,
    private readonly restarted: boolean,
  ) {
    super(inner);
  }

  override storageCompleted(nowMs: number, result: StorageResult): void {
    if (this.restarted && result.ok && result.files !== undefined && result.files.length === 0) this.emptyAfterLife = true;
    super.storageCompleted(nowMs, result);
  }

  override clusterMessage(nowMs: number, message: ClusterMessage): void {
    if (!this.emptyAfterLife || message.consumerId === null || message.streamSequence === null) return super.clusterMessage(nowMs, message);
    this.extra.push({ kind: 'cluster', request: { op: 'ack', consumerId: message.consumerId, streamSequence: message.streamSequence } });
  }
}

class Qos2BatchRegrouped extends WrappedClusterBroker {
  constructor(
    inner: BrokerCore,
    private readonly start: number,
  ) {
    super(inner);
  }

  override drainActions(): readonly Action[] {
    const actions = super.drainActions();
    if (this.start === 1) return actions;
    return actions.map((action) => {
      if (action.kind !== 'cluster' || action.request.op !== 'publish-durable' || action.request.subject !== handoffBatchSubject) return action;
      const members = decodeBatch(action.request.payload);
      if (members === null || !members.some((member) => member.headers[headerQos] === '2')) return action;
      return { ...action, request: { ...action.request, dedupeId: `${action.request.dedupeId}-r${this.start}` } };
    });
  }
}

/** Drops the node's `pace` requests that ask for `paused`. */
class DropsPace extends WrappedClusterBroker {
  constructor(
    inner: BrokerCore,
    private readonly paused: boolean,
  ) {
    super(inner);
  }

  override drainActions(): readonly Action[] {
    return super.drainActions().filter((action) => action.kind !== 'cluster' || action.request.op !== 'pace' || action.request.paused !== this.paused);
  }
}

export const clusterPlantedBugs: Record<ClusterPlantedBugName, ClusterBrokerFactory> = {
  'handoff-ack-before-log': (options: BrokerOptions) => new HandoffAckBeforeLog(new Broker(options)),
  'retained-out-of-order': (options: BrokerOptions) => new RetainedOutOfOrder(new Broker(options)),
  'takeover-keeps-both': (options: BrokerOptions) => new TakeoverKeepsBoth(new Broker(options), options.config.cluster?.nodeId ?? ''),
  'share-per-node': (options: BrokerOptions) => new SharePerNode(new Broker(options), options.config.cluster!.nodeId),
  'share-choice-dropped': (options: BrokerOptions) => new ShareChoiceDropped(new Broker(options)),
  'retained-conflict-dropped': (options: BrokerOptions) => new RetainedConflictDropped(new Broker(options)),
  'retained-plain-put': (options: BrokerOptions) => new RetainedPlainPut(new Broker(options)),
  'handover-drops-queued': (options: BrokerOptions) => new HandoverDropsQueued(new Broker(options)),
  'handover-truncates': (options: BrokerOptions) => new HandoverTruncates(new Broker(options)),
  'handover-serves-older-marker': (options: BrokerOptions) => new HandoverServesOlderMarker(new Broker(options), options.config.cluster!.nodeId),
  'session-revision-ignored': (options: BrokerOptions) => new SessionRevisionIgnored(new Broker(options), options.config.cluster!.nodeId),
  'claim-answer-forgotten': (options: BrokerOptions) => new ClaimAnswerForgotten(new Broker(options)),
  'backlog-never-paces': (options: BrokerOptions) => new DropsPace(new Broker(options), true),
  'backlog-stays-paused': (options: BrokerOptions) => new DropsPace(new Broker(options), false),
  'lost-disk-drops-handoffs': (options: BrokerOptions) => {
    const starts = (startsOfNode.get(options.config) ?? 0) + 1;
    startsOfNode.set(options.config, starts);
    return new LostDiskDropsHandoffs(new Broker(options), starts > 1);
  },
  'qos2-batch-regrouped': (options: BrokerOptions) => {
    const starts = (startsOfNode.get(options.config) ?? 0) + 1;
    startsOfNode.set(options.config, starts);
    return new Qos2BatchRegrouped(new Broker(options), starts);
  },
};
