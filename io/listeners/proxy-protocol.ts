/**
 * The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer that forwards TCP connections
 * puts one header in front of the client's bytes, naming the client's address. A listener with
 * `"proxyProtocol": true` reads that header before anything else (before the TLS handshake on an
 * mqtts listener), so that the client's real address, not the balancer's, reaches the log, the
 * core and the authenticator.
 *
 * This module is the parser alone, pure: it is handed the bytes received so far and says whether
 * they hold a whole header (and how long it is), need more, or can never become one. Bounds:
 * a version 1 header is a text line of at most 107 bytes including CRLF (the specification's own
 * limit); a version 2 header says its length in its 16-byte preamble, and one longer than
 * `proxyV2BytesMax` is refused without waiting for it, so a client cannot make the listener buffer
 * more than that before it is known to be a balancer.
 *
 * A header that names no client (version 1 `UNKNOWN`, version 2 `LOCAL`, as balancers send for
 * their own health checks, or an address family other than IPv4 and IPv6) is valid; the
 * connection's own peer address is used then.
 */
import assert from 'node:assert/strict';
import net from 'node:net';

/** The longest version 1 header, CRLF included (proxy-protocol.txt, section 2.1). */
export const proxyV1BytesMax = 107;
/** The longest version 2 header accepted: the 16-byte preamble plus addresses and TLVs. */
export const proxyV2BytesMax = 4096;

const v1Prefix = Buffer.from('PROXY ', 'latin1');
const v2Signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const v2PreambleBytes = 16;

export interface ProxiedSource {
  /** The client's address as the header gives it (IPv6 without brackets). */
  readonly address: string;
  readonly port: number;
}

export type ProxyHeaderResult =
  | { readonly state: 'incomplete' }
  /** `source` null: the header names no client; use the connection's own peer. */
  | { readonly state: 'complete'; readonly headerBytes: number; readonly source: ProxiedSource | null }
  | { readonly state: 'invalid'; readonly reason: string };

const incomplete: ProxyHeaderResult = Object.freeze({ state: 'incomplete' });

/** Looks for a PROXY header at the start of `bytes` (everything received so far). */
export function parseProxyHeader(bytes: Uint8Array): ProxyHeaderResult {
  if (bytes.length === 0) return incomplete;
  if (startsLike(bytes, v2Signature)) return bytes.length < v2Signature.length ? incomplete : parseVersion2(bytes);
  if (startsLike(bytes, v1Prefix)) return bytes.length < v1Prefix.length ? incomplete : parseVersion1(bytes);
  return { state: 'invalid', reason: 'the connection did not start with a PROXY protocol header' };
}

/** True when `bytes` and `prefix` agree on their common length. */
function startsLike(bytes: Uint8Array, prefix: Uint8Array): boolean {
  const length = Math.min(bytes.length, prefix.length);
  for (let index = 0; index < length; index++) if (bytes[index] !== prefix[index]) return false;
  return true;
}

function parseVersion1(bytes: Uint8Array): ProxyHeaderResult {
  const searched = Math.min(bytes.length, proxyV1BytesMax);
  let end = -1;
  for (let index = v1Prefix.length; index + 1 < searched; index++) {
    if (bytes[index] === 0x0d && bytes[index + 1] === 0x0a) {
      end = index;
      break;
    }
  }
  if (end < 0) return bytes.length >= proxyV1BytesMax ? { state: 'invalid', reason: `PROXY v1 header without CRLF in its first ${proxyV1BytesMax} bytes` } : incomplete;
  const line = Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('latin1');
  const headerBytes = end + 2;
  assert.ok(headerBytes <= proxyV1BytesMax, 'a v1 header within 107 bytes');
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return { state: 'complete', headerBytes, source: null };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { state: 'invalid', reason: `malformed PROXY v1 header ${JSON.stringify(line)}` };
  const [, family, sourceAddress, destinationAddress, sourcePort, destinationPort] = parts as [string, string, string, string, string, string];
  const isFamily = family === 'TCP4' ? net.isIPv4 : net.isIPv6;
  if (!isFamily(sourceAddress) || !isFamily(destinationAddress)) return { state: 'invalid', reason: `PROXY v1 header with addresses that are not ${family}: ${JSON.stringify(line)}` };
  const port = parsePort(sourcePort);
  if (port === null || parsePort(destinationPort) === null) return { state: 'invalid', reason: `PROXY v1 header with a bad port: ${JSON.stringify(line)}` };
  return { state: 'complete', headerBytes, source: { address: sourceAddress, port } };
}

function parsePort(text: string): number | null {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return null;
  const port = Number(text);
  return port <= 65_535 ? port : null;
}

function parseVersion2(bytes: Uint8Array): ProxyHeaderResult {
  if (bytes.length < v2PreambleBytes) return incomplete;
  const versionAndCommand = bytes[12]!;
  if (versionAndCommand >> 4 !== 2) return { state: 'invalid', reason: `PROXY v2 header of version ${versionAndCommand >> 4}` };
  const command = versionAndCommand & 0x0f;
  if (command > 1) return { state: 'invalid', reason: `PROXY v2 header with unknown command ${command}` };
  const length = (bytes[14]! << 8) | bytes[15]!;
  const headerBytes = v2PreambleBytes + length;
  if (headerBytes > proxyV2BytesMax) return { state: 'invalid', reason: `PROXY v2 header of ${headerBytes} bytes (at most ${proxyV2BytesMax} accepted)` };
  if (bytes.length < headerBytes) return incomplete;
  assert.ok(headerBytes >= v2PreambleBytes && headerBytes <= proxyV2BytesMax, 'a v2 header within its bounds');
  // LOCAL: the balancer's own connection (a health check); the addresses, if any, mean nothing.
  if (command === 0) return { state: 'complete', headerBytes, source: null };
  const family = bytes[13]! >> 4;
  const body = bytes.subarray(v2PreambleBytes, headerBytes);
  if (family === 1) {
    if (length < 12) return { state: 'invalid', reason: `PROXY v2 IPv4 header with ${length} bytes of addresses (12 needed)` };
    return { state: 'complete', headerBytes, source: { address: Array.from(body.subarray(0, 4)).join('.'), port: (body[8]! << 8) | body[9]! } };
  }
  if (family === 2) {
    if (length < 36) return { state: 'invalid', reason: `PROXY v2 IPv6 header with ${length} bytes of addresses (36 needed)` };
    return { state: 'complete', headerBytes, source: { address: formatIpv6(body.subarray(0, 16)), port: (body[32]! << 8) | body[33]! } };
  }
  // Unspecified or a Unix socket: nothing that is an address of a network client.
  return { state: 'complete', headerBytes, source: null };
}

/** RFC 5952 text of a 16-byte IPv6 address: lower-case hex, the longest run of zero groups as `::`. */
export function formatIpv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let index = 0; index < 16; index += 2) groups.push((bytes[index]! << 8) | bytes[index + 1]!);
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) {
      bestStart = start;
      bestLength = length;
    }
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
