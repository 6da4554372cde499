/**
 * Proves the topic name and topic filter rules one by one: each test feeds strings that sit just
 * inside and just outside one rule (emptiness, wildcards, U+0000, surrogates, byte and level
 * limits, wildcard placement, the `$share` form) and checks accept/reject, plus the helpers
 * parseSharedFilter and hasWildcard.
 */
import { describe, expect, it } from 'vitest';
import { checkTopicFilter, checkTopicName, hasWildcard, parseSharedFilter } from '../../src/topics/validate.js';

const limits = { topicBytesMax: 1024, topicLevelsMax: 64 };

describe('checkTopicName', () => {
  it('accepts ordinary, $-prefixed, empty-level and non-ASCII names', () => {
    for (const topic of ['a', 'a/b/c', '/', '//', 'a//b', '/a', 'a/', '$SYS/broker', 'ä/€/😀', ' ']) {
      expect(checkTopicName(topic, limits), topic).toBeNull();
    }
  });

  it('rejects the empty name [MQTT-4.7.3-1]', () => {
    expect(checkTopicName('', limits)).toMatch(/empty/);
  });

  it('rejects wildcards anywhere in a name [MQTT-4.7.1-1]', () => {
    for (const topic of ['+', '#', 'a/+', 'a/#', 'a+b', 'a#', '+/a', 'sport/tennis#']) {
      expect(checkTopicName(topic, limits), topic).toMatch(/wildcard/);
    }
  });

  it('rejects U+0000 [MQTT-4.7.3-2]', () => {
    expect(checkTopicName('a\u0000b', limits)).toMatch(/U\+0000/);
    expect(checkTopicName('\u0000', limits)).toMatch(/U\+0000/);
  });

  it('rejects lone surrogates but accepts a surrogate pair', () => {
    expect(checkTopicName('a\ud800', limits)).toMatch(/surrogate/);
    expect(checkTopicName('\udc00a', limits)).toMatch(/surrogate/);
    expect(checkTopicName('\ud800x', limits)).toMatch(/surrogate/);
    expect(checkTopicName('\ud83d\ude00', limits)).toBeNull();
  });

  it('counts UTF-8 bytes, not UTF-16 units, against topicBytesMax', () => {
    const small = { topicBytesMax: 4, topicLevelsMax: 64 };
    expect(checkTopicName('abcd', small)).toBeNull();
    expect(checkTopicName('abcde', small)).toMatch(/4 bytes/);
    expect(checkTopicName('éé', small)).toBeNull(); // 2 + 2 bytes
    expect(checkTopicName('éée', small)).toMatch(/bytes/); // 5 bytes
    expect(checkTopicName('€a', small)).toBeNull(); // 3 + 1 bytes
    expect(checkTopicName('€é', small)).toMatch(/bytes/); // 3 + 2 bytes
    expect(checkTopicName('😀', small)).toBeNull(); // one 4-byte code point in two UTF-16 units
    expect(checkTopicName('😀a', small)).toMatch(/bytes/);
    for (const text of ['abcd', 'éé', '€a', '😀', 'a€']) {
      expect(new TextEncoder().encode(text).length).toBeLessThanOrEqual(4);
    }
  });

  it('counts levels against topicLevelsMax, empty levels included', () => {
    const small = { topicBytesMax: 1024, topicLevelsMax: 3 };
    expect(checkTopicName('a/b/c', small)).toBeNull();
    expect(checkTopicName('//', small)).toBeNull();
    expect(checkTopicName('a/b/c/d', small)).toMatch(/3 levels/);
    expect(checkTopicName('///', small)).toMatch(/levels/);
  });
});

