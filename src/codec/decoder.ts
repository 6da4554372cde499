/**
 * STUB: the codec helper replaces this file. The exported signatures are the agreed API.
 */
import type { Packet, ProtocolVersion } from './packets.js';

export interface DecoderOptions {
  /** Packets whose total size (fixed header included) exceeds this raise 0x95 before buffering. */
  packetBytesMax: number;
  /** Known version (client side); when absent the decoder learns it from the first CONNECT. */
  protocolVersion?: ProtocolVersion;
}

/**
 * Incremental decoder for one connection's byte stream. `push` appends bytes, `next` returns the
 * next whole packet or null when more bytes are needed, and throws `ProtocolViolation` on bad input
 * (after which the decoder must not be used again).
 */
export class PacketDecoder {
  protocolVersion: ProtocolVersion | undefined;
  constructor(options: DecoderOptions) {
    this.protocolVersion = options.protocolVersion;
    throw new Error('not implemented');
  }
  push(_chunk: Uint8Array): void {
    throw new Error('not implemented');
  }
  next(): Packet | null {
    throw new Error('not implemented');
  }
  /** Bytes held that do not yet form a whole packet. */
  get bufferedBytes(): number {
    throw new Error('not implemented');
  }
}
