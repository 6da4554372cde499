/**
 * Proves that `forEachKeptBytes` lists what the broker keeps long-term: the payload and
 * correlation data of a retained message, of a queued QoS 1 message for an offline session, and
 * of a will, each under its kind and key, the very arrays the broker's tables hold; and that a
 * message the broker let go of (acknowledged, retained message cleared) is no longer listed.
 */
import { describe, expect, it } from 'vitest';
import { forEachKeptBytes } from '../../src/broker/kept-bytes.js';
import { Harness, text, will } from './harness.js';

interface Kept {
  kind: string;
  key: string | number;
  field: string;
  bytes: Uint8Array;
}

function keptOf(harness: Harness): Kept[] {
  const kept: Kept[] = [];
  forEachKeptBytes(harness.broker, (kind, key, field, bytes) => kept.push({ kind, key, field, bytes }));
  return kept;
}

describe('the bytes the broker keeps, listed', () => {
  it('lists retained and queued messages with their correlation data, and wills', () => {
    const harness = new Harness();
    const subscriber = harness.connect('subscriber', 5, { cleanStart: false, properties: { sessionExpiryInterval: 600 } });
    subscriber.subscribe([{ topicFilter: 'queued/#', qos: 1 }]);
    subscriber.drop();
    const publisher = harness.connect('publisher', 5, { will: will('wills/publisher', 'gone', { properties: { correlationData: text('will-cd') } }) });
    publisher.publish('status/a', 'up', 0, { retain: true, properties: { correlationData: text('retained-cd') } });
    publisher.publish('queued/b', 'waiting', 1, { packetId: 7 });

    const kept = keptOf(harness);
    const state = harness.broker.state;
    const retainedId = state.retained.get('status/a')!;
    const retained = state.messages.get(retainedId)!;
    expect(kept).toContainEqual({ kind: 'message', key: retainedId, field: 'payload', bytes: retained.payload });
    expect(kept).toContainEqual({ kind: 'message', key: retainedId, field: 'correlationData', bytes: retained.properties!.correlationData! });
    const queued = [...state.messages.values()].find((message) => message.topic === 'queued/b')!;
    expect(new TextDecoder().decode(queued.payload)).toBe('waiting');
    expect(kept).toContainEqual({ kind: 'message', key: queued.messageId, field: 'payload', bytes: queued.payload });
    const keptWill = state.wills.get('publisher')!;
    expect(kept).toContainEqual({ kind: 'will', key: 'publisher', field: 'payload', bytes: keptWill.payload });
    expect(kept).toContainEqual({ kind: 'will', key: 'publisher', field: 'correlationData', bytes: keptWill.properties!.correlationData! });
    // The same arrays, not copies: a rule about their memory must see what the tables hold.
    const listed = kept.find((item) => item.kind === 'message' && item.key === retainedId && item.field === 'payload')!;
    expect(listed.bytes).toBe(retained.payload);
    expect(kept.length).toBe(5);
  });

  it('no longer lists what the broker let go of', () => {
    const harness = new Harness();
    const publisher = harness.connect('publisher', 5);
    publisher.publish('status/a', 'up', 0, { retain: true });
    expect(keptOf(harness).map((item) => item.kind)).toEqual(['message']);
    // An empty retained payload clears the topic [MQTT-3.3.1-10].
    publisher.publish('status/a', new Uint8Array(0), 0, { retain: true });
    expect(keptOf(harness)).toEqual([]);
  });
});
