/**
 * Proves topic aliases from the broker to MQTT 5.0 clients: a client announcing a Topic Alias
 * Maximum gets the topic name with a fresh alias the first time and an empty name with that alias
 * afterwards, at every QoS; aliases stop at the client's maximum (later topics go by name); a
 * client without a maximum, and every 3.1.1 client, never sees an alias; a resumed session's new
 * connection starts a new map, so a redelivery carries the name again.
 */
import { describe, expect, it } from 'vitest';
import { decodeText, Harness } from './harness.js';

describe('outgoing topic aliases', () => {
  it('send the name once with an alias, then only the alias, up to the client maximum', () => {
    const harness = new Harness();
    const subscriber = harness.connect('sub', 5, { properties: { topicAliasMaximum: 2 } });
    subscriber.subscribe([{ topicFilter: 'a/#', qos: 2 }]);
    const publisher = harness.connect('pub', 5);
    for (const [topic, qos] of [
      ['a/one', 0],
      ['a/one', 1],
      ['a/one', 2],
      ['a/two', 1],
      ['a/three', 0],
      ['a/two', 0],
      ['a/three', 0],
    ] as const) {
      publisher.publish(topic, `${topic}:${qos}`, qos);
    }
    const received = subscriber.publishes().map((p) => [p.topic, p.properties?.topicAlias ?? null, decodeText(p.payload)]);
    expect(received).toEqual([
      ['a/one', 1, 'a/one:0'],
      ['', 1, 'a/one:1'],
      ['', 1, 'a/one:2'],
      ['a/two', 2, 'a/two:1'],
      ['a/three', null, 'a/three:0'],
      ['', 2, 'a/two:0'],
      ['a/three', null, 'a/three:0'],
    ]);
  });

  it('never alias towards a client without a maximum or on 3.1.1', () => {
    const harness = new Harness();
    const plain5 = harness.connect('plain5', 5);
    plain5.subscribe([{ topicFilter: 't', qos: 1 }]);
    const plain4 = harness.connect('plain4', 4);
    plain4.subscribe([{ topicFilter: 't', qos: 1 }]);
    const publisher = harness.connect('pub', 5);
    publisher.publish('t', 'x', 1);
    publisher.publish('t', 'y', 1);
    for (const client of [plain5, plain4]) {
      expect(client.publishes().map((p) => [p.topic, p.properties?.topicAlias])).toEqual([
        ['t', undefined],
        ['t', undefined],
      ]);
    }
  });

  it('start a new map on a new connection: a redelivery carries the topic name again', () => {
    const harness = new Harness();
    const options = { cleanStart: false, properties: { topicAliasMaximum: 4, sessionExpiryInterval: 600 } };
    let subscriber = harness.connect('sub', 5, options);
    subscriber.subscribe([{ topicFilter: 'r', qos: 1 }]);
    const publisher = harness.connect('pub', 5);
    publisher.publish('r', 'first', 1);
    publisher.publish('r', 'second', 1);
    expect(subscriber.publishes().map((p) => p.topic)).toEqual(['r', '']);
    subscriber.drop();
    subscriber = harness.connect('sub', 5, options);
    const again = subscriber.publishes();
    expect(again.map((p) => [p.topic, p.dup, p.properties?.topicAlias])).toEqual([
      ['r', true, 1],
      ['', true, 1],
    ]);
  });
});
