/**
 * Routing merges a session's overlapping non-shared subscriptions into one delivery, but keeps a
 * shared-group delivery apart from the session's own matches, however many targets one message
 * has. The router switches from scanning its targets to a map past 16 of them, so each rule is
 * proved with a small fan-out and with one far past that threshold, over the broker harness.
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
});
