/**
 * Proves the admin API (io/admin/admin-api.ts, admin-server.ts) over real HTTP against a broker
 * with real MQTT clients: it lists clients with their details (wall-clock connect time, protocol
 * version, subscriptions) and pages through them with `limit`/`after`; `DELETE /clients/{id}`
 * disconnects a client (MQTT.js 5.0 sees DISCONNECT 0x98) and keeps its session; `DELETE
 * /sessions/{id}` ends a session for good (gone after a restart on the same data directory too,
 * and the client then finds no session); `DELETE /retained/{topic}` clears a retained message
 * (a new subscriber gets nothing); bad input gets 400, unknown things 404, wrong methods 405, a
 * `$SYS` topic 409, a large body 413; with a token file every write needs the token (401
 * without it or with a wrong one) while reads on loopback stay open; a request addressed to
 * another host name is refused (403); reads past 50 a second get 503 `busy`, and are served again
 * a second later.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../io/server.js';
import { Clients, closedWithReason, sleep } from './helpers.js';

let directory = '';
let server: RunningServer;
const clients = new Clients(() => server.port);
const token = 'a-test-token-of-enough-length';

/** A parsed JSON answer: the assertions below say what shape it must have. */
// biome-ignore lint/suspicious/noExplicitAny: the tests read answers field by field and assert each one
type Json = any;

function adminUrl(path: string, target: RunningServer = server): string {
  return `http://127.0.0.1:${target.admin!.port}${path}`;
}

async function call(path: string, init: RequestInit = {}, target: RunningServer = server): Promise<{ status: number; body: Json; headers: Headers }> {
  const response = await fetch(adminUrl(path, target), init);
  const text = await response.text();
  const json = response.headers.get('content-type')?.startsWith('application/json') === true;
  return { status: response.status, body: json ? JSON.parse(text) : text, headers: response.headers };
}

const withToken = (value: string): RequestInit => ({ method: 'DELETE', headers: { Authorization: `Bearer ${value}` } });

function start(dataDirectory: string, admin: Record<string, unknown> = { host: '127.0.0.1', port: 0 }): Promise<RunningServer> {
  return startServer({ host: '127.0.0.1', port: 0, dataDirectory, shutdownGraceMs: 500, config: { admin, sysIntervalSeconds: 0 } });
}

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'keel-admin-api-'));
  server = await start(join(directory, 'data'));
});

afterEach(() => clients.endAll());

afterAll(async () => {
  await server.close();
  rmSync(directory, { recursive: true, force: true });
});

describe('reading', () => {
  it('lists clients with their details, and one client with its subscriptions', async () => {
    const beforeMs = Date.now();
    const { client } = await clients.connect(5, { clientId: 'detail-5', username: 'ann', keepalive: 42 });
    await client.subscribeAsync(['detail/a', 'detail/b/#'], { qos: 1 });
    await clients.connect(4, { clientId: 'detail-4' });
    const { status, body } = await call('/api/v1/clients');
    expect(status).toBe(200);
    const byId = new Map<string, Json>(body.items.map((item: { clientId: string }) => [item.clientId, item]));
    expect(byId.get('detail-5')).toMatchObject({ username: 'ann', listener: server.listeners[0].name, protocolVersion: '5.0', keepAliveSeconds: 42, subscriptions: 2, queued: 0, inflight: 0 });
    expect(byId.get('detail-4')).toMatchObject({ username: null, protocolVersion: '3.1.1' });
    expect(byId.get('detail-5').remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const connectedMs = Date.parse(byId.get('detail-5').connectedAt);
    expect(connectedMs).toBeGreaterThanOrEqual(beforeMs - 50);
    expect(connectedMs).toBeLessThanOrEqual(Date.now() + 50);
    const detail = await call('/api/v1/clients/detail-5');
    expect(detail.body.subscriptionList.map((item: { filter: string; qos: number }) => [item.filter, item.qos])).toEqual([
      ['detail/a', 1],
      ['detail/b/#', 1],
    ]);
    const subscriptions = await call('/api/v1/subscriptions?limit=1000');
    expect(subscriptions.body.items.filter((item: { clientId: string }) => item.clientId === 'detail-5')).toHaveLength(2);
  });

  it('pages through clients with limit and after, in client id order', async () => {
    for (const clientId of ['page-c', 'page-a', 'page-e', 'page-b', 'page-d']) await clients.connect(5, { clientId });
    const seen: string[] = [];
    let after: string | null = 'page-';
    for (let pages = 0; pages < 10 && after !== null; pages++) {
      const { body } = await call(`/api/v1/clients?limit=2&after=${encodeURIComponent(after)}`);
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((item: { clientId: string }) => item.clientId).filter((id: string) => id.startsWith('page-')));
      after = body.next;
      if (body.items.some((item: { clientId: string }) => !item.clientId.startsWith('page-'))) break;
    }
    expect(seen).toEqual(['page-a', 'page-b', 'page-c', 'page-d', 'page-e']);
  });

  it('answers bad input with 400, unknown things with 404 and wrong methods with 405, all as JSON errors', async () => {
    for (const query of ['limit=0', 'limit=1001', 'limit=two', 'limit=1.5']) {
      const { status, body } = await call(`/api/v1/clients?${query}`);
      expect([query, status, body.error.code]).toEqual([query, 400, 'bad-request']);
    }
    expect((await call('/api/v1/retained?filter=a/%23/b')).status).toBe(400);
    expect((await call('/api/v1/clients/%E0%A4%A')).status).toBe(400);
    const unknown = await call('/api/v1/clients/nobody-here');
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'not-found']);
    expect((await call('/api/v1/nothing')).status).toBe(404);
    expect((await call('/nothing')).status).toBe(404);
    const wrong = await call('/api/v1/clients', { method: 'POST' });
    expect([wrong.status, wrong.headers.get('allow')]).toEqual([405, 'GET']);
    expect((await call('/api/v1/sessions/someone')).status).toBe(405);
    expect((await call('/metrics', { method: 'DELETE' })).status).toBe(405);
  });

  it('refuses a request body over 64 KiB with 413', async () => {
    const { status, body } = await call('/api/v1/clients/x', { method: 'DELETE', body: 'x'.repeat(70 * 1024) });
    expect([status, body.error.code]).toEqual([413, 'payload-too-large']);
  });

  it('refuses a request addressed to a name other than loopback (403)', async () => {
    const answer = await new Promise<number>((resolve, reject) => {
      import('node:http').then(({ request }) => {
        const outgoing = request({ host: '127.0.0.1', port: server.admin!.port, path: '/api/v1/clients', headers: { Host: 'attacker.example' } }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        outgoing.on('error', reject);
        outgoing.end();
      }, reject);
    });
    expect(answer).toBe(403);
  });
});

