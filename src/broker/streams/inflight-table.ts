/**
 * A session's stream deliveries waiting for PUBACK, kept in parallel typed arrays keyed by packet
 * identifier, with their payloads copied into one byte arena: no object per delivery.
 *
 * Why: a QoS 1 replay keeps up to a whole inflight window (65,535) of deliveries alive for the
 * round trip to their PUBACK. As one object each, with a payload copy of its own, in a Map, they
 * outlived the young generation and were most of the replay's garbage collection (a profile of
 * the 1M replay: 38 % of its CPU in the collector). Here a delivery is a slot: its fields are
 * numbers in typed arrays, pointers to strings and properties the entry already had, and its
 * payload bytes at a position in the arena. A redelivery after a reconnect reads the slot; a
 * group that gives a member's deliveries back rebuilds their entries from it.
 *
 * The slots are direct-mapped: a packet identifier lives at `packetId & (capacity - 1)`, so a
 * lookup is one index and one compare. The session's identifier search (stream-delivery.ts
 * `allocateStreamPacketId`) takes only identifiers whose slot is free. The capacity is a power of
 * two kept at least twice the deliveries held plus one, so free slots are plentiful; growing it
 * (by a power of two) never makes two held identifiers collide (distinct modulo C means distinct
 * modulo any multiple of C). At 65,536
 * slots every identifier has a slot of its own.
 *
 * Payloads go into two arenas in turn, appended to the current one. When it is full and every
 * payload in the other one has been acknowledged, the two swap and the other is written from its
 * start again: with acknowledgements in order (what clients do) and arenas of one and a half
 * times the live bytes, that is always the case, and no payload is ever moved. Otherwise (a
 * delivery left unacknowledged while later ones were) the live payloads of both are copied into
 * one new arena sized from them, so each payload byte is copied a bounded number of times on
 * average. Both start over at 0 whenever the table is empty, and large ones are let go then.
 * The live bytes are the payloads of the deliveries held: the same bound as before (the window
 * times the packet size), without the per-delivery allocations.
 */
import { assert } from '../../assert.js';
import type { Properties } from '../../codec/packets.js';
import { copyPayload, payloadLength, type StreamEntry } from '../../store/streams/stream-entry.js';

/** Who a delivery is for: a reader's or a group's; null once its subscription is gone. */
export interface DeliveryOwner {
  acknowledged(packetId: number, offset: number, skipped: number): void;
}

/** The capacity a table starts with: a session that reads a stream at QoS 0 never grows it. */
const initialSlots = 16;
const slotsMax = 65_536;
const initialArenaBytes = 4 * 1024;
/** An emptied table keeps an arena up to this size (a live reader's, reused); a larger one is let go. */
const arenaKeptBytesMax = 64 * 1024;

export class InflightTable {
  /** Deliveries held. */
  size = 0;
  private capacity = initialSlots;
  /** 0 marks a free slot (packet identifiers are 1 to 65,535). */
  private packetIds = new Uint16Array(initialSlots);
  private offsets = new Float64Array(initialSlots);
  private timesMs = new Float64Array(initialSlots);
  /** When each was sent, as a count: a reconnect sends them again in the order they were first sent. */
  private sequences = new Float64Array(initialSlots);
  /** The `stream-skipped` each announced: a resend is the same PUBLISH [MQTT-4.4.0-1], announcement included. */
  private skippedCounts = new Float64Array(initialSlots);
  /** The subscription identifier each carried, 0 for none. */
  private subscriptionIds = new Uint32Array(initialSlots);
  private payloadStarts = new Uint32Array(initialSlots);
  private payloadLengths = new Uint32Array(initialSlots);
  private owners: (DeliveryOwner | null)[] = new Array<DeliveryOwner | null>(initialSlots).fill(null);
  private streams: string[] = new Array<string>(initialSlots).fill('');
  private topics: string[] = new Array<string>(initialSlots).fill('');
  private properties: (Properties | undefined)[] = new Array<Properties | undefined>(initialSlots).fill(undefined);
  /** Which of the two arenas holds each payload. */
  private payloadArenas = new Uint8Array(initialSlots);
  private readonly arenas: [Uint8Array, Uint8Array] = [noBytes, noBytes];
  private readonly arenaEnds = [0, 0];
  private readonly arenaLiveBytes = [0, 0];
  /** The arena appended to. */
  private current = 0;
  private nextSequence = 0;

  has(packetId: number): boolean {
    return this.packetIds[packetId & (this.capacity - 1)] === packetId;
  }

  /** Whether `packetId` could be added now: its slot is free. */
  slotFree(packetId: number): boolean {
    return this.packetIds[packetId & (this.capacity - 1)] === 0;
  }

  /** Makes room for one more delivery (called before the identifier search, so the slots it sees stay). */
  reserveSlot(): void {
    // Eight times at once: a replay's window fills the table within a fraction of a second, and
    // each resize moves every held delivery (four resizes from 16 slots to 65,536, not twelve).
    if (this.capacity < slotsMax && 2 * (this.size + 1) > this.capacity) this.resize(Math.min(slotsMax, this.capacity * 8));
  }

