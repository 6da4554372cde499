/**
 * Connections a listener gave up on before (or, for WebSockets, beside) the core: a bad or late
 * PROXY header, a TLS handshake that failed or stalled, a plain client on a TLS port and the
 * reverse, a refused WebSocket upgrade, a WebSocket peer that broke the framing rules or stopped
 * answering pings.
 *
 * Each is counted per listener and kind (the counters an operator reads, `RunningServer`'s
 * `listenerCounters()`), and logged, but not one line per failure: a port scanner or a fleet of
 * misconfigured devices would otherwise flood the log and hide everything else. The first failure
 * of a kind is logged at once with its details (`handshake-failed`); later ones within
 * `logIntervalMs` are only counted, and when that interval ends one `handshake-failed-repeated`
 * line says how many there were and names the last one. So a steady flood costs two lines per
 * kind per interval, and a single failure is seen immediately.
 */
import type { LogFields, LogLevel } from '../../src/contract.js';

export const handshakeFailureKinds = [
  /** The connection did not start with a valid PROXY header. */
  'proxyHeaderInvalid',
  /** No complete PROXY header within connectTimeoutMs. */
  'proxyHeaderTimeout',
  /** A TLS handshake on a listener without TLS (mqtt, ws). */
  'tlsOnPlainListener',
  /** Bytes that are not TLS on a TLS listener (a plain MQTT or HTTP client). */
  'plainOnTlsListener',
  /** The TLS handshake did not finish within connectTimeoutMs. */
  'tlsHandshakeTimeout',
  /** A client certificate was missing or did not verify against caFile. */
  'clientCertificateRejected',
  /** identityAsUsername: the verified certificate has no single subject CN to use. */
  'clientCertificateWithoutIdentity',
  /** Any other TLS failure: the client refused our certificate, no common version, a reset. */
  'tlsHandshakeFailed',
  /** A WebSocket upgrade refused: wrong path, origin or subprotocol, or not an upgrade at all. */
  'webSocketUpgradeRefused',
  /** No complete WebSocket upgrade within connectTimeoutMs. */
  'webSocketUpgradeTimeout',
  /** A WebSocket peer sent a text frame (1003), a frame over the size limit (1009) or bad framing. */
  'webSocketProtocolError',
  /** A WebSocket peer did not answer a ping before the next one was due. */
  'webSocketPingTimeout',
] as const;

export type HandshakeFailureKind = (typeof handshakeFailureKinds)[number];

export type HandshakeFailureCounters = Record<HandshakeFailureKind, number>;

export type LogSink = (level: LogLevel, event: string, fields: LogFields) => void;

/** One line per kind at most this often, plus the summary of what it held back. */
export const handshakeFailureLogIntervalMs = 10_000;

interface Window {
  /** Failures counted since the line that opened the window. */
  held: number;
  lastRemoteAddress: string;
  lastReason: string;
  timer: NodeJS.Timeout;
}

export class HandshakeFailures {
  readonly counters: HandshakeFailureCounters = Object.fromEntries(handshakeFailureKinds.map((kind) => [kind, 0])) as HandshakeFailureCounters;
  private readonly windows = new Map<HandshakeFailureKind, Window>();
  private closed = false;

  constructor(
    private listener: string,
    private readonly log: LogSink,
    private readonly logIntervalMs = handshakeFailureLogIntervalMs,
  ) {
    if (!(Number.isInteger(logIntervalMs) && logIntervalMs >= 1)) throw new Error(`logIntervalMs must be a positive integer, got ${logIntervalMs}`);
  }

  /** The listener's name once bound (a configured port 0 becomes the port the system chose). */
  rename(listener: string): void {
    this.listener = listener;
  }

  /** Counts one failure and logs it, or holds it for the interval's summary. */
  record(kind: HandshakeFailureKind, remoteAddress: string, reason: string): void {
    this.counters[kind]++;
    if (this.closed) return;
    const open = this.windows.get(kind);
    if (open !== undefined) {
      open.held++;
      open.lastRemoteAddress = remoteAddress;
      open.lastReason = reason;
      return;
    }
    this.log('warn', 'handshake-failed', { listener: this.listener, kind, remoteAddress, reason });
    const timer = setTimeout(() => this.closeWindow(kind), this.logIntervalMs);
    // A pending summary must not keep a stopping process alive.
    timer.unref();
    this.windows.set(kind, { held: 0, lastRemoteAddress: remoteAddress, lastReason: reason, timer });
  }

  /** Stops logging (the listener closed); what was held back is summarized now. */
  close(): void {
    if (this.closed) return;
    for (const [kind, window] of [...this.windows]) {
      clearTimeout(window.timer);
      this.closeWindow(kind);
    }
    this.closed = true;
  }

  private closeWindow(kind: HandshakeFailureKind): void {
    const window = this.windows.get(kind);
    if (window === undefined) return;
    this.windows.delete(kind);
    if (window.held === 0) return;
    this.log('warn', 'handshake-failed-repeated', {
      listener: this.listener,
      kind,
      count: window.held,
      intervalMs: this.logIntervalMs,
      lastRemoteAddress: window.lastRemoteAddress,
      lastReason: window.lastReason,
    });
  }
}