describe('checkTopicFilter', () => {
  it('accepts well-placed wildcards', () => {
    const valid = ['#', '+', '+/+', '/+', '+/', 'a/#', 'a/+/b', '+/#', '/#', '//#', 'a//+', '$SYS/#', '+/+/#', 'a/b'];
    for (const filter of valid) expect(checkTopicFilter(filter, limits), filter).toBeNull();
  });

  it('rejects the empty filter [MQTT-4.7.3-1]', () => {
    expect(checkTopicFilter('', limits)).toMatch(/empty/);
  });

  it("rejects '#' that is not alone in the last level [MQTT-4.7.1-2]", () => {
    for (const filter of ['a#', 'a/b#', '#/a', 'a/#/b', '##', 'a/##', '#a', '#/']) {
      expect(checkTopicFilter(filter, limits), filter).toMatch(/'#'/);
    }
  });

  it("rejects '+' that shares its level [MQTT-4.7.1-3]", () => {
    for (const filter of ['a+', '+a', 'a/+b', 'a/b+/c', '++', 'sport+', '+#']) {
      expect(checkTopicFilter(filter, limits), filter).not.toBeNull();
    }
    expect(checkTopicFilter('a+', limits)).toMatch(/'\+'/);
  });

  it('rejects U+0000 and applies byte and level limits to the whole filter', () => {
    expect(checkTopicFilter('a/\u0000', limits)).toMatch(/U\+0000/);
    const small = { topicBytesMax: 12, topicLevelsMax: 3 };
    expect(checkTopicFilter('$share/g/a/b', small)).toMatch(/levels/); // four levels as sent
    expect(checkTopicFilter('$share/g/a', small)).toBeNull();
    expect(checkTopicFilter('$share/gg/abc', small)).toMatch(/bytes/); // 13 bytes
    expect(checkTopicFilter('a/b/#', small)).toBeNull();
    expect(checkTopicFilter('a/b/c/#', small)).toMatch(/levels/);
  });

  it('accepts shared subscriptions $share/{name}/{filter}', () => {
    for (const filter of ['$share/g/a', '$share/g/#', '$share/g/+', '$share/group-1/a/+/b/#', '$share/g//', '$share/$/$SYS/#']) {
      expect(checkTopicFilter(filter, limits), filter).toBeNull();
    }
  });

  it('rejects an empty share name [MQTT-4.8.2-1]', () => {
    expect(checkTopicFilter('$share//a', limits)).toMatch(/share name/);
    expect(checkTopicFilter('$share/', limits)).not.toBeNull();
  });

  it('rejects wildcards in the share name and a missing filter after it [MQTT-4.8.2-2]', () => {
    expect(checkTopicFilter('$share/g+/a', limits)).toMatch(/share name/);
    expect(checkTopicFilter('$share/+/a', limits)).toMatch(/share name/);
    expect(checkTopicFilter('$share/#/a', limits)).toMatch(/share name/);
    expect(checkTopicFilter('$share/grp', limits)).toMatch(/without a topic filter/);
    expect(checkTopicFilter('$share/grp/', limits)).toMatch(/without a topic filter/);
  });

  it('validates the filter after the share name like any filter', () => {
    expect(checkTopicFilter('$share/g/a#', limits)).toMatch(/'#'/);
    expect(checkTopicFilter('$share/g/#/a', limits)).toMatch(/'#'/);
    expect(checkTopicFilter('$share/g/a+', limits)).toMatch(/'\+'/);
  });

  it('treats $share without a slash and $shares as ordinary filters', () => {
    expect(checkTopicFilter('$share', limits)).toBeNull();
    expect(checkTopicFilter('$shared/a/#', limits)).toBeNull();
  });
});

describe('parseSharedFilter', () => {
  it('splits the group from the filter', () => {
    expect(parseSharedFilter('$share/g/a/+/b')).toEqual({ group: 'g', filter: 'a/+/b' });
    expect(parseSharedFilter('$share/group/#')).toEqual({ group: 'group', filter: '#' });
    expect(parseSharedFilter('$share/g/$share/h/x')).toEqual({ group: 'g', filter: '$share/h/x' });
  });

  it('gives null for filters that are not shared', () => {
    for (const filter of ['a/b', '#', '$SYS/#', '$share', '$sharex/g/a', 'x/$share/g/a', '$share/g']) {
      expect(parseSharedFilter(filter), filter).toBeNull();
    }
  });
});

describe('hasWildcard', () => {
  it('looks for + and # in the filter part only', () => {
    expect(hasWildcard('a/b')).toBe(false);
    expect(hasWildcard('a/+')).toBe(true);
    expect(hasWildcard('#')).toBe(true);
    expect(hasWildcard('$share/g/a/b')).toBe(false);
    expect(hasWildcard('$share/g/a/#')).toBe(true);
    expect(hasWildcard('$share/g/+')).toBe(true);
    expect(hasWildcard('$SYS/x')).toBe(false);
  });
});
