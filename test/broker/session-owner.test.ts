/**
 * Proves that a session belongs to the user it was made for (issue: bob, connecting with alice's
 * client id and Clean Start 0, got session present and alice's queued messages). With the default
 * `sessionOwnerMismatch: "refuse"` another user naming the client id is refused (5.0: CONNACK 0x87;
 * 3.1.1: return code 5) and the session, online or offline, is untouched; with "fresh-session" the
 * newcomer starts empty and the old session ends (its pending will published for its owner).
 * The owner's own reconnects resume as before, anonymous counts as a user of its own, and a
 * session whose owner an older version did not record is taken by whoever resumes it.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStateStore } from '../../src/store/memory-store.js';
import { decodeText, Harness, will } from './harness.js';

const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };

/** alice's persistent session subscribed to house/#, offline with one message queued. */
function aliceAway(harness: Harness, version: 4 | 5): void {
  const alice = harness.open(version);
  alice.connect('shared-id', { username: 'alice', ...persistent });
  alice.subscribe([{ topicFilter: 'house/#', qos: 1 }]);
  alice.disconnect();
  harness.connect('publisher', 5).publish('house/door', 'open', 1);
}

for (const version of [4, 5] as const) {
  describe(`another user's client id, version ${version}`, () => {
    it('is refused and gets nothing of the session; the owner then resumes it whole', () => {
      const harness = new Harness();
      aliceAway(harness, version);
      const bob = harness.open(version);
      const connack = bob.connect('shared-id', { username: 'bob', ...persistent });
      expect(connack).toMatchObject({ reasonCode: version === 5 ? 0x87 : 5, sessionPresent: false });
      expect(bob.closed).toBe(true);
      expect(bob.publishes()).toEqual([]);
      expect(harness.broker.state.sessions.get('shared-id')).toMatchObject({ username: 'alice' });
      const alice = harness.open(version);
      expect(alice.connect('shared-id', { username: 'alice', ...persistent })).toMatchObject({ reasonCode: 0, sessionPresent: true });
      expect(alice.publishes().map((p) => decodeText(p.payload))).toEqual(['open']);
    });

    it('is refused while the owner is online, who stays connected', () => {
      const harness = new Harness();
      const alice = harness.open(version);
      alice.connect('shared-id', { username: 'alice', ...persistent });
      alice.subscribe([{ topicFilter: 'house/#', qos: 1 }]);
      const bob = harness.open(version);
      expect(bob.connect('shared-id', { username: 'bob', cleanStart: true }).reasonCode).toBe(version === 5 ? 0x87 : 5);
      expect(alice.closed).toBe(false);
      harness.connect('publisher', 5).publish('house/door', 'open', 1);
      expect(alice.publishes().map((p) => p.topic)).toEqual(['house/door']);
      expect(harness.broker.stats.takeovers).toBe(0);
    });

    it('with sessionOwnerMismatch "fresh-session" starts the newcomer empty and ends the old session', () => {
      const harness = new Harness({ sessionOwnerMismatch: 'fresh-session' });
      const watcher = harness.connect('watcher', 5);
      watcher.subscribe(['last/#']);
      const alice = harness.open(version);
      alice.connect('shared-id', { username: 'alice', will: will('last/alice', 'gone'), ...persistent });
      alice.subscribe([{ topicFilter: 'house/#', qos: 1 }]);
      const bob = harness.open(version);
      expect(bob.connect('shared-id', { username: 'bob', ...persistent })).toMatchObject({ reasonCode: 0, sessionPresent: false });
      // alice was taken over: her will is hers, published for her.
      expect(alice.closed).toBe(true);
      expect(watcher.publishes().map((p) => decodeText(p.payload))).toEqual(['gone']);
      harness.connect('publisher', 5).publish('house/door', 'open', 1);
      expect(bob.publishes()).toEqual([]);
      expect(harness.broker.state.sessions.get('shared-id')).toMatchObject({ username: 'bob' });
      expect(harness.broker.state.sessions.get('shared-id')!.subscriptions.size).toBe(0);
    });
  });
}

describe('who counts as the same user', () => {
  it('lets the owner resume, and tells anonymous apart from a named user', () => {
    const harness = new Harness();
    const anonymous = harness.open(5);
    anonymous.connect('kiosk', persistent);
    anonymous.disconnect();
    const named = harness.open(5);
    expect(named.connect('kiosk', { username: 'alice', ...persistent }).reasonCode).toBe(0x87);
    const again = harness.open(5);
    expect(again.connect('kiosk', persistent)).toMatchObject({ reasonCode: 0, sessionPresent: true });
  });

  it('gives a session whose owner was never recorded (an older version) to whoever resumes it', () => {
    const store = new MemoryStateStore({ records: [{ kind: 'session-created', clientId: 'legacy', protocolVersion: 4, expiryIntervalSeconds: 0xffffffff }] });
    const harness = new Harness({}, store);
    const client = harness.open(4);
    expect(client.connect('legacy', { username: 'carol', cleanStart: false })).toMatchObject({ reasonCode: 0, sessionPresent: true });
    expect(harness.broker.state.sessions.get('legacy')).toMatchObject({ username: 'carol' });
  });

  it('logs the refusal with the client id, address, user and owner', () => {
    const harness = new Harness();
    aliceAway(harness, 5);
    harness.open(5).connect('shared-id', { username: 'bob', ...persistent });
    const refusal = harness.logs.find((log) => log.event === 'connect-refused');
    expect(refusal?.fields).toMatchObject({ clientId: 'shared-id', username: 'bob', owner: 'alice', reasonCode: 0x87, address: expect.stringMatching(/^10\.0\.0\.\d+:1883$/) });
  });
});
