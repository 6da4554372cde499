/**
 * Proves that a server's listeners start as one, in this process: when the third cannot bind (its
 * port is taken), startServer rejects naming that listener, the two bound before it no longer
 * accept connections, and the data directory is free again (a second start on it succeeds); and
 * that a broker-settings problem and a certificate problem are reported together, before the data
 * directory is touched.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../bench/load/peers.js';
import { ConfigError, startServer } from '../../io/server.js';
import { makeTestCertificates, type TestCertificates } from './certificates.js';
import { listener } from './listener-helpers.js';

let certificates: TestCertificates;
let directory: string;

beforeAll(() => {
  certificates = makeTestCertificates();
  directory = mkdtempSync(join(tmpdir(), 'keel-start-up-'));
}, 60_000);

afterAll(() => {
  certificates.remove();
  rmSync(directory, { recursive: true, force: true });
});

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('starting several listeners', () => {
  it('binds all or none: a taken third port closes the first two and frees the data directory', async () => {
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const busyPort = (busy.address() as net.AddressInfo).port;
    const dataDirectory = join(directory, 'data');
    let [first, second] = [0, 0];
    try {
      // The two free ports are found free and then bound by the broker: a test running beside this
      // one may take one of them in between. That start is tried again with two other ports.
      let error: unknown = null;
      for (let attempt = 0; attempt < 3; attempt++) {
        [first, second] = [await freePort(), await freePort()];
        error = await startServer({
          dataDirectory,
          shutdownGraceMs: 100,
          listeners: [listener('mqtt', null, { port: first }), listener('ws', null, { port: second }), listener('mqtts', certificates, { port: busyPort })],
        }).then(
          async (server) => {
            await server.close();
            return null;
          },
          (reason: unknown) => reason,
        );
        const message = error instanceof Error ? error.message : '';
        if (!message.includes(`:${first}: `) && !message.includes(`:${second}: `)) break;
      }
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toContain(`cannot listen on mqtts:127.0.0.1:${busyPort}: address already in use`);
      expect(await refused(first)).toBe(true);
      expect(await refused(second)).toBe(true);
      expect(existsSync(join(dataDirectory, 'keel.lock'))).toBe(false);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
    const again = await startServer({ dataDirectory, listeners: [listener('mqtt', null, { port: first })] });
    expect(again.port).toBe(first);
    await again.close();
  });

  it('reports settings and certificate problems together, before claiming the data directory', async () => {
    const dataDirectory = join(directory, 'never-created');
    const starting = startServer({
      dataDirectory,
      config: { packetBytesMax: 1 },
      listeners: [listener('mqtts', certificates, { keyFile: certificates.strayKey })],
      listenerProblems: ['listeners[1]: an earlier problem'],
    });
    const error = (await starting.catch((caught: unknown) => caught)) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.problems).toHaveLength(3);
    expect(error.problems[0]).toMatch(/packetBytesMax/);
    expect(error.problems[1]).toBe('listeners[1]: an earlier problem');
    expect(error.problems[2]).toMatch(/^listener mqtts:127\.0\.0\.1:0: keyFile .* does not match/);
    expect(existsSync(dataDirectory)).toBe(false);
  });
});
