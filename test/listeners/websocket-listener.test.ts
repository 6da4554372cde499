/**
 * Proves the ws and wss listeners with the `mqtt` client and raw `ws` clients:
 *
 * - MQTT.js round-trips over ws and wss (trusting the test CA), with subprotocol `mqtt`, a
 *   100 KiB payload included; a client offering only `mqttv3.1` gets it and speaks MQTT 3.1;
 * - the stream ignores frame boundaries: a CONNECT cut into three frames, then SUBSCRIBE and
 *   PUBLISH in one frame, are all understood;
 * - refusals answer HTTP and touch no one else: a wrong path 404, a plain GET 426, a foreign
 *   origin 403 (a listed one and none at all are let in), subprotocols without mqtt 400; a TLS
 *   handshake on the ws port and an upgrade that never completes are cut and counted;
 * - a text frame closes that WebSocket with 1003, a frame over packetBytesMax plus the fixed
 *   header with 1009, and both are counted;
 * - a peer that does not answer pings is closed after the next interval, one that answers stays;
 * - the core's pause-reading stops reading the WebSocket's socket, as for TCP (with the scripted
 *   core of the NodeHost tests).
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { RunningServer } from '../../io/server.js';
import { sleep, waitUntil } from '../integration/helpers.js';
import { ScriptedCore } from '../io/scripted-core.js';
import { makeTestCertificates, type TestCertificates } from './certificates.js';
import { ListenerClients, type LogCapture, listener, roundTrip, startWithListeners, trusting, urlOf } from './listener-helpers.js';

let certificates: TestCertificates;
const clients = new ListenerClients();
const servers: RunningServer[] = [];
const sockets: { terminate?: () => void; destroy?: () => void }[] = [];

beforeAll(() => {
  certificates = makeTestCertificates();
}, 60_000);

afterEach(async () => {
  for (const socket of sockets.splice(0)) (socket.terminate ?? socket.destroy)?.call(socket);
  await clients.endAll();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

afterAll(() => certificates.remove());

async function start(...args: Parameters<typeof startWithListeners>): Promise<{ server: RunningServer; logs: LogCapture }> {
  const started = await startWithListeners(...args);
  servers.push(started.server);
  return started;
}

/** A raw WebSocket client; resolves once open, or with the HTTP status of a refused upgrade. */
function openRaw(url: string, protocols: string | string[] = 'mqtt', options: WebSocket.ClientOptions = {}): Promise<WebSocket | number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, protocols, options);
    sockets.push(socket);
    socket.once('open', () => resolve(socket));
    socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
    socket.once('error', reject);
  });
}

function closeCode(socket: WebSocket): Promise<number> {
  return new Promise((resolve) => socket.once('close', (code) => resolve(code)));
}

/** MQTT packets received on a raw WebSocket, concatenated. */
function received(socket: WebSocket): () => Buffer {
  const chunks: Buffer[] = [];
  socket.on('message', (data: Buffer) => chunks.push(data));
  return () => Buffer.concat(chunks);
}

// MQTT 3.1.1 CONNECT (client id "ws"), SUBSCRIBE "t" QoS 0 (packet id 1), PUBLISH "t" "hi" QoS 0.
const connect311 = Buffer.from('100e00044d5154540402003c00027773', 'hex');
const subscribe = Buffer.from('8206000100017400', 'hex');
const publish = Buffer.from('30050001746869', 'hex');

/** A QoS 0 PUBLISH to topic "t" whose whole packet is `packetBytes` long (at least 132). */
function publishOfSize(packetBytes: number): Buffer {
  const remaining = packetBytes - 3;
  if (remaining < 128 || remaining > 16_383) throw new Error('publishOfSize covers two-byte remaining lengths only');
  return Buffer.concat([Buffer.from([0x30, (remaining & 0x7f) | 0x80, remaining >> 7, 0x00, 0x01, 0x74]), Buffer.alloc(remaining - 3, 0x61)]);
}

