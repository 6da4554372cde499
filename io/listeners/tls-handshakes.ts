/**
 * The TLS side of an mqtts or wss listener: from an accepted TCP socket (after its PROXY header,
 * if any) to a TLS socket whose handshake finished, with the client's verified identity, or to a
 * counted failure.
 *
 * The handshake is Node's own (`node:tls`): a `tls.Server` that never listens is handed each socket
 * (`emit('connection')`, which is how Node's servers take sockets from elsewhere), so that
 * certificate verification, ALPN and session handling are exactly Node's. Settings: TLS 1.2 at
 * least; ALPN `mqtt` on mqtts (a client asking only for other protocols is refused by TLS itself,
 * as RFC 7301 asks) and `http/1.1` on wss (what browsers ask for); with requireClientCertificate
 * the client must present a certificate that verifies against caFile, or the connection ends
 * before any MQTT byte. Node verifies the certificate during the handshake either way; the
 * refusal is made here, once the handshake is done (as Node's own `rejectUnauthorized` does it),
 * so that it can be counted with the client's address and the reason. With identityAsUsername its subject CN becomes the user name the core
 * takes without a password (Mosquitto's use_identity_as_username), and a certificate without
 * exactly one CN is refused.
 *
 * The handshake must finish within connectTimeoutMs of its start (Node's `handshakeTimeout`,
 * which is a deadline for the whole handshake, not an idle timer: a client trickling bytes is cut
 * off all the same), because the core only hears of the connection afterwards and its own
 * connect timeout cannot cover it. Every failure (timeout, plain bytes on the TLS port, a rejected
 * client certificate, anything else) is counted and logged through HandshakeFailures and the
 * socket destroyed; nothing of it reaches the core or any other connection.
 *
 * The certificate is looked at again before each handshake (WatchedCredentials.refresh: at most a
 * stat per file per second), and a changed one becomes the server's context, so new connections
 * get it and established ones keep theirs.
 *
 * The client's address is known before the handshake (behind a PROXY-protocol balancer it comes
 * from the header), and Node creates the TLS socket itself, out of our sight; so the address is
 * kept under the accepted TCP socket, and found again from the finished (or failed) TLS socket
 * through the TCP socket it was made over (`tcpSocketOf`). Node ends every handshake it was handed
 * with exactly one `secureConnection` or `tlsClientError` (a peer that goes away mid-handshake is
 * a `tlsClientError` too), so that is where the entry is dropped; a deadline a second after Node's
 * own drops any entry left behind all the same. The lookup used to be by the connection's TCP
 * endpoints, read from both sockets: four system calls, four cached address objects and two
 * strings per connection, about 5 % of the broker's CPU in a storm of TLS connections (README,
 * "TLS handshakes, fourth look"), and a failed handshake whose peer had gone logged `unknown`.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { peerAddress } from '../transport.js';
import { DeadlineQueue } from './deadline-queue.js';
import type { HandshakeFailures } from './handshake-failures.js';
import { secureContextOptions, type TlsCredentials, type WatchedCredentials } from './tls-credentials.js';

export interface TlsHandshakeOptions {
  readonly alpnProtocols: readonly string[];
  readonly requireClientCertificate: boolean;
  readonly identityAsUsername: boolean;
  readonly connectTimeoutMs: number;
  readonly credentials: WatchedCredentials;
  readonly failures: HandshakeFailures;
  /** The handshake finished: the socket, its client's address, and the verified user name if any. */
  readonly onSecure: (socket: tls.TLSSocket, remoteAddress: string, verifiedUsername: string | undefined) => void;
}

/** OpenSSL's answers when the first bytes on a TLS port are not TLS at all. */
const notTlsCodes = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_HTTPS_PROXY_REQUEST', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_UNKNOWN_PROTOCOL']);

export class TlsHandshakes {
  private readonly server: tls.Server;
  /** Handshakes under way: each accepted TCP socket with its client's address, until the handshake ends. */
  private readonly underway = new Map<net.Socket, string>();
  private readonly forget: DeadlineQueue<net.Socket>;

  constructor(private readonly options: TlsHandshakeOptions) {
    this.server = tls.createServer({
      ...this.contextOptions(options.credentials.current),
      requestCert: options.requireClientCertificate,
      // Refused in onSecure, after Node's verification (see above).
      rejectUnauthorized: false,
      handshakeTimeout: options.connectTimeoutMs,
    });
    this.server.on('secureConnection', (socket: tls.TLSSocket) => this.onSecure(socket));
    this.server.on('tlsClientError', (error: Error & { code?: string }, socket: tls.TLSSocket) => this.onFailure(error, socket));
    options.credentials.onChange = (credentials) => this.server.setSecureContext(this.contextOptions(credentials));
    // Node ends every handshake by its own deadline; an entry whose end was not seen is dropped a
    // second after that.
    this.forget = new DeadlineQueue(options.connectTimeoutMs + 1_000, (socket) => this.underway.delete(socket));
  }

