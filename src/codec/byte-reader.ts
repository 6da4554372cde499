/**
 * A bounds-checked cursor over the body of one packet.
 *
 * Every read checks against `end`, so a length field that promises more bytes than the packet
 * holds becomes ProtocolViolation 0x81 instead of reading past the packet. `end` can be narrowed
 * while a nested structure (a property list) is read, so nothing inside it can run over its
 * declared length. One reader is reused for every packet of a connection: no per-packet object.
 *
 * A connection usually publishes to the same few topics over and over, so the reader remembers
 * the last PUBLISH topic it decoded (its bytes and its string): when the next one has the same
 * bytes, the same string is returned without decoding it again. That saves the decoding work and,
 * more, a fresh string per message, which every stored (queued) message would otherwise keep.
 * The bytes were validated when the string was first made, and equal bytes decode equally.
 */
import { malformed } from './errors.js';
import { ownCopy } from './own-copy.js';
import { decodeUtf8 } from './utf8.js';

/** Topics up to this many bytes are remembered (longer ones are decoded every time). */
const topicCacheBytesMax = 256;

export class ByteReader {
  bytes: Uint8Array = new Uint8Array(0);
  offset = 0;
  end = 0;
  /** The last remembered topic: its first `topicCacheLength` bytes and its string. */
  private topicCacheBytes: Uint8Array | null = null;
  private topicCacheLength = -1;
  private topicCacheText = '';

  reset(bytes: Uint8Array, offset: number, end: number): void {
    this.bytes = bytes;
    this.offset = offset;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  private need(count: number): void {
    if (this.offset + count > this.end) {
      throw malformed('truncated', `packet ends ${this.offset + count - this.end} byte(s) early`);
    }
  }

  readByte(): number {
    this.need(1);
    return this.bytes[this.offset++]!;
  }

  readUint16(): number {
    this.need(2);
    const bytes = this.bytes;
    const value = (bytes[this.offset]! << 8) | bytes[this.offset + 1]!;
    this.offset += 2;
    return value;
  }

  readUint32(): number {
    this.need(4);
    const bytes = this.bytes;
    const offset = this.offset;
    this.offset += 4;
    return bytes[offset]! * 0x1000000 + ((bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!);
  }

  /** A Variable Byte Integer: at most four bytes, minimally encoded ([MQTT-1.5.5-1]). */
  readVariableInteger(): number {
    let value = 0;
    let multiplier = 1;
    for (let count = 0; count < 4; count++) {
      const byte = this.readByte();
      value += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) {
        if (byte === 0 && count > 0) throw malformed('variable-integer-not-minimal', 'variable byte integer not minimally encoded');
        return value;
      }
      multiplier *= 128;
    }
    throw malformed('variable-integer-too-long', 'variable byte integer longer than four bytes');
  }

  /** A two-byte length prefixed UTF-8 string. */
  readString(): string {
    const length = this.readUint16();
    this.need(length);
    const start = this.offset;
    this.offset += length;
    return decodeUtf8(this.bytes, start, start + length);
  }

  /** Like `readString`, for PUBLISH topic names: repeats of the last topic return its string. */
  readTopic(): string {
    const length = this.readUint16();
    this.need(length);
    const start = this.offset;
    this.offset += length;
    if (length === this.topicCacheLength && this.matchesTopicCache(start, length)) return this.topicCacheText;
    const text = decodeUtf8(this.bytes, start, start + length);
    if (length <= topicCacheBytesMax) this.rememberTopic(start, length, text);
    return text;
  }

  private matchesTopicCache(start: number, length: number): boolean {
    const cached = this.topicCacheBytes!;
    const bytes = this.bytes;
    // Compared from the end: topics sharing a prefix (a/b/1, a/b/2) differ there first.
    for (let index = length - 1; index >= 0; index--) if (bytes[start + index] !== cached[index]) return false;
    return true;
  }

  private rememberTopic(start: number, length: number, text: string): void {
    // One buffer per reader, allocated on the first topic: a new topic costs a copy, not an allocation.
    this.topicCacheBytes ??= new Uint8Array(topicCacheBytesMax);
    this.topicCacheBytes.set(this.bytes.subarray(start, start + length));
    this.topicCacheLength = length;
    this.topicCacheText = text;
  }

  /** Two-byte length prefixed binary data, copied so it does not pin the receive buffer. */
  readBinaryCopy(): Uint8Array {
    const length = this.readUint16();
    this.need(length);
    const start = this.offset;
    this.offset += length;
    return ownCopy(this.bytes, start, start + length);
  }

  /** Everything up to `end`, as a view (no copy). */
  readRestView(): Uint8Array {
    const view = this.bytes.subarray(this.offset, this.end);
    this.offset = this.end;
    return view;
  }
}
