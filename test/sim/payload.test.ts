/**
 * Proves the simulator's self-naming payloads (sim/clients/payload.ts): a message or will payload
 * parses back to what it was made from, a large one (sim/large-payloads.ts) too, with exactly the
 * filler length its head names, and a payload cut short, extended, or with any one byte changed,
 * no longer parses, so the checker cannot mistake a damaged copy for the message.
 */
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { messagePayload, parsePayload, willPayload } from '../../sim/clients/payload.js';

describe('simulator payloads', () => {
  it('parse back to the message or will they were made from', () => {
    for (let sequence = 0; sequence < 200; sequence++) {
      const topic = sequence % 3 === 0 ? 'a/b' : `été/${sequence}/x`;
      expect(parsePayload(messagePayload(4, sequence, sequence % 3, topic))).toEqual({ kind: 'message', publisher: 4, sequence, qos: sequence % 3, topic });
      expect(parsePayload(willPayload(2, sequence, topic))).toEqual({ kind: 'will', client: 2, generation: sequence, topic });
    }
  });

  it('make large payloads of the size asked, which parse back the same', () => {
    for (const fillerBytes of [0, 513, 4_096, 70_000, 200_000]) {
      const payload = messagePayload(1, 7, 1, 'big/one', fillerBytes);
      expect(payload.length).toBe(new TextEncoder().encode('m|1|7|1|big/one|L').length + String(fillerBytes).length + 1 + fillerBytes);
      expect(parsePayload(payload)).toEqual({ kind: 'message', publisher: 1, sequence: 7, qos: 1, topic: 'big/one' });
    }
  });

  it('judge a large payload the same whether or not its sealed bytes are still kept for comparison', () => {
    // payload.ts keeps recently sealed large payloads (at most 256) and compares against them.
    const first = messagePayload(5, 0, 1, 'big/kept', 1_000);
    const changed = first.slice();
    changed[first.length - 10] = changed[first.length - 10]! ^ 0x01;
    expect(parsePayload(first)).toEqual({ kind: 'message', publisher: 5, sequence: 0, qos: 1, topic: 'big/kept' });
    expect(parsePayload(changed)).toBeNull();
    for (let sequence = 1; sequence <= 300; sequence++) messagePayload(5, sequence, 1, 'big/kept', 600);
    expect(parsePayload(first)).toEqual({ kind: 'message', publisher: 5, sequence: 0, qos: 1, topic: 'big/kept' });
    expect(parsePayload(changed)).toBeNull();
    // Sealed again once forgotten: the same bytes.
    expect(Buffer.from(messagePayload(5, 0, 1, 'big/kept', 1_000)).equals(Buffer.from(first))).toBe(true);
  });

  it('refuse a payload cut short, extended or with one byte changed', () => {
    for (const payload of [messagePayload(3, 9, 2, 'x/é'), messagePayload(3, 9, 2, 'x/y', 70_000), willPayload(3, 1, 'w')]) {
      expect(parsePayload(payload.subarray(0, payload.length - 1))).toBeNull();
      const middle = Math.floor(payload.length / 2);
      expect(parsePayload(new Uint8Array([...payload.subarray(0, middle), ...payload.subarray(middle + 1)]))).toBeNull();
      const extended = new Uint8Array(payload.length + 1);
      extended.set(payload);
      extended[payload.length] = 97;
      expect(parsePayload(extended)).toBeNull();
      for (const at of [0, 2, 5, Math.floor(payload.length / 2), payload.length - 1]) {
        const changed = payload.slice();
        changed[at] = changed[at]! ^ 0x01;
        expect(parsePayload(changed)).toBeNull();
      }
    }
    // Ill-formed UTF-8 in the head.
    const payload = messagePayload(1, 1, 0, 'a');
    const broken = payload.slice();
    broken[0] = 0xc0;
    expect(parsePayload(broken)).toBeNull();
  });
});
