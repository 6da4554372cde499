/**
 * Proves the answers to bad stream input and the access rules: an unknown stream is SUBACK 0x8F
 * with a reason string (5.0) or 0x80 (3.1.1); a malformed `stream-offset` is 0x83 with a reason
 * string; an invalid stream name or narrowing is 0x8F; reading `$stream/<name>` needs read
 * permission on the stream's filter (or on the narrowing asked for), and every delivery is
 * checked like any other: a topic the reader may not read is withheld (and counted), and a
 * consumer group gives such an entry to a member that may read it.
 */
import { describe, expect, it } from 'vitest';
import { type Authorizer, covers, type Identity } from '../../src/broker/authorizer.js';
import { matchesFilter } from '../../src/topics/match-filter.js';
import { decodeText } from '../broker/harness.js';
import { offsetOf, StreamHarness, takeAndAck } from './stream-harness.js';

/** Per client id: the filters it may read, and topics denied to it; everybody may publish. */
class ReadRules implements Authorizer {
  constructor(
    private readonly reads: Record<string, string[]>,
    private readonly denies: Record<string, string[]> = {},
  ) {}

  canSubscribe(identity: Identity, filter: string): boolean {
    const rules = this.reads[identity.clientId] ?? ['#'];
    return rules.some((rule) => covers(rule, filter)) && !(this.denies[identity.clientId] ?? []).some((rule) => covers(rule, filter));
  }

  canPublish(): boolean {
    return true;
  }

  canReceive(identity: Identity, topic: string): boolean {
    const rules = this.reads[identity.clientId] ?? ['#'];
    return rules.some((rule) => matchesFilter(rule, topic)) && !(this.denies[identity.clientId] ?? []).some((rule) => matchesFilter(rule, topic));
  }
}

function publishAll(harness: StreamHarness, topics: string[]): void {
  const publisher = harness.connect('publisher', 5);
  for (const topic of topics) publisher.publish(topic, topic, 1);
}

describe('bad stream input', () => {
  it('refuses an unknown stream: 0x8F with a reason (5.0), 0x80 (3.1.1)', () => {
    const harness = new StreamHarness();
    const five = harness.connect('five', 5);
    const suback = five.subscribe([
      { topicFilter: '$stream/nowhere', qos: 1 },
      { topicFilter: '$stream/sensors', qos: 1 },
      { topicFilter: '$stream/bad name', qos: 1 },
    ]);
    expect(suback.reasonCodes).toEqual([0x8f, 1, 0x8f]);
    expect(suback.properties?.reasonString).toBe('$stream/nowhere: no stream named "nowhere"; $stream/bad name: no stream can be named "bad name"');
    const old = harness.connect('old', 4);
    expect(old.subscribe([{ topicFilter: '$stream/nowhere', qos: 1 }]).reasonCodes).toEqual([0x80]);
    expect(harness.broker.state.sessions.get('five')!.subscriptions.has('$stream/nowhere')).toBe(false);
  });

  it('refuses a malformed stream-offset: 0x83 with a reason', () => {
    const harness = new StreamHarness();
    const client = harness.connect('client', 5);
    for (const value of ['offset:-1', 'offset:x', 'time:', 'beginning', 'offset:99999999999999999']) {
      const suback = client.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', value]] });
      expect(suback.reasonCodes, value).toEqual([0x83]);
      expect(suback.properties?.reasonString).toMatch(/stream-offset must be earliest, latest, offset:<n> or time:<unix ms>/);
    }
    const twice = client.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], {
      userProperties: [
        ['stream-offset', 'earliest'],
        ['stream-offset', 'latest'],
      ],
    });
    expect(twice.reasonCodes).toEqual([0x83]);
    // An ordinary filter in the same packet is not affected by the property.
    expect(client.subscribe(['sensors/#'], { userProperties: [['stream-offset', 'nonsense']] }).reasonCodes).toEqual([2]);
  });

  it('refuses an invalid narrowing filter with 0x8F', () => {
    const harness = new StreamHarness();
    const client = harness.connect('client', 5);
    expect(client.subscribe([{ topicFilter: '$stream/sensors/a/#/b', qos: 1 }]).reasonCodes).toEqual([0x8f]);
    expect(client.subscribe([{ topicFilter: '$stream/sensors/earliest/$share/g/x', qos: 1 }]).reasonCodes).toEqual([0x8f]);
  });
});

describe('stream access rules', () => {
  it('need read permission on the stream’s filter, or on the narrowing asked for', () => {
    const authorizer = new ReadRules({ partial: ['sensors/a/#'], nobody: ['other/#'] });
    const harness = new StreamHarness({}, undefined, { authorizer });
    publishAll(harness, ['sensors/a/1', 'sensors/b/1', 'sensors/a/2']);
    const nobody = harness.connect('nobody', 5);
    expect(nobody.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }]).reasonCodes).toEqual([0x87]);
    const old = harness.connect('nobody', 4);
    expect(old.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }]).reasonCodes).toEqual([0x80]);
    const partial = harness.connect('partial', 5);
    const refused = partial.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }]);
    expect(refused.reasonCodes).toEqual([0x87]);
    expect(refused.properties?.reasonString).toBe('$stream/sensors: not authorized to read sensors/#');
    expect(partial.subscribe([{ topicFilter: '$stream/sensors/earliest/sensors/a/#', qos: 1 }]).reasonCodes).toEqual([1]);
    expect(takeAndAck(partial).map((p) => decodeText(p.payload))).toEqual(['sensors/a/1', 'sensors/a/2']);
  });

  it('check every delivery: a denied topic is withheld from a reader and counted', () => {
    const authorizer = new ReadRules({}, { reader: ['sensors/secret'] });
    const harness = new StreamHarness({}, undefined, { authorizer });
    publishAll(harness, ['sensors/1', 'sensors/secret', 'sensors/2']);
    const reader = harness.connect('reader', 5);
    expect(reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] }).reasonCodes).toEqual([1]);
    expect(takeAndAck(reader).map(offsetOf)).toEqual([0, 2]);
    expect(harness.broker.stats.authorization.receiveDenied).toBe(1);
  });

  it('give a group’s entry to a member that may read it, and pass it over when none may', () => {
    const authorizer = new ReadRules({}, { a: ['sensors/b-only', 'sensors/nobody'], b: ['sensors/nobody'] });
    const harness = new StreamHarness({}, undefined, { authorizer });
    const a = harness.connect('a', 5);
    const b = harness.connect('b', 5);
    a.subscribe([{ topicFilter: '$share/g/$stream/sensors', qos: 1 }]);
    b.subscribe([{ topicFilter: '$share/g/$stream/sensors', qos: 1 }]);
    publishAll(harness, ['sensors/b-only', 'sensors/nobody', 'sensors/any']);
    const toA = takeAndAck(a).map((p) => p.topic);
    const toB = takeAndAck(b).map((p) => p.topic);
    expect(toA).not.toContain('sensors/b-only');
    expect(toB).toContain('sensors/b-only');
    expect([...toA, ...toB].sort()).toEqual(['sensors/any', 'sensors/b-only']);
    expect(harness.broker.state.streams.get('sensors')!.groups.get('g')).toBe(3);
  });
});
