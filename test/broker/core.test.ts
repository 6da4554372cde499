/**
 * Proves the core mechanics under the MQTT features: the deadline heap orders and ties
 * deterministically; acknowledgements wait for durability (a store whose durable LSN lags holds
 * PUBACK/SUBACK/CONNACK back, and later packets on that connection queue behind them); the same
 * inputs give byte-identical actions (determinism); a PUBLISH is encoded once for all receivers
 * of the same variant; time going backwards is an assertion; shutdown says 0x8B to 5.0 clients.
 */
import { describe, expect, it } from 'vitest';
import { Broker } from '../../src/broker/broker.js';
import { DeadlineHeap } from '../../src/broker/deadline-heap.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { PacketType } from '../../src/codec/packets.js';
import { resolveConfig } from '../../src/config.js';
import { type Action, defaultListener } from '../../src/contract.js';
import { MemoryStateStore } from '../../src/store/memory-store.js';
import { applyRecord, createDurableState, snapshotRecords } from '../../src/store/state-store.js';
import { Harness, will } from './harness.js';

/** A memory store whose durability the test advances by hand, like a log waiting for fsync. */
class LaggingStore extends MemoryStateStore {
  durable = 0;
  override get durableLsn(): number {
    return this.durable;
  }
}

describe('deadline heap', () => {
  it('pops in deadline order, ties in insertion order, only when due', () => {
    const heap = new DeadlineHeap();
    const deadlines = [50, 10, 30, 10, 70, 20, 30];
    for (const [index, deadline] of deadlines.entries()) heap.push(deadline, 'will', index, '');
    expect(heap.peekMs()).toBe(10);
    expect(heap.popDue(5)).toBeNull();
    const popped: [number, number][] = [];
    for (let entry = heap.popDue(60); entry !== null; entry = heap.popDue(60)) popped.push([entry.deadlineMs, entry.connectionId]);
    expect(popped).toEqual([
      [10, 1],
      [10, 3],
      [20, 5],
      [30, 2],
      [30, 6],
      [50, 0],
    ]);
    expect(heap.size).toBe(1);
  });

  it('keeps every field of thousands of entries through growing and shrinking its columns, in the order a sort gives', () => {
    // A seeded sequence of pushes and pops checked against a plain sorted list: the columns
    // (deadline, sequence, connection, kind, client id) must move together through every swap,
    // every resize up past 4,096 entries and every shrink back down.
    const heap = new DeadlineHeap();
    const reference: { deadlineMs: number; sequence: number; kind: string; connectionId: number; clientId: string }[] = [];
    const kinds = ['keepalive', 'will', 'session-expiry', 'connect-timeout'] as const;
    let state = 12345;
    const random = (bound: number): number => {
      state = (state * 1103515245 + 12345) % 2147483648;
      return state % bound;
    };
    let sequence = 0;
    let nowMs = 0;
    for (let round = 0; round < 3; round++) {
      for (let index = 0; index < 5_000; index++) {
        const entry = {
          deadlineMs: nowMs + random(1_000),
          sequence: ++sequence,
          kind: kinds[random(kinds.length)]!,
          connectionId: random(100_000),
          clientId: random(3) === 0 ? `client-${index}` : '',
        };
        heap.push(entry.deadlineMs, entry.kind, entry.connectionId, entry.clientId);
        reference.push(entry);
      }
      expect(heap.size).toBe(reference.length);
      nowMs += 1_000;
      reference.sort((a, b) => a.deadlineMs - b.deadlineMs || a.sequence - b.sequence);
      const popped = [];
      for (let entry = heap.popDue(nowMs - 300); entry !== null; entry = heap.popDue(nowMs - 300)) popped.push(entry);
      expect(popped).toEqual(reference.splice(0, popped.length));
      expect(popped.length).toBeGreaterThan(2_000);
      expect(heap.size).toBe(reference.length);
    }
  });
});

describe('acknowledgements wait for durability', () => {
  it('CONNACK of a persistent session, SUBACK and PUBACK appear only once durable', () => {
    const store = new LaggingStore();
    const harness = new Harness({}, store);
    const client = harness.open(4);
    client.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 4, cleanStart: false, keepAliveSeconds: 0, clientId: 'p' });
    expect(client.take()).toEqual([]);
    store.durable = store.appendedLsn;
    harness.advance(1);
    expect(client.takeOne(PacketType.Connack).reasonCode).toBe(0);
    client.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 't', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    client.send({ type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 't', packetId: 2, payload: new Uint8Array([1]) });
    client.send({ type: PacketType.Pingreq });
    // Nothing is released, and the PINGRESP waits behind the held acknowledgements.
    expect(client.take()).toEqual([]);
    store.durable = store.appendedLsn;
    harness.advance(1);
    expect(client.take().map((p) => p.type)).toEqual([PacketType.Suback, PacketType.Publish, PacketType.Puback, PacketType.Pingresp]);
  });

  it('a volatile session needs no durability for its CONNACK', () => {
    const store = new LaggingStore();
    const harness = new Harness({}, store);
    expect(harness.open(5).connect('v').reasonCode).toBe(0);
  });
});

