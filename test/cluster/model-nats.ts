/**
 * A small model of NATS for a few clustered cores, each a Harness, stepped by hand (used by
 * handover-chain.test.ts and handover-give-up.test.ts): compare-and-set claims in `keel-sessions`
 * with bucket-wide revisions, the hand-off stream in one order for every node, `keel-handover`
 * puts seen by every node's watch. A node "cut off" neither hears nor sends anything until it is
 * back: its requests wait, in order, and so does what NATS would deliver to it; back, it gets what
 * it missed and its waiting requests go out (its markers reach the stream behind the ones
 * published meanwhile). A node whose stream is held gets the bucket's changes but not the stream's
 * messages (its stream consumer behind its watch) until it is released. Time moves only when a
 * test advances one node's clock.
 */
import { handoverMarkerSubject } from '../../src/cluster/session-handover.js';
import { sessionKey, sessionsBucket } from '../../src/cluster/session-registry.js';
import { PacketType } from '../../src/codec/packets.js';
import type { ClusterKeyChange, ClusterMessage, ClusterRequest, ClusterResult } from '../../src/contract.js';
import { Harness, type TestClient } from '../broker/harness.js';

export type KvSet = Extract<ClusterRequest, { op: 'kv-set' }>;
export type PublishDurable = Extract<ClusterRequest, { op: 'publish-durable' }>;
type Delivery = { readonly kind: 'key'; readonly change: ClusterKeyChange } | { readonly kind: 'message'; readonly message: ClusterMessage };

interface ModelNode {
  harness: Harness;
  cut: boolean;
  cutAfterClaim: boolean;
  /** The stream's messages wait in the inbox (the node's stream consumer is behind its watch). */
  streamHeld: boolean;
  /** What NATS delivers to the node, in order, while it is cut off or before the next settle. */
  readonly inbox: Delivery[];
  /** The node's requests not yet executed (it is cut off). */
  readonly outbox: ClusterRequest[];
}

/** A model of NATS for a few harness nodes: see the file comment. */
export class ModelNats {
  private readonly nodes = new Map<string, ModelNode>();
  private readonly keyRevisions = new Map<string, number>();
  /** The keys of `keel-sessions` as they stand, for a watch's replay. */
  private readonly sessions = new Map<string, ClusterKeyChange>();
  private bucketRevision = 0;
  private streamSequence = 0;
  /** The markers in the stream, in order, as `<origin> asks <from>`. */
  readonly markers: string[] = [];

  /** A node whose link is up and whose watch of `keel-sessions` has replayed the (so far empty) bucket. */
  add(nodeId: string): Harness {
    const harness = Harness.clusterNode(nodeId);
    harness.answerClaims = false;
    harness.clusterConnected();
    this.nodes.set(nodeId, { harness, cut: false, cutAfterClaim: false, streamHeld: false, inbox: [], outbox: [] });
    return harness;
  }

  /**
   * A node that crashed and came back on an empty log: what it had written since its last sync
   * (here, all it held of the client: its marker) is gone. Its link comes up and its watch replays
   * the bucket as it stands; the stream brings it what comes from now on.
   */
  replaceFresh(nodeId: string): Harness {
    const harness = Harness.clusterNode(nodeId);
    harness.answerClaims = false;
    harness.clusterConnected(false);
    for (const change of this.sessions.values()) harness.broker.clusterKeyChanged(harness.nowMs, change);
    harness.broker.clusterWatchCurrent(harness.nowMs, sessionsBucket, harness.sessionsWatchId);
    harness.collect();
    harness.takeClusterRequests();
    this.nodes.set(nodeId, { harness, cut: false, cutAfterClaim: false, streamHeld: false, inbox: [], outbox: [] });
    return harness;
  }

  nodeHarness(nodeId: string): Harness {
    return this.node(nodeId).harness;
  }

  /** The value of the client's key in `keel-sessions` now. */
  sessionValue(clientId: string): Uint8Array | null {
    return this.sessions.get(sessionKey(clientId))?.value ?? null;
  }

  /** The node is cut off right after its next claim is answered: the marker that claim queues stays unsent. */
  cutAfterClaim(nodeId: string): void {
    this.node(nodeId).cutAfterClaim = true;
  }

  /** The node is cut off now. */
  cut(nodeId: string): void {
    this.node(nodeId).cut = true;
  }

