/**
 * Proves the `$SYS` topics: the core publishes its figures as retained QoS 0 messages on its own
 * deadline (first when it is ready, then every sysIntervalSeconds, only what changed), with
 * values the workload implies; `#` never carries them and an authorizer decides who reads them;
 * they are never written to the store (nor to a snapshot); clients may neither publish there nor
 * leave a will there; sysIntervalSeconds 0 turns them off.
 */
import { describe, expect, it } from 'vitest';
import type { Authorizer } from '../../src/broker/authorizer.js';
import { Broker } from '../../src/broker/broker.js';
import type { PublishPacket } from '../../src/codec/packets.js';
import { snapshotRecords } from '../../src/store/state-store.js';
import { decodeText, Harness, type TestClient, will } from './harness.js';

function values(publishes: PublishPacket[]): Map<string, string> {
  return new Map(publishes.map((p) => [p.topic, decodeText(p.payload)]));
}

function sysSubscriber(harness: Harness, clientId = 'ops'): TestClient {
  const client = harness.connect(clientId, 5);
  client.subscribe([{ topicFilter: '$SYS/#', qos: 1 }]);
  return client;
}

describe('$SYS topics', () => {
  it('publishes the figures the workload implies, retained, and only what changed', () => {
    const harness = new Harness({ sysIntervalSeconds: 10 });
    harness.advance(0);
    const publisher = harness.connect('pub', 4);
    for (let index = 0; index < 3; index++) publisher.publish('a/b', `m${index}`, 1, { retain: index === 0 });
    const ops = sysSubscriber(harness);
    // Retained from the first publication at start: the figures of the empty broker.
    const initial = values(ops.publishes());
    expect(initial.get('$SYS/broker/clients/connected')).toBe('0');
    expect(initial.get('$SYS/broker/version')).toBe('keel');
    expect(initial.get('$SYS/broker/uptime')).toBe('0 seconds');
    for (const publish of ops.publishes()) expect(publish.retain).toBe(true);
    harness.advance(10_000);
    const next = values(ops.publishes());
    expect(next.get('$SYS/broker/uptime')).toBe('10 seconds');
    expect(next.get('$SYS/broker/clients/connected')).toBe('2');
    expect(next.get('$SYS/broker/publish/messages/received')).toBe('3');
    // Like Mosquitto's, the count includes the broker's own retained $SYS messages.
    const sysRetained = [...harness.broker.state.retained.keys()].filter((topic) => topic.startsWith('$SYS/')).length;
    expect(next.get('$SYS/broker/retained messages/count')).toBe(String(1 + sysRetained));
    expect(next.get('$SYS/broker/subscriptions/count')).toBe('1');
    // Unchanged since the last publication: not sent again.
    expect(next.has('$SYS/broker/version')).toBe(false);
    harness.advance(10_000);
    expect([...values(ops.publishes()).keys()]).not.toContain('$SYS/broker/clients/connected');
  });

  it('averages rates per minute over 1, 5 and 15 minutes', () => {
    const harness = new Harness({ sysIntervalSeconds: 60 });
    harness.advance(0);
    const publisher = harness.connect('pub', 4);
    const ops = sysSubscriber(harness);
    ops.publishes();
    for (let index = 0; index < 120; index++) publisher.publish('load', 'x', 0);
    harness.advance(60_000);
    const figures = values(ops.publishes());
    // 120 PUBLISHes in one minute: the 1-minute average moves 1 - e^-1 of the way to 120.
    expect(Number(figures.get('$SYS/broker/load/publish/received/1min'))).toBeCloseTo(120 * (1 - Math.exp(-1)), 1);
    expect(Number(figures.get('$SYS/broker/load/publish/received/15min'))).toBeCloseTo(120 * (1 - Math.exp(-1 / 15)), 1);
  });

  it('is never matched by #, and an authorizer decides who may read it', () => {
    const authorizer: Authorizer = { canSubscribe: () => true, canPublish: () => true, canReceive: (identity) => identity.username === 'admin' };
    const harness = new Harness();
    harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authorizer });
    harness.collect();
    const everything = harness.connect('all', 5, { username: 'admin' });
    everything.subscribe(['#']);
    const admin = harness.connect('admin', 5, { username: 'admin' });
    admin.subscribe(['$SYS/broker/clients/+']);
    const user = harness.connect('user', 5, { username: 'user' });
    user.subscribe(['$SYS/#']);
    harness.advance(10_000);
    expect(everything.publishes()).toEqual([]);
    expect(user.publishes()).toEqual([]);
    expect(admin.publishes().length).toBeGreaterThan(0);
  });

  it('is never written to the store, nor to a snapshot', () => {
    const harness = new Harness();
    harness.advance(10_000);
    expect(harness.broker.state.retained.size).toBeGreaterThan(20);
    expect(harness.store.records().some((record) => JSON.stringify(record).includes('$SYS'))).toBe(false);
    expect(snapshotRecords(harness.broker.state).some((record) => JSON.stringify(record).includes('$SYS'))).toBe(false);
    harness.restart();
    expect([...harness.broker.state.retained.keys()]).toEqual([]);
  });

  it('refuses client PUBLISHes and wills on $SYS', () => {
    const harness = new Harness();
    const ops = sysSubscriber(harness);
    ops.publishes();
    const spoofer = harness.connect('spoofer', 5);
    const [ack] = spoofer.publish('$SYS/broker/version', 'fake', 1);
    expect(ack).toMatchObject({ reasonCode: 0x87 });
    expect(ops.publishes()).toEqual([]);
    expect(harness.broker.stats.authorization.publishDenied).toBe(1);
    expect(harness.open(5).connect('w', { will: will('$SYS/broker/version', 'gone') }).reasonCode).toBe(0x87);
    // A refusal with 0x87 is what an authentication failure looks like to the client: counted so.
    harness.advance(10_000);
    expect(values(ops.publishes()).get('$SYS/keel/authentication/failures')).toBe('1');
  });

  it('is off with sysIntervalSeconds 0', () => {
    const harness = new Harness({ sysIntervalSeconds: 0 });
    const ops = sysSubscriber(harness);
    harness.advance(100_000);
    expect(ops.publishes()).toEqual([]);
    expect(harness.broker.state.retained.size).toBe(0);
  });
});