describe('ws and wss listeners', () => {
  it('carry MQTT.js over ws and wss with subprotocol mqtt, a 100 KiB payload included', async () => {
    const { server } = await start([listener('ws'), listener('wss', certificates)]);
    for (const index of [0, 1]) {
      const client = await clients.connect(urlOf(server, index), trusting(certificates));
      const payload = Buffer.alloc(100 * 1024, index);
      expect((await roundTrip(client, `big/${index}`, payload)).equals(payload)).toBe(true);
      expect((await roundTrip(client, `small/${index}`, 'hello')).toString()).toBe('hello');
    }
    const socket = (await openRaw(urlOf(server, 0), ['mqtt'])) as WebSocket;
    expect(socket.protocol).toBe('mqtt');
  });

  it('answers mqttv3.1 to an MQTT 3.1 client that offers only that', async () => {
    const { server } = await start([listener('ws')]);
    const socket = (await openRaw(urlOf(server, 0), ['mqttv3.1'])) as WebSocket;
    expect(socket.protocol).toBe('mqttv3.1');
    const bytes = received(socket);
    // MQTT 3.1: protocol name MQIsdp, level 3, client id "ws".
    const connect31 = Buffer.from('101000064d51497364700302001400027773', 'hex');
    socket.send(connect31);
    await waitUntil(() => bytes().length >= 4, 3_000, 'CONNACK');
    expect(bytes().subarray(0, 4)).toEqual(Buffer.from([0x20, 0x02, 0x00, 0x00]));
  });

  it('reads the MQTT stream across frame boundaries, and several packets in one frame', async () => {
    const { server } = await start([listener('ws')]);
    const socket = (await openRaw(urlOf(server, 0))) as WebSocket;
    const bytes = received(socket);
    socket.send(connect311.subarray(0, 3));
    socket.send(connect311.subarray(3, 11));
    socket.send(connect311.subarray(11));
    await waitUntil(() => bytes().length >= 4, 3_000, 'CONNACK');
    socket.send(Buffer.concat([subscribe, publish]));
    await waitUntil(() => bytes().length >= 4 + 5 + publish.length, 3_000, 'SUBACK and PUBLISH');
    expect(bytes()).toEqual(Buffer.concat([Buffer.from([0x20, 0x02, 0x00, 0x00]), Buffer.from([0x90, 0x03, 0x00, 0x01, 0x00]), publish]));
  });
});

describe('refused upgrades', () => {
  it('answer 404, 426, 403 and 400, are counted, and leave a connected client alone', async () => {
    const { server } = await start([listener('ws', null, { allowedOrigins: ['https://app.example'] })]);
    const bystander = await clients.connect(urlOf(server, 0));
    const base = `ws://127.0.0.1:${server.listeners[0]!.port}`;
    expect(await openRaw(`${base}/elsewhere`)).toBe(404);
    expect(await openRaw(`${base}/mqtt`, 'mqtt', { origin: 'https://evil.example' })).toBe(403);
    expect(await openRaw(`${base}/mqtt`, ['chat', 'superchat'])).toBe(400);
    expect(await openRaw(`${base}/mqtt?client=1`, 'mqtt', { origin: 'https://app.example' })).toBeInstanceOf(WebSocket);
    expect(await openRaw(`${base}/mqtt`, [])).toBeInstanceOf(WebSocket);
    const plain = await fetch(`http://127.0.0.1:${server.listeners[0]!.port}/mqtt`);
    expect(plain.status).toBe(426);
    expect((await fetch(`http://127.0.0.1:${server.listeners[0]!.port}/`)).status).toBe(404);
    expect(server.listenerCounters()[server.listeners[0]!.name]!.webSocketUpgradeRefused).toBe(5);
    expect((await roundTrip(bystander, 'bystander', 'fine')).toString()).toBe('fine');
  });

  it('cut a TLS handshake on the ws port and an upgrade that never completes, at connectTimeoutMs', async () => {
    const { server } = await start([listener('ws')], { connectTimeoutMs: 300 });
    const name = server.listeners[0]!.name;
    const port = server.listeners[0]!.port;
    const secure = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    secure.on('error', () => undefined);
    sockets.push(secure);
    const slow = net.connect(port, '127.0.0.1', () => slow.write('GET /mqtt HTTP/1.1\r\nHost: x\r\n'));
    slow.on('error', () => undefined);
    sockets.push(slow);
    const startMs = Date.now();
    await new Promise((resolve) => slow.once('close', resolve));
    expect(Date.now() - startMs).toBeGreaterThanOrEqual(250);
    await waitUntil(() => server.listenerCounters()[name]!.webSocketUpgradeTimeout === 1 && server.listenerCounters()[name]!.tlsOnPlainListener === 1, 3_000, 'both counted');
  });
});

