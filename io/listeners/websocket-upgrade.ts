/**
 * The HTTP side of a ws or wss listener: from a connection that is ready for HTTP (a TCP socket,
 * or a TLS socket after its handshake) to an open WebSocket carrying MQTT, or a refusal.
 *
 * A Node `http.Server` that never listens parses the request (the listener hands it each socket);
 * the `ws` library, without a server of its own (`noServer`), completes the upgrade. Between the
 * two sit the listener's rules, checked before any WebSocket exists:
 *
 * - the request path must be the listener's `path` (the query string is ignored): else 404;
 * - a request that is not a WebSocket upgrade gets 426 on the right path;
 * - with `allowedOrigins`, a request carrying an `Origin` header (every browser sends one) must
 *   name one of them: else 403. A request without one comes from a program, not a web page, and
 *   the header would prove nothing there;
 * - a client offering subprotocols must offer `mqtt` (or `mqttv3.1`, what MQTT 3.1 clients
 *   offered), which is the one answered [MQTT-6.0.0-3, MQTT-6.0.0-4]: else 400. A client offering
 *   none is accepted, as Mosquitto accepts it;
 * - the whole request must arrive within connectTimeoutMs of the connection becoming ready for
 *   HTTP, or the socket is dropped; every socket waits in a DeadlineQueue until its upgrade.
 *
 * Every refusal answers with a short HTTP response, closes that socket only, and is counted
 * (HandshakeFailures). Frames are limited to `frameBytesMax` (the largest MQTT packet plus its
 * fixed header) by `ws` itself, which closes an offender with 1009 before buffering the frame;
 * per-message compression is off (it would let a small frame inflate past any limit, and MQTT
 * payloads are usually compressed or tiny). Open WebSockets are pinged every `pingIntervalMs`.
 */
import http from 'node:http';
import type net from 'node:net';
import { WebSocketServer } from 'ws';
import { peerAddress } from '../transport.js';
import { DeadlineQueue } from './deadline-queue.js';
import type { HandshakeFailures } from './handshake-failures.js';
import { normalizeOrigin } from './listener-config.js';
import { WebSocketTransport } from './websocket-transport.js';

/** Subprotocols a client may ask for, in order of preference; the answer is the first it offers. */
export const mqttSubprotocols = ['mqtt', 'mqttv3.1'] as const;

export interface WebSocketUpgradeOptions {
  readonly path: string;
  readonly allowedOrigins: readonly string[] | null;
  readonly connectTimeoutMs: number;
  readonly frameBytesMax: number;
  readonly pingIntervalMs: number;
  readonly failures: HandshakeFailures;
  /** An upgrade succeeded: the WebSocket, ready for the host, and what is known of its peer. */
  readonly onOpen: (transport: WebSocketTransport, remoteAddress: string, verifiedUsername: string | undefined) => void;
}

interface Peer {
  readonly remoteAddress: string;
  readonly verifiedUsername: string | undefined;
}

export class WebSocketUpgrades {
  private readonly http: http.Server;
  private readonly webSockets: WebSocketServer;
  private readonly waiting: DeadlineQueue<net.Socket>;
  private readonly peers = new WeakMap<net.Socket, Peer>();
  /** Open WebSockets of this listener, for the heartbeat. */
  private readonly open = new Set<WebSocketTransport>();
  private readonly heartbeatTimer: NodeJS.Timeout;

