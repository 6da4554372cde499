/**
 * The transport seam: what the Node host needs of one client's byte stream, whatever carries it.
 *
 * A plain TCP connection (`net.Socket`), a TLS one (`tls.TLSSocket`) and a WebSocket
 * (`io/listeners/websocket-transport.ts`) all reach the core the same way: the listener that
 * accepted the connection finishes whatever its transport needs first (a PROXY header, a TLS
 * handshake, an HTTP upgrade), then hands the host a `Transport` and what it learnt of the peer
 * (`ConnectionOpening`). From there one code path in `NodeHost` feeds bytes to the core, batches
 * its sends, reports unsent bytes for the output cap, pauses a throttled publisher and closes.
 *
 * The interface is the part of `net.Socket` the host uses, so Node's sockets implement it as they
 * are and an adapter only has to mimic that much. Its events are those of a socket: `data` with a
 * Buffer of the stream's bytes (any split), `drain` when the unsent bytes left the process after
 * a write found the buffer full, `error` (always followed by `close`) and `close` exactly once.
 */
import type { ListenerInfo } from '../src/contract.js';

export type TransportEvent = 'data' | 'drain' | 'error' | 'close';

export interface Transport {
  /** True once the transport can no longer write (closing or closed). */
  readonly destroyed: boolean;
  /** True once `close` was emitted. */
  readonly closed: boolean;
  /** Bytes written and not yet taken by the operating system (or the peer's TCP window). */
  readonly writableLength: number;
  /** True after a write found the buffer over its high-water mark, until `drain`. */
  readonly writableNeedDrain: boolean;
  /** The connection's own peer, used when the listener has no better address (no PROXY header). */
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  /** Queues bytes after everything written before; false when the buffer is over its mark. */
  write(bytes: Uint8Array): boolean;
  cork(): void;
  uncork(): void;
  /** Sends what was written, then closes in the transport's orderly way (FIN, a close frame). */
  end(): unknown;
  /** Closes at once, dropping what was not sent. */
  destroy(): unknown;
  /** Stops reading (the kernel's receive buffer fills and the peer's writes slow down). */
  pause(): unknown;
  resume(): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: the listeners' arguments differ per event, as on net.Socket.
  on(event: TransportEvent, listener: (...args: any[]) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
}

/** What the listener learnt of a connection before handing it to the host. */
export interface ConnectionOpening {
  /** The listener it came through (named in logs; its own connectionsMax applies). */
  readonly listener?: ListenerInfo;
  /** `host:port` of the client; from a PROXY header when there was one. Default: the transport's peer. */
  readonly remoteAddress?: string;
  /** A user name the transport verified (mutual TLS with identityAsUsername). */
  readonly verifiedUsername?: string;
  /**
   * Looks at the first chunk of bytes before the core does; false closes the connection without
   * the core seeing those bytes (a plain listener refusing a TLS handshake). Called at most once.
   */
  readonly screenFirstChunk?: (chunk: Buffer, transport: Transport) => boolean;
}

/** `host:port` of a transport's peer, as log lines and the core show it. */
export function peerAddress(transport: Pick<Transport, 'remoteAddress' | 'remotePort'>): string {
  const address = transport.remoteAddress ?? 'unknown';
  const port = transport.remotePort ?? 0;
  return flatString(address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);
}

/**
 * The same characters as one flat string. Concatenation makes a cons string (its pieces and a
 * node joining them, about 90 bytes for `127.0.0.1:54321` against 32 flat) that the core then keeps
 * for the connection's life. V8's toLowerCase flattens its input and returns the flat string when
 * no character changes, as for every address Node reports (digits, dots, colons, lower-case hex);
 * other text is returned as it was. An array join also builds a flat string, but in cold code it
 * took microseconds a call, a cost the first connections of a reconnect storm would pay.
 */
function flatString(text: string): string {
  const lower = text.toLowerCase();
  return lower === text ? lower : text;
}

/**
 * Drops Node's cached copy of a TCP socket's peer name. The first read of `remoteAddress` or
 * `remotePort` keeps what getpeername returned on the socket (`_peername`: an object and its
 * address string, about 90 bytes) for the socket's life, and Node reads it again only when asked
 * for those again, which then asks the kernel once more. The host keeps its own `host:port`
 * string (peerAddress), so an idle connection need not keep Node's as well.
 */
export function forgetPeerName(socket: Transport): void {
  const cached = socket as { _peername?: unknown };
  if (cached._peername !== undefined) cached._peername = undefined;
}
