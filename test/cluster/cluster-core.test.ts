/**
 * Proves the clustered core's side of the cluster link (src/cluster/cluster-node.ts) with a test
 * playing NATS by hand: a node subscribes to the mapped subjects of its filters (two for `a/#`)
 * and drops them with the last filter; QoS 0 goes out as a core publish; a QoS 1 PUBACK waits for
 * the hand-off to be stored, also across a NATS outage; a hand-off from another node reaches the
 * local subscriber once and is acknowledged, a redelivery is acknowledged again and not routed
 * again, and a delivery past a missing sequence is neither routed nor acknowledged, unless every
 * missing one is at or below the ack floor that answered this link's consume (then at once, and
 * logged as applied); an earlier link's answer, a failed one or a floor of 0 takes nothing early. Messages fed
 * as one `clusterMessages` input (how the Node host feeds a burst) are handled exactly as the same
 * messages fed one input each: same deliveries in the same order, same acknowledgements. QoS 1
 * hand-offs queued while one waits for JetStream go as one batch (handoff-batch.ts), each PUBACK
 * once the batch is stored, a failed batch again byte for byte under its dedupe id, a QoS 2
 * hand-off alone. QoS 2 hand-offs queued so go as a batch of their own, named in the log first (a
 * membership record whose outbox id is the batch's dedupe id); each PUBREC waits for the batch,
 * and after a crash before its acknowledgement the same batch goes again byte for byte under the
 * same id; a record that outlived a member (the batch was stored) is dropped with what is left of
 * it, and hand-offs recovered that no record names go alone (one may be in the stream alone). A batch from another node is routed in order
 * and acknowledged as one sequence, its QoS 2 members once across a redelivery and a crash.
 * A stream message written by a newer Keel (an unknown `$` kind, a newer batch version, a
 * `Keel-Needs` it lacks: stream-format.ts) stops the reader there for good: nothing from it on is
 * routed or acknowledged, not even after the gap wait or a reconnection, the consumer is paused
 * and stays paused, the view reports where, and a restart of the same version stops there again.
 * A PUBLISH or a will whose hand-off NATS would not carry (`cluster.messageBytesMax`,
 * message-size.ts) is refused as too large (0x95) before anything of it is routed or handed off,
 * whether its size is in its payload or in properties that grow in headers; what fits goes.
 */
import { assert, describe, expect, it } from 'vitest';
import { type BatchEntry, batchEntryBytes, decodeBatch, encodeBatch, handoffBatchSubject, unitHeaders, unitMembersOfHeaders, unitOutboxSubject } from '../../src/cluster/handoff-batch.js';
import { encodeHeaders } from '../../src/cluster/headers.js';
import { natsBytes } from '../../src/cluster/message-size.js';
import { newerFormat } from '../../src/cluster/stream-format.js';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import type { ClusterMessage, ClusterRequest } from '../../src/contract.js';
import { decodeText, Harness, type TestClient, text } from '../broker/harness.js';

const node = (): Harness => Harness.clusterNode();
const take = (harness: Harness): ClusterRequest[] => harness.takeClusterRequests();
const connected = (harness: Harness): void => harness.clusterConnected();

/** A connected node with a client subscribed to `a/b` at QoS 1; the requests that made it taken. */
function subscribedNode(): { harness: Harness; subscriber: TestClient } {
  const harness = node();
  connected(harness);
  const subscriber = harness.connect('s', 5);
  subscriber.subscribe([{ topicFilter: 'a/b', qos: 1 }]);
  take(harness);
  return { harness, subscriber };
}

/**
 * A node whose log is behind its consumer's ack floor: a fresh log (its disk lost) whose first life
 * crashed before its first delivery, so that this life's log is not fresh and has applied nothing.
 * Its link is up (`consume`: the request id of its consume, not answered yet) and a client is
 * subscribed to `a/b` at QoS 1 (its session kept for 600 s).
 */
function nodeBehindItsConsumer(): { harness: Harness; subscriber: TestClient; consume: number } {
  const harness = node();
  harness.restart();
  const consume = linkUp(harness);
  const subscriber = harness.connect('s', 5, { properties: { sessionExpiryInterval: 600 } });
  subscriber.subscribe([{ topicFilter: 'a/b', qos: 1 }]);
  take(harness);
  return { harness, subscriber, consume };
}

/** The link comes up (its sessions watch current at once); returns the request id of its `consume`, the requests taken. */
function linkUp(harness: Harness): number {
  harness.broker.clusterStatus(harness.nowMs, 'connected');
  harness.collect();
  const consume = take(harness).find((request) => request.op === 'consume');
  assert(consume !== undefined && consume.op === 'consume', 'every link issues a consume');
  harness.broker.clusterWatchCurrent(harness.nowMs, 'keel-sessions', harness.sessionsWatchId);
  harness.collect();
  take(harness);
  return consume.requestId;
}

