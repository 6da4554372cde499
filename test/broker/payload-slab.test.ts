/**
 * Proves the payload slab (src/broker/payload-slab.ts) on its own, with a plain map standing in
 * for the durable state's message table: whatever order messages are stored and dropped in, and
 * whatever their sizes, every live message's payload keeps exactly the bytes it was stored with
 * (also after compaction moved it) and shares nothing with the bytes given; large and empty
 * payloads get buffers of their own; and compaction keeps the slabs still referenced within a
 * small multiple of the live pooled bytes. fast-check drives random store/drop sequences.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PayloadSlab } from '../../src/broker/payload-slab.js';
import type { StoredMessage } from '../../src/store/state-store.js';

function storedMessage(messageId: number, payload: Uint8Array): StoredMessage {
  return { messageId, topic: 't', payload, qos: 1, retain: false, properties: undefined, createdAtMs: 0, expiryAtMs: null, references: 1 };
}

function bytesOf(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let index = 0; index < length; index++) bytes[index] = (seed * 31 + index * 7) & 0xff;
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}

/** Bytes of the distinct buffers that the live pooled payloads refer to. */
function referencedSlabBytes(messages: Map<number, StoredMessage>): number {
  const buffers = new Set<ArrayBufferLike>();
  for (const message of messages.values()) if (message.payload.buffer.byteLength !== message.payload.length) buffers.add(message.payload.buffer);
  return [...buffers].reduce((total, buffer) => total + buffer.byteLength, 0);
}

describe('payload slab', () => {
  it('keeps every live payload intact through any sequence of stores and drops', () => {
    // Three stores to a drop: slabs fill, and drops leave some sparse enough to be compacted.
    const operation = fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('store' as const), length: fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 0, max: 700 })) }), weight: 3 },
      { arbitrary: fc.record({ kind: fc.constant('drop' as const), pick: fc.nat() }), weight: 1 },
    );
    fc.assert(
      fc.property(fc.array(operation, { minLength: 1, maxLength: 2_000, size: 'max' }), (operations) => {
        const messages = new Map<number, StoredMessage>();
        const originals = new Map<number, Uint8Array>();
        const slab = new PayloadSlab(messages);
        const liveIds: number[] = [];
        let nextId = 1;
        for (const step of operations) {
          if (step.kind === 'store') {
            const given = bytesOf(step.length, nextId);
            const payload = slab.copy(given, nextId);
            given.fill(0xee);
            messages.set(nextId, storedMessage(nextId, payload));
            originals.set(nextId, bytesOf(step.length, nextId));
            liveIds.push(nextId);
            nextId += 1;
          } else if (liveIds.length > 0) {
            // Swap-remove: a drop costs O(1), so long sequences stay cheap.
            const index = step.pick % liveIds.length;
            messages.delete(liveIds[index]!);
            liveIds[index] = liveIds[liveIds.length - 1]!;
            liveIds.pop();
          }
        }
        const damaged = [...messages].filter(([messageId, message]) => !sameBytes(message.payload, originals.get(messageId)!));
        expect(damaged.map(([messageId]) => messageId)).toEqual([]);
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });

  it('gives empty and large payloads buffers of their own', () => {
    const messages = new Map<number, StoredMessage>();
    const slab = new PayloadSlab(messages);
    const large = slab.copy(bytesOf(513, 1), 1);
    expect(large.buffer.byteLength).toBe(513);
    expect(slab.copy(new Uint8Array(0), 2).length).toBe(0);
    const small = slab.copy(bytesOf(512, 3), 3);
    expect(small.buffer.byteLength).toBe(8192);
  });

  it('moves the few survivors of a slab together, so a long-lived minority does not pin one slab each', () => {
    const messages = new Map<number, StoredMessage>();
    const slab = new PayloadSlab(messages);
    let nextId = 1;
    let longLivedBytes = 0;
    // 2,000 rounds of 63 short-lived messages (dropped at once) and 1 long-lived, 64 bytes each.
    for (let round = 0; round < 2_000; round++) {
      for (let index = 0; index < 64; index++) {
        const messageId = nextId++;
        messages.set(messageId, storedMessage(messageId, slab.copy(bytesOf(64, messageId), messageId)));
        if (index < 63) messages.delete(messageId);
        else longLivedBytes += 64;
      }
    }
    expect(messages.size).toBe(2_000);
    // Without compaction every long-lived message would keep its own 8 KiB slab: 16 MiB here.
    expect(referencedSlabBytes(messages)).toBeLessThanOrEqual(4 * longLivedBytes + 4 * 8192);
    expect(slab.slabCount).toBeLessThanOrEqual((4 * longLivedBytes) / 8192 + 4);
    for (const [messageId, message] of messages) expect(message.payload).toEqual(bytesOf(64, messageId));
  });

  it('frees a slab whose messages are all gone', () => {
    const messages = new Map<number, StoredMessage>();
    const slab = new PayloadSlab(messages);
    for (let messageId = 1; messageId <= 10_000; messageId++) {
      messages.set(messageId, storedMessage(messageId, slab.copy(bytesOf(100, messageId), messageId)));
      messages.delete(messageId);
    }
    // The current slab and the four filled ones that wait before they are looked at.
    expect(slab.slabCount).toBeLessThanOrEqual(5);
  });
});
