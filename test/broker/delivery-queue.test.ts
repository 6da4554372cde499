/**
 * The session queue (DeliveryQueue, a ring buffer of columns) behaves exactly like the plain array
 * it replaced: fast-check drives random push / shift / remove-by-sequence operations against both
 * and compares contents after every step (including wrap-around, growth and shrinking). The queue
 * keeps fields, not the objects pushed, so deliveries are compared by value, with varied QoS,
 * RETAIN and subscription identifiers so that a column mix-up shows. A second
 * test proves draining a 100,000-delivery backlog is linear: it must finish far inside a bound
 * that the old splice-from-the-head array could not meet.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Delivery, DeliveryQueue } from '../../src/store/state-store.js';

const someIds: readonly number[] = [7, 300];

function delivery(sequence: number): Delivery {
  return {
    sequence,
    messageId: sequence * 3 + 1,
    qos: sequence % 2 === 0 ? 1 : 2,
    retain: sequence % 3 === 0,
    subscriptionIds: sequence % 5 === 0 ? someIds : [],
    packetId: 0,
    phase: 'queued',
  };
}

type Operation = { kind: 'push'; count: number } | { kind: 'shift'; count: number } | { kind: 'remove'; position: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant('push' as const), count: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('shift' as const), count: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('remove' as const), position: fc.nat(60) }),
);

describe('DeliveryQueue', () => {
  it('matches an array model under random push, shift and removal by sequence', () => {
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 80 }), (operations) => {
        const queue = new DeliveryQueue();
        const model: Delivery[] = [];
        let nextSequence = 1;
        for (const step of operations) {
          if (step.kind === 'push') {
            for (let index = 0; index < step.count; index++) {
              const item = delivery(nextSequence++);
              queue.push(item);
              model.push(item);
            }
          } else if (step.kind === 'shift') {
            for (let index = 0; index < step.count && model.length > 0; index++) expect(queue.shift()).toEqual(model.shift());
          } else if (model.length > 0) {
            const position = step.position % model.length;
            const sequence = model[position]!.sequence;
            expect(queue.removeSequence(sequence)).toEqual(model.splice(position, 1)[0]);
            expect(queue.indexOfSequence(sequence)).toBe(-1);
          }
          expect(queue.length).toBe(model.length);
          expect(queue.toArray()).toEqual(model);
          expect(queue[0]).toEqual(model[0]);
          if (model.length > 0) expect(queue.at(model.length - 1)).toEqual(model[model.length - 1]);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('refuses to shift when empty or to remove a sequence it does not hold', () => {
    const queue = new DeliveryQueue();
    expect(() => queue.shift()).toThrow(/empty/);
    queue.push(delivery(1));
    queue.push(delivery(3));
    expect(() => queue.removeSequence(2)).toThrow(/not found/);
    expect(() => queue.at(2)).toThrow(/out of range/);
  });

  it('takes only waiting deliveries, and hands out copies that do not change it', () => {
    const queue = new DeliveryQueue();
    expect(() => queue.push({ ...delivery(1), packetId: 5, phase: 'publish' })).toThrow(/packet identifier/);
    queue.push(delivery(2));
    const head = queue[0]!;
    head.packetId = 9;
    head.phase = 'publish';
    expect(queue.at(0)).toEqual(delivery(2));
    expect(queue.at(0).subscriptionIds).toEqual([]);
  });

  it('survives a structured clone for sweeps and snapshots', () => {
    const queue = new DeliveryQueue();
    for (let sequence = 1; sequence <= 20; sequence++) queue.push(delivery(sequence));
    for (let index = 0; index < 15; index++) queue.shift();
    for (let sequence = 21; sequence <= 30; sequence++) queue.push(delivery(sequence));
    expect(DeliveryQueue.items(structuredClone(queue)).map((item) => item.sequence)).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
  });

  it('drains a 100,000-delivery backlog in linear time', () => {
    const queue = new DeliveryQueue();
    const count = 100_000;
    const startMs = performance.now();
    for (let sequence = 1; sequence <= count; sequence++) queue.push(delivery(sequence));
    let expected = 1;
    let outOfOrder = 0;
    // Interleaved like a live subscriber: take one from the head, add one at the tail, twice over.
    for (let round = 0; round < 2 * count; round++) {
      if (queue.removeSequence(expected).sequence !== expected) outOfOrder += 1;
      expected += 1;
      if (round < count) queue.push(delivery(count + round + 1));
    }
    expect(outOfOrder).toBe(0);
    expect(queue.length).toBe(0);
    // A quadratic queue needs seconds here (2e5 removals moving up to 1e5 slots each).
    expect(performance.now() - startMs).toBeLessThan(1_500);
  });
});
