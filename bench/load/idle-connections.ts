/**
 * Bare MQTT connections for the idle-connections scenario: each one a socket that sends a CONNECT,
 * waits for its CONNACK and then sits still.
 *
 * Lighter than BenchClient on purpose. The connect-rate figure is a race between the broker and
 * this generator on the same two cores, and a profile of the generator opening 10,000 BenchClients
 * had it ~92% busy while Keel idled, i.e. the generator set the pace: per connection it paid a
 * setTimeout (and its removal), a promise, a packet scanner and a PUBACK buffer it never used.
 * Here there is one handler set per socket and one watchdog for the whole batch, which cut the
 * generator's user CPU per connection by about a fifth. What is left is Node's socket and the
 * kernel's loopback handshake, which every broker's figure pays alike.
 *
 * Past the ephemeral ports one source address has towards the broker's port (about 28,000 with
 * Linux's default range), plain TCP connections come from 127.0.0.2, 127.0.0.3 and so on, a block
 * of connections per address, so that 100,000 connections need no change to the system's port
 * range (the open-files limit of both processes still has to allow them).
 *
 * Bounded in time: the batch fails when no CONNACK arrived for `stallTimeoutMs`. A refused
 * CONNACK, a malformed one, or a connection lost before or after its CONNACK fails the batch (or,
 * after it resolved, `assertOpen`) with the reason.
 */
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { encodeConnect, encodeSubscribe, PacketType, type ProtocolLevel, readVarint } from './packets.js';
import { type BenchTransport, connectTransport, plainTcp, resetTransport } from './transport.js';

export interface IdleConnectionsOptions {
  port: number;
  level: ProtocolLevel;
  /** Client ids are `${clientIdPrefix}${index}`: unique per batch, so no session is taken over. */
  clientIdPrefix: string;
  count: number;
  /** Handshakes in flight at once. */
  concurrency: number;
  /** The batch fails if this long passes without any CONNACK arriving. */
  stallTimeoutMs: number;
  /** TCP (default), TLS (every connection a full handshake) or WebSocket. */
  transport?: BenchTransport;
  /**
   * Persistent sessions (the resume-storm scenario): each CONNECT asks to keep its session (clean
   * start 0; 5.0: a session expiry of a day), and `subscribe` then subscribes it to its own topic
   * `bench/resume/<index>` at QoS 1 (a connection counts once its SUBACK came), while
   * `expectSessionPresent` fails the batch on a CONNACK that did not find the session.
   */
  persistent?: { subscribe: boolean; expectSessionPresent: boolean };
  /** Plain TCP connections per loopback source address (sourceAddressFor); default: the ephemeral range less a margin. */
  connectionsPerSourceAddress?: number;
}

/** The session expiry of persistent bench sessions (5.0): a day, far beyond any run. */
const persistentExpirySeconds = 86_400;

const watchdogPeriodMs = 100;

export class IdleConnections {
  readonly sockets: Duplex[] = [];
  /** CONNACKs with code 0 received so far. */
  accepted = 0;
  /** Per accepted connection, in order of acceptance: ms from opening its socket to its CONNACK (its SUBACK when it subscribes). */
  readonly connackLatenciesMs: number[] = [];
  /** The first failure of any connection (refused, malformed, lost, socket error). */
  failure: Error | null = null;
  private started = 0;
  private lastProgressMs = Date.now();
  private settle: (() => void) | null = null;
  /** resetAll ran: the closes that follow are ours, not failures. */
  private tornDown = false;

  private readonly perSourceAddress: number;

  private constructor(private readonly options: IdleConnectionsOptions) {
    if (!(options.count > 0 && options.concurrency > 0)) throw new Error('assertion failed: count and concurrency must be positive');
    this.perSourceAddress = options.connectionsPerSourceAddress ?? connectionsPerSourceAddress();
  }

  /** Opens every connection and resolves once all of them were accepted (rejects on the first failure). */
  static async open(options: IdleConnectionsOptions): Promise<IdleConnections> {
    const batch = new IdleConnections(options);
    try {
      await batch.run();
    } catch (error) {
      batch.resetAll();
      throw error;
    }
    return batch;
  }

  /** Throws if any connection failed or was closed since it was accepted. */
  assertOpen(): void {
    if (this.failure !== null) throw this.failure;
  }

  /** Tears every socket down, with a reset where the transport allows: no TIME_WAIT left behind for the next batch. */
  resetAll(): void {
    this.tornDown = true;
    for (const socket of this.sockets) resetTransport(socket);
  }