  /** Doubles the slots (when the identifier search found no free one at this capacity); false at the maximum. */
  growSlots(): boolean {
    if (this.capacity >= slotsMax) return false;
    this.resize(this.capacity * 2);
    return true;
  }

  /** Holds a QoS 1 delivery of `entry` under `packetId` (whose slot is free), its payload copied. */
  add(packetId: number, entry: StreamEntry, stream: string, subscriptionId: number, skipped: number, owner: DeliveryOwner): void {
    assert(packetId > 0 && packetId <= 0xffff, 'a packet identifier is 1 to 65535');
    const slot = packetId & (this.capacity - 1);
    assert(this.packetIds[slot] === 0, 'a delivery goes into a free slot');
    const length = payloadLength(entry);
    if (this.arenaEnds[this.current]! + length > this.arenas[this.current].length) this.makeArenaRoom(length);
    const current = this.current;
    this.packetIds[slot] = packetId;
    this.offsets[slot] = entry.offset;
    this.timesMs[slot] = entry.timeMs;
    this.sequences[slot] = this.nextSequence++;
    this.skippedCounts[slot] = skipped;
    this.subscriptionIds[slot] = subscriptionId;
    this.payloadArenas[slot] = current;
    this.payloadStarts[slot] = this.arenaEnds[current]!;
    this.payloadLengths[slot] = length;
    this.owners[slot] = owner;
    this.streams[slot] = stream;
    this.topics[slot] = entry.topic;
    this.properties[slot] = entry.properties;
    this.arenaEnds[current] = copyPayload(entry, this.arenas[current], this.arenaEnds[current]!);
    this.arenaLiveBytes[current] += length;
    this.size += 1;
  }

  /** Forgets a held delivery. */
  remove(packetId: number): void {
    const slot = this.slotOf(packetId);
    this.packetIds[slot] = 0;
    this.owners[slot] = null;
    this.properties[slot] = undefined;
    const arena = this.payloadArenas[slot]!;
    this.arenaLiveBytes[arena] -= this.payloadLengths[slot]!;
    this.size -= 1;
    assert(this.size >= 0 && this.arenaLiveBytes[arena]! >= 0, 'the table counts what it holds');
    if (this.size === 0) this.emptied();
  }

  /** Everything acknowledged: the arenas start over, and large ones (a burst's) are let go rather than kept for the session's lifetime. */
  private emptied(): void {
    this.startOver(0);
    this.startOver(1);
  }

  private startOver(arena: number): void {
    assert(this.arenaLiveBytes[arena] === 0, 'an empty table holds no payload bytes');
    this.arenaEnds[arena] = 0;
    if (this.arenas[arena]!.length > arenaKeptBytesMax) this.arenas[arena] = noBytes;
  }

  ownerOf(packetId: number): DeliveryOwner | null {
    return this.owners[this.slotOf(packetId)]!;
  }

  offsetOf(packetId: number): number {
    return this.offsets[this.slotOf(packetId)]!;
  }

  skippedOf(packetId: number): number {
    return this.skippedCounts[this.slotOf(packetId)]!;
  }

  streamOf(packetId: number): string {
    return this.streams[this.slotOf(packetId)]!;
  }

  subscriptionIdOf(packetId: number): number {
    return this.subscriptionIds[this.slotOf(packetId)]!;
  }

  /** The delivery's entry, rebuilt with a payload of its own (QoS 1: what it was delivered at). */
  entryOf(packetId: number): StreamEntry {
    const slot = this.slotOf(packetId);
    const start = this.payloadStarts[slot]!;
    const payload = this.arenas[this.payloadArenas[slot]!]!.slice(start, start + this.payloadLengths[slot]!);
    return { offset: this.offsets[slot]!, timeMs: this.timesMs[slot]!, topic: this.topics[slot]!, qos: 1, properties: this.properties[slot], payload };
  }

  /** The subscription of these deliveries is gone: their acknowledgements only free their identifiers. */
  disown(owner: DeliveryOwner): void {
    if (this.size === 0) return;
    for (let slot = 0; slot < this.capacity; slot++) if (this.owners[slot] === owner) this.owners[slot] = null;
  }

  disownOne(packetId: number): void {
    this.owners[this.slotOf(packetId)] = null;
  }

