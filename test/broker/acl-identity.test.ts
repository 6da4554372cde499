/**
 * Proves that the identity topic authorization decides for survives a broker restart, because it
 * is durable state: session-created / session-resumed carry the owner's user name (null for an
 * anonymous owner), will-set carries the user name of the connection that left the will.
 *
 * The state machine runs under the Harness with a real RuleAuthorizer (alice may read a/# and
 * read and write wills/#; bob may write a/# and public/# but not read a/#), and "restart" is a
 * crash: the connections vanish and a new Broker with the same authorizer replays the same
 * MemoryStateStore. It shows that alice's offline persistent session queues what is published
 * after the restart and gets it on reconnect, while bob's gets nothing (so the stored identity is what decides, not a blanket allow); that a
 * reconnect under another user name moves the session to that user across a restart; that wills
 * left before the crash are published (delayed, and at once for a volatile session, retained
 * too) for the identity that left them; and that records of an older version without the field
 * still replay and mean "owner unknown" (nothing delivered, will withheld, both counted).
 * The record codec round-trips the field in all three shapes (string, null, absent) and refuses
 * a user name of any other type; snapshotRecords keeps it.
 */
import { describe, expect, it } from 'vitest';
import { type AclRule, type AclRules, type Authorizer, RuleAuthorizer } from '../../src/broker/authorizer.js';
import { Broker } from '../../src/broker/broker.js';
import { MemoryStateStore } from '../../src/store/memory-store.js';
import { decodeStateRecord, encodeStateRecord, recordTypes } from '../../src/store/record-codec.js';
import { applyRecord, createDurableState, type StateRecord, snapshotRecords } from '../../src/store/state-store.js';
import { decodeText, Harness, type TestClient, will } from './harness.js';

function rule(access: AclRule['access'], filter: string): AclRule {
  return { access, filter, line: 0 };
}

const rules: AclRules = {
  users: new Map([
    ['alice', [rule('read', 'a/#'), rule('write', 'wills/#'), rule('read', 'wills/#')]],
    ['bob', [rule('write', 'a/#'), rule('write', 'public/#'), rule('read', 'wills/#')]],
  ]),
  anonymous: [rule('read', 'public/#')],
  patterns: [],
};

/** A harness whose broker has `authorizer`, from the start and after every restart. */
class AclHarness {
  readonly harness: Harness;
  private readonly opened: TestClient[] = [];

  constructor(
    readonly authorizer: Authorizer = new RuleAuthorizer(rules),
    store = new MemoryStateStore(),
  ) {
    this.harness = new Harness({}, store);
    this.boot();
  }

  get broker(): Broker {
    return this.harness.broker;
  }

  connect(clientId: string, username: string | undefined, options: Parameters<TestClient['connect']>[1] = {}, version: 4 | 5 = 5): TestClient {
    const client = this.harness.open(version);
    this.opened.push(client);
    const connack = client.connect(clientId, { username, ...options });
    expect(connack.reasonCode).toBe(0);
    return client;
  }

  /** Crash: every connection is gone without DISCONNECT; a new broker replays the store. */
  restart(): void {
    for (const client of this.opened) client.closed = true;
    this.opened.length = 0;
    this.boot();
  }

  private boot(): void {
    const harness = this.harness;
    harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authorizer: this.authorizer });
    harness.collect();
  }
}

const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };

/** alice and bob each leave an offline persistent session subscribed to a/# (bob's SUBSCRIBE is refused). */
function offlineSubscribers(acl: AclHarness): void {
  for (const [clientId, username] of [
    ['alice-phone', 'alice'],
    ['bob-phone', 'bob'],
  ] as const) {
    const client = acl.connect(clientId, username, persistent);
    client.subscribe([{ topicFilter: 'a/#', qos: 1 }]);
    client.disconnect();
  }
}

