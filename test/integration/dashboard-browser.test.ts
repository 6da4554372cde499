/**
 * Proves the dashboard in a real browser: headless Chromium (Debian's, driven by puppeteer-core)
 * opens the admin listener's page while a test load runs (two MQTT.js publishers sending QoS 0
 * messages to a subscriber, and an MQTT 5.0 client to be disconnected). It waits until the
 * message-rate chart has drawn a non-zero rate (the chart's own data and the figure shown above
 * it) and the clients table lists every client of the load, clicks Disconnect on the 5.0 client's
 * row, and sees the client get DISCONNECT 0x98 and its row go. The retained-message browser shows
 * a retained message of the load. A screenshot of the page is written to the test's temporary
 * folder (its path is printed, for a person to look at).
 *
 * Chromium runs as the tests' user (root in CI) with the flags that needs: no sandbox, no GPU, no
 * network features of its own, a fresh profile directory.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../io/server.js';
import { Clients, closedWithReason } from './helpers.js';

/** What the page functions below touch of the browser (this file is checked without the DOM types). */
interface PageScope {
  keelDashboard?: { charts: Record<string, { data: number[][] }> };
  document: { querySelector(selector: string): unknown };
}

const chromium = '/usr/bin/chromium';
const chromiumMissing = !existsSync(chromium) && process.env.CI !== 'true';

let directory = '';
let server: RunningServer;
let browser: Browser | null = null;
const clients = new Clients(() => server.port);
let loadTimer: NodeJS.Timeout | null = null;

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'keel-dashboard-'));
  server = await startServer({ host: '127.0.0.1', port: 0, dataDirectory: join(directory, 'data'), config: { admin: { host: '127.0.0.1', port: 0 } }, shutdownGraceMs: 500 });
});

afterAll(async () => {
  if (loadTimer !== null) clearInterval(loadTimer);
  await browser?.close();
  await clients.endAll();
  await server?.close();
  rmSync(join(directory, 'data'), { recursive: true, force: true });
  rmSync(join(directory, 'chromium-profile'), { recursive: true, force: true });
});

/** Publishes a few QoS 0 messages from each publisher every 50 ms until the test ends. */
function startLoad(publishers: MqttClient[]): void {
  let sequence = 0;
  loadTimer = setInterval(() => {
    for (const publisher of publishers) for (let index = 0; index < 5; index++) publisher.publish('load/rate', `m${sequence++}`, { qos: 0 });
  }, 50);
}

describe('the dashboard in headless Chromium', () => {
  it.skipIf(chromiumMissing)(
    'charts the load, lists its clients, and disconnects one from its row (skipped only when Chromium is missing outside CI; .ci/run installs it)',
    async () => {
      const { client: subscriber } = await clients.connect(4, { clientId: 'load-subscriber' });
      await subscriber.subscribeAsync('load/#', { qos: 0 });
      const publishers = [(await clients.connect(4, { clientId: 'load-publisher-1' })).client, (await clients.connect(5, { clientId: 'load-publisher-2' })).client];
      await publishers[0]!.publishAsync('load/retained-note', 'kept for the browser', { qos: 1, retain: true });
      const { client: victim } = await clients.connect(5, { clientId: 'load-victim' });
      const victimClosed = closedWithReason(victim);
      startLoad(publishers);

      browser = await puppeteer.launch({
        executablePath: chromium,
        headless: true,
        userDataDir: join(directory, 'chromium-profile'),
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
      const page = await browser.newPage();
      await page.setViewport({ width: 1400, height: 1100 });
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(String(error)));
      await page.goto(`http://127.0.0.1:${server.admin!.port}/`, { waitUntil: 'load' });

      // The rate chart has drawn (uPlot's canvas) a non-zero rate, and says so above it.
      await page.waitForFunction(
        () => {
          const scope = globalThis as unknown as PageScope;
          const chart = scope.keelDashboard?.charts.rate;
          return chart !== undefined && chart.data[1]!.some((value) => value > 0) && scope.document.querySelector('#chart-rate canvas') !== null;
        },
        { timeout: 15_000, polling: 100 },
      );
      const shownRate = await page.$eval('#latest-rate', (element) => element.textContent ?? '');
      expect(shownRate).toMatch(/^[1-9][\d,]*\/s in/);

      for (const clientId of ['load-subscriber', 'load-publisher-1', 'load-publisher-2', 'load-victim']) {
        await page.waitForSelector(`tr[data-client-id="${clientId}"]`, { timeout: 5_000 });
      }
      const versionCell = await page.$eval('tr[data-client-id="load-victim"]', (row) => row.children[4]!.textContent);
      expect(versionCell).toBe('5.0');
      await page.waitForSelector('#retained tr[data-topic="load/retained-note"]', { timeout: 5_000 });

      await page.click('tr[data-client-id="load-victim"] button[data-action="disconnect"]');
      expect(await victimClosed).toBe(0x98);
      await page.waitForFunction(() => (globalThis as unknown as PageScope).document.querySelector('tr[data-client-id="load-victim"]') === null, { timeout: 5_000, polling: 100 });
      expect(await page.$('tr[data-client-id="load-publisher-1"]')).not.toBeNull();

      const screenshot = join(directory, 'dashboard.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      expect(statSync(screenshot).size).toBeGreaterThan(10_000);
      process.stdout.write(`dashboard screenshot: ${screenshot}\n`);
      expect(pageErrors).toEqual([]);
    },
    60_000,
  );
});
