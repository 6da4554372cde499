/**
 * The TLS stage on its own (io/listeners/tls-handshakes.ts): what it leaves on a connection once
 * the handshake is done, and that it finds each handshake's client address again from the TLS
 * socket Node made (through the TCP socket under it), whether the handshake succeeds or the peer
 * goes away in the middle of it. The listener tests (tls-listener.test.ts) cover its behaviour end
 * to end.
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

interface Stage {
  readonly handshakes: TlsHandshakes;
  readonly failures: HandshakeFailures;
  readonly failureLines: Record<string, unknown>[];
  readonly secured: { socket: tls.TLSSocket; remoteAddress: string }[];
}

/** A TLS stage over the test certificate; `onSecure` sees each finished handshake too. */
function openStage(onSecure: (socket: tls.TLSSocket, remoteAddress: string) => void = () => undefined): Stage {
  const credentials = WatchedCredentials.open({ certFile: certificates.serverCert, keyFile: certificates.serverKey, caFile: null }, 'mqtts:test', () => undefined);
  if ('problems' in credentials) throw new Error(credentials.problems.join('; '));
  const failureLines: Record<string, unknown>[] = [];
  const failures = new HandshakeFailures('mqtts:test', (_level, _event, fields) => failureLines.push(fields));
  const secured: Stage['secured'] = [];
  const handshakes = new TlsHandshakes({
    alpnProtocols: ['mqtt'],
    requireClientCertificate: false,
    identityAsUsername: false,
    connectTimeoutMs: 5_000,
    credentials,
    failures,
    onSecure: (socket, remoteAddress) => {
      secured.push({ socket, remoteAddress });
      onSecure(socket, remoteAddress);
    },
  });
  return { handshakes, failures, failureLines, secured };
}

/** A net.Server on a free port whose every connection goes to `stage` as if from `remoteAddress` (a PROXY header's). */
async function listenInto(stage: Stage, remoteAddress: string): Promise<net.Server> {
  const server = net.createServer((socket) => stage.handshakes.begin(socket, remoteAddress));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadlineMs = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('TlsHandshakes', () => {
  it('gives each finished handshake the address it began with, and forgets it then (not at its deadline)', async () => {
    const stage = openStage();
    const server = await listenInto(stage, '198.51.100.7:4242');
    const port = (server.address() as net.AddressInfo).port;
    const clients = [0, 1, 2].map(() => tls.connect({ host: '127.0.0.1', port, ca: readFileSync(certificates.caFile), servername: 'localhost', ALPNProtocols: ['mqtt'] }));
    try {
      await waitFor(() => stage.secured.length === 3, 'three handshakes');
      expect(stage.secured.map((entry) => entry.remoteAddress)).toEqual(['198.51.100.7:4242', '198.51.100.7:4242', '198.51.100.7:4242']);
      expect(stage.handshakes.underwayCount).toBe(0);
    } finally {
      for (const client of clients) client.destroy();
      stage.handshakes.close();
      stage.failures.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('logs a handshake whose peer went away midway with the address it began with, and forgets it', async () => {
    const stage = openStage();
    const server = await listenInto(stage, '203.0.113.9:5151');
    const port = (server.address() as net.AddressInfo).port;
    // A ClientHello's record header and nothing more, then a reset.
    const client = net.connect(port, '127.0.0.1', () => client.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    client.on('error', () => undefined);
    try {
      await waitFor(() => stage.handshakes.underwayCount === 1, 'the handshake under way');
      client.resetAndDestroy();
      await waitFor(() => stage.failures.counters.tlsHandshakeFailed === 1, 'the failure counted');
      expect(stage.failureLines).toEqual([expect.objectContaining({ kind: 'tlsHandshakeFailed', remoteAddress: '203.0.113.9:5151' })]);
      expect(stage.handshakes.underwayCount).toBe(0);
      expect(stage.secured).toHaveLength(0);
    } finally {
      stage.handshakes.close();
      stage.failures.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('leaves no listener of its own on the TCP socket once the handshake is done (it would keep the record alive)', async () => {
    const tlsOptions = { cert: readFileSync(certificates.serverCert), key: readFileSync(certificates.serverKey), ALPNProtocols: ['mqtt'] };
    // What Node's own TLS server leaves on a socket handed to it the same way: the reference.
    const bare = tls.createServer(tlsOptions);
    const bareCount = await closeListenersAfterHandshake((socket, secured) => {
      bare.once('secureConnection', () => secured(socket));
      bare.emit('connection', socket);
    });

    let tcp: net.Socket | null = null;
    let secured: ((socket: net.Socket) => void) | null = null;
    const { handshakes, failures } = openStage((_socket, remoteAddress) => {
      expect(remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
      secured!(tcp!);
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
