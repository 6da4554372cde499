/**
 * Proves the rule for which write of a topic's retained value wins across a cut
 * (src/cluster/retained-sync.ts), with a test playing NATS by hand against one cluster node: a put
 * is a compare-and-set at the revision the node knew when the message arrived (what its watch
 * showed, or where its own last put landed; 0 for a key it never saw); the base is kept when the put goes again after a link loss and after a crash
 * (a QoS 2 put's outbox entry holds it); on `wrong-revision` the node waits for its watch to show
 * the key past the base, then takes its own value there as done, goes again at the new revision
 * while its publisher still waits (or the put is logged), and drops the put when its publisher has
 * left (the case of seed 986157), its table then following the bucket.
 */
import { describe, expect, it } from 'vitest';
import { decodeRetainedValue, encodeRetainedValue, retainedBucket, retainedKey } from '../../src/cluster/retained-entries.js';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import type { ClusterRequest } from '../../src/contract.js';
import { decodeText, Harness, text } from '../broker/harness.js';

type KvSet = Extract<ClusterRequest, { op: 'kv-set' }>;

const topic = 't/b';

/** The retained puts the node issued since the last call; its hand-offs are answered as stored. */
function retainedSets(harness: Harness): KvSet[] {
  const requests = harness.takeClusterRequests();
  for (const request of requests) if (request.op === 'publish-durable') harness.broker.clusterCompleted(harness.nowMs, { requestId: request.requestId, ok: true, sequence: 1 });
  harness.collect();
  return requests.filter((request): request is KvSet => request.op === 'kv-set' && request.bucket === retainedBucket);
}

/** The watch shows `topic` at `revision` holding `payload` put by node `origin`. */
function watchShows(harness: Harness, revision: number, payload: string, origin = 'b', value = encodeRetainedValue(origin, 1, text(payload), undefined, null, `1-r${revision}`)): void {
  harness.broker.clusterKeyChanged(harness.nowMs, { bucket: retainedBucket, key: retainedKey(topic), value, revision });
  harness.collect();
}

function answer(harness: Harness, set: KvSet, result: { ok: true; sequence: number } | { ok: false; code: 'wrong-revision' | 'unavailable' }): void {
  const full = result.ok ? { requestId: set.requestId, ok: true as const, sequence: result.sequence } : { requestId: set.requestId, ok: false as const, code: result.code, message: 'test' };
  harness.broker.clusterCompleted(harness.nowMs, full);
  harness.collect();
}

function linkDrops(harness: Harness): void {
  harness.broker.clusterStatus(harness.nowMs, 'disconnected');
  harness.collect();
}

function linkReturns(harness: Harness): void {
  harness.broker.clusterStatus(harness.nowMs, 'connected');
  harness.collect();
}

/** A publisher connected while the link is up (its client id is claimed in keel-sessions). */
function publisherOn(harness: Harness, clientId = 'p') {
  const publisher = harness.connect(clientId, 5);
  harness.takeClusterRequests();
  return publisher;
}

/** Sends a retained QoS 1 PUBLISH (packet id 1) without waiting for its PUBACK. */
function publishRetained(publisher: ReturnType<typeof publisherOn>, payload: string): void {
  publisher.send({ type: PacketType.Publish, dup: false, qos: 1, retain: true, topic, packetId: 1, payload: text(payload) });
}

/** The payload a retained put carries. */
function payloadOf(set: KvSet): string {
  return decodeText(decodeRetainedValue(set.value!)!.payload);
}

/** What a fresh subscriber on the node gets as the retained message of `topic`. */
function retainedHere(harness: Harness): string[] {
  const reader = harness.connect(`r${harness.nowMs}`, 5);
  reader.subscribe([{ topicFilter: topic, qos: 1 }]);
  const got = (reader.take() as PublishPacket[]).filter((packet) => packet.type === PacketType.Publish && packet.retain).map((packet) => decodeText(packet.payload));
  reader.disconnect();
  return got;
}

