/**
 * Proves the durable forms of the session hand-over's rules (src/cluster/session-handover.ts): a
 * serialized state keeps the rules it carries to the next owner (the source's holes and the skip
 * rules of earlier hand-overs) through its bucket encoding, and a skip rule logged in the outbox
 * comes back from its headers with its holes, or not at all when they are damaged. The rules'
 * behaviour under crashes is checked by the cluster simulator (cluster-sim.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { decodeHandoverState, encodeHandoverState, type HandoverState, skipOfHeaders, windowOfHeaders } from '../../src/cluster/session-handover.js';

describe('session hand-over rules', () => {
  it('keeps the holes and carried rules of a state through its encoding', () => {
    const state = {
      header: {
        client: 'c1',
        from: 'n1',
        to: 'n2',
        sequence: 12,
        nowMs: 1_000,
        cut: '4-9',
        willInMs: null,
        none: false,
        holes: [['4-2', '4-5']],
        carried: [{ origin: 'n0', cut: '3-7', holes: [['3-1', '3-4']] }],
      },
      records: [],
    } as unknown as HandoverState;
    const decoded = decodeHandoverState(encodeHandoverState(state));
    expect(decoded).not.toBeNull();
    expect(decoded!.header.holes).toEqual([['4-2', '4-5']]);
    expect(decoded!.header.carried).toEqual([{ origin: 'n0', cut: '3-7', holes: [['3-1', '3-4']] }]);
  });

  it('restores a logged skip rule with its holes, and refuses damaged holes', () => {
    const skip = skipOfHeaders({ client: 'c1', origin: 'n1', cut: '4-9', holes: JSON.stringify([['4-2', '4-5']]) }, 17);
    expect(skip).toEqual({ clientId: 'c1', origin: 'n1', cut: { epoch: 4, ticket: 9 }, holes: [{ from: { epoch: 4, ticket: 2 }, to: { epoch: 4, ticket: 5 } }], outboxId: 17 });
    // A rule logged before holes existed has none.
    expect(skipOfHeaders({ client: 'c1', origin: 'n1', cut: '4-9' }, 18)?.holes).toEqual([]);
    expect(skipOfHeaders({ client: 'c1', origin: 'n1', cut: '4-9', holes: '[[' }, 19)).toBeNull();
    // An empty interval holds nothing and is dropped.
    expect(skipOfHeaders({ client: 'c1', origin: 'n1', cut: '4-9', holes: JSON.stringify([['4-5', '4-5']]) }, 20)?.holes).toEqual([]);
  });

  it('restores a logged window, grown or not, from its headers', () => {
    expect(windowOfHeaders({ client: 'c1', from: '2-3', to: '5-1' }, 21)).toEqual({ clientId: 'c1', from: { epoch: 2, ticket: 3 }, to: { epoch: 5, ticket: 1 }, outboxId: 21 });
    expect(windowOfHeaders({ client: 'c1', from: '2-3' }, 22)).toBeNull();
  });
});