  private run(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const watchdog = setInterval(() => {
        if (this.failure === null && Date.now() - this.lastProgressMs > this.options.stallTimeoutMs) {
          this.fail(new Error(`no CONNACK for ${this.options.stallTimeoutMs} ms (${this.accepted} of ${this.options.count} accepted)`));
        }
      }, watchdogPeriodMs);
      this.settle = () => {
        clearInterval(watchdog);
        this.settle = null;
        if (this.failure !== null) reject(this.failure);
        else resolve();
      };
      const first = Math.min(this.options.concurrency, this.options.count);
      for (let index = 0; index < first; index++) this.openNext();
    });
  }

  private openNext(): void {
    const index = this.started++;
    const openedMs = performance.now();
    const transport = this.options.transport ?? plainTcp;
    const socket = connectTransport(this.options.port, transport, transport.kind === 'tcp' ? sourceAddressFor(index, this.options.count, this.perSourceAddress) : undefined);
    this.sockets.push(socket);
    const persistent = this.options.persistent;
    let head: Buffer | null = null;
    let acknowledged = false;
    // Persistent and subscribing: the CONNACK, then the SUBACK.
    let awaiting: 'connack' | 'suback' = 'connack';
    const onData = (chunk: Buffer): void => {
      head = head === null ? chunk : Buffer.concat([head, chunk]);
      while (head !== null) {
        let whole: boolean;
        try {
          whole = wholeFirstPacket(head);
        } catch (error) {
          return this.fail(error as Error);
        }
        if (!whole) return;
        const [remainingBytes, lengthBytes] = readVarint(head, 1);
        const packetBytes = 1 + lengthBytes + remainingBytes;
        const packet = head.subarray(0, packetBytes);
        head = head.length > packetBytes ? head.subarray(packetBytes) : null;
        if (awaiting === 'connack') {
          if (!this.checkConnack(packet)) return;
          if (persistent?.subscribe === true) {
            awaiting = 'suback';
            socket.write(encodeSubscribe(this.options.level, 1, [{ filter: `bench/resume/${index}`, qos: 1 }]));
            continue;
          }
        } else if (packet[0]! >> 4 !== PacketType.suback) {
          return this.fail(new Error(`expected SUBACK, got packet type ${packet[0]! >> 4}`));
        }
        socket.removeListener('data', onData);
        acknowledged = true;
        this.onAccepted(performance.now() - openedMs);
        return;
      }
    };
    socket.on('data', onData);
    socket.on('error', (error) => this.fail(new Error(`connection ${index}: ${error.message}`)));
    socket.on('close', () => this.fail(new Error(`connection ${index} was closed by the broker ${acknowledged ? 'after' : 'before'} its CONNACK`)));
    const clientId = `${this.options.clientIdPrefix}${index}`;
    socket.write(
      encodeConnect({
        clientId,
        level: this.options.level,
        keepAliveSeconds: 0,
        clean: persistent === undefined,
        ...(persistent === undefined ? {} : { sessionExpirySeconds: persistentExpirySeconds }),
      }),
    );
  }

  /** True for a CONNACK with code 0 (and session present, when the batch expects it); fails the batch otherwise. */
  private checkConnack(bytes: Buffer): boolean {
    if (bytes[0]! >> 4 !== PacketType.connack) {
      this.fail(new Error(`expected CONNACK, got packet type ${bytes[0]! >> 4}`));
      return false;
    }
    const [remainingBytes, lengthBytes] = readVarint(bytes, 1);
    if (remainingBytes < 2) {
      this.fail(new Error(`CONNACK of ${remainingBytes} bytes has no room for its flags and code`));
      return false;
    }
    const code = bytes[1 + lengthBytes + 1]!;
    if (code !== 0) {
      this.fail(new Error(`CONNACK refused with code 0x${code.toString(16)}`));
      return false;
    }
    const sessionPresent = (bytes[1 + lengthBytes]! & 0x01) === 1;
    if (this.options.persistent?.expectSessionPresent === true && !sessionPresent) {
      this.fail(new Error('CONNACK did not find the session (session present 0)'));
      return false;
    }
    return true;
  }

  private onAccepted(latencyMs: number): void {
    this.accepted += 1;
    this.connackLatenciesMs.push(latencyMs);
    this.lastProgressMs = Date.now();
    if (this.started < this.options.count) this.openNext();
    else if (this.accepted === this.options.count) this.settle?.();
  }

  private fail(error: Error): void {
    if (this.tornDown) return;
    this.failure ??= error;
    this.settle?.();
  }
}

/** Ports left unused in each source address's ephemeral range (other sockets of the machine need some). */
const ephemeralPortsSpare = 2_000;

/** Connections one loopback source address carries towards one broker port: its ephemeral range, less a margin. */
export function connectionsPerSourceAddress(): number {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && high !== undefined && high > low) return Math.max(1_000, high - low + 1 - ephemeralPortsSpare);
  } catch {
    // Not Linux: fall through to a conservative default.
  }
  return 10_000;
}

/**
 * The source address of connection `index` of a batch of `count`: the default (none given) while
 * one address's ports suffice; else 127.0.0.1, 127.0.0.2, ... each carrying a block of connections.
 */
export function sourceAddressFor(index: number, count: number, perAddress = connectionsPerSourceAddress()): string | undefined {
  if (count <= perAddress) return undefined;
  const block = Math.floor(index / perAddress);
  if (block > 253) throw new Error(`assertion failed: ${count} connections need more than 254 loopback source addresses`);
  return `127.0.0.${block + 1}`;
}

/** Whether `bytes` holds at least one whole packet (fixed header, length and body). */
export function wholeFirstPacket(bytes: Buffer): boolean {
  // The remaining length is a Variable Byte Integer of at most 4 bytes after the first byte.
  for (let index = 1; index <= 4 && index < bytes.length; index++) {
    if ((bytes[index]! & 0x80) !== 0) continue;
    const [remainingBytes] = readVarint(bytes, 1);
    return bytes.length >= 1 + index + remainingBytes;
  }
  if (bytes.length >= 5) throw new Error('malformed remaining length (more than 4 bytes)');
  return false;
}
