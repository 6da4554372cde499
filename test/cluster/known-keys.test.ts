/**
 * Proves that the registry's store of known keys (src/cluster/known-keys.ts) gives back exactly
 * what was put, whichever form it kept: plain claims as numbers (any node among the first 64
 * named, revisions small and past the small-integer range), and as objects everything that says
 * more (a deletion, an undecodable owner, a hand-over, an earlier marker, another or an unknown line or line node, priors, a marker passed), a 65th
 * node, a revision too large to share a number with a node index; that a newer entry replaces an
 * older one in either form; and that clearing forgets them all while node names stay indexed.
 */
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { type KnownKey, KnownKeys } from '../../src/cluster/known-keys.js';

function plain(revision: number, node: string): KnownKey {
  return { revision, present: true, node, handoverFrom: null, markerRevision: revision, lineageRevision: revision, lineageNode: node, priors: [], markerPassed: false };
}

const knownKey: fc.Arbitrary<KnownKey> = fc.oneof(
  fc
    .tuple(fc.oneof(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })), fc.constantFrom('n0', 'n1', 'node-with-a-long-name'))
    .map(([revision, node]) => plain(revision, node)),
  // A plain claim but for one thing that must keep it whole.
  fc
    .tuple(
      fc.integer({ min: 2, max: 1_000 }),
      fc.constantFrom('n0', 'n1'),
      fc.constantFrom('markerPassed', 'handoverFrom', 'deleted', 'undecodable', 'earlierMarker', 'otherLine', 'unknownLine', 'otherLineNode', 'unknownLineNode', 'priors'),
    )
    .map(([revision, node, extra]): KnownKey => {
      const key = plain(revision, node);
      if (extra === 'markerPassed') return { ...key, markerPassed: true };
      if (extra === 'handoverFrom') return { ...key, handoverFrom: 'n2' };
      if (extra === 'priors') return { ...key, priors: ['n2'] };
      if (extra === 'deleted') return { ...key, present: false, node: null };
      if (extra === 'undecodable') return { ...key, node: null };
      if (extra === 'otherLine') return { ...key, lineageRevision: revision - 1 };
      if (extra === 'unknownLine') return { ...key, lineageRevision: null };
      if (extra === 'otherLineNode') return { ...key, lineageNode: 'n2' };
      if (extra === 'unknownLineNode') return { ...key, lineageNode: null };
      return { ...key, markerRevision: revision - 1 };
    }),
  fc.record({
    revision: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    present: fc.boolean(),
    node: fc.option(fc.constantFrom('n0', 'n1', 'n2'), { nil: null }),
    handoverFrom: fc.option(fc.constantFrom('n0', 'n1'), { nil: null }),
    markerRevision: fc.integer({ min: 1, max: 1_000 }),
    lineageRevision: fc.option(fc.integer({ min: 1, max: 1_000 }), { nil: null }),
    lineageNode: fc.option(fc.constantFrom('n0', 'n1', 'n2'), { nil: null }),
    priors: fc.constantFrom([], ['n2'], ['n2', 'n3']),
    markerPassed: fc.boolean(),
  }),
);

describe('known keys', () => {
  test('every entry reads back as it was put, and its revision alone likewise', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), knownKey), { maxLength: 30 }), (puts) => {
        const keys = new KnownKeys();
        const expected = new Map<string, KnownKey>();
        for (const [clientId, key] of puts) {
          keys.set(clientId, key);
          expected.set(clientId, key);
        }
        expect(keys.size).toBe(expected.size);
        for (const clientId of ['a', 'b', 'c', 'd', 'e']) {
          expect(keys.get(clientId)).toEqual(expected.get(clientId));
          expect(keys.revisionOf(clientId)).toBe(expected.get(clientId)?.revision);
        }
      }),
      { numRuns: 5_000 },
    );
  });

  test('nodes past the 64th, and revisions past what a number can share with a node index, are kept whole', () => {
    const keys = new KnownKeys();
    for (let index = 0; index < 70; index++) keys.set(`client-${index}`, plain(index + 1, `node-${index}`));
    for (let index = 0; index < 70; index++) expect(keys.get(`client-${index}`)).toEqual(plain(index + 1, `node-${index}`));
    const huge = Number.MAX_SAFE_INTEGER - 1;
    keys.set('huge', plain(huge, 'node-0'));
    expect(keys.get('huge')).toEqual(plain(huge, 'node-0'));
    expect(keys.revisionOf('huge')).toBe(huge);
    keys.clear();
    expect(keys.size).toBe(0);
    expect(keys.get('client-0')).toBeUndefined();
    keys.set('again', plain(3, 'node-5'));
    expect(keys.get('again')).toEqual(plain(3, 'node-5'));
  });
});