describe('changes go through the core', () => {
  it('DELETE /clients/{id} disconnects the client with 0x98 and keeps its session', async () => {
    const { client } = await clients.connect(5, { clientId: 'kick-me', clean: false, properties: { sessionExpiryInterval: 300 } });
    const closed = closedWithReason(client);
    const { status, body } = await call('/api/v1/clients/kick-me', { method: 'DELETE' });
    expect([status, body]).toEqual([200, { disconnected: 'kick-me' }]);
    expect(await closed).toBe(0x98);
    const sessions = await call('/api/v1/sessions?limit=1000');
    expect(sessions.body.items.find((item: { clientId: string }) => item.clientId === 'kick-me')).toMatchObject({ online: false });
    expect((await call('/api/v1/clients/kick-me', { method: 'DELETE' })).status).toBe(404);
  });

  it('DELETE /retained/{topic} clears the retained message (URL-encoded topic)', async () => {
    const { client } = await clients.connect(5);
    await client.publishAsync('shelf/one item', 'kept', { qos: 1, retain: true });
    const listed = await call(`/api/v1/retained?filter=${encodeURIComponent('shelf/#')}`);
    expect(listed.body.items).toEqual([expect.objectContaining({ topic: 'shelf/one item', payloadText: 'kept', qos: 1, payloadBytes: 4 })]);
    expect((await call(`/api/v1/retained/${encodeURIComponent('shelf/one item')}`, { method: 'DELETE' })).status).toBe(200);
    expect((await call(`/api/v1/retained?filter=${encodeURIComponent('shelf/#')}`)).body.items).toEqual([]);
    const { client: reader, inbox } = await clients.connect(5);
    await reader.subscribeAsync('shelf/#', { qos: 1 });
    await sleep(100);
    expect(inbox.messages).toEqual([]);
    expect((await call(`/api/v1/retained/${encodeURIComponent('shelf/one item')}`, { method: 'DELETE' })).status).toBe(404);
    const broker = await call(`/api/v1/retained/${encodeURIComponent('$SYS/broker/version')}`, { method: 'DELETE' });
    expect([broker.status, broker.body.error.code]).toEqual([409, 'conflict']);
  });
});

