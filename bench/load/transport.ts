/**
 * How the load generator reaches a broker: plain TCP (the default), TLS, or a WebSocket. Each
 * gives a byte stream with the socket API the generator uses (`write` with backpressure, `drain`,
 * `data`, `pause`, `destroy`), so every scenario runs unchanged over any of them, and only the
 * transport differs between a plain and a TLS or WebSocket figure.
 *
 * TLS: `tls.connect`, trusting the benchmark's own CA (certificates.ts) and checking the server's
 * name, as a real client would; no session is reused, so every connection is a full handshake.
 * WebSocket: the `ws` client offering subprotocol `mqtt`, wrapped as a stream
 * (`createWebSocketStream`): each write becomes one binary frame, each frame received is the next
 * bytes of the stream; compression off, as on both brokers.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import WebSocket, { createWebSocketStream } from 'ws';

export type BenchTransportKind = 'tcp' | 'tls' | 'ws';

export interface BenchTransport {
  readonly kind: BenchTransportKind;
  /** TLS: the CA certificate (PEM) the client trusts. */
  readonly ca?: Buffer;
  /** WebSocket: the URL path of the broker's listener. */
  readonly path?: string;
}

export const plainTcp: BenchTransport = Object.freeze({ kind: 'tcp' });

/**
 * A connection to 127.0.0.1:`port` over `transport`. Writes made before it is open are queued by
 * each kind of stream itself; errors come as 'error' events, never as exceptions. A plain TCP
 * connection may come from another loopback source address (`localAddress`, 127.0.0.x): each
 * source address has its own range of ephemeral ports towards the broker's one port.
 */
export function connectTransport(port: number, transport: BenchTransport, localAddress?: string): net.Socket | Duplex {
  if (transport.kind === 'tcp') return net.connect({ host: '127.0.0.1', port, noDelay: true, ...(localAddress === undefined ? {} : { localAddress }) });
  if (transport.kind === 'tls') {
    const socket = tls.connect({ host: '127.0.0.1', port, secureContext: clientContext(transport), servername: 'localhost' });
    socket.setNoDelay(true);
    return socket;
  }
  const websocket = new WebSocket(`ws://127.0.0.1:${port}${transport.path ?? '/mqtt'}`, 'mqtt', { perMessageDeflate: false });
  return createWebSocketStream(websocket);
}

/**
 * One client context per CA: `tls.connect({ ca })` would build a new context for every connection,
 * which cost the generator more per handshake (parsing the CA, setting up OpenSSL's store) than
 * the handshake itself, and capped the figure near 300 handshakes/s for any broker.
 */
const clientContexts = new WeakMap<Buffer, tls.SecureContext>();

function clientContext(transport: BenchTransport): tls.SecureContext {
  if (transport.ca === undefined) throw new Error('assertion failed: a TLS transport needs the CA it trusts');
  let context = clientContexts.get(transport.ca);
  if (context === undefined) {
    context = tls.createSecureContext({ ca: transport.ca });
    clientContexts.set(transport.ca, context);
  }
  return context;
}

/**
 * Ends a connection at once; a plain TCP one with a reset, so no TIME_WAIT is left behind (Node
 * resets only sockets it reads directly, not TLS ones).
 */
export function resetTransport(stream: net.Socket | Duplex): void {
  if (stream.destroyed) return;
  if (stream instanceof net.Socket && !(stream instanceof tls.TLSSocket)) stream.resetAndDestroy();
  else stream.destroy();
}
