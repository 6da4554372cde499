/**
 * One listener: a TCP port and the stages a connection passes on it before the core hears of it.
 *
 *   mqtt   [PROXY header] ------------------------------------------> host
 *   mqtts  [PROXY header] -> TLS handshake -------------------------> host
 *   ws                    ----------------------> WebSocket upgrade -> host
 *   wss                   -> TLS handshake -----> WebSocket upgrade -> host
 *
 * Each stage is its own module (tls-handshakes.ts, websocket-upgrade.ts, loaded only when a
 * listener uses them: stages.ts; the PROXY header here),
 * each bounded by connectTimeoutMs, each counting and logging its failures through the listener's
 * HandshakeFailures and closing only the connection that failed. What reaches the host
 * (`NodeHost.accept`) is a Transport with its client's address (the PROXY header's, when there
 * was one) and, after mutual TLS with identityAsUsername, the verified user name. On a plain mqtt
 * listener the host is also asked to look at the first bytes: a TLS handshake there is refused
 * and counted here (`tlsOnPlainListener`) instead of reaching the core as a malformed CONNECT.
 *
 * The listener is `ListenerInfo` to the core: its name (`mqtts:0.0.0.0:8883`, with the port
 * actually bound) and its own connectionsMax, the same object for every connection it accepts.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { ListenerInfo, LogFields, LogLevel } from '../../src/contract.js';
import type { NodeHost } from '../node-host.js';
import type { Reloadable } from '../reload.js';
import { forgetPeerName, peerAddress, type Transport } from '../transport.js';
import { DeadlineQueue } from './deadline-queue.js';
import { HandshakeFailures } from './handshake-failures.js';
import { isTlsProtocol, isWebSocketProtocol, type ListenerConfig, listenerName } from './listener-config.js';
import { parseProxyHeader, proxyV2BytesMax } from './proxy-protocol.js';
import { type ListenerStages, requireTlsStage, requireWebSocketStage } from './stages.js';
import type { WatchedCredentials } from './tls-credentials.js';
import type { TlsHandshakes } from './tls-handshakes.js';
import type { WebSocketUpgrades } from './websocket-upgrade.js';

/** The largest MQTT fixed header: a WebSocket frame may carry a whole packet of packetBytesMax plus it. */
const fixedHeaderBytesMax = 5;

export interface ListenerContext {
  readonly host: NodeHost;
  readonly log: (level: LogLevel, event: string, fields: LogFields) => void;
  readonly connectTimeoutMs: number;
  readonly packetBytesMax: number;
  readonly webSocketPingIntervalMs: number;
}

/** Where a listener is bound, as the listening line and RunningServer report it. */
export interface BoundAddress {
  readonly name: string;
  readonly protocol: ListenerConfig['protocol'];
  readonly host: string;
  readonly port: number;
  readonly path: string | null;
}

export class Listener {
  readonly failures: HandshakeFailures;
  private readonly server: net.Server;
  private readonly tls: TlsHandshakes | null;
  private readonly upgrades: WebSocketUpgrades | null;
  private readonly proxyWaiting: DeadlineQueue<net.Socket> | null;
  /** The core's view of this listener; renamed once bound, before any connection arrives. */
  private info: ListenerInfo;
  private bound: BoundAddress | null = null;
  private closing: Promise<void> | null = null;

  constructor(
    readonly config: ListenerConfig,
    private readonly credentials: WatchedCredentials | null,
    private readonly context: ListenerContext,
    private readonly stages: ListenerStages,
  ) {
    if (isTlsProtocol(config.protocol) !== (credentials !== null)) throw new Error(`listener ${config.protocol}: credentials must be given exactly for TLS listeners`);
    this.info = { name: listenerName(config.protocol, config.host, config.port), connectionsMax: config.connectionsMax };
    this.failures = new HandshakeFailures(this.info.name, context.log);
    this.tls = credentials === null ? null : this.createTls(credentials);
    this.upgrades = isWebSocketProtocol(config.protocol) ? this.createUpgrades() : null;
    this.proxyWaiting = config.proxyProtocol ? new DeadlineQueue(context.connectTimeoutMs, (socket) => this.onProxyDeadline(socket)) : null;
    this.server = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
  }

  /** Binds the port; rejects with the address in the message when it cannot. */
  async listen(): Promise<BoundAddress> {
    const address = await bind(this.server, this.config.host, this.config.port).catch((error: NodeJS.ErrnoException) => {
      throw new Error(`cannot listen on ${this.info.name}: ${error.code === 'EADDRINUSE' ? 'address already in use' : error.message}`, { cause: error });
    });
    assert.ok(address.port > 0 && (this.config.port === 0 || address.port === this.config.port), `${this.info.name} bound to port ${address.port}`);
    const name = listenerName(this.config.protocol, this.config.host, address.port);
    this.info = { name, connectionsMax: this.config.connectionsMax };
    this.failures.rename(name);
    if (this.credentials !== null) this.credentials.listener = name;
    this.server.on('error', (error) => this.context.log('error', 'listener-error', { listener: name, message: error.message }));
    this.bound = { name, protocol: this.config.protocol, host: this.config.host, port: address.port, path: this.config.path };
    return this.bound;
  }

  get address(): BoundAddress | null {
    return this.bound;
  }

  get name(): string {
    return this.info.name;
  }

