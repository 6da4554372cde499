/**
 * Proves that a session survives a client that moves on while several of its earlier moves are
 * still short of the hand-off stream (session-handover.ts, "the chain of priors"): three or four
 * clustered cores, each a Harness, joined by the small model of NATS in model-nats.ts (compare-and-set
 * claims in `keel-sessions` with bucket-wide revisions, the hand-off stream in one order for every
 * node, `keel-handover` puts seen by every node's watch). A node "cut off" neither hears nor sends
 * anything until it is back: its requests wait, in order, and so does what NATS would deliver to
 * it; back, it gets what it missed and its waiting requests go out (its markers reach the stream
 * behind the ones published meanwhile). Time does not move, so no hand-over times out: a session
 * present 0 here is a session lost, not one given up.
 *
 * - Four nodes: the client moves a → b → c → d while b and c are cut off with their markers
 *   unsent; d's marker reaches the stream first and asks c, whose own source (its prior) is b, and
 *   b's is a, which still holds the session. d's marker names both b and a, so a answers with the
 *   session and d takes it: session present 1, the subscription kept. Named b alone (as before),
 *   a took itself for neither end and ended its copy (`handover-copy-ended`).
 * - Three nodes, the shape the simulator reaches: the client moves a → b, b crashes with its marker
 *   not yet durable (lost), the client moves to c, c is cut off with its marker unsent, and the
 *   client comes back to b (restarted): b asks c, whose prior is b itself, so b's marker names a.
 *
 * And, one core at a time: a claim names the key's claim's source and that claim's priors, nearest
 * first, without itself, the node it asks or a name twice, at most handoverPriorsMax (the rest left
 * out and logged); a value or a marker of before chains reads as one prior; a prior answers under
 * the key of its number in the chain (the nearest under the key of before, without a number); and
 * the destination takes the nearest session, dropping a farther one as late.
 */
import { describe, expect, it } from 'vitest';
import { decodeHandoverState, encodeHandoverState, type HandoverState, handoverBucket, handoverKey, handoverMarkerSubject, priorKey } from '../../src/cluster/session-handover.js';
import { decodeOwner, encodeOwner, handoverPriorsMax, type SessionOwner, sessionKey, sessionsBucket } from '../../src/cluster/session-registry.js';
import { handoverWaitMsDefault as handoverWaitMs } from '../../src/config.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { Harness, type TestClient } from '../broker/harness.js';
import { connack, connectMover, type KvSet, ModelNats, type PublishDurable } from './model-nats.js';

describe('a session moved along a chain of hand-overs still short of the stream', () => {
  it('reaches the node that asks last from the node holding it, two moves back (four nodes, two cut off)', () => {
    const nats = new ModelNats();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((id) => nats.add(id)) as [Harness, Harness, Harness, Harness];
    const first = connectMover(a);
    nats.settle();
    expect(connack(first)).toMatchObject({ sessionPresent: false });
    first.subscribe(['x/#']);
    // The client moves to b; b's claim asks a, and b is cut off before its marker goes out.
    nats.cutAfterClaim('b');
    const onB = connectMover(b);
    nats.settle();
    expect(a.broker.state.sessions.has('mover')).toBe(true);
    // On to c: c asks b (naming a, b's own source), and is cut off with its marker unsent too.
    nats.cutAfterClaim('c');
    connectMover(c);
    nats.settle();
    // On to d: d asks c. Its marker is the first of the three in the stream.
    const onD = connectMover(d);
    nats.settle();
    expect(nats.markers).toEqual(['d asks c']);
    // b and c come back: each reads d's marker (answering it has nothing), then its own goes out.
    nats.restore('b');
    nats.restore('c');
    expect(nats.markers).toEqual(['d asks c', 'b asks a', 'c asks b']);
    expect(onB.closed).toBe(true);
    expect(connack(onD)).toMatchObject({ sessionPresent: true });
    expect(a.logEvents()).not.toContain('handover-copy-ended');
    expect([...d.broker.state.sessions.get('mover')!.subscriptions.keys()]).toEqual(['x/#']);
    for (const other of [a, b, c]) expect(other.broker.state.sessions.has('mover')).toBe(false);
  });

  it('reaches the node that asks last from the node holding it when the asked node waited for that node itself (three nodes, a marker lost in a crash)', () => {
    const nats = new ModelNats();
    const [a, b] = ['a', 'b', 'c'].map((id) => nats.add(id)) as [Harness, Harness, Harness];
    const first = connectMover(a);
    nats.settle();
    expect(connack(first)).toMatchObject({ sessionPresent: false });
    first.subscribe(['x/#']);
    // The client moves to b; b's claim asks a, and b crashes before its marker is durable.
    nats.cutAfterClaim('b');
    connectMover(b);
    nats.settle();
    // On to c: c asks b (naming a), and is cut off with its marker unsent.
    const c = nats.nodeHarness('c');
    nats.cutAfterClaim('c');
    const onC = connectMover(c);
    nats.settle();
    expect(decodeOwner(nats.sessionValue('mover')!)).toMatchObject({ node: 'c', handoverFrom: 'b' });
    // b is back, its log empty of the client, and the client connects there again: b asks c.
    const restarted = nats.replaceFresh('b');
    const onB = connectMover(restarted);
    nats.settle();
    expect(nats.markers).toEqual(['b asks c']);
    // c comes back: it reads b's marker (it has nothing), then its own goes out.
    nats.restore('c');
    expect(nats.markers).toEqual(['b asks c', 'c asks b']);
    expect(onC.closed).toBe(true);
    expect(connack(onB)).toMatchObject({ sessionPresent: true });
    expect(a.logEvents()).not.toContain('handover-copy-ended');
    expect([...restarted.broker.state.sessions.get('mover')!.subscriptions.keys()]).toEqual(['x/#']);
    expect(a.broker.state.sessions.has('mover')).toBe(false);
  });
});

