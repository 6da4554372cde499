/**
 * Proves the stream routes of the admin API (io/admin/admin-api.ts) over real HTTP against a
 * running broker, and `keel stream ls|create|delete --admin` through them: `GET /api/v1/streams`
 * lists the configured stream with its offsets; `POST` creates one from a body shaped like a
 * configuration entry (201), which a real MQTT 5.0 client then reads through `$stream/NAME` from
 * earliest; a duplicate name, an invalid filter, a malformed body or an unknown field is 400,
 * deleting an unknown stream 404, a wrong method 405; `DELETE` removes it (and it stays gone after
 * a restart on the same data directory); with a token file, creating needs the token (401
 * without); `/metrics` carries the stream counters and gauges.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../io/server.js';
import { Clients, ensureBuilt, runKeel } from './helpers.js';

let directory = '';
let server: RunningServer;
const clients = new Clients(() => server.port);

// biome-ignore lint/suspicious/noExplicitAny: the tests read answers field by field and assert each one
type Json = any;

function adminBase(target: RunningServer = server): string {
  return `http://127.0.0.1:${target.admin!.port}`;
}

async function call(path: string, init: RequestInit = {}, target: RunningServer = server): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${adminBase(target)}${path}`, init);
  const text = await response.text();
  return { status: response.status, body: response.headers.get('content-type')?.startsWith('application/json') === true ? JSON.parse(text) : text };
}

const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'Content-Type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });

function start(dataDirectory: string, admin: Record<string, unknown> = { host: '127.0.0.1', port: 0 }): Promise<RunningServer> {
  return startServer({
    host: '127.0.0.1',
    port: 0,
    dataDirectory,
    shutdownGraceMs: 500,
    config: { admin, sysIntervalSeconds: 0, streams: [{ name: 'sensors', filter: 'sensors/#', retentionMs: 0, retentionBytes: 0, lastValue: false }] },
  });
}

beforeAll(async () => {
  ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), 'keel-admin-streams-'));
  server = await start(join(directory, 'data'));
});

afterEach(() => clients.endAll());

afterAll(async () => {
  await server.close();
  rmSync(directory, { recursive: true, force: true });
});

describe('the stream routes', () => {
  it('lists streams with their offsets, creates one that clients can read, deletes it', async () => {
    const { client: publisher } = await clients.connect(5, { clientId: 'stream-publisher' });
    await publisher.publishAsync('sensors/a', 'one', { qos: 1 });
    const listed = await call('/api/v1/streams');
    expect(listed.status).toBe(200);
    expect(listed.body.next).toBeNull();
    expect(listed.body.items.find((item: { name: string }) => item.name === 'sensors')).toMatchObject({ filter: 'sensors/#', firstOffset: 0, nextOffset: 1, lastValue: false });

    const created = await call('/api/v1/streams', post({ name: 'alerts', filter: 'alerts/#', retentionMs: 60_000, lastValue: true }));
    expect([created.status, created.body]).toEqual([201, { created: 'alerts' }]);
    const after = await call('/api/v1/streams');
    expect(after.body.items.find((item: { name: string }) => item.name === 'alerts')).toMatchObject({ filter: 'alerts/#', retentionMs: 60_000, retentionBytes: 0, lastValue: true, nextOffset: 0 });

    await publisher.publishAsync('alerts/fire', 'hot', { qos: 1 });
    const { client: reader, inbox } = await clients.connect(5, { clientId: 'stream-reader' });
    await reader.subscribeAsync('$stream/alerts', { qos: 1, properties: { userProperties: { 'stream-offset': 'earliest' } } });
    const [message] = await inbox.waitFor(1);
    expect([message!.topic, Buffer.from(message!.payload).toString()]).toEqual(['alerts/fire', 'hot']);
    expect(message!.properties?.userProperties?.['stream-offset']).toBe('0');

    const deleted = await call('/api/v1/streams/alerts', { method: 'DELETE' });
    expect([deleted.status, deleted.body]).toEqual([200, { deleted: 'alerts' }]);
    const gone = await call('/api/v1/streams');
    expect(gone.body.items.map((item: { name: string }) => item.name)).toEqual(['sensors']);
  });

  it('answers bad input with 400, an unknown stream with 404 and a wrong method with 405', async () => {
    const duplicate = await call('/api/v1/streams', post({ name: 'sensors', filter: 'other/#' }));
    expect([duplicate.status, duplicate.body.error.code]).toEqual([400, 'bad-request']);
    expect(duplicate.body.error.message).toContain('sensors');
    for (const body of [
      '{not json',
      '[1]',
      { name: 'x', filter: 'a/#/b' },
      { name: 'bad name', filter: 'a' },
      { name: 'x', filter: 'a', colour: 'red' },
      { name: 'x', filter: 'a', retentionMs: '5' },
      { name: 'x' },
    ]) {
      const answer = await call('/api/v1/streams', post(body));
      expect([JSON.stringify(body), answer.status]).toEqual([JSON.stringify(body), 400]);
    }
    const unknown = await call('/api/v1/streams/nothing-here', { method: 'DELETE' });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'not-found']);
    expect((await call('/api/v1/streams', { method: 'DELETE' })).status).toBe(405);
    expect((await call('/api/v1/streams/sensors')).status).toBe(405);
  });

  it('exports the stream counters and gauges in /metrics', async () => {
    const { client } = await clients.connect(5, { clientId: 'metrics-publisher' });
    await client.publishAsync('sensors/m', 'x', { qos: 1 });
    const metrics = await call('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^keel_streams 1$/m);
    const appended = Number(/^keel_stream_entries_appended_total (\d+)$/m.exec(metrics.body)?.[1]);
    expect(appended).toBeGreaterThanOrEqual(1);
    expect(metrics.body).toMatch(/^keel_stream_bytes \d+$/m);
    expect(metrics.body).toMatch(/^keel_stream_memory_bytes \d+$/m);
    expect(metrics.body).toMatch(/^keel_throttle_stream_pauses_total \d+$/m);
    expect(metrics.body).toContain('# TYPE keel_stream_deliveries_total counter');
  });
});

describe('keel stream --admin', () => {
  it('lists, creates and deletes streams of a running broker, with the token when there is one', async () => {
    const tokenFile = join(directory, 'token');
    writeFileSync(tokenFile, 'a-token-for-the-stream-commands\n');
    const guarded = await start(join(directory, 'guarded'), { host: '127.0.0.1', port: 0, tokenFile });
    try {
      const admin = adminBase(guarded);
      const refused = runKeel(['stream', 'create', 'jobs', '--filter', 'jobs/#', '--admin', admin]);
      expect(await refused.exited).toBe(1);
      expect(refused.stderr()).toContain('401');
      const create = runKeel(['stream', 'create', 'jobs', '--filter', 'jobs/#', '--retention-bytes', '1048576', '--admin', admin, '--token-file', tokenFile]);
      expect(await create.exited, create.stderr()).toBe(0);
      const list = runKeel(['stream', 'ls', '--json', '--admin', admin]);
      expect(await list.exited, list.stderr()).toBe(0);
      const names = list
        .stdout()
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { name: string; retentionBytes: number });
      expect(names.map((stream) => [stream.name, stream.retentionBytes])).toEqual([
        ['jobs', 1_048_576],
        ['sensors', 0],
      ]);
      const duplicate = runKeel(['stream', 'create', 'jobs', '--filter', 'jobs/#', '--admin', admin, '--token-file', tokenFile]);
      expect(await duplicate.exited).toBe(1);
      const remove = runKeel(['stream', 'delete', 'jobs', '--admin', admin, '--token-file', tokenFile]);
      expect(await remove.exited, remove.stderr()).toBe(0);
      expect((await call('/api/v1/streams', {}, guarded)).body.items.map((item: { name: string }) => item.name)).toEqual(['sensors']);
      const badUrl = runKeel(['stream', 'ls', '--admin', 'ftp://nowhere']);
      expect(await badUrl.exited).toBe(2);
    } finally {
      await guarded.close();
    }
    // Deleted for good: a restart on the same directory does not bring it back.
    const again = await start(join(directory, 'guarded'));
    try {
      expect((await call('/api/v1/streams', {}, again)).body.items.map((item: { name: string }) => item.name)).toEqual(['sensors']);
    } finally {
      await again.close();
    }
  }, 60_000);
});
