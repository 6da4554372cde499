/**
 * Incremental decoder for one connection's byte stream.
 *
 * Framing. Pushed chunks are kept in a list, not concatenated; `next` reads the fixed header by
 * peeking across chunks (at most five bytes), checks the packet type, the flag bits and the size
 * limit as soon as the header is complete, and only then waits for the body. A packet that lies
 * inside one chunk is decoded in place, so its PUBLISH payload is a view of that chunk; a packet
 * that straddles chunks is copied once into a buffer of exactly its size. So decoding is linear
 * in the bytes pushed whatever the split, and the result does not depend on where chunks begin.
 *
 * Bounds. A packet whose total size (fixed header included) exceeds `packetBytesMax` raises
 * 0x95 Packet Too Large from its header, before its body is waited for. Whenever `next` has
 * returned null, the bytes held are a prefix of one packet, so `bufferedBytes` is at most
 * `packetBytesMax + 4` (an incomplete header is at most four bytes of the five-byte maximum).
 *
 * Ownership. `push` keeps a reference to the chunk: the caller must not modify it afterwards.
 * Decoded payloads are views that keep their chunk alive; binary fields other than the PUBLISH
 * payload (password, will payload, correlation and authentication data) are copied.
 *
 * Failure. Bad input throws ProtocolViolation carrying the MQTT 5.0 reason code to close with.
 * The decoder then drops its buffers and rethrows the same violation on every later `next`.
 *
 * Canonical form (what `next` returns, and what `decode(encode(p))` reproduces):
 * - `properties` (packet and will) is present only when at least one property was on the wire;
 *   never on 3.1/3.1.1. `userProperties` and `subscriptionIdentifiers` are arrays in wire order.
 * - PUBLISH has `packetId` exactly when qos > 0.
 * - CONNECT has `will`, `username`, `password` exactly when their flags are set.
 * - PUBACK/PUBREC/PUBREL/PUBCOMP, DISCONNECT and AUTH always have `reasonCode` (0 when omitted
 *   on the wire, always 0 on 3.1.1). CONNACK on 3.1/3.1.1 carries the return code (0..5).
 * - UNSUBACK on 3.1/3.1.1 has `reasonCodes: []`; SUBSCRIBE options on 3.1/3.1.1 are
 *   `noLocal: false, retainAsPublished: false, retainHandling: 0`.
 * - Binary fields are Uint8Array (payload a view, others copies); keys with no value are absent.
 */
import { assert } from '../assert.js';
import { ByteReader } from './byte-reader.js';
import { checkFixedHeader, decodeBody } from './decode-packets.js';
import { malformed, ProtocolViolation } from './errors.js';
import { type Packet, PacketType, type ProtocolVersion } from './packets.js';
import { ReasonCode } from './reason-codes.js';

export interface DecoderOptions {
  /** Packets whose total size (fixed header included) exceeds this raise 0x95 before buffering. */
  packetBytesMax: number;
  /** Known version (client side); when absent the decoder learns it from the first CONNECT. */
  protocolVersion?: ProtocolVersion;
}

/** Chunks fully consumed at the front of the list are dropped in batches of this many. */
const consumedChunksCompactAt = 32;
/** Stands in for a fully consumed chunk until the list is compacted. */
const spentChunk = new Uint8Array(0);
/**
 * The chunk list of every decoder holding no bytes: an idle connection keeps no list of its own
 * (32 bytes each), at the cost of a one-element list made per read that starts a new packet.
 * Frozen, so that a push to it fails loudly.
 */
const noChunks: Uint8Array[] = Object.freeze([]) as unknown as Uint8Array[];
/**
 * The reader every decoder uses for packets other than PUBLISH: decoding runs to completion
 * inside `next` and the reader is let go of at its end, so one can serve every connection. A
 * PUBLISH is read by the decoder's own reader, made at its first PUBLISH, because that one
 * remembers the connection's last topic (byte-reader.ts). So a connection that never publishes
 * (an idle one, a subscriber) keeps no reader of its own (72 bytes).
 */
