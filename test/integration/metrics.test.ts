/**
 * Proves `/metrics` (io/admin/metrics.ts) end to end: a broker with a password file and an ACL
 * file runs a known workload over real sockets, and the scraped text says what the workload
 * implies. Ten QoS 1 messages from a 5.0 client to a 3.1.1 subscriber are 10 in and 10 out; a
 * PUBLISH to a denied topic is one ACL denial (action="publish") and not a message in; two wrong
 * passwords (5.0 and 3.1.1) are two authentication failures; clients are counted by listener and
 * protocol version, sessions and subscriptions as they are; QoS 1 under `syncPolicy: always` shows
 * in the storage counters and the sync-latency histogram. Then a subscriber that stops reading
 * forces output-full drops: the drop counter is above zero and messages out are exactly what the
 * healthy subscriber got plus what the stalled one was sent before its cap. prom-client's process
 * metrics are there, and `promtool check metrics` (Debian's prometheus package) accepts the text.
 * A second server in the same process has its own registry: both scrape, neither clashes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPasswordScrypt, updatePasswordFile } from '../../io/auth/password-file.js';
import { type RunningServer, startServer } from '../../io/server.js';
import type { BrokerStats } from '../../src/broker/stats.js';
import { Clients, RawClients, refusalCode } from './helpers.js';

const promtoolPresent = spawnSync('promtool', ['--version']).status === 0;

let directory = '';
let server: RunningServer;
const clients = new Clients(() => server.port);
const raws = new RawClients(() => server.port);
const alice = { username: 'alice', password: 'wonderland' };

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'keel-metrics-'));
  const passwordFile = join(directory, 'passwords');
  const aclFile = join(directory, 'acl');
  updatePasswordFile(passwordFile, 'alice', hashPasswordScrypt(Buffer.from('wonderland'), 1_024));
  updatePasswordFile(passwordFile, 'bob', hashPasswordScrypt(Buffer.from('builder'), 1_024));
  writeFileSync(aclFile, ['user alice', 'topic readwrite work/#', 'topic deny work/secret', 'topic readwrite flood/#', ''].join('\n'));
  const config = { passwordFile, aclFile, sysIntervalSeconds: 0, syncPolicy: 'always', connectionOutputBytesMax: 64 * 1024, admin: { host: '127.0.0.1', port: 0 } };
  server = await startServer({ host: '127.0.0.1', port: 0, dataDirectory: join(directory, 'data'), config, shutdownGraceMs: 500 });
});

afterEach(async () => {
  raws.destroyAll();
  await clients.endAll();
});

afterAll(async () => {
  await server?.close();
  rmSync(directory, { recursive: true, force: true });
});

/** Scrapes and returns the text and its samples, keyed `name{labels}` as printed. */
async function scrape(target: RunningServer = server): Promise<{ text: string; sample: (key: string) => number }> {
  const response = await fetch(`http://127.0.0.1:${target.admin!.port}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  const text = await response.text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match !== null) samples.set(match[1]!, Number(match[2]));
  }
  const sample = (key: string): number => {
    const value = samples.get(key);
    if (value === undefined) throw new Error(`no sample ${key} in the scrape`);
    return value;
  };
  return { text, sample };
}

const stats = (): BrokerStats => (server.core as unknown as { stats: BrokerStats }).stats;

async function publishMany(client: MqttClient, topic: string, count: number): Promise<void> {
  for (let index = 0; index < count; index++) await client.publishAsync(topic, `m${index}`, { qos: 1 });
}

describe('/metrics after a known workload', () => {
  it('counts messages, ACL denials, authentication failures, clients, sessions and storage as the workload implies', async () => {
    // A persistent session: its QoS 1 messages are written to the log (a clean one's are not).
    const { client: subscriber, inbox } = await clients.connect(4, { ...alice, clientId: 'metrics-sub', clean: false });
    await subscriber.subscribeAsync('work/#', { qos: 1 });
    const { client: publisher } = await clients.connect(5, { ...alice, clientId: 'metrics-pub' });
    await publishMany(publisher, 'work/a', 10);
    await expect(publisher.publishAsync('work/secret', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    await inbox.waitFor(10, 3_000);
    expect(await refusalCode(clients.connect(5, { username: 'alice', password: 'wrong' }))).toBe(0x86);
    expect(await refusalCode(clients.connect(4, { username: 'bob', password: 'wrong' }))).toBe(4);
    const { text, sample } = await scrape();
    expect(sample('keel_messages_received_total')).toBe(10);
    expect(sample('keel_messages_sent_total')).toBe(10);
    expect(sample('keel_authorization_denials_total{action="publish"}')).toBe(1);
    expect(sample('keel_authorization_denials_total{action="subscribe"}')).toBe(0);
    expect(sample('keel_authentication_failures_total')).toBe(2);
    expect(sample('keel_connects_refused_total')).toBe(2);
    expect(server.listeners[0].name).toBe(`mqtt:127.0.0.1:${server.port}`);
    expect(sample(`keel_clients_connected{listener="${server.listeners[0].name}"}`)).toBe(2);
    expect(sample('keel_clients_connected_by_version{version="3.1.1"}')).toBe(1);
    expect(sample('keel_clients_connected_by_version{version="5.0"}')).toBe(1);
    expect(sample('keel_sessions{state="online"}')).toBe(2);
    expect(sample('keel_subscriptions')).toBe(1);
    expect(sample('keel_messages_dropped_total{reason="outputFull"}')).toBe(0);
    expect(sample('keel_ready')).toBe(1);
    // QoS 1 under syncPolicy always: records, syncs, and each sync timed.
    expect(sample('keel_storage_records_appended_total')).toBeGreaterThanOrEqual(20);
    expect(sample('keel_storage_syncs_total')).toBeGreaterThan(0);
    expect(sample('keel_storage_sync_duration_seconds_count{op="file"}')).toBeGreaterThan(0);
    expect(sample('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sample('nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(text).toContain('nodejs_eventloop_lag_p99_seconds');
    expect(text).toMatch(/^# TYPE keel_messages_received_total counter$/m);
    expect(text).not.toMatch(/^# TYPE keel_\w+_total gauge$/m);
  });

  it('shows the drops a stalled reader forces, and messages out match what was sent', async () => {
    const before = await scrape();
    const stalled = await raws.open(4);
    await stalled.connect({ clientId: 'metrics-stalled', username: 'alice', password: Buffer.from('wonderland') });
    stalled.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] });
    await stalled.next('suback');
    stalled.socket.pause();
    const { client: healthy, inbox } = await clients.connect(4, { ...alice, clientId: 'metrics-healthy' });
    await healthy.subscribeAsync('flood/#', { qos: 0 });
    const { client: flooder } = await clients.connect(4, { ...alice, clientId: 'metrics-flooder' });
    // More than the kernel buffers of a loopback connection take, so the cap is reached.
    const payload = Buffer.alloc(64 * 1024, 1);
    const published = 250;
    for (let index = 0; index < published; index++) {
      flooder.publish('flood/x', payload, { qos: 0 });
      if (index % 10 === 9) await inbox.waitFor(index + 1, 5_000);
    }
    await inbox.waitFor(published, 5_000);
    const after = await scrape();
    const dropped = after.sample('keel_messages_dropped_total{reason="outputFull"}');
    expect(dropped).toBeGreaterThan(0);
    expect(dropped).toBe(stats().drops.outputFull);
    // Every copy not dropped was sent: the healthy subscriber's 200 and the stalled one's rest.
    const sent = after.sample('keel_messages_sent_total') - before.sample('keel_messages_sent_total');
    expect(sent).toBe(published + (published - dropped));
    expect(after.sample('keel_messages_received_total') - before.sample('keel_messages_received_total')).toBe(published);
    expect(after.sample('keel_received_bytes_total') - before.sample('keel_received_bytes_total')).toBeGreaterThan(published * payload.length);
  }, 20_000);

  it.skipIf(!promtoolPresent && process.env.CI !== 'true')('passes promtool check metrics (skipped here only when promtool is missing outside CI; .ci/run installs it)', async () => {
    const { text } = await scrape();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(`${check.stdout}${check.stderr}`).toBe('');
    expect(check.status).toBe(0);
  });

  it('gives each server its own registry: a second one in this process scrapes its own figures', async () => {
    const second = await startServer({ host: '127.0.0.1', port: 0, config: { sysIntervalSeconds: 0, admin: { host: '127.0.0.1', port: 0 } }, shutdownGraceMs: 500 });
    try {
      const own = await scrape(second);
      expect(own.sample('keel_messages_received_total')).toBe(0);
      expect((await scrape()).sample('keel_messages_received_total')).toBeGreaterThan(0);
    } finally {
      await second.close();
    }
  });
});
