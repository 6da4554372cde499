/**
 * Proves with fast-check that the trie agrees with plain reference models on random inputs.
 *
 * Topics and filters are drawn from a small alphabet of levels (`a`, `b`, the empty level, `$x`,
 * `$SYS`, plus `+` and a trailing `#` for filters, optionally behind `$share/g|h/`) so that
 * matches, overlaps and `$` topics happen often. The reference matcher is a split-and-compare
 * function written here, independent of the trie; the reference store is a Map of Maps, whose
 * insertion order is the order the trie must report. After every random sequence of subscribe /
 * unsubscribe we compare return values, size, get, every match (subscribers per filter in order,
 * shared groups with their members in order), and that removing everything prunes the trie back
 * to its root. A second model checks round-robin picking against a declarative rule written with
 * tombstones. matchesFilter is checked against the same reference matcher.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { matchesFilter } from '../../src/topics/match-filter.js';
import { pickSharedMember, type SharedGroup, SubscriptionTrie } from '../../src/topics/trie.js';
import { checkTopicFilter, checkTopicName } from '../../src/topics/validate.js';

/** Split-and-compare: the textbook reading of the matching rules. */
function referenceMatches(fullFilter: string, topic: string): boolean {
  let filterLevels = fullFilter.split('/');
  if (filterLevels[0] === '$share' && filterLevels.length >= 3) filterLevels = filterLevels.slice(2);
  const topicLevels = topic.split('/');
  if (topic.startsWith('$') && (filterLevels[0] === '+' || filterLevels[0] === '#')) return false;
  for (let index = 0; index < filterLevels.length; index++) {
    if (filterLevels[index] === '#') return true;
    if (index >= topicLevels.length) return false;
    if (filterLevels[index] !== '+' && filterLevels[index] !== topicLevels[index]) return false;
  }
  return filterLevels.length === topicLevels.length;
}

const topicLevel = fc.constantFrom('a', 'b', '', '$x', '$SYS');
const topicArbitrary = fc
  .array(topicLevel, { minLength: 1, maxLength: 4 })
  .map((levels) => levels.join('/'))
  .filter((topic) => topic.length > 0);
const filterArbitrary = fc
  .tuple(fc.constantFrom('', '', '', '$share/g/', '$share/h/'), fc.array(fc.constantFrom('a', 'b', '', '$x', '$SYS', '+', '+'), { minLength: 0, maxLength: 3 }), fc.boolean())
  .map(([prefix, levels, withHash]) => prefix + (withHash ? [...levels, '#'] : levels).join('/'))
  .filter((filter) => checkTopicFilter(filter, { topicBytesMax: 1000, topicLevelsMax: 100 }) === null);
const keyArbitrary = fc.constantFrom('k1', 'k2', 'k3');

type Operation = { kind: 'subscribe'; filter: string; key: string; value: number } | { kind: 'unsubscribe'; filter: string; key: string };
const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant('subscribe' as const), filter: filterArbitrary, key: keyArbitrary, value: fc.nat(99) }),
  fc.record({ kind: fc.constant('unsubscribe' as const), filter: filterArbitrary, key: keyArbitrary }),
);

/** Full filter → key → value, in insertion order (a replaced value keeps its place, like the trie). */
type Model = Map<string, Map<string, number>>;

function apply(trie: SubscriptionTrie<number>, model: Model, operation: Operation): void {
  const keys = model.get(operation.filter) ?? new Map<string, number>();
  if (operation.kind === 'subscribe') {
    expect(trie.subscribe(operation.filter, operation.key, operation.value)).toBe(!keys.has(operation.key));
    keys.set(operation.key, operation.value);
    model.set(operation.filter, keys);
  } else {
    expect(trie.unsubscribe(operation.filter, operation.key)).toBe(keys.has(operation.key));
    keys.delete(operation.key);
    if (keys.size === 0) model.delete(operation.filter);
  }
}

/** What the trie reports for a topic, as sorted lines; member and subscriber order kept inside. */
function observed(trie: SubscriptionTrie<number>, topic: string): string[] {
  const perFilter = new Map<string, string[]>();
  const groups: string[] = [];
  trie.match(topic, {
    subscriber(entry, filter) {
      const list = perFilter.get(filter) ?? [];
      list.push(`${entry.key}=${entry.value}`);
      perFilter.set(filter, list);
    },
    sharedGroup(group: SharedGroup<number>) {
      groups.push(`$share/${group.name}/${group.filter} ${group.members.map((m) => `${m.key}=${m.value}`).join(',')}`);
    },
  });
  const lines = [...perFilter.entries()].map(([filter, keys]) => `${filter} ${keys.join(',')}`);
  return [...lines, ...groups].sort();
}

function expected(model: Model, topic: string): string[] {
  const lines: string[] = [];
  for (const [filter, keys] of model) {
    if (!referenceMatches(filter, topic)) continue;
    lines.push(`${filter} ${[...keys.entries()].map(([key, value]) => `${key}=${value}`).join(',')}`);
  }
  return lines.sort();
}

function modelSize(model: Model): number {
  let total = 0;
  for (const keys of model.values()) total += keys.size;
  return total;
}

