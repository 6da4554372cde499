/**
 * A read-ahead cursor over one stream: where a reader (a `$stream` subscription, or a consumer
 * group) is in the stream, and the entries it has read but not yet handed on.
 *
 * It is the stream's counterpart of the retained replay's cursor (retained-replay.ts): it moves
 * only as fast as its owner sends. When its buffer is empty and the owner wants more, `fill` takes
 * the next released entries from memory if the store still has them there (the live case, and a
 * reader a little behind), else starts one storage read of about `streamReadAheadBytesMax` bytes
 * and waits for it (`pending`). So a reader holds at most its read-ahead plus its session's
 * inflight window in memory, however far behind it is: a billion stored entries are read a
 * buffer at a time. There is no seam between replay and live delivery: both are the same offset
 * moving forward, from files while it is behind and from memory once it catches up.
 *
 * Offsets it passes over without handing them on are counted in `skipped` when they were lost to
 * it (cut by retention while it was behind, or in a damaged frame), so its owner can say so.
 */

import { assert } from '../../assert.js';
import type { StreamState } from '../../store/state-store.js';
import type { StreamEntry } from '../../store/streams/stream-entry.js';
import type { StreamStore } from '../../store/streams/stream-store.js';

export type FillOutcome = 'ready' | 'pending' | 'tail';

export class StreamCursor {
  private buffer: StreamEntry[] = [];
  private head = 0;
  /** The offset of the next entry to read (after those in the buffer). */
  nextOffset: number;
  /** The token of the storage read in flight, 0 when none. */
  pendingToken = 0;
  /** Offsets lost to this cursor (retention, damage) not yet announced by its owner. */
  skipped = 0;
  /** Offsets a damaged frame took, counted once the entries read before it are handed on. */
  private damagedLoss = 0;
  /** Storage reads made since the cursor was placed: each may be twice the size of the one before. */
  private readsSincePlaced = 0;

  constructor(offset: number) {
    this.nextOffset = offset;
  }

  /** The next entry to hand on, without taking it. */
  peek(): StreamEntry | null {
    return this.head < this.buffer.length ? this.buffer[this.head]! : null;
  }

  take(): StreamEntry {
    const entry = this.buffer[this.head]!;
    this.buffer[this.head] = emptyEntry;
    this.head += 1;
    return entry;
  }

  /** Where this cursor is: the next entry it would hand on. */
  get position(): number {
    return this.head < this.buffer.length ? this.buffer[this.head]!.offset : this.nextOffset;
  }

  /** Goes to `offset`, dropping what was read ahead (and ignoring a read in flight). */
  jumpTo(offset: number): void {
    this.buffer = [];
    this.head = 0;
    this.nextOffset = offset;
    this.pendingToken = 0;
    this.damagedLoss = 0;
    this.readsSincePlaced = 0;
  }

  /**
   * Bytes the next storage read asks for: `firstReadBytes` after the cursor was placed, doubling
   * with each read up to the read-ahead. A reader's first entry then waits for a small read (and
   * its decoding, and the sending of what it held) rather than a whole read-ahead: a seek answers
   * in a millisecond or two, and a long replay still reads a full read-ahead at a time.
   */
  readBytes(readAheadBytes: number): number {
    const ramp = firstReadBytes * 2 ** Math.min(this.readsSincePlaced, 30);
    return Math.min(readAheadBytes, ramp);
  }

  /**
   * Makes an entry available if one can be: 'ready' (peek has one), 'pending' (a storage read is
   * in flight; its result comes through `readCompleted`), 'tail' (nothing released past it yet).
   */
  fill(store: StreamStore, stream: StreamState, readAheadBytes: number, newToken: () => number): FillOutcome {
    // Entries retention cut while they waited here are lost to this cursor like the others.
    while (this.head < this.buffer.length && this.buffer[this.head]!.offset < stream.firstOffset) {
      this.take();
      this.skipped += 1;
    }
    if (this.head < this.buffer.length) return 'ready';
    if (this.damagedLoss > 0) {
      this.skipped += this.damagedLoss;
      this.damagedLoss = 0;
    }
    if (this.pendingToken !== 0) return 'pending';
    if (this.nextOffset < stream.firstOffset) {
      // Retention cut entries this cursor had not reached.
      this.skipped += stream.firstOffset - this.nextOffset;
      this.nextOffset = stream.firstOffset;
    }
    if (this.nextOffset >= store.releasedOffset(stream.name)) return 'tail';
    this.buffer = [];
    this.head = 0;
    const next = store.readMemory(stream.name, this.nextOffset, readAheadBytes, this.buffer);
    if (next !== null) {
      assert(next >= this.nextOffset, 'reading memory never goes back');
      this.nextOffset = next;
      return this.buffer.length > 0 ? 'ready' : 'tail';
    }
    this.pendingToken = newToken();
    store.startRead(stream.name, this.nextOffset, this.readBytes(readAheadBytes), this.pendingToken);
    this.readsSincePlaced += 1;
    return 'pending';
  }

  /** A storage read finished; false when it was not this cursor's current one (dropped). */
  readCompleted(token: number, entries: StreamEntry[], nextOffset: number, stale: boolean, damaged: { fromOffset: number; toOffset: number } | null): boolean {
    if (token !== this.pendingToken) return false;
    this.pendingToken = 0;
    if (stale) return true;
    this.head = 0;
    if (entries.length > 0 && entries[0]!.offset >= this.nextOffset) {
      // The usual case: every entry is wanted, and the array is handed over (stream-store.ts): no copy.
      this.buffer = entries;
    } else {
      this.buffer = [];
      for (const entry of entries) if (entry.offset >= this.nextOffset) this.buffer.push(entry);
    }
    for (let index = 1; index < this.buffer.length; index++) {
      if (this.buffer[index - 1]!.offset >= this.buffer[index]!.offset) assert(false, `a read returned offset ${this.buffer[index]!.offset} after ${this.buffer[index - 1]!.offset}`);
    }
    // The store's read ends at a damaged frame: its loss is announced after the entries before it.
    if (damaged !== null && damaged.toOffset > Math.max(damaged.fromOffset, this.nextOffset)) this.damagedLoss = damaged.toOffset - Math.max(damaged.fromOffset, this.nextOffset);
    if (nextOffset > this.nextOffset) this.nextOffset = nextOffset;
    return true;
  }
}

/** The size of a cursor's first storage read after it was placed (see `readBytes`). */
export const firstReadBytes = 64 * 1024;

const emptyEntry: StreamEntry = Object.freeze({ offset: -1, timeMs: 0, topic: '', qos: 0, properties: undefined, payload: new Uint8Array(0) });