describe('retained messages across a cut (retained-sync.ts)', () => {
  it('puts at the revision the watch showed when the message arrived, 0 for a key never seen, and acknowledges once it is in', () => {
    const harness = Harness.clusterNode();
    harness.clusterConnected();
    publishRetained(publisherOn(harness), 'first');
    const [first] = retainedSets(harness);
    expect(first).toMatchObject({ key: retainedKey(topic), expectedRevision: 0 });
    watchShows(harness, 4, 'foreign');
    const publisher = publisherOn(harness, 'q');
    publishRetained(publisher, 'second');
    // The second waits behind the first (one put of a topic out at a time).
    expect(retainedSets(harness)).toEqual([]);
    answer(harness, first!, { ok: true, sequence: 3 });
    const [second] = retainedSets(harness);
    // It knew revision 4 when it arrived; the first landing at 3 does not change that.
    expect(second).toMatchObject({ expectedRevision: 4 });
    expect(decodeRetainedValue(second!.value!)).toMatchObject({ origin: 'a', payload: text('second') });
    expect(publisher.take()).toEqual([]);
    answer(harness, second!, { ok: true, sequence: 5 });
    expect(publisher.take()).toMatchObject([{ type: PacketType.Puback, packetId: 1, reasonCode: 0 }]);
  });

  it('takes the landing of its own last put as the base before the watch shows it', () => {
    const harness = Harness.clusterNode();
    harness.clusterConnected();
    const publisher = publisherOn(harness);
    publishRetained(publisher, 'first');
    const [first] = retainedSets(harness);
    answer(harness, first!, { ok: true, sequence: 5 });
    expect(publisher.take()).toMatchObject([{ type: PacketType.Puback, packetId: 1 }]);
    publisher.send({ type: PacketType.Publish, dup: false, qos: 1, retain: true, topic, packetId: 2, payload: text('second') });
    expect(retainedSets(harness)).toMatchObject([{ expectedRevision: 5 }]);
  });

  it('keeps the base across a link loss, and drops a conflicting put whose publisher left (seed 986157)', () => {
    const harness = Harness.clusterNode();
    harness.clusterConnected();
    watchShows(harness, 1, 'old');
    const publisher = publisherOn(harness);
    linkDrops(harness);
    publishRetained(publisher, 'cut-off');
    expect(retainedSets(harness)).toEqual([]);
    // The publisher gives up on this node (it resends elsewhere, where a newer message follows).
    publisher.drop();
    linkReturns(harness);
    const [put] = retainedSets(harness);
    expect(put).toMatchObject({ expectedRevision: 1 });
    answer(harness, put!, { ok: false, code: 'wrong-revision' });
    // Nothing is decided before the watch shows the key past the base.
    expect(harness.logEvents()).not.toContain('cluster-retained-superseded');
    watchShows(harness, 7, 'newer');
    expect(retainedSets(harness)).toEqual([]);
    expect(harness.logEvents()).toContain('cluster-retained-superseded');
    expect(retainedHere(harness)).toEqual(['newer']);
  });

  it('goes again at the new revision while the publisher still waits, and acknowledges once it lands', () => {
    const harness = Harness.clusterNode();
    harness.clusterConnected();
    watchShows(harness, 1, 'old');
    const publisher = publisherOn(harness);
    linkDrops(harness);
    publishRetained(publisher, 'cut-off');
    linkReturns(harness);
    const [put] = retainedSets(harness);
    answer(harness, put!, { ok: false, code: 'wrong-revision' });
    expect(retainedSets(harness)).toEqual([]);
    // What got there may have been acknowledged before this message was sent: this one comes last.
    watchShows(harness, 6, 'acknowledged-meanwhile');
    const [again] = retainedSets(harness);
    expect(again).toMatchObject({ expectedRevision: 6, value: put!.value });
    expect(publisher.take()).toEqual([]);
    answer(harness, again!, { ok: true, sequence: 8 });
    expect(publisher.take()).toMatchObject([{ type: PacketType.Puback, packetId: 1, reasonCode: 0 }]);
  });

  it('goes again with the newest message still waited for, not the newest merged one, when its publisher left (seed 7401535)', () => {
    const harness = Harness.clusterNode();
    harness.clusterConnected();
    watchShows(harness, 1, 'old');
    const waiting = publisherOn(harness, 'p');
    const leaving = publisherOn(harness, 'q');
    linkDrops(harness);
    publishRetained(waiting, 'from-p');
    publishRetained(leaving, 'from-q');
    // One put stands for both (rule 4): the newer message goes out.
    leaving.drop();
    linkReturns(harness);
    const [put] = retainedSets(harness);
    expect(payloadOf(put!)).toBe('from-q');
    answer(harness, put!, { ok: false, code: 'wrong-revision' });
    // q resent its message through another node, was answered there and sent a newer one: q's
    // older message must not land over it, while p, still waiting, must still land its own.
    watchShows(harness, 5, 'newer-from-q');
    const [again] = retainedSets(harness);
    expect(again).toMatchObject({ expectedRevision: 5 });
    expect(payloadOf(again!)).toBe('from-p');
    expect(waiting.take()).toEqual([]);
    answer(harness, again!, { ok: true, sequence: 6 });
    expect(waiting.take()).toMatchObject([{ type: PacketType.Puback, packetId: 1, reasonCode: 0 }]);
    expect(retainedSets(harness)).toEqual([]);
  });

  it('does not keep a QoS 0 message behind a newer one for a conflict to choose', () => {
    const harness = Harness.clusterNode();
    harness.clusterConnected();
    watchShows(harness, 1, 'old');
    const waiting = publisherOn(harness, 'p');
    const other = publisherOn(harness, 'q');
    linkDrops(harness);
    publishRetained(waiting, 'from-p');
    other.send({ type: PacketType.Publish, dup: false, qos: 0, retain: true, topic, payload: text('zero') });
    linkReturns(harness);
    const [put] = retainedSets(harness);
    expect(payloadOf(put!)).toBe('zero');
    answer(harness, put!, { ok: false, code: 'wrong-revision' });
    watchShows(harness, 3, 'foreign');
    // Nobody waits for a QoS 0 message: p's, which p waits for, goes again.
    const [again] = retainedSets(harness);
    expect(payloadOf(again!)).toBe('from-p');
  });

  it('takes its own value in the bucket as done when the answer of an earlier attempt was lost', () => {
    const harness = Harness.clusterNode();
    harness.clusterConnected();
    const publisher = publisherOn(harness);
    publishRetained(publisher, 'mine');
    const [first] = retainedSets(harness);
    linkDrops(harness);
    linkReturns(harness);
    const [retry] = retainedSets(harness);
    expect(retry).toMatchObject({ expectedRevision: 0, value: first!.value });
    answer(harness, retry!, { ok: false, code: 'wrong-revision' });
    watchShows(harness, 2, 'mine', 'a', first!.value!);
    expect(retainedSets(harness)).toEqual([]);
    expect(publisher.take()).toMatchObject([{ type: PacketType.Puback, packetId: 1, reasonCode: 0 }]);
  });

  it("acknowledges a resent QoS 2 retained PUBLISH only once the first one's put is in, when its publisher came back to the same node (seed 18301230)", () => {
    const harness = Harness.clusterNode();
    harness.clusterConnected();
    watchShows(harness, 3, 'old');
    const session = { cleanStart: false, properties: { sessionExpiryInterval: 600 } };
    const publisher = harness.connect('p', 5, session);
    harness.takeClusterRequests();
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: true, topic, packetId: 1, payload: text('newer') });
    const [put] = retainedSets(harness);
    answer(harness, put!, { ok: false, code: 'wrong-revision' });
    expect(publisher.take()).toEqual([]);
    // The publisher drops before its PUBREC and comes back here: its session still holds packet id 1.
    publisher.drop();
    const back = harness.connect('p', 5, session);
    harness.takeClusterRequests();
    back.send({ type: PacketType.Publish, dup: true, qos: 2, retain: true, topic, packetId: 1, payload: text('newer') });
    // Before the fix the resend was answered at once, its put still waiting on the conflict.
    expect(back.take()).toEqual([]);
    watchShows(harness, 4, 'foreign');
    const [again] = retainedSets(harness);
    expect(again).toMatchObject({ expectedRevision: 4, value: put!.value });
    expect(back.take()).toEqual([]);
    answer(harness, again!, { ok: true, sequence: 5 });
    expect(back.take()).toMatchObject([{ type: PacketType.Pubrec, packetId: 1, reasonCode: 0 }]);
  });

  it('keeps the base of a QoS 2 put in the outbox across a crash, and goes again on a conflict (it is logged)', () => {
    const harness = Harness.clusterNode();
    harness.clusterConnected();
    watchShows(harness, 3, 'old');
    const publisher = harness.connect('p', 5);
    harness.takeClusterRequests();
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: true, topic, packetId: 1, payload: text('exactly-once') });
    const [put] = retainedSets(harness);
    expect(put).toMatchObject({ expectedRevision: 3 });
    expect(publisher.take()).toEqual([]);
    harness.restart();
    linkReturns(harness);
    const [recovered] = retainedSets(harness);
    expect(recovered).toMatchObject({ expectedRevision: 3, value: put!.value });
    answer(harness, recovered!, { ok: false, code: 'wrong-revision' });
    watchShows(harness, 9, 'foreign');
    const [again] = retainedSets(harness);
    expect(again).toMatchObject({ expectedRevision: 9, value: put!.value });
    answer(harness, again!, { ok: true, sequence: 10 });
    expect(retainedSets(harness)).toEqual([]);
  });
});
