/**
 * Proves that a hand-over given up (session present 0, a fresh session, `handover-timed-out`)
 * leaves no copy of the client's older session that a later move can take for its session: three
 * clustered cores over the model NATS of model-nats.ts, stepped by hand, one node's clock moved
 * past `handoverWaitMs` to make it give up.
 *
 * The shape: the client's session S is on a, and a is cut off. The client moves to b, whose claim
 * asks a; b gives up and gives the client a fresh session F. The client moves on (to c, or back
 * to a), a comes back behind the stream (its watch shows the newest claim, its stream consumer
 * has not reached b's marker yet), and the client's move to a has its marker held in a's outbox
 * (a cut off again: as a marker lost in a crash, it is not in the stream before the next one).
 * The client then moves to b, whose claim asks a. At b's old marker a is asked by the newest claim
 * for the session and keeps S for it, then hands S over at the newest marker: b takes it over F,
 * session present 1 with the older session's subscription. Before the give-up wrote a claim, the
 * newest claim's line was still S's (the give-up asked a node for the session, so it started no
 * line), and a could not tell S from the client's session.
 */
import { describe, expect, it } from 'vitest';
import { handoverWaitMsDefault } from '../../src/config.js';
import type { Harness } from '../broker/harness.js';
import { connack, connectMover, ModelNats } from './model-nats.js';

/** The client's session on a (subscribed to `old/#`), a cut off, and a fresh session on b (subscribed to `new/#`) after b gave up asking a. */
function givenUp(nats: ModelNats): { a: Harness; b: Harness } {
  const a = nats.nodeHarness('a');
  const b = nats.nodeHarness('b');
  const first = connectMover(a);
  nats.settle();
  expect(connack(first)).toMatchObject({ sessionPresent: false });
  first.subscribe(['old/#']);
  nats.cut('a');
  const onB = connectMover(b);
  nats.settle();
  expect(nats.markers).toEqual(['b asks a']);
  b.advance(handoverWaitMsDefault + 1);
  nats.settle();
  expect(b.logEvents()).toContain('handover-timed-out');
  expect(connack(onB)).toMatchObject({ sessionPresent: false });
  onB.subscribe(['new/#']);
  nats.settle();
  return { a, b };
}

/**
 * a comes back (its watch replays the bucket, its stream consumer behind it), the client moves to a,
 * which is cut off with its marker unsent, and back to b, which asks a: b must hand the client the
 * fresh session (`new/#`), and a must hold no copy.
 */
function backThroughA(nats: ModelNats, a: Harness, b: Harness): void {
  nats.holdStream('a');
  nats.restore('a', { replay: true });
  nats.cutAfterClaim('a');
  connectMover(a);
  nats.settle();
  const back = connectMover(b);
  nats.settle();
  nats.restore('a');
  nats.releaseStream('a');
  expect(connack(back)).toMatchObject({ sessionPresent: true });
  expect([...b.broker.state.sessions.get('mover')!.subscriptions.keys()]).toEqual(['new/#']);
  expect(a.broker.state.sessions.has('mover')).toBe(false);
}

// Both failed before the give-up was written into keel-sessions (b took a's older session:
// subscription old/#, not new/#).
describe('a hand-over given up', () => {
  it('leaves no older copy that a later move takes over the fresh session (three nodes, the copy on the node asked, the fresh session moved on)', () => {
    const nats = new ModelNats();
    for (const id of ['a', 'b', 'c']) nats.add(id);
    const { a, b } = givenUp(nats);
    const c = nats.nodeHarness('c');
    // The client moves on to c, which has read b's marker: c asks b and gets the fresh session.
    const onC = connectMover(c);
    nats.settle();
    expect(connack(onC)).toMatchObject({ sessionPresent: true });
    expect([...c.broker.state.sessions.get('mover')!.subscriptions.keys()]).toEqual(['new/#']);
    // a's watch replays only the newest claim (c's).
    backThroughA(nats, a, b);
    // a never saw the give-up's claim (its watch replayed c's), whose line c's claim carries: a
    // ended its copy at b's old marker as older than that line.
    expect(a.logs.find((entry) => entry.event === 'session-moved')?.fields).toMatchObject({ clientId: 'mover', stale: true, copyRevision: 1, lineRevision: 2 });
  });

  it('leaves no older copy that a later move takes over the fresh session (two nodes, the copy on the node asked)', () => {
    const nats = new ModelNats();
    for (const id of ['a', 'b']) nats.add(id);
    const { a, b } = givenUp(nats);
    backThroughA(nats, a, b);
    // a's watch showed the give-up's claim, which asks no one: a ended its copy there.
    expect(a.logs.find((entry) => entry.event === 'session-moved')?.fields).toEqual({ clientId: 'mover', toNode: 'b' });
  });
});
