/**
 * Proves the inflight table of stream deliveries (src/broker/streams/inflight-table.ts) against a
 * plain Map model: random runs of adds (identifiers chosen like the session's search does, only
 * where the slot is free), acknowledgements in any order and owner changes keep every held
 * delivery's offset, owner, announcement and payload bytes, through slot doublings and arena
 * compactions; the send order survives both; an emptied table lets a large arena go.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DeliveryOwner, InflightTable } from '../../src/broker/streams/inflight-table.js';
import type { StreamEntry } from '../../src/store/streams/stream-entry.js';

const ownerA: DeliveryOwner = { acknowledged: () => {} };
const ownerB: DeliveryOwner = { acknowledged: () => {} };

function entryAt(offset: number, length: number): StreamEntry {
  const payload = new Uint8Array(length);
  for (let index = 0; index < length; index++) payload[index] = (offset * 31 + index) & 0xff;
  return { offset, timeMs: 1_000 + offset, topic: `t/${offset % 3}`, qos: 1, properties: undefined, payload };
}

interface Held {
  offset: number;
  length: number;
  owner: DeliveryOwner | null;
  skipped: number;
}

/** The next identifier from `hint` whose slot is free, as allocateStreamPacketId searches. */
function freeIdentifier(table: InflightTable, hint: number): number {
  table.reserveSlot();
  for (let candidate = hint, attempt = 0; attempt < 0xffff; attempt++, candidate = candidate >= 0xffff ? 1 : candidate + 1) {
    if (table.slotFree(candidate)) return candidate;
  }
  throw new Error('no free identifier');
}

describe('stream inflight table', () => {
  it('keeps what a Map would through random adds, acknowledgements in any order, and disowning', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), length: fc.integer({ min: 0, max: 300 }), skip: fc.integer({ min: 0, max: 40 }), hint: fc.integer({ min: 1, max: 0xffff }) }),
      fc.record({ kind: fc.constant('ack' as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant('disown' as const) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 400 }), (steps) => {
        const table = new InflightTable();
        const model = new Map<number, Held>();
        const order: number[] = [];
        let offset = 0;
        for (const action of steps) {
          if (action.kind === 'add') {
            const packetId = freeIdentifier(table, action.hint);
            const skipped = action.skip > 30 ? action.skip : 0;
            const owner = offset % 2 === 0 ? ownerA : ownerB;
            table.add(packetId, entryAt(offset, action.length), 'replay', offset % 5, skipped, owner);
            model.set(packetId, { offset, length: action.length, owner, skipped });
            order.push(packetId);
            offset += 1;
          } else if (action.kind === 'ack' && model.size > 0) {
            const packetId = [...model.keys()][action.pick % model.size]!;
            table.remove(packetId);
            model.delete(packetId);
            order.splice(order.indexOf(packetId), 1);
          } else if (action.kind === 'disown') {
            table.disown(ownerA);
            for (const held of model.values()) if (held.owner === ownerA) held.owner = null;
          }
          expect(table.size).toBe(model.size);
        }
        expect(table.packetIdsInSendOrder()).toEqual(order);
        expect(table.packetIdsInSendOrder(ownerB)).toEqual(order.filter((packetId) => model.get(packetId)!.owner === ownerB));
        for (const [packetId, held] of model) {
          expect(table.has(packetId)).toBe(true);
          expect(table.ownerOf(packetId)).toBe(held.owner);
          expect(table.offsetOf(packetId)).toBe(held.offset);
          expect(table.skippedOf(packetId)).toBe(held.skipped);
          expect(table.subscriptionIdOf(packetId)).toBe(held.offset % 5);
          const expected = entryAt(held.offset, held.length);
          const entry = table.entryOf(packetId);
          expect(entry.topic).toBe(expected.topic);
          expect(entry.timeMs).toBe(expected.timeMs);
          expect(Buffer.from(entry.payload).equals(Buffer.from(expected.payload))).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('grows to a slot per identifier for a full window and lets its large arena go when emptied', () => {
    const table = new InflightTable();
    for (let packetId = 1; packetId <= 0xffff; packetId++) table.add(freeIdentifier(table, packetId), entryAt(packetId, 64), 's', 0, 0, ownerA);
    expect(table.size).toBe(0xffff);
    expect(table.arenaBytes).toBeGreaterThanOrEqual(0xffff * 64);
    expect(table.arenaBytes).toBeLessThanOrEqual(4 * 0xffff * 64);
    for (let packetId = 1; packetId <= 0xffff; packetId++) table.remove(packetId);
    expect(table.size).toBe(0);
    expect(table.arenaBytes).toBe(0);
    table.add(1, entryAt(1, 64), 's', 0, 0, ownerA);
    expect(table.entryOf(1).payload.length).toBe(64);
    expect(() => table.add(1, entryAt(2, 8), 's', 0, 0, ownerA)).toThrow(/free slot/);
    expect(() => table.remove(2)).toThrow(/is held/);
  });
});
