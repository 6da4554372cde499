/**
 * Proves the Node backend keeps the core's contract over real sockets, using a scripted core
 * (scripted-core.ts) instead of the broker so each rule is tested on its own: bytes pass through
 * in order, a batch of sends arrives intact, a core-initiated close flushes before FIN and the core
 * never hears about that connection again, a peer close is reported exactly once, wakeups fire
 * tick at the deadline, the server listens only once the core is ready, close() runs the core's
 * shutdown and waits for the sockets, a connection the core pauses is not read until it resumes
 * it, and a halted core hears nothing more (and its server, once closed, leaves the data
 * directory unlocked). Also that a write queued behind unsent bytes holds
 * its own bytes rather than the slab they were encoded into.
 */

import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChunkSocket, type WriteBatching, writeChunks } from '../../io/node-host.js';
import { type RunningServer, startServer } from '../../io/server.js';
import { ScriptedCore } from './scripted-core.js';

let server: RunningServer | null = null;
const sockets: net.Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await server?.close();
  server = null;
});

async function start(core: ScriptedCore, writeBatching: WriteBatching = 'microtask'): Promise<RunningServer> {
  server = await startServer({ host: '127.0.0.1', port: 0, createCore: () => core, writeBatching, shutdownGraceMs: 500 });
  return server;
}

/** A raw client that collects everything it receives and notices when the server ends. */
async function connect(port: number): Promise<{ socket: net.Socket; received: () => string; ended: Promise<void> }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  let text = '';
  socket.on('data', (chunk) => (text += chunk.toString('utf8')));
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => text, ended };
}

