/**
 * A table from positive integer keys to values: the part of a Map<number, V> that the state uses,
 * without a Map's garbage.
 *
 * Why: V8's Map is an ordered hash table. A delete leaves a hole, and holes are compacted by
 * rehashing into a newly allocated table, which also happens whenever the table shrinks. A
 * session's in-flight deliveries empty and refill on every message when its client acknowledges
 * each PUBLISH before the next one arrives (a paced subscriber), and a Map then rehashed on about
 * every set and delete: some 110 bytes of young-generation garbage per QoS 1 message, out of
 * about 1,500.
 *
 * How: open addressing with linear probing over a typed array of keys (0 marks a free slot, so keys
 * are 1 or more) and an array of values, at most half full. A delete shifts the entries after it
 * back instead of leaving a tombstone, so there is nothing to compact: set and delete allocate
 * nothing unless the table grows (doubling; its owner bounds the entries). An emptied table of
 * more than `keptCapacityMax` slots is let go and starts small again; a smaller one is kept, so a
 * window that fills to a few entries and empties again does not reallocate each time.
 *
 * Order: iteration is in insertion order, as a Map's (a resumed session is sent its unacknowledged
 * PUBLISHes again in the order they were first sent [MQTT-4.6.0-1], and snapshots list them so).
 * Each entry carries its insertion number and iteration sorts by it: iteration happens on a
 * resume, a snapshot, a session's end or an inspection, never per message.
 */
import { assert } from '../assert.js';

const initialCapacity = 8;
/** 256 slots are about 6 KiB: a window of up to 128 deliveries that fills and drains keeps its table. */
const keptCapacityMax = 256;

export class IntegerKeyTable<V> {
  /** Entries held. */
  size = 0;
  private capacity = initialCapacity;
  private keysBySlot = new Float64Array(initialCapacity);
  private ordersBySlot = new Float64Array(initialCapacity);
  private valuesBySlot: (V | undefined)[] = emptySlots<V>(initialCapacity);
  private nextOrder = 1;

  has(key: number): boolean {
    return this.slotOf(key) >= 0;
  }

  get(key: number): V | undefined {
    const slot = this.slotOf(key);
    return slot < 0 ? undefined : this.valuesBySlot[slot];
  }

  /** Adds or replaces; a replaced entry keeps its place in the order, as in a Map. */
  set(key: number, value: V): this {
    assert(Number.isSafeInteger(key) && key >= 1, 'a table key is a positive integer');
    const existing = this.slotOf(key);
    if (existing >= 0) {
      this.valuesBySlot[existing] = value;
      return this;
    }
    if ((this.size + 1) * 2 > this.capacity) this.resize(this.capacity * 2);
    const mask = this.capacity - 1;
    let slot = key & mask;
    while (this.keysBySlot[slot] !== 0) slot = (slot + 1) & mask;
    this.keysBySlot[slot] = key;
    this.ordersBySlot[slot] = this.nextOrder;
    this.valuesBySlot[slot] = value;
    this.nextOrder += 1;
    this.size += 1;
    return this;
  }

  delete(key: number): boolean {
    let hole = this.slotOf(key);
    if (hole < 0) return false;
    const mask = this.capacity - 1;
    // Backward shift: every entry in the run after the hole whose home slot is not between the
    // hole and itself (cyclically) moves into the hole, so no probe sequence is ever broken.
    let slot = hole;
    for (let step = 1; step < this.capacity; step++) {
      slot = (slot + 1) & mask;
      const moving = this.keysBySlot[slot]!;
      if (moving === 0) break;
      const home = moving & mask;
      const stays = hole < slot ? home > hole && home <= slot : home > hole || home <= slot;
      if (stays) continue;
      this.keysBySlot[hole] = moving;
      this.ordersBySlot[hole] = this.ordersBySlot[slot]!;
      this.valuesBySlot[hole] = this.valuesBySlot[slot];
      hole = slot;
    }
    this.keysBySlot[hole] = 0;
    this.valuesBySlot[hole] = undefined;
    this.size -= 1;
    assert(this.size >= 0, 'a table never holds fewer than no entries');
    if (this.size === 0 && this.capacity > keptCapacityMax) this.resize(initialCapacity);
    return true;
  }

  /** The values in insertion order (a new array: the table may change while it is walked). */
  values(): V[] {
    return this.orderedSlots().map((slot) => this.valuesBySlot[slot]!);
  }

  /** The keys in insertion order. */
  keys(): number[] {
    return this.orderedSlots().map((slot) => this.keysBySlot[slot]!);
  }

  /** [key, value] pairs in insertion order. */
  entries(): [number, V][] {
    return this.orderedSlots().map((slot): [number, V] => [this.keysBySlot[slot]!, this.valuesBySlot[slot]!]);
  }

  [Symbol.iterator](): IterableIterator<[number, V]> {
    return this.entries()[Symbol.iterator]();
  }

  private slotOf(key: number): number {
    const mask = this.capacity - 1;
    let slot = key & mask;
    // At most half full, so a free slot ends every probe; the bound is the capacity.
    for (let step = 0; step < this.capacity; step++) {
      const held = this.keysBySlot[slot]!;
      if (held === key) return slot;
      if (held === 0) return -1;
      slot = (slot + 1) & mask;
    }
    assert(false, 'a table at most half full has a free slot');
  }

  private orderedSlots(): number[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.capacity; slot++) if (this.keysBySlot[slot] !== 0) slots.push(slot);
    assert(slots.length === this.size, 'the size counts the occupied slots');
    return slots.sort((a, b) => this.ordersBySlot[a]! - this.ordersBySlot[b]!);
  }

  private resize(capacity: number): void {
    assert(capacity >= initialCapacity && (capacity & (capacity - 1)) === 0, 'a table capacity is a power of two');
    assert(this.size * 2 <= capacity, 'a resized table is at most half full');
    const keys = this.keysBySlot;
    const orders = this.ordersBySlot;
    const values = this.valuesBySlot;
    const previousCapacity = this.capacity;
    this.capacity = capacity;
    this.keysBySlot = new Float64Array(capacity);
    this.ordersBySlot = new Float64Array(capacity);
    this.valuesBySlot = emptySlots<V>(capacity);
    const mask = capacity - 1;
    // Entries keep their insertion numbers, so they may be placed in any order.
    for (let from = 0; from < previousCapacity; from++) {
      if (keys[from] === 0) continue;
      let slot = keys[from]! & mask;
      while (this.keysBySlot[slot] !== 0) slot = (slot + 1) & mask;
      this.keysBySlot[slot] = keys[from]!;
      this.ordersBySlot[slot] = orders[from]!;
      this.valuesBySlot[slot] = values[from];
    }
  }
}

/** A packed array of `length` undefined slots (a holey one would make every read slower). */
function emptySlots<V>(length: number): (V | undefined)[] {
  return new Array<V | undefined>(length).fill(undefined);
}