describe('the session owner survives a restart', () => {
  it('queues for alice what is published after the restart and delivers it on reconnect', () => {
    const acl = new AclHarness();
    offlineSubscribers(acl);
    acl.restart();
    expect(acl.broker.state.sessions.get('alice-phone')!.username).toBe('alice');
    const publisher = acl.connect('publisher', 'bob');
    publisher.publish('a/1', 'one', 1);
    publisher.publish('a/2', 'two', 1);
    expect(acl.broker.state.sessions.get('alice-phone')!.queue.length).toBe(2);
    expect(acl.broker.stats.authorization.receiveDenied).toBe(0);
    const back = acl.connect('alice-phone', 'alice', persistent);
    expect(back.publishes().map((p) => decodeText(p.payload))).toEqual(['one', 'two']);
  });

  it('decides for the stored owner: bob, whose rules do not let him read a/#, gets nothing', () => {
    // bob may not subscribe to a/#; give his session the subscription through a lenient rule set
    // first, so that after the restart only the receive check stands between him and a/1.
    const lenient = new RuleAuthorizer({ ...rules, users: new Map([...rules.users, ['bob', [rule('readwrite', 'a/#')]]]) });
    const before = new AclHarness(lenient);
    offlineSubscribers(before);
    const after = new AclHarness(new RuleAuthorizer(rules), before.harness.store);
    const publisher = after.connect('publisher', 'bob');
    publisher.publish('a/1', 'one', 1);
    expect(after.broker.state.sessions.get('bob-phone')!.queue.length).toBe(0);
    expect(after.broker.state.sessions.get('alice-phone')!.queue.length).toBe(1);
    expect(after.broker.stats.authorization.receiveDenied).toBe(1);
  });

  it('keeps a session with its owner across a restart: another user naming its client id is refused', () => {
    const acl = new AclHarness();
    offlineSubscribers(acl);
    acl.restart();
    const borrower = acl.harness.open(5);
    expect(borrower.connect('alice-phone', { username: 'bob', ...persistent })).toMatchObject({ reasonCode: 0x87, sessionPresent: false });
    expect(acl.broker.state.sessions.get('alice-phone')!.username).toBe('alice');
    expect(acl.harness.logs.find((log) => log.event === 'connect-refused')?.fields).toMatchObject({ clientId: 'alice-phone', username: 'bob', owner: 'alice' });
  });

  it('stores an anonymous owner as null and decides for the anonymous rules after a restart', () => {
    const acl = new AclHarness();
    const anonymous = acl.connect('kiosk', undefined, persistent);
    anonymous.subscribe([{ topicFilter: 'public/#', qos: 1 }]);
    anonymous.disconnect();
    acl.restart();
    expect(acl.broker.state.sessions.get('kiosk')!.username).toBeNull();
    acl.connect('publisher', 'bob').publish('public/news', 'hello', 1);
    expect(acl.broker.state.sessions.get('kiosk')!.queue.length).toBe(1);
  });

  it('keeps the owner through a compaction (snapshotRecords) and a restart', () => {
    const acl = new AclHarness(new RuleAuthorizer(rules), new MemoryStateStore({ compactRecordsMin: 1 }));
    offlineSubscribers(acl);
    acl.connect('noise', undefined).publish('public/x', 'x', 0);
    expect(acl.harness.store.compactions).toBeGreaterThan(0);
    acl.restart();
    acl.connect('publisher', 'bob').publish('a/1', 'one', 1);
    expect(acl.broker.state.sessions.get('alice-phone')!.queue.length).toBe(1);
  });
});

describe('wills after a restart', () => {
  it('publishes a delayed will left before the crash, for the identity that left it', () => {
    const acl = new AclHarness();
    const leaving = acl.connect('alice-sensor', 'alice', { ...persistent, will: will('wills/alice-sensor', 'gone', { qos: 1, properties: { willDelayInterval: 30 } }) });
    expect(leaving.closed).toBe(false);
    const watcher = acl.connect('alice-watch', 'alice', persistent);
    watcher.subscribe([{ topicFilter: 'wills/#', qos: 1 }]);
    watcher.disconnect();
    acl.restart();
    expect(acl.broker.state.willUsernames?.get('alice-sensor')).toBe('alice');
    acl.harness.advance(30_000);
    expect(acl.broker.stats.willsPublished).toBe(1);
    expect(acl.broker.stats.authorization.willDenied).toBe(0);
    const back = acl.connect('alice-watch', 'alice', persistent);
    expect(back.publishes().map((p) => decodeText(p.payload))).toEqual(['gone']);
  });

  it('publishes and retains the will of a volatile session (gone after the crash) at recovery', () => {
    const acl = new AclHarness();
    const watcher = acl.connect('alice-watch', 'alice', persistent);
    watcher.subscribe([{ topicFilter: 'wills/#', qos: 1 }]);
    watcher.disconnect();
    acl.connect('alice-volatile', 'alice', { cleanStart: true, will: will('wills/volatile', 'bye', { qos: 1, retain: true }) });
    acl.restart();
    expect(acl.broker.state.sessions.has('alice-volatile')).toBe(false);
    expect(acl.broker.stats.willsPublished).toBe(1);
    expect(acl.broker.state.retained.has('wills/volatile')).toBe(true);
    expect(acl.broker.state.willUsernames?.size).toBe(0);
    const back = acl.connect('alice-watch', 'alice', persistent);
    expect(back.publishes().map((p) => decodeText(p.payload))).toEqual(['bye']);
  });

  it('checks the will against the rules current at publication, for its stored owner', () => {
    const authorizer = new RuleAuthorizer(rules);
    const acl = new AclHarness(authorizer);
    acl.connect('alice-sensor', 'alice', { ...persistent, will: will('wills/alice-sensor', 'gone', { properties: { willDelayInterval: 30 } }) });
    acl.restart();
    authorizer.replace({ ...rules, users: new Map([['alice', [rule('read', 'a/#')]]]) });
    acl.harness.advance(30_000);
    expect(acl.broker.stats.willsPublished).toBe(0);
    expect(acl.broker.stats.authorization.willDenied).toBe(1);
    expect(acl.harness.logs.find((log) => log.event === 'not-authorized')?.fields).toMatchObject({ action: 'will', username: 'alice' });
  });
});

/** The records as an older version wrote them: without `username`. */
function withoutUsernames(records: readonly StateRecord[]): StateRecord[] {
  return records.map((record) => {
    if (!('username' in record)) return record;
    const { username: _username, ...older } = record;
    return older as StateRecord;
  });
}

