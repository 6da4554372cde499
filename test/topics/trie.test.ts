/**
 * Proves the subscription trie's matching rules and bookkeeping on hand-picked cases: exact and
 * wildcard matches, `#` at its parent level, empty levels, the `$` rule, overlapping filters,
 * replace-versus-add, unsubscribe and pruning (node count returns to one), shared groups reported
 * once per group, and round-robin picking with eligibility and member removal. A recording sink
 * collects what match reports so each test can compare it with the expected set and order.
 */
import { describe, expect, it } from 'vitest';
import { type MatchSink, pickSharedMember, type SharedGroup, SubscriptionTrie, type TrieEntry } from '../../src/topics/trie.js';

interface Recorded {
  subscribers: string[];
  groups: SharedGroup<number>[];
}

function record(trie: SubscriptionTrie<number>, topic: string): Recorded {
  const recorded: Recorded = { subscribers: [], groups: [] };
  const sink: MatchSink<number> = {
    subscriber(entry, filter) {
      recorded.subscribers.push(`${filter}@${entry.key}=${entry.value}`);
    },
    sharedGroup(group) {
      recorded.groups.push(group);
    },
  };
  trie.match(topic, sink);
  return recorded;
}

/** The filters (as subscribed by key 'k') that match `topic`, sorted. */
function matchingFilters(filters: string[], topic: string): string[] {
  const trie = new SubscriptionTrie<number>();
  for (const [index, filter] of filters.entries()) trie.subscribe(filter, 'k', index);
  return record(trie, topic)
    .subscribers.map((line) => line.slice(0, line.indexOf('@')))
    .sort();
}

describe('SubscriptionTrie matching', () => {
  const filters = ['a', 'a/b', 'a/+', 'a/#', '+', '#', '+/b', '+/+', 'a/b/c', 'a/+/c', '+/#', 'b'];

  it('matches exact filters and wildcards by level', () => {
    expect(matchingFilters(filters, 'a/b')).toEqual(['#', '+/#', '+/+', '+/b', 'a/#', 'a/+', 'a/b'].sort());
    expect(matchingFilters(filters, 'a/b/c')).toEqual(['#', '+/#', 'a/#', 'a/+/c', 'a/b/c'].sort());
    expect(matchingFilters(filters, 'c')).toEqual(['#', '+', '+/#'].sort());
    expect(matchingFilters(filters, 'c/d/e/f')).toEqual(['#', '+/#']);
  });

  it("matches '#' at its parent level: a/# matches a", () => {
    expect(matchingFilters(filters, 'a')).toEqual(['#', '+', '+/#', 'a', 'a/#'].sort());
    expect(matchingFilters(['a/b/#'], 'a/b')).toEqual(['a/b/#']);
    expect(matchingFilters(['a/b/#'], 'a')).toEqual([]);
  });

  it("matches '+' on exactly one level, an empty one included", () => {
    expect(matchingFilters(['a/+/b'], 'a//b')).toEqual(['a/+/b']);
    expect(matchingFilters(['+/+'], '/')).toEqual(['+/+']);
    expect(matchingFilters(['+'], '/')).toEqual([]);
    expect(matchingFilters(['a/+'], 'a/')).toEqual(['a/+']);
    expect(matchingFilters(['a/+'], 'a')).toEqual([]);
    expect(matchingFilters(['a/+'], 'a/b/c')).toEqual([]);
    expect(matchingFilters(['+/a'], '/a')).toEqual(['+/a']);
  });

  it('keeps empty levels distinct from missing ones', () => {
    expect(matchingFilters(['a//b', 'a/b'], 'a//b')).toEqual(['a//b']);
    expect(matchingFilters(['a//b', 'a/b'], 'a/b')).toEqual(['a/b']);
    expect(matchingFilters(['/a', 'a', 'a/'], '/a')).toEqual(['/a']);
    expect(matchingFilters(['/a', 'a', 'a/'], 'a/')).toEqual(['a/']);
    expect(matchingFilters(['//#'], '//')).toEqual(['//#']);
  });

  it('does not match wildcard-first filters against $ topics [MQTT-4.7.2-1]', () => {
    const all = ['#', '+', '+/#', '+/monitor', '$SYS/#', '$SYS/+', '$SYS/monitor', '$SYS', '$share/g/#'];
    expect(matchingFilters(all, '$SYS/monitor')).toEqual(['$SYS/#', '$SYS/+', '$SYS/monitor'].sort());
    expect(matchingFilters(all, '$SYS')).toEqual(['$SYS', '$SYS/#'].sort());
    expect(matchingFilters(['a/+', 'a/#'], 'a/$x')).toEqual(['a/#', 'a/+']);
  });

  it('reports each subscriber once per overlapping filter, in insertion order', () => {
    const trie = new SubscriptionTrie<number>();
    trie.subscribe('a/b', 'one', 1);
    trie.subscribe('a/b', 'two', 2);
    trie.subscribe('a/+', 'one', 3);
    trie.subscribe('a/b', 'three', 4);
    expect(record(trie, 'a/b').subscribers).toEqual(['a/b@one=1', 'a/b@two=2', 'a/b@three=4', 'a/+@one=3']);
    expect(record(trie, 'a/c').subscribers).toEqual(['a/+@one=3']);
    expect(record(trie, 'b').subscribers).toEqual([]);
  });
});

