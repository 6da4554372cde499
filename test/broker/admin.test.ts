/**
 * Proves the operator's side of the core: admin commands are inputs (disconnect a client with
 * 0x98 and its will published; delete a session online or offline, durably, so it is gone after
 * a restart too; clear a retained message; unknown names and invalid topics answered as such),
 * each answered by an `admin-result` only once what it changed is durable; and the read-only view
 * lists clients, sessions, subscriptions and retained messages in key order, page by page, with
 * totals, handing out copies that cannot change the core.
 */
import { describe, expect, it } from 'vitest';
import { PacketType } from '../../src/codec/packets.js';
import type { AdminCommand } from '../../src/contract.js';
import { MemoryStateStore } from '../../src/store/memory-store.js';
import { decodeText, Harness, will } from './harness.js';

/** A store whose records become durable only when the test says so. */
class SlowStore extends MemoryStateStore {
  durableUpTo = 0;
  override get durableLsn(): number {
    return Math.min(this.durableUpTo, this.appendedLsn);
  }
}

function admin(harness: Harness, command: AdminCommand, requestId = harness.adminResults.length + 1) {
  harness.broker.adminRequest(harness.nowMs, requestId, command);
  harness.collect();
  return harness.adminResults.find((result) => result.requestId === requestId)?.outcome;
}

const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };

describe('admin commands', () => {
  it('disconnects a client with 0x98, publishing its will and keeping its session', () => {
    const harness = new Harness();
    const watcher = harness.connect('watcher', 5);
    watcher.subscribe(['last/#']);
    const client = harness.open(5);
    client.connect('lamp', { will: will('last/lamp', 'gone'), ...persistent });
    expect(admin(harness, { kind: 'disconnect-client', clientId: 'lamp' })).toEqual({ ok: true });
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(0x98);
    expect(client.closed).toBe(true);
    expect(watcher.publishes().map((p) => decodeText(p.payload))).toEqual(['gone']);
    expect(harness.broker.state.sessions.has('lamp')).toBe(true);
    expect(admin(harness, { kind: 'disconnect-client', clientId: 'lamp' })).toMatchObject({ ok: false, status: 'not-found' });
  });

  it('deletes a session, online or offline, durably', () => {
    const harness = new Harness();
    const online = harness.open(4);
    online.connect('online', persistent);
    harness.open(5).connect('offline', persistent);
    harness.broker.connectionClosed(harness.nowMs, 2);
    harness.collect();
    expect(admin(harness, { kind: 'delete-session', clientId: 'online' })).toEqual({ ok: true });
    expect(online.closed).toBe(true);
    expect(admin(harness, { kind: 'delete-session', clientId: 'offline' })).toEqual({ ok: true });
    harness.restart();
    expect([...harness.broker.state.sessions.keys()]).toEqual([]);
    expect(admin(harness, { kind: 'delete-session', clientId: 'offline' })).toMatchObject({ ok: false, status: 'not-found' });
  });

  it('clears a retained message, and says so for an unknown or invalid topic', () => {
    const harness = new Harness({ sysIntervalSeconds: 0 });
    harness.connect('pub', 4).publish('status/a', 'on', 1, { retain: true });
    expect(admin(harness, { kind: 'delete-retained', topic: 'status/a' })).toEqual({ ok: true });
    expect(harness.broker.state.retained.size).toBe(0);
    expect(admin(harness, { kind: 'delete-retained', topic: 'status/a' })).toMatchObject({ ok: false, status: 'not-found' });
    expect(admin(harness, { kind: 'delete-retained', topic: 'status/#' })).toMatchObject({ ok: false, status: 'invalid' });
  });

  it('answers only once the change is durable', () => {
    const store = new SlowStore();
    store.durableUpTo = Number.POSITIVE_INFINITY;
    const harness = new Harness({ sysIntervalSeconds: 0 }, store);
    harness.connect('pub', 4).publish('status/a', 'on', 1, { retain: true });
    store.durableUpTo = store.appendedLsn;
    expect(admin(harness, { kind: 'delete-retained', topic: 'status/a' }, 7)).toBeUndefined();
    store.durableUpTo = Number.POSITIVE_INFINITY;
    harness.advance(1);
    expect(harness.adminResults).toEqual([{ kind: 'admin-result', requestId: 7, outcome: { ok: true } }]);
  });
});

describe('the read-only view', () => {
  it('lists clients in client id order, a page at a time, with details', () => {
    const harness = new Harness();
    for (const clientId of ['delta', 'alpha', 'charlie', 'bravo']) harness.connect(clientId, 5, { username: `user-${clientId}`, keepAliveSeconds: 30 });
    const view = harness.broker.view;
    expect(view.clients({ limit: 2 }).map((client) => client.clientId)).toEqual(['alpha', 'bravo']);
    expect(view.clients({ after: 'bravo', limit: 10 }).map((client) => client.clientId)).toEqual(['charlie', 'delta']);
    expect(view.clients({ limit: 1 })[0]).toMatchObject({ username: 'user-alpha', listener: 'mqtt', protocolVersion: 5, keepAliveSeconds: 30, queued: 0, inflight: 0 });
    harness.connect('echo', 4).subscribe(['a/#', 'b/+']);
    expect(view.client('echo')?.subscriptionList.map((subscription) => subscription.filter)).toEqual(['a/#', 'b/+']);
    expect(view.client('nobody')).toBeNull();
  });

  it('lists sessions, subscriptions and retained messages, and counts totals', () => {
    const harness = new Harness({ sysIntervalSeconds: 0 });
    const away = harness.connect('away', 5, persistent);
    away.subscribe([{ topicFilter: 'a/#', qos: 1 }]);
    away.disconnect();
    const publisher = harness.connect('pub', 5);
    publisher.publish('a/1', 'one', 1, { retain: true });
    publisher.publish('b/1', 'two', 0, { retain: true });
    const view = harness.broker.view;
    expect(view.sessions({ limit: 10 }).map((session) => [session.clientId, session.online, session.queued])).toEqual([
      ['away', false, 1],
      ['pub', true, 0],
    ]);
    expect(view.subscriptions({ limit: 10 })).toEqual([expect.objectContaining({ clientId: 'away', filter: 'a/#', qos: 1 })]);
    expect(view.retained({ limit: 10, filter: 'a/#' })).toEqual([expect.objectContaining({ topic: 'a/1', payloadText: 'one', payloadBytes: 3 })]);
    expect(view.gauges()).toMatchObject({ sessionsOnline: 1, sessionsOffline: 1, subscriptions: 1, retainedMessages: 2, queuedMessages: 1, clientsByListener: { mqtt: 1 } });
    expect(view.gauges().clientsByProtocolVersion).toEqual({ '5.0': 1 });
    harness.connect('old', 4);
    harness.connect('older', 3);
    expect(view.gauges().clientsByProtocolVersion).toEqual({ '3.1': 1, '3.1.1': 1, '5.0': 1 });
    const counters = view.counters();
    (counters.drops as Record<string, number>).queueOverflow = 99;
    expect(harness.broker.stats.drops.queueOverflow).toBe(0);
  });
});
