/**
 * Proves the transport seam's peer helpers: `peerAddress` writes `host:port` (IPv6 in brackets,
 * and `unknown:0` for a transport that knows no peer), and `forgetPeerName` drops the peer name
 * Node cached on a TCP socket when `remoteAddress` was read, while a later read still answers
 * (Node asks the kernel again). Over a real loopback connection.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { forgetPeerName, peerAddress } from '../../io/transport.js';

const closers: (() => void)[] = [];

afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** The server's end of a fresh loopback connection, and the client's local port. */
async function acceptedSocket(): Promise<{ accepted: net.Socket; clientPort: number }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const acceptedPromise = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const accepted = await acceptedPromise;
  closers.push(() => {
    client.destroy();
    accepted.destroy();
    server.close();
  });
  return { accepted, clientPort: client.localPort! };
}

describe('transport peer helpers', () => {
  it('writes host:port, with IPv6 addresses in brackets', () => {
    expect(peerAddress({ remoteAddress: '10.1.2.3', remotePort: 1883 })).toBe('10.1.2.3:1883');
    expect(peerAddress({ remoteAddress: '::1', remotePort: 8883 })).toBe('[::1]:8883');
    expect(peerAddress({})).toBe('unknown:0');
    // Flattening the string must not change its text (an interface name in upper case).
    expect(peerAddress({ remoteAddress: 'fe80::1%ETH0', remotePort: 1883 })).toBe('[fe80::1%ETH0]:1883');
  });

  it('drops the peer name Node cached on a socket, and a later read still answers', async () => {
    const { accepted, clientPort } = await acceptedSocket();
    expect(peerAddress(accepted)).toBe(`127.0.0.1:${clientPort}`);
    const cached = accepted as unknown as { _peername?: unknown };
    expect(cached._peername).toEqual({ address: '127.0.0.1', family: 'IPv4', port: clientPort });
    forgetPeerName(accepted);
    expect(cached._peername).toBeUndefined();
    expect(peerAddress(accepted)).toBe(`127.0.0.1:${clientPort}`);
  });
});
