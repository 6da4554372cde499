/**
 * Proves topic authorization in two layers.
 *
 * 1. The pure rules (src/broker/authorizer.ts): `covers` and `intersects` agree with brute force
 *    over every topic of a small universe (fast-check), and RuleAuthorizer applies user,
 *    anonymous and pattern rules with %c/%u substitution, deny precedence, the covers rule for
 *    subscriptions, `$` topics and unsafe substitution values as documented.
 * 2. The state machine (access-control.ts and its hooks) driven through the Harness with a fake
 *    Authorizer whose answers the test sets: SUBACK 0x87 / 0x80 per filter, PUBACK / PUBREC
 *    0x87 for MQTT 5.0 and plain acknowledgements for 3.1.1 with nothing routed or retained,
 *    per-delivery receive checks (wildcards, shared groups, offline sessions, retained messages
 *    on subscribe), wills refused at CONNECT or withheld later, decisions cached per generation,
 *    and a restarted broker deciding for a session's stored owner (test/broker/acl-identity.test.ts
 *    covers restarts in depth).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AclRule, type Authorizer, covers, type Identity, intersects, RuleAuthorizer } from '../../src/broker/authorizer.js';
import { Broker } from '../../src/broker/broker.js';
import { PacketType, type ProtocolVersion } from '../../src/codec/packets.js';
import { matchesFilter } from '../../src/topics/match-filter.js';
import { decodeText, Harness, will } from './harness.js';

// ---- 1. pure rules -----------------------------------------------------------------------------

const filterLevel = fc.constantFrom('a', 'b', '', '$s', '+');
const arbitraryFilter = fc
  .tuple(fc.array(filterLevel, { minLength: 1, maxLength: 3 }), fc.boolean())
  .map(([levels, hash]) => [...levels, ...(hash ? ['#'] : [])].join('/'))
  .filter((filter) => filter.length > 0);
const arbitraryFilterOrHash = fc.oneof(arbitraryFilter, fc.constant('#'), fc.constant('+/#'));

/** Every topic of up to 5 levels over a, b, '', $s and a level no filter names (z). */
const universe: string[] = (() => {
  const levels = ['a', 'b', '', '$s', 'z'];
  const topics: string[] = [];
  let frontier: string[][] = [[]];
  for (let depth = 1; depth <= 5; depth++) {
    frontier = frontier.flatMap((prefix) => levels.map((level) => [...prefix, level]));
    for (const topic of frontier) if (topic.join('/').length > 0) topics.push(topic.join('/'));
  }
  return topics;
})();

