/**
 * Proves the topic ↔ subject mapping (src/cluster/subjects.ts): the examples nats-server's MQTT
 * support documents, a round trip for every mappable topic (fast-check over levels rich in dots,
 * empty levels and odd characters), the refusals, and that for every mappable filter and topic
 * NATS matching over the mapped subjects agrees with MQTT matching (the broker's own matcher).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { filterToSubjects, handoffSubject, subjectMatches, subjectOfHandoff, subjectToTopic, topicToSubject } from '../../src/cluster/subjects.js';
import { matchesFilter } from '../../src/topics/match-filter.js';
import { checkTopicFilter, checkTopicName } from '../../src/topics/validate.js';

const limits = { topicBytesMax: 65_535, topicLevelsMax: 128 };
const levelChars = fc.constantFrom('a', 'b', '.', '/', '*', '>', 'é', '$', '-', ' ', '\t', 'x');

/** One level: dots, stars and odd characters are common so that every escape is exercised. */
const level = fc.array(fc.constantFrom('a', 'b', '.', '..', 'é', '$', '-', '*', '>', 'x*', '>y', '', ' '), { maxLength: 3 }).map((parts) => parts.join(''));
const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((levels) => levels.join('/'));
const filterLevel = fc.oneof(level, fc.constant('+'));
const filter = fc
  .tuple(fc.array(filterLevel, { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([levels, hash]) => (hash ? [...levels, '#'] : levels).join('/'))
  .chain((text) => fc.constantFrom(text, '#'));

describe('topic to subject', () => {
  it('maps like nats-server: / to ., . to //, empty levels to /', () => {
    expect(topicToSubject('foo/bar')).toBe('foo.bar');
    expect(topicToSubject('foo.bar')).toBe('foo//bar');
    expect(topicToSubject('/foo')).toBe('/.foo');
    expect(topicToSubject('foo/')).toBe('foo./');
    expect(topicToSubject('foo//bar')).toBe('foo./.bar');
    expect(topicToSubject('/')).toBe('/./');
    expect(topicToSubject('a.b/c')).toBe('a//b.c');
  });

  it('refuses whitespace, wildcard-looking levels and $ topics', () => {
    expect(topicToSubject('a b')).toBeNull();
    expect(topicToSubject('a\tb')).toBeNull();
    expect(topicToSubject('a/*')).toBeNull();
    expect(topicToSubject('a/>/b')).toBeNull();
    expect(topicToSubject('$SYS/broker')).toBeNull();
    expect(topicToSubject('a/x*')).toBe('a.x*');
  });

  it('maps filters, with two subjects for a trailing /#', () => {
    expect(filterToSubjects('a/+/c')).toEqual(['a.*.c']);
    expect(filterToSubjects('a/#')).toEqual(['a', 'a.>']);
    expect(filterToSubjects('#')).toEqual(['>']);
    expect(filterToSubjects('+/#')).toEqual(['*', '*.>']);
    expect(filterToSubjects('/#')).toEqual(['/', '/.>']);
    expect(filterToSubjects('a/*')).toBeNull();
  });

  it('round-trips every mappable topic', () => {
    fc.assert(
      fc.property(topic, (text) => {
        fc.pre(checkTopicName(text, limits) === null);
        const subject = topicToSubject(text);
        if (subject === null) return;
        expect(subject.split('.').every((token) => token.length > 0)).toBe(true);
        expect(subjectToTopic(subject)).toBe(text);
      }),
      { numRuns: 3_000 },
    );
  });

  it('maps back only subjects that are images of topics', () => {
    expect(subjectToTopic('a..b')).toBeNull();
    expect(subjectToTopic('a./x')).toBeNull();
    expect(subjectToTopic('a.*')).toBeNull();
    expect(subjectToTopic('sensors.kitchen')).toBe('sensors/kitchen');
    fc.assert(
      fc.property(fc.array(levelChars, { minLength: 1, maxLength: 12 }), (chars) => {
        const subject = chars.join('');
        const back = subjectToTopic(subject);
        if (back !== null) expect(topicToSubject(back)).toBe(subject);
      }),
      { numRuns: 3_000 },
    );
  });

  it('NATS matching over mapped subjects agrees with MQTT matching', () => {
    fc.assert(
      fc.property(filter, topic, (filterText, topicText) => {
        fc.pre(checkTopicFilter(filterText, limits) === null && checkTopicName(topicText, limits) === null);
        const subjects = filterToSubjects(filterText);
        const subject = topicToSubject(topicText);
        fc.pre(subjects !== null && subject !== null);
        const nats = subjects!.some((pattern) => subjectMatches(pattern, subject!));
        expect(nats).toBe(matchesFilter(filterText, topicText));
      }),
      { numRuns: 5_000 },
    );
  });

  it('puts durable messages under the hand-off prefix and takes them out again', () => {
    expect(handoffSubject('a.b')).toBe('$KEEL.handoff.a.b');
    expect(subjectOfHandoff('$KEEL.handoff.a.b')).toBe('a.b');
    expect(subjectOfHandoff('a.b')).toBeNull();
  });
});
