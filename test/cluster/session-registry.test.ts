/**
 * Proves the clustered core's claim of client ids (src/cluster/session-registry.ts) with a test
 * playing NATS by hand: a CONNECT is answered only once its compare-and-set of the `keel-sessions`
 * key succeeded, and what the client sent behind it is handled after; a claim beaten by another
 * node goes again at the revision the watch shows, and one lost with the link goes again when it
 * returns, unless the watch shows the lost attempt's generation: then it won, with the hand-over it
 * asked for (seed 6600379; likewise an attempt that failed with a timeout); a claim answered after the watch showed a newer one by another node is given up at
 * once; without NATS a CONNECT is refused with 0x88 after claimWaitMs; when the bucket names another node, the local connection gets DISCONNECT
 * 0x8E (3.1.1: a close), its will is published once, and the session it held here is gone; a
 * change naming this node changes nothing; a claim over a key whose owner asked another node for
 * the session names that node as the prior of its marker, unless this node has read the owner's
 * marker already (session-handover.ts); back on NATS, or restarted, a node reads no hand-over
 * marker that asks it for the session until its watch of the bucket says its replay is in, and
 * then decides at it with the claims the replay showed (seeds 3400116, 5000791), while a marker
 * that asks nothing of it is read at once; the answer of a watch replaced since counts for nothing.
 */
import { describe, expect, it } from 'vitest';
import { decodeHandoverState, encodeHandoverState, handoverBucket, handoverKey, handoverMarkerSubject, markerSentOutboxSubject } from '../../src/cluster/session-handover.js';
import { claimWaitMs, decodeOwner, encodeOwner, sessionKey, sessionsBucket } from '../../src/cluster/session-registry.js';
import { PacketType } from '../../src/codec/packets.js';
import { handoverWaitMsDefault as handoverWaitMs } from '../../src/config.js';
import type { ClusterRequest } from '../../src/contract.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { decodeText, Harness, type TestClient, will } from '../broker/harness.js';

type KvSet = Extract<ClusterRequest, { op: 'kv-set' }>;
type PublishDurable = Extract<ClusterRequest, { op: 'publish-durable' }>;

function node(): Harness {
  const harness = Harness.clusterNode();
  harness.answerClaims = false;
  harness.clusterConnected();
  return harness;
}

function claims(harness: Harness): KvSet[] {
  const taken = harness.takeClusterRequests();
  return taken.filter((request): request is KvSet => request.op === 'kv-set' && request.bucket === sessionsBucket);
}

function answer(harness: Harness, request: KvSet, revision: number): void {
  harness.broker.clusterCompleted(harness.nowMs, { requestId: request.requestId, ok: true, sequence: revision });
  harness.collect();
}

function ownedBy(harness: Harness, clientId: string, nodeId: string, revision: number): void {
  harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey(clientId), value: encodeOwner({ node: nodeId, generation: '1.1' }), revision });
  harness.collect();
}

function sendConnect(client: TestClient, clientId: string, options: { cleanStart?: boolean; expiry?: number; willTopic?: string } = {}): void {
  client.send({
    type: PacketType.Connect,
    protocolName: 'MQTT',
    protocolVersion: client.version,
    cleanStart: options.cleanStart ?? true,
    keepAliveSeconds: 0,
    clientId,
    ...(client.version === 5 && options.expiry !== undefined ? { properties: { sessionExpiryInterval: options.expiry } } : {}),
    ...(options.willTopic === undefined ? {} : { will: will(options.willTopic, `will of ${clientId}`, { qos: 1 }) }),
  });
}

/** Connects `clientId` and answers its claim at `revision`. */
function connectClaimed(harness: Harness, clientId: string, revision: number, options: Parameters<typeof sendConnect>[2] = {}): TestClient {
  const client = harness.open(5);
  sendConnect(client, clientId, options);
  const [claim] = claims(harness);
  answer(harness, claim!, revision);
  expect(client.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0 }]);
  return client;
}

/**
 * b holds `mover` (claim 5); a CONNECT here wins claim 8, asking b, and b does not answer: at the
 * deadline the client gets session present 0 and a fresh session made under claim 8.
 */
function giveUpHandover(harness: Harness): { claim: KvSet; marker: PublishDurable } {
  ownedBy(harness, 'mover', 'b', 5);
  const client = harness.open(5);
  sendConnect(client, 'mover', { cleanStart: false, expiry: 3600 });
  const [claim] = claims(harness);
  answer(harness, claim!, 8);
  const [marker] = harness.takeClusterRequests().filter((request): request is PublishDurable => request.op === 'publish-durable' && request.subject === handoverMarkerSubject);
  harness.advance(handoverWaitMs);
  expect(client.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0, sessionPresent: false }]);
  return { claim: claim!, marker: marker! };
}

/** Node b's claim at revision 3, which asked this node (a) for the session: older than a's at 5. */
const olderMarker = { 'Keel-Origin': 'b', 'Keel-Handover-Client': sessionKey('mover'), 'Keel-Handover-From': 'a', 'Keel-Handover-Revision': '3', 'Keel-Seq': '1-1' };

/** A crash and restart, then the sessions watch replays `value` as the key's newest revision and is current. */
function restartSeeing(harness: Harness, value: Uint8Array | null, revision: number): void {
  harness.restart();
  harness.clusterConnected(false);
  harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value, revision });
  harness.broker.clusterWatchCurrent(harness.nowMs, sessionsBucket, harness.sessionsWatchId);
  harness.collect();
}

function deliverMarker(harness: Harness, headers: Record<string, string>, streamSequence: number): void {
  harness.broker.clusterMessage(harness.nowMs, { subject: handoverMarkerSubject, headers, payload: new Uint8Array(0), subscriptionId: null, consumerId: 1, streamSequence, redelivered: false });
  harness.collect();
}

/** A QoS 1 hand-off of node b on `x/y` at `streamSequence`. */
function deliverHandoff(harness: Harness, streamSequence: number): void {
  const headers = { 'Keel-Origin': 'b', 'Keel-Qos': '1', 'Keel-Seq': `1-${streamSequence + 10}` };
  harness.broker.clusterMessage(harness.nowMs, {
    subject: '$KEEL.handoff.x.y',
    headers,
    payload: new TextEncoder().encode('m'),
    subscriptionId: null,
    consumerId: 1,
    streamSequence,
    redelivered: false,
  });
  harness.collect();
}

/** The answers this node put into `keel-handover` since the last take. */
function handoverPuts(harness: Harness): KvSet[] {
  return harness.takeClusterRequests().filter((request): request is KvSet => request.op === 'kv-set' && request.bucket === handoverBucket);
}

/** This node's claim 6 asks b (which holds the session under claim 5) with a marker of its own: the connection, the claim and the marker. */
function claimAskingB(harness: Harness): { client: TestClient; claim6: KvSet; marker6: PublishDurable } {
  ownedBy(harness, 'mover', 'b', 5);
  const client = harness.open(5);
  sendConnect(client, 'mover', { cleanStart: false, expiry: 3600 });
  const [claim6] = claims(harness);
  answer(harness, claim6!, 6);
  const [marker6] = harness.takeClusterRequests().filter((request): request is PublishDurable => request.op === 'publish-durable' && request.subject === handoverMarkerSubject);
  return { client, claim6: claim6!, marker6: marker6! };
}

/** As claimAskingB, and its client leaves before the marker: that marker's headers. */
function claimAndLeave(harness: Harness): Record<string, string> {
  const { client, marker6 } = claimAskingB(harness);
  client.drop();
  harness.collect();
  return { ...marker6.headers };
}

/** `from`'s answer at this node's marker of stream sequence `sequence`: a session `from` made or adopted under claim `claimRevision`. */
function answerFrom(harness: Harness, from: string, sequence: number, claimRevision: number): void {
  const records: StateRecord[] = [
    { kind: 'session-created', clientId: 'mover', protocolVersion: 5, expiryIntervalSeconds: 3600, claimRevision },
    { kind: 'session-counters', clientId: 'mover', nextPacketId: 1, nextDeliverySequence: 1 },
  ];
  const state = { header: { client: 'mover', from, to: 'a', sequence, nowMs: harness.nowMs, cut: '1-0', willInMs: null, none: false }, records };
  harness.broker.clusterKeyChanged(harness.nowMs, { bucket: handoverBucket, key: handoverKey('mover', sequence), value: encodeHandoverState(state), revision: sequence });
  harness.collect();
}