/** A node whose watch shows `owner`'s claim of the mover at `revision`; the node's requests so far taken. */
function nodeSeeing(nodeId: string, owner: SessionOwner, revision: number): Harness {
  const harness = Harness.clusterNode(nodeId);
  harness.answerClaims = false;
  harness.clusterConnected();
  harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner(owner), revision });
  harness.collect();
  harness.takeClusterRequests();
  return harness;
}

/** The mover connects to `harness` (clean start 0); its claim wins at `revision`. Returns the claim's value and its marker. */
function claimAndMarker(harness: Harness, revision: number): { owner: SessionOwner; marker: PublishDurable; client: TestClient } {
  const client = connectMover(harness);
  const [claim] = harness.takeClusterRequests().filter((request): request is KvSet => request.op === 'kv-set' && request.bucket === sessionsBucket);
  harness.broker.clusterCompleted(harness.nowMs, { requestId: claim!.requestId, ok: true, sequence: revision });
  harness.collect();
  const [marker] = harness.takeClusterRequests().filter((request): request is PublishDurable => request.op === 'publish-durable' && request.subject === handoverMarkerSubject);
  return { owner: decodeOwner(claim!.value!)!, marker: marker!, client };
}

function deliverMarker(harness: Harness, headers: Record<string, string>, streamSequence: number): void {
  harness.broker.clusterMessage(harness.nowMs, { subject: handoverMarkerSubject, headers, payload: new Uint8Array(0), subscriptionId: null, consumerId: 1, streamSequence, redelivered: false });
  harness.collect();
}

/** An answer at the marker of stream sequence 1 to node d, from `from`: a session of the mover, or none. */
function answerTo(harness: Harness, key: string, from: string, session: boolean, prior: Partial<{ prior: true; priorIndex: number }>, claimRevision?: number): void {
  const header = { client: 'mover', from, to: 'd', sequence: 1, nowMs: harness.nowMs, cut: '1-0', willInMs: null, none: !session, ...prior };
  const created: StateRecord = { kind: 'session-created', clientId: 'mover', protocolVersion: 5, expiryIntervalSeconds: 3600 };
  if (claimRevision !== undefined) created.claimRevision = claimRevision;
  const records: StateRecord[] = session ? [created] : [];
  harness.broker.clusterKeyChanged(harness.nowMs, { bucket: handoverBucket, key, value: encodeHandoverState({ header, records }), revision: 1 });
  harness.collect();
}

