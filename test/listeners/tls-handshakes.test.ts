/**
 * The TLS stage on its own (io/listeners/tls-handshakes.ts): what it leaves on a connection once
 * the handshake is done. The listener tests (tls-listener.test.ts) cover its behaviour end to end.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { HandshakeFailures } from '../../io/listeners/handshake-failures.js';
import { WatchedCredentials } from '../../io/listeners/tls-credentials.js';
import { TlsHandshakes } from '../../io/listeners/tls-handshakes.js';
import { peerAddress } from '../../io/transport.js';
import { makeTestCertificates, type TestCertificates } from './certificates.js';

let certificates: TestCertificates;

beforeAll(() => {
  certificates = makeTestCertificates();
});

/**
 * Serves one TLS connection through a net.Server that hands the socket on with `hand`, and
 * resolves with the number of `close` listeners on the TCP socket once the handshake is done.
 */
async function closeListenersAfterHandshake(hand: (socket: net.Socket, secured: (tcp: net.Socket) => void) => void): Promise<number> {
  let resolveCount!: (count: number) => void;
  const counted = new Promise<number>((resolve) => {
    resolveCount = resolve;
  });
  const server = net.createServer((socket) => hand(socket, (tcp) => resolveCount(tcp.listenerCount('close'))));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, ca: readFileSync(certificates.caFile), servername: 'localhost', ALPNProtocols: ['mqtt'] });
  client.on('error', () => undefined);
  try {
    return await counted;
  } finally {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('TlsHandshakes', () => {
  it('leaves no listener of its own on the TCP socket once the handshake is done (it would keep the record alive)', async () => {
    const tlsOptions = { cert: readFileSync(certificates.serverCert), key: readFileSync(certificates.serverKey), ALPNProtocols: ['mqtt'] };
    // What Node's own TLS server leaves on a socket handed to it the same way: the reference.
    const bare = tls.createServer(tlsOptions);
    const bareCount = await closeListenersAfterHandshake((socket, secured) => {
      bare.once('secureConnection', () => secured(socket));
      bare.emit('connection', socket);
    });

    const credentials = WatchedCredentials.open({ certFile: certificates.serverCert, keyFile: certificates.serverKey, caFile: null }, 'mqtts:test', () => undefined);
    if ('problems' in credentials) throw new Error(credentials.problems.join('; '));
    const failures = new HandshakeFailures('mqtts:test', () => undefined);
    let tcp: net.Socket | null = null;
    let secured: ((socket: net.Socket) => void) | null = null;
    const handshakes = new TlsHandshakes({
      alpnProtocols: ['mqtt'],
      requireClientCertificate: false,
      identityAsUsername: false,
      connectTimeoutMs: 5_000,
      credentials,
      failures,
      onSecure: (_socket, remoteAddress) => {
        expect(remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
        secured!(tcp!);
      },
    });
    try {
      const keelCount = await closeListenersAfterHandshake((socket, done) => {
        tcp = socket;
        secured = done;
        handshakes.begin(socket, peerAddress(socket));
      });
      expect(keelCount).toBe(bareCount);
    } finally {
      handshakes.close();
      failures.close();
    }
  });
});