  /** Starts the handshake on an accepted socket; `remoteAddress` is its client's. */
  begin(socket: net.Socket, remoteAddress: string): void {
    assert.ok(remoteAddress.length > 0, 'a handshake without a client address');
    assert.ok(!this.underway.has(socket), 'a socket handed to the TLS stage twice');
    this.options.credentials.refresh();
    this.underway.set(socket, remoteAddress);
    this.forget.add(socket);
    this.server.emit('connection', socket);
  }

  /** Drops every handshake under way (the listener is closing). */
  close(): void {
    for (const socket of this.forget.drain()) socket.destroy();
    this.underway.clear();
  }

  /** Handshakes under way, for tests: each is forgotten when it ends. */
  get underwayCount(): number {
    return this.underway.size;
  }

  private contextOptions(credentials: TlsCredentials): tls.SecureContextOptions & { ALPNProtocols: string[] } {
    return { ...secureContextOptions(credentials), ALPNProtocols: [...this.options.alpnProtocols] };
  }

  /** The client's address of the handshake this TLS socket ended, forgotten now; undefined if unknown. */
  private take(socket: tls.TLSSocket): string | undefined {
    const tcpSocket = tcpSocketOf(socket);
    if (tcpSocket === undefined) return undefined;
    const remoteAddress = this.underway.get(tcpSocket);
    if (remoteAddress === undefined) return undefined;
    this.underway.delete(tcpSocket);
    this.forget.delete(tcpSocket);
    return remoteAddress;
  }

  private onSecure(socket: tls.TLSSocket): void {
    const remoteAddress = this.take(socket) ?? peerAddress(socket);
    if (this.options.requireClientCertificate && !socket.authorized) {
      const reason = socket.authorizationError === null || socket.authorizationError === undefined ? 'not verified' : String(socket.authorizationError);
      this.options.failures.record('clientCertificateRejected', remoteAddress, `client certificate refused: ${reason}`);
      socket.destroy();
      return;
    }
    let verifiedUsername: string | undefined;
    if (this.options.identityAsUsername) {
      assert.ok(socket.authorized, 'identityAsUsername without a verified certificate');
      const commonName = socket.getPeerCertificate().subject?.CN as string | string[] | undefined;
      if (typeof commonName !== 'string' || commonName.length === 0) {
        this.options.failures.record('clientCertificateWithoutIdentity', remoteAddress, `client certificate subject has ${commonName === undefined ? 'no' : 'more than one'} CN`);
        socket.destroy();
        return;
      }
      verifiedUsername = commonName;
    }
    this.options.onSecure(socket, remoteAddress, verifiedUsername);
  }

  private onFailure(error: Error & { code?: string }, socket: tls.TLSSocket): void {
    const remoteAddress = this.take(socket) ?? 'unknown';
    const failures = this.options.failures;
    const code = error.code ?? 'unknown';
    if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') failures.record('tlsHandshakeTimeout', remoteAddress, `TLS handshake not finished within ${this.options.connectTimeoutMs} ms`);
    else if (notTlsCodes.has(code)) failures.record('plainOnTlsListener', remoteAddress, `not TLS (${code}): a plain MQTT or HTTP client on a TLS port?`);
    else if (socket.authorizationError !== null && socket.authorizationError !== undefined) failures.record('clientCertificateRejected', remoteAddress, String(socket.authorizationError));
    else if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') failures.record('clientCertificateRejected', remoteAddress, 'no client certificate presented');
    else failures.record('tlsHandshakeFailed', remoteAddress, `${code}: ${error.message.split('\n', 1)[0]}`);
    socket.destroy();
  }
}

/**
 * The TCP socket a TLS socket was made over. Node keeps it as `_parent`, a field every `net.Socket`
 * has (null unless it wraps another socket; Node's own timers and destroy walk it), set when a
 * `TLSSocket` is built over a `net.Socket`; it is not public API, so anything else yields undefined
 * and the caller falls back to the TLS socket's own peer (tests check the link on each Node).
 */
function tcpSocketOf(socket: tls.TLSSocket): net.Socket | undefined {
  const parent = (socket as tls.TLSSocket & { _parent?: unknown })._parent;
  return parent instanceof net.Socket && parent !== socket ? parent : undefined;
}