describe('covers and intersects', () => {
  it('covers(R, F) holds exactly when every topic F matches is matched by R', () => {
    fc.assert(
      fc.property(arbitraryFilterOrHash, arbitraryFilterOrHash, (rule, filter) => {
        const expected = universe.every((topic) => !matchesFilter(filter, topic) || matchesFilter(rule, topic));
        expect(covers(rule, filter)).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });

  it('intersects(A, B) holds exactly when some topic is matched by both', () => {
    fc.assert(
      fc.property(arbitraryFilterOrHash, arbitraryFilterOrHash, (first, second) => {
        const expected = universe.some((topic) => matchesFilter(first, topic) && matchesFilter(second, topic));
        expect(intersects(first, second)).toBe(expected);
      }),
      { numRuns: 1000 },
    );
  });

  it('decides the documented examples', () => {
    expect(covers('a/#', 'a/#')).toBe(true);
    expect(covers('a/#', 'a')).toBe(true);
    expect(covers('a/#', 'a/+/b')).toBe(true);
    expect(covers('a/+', 'a/#')).toBe(false);
    expect(covers('a/+/#', 'a/#')).toBe(false);
    expect(covers('a/+', 'a/b')).toBe(true);
    expect(covers('a/b', 'a/+')).toBe(false);
    expect(covers('#', '$SYS/#')).toBe(false);
    expect(covers('$SYS/#', '$SYS/broker/load')).toBe(true);
    expect(intersects('a/+', 'a/secret')).toBe(true);
    expect(intersects('a/+', 'b/#')).toBe(false);
    expect(intersects('#', '$SYS/x')).toBe(false);
  });
});

const rule = (access: AclRule['access'], filter: string): AclRule => ({ access, filter, line: 0 });
const alice: Identity = { clientId: 'alice-phone', username: 'alice' };
const bob: Identity = { clientId: 'bob-1', username: 'bob' };
const nobody: Identity = { clientId: 'sensor-7', username: undefined };

function sampleRules(): RuleAuthorizer {
  return new RuleAuthorizer({
    users: new Map([
      ['alice', [rule('read', 'sensors/#'), rule('deny', 'sensors/secret'), rule('write', 'alice/out'), rule('readwrite', 'chat/+')]],
      ['bob', [rule('read', '#')]],
    ]),
    anonymous: [rule('read', 'public/#')],
    patterns: [rule('readwrite', 'clients/%c/#'), rule('read', 'users/%u/inbox'), rule('deny', 'chat/%u')],
  });
}

describe('RuleAuthorizer', () => {
  it('separates read from write and takes readwrite as both', () => {
    const rules = sampleRules();
    expect(rules.canReceive(alice, 'sensors/kitchen')).toBe(true);
    expect(rules.canPublish(alice, 'sensors/kitchen')).toBe(false);
    expect(rules.canPublish(alice, 'alice/out')).toBe(true);
    expect(rules.canReceive(alice, 'alice/out')).toBe(false);
    expect(rules.canPublish(alice, 'chat/general')).toBe(true);
    expect(rules.canReceive(alice, 'chat/general')).toBe(true);
  });

  it('lets a deny rule win over grants from the block and from patterns', () => {
    const rules = sampleRules();
    expect(rules.canReceive(alice, 'sensors/secret')).toBe(false);
    // chat/+ is granted to alice, but the pattern `deny chat/%u` takes chat/alice away from her.
    expect(rules.canReceive(alice, 'chat/alice')).toBe(false);
    expect(rules.canPublish(alice, 'chat/alice')).toBe(false);
    expect(rules.canReceive(alice, 'chat/bob')).toBe(true);
  });

  it('substitutes %c and %u per client, and skips %u patterns for anonymous clients', () => {
    const rules = sampleRules();
    expect(rules.canPublish(alice, 'clients/alice-phone/status')).toBe(true);
    expect(rules.canPublish(alice, 'clients/bob-1/status')).toBe(false);
    expect(rules.canReceive(bob, 'users/bob/inbox')).toBe(true);
    expect(rules.canReceive(alice, 'users/bob/inbox')).toBe(false);
    expect(rules.canReceive(alice, 'users/alice/inbox')).toBe(true);
    expect(rules.canPublish(nobody, 'clients/sensor-7/x')).toBe(true);
    expect(rules.canReceive(nobody, 'users//inbox')).toBe(false);
  });

  it('gives anonymous clients the anonymous block and unknown users only the patterns', () => {
    const rules = sampleRules();
    expect(rules.canReceive(nobody, 'public/news')).toBe(true);
    expect(rules.canReceive(alice, 'public/news')).toBe(false);
    const carol: Identity = { clientId: 'c', username: 'carol' };
    expect(rules.canReceive(carol, 'public/news')).toBe(false);
    expect(rules.canPublish(carol, 'clients/c/x')).toBe(true);
  });

  it('never lets a client id or user name with wildcards or / widen a pattern', () => {
    const rules = sampleRules();
    const sneaky: Identity = { clientId: '#', username: '+' };
    expect(rules.canPublish(sneaky, 'clients/other/x')).toBe(false);
    expect(rules.canReceive(sneaky, 'users/bob/inbox')).toBe(false);
    const slashed: Identity = { clientId: 'a/b', username: undefined };
    expect(rules.canPublish(slashed, 'clients/a/b/x')).toBe(false);
    // A deny pattern that cannot be applied safely denies everything instead.
    const deniedEverything = new RuleAuthorizer({ users: new Map([['+', [rule('read', '#')]]]), anonymous: [], patterns: [rule('deny', 'chat/%u')] });
    expect(deniedEverything.canReceive({ clientId: 'x', username: '+' }, 'news')).toBe(false);
    expect(deniedEverything.canReceive({ clientId: 'x', username: 'fine' }, 'news')).toBe(false);
  });

  it('allows a subscription only when a read rule covers its filter and no deny rule covers it', () => {
    const rules = sampleRules();
    expect(rules.canSubscribe(alice, 'sensors/#')).toBe(true);
    expect(rules.canSubscribe(alice, 'sensors/+/temperature')).toBe(true);
    expect(rules.canSubscribe(alice, '#')).toBe(false);
    expect(rules.canSubscribe(alice, 'sensors/secret')).toBe(false);
    expect(rules.canSubscribe(alice, 'alice/out')).toBe(false);
    expect(rules.canSubscribe(alice, '$share/group/sensors/#')).toBe(true);
    expect(rules.canSubscribe(bob, '#')).toBe(true);
    // `read #` reaches no `$` topic [MQTT-4.7.2-1].
    expect(rules.canSubscribe(bob, '$SYS/#')).toBe(false);
    expect(rules.canReceive(bob, '$SYS/uptime')).toBe(false);
  });

  it('reports readsEverything only when no deny rule meets the filter', () => {
    const rules = sampleRules();
    expect(rules.readsEverything(alice, 'sensors/#')).toBe(false);
    expect(rules.readsEverything(alice, 'sensors/kitchen/+')).toBe(true);
    expect(rules.readsEverything(bob, 'sensors/#')).toBe(true);
    // bob reads '#', but the pattern `deny chat/%u` meets it at chat/bob.
    expect(rules.readsEverything(bob, '#')).toBe(false);
  });

  it('denies everything when there are no rules, and bumps its generation on replace', () => {
    const rules = new RuleAuthorizer({ users: new Map(), anonymous: [], patterns: [] });
    expect(rules.canPublish(alice, 'x')).toBe(false);
    expect(rules.canSubscribe(nobody, 'x')).toBe(false);
    const before = rules.generation;
    rules.replace(sampleRules().rules);
    expect(rules.generation).toBe(before + 1);
    expect(rules.canReceive(alice, 'sensors/kitchen')).toBe(true);
  });
});

// ---- 2. the state machine with a fake authorizer ----------------------------------------------

/** Answers from three predicates the test can change; counts the questions it is asked. */
class FakeAuthorizer implements Authorizer {
  generation = 0;
  readonly asked = { subscribe: 0, publish: 0, receive: 0 };
  subscribe: (identity: Identity, filter: string) => boolean = () => true;
  publish: (identity: Identity, topic: string) => boolean = () => true;
  receive: (identity: Identity, topic: string) => boolean = () => true;
  readonly identities: Identity[] = [];

  canSubscribe(identity: Identity, filter: string): boolean {
    this.asked.subscribe += 1;
    this.identities.push(identity);
    return this.subscribe(identity, filter);
  }
  canPublish(identity: Identity, topic: string): boolean {
    this.asked.publish += 1;
    this.identities.push(identity);
    return this.publish(identity, topic);
  }
  canReceive(identity: Identity, topic: string): boolean {
    this.asked.receive += 1;
    return this.receive(identity, topic);
  }
}

function setup(): { harness: Harness; authorizer: FakeAuthorizer } {
  const harness = new Harness();
  const authorizer = new FakeAuthorizer();
  harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authorizer });
  harness.collect();
  return { harness, authorizer };
}

const notSecret = (_identity: Identity, text: string): boolean => !text.includes('secret');

describe('SUBSCRIBE under an authorizer', () => {
  for (const [version, code] of [
    [5, 0x87],
    [4, 0x80],
  ] as [ProtocolVersion, number][]) {
    it(`refuses only the denied filter with 0x${code.toString(16)} in version ${version}`, () => {
      const { harness, authorizer } = setup();
      authorizer.subscribe = notSecret;
      const subscriber = harness.connect('sub', version, { username: 'alice' });
      expect(
        subscriber.subscribe([
          { topicFilter: 'open/#', qos: 1 },
          { topicFilter: 'secret/#', qos: 1 },
        ]).reasonCodes,
      ).toEqual([1, code]);
      expect(authorizer.identities).toContainEqual({ clientId: 'sub', username: 'alice' });
      const publisher = harness.connect('pub', version);
      publisher.publish('secret/x', 'hidden', 0);
      publisher.publish('open/x', 'visible', 0);
      expect(subscriber.publishes().map((p) => p.topic)).toEqual(['open/x']);
      expect(harness.broker.stats.authorization.subscribeDenied).toBe(1);
      expect(harness.logs.filter((log) => log.event === 'not-authorized' && log.fields.action === 'subscribe')).toHaveLength(1);
    });
  }
});

describe('PUBLISH under an authorizer', () => {
  it('answers MQTT 5.0 QoS 1 and 2 with 0x87 and routes and retains nothing', () => {
    const { harness, authorizer } = setup();
    authorizer.publish = notSecret;
    const subscriber = harness.connect('sub', 5);
    subscriber.subscribe(['#']);
    const publisher = harness.connect('pub', 5);
    expect(publisher.publish('secret/a', 'x', 1, { retain: true })).toEqual([{ type: PacketType.Puback, packetId: 1, reasonCode: 0x87 }]);
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 'secret/b', packetId: 2, payload: new Uint8Array([1]) });
    expect(publisher.take()).toEqual([{ type: PacketType.Pubrec, packetId: 2, reasonCode: 0x87 }]);
    publisher.publish('secret/c', 'x', 0);
    expect(subscriber.publishes()).toEqual([]);
    expect(harness.broker.state.retained.size).toBe(0);
    expect(harness.broker.state.sessions.get('pub')!.incomingQos2.size).toBe(0);
    expect(harness.broker.stats.authorization.publishDenied).toBe(3);
    expect(harness.broker.stats.messagesReceived).toBe(0);
    // An allowed topic still flows.
    expect(publisher.publish('open/a', 'x', 1)[0]).toMatchObject({ type: PacketType.Puback, reasonCode: 0 });
    expect(subscriber.publishes().map((p) => p.topic)).toEqual(['open/a']);
  });

  it('acknowledges MQTT 3.1.1 QoS 1 and 2 as usual without routing [MQTT-3.3.5-2]', () => {
    const { harness, authorizer } = setup();
    authorizer.publish = notSecret;
    const subscriber = harness.connect('sub', 4);
    subscriber.subscribe(['#']);
    const publisher = harness.connect('pub', 4);
    expect(publisher.publish('secret/a', 'x', 1)).toEqual([{ type: PacketType.Puback, packetId: 1, reasonCode: 0 }]);
    const qos2 = publisher.publish('secret/b', 'x', 2);
    expect(qos2.map((p) => p.type)).toEqual([PacketType.Pubrec, PacketType.Pubcomp]);
    expect(subscriber.publishes()).toEqual([]);
    expect(harness.broker.stats.authorization.publishDenied).toBe(2);
    expect(harness.logs.filter((log) => log.event === 'not-authorized' && log.fields.action === 'publish').map((log) => log.fields.topic)).toEqual(['secret/a', 'secret/b']);
  });

  it('asks once per connection and topic, and again after the generation changes', () => {
    const { harness, authorizer } = setup();
    const publisher = harness.connect('pub', 5);
    for (let index = 0; index < 5; index++) publisher.publish('t', 'x', 0);
    expect(authorizer.asked.publish).toBe(1);
    authorizer.publish = () => false;
    publisher.publish('t', 'x', 1);
    expect(harness.broker.stats.authorization.publishDenied).toBe(0);
    authorizer.generation += 1;
    expect(publisher.publish('t', 'x', 1)[0]).toMatchObject({ reasonCode: 0x87 });
    expect(authorizer.asked.publish).toBe(2);
  });
});

