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
 * Behind a PROXY-protocol balancer the client's address comes from the header, before the
 * handshake; Node creates the TLS socket itself, so the address is kept under the connection's
 * TCP endpoints (the balancer's address and port, and ours), which the TLS socket reports as well
 * while it is open. A TLS socket that failed because its peer went away no longer knows its
 * endpoints, and its failure is logged with the address `unknown` rather than a guess.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
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

interface Handshake {
  readonly socket: net.Socket;
  readonly remoteAddress: string;
  readonly endpoints: string;
  /** On the TCP socket's `close` while the handshake is under way; removed at the handshake's end. */
  readonly onClose: () => void;
}

export class TlsHandshakes {
  private readonly server: tls.Server;
  /** Handshakes under way, by TCP endpoints; forgotten at their end or soon after their deadline. */
  private readonly underway = new Map<string, Handshake>();
  private readonly forget: DeadlineQueue<Handshake>;

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
    // Node ends every handshake by its own deadline; the record is dropped a second after that,
    // in case the end could not be matched to it (a socket already gone reports no endpoints).
    this.forget = new DeadlineQueue(options.connectTimeoutMs + 1_000, (handshake) => this.forgetHandshake(handshake));
  }

  /** Starts the handshake on an accepted socket; `remoteAddress` is its client's. */
  begin(socket: net.Socket, remoteAddress: string): void {
    assert.ok(remoteAddress.length > 0, 'a handshake without a client address');
    this.options.credentials.refresh();
    const handshake: Handshake = { socket, remoteAddress, endpoints: endpointsOf(socket), onClose: () => this.forgetHandshake(handshake) };
    this.underway.set(handshake.endpoints, handshake);
    this.forget.add(handshake);
    socket.once('close', handshake.onClose);
    this.server.emit('connection', socket);
  }

  /** Drops every handshake under way (the listener is closing). */
  close(): void {
    for (const handshake of this.forget.drain()) handshake.socket.destroy();
    this.underway.clear();
  }

  private contextOptions(credentials: TlsCredentials): tls.SecureContextOptions & { ALPNProtocols: string[] } {
    return { ...secureContextOptions(credentials), ALPNProtocols: [...this.options.alpnProtocols] };
  }

  /** The handshake under way for this TLS socket, forgotten now that it ended. */
  private take(socket: tls.TLSSocket): Handshake | undefined {
    if (socket.remoteAddress === undefined) return undefined;
    const handshake = this.underway.get(endpointsOf(socket));
    if (handshake === undefined) return undefined;
    this.forgetHandshake(handshake);
    return handshake;
  }

  /**
   * Forgets a handshake that ended. Its `close` listener goes too: left on a connection that lives
   * on, it would keep the record (with its endpoints string) for the connection's whole life,
   * about 0.3 KiB of heap per idle TLS connection (heap snapshots, README "TLS connection heap").
   */
  private forgetHandshake(handshake: Handshake): void {
    if (this.underway.get(handshake.endpoints) === handshake) this.underway.delete(handshake.endpoints);
    this.forget.delete(handshake);
    handshake.socket.off('close', handshake.onClose);
  }

  private onSecure(socket: tls.TLSSocket): void {
    const remoteAddress = this.take(socket)?.remoteAddress ?? peerAddress(socket);
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
    const remoteAddress = this.take(socket)?.remoteAddress ?? 'unknown';
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

/** A live TCP connection's identity: the peer's address and port and our own address. */
function endpointsOf(socket: net.Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}`;
}
