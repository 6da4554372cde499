/**
 * Proves the three orderings that keep QoS 2 exactly once across a crash that loses whatever was
 * not yet durable (found by the simulator on a faulty disk, seeds 33 and 218):
 * - PUBREL to a subscriber waits until its `delivery-released` record is durable (else a crash
 *   makes the broker resend a PUBLISH the client has already released and will take as new);
 * - an outbound QoS 2 PUBLISH waits until the record binding it to its packet identifier is
 *   durable (else a crash re-routes it under another identifier), while QoS 1 goes at once;
 * - a publisher's `incoming-qos2-recorded` is appended after the routing records it stands for,
 *   so any durable prefix of the log that holds it also holds them; and the QoS 2 copies that
 *   routing produced wait for it too, even towards a volatile session that writes nothing
 *   (else the publisher's resend after a crash is routed again: seed 24), also when the copy
 *   leaves the session's queue later, in another input (seed 2163).
 * And one for sessions: a CONNACK waits for the deletion of its client id's lasting session that
 * an earlier input appended and that is not yet durable (seed 966668: a clean start taken over
 * by another clean start, which writes nothing, answered at once; a crash brought the old session
 * back).
 * A resent QoS 2 PUBLISH gets its PUBREC only once the first copy is durable, also when it comes on
 * a new connection (its CONNACK waits for the resume record, which is later in the log).
 * A memory store whose durable LSN the test advances by hand plays the log waiting for fsync.
 */
import { describe, expect, it } from 'vitest';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import type { BrokerConfig } from '../../src/config.js';
import { MemoryStateStore } from '../../src/store/memory-store.js';
import { Harness } from './harness.js';

class LaggingStore extends MemoryStateStore {
  durable = 0;
  override get durableLsn(): number {
    return this.durable;
  }
}

function setup(overrides: Partial<BrokerConfig> = {}): { store: LaggingStore; harness: Harness; flushDisk: () => void } {
  const store = new LaggingStore();
  const harness = new Harness(overrides, store);
  const flushDisk = (): void => {
    store.durable = store.appendedLsn;
    harness.advance(1);
  };
  return { store, harness, flushDisk };
}

function connectPersistent(harness: Harness, flushDisk: () => void, clientId: string): ReturnType<Harness['open']> {
  const client = harness.open(5);
  client.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: false, keepAliveSeconds: 0, clientId, properties: { sessionExpiryInterval: 3600 } });
  flushDisk();
  expect(client.takeOne(PacketType.Connack).reasonCode).toBe(0);
  return client;
}