const sharedReader = new ByteReader();
/** Below this many bytes, copying a piece of a packet byte by byte is cheaper than a subarray view. */
const smallCopyBytesMax = 64;

/**
 * Incremental decoder for one connection's byte stream. `push` appends bytes, `next` returns the
 * next whole packet or null when more bytes are needed, and throws `ProtocolViolation` on bad input
 * (after which the decoder must not be used again).
 */
export class PacketDecoder {
  protocolVersion: ProtocolVersion | undefined;
  private readonly packetBytesMax: number;
  private chunks: Uint8Array[] = noChunks;
  /** Index of the first chunk still holding unread bytes, and the read offset inside it. */
  private chunkHead = 0;
  private chunkOffset = 0;
  private buffered = 0;
  /** Of the packet whose fixed header has been read: its total size, or -1 when none is pending. */
  private pendingBytes = -1;
  private pendingHeaderBytes = 0;
  private pendingType = 0;
  private pendingFlags = 0;
  private failure: ProtocolViolation | null = null;
  /** For PUBLISH packets only, made at the first one (see `sharedReader`). */
  private publishReader: ByteReader | null = null;

  constructor(options: DecoderOptions) {
    assert(Number.isInteger(options.packetBytesMax), 'packetBytesMax must be an integer');
    assert(options.packetBytesMax >= 2, 'packetBytesMax must allow at least a two-byte packet');
    this.packetBytesMax = options.packetBytesMax;
    this.protocolVersion = options.protocolVersion;
  }

  push(chunk: Uint8Array): void {
    assert(chunk instanceof Uint8Array, 'push takes a Uint8Array');
    if (this.failure !== null || chunk.length === 0) return;
    if (this.chunks === noChunks) this.chunks = [chunk];
    else this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  next(): Packet | null {
    if (this.failure !== null) throw this.failure;
    try {
      return this.nextPacket();
    } catch (error) {
      // The shared reader may still point into this decoder's bytes; they are dropped with it.
      sharedReader.reset(spentChunk, 0, 0);
      if (error instanceof ProtocolViolation) this.fail(error);
      throw error;
    }
  }

  /** Bytes held that do not yet form a whole packet. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Bytes of the received chunks the decoder still refers to (consumed ones included). */
  get retainedBytes(): number {
    let bytes = 0;
    for (let index = 0; index < this.chunks.length; index++) bytes += this.chunks[index]!.length;
    return bytes;
  }

  private fail(violation: ProtocolViolation): void {
    this.failure = violation;
    this.chunks = noChunks;
    this.chunkHead = 0;
    this.chunkOffset = 0;
    this.buffered = 0;
  }

  private nextPacket(): Packet | null {
    if (this.pendingBytes < 0 && !this.readFixedHeader()) return null;
    const total = this.pendingBytes;
    if (this.buffered < total) return null;
    const reader = this.readerFor(this.pendingType);
    this.takeContiguous(total, reader);
    const start = reader.offset;
    reader.offset += this.pendingHeaderBytes;
    this.pendingBytes = -1;
    const version = this.protocolVersion ?? 5; // only a CONNECT can arrive before the version is known
    const packet = decodeBody(reader, this.pendingType, this.pendingFlags, version);
    // Section 4.13 / 3.1.1 section 4.8: every byte of the remaining length belongs to a field.
    if (reader.offset !== reader.end) throw malformed('trailing-bytes', `${reader.end - reader.offset} unexpected byte(s) at packet end`);
    assert(reader.end - start === total, 'decoded packet spans exactly its declared size');
    // Let go of the receive buffer: an idle connection's reader would otherwise pin the chunk
    // its last packet came in (a Buffer, its ArrayBuffer and the bytes) for as long as it stays.
    reader.reset(spentChunk, 0, 0);
    if (packet.type === PacketType.Connect && this.protocolVersion === undefined) this.protocolVersion = packet.protocolVersion;
    return packet;
  }

  /** The shared reader, or for a PUBLISH the decoder's own (see `sharedReader`). */
  private readerFor(type: number): ByteReader {
    if (type !== PacketType.Publish) return sharedReader;
    this.publishReader ??= new ByteReader();
    return this.publishReader;
  }

  /** Reads the fixed header if it is complete; false when more bytes are needed. */
  private readFixedHeader(): boolean {
    if (this.buffered < 2) return false;
    const first = this.peek(0);
    const type = first >> 4;
    const flags = first & 0x0f;
    checkFixedHeader(type, flags, this.protocolVersion);
    let remainingLength = 0;
    let multiplier = 1;
    let index = 1;
    for (;;) {
      if (index >= this.buffered) return false;
      const byte = this.peek(index);
      remainingLength += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        // [MQTT-1.5.5-1] the minimum number of bytes; a trailing zero byte is not minimal.
        if (byte === 0 && index > 1) throw malformed('remaining-length-not-minimal', 'remaining length not minimally encoded');
        break;
      }
      // Section 1.5.5 (3.1.1 section 2.2.3): at most four bytes.
      if (index === 4) throw malformed('remaining-length-malformed', 'remaining length longer than four bytes');
      multiplier *= 128;
      index++;
    }
    const total = index + 1 + remainingLength;
    if (total > this.packetBytesMax) {
      // Section 3.1.2.11.4 / 4.13: a packet over the receiver's maximum is refused with 0x95,
      // here from the header alone, before any of its body is buffered.
      throw new ProtocolViolation(ReasonCode.PacketTooLarge, 'packet-too-large', `packet of ${total} bytes exceeds ${this.packetBytesMax}`);
    }
    this.pendingBytes = total;
    this.pendingHeaderBytes = index + 1;
    this.pendingType = type;
    this.pendingFlags = flags;
    return true;
  }

