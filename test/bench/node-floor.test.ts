/**
 * Proves node-floor (the benchmark's Node floor, not a broker) frames a client's first packet
 * correctly and never falls over: its reader waits for the whole CONNECT whatever the split of
 * its bytes (down to one byte per read, a remaining length split too), answers a CONNECT that
 * has extra bytes after it (two CONNECTs never come on one socket, but the bytes must not crash
 * it), and refuses what is not a CONNECT. Then over real sockets against the server in this
 * process: a CONNECT sent a byte at a time and one with trailing bytes each get the fixed CONNACK
 * (the 5.0 form for a 5.0 CONNECT), the sockets stay open, and nothing is left held for them.
 * Last, the harness runs it only in the scenarios that ask for nothing but connections, and its
 * table gets the keel/node-floor and node-floor/mosquitto ratios.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectBytesMax, createNodeFloorServer, firstPacketBytes, partialConnectCount, readFirstPacket } from '../../bench/load/node-floor-server.js';
import { encodeConnect } from '../../bench/load/packets.js';
import { nodeFloorName } from '../../bench/load/peers.js';
import { renderTable } from '../../bench/load/report.js';
import { runsScenario } from '../../bench/load/runner.js';
import { scenarios } from '../../bench/load/scenarios.js';

const connack4 = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const connack5 = Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00]);

function connect(level: 4 | 5, clientId = 'floor-test'): Buffer {
  return encodeConnect({ level, clean: true, keepAliveSeconds: 0, clientId });
}

describe('node-floor: framing the first packet', () => {
  it('waits for every byte of a CONNECT, read one byte at a time, then answers it once', () => {
    const bytes = connect(4);
    for (let length = 0; length < bytes.length; length++) expect(readFirstPacket(bytes.subarray(0, length))).toEqual({ kind: 'incomplete' });
    expect(readFirstPacket(bytes)).toEqual({ kind: 'connect', level: 4 });
    expect(readFirstPacket(connect(5))).toEqual({ kind: 'connect', level: 5 });
  });

  it('reads a remaining length of two bytes, also when its bytes arrive apart', () => {
    // A client id of 200 bytes makes the remaining length 212: 0xd4 0x01.
    const bytes = connect(4, 'x'.repeat(200));
    expect(bytes[1]! & 0x80).toBe(0x80);
    expect(firstPacketBytes(bytes.subarray(0, 2))).toBeNull();
    expect(firstPacketBytes(bytes.subarray(0, 3))).toBe(bytes.length);
    expect(readFirstPacket(bytes.subarray(0, bytes.length - 1))).toEqual({ kind: 'incomplete' });
    expect(readFirstPacket(bytes)).toEqual({ kind: 'connect', level: 4 });
  });

  it('answers a CONNECT with extra bytes after it, and ignores those bytes', () => {
    const bytes = Buffer.concat([connect(4), connect(5), Buffer.from([0xc0, 0x00, 0xff])]);
    expect(readFirstPacket(bytes)).toEqual({ kind: 'connect', level: 4 });
  });

  it('refuses a first packet that is not a CONNECT, a malformed length and an oversized CONNECT', () => {
    expect(readFirstPacket(Buffer.from([0xc0, 0x00]))).toMatchObject({ kind: 'refuse' });
    expect(readFirstPacket(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]))).toMatchObject({ kind: 'refuse', reason: 'malformed remaining length' });
    expect(firstPacketBytes(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff]))).toBe(-1);
    // Remaining length 65,536 (0x80 0x80 0x04): above the limit, refused before its body comes.
    expect(readFirstPacket(Buffer.from([0x10, 0x80, 0x80, 0x04]))).toMatchObject({ kind: 'refuse', reason: `CONNECT of 65540 bytes, above ${connectBytesMax}` });
  });
});

let servers: net.Server[] = [];
let clients: net.Socket[] = [];

afterEach(async () => {
  for (const client of clients) client.destroy();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  servers = [];
  clients = [];
});

async function listen(): Promise<number> {
  const server = createNodeFloorServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** A client socket whose received bytes are collected; resolves once connected. */
