/**
 * Proves `$SYS` end to end with real clients, in a broker with a password file and an ACL file that
 * grants `$SYS/#` to the user `ops` only, publishing every second (`sysIntervalSeconds: 1`):
 * Mosquitto's own `mosquitto_sub -t '$SYS/#' -C N` (Debian's mosquitto-clients), run as ops,
 * receives every retained figure, and the figures are what the workload implies (5 messages in,
 * 1 ACL denial, 1 authentication failure, the version); an MQTT.js client of ops sees a figure
 * move when more messages arrive; and a user without the grant has `$SYS/#` refused in SUBACK and
 * receives no `$SYS` message at all over the same time, while ops does.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPasswordScrypt, updatePasswordFile } from '../../io/auth/password-file.js';
import { packageVersion } from '../../io/package-version.js';
import { type RunningServer, startServer } from '../../io/server.js';
import { Clients, refusalCode, sleep, subscribeCodes, waitUntil } from './helpers.js';

const mosquittoSubPresent = spawnSync('mosquitto_sub', ['--help']).error === undefined;

let directory = '';
let server: RunningServer;
const clients = new Clients(() => server.port);
const ops = { username: 'ops', password: 'console' };
const guest = { username: 'guest', password: 'visitor' };

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'keel-sys-'));
  const passwordFile = join(directory, 'passwords');
  const aclFile = join(directory, 'acl');
  updatePasswordFile(passwordFile, 'ops', hashPasswordScrypt(Buffer.from('console'), 1_024));
  updatePasswordFile(passwordFile, 'guest', hashPasswordScrypt(Buffer.from('visitor'), 1_024));
  writeFileSync(aclFile, ['user ops', 'topic read $SYS/#', 'topic readwrite work/#', 'user guest', 'topic readwrite work/#', 'topic deny work/secret', ''].join('\n'));
  const config = { passwordFile, aclFile, sysIntervalSeconds: 1, admin: { host: '127.0.0.1', port: 0 } };
  server = await startServer({ host: '127.0.0.1', port: 0, dataDirectory: join(directory, 'data'), config, shutdownGraceMs: 500 });
});

afterEach(() => clients.endAll());

afterAll(async () => {
  await server?.close();
  rmSync(directory, { recursive: true, force: true });
});

/** The retained `$SYS` topics and their current payloads, as the admin API lists them. */
async function retainedSys(): Promise<Map<string, string>> {
  const response = await fetch(`http://127.0.0.1:${server.admin!.port}/api/v1/retained?filter=${encodeURIComponent('$SYS/#')}&limit=1000`);
  const body = (await response.json()) as { items: { topic: string; payloadText: string }[] };
  return new Map(body.items.map((item) => [item.topic, item.payloadText]));
}

/** Runs mosquitto_sub (never spawnSync: the broker answers from this very process). */
function mosquittoSub(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(server.port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('$SYS topics over TCP', () => {
  it.skipIf(!mosquittoSubPresent && process.env.CI !== 'true')(
    "mosquitto_sub -t '$SYS/#' -C N gets every figure, with the values the workload implies (skipped only when mosquitto-clients is missing outside CI; .ci/run installs it)",
    async () => {
      const { client: publisher } = await clients.connect(5, { ...guest, clientId: 'sys-publisher' });
      for (let index = 0; index < 5; index++) await publisher.publishAsync('work/a', `m${index}`, { qos: 1 });
      await expect(publisher.publishAsync('work/secret', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
      expect(await refusalCode(clients.connect(5, { username: 'guest', password: 'wrong' }))).toBe(0x86);
      // Wait for a publication after the workload: the retained figures then hold its values.
      let figures = new Map<string, string>();
      for (let attempt = 0; attempt < 40 && figures.get('$SYS/keel/authentication/failures') !== '1'; attempt++) {
        figures = await retainedSys();
        await sleep(100);
      }
      expect(figures.size).toBeGreaterThan(50);
      const run = await mosquittoSub(['-u', ops.username, '-P', ops.password, '-V', 'mqttv311', '-t', '$SYS/#', '-v', '-C', String(figures.size), '-W', '10']);
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      const received = new Map<string, string>();
      for (const line of run.stdout.trim().split('\n')) {
        const space = line.startsWith('$SYS/broker/retained messages/count') ? '$SYS/broker/retained messages/count'.length : line.indexOf(' ');
        received.set(line.slice(0, space), line.slice(space + 1));
      }
      expect(received.size).toBe(figures.size);
      expect(received.get('$SYS/broker/version')).toBe(`keel ${packageVersion()}`);
      expect(received.get('$SYS/broker/publish/messages/received')).toBe('5');
      expect(received.get('$SYS/keel/authorization/publishDenied')).toBe('1');
      expect(received.get('$SYS/keel/authentication/failures')).toBe('1');
      expect(received.get('$SYS/broker/uptime')).toMatch(/^\d+ seconds$/);
      expect(received.has('$SYS/broker/load/publish/received/1min')).toBe(true);
    },
    20_000,
  );

  it('an MQTT.js client granted $SYS sees a figure move; a user without the grant receives none', async () => {
    const { client: watcher, inbox: watched } = await clients.connect(5, { ...ops, clientId: 'sys-watcher' });
    expect(await subscribeCodes(watcher, ['$SYS/broker/publish/messages/received'], { qos: 0 })).toEqual([0]);
    const { client: outsider, inbox: outsiderInbox } = await clients.connect(5, { ...guest, clientId: 'sys-outsider' });
    // The ACL refuses `$SYS/#` (0x87) and grants the user's own topics.
    expect(await subscribeCodes(outsider, ['$SYS/#', '$SYS/broker/+', 'work/#'], { qos: 0 })).toEqual([0x87, 0x87, 0]);
    await watched.waitFor(1, 3_000);
    const start = Number(Buffer.from(watched.messages.at(-1)!.payload).toString('utf8'));
    const { client: publisher } = await clients.connect(5, { ...guest, clientId: 'sys-publisher-2' });
    for (let index = 0; index < 3; index++) await publisher.publishAsync('work/b', `n${index}`, { qos: 1 });
    await waitUntil(() => watched.payloads().includes(String(start + 3)), 4_000, `$SYS/broker/publish/messages/received to reach ${start + 3}`);
    // Two more publications go by: still nothing from $SYS for the user without the grant.
    await sleep(2_100);
    expect(outsiderInbox.messages.filter((message) => message.topic.startsWith('$SYS'))).toEqual([]);
    expect(watched.messages.length).toBeGreaterThanOrEqual(2);
  }, 15_000);
});
