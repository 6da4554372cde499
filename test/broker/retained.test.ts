/**
 * Proves retained messages: set, replace, delete with an empty payload [MQTT-3.3.1-10], delivery
 * on subscribe with RETAIN=1 per Retain Handling 0/1/2, wildcard lookup, QoS of the retained copy,
 * none for shared subscriptions, and the retained limits (new topic refused, message still routed,
 * 5.0 PUBACK 0x97, counted).
 */
import { describe, expect, it } from 'vitest';
import { decodeText, Harness } from './harness.js';

for (const version of [4, 5] as const) {
  describe(`retained messages, version ${version}`, () => {
    it('a new subscriber gets the last retained message with RETAIN=1', () => {
      const harness = new Harness();
      const publisher = harness.connect('pub', version);
      publisher.publish('status/a', 'old', 1, { retain: true });
      publisher.publish('status/a', 'new', 1, { retain: true });
      const subscriber = harness.connect('sub', version);
      subscriber.subscribe(['status/+']);
      const received = subscriber.publishes();
      expect(received.map((p) => decodeText(p.payload))).toEqual(['new']);
      expect(received[0]!.retain).toBe(true);
      expect(received[0]!.qos).toBe(1);
    });

    it('an empty retained payload deletes the retained message', () => {
      const harness = new Harness();
      const publisher = harness.connect('pub', version);
      publisher.publish('status/a', 'x', 0, { retain: true });
      publisher.publish('status/a', '', 0, { retain: true });
      expect(harness.broker.state.retained.size).toBe(0);
      const subscriber = harness.connect('sub', version);
      subscriber.subscribe(['status/a']);
      expect(subscriber.publishes()).toEqual([]);
    });
  });
}

describe('retain handling (5.0)', () => {
  it('0 sends on every subscribe, 1 only when the subscription is new, 2 never', () => {
    const harness = new Harness();
    harness.connect('pub', 5).publish('r', 'kept', 0, { retain: true });
    const client = harness.connect('sub', 5);
    client.subscribe([{ topicFilter: 'r', retainHandling: 0 }]);
    expect(client.publishes()).toHaveLength(1);
    client.subscribe([{ topicFilter: 'r', retainHandling: 0 }]);
    expect(client.publishes()).toHaveLength(1);
    client.subscribe([{ topicFilter: 'r', retainHandling: 1 }]);
    expect(client.publishes()).toHaveLength(0);
    client.subscribe([{ topicFilter: '+', retainHandling: 1 }]);
    expect(client.publishes()).toHaveLength(1);
    client.subscribe([{ topicFilter: '#', retainHandling: 2 }]);
    expect(client.publishes()).toHaveLength(0);
  });

  it('shared subscriptions get no retained messages on subscribe', () => {
    const harness = new Harness();
    harness.connect('pub', 5).publish('r', 'kept', 0, { retain: true });
    const client = harness.connect('sub', 5);
    client.subscribe(['$share/g/r']);
    expect(client.publishes()).toEqual([]);
  });

  it('wildcards do not match $ topics on subscribe [MQTT-4.7.2-1]', () => {
    const harness = new Harness();
    const publisher = harness.connect('pub', 5);
    publisher.publish('$SYS/x', 'sys', 0, { retain: true });
    publisher.publish('plain', 'p', 0, { retain: true });
    const client = harness.connect('sub', 5);
    client.subscribe(['#']);
    expect(client.publishes().map((p) => p.topic)).toEqual(['plain']);
  });
});

describe('retained limits', () => {
  it('refuses a new retained topic beyond retainedMessagesMax, still routes it, PUBACK 0x97', () => {
    const harness = new Harness({ retainedMessagesMax: 1 });
    const live = harness.connect('live', 5);
    live.subscribe(['#']);
    const publisher = harness.connect('pub', 5);
    expect(publisher.publish('one', 'a', 1, { retain: true })[0]).toMatchObject({ reasonCode: 0 });
    expect(publisher.publish('two', 'b', 1, { retain: true })[0]).toMatchObject({ reasonCode: 0x97 });
    // Replacing an existing topic stays within the limit.
    expect(publisher.publish('one', 'c', 1, { retain: true })[0]).toMatchObject({ reasonCode: 0 });
    expect(live.publishes()).toHaveLength(3);
    expect([...harness.broker.state.retained.keys()]).toEqual(['one']);
    expect(harness.broker.stats.retainedRefused).toBe(1);
  });

  it('refuses a retained message that would exceed retainedBytesMax', () => {
    const harness = new Harness({ retainedBytesMax: 4 });
    const publisher = harness.connect('pub', 4);
    publisher.publish('a', '1234', 0, { retain: true });
    publisher.publish('b', '5', 0, { retain: true });
    expect([...harness.broker.state.retained.keys()]).toEqual(['a']);
    expect(harness.broker.state.retainedBytes).toBe(4);
  });
});