function scriptedRun(): Uint8Array[] {
  const harness = new Harness();
  const sent: Uint8Array[] = [];
  const original = harness.broker.drainActions.bind(harness.broker);
  harness.broker.drainActions = (): readonly Action[] => {
    const actions = original();
    for (const action of actions) if (action.kind === 'send') sent.push(action.bytes);
    return actions;
  };
  const a = harness.connect('', 5, { will: will('w', 'x') });
  const b = harness.connect('b', 4, { cleanStart: false });
  b.subscribe(['#', '$share/g/+']);
  a.subscribe([{ topicFilter: 'x/+', qos: 2 }]);
  for (let index = 0; index < 20; index++) b.publish(`x/${index % 3}`, `p${index}`, (index % 3) as 0 | 1 | 2);
  a.drop();
  harness.advance(100);
  return sent;
}

describe('determinism and the hot path', () => {
  it('the same inputs produce byte-identical output', () => {
    const first = scriptedRun();
    const second = scriptedRun();
    expect(first.length).toBeGreaterThan(20);
    expect(second).toEqual(first);
  });

  it('QoS 0 receivers of the same variant share one encoded PUBLISH', () => {
    const harness = new Harness();
    const one = harness.connect('one', 4);
    const two = harness.connect('two', 4);
    one.subscribe([{ topicFilter: 't', qos: 0 }]);
    two.subscribe([{ topicFilter: 't', qos: 0 }]);
    const captured: Uint8Array[] = [];
    const original = harness.broker.drainActions.bind(harness.broker);
    harness.broker.drainActions = (): readonly Action[] => {
      const actions = original();
      for (const action of actions) if (action.kind === 'send') captured.push(action.bytes);
      return actions;
    };
    harness.connect('pub', 4).publish('t', 'shared', 0);
    const publishes = captured.filter((bytes) => bytes[0]! >> 4 === PacketType.Publish);
    expect(publishes).toHaveLength(2);
    expect(publishes[0]).toBe(publishes[1]);
  });
});

describe('core contract', () => {
  it('asserts that time never goes backwards', () => {
    const harness = new Harness();
    expect(() => harness.broker.tick(harness.nowMs - 1)).toThrow(/backwards/);
  });

  it('shutdown sends DISCONNECT 0x8B to 5.0 clients and closes everyone', () => {
    const harness = new Harness();
    const five = harness.connect('five', 5);
    const four = harness.connect('four', 4);
    harness.broker.shutdown(harness.nowMs);
    harness.collect();
    expect(five.takeOne(PacketType.Disconnect).reasonCode).toBe(0x8b);
    expect(four.take()).toEqual([]);
    expect(five.closed && four.closed).toBe(true);
    expect(harness.broker.stats.connectionsCurrent).toBe(0);
  });

  it('nextDeadlineMs reports the earliest timer', () => {
    const harness = new Harness({ connectTimeoutMs: 700, sysIntervalSeconds: 0 });
    expect(harness.broker.nextDeadlineMs()).toBeNull();
    harness.open(4);
    expect(harness.broker.nextDeadlineMs()).toBe(harness.nowMs + 700);
  });
});

describe('state records', () => {
  it('snapshotRecords replays to the state it was taken from', () => {
    const harness = new Harness();
    const sub = harness.connect('s', 5, { cleanStart: false, properties: { sessionExpiryInterval: 99 } });
    sub.subscribe([{ topicFilter: 'a/#', qos: 2 }]);
    const pub = harness.connect('p', 5);
    pub.publish('a/1', 'x', 2, { retain: true });
    pub.publish('a/2', 'y', 1);
    const replayed = createDurableState();
    for (const record of snapshotRecords(harness.broker.state)) applyRecord(replayed, record);
    const live = harness.broker.state;
    expect([...replayed.retained]).toEqual([...live.retained]);
    expect([...replayed.messages.keys()]).toEqual([...live.messages.keys()]);
    const liveSession = live.sessions.get('s')!;
    const replayedSession = replayed.sessions.get('s')!;
    expect([...replayedSession.inflight.values()]).toEqual([...liveSession.inflight.values()]);
    expect(replayedSession.nextPacketId).toBe(liveSession.nextPacketId);
    expect(replayedSession.nextDeliverySequence).toBe(liveSession.nextDeliverySequence);
  });
});

describe('log levels the host drops', () => {
  // A host whose logger drops info lines says logInfo: false, and the core then builds none
  // (one per connect and disconnect of a reconnect storm); warnings still come through.
  function logsOf(logInfo: boolean): { level: string; event: string }[] {
    const resolved = resolveConfig({});
    if (!resolved.ok) throw new Error(resolved.problems.join('; '));
    const broker = new Broker({ config: resolved.config, nowMs: 0, store: new MemoryStateStore(), logInfo });
    broker.drainActions();
    broker.connectionOpened(1, 1, { remoteAddress: 'test', listener: defaultListener });
    broker.bytesReceived(1, 1, encodePacket({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 4, cleanStart: true, keepAliveSeconds: 0, clientId: 'a' }, 4));
    // A second CONNECT on the same connection breaks the protocol: a warning.
    broker.bytesReceived(2, 1, encodePacket({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 4, cleanStart: true, keepAliveSeconds: 0, clientId: 'a' }, 4));
    return broker
      .drainActions()
      .filter((action) => action.kind === 'log')
      .map((action) => ({ level: action.level, event: action.event }));
  }

  it('queues info lines by default and none with logInfo false, keeping the rest', () => {
    const all = logsOf(true);
    expect(all.some((line) => line.level === 'info' && line.event === 'client-connected')).toBe(true);
    const quiet = logsOf(false);
    expect(quiet.some((line) => line.level === 'info')).toBe(false);
    expect(quiet).toEqual(all.filter((line) => line.level !== 'info'));
    expect(quiet.length).toBeGreaterThan(0);
  });
});
