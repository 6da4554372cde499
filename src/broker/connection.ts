/**
 * One transport connection as the broker sees it: its decoder, its phase, the session bound to
 * it, and the per-connection MQTT state (keepalive, the client's limits, incoming topic aliases,
 * acknowledgements held back until the records they depend on are durable).
 *
 * Phases: `awaiting-connect` until a CONNECT is accepted, `connected` afterwards, `closing` once
 * the broker decided to close it; in `closing` every further byte from the client is ignored.
 */
import type { PacketDecoder } from '../codec/decoder.js';
import type { ProtocolVersion, Will } from '../codec/packets.js';
import type { ConnectionId, ListenerInfo, LogFields } from '../contract.js';
import type { SessionState } from '../store/state-store.js';
import type { AuthenticationExchange } from './handle-auth.js';
import type { RetainedReplay } from './retained-replay.js';
import type { TokenBucket } from './token-bucket.js';

export type ConnectionPhase = 'awaiting-connect' | 'connected' | 'closing';

/** Bytes waiting until the store's durable LSN reaches `lsn`. */
export interface HeldSend {
  /** Raised once, at the end of routing an inbound QoS 2 PUBLISH (Broker.endInboundQos2Routing). */
  lsn: number;
  readonly bytes: Uint8Array;
  /** A PUBACK: releasing it frees one slot of the client's window towards us. */
  readonly isPuback: boolean;
  /** A cluster hand-off the send also waits for (cluster-node.ts ticket), 0 when none. */
  readonly handoff: number;
  /** Packets the bytes hold (a run of stream PUBLISHes is one chunk), for the sent-packets count. */
  readonly packets: number;
}

/** The largest packet MQTT can express (when the client names no Maximum Packet Size). */
export const packetBytesLimit = 268_435_460;

export class Connection {
  phase: ConnectionPhase = 'awaiting-connect';
  /** Known once CONNECT is accepted; 4 until then (3.1.1 framing for early refusals). */
  version: ProtocolVersion = 4;
  /** The CONNECT's client id once one arrived (the assigned one once accepted); '' before. */
  clientId = '';
  /**
   * Who the client said it is: the CONNECT's user name, then the identity an enhanced
   * authentication established; for log lines. Authorization reads the session's owner instead.
   */
  username: string | undefined = undefined;
  session: SessionState | null = null;
  /** Core time when its CONNECT was accepted (0 before). */
  connectedAtMs = 0;
  /** 0 disables the keepalive check. */
  keepAliveMs = 0;
  lastPacketMs: number;
  /** The client's Receive Maximum: our outgoing window is at most this. */
  receiveMaximum = 65_535;
  /** The client's Maximum Packet Size. */
  maximumPacketSize = packetBytesLimit;
  /** The client's Topic Alias Maximum (MQTT 5.0): aliases Keel may use towards it; 0 for none. */
  outgoingAliasMaximum = 0;
  /** QoS 1 PUBLISHes received whose PUBACK is still held for durability. */
  pendingPubacks = 0;
  /**
   * Sends held until the records they depend on are durable, oldest first; null until the first
   * one, so that a connection that never publishes with QoS 1 or 2 holds no list. Kept once made.
   */
  held: HeldSend[] | null = null;
  /** Retained messages its session still owes new subscriptions (retained-replay.ts); null when none. */
  retainedReplay: RetainedReplay | null = null;
  /** The will of this connection, until it ends normally. */
  will: Will | null = null;
  /** publishRatePerSecondMax for this connection; null when unlimited. Set when CONNECT is accepted. */
  publishBucket: TokenBucket | null = null;
  /**
   * Output accounting for connectionOutputBytesMax (see outputBytes in outbound-queue.ts): what
   * the host last reported as still buffered, and that plus what the current input sent so far.
   * `outputInput` is the input (Broker.inputSequence) `outputBufferedBytes` belongs to; from an
   * earlier input it is stale, since the host reports after writing whenever the figure changed.
   */
  outputReportedBytes = 0;
  outputBufferedBytes = 0;
  outputInput = 0;
  /** The fields below that most connections never set (see ConnectionRare); null until one is. */
  private rare: ConnectionRare | null = null;