/** Node a, holding the mover's session (claim 2), reads the marker with `headers` of d's claim 6: its answer's key and header. */
function holderAt(headers: Record<string, string>): { key: string; header: HandoverState['header'] } {
  const a = nodeSeeing('a', { node: 'a', generation: '1.1' }, 1);
  const client = connectMover(a);
  const [claim] = a.takeClusterRequests().filter((request): request is KvSet => request.op === 'kv-set' && request.bucket === sessionsBucket);
  a.broker.clusterCompleted(a.nowMs, { requestId: claim!.requestId, ok: true, sequence: 2 });
  a.collect();
  expect(connack(client)).toMatchObject({ sessionPresent: false });
  a.broker.clusterKeyChanged(a.nowMs, { bucket: sessionsBucket, key: sessionKey('mover'), value: encodeOwner({ node: 'd', generation: '1.2', handoverFrom: 'c', priors: ['b', 'a'] }), revision: 6 });
  a.collect();
  deliverMarker(a, headers, 1);
  const [put] = a.takeClusterRequests().filter((request): request is KvSet => request.op === 'kv-set' && request.bucket === handoverBucket);
  expect(a.broker.state.sessions.has('mover')).toBe(false);
  return { key: put!.key, header: decodeHandoverState(put!.value!)!.header };
}

