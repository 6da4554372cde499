/**
 * MQTT over WebSocket as a `Transport` (io/transport.ts): the adapter that lets the Node host
 * treat a WebSocket like a TCP socket, so that its bytes take exactly the path a socket's take.
 *
 * MQTT over WebSocket (MQTT 5.0 section 6, 3.1.1 section 6) carries the MQTT byte stream in
 * binary frames, with no alignment between frames and packets: a packet may span frames and a
 * frame may hold several packets, so the payload of every binary message is simply the next
 * bytes of the stream, handed on as `data`. What the host writes (one batch of packets per input)
 * goes out as one binary frame. A text frame is a protocol error: the connection is closed with
 * 1003 (unsupported data). A frame over the listener's size limit is refused by the `ws` library
 * itself with 1009 before it is buffered (`maxPayload`); both are reported to the listener's
 * counters, and neither affects another connection.
 *
 * Flow control is the underlying socket's: unsent bytes are the WebSocket's `bufferedAmount`
 * (socket buffer plus frames not yet written), `drain` is the socket's, and pausing stops reading
 * the socket (`WebSocket.pause`), so a throttled publisher over WebSocket is slowed by TCP exactly
 * as one over TCP is. `end()` is the closing handshake (1000, after everything written);
 * `destroy()` drops the TCP connection at once.
 *
 * Liveness: the listener pings every WebSocket at an interval (`heartbeat`); a peer that has not
 * answered the previous ping by the next is closed. Proxies and load balancers drop connections
 * they see idle for a minute or so, and an MQTT keepalive can be longer than that.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import WebSocket from 'ws';
import type { Transport } from '../transport.js';

/** Close codes of RFC 6455, section 7.4.1. */
export const closeCodes = { normal: 1000, unsupportedData: 1003, messageTooBig: 1009 } as const;

export type WebSocketProtocolError = (reason: string) => void;

export class WebSocketTransport extends EventEmitter implements Transport {
  /** The peer answered the last ping (or it is the first interval). */
  private answered = true;
  private hasClosed = false;

  constructor(
    private readonly websocket: WebSocket,
    /** The TCP or TLS socket under the WebSocket: its buffer and drain are the transport's. */
    private readonly socket: net.Socket,
    private readonly onProtocolError: WebSocketProtocolError,
  ) {
    super();
    assert.equal(websocket.readyState, WebSocket.OPEN, 'a WebSocket transport is made for an open WebSocket');
    websocket.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    websocket.on('pong', () => {
      this.answered = true;
    });
    websocket.on('error', (error: Error & { code?: string }) => this.onError(error));
    websocket.once('close', () => {
      this.hasClosed = true;
      this.emit('close');
    });
    socket.on('drain', () => this.emit('drain'));
  }

  get destroyed(): boolean {
    return this.websocket.readyState !== WebSocket.OPEN;
  }

  get closed(): boolean {
    return this.hasClosed;
  }

  get writableLength(): number {
    return this.websocket.bufferedAmount;
  }

  get writableNeedDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  write(bytes: Uint8Array): boolean {
    if (this.websocket.readyState !== WebSocket.OPEN) return false;
    this.websocket.send(bytes, { binary: true, fin: true });
    return !this.socket.writableNeedDrain;
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  end(): void {
    this.websocket.close(closeCodes.normal);
  }

  destroy(): void {
    this.websocket.terminate();
  }

  pause(): void {
    this.websocket.pause();
  }

  resume(): void {
    this.websocket.resume();
  }

  /**
   * One heartbeat: false when the peer has not answered the previous ping (the caller closes it),
   * else a new ping is sent.
   */
  heartbeat(): boolean {
    if (this.websocket.readyState !== WebSocket.OPEN) return true;
    if (!this.answered) return false;
    this.answered = false;
    this.websocket.ping();
    return true;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      this.onProtocolError('text frame (MQTT uses binary frames only)');
      this.websocket.close(closeCodes.unsupportedData, 'binary frames only');
      return;
    }
    this.emit('data', data);
  }

  /**
   * The ws library reports a peer's framing errors (an oversized frame: 1009, a bad opcode or
   * mask, ...) here and closes the connection itself; they are the peer's fault, so they count
   * for the listener rather than warn like a failing socket. Anything else goes to the host.
   */
  private onError(error: Error & { code?: string }): void {
    if (error.code?.startsWith('WS_ERR_')) {
      this.onProtocolError(`${error.code}: ${error.message}`);
      return;
    }
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
