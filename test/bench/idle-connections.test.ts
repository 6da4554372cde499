/**
 * Proves the idle-connections scenario's bare connector counts only real, accepted handshakes and
 * never hangs: against a scripted TCP server on loopback it resolves once every CONNECT got a
 * CONNACK with code 0 (also when the CONNACK arrives a byte at a time, or is a 5.0 CONNACK long
 * enough for a two-byte length), and it fails with the reason when one is refused, when the
 * server goes silent, or when a connection is lost after it was accepted. Then it opens a batch
 * against Keel itself, in a child process, as the benchmark does.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { IdleConnections, sourceAddressFor, wholeFirstPacket } from '../../bench/load/idle-connections.js';
import { startBroker } from '../../bench/load/peers.js';
import { scenarios } from '../../bench/load/scenarios.js';
import { plainTcp } from '../../bench/load/transport.js';
import { scenarioContext } from './scenario-context.js';

interface ScriptedServer {
  port: number;
  clientIds: string[];
  sockets: net.Socket[];
  close(): Promise<void>;
}

/** A server that reads each CONNECT's client id and answers with `answer(index)` (or nothing). */
async function scriptedServer(answer: (index: number, socket: net.Socket) => void): Promise<ScriptedServer> {
  const clientIds: string[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => {});
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (!wholeFirstPacket(received)) return;
      // CONNECT 3.1.1 with a 1-byte remaining length: 10 bytes of variable header, then the id.
      const idLength = received.readUInt16BE(12);
      const index = clientIds.push(received.subarray(14, 14 + idLength).toString('utf8')) - 1;
      answer(index, socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    clientIds,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const accept = Buffer.from([0x20, 0x02, 0x00, 0x00]);

let servers: ScriptedServer[] = [];
let batches: IdleConnections[] = [];

afterEach(async () => {
  for (const batch of batches) batch.resetAll();
  await Promise.all(servers.map((server) => server.close()));
  servers = [];
  batches = [];
});

async function serve(answer: (index: number, socket: net.Socket) => void): Promise<ScriptedServer> {
  const server = await scriptedServer(answer);
  servers.push(server);
  return server;
}

async function open(port: number, count: number, stallTimeoutMs = 2_000): Promise<IdleConnections> {
  const batch = await IdleConnections.open({ port, level: 4, clientIdPrefix: 'idle-test-', count, concurrency: 7, stallTimeoutMs });
  batches.push(batch);
  return batch;
}

describe('idle connections for the connect-rate scenario', () => {
  it('resolves once every CONNECT was accepted, each with its own client id', async () => {
    const server = await serve((_, socket) => socket.write(accept));
    const batch = await open(server.port, 40);
    expect(batch.accepted).toBe(40);
    expect(batch.sockets).toHaveLength(40);
    expect(new Set(server.clientIds).size).toBe(40);
    expect(server.clientIds).toContain('idle-test-39');
    batch.assertOpen();
  });

  it('reassembles a CONNACK that arrives one byte at a time, and a 5.0 CONNACK with a two-byte length', async () => {
    const properties = Buffer.alloc(140, 0x00);
    // 5.0: flags, reason code, property length 140 (two-byte varint), then 140 bytes of padding.
    const long = Buffer.concat([Buffer.from([0x20, 0x90, 0x01, 0x00, 0x00, 0x8c, 0x01]), properties]);
    const server = await serve((index, socket) => {
      const bytes = index % 2 === 0 ? accept : long;
      const writeFrom = (offset: number): void => {
        if (offset >= bytes.length || socket.destroyed) return;
        socket.write(bytes.subarray(offset, offset + 1));
        setTimeout(() => writeFrom(offset + 1), 1);
      };
      writeFrom(0);
    });
    const batch = await open(server.port, 10);
    expect(batch.accepted).toBe(10);
  });

  it('fails with the code when a CONNACK refuses the connection', async () => {
    const server = await serve((index, socket) => socket.write(index === 12 ? Buffer.from([0x20, 0x02, 0x00, 0x05]) : accept));
    await expect(open(server.port, 30)).rejects.toThrow('CONNACK refused with code 0x5');
  });

  it('fails when something other than a CONNACK arrives first', async () => {
    const server = await serve((_, socket) => socket.write(Buffer.from([0xd0, 0x00])));
    await expect(open(server.port, 3)).rejects.toThrow('expected CONNACK, got packet type 13');
  });

  it('fails, bounded in time, when the server stops answering', async () => {
    const server = await serve((index, socket) => {
      if (index < 5) socket.write(accept);
    });
    const startMs = Date.now();
    await expect(open(server.port, 20, 300)).rejects.toThrow(/no CONNACK for 300 ms \(5 of 20 accepted\)/);
    expect(Date.now() - startMs).toBeLessThan(2_000);
  });

  it('reports a connection the server closes after accepting it', async () => {
    const server = await serve((_, socket) => socket.write(accept));
    const batch = await open(server.port, 5);
    batch.assertOpen();
    server.sockets[2]!.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(() => batch.assertOpen()).toThrow(/closed by the broker after its CONNACK/);
  });

  it('does not count its own teardown as a failure', async () => {
    const server = await serve((_, socket) => socket.write(accept));
    const batch = await open(server.port, 5);
    batch.resetAll();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(batch.sockets.every((socket) => socket.destroyed)).toBe(true);
    expect(batch.failure).toBeNull();
  });

  it('with persistent sessions: subscribes each after its CONNACK, and fails on a resume that finds no session', async () => {
    const subscribes: string[] = [];
    const answered = new WeakSet<net.Socket>();
    const server = await serve((_, socket) => {
      // serve() calls back on every chunk once the CONNECT is whole: answer it once per socket.
      if (answered.has(socket)) return;
      answered.add(socket);
      socket.write(accept);
      socket.on('data', (chunk: Buffer) => {
        // After the CONNECT: a SUBSCRIBE (type 8; packet id at 2, the filter's length at 4) per connection, answered with a SUBACK granting QoS 1.
        if (chunk[0] !== 0x82) return;
        subscribes.push(chunk.subarray(6, 6 + chunk.readUInt16BE(4)).toString('utf8'));
        socket.write(Buffer.from([0x90, 0x03, 0x00, 0x01, 0x01]));
      });
    });
    const batch = await IdleConnections.open({
      port: server.port,
      level: 4,
      clientIdPrefix: 'p-',
      count: 6,
      concurrency: 3,
      stallTimeoutMs: 2_000,
      persistent: { subscribe: true, expectSessionPresent: false },
    });
    batches.push(batch);
    expect(batch.accepted).toBe(6);
    expect(subscribes.sort()).toEqual(['bench/resume/0', 'bench/resume/1', 'bench/resume/2', 'bench/resume/3', 'bench/resume/4', 'bench/resume/5']);
    // The same server answers session present 0: a batch that expects its sessions back fails.
    await expect(
      IdleConnections.open({ port: server.port, level: 4, clientIdPrefix: 'p-', count: 2, concurrency: 1, stallTimeoutMs: 2_000, persistent: { subscribe: false, expectSessionPresent: true } }),
    ).rejects.toThrow('CONNACK did not find the session (session present 0)');
  });

  it('resume-storm against Keel in a child process: every session comes back after the restart', async () => {
    const broker = await startBroker('keel', { keelConfig: {}, mosquittoQueuedMessagesMax: 1_000 }, null, { persistence: true });
    try {
      const scenario = scenarios.find((candidate) => candidate.name === 'resume-storm')!;
      const firstPid = broker.pid;
      const metrics = await scenario.run(scenarioContext(broker, { connectConcurrency: 50, level: 5, connections: 300 }));
      // A new process served the resumes, and every one of the 300 found its session (the batch fails otherwise).
      expect(broker.pid).not.toBe(firstPid);
      expect(metrics.find((metric) => metric.name === 'sessions')!.value).toBe(300);
      expect(metrics.find((metric) => metric.name === 'restart to listening')!.value).toBeGreaterThan(0);
      expect(metrics.find((metric) => metric.name === 'resume rate, 50 in flight')!.value).toBeGreaterThan(0);
      expect(metrics.find((metric) => metric.name === 'broker user CPU per connection, 50 in flight')!.value).toBeGreaterThan(0);
    } finally {
      await broker.stop();
    }
  }, 60_000);

  it('opens 500 connections against Keel in a child process, from two source addresses, and reads its heap', async () => {
    const broker = await startBroker('keel', { keelConfig: { syncPolicy: 'none' }, mosquittoQueuedMessagesMax: 1_000 });
    try {
      const heapBefore = await broker.heap();
      // 300 connections per source address: the last 200 come from 127.0.0.2.
      const batch = await IdleConnections.open({ port: broker.port, level: 5, clientIdPrefix: 'idle-keel-', count: 500, concurrency: 50, stallTimeoutMs: 5_000, connectionsPerSourceAddress: 300 });
      batches.push(batch);
      expect(batch.accepted).toBe(500);
      batch.assertOpen();
      const sources = batch.sockets.map((socket) => (socket as net.Socket).localAddress);
      expect(sources.filter((address) => address === '127.0.0.1')).toHaveLength(300);
      expect(sources.filter((address) => address === '127.0.0.2')).toHaveLength(200);
      // The heap probe answers from inside the broker, after a full collection: 500 connections hold some of it.
      const heapAfter = await broker.heap();
      expect(heapBefore!.heapUsedBytes).toBeGreaterThan(1_000_000);
      expect(heapAfter!.heapUsedBytes).toBeGreaterThan(heapBefore!.heapUsedBytes);
      expect(heapAfter!.heapTotalBytes).toBeGreaterThanOrEqual(heapAfter!.heapUsedBytes);
      const memory = broker.memory();
      expect(memory.anonymousBytes + memory.fileBytes).toBe(memory.rssBytes);
    } finally {
      for (const batch of batches) batch.resetAll();
      await broker.stop();
    }
  }, 20_000);
});

describe('source addresses', () => {
  it('keeps the default address while one suffices, then fills 127.0.0.1, 127.0.0.2, ... a block each', () => {
    expect(sourceAddressFor(0, 20_000, 28_000)).toBeUndefined();
    expect(sourceAddressFor(19_999, 20_000, 28_000)).toBeUndefined();
    expect(sourceAddressFor(0, 100_000, 28_000)).toBe('127.0.0.1');
    expect(sourceAddressFor(27_999, 100_000, 28_000)).toBe('127.0.0.1');
    expect(sourceAddressFor(28_000, 100_000, 28_000)).toBe('127.0.0.2');
    expect(sourceAddressFor(99_999, 100_000, 28_000)).toBe('127.0.0.4');
    expect(() => sourceAddressFor(254 * 10, 300 * 10, 10)).toThrow(/254 loopback source addresses/);
  });
});

describe('idle scenario', () => {
  it('reads a Keel broker with no clients: RSS split, live heap, and an empty node process beside it', async () => {
    const broker = await startBroker('keel', { keelConfig: { syncPolicy: 'none' }, mosquittoQueuedMessagesMax: 1_000 });
    try {
      const scenario = scenarios.find((candidate) => candidate.name === 'idle')!;
      const metrics = await scenario.run(scenarioContext(broker, { connectConcurrency: 50, connections: 1 }));
      const value = (name: string): number => metrics.find((metric) => metric.name === name)!.value;
      expect(value('RSS at 4 s')).toBeCloseTo(value('anonymous RSS at 4 s') + value('file-backed RSS at 4 s'), 5);
      expect(value('RSS at 3 s')).toBeGreaterThan(10);
      // A live heap of a few MiB, well under what V8 has committed for it.
      expect(value('V8 heap used at 4 s')).toBeGreaterThan(1);
      expect(value('V8 heap committed at 4 s')).toBeGreaterThanOrEqual(value('V8 heap used at 4 s'));
      expect(value('empty node process RSS at 3 s')).toBeGreaterThan(10);
    } finally {
      await broker.stop();
    }
  }, 30_000);
});

describe('idle-connections scenario', () => {
  it('opens and resets the warm-up connections before it times its batch', async () => {
    const server = await serve((_, socket) => socket.write(accept));
    const scenario = scenarios.find((candidate) => candidate.name === 'idle-connections')!;
    const context = {
      port: server.port,
      rssBytes: () => 0,
      memory: () => ({ rssBytes: 0, anonymousBytes: 0, fileBytes: 0 }),
      heap: () => Promise.resolve(null),
      idleSeconds: 4,
      cpuMicros: () => 0,
      cpuSplitMicros: () => ({ userMicros: 0, systemMicros: 0 }),
      restartBroker: () => Promise.reject(new Error('this scenario does not restart the broker')),
      connectConcurrency: 100,
      level: 4 as const,
      payloadBytes: 64,
      seconds: 1,
      connections: 200,
      rateMessagesPerSecond: 100,
      latencyWarmupSeconds: 0,
      connectWarmupConnections: 150,
      transport: plainTcp,
      tlsConnections: 1,
      tlsWarmupConnections: 0,
    };
    const metrics = await scenario.run(context);
    expect(metrics.find((metric) => metric.name === 'connections')!.value).toBe(200);
    expect(metrics.find((metric) => metric.name === 'connect rate')!.value).toBeGreaterThan(0);
    expect(metrics.find((metric) => metric.name === 'connect rate, first 150 (cold)')!.value).toBeGreaterThan(0);
    // CONNACK latencies are measured per connection, so the percentiles are positive and ordered.
    const p50 = metrics.find((metric) => metric.name === 'CONNACK latency p50')!.value;
    const p99 = metrics.find((metric) => metric.name === 'CONNACK latency p99')!.value;
    expect(p50).toBeGreaterThan(0);
    expect(p99).toBeGreaterThanOrEqual(p50);
    expect(metrics.find((metric) => metric.name === 'CONNACK latency p99, first 150 (cold)')!.value).toBeGreaterThan(0);
    const warmups = server.clientIds.filter((id) => id.includes('-warmup-'));
    const timed = server.clientIds.filter((id) => id.includes('-idle-'));
    expect(warmups).toHaveLength(150);
    expect(timed).toHaveLength(200);
    // Every warm-up CONNECT came before the first timed one.
    expect(server.clientIds.indexOf(timed[0]!)).toBe(150);
    // The warm-up sockets were reset before the timed batch: the server saw them close.
    expect(server.sockets.slice(0, 150).every((socket) => socket.destroyed)).toBe(true);
  }, 20_000);
});

describe('wholeFirstPacket', () => {
  it('waits for the length bytes and the whole body', () => {
    expect(wholeFirstPacket(Buffer.from([0x20]))).toBe(false);
    expect(wholeFirstPacket(Buffer.from([0x20, 0x02, 0x00]))).toBe(false);
    expect(wholeFirstPacket(Buffer.from([0x20, 0x02, 0x00, 0x00]))).toBe(true);
    expect(wholeFirstPacket(Buffer.from([0x20, 0x80]))).toBe(false);
    expect(wholeFirstPacket(Buffer.concat([Buffer.from([0x20, 0x80, 0x01]), Buffer.alloc(127)]))).toBe(false);
    expect(wholeFirstPacket(Buffer.concat([Buffer.from([0x20, 0x80, 0x01]), Buffer.alloc(128)]))).toBe(true);
  });

  it('refuses a remaining length longer than four bytes', () => {
    expect(() => wholeFirstPacket(Buffer.from([0x20, 0xff, 0xff, 0xff, 0xff]))).toThrow('malformed remaining length');
    expect(wholeFirstPacket(Buffer.from([0x20, 0xff, 0xff, 0xff]))).toBe(false);
  });
});
