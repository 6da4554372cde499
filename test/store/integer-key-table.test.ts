/**
 * Proves that IntegerKeyTable answers as a Map<number, V> would: random runs of sets (new keys
 * and replacements), deletes (held and absent keys) and reads, with keys crowded into few home
 * slots so that probe runs wrap around the table and deletes shift entries back, leave the table
 * and a Map with the same size, the same answers and the same insertion order at every step;
 * across growth, and across the shrink of an emptied large table.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntegerKeyTable } from '../../src/store/integer-key-table.js';

type Operation = { kind: 'set'; key: number; value: number } | { kind: 'delete'; key: number } | { kind: 'get'; key: number };

// Keys that share low bits collide in a small table; a few large ones cover keys over 2^32.
const keyArbitrary = fc.oneof(
  fc.integer({ min: 1, max: 40 }),
  fc.integer({ min: 1, max: 8 }).map((n) => n * 64),
  fc.integer({ min: 1, max: 3 }).map((n) => 2 ** 40 + n * 8),
);
const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), key: keyArbitrary, value: fc.integer() }),
  fc.record({ kind: fc.constant('delete' as const), key: keyArbitrary }),
  fc.record({ kind: fc.constant('get' as const), key: keyArbitrary }),
);

function expectSame(table: IntegerKeyTable<number>, map: Map<number, number>): void {
  expect(table.size).toBe(map.size);
  expect(table.keys()).toEqual([...map.keys()]);
  expect(table.values()).toEqual([...map.values()]);
  expect([...table]).toEqual([...map]);
}

describe('IntegerKeyTable', () => {
  it('answers every operation as a Map does, in the same insertion order', () => {
    fc.assert(
      fc.property(fc.array(operationArbitrary, { maxLength: 300 }), (operations) => {
        const table = new IntegerKeyTable<number>();
        const map = new Map<number, number>();
        for (const operation of operations) {
          if (operation.kind === 'set') {
            table.set(operation.key, operation.value);
            map.set(operation.key, operation.value);
          } else if (operation.kind === 'delete') {
            expect(table.delete(operation.key)).toBe(map.delete(operation.key));
          } else {
            expect(table.get(operation.key)).toBe(map.get(operation.key));
            expect(table.has(operation.key)).toBe(map.has(operation.key));
          }
          expect(table.size).toBe(map.size);
        }
        expectSame(table, map);
      }),
      { numRuns: 500 },
    );
  });

  it('grows to hold many entries, lets go of them when emptied, and is usable again', () => {
    const table = new IntegerKeyTable<number>();
    for (let key = 1; key <= 5000; key++) table.set(key * 3, key);
    expect(table.size).toBe(5000);
    expect(table.get(3 * 4321)).toBe(4321);
    expect(table.get(3 * 4321 + 1)).toBeUndefined();
    for (let key = 1; key <= 5000; key++) expect(table.delete(key * 3)).toBe(true);
    expect(table.size).toBe(0);
    expect(table.values()).toEqual([]);
    table.set(7, 1).set(15, 2).set(7, 3);
    expect(table.entries()).toEqual([
      [7, 3],
      [15, 2],
    ]);
  });

  it('refuses a key that is not a positive integer', () => {
    const table = new IntegerKeyTable<number>();
    expect(() => table.set(0, 1)).toThrow(/positive integer/);
    expect(() => table.set(1.5, 1)).toThrow(/positive integer/);
    expect(table.size).toBe(0);
  });
});