describe('delivery under an authorizer', () => {
  it('withholds topics the subscriber may not read from a broad subscription', () => {
    const { harness, authorizer } = setup();
    authorizer.receive = notSecret;
    const subscriber = harness.connect('sub', 5, { username: 'alice' });
    subscriber.subscribe(['a/#']);
    const publisher = harness.connect('pub', 5);
    publisher.publish('a/secret', 'no', 1);
    publisher.publish('a/open', 'yes', 1);
    publisher.publish('a/secret', 'no', 1);
    expect(subscriber.publishes().map((p) => p.topic)).toEqual(['a/open']);
    expect(harness.broker.stats.authorization.receiveDenied).toBe(2);
    // Cached per subscription and topic: two topics, two questions.
    expect(authorizer.asked.receive).toBe(2);
  });

  it('skips per-topic questions when the authorizer says the filter reads everything', () => {
    const { harness, authorizer } = setup();
    const everything = Object.assign(authorizer, { readsEverything: (_identity: Identity, filter: string) => filter === 'a/#' });
    const subscriber = harness.connect('sub', 5);
    subscriber.subscribe(['a/#', 'b/#']);
    const publisher = harness.connect('pub', 5);
    publisher.publish('a/1', 'x', 0);
    publisher.publish('a/2', 'x', 0);
    publisher.publish('b/1', 'x', 0);
    expect(subscriber.publishes()).toHaveLength(3);
    expect(everything.asked.receive).toBe(1);
  });

  it('keeps an offline session for the identity that owns it: another user naming its client id is refused', () => {
    const { harness, authorizer } = setup();
    authorizer.receive = (identity, topic) => identity.username === 'alice' || !topic.startsWith('alice/');
    const subscriber = harness.connect('sub', 5, { username: 'alice', cleanStart: true, properties: { sessionExpiryInterval: 600 } });
    subscriber.subscribe([{ topicFilter: '#', qos: 1 }]);
    subscriber.disconnect();
    const publisher = harness.connect('pub', 5);
    publisher.publish('alice/mail', 'for alice', 1);
    const intruder = harness.open(5);
    const refused = intruder.connect('sub', { username: 'mallory', cleanStart: false });
    expect(refused).toMatchObject({ reasonCode: 0x87, sessionPresent: false });
    expect(intruder.closed).toBe(true);
    expect(intruder.publishes()).toEqual([]);
    const owner = harness.open(5);
    expect(owner.connect('sub', { username: 'alice', cleanStart: false })).toMatchObject({ reasonCode: 0, sessionPresent: true });
    expect(owner.publishes().map((p) => decodeText(p.payload))).toEqual(['for alice']);
  });

  it('checks a stored delivery against the rules in force when it goes out', () => {
    const { harness, authorizer } = setup();
    const subscriber = harness.connect('sub', 5, { username: 'alice', cleanStart: true, properties: { sessionExpiryInterval: 600 } });
    subscriber.subscribe([{ topicFilter: '#', qos: 1 }]);
    subscriber.disconnect();
    const publisher = harness.connect('pub', 5);
    publisher.publish('secret/plan', 'queued while allowed', 1);
    publisher.publish('open/news', 'still allowed', 1);
    // The rules change (an ACL reload) while the messages wait in the queue.
    authorizer.receive = notSecret;
    authorizer.generation += 1;
    const owner = harness.open(5);
    owner.connect('sub', { username: 'alice', cleanStart: false });
    expect(owner.publishes().map((p) => p.topic)).toEqual(['open/news']);
    expect(harness.broker.stats.authorization.receiveDenied).toBe(1);
    expect(harness.broker.state.sessions.get('sub')!.queue.length).toBe(0);
  });

  it('sends a shared group member that may read the topic, never one that may not', () => {
    const { harness, authorizer } = setup();
    authorizer.receive = (identity) => identity.clientId !== 'blocked';
    const blocked = harness.connect('blocked', 5);
    const allowed = harness.connect('allowed', 5);
    blocked.subscribe(['$share/g/t']);
    allowed.subscribe(['$share/g/t']);
    const publisher = harness.connect('pub', 5);
    for (let index = 0; index < 4; index++) publisher.publish('t', `${index}`, 0);
    expect(blocked.publishes()).toEqual([]);
    expect(allowed.publishes()).toHaveLength(4);
  });

  it('sends on subscribe only the retained messages the subscriber may read', () => {
    const { harness, authorizer } = setup();
    const publisher = harness.connect('pub', 4);
    publisher.publish('r/open', 'o', 1, { retain: true });
    publisher.publish('r/secret', 's', 1, { retain: true });
    authorizer.receive = notSecret;
    const subscriber = harness.connect('sub', 4);
    subscriber.subscribe(['r/#']);
    expect(subscriber.publishes().map((p) => p.topic)).toEqual(['r/open']);
    const exact = harness.connect('exact', 4);
    exact.subscribe(['r/secret']);
    expect(exact.publishes()).toEqual([]);
    expect(harness.broker.stats.authorization.receiveDenied).toBe(2);
  });

  it('decides deliveries to a recovered session for its stored owner before it reconnects', () => {
    const { harness, authorizer } = setup();
    authorizer.receive = (identity) => identity.username === 'alice';
    const subscriber = harness.connect('sub', 4, { username: 'alice', cleanStart: false });
    subscriber.subscribe([{ topicFilter: 't', qos: 1 }]);
    harness.restart();
    harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authorizer });
    harness.collect();
    const publisher = harness.connect('pub', 4);
    publisher.publish('t', 'while alice is away', 1);
    expect(harness.broker.stats.authorization.receiveDenied).toBe(0);
    const back = harness.open(4);
    back.connect('sub', { username: 'alice', cleanStart: false });
    expect(back.publishes().map((p) => decodeText(p.payload))).toEqual(['while alice is away']);
  });
});

