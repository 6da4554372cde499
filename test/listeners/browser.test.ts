/**
 * Proves a real browser can use Keel over WebSockets: headless Chromium (Debian's `chromium`,
 * driven by `puppeteer-core`; .ci/run installs it when missing) loads a test page from a tiny
 * local HTTP server, together with MQTT.js's own browser bundle (`mqtt/dist/mqtt.min.js`, served
 * from node_modules, no CDN). The page connects to Keel over ws and over wss, subscribes,
 * publishes a short message and a 100 KiB binary one, and reports what came back; the test
 * checks both round trips byte for byte. The ws listener allows the page's origin only, and a
 * second ws listener that allows another origin refuses the same page (HTTP 403).
 *
 * Trusting the test CA: Chromium is started with `--ignore-certificate-errors-spki-list` naming
 * the SHA-256 hash of the server key's SubjectPublicKeyInfo. That accepts exactly the test
 * server's key, and certificate checking stays on for everything else (unlike
 * `--ignore-certificate-errors`); the flag needs a `--user-data-dir`, and each run gets a fresh
 * one.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { repositoryRoot } from '../integration/helpers.js';
import { makeTestCertificates, type TestCertificates } from './certificates.js';
import { listener, startWithListeners, urlOf } from './listener-helpers.js';

const chromiumPath = '/usr/bin/chromium';

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>Keel over WebSocket</title>
<script src="/mqtt.min.js"></script>
<script>
  // Connects, subscribes to browser/#, publishes a short text and a binary payload of bigBytes
  // (byte i is i % 251), and resolves with what came back, or with the connection's error.
  window.roundTrip = (url, bigBytes) => new Promise((resolve) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, clientId: 'browser-' + Math.random().toString(16).slice(2) });
    const received = {};
    const finish = (result) => { client.end(true); resolve(result); };
    client.on('error', (error) => finish({ error: String(error && error.message || error) }));
    client.on('close', () => finish({ error: 'closed', received }));
    client.on('message', (topic, payload) => {
      received[topic] = topic === 'browser/big' ? { length: payload.length, intact: payload.every((byte, index) => byte === index % 251) } : new TextDecoder().decode(payload);
      if (Object.keys(received).length === 2) finish({ received });
    });
    client.on('connect', () => {
      client.subscribe('browser/#', { qos: 1 }, (error) => {
        if (error) return finish({ error: 'subscribe: ' + error.message });
        const big = new Uint8Array(bigBytes).map((_, index) => index % 251);
        client.publish('browser/small', 'hello from ' + location.origin, { qos: 1 });
        client.publish('browser/big', big, { qos: 1 });
      });
    });
  });
</script></head><body>Keel</body></html>`;

let certificates: TestCertificates;
let pages: http.Server;
let pageOrigin: string;
let server: RunningServer;
let browser: Browser;
let profile: string;

beforeAll(async () => {
  try {
    execFileSync(chromiumPath, ['--version'], { stdio: 'pipe' });
  } catch {
    throw new Error(`${chromiumPath} is missing: apt-get install chromium (.ci/run does it)`);
  }
  certificates = makeTestCertificates();
  const bundle = readFileSync(join(repositoryRoot, 'node_modules', 'mqtt', 'dist', 'mqtt.min.js'));
  pages = http.createServer((request, response) => {
    if (request.url === '/mqtt.min.js') response.writeHead(200, { 'Content-Type': 'text/javascript' }).end(bundle);
    else if (request.url === '/') response.writeHead(200, { 'Content-Type': 'text/html' }).end(page);
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
  pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
  ({ server } = await startWithListeners([
    listener('ws', null, { allowedOrigins: [pageOrigin] }),
    listener('wss', certificates),
    listener('ws', null, { allowedOrigins: ['https://elsewhere.example'] }),
  ]));
  profile = mkdtempSync(join(tmpdir(), 'keel-chromium-'));
  browser = await puppeteer.launch({
    executablePath: chromiumPath,
    headless: true,
    userDataDir: profile,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--ignore-certificate-errors-spki-list=${certificates.serverSpkiSha256}`,
    ],
  });
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await new Promise<void>((resolve) => (pages === undefined ? resolve() : pages.close(() => resolve())));
  certificates?.remove();
  if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
});

interface Outcome {
  error?: string;
  received?: { 'browser/small'?: string; 'browser/big'?: { length: number; intact: boolean } };
}

async function roundTripInBrowser(url: string): Promise<Outcome> {
  const tab = await browser.newPage();
  try {
    await tab.goto(`${pageOrigin}/`);
    return (await tab.evaluate((target, bytes) => (globalThis as unknown as { roundTrip: (url: string, bytes: number) => Promise<unknown> }).roundTrip(target, bytes), url, 100 * 1024)) as Outcome;
  } finally {
    await tab.close();
  }
}

describe('a browser', () => {
  for (const [index, protocol] of [
    [0, 'ws'],
    [1, 'wss'],
  ] as const) {
    it(`round-trips a short and a 100 KiB message over ${protocol} with MQTT.js's browser bundle`, async () => {
      const outcome = await roundTripInBrowser(urlOf(server, index));
      expect(outcome).toEqual({ received: { 'browser/small': `hello from ${pageOrigin}`, 'browser/big': { length: 100 * 1024, intact: true } } });
    }, 30_000);
  }

  it('is refused by a listener that does not allow its origin', async () => {
    const outcome = await roundTripInBrowser(urlOf(server, 2));
    expect(outcome.error).toBeDefined();
    expect(outcome.received?.['browser/small']).toBeUndefined();
    expect(server.listenerCounters()[server.listeners[2]!.name]!.webSocketUpgradeRefused).toBe(1);
  }, 30_000);
});