describe('QoS 2 across a crash: what waits for durability', () => {
  it('holds an outbound QoS 2 PUBLISH until its delivery record is durable; QoS 1 goes at once', () => {
    const { harness, flushDisk } = setup();
    const subscriber = connectPersistent(harness, flushDisk, 'sub');
    subscriber.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 't/#', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    flushDisk();
    expect(subscriber.takeOne(PacketType.Suback).reasonCodes).toEqual([2]);
    const publisher = connectPersistent(harness, flushDisk, 'pub');
    publisher.send({ type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 't/1', packetId: 1, payload: Uint8Array.of(1) });
    expect(subscriber.take().map((p) => (p as PublishPacket).qos)).toEqual([1]);
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 't/2', packetId: 2, payload: Uint8Array.of(2) });
    expect(subscriber.take()).toEqual([]);
    flushDisk();
    const delivered = subscriber.take();
    expect(delivered.map((p) => p.type)).toEqual([PacketType.Publish]);
    expect((delivered[0] as PublishPacket).qos).toBe(2);
  });

  it('holds PUBREL until the released state is durable', () => {
    const { harness, flushDisk } = setup();
    const subscriber = connectPersistent(harness, flushDisk, 'sub');
    subscriber.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 't', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    flushDisk();
    subscriber.take();
    const publisher = connectPersistent(harness, flushDisk, 'pub');
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 't', packetId: 7, payload: Uint8Array.of(7) });
    flushDisk();
    const publish = subscriber.publishes()[0]!;
    subscriber.send({ type: PacketType.Pubrec, packetId: publish.packetId!, reasonCode: 0 });
    expect(subscriber.take()).toEqual([]);
    flushDisk();
    expect(subscriber.takeOne(PacketType.Pubrel).packetId).toBe(publish.packetId);
  });

  it('appends the incoming QoS 2 identifier after the routing records', () => {
    const { store, harness, flushDisk } = setup();
    const subscriber = connectPersistent(harness, flushDisk, 'sub');
    subscriber.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 't', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    flushDisk();
    const publisher = connectPersistent(harness, flushDisk, 'pub');
    const before = store.records().length;
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 't', packetId: 3, payload: Uint8Array.of(3) });
    const kinds = store
      .records()
      .slice(before)
      .map((record) => record.kind);
    expect(kinds).toContain('delivery-queued');
    expect(kinds.at(-1)).toBe('incoming-qos2-recorded');
  });

  it("holds a QoS 2 copy for a volatile subscriber until the publisher's identifier is durable", () => {
    const { harness, flushDisk } = setup();
    const subscriber = harness.connect('volatile', 5);
    subscriber.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 't', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    expect(subscriber.takeOne(PacketType.Suback).reasonCodes).toEqual([2]);
    const publisher = connectPersistent(harness, flushDisk, 'pub');
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 't', packetId: 4, payload: Uint8Array.of(4) });
    expect(subscriber.take()).toEqual([]);
    expect(publisher.take()).toEqual([]);
    flushDisk();
    expect(subscriber.publishes().map((p) => p.qos)).toEqual([2]);
    expect(publisher.takeOne(PacketType.Pubrec).packetId).toBe(4);
  });

  it('holds a queued QoS 2 copy for a volatile subscriber until what was appended before is durable', () => {
    const { harness, flushDisk } = setup({ inflightPerSessionMax: 1 });
    const subscriber = harness.connect('volatile', 5);
    subscriber.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 't', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    subscriber.take();
    const publisher = connectPersistent(harness, flushDisk, 'pub');
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 't', packetId: 1, payload: Uint8Array.of(1) });
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 't', packetId: 2, payload: Uint8Array.of(2) });
    // The first copy waits for the first PUBLISH's records; the second waits in the queue (window of 1).
    flushDisk();
    const first = subscriber.publishes();
    expect(first.map((p) => p.payload[0])).toEqual([1]);
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 't', packetId: 3, payload: Uint8Array.of(3) });
    subscriber.send({ type: PacketType.Pubrec, packetId: first[0]!.packetId!, reasonCode: 0 });
    subscriber.send({ type: PacketType.Pubcomp, packetId: first[0]!.packetId!, reasonCode: 0 });
    // The window opened, but the third PUBLISH's records (appended before) are not durable yet.
    expect(subscriber.publishes()).toEqual([]);
    flushDisk();
    expect(subscriber.publishes().map((p) => p.payload[0])).toEqual([2]);
  });
  it("holds the PUBREC of a resent QoS 2 PUBLISH until the first copy's records are durable, also on a new connection", () => {
    const { harness, flushDisk } = setup();
    const subscriber = connectPersistent(harness, flushDisk, 'sub');
    subscriber.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 't', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    flushDisk();
    subscriber.take();
    const publisher = connectPersistent(harness, flushDisk, 'pub');
    publisher.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 't', packetId: 5, payload: Uint8Array.of(5) });
    expect(publisher.take()).toEqual([]);
    // The connection drops before the disk syncs; the client resumes and resends.
    publisher.drop();
    const again = harness.open(5);
    again.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: false, keepAliveSeconds: 0, clientId: 'pub', properties: { sessionExpiryInterval: 3600 } });
    again.send({ type: PacketType.Publish, dup: true, qos: 2, retain: false, topic: 't', packetId: 5, payload: Uint8Array.of(5) });
    harness.advance(1);
    // A PUBREC now would promise what a crash could still take back.
    expect(again.take().map((packet) => packet.type)).not.toContain(PacketType.Pubrec);
    flushDisk();
    expect(again.take().map((packet) => packet.type)).toEqual([PacketType.Connack, PacketType.Pubrec]);
  });
});

describe('a clean start across a crash: the old session must not come back once the CONNACK said it is gone', () => {
  it('holds a clean-start CONNACK until an earlier, still unsynced deletion of the same client id is durable (seed 966668)', () => {
    const { store, harness, flushDisk } = setup();
    const first = connectPersistent(harness, flushDisk, 'x');
    first.send({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 'a/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
    flushDisk();
    expect(first.takeOne(PacketType.Suback).reasonCodes).toEqual([1]);
    // A clean start ends the lasting session: its deletion is appended, its CONNACK waits for it.
    const second = harness.open(5);
    second.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: true, keepAliveSeconds: 0, clientId: 'x' });
    expect(second.take()).toEqual([]);
    // Before that is durable, a third clean start takes the (volatile) session over: it writes
    // nothing itself, yet its CONNACK must wait for the deletion too.
    const durableBefore = store.durable;
    const third = harness.open(5);
    third.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: true, keepAliveSeconds: 0, clientId: 'x' });
    harness.advance(1);
    expect(store.durable).toBe(durableBefore);
    expect(third.take()).toEqual([]);
    flushDisk();
    const connack = third.takeOne(PacketType.Connack);
    expect(connack.reasonCode).toBe(0);
    expect(connack.sessionPresent).toBe(false);
  });
});
