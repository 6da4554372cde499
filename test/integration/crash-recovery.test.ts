/**
 * Proves that Keel keeps what it acknowledged across a real crash: `keel serve` runs as a child
 * process on a data directory, two persistent sessions (one QoS 1, one QoS 2 subscription) are
 * offline while a publisher streams QoS 1 and QoS 2 messages, and the broker is killed with
 * SIGKILL in the middle of the stream. After a restart on the same directory, the subscribers
 * resume their sessions: every message whose publish had been acknowledged is delivered, and no
 * QoS 2 message is delivered twice. Also proves that a byte flipped in the middle of a log
 * segment makes start-up refuse with the file and offset, and that a torn final record is
 * truncated and the broker starts.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, type KeelProcess, runKeel, sleep, startKeelProcess, waitUntil } from './helpers.js';

const directories: string[] = [];
const processes: KeelProcess[] = [];
const clients: MqttClient[] = [];

beforeAll(() => ensureBuilt(), 120_000);
afterAll(async () => {
  for (const client of clients) client.end(true);
  for (const keel of processes) if (keel.child.exitCode === null) keel.child.kill('SIGKILL');
  await sleep(50);
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

function dataDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), 'keel-crash-'));
  directories.push(directory);
  return directory;
}

async function connect(port: number, clientId: string, clean: boolean): Promise<MqttClient> {
  const client = mqtt.connect({ host: '127.0.0.1', port, clientId, clean, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000 });
  clients.push(client);
  client.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

async function start(directory: string): Promise<KeelProcess & { port: number }> {
  const keel = await startKeelProcess(directory, ['--log-level', 'warn']);
  processes.push(keel);
  return keel;
}

describe('crash recovery of a real keel serve process', () => {
  it('delivers every acknowledged QoS 1 and QoS 2 message after SIGKILL, none twice at QoS 2', async () => {
    const directory = dataDirectory();
    let keel = await start(directory);
    for (const [clientId, topic, qos] of [
      ['sub-q1', 'crash/q1', 1],
      ['sub-q2', 'crash/q2', 2],
    ] as const) {
      const subscriber = await connect(keel.port, clientId, false);
      await subscriber.subscribeAsync(topic, { qos });
      await subscriber.endAsync();
    }
    const publisher = await connect(keel.port, 'publisher', true);
    const acknowledged = { 1: new Set<number>(), 2: new Set<number>() };
    const total = 400;
    let sent = 0;
    // A window of 20 unacknowledged publishes per QoS keeps the stream going until the kill.
    const pump = (qos: 1 | 2): void => {
      if (sent >= total * 2 || publisher.disconnected) return;
      const sequence = sent++;
      publisher.publish(`crash/q${qos}`, `${sequence}`, { qos }, (error) => {
        if (error === undefined || error === null) {
          acknowledged[qos].add(sequence);
          pump(qos);
        }
      });
    };
    for (let index = 0; index < 20; index++) {
      pump(1);
      pump(2);
    }
    await waitUntil(() => acknowledged[1].size + acknowledged[2].size >= 150, 15_000, '150 acknowledgements');
    keel.child.kill('SIGKILL');
    await keel.exited;
    publisher.end(true);
    const acknowledgedAtKill = { 1: new Set(acknowledged[1]), 2: new Set(acknowledged[2]) };
    expect(acknowledgedAtKill[1].size + acknowledgedAtKill[2].size).toBeLessThan(total * 2);

    keel = await start(directory);
    const received = { 1: new Map<number, number>(), 2: new Map<number, number>() };
    for (const [clientId, qos] of [
      ['sub-q1', 1],
      ['sub-q2', 2],
    ] as const) {
      const subscriber = mqtt.connect({ host: '127.0.0.1', port: keel.port, clientId, clean: false, protocolVersion: 4, reconnectPeriod: 0 });
      clients.push(subscriber);
      subscriber.on('message', (_topic, payload) => {
        const sequence = Number(payload.toString());
        received[qos].set(sequence, (received[qos].get(sequence) ?? 0) + 1);
      });
    }
    await waitUntil(() => [...acknowledgedAtKill[1]].every((s) => received[1].has(s)) && [...acknowledgedAtKill[2]].every((s) => received[2].has(s)), 15_000, 'every acknowledged message');
    await sleep(300);
    const missing = [1, 2].flatMap((qos) => [...acknowledgedAtKill[qos as 1 | 2]].filter((s) => !received[qos as 1 | 2].has(s)));
    expect(missing).toEqual([]);
    const duplicatedAtQos2 = [...received[2]].filter(([, count]) => count > 1);
    expect(duplicatedAtQos2).toEqual([]);
    keel.child.kill('SIGTERM');
    expect(await keel.exited).toBe(0);
  }, 60_000);

  it('refuses to start on a damaged record with file and offset, repairs, and truncates a torn tail', async () => {
    const directory = dataDirectory();
    let keel = await start(directory);
    const client = await connect(keel.port, 'retainer', true);
    for (let index = 0; index < 50; index++) await client.publishAsync(`retained/${index}`, `value-${index}-${'x'.repeat(100)}`, { qos: 1, retain: true });
    await client.endAsync();
    keel.child.kill('SIGKILL');
    await keel.exited;

    const segment = readdirSync(directory)
      .filter((name) => name.startsWith('wal-'))
      .sort()[0]!;
    const path = join(directory, segment);
    const size = statSync(path).size;
    const bytes = readFileSync(path);
    bytes[Math.floor(size / 2)]! ^= 0x40;
    writeFileSync(path, bytes);
    const refused = runKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', directory]);
    expect(await refused.exited).toBe(1);
    expect(refused.stderr()).toMatch(new RegExp(`corrupt log: ${segment.replace(/\./g, '\\.')} at offset \\d+: checksum mismatch`));
    expect(refused.stderr()).toContain('keel inspect');
    const inspected = runKeel(['inspect', directory]);
    expect(await inspected.exited).toBe(1);
    expect(inspected.stdout()).toMatch(/PROBLEM: corrupt log/);
    const repaired = runKeel(['inspect', directory, '--repair']);
    expect(await repaired.exited).toBe(0);
    expect(repaired.stdout()).toContain('every checksum verified: ok');

    // A torn final record: cut the last segment in the middle of its last record.
    const last = readdirSync(directory)
      .filter((name) => /^wal-\d+\.log$/.test(name))
      .sort()
      .pop()!;
    truncateSync(join(directory, last), statSync(join(directory, last)).size - 5);
    keel = await start(directory);
    const reader = await connect(keel.port, 'reader', true);
    const retained: string[] = [];
    reader.on('message', (topic) => retained.push(topic));
    await reader.subscribeAsync('retained/#', { qos: 1 });
    await sleep(300);
    expect(retained.length).toBeGreaterThan(0);
    expect(retained.length).toBeLessThan(50);
    keel.child.kill('SIGTERM');
    expect(await keel.exited).toBe(0);
  }, 60_000);
});
