/**
 * Proves listeners as `keel serve` users meet them, in child processes of the real executable:
 *
 * - a config file's `listeners` (certificate paths relative to the file) open all four protocols,
 *   one `listening` line each naming protocol, host, port and path, and clients reach every one;
 * - the convenience flags (--tls-port, --ws-port, --wss-port with --cert and --key) do the same;
 * - a bad configuration stops the start before anything listens, exit 2, with every problem
 *   listed: the list's own (unknown protocol, a ws listener without path, certificate options on a
 *   plain listener, two listeners on one port), the certificates' (missing file, a key of another
 *   certificate, an expired certificate) and the broker settings', together;
 * - a certificate that expires within 14 days is a warning at start-up;
 * - `listeners` in the file together with --port, and --cert without a TLS port, are usage errors;
 * - a port in use on the third listener stops the start with exit 1 naming that listener, nothing
 *   announced as listening and the data directory's lock released (a second start there works);
 * - SIGHUP reloads the certificates and says so in its reload line.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCertificates, type TestCertificates } from '../listeners/certificates.js';
import { ensureBuilt, type KeelProcess, runKeel, waitUntil } from './helpers.js';

let certificates: TestCertificates;
let directory: string;
const children: KeelProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  certificates = makeTestCertificates();
  directory = mkdtempSync(join(tmpdir(), 'keel-listeners-cli-'));
  // Relative names in the config file resolve against its directory.
  copyFileSync(certificates.serverCert, join(directory, 'server.crt'));
  copyFileSync(certificates.serverKey, join(directory, 'server.key'));
  copyFileSync(certificates.caFile, join(directory, 'ca.crt'));
}, 60_000);

afterAll(() => {
  for (const keel of children) keel.child.kill('SIGKILL');
  certificates.remove();
  rmSync(directory, { recursive: true, force: true });
});

function keel(args: string[]): KeelProcess {
  const started = runKeel(args);
  children.push(started);
  return started;
}

function writeConfig(name: string, settings: Record<string, unknown>): string {
  const file = join(directory, name);
  writeFileSync(file, JSON.stringify(settings));
  return file;
}

interface ListeningLine {
  host: string;
  port: number;
  protocol: string;
  path?: string;
  listener: string;
}

function listeningLines(process: KeelProcess): ListeningLine[] {
  return process
    .stdout()
    .split('\n')
    .filter((line) => line.includes('"event":"listening"'))
    .map((line) => JSON.parse(line) as ListeningLine);
}

async function waitForListening(process: KeelProcess, count: number): Promise<ListeningLine[]> {
  await Promise.race([
    waitUntil(() => listeningLines(process).length >= count, 15_000, `${count} listening lines`),
    process.exited.then((code) => {
      throw new Error(`keel serve exited with ${code}: ${process.stderr()}`);
    }),
  ]);
  return listeningLines(process);
}

async function roundTrip(url: string): Promise<string> {
  const client = await mqtt.connectAsync(url, { ca: readFileSync(certificates.caFile), reconnectPeriod: 0, connectTimeout: 5_000 });
  try {
    await client.subscribeAsync('cli/listeners');
    const arrived = new Promise<string>((resolve) => client.on('message', (_topic, payload) => resolve(payload.toString())));
    await client.publishAsync('cli/listeners', url);
    return await arrived;
  } finally {
    await client.endAsync(true);
  }
}

function urlOf(line: ListeningLine): string {
  return `${line.protocol}://127.0.0.1:${line.port}${line.path ?? ''}`;
}

async function busyPort(): Promise<net.Server> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

describe('keel serve listeners', () => {
  it('opens every listener of the config file, one listening line each, and serves clients on all', async () => {
    const config = writeConfig('four.json', {
      listeners: [
        { protocol: 'mqtt', host: '127.0.0.1', port: 0 },
        { protocol: 'mqtts', host: '127.0.0.1', port: 0, certFile: 'server.crt', keyFile: 'server.key', caFile: 'ca.crt' },
        { protocol: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
        { protocol: 'wss', host: '127.0.0.1', port: 0, path: '/ws', certFile: 'server.crt', keyFile: 'server.key' },
      ],
    });
    const broker = keel(['serve', '--config', config, '--data-dir', join(directory, 'data-four')]);
    const lines = await waitForListening(broker, 4);
    expect(lines.map((line) => [line.protocol, line.host, line.path ?? null])).toEqual([
      ['mqtt', '127.0.0.1', null],
      ['mqtts', '127.0.0.1', null],
      ['ws', '127.0.0.1', '/mqtt'],
      ['wss', '127.0.0.1', '/ws'],
    ]);
    for (const line of lines) {
      expect(line.listener).toBe(`${line.protocol}:127.0.0.1:${line.port}`);
      expect(await roundTrip(urlOf(line))).toBe(urlOf(line));
    }
    broker.child.kill('SIGTERM');
    expect(await broker.exited).toBe(0);
  });

  it('opens TLS and WebSocket listeners from the convenience flags', async () => {
    const broker = keel([
      'serve',
      '--port',
      '0',
      '--tls-port',
      '0',
      '--ws-port',
      '0',
      '--wss-port',
      '0',
      '--cert',
      certificates.serverCert,
      '--key',
      certificates.serverKey,
      '--data-dir',
      join(directory, 'data-flags'),
    ]);
    const lines = await waitForListening(broker, 4);
    expect(lines.map((line) => line.protocol)).toEqual(['mqtt', 'mqtts', 'ws', 'wss']);
    expect(await roundTrip(urlOf(lines[1]!))).toBe(urlOf(lines[1]!));
    expect(await roundTrip(urlOf(lines[3]!))).toBe(urlOf(lines[3]!));
    expect(broker.stdout()).toContain('"event":"local-only"');
    broker.child.kill('SIGTERM');
    expect(await broker.exited).toBe(0);
  });

  it('lists every configuration problem at once and exits 2 before listening', async () => {
    const config = writeConfig('bad.json', {
      colour: 'blue',
      listeners: [
        { protocol: 'mqttx', port: 1883 },
        { protocol: 'ws', host: '127.0.0.1', port: 0 },
        { protocol: 'mqtt', host: '127.0.0.1', port: 18830, certFile: 'server.crt' },
        { protocol: 'mqtt', host: '0.0.0.0', port: 18830 },
        { protocol: 'mqtts', host: '127.0.0.1', port: 0, certFile: 'missing.crt', keyFile: 'server.key' },
        { protocol: 'mqtts', host: '127.0.0.1', port: 0, certFile: 'server.crt', keyFile: certificates.strayKey },
        { protocol: 'wss', host: '127.0.0.1', port: 0, path: '/mqtt', certFile: certificates.expiredCert, keyFile: certificates.expiredKey },
      ],
    });
    const broker = keel(['serve', '--config', config, '--data-dir', join(directory, 'data-bad')]);
    expect(await broker.exited).toBe(2);
    const stderr = broker.stderr();
    expect(stderr).toMatch(new RegExp(`^keel: invalid configuration in ${config.replace(/[.]/g, '\\.')}:\\n`));
    for (const problem of [
      /unknown setting "colour"|"colour"/,
      /listeners\[0\]: "protocol" must be one of mqtt, mqtts, ws, wss \(got "mqttx"\)/,
      /listeners\[1\]: a ws listener needs "path"/,
      /listeners\[2\]: "certFile" is for TLS listeners \(mqtts, wss\), not mqtt/,
      /cannot read certFile .*missing\.crt: ENOENT/,
      /keyFile .*stray\.key does not match the certificate in certFile .*server\.crt/,
      /the certificate in certFile .*expired\.crt expired on/,
    ]) {
      expect(stderr).toMatch(problem);
    }
    expect(broker.stdout()).not.toContain('"event":"listening"');
    // The duplicate port is found among the listeners that are otherwise fine.
    const duplicate = keel([
      'serve',
      '--config',
      writeConfig('duplicate.json', {
        listeners: [
          { protocol: 'mqtt', host: '127.0.0.1', port: 18830 },
          { protocol: 'ws', host: '0.0.0.0', port: 18830, path: '/mqtt' },
        ],
      }),
      '--data-dir',
      join(directory, 'data-duplicate'),
    ]);
    expect(await duplicate.exited).toBe(2);
    expect(duplicate.stderr()).toMatch(/listeners mqtt:127\.0\.0\.1:18830 and ws:0\.0\.0\.0:18830 use the same port 18830/);
  });

  it('warns at start-up about a certificate that expires within 14 days', async () => {
    const broker = keel(['serve', '--port', '0', '--tls-port', '0', '--cert', certificates.expiringCert, '--key', certificates.expiringKey, '--data-dir', join(directory, 'data-expiring')]);
    await waitForListening(broker, 2);
    const warning = broker
      .stdout()
      .split('\n')
      .find((line) => line.includes('"event":"tls-certificate-expiring"'));
    expect(JSON.parse(warning!)).toMatchObject({ level: 'warn', detail: expect.stringMatching(/expiring\.crt expires on .*, in [67]\.\d days/) });
    broker.child.kill('SIGTERM');
    expect(await broker.exited).toBe(0);
  });

  it('refuses listeners in the file together with --port, and --cert without a TLS port (exit 2)', async () => {
    const config = writeConfig('one.json', { listeners: [{ protocol: 'mqtt', host: '127.0.0.1', port: 0 }] });
    const both = keel(['serve', '--config', config, '--port', '1884', '--data-dir', join(directory, 'data-usage')]);
    expect(await both.exited).toBe(2);
    expect(both.stderr()).toMatch(/the config file lists "listeners", so --port cannot be used as well/);
    const certOnly = keel(['serve', '--cert', certificates.serverCert, '--data-dir', join(directory, 'data-usage')]);
    expect(await certOnly.exited).toBe(2);
    expect(certOnly.stderr()).toMatch(/--cert needs --tls-port or --wss-port/);
  });

  it('stops cleanly when the third listener cannot bind: exit 1 naming it, nothing left listening, lock released', async () => {
    const busy = await busyPort();
    const port = (busy.address() as net.AddressInfo).port;
    const dataDirectory = join(directory, 'data-busy');
    try {
      const config = writeConfig('busy.json', {
        listeners: [
          { protocol: 'mqtt', host: '127.0.0.1', port: 0 },
          { protocol: 'ws', host: '127.0.0.1', port: 0, path: '/mqtt' },
          { protocol: 'mqtts', host: '127.0.0.1', port, certFile: 'server.crt', keyFile: 'server.key' },
        ],
      });
      const broker = keel(['serve', '--config', config, '--data-dir', dataDirectory]);
      expect(await broker.exited).toBe(1);
      expect(broker.stderr()).toBe(`keel: cannot start: cannot listen on mqtts:127.0.0.1:${port}: address already in use\n`);
      expect(broker.stdout()).not.toContain('"event":"listening"');
      expect(existsSync(join(dataDirectory, 'keel.lock'))).toBe(false);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
    const again = keel(['serve', '--port', '0', '--data-dir', dataDirectory]);
    await waitForListening(again, 1);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  });

  it('reloads the certificates on SIGHUP and says so', async () => {
    const broker = keel(['serve', '--port', '0', '--tls-port', '0', '--cert', certificates.serverCert, '--key', certificates.serverKey, '--data-dir', join(directory, 'data-hup')]);
    const lines = await waitForListening(broker, 2);
    broker.child.kill('SIGHUP');
    await waitUntil(() => broker.stdout().includes('"event":"reload"'), 10_000, 'the reload line');
    const reload = JSON.parse(
      broker
        .stdout()
        .split('\n')
        .find((line) => line.includes('"event":"reload"'))!,
    ) as { reloaded: string };
    expect(reload.reloaded).toMatch(new RegExp(`^TLS certificate of mqtts:127\\.0\\.0\\.1:${lines[1]!.port}: CN=localhost, valid to .*, for new connections$`));
    broker.child.kill('SIGTERM');
    expect(await broker.exited).toBe(0);
  });
});