/** b's answer at this node's marker of stream sequence 1 (answerFrom). */
function answerFromB(harness: Harness, claimRevision: number): void {
  answerFrom(harness, 'b', 1, claimRevision);
}

/**
 * This node's claim 6 asks b (a marker of its own); its client leaves; b claims 7 (asking this
 * node); the client comes back here: claim 8 asks b again, with a marker of its own. b hands the
 * session over at the older marker (6), and it is adopted for claim 8, whose own hand-over (at
 * marker 8) is still to come. Returns claim 8 and its connection (its CONNECT waits for marker 8).
 */
function adoptAtOlderMarker(harness: Harness): { claim8: KvSet; second: TestClient } {
  const marker6 = claimAndLeave(harness);
  harness.broker.clusterKeyChanged(harness.nowMs, {
    bucket: sessionsBucket,
    key: sessionKey('mover'),
    value: encodeOwner({ node: 'b', generation: '1.2', handoverFrom: 'a', lineageRevision: 5 }),
    revision: 7,
  });
  harness.collect();
  const second = harness.open(5);
  sendConnect(second, 'mover', { cleanStart: false, expiry: 3600 });
  const [claim8] = claims(harness);
  answer(harness, claim8!, 8);
  deliverMarker(harness, marker6, 1);
  const records = [
    { kind: 'session-created', clientId: 'mover', protocolVersion: 5, expiryIntervalSeconds: 3600 },
    { kind: 'session-counters', clientId: 'mover', nextPacketId: 1, nextDeliverySequence: 1 },
  ] as const;
  const state = { header: { client: 'mover', from: 'b', to: 'a', sequence: 1, nowMs: harness.nowMs, cut: '1-0', willInMs: null, none: false }, records: [...records] };
  harness.broker.clusterKeyChanged(harness.nowMs, { bucket: handoverBucket, key: handoverKey('mover', 1), value: encodeHandoverState(state), revision: 1 });
  harness.collect();
  expect(harness.logs.some((log) => log.event === 'session-adopted')).toBe(true);
  expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(8);
  return { claim8: claim8!, second };
}

