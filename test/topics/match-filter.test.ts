/**
 * Proves matchesFilter, the single-filter matcher, on the cases that trip hand-written matchers:
 * `#` at its parent level, `+` on empty levels, trailing and leading separators, the `$` rule and
 * shared filters (matched by the part after the share name). The property test compares it with
 * the reference matcher on random inputs; these are the named edge cases.
 */
import { describe, expect, it } from 'vitest';
import { matchesFilter } from '../../src/topics/match-filter.js';

describe('matchesFilter', () => {
  const cases: [filter: string, topic: string, matches: boolean][] = [
    ['a/b', 'a/b', true],
    ['a/b', 'a/bc', false],
    ['a/b', 'a', false],
    ['a', 'a/b', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'ab', false],
    ['#', 'a/b', true],
    ['#', '/', true],
    ['a/+', 'a/', true],
    ['a/+', 'a', false],
    ['a/+/b', 'a//b', true],
    ['+/+', '/', true],
    ['+', '/', false],
    ['/a', 'a', false],
    ['a/', 'a/', true],
    ['a/', 'a', false],
    ['#', '$SYS/x', false],
    ['+/x', '$SYS/x', false],
    ['$SYS/#', '$SYS', true],
    ['$SYS/+', '$SYS/x', true],
    ['a/+', 'a/$x', true],
    ['$share/g/a/+', 'a/b', true],
    ['$share/g/#', '$SYS/x', false],
    ['$share/g/$SYS/#', '$SYS/x', true],
  ];
  for (const [filter, topic, want] of cases) {
    it(`${filter} ${want ? 'matches' : 'does not match'} ${topic}`, () => {
      expect(matchesFilter(filter, topic)).toBe(want);
    });
  }
});