  /** The certificate SIGHUP reloads, for a TLS listener. */
  get reloadable(): Reloadable | null {
    return this.credentials;
  }

  /** Stops accepting and drops connections still in a stage; those the host has are its own. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const socket of this.proxyWaiting?.drain() ?? []) socket.destroy();
      this.tls?.close();
      this.upgrades?.close();
      this.failures.close();
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
    return this.closing;
  }

  private createTls(credentials: WatchedCredentials): TlsHandshakes {
    return new (requireTlsStage(this.stages).handshakes.TlsHandshakes)({
      alpnProtocols: this.config.protocol === 'mqtts' ? ['mqtt'] : ['http/1.1'],
      requireClientCertificate: this.config.requireClientCertificate,
      identityAsUsername: this.config.identityAsUsername,
      connectTimeoutMs: this.context.connectTimeoutMs,
      credentials,
      failures: this.failures,
      onSecure: (socket, remoteAddress, verifiedUsername) => {
        if (this.upgrades !== null) this.upgrades.begin(socket, remoteAddress, verifiedUsername);
        else this.handOver(socket, remoteAddress, verifiedUsername);
      },
    });
  }

  private createUpgrades(): WebSocketUpgrades {
    return new (requireWebSocketStage(this.stages).WebSocketUpgrades)({
      path: this.config.path!,
      allowedOrigins: this.config.allowedOrigins,
      connectTimeoutMs: this.context.connectTimeoutMs,
      frameBytesMax: this.context.packetBytesMax + fixedHeaderBytesMax,
      pingIntervalMs: this.context.webSocketPingIntervalMs,
      failures: this.failures,
      onOpen: (transport, remoteAddress, verifiedUsername) => this.handOver(transport, remoteAddress, verifiedUsername),
    });
  }

  private onConnection(socket: net.Socket): void {
    if (this.proxyWaiting !== null) return this.readProxyHeader(socket);
    this.afterProxyHeader(socket, peerAddress(socket));
  }

  /** The connection's first stage is done; `socket` is paused only after a PROXY header. */
  private afterProxyHeader(socket: net.Socket, remoteAddress: string): void {
    if (this.tls !== null) return this.tls.begin(socket, remoteAddress);
    if (this.upgrades !== null) return this.upgrades.begin(socket, remoteAddress, undefined);
    this.handOver(socket, remoteAddress, undefined, this.screenPlain);
    // Read for remoteAddress above and not needed again: the host keeps the string.
    forgetPeerName(socket);
    // A PROXY header was read with the socket paused (see readProxyHeader); the host reads it now.
    if (this.proxyWaiting !== null) socket.resume();
  }

  private handOver(transport: Transport, remoteAddress: string, verifiedUsername: string | undefined, screenFirstChunk?: (chunk: Buffer, transport: Transport) => boolean): void {
    assert.ok(this.bound !== null, 'a connection was handed over before its listener was bound');
    assert.ok(verifiedUsername === undefined || this.config.identityAsUsername, 'a verified user name from a listener without identityAsUsername');
    this.context.host.accept(transport, {
      listener: this.info,
      remoteAddress,
      ...(verifiedUsername === undefined ? {} : { verifiedUsername }),
      ...(screenFirstChunk === undefined ? {} : { screenFirstChunk }),
    });
  }

  /** A plain listener refuses a TLS ClientHello (a handshake record, 0x16 then version 3.x). */
  private readonly screenPlain = (chunk: Buffer, transport: Transport): boolean => {
    if (chunk[0] !== 0x16) return true;
    this.failures.record('tlsOnPlainListener', peerAddress(transport), `a TLS handshake on a listener without TLS (use the mqtts port)`);
    return false;
  };

  /**
   * Reads the PROXY header before anything else. The bytes after it stay in the socket (unshift)
   * for the next stage, which finds the socket paused: nothing is read until it is ready.
   */
  private readProxyHeader(socket: net.Socket): void {
    const waiting = this.proxyWaiting!;
    waiting.add(socket);
    let received: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const result = parseProxyHeader(received);
      if (result.state === 'incomplete') return;
      waiting.delete(socket);
      socket.off('data', onData);
      socket.pause();
      if (result.state === 'invalid') {
        this.failures.record('proxyHeaderInvalid', peerAddress(socket), result.reason);
        socket.destroy();
        return;
      }
      assert.ok(result.headerBytes <= received.length, 'a PROXY header longer than the bytes it was read from');
      if (received.length > result.headerBytes) socket.unshift(received.subarray(result.headerBytes));
      const source = result.source;
      this.afterProxyHeader(socket, source === null ? peerAddress(socket) : peerAddress({ remoteAddress: source.address, remotePort: source.port }));
    };
    socket.on('data', onData);
    // A reset while the header is awaited must not be an unhandled 'error' (which would end the
    // process); the 'close' that follows forgets the socket. Once handed over, the host listens too.
    socket.on('error', () => undefined);
    socket.once('close', () => waiting.delete(socket));
  }

  private onProxyDeadline(socket: net.Socket): void {
    if (socket.destroyed) return;
    this.failures.record('proxyHeaderTimeout', peerAddress(socket), `no complete PROXY header within ${this.context.connectTimeoutMs} ms (at most ${proxyV2BytesMax} bytes are read)`);
    socket.destroy();
  }
}

function bind(server: net.Server, host: string, port: number): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve(server.address() as net.AddressInfo);
    });
  });
}