describe('a session deleted through the API', () => {
  it('is gone at once and after a restart on the same data directory', async () => {
    const dataDirectory = join(directory, 'restart');
    let own = await start(dataDirectory);
    try {
      const sessionClients = new Clients(() => own.port);
      const { client } = await sessionClients.connect(5, { clientId: 'doomed', clean: false, properties: { sessionExpiryInterval: 3_600 } });
      await client.subscribeAsync('doomed/#', { qos: 1 });
      await sessionClients.connect(5, { clientId: 'survivor', clean: false, properties: { sessionExpiryInterval: 3_600 } });
      await sessionClients.endAll();
      const ids = async (): Promise<string[]> => (await call('/api/v1/sessions', {}, own)).body.items.map((item: { clientId: string }) => item.clientId);
      expect(await ids()).toEqual(['doomed', 'survivor']);
      expect((await call('/api/v1/sessions/doomed', { method: 'DELETE' }, own)).body).toEqual({ deleted: 'doomed' });
      expect(await ids()).toEqual(['survivor']);
      await own.close();
      own = await start(dataDirectory);
      expect(await ids()).toEqual(['survivor']);
      const again = new Clients(() => own.port);
      const { connack } = await again.connect(5, { clientId: 'doomed', clean: false, properties: { sessionExpiryInterval: 3_600 } });
      expect(connack.sessionPresent).toBe(false);
      await again.endAll();
      expect((await call('/api/v1/sessions/nobody', { method: 'DELETE' }, own)).status).toBe(404);
    } finally {
      await own.close();
    }
  }, 20_000);
});

describe('with a token file', () => {
  it('needs the token for every write, compares it exactly, and leaves loopback reads open', async () => {
    const tokenFile = join(directory, 'token');
    writeFileSync(tokenFile, `${token}\n`);
    const guarded = await start(join(directory, 'guarded'), { host: '127.0.0.1', port: 0, tokenFile });
    try {
      const guardedClients = new Clients(() => guarded.port);
      const { client } = await guardedClients.connect(5, { clientId: 'guarded-client', clean: false, properties: { sessionExpiryInterval: 300 } });
      const closed = closedWithReason(client);
      const missing = await call('/api/v1/clients/guarded-client', { method: 'DELETE' }, guarded);
      expect([missing.status, missing.body.error.code, missing.headers.get('www-authenticate')]).toEqual([401, 'unauthorized', 'Bearer realm="keel"']);
      expect((await call('/api/v1/clients/guarded-client', withToken(`${token}x`), guarded)).status).toBe(401);
      expect((await call('/api/v1/clients/guarded-client', withToken(token.slice(0, -1)), guarded)).status).toBe(401);
      expect((await call('/api/v1/clients', {}, guarded)).status).toBe(200);
      expect((await call('/metrics', {}, guarded)).status).toBe(200);
      expect((await call('/api/v1/clients/guarded-client', withToken(token), guarded)).status).toBe(200);
      expect(await closed).toBe(0x98);
      // SIGHUP's reload takes a new token; the old one stops working.
      writeFileSync(tokenFile, 'the-second-token-of-this-test\n');
      expect(guarded.reload().outcomes.find((outcome) => outcome.what === 'admin token file')?.ok).toBe(true);
      expect((await call('/api/v1/sessions/guarded-client', withToken(token), guarded)).status).toBe(401);
      expect((await call('/api/v1/sessions/guarded-client', withToken('the-second-token-of-this-test'), guarded)).status).toBe(200);
      await guardedClients.endAll();
    } finally {
      await guarded.close();
    }
  });
});

describe('reads of the tables', () => {
  it('are limited to 50 a second: past that 503 busy, served again a second later', async () => {
    const limited = await start(join(directory, 'limited'));
    try {
      // Each burst goes at once, so that it lands within the limit's second even on a loaded
      // machine (one request after the other, 80 of them took longer than a second there); a
      // burst is tried again, at most three times, if the machine still spread it past the second.
      const bursts = async (path: string): Promise<{ status: number; body: Json; headers: Headers }[][]> => {
        const all: { status: number; body: Json; headers: Headers }[][] = [];
        while (all.length < 3 && !all.flat().some((answer) => answer.status === 503)) {
          all.push(await Promise.all(Array.from({ length: 80 }, () => call(path, {}, limited))));
        }
        return all;
      };
      const api = (await bursts('/api/v1/clients')).map((burst) => burst.map((answer) => answer.status));
      // The first 50 of a fresh server's budget are served, wherever the burst's second falls.
      expect(api[0]!.filter((status) => status === 200).length).toBeGreaterThanOrEqual(50);
      expect(api.flat().filter((status) => status === 503).length).toBeGreaterThan(0);
      expect(api.flat().filter((status) => status !== 200 && status !== 503)).toEqual([]);
      // /metrics draws on the same budget: some scrape in a quick burst is refused too.
      const busy = (await bursts('/metrics')).flat().find((answer) => answer.status !== 200)!;
      expect([busy.status, busy.body.error.code, busy.headers.get('retry-after')]).toEqual([503, 'busy', '1']);
      // Health stays open to supervisors whatever the readers do.
      expect((await call('/readyz', {}, limited)).status).toBe(200);
      await sleep(1_100);
      expect((await call('/api/v1/clients', {}, limited)).status).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
