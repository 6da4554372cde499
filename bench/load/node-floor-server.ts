/**
 * Node's floor, a benchmark peer that is not a broker: the least a Node program can do and still
 * pass the idle-connections scenario. It accepts TCP connections on 127.0.0.1, reads each
 * client's first packet (a CONNECT, framed by its fixed header alone), answers one fixed CONNACK
 * (session present 0, code 0; the 5.0 form when the CONNECT says protocol level 5) and then holds
 * the socket, reading and dropping whatever else comes until the client goes. No session, no
 * client id, no keepalive, no timer: what it costs per connection and at rest is Node's own
 * (`net.Server`, `net.Socket` and its streams, libuv, V8), the floor under any broker written
 * for Node.
 *
 * Only `node:net`, so that no library's cost is in the figures. The listener is made as Keel's is
 * (`noDelay: true`); the socket handlers are shared functions, and a socket has state here only
 * while its CONNECT is incomplete (an entry in `partial`): once answered it keeps no `data`
 * listener, so what it reads is dropped. The per-socket cost is Node's.
 * A first packet that is not a CONNECT, a malformed length or one longer than
 * `connectBytesMax` closes the socket.
 *
 * Usage: `node dist/bench/load/node-floor-server.js <port>` (the benchmark adds Keel's node flags
 * and its heap probe). It prints `listening <port>` once bound and stops on SIGTERM/SIGINT.
 */
import net from 'node:net';
import { pathToFileURL } from 'node:url';

/** Longest first packet it reads; a CONNECT of the benchmark is about 40 bytes. */
export const connectBytesMax = 65_536;

const connectType = 1;
/** CONNACK, session present 0, code 0: 3.1.1 and 5.0 (with an empty property length). */
const connackLevel4 = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const connackLevel5 = Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00]);

/**
 * The length in bytes of the whole packet that `bytes` starts with, once its fixed header is in:
 * `null` while the remaining length's bytes have not all arrived, `-1` when it is malformed (more
 * than four length bytes). Whether the body is there too is `bytes.length >= length`.
 */
export function firstPacketBytes(bytes: Buffer): number | null {
  let remainingBytes = 0;
  let multiplier = 1;
  // The remaining length is a Variable Byte Integer of at most 4 bytes after the first byte.
  for (let index = 1; index <= 4; index++) {
    if (index >= bytes.length) return null;
    const byte = bytes[index]!;
    remainingBytes += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return 1 + index + remainingBytes;
    multiplier *= 128;
  }
  return -1;
}

/** What to do with the bytes a socket has received so far, before its CONNACK. */
export type FirstPacketVerdict = { kind: 'incomplete' } | { kind: 'connect'; level: number } | { kind: 'refuse'; reason: string };

/** Reads the first packet from `bytes` (everything received so far); bytes past it are ignored. */
export function readFirstPacket(bytes: Buffer): FirstPacketVerdict {
  if (bytes.length === 0) return { kind: 'incomplete' };
  if (bytes[0]! >> 4 !== connectType) return { kind: 'refuse', reason: `first packet of type ${bytes[0]! >> 4}, not CONNECT` };
  const length = firstPacketBytes(bytes);
  if (length === -1) return { kind: 'refuse', reason: 'malformed remaining length' };
  if (length !== null && length > connectBytesMax) return { kind: 'refuse', reason: `CONNECT of ${length} bytes, above ${connectBytesMax}` };
  if (length === null || bytes.length < length) {
    if (bytes.length >= connectBytesMax) throw new Error(`assertion failed: ${bytes.length} bytes held for an incomplete CONNECT`);
    return { kind: 'incomplete' };
  }
  // Fixed header, then the protocol name (a two-byte length and "MQTT" or "MQIsdp"), then the level.
  const headerBytes = 1 + lengthBytesOf(bytes);
  const nameBytes = headerBytes + 2 <= length ? bytes.readUInt16BE(headerBytes) : 0;
  const levelAt = headerBytes + 2 + nameBytes;
  return { kind: 'connect', level: levelAt < length ? bytes[levelAt]! : 4 };
}

/** The bytes of the fixed header's remaining length (1 to 4), for a packet whose length is known. */
function lengthBytesOf(bytes: Buffer): number {
  let index = 1;
  while ((bytes[index]! & 0x80) !== 0) index += 1;
  return index;
}

/** Received bytes of the sockets whose CONNECT has not all arrived yet (split over reads). */
const partial = new Map<net.Socket, Buffer>();
function onData(this: net.Socket, chunk: Buffer): void {
  const held = partial.get(this);
  const bytes = held === undefined ? chunk : Buffer.concat([held, chunk]);
  const verdict = readFirstPacket(bytes);
  if (verdict.kind === 'incomplete') {
    partial.set(this, bytes);
    return;
  }
  partial.delete(this);
  if (verdict.kind === 'refuse') {
    this.destroy();
    return;
  }
  // No 'data' listener from here on: the socket keeps reading (so a reset or a close is seen)
  // and drops what it reads, with no state kept for it.
  this.removeListener('data', onData);
  this.write(verdict.level === 5 ? connackLevel5 : connackLevel4);
}

function onClose(this: net.Socket): void {
  partial.delete(this);
}

/** A reset by the client (the benchmark resets its connections) is the end of that socket, nothing more. */
function onError(this: net.Socket): void {
  this.destroy();
}

function onConnection(socket: net.Socket): void {
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
}

/** The floor's listener, not yet listening. */
export function createNodeFloorServer(): net.Server {
  return net.createServer({ noDelay: true }, onConnection);
}

/** Sockets waiting for the rest of their CONNECT (for tests: none once every CONNECT is whole). */
export function partialConnectCount(): number {
  return partial.size;
}

function main(): void {
  const requestedPort = Number(process.argv[2] ?? '0');
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65_535) {
    process.stderr.write(`node-floor-server: bad port ${process.argv[2]}\n`);
    process.exit(2);
  }
  const server = createNodeFloorServer();
  server.on('error', (error) => {
    process.stderr.write(`node-floor-server: ${error.message}\n`);
    process.exit(1);
  });
  server.listen({ host: '127.0.0.1', port: requestedPort }, () => {
    process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
  });
  // Open sockets would keep server.close() waiting; the harness wants a prompt exit.
  const stop = (): void => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