describe('wills under an authorizer', () => {
  for (const [version, code] of [
    [5, 0x87],
    [4, 0x05],
  ] as [ProtocolVersion, number][]) {
    it(`refuses a CONNECT whose will topic is denied (version ${version}: ${code})`, () => {
      const { harness, authorizer } = setup();
      authorizer.publish = notSecret;
      const client = harness.open(version);
      expect(client.connect('c', { will: will('secret/will', 'bye'), username: 'u' }).reasonCode).toBe(code);
      expect(client.closed).toBe(true);
      expect(harness.broker.stats.authorization.willDenied).toBe(1);
      expect(harness.broker.state.sessions.has('c')).toBe(false);
    });
  }

  it('publishes an allowed will, and withholds one whose topic was denied since CONNECT', () => {
    const { harness, authorizer } = setup();
    const watcher = harness.connect('watcher', 5);
    watcher.subscribe(['wills/#']);
    const first = harness.connect('first', 5, { will: will('wills/first', 'gone') });
    const second = harness.connect('second', 5, { will: will('wills/second', 'gone') });
    first.drop();
    expect(watcher.publishes().map((p) => p.topic)).toEqual(['wills/first']);
    authorizer.publish = () => false;
    authorizer.generation += 1;
    second.drop();
    expect(watcher.publishes()).toEqual([]);
    expect(harness.broker.stats.authorization.willDenied).toBe(1);
    expect(harness.broker.stats.willsPublished).toBe(1);
  });
});