/** The link drops and comes back reading the hand-off stream `stream`; the requests it made are taken. */
function relinkTo(harness: Harness, stream: string): void {
  harness.broker.clusterStatus(harness.nowMs, 'disconnected');
  harness.collect();
  harness.broker.clusterStatus(harness.nowMs, 'connected', stream);
  harness.collect();
  take(harness);
}

/** The host answers the consume `requestId` with the consumer's ack floor. */
function answerFloor(harness: Harness, requestId: number, floor: number): void {
  harness.broker.clusterCompleted(harness.nowMs, { requestId, ok: true, sequence: floor });
  harness.collect();
}

/** The payloads of what `client` was sent since the last take. */
function received(client: TestClient): string[] {
  return (client.take() as PublishPacket[]).map((packet) => decodeText(packet.payload));
}

function handoffMessage(sequence: number, payload: string, origin = 'b'): ClusterMessage {
  return {
    subject: '$KEEL.handoff.a.b',
    headers: encodeHeaders(origin, 1, false, null, undefined, null),
    payload: text(payload),
    subscriptionId: null,
    consumerId: 1,
    streamSequence: sequence,
    redelivered: false,
  };
}

/** A batch from node b on the hand-off stream (stream sequence 1): one QoS `qos` hand-off per payload, tickets from 1. */
function batchFromB(qos: 1 | 2, payloads: readonly string[]): ClusterMessage {
  const entries: BatchEntry[] = payloads.map((payload, index) => ({
    subject: '$KEEL.handoff.a.b',
    headers: encodeHeaders('b', qos, false, `1-${index + 1}`, undefined, null),
    payload: text(payload),
  }));
  return {
    subject: handoffBatchSubject,
    headers: { 'Keel-Origin': 'b', 'Keel-Batch': String(entries.length) },
    payload: encodeBatch(
      entries,
      entries.reduce((sum, item) => sum + batchEntryBytes(item), 0),
    ),
    subscriptionId: null,
    consumerId: 1,
    streamSequence: 1,
    redelivered: false,
  };
}

function handoff(harness: Harness, sequence: number, payload: string, origin = 'b'): void {
  harness.broker.clusterMessage(harness.nowMs, handoffMessage(sequence, payload, origin));
  harness.collect();
}

/** A QoS 0 message from node b on core NATS, `Keel-Seq` `sequence`. */
function coreMessage(sequence: number, payload: string): ClusterMessage {
  return {
    subject: 'a.b',
    headers: encodeHeaders('b', 0, false, `1-${sequence}`, undefined, null),
    payload: text(payload),
    subscriptionId: 2,
    consumerId: null,
    streamSequence: null,
    redelivered: false,
  };
}

/** Feeds `messages` to a fresh node with one subscriber, one input each or all as one; returns what it did. */
function outcome(messages: ClusterMessage[], batched: boolean): { delivered: string[]; requests: ClusterRequest[] } {
  const harness = node();
  connected(harness);
  const subscriber = harness.connect('s', 5);
  subscriber.subscribe([{ topicFilter: 'a/b', qos: 1 }]);
  take(harness);
  if (batched) {
    harness.broker.clusterMessages(harness.nowMs, messages);
    harness.collect();
  } else {
    for (const message of messages) {
      harness.broker.clusterMessage(harness.nowMs, message);
      harness.collect();
    }
  }
  const delivered = received(subscriber);
  return { delivered, requests: take(harness) };
}