describe('the chain of priors', () => {
  it("names the node the owner's claim asked and the priors that claim named, nearest first, in the claim's value and its marker", () => {
    const d = nodeSeeing('d', { node: 'c', generation: '1.1', handoverFrom: 'b', priors: ['a'] }, 5);
    const { owner, marker } = claimAndMarker(d, 6);
    expect(owner).toMatchObject({ node: 'd', handoverFrom: 'c', priors: ['b', 'a'] });
    expect(marker.headers).toMatchObject({ 'Keel-Handover-From': 'c', 'Keel-Handover-Prior': 'b', 'Keel-Handover-Priors': 'b,a' });
  });

  it('leaves out of the chain this node and the node it asks, and names each node once', () => {
    const b = nodeSeeing('b', { node: 'c', generation: '1.1', handoverFrom: 'b', priors: ['a', 'e'] }, 5);
    expect(claimAndMarker(b, 6).owner.priors).toEqual(['a', 'e']);
    const e = nodeSeeing('e', { node: 'c', generation: '1.1', handoverFrom: 'a', priors: ['c', 'a', 'e', 'b'] }, 5);
    // A value naming the claim's own node, or a node twice, is none of this encoding's: no priors.
    expect(claimAndMarker(e, 6).owner.priors).toEqual(['a']);
  });

  it('reads a claim of a node of before chains (no priors) as naming only the node it asked, as before', () => {
    expect(decodeOwner(new TextEncoder().encode('{"node":"c","generation":"1.1","handoverFrom":"b"}'))).toEqual({ node: 'c', generation: '1.1', handoverFrom: 'b' });
    const d = nodeSeeing('d', { node: 'c', generation: '1.1', handoverFrom: 'b' }, 5);
    const { owner, marker } = claimAndMarker(d, 6);
    expect(owner.priors).toEqual(['b']);
    expect(marker.headers).toMatchObject({ 'Keel-Handover-Prior': 'b', 'Keel-Handover-Priors': 'b' });
  });

  it(`names at most ${handoverPriorsMax} priors, the nearest, and logs the ones left out`, () => {
    const far = Array.from({ length: handoverPriorsMax }, (_, index) => `p${index + 1}`);
    const d = nodeSeeing('d', { node: 'c', generation: '1.1', handoverFrom: 'p0', priors: far }, 5);
    const { owner } = claimAndMarker(d, 6);
    expect(owner.priors).toEqual(['p0', ...far.slice(0, handoverPriorsMax - 1)]);
    const log = d.logs.find((entry) => entry.event === 'handover-priors-truncated');
    expect(log?.fields).toMatchObject({ clientId: 'mover', leftOut: `p${handoverPriorsMax}` });
  });

  it("answers as the marker's prior of the number it has in the chain, under that prior's key; as the nearest, as before chains", () => {
    const headers = { 'Keel-Origin': 'd', 'Keel-Handover-Client': sessionKey('mover'), 'Keel-Handover-From': 'c', 'Keel-Handover-Revision': '6', 'Keel-Seq': '1-1' };
    const second = holderAt({ ...headers, 'Keel-Handover-Prior': 'b', 'Keel-Handover-Priors': 'b,a' });
    expect(second.key).toBe(`${sessionKey('mover')}.p1-1`);
    expect(second.header).toMatchObject({ to: 'd', none: false, prior: true, priorIndex: 1 });
    // A marker of a node of before chains names one prior: the answer goes under the key of before, without a number.
    const only = holderAt({ ...headers, 'Keel-Handover-Prior': 'a' });
    expect(only.key).toBe(`${sessionKey('mover')}.p1`);
    expect(only.header).toMatchObject({ to: 'd', none: false, prior: true });
    expect(only.header).not.toHaveProperty('priorIndex');
  });

  it('takes the session of the nearest answer that has one, and drops a farther one as late', () => {
    const d = nodeSeeing('d', { node: 'c', generation: '1.1', handoverFrom: 'b', priors: ['a'] }, 5);
    const { marker, client } = claimAndMarker(d, 6);
    deliverMarker(d, marker.headers, 1);
    answerTo(d, priorKey('mover', 1, 1), 'a', true, { prior: true, priorIndex: 1 });
    answerTo(d, handoverKey('mover', 1), 'c', false, {});
    // The asked node has none; b's answer is still to come: d waits for it.
    expect(client.take()).toEqual([]);
    answerTo(d, priorKey('mover', 1), 'b', true, { prior: true });
    expect(connack(client)).toMatchObject({ sessionPresent: true });
    expect(d.logs.find((entry) => entry.event === 'session-adopted')?.fields).toMatchObject({ fromNode: 'b' });
    expect(d.logs.find((entry) => entry.event === 'handover-late')?.fields).toMatchObject({ fromNode: 'a' });
  });

  it('waits for every prior when the asked node has a session, and takes the one made or adopted under the newest claim: a nearer copy of an older one is late (seed 12200045)', () => {
    const d = nodeSeeing('d', { node: 'c', generation: '1.1', handoverFrom: 'b' }, 5);
    const { marker, client } = claimAndMarker(d, 6);
    deliverMarker(d, marker.headers, 1);
    // c, asked, still holds a copy of the session made under claim 2; b, the prior, adopted the
    // client's session under claim 4 (c had given the client a fresh one since, that moved to b).
    answerTo(d, handoverKey('mover', 1), 'c', true, {}, 2);
    expect(client.take()).toEqual([]);
    answerTo(d, priorKey('mover', 1), 'b', true, { prior: true }, 4);
    expect(connack(client)).toMatchObject({ sessionPresent: true });
    expect(d.logs.find((entry) => entry.event === 'session-adopted')?.fields).toMatchObject({ fromNode: 'b' });
    expect(d.logs.find((entry) => entry.event === 'handover-late')?.fields).toMatchObject({ fromNode: 'c' });
  });

  it("takes the asked node's session when it is the newest, and on a tie the nearest", () => {
    for (const priorRevision of [3, 4]) {
      const d = nodeSeeing('d', { node: 'c', generation: '1.1', handoverFrom: 'b' }, 5);
      const { marker, client } = claimAndMarker(d, 6);
      deliverMarker(d, marker.headers, 1);
      answerTo(d, priorKey('mover', 1), 'b', true, { prior: true }, priorRevision);
      answerTo(d, handoverKey('mover', 1), 'c', true, {}, 4);
      expect(connack(client)).toMatchObject({ sessionPresent: true });
      expect(d.logs.find((entry) => entry.event === 'session-adopted')?.fields).toMatchObject({ fromNode: 'c' });
      expect(d.logs.find((entry) => entry.event === 'handover-late')?.fields).toMatchObject({ fromNode: 'b' });
    }
  });

  it('at its deadline goes by the answers that came: a session among them is adopted, not given up for a silent prior', () => {
    const d = nodeSeeing('d', { node: 'c', generation: '1.1', handoverFrom: 'b' }, 5);
    const { marker, client } = claimAndMarker(d, 6);
    deliverMarker(d, marker.headers, 1);
    answerTo(d, handoverKey('mover', 1), 'c', true, {}, 4);
    d.advance(handoverWaitMs - 1);
    expect(client.take()).toEqual([]);
    d.advance(1);
    expect(connack(client)).toMatchObject({ sessionPresent: true });
    expect(d.logs.find((entry) => entry.event === 'session-adopted')?.fields).toMatchObject({ fromNode: 'c' });
    expect(d.logs.some((entry) => entry.event === 'handover-timed-out')).toBe(false);
    // b's answer, when it comes, is late.
    answerTo(d, priorKey('mover', 1), 'b', true, { prior: true }, 3);
    expect(d.logs.find((entry) => entry.event === 'handover-late')?.fields).toMatchObject({ fromNode: 'b' });
  });
});