  constructor(
    readonly id: ConnectionId,
    readonly remoteAddress: string,
    readonly listener: ListenerInfo,
    readonly decoder: PacketDecoder,
    nowMs: number,
  ) {
    this.lastPacketMs = nowMs;
  }

  /**
   * Incoming topic aliases (MQTT 5.0), alias to topic name; null until the client sets one, so
   * the many connections that never use aliases do not each hold an empty Map.
   */
  get topicAliases(): Map<number, string> | null {
    return this.rare === null ? null : this.rare.topicAliases;
  }

  set topicAliases(aliases: Map<number, string> | null) {
    if (aliases !== null || this.rare !== null) this.ownRare().topicAliases = aliases;
  }

  /** Outgoing aliases, topic name to alias; null until the first one is handed out. */
  get outgoingAliases(): Map<string, number> | null {
    return this.rare === null ? null : this.rare.outgoingAliases;
  }

  set outgoingAliases(aliases: Map<string, number> | null) {
    if (aliases !== null || this.rare !== null) this.ownRare().outgoingAliases = aliases;
  }

  /** Session expiry set by the client's DISCONNECT (MQTT 5.0), applied when the session detaches. */
  get expiryOnDisconnectSeconds(): number | null {
    return this.rare === null ? null : this.rare.expiryOnDisconnectSeconds;
  }

  set expiryOnDisconnectSeconds(seconds: number | null) {
    if (seconds !== null || this.rare !== null) this.ownRare().expiryOnDisconnectSeconds = seconds;
  }

  /**
   * MQTT 5.0 enhanced authentication (handle-auth.ts): set when the CONNECT named a method and
   * kept for the connection's life, for re-authentication; null for every other connection.
   */
  get authentication(): AuthenticationExchange | null {
    return this.rare === null ? null : this.rare.authentication;
  }

  set authentication(exchange: AuthenticationExchange | null) {
    if (exchange !== null || this.rare !== null) this.ownRare().authentication = exchange;
  }

  /**
   * A cluster node waits for the client id to be its own (session-registry.ts): the CONNECT is
   * parked there and packets behind it stay in the decoder until then.
   */
  get claimPending(): boolean {
    return this.rare?.claimPending === true;
  }

  set claimPending(pending: boolean) {
    if (pending || this.rare !== null) this.ownRare().claimPending = pending;
  }

  /** ConnectionPeer.verifiedUsername: the transport's verified user name, if any. */
  get verifiedUsername(): string | undefined {
    return this.rare === null ? undefined : this.rare.verifiedUsername;
  }

  set verifiedUsername(username: string | undefined) {
    if (username !== undefined || this.rare !== null) this.ownRare().verifiedUsername = username;
  }

  private ownRare(): ConnectionRare {
    this.rare ??= new ConnectionRare();
    return this.rare;
  }
}

/**
 * What only some connections ever set: MQTT 5.0 topic aliases, a session expiry given by
 * DISCONNECT, enhanced authentication, a cluster claim under way, a user name the transport
 * verified. Kept apart, made at the first write of a value other than the default, so that an
 * ordinary connection holds one null instead of six fields (40 bytes of each idle connection);
 * the accessors on Connection read and write them as if they were its own.
 */
class ConnectionRare {
  topicAliases: Map<number, string> | null = null;
  outgoingAliases: Map<string, number> | null = null;
  expiryOnDisconnectSeconds: number | null = null;
  authentication: AuthenticationExchange | null = null;
  claimPending = false;
  verifiedUsername: string | undefined = undefined;
}

/** The fields every log line about a connection carries, so that an operator can follow one client. */
export function connectionLogFields(connection: Connection): LogFields {
  return { connectionId: connection.id, clientId: connection.clientId, address: connection.remoteAddress, listener: connection.listener.name, username: connection.username ?? null };
}
