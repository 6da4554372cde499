/**
 * Proves that the admin listener opens before recovery and tells the truth about it: a real
 * `keel serve` starts on a data directory holding a large log (about 48 MiB, built through the
 * store's own API by the recovery benchmark's builder), announces its admin listener at once, and
 * while it replays the log `/readyz` answers 503 `{"status": "recovering"}` (its MQTT listener not
 * yet open) and `/healthz` 200; once recovery is done and the MQTT listener listens, `/readyz`
 * answers 200 `{"status": "ready"}`. Polling is bounded by a deadline.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLog } from '../../bench/durability/log-builder.js';
import { ensureBuilt, type KeelProcess, runKeel, sleep, waitUntil } from './helpers.js';

const segmentBytesMax = 8 * 2 ** 20;
let directory = '';
let keel: KeelProcess | null = null;

beforeAll(async () => {
  ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), 'keel-readiness-'));
  await buildLog({ directory: join(directory, 'data'), logBytesTarget: 48 * 2 ** 20, payloadBytes: 64, messagesPerGroup: 100, segmentBytesMax }, () => undefined);
  // The log is replayed as it is: no snapshot at the end of recovery.
  writeFileSync(join(directory, 'config.json'), JSON.stringify({ segmentBytesMax, snapshotLogBytes: 2 ** 40, sysIntervalSeconds: 0 }));
}, 120_000);

afterAll(async () => {
  if (keel !== null && keel.child.exitCode === null) keel.child.kill('SIGKILL');
  await keel?.exited;
  rmSync(directory, { recursive: true, force: true });
});

async function probe(port: number, path: string): Promise<{ status: number; body: { status: string } }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: (await response.json()) as { status: string } };
}

describe('/readyz during recovery', () => {
  it('is 503 "recovering" while a large log is replayed, /healthz 200, and 200 "ready" once the MQTT listener listens', async () => {
    const running = runKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(directory, 'data'), '--config', join(directory, 'config.json'), '--admin-port', '0']);
    keel = running;
    let adminPort = 0;
    await waitUntil(
      () => {
        const match = /"event":"admin-listening".*"port":(\d+)/.exec(running.stdout());
        if (match !== null) adminPort = Number(match[1]);
        return adminPort > 0 || running.child.exitCode !== null;
      },
      10_000,
      'the admin-listening line',
    );
    expect(adminPort, running.stderr()).toBeGreaterThan(0);
    const during = await probe(adminPort, '/readyz');
    const listeningWhileRecovering = running.stdout().includes('"event":"listening"');
    expect(during).toEqual({ status: 503, body: { status: 'recovering' } });
    expect(listeningWhileRecovering).toBe(false);
    expect(await probe(adminPort, '/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    const deadlineMs = Date.now() + 60_000;
    let answer = during;
    while (answer.status !== 200 && Date.now() < deadlineMs) {
      await sleep(25);
      answer = await probe(adminPort, '/readyz');
    }
    expect(answer).toEqual({ status: 200, body: { status: 'ready' } });
    expect(running.stdout()).toContain('"event":"listening"');
    expect(running.stdout()).toMatch(/"event":"recovered","records":[1-9]\d{5,}/);
    running.child.kill('SIGTERM');
    expect(await running.exited).toBe(0);
  }, 90_000);
});