  /**
   * The node is back. `replay`: its watch of `keel-sessions` replays the bucket as it stands, so
   * of the changes it missed it sees only each key's newest (a NATS watch after a reconnection).
   */
  restore(nodeId: string, options: { replay?: boolean } = {}): void {
    const node = this.node(nodeId);
    node.cut = false;
    if (options.replay === true) {
      const newest = new Map<string, Delivery>();
      for (const delivery of node.inbox) if (delivery.kind === 'key') newest.set(`${delivery.change.bucket}/${delivery.change.key}`, delivery);
      const kept = node.inbox.filter((delivery) => delivery.kind === 'message' || newest.get(`${delivery.change.bucket}/${delivery.change.key}`) === delivery);
      node.inbox.splice(0, node.inbox.length, ...kept);
    }
    this.settle();
  }

  /** The node's stream consumer falls behind its watch: the stream's messages wait until releaseStream. */
  holdStream(nodeId: string): void {
    this.node(nodeId).streamHeld = true;
  }

  releaseStream(nodeId: string): void {
    this.node(nodeId).streamHeld = false;
    this.settle();
  }

  /** Runs every node's requests and deliveries until nothing moves. */
  settle(): void {
    for (let round = 0; round < 1_000; round++) {
      let moved = false;
      for (const node of this.nodes.values()) {
        node.outbox.push(...node.harness.takeClusterRequests());
        if (node.cut) continue;
        for (let index = 0; index < node.inbox.length; index++) {
          const delivery = node.inbox[index]!;
          if (node.streamHeld && delivery.kind === 'message') continue;
          node.inbox.splice(index--, 1);
          this.deliver(node.harness, delivery);
          moved = true;
        }
        while (node.outbox.length > 0) {
          const request = node.outbox.shift()!;
          this.execute(node.harness, request);
          moved = true;
          if (node.cutAfterClaim && request.op === 'kv-set' && request.bucket === sessionsBucket) {
            node.cutAfterClaim = false;
            node.cut = true;
            break;
          }
        }
      }
      if (!moved) return;
    }
    throw new Error('the model cluster never settles');
  }

  private node(nodeId: string): ModelNode {
    const node = this.nodes.get(nodeId);
    if (node === undefined) throw new Error(`no node ${nodeId}`);
    return node;
  }

  private deliver(harness: Harness, delivery: Delivery): void {
    if (delivery.kind === 'key') harness.broker.clusterKeyChanged(harness.nowMs, delivery.change);
    else harness.broker.clusterMessage(harness.nowMs, delivery.message);
    harness.collect();
  }

  private broadcast(delivery: Delivery): void {
    for (const node of this.nodes.values()) node.inbox.push(delivery);
  }

  private complete(harness: Harness, result: ClusterResult): void {
    harness.broker.clusterCompleted(harness.nowMs, result);
    harness.collect();
  }

  private execute(harness: Harness, request: ClusterRequest): void {
    if (request.op === 'kv-set') {
      const current = this.keyRevisions.get(`${request.bucket}/${request.key}`) ?? 0;
      if (request.expectedRevision !== null && request.expectedRevision !== current) {
        return this.complete(harness, { requestId: request.requestId, ok: false, code: 'wrong-revision', message: 'wrong last sequence' });
      }
      const revision = ++this.bucketRevision;
      this.keyRevisions.set(`${request.bucket}/${request.key}`, request.value === null ? 0 : revision);
      const change: ClusterKeyChange = { bucket: request.bucket, key: request.key, value: request.value, revision };
      if (request.bucket === sessionsBucket) this.sessions.set(request.key, change);
      this.broadcast({ kind: 'key', change });
      return this.complete(harness, { requestId: request.requestId, ok: true, sequence: revision });
    }
    if (request.op === 'publish-durable') {
      const streamSequence = ++this.streamSequence;
      if (request.subject === handoverMarkerSubject) this.markers.push(`${request.headers['Keel-Origin']} asks ${request.headers['Keel-Handover-From']}`);
      const message: ClusterMessage = { subject: request.subject, headers: request.headers, payload: request.payload, subscriptionId: null, consumerId: 1, streamSequence, redelivered: false };
      this.broadcast({ kind: 'message', message });
      return this.complete(harness, { requestId: request.requestId, ok: true, sequence: streamSequence });
    }
    // Core publications, subscriptions, acknowledgements and watches change nothing here.
  }
}

/** Opens a connection on `harness` and sends the mover's CONNECT (clean start 0: it keeps its session). */
export function connectMover(harness: Harness): TestClient {
  const client = harness.open(5);
  client.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: false, keepAliveSeconds: 0, clientId: 'mover', properties: { sessionExpiryInterval: 3600 } });
  return client;
}

export function connack(client: TestClient): { sessionPresent: boolean } | undefined {
  return client.take().find((packet) => packet.type === PacketType.Connack) as { sessionPresent: boolean } | undefined;
}
