/**
 * Proves the checker's own topic matcher (sim/topic-match.ts), which judges every delivery, right
 * for the topic shapes the coverage worlds use: the examples of MQTT 5.0 section 4.7 verbatim;
 * empty levels, `$` topics and the parent level of `#`; shared filters split into their group;
 * and, as a property, agreement with an independent matcher built from regular expressions over
 * random filters and topics made of ordinary, empty and `$` levels.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { topicAtLimit } from '../../sim/coverage.js';
import { matchingFilter, splitShared, topicMatches } from '../../sim/topic-match.js';

describe('oracle topic matching: the spec examples (MQTT 5.0 section 4.7)', () => {
  it('multi-level wildcard, parent level included (4.7.1.2)', () => {
    for (const topic of ['sport/tennis/player1', 'sport/tennis/player1/ranking', 'sport/tennis/player1/score/wimbledon']) {
      expect(topicMatches('sport/tennis/player1/#', topic), topic).toBe(true);
    }
    expect(topicMatches('sport/#', 'sport')).toBe(true);
    expect(topicMatches('#', 'sport/tennis')).toBe(true);
    expect(topicMatches('sport/tennis/#', 'sport/tennis')).toBe(true);
    expect(topicMatches('sport/tennis/#', 'sport/tenni')).toBe(false);
  });

  it('single-level wildcard, empty levels included (4.7.1.3)', () => {
    expect(topicMatches('sport/tennis/+', 'sport/tennis/player1')).toBe(true);
    expect(topicMatches('sport/tennis/+', 'sport/tennis/player2')).toBe(true);
    expect(topicMatches('sport/tennis/+', 'sport/tennis/player1/ranking')).toBe(false);
    expect(topicMatches('sport/+', 'sport')).toBe(false);
    expect(topicMatches('sport/+', 'sport/')).toBe(true);
    expect(topicMatches('+/+', '/finance')).toBe(true);
    expect(topicMatches('/+', '/finance')).toBe(true);
    expect(topicMatches('+', '/finance')).toBe(false);
    expect(topicMatches('sport/+/player1', 'sport/tennis/player1')).toBe(true);
    expect(topicMatches('+/tennis/#', 'sport/tennis')).toBe(true);
  });

  it('leaves topics starting with $ to filters that name them (4.7.2) [MQTT-4.7.2-1]', () => {
    expect(topicMatches('#', '$SYS/monitor/Clients')).toBe(false);
    expect(topicMatches('+/monitor/Clients', '$SYS/monitor/Clients')).toBe(false);
    expect(topicMatches('$SYS/#', '$SYS/monitor/Clients')).toBe(true);
    expect(topicMatches('$SYS/monitor/+', '$SYS/monitor/Clients')).toBe(true);
    expect(topicMatches('$SYS/#', '$SYS')).toBe(true);
    expect(topicMatches('+', '$SYS')).toBe(false);
    expect(topicMatches('+/#', '$SYS/x')).toBe(false);
    expect(topicMatches('+/+', '$')).toBe(false);
    // Only the first character counts: `$` further in is an ordinary character.
    expect(topicMatches('#', 'a/$SYS')).toBe(true);
    expect(topicMatches('a/+', 'a/$SYS')).toBe(true);
  });

  it('compares levels exactly: case, spaces and a leading slash matter (4.7.3)', () => {
    expect(topicMatches('ACCOUNTS', 'Accounts')).toBe(false);
    expect(topicMatches('Accounts payable', 'Accounts payable')).toBe(true);
    expect(topicMatches('/finance', 'finance')).toBe(false);
    expect(topicMatches('finance', '/finance')).toBe(false);
  });
});

describe('oracle topic matching: the shapes of the coverage worlds', () => {
  it('matches empty levels like any other level', () => {
    expect(topicMatches('a//b', 'a//b')).toBe(true);
    expect(topicMatches('a/+/b', 'a//b')).toBe(true);
    expect(topicMatches('+//+', 'a//b')).toBe(true);
    expect(topicMatches('+/+/+', 'a//b')).toBe(true);
    expect(topicMatches('a/#', 'a//b')).toBe(true);
    expect(topicMatches('a/+', 'a//b')).toBe(false);
    expect(topicMatches('a/b', 'a//b')).toBe(false);
    expect(topicMatches('+/+', '/')).toBe(true);
    expect(topicMatches('+', '/')).toBe(false);
    expect(topicMatches('/#', '/')).toBe(true);
    expect(topicMatches('/#', '/a')).toBe(true);
    expect(topicMatches('/#', 'a')).toBe(false);
    expect(topicMatches('+/', 'a/')).toBe(true);
    expect(topicMatches('+/', 'a')).toBe(false);
    expect(topicMatches('#', '/')).toBe(true);
  });

  it('matches topics at the level and byte limits', () => {
    const topic = topicAtLimit(5, 20);
    expect(topic.split('/')).toHaveLength(5);
    expect(new TextEncoder().encode(topic)).toHaveLength(20);
    expect(topicMatches('l/+/+/+/#', topic)).toBe(true);
    expect(topicMatches('+/+/+/+/+', topic)).toBe(true);
    expect(topicMatches('+/+/+/+', topic)).toBe(false);
    expect(topicMatches(topic, topic)).toBe(true);
    expect(topicMatches(`${topic}z`, topic)).toBe(false);
  });

  it('splits shared filters into group and filter', () => {
    expect(splitShared('$share/g1/a/+')).toEqual({ group: 'g1', filter: 'a/+' });
    expect(splitShared('$share/g4/$sys/#')).toEqual({ group: 'g4', filter: '$sys/#' });
    expect(splitShared('$share//a')).toBeNull();
    expect(splitShared('$sys/#')).toBeNull();
    expect(matchingFilter('$share/g3/+/+/+')).toBe('+/+/+');
    expect(topicMatches(matchingFilter('$share/g4/$sys/#'), '$sys/x')).toBe(true);
    expect(topicMatches(matchingFilter('$share/g1/#'), '$sys/x')).toBe(false);
  });
});

/** An independent reference: a filter turned into a regular expression, plus the `$` rule. */
function referenceMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  if (filter === '#') return true;
  const levels = filter.split('/').map((level) => (level === '+' ? '[^/]*' : level === '#' ? '#' : level.replace(/[$^.*+?()[\]{}|\\]/g, '\\$&')));
  const pattern = levels.join('/').replace(/\/#$/, '(/.*)?');
  return new RegExp(`^${pattern}$`).test(topic);
}

describe('oracle topic matching against a reference', () => {
  it('agrees on random filters and topics with empty, $ and wildcard levels', () => {
    const topicLevel = fc.constantFrom('a', 'b', '', '$x', 'x$');
    const filterLevel = fc.constantFrom('a', 'b', '', '$x', '+');
    const topic = fc.array(topicLevel, { minLength: 1, maxLength: 5 }).map((levels) => levels.join('/'));
    const filter = fc
      .tuple(fc.array(filterLevel, { minLength: 0, maxLength: 5 }), fc.boolean())
      .filter(([levels, hash]) => levels.length > 0 || hash)
      .map(([levels, hash]) => [...levels, ...(hash ? ['#'] : [])].join('/'));
    fc.assert(
      fc.property(filter, topic, (f, t) => {
        expect(topicMatches(f, t), `${f} vs ${t}`).toBe(referenceMatches(f, t));
      }),
      { numRuns: 3_000 },
    );
  });
});
