/**
 * STUB: the codec helper replaces this file. The exported signatures are the agreed API.
 */
import type { Packet, ProtocolVersion, PublishPacket } from './packets.js';

/** Encodes one packet for a connection of the given version into a buffer of exactly its size. */
export function encodePacket(_packet: Packet, _version: ProtocolVersion): Uint8Array {
  throw new Error('not implemented');
}

/** A PUBLISH encoded once for many receivers. */
export interface EncodedPublish {
  bytes: Uint8Array;
  /** Offset of the two packet identifier bytes, or -1 for QoS 0. */
  packetIdOffset: number;
}

/** Encodes a PUBLISH once; `packet.packetId` may be absent, and is filled per receiver. */
export function encodePublish(_packet: PublishPacket, _version: ProtocolVersion): EncodedPublish {
  throw new Error('not implemented');
}

/** A copy of `encoded` with the packet identifier (and the DUP flag) set for one receiver. */
export function withPacketId(_encoded: EncodedPublish, _packetId: number, _dup: boolean): Uint8Array {
  throw new Error('not implemented');
}