async function until(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const startMs = Date.now();
  while (!condition()) {
    if (Date.now() - startMs > timeoutMs) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('NodeHost over real sockets', () => {
  for (const writeBatching of ['microtask', 'immediate', 'none'] as const) {
    it(`passes bytes both ways in order (write batching: ${writeBatching})`, async () => {
      const core = new ScriptedCore({ startReady: true });
      const { port } = await start(core, writeBatching);
      const client = await connect(port);
      client.socket.write('echo one\necho two\n');
      client.socket.write('burst 500\n');
      await until(() => client.received().length >= 'one\ntwo\n'.length + 500);
      expect(client.received()).toBe(`one\ntwo\n${'x'.repeat(500)}`);
      const opened = core.inputs.find((input) => input.kind === 'opened');
      expect(opened).toMatchObject({ kind: 'opened', connectionId: 1 });
      expect((opened as { remoteAddress: string }).remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    });
  }

  it('gives each connection a fresh id and never reuses one', async () => {
    const core = new ScriptedCore({ startReady: true });
    const { port } = await start(core);
    for (let index = 0; index < 3; index++) {
      const client = await connect(port);
      client.socket.end();
      await client.ended;
    }
    await until(() => core.inputs.filter((input) => input.kind === 'closed').length === 3);
    const ids = core.inputs.filter((input) => input.kind === 'opened').map((input) => (input as { connectionId: number }).connectionId);
    expect(ids).toEqual([1, 2, 3]);
  });

  it('flushes before closing when the core closes, and never reports that connection closed', async () => {
    const core = new ScriptedCore({ startReady: true });
    const { port } = await start(core);
    const client = await connect(port);
    client.socket.write('echo last words\nclose\n');
    await client.ended;
    expect(client.received()).toBe('last words\nclosing\n');
    // Give a wrongly delivered 'closed' input time to show up.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(core.inputs.some((input) => input.kind === 'closed')).toBe(false);
  });

  it('stops reading a connection the core paused and reads it again when the core resumes it', async () => {
    const core = new ScriptedCore({ startReady: true });
    const { port } = await start(core, 'input');
    const client = await connect(port);
    client.socket.write('pause 400\n');
    await until(() => core.inputs.some((input) => input.kind === 'bytes' && input.text.includes('pause')));
    await new Promise((resolve) => setTimeout(resolve, 50));
    client.socket.write('echo held back\n');
    await new Promise((resolve) => setTimeout(resolve, 150));
    // Paused: the bytes wait in the socket, the core has not seen them.
    const texts = (): string =>
      core.inputs
        .filter((input) => input.kind === 'bytes')
        .map((input) => (input as { text: string }).text)
        .join('');
    expect(texts()).toBe('pause 400\n');
    // The tick resumes reading (its own send goes out first), then the held bytes reach the core.
    await until(() => client.received() === 'tick\nheld back\n');
    expect(texts()).toBe('pause 400\necho held back\n');
  });

  it('drops bytes that arrive after the core closed the connection', async () => {
    const core = new ScriptedCore({ startReady: true });
    const { port } = await start(core);
    // Half-open client: after the server's FIN it can still send, which is the case to prove.
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    sockets.push(socket);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const serverEnded = new Promise<void>((resolve) => socket.once('end', () => resolve()));
    socket.resume();
    socket.write('close\n');
    await serverEnded;
    socket.write('echo too late\n');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const texts = core.inputs.filter((input) => input.kind === 'bytes').map((input) => (input as { text: string }).text);
    expect(texts).toEqual(['close\n']);
    expect(core.inputs.some((input) => input.kind === 'closed')).toBe(false);
  });

  it('reports a peer close exactly once, including after a reset', async () => {
    const core = new ScriptedCore({ startReady: true });
    const { port } = await start(core);
    const first = await connect(port);
    first.socket.end();
    const second = await connect(port);
    second.socket.resetAndDestroy();
    await until(() => core.inputs.filter((input) => input.kind === 'closed').length === 2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = core.inputs.filter((input) => input.kind === 'closed').map((input) => (input as { connectionId: number }).connectionId);
    expect(closed.sort()).toEqual([1, 2]);
  });

  it('calls tick at the deadline the core asked for, not before', async () => {
    const core = new ScriptedCore({ startReady: true });
    const { port } = await start(core);
    const client = await connect(port);
    const sentMs = Date.now();
    client.socket.write('wake 120\n');
    await until(() => client.received().includes('tick\n'));
    const elapsedMs = Date.now() - sentMs;
    expect(elapsedMs).toBeGreaterThanOrEqual(110);
    expect(elapsedMs).toBeLessThan(1_000);
    const tick = core.inputs.find((input) => input.kind === 'tick') as { nowMs: number };
    const opened = core.times[0]!;
    expect(tick.nowMs - opened).toBeGreaterThanOrEqual(120);
  });

  it('feeds the core times that never go backwards', async () => {
    const core = new ScriptedCore({ startReady: true });
    const { port } = await start(core);
    const client = await connect(port);
    for (let index = 0; index < 20; index++) client.socket.write(`echo ${index}\n`);
    await until(() => client.received().split('\n').length > 20);
    for (let index = 1; index < core.times.length; index++) expect(core.times[index]!).toBeGreaterThanOrEqual(core.times[index - 1]!);
    expect(core.times.every((time) => Number.isInteger(time))).toBe(true);
  });

  it('listens only after the core becomes ready through storage', async () => {
    const core = new ScriptedCore({ startReady: false });
    expect(core.ready).toBe(false);
    const { port } = await start(core);
    expect(core.ready).toBe(true);
    expect(core.inputs[0]).toMatchObject({ kind: 'storage', result: { requestId: 1, ok: true, files: [] } });
    expect(port).toBeGreaterThan(0);
  });

  it('executes storage requests in order against the data directory', async () => {
    const core = new ScriptedCore({ startReady: true });
    const { port, dataDirectory } = await start(core);
    const client = await connect(port);
    client.socket.write('store hello disk\n');
    await until(() => core.inputs.filter((input) => input.kind === 'storage').length === 3);
    const results = core.inputs.filter((input) => input.kind === 'storage').map((input) => (input as { result: { requestId: number; ok: boolean; bytes?: Uint8Array } }).result);
    expect(results.map((result) => [result.requestId, result.ok])).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ]);
    expect(new TextDecoder().decode(results[2]!.bytes)).toBe('hello disk');
    // Beside the core's file, only the server's lock (io/data-directory-lock.ts); the write probe is gone.
    expect(readdirSync(dataDirectory)).toEqual(['keel.lock', 'log']);
  });

  it('close() runs the core shutdown, flushes goodbyes and waits for every socket', async () => {
    const core = new ScriptedCore({ startReady: true });
    const running = await start(core);
    const clients = [await connect(running.port), await connect(running.port)];
    await until(() => running.connectionCount() === 2);
    await running.close();
    server = null;
    await Promise.all(clients.map((client) => client.ended));
    for (const client of clients) expect(client.received()).toBe('bye\n');
    expect(core.inputs.filter((input) => input.kind === 'shutdown')).toHaveLength(1);
    // The orderly close is not reported back as peer closes.
    expect(core.inputs.some((input) => input.kind === 'closed')).toBe(false);
    expect(running.connectionCount()).toBe(0);
  });

  it('on halt, feeds the core nothing more, drops every connection and reports the reason', async () => {
    const core = new ScriptedCore({ startReady: true });
    const running = await start(core);
    const first = await connect(running.port);
    const second = await connect(running.port);
    await until(() => running.connectionCount() === 2);
    first.socket.write('halt disk on fire\n');
    expect(await running.halted).toBe('disk on fire');
    await Promise.all([first.ended, second.ended]);
    const inputsAtHalt = core.inputs.length;
    await running.close();
    server = null;
    // Neither the peer closes nor an orderly shutdown reached the halted core.
    expect(core.inputs.length).toBe(inputsAtHalt);
    expect(core.inputs.some((input) => input.kind === 'closed' || input.kind === 'shutdown')).toBe(false);
  });

  it('gives up the data directory lock when it closes after a halt', async () => {
    const given = mkdtempSync(join(tmpdir(), 'keel-halted-'));
    try {
      const running = await startServer({ createCore: () => new ScriptedCore({ startReady: true }), dataDirectory: given, shutdownGraceMs: 500 });
      expect(readdirSync(given)).toEqual(['keel.lock']);
      const client = await connect(running.port);
      client.socket.write('halt disk on fire\n');
      expect(await running.halted).toBe('disk on fire');
      await running.close();
      expect(readdirSync(given)).toEqual([]);
    } finally {
      rmSync(given, { recursive: true, force: true });
    }
  });

  it('removes a temporary data directory on close but keeps a given one', async () => {
    const given = mkdtempSync(join(tmpdir(), 'keel-given-'));
    try {
      const kept = await startServer({ createCore: () => new ScriptedCore({ startReady: true }), dataDirectory: given });
      await kept.close();
      // Kept, and left as found: close() released the lock.
      expect(readdirSync(given)).toEqual([]);
      const temporary = await startServer({ createCore: () => new ScriptedCore({ startReady: true }) });
      expect(existsSync(temporary.dataDirectory)).toBe(true);
      await temporary.close();
      expect(existsSync(temporary.dataDirectory)).toBe(false);
    } finally {
      rmSync(given, { recursive: true, force: true });
    }
  });

  it('rejects an invalid configuration with every problem listed', async () => {
    await expect(startServer({ config: { packetBytesMax: 1, nope: true } as Record<string, unknown> })).rejects.toMatchObject({
      name: 'ConfigError',
      problems: expect.arrayContaining([expect.stringContaining('unknown setting "nope"'), expect.stringContaining('"packetBytesMax"')]),
    });
  });
});

describe('writes queued behind unsent bytes hold only their own bytes', () => {
  // A recorder in place of a socket: what writeChunks hands over, with the unsent figure it sees.
  function recorder(writableLength: number): { socket: ChunkSocket; written: Uint8Array[] } {
    const written: Uint8Array[] = [];
    return {
      socket: {
        writableLength,
        write: (bytes) => {
          written.push(bytes);
          return true;
        },
        cork: () => undefined,
        uncork: () => undefined,
      },
      written,
    };
  }
  const slab = new Uint8Array(32 * 1024).map((_, index) => index & 0xff);
  const view = (offset: number, length: number): Uint8Array => slab.subarray(offset, offset + length);
  const ownsItsBuffer = (bytes: Uint8Array): boolean => bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;

  it('a socket with nothing unsent gets the core’s bytes as they are (no copy)', () => {
    const { socket, written } = recorder(0);
    const packet = view(100, 75);
    writeChunks(socket, [packet], packet.length);
    expect(written).toEqual([packet]);
    expect(written[0]!.buffer).toBe(slab.buffer);
  });

  it('a backed-up socket gets a copy of a view, sized to it, for one packet, a coalesced batch and large chunks', () => {
    const one = recorder(4096);
    writeChunks(one.socket, [view(100, 75)], 75);
    expect(ownsItsBuffer(one.written[0]!)).toBe(true);
    expect(new Uint8Array(one.written[0]!)).toEqual(view(100, 75));

    const batch = recorder(4096);
    writeChunks(batch.socket, [view(0, 40), view(40, 60)], 100);
    expect(batch.written).toHaveLength(1);
    expect(ownsItsBuffer(batch.written[0]!)).toBe(true);
    expect(new Uint8Array(batch.written[0]!)).toEqual(view(0, 100));

    const large = recorder(4096);
    const big = new Uint8Array(70 * 1024).fill(9);
    writeChunks(large.socket, [view(0, 10), big], 10 + big.length);
    expect(large.written.map(ownsItsBuffer)).toEqual([true, true]);
    // A chunk that already owns its buffer is not copied again.
    expect(large.written[1]).toBe(big);
  });
});