describe('cluster-wide client ids', () => {
  it('answers a CONNECT only once its claim is in the bucket, and handles what followed it after', () => {
    const harness = node();
    const client = harness.open(5);
    sendConnect(client, 'c1');
    client.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 'x/y', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    expect(client.take()).toEqual([]);
    expect(client.readingPaused).toBe(true);
    const [claim, ...others] = claims(harness);
    expect(others).toEqual([]);
    expect(claim).toMatchObject({ op: 'kv-set', bucket: 'keel-sessions', key: sessionKey('c1'), expectedRevision: 0 });
    expect(decodeOwner(claim!.value!)).toMatchObject({ node: 'a' });
    answer(harness, claim!, 1);
    expect(client.take().map((packet) => packet.type)).toEqual([PacketType.Connack, PacketType.Suback]);
    expect(client.readingPaused).toBe(false);
  });

  it('tries a beaten claim again at the revision the watch shows', () => {
    const harness = node();
    const client = harness.open(5);
    sendConnect(client, 'c1');
    const [first] = claims(harness);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: first!.requestId, ok: false, code: 'wrong-revision', message: 'at 4' });
    harness.collect();
    expect(claims(harness)).toEqual([]);
    ownedBy(harness, 'c1', 'b', 4);
    const [second] = claims(harness);
    expect(second).toMatchObject({ key: sessionKey('c1'), expectedRevision: 4 });
    answer(harness, second!, 5);
    expect(client.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0 }]);
  });

  it('claims again after the link came back, when the first attempt was lost with it', () => {
    const harness = node();
    const client = harness.open(5);
    sendConnect(client, 'c1');
    const [lost] = claims(harness);
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    // The answer to the lost attempt, should it still come, is stale.
    answer(harness, lost!, 9);
    expect(client.take()).toEqual([]);
    harness.broker.clusterStatus(harness.nowMs, 'connected');
    harness.collect();
    const [again] = claims(harness);
    expect(again).toMatchObject({ key: sessionKey('c1'), expectedRevision: 0 });
    expect(again!.requestId).not.toBe(lost!.requestId);
    answer(harness, again!, 1);
    expect(client.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0 }]);
  });

  it("takes an attempt lost with the link for the claim's win when the watch shows its generation, with the hand-over it asked for (seed 6600379)", () => {
    const harness = node();
    // This node holds a copy of the session, offline, for b's claim, which asked it (its marker
    // is not read yet): the client's session is on b now.
    const first = connectClaimed(harness, 'mover', 5, { cleanStart: false, expiry: 3600 });
    first.subscribe(['x/#']);
    first.drop();
    harness.collect();
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner({ node: 'b', generation: '7.1', handoverFrom: 'a' }), revision: 6 });
    harness.collect();
    expect(harness.broker.state.sessions.has('mover')).toBe(true);
    // The client comes back here: the claim asks b, and its answer is lost with the link.
    const client = harness.open(5);
    sendConnect(client, 'mover', { cleanStart: false, expiry: 3600 });
    const [lost] = claims(harness);
    expect(decodeOwner(lost!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b' });
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    harness.broker.clusterStatus(harness.nowMs, 'connected');
    harness.collect();
    const [again] = claims(harness).filter((request) => request.key === sessionKey('mover'));
    expect(again).toMatchObject({ expectedRevision: 0 });
    // The watch replays the key: the lost attempt won at revision 7. That is this claim's win,
    // asking b: a marker goes out and the CONNECT waits for the session, no claim goes out over it.
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: lost!.value, revision: 7 });
    harness.collect();
    const taken = harness.takeClusterRequests();
    const markers = taken.filter((request): request is PublishDurable => request.op === 'publish-durable' && request.subject === handoverMarkerSubject);
    expect(markers).toHaveLength(1);
    expect(markers[0]!.headers).toMatchObject({ 'Keel-Handover-From': 'b', 'Keel-Handover-Revision': '7' });
    expect(taken.filter((request) => request.op === 'kv-set' && request.bucket === sessionsBucket)).toEqual([]);
    // The attempt out meanwhile is refused, as its revision is old: that changes nothing.
    harness.broker.clusterCompleted(harness.nowMs, { requestId: again!.requestId, ok: false, code: 'wrong-revision', message: 'at 7' });
    harness.collect();
    expect(claims(harness)).toEqual([]);
    expect(client.take()).toEqual([]);
    expect(client.readingPaused).toBe(true);
  });

  it('takes an attempt that failed with a timeout for won when the watch shows its generation', () => {
    const harness = node();
    const client = harness.open(5);
    sendConnect(client, 'c1');
    const [timedOut] = claims(harness);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: timedOut!.requestId, ok: false, code: 'timeout', message: 'no answer' });
    harness.collect();
    expect(client.take()).toEqual([]);
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('c1'), value: timedOut!.value, revision: 1 });
    harness.collect();
    expect(client.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0 }]);
    // A key of another generation of this node's is no attempt of this claim: a later CONNECT claims it anew.
    const other = harness.open(5);
    sendConnect(other, 'c2');
    const [claim] = claims(harness);
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('c2'), value: encodeOwner({ node: 'a', generation: '99.99' }), revision: 2 });
    harness.collect();
    expect(other.take()).toEqual([]);
    answer(harness, claim!, 3);
    expect(other.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0 }]);
  });

  it('forgets what it saw of the bucket when the link returns (a NATS that lost its store counts revisions from 1 again)', () => {
    const harness = node();
    ownedBy(harness, 'c1', 'b', 7);
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.broker.clusterStatus(harness.nowMs, 'connected');
    harness.collect();
    harness.takeClusterRequests();
    ownedBy(harness, 'c2', 'b', 1);
    const client = harness.open(5);
    sendConnect(client, 'c1');
    expect(claims(harness)).toMatchObject([{ key: sessionKey('c1'), expectedRevision: 0 }]);
    const other = harness.open(5);
    sendConnect(other, 'c2');
    expect(claims(harness)).toMatchObject([{ key: sessionKey('c2'), expectedRevision: 1 }]);
  });

  it('gives the client id up at once when the watch showed a newer claim by another node before the answer', () => {
    const harness = node();
    const client = harness.open(5);
    sendConnect(client, 'c1');
    const [claim] = claims(harness);
    ownedBy(harness, 'c1', 'b', 2);
    answer(harness, claim!, 1);
    expect(client.take()).toMatchObject([
      { type: PacketType.Connack, reasonCode: 0 },
      { type: PacketType.Disconnect, reasonCode: 0x8e },
    ]);
    expect(client.closed).toBe(true);
  });

  it('closes a 3.1.1 connection without a DISCONNECT when another node owns its client id', () => {
    const harness = node();
    const client = harness.open(4);
    sendConnect(client, 'old');
    answer(harness, claims(harness)[0]!, 1);
    expect(client.take()).toMatchObject([{ type: PacketType.Connack }]);
    ownedBy(harness, 'old', 'c', 2);
    expect(client.take()).toEqual([]);
    expect(client.closed).toBe(true);
    expect(client.closeReason).toBe('session taken over by node c');
  });

  it('refuses a CONNECT with 0x88 when NATS cannot confirm the client id in time', () => {
    const harness = node();
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    const client = harness.open(5);
    sendConnect(client, 'c1');
    expect(claims(harness)).toEqual([]);
    harness.advance(claimWaitMs - 1);
    expect(client.take()).toEqual([]);
    harness.advance(1);
    expect(client.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0x88 }]);
    expect(client.closed).toBe(true);
  });

  it('closes its connection with 0x8E, publishes the will once and ends the session when another node owns the client id', () => {
    const harness = node();
    const watcher = connectClaimed(harness, 'watcher', 1);
    watcher.subscribe([{ topicFilter: 'wills/#', qos: 1 }]);
    const moved = connectClaimed(harness, 'mover', 2, { cleanStart: false, expiry: 3600, willTopic: 'wills/mover' });
    moved.subscribe(['x/#']);
    ownedBy(harness, 'mover', 'a', 2);
    expect(moved.take()).toEqual([]);
    ownedBy(harness, 'mover', 'b', 3);
    expect(moved.take()).toMatchObject([{ type: PacketType.Disconnect, reasonCode: 0x8e }]);
    expect(moved.closed).toBe(true);
    expect(watcher.publishes().map((packet) => decodeText(packet.payload))).toEqual(['will of mover']);
    expect(harness.broker.state.sessions.has('mover')).toBe(false);
    // The same change seen again (a watch replayed after a reconnection) changes nothing more.
    ownedBy(harness, 'mover', 'b', 3);
    expect(watcher.publishes()).toEqual([]);
    // Back on this node with clean start 0: node b, the owner, is asked for the session
    // (session-handover.ts). Nobody answers here, so after handoverWaitMs the client gets a fresh one.
    const back = harness.open(5);
    sendConnect(back, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim] = claims(harness);
    expect(claim).toMatchObject({ expectedRevision: 3 });
    expect(decodeOwner(claim!.value!)).toMatchObject({ node: harness.broker.cluster!.nodeId, handoverFrom: 'b' });
    answer(harness, claim!, 4);
    expect(back.take()).toEqual([]);
    harness.advance(handoverWaitMs);
    expect(back.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0, sessionPresent: false }]);
  });

  it('waits cluster.handoverWaitMs for a moving session, not the default, when configured', () => {
    // connectTimeoutMs above it: a CONNECT that waits past connectTimeoutMs is closed meanwhile.
    const harness = new Harness({ connectTimeoutMs: 60_000, cluster: { nats: ['nats://test:4222'], nodeId: 'a', handoverWaitMs: 20_000 } });
    harness.answerClaims = false;
    harness.clusterConnected();
    ownedBy(harness, 'mover', 'b', 3);
    const back = harness.open(5);
    sendConnect(back, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim] = claims(harness);
    answer(harness, claim!, 4);
    harness.advance(handoverWaitMs);
    expect(back.take()).toEqual([]);
    harness.advance(20_000 - handoverWaitMs);
    expect(back.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0, sessionPresent: false }]);
    expect(harness.logEvents()).toContain('handover-timed-out');
  });
  it("names the node the owner's claim asked as the prior of its marker, until it has read the owner's own marker", () => {
    const harness = node();
    const owner = (handoverFrom: string, revision: number) =>
      harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner({ node: 'b', generation: '1.1', handoverFrom }), revision });
    const markerOf = (client: TestClient, revision: number): PublishDurable => {
      sendConnect(client, 'mover', { cleanStart: false, expiry: 3600 });
      const [claim] = claims(harness);
      expect(decodeOwner(claim!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b' });
      answer(harness, claim!, revision);
      const markers = harness.takeClusterRequests().filter((request): request is PublishDurable => request.op === 'publish-durable' && request.subject === handoverMarkerSubject);
      expect(markers).toHaveLength(1);
      // JetStream stores it, so this node's next hand-off goes out at once (cluster-node.ts handoffUnitsInFlightMax).
      harness.broker.clusterCompleted(harness.nowMs, { requestId: markers[0]!.requestId, ok: true, sequence: 100 + revision });
      harness.collect();
      return markers[0]!;
    };
    // Node b's claim asked c for the session, and this node has not read b's marker: the session
    // may still be on c when this node's marker reaches the stream, so c is named too.
    owner('c', 5);
    harness.collect();
    const first = markerOf(harness.open(5), 6);
    expect(first.headers).toMatchObject({ 'Keel-Handover-From': 'b', 'Keel-Handover-Prior': 'c' });
    // b claims again (asking c), and this node reads b's marker of that claim in the stream before
    // its next CONNECT: b's move is ahead of this node's next marker, so no prior is named.
    owner('c', 7);
    const bMarker = { 'Keel-Origin': 'b', 'Keel-Handover-Client': sessionKey('mover'), 'Keel-Handover-From': 'c', 'Keel-Handover-Revision': '7', 'Keel-Seq': '1-1' };
    harness.broker.clusterMessage(harness.nowMs, {
      subject: handoverMarkerSubject,
      headers: bMarker,
      payload: new Uint8Array(0),
      subscriptionId: null,
      consumerId: 1,
      streamSequence: 1,
      redelivered: false,
    });
    harness.collect();
    const second = markerOf(harness.open(5), 8);
    expect(second.headers['Keel-Handover-From']).toBe('b');
    expect(second.headers['Keel-Handover-Prior']).toBeUndefined();
  });

  it("keeps its client at an older claim's marker that comes before the watch replayed this node's newer claim (seed 3400116)", () => {
    const harness = node();
    const client = connectClaimed(harness, 'mover', 5, { cleanStart: true, expiry: 3600 });
    client.subscribe(['x/#']);
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.clusterConnected(false);
    // Node b's claim at revision 3 asked this node for the session; its marker, held in b's outbox,
    // reaches the stream only now, before the watch has replayed this node's claim at revision 5.
    deliverMarker(harness, olderMarker, 1);
    expect(handoverPuts(harness)).toEqual([]);
    expect(client.take()).toEqual([]);
    // The watch replays the key, then says it is current: the reader decides at the marker now.
    ownedBy(harness, 'mover', 'a', 5);
    harness.broker.clusterWatchCurrent(harness.nowMs, sessionsBucket, harness.sessionsWatchId);
    harness.collect();
    expect(client.take()).toEqual([]);
    expect(client.closed).toBe(false);
    expect(harness.broker.state.sessions.has('mover')).toBe(true);
    const puts = handoverPuts(harness);
    expect(puts).toHaveLength(1);
    expect(decodeHandoverState(puts[0]!.value!)?.header).toMatchObject({ client: 'mover', to: 'b', none: true });
  });

  it("after a restart, holds the stream at an older claim's marker until the watch has replayed the bucket, then keeps the session its newer claim owns", () => {
    const harness = node();
    connectClaimed(harness, 'mover', 5, { cleanStart: true, expiry: 3600 }).subscribe(['x/#']);
    // A crash: the new process remembers no claim, only the session in its log.
    harness.restart();
    expect(harness.broker.state.sessions.has('mover')).toBe(true);
    harness.clusterConnected(false);
    const firstWatch = harness.sessionsWatchId;
    expect(firstWatch).toBeGreaterThan(0);
    // b's older marker, then a hand-off of b behind it: neither is read before the replay is in.
    deliverMarker(harness, olderMarker, 1);
    deliverHandoff(harness, 2);
    expect(handoverPuts(harness)).toEqual([]);
    expect(harness.broker.state.cluster!.appliedSequence).toBe(0);
    // A lost link and a new watch: the first watch's answer, coming late, counts for nothing.
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.clusterConnected(false);
    expect(harness.sessionsWatchId).not.toBe(firstWatch);
    ownedBy(harness, 'mover', 'a', 5);
    harness.broker.clusterWatchCurrent(harness.nowMs, sessionsBucket, firstWatch);
    harness.collect();
    expect(handoverPuts(harness)).toEqual([]);
    expect(harness.broker.state.cluster!.appliedSequence).toBe(0);
    // The newest watch is current: the marker is read with the claim at revision 5 known, so this
    // node keeps the session and answers b that it has none; the hand-off behind it goes on.
    harness.broker.clusterWatchCurrent(harness.nowMs, sessionsBucket, harness.sessionsWatchId);
    harness.collect();
    const puts = handoverPuts(harness);
    expect(puts).toHaveLength(1);
    expect(decodeHandoverState(puts[0]!.value!)?.header).toMatchObject({ client: 'mover', to: 'b', none: true });
    expect(harness.broker.state.sessions.has('mover')).toBe(true);
    // b's bucket takes the answer: the reader records the marker and the hand-off behind it applied.
    harness.broker.clusterCompleted(harness.nowMs, { requestId: puts[0]!.requestId, ok: true, sequence: 1 });
    harness.collect();
    expect(harness.broker.state.cluster!.appliedSequence).toBe(2);
    // b's hand-off reached the session that stayed here.
    expect(harness.broker.state.sessions.get('mover')?.queue.length).toBe(1);
  });

  it("keeps the session at an older marker of b while b's newer claim asks this node again at a marker of its own, and hands it over at the marker a claim without one waits for (seeds 5010652, 7400512)", () => {
    const harness = node();
    connectClaimed(harness, 'mover', 2, { cleanStart: true, expiry: 3600 }).subscribe(['x/#']);
    // b claimed the client from this node (revision 3), the client moved on, and b claimed it back
    // from this node (revision 5): b may have given up its first hand-over and would drop the
    // session at the older marker as late, so it stays here for b's newer marker.
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner({ node: 'b', generation: '1.2', handoverFrom: 'a' }), revision: 5 });
    harness.collect();
    deliverMarker(harness, olderMarker, 1);
    const first = handoverPuts(harness);
    expect(first).toHaveLength(1);
    expect(decodeHandoverState(first[0]!.value!)?.header).toMatchObject({ client: 'mover', to: 'b', sequence: 1, none: true });
    expect(harness.broker.state.sessions.has('mover')).toBe(true);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: first[0]!.requestId, ok: true, sequence: 1 });
    harness.collect();
    // b's client connected there once more before b read its marker: that claim (revision 6) has
    // no marker of its own and names the one it waits for (revision 5). At that marker the session goes.
    const waiting = { node: 'b', generation: '1.3', handoverFrom: 'a', markerRevision: 5 };
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner(waiting), revision: 6 });
    harness.collect();
    deliverMarker(harness, { ...olderMarker, 'Keel-Handover-Revision': '5', 'Keel-Seq': '1-2' }, 2);
    const second = handoverPuts(harness);
    expect(second).toHaveLength(1);
    const state = decodeHandoverState(second[0]!.value!);
    expect(state?.header).toMatchObject({ client: 'mover', to: 'b', sequence: 2, none: false });
    expect(state?.records.some((record) => record.kind === 'subscription-added')).toBe(true);
    expect(harness.broker.state.sessions.has('mover')).toBe(false);
  });

  it('reads at once, before the replay, a marker whose outcome here does not rest on the claims (it holds no copy and is not asked)', () => {
    const harness = node();
    harness.clusterConnected(false);
    // b asks c for a session this node never held: nothing to decide here, whatever the claims.
    deliverMarker(harness, { ...olderMarker, 'Keel-Handover-From': 'c' }, 1);
    deliverHandoff(harness, 2);
    expect(harness.broker.state.cluster!.appliedSequence).toBe(2);
    expect(handoverPuts(harness)).toEqual([]);
    expect(harness.broker.cluster!.counters.markersHeldForWatch).toBe(0);
  });

  it("asks again with a marker of its own, after a restart, for the hand-over its earlier claim asked for: that claim's marker may never have been queued (seed 19100002)", () => {
    const harness = node();
    // This node's earlier claim (revision 7) asked b for the session, and the node crashed when the
    // claim had won, before it learned so: no marker was queued, and the node holds no session.
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner({ node: 'a', generation: '1.1', handoverFrom: 'b' }), revision: 7 });
    harness.collect();
    const client = harness.open(5);
    sendConnect(client, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim] = claims(harness);
    // The new claim asks b again, in the same line, and its own marker carries the hand-over.
    const owner = decodeOwner(claim!.value!);
    expect(owner).toMatchObject({ node: 'a', handoverFrom: 'b' });
    expect(owner?.markerRevision).toBeUndefined();
    answer(harness, claim!, 8);
    const [marker] = harness.takeClusterRequests().filter((request): request is PublishDurable => request.op === 'publish-durable' && request.subject === handoverMarkerSubject);
    expect(marker?.headers).toMatchObject({ 'Keel-Origin': 'a', 'Keel-Handover-From': 'b', 'Keel-Handover-Revision': '8' });
    // A marker of this node's claim older still (revision 3), which b answered empty: not this CONNECT's.
    deliverMarker(harness, { 'Keel-Origin': 'a', 'Keel-Handover-Client': sessionKey('mover'), 'Keel-Handover-From': 'b', 'Keel-Handover-Revision': '3', 'Keel-Seq': '1-1' }, 1);
    const none = { header: { client: 'mover', from: 'b', to: 'a', sequence: 1, nowMs: harness.nowMs, cut: '1-0', willInMs: null, none: true }, records: [] };
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: handoverBucket, key: handoverKey('mover', 1), value: encodeHandoverState(none), revision: 1 });
    harness.collect();
    expect(harness.broker.state.cluster!.appliedSequence).toBe(1);
    expect(client.take()).toEqual([]);
    // At the new claim's marker b hands the session over: the client resumes it.
    deliverMarker(harness, { ...marker!.headers }, 2);
    const records: StateRecord[] = [
      { kind: 'session-created', clientId: 'mover', protocolVersion: 5, expiryIntervalSeconds: 3600, claimRevision: 5 },
      { kind: 'session-counters', clientId: 'mover', nextPacketId: 1, nextDeliverySequence: 1 },
    ];
    const state = { header: { client: 'mover', from: 'b', to: 'a', sequence: 2, nowMs: harness.nowMs, cut: '1-0', willInMs: null, none: false, revision: 8 }, records };
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: handoverBucket, key: handoverKey('mover', 2), value: encodeHandoverState(state), revision: 2 });
    harness.collect();
    expect(client.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0, sessionPresent: true }]);
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(8);
  });

  it("waits, after a restart, for its earlier claim's marker that the stream holds and its reader has not reached (seed 175)", () => {
    const harness = node();
    const { claim6, marker6 } = claimAskingB(harness);
    // The stream stores the marker at 4; the reader has not reached it: a note says so, in the log.
    harness.broker.clusterCompleted(harness.nowMs, { requestId: marker6.requestId, ok: true, sequence: 4 });
    harness.collect();
    const notes = () => [...harness.broker.state.cluster!.outbox.values()].filter((entry) => entry.subject === markerSentOutboxSubject);
    expect(notes().map((entry) => entry.headers)).toEqual([{ client: sessionKey('mover'), revision: '6' }]);
    expect([...harness.broker.state.cluster!.outbox.values()].some((entry) => entry.subject === handoverMarkerSubject)).toBe(false);
    // After a restart the client comes back: its claim waits for marker 6, without a marker of its own.
    restartSeeing(harness, claim6.value, 6);
    const second = harness.open(5);
    sendConnect(second, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim7] = claims(harness);
    expect(decodeOwner(claim7!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b', markerRevision: 6 });
    answer(harness, claim7!, 7);
    expect(harness.takeClusterRequests().filter((request) => request.op === 'publish-durable' && request.subject === handoverMarkerSubject)).toEqual([]);
    // The reader reaches marker 6, behind three hand-offs: the note ends.
    for (const sequence of [1, 2, 3]) deliverHandoff(harness, sequence);
    deliverMarker(harness, { ...marker6.headers }, 4);
    expect(notes()).toEqual([]);
  });

  it("keeps a CONNECT that waits for its earlier claim's marker waiting when an older marker brings a copy dropped as stale (seed 24200246)", () => {
    const harness = node();
    const { claim6, marker6 } = claimAskingB(harness);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: marker6.requestId, ok: true, sequence: 4 });
    harness.collect();
    restartSeeing(harness, claim6.value, 6);
    const second = harness.open(5);
    sendConnect(second, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim7] = claims(harness);
    expect(decodeOwner(claim7!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b', markerRevision: 6, lineageRevision: 5, lineageNode: 'b' });
    answer(harness, claim7!, 7);
    harness.takeClusterRequests();
    // The reader first meets the marker of an older claim of this node (3, which asked c): c
    // hands over its copy of claim 1, older than the line of 5 that b started: dropped as late.
    deliverHandoff(harness, 1);
    deliverMarker(harness, { ...marker6.headers, 'Keel-Handover-From': 'c', 'Keel-Handover-Revision': '3' }, 2);
    answerFrom(harness, 'c', 2, 1);
    expect(harness.logEvents()).toContain('handover-late');
    // The CONNECT still waits: the session is to come at marker 6.
    expect(second.take()).toEqual([]);
    deliverHandoff(harness, 3);
    deliverMarker(harness, { ...marker6.headers }, 4);
    answerFrom(harness, 'b', 4, 5);
    expect(second.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0, sessionPresent: true }]);
  });

  it('notes no marker the reader reached before the stream acknowledged it', () => {
    const harness = node();
    const { marker6 } = claimAskingB(harness);
    deliverMarker(harness, { ...marker6.headers }, 1);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: marker6.requestId, ok: true, sequence: 1 });
    harness.collect();
    expect([...harness.broker.state.cluster!.outbox.values()].filter((entry) => entry.subject === markerSentOutboxSubject)).toEqual([]);
  });

  /**
   * As claimAskingB; the client gives up on the waiting CONNECT and comes back here: claim 7 goes
   * out waiting for marker 6, without a marker of its own (not answered yet).
   */
  function comeBackAwaitingMarker6(harness: Harness): { marker6: PublishDurable; second: TestClient; claim7: KvSet } {
    const { client: first, marker6 } = claimAskingB(harness);
    expect(marker6.headers).toMatchObject({ 'Keel-Handover-Revision': '6' });
    first.drop();
    harness.collect();
    const second = harness.open(5);
    sendConnect(second, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim7] = claims(harness);
    expect(decodeOwner(claim7!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b', markerRevision: 6 });
    return { marker6, second, claim7: claim7! };
  }

  it('waits, within one life, for the hand-over its earlier claim asked for, without a marker of its own', () => {
    const harness = node();
    const { second, claim7 } = comeBackAwaitingMarker6(harness);
    answer(harness, claim7, 7);
    expect(harness.takeClusterRequests().filter((request) => request.op === 'publish-durable')).toEqual([]);
    expect(second.take()).toEqual([]);
    expect(second.readingPaused).toBe(true);
  });

  it('answers at once a claim that was to wait for its earlier hand-over when the session came before the claim won (seed 22800176)', () => {
    const harness = node();
    const { marker6, second, claim7 } = comeBackAwaitingMarker6(harness);
    // Before it wins, marker 6 brings b's session, adopted here for claim 6.
    deliverMarker(harness, { ...marker6.headers }, 1);
    answerFromB(harness, 5);
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(6);
    // Claim 7 wins: its hand-over has come already, so the CONNECT is answered with the session.
    answer(harness, claim7, 7);
    expect(second.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0, sessionPresent: true }]);
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(7);
  });

  it('keeps the fresh start of its log through a crash before the marker it stood at was applied (seed 12000052)', () => {
    const harness = node();
    // On a fresh log (a new data directory, or its disk lost), the first delivery is b's marker at
    // 5, asking this node for a session it does not hold: the reader takes it as a fresh start and
    // stands there while its empty answer goes into the bucket.
    const claimOfB = encodeOwner({ node: 'b', generation: '1.1', handoverFrom: 'a' });
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: claimOfB, revision: 3 });
    harness.collect();
    deliverMarker(harness, olderMarker, 5);
    expect(harness.logEvents()).toContain('cluster-handoff-fresh-start');
    expect(handoverPuts(harness)).toHaveLength(1);
    // The node crashes before the put is done and the marker applied. Its next life is no fresh
    // start (the log holds its answer and its epoch), but it took 5 as its first: the marker,
    // delivered again, is read at once and the answer put again, instead of waiting for sequences
    // 1 to 4, which the stream no longer has for it.
    restartSeeing(harness, claimOfB, 3);
    deliverMarker(harness, olderMarker, 5);
    expect(handoverPuts(harness)).toHaveLength(1);
    expect(harness.broker.cluster!.counters.handoffGaps).toBe(0);
  });

  /**
   * This node's claim 6 asks b and its client leaves; `lineNode` resumes the client with a claim
   * that asks no one (7: the line of 7); the client comes back here: claim 8 asks `lineNode`, in
   * that line. Then, at the older marker 6, b hands over its session of claim 5 (its own revision
   * older than the line). Returns claim 8's connection.
   */
  function olderStateAtMarker6(harness: Harness, lineNode: string): TestClient {
    const marker6 = claimAndLeave(harness);
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner({ node: lineNode, generation: '1.2' }), revision: 7 });
    harness.collect();
    const second = harness.open(5);
    sendConnect(second, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim8] = claims(harness);
    expect(decodeOwner(claim8!.value!)).toMatchObject({ node: 'a', handoverFrom: lineNode, lineageRevision: 7, lineageNode: lineNode });
    answer(harness, claim8!, 8);
    harness.takeClusterRequests();
    deliverMarker(harness, marker6, 1);
    answerFromB(harness, 5);
    return second;
  }

  it("drops as late a state whose own session is older than the newest claim's line, at an older marker while a newer claim of this node waits (seed 20700027)", () => {
    const harness = node();
    // The line started on c: b's copy of claim 5, adopted for claim 8, would be recorded under 8
    // and pass for the line's session.
    const second = olderStateAtMarker6(harness, 'c');
    expect(harness.logEvents()).toContain('handover-late');
    expect(harness.broker.state.sessions.has('mover')).toBe(false);
    expect(second.take()).toEqual([]);
  });

  it("adopts at an older marker the session of the node that started the newest claim's line, though its own revision is older (seed 22800063)", () => {
    const harness = node();
    // The line started on b, which crashed before the record of its resume under 7 was durable:
    // its session still says claim 5, yet it is the line's (b holds one session of the client), so
    // it is adopted for claim 8, not dropped as a stale copy.
    olderStateAtMarker6(harness, 'b');
    expect(harness.logEvents()).not.toContain('handover-late');
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(8);
  });

  // Each session records the revision of the claim it was made or adopted under
  // (SessionState.claimRevision), through restarts; the three rules that read it.

  it("ends a copy older than the line of the newer claim that asks for it, instead of keeping it for that claim's marker (seed 8100075)", () => {
    const harness = node();
    // The session is made here under claim 7. b's claim 11 asked this node for it (its marker not
    // read yet); b's claim 19 resumed the client's session on b without asking anyone, and this
    // node's ending of its copy was lost in a crash; claim 22 of b asks this node again, in the line
    // of 19.
    connectClaimed(harness, 'mover', 7, { cleanStart: false, expiry: 3600 }).subscribe(['x/#']);
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(7);
    harness.restart();
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(7);
    harness.clusterConnected(false);
    const newest = { node: 'b', generation: '1.4', handoverFrom: 'a', lineageRevision: 19 };
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner(newest), revision: 22 });
    harness.broker.clusterWatchCurrent(harness.nowMs, sessionsBucket, harness.sessionsWatchId);
    harness.collect();
    deliverMarker(harness, { ...olderMarker, 'Keel-Handover-Revision': '11' }, 1);
    // The copy is no session of claim 22: it is ended (not handed to b at 22's marker over the
    // client's live session), and b is told none at its older marker.
    const puts = handoverPuts(harness);
    expect(puts).toHaveLength(1);
    expect(decodeHandoverState(puts[0]!.value!)?.header).toMatchObject({ client: 'mover', to: 'b', sequence: 1, none: true, revision: 11 });
    expect(harness.broker.state.sessions.has('mover')).toBe(false);
    expect(harness.logs.some((log) => log.event === 'session-moved' && log.fields.stale === true)).toBe(true);
  });

  it("ends a copy older than the line of the newest claim at that claim's own marker too, instead of handing it over (seed 13800036)", () => {
    const harness = node();
    // As in seed 8100075, but the marker that comes is claim 22's own: the copy of claim 7 is a
    // leftover of an older line, handed over it would replace the client's live session on b.
    connectClaimed(harness, 'mover', 7, { cleanStart: false, expiry: 3600 }).subscribe(['x/#']);
    const newest = { node: 'b', generation: '1.4', handoverFrom: 'a', lineageRevision: 19 };
    restartSeeing(harness, encodeOwner(newest), 22);
    deliverMarker(harness, { ...olderMarker, 'Keel-Handover-Revision': '22' }, 1);
    const puts = handoverPuts(harness);
    expect(puts).toHaveLength(1);
    expect(decodeHandoverState(puts[0]!.value!)?.header).toMatchObject({ client: 'mover', to: 'b', none: true, revision: 22 });
    expect(harness.broker.state.sessions.has('mover')).toBe(false);
    expect(harness.logs.some((log) => log.event === 'session-moved' && log.fields.stale === true)).toBe(true);
  });

  it("hands over at the newest claim's own marker a copy of that claim's line", () => {
    const harness = node();
    connectClaimed(harness, 'mover', 7, { cleanStart: false, expiry: 3600 }).subscribe(['x/#']);
    const newest = { node: 'b', generation: '1.4', handoverFrom: 'a', lineageRevision: 7 };
    restartSeeing(harness, encodeOwner(newest), 22);
    deliverMarker(harness, { ...olderMarker, 'Keel-Handover-Revision': '22' }, 1);
    const state = decodeHandoverState(handoverPuts(harness)[0]!.value!);
    expect(state?.header).toMatchObject({ to: 'b', none: false, revision: 22 });
    // The claim it was made under goes with it.
    expect(state?.records.find((record) => record.kind === 'session-created')).toMatchObject({ claimRevision: 7 });
  });

  it('hands over a copy older than a line this node started itself: its own claim of that line may have been lost before it was durable', () => {
    const harness = node();
    // This node resumed the session under claim 12 (asking no one), and its record of that was
    // lost in a crash before the CONNACK: the copy of claim 7 is the client's session. b's claim
    // 15 asks for it, in the line of 12, which this node started.
    connectClaimed(harness, 'mover', 7, { cleanStart: false, expiry: 3600 }).subscribe(['x/#']);
    const newest = { node: 'b', generation: '1.4', handoverFrom: 'a', lineageRevision: 12, lineageNode: 'a' };
    restartSeeing(harness, encodeOwner(newest), 15);
    deliverMarker(harness, { ...olderMarker, 'Keel-Handover-Revision': '15' }, 1);
    expect(decodeHandoverState(handoverPuts(harness)[0]!.value!)?.header).toMatchObject({ to: 'b', none: false, revision: 15 });
    expect(harness.logs.some((log) => log.event === 'session-moved' && log.fields.stale === true)).toBe(false);
  });

  it('names the node of its line in a claim that asks for a hand-over', () => {
    const harness = node();
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner({ node: 'b', generation: '1.1' }), revision: 4 });
    harness.collect();
    const client = harness.open(5);
    sendConnect(client, 'mover', { cleanStart: false, expiry: 3600 });
    const [first] = claims(harness);
    expect(decodeOwner(first!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b', lineageRevision: 4, lineageNode: 'b' });
  });

  it("drops as late a state at an older marker of its own when the newest claim started a line on another node after that state's session (seed 17200102)", () => {
    const harness = node();
    const marker6 = claimAndLeave(harness);
    // b gave the client a session of its own under claim 9, asking no one (a give-up's fresh session, or a resume there).
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner({ node: 'b', generation: '1.3' }), revision: 9 });
    harness.collect();
    deliverMarker(harness, marker6, 1);
    answerFromB(harness, 5);
    // The session of claim 5 is older than line 9: adopted, it would be a stale copy here.
    expect(harness.logs.some((log) => log.event === 'session-adopted')).toBe(false);
    expect(harness.logs.find((log) => log.event === 'handover-late')?.fields).toMatchObject({ clientId: 'mover', fromNode: 'b' });
    expect(harness.broker.state.sessions.has('mover')).toBe(false);
    expect(harness.broker.state.cluster!.appliedSequence).toBe(1);
  });

  it("records a session adopted at an older marker of its own under its source's claim when that is newer, and hands it over as of that line (seed 7203919)", () => {
    const harness = node();
    const marker6 = claimAndLeave(harness);
    // b gave claim 6 up with a fresh session of its own made under claim 8 (its give-up), and its
    // claim 9, in the line of 8, asks this node for it at a marker still to come.
    harness.broker.clusterKeyChanged(harness.nowMs, {
      bucket: sessionsBucket,
      key: sessionKey('mover'),
      value: encodeOwner({ node: 'b', generation: '1.3', handoverFrom: 'a', lineageRevision: 8 }),
      revision: 9,
    });
    harness.collect();
    deliverMarker(harness, marker6, 1);
    answerFromB(harness, 8);
    expect(harness.logs.some((log) => log.event === 'session-adopted')).toBe(true);
    // Adopted at the marker of claim 6, it is the session of claim 8's line, not older than it.
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(8);
    handoverPuts(harness);
    deliverMarker(harness, { ...olderMarker, 'Keel-Handover-Revision': '9', 'Keel-Seq': '1-2' }, 2);
    expect(decodeHandoverState(handoverPuts(harness)[0]!.value!)?.header).toMatchObject({ to: 'b', none: false, revision: 9 });
  });

  it("ends a copy older than the line of its own newest claim, whose hand-over a restart forgot, at an older claim's marker, and leaves that claim in the key (seed 13800053)", () => {
    const harness = node();
    // The session is made here under claim 4. b's claim 13 asked this node for it (its marker not
    // read yet), b gave the client a fresh session, which it resumed under claim 16 (the line);
    // the client came back here: claim 18 asks b for that session, and this node restarts before
    // it learned that claim won (no marker queued), its copy back from the crash.
    connectClaimed(harness, 'mover', 4, { cleanStart: false, expiry: 3600 }).subscribe(['x/#']);
    restartSeeing(harness, encodeOwner({ node: 'a', generation: '2.1', handoverFrom: 'b', lineageRevision: 16 }), 18);
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(4);
    harness.takeClusterRequests();
    // At the marker of claim 13 the copy is no session of claim 18's line: ended, and b is told
    // none. Kept, it went at the next claim asking this node (c's 39, prior b) over b's live session.
    deliverMarker(harness, { ...olderMarker, 'Keel-Handover-Revision': '13' }, 1);
    const requests = harness.takeClusterRequests();
    const puts = requests.filter((request): request is KvSet => request.op === 'kv-set' && request.bucket === handoverBucket);
    expect(puts).toHaveLength(1);
    expect(decodeHandoverState(puts[0]!.value!)?.header).toMatchObject({ client: 'mover', to: 'b', sequence: 1, none: true, revision: 13 });
    expect(harness.broker.state.sessions.has('mover')).toBe(false);
    expect(harness.logs.some((log) => log.event === 'session-moved' && log.fields.stale === true && log.fields.copyRevision === 4)).toBe(true);
    // Claim 18 stays in the key: it says the session is b's. Deleted, the client's next claim would
    // ask no one, and b would end the live session.
    expect(requests.filter((request) => request.op === 'kv-set' && request.bucket === sessionsBucket)).toEqual([]);
    harness.advance(1_000);
    expect(claims(harness)).toEqual([]);
  });

  it('keeps a copy of the line of the newer claim that asks for it, made or adopted after the claim that started that line (seeds 5010652, 7203919)', () => {
    const harness = node();
    connectClaimed(harness, 'mover', 7, { cleanStart: false, expiry: 3600 }).subscribe(['x/#']);
    // Claims 11 (b asking this node), 15 (this node asking b) and 22 (b asking this node) all
    // continue the line of claim 7, where the copy was made: it is the session 22 asks for.
    const newest = { node: 'b', generation: '1.4', handoverFrom: 'a', lineageRevision: 7 };
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner(newest), revision: 22 });
    harness.collect();
    deliverMarker(harness, { ...olderMarker, 'Keel-Handover-Revision': '11' }, 1);
    expect(decodeHandoverState(handoverPuts(harness)[0]!.value!)?.header).toMatchObject({ to: 'b', none: true });
    expect(harness.broker.state.sessions.has('mover')).toBe(true);
  });

  it("hands its session over at an older claim's marker when the newest claim names that marker's node as a prior, or names neither node: kept, it would be ended at the newest marker (seeds 16900023, 16900084)", () => {
    // b's claim 11 asks this node for the session (its marker comes now). The newest claim, 22, is
    // d's and asks c; this node cannot see the claims between (its watch shows the key's newest).
    const newestClaims = [
      { newest: { node: 'd', generation: '1.4', handoverFrom: 'c', priors: ['b'], lineageRevision: 7 }, handsOver: true },
      { newest: { node: 'd', generation: '1.4', handoverFrom: 'c', lineageRevision: 7 }, handsOver: true },
      // Named as a prior itself, this node keeps the session for the newest claim's marker.
      { newest: { node: 'd', generation: '1.4', handoverFrom: 'c', priors: ['a'], lineageRevision: 7 }, handsOver: false },
    ];
    for (const { newest, handsOver } of newestClaims) {
      const harness = node();
      connectClaimed(harness, 'mover', 7, { cleanStart: false, expiry: 3600 }).subscribe(['x/#']);
      harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner(newest), revision: 22 });
      harness.collect();
      handoverPuts(harness);
      deliverMarker(harness, { ...olderMarker, 'Keel-Handover-Revision': '11' }, 1);
      expect(decodeHandoverState(handoverPuts(harness)[0]!.value!)?.header).toMatchObject({ to: 'b', none: !handsOver });
      expect(harness.broker.state.sessions.has('mover')).toBe(!handsOver);
    }
  });

  it("names its session's line in a claim that asks for a hand-over: the claim that asked no one before it", () => {
    const harness = node();
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner({ node: 'b', generation: '1.1' }), revision: 4 });
    harness.collect();
    const client = harness.open(5);
    sendConnect(client, 'mover', { cleanStart: false, expiry: 3600 });
    const [first] = claims(harness);
    expect(decodeOwner(first!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b', lineageRevision: 4 });
    // b's claim came first, asking this node and carrying the line on: the claim goes again over it.
    harness.broker.clusterKeyChanged(harness.nowMs, {
      bucket: sessionsBucket,
      key: sessionKey('mover'),
      value: encodeOwner({ node: 'b', generation: '1.2', handoverFrom: 'a', lineageRevision: 4 }),
      revision: 9,
    });
    harness.broker.clusterCompleted(harness.nowMs, { requestId: first!.requestId, ok: false, code: 'wrong-revision', message: 'at 9' });
    harness.collect();
    const [second] = claims(harness);
    expect(second).toMatchObject({ expectedRevision: 9 });
    expect(decodeOwner(second!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b', lineageRevision: 4 });
  });

  it('drops as late, after a restart, a state that comes at the marker of a claim whose hand-over this node gave up with a fresh session (seed 4002210)', () => {
    const harness = node();
    // b does not answer in time: a fresh session, made under claim 8.
    const { claim, marker } = giveUpHandover(harness);
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(8);
    // A crash forgets the give-up; the marker, then b's late state with a subscription and a will.
    restartSeeing(harness, claim.value, 8);
    deliverMarker(harness, marker.headers, 1);
    const subscription = { filter: 'x/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: 0 } as const;
    const records = [
      { kind: 'session-created', clientId: 'mover', protocolVersion: 5, expiryIntervalSeconds: 3600 },
      { kind: 'subscription-added', clientId: 'mover', subscription },
      { kind: 'session-counters', clientId: 'mover', nextPacketId: 1, nextDeliverySequence: 1 },
      { kind: 'will-set', clientId: 'mover', will: will('w/mover', 'gone', { qos: 1 }) },
    ] as const;
    const state = { header: { client: 'mover', from: 'b', to: 'a', sequence: 1, nowMs: harness.nowMs, cut: '1-0', willInMs: 0, none: false }, records: [...records] };
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: handoverBucket, key: handoverKey('mover', 1), value: encodeHandoverState(state), revision: 1 });
    harness.collect();
    // The fresh session stays the client's: the state is late (its will fires), not adopted over it.
    expect(harness.broker.state.cluster!.appliedSequence).toBe(1);
    expect(harness.broker.state.sessions.get('mover')?.subscriptions.size).toBe(0);
    expect(harness.logs.some((log) => log.event === 'handover-late')).toBe(true);
    expect(harness.logs.some((log) => log.event === 'session-adopted')).toBe(false);
  });

  it('writes a hand-over it gave up into the key: a claim of this node that asks no one, whose line is the given-up claim; its state still comes late after a restart', () => {
    const harness = node();
    const { marker } = giveUpHandover(harness);
    // The fresh session was made under claim 8; the key says so, over claim 8 and no other.
    const [givenUp] = claims(harness);
    expect(givenUp).toMatchObject({ key: sessionKey('mover'), expectedRevision: 8 });
    const owner = decodeOwner(givenUp!.value!);
    expect(owner).toMatchObject({ node: 'a', lineageRevision: 8 });
    expect(owner).not.toHaveProperty('handoverFrom');
    answer(harness, givenUp!, 9);
    // After a crash the watch shows that claim (9), not the given-up one: b's state at marker 8 is still late.
    restartSeeing(harness, givenUp!.value, 9);
    deliverMarker(harness, marker.headers, 1);
    const state = {
      header: { client: 'mover', from: 'b', to: 'a', sequence: 1, nowMs: harness.nowMs, cut: '1-0', willInMs: null, none: false },
      records: [{ kind: 'session-created', clientId: 'mover', protocolVersion: 5, expiryIntervalSeconds: 3600 }] as const,
    };
    harness.broker.clusterKeyChanged(harness.nowMs, {
      bucket: handoverBucket,
      key: handoverKey('mover', 1),
      value: encodeHandoverState({ header: state.header, records: [...state.records] }),
      revision: 1,
    });
    harness.collect();
    expect(harness.logs.some((log) => log.event === 'handover-late')).toBe(true);
    expect(harness.logs.some((log) => log.event === 'session-adopted')).toBe(false);
    expect(harness.broker.state.sessions.get('mover')?.claimRevision).toBe(8);
  });

  it("writes no give-up claim for a CONNECT whose own claim asked no one and waited for an earlier claim's hand-over: that claim started a line", () => {
    const harness = node();
    const { second } = adoptAtOlderMarker(harness);
    second.drop();
    harness.collect();
    // The client back here: claim 9 takes the session adopted for claim 8 and asks no one, but
    // waits for claim 8's hand-over still on its way; that gives up at its deadline.
    const third = harness.open(5);
    sendConnect(third, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim9] = claims(harness);
    expect(decodeOwner(claim9!.value!)).not.toHaveProperty('handoverFrom');
    answer(harness, claim9!, 9);
    harness.advance(handoverWaitMs);
    expect(third.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0 }]);
    expect(claims(harness)).toEqual([]);
  });

  it('writes a hand-over it gave up while cut from NATS once its watch has replayed the key, still at the given-up claim', () => {
    const harness = node();
    ownedBy(harness, 'mover', 'b', 5);
    const client = harness.open(5);
    sendConnect(client, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim] = claims(harness);
    answer(harness, claim!, 8);
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    harness.advance(handoverWaitMs);
    expect(client.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0, sessionPresent: false }]);
    expect(claims(harness)).toEqual([]);
    harness.clusterConnected(false);
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: claim!.value, revision: 8 });
    harness.collect();
    expect(claims(harness)).toEqual([]);
    harness.broker.clusterWatchCurrent(harness.nowMs, sessionsBucket, harness.sessionsWatchId);
    harness.collect();
    const [givenUp] = claims(harness);
    expect(givenUp).toMatchObject({ expectedRevision: 8 });
    expect(decodeOwner(givenUp!.value!)).toMatchObject({ node: 'a', lineageRevision: 8 });
  });

  it('does not write a hand-over it gave up over a newer claim: the key moved on (logged)', () => {
    const harness = node();
    giveUpHandover(harness);
    const [givenUp] = claims(harness);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: givenUp!.requestId, ok: false, code: 'wrong-revision', message: 'at 10' });
    harness.collect();
    expect(harness.logs.find((log) => log.event === 'handover-give-up-unclaimed')?.fields).toMatchObject({ clientId: 'mover', claimRevision: 8, code: 'wrong-revision' });
    expect(claims(harness)).toEqual([]);
  });

  it("carries the line of a give-up's claim (the given-up claim's revision, not its own) into a claim that asks for the session, naming no prior", () => {
    const harness = node();
    const value = encodeOwner({ node: 'b', generation: '1.2', lineageRevision: 8 });
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value, revision: 9 });
    harness.collect();
    const client = harness.open(5);
    sendConnect(client, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim] = claims(harness);
    const owner = decodeOwner(claim!.value!);
    expect(owner).toMatchObject({ node: 'a', handoverFrom: 'b', lineageRevision: 8 });
    expect(owner).not.toHaveProperty('priors');
  });

  it('does not resume, after a restart, a copy older than its own claim that asked another node: it waits for that hand-over, whose marker is in its outbox (restart variant of seed 6600379)', () => {
    const harness = node();
    // The session is made here under claim 5; b's claim 6 asks this node for it (marker not read).
    const first = connectClaimed(harness, 'mover', 5, { cleanStart: false, expiry: 3600 });
    first.subscribe(['x/#']);
    harness.broker.clusterKeyChanged(harness.nowMs, {
      bucket: sessionsBucket,
      key: sessionKey('mover'),
      value: encodeOwner({ node: 'b', generation: '1.1', handoverFrom: 'a', lineageRevision: 5 }),
      revision: 6,
    });
    harness.collect();
    expect(harness.broker.state.sessions.has('mover')).toBe(true);
    // The client comes back here: this node's claim 7 asks b; it restarts before its marker.
    const second = harness.open(5);
    sendConnect(second, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim] = claims(harness);
    expect(decodeOwner(claim!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b' });
    answer(harness, claim!, 7);
    restartSeeing(harness, claim!.value, 7);
    // The client connects here again. The copy (claim 5) is not what claim 7 asked b for: the new
    // claim waits for that hand-over, whose marker is in the outbox (recovery publishes it again),
    // without a marker of its own; it does not resume the copy.
    const markers = () => [...harness.broker.state.cluster!.outbox.values()].filter((entry) => entry.subject === handoverMarkerSubject);
    expect(markers().map((entry) => entry.headers['Keel-Handover-Revision'])).toEqual(['7']);
    const third = harness.open(5);
    sendConnect(third, 'mover', { cleanStart: false, expiry: 3600 });
    const [again] = claims(harness);
    expect(decodeOwner(again!.value!)).toMatchObject({ node: 'a', handoverFrom: 'b', markerRevision: 7 });
    answer(harness, again!, 9);
    expect(markers()).toHaveLength(1);
    expect(third.take()).toEqual([]);
    expect(third.readingPaused).toBe(true);
  });

  it("resumes after a restart a session adopted at an older marker of its own while its newer claim waited: it is that claim's session", () => {
    const harness = node();
    const { claim8 } = adoptAtOlderMarker(harness);
    // A crash before marker 8; the client connects here again and resumes the adopted session.
    restartSeeing(harness, claim8.value, 8);
    const third = harness.open(5);
    sendConnect(third, 'mover', { cleanStart: false, expiry: 3600 });
    const [again] = claims(harness);
    expect(decodeOwner(again!.value!)).toEqual({ node: 'a', generation: expect.any(String) });
    answer(harness, again!, 9);
    expect(third.take()).toMatchObject([{ type: PacketType.Connack, reasonCode: 0, sessionPresent: true }]);
  });
  it("keeps at an older claim's marker the session its newest claim holds, asking no one, though an earlier claim's hand-over is still open (seed 10100156)", () => {
    const harness = node();
    const { second } = adoptAtOlderMarker(harness);
    // The client leaves and comes back here before marker 8: claim 9 asks no one, the session is claim 8's.
    second.drop();
    harness.collect();
    const third = harness.open(5);
    sendConnect(third, 'mover', { cleanStart: false, expiry: 3600 });
    const [claim9] = claims(harness);
    expect(decodeOwner(claim9!.value!)).toEqual({ node: 'a', generation: expect.any(String) });
    answer(harness, claim9!, 9);
    // Its CONNECT waits, as the earlier one did, for claim 8's hand-over still under way.
    expect(third.take()).toEqual([]);
    // Then the marker of b's claim 7 (older than claim 9, asking this node) reaches the stream: the
    // session stays here for claim 9 and b is answered none. Handed over, it would be on its way to
    // a claim the client left, and no claim would ask for it back (claim 9 asks no one).
    deliverMarker(harness, { 'Keel-Origin': 'b', 'Keel-Handover-Client': sessionKey('mover'), 'Keel-Handover-From': 'a', 'Keel-Handover-Revision': '7', 'Keel-Seq': '1-3' }, 2);
    const puts = handoverPuts(harness);
    expect(puts).toHaveLength(1);
    expect(decodeHandoverState(puts[0]!.value!)?.header).toMatchObject({ client: 'mover', to: 'b', none: true });
    expect(harness.broker.state.sessions.has('mover')).toBe(true);
    expect(third.closed).toBe(false);
  });
  it("keeps its copy at an older claim's marker that does not name it, while the newest claim names it as a prior (seed 10200144)", () => {
    const harness = node();
    connectClaimed(harness, 'mover', 2, { cleanStart: true, expiry: 3600 }).subscribe(['x/#']);
    // c's claim 9 asks b, and names this node as a prior: b's move of the session from here has not
    // reached the stream, so the session may still be here, and it is (made under claim 2, the line).
    const newest = encodeOwner({ node: 'c', generation: '1.5', handoverFrom: 'b', lineageRevision: 2, priors: ['a'] });
    harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: newest, revision: 9 });
    harness.collect();
    // The marker of b's older claim 5 (asking c) names neither this node nor a prior: the copy here
    // waits for claim 9's marker, where this node answers as its prior.
    deliverMarker(harness, { 'Keel-Origin': 'b', 'Keel-Handover-Client': sessionKey('mover'), 'Keel-Handover-From': 'c', 'Keel-Handover-Revision': '5', 'Keel-Seq': '1-1' }, 1);
    expect(harness.logs.some((log) => log.event === 'handover-copy-ended')).toBe(false);
    expect(harness.broker.state.sessions.has('mover')).toBe(true);
    expect(harness.broker.state.cluster!.appliedSequence).toBe(1);
  });
});