describe('SubscriptionTrie bookkeeping', () => {
  it('subscribe adds or replaces, unsubscribe removes, size and get follow', () => {
    const trie = new SubscriptionTrie<number>();
    expect(trie.subscribe('a/+', 's1', 1)).toBe(true);
    expect(trie.subscribe('a/+', 's1', 2)).toBe(false);
    expect(trie.size).toBe(1);
    expect(trie.get('a/+', 's1')).toBe(2);
    expect(trie.get('a/+', 's2')).toBeUndefined();
    expect(trie.get('a/b', 's1')).toBeUndefined();
    expect(trie.subscribe('$share/g/a/+', 's1', 3)).toBe(true);
    expect(trie.size).toBe(2);
    expect(trie.get('$share/g/a/+', 's1')).toBe(3);
    expect(trie.get('$share/h/a/+', 's1')).toBeUndefined();
    expect(trie.unsubscribe('a/+', 's2')).toBe(false);
    expect(trie.unsubscribe('a/b', 's1')).toBe(false);
    expect(trie.unsubscribe('a/+', 's1')).toBe(true);
    expect(trie.unsubscribe('a/+', 's1')).toBe(false);
    expect(trie.size).toBe(1);
    expect(record(trie, 'a/x').subscribers).toEqual([]);
    expect(record(trie, 'a/x').groups).toHaveLength(1);
  });

  it('prunes every node a subscription created once it is gone', () => {
    const trie = new SubscriptionTrie<number>();
    const filters = ['a/b/c', 'a/b', 'a/+/#', '#', '+', 'x//y', '$share/g/a/b/c', '$share/h/q/#'];
    for (const [index, filter] of filters.entries()) trie.subscribe(filter, 'k', index);
    expect(trie.nodeCount).toBeGreaterThan(8);
    for (const filter of filters) expect(trie.unsubscribe(filter, 'k')).toBe(true);
    expect(trie.size).toBe(0);
    expect(trie.nodeCount).toBe(1);
  });

  it('keeps shared nodes alive while other entries use them', () => {
    const trie = new SubscriptionTrie<number>();
    trie.subscribe('a/b', 'k', 1);
    trie.subscribe('a/b/c', 'k', 2);
    const nodes = trie.nodeCount;
    trie.subscribe('a/b/c/d', 'k', 3);
    trie.unsubscribe('a/b/c/d', 'k');
    expect(trie.nodeCount).toBe(nodes);
    trie.unsubscribe('a/b', 'k');
    expect(trie.nodeCount).toBe(nodes);
    expect(record(trie, 'a/b/c').subscribers).toEqual(['a/b/c@k=2']);
  });

  it('refuses invalid filters and modification from inside a match (programmer errors)', () => {
    const trie = new SubscriptionTrie<number>();
    expect(() => trie.subscribe('a/#/b', 'k', 1)).toThrow(/valid filter/);
    expect(() => trie.subscribe('$share/g', 'k', 1)).toThrow(/valid filter/);
    expect(() => trie.subscribe('', 'k', 1)).toThrow(/valid filter/);
    trie.subscribe('a', 'k', 1);
    const sink: MatchSink<number> = {
      subscriber() {
        trie.unsubscribe('a', 'k');
      },
      sharedGroup() {},
    };
    expect(() => trie.match('a', sink)).toThrow(/inside a match/);
    expect(trie.size).toBe(1);
  });
});