  /** Identifiers held, in the order their deliveries were first sent; only `owner`'s when given. */
  packetIdsInSendOrder(owner?: DeliveryOwner): number[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.packetIds[slot] !== 0 && (owner === undefined || this.owners[slot] === owner)) slots.push(slot);
    }
    slots.sort((a, b) => this.sequences[a]! - this.sequences[b]!);
    return slots.map((slot) => this.packetIds[slot]!);
  }

  /** Bytes of both arenas, for tests and statistics. */
  get arenaBytes(): number {
    return this.arenas[0].length + this.arenas[1].length;
  }

  private slotOf(packetId: number): number {
    const slot = packetId & (this.capacity - 1);
    // The message is built only when it fails: this runs for every acknowledgement.
    if (packetId === 0 || this.packetIds[slot] !== packetId) assert(false, `packet identifier ${packetId} is held`);
    return slot;
  }

  private resize(capacity: number): void {
    assert(capacity >= this.capacity && capacity <= slotsMax && (capacity & (capacity - 1)) === 0, 'slots grow by powers of two, up to 65,536');
    const old = { capacity: this.capacity, packetIds: this.packetIds, offsets: this.offsets, timesMs: this.timesMs, sequences: this.sequences };
    const more = {
      skippedCounts: this.skippedCounts,
      subscriptionIds: this.subscriptionIds,
      payloadStarts: this.payloadStarts,
      payloadLengths: this.payloadLengths,
      payloadArenas: this.payloadArenas,
    };
    const pointers = { owners: this.owners, streams: this.streams, topics: this.topics, properties: this.properties };
    this.capacity = capacity;
    this.packetIds = new Uint16Array(capacity);
    this.offsets = new Float64Array(capacity);
    this.timesMs = new Float64Array(capacity);
    this.sequences = new Float64Array(capacity);
    this.skippedCounts = new Float64Array(capacity);
    this.subscriptionIds = new Uint32Array(capacity);
    this.payloadStarts = new Uint32Array(capacity);
    this.payloadLengths = new Uint32Array(capacity);
    this.payloadArenas = new Uint8Array(capacity);
    this.owners = new Array<DeliveryOwner | null>(capacity).fill(null);
    this.streams = new Array<string>(capacity).fill('');
    this.topics = new Array<string>(capacity).fill('');
    this.properties = new Array<Properties | undefined>(capacity).fill(undefined);
    for (let from = 0; from < old.capacity; from++) {
      const packetId = old.packetIds[from]!;
      if (packetId === 0) continue;
      const to = packetId & (capacity - 1);
      assert(this.packetIds[to] === 0, 'held identifiers keep distinct slots when the slots double');
      this.packetIds[to] = packetId;
      this.offsets[to] = old.offsets[from]!;
      this.timesMs[to] = old.timesMs[from]!;
      this.sequences[to] = old.sequences[from]!;
      this.skippedCounts[to] = more.skippedCounts[from]!;
      this.subscriptionIds[to] = more.subscriptionIds[from]!;
      this.payloadStarts[to] = more.payloadStarts[from]!;
      this.payloadLengths[to] = more.payloadLengths[from]!;
      this.payloadArenas[to] = more.payloadArenas[from]!;
      this.owners[to] = pointers.owners[from]!;
      this.streams[to] = pointers.streams[from]!;
      this.topics[to] = pointers.topics[from]!;
      this.properties[to] = pointers.properties[from];
    }
  }

  /**
   * Room for `length` more payload bytes in the current arena: the other one, when everything in
   * it was acknowledged (sized for what is live now); else one new arena with every live payload.
   */
  private makeArenaRoom(length: number): void {
    const needed = this.arenaLiveBytes[0]! + this.arenaLiveBytes[1]! + length;
    const size = Math.max(initialArenaBytes, Math.ceil((1.5 * needed) / initialArenaBytes) * initialArenaBytes);
    const other = 1 - this.current;
    if (this.arenaLiveBytes[other] === 0) {
      if (this.arenas[other]!.length < size || this.arenas[other]!.length > 4 * size) this.arenas[other] = new Uint8Array(size);
      this.arenaEnds[other] = 0;
      this.current = other;
      return;
    }
    // Both hold payloads: copied into one new arena, the other left empty (allocated when next swapped to).
    const target = new Uint8Array(size);
    let end = 0;
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.packetIds[slot] === 0) continue;
      const source = this.arenas[this.payloadArenas[slot]!]!;
      const start = this.payloadStarts[slot]!;
      const bytes = this.payloadLengths[slot]!;
      // Small payloads byte by byte: a view per payload would be an allocation per delivery held.
      if (bytes > 128) target.set(source.subarray(start, start + bytes), end);
      else for (let index = 0; index < bytes; index++) target[end + index] = source[start + index]!;
      this.payloadArenas[slot] = 0;
      this.payloadStarts[slot] = end;
      end += bytes;
    }
    assert(end + length === needed, 'the new arena holds exactly the live payloads');
    this.arenas[0] = target;
    this.arenas[1] = noBytes;
    this.arenaEnds[0] = end;
    this.arenaEnds[1] = 0;
    this.arenaLiveBytes[0] = end;
    this.arenaLiveBytes[1] = 0;
    this.current = 0;
    assert(end + length <= target.length, 'the arena has room for the payload');
  }
}

const noBytes = new Uint8Array(0);