describe('trie against reference models', () => {
  it('generated filters and topics are valid, so the properties test what the broker will feed', () => {
    fc.assert(
      fc.property(filterArbitrary, topicArbitrary, (filter, topic) => {
        expect(checkTopicFilter(filter, { topicBytesMax: 1000, topicLevelsMax: 100 })).toBeNull();
        expect(checkTopicName(topic, { topicBytesMax: 1000, topicLevelsMax: 100 })).toBeNull();
      }),
      { numRuns: 200 },
    );
  });

  it('matches exactly what split-and-compare matches, after any subscribe/unsubscribe sequence', () => {
    let matchedSomething = 0;
    fc.assert(
      fc.property(fc.array(operationArbitrary, { minLength: 5, maxLength: 60 }), fc.array(topicArbitrary, { minLength: 1, maxLength: 8 }), (operations, topics) => {
        const trie = new SubscriptionTrie<number>();
        const model: Model = new Map();
        for (const operation of operations) apply(trie, model, operation);
        expect(trie.size).toBe(modelSize(model));
        for (const [filter, keys] of model) {
          for (const [key, value] of keys) expect(trie.get(filter, key)).toBe(value);
        }
        for (const topic of topics) {
          const want = expected(model, topic);
          if (want.length > 0) matchedSomething++;
          expect(observed(trie, topic)).toEqual(want);
        }
        for (const [filter, keys] of [...model]) {
          for (const key of [...keys.keys()]) apply(trie, model, { kind: 'unsubscribe', filter, key });
        }
        expect(trie.size).toBe(0);
        expect(trie.nodeCount).toBe(1);
      }),
      { numRuns: 300 },
    );
    // The alphabet is small on purpose: most runs must exercise real matches.
    expect(matchedSomething).toBeGreaterThan(300);
  });

  it('reports in the same order for the same operation sequence (replayable)', () => {
    fc.assert(
      fc.property(fc.array(operationArbitrary, { maxLength: 40 }), topicArbitrary, (operations, topic) => {
        const runs = [0, 1].map(() => {
          const trie = new SubscriptionTrie<number>();
          for (const operation of operations) {
            if (operation.kind === 'subscribe') trie.subscribe(operation.filter, operation.key, operation.value);
            else trie.unsubscribe(operation.filter, operation.key);
          }
          const sequence: string[] = [];
          trie.match(topic, {
            subscriber: (entry, filter) => sequence.push(`${filter}@${entry.key}`),
            sharedGroup: (group) => sequence.push(`${group.name}:${group.filter}`),
          });
          return sequence;
        });
        expect(runs[1]).toEqual(runs[0]);
      }),
      { numRuns: 100 },
    );
  });

  it('matchesFilter agrees with split-and-compare', () => {
    fc.assert(
      fc.property(filterArbitrary, topicArbitrary, (filter, topic) => {
        expect(matchesFilter(filter, topic)).toBe(referenceMatches(filter, topic));
      }),
      { numRuns: 2000 },
    );
  });
});

type GroupStep = { kind: 'join'; key: string } | { kind: 'leave'; key: string } | { kind: 'pick'; eligibleMask: number };
const groupStepArbitrary: fc.Arbitrary<GroupStep> = fc.oneof(
  fc.record({ kind: fc.constant('join' as const), key: fc.constantFrom('m1', 'm2', 'm3', 'm4', 'm5') }),
  fc.record({ kind: fc.constant('leave' as const), key: fc.constantFrom('m1', 'm2', 'm3', 'm4', 'm5') }),
  fc.record({ kind: fc.constant('pick' as const), eligibleMask: fc.nat(31) }),
  fc.record({ kind: fc.constant('pick' as const), eligibleMask: fc.constant(31) }),
);

/**
 * The rotation rule stated without a cursor: keep every membership ever created as a slot in
 * join order (a leave tombstones its slot, a re-join makes a new slot at the end); a pick returns
 * the first live, eligible slot after the slot picked last, cyclically.
 */
class RotationModel {
  private readonly slots: { key: string; live: boolean }[] = [];
  private lastPicked = -1;

  join(key: string): void {
    if (!this.slots.some((slot) => slot.live && slot.key === key)) this.slots.push({ key, live: true });
  }
  leave(key: string): void {
    const slot = this.slots.find((candidate) => candidate.live && candidate.key === key);
    if (slot !== undefined) slot.live = false;
  }
  pick(eligible: (key: string) => boolean): string | undefined {
    const count = this.slots.length;
    for (let step = 1; step <= count; step++) {
      const index = (this.lastPicked + step) % count;
      const slot = this.slots[index]!;
      if (slot.live && eligible(slot.key)) {
        this.lastPicked = index;
        return slot.key;
      }
    }
    return undefined;
  }
}

describe('shared group rotation against a model', () => {
  it('picks the first eligible member after the last pick, through joins and leaves', () => {
    fc.assert(
      fc.property(fc.array(groupStepArbitrary, { minLength: 20, maxLength: 80 }), (steps) => {
        const trie = new SubscriptionTrie<number>();
        const model = new RotationModel();
        const filter = '$share/g/t';
        let group: SharedGroup<number> | undefined;
        for (const step of steps) {
          if (step.kind === 'join') {
            trie.subscribe(filter, step.key, 0);
            model.join(step.key);
          } else if (step.kind === 'leave') {
            trie.unsubscribe(filter, step.key);
            model.leave(step.key);
          } else {
            const eligible = (key: string): boolean => ((step.eligibleMask >> (Number(key.slice(1)) - 1)) & 1) === 1;
            group = undefined;
            trie.match('t', { subscriber: () => {}, sharedGroup: (found) => (group = found) });
            const want = model.pick(eligible);
            const got = group === undefined ? undefined : pickSharedMember(group, (entry) => eligible(entry.key))?.key;
            expect(got).toBe(want);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