describe('shared subscriptions', () => {
  it('reports one group per (share name, filter), with members in subscription order', () => {
    const trie = new SubscriptionTrie<number>();
    trie.subscribe('$share/g/a/+', 's1', 1);
    trie.subscribe('$share/g/a/+', 's2', 2);
    trie.subscribe('$share/h/a/+', 's1', 3);
    trie.subscribe('$share/g/a/#', 's3', 4);
    trie.subscribe('a/+', 's1', 5);
    const result = record(trie, 'a/b');
    expect(result.subscribers).toEqual(['a/+@s1=5']);
    const described = result.groups.map((group) => `${group.name}:${group.filter}:${group.members.map((m) => m.key).join(',')}`);
    expect(described.sort()).toEqual(['g:a/#:s3', 'g:a/+:s1,s2', 'h:a/+:s1']);
    expect(record(trie, 'a').groups.map((group) => `${group.name}:${group.filter}`)).toEqual(['g:a/#']);
  });

  it('applies the $ rule to shared filters too', () => {
    const trie = new SubscriptionTrie<number>();
    trie.subscribe('$share/g/#', 's1', 1);
    trie.subscribe('$share/g/$SYS/#', 's1', 2);
    expect(record(trie, '$SYS/x').groups.map((group) => group.filter)).toEqual(['$SYS/#']);
  });

  it('keeps a replaced member in place and drops the group with its last member', () => {
    const trie = new SubscriptionTrie<number>();
    trie.subscribe('$share/g/t', 's1', 1);
    trie.subscribe('$share/g/t', 's2', 2);
    trie.subscribe('$share/g/t', 's1', 9);
    const [group] = record(trie, 't').groups;
    expect(group!.members.map((m) => `${m.key}=${m.value}`)).toEqual(['s1=9', 's2=2']);
    trie.unsubscribe('$share/g/t', 's1');
    trie.unsubscribe('$share/g/t', 's2');
    expect(record(trie, 't').groups).toEqual([]);
    expect(trie.nodeCount).toBe(1);
  });
});

describe('pickSharedMember', () => {
  function groupOf(trie: SubscriptionTrie<number>, topic: string): SharedGroup<number> {
    const groups = record(trie, topic).groups;
    expect(groups).toHaveLength(1);
    return groups[0]!;
  }
  function picks(group: SharedGroup<number>, count: number, eligible: (entry: TrieEntry<number>) => boolean = () => true): string[] {
    const chosen: string[] = [];
    for (let index = 0; index < count; index++) chosen.push(pickSharedMember(group, eligible)?.key ?? '-');
    return chosen;
  }
  function trieWith(keys: string[]): SubscriptionTrie<number> {
    const trie = new SubscriptionTrie<number>();
    for (const [index, key] of keys.entries()) trie.subscribe('$share/g/t', key, index);
    return trie;
  }

  it('round-robins over members in subscription order', () => {
    const group = groupOf(trieWith(['a', 'b', 'c']), 't');
    expect(picks(group, 7)).toEqual(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  });

  it('skips ineligible members without giving them credit, and gives undefined when none is eligible', () => {
    const group = groupOf(trieWith(['a', 'b', 'c']), 't');
    expect(picks(group, 4, (entry) => entry.key !== 'b')).toEqual(['a', 'c', 'a', 'c']);
    const cursor = group.cursor;
    expect(picks(group, 2, () => false)).toEqual(['-', '-']);
    expect(group.cursor).toBe(cursor);
    expect(picks(group, 3)).toEqual(['a', 'b', 'c']); // c was picked last, so a is due
  });

  it('keeps the rotation when members are removed before, at and after the cursor', () => {
    const trie = trieWith(['a', 'b', 'c', 'd', 'e']);
    const group = groupOf(trie, 't');
    expect(picks(group, 2)).toEqual(['a', 'b']); // next due: c
    trie.unsubscribe('$share/g/t', 'a'); // before the cursor
    expect(picks(group, 1)).toEqual(['c']); // next due: d
    trie.unsubscribe('$share/g/t', 'd'); // at the cursor: its successor is due
    expect(picks(group, 1)).toEqual(['e']); // next due: b (wrapped)
    trie.unsubscribe('$share/g/t', 'e'); // after the cursor
    expect(picks(group, 3)).toEqual(['b', 'c', 'b']);
  });

  it('lets a member that joins after the last member was picked go next', () => {
    const trie = trieWith(['a', 'b', 'c']);
    const group = groupOf(trie, 't');
    expect(picks(group, 2)).toEqual(['a', 'b']); // next due: c (last)
    trie.unsubscribe('$share/g/t', 'c'); // the cursor now rests one past the end
    expect(group.cursor).toBe(2);
    trie.subscribe('$share/g/t', 'd', 9);
    expect(picks(group, 4)).toEqual(['d', 'a', 'b', 'd']);
    trie.subscribe('$share/g/t', 'e', 10); // b, then d were picked: e is after d, so due next
    expect(picks(group, 2)).toEqual(['e', 'a']);
  });

  it('is fair: over many picks every eligible member gets the same share', () => {
    const group = groupOf(trieWith(['a', 'b', 'c', 'd']), 't');
    const counts = new Map<string, number>();
    for (const key of picks(group, 400, (entry) => entry.key !== 'c')) counts.set(key, (counts.get(key) ?? 0) + 1);
    expect([...counts.entries()].sort()).toEqual([
      ['a', 134],
      ['b', 133],
      ['d', 133],
    ]);
  });
});