  /** The byte at `position` bytes past the read point; the caller checked it is buffered. */
  private peek(position: number): number {
    let offset = this.chunkOffset + position;
    for (let index = this.chunkHead; index < this.chunks.length; index++) {
      const chunk = this.chunks[index]!;
      if (offset < chunk.length) return chunk[offset]!;
      offset -= chunk.length;
    }
    assert(false, 'peek past the buffered bytes');
  }

  /** Points `reader` at the next `total` bytes, in place when one chunk holds them all. */
  private takeContiguous(total: number, reader: ByteReader): void {
    assert(total <= this.buffered, 'take only what is buffered');
    const chunk = this.chunks[this.chunkHead]!;
    if (chunk.length - this.chunkOffset >= total) {
      reader.reset(chunk, this.chunkOffset, this.chunkOffset + total);
      this.consume(total);
      return;
    }
    const packet = new Uint8Array(total);
    let filled = 0;
    while (filled < total) {
      const current = this.chunks[this.chunkHead]!;
      const count = Math.min(current.length - this.chunkOffset, total - filled);
      if (count <= smallCopyBytesMax) {
        // A few bytes (a packet split across small reads): a loop, not a subarray view per piece.
        for (let index = 0; index < count; index++) packet[filled + index] = current[this.chunkOffset + index]!;
      } else {
        packet.set(current.subarray(this.chunkOffset, this.chunkOffset + count), filled);
      }
      filled += count;
      this.consume(count);
    }
    reader.reset(packet, 0, total);
  }

  /** Advances the read point by `count` bytes, all within the head chunk. */
  private consume(count: number): void {
    const chunk = this.chunks[this.chunkHead]!;
    assert(this.chunkOffset + count <= chunk.length, 'consume within the head chunk');
    this.chunkOffset += count;
    this.buffered -= count;
    if (this.chunkOffset < chunk.length) return;
    // Let go of the spent chunk now, not at the next compaction: a receive buffer the decoder
    // kept for 32 more reads outlived young-generation collections and then sat dead in the old
    // generation, which under a flood held ~60 MiB of spent 64 KiB buffers until a full GC.
    this.chunks[this.chunkHead] = spentChunk;
    this.chunkHead++;
    this.chunkOffset = 0;
    if (this.chunkHead === this.chunks.length) {
      this.chunks = noChunks;
      this.chunkHead = 0;
    } else if (this.chunkHead >= consumedChunksCompactAt) {
      this.chunks.splice(0, this.chunkHead);
      this.chunkHead = 0;
    }
  }
}
