/**
 * Routing merges a session's overlapping non-shared subscriptions into one delivery, but keeps a
 * shared-group delivery apart from the session's own matches, however many targets one message
 * has. The router switches from scanning its targets to a map past 16 of them, so each rule is
 * proved with a small fan-out and with one far past that threshold, over the broker harness. While
 * every match comes from one filter it does not look at all (no session can repeat there); the
 * merge must still hold when a second filter's matches arrive after many from the first.
 */
import { describe, expect, it } from 'vitest';
import { Harness, type TestClient } from './harness.js';

function subscribers(harness: Harness, count: number, filters: string[]): TestClient[] {
  const clients: TestClient[] = [];
  for (let index = 0; index < count; index++) {
    const client = harness.connect(`s${index}`, 5);
    for (const [position, topicFilter] of filters.entries()) client.subscribe([{ topicFilter, qos: 0 }], { subscriptionIdentifiers: [position + 1] });
    clients.push(client);
  }
  return clients;
}

describe('routing merges per session', () => {
  for (const count of [3, 40]) {
    it(`overlapping non-shared subscriptions give one copy with every identifier (${count} sessions)`, () => {
      const harness = new Harness();
      const clients = subscribers(harness, count, ['a/+', 'a/#', 'a/b']);
      harness.connect('pub', 5).publish('a/b', 'x', 0);
      for (const client of clients) {
        const publishes = client.publishes();
        expect(publishes).toHaveLength(1);
        expect([...publishes[0]!.properties!.subscriptionIdentifiers!].sort()).toEqual([1, 2, 3]);
      }
    });

    it(`a shared-group pick is a separate copy from the session's own match (${count} sessions)`, () => {
      const harness = new Harness();
      const clients = subscribers(harness, count, ['a/b', '$share/g/a/b']);
      harness.connect('pub', 5).publish('a/b', 'x', 0);
      const copies = clients.map((client) => client.publishes().length);
      // Everyone gets its own copy; exactly one member of the group gets a second one.
      expect(copies.filter((n) => n === 2)).toHaveLength(1);
      expect(copies.filter((n) => n === 1)).toHaveLength(count - 1);
    });
  }

  it('a later message does not inherit identifiers from an earlier one', () => {
    const harness = new Harness();
    const [client] = subscribers(harness, 1, ['a/+', 'a/#']);
    const other = harness.connect('other', 5);
    other.subscribe([{ topicFilter: 'z', qos: 0 }]);
    const publisher = harness.connect('pub', 5);
    publisher.publish('a/b', 'one', 0);
    publisher.publish('z', 'two', 0);
    expect([...client!.publishes()[0]!.properties!.subscriptionIdentifiers!].sort()).toEqual([1, 2]);
    expect(other.publishes()[0]!.properties?.subscriptionIdentifiers).toBeUndefined();
  });

  it('a wide fan-out under one filter gives every session one copy, and a later filter merges into it', () => {
    const harness = new Harness();
    const clients: TestClient[] = [];
    for (let index = 0; index < 60; index++) {
      const client = harness.connect(`w${index}`, 5);
      client.subscribe([{ topicFilter: 'a/#', qos: 0 }], { subscriptionIdentifiers: [1] });
      // A few sessions at each end of the first filter's list also match through later filters.
      if (index < 3) client.subscribe([{ topicFilter: 'a/b', qos: 0 }], { subscriptionIdentifiers: [2] });
      if (index >= 57) client.subscribe([{ topicFilter: 'a/+', qos: 0 }], { subscriptionIdentifiers: [3] });
      clients.push(client);
    }
    const publisher = harness.connect('pub', 5);
    publisher.publish('a/b', 'one', 0);
    publisher.publish('a/c/d', 'two', 0);
    for (const [index, client] of clients.entries()) {
      const publishes = client.publishes();
      expect(publishes.map((publish) => publish.topic)).toEqual(['a/b', 'a/c/d']);
      const expected = index < 3 ? [1, 2] : index >= 57 ? [1, 3] : [1];
      expect([...publishes[0]!.properties!.subscriptionIdentifiers!].sort()).toEqual(expected);
      expect([...publishes[1]!.properties!.subscriptionIdentifiers!]).toEqual([1]);
    }
  });
});