describe('cluster node', () => {
  it('subscribes to the subjects of its filters and drops them with the last filter', () => {
    const harness = node();
    connected(harness);
    const client = harness.connect('s', 5);
    client.subscribe(['a/#']);
    // Subscription 1 is the heartbeats' (`$KEEL.alive.*`), taken at the connection.
    expect(take(harness)).toEqual([
      { op: 'subscribe', subscriptionId: 2, subject: 'a', queueGroup: null },
      { op: 'subscribe', subscriptionId: 3, subject: 'a.>', queueGroup: null },
    ]);
    client.subscribe(['a/#', 'a/+']);
    expect(take(harness)).toEqual([{ op: 'subscribe', subscriptionId: 4, subject: 'a.*', queueGroup: null }]);
    client.send({ type: PacketType.Unsubscribe, packetId: 9, topicFilters: ['a/#'] });
    client.take();
    expect(take(harness)).toEqual([
      { op: 'unsubscribe', subscriptionId: 2 },
      { op: 'unsubscribe', subscriptionId: 3 },
    ]);
  });

  it('publishes QoS 0 on core NATS under the mapped subject', () => {
    const harness = node();
    connected(harness);
    harness.connect('p', 5).publish('a/b.c', 'hello', 0);
    const [request] = take(harness);
    expect(request).toMatchObject({ op: 'publish', subject: 'a.b//c', headers: { 'Keel-Origin': 'a', 'Keel-Qos': '0' } });
  });

  it('holds a QoS 1 PUBACK until the hand-off is stored, across an outage', () => {
    const harness = node();
    connected(harness);
    const publisher = harness.connect('p', 5);
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    publisher.send({ type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 'a/b', packetId: 1, payload: text('one') });
    expect(publisher.take()).toEqual([]);
    expect(take(harness)).toEqual([]);
    harness.broker.clusterStatus(harness.nowMs, 'connected');
    harness.collect();
    const durable = take(harness).find((request) => request.op === 'publish-durable');
    expect(durable).toMatchObject({ op: 'publish-durable', subject: '$KEEL.handoff.a.b', headers: { 'Keel-Origin': 'a', 'Keel-Qos': '1' } });
    expect(publisher.take()).toEqual([]);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: (durable as { requestId: number }).requestId, ok: true, sequence: 7 });
    harness.collect();
    expect(publisher.take()).toMatchObject([{ type: PacketType.Puback, packetId: 1, reasonCode: 0 }]);
  });

  it('routes a hand-off once, acknowledges it, and waits at a gap', () => {
    const { harness, subscriber } = subscribedNode();
    handoff(harness, 1, 'first');
    const first = subscriber.take() as PublishPacket[];
    expect(first.map((packet) => decodeText(packet.payload))).toEqual(['first']);
    expect(take(harness)).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 1 }]);
    handoff(harness, 1, 'first');
    expect(subscriber.take()).toEqual([]);
    expect(take(harness)).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 1 }]);
    handoff(harness, 3, 'third');
    expect(subscriber.take()).toEqual([]);
    expect(take(harness)).toEqual([]);
    handoff(harness, 2, 'second', 'a');
    expect(subscriber.take()).toEqual([]);
    expect(take(harness)).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 2 }]);
    handoff(harness, 3, 'third');
    expect(received(subscriber)).toEqual(['third']);
  });

  it('takes no fresh start past a hand-off that a dropped link delivered earlier in its life (seed 7403090)', () => {
    const { harness, subscriber } = subscribedNode();
    // Hand-off 1 went out to this node on a link that dropped before it arrived; on the next link
    // the consumer delivers 2 first and 1 again only after its ack wait.
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    connected(harness);
    take(harness);
    handoff(harness, 2, 'second');
    expect(subscriber.take()).toEqual([]);
    expect(take(harness)).toEqual([]);
    harness.broker.clusterMessage(harness.nowMs, { ...handoffMessage(1, 'first'), redelivered: true });
    harness.collect();
    expect(received(subscriber)).toEqual(['first']);
    handoff(harness, 2, 'second');
    expect(received(subscriber)).toEqual(['second']);
  });

  it('starts its count again on a hand-off stream made anew (a NATS that lost its store), and its log keeps the stream it counts in', () => {
    const { harness, subscriber } = subscribedNode();
    relinkTo(harness, 'stream-a');
    handoff(harness, 1, 'first');
    handoff(harness, 2, 'second');
    expect(received(subscriber)).toEqual(['first', 'second']);
    take(harness);
    expect(harness.broker.state.cluster).toMatchObject({ appliedSequence: 2, appliedStream: 'stream-a' });
    // The same stream on the next link: sequence 2 is a redelivery, acknowledged, not routed.
    relinkTo(harness, 'stream-a');
    expect(harness.broker.state.cluster).toMatchObject({ appliedSequence: 2, appliedStream: 'stream-a' });
    handoff(harness, 2, 'second');
    expect(subscriber.take()).toEqual([]);
    expect(take(harness)).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 2 }]);
    expect(harness.logEvents()).not.toContain('cluster-stream-replaced');
    // NATS lost its store: the stream is made anew and numbers from 1, which is no redelivery.
    relinkTo(harness, 'stream-b');
    expect(harness.logEvents()).toContain('cluster-stream-replaced');
    handoff(harness, 1, 'new first');
    expect(received(subscriber)).toEqual(['new first']);
    expect(take(harness)).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 1 }]);
    expect(harness.broker.state.cluster).toMatchObject({ appliedSequence: 1, appliedStream: 'stream-b' });
    // The log keeps which stream it counts in.
    harness.restart();
    expect(harness.broker.state.cluster).toMatchObject({ appliedSequence: 1, appliedStream: 'stream-b' });
  });

  it('gives a gap up at once when every missing sequence is at or below the ack floor, not after the gap wait (seed 19010026)', () => {
    const { harness, subscriber, consume } = nodeBehindItsConsumer();
    answerFloor(harness, consume, 5);
    handoff(harness, 6, 'sixth');
    expect(received(subscriber)).toEqual(['sixth']);
    expect(take(harness)).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 6 }]);
    expect(harness.logs.find((log) => log.event === 'cluster-handoff-gap-skipped')?.fields).toMatchObject({ expected: 1, taken: 6, why: 'ack-floor', waitedMs: 0, ackFloor: 5 });
    expect(harness.broker.cluster!.counters.handoffGapsBelowFloor).toBe(1);
    handoff(harness, 7, 'seventh');
    expect(received(subscriber)).toEqual(['seventh']);
  });

  it('waits at a gap with a missing sequence above the ack floor (seed 7403090: delivered on a dropped link, never acknowledged)', () => {
    const { harness, subscriber, consume } = nodeBehindItsConsumer();
    answerFloor(harness, consume, 5);
    handoff(harness, 7, 'seventh');
    expect(subscriber.take()).toEqual([]);
    expect(take(harness)).toEqual([]);
    expect(harness.logEvents()).not.toContain('cluster-handoff-gap-skipped');
    // 6 is at the floor's edge: nothing missing below it is above the floor.
    handoff(harness, 6, 'sixth');
    handoff(harness, 7, 'seventh');
    expect(received(subscriber)).toEqual(['sixth', 'seventh']);
    // Without a floor's answer the gap wait is the only way past a gap, as before.
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    linkUp(harness);
    handoff(harness, 9, 'ninth');
    harness.nowMs += 15_000;
    handoff(harness, 9, 'ninth');
    expect(received(subscriber)).toEqual(['ninth']);
    const skips = harness.logs.filter((log) => log.event === 'cluster-handoff-gap-skipped').map((log) => log.fields);
    expect(skips).toMatchObject([
      { expected: 1, taken: 6, why: 'ack-floor' },
      { expected: 8, taken: 9, why: 'gap-wait', waitedMs: 15_000, ackFloor: 0 },
    ]);
  });

  it("reads no floor from an earlier link's consume, nor one answered after the link dropped", () => {
    const { harness, subscriber, consume: first } = nodeBehindItsConsumer();
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    // The answer to the dropped link's consume comes while cut off, and again after the next link.
    answerFloor(harness, first, 5);
    const second = linkUp(harness);
    expect(second).not.toBe(first);
    answerFloor(harness, first, 5);
    handoff(harness, 6, 'sixth');
    expect(subscriber.take()).toEqual([]);
    expect(take(harness)).toEqual([]);
    // The answer to this link's consume counts, also after deliveries: the redelivery is taken.
    answerFloor(harness, second, 5);
    harness.broker.clusterMessage(harness.nowMs, { ...handoffMessage(6, 'sixth'), redelivered: true });
    harness.collect();
    expect(received(subscriber)).toEqual(['sixth']);
  });

  it("takes nothing early on a floor of 0 (a consumer made again), nor on an earlier link's floor when this link's answer failed", () => {
    const { harness, subscriber, consume: first } = nodeBehindItsConsumer();
    answerFloor(harness, first, 5);
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    const second = linkUp(harness);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: second, ok: false, code: 'unavailable', message: 'no consumer info' });
    harness.collect();
    handoff(harness, 6, 'sixth');
    expect(subscriber.take()).toEqual([]);
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.collect();
    answerFloor(harness, linkUp(harness), 0);
    handoff(harness, 2, 'second');
    expect(subscriber.take()).toEqual([]);
    expect(take(harness)).toEqual([]);
    expect(harness.logEvents()).not.toContain('cluster-handoff-gap-skipped');
  });

  it('logs the sequences a floor gave up as applied, so a crash before the one taken is applied does not wait for them again', () => {
    const { harness, consume } = nodeBehindItsConsumer();
    answerFloor(harness, consume, 5);
    // Taken past the gap, but not applied: it stops the reader (a newer format).
    harness.broker.clusterMessage(harness.nowMs, { ...handoffMessage(6, 'newer'), headers: { ...handoffMessage(6, 'newer').headers, 'Keel-Needs': 'compressed' } });
    harness.collect();
    expect(harness.broker.view.clusterReaderHeldAt()).toBe(6);
    harness.restart();
    linkUp(harness);
    const subscriber = harness.connect('s', 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
    handoff(harness, 6, 'sixth');
    expect(received(subscriber)).toEqual(['sixth']);
  });

  it('takes its first hand-off on its first link as a fresh start (a new node, or one whose disk was lost)', () => {
    const { harness, subscriber } = subscribedNode();
    handoff(harness, 7, 'seventh');
    expect(received(subscriber)).toEqual(['seventh']);
    expect(harness.logEvents()).toContain('cluster-handoff-fresh-start');
  });

  it('handles a burst fed as one input exactly as the same messages fed one by one', () => {
    const messages = [
      handoffMessage(1, 'first'),
      coreMessage(1, 'zero-a'),
      handoffMessage(1, 'first'),
      handoffMessage(3, 'third'),
      handoffMessage(2, 'second'),
      coreMessage(1, 'zero-a'),
      handoffMessage(3, 'third'),
      coreMessage(2, 'zero-b'),
      handoffMessage(4, 'own', 'a'),
      handoffMessage(5, 'fifth'),
    ];
    const oneByOne = outcome(messages, false);
    const batched = outcome(messages, true);
    // The duplicate core copy and the redelivery are not routed again; the early sequence 3 waits.
    expect(oneByOne.delivered).toEqual(['first', 'zero-a', 'second', 'third', 'zero-b', 'fifth']);
    expect(oneByOne.requests.map((request) => (request.op === 'ack' ? request.streamSequence : request.op))).toEqual([1, 1, 2, 3, 4, 5]);
    expect(batched).toEqual(oneByOne);
  });

  it('batches the QoS 1 hand-offs queued behind one awaiting JetStream, and PUBACKs each once its batch is stored', () => {
    const harness = node();
    connected(harness);
    const publisher = harness.connect('p', 5);
    const publish = (packetId: number, qos: 1 | 2, payload: string): void =>
      publisher.send({ type: PacketType.Publish, dup: false, qos, retain: false, topic: 'a/b', packetId, payload: text(payload) });
    publish(1, 1, 'one');
    const [lone] = take(harness) as Extract<ClusterRequest, { op: 'publish-durable' }>[];
    expect(lone).toMatchObject({ op: 'publish-durable', subject: '$KEEL.handoff.a.b' });
    // While the first waits for JetStream, the next ones queue.
    publish(2, 1, 'two');
    publish(3, 1, 'three');
    publish(4, 2, 'four');
    publish(5, 1, 'five');
    expect(take(harness)).toEqual([]);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: lone!.requestId, ok: true, sequence: 1 });
    harness.collect();
    expect((publisher.take() as PublishPacket[]).map((packet) => packet.packetId)).toEqual([1]);
    const [batch] = take(harness) as Extract<ClusterRequest, { op: 'publish-durable' }>[];
    expect(batch).toMatchObject({ op: 'publish-durable', subject: handoffBatchSubject, headers: { 'Keel-Origin': 'a', 'Keel-Batch': '2' } });
    const members = decodeBatch(batch!.payload)!;
    expect(members.map((member) => decodeText(member.payload))).toEqual(['two', 'three']);
    expect(members.every((member) => member.subject === '$KEEL.handoff.a.b' && member.headers['Keel-Qos'] === '1')).toBe(true);
    // A failure sends the same batch again, under the same dedupe id.
    harness.broker.clusterCompleted(harness.nowMs, { requestId: batch!.requestId, ok: false, code: 'timeout', message: 'no answer' });
    harness.collect();
    const [again] = take(harness) as Extract<ClusterRequest, { op: 'publish-durable' }>[];
    expect(again).toMatchObject({ subject: handoffBatchSubject, dedupeId: batch!.dedupeId, payload: batch!.payload });
    expect(publisher.take()).toEqual([]);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: again!.requestId, ok: true, sequence: 2 });
    harness.collect();
    expect((publisher.take() as PublishPacket[]).map((packet) => packet.packetId)).toEqual([2, 3]);
    // The QoS 2 hand-off goes alone (its outbox dedupe id), then the QoS 1 behind it.
    const [qos2] = take(harness) as Extract<ClusterRequest, { op: 'publish-durable' }>[];
    expect(qos2).toMatchObject({ subject: '$KEEL.handoff.a.b', headers: { 'Keel-Qos': '2' } });
    expect(qos2!.dedupeId).toMatch(/^a-o\d+$/);
  });

  it('batches QoS 2 hand-offs under a membership record, PUBRECs once stored, and resends the same batch after a crash', () => {
    const harness = node();
    connected(harness);
    const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 600 } };
    const publisher = harness.connect('p', 5, persistent);
    const publish = (packetId: number, qos: 1 | 2, payload: string): void =>
      publisher.send({ type: PacketType.Publish, dup: false, qos, retain: false, topic: 'a/b', packetId, payload: text(payload) });
    const outbox = () => harness.broker.state.cluster!.outbox;
    publish(1, 2, 'one');
    const [lone] = take(harness) as Extract<ClusterRequest, { op: 'publish-durable' }>[];
    expect(lone!.dedupeId).toMatch(/^a-o\d+$/);
    publish(2, 2, 'two');
    publish(3, 2, 'three');
    publish(4, 1, 'four');
    expect(take(harness)).toEqual([]);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: lone!.requestId, ok: true, sequence: 1 });
    harness.collect();
    expect((publisher.take() as PublishPacket[]).map((packet) => [packet.type, packet.packetId])).toEqual([[PacketType.Pubrec, 1]]);
    // The two QoS 2 hand-offs go as one batch (the QoS 1 one behind them is of the other kind),
    // under the outbox id of the record that names them, which the log held before it went.
    const [batch] = take(harness) as Extract<ClusterRequest, { op: 'publish-durable' }>[];
    expect(batch).toMatchObject({ subject: handoffBatchSubject, headers: { 'Keel-Origin': 'a', 'Keel-Batch': '2' } });
    expect(decodeBatch(batch!.payload)!.map((member) => [decodeText(member.payload), member.headers['Keel-Qos']])).toEqual([
      ['two', '2'],
      ['three', '2'],
    ]);
    const record = [...outbox().values()].find((entry) => entry.subject === unitOutboxSubject)!;
    const members = [...outbox().values()].filter((entry) => entry.subject === '$KEEL.handoff.a.b').map((entry) => entry.id);
    expect(batch!.dedupeId).toBe(`a-o${record.id}`);
    expect(unitMembersOfHeaders(record.headers)).toEqual(members);
    expect(record.id).toBeGreaterThan(Math.max(...members));
    expect(publisher.take()).toEqual([]);
    // A crash before the acknowledgement: the batch goes again byte for byte under the same id.
    harness.restart();
    harness.broker.clusterStatus(harness.nowMs, 'connected');
    harness.collect();
    const [again] = take(harness).filter((request) => request.op === 'publish-durable') as Extract<ClusterRequest, { op: 'publish-durable' }>[];
    expect(again).toMatchObject({ subject: handoffBatchSubject, dedupeId: batch!.dedupeId, headers: batch!.headers });
    expect(again!.payload).toEqual(batch!.payload);
    // The publisher's resend is answered from its recorded packet id, once the batch is stored.
    const resumed = harness.connect('p', 5, persistent);
    resumed.send({ type: PacketType.Publish, dup: true, qos: 2, retain: false, topic: 'a/b', packetId: 2, payload: text('two') });
    expect(resumed.take()).toEqual([]);
    harness.broker.clusterCompleted(harness.nowMs, { requestId: again!.requestId, ok: true, sequence: 2 });
    harness.collect();
    expect((resumed.take() as PublishPacket[]).map((packet) => [packet.type, packet.packetId])).toEqual([[PacketType.Pubrec, 2]]);
    // The record and its members are done; nothing else went (no second batch of them).
    expect([...outbox().values()]).toEqual([]);
    expect(take(harness).filter((request) => request.op === 'publish-durable')).toEqual([]);
    expect(harness.broker.view.counters().clusterNode).toMatchObject({ handoffBatchesSent: 1, loggedBatchesSent: 1 });
  });

  it('drops what is left of a batch of logged hand-offs whose record outlived a member, and sends alone the ones no record names', () => {
    const harness = node();
    // The log of a node that crashed: batch 3 (members 1, 2) was stored and member 1 dropped;
    // members 4 and 5 were named by no durable record (4 may have gone alone before the crash).
    const entry = (id: number, payload: string) => ({
      id,
      subject: '$KEEL.handoff.a.b',
      headers: encodeHeaders('a', 2, false, `1-${id}`, undefined, null),
      payload: text(payload),
    });
    for (const added of [entry(1, 'one'), entry(2, 'two'), { id: 3, subject: unitOutboxSubject, headers: unitHeaders([1, 2]), payload: new Uint8Array(0) }, entry(4, 'four'), entry(5, 'five')]) {
      harness.broker.commit({ kind: 'cluster-outbox-added', entry: added });
    }
    harness.broker.commit({ kind: 'cluster-outbox-done', id: 1 });
    harness.restart();
    expect([...harness.broker.state.cluster!.outbox.keys()]).toEqual([4, 5]);
    harness.broker.clusterStatus(harness.nowMs, 'connected');
    harness.collect();
    const sent: string[] = [];
    for (let round = 0; round < 2; round++) {
      const durable = take(harness).filter((request) => request.op === 'publish-durable') as Extract<ClusterRequest, { op: 'publish-durable' }>[];
      expect(durable).toHaveLength(1);
      expect(durable[0]!.subject).toBe('$KEEL.handoff.a.b');
      sent.push(`${decodeText(durable[0]!.payload)} ${durable[0]!.dedupeId}`);
      harness.broker.clusterCompleted(harness.nowMs, { requestId: durable[0]!.requestId, ok: true, sequence: 7 + round });
      harness.collect();
    }
    expect(sent).toEqual(['four a-o4', 'five a-o5']);
    expect([...harness.broker.state.cluster!.outbox.values()]).toEqual([]);
  });

  it('routes the QoS 2 members of a batch from another node once, across a redelivery and a crash before its applied record', () => {
    const batch = batchFromB(2, ['first', 'second']);
    const harness = node();
    connected(harness);
    const subscriber = harness.connect('s', 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
    subscriber.subscribe([{ topicFilter: 'a/b', qos: 2 }]);
    take(harness);
    harness.broker.clusterMessage(harness.nowMs, batch);
    harness.collect();
    const first = subscriber.take() as PublishPacket[];
    expect(first.map((packet) => [decodeText(packet.payload), packet.qos])).toEqual([
      ['first', 2],
      ['second', 2],
    ]);
    expect(take(harness)).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 1 }]);
    harness.broker.clusterMessage(harness.nowMs, { ...batch, redelivered: true });
    harness.collect();
    expect(subscriber.take()).toEqual([]);
    // After a crash the session's copies are resent as such (dup), the batch not routed again.
    harness.restart();
    connected(harness);
    harness.broker.clusterMessage(harness.nowMs, { ...batch, redelivered: true });
    harness.collect();
    const resumed = harness.connect('s', 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
    const again = resumed.take() as PublishPacket[];
    expect(again.map((packet) => [decodeText(packet.payload), packet.packetId, packet.dup])).toEqual(first.map((packet) => [decodeText(packet.payload), packet.packetId, true]));
  });

  it('routes a batch from another node in order and acknowledges it as one stream sequence', () => {
    const batch = batchFromB(1, ['first', 'second', 'third']);
    const { delivered, requests } = outcome([batch, { ...batch, redelivered: true }, handoffMessage(2, 'after')], false);
    expect(delivered).toEqual(['first', 'second', 'third', 'after']);
    expect(requests.map((request) => (request.op === 'ack' ? request.streamSequence : request.op))).toEqual([1, 1, 2]);
  });

  it('tells a newer format from a known or a foreign one, by subject and headers alone', () => {
    expect(newerFormat(handoffBatchSubject, { 'Keel-Origin': 'b', 'Keel-Batch': '2' })).toBeNull();
    expect(newerFormat('$KEEL.handoff.$session', {})).toBeNull();
    expect(newerFormat('$KEEL.handoff.a.b', { 'Keel-Qos': '1' })).toBeNull();
    expect(newerFormat('$KEEL.handoff.$rules', {})).toMatch(/\$rules/);
    expect(newerFormat(handoffBatchSubject, { 'Keel-Needs': 'batch-v2' })).toMatch(/batch-v2/);
    expect(newerFormat('$KEEL.handoff.a.b', { 'Keel-Needs': ' , compressed ' })).toMatch(/compressed/);
    expect(newerFormat('$KEEL.handoff.a.b', { 'Keel-Needs': ' , ' })).toBeNull();
  });

  it('stops its reader at a message written by a newer version, and loses nothing behind it', () => {
    const { harness, subscriber } = subscribedNode();
    handoff(harness, 1, 'first');
    expect(take(harness)).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 1 }]);
    const future: ClusterMessage = { ...handoffMessage(2, 'from the future'), subject: '$KEEL.handoff.$rules' };
    harness.broker.clusterMessage(harness.nowMs, future);
    harness.collect();
    expect(take(harness)).toEqual([{ op: 'pace', consumerId: 1, paused: true }]);
    expect(harness.logEvents()).toContain('cluster-handoff-format-newer');
    expect(harness.broker.view.gauges().cluster?.readerHeldAt).toBe(2);
    expect(harness.broker.view.clusterReaderHeldAt()).toBe(2);
    // Behind it: nothing routed or acknowledged, its own redelivery included, even past the gap wait.
    handoff(harness, 3, 'third');
    harness.nowMs += 60_000;
    handoff(harness, 4, 'fourth');
    harness.broker.clusterMessage(harness.nowMs, { ...future, redelivered: true });
    harness.collect();
    // A redelivery of what was applied before is still acknowledged.
    handoff(harness, 1, 'first');
    expect(take(harness)).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 1 }]);
    expect(received(subscriber)).toEqual(['first']);
    // After a reconnection the new consume is paused again at once; the reader stays stopped.
    harness.broker.clusterStatus(harness.nowMs, 'disconnected');
    harness.broker.clusterStatus(harness.nowMs, 'connected');
    harness.collect();
    const requests = take(harness);
    const consume = requests.findIndex((request) => request.op === 'consume');
    expect(consume).toBeGreaterThanOrEqual(0);
    expect(requests.slice(consume + 1)).toContainEqual({ op: 'pace', consumerId: 1, paused: true });
    handoff(harness, 3, 'third');
    expect(subscriber.take()).toEqual([]);
    expect(take(harness)).toEqual([]);
    expect(harness.broker.view.counters().clusterNode).toMatchObject({ readerHolds: 1 });
  });

  it('stops again at the same message after a restart of the same version', () => {
    const harness = node();
    connected(harness);
    handoff(harness, 1, 'first');
    harness.broker.clusterMessage(harness.nowMs, { ...handoffMessage(2, 'newer'), headers: { ...handoffMessage(2, 'newer').headers, 'Keel-Needs': 'compressed' } });
    harness.collect();
    expect(harness.broker.view.gauges().cluster?.readerHeldAt).toBe(2);
    expect(harness.broker.view.clusterReaderHeldAt()).toBe(2);
    harness.restart();
    connected(harness);
    expect(harness.broker.view.gauges().cluster?.readerHeldAt).toBeNull();
    expect(harness.broker.view.clusterReaderHeldAt()).toBeNull();
    handoff(harness, 1, 'first');
    harness.broker.clusterMessage(harness.nowMs, { ...handoffMessage(2, 'newer'), headers: { ...handoffMessage(2, 'newer').headers, 'Keel-Needs': 'compressed' } });
    harness.collect();
    expect(harness.broker.view.gauges().cluster?.readerHeldAt).toBe(2);
    expect(harness.broker.view.clusterReaderHeldAt()).toBe(2);
    expect(take(harness).filter((request) => request.op === 'ack')).toEqual([{ op: 'ack', consumerId: 1, streamSequence: 1 }]);
  });

  it('refuses a PUBLISH or a will larger than the cluster carries, before routing it, and hands off what fits', () => {
    const messageBytesMax = 64 * 1024;
    const harness = new Harness({ cluster: { nats: ['nats://test:4222'], nodeId: 'a', messageBytesMax } });
    connected(harness);
    const subscriber = harness.connect('s', 5);
    subscriber.subscribe([{ topicFilter: 'big/#', qos: 1 }]);
    const connack = harness.open(5).connect('announced');
    expect(connack.properties?.maximumPacketSize).toBe(messageBytesMax - 1024);
    take(harness);
    // The largest payload that fits, measured as the node measures it, goes: locally and to NATS.
    const fitting = messageBytesMax - natsBytes('a', 'big/one', new Uint8Array(0), 1, false, undefined);
    const publisher = harness.connect('p', 5);
    publisher.send({ type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 'big/one', packetId: 1, payload: new Uint8Array(fitting) });
    expect((subscriber.take() as PublishPacket[]).map((packet) => packet.payload.length)).toEqual([fitting]);
    expect(take(harness).filter((request) => request.op === 'publish-durable')).toHaveLength(1);
    // One byte more: DISCONNECT 0x95, nothing delivered, nothing handed off, counted.
    publisher.send({ type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 'big/one', packetId: 2, payload: new Uint8Array(fitting + 1) });
    expect(publisher.take()).toMatchObject([{ type: PacketType.Disconnect, reasonCode: 0x95 }]);
    expect(publisher.closed).toBe(true);
    expect(subscriber.take()).toEqual([]);
    expect(take(harness).filter((request) => request.op === 'publish-durable' || request.op === 'publish')).toEqual([]);
    expect(harness.broker.stats.limits.clusterMessageBytesMax).toBe(1);
    expect(harness.broker.stats.limits.packetBytesMax).toBe(0);
    // Small payload, large properties: user properties grow in the headers (JSON), so the bound
    // alone would refuse it; the real headers decide. Control characters grow six-fold.
    const grown = harness.connect('q', 5);
    const userProperties: [string, string][] = [['k', '\u0001'.repeat(12_000)]];
    grown.send({ type: PacketType.Publish, dup: false, qos: 0, retain: false, topic: 'big/two', payload: text('x'), properties: { userProperties } });
    expect(grown.take()).toMatchObject([{ type: PacketType.Disconnect, reasonCode: 0x95 }]);
    expect(subscriber.take()).toEqual([]);
    const plainProperties: [string, string][] = [['k', 'v'.repeat(12_000)]];
    const plain = harness.connect('r', 5);
    plain.send({ type: PacketType.Publish, dup: false, qos: 0, retain: false, topic: 'big/two', payload: text('x'), properties: { userProperties: plainProperties } });
    expect((subscriber.take() as PublishPacket[]).map((packet) => packet.topic)).toEqual(['big/two']);
    // A will that could not be handed off when it fires (a will payload is at most 65,535 bytes, so
    // only a limit this low meets one): CONNACK 0x95, nothing stored.
    const willer = harness.open(5);
    const refused = willer.connect('w', { will: { topic: 'big/will', qos: 1, retain: false, payload: new Uint8Array(65_535) } });
    expect(refused.reasonCode).toBe(0x95);
    expect(harness.broker.stats.limits.clusterMessageBytesMax).toBe(3);
    // 3.1.1: closed without an answer, as for any packet too large.
    const old = harness.connect('o', 4);
    old.send({ type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 'big/one', packetId: 3, payload: new Uint8Array(messageBytesMax) });
    expect(old.take()).toEqual([]);
    expect(old.closed).toBe(true);
  });
});