describe('WebSocket framing rules', () => {
  it('close a text frame with 1003 and a frame over the packet limit with 1009', async () => {
    const { server, logs } = await start([listener('ws')], { packetBytesMax: 1_024 });
    const bystander = await clients.connect(urlOf(server, 0));
    const texter = (await openRaw(urlOf(server, 0))) as WebSocket;
    const texterClosed = closeCode(texter);
    texter.send('CONNECT please');
    expect(await texterClosed).toBe(1003);
    const large = (await openRaw(urlOf(server, 0))) as WebSocket;
    const largeClosed = closeCode(large);
    large.send(Buffer.alloc(1_024 + 5 + 1));
    expect(await largeClosed).toBe(1009);
    // A frame of exactly the limit is taken: a CONNECT and a PUBLISH filling it.
    const exact = (await openRaw(urlOf(server, 0))) as WebSocket;
    const exactBytes = received(exact);
    const frame = Buffer.concat([connect311, publishOfSize(1_024 + 5 - connect311.length)]);
    expect(frame.length).toBe(1_029);
    exact.send(frame);
    await waitUntil(() => exactBytes().length >= 4, 3_000, 'CONNACK to the frame at the limit');
    await sleep(50);
    expect(exact.readyState).toBe(WebSocket.OPEN);
    expect(server.listenerCounters()[server.listeners[0]!.name]!.webSocketProtocolError).toBe(2);
    expect(logs.events('handshake-failed').filter((line) => line.kind === 'webSocketProtocolError')).toHaveLength(1);
    expect((await roundTrip(bystander, 'bystander', 'fine')).toString()).toBe('fine');
  });

  it('close a peer that does not answer pings, and keep one that does', async () => {
    const { server } = await start([listener('ws')], {}, { webSocketPingIntervalMs: 150 });
    const silent = (await openRaw(urlOf(server, 0), 'mqtt', { autoPong: false })) as WebSocket;
    const answering = (await openRaw(urlOf(server, 0))) as WebSocket;
    let pings = 0;
    answering.on('ping', () => pings++);
    const startMs = Date.now();
    expect(await closeCode(silent)).toBe(1006);
    expect(Date.now() - startMs).toBeLessThan(1_000);
    await sleep(400);
    expect(answering.readyState).toBe(WebSocket.OPEN);
    expect(pings).toBeGreaterThanOrEqual(3);
    expect(server.listenerCounters()[server.listeners[0]!.name]!.webSocketPingTimeout).toBe(1);
  });
});

describe('flow control over WebSocket', () => {
  it("stops reading the WebSocket's socket while the core has paused it", async () => {
    const core = new ScriptedCore({ startReady: true });
    const { server } = await start([listener('ws')], {}, { createCore: () => core, writeBatching: 'input' });
    const socket = (await openRaw(urlOf(server, 0))) as WebSocket;
    const bytes = received(socket);
    socket.send(Buffer.from('pause 400\n'));
    await waitUntil(() => core.inputs.some((input) => input.kind === 'bytes' && input.text.includes('pause')), 3_000, 'the pause command');
    await sleep(50);
    socket.send(Buffer.from('echo held back\n'));
    await sleep(150);
    const texts = (): string =>
      core.inputs
        .filter((input) => input.kind === 'bytes')
        .map((input) => (input as { text: string }).text)
        .join('');
    expect(texts()).toBe('pause 400\n');
    await waitUntil(() => bytes().toString() === 'tick\nheld back\n', 3_000, 'the held bytes after the resume');
    expect(texts()).toBe('pause 400\necho held back\n');
  });
});
