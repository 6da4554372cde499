/**
 * Proves `"proxyProtocol": true` on mqtt and mqtts listeners over real sockets: the client's
 * address from a v1 or v2 header (IPv4 and IPv6) is the one the core holds for the client and
 * logs, the MQTT bytes after the header (even in the same segment) are not lost, TLS runs over
 * the connection after a v2 header, a LOCAL header (a balancer's health check) keeps the socket's
 * own address; a connection without a valid header, or whose header does not arrive within
 * connectTimeoutMs, is closed and counted, and a connected client notices nothing.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { waitUntil } from '../integration/helpers.js';
import { makeTestCertificates, type TestCertificates } from './certificates.js';
import { ListenerClients, type LogCapture, listener, roundTrip, startWithListeners, trusting, urlOf } from './listener-helpers.js';

let certificates: TestCertificates;
const clients = new ListenerClients();
const servers: RunningServer[] = [];
const sockets: net.Socket[] = [];

beforeAll(() => {
  certificates = makeTestCertificates();
}, 60_000);

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await clients.endAll();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

afterAll(() => certificates.remove());

async function start(...args: Parameters<typeof startWithListeners>): Promise<{ server: RunningServer; logs: LogCapture }> {
  const started = await startWithListeners(...args);
  servers.push(started.server);
  return started;
}

/** An MQTT 3.1.1 CONNECT with a two-letter client id, keepalive 60. */
function connectAs(clientId: string): Buffer {
  if (clientId.length !== 2) throw new Error('connectAs takes two-letter client ids');
  return Buffer.concat([Buffer.from('100e00044d5154540402003c0002', 'hex'), Buffer.from(clientId)]);
}

const connect = connectAs('px');
const connack = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const v2Signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function v2Header(command: 'PROXY' | 'LOCAL', body: number[], family = 0x11): Buffer {
  return Buffer.concat([v2Signature, Buffer.from([command === 'PROXY' ? 0x21 : 0x20, family, body.length >> 8, body.length & 0xff, ...body])]);
}

/** A socket to `port` that has sent `bytes` in one write, collecting what comes back. */
async function rawConnection(port: number, bytes: Buffer): Promise<{ socket: net.Socket; received: () => Buffer; closed: Promise<void> }> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.push(socket);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise((resolve) => socket.once('connect', resolve));
  if (bytes.length > 0) socket.write(bytes);
  return { socket, received: () => Buffer.concat(chunks), closed };
}

function clientAddresses(server: RunningServer): string[] {
  return server.core.view.clients({ limit: 10 }).map((client) => client.remoteAddress);
}

describe('a PROXY-protocol mqtt listener', () => {
  it('takes the client address from a v1 header, with the CONNECT in the same segment', async () => {
    const { server, logs } = await start([listener('mqtt', null, { proxyProtocol: true })]);
    const { received } = await rawConnection(server.port, Buffer.concat([Buffer.from('PROXY TCP4 192.0.2.7 10.0.0.1 50000 1883\r\n'), connect]));
    await waitUntil(() => received().length >= 4, 3_000, 'CONNACK');
    expect(received().subarray(0, 4)).toEqual(connack);
    expect(clientAddresses(server)).toEqual(['192.0.2.7:50000']);
    expect(logs.events('client-connected')[0]).toMatchObject({ address: '192.0.2.7:50000', listener: server.listeners[0]!.name });
  });

  it('takes an IPv6 client from a v2 header sent byte by byte, and the socket address after LOCAL', async () => {
    const { server } = await start([listener('mqtt', null, { proxyProtocol: true })]);
    const source = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07];
    const header = v2Header('PROXY', [...source, ...source, 0x0f, 0xa0, 0x07, 0x5b], 0x21);
    const slow = await rawConnection(server.port, Buffer.alloc(0));
    for (const byte of Buffer.concat([header, connect])) slow.socket.write(Buffer.from([byte]));
    await waitUntil(() => slow.received().length >= 4, 3_000, 'CONNACK after a trickled header');
    const local = await rawConnection(server.port, Buffer.concat([v2Header('LOCAL', []), connectAs('lo')]));
    await waitUntil(() => local.received().length >= 4, 3_000, 'CONNACK after a LOCAL header');
    expect(clientAddresses(server).sort()).toEqual([`127.0.0.1:${local.socket.localPort}`, '[2001:db8::7]:4000'].sort());
  });

  it('closes connections without a valid header or too slow to send one, and counts them', async () => {
    const { server, logs } = await start([listener('mqtt', null, { proxyProtocol: true })], { connectTimeoutMs: 300 });
    const name = server.listeners[0]!.name;
    const bystander = await rawConnection(server.port, Buffer.concat([Buffer.from('PROXY TCP4 192.0.2.9 10.0.0.1 1 1883\r\n'), connectAs('by')]));
    await waitUntil(() => bystander.received().length >= 4, 3_000, 'the bystander connected');
    const direct = await rawConnection(server.port, connect);
    await direct.closed;
    expect(direct.received().length).toBe(0);
    const startMs = Date.now();
    const partial = await rawConnection(server.port, Buffer.from('PROXY TCP4 192.0.2.7'));
    await partial.closed;
    expect(Date.now() - startMs).toBeGreaterThanOrEqual(250);
    expect(server.listenerCounters()[name]).toMatchObject({ proxyHeaderInvalid: 1, proxyHeaderTimeout: 1 });
    expect(logs.events('handshake-failed').map((line) => line.kind)).toEqual(['proxyHeaderInvalid', 'proxyHeaderTimeout']);
    expect(clientAddresses(server)).toEqual(['192.0.2.9:1']);
    // The bystander's connection is still good: a PINGREQ is answered.
    bystander.socket.write(Buffer.from([0xc0, 0x00]));
    await waitUntil(() => bystander.received().length >= 6, 3_000, 'PINGRESP');
  });
});

describe('a PROXY-protocol mqtts listener', () => {
  it('reads the header before the TLS handshake and keeps the client address through it', async () => {
    const { server } = await start([listener('mqtts', certificates, { proxyProtocol: true }), listener('mqtt')]);
    const raw = await rawConnection(server.port, v2Header('PROXY', [198, 51, 100, 20, 10, 0, 0, 1, 0x30, 0x39, 0x22, 0xb3]));
    const secure = tls.connect({ socket: raw.socket, ca: trusting(certificates).ca as Buffer, servername: 'localhost' });
    const chunks: Buffer[] = [];
    secure.on('data', (chunk) => chunks.push(chunk));
    await new Promise((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    secure.write(connect);
    await waitUntil(() => Buffer.concat(chunks).length >= 4, 3_000, 'CONNACK over TLS');
    expect(Buffer.concat(chunks).subarray(0, 4)).toEqual(connack);
    expect(clientAddresses(server)).toEqual(['198.51.100.20:12345']);
    // A plain listener of the same broker takes no header.
    const plain = await clients.connect(urlOf(server, 1));
    expect((await roundTrip(plain, 'plain', 'ok')).toString()).toBe('ok');
    secure.destroy();
  });
});
