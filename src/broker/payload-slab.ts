/**
 * Copies of small payloads packed into shared slabs, for stored (queued) messages.
 *
 * A stored message must own its payload (the decoded one is a view of the receive buffer), and a
 * copy of its own costs far more than the bytes for small payloads: a 64-byte payload copied by
 * `slice()` was about 275 bytes of heap (a typed array, an ArrayBuffer, its backing store), half of
 * what a queued QoS 1 message cost in all. Here small payloads are copied back to back into 8 KiB
 * slabs and each gets a view of its bytes: one view per message, the slab shared by about a
 * hundred of them. A slab is freed by the garbage collector once no view of it is left.
 *
 * The price would be retention: one long-lived message keeps its whole slab, and a message for
 * an offline session among a hundred that are acknowledged at once would keep 8 KiB for its 64
 * bytes, beyond anything the queue limits count. So slabs are compacted. Filled slabs wait in a
 * line; every time a slab fills, the two oldest that have waited at least four fills (the latest
 * ones still hold the messages in flight) are looked at: one whose messages are all gone is
 * forgotten, one with less than a quarter of its bytes still in use has its survivors copied
 * into a slab kept for survivors (their `payload` then points there; same bytes), and one that
 * is fuller goes back in line. Long-lived messages thus end up packed together, apart from new
 * ones, and the slabs that stay referenced hold at least a quarter live bytes, give or take those
 * not looked at again yet (about as many as the full ones, as two are looked at per slab filled).
 * The look costs a map lookup per message in the slab (fewer for a full one: it stops at a
 * quarter), about two per stored message.
 *
 * Retained messages, which may live for ever, are kept out of it by the caller (routing.ts), and
 * so are large payloads (above `pooledBytesMax`, so a slab holds at least sixteen). Node's own
 * Buffer pool makes the same trade of sizes, without the compaction.
 */
import { assert } from '../assert.js';
import { ownCopy } from '../codec/own-copy.js';
import type { StoredMessage } from '../store/state-store.js';
import type { MutableMessage } from './message.js';

/** Slab size; a power of two keeps the allocator's bookkeeping simple. */
const slabBytes = 8 * 1024;
/** Larger payloads get a copy of their own. */
const pooledBytesMax = 512;
/** Filled slabs looked at each time a slab fills: more than one, so the line shortens. */
const slabsExaminedPerFill = 2;
/** A slab with less than 1/sparseDivisor of its bytes in use is compacted. */
const sparseDivisor = 4;
/**
 * A filled slab waits this many fills before it is looked at (again): the latest ones still hold
 * the messages in flight (acknowledged within milliseconds), and looking at them then is wasted.
 */
const examineAfterFills = 4;

/**
 * What the line knows of a filled slab. Not its bytes: a slab waiting in line must not be kept
 * alive by the line (slabs that outlived a few scavenges were promoted, and freeing them cost a
 * tenth of the QoS 1 throughput), so a slab is recognised by its serial, looked up from a
 * payload's buffer in a WeakMap.
 */
interface SlabRecord {
  readonly serial: number;
  used: number;
  /**
   * The messages whose payloads may be here (some gone or moved since). A fresh slab takes new
   * messages only, whose ids increase, so its range [firstMessageId, lastMessageId] says it
   * without a list on the hot path (ids in it that were never here fail the serial check). The
   * survivors' slab takes moved messages, in no id order, so it keeps a list.
   */
  firstMessageId: number;
  lastMessageId: number;
  messageIds: number[] | null;
  /** `fills` when it joined the line (again). */
  queuedAtFill: number;
}

/** A slab being filled: its bytes and its record. */
interface OpenSlab {
  readonly bytes: Uint8Array;
  readonly record: SlabRecord;
}

export class PayloadSlab {
  /** Where new messages' payloads go. */
  private current: OpenSlab | null = null;
  /** Where moved payloads go: kept apart, so that long-lived messages end up packed together. */
  private survivors: OpenSlab | null = null;
  /** Filled slabs that may still be referenced, oldest first from `filledHead`. */
  private filled: (SlabRecord | undefined)[] = [];
  private filledHead = 0;
  private examinationsDue = 0;
  /** Slabs filled so far (the line's clock). */
  private fills = 0;
  private serials = 0;
  /** Each slab's buffer to its serial; weak, so that it never keeps a slab alive. */
  private readonly serialOf = new WeakMap<ArrayBufferLike, number>();
  /** Scratch for examine: the messages found still in the slab being looked at. */
  private readonly survivorsFound: MutableMessage[] = [];

  /** `messages` is where the stored messages live (the durable state's table). */
  constructor(private readonly messages: ReadonlyMap<number, StoredMessage>) {}

  /** A copy of `bytes` for the message that will be stored as `messageId`; shares nothing with `bytes`. */
  copy(bytes: Uint8Array, messageId: number): Uint8Array {
    const length = bytes.length;
    if (length === 0 || length > pooledBytesMax) return ownCopy(bytes);
    const view = this.place(bytes, messageId);
    if (this.examinationsDue > 0) this.compact();
    return view;
  }