describe('records of an older version (no user name)', () => {
  it('replay, leave the owner unknown, deliver nothing and withhold the will until the owner is back', () => {
    const acl = new AclHarness();
    offlineSubscribers(acl);
    acl.connect('alice-sensor', 'alice', { ...persistent, will: will('wills/alice-sensor', 'gone', { properties: { willDelayInterval: 30 } }) });
    const older = new MemoryStateStore({ records: withoutUsernames(acl.harness.store.records()) });
    const after = new AclHarness(new RuleAuthorizer(rules), older);
    expect(after.broker.state.sessions.get('alice-phone')!.username).toBeUndefined();
    after.connect('publisher', 'bob').publish('a/1', 'before alice is back', 1);
    expect(after.broker.stats.authorization.receiveDenied).toBe(1);
    after.harness.advance(30_000);
    expect(after.broker.stats.willsPublished).toBe(0);
    expect(after.broker.stats.authorization.willDenied).toBe(1);
    expect(after.harness.logs.filter((log) => log.event === 'not-authorized').map((log) => log.fields.why)).toEqual([
      'owner unknown: stored by a version that did not record user names',
      'owner unknown: stored by a version that did not record user names',
    ]);
    // alice reconnects: the session-resumed record names her again, and deliveries flow.
    const back = after.connect('alice-phone', 'alice', persistent);
    expect(back.publishes()).toEqual([]);
    after.connect('publisher', 'bob').publish('a/2', 'after', 1);
    expect(back.publishes().map((p) => decodeText(p.payload))).toEqual(['after']);
  });

  it('decodes a session-created body without the field as an unknown owner', () => {
    const json = JSON.stringify({ kind: 'session-created', clientId: 'old', protocolVersion: 4, expiryIntervalSeconds: 60 });
    const jsonBytes = new TextEncoder().encode(json);
    const body = new Uint8Array(4 + jsonBytes.length);
    new DataView(body.buffer).setUint32(0, jsonBytes.length, true);
    body.set(jsonBytes, 4);
    const record = decodeStateRecord(recordTypes['session-created'], body);
    expect('username' in record).toBe(false);
    const state = createDurableState();
    applyRecord(state, record);
    expect(state.sessions.get('old')!.username).toBeUndefined();
    expect(snapshotRecords(state).find((r) => r.kind === 'session-created')).not.toHaveProperty('username');
  });
});

describe('record codec and snapshots keep the owner', () => {
  const shapes: (string | null | undefined)[] = ['alice', '', 'ünïcode', null, undefined];
  const recordsFor = (username: string | null | undefined): StateRecord[] => {
    const owner = username === undefined ? {} : { username };
    return [
      { kind: 'session-created', clientId: 'c', protocolVersion: 5, expiryIntervalSeconds: 60, ...owner },
      { kind: 'session-resumed', clientId: 'c', protocolVersion: 4, expiryIntervalSeconds: 0xffffffff, ...owner },
      { kind: 'will-set', clientId: 'c', will: will('w', 'payload', { qos: 1 }), ...owner },
    ];
  };

  for (const username of shapes) {
    it(`round-trips session-created, session-resumed and will-set with username ${JSON.stringify(username)}`, () => {
      for (const record of recordsFor(username)) {
        const { type, body } = encodeStateRecord(record);
        const decoded = decodeStateRecord(type, body);
        expect(decoded).toEqual(record);
        expect('username' in decoded).toBe(username !== undefined);
      }
    });

    it(`snapshotRecords replays to the same owners with username ${JSON.stringify(username)}`, () => {
      const state = createDurableState();
      for (const record of recordsFor(username)) applyRecord(state, record);
      const replayed = createDurableState();
      for (const record of snapshotRecords(state)) {
        const { type, body } = encodeStateRecord(record);
        applyRecord(replayed, decodeStateRecord(type, body));
      }
      expect(replayed.sessions.get('c')!.username).toBe(username);
      expect(replayed.willUsernames!.get('c')).toBe(username);
      expect(replayed.willUsernames!.has('c')).toBe(username !== undefined);
    });
  }

  it('refuses a user name that is neither a string nor null', () => {
    const { type, body } = encodeStateRecord({ kind: 'session-created', clientId: 'c', protocolVersion: 5, expiryIntervalSeconds: 60, username: 7 as unknown as string });
    expect(() => decodeStateRecord(type, body)).toThrow(/user name/);
  });

  it('forgets a will owner when the will is cleared, and a later will-set without the field leaves it unknown', () => {
    const state = createDurableState();
    applyRecord(state, { kind: 'will-set', clientId: 'c', will: will('w', 'x'), username: 'alice' });
    applyRecord(state, { kind: 'will-cleared', clientId: 'c' });
    expect(state.willUsernames!.has('c')).toBe(false);
    applyRecord(state, { kind: 'will-set', clientId: 'c', will: will('w', 'x'), username: 'alice' });
    applyRecord(state, { kind: 'will-set', clientId: 'c', will: will('w', 'y') });
    expect(state.willUsernames!.has('c')).toBe(false);
  });
});