async function dial(port: number): Promise<{ socket: net.Socket; received: () => Buffer; closed: () => boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  clients.push(socket);
  let received = Buffer.alloc(0);
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  return { socket, received: () => received, closed: () => closed };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadlineMs = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('node-floor: over real sockets', () => {
  it('answers a CONNECT sent one byte per write with the fixed CONNACK, and holds the socket', async () => {
    const port = await listen();
    const client = await dial(port);
    const bytes = connect(4);
    for (let index = 0; index < bytes.length; index++) {
      client.socket.write(bytes.subarray(index, index + 1));
      await new Promise((resolve) => setTimeout(resolve, 2));
      if (index < bytes.length - 1) expect(client.received()).toHaveLength(0);
    }
    await until(() => client.received().length >= connack4.length, 'the CONNACK');
    expect(client.received()).toEqual(connack4);
    expect(partialConnectCount()).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(client.closed()).toBe(false);
  });

  it('answers a CONNECT with bytes after it once, keeps reading and dropping, and serves the next client', async () => {
    const port = await listen();
    const first = await dial(port);
    first.socket.write(Buffer.concat([connect(4), connect(4), Buffer.from([0xc0, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff])]));
    await until(() => first.received().length >= connack4.length, 'the first CONNACK');
    first.socket.write(Buffer.alloc(100_000, 0xee));
    const second = await dial(port);
    second.socket.write(connect(5));
    await until(() => second.received().length >= connack5.length, 'the 5.0 CONNACK');
    expect(second.received()).toEqual(connack5);
    expect(first.received()).toEqual(connack4);
    expect(first.closed()).toBe(false);
    expect(partialConnectCount()).toBe(0);
  });

  it('closes a socket whose first packet is not a CONNECT', async () => {
    const port = await listen();
    const client = await dial(port);
    client.socket.write(Buffer.from([0xc0, 0x00]));
    await until(() => client.closed(), 'the close');
    expect(client.received()).toHaveLength(0);
  });

  it('forgets a half-sent CONNECT when its client goes', async () => {
    const port = await listen();
    const client = await dial(port);
    client.socket.write(connect(4).subarray(0, 5));
    await until(() => partialConnectCount() === 1, 'the held bytes');
    client.socket.destroy();
    await until(() => partialConnectCount() === 0, 'the socket to be forgotten');
  });
});

describe('node-floor in the harness', () => {
  it('runs only idle and idle-connections, which ask for nothing but connections', () => {
    expect(scenarios.filter((scenario) => runsScenario(scenario, nodeFloorName)).map((scenario) => scenario.name)).toEqual(['idle', 'idle-connections']);
    expect(scenarios.filter((scenario) => runsScenario(scenario, 'keel'))).toHaveLength(scenarios.length);
  });

  it('prints keel/node-floor and node-floor/mosquitto beside keel/mosquitto', () => {
    const cell = (median: number) => ({ median, runs: [median], errors: [] });
    const table = renderTable(
      {
        availability: { keel: { available: true, version: '0' }, mosquitto: { available: true, version: '0' }, 'node-floor': { available: true, version: '0' } } as never,
        rows: [{ scenario: 'idle-connections', metric: 'RSS per connection', unit: 'KiB', better: 'lower', cells: { keel: cell(3.5), mosquitto: cell(0.5), 'node-floor': cell(2.8) } }],
      },
      ['keel', 'mosquitto', nodeFloorName],
    );
    const [header, , row] = table.split('\n');
    expect(header!.split(/ {2,}/).slice(-3)).toEqual(['keel/mosquitto', 'keel/node-floor', 'node-floor/mosquitto']);
    expect(row!.split(/ +/).slice(-3)).toEqual(['7.00x', '1.25x', '5.60x']);
  });
});
