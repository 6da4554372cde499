/**
 * The cluster link on a real `nats-server -js` (test/cluster/nats-fixture.ts), driven by a scripted
 * clustered core through the shared Driver (test/cluster/scripted-cluster-core.ts), the way
 * `keel serve --cluster` drives it. Each test proves one promise of io/cluster/nats-link.ts by
 * what the core hears: durable publishes complete in request order with increasing stream
 * sequences and dedupe on their id; the node's consumer delivers in order and redelivers only what
 * was not acknowledged, also across a SIGKILL and restart of NATS on its store; a consume is
 * answered with the consumer's ack floor before its deliveries; compare-and-set
 * fails with `wrong-revision`; a watch gives every current value and then every change in revision
 * order; the status goes `disconnected` and `connected` across a NATS restart, with requests failing
 * `unavailable` in between; core NATS subscriptions honour queue groups and carry headers; the
 * pending-request bound fails what exceeds it; a three-server NATS cluster survives the loss of the
 * server the link is on. The Driver asserts that no input reaches it while it executes actions, so
 * every test also checks that rule.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, describe, expect, test } from 'vitest';
import { consumerName, explicitAckConsumerName, handoffStreamName } from '../../io/cluster/nats-link.js';
import type { ClusterRequest } from '../../src/contract.js';
import { type NatsServer, startNats, startNatsCluster, stopAllNats } from './nats-fixture.js';
import { ClusterRig } from './scripted-cluster-core.js';

const encoder = new TextEncoder();
const rigs: ClusterRig[] = [];

afterEach(async () => {
  await Promise.all(rigs.splice(0).map((rig) => rig.link.close()));
});
afterAll(stopAllNats);

function rig(servers: NatsServer[] | string[], nodeId: string, limits: ConstructorParameters<typeof ClusterRig>[2] = {}): ClusterRig {
  const urls = servers.map((server) => (typeof server === 'string' ? server : server.url));
  const made = new ClusterRig(urls, nodeId, { ackWaitMs: 1_000, setupRetryMs: 200, reconnectWaitMs: 100, pingIntervalMs: 1_000, ...limits });
  rigs.push(made);
  made.link.start();
  return made;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const startMs = Date.now();
  while (!condition()) {
    if (Date.now() - startMs > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function connected(node: ClusterRig, times = 1, timeoutMs = 10_000): Promise<void> {
  const condition = (): boolean => node.core.statuses().filter((status) => status === 'connected').length >= times;
  await until(condition, `connected x${times}`, timeoutMs).catch((error: Error) => {
    throw new Error(`${error.message}\n${node.logLines.join('')}`);
  });
}

function durable(requestId: number, topic: string, text: string, dedupeId = `d-${requestId}`): ClusterRequest {
  return { op: 'publish-durable', requestId, subject: `$KEEL.handoff.${topic}`, headers: { 'Keel-Origin': 'a' }, payload: encoder.encode(text), dedupeId };
}

function kvSet(requestId: number, key: string, value: string | null, expectedRevision: number | null): ClusterRequest {
  return { op: 'kv-set', requestId, bucket: 'keel-retained', key, value: value === null ? null : encoder.encode(value), expectedRevision };
}

describe('cluster link on nats-server -js', () => {
  test('durable publishes complete in request order with increasing sequences; a repeated dedupe id stores once', async () => {
    const server = await startNats();
    const node = rig([server], 'a');
    await connected(node);
    const observer = await connect({ servers: [server.url] });
    // One server: one copy (three would be refused by a server outside a cluster).
    expect((await (await jetstreamManager(observer)).streams.info(handoffStreamName)).config.num_replicas).toBe(1);
    await observer.close();
    node.issue([1, 2, 3, 4, 5].map((id) => durable(id, 'sensors.one', `m${id}`)));
    await until(() => node.core.completions().length === 5, 'five completions');
    const sequences = node.core.completions().map((result) => (result.ok ? result.sequence : -1));
    expect(node.core.completions().map((result) => result.requestId)).toEqual([1, 2, 3, 4, 5]);
    expect(sequences).toEqual([1, 2, 3, 4, 5]);
    node.issue([durable(6, 'sensors.one', 'm3 again', 'd-3')]);
    await until(() => node.core.completions().length === 6, 'the retry completes');
    expect(node.core.completions()[5]).toEqual({ requestId: 6, ok: true, sequence: 3 });
    await server.stop();
  }, 30_000);

  test('the consumer delivers in order, redelivers an unacknowledged delivery after the ack wait and never an acknowledged one, across a NATS SIGKILL', async () => {
    const server = await startNats();
    const node = rig([server], 'b');
    await connected(node);
    // Sequences 4 and 5 are never acknowledged (the core acknowledges in stream order, and an ack
    // covers every delivery up to it): NATS must redeliver them, and nothing else.
    node.core.acknowledges = (message) => message.streamSequence! <= 3;
    node.issue([{ op: 'consume', requestId: 901, consumerId: 7, filterSubject: '$KEEL.handoff.>' }], { hold: true });
    node.issue([1, 2, 3, 4, 5].map((id) => durable(id, 'line', `m${id}`)));
    await until(() => node.core.messages().length >= 5, 'five deliveries');
    const first = node.core.messages().slice(0, 5);
    expect(first.map((message) => [message.streamSequence, message.text, message.redelivered, message.consumerId])).toEqual([
      [1, 'm1', false, 7],
      [2, 'm2', false, 7],
      [3, 'm3', false, 7],
      [4, 'm4', false, 7],
      [5, 'm5', false, 7],
    ]);
    expect(first[0]!.headers['Keel-Origin']).toBe('a');
    await until(() => node.core.messages().filter((message) => message.redelivered).length >= 2, 'two redeliveries');
    const redelivered = node.core.messages().filter((message) => message.redelivered);
    expect(new Set(redelivered.map((message) => message.streamSequence))).toEqual(new Set([4, 5]));
    // Let NATS write the acknowledgements before it is killed (a SIGKILL loses what it has not).
    const observer = await connect({ servers: [server.url] });
    const manager = await jetstreamManager(observer);
    const pending = (await manager.consumers.info(handoffStreamName, consumerName('b'))).num_ack_pending;
    expect(pending).toBe(2);
    await observer.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const before = node.core.messages().length;
    await server.restart();
    await connected(node, 2);
    await until(
      () =>
        node.core
          .messages()
          .slice(before)
          .filter((message) => message.redelivered).length >= 2,
      'redeliveries after the restart',
      15_000,
    );
    const after = node.core.messages().slice(before);
    expect(after.every((message) => message.streamSequence === 4 || message.streamSequence === 5)).toBe(true);
    expect(node.core.statuses()).toEqual(['connected', 'disconnected', 'connected']);
    await server.stop();
  }, 60_000);

  test('a paused consumer hands the core nothing, holds one copy per sequence across redeliveries, and hands them over in order on resume', async () => {
    const server = await startNats();
    const node = rig([server], 'p');
    await connected(node);
    node.issue([{ op: 'consume', requestId: 902, consumerId: 1, filterSubject: '$KEEL.handoff.>' }]);
    node.issue([1, 2].map((id) => durable(id, 'paced', `m${id}`)));
    await until(() => node.core.messages().length === 2, 'two deliveries before the pause');
    node.issue([{ op: 'pace', consumerId: 1, paused: true }]);
    node.issue([3, 4, 5].map((id) => durable(id, 'paced', `m${id}`)));
    await until(() => node.core.completions().length === 5, 'five stored');
    // Unacknowledged while held: NATS redelivers them after the 1 s ack wait, and the link keeps one of each.
    const observer = await connect({ servers: [server.url] });
    const manager = await jetstreamManager(observer);
    await until(() => node.link.counters.requests.pace === 1, 'the pause issued');
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect((await manager.consumers.info(handoffStreamName, consumerName('p'))).num_redelivered).toBeGreaterThan(0);
    expect(node.core.messages()).toHaveLength(2);
    node.issue([{ op: 'pace', consumerId: 1, paused: false }]);
    await until(() => node.core.messages().length >= 5, 'the held deliveries after the resume');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(node.core.messages().map((message) => [message.streamSequence, message.text])).toEqual([
      [1, 'm1'],
      [2, 'm2'],
      [3, 'm3'],
      [4, 'm4'],
      [5, 'm5'],
    ]);
    // The core acknowledged them once handed over: nothing left pending.
    await until(() => node.link.counters.requests.ack >= 5, 'five acknowledgements');
    const deadline = Date.now() + 5_000;
    while ((await manager.consumers.info(handoffStreamName, consumerName('p'))).num_ack_pending > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await manager.consumers.info(handoffStreamName, consumerName('p'))).num_ack_pending).toBe(0);
    await observer.close();
    await server.stop();
  }, 30_000);

  test("an earlier version's explicit-ack consumer is replaced by a cumulative one that starts after its ack floor", async () => {
    const server = await startNats();
    const publisher = rig([server], 'publisher');
    await connected(publisher);
    publisher.issue([1, 2, 3, 4, 5].map((id) => durable(id, 'old', `m${id}`)));
    await until(() => publisher.core.completions().length === 5, 'five stored');
    // What an earlier version left behind: its consumer acknowledged 1, 2 and 4, one by one.
    const observer = await connect({ servers: [server.url] });
    const manager = await jetstreamManager(observer);
    await manager.consumers.add(handoffStreamName, {
      durable_name: explicitAckConsumerName('m'),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: '$KEEL.handoff.>',
    });
    const old = await jetstream(observer).consumers.get(handoffStreamName, explicitAckConsumerName('m'));
    for await (const message of await old.fetch({ max_messages: 5, expires: 2_000 })) if (message.seq !== 3 && message.seq !== 5) await message.ackAck();
    expect((await manager.consumers.info(handoffStreamName, explicitAckConsumerName('m'))).ack_floor.stream_seq).toBe(2);
    const node = rig([server], 'm');
    await connected(node);
    const replaced = await manager.consumers.info(handoffStreamName, consumerName('m'));
    expect(replaced.config.ack_policy).toBe(AckPolicy.All);
    await expect(manager.consumers.info(handoffStreamName, explicitAckConsumerName('m'))).rejects.toThrow();
    expect(node.logLines.join('')).toContain('cluster-consumer-replaced');
    node.issue([{ op: 'consume', requestId: 906, consumerId: 1, filterSubject: '$KEEL.handoff.>' }]);
    await until(() => node.core.messages().length >= 3, 'the deliveries after the old floor');
    // 4 comes again: above the floor the old consumer's acks were its own; the node's log tells.
    expect(node.core.messages().map((message) => [message.streamSequence, message.text])).toEqual([
      [3, 'm3'],
      [4, 'm4'],
      [5, 'm5'],
    ]);
    // A restart finds the new consumer and keeps it.
    await node.link.close();
    rigs.splice(rigs.indexOf(node), 1);
    const again = rig([server], 'm');
    await connected(again);
    expect((await manager.consumers.info(handoffStreamName, consumerName('m'))).config.ack_policy).toBe(AckPolicy.All);
    expect(again.logLines.join('')).not.toContain('cluster-consumer-replaced');
    await observer.close();
    await server.stop();
  }, 30_000);

  test('connected names the hand-off stream: the same across a NATS restart on its store, another when NATS lost its store', async () => {
    const server = await startNats();
    const node = rig([server], 'i');
    await connected(node);
    node.issue([durable(1, 'named', 'm1')]);
    await until(() => node.core.completions().length === 1, 'one stored');
    await server.restart();
    await connected(node, 2, 15_000);
    await server.restartWithoutStore();
    await connected(node, 3, 15_000);
    const [first, afterRestart, afterLoss] = node.core.streams();
    expect(typeof first).toBe('string');
    expect(first!.length).toBeGreaterThan(0);
    expect(afterRestart).toBe(first);
    expect(afterLoss).not.toBe(first);
    // The stream made anew numbers from 1 again.
    node.issue([durable(2, 'named', 'm1 again', 'd-anew')]);
    await until(() => node.core.completions().length === 2, 'stored in the new stream');
    expect(node.core.completions()[1]).toEqual({ requestId: 2, ok: true, sequence: 1 });
    await server.stop();
  }, 60_000);

  test("a consume is answered with the consumer's ack floor before its deliveries, after acknowledgements, across a NATS restart and a new process", async () => {
    const server = await startNats();
    const node = rig([server], 'f');
    await connected(node);
    // Sequences 4 and 5 are not acknowledged (the core acknowledges in stream order, and an ack
    // covers every delivery up to it): the floor stops below them.
    node.core.acknowledges = (message) => message.streamSequence! <= 3;
    node.issue([{ op: 'consume', requestId: 100, consumerId: 1, filterSubject: '$KEEL.handoff.>' }], { hold: true });
    await until(() => node.core.consumeAnswers().length === 1, 'the first answer');
    expect(node.core.consumeAnswers()).toEqual([{ requestId: 100, ok: true, sequence: 0 }]);
    node.issue([1, 2, 3, 4, 5].map((id) => durable(id, 'floor', `m${id}`)));
    await until(() => node.link.counters.requests.ack >= 3, 'three acknowledgements');
    const observer = await connect({ servers: [server.url] });
    const manager = await jetstreamManager(observer);
    const floorOf = async (): Promise<number> => (await manager.consumers.info(handoffStreamName, consumerName('f'))).ack_floor.stream_seq;
    const deadline = Date.now() + 5_000;
    while ((await floorOf()) < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await floorOf()).toBe(3);
    await observer.close();
    // Let NATS write the consumer's state to its store before it is killed (a SIGKILL loses what it has not).
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // NATS killed and restarted on its store: the consume issued again after `connected` finds 3.
    await server.restart();
    await connected(node, 2, 20_000);
    await until(() => node.core.consumeAnswers().length === 2, 'the answer after the restart', 15_000);
    expect(node.core.consumeAnswers()[1]).toEqual({ requestId: 100, ok: true, sequence: 3 });
    // The answer comes before any delivery of its consume.
    const secondLinkAt = node.core.inputs.map((input) => input.kind).lastIndexOf('status');
    const secondLink = node.core.inputs.slice(secondLinkAt);
    const answerAt = secondLink.findIndex((input) => input.kind === 'completed' && input.result.requestId === 100);
    const firstDeliveryAt = secondLink.findIndex((input) => input.kind === 'message');
    expect(answerAt).toBeGreaterThan(0);
    if (firstDeliveryAt >= 0) expect(answerAt).toBeLessThan(firstDeliveryAt);
    // 4 and 5 are acknowledged on their redelivery; a new process of the node finds the floor at 5.
    node.core.acknowledges = () => true;
    const redeliveredOnSecondLink = (): boolean => node.core.inputs.slice(secondLinkAt).some((input) => input.kind === 'message' && input.message.streamSequence === 4);
    await until(redeliveredOnSecondLink, 'the redelivery of 4', 15_000);
    await until(() => node.link.counters.requests.ack >= 5, 'its acknowledgement');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await node.link.close();
    const restarted = rig([server], 'f');
    await connected(restarted);
    restarted.issue([{ op: 'consume', requestId: 200, consumerId: 1, filterSubject: '$KEEL.handoff.>' }]);
    await until(() => restarted.core.consumeAnswers().length === 1, 'the answer of the new process');
    expect(restarted.core.consumeAnswers()).toEqual([{ requestId: 200, ok: true, sequence: 5 }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(restarted.core.messages()).toEqual([]);
    await server.stop();
  }, 60_000);

  test('a new session gets the deliveries its node never acknowledged before anything newer, in stream order', async () => {
    const server = await startNats();
    const crashed = rig([server], 'k');
    await connected(crashed);
    crashed.core.acknowledges = () => false;
    crashed.issue([{ op: 'consume', requestId: 903, consumerId: 1, filterSubject: '$KEEL.handoff.>' }]);
    crashed.issue([1, 2, 3].map((id) => durable(id, 'ordered', `m${id}`)));
    await until(() => crashed.core.messages().length === 3, 'three deliveries before the crash');
    // The node dies without acknowledging; more is published while it is away.
    await crashed.link.close();
    const publisher = rig([server], 'publisher');
    await connected(publisher);
    publisher.issue([4, 5].map((id) => durable(id, 'ordered', `m${id}`)));
    await until(() => publisher.core.completions().length === 2, 'two more stored');
    const restarted = rig([server], 'k');
    await connected(restarted);
    restarted.issue([{ op: 'consume', requestId: 904, consumerId: 1, filterSubject: '$KEEL.handoff.>' }]);
    await until(() => restarted.core.messages().length >= 5, 'five deliveries after the restart');
    const firsts = restarted.core.messages().slice(0, 5);
    expect(firsts.map((message) => [message.streamSequence, message.redelivered])).toEqual([
      [1, true],
      [2, true],
      [3, true],
      [4, false],
      [5, false],
    ]);
    await server.stop();
  }, 30_000);

  test('with the input queue full, core NATS messages are dropped and counted while hand-offs wait and all arrive in order', async () => {
    const server = await startNats();
    const node = rig([server], 'l', { inputsQueuedMax: 8 });
    await connected(node);
    node.issue([
      { op: 'subscribe', subscriptionId: 1, subject: 'burst', queueGroup: null },
      { op: 'consume', requestId: 905, consumerId: 2, filterSubject: '$KEEL.handoff.>' },
    ]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const native = await connect({ servers: [server.url] });
    // One burst, written in one go: nats.js hands it over faster than the queue is fed.
    for (let index = 0; index < 2_000; index++) native.publish('burst', `b${index}`);
    await native.flush();
    const published = Array.from({ length: 300 }, (_, index) => durable(index + 1, 'slow', `h${index + 1}`));
    node.issue(published);
    await until(() => node.core.messages().filter((message) => message.consumerId === 2).length >= 300, 'every hand-off', 20_000);
    await until(() => node.core.messages().filter((message) => message.subscriptionId === 1).length + node.link.counters.messagesDropped === 2_000, 'every burst message received or dropped');
    expect(node.link.counters.messagesDropped).toBeGreaterThan(0);
    const handoffs = node.core.messages().filter((message) => message.consumerId === 2);
    expect(handoffs.map((message) => message.streamSequence)).toEqual(Array.from({ length: 300 }, (_, index) => index + 1));
    const burst = node.core
      .messages()
      .filter((message) => message.subscriptionId === 1)
      .map((message) => Number(message.text.slice(1)));
    // What was kept is in publish order.
    expect([...burst].sort((a, b) => a - b)).toEqual(burst);
    await native.close();
    await server.stop();
  }, 40_000);

  test('a hung NATS server (SIGSTOP): a durable publish times out, pings find the loss, SIGCONT brings the link back', async () => {
    const server = await startNats();
    const node = rig([server], 'm', { requestTimeoutMs: 500, pingIntervalMs: 500 });
    await connected(node);
    await server.pause();
    node.issue([durable(1, 'hung', 'x')]);
    await until(() => node.core.completions().length === 1, 'the publish fails');
    expect(node.core.completions()[0]).toMatchObject({ requestId: 1, ok: false });
    const code = (node.core.completions()[0] as { code: string }).code;
    // Either the request timed out first, or the pings declared the link lost first.
    expect(['timeout', 'unavailable']).toContain(code);
    await until(() => node.core.statuses().includes('disconnected'), 'the loss noticed by pings');
    server.resume();
    await connected(node, 2, 20_000);
    node.issue([durable(2, 'hung', 'y')]);
    await until(() => node.core.completions().length === 2, 'a publish after the resume');
    expect(node.core.completions()[1]).toMatchObject({ requestId: 2, ok: true });
    await server.stop();
  }, 40_000);

  test('compare-and-set fails with wrong-revision; delete at a revision; put without one', async () => {
    const server = await startNats();
    const node = rig([server], 'c');
    await connected(node);
    node.issue([kvSet(1, 'a.b', 'one', 0)]);
    await until(() => node.core.completions().length === 1, 'create');
    const created = node.core.completions()[0]!;
    expect(created.ok).toBe(true);
    const revision = created.ok ? created.sequence : 0;
    // One at a time: completions of requests in flight together may come in any order.
    const completed = async (request: ClusterRequest, count: number): Promise<void> => {
      node.issue([request]);
      await until(() => node.core.completions().length === count, `completion ${count}`);
    };
    await completed(kvSet(2, 'a.b', 'again', 0), 2);
    await completed(kvSet(3, 'a.b', 'two', revision), 3);
    await completed(kvSet(4, 'a.b', 'stale', revision), 4);
    const [, second, third, fourth] = node.core.completions();
    expect(second).toMatchObject({ requestId: 2, ok: false, code: 'wrong-revision' });
    expect(third).toEqual({ requestId: 3, ok: true, sequence: revision + 1 });
    expect(fourth).toMatchObject({ requestId: 4, ok: false, code: 'wrong-revision' });
    await completed(kvSet(5, 'a.b', null, revision), 5);
    await completed(kvSet(6, 'a.b', null, revision + 1), 6);
    await completed(kvSet(7, 'a.b', 'back', 0), 7);
    await completed(kvSet(8, 'a.b', 'anyway', null), 8);
    const [fifth, sixth, seventh, eighth] = node.core.completions().slice(4);
    expect(fifth).toMatchObject({ requestId: 5, ok: false, code: 'wrong-revision' });
    expect(sixth).toEqual({ requestId: 6, ok: true, sequence: revision + 2 });
    // A deleted key counts as absent: create-only succeeds on it.
    expect(seventh).toEqual({ requestId: 7, ok: true, sequence: revision + 3 });
    expect(eighth).toEqual({ requestId: 8, ok: true, sequence: revision + 4 });
    await server.stop();
  }, 30_000);

  test('a watch gives every current value, then every change, in revision order', async () => {
    const server = await startNats();
    const writer = rig([server], 'd');
    await connected(writer);
    writer.issue([kvSet(1, 'x', 'x1', null), kvSet(2, 'y', 'y1', null), kvSet(3, 'x', 'x2', null)]);
    await until(() => writer.core.completions().length === 3, 'three puts');
    const watcher = rig([server], 'e');
    await connected(watcher);
    watcher.issue([{ op: 'kv-watch', requestId: 1, bucket: 'keel-retained' }], { hold: true });
    await until(() => watcher.core.keyChanges().length === 2, 'the current values');
    expect(watcher.core.keyChanges().map((change) => [change.key, change.text, change.revision])).toEqual([
      ['y', 'y1', 2],
      ['x', 'x2', 3],
    ]);
    // Then the watch says its replay is in.
    await until(() => watcher.core.watchCurrents().length === 1, 'the watch current');
    expect(watcher.core.watchCurrents()).toEqual([{ bucket: 'keel-retained', requestId: 1, afterKeyChanges: 2 }]);
    writer.issue([kvSet(4, 'y', 'y2', null), kvSet(5, 'x', null, null), kvSet(6, 'z', 'z1', 0)]);
    await until(() => watcher.core.keyChanges().length === 5, 'three changes');
    expect(
      watcher.core
        .keyChanges()
        .slice(2)
        .map((change) => [change.bucket, change.key, change.text, change.revision]),
    ).toEqual([
      ['keel-retained', 'y', 'y2', 4],
      ['keel-retained', 'x', null, 5],
      ['keel-retained', 'z', 'z1', 6],
    ]);
    await server.stop();
  }, 30_000);

  test('watching a watched bucket again replays it once and replaces the old watch: later changes come once', async () => {
    const server = await startNats();
    const node = rig([server], 'w');
    await connected(node);
    node.issue([kvSet(1, 'a', 'a1', null)]);
    await until(() => node.core.completions().length === 1, 'the first put');
    node.issue([{ op: 'kv-watch', requestId: 11, bucket: 'keel-retained' }]);
    await until(() => node.core.keyChanges().length === 1, 'the current value');
    node.issue([{ op: 'kv-watch', requestId: 12, bucket: 'keel-retained' }]);
    await until(() => node.core.keyChanges().length === 2, 'the current value again');
    node.issue([kvSet(2, 'a', 'a2', null), kvSet(3, 'b', 'b1', null)]);
    await until(() => node.core.keyChanges().length >= 4, 'two changes');
    // Time for a copy from a second watch to arrive, had the first one stayed.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(node.core.keyChanges().map((change) => [change.key, change.text])).toEqual([
      ['a', 'a1'],
      ['a', 'a1'],
      ['a', 'a2'],
      ['b', 'b1'],
    ]);
    // Replacing a watch is not a lost source: the link stayed up.
    expect(node.core.statuses()).toEqual(['connected']);
    // Each watch said when its replay was in, under its own request id.
    expect(node.core.watchCurrents()).toEqual([
      { bucket: 'keel-retained', requestId: 11, afterKeyChanges: 1 },
      { bucket: 'keel-retained', requestId: 12, afterKeyChanges: 2 },
    ]);
    await server.stop();
  }, 30_000);

  test('a watch says once when its replay is in: at once for an empty bucket, after the last key of a full one, before later changes', async () => {
    const server = await startNats();
    const node = rig([server], 'c1');
    await connected(node);
    // An empty bucket has nothing to replay: current at once.
    node.issue([{ op: 'kv-watch', requestId: 1, bucket: 'keel-sessions' }]);
    await until(() => node.core.watchCurrents().length === 1, 'the empty bucket current');
    expect(node.core.watchCurrents()).toEqual([{ bucket: 'keel-sessions', requestId: 1, afterKeyChanges: 0 }]);
    // 300 keys, some written twice and one deleted: the replay holds each key's last entry.
    const keys = 300;
    const puts: ClusterRequest[] = [];
    for (let index = 0; index < keys; index++)
      puts.push({ op: 'kv-set', requestId: 100 + index, bucket: 'keel-retained', key: `k${index}`, value: encoder.encode(`v${index}`), expectedRevision: null });
    puts.push({ op: 'kv-set', requestId: 1_000, bucket: 'keel-retained', key: 'k7', value: encoder.encode('v7 again'), expectedRevision: null });
    puts.push({ op: 'kv-set', requestId: 1_001, bucket: 'keel-retained', key: 'k8', value: null, expectedRevision: null });
    node.issue(puts);
    await until(() => node.core.completions().length === keys + 2, 'the puts', 20_000);
    expect(node.core.completions().every((result) => result.ok)).toBe(true);
    const watcher = rig([server], 'c2');
    await connected(watcher);
    watcher.issue([{ op: 'kv-watch', requestId: 2, bucket: 'keel-retained' }]);
    await until(() => watcher.core.watchCurrents().length === 1, 'the full bucket current', 20_000);
    // Every key was in before the signal, each once, k8 as its deletion.
    expect(watcher.core.watchCurrents()).toEqual([{ bucket: 'keel-retained', requestId: 2, afterKeyChanges: keys }]);
    const replayed = watcher.core.keyChanges();
    expect(new Set(replayed.map((change) => change.key)).size).toBe(keys);
    expect(replayed.find((change) => change.key === 'k7')?.text).toBe('v7 again');
    expect(replayed.find((change) => change.key === 'k8')?.text).toBeNull();
    // A change after the replay comes after the signal, and no second signal follows it.
    node.issue([{ op: 'kv-set', requestId: 2_000, bucket: 'keel-retained', key: 'late', value: encoder.encode('l'), expectedRevision: null }]);
    await until(() => watcher.core.keyChanges().length === keys + 1, 'the later change');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(watcher.core.watchCurrents()).toHaveLength(1);
    expect(watcher.core.keyChanges().at(-1)?.key).toBe('late');
    await server.stop();
  }, 60_000);

  test('status goes disconnected and connected across a NATS restart; requests fail unavailable while down; subscriptions come back', async () => {
    const server = await startNats();
    const node = rig([server], 'f');
    await connected(node);
    node.issue([{ op: 'subscribe', subscriptionId: 1, subject: 'plain.>', queueGroup: null }], { hold: true });
    await server.kill();
    await until(() => node.core.statuses().includes('disconnected'), 'disconnected');
    expect(node.link.isUp).toBe(false);
    node.issue([durable(1, 'down', 'lost'), kvSet(2, 'k', 'v', null)]);
    await until(() => node.core.completions().length === 2, 'two failures');
    expect(node.core.completions().map((result) => (result.ok ? 'ok' : result.code))).toEqual(['unavailable', 'unavailable']);
    expect(node.logLines.some((line) => line.includes('"cluster-link-down"'))).toBe(true);
    await server.start();
    await connected(node, 2);
    expect(node.core.statuses()).toEqual(['connected', 'disconnected', 'connected']);
    const publisher = await connect({ servers: [server.url] });
    publisher.publish('plain.after', 'hello', { headers: undefined });
    await publisher.flush();
    await until(() => node.core.messages().length === 1, 'the message after the restart');
    expect(node.core.messages()[0]).toMatchObject({ subject: 'plain.after', text: 'hello', subscriptionId: 1, consumerId: null, streamSequence: null });
    await publisher.close();
    await server.stop();
  }, 30_000);

  test('core NATS: a queue group gets each message once, a plain subscription every one, headers intact', async () => {
    const server = await startNats();
    const [first, second] = [rig([server], 'g'), rig([server], 'h')];
    await connected(first);
    await connected(second);
    for (const node of [first, second]) {
      node.issue([
        { op: 'subscribe', subscriptionId: 1, subject: 'shared.*', queueGroup: 'group-1' },
        { op: 'subscribe', subscriptionId: 2, subject: 'shared.*', queueGroup: null },
      ]);
    }
    // Subscriptions reach the server on the next flush of each connection: give them a moment.
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let index = 0; index < 20; index++) {
      first.issue([{ op: 'publish', subject: 'shared.t', headers: { 'Keel-Origin': 'g', 'Keel-Qos': '0', 'x-user': 'a,b' }, payload: encoder.encode(`n${index}`) }]);
    }
    const all = (): ReturnType<typeof first.core.messages> => [...first.core.messages(), ...second.core.messages()];
    await until(() => all().length === 60, '20 grouped and 40 plain deliveries');
    const grouped = all().filter((message) => message.subscriptionId === 1);
    expect(grouped.map((message) => message.text).sort()).toEqual(Array.from({ length: 20 }, (_, index) => `n${index}`).sort());
    expect(
      first.core
        .messages()
        .filter((message) => message.subscriptionId === 2)
        .map((message) => message.text),
    ).toEqual(Array.from({ length: 20 }, (_, index) => `n${index}`));
    expect(second.core.messages()[0]!.headers).toEqual({ 'Keel-Origin': 'g', 'Keel-Qos': '0', 'x-user': 'a,b' });
    await server.stop();
  }, 30_000);

  test('past requestsPendingMax a request fails at once with unavailable', async () => {
    const server = await startNats();
    const node = rig([server], 'i', { requestsPendingMax: 2 });
    await connected(node);
    node.issue([durable(1, 'p', '1'), durable(2, 'p', '2'), durable(3, 'p', '3')]);
    await until(() => node.core.completions().length === 3, 'three completions');
    // The refusal is queued at once, before NATS answers the two admitted ones.
    expect(node.core.completions()[0]).toMatchObject({ requestId: 3, ok: false, code: 'unavailable' });
    expect(
      node.core
        .completions()
        .slice(1)
        .map((result) => result.ok),
    ).toEqual([true, true]);
    expect(node.link.counters.failures.unavailable).toBe(1);
    await server.stop();
  }, 30_000);

  test('on a three-server NATS cluster the link fails over when its server is killed', async () => {
    const servers = await startNatsCluster();
    // No replicas setting: the link sees a three-server NATS cluster and asks for three copies.
    const node = rig(servers, 'j');
    await connected(node);
    const observer = await connect({ servers: [servers[0]!.url] });
    expect((await (await jetstreamManager(observer)).streams.info(handoffStreamName)).config.num_replicas).toBe(3);
    await observer.close();
    node.issue([durable(1, 'r', 'before')]);
    await until(() => node.core.completions().length === 1, 'the first publish');
    expect(node.core.completions()[0]!.ok).toBe(true);
    const current = servers.find((server) => node.link.server === `127.0.0.1:${server.port}`)!;
    await current.kill();
    // JetStream elects new leaders for its meta group and the stream first: seconds, not ms.
    await connected(node, 2, 30_000);
    node.issue([durable(2, 'r', 'after')]);
    await until(() => node.core.completions().length === 2, 'the second publish', 20_000);
    expect(node.core.completions()[1]).toMatchObject({ requestId: 2, ok: true, sequence: 2 });
    await Promise.all(servers.map((server) => server.stop()));
  }, 60_000);
});