  /** Slabs this pool still tracks (the open ones included); for tests. */
  get slabCount(): number {
    return this.filled.length - this.filledHead + (this.current === null ? 0 : 1) + (this.survivors === null ? 0 : 1);
  }

  /** Places a new message's payload in the fresh slab. */
  private place(bytes: Uint8Array, messageId: number): Uint8Array {
    let slab = this.current;
    if (slab === null || slab.record.used + bytes.length > slabBytes) {
      if (slab !== null) this.retire(slab.record);
      slab = this.open(messageId, null);
      this.current = slab;
    }
    assert(messageId >= slab.record.lastMessageId, 'new messages come in id order');
    slab.record.lastMessageId = messageId;
    return this.append(slab, bytes);
  }

  /** Places a moved payload in the survivors' slab. */
  private placeSurvivor(bytes: Uint8Array, messageId: number): Uint8Array {
    let slab = this.survivors;
    if (slab === null || slab.record.used + bytes.length > slabBytes) {
      if (slab !== null) this.retire(slab.record);
      slab = this.open(0, []);
      this.survivors = slab;
    }
    slab.record.messageIds!.push(messageId);
    return this.append(slab, bytes);
  }

  private open(firstMessageId: number, messageIds: number[] | null): OpenSlab {
    const bytes = new Uint8Array(slabBytes);
    this.serials += 1;
    this.serialOf.set(bytes.buffer, this.serials);
    return { bytes, record: { serial: this.serials, used: 0, firstMessageId, lastMessageId: firstMessageId, messageIds, queuedAtFill: 0 } };
  }

  private append(slab: OpenSlab, bytes: Uint8Array): Uint8Array {
    const length = bytes.length;
    const record = slab.record;
    assert(length > 0 && length <= pooledBytesMax, 'only small payloads are pooled');
    const view = slab.bytes.subarray(record.used, record.used + length);
    view.set(bytes);
    record.used += length;
    assert(record.used <= slabBytes, 'slab overrun');
    return view;
  }

  private retire(record: SlabRecord): void {
    this.fills += 1;
    this.enqueue(record);
    this.examinationsDue += slabsExaminedPerFill;
  }

  private enqueue(record: SlabRecord): void {
    record.queuedAtFill = this.fills;
    this.filled.push(record);
  }

  /** Looks at the oldest filled slabs that waited long enough, as many as are due. */
  private compact(): void {
    while (this.examinationsDue > 0 && this.filledHead < this.filled.length) {
      const record = this.filled[this.filledHead]!;
      if (record.queuedAtFill + examineAfterFills > this.fills) break;
      this.examinationsDue -= 1;
      this.filled[this.filledHead] = undefined;
      this.filledHead += 1;
      this.examine(record);
    }
    // Examinations not done now (the line is empty or too young) are not saved up for later.
    this.examinationsDue = 0;
    // Drop the consumed front of the line now and then (a shift per slab would be quadratic).
    if (this.filledHead >= 64 && this.filledHead * 2 >= this.filled.length) {
      this.filled = this.filled.slice(this.filledHead);
      this.filledHead = 0;
    }
  }

  /**
   * Forgets a slab nothing is left in, moves the survivors of a sparse one, and puts a fuller one
   * back in line (as soon as a quarter of it is found in use: the rest need not be looked at).
   */
  private examine(record: SlabRecord): void {
    const survivors = this.survivorsFound;
    const denseBytes = record.used / sparseDivisor;
    let liveBytes = 0;
    if (record.messageIds === null) {
      for (let messageId = record.firstMessageId; messageId <= record.lastMessageId && liveBytes < denseBytes; messageId++) liveBytes += this.collect(messageId, record.serial, survivors);
    } else {
      const messageIds = record.messageIds;
      for (let index = 0; index < messageIds.length && liveBytes < denseBytes; index++) liveBytes += this.collect(messageIds[index]!, record.serial, survivors);
    }
    if (liveBytes >= denseBytes) {
      survivors.length = 0;
      this.enqueue(record);
      return;
    }
    // Survivors move to the survivors' slab; nothing refers to this one afterwards.
    for (const message of survivors) message.payload = this.placeSurvivor(message.payload, message.messageId);
    survivors.length = 0;
  }

  /** Adds the message to `survivors` if its payload is still in slab `serial`; returns its bytes there (0 if not). */
  private collect(messageId: number, serial: number, survivors: MutableMessage[]): number {
    const message = this.messages.get(messageId);
    // Gone, never here (large, retained), or already moved out by an earlier compaction.
    if (message === undefined || this.serialOf.get(message.payload.buffer) !== serial) return 0;
    survivors.push(message as MutableMessage);
    return message.payload.length;
  }
}