  constructor(private readonly options: WebSocketUpgradeOptions) {
    this.http = http.createServer();
    this.http.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => this.onPlainRequest(request, response));
    this.http.on('upgrade', (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => this.onUpgrade(request, socket, head));
    this.http.on('clientError', (error: Error & { code?: string; rawPacket?: Buffer }, socket: net.Socket) => this.onClientError(error, socket));
    this.webSockets = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: options.frameBytesMax,
      // MQTT travels in binary frames; a text frame is refused before its bytes would be read.
      skipUTF8Validation: true,
      handleProtocols: (offered) => mqttSubprotocols.find((name) => offered.has(name)) ?? false,
    });
    this.webSockets.on('wsClientError', (error: Error, socket: net.Socket) => this.refuse(socket, 400, `bad WebSocket upgrade: ${error.message}`));
    this.waiting = new DeadlineQueue(options.connectTimeoutMs, (socket) => this.onDeadline(socket));
    this.heartbeatTimer = setInterval(() => this.heartbeat(), options.pingIntervalMs);
    this.heartbeatTimer.unref();
  }

  /** A socket ready for HTTP; `remoteAddress` is its client's (from a PROXY header or the socket). */
  begin(socket: net.Socket, remoteAddress: string, verifiedUsername: string | undefined): void {
    this.peers.set(socket, { remoteAddress, verifiedUsername });
    this.waiting.add(socket);
    this.http.emit('connection', socket);
  }

  /** Stops the heartbeat and drops every connection still on its way to an upgrade. */
  close(): void {
    clearInterval(this.heartbeatTimer);
    for (const socket of this.waiting.drain()) socket.destroy();
  }

  private onPlainRequest(request: http.IncomingMessage, response: http.ServerResponse): void {
    const socket = request.socket;
    const onPath = requestPath(request) === this.options.path;
    this.options.failures.record('webSocketUpgradeRefused', this.peerOf(socket).remoteAddress, onPath ? 'an HTTP request that is not a WebSocket upgrade' : `HTTP request for ${requestPath(request)}`);
    this.waiting.delete(socket);
    response.writeHead(onPath ? 426 : 404, { Connection: 'close', 'Content-Type': 'text/plain', ...(onPath ? { Upgrade: 'websocket' } : {}) });
    response.end(onPath ? 'MQTT over WebSocket: upgrade with subprotocol mqtt\n' : 'not found\n');
  }

  private onUpgrade(request: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
    // Expired meanwhile: the deadline already dropped the socket.
    if (!this.waiting.delete(socket)) return;
    const refusal = this.refusal(request);
    if (refusal !== null) return this.refuse(socket, refusal.status, refusal.reason);
    this.webSockets.handleUpgrade(request, socket, head, (websocket) => {
      const peer = this.peerOf(socket);
      const transport = new WebSocketTransport(websocket, socket, (reason) => this.options.failures.record('webSocketProtocolError', peer.remoteAddress, reason));
      this.open.add(transport);
      transport.once('close', () => this.open.delete(transport));
      this.options.onOpen(transport, peer.remoteAddress, peer.verifiedUsername);
    });
  }

  /** Why this upgrade request is refused, or null when it may proceed. */
  private refusal(request: http.IncomingMessage): { status: number; reason: string } | null {
    const path = requestPath(request);
    if (path !== this.options.path) return { status: 404, reason: `WebSocket upgrade for ${path} (this listener serves ${this.options.path})` };
    const origin = request.headers.origin;
    const allowed = this.options.allowedOrigins;
    if (allowed !== null && origin !== undefined && !allowed.includes(normalizeOrigin(origin) ?? origin)) {
      return { status: 403, reason: `origin ${origin} is not in allowedOrigins` };
    }
    const offered = request.headers['sec-websocket-protocol'];
    if (offered !== undefined) {
      const names = offered.split(',').map((name) => name.trim());
      if (!mqttSubprotocols.some((name) => names.includes(name))) return { status: 400, reason: `subprotocols ${offered} offered, none of them mqtt` };
    }
    return null;
  }

  private onClientError(error: Error & { code?: string; rawPacket?: Buffer }, socket: net.Socket): void {
    this.waiting.delete(socket);
    // A TLS ClientHello starts with a handshake record (0x16, then version 3.x).
    const tls = error.rawPacket !== undefined && error.rawPacket[0] === 0x16 && error.rawPacket[1] === 0x03;
    const remoteAddress = this.peerOf(socket).remoteAddress;
    if (tls) this.options.failures.record('tlsOnPlainListener', remoteAddress, 'a TLS handshake on a WebSocket listener without TLS (use wss:// on the wss port)');
    else this.options.failures.record('webSocketUpgradeRefused', remoteAddress, `malformed HTTP request (${error.code ?? error.message})`);
    if (!tls && socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    socket.destroy();
  }

  private refuse(socket: net.Socket, status: number, reason: string): void {
    this.options.failures.record('webSocketUpgradeRefused', this.peerOf(socket).remoteAddress, reason);
    if (socket.writable)
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(reason) + 1}\r\n\r\n${reason}\n`);
    // end() flushes the answer before FIN; a peer that never reads it is cut off by the grace below.
    setTimeout(() => socket.destroy(), 1_000).unref();
  }

  private onDeadline(socket: net.Socket): void {
    // Gone on its own (the client left before upgrading): nothing to count.
    if (socket.destroyed) return;
    this.options.failures.record('webSocketUpgradeTimeout', this.peerOf(socket).remoteAddress, `no WebSocket upgrade within ${this.options.connectTimeoutMs} ms`);
    socket.destroy();
  }

  private heartbeat(): void {
    for (const transport of this.open) {
      if (transport.heartbeat()) continue;
      this.options.failures.record('webSocketPingTimeout', peerAddress(transport), `no pong within ${this.options.pingIntervalMs} ms`);
      transport.destroy();
    }
  }

  private peerOf(socket: net.Socket): Peer {
    return this.peers.get(socket) ?? { remoteAddress: peerAddress(socket), verifiedUsername: undefined };
  }
}

/** The path of a request's URL, without its query string. */
function requestPath(request: http.IncomingMessage): string {
  const url = request.url ?? '/';
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}
