/**
 * The redelivery gate (io/cluster/redelivery-gate.ts): deliveries past what the consumer had
 * delivered before wait until every pending earlier one has come again, then follow in order; a
 * session with nothing pending is never held; `release` gives up the hold with what it held.
 */
import { describe, expect, test } from 'vitest';
import { RedeliveryGate } from '../../io/cluster/redelivery-gate.js';

const at = (seq: number): { seq: number } => ({ seq });
const seqs = (messages: { seq: number }[]): number[] => messages.map((message) => message.seq);

describe('redelivery gate', () => {
  test('holds later sequences until the pending ones are redelivered, then passes them in order', () => {
    // Delivered up to 11 before; 10 and 11 were never acknowledged.
    const gate = new RedeliveryGate<{ seq: number }>(11, 2);
    expect(gate.open).toBe(false);
    expect(seqs(gate.offer(at(12)))).toEqual([]);
    expect(seqs(gate.offer(at(13)))).toEqual([]);
    expect(gate.heldCount).toBe(2);
    expect(seqs(gate.offer(at(10)))).toEqual([10]);
    expect(seqs(gate.offer(at(10)))).toEqual([10]);
    expect(gate.open).toBe(false);
    expect(seqs(gate.offer(at(11)))).toEqual([11, 12, 13]);
    expect(gate.open).toBe(true);
    expect(seqs(gate.offer(at(14)))).toEqual([14]);
  });

  test('never holds a session with nothing pending', () => {
    const gate = new RedeliveryGate<{ seq: number }>(50, 0);
    expect(gate.open).toBe(true);
    expect(seqs(gate.offer(at(51)))).toEqual([51]);
  });

  test('release gives up the hold with what it held', () => {
    const gate = new RedeliveryGate<{ seq: number }>(5, 1);
    gate.offer(at(6));
    gate.offer(at(7));
    expect(seqs(gate.release())).toEqual([6, 7]);
    expect(seqs(gate.offer(at(8)))).toEqual([8]);
  });

  test('refuses impossible consumer states', () => {
    expect(() => new RedeliveryGate(-1, 0)).toThrow(/deliveredUpTo/);
    expect(() => new RedeliveryGate(3, 1.5)).toThrow(/pendingCount/);
  });
});
