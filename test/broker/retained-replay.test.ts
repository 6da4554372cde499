/**
 * Proves that retained messages sent because of a SUBSCRIBE are paced by the subscriber instead of
 * dropped (issue: with 100,000 retained topics a QoS 0 subscriber to `ret/#` got 9,208, the rest
 * dropped as output-full). The harness plays the host: it reports the connection's unsent output
 * (`outputBuffered`), as a reader that takes its bytes in bursts. Every retained message arrives
 * exactly once with RETAIN=1, none is dropped or counted as a drop, the session queue stays empty
 * (no copies), QoS 1 respects the inflight window, live QoS 1/2 messages wait behind the replay,
 * a message retained after the SUBSCRIBE is not replayed on top of its live copy, the replay goes
 * on after a resumed reconnect and ends with a clean start, and one input looks at a bounded
 * number of entries (the rest goes on at the next tick).
 */
import { describe, expect, it } from 'vitest';

const entriesPerStepMax = 4096;

import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import { decodeText, Harness, type TestClient } from './harness.js';

function retain(harness: Harness, topics: string[], qos: 0 | 1 = 0): void {
  const publisher = harness.connect('publisher', 5);
  for (const topic of topics) publisher.publish(topic, `v-${topic}`, qos, { retain: true });
  publisher.disconnect();
}

/** Plays a reader that takes what it was sent only when `drain` is called. */
function drainAll(harness: Harness, client: TestClient, rounds: number, onRound: (publishes: PublishPacket[]) => void): void {
  for (let round = 0; round < rounds; round++) {
    // The host reports the buffer full, then empty: the broker sends up to the cap again.
    harness.broker.outputBuffered(harness.nowMs, client.id, 0);
    harness.collect();
    const publishes = client.publishes();
    if (publishes.length === 0) return;
    onRound(publishes);
  }
}

const topics = (count: number, prefix = 'ret'): string[] => Array.from({ length: count }, (_, index) => `${prefix}/${index}`);

describe('retained messages on subscribe, paced', () => {
  it('sends every retained message to a QoS 0 subscriber at its output cap, dropping none', () => {
    const harness = new Harness({ connectionOutputBytesMax: 4096 });
    retain(harness, topics(10_000));
    const subscriber = harness.connect('sub', 5);
    subscriber.subscribe([{ topicFilter: 'ret/#', qos: 0 }]);
    const first = subscriber.publishes();
    // One input sent about a cap's worth, not everything.
    expect(first.length).toBeGreaterThan(0);
    expect(first.length).toBeLessThan(400);
    const seen = new Set(first.map((p) => p.topic));
    drainAll(harness, subscriber, 1_000, (publishes) => {
      for (const publish of publishes) {
        expect(publish.retain).toBe(true);
        expect(seen.has(publish.topic)).toBe(false);
        seen.add(publish.topic);
      }
    });
    expect(seen.size).toBe(10_000);
    expect(harness.broker.stats.drops.outputFull).toBe(0);
    expect(harness.broker.retainedReplays.size).toBe(0);
  });

  it('sends QoS 1 retained messages through the inflight window, never queueing or dropping them', () => {
    const harness = new Harness({ inflightPerSessionMax: 10, queuedMessagesPerSessionMax: 5 });
    retain(harness, topics(1_000), 1);
    const subscriber = harness.connect('sub', 5, { cleanStart: false, properties: { sessionExpiryInterval: 60 } });
    subscriber.subscribe([{ topicFilter: 'ret/#', qos: 1 }]);
    const received: string[] = [];
    for (let pending = subscriber.publishes(); pending.length > 0; pending = subscriber.publishes()) {
      const session = harness.broker.state.sessions.get('sub')!;
      expect(session.inflight.size).toBeLessThanOrEqual(10);
      expect(session.queue.length).toBe(0);
      for (const publish of pending) {
        received.push(publish.topic);
        subscriber.acknowledge(publish);
      }
    }
    expect(new Set(received).size).toBe(1_000);
    expect(received).toHaveLength(1_000);
    expect(harness.broker.stats.drops.queueOverflow).toBe(0);
  });

  it('makes live QoS 1 messages wait behind the replay, and does not replay what was retained after the SUBSCRIBE', () => {
    const harness = new Harness({ inflightPerSessionMax: 2 });
    retain(harness, topics(5), 1);
    const subscriber = harness.connect('sub', 5);
    subscriber.subscribe([{ topicFilter: 'ret/#', qos: 1 }]);
    const publisher = harness.connect('live', 5);
    publisher.publish('ret/0', 'live update', 1, { retain: true });
    publisher.publish('ret/new', 'live new', 1, { retain: true });
    const order: string[] = [];
    for (let pending = subscriber.publishes(); pending.length > 0; pending = subscriber.publishes()) {
      for (const publish of pending) {
        order.push(`${publish.topic}=${decodeText(publish.payload)}${publish.retain ? ' (retained)' : ''}`);
        subscriber.acknowledge(publish);
      }
    }
    // The window (2) took ret/0 and ret/1 at once; the rest of the replay goes before the live
    // messages, and ret/new, retained after the SUBSCRIBE, comes once, live.
    expect(order).toEqual([
      'ret/0=v-ret/0 (retained)',
      'ret/1=v-ret/1 (retained)',
      'ret/2=v-ret/2 (retained)',
      'ret/3=v-ret/3 (retained)',
      'ret/4=v-ret/4 (retained)',
      'ret/0=live update',
      'ret/new=live new',
    ]);
  });

  it('goes on after a reconnect that resumes the session, and ends with a clean start', () => {
    const harness = new Harness({ connectionOutputBytesMax: 4096 });
    retain(harness, topics(2_000));
    const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 600 } };
    const first = harness.connect('sub', 5, persistent);
    first.subscribe([{ topicFilter: 'ret/#', qos: 0 }]);
    const seen = new Set(first.publishes().map((p) => p.topic));
    first.drop();
    const second = harness.open(5);
    expect(second.connect('sub', persistent).sessionPresent).toBe(true);
    for (const publish of second.take().filter((p): p is PublishPacket => p.type === PacketType.Publish)) seen.add(publish.topic);
    drainAll(harness, second, 1_000, (publishes) => {
      for (const publish of publishes) seen.add(publish.topic);
    });
    expect(seen.size).toBe(2_000);
    const third = harness.connect('other', 5, persistent);
    third.subscribe([{ topicFilter: 'ret/#', qos: 0 }]);
    third.drop();
    const clean = harness.open(5);
    clean.connect('other', { cleanStart: true });
    expect(clean.publishes()).toEqual([]);
    expect(harness.broker.retainedReplays.has('other')).toBe(false);
  });

  it(`looks at no more than ${entriesPerStepMax} retained entries per input and goes on at the next tick`, () => {
    const harness = new Harness();
    retain(harness, [...topics(2 * entriesPerStepMax, 'other'), 'wanted/a', 'wanted/b']);
    const subscriber = harness.connect('sub', 5);
    subscriber.subscribe([{ topicFilter: 'wanted/#', qos: 0 }]);
    expect(subscriber.publishes()).toEqual([]);
    harness.advance(1);
    expect(subscriber.publishes()).toEqual([]);
    harness.advance(1);
    expect(subscriber.publishes().map((p) => p.topic)).toEqual(['wanted/a', 'wanted/b']);
  });
});
