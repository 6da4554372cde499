/**
 * Proves that `keel pub` and `keel sub` never report success for what the broker refused, and say
 * why, in MQTT 5.0 and 3.1.1: each command runs as a child process of the built CLI against a
 * broker in this process (127.0.0.1, port 0) with an ACL file that allows anonymous clients only
 * `open/#`, a 32-byte topic limit, a 16-byte client id limit and a 128-byte packet limit.
 *
 * - a wildcard topic name (pub) or a malformed filter (sub) is refused before connecting (exit 2);
 * - a refusing PUBACK/PUBREC (5.0) is exit 1 with the reason's name and code; 3.1.1 cannot refuse
 *   a PUBLISH, and neither can QoS 0, so those exit 0 while the broker counts the denial (the
 *   documented limit of what they confirm);
 * - a topic longer than the broker allows makes it close the connection, which QoS 0 sees too
 *   (the PINGREQ after the PUBLISH is never answered): 5.0 names the DISCONNECT's reason;
 * - a refusing CONNACK names its reason (5.0 code, 3.1.1 return code);
 * - a SUBACK that refuses any filter is exit 1 naming each refused filter; a SUBSCRIBE too large
 *   for the broker, and a DISCONNECT while subscribed (a session takeover), are exit 1 with the
 *   reason where the protocol carries one.
 *
 * The children of one test run side by side, to keep the file's wall time down.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import type { BrokerStats } from '../../src/broker/stats.js';
import { Clients, ensureBuilt, type KeelProcess, runKeel, startBroker, type Version, versions, waitUntil } from './helpers.js';

let directory = '';
let server: RunningServer;
const children: KeelProcess[] = [];
const clients = new Clients(() => server.port);

beforeAll(async () => {
  ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), 'keel-cli-refusals-'));
  const aclFile = join(directory, 'acl');
  writeFileSync(aclFile, 'anonymous\ntopic readwrite open/#\n');
  server = await startBroker({ aclFile, topicBytesMax: 32, clientIdBytesMax: 16, packetBytesMax: 128 });
}, 60_000);

afterEach(() => clients.endAll());

afterAll(async () => {
  for (const keel of children) keel.child.kill('SIGKILL');
  await server.close();
  rmSync(directory, { recursive: true, force: true });
});

/** Each test waits for child processes, which start slowly on a loaded machine. */
const childTestTimeoutMs = 30_000;

const stats = (): BrokerStats => (server.core as unknown as { stats: BrokerStats }).stats;

/** Runs `keel <command> -h 127.0.0.1 -p <port> -V <version> ...args` to its end. */
async function keel(command: 'pub' | 'sub', version: Version, args: string[]): Promise<{ code: number | null; stderr: string; process: KeelProcess }> {
  const child = runKeel([command, '-h', '127.0.0.1', '-p', String(server.port), '-V', version === 5 ? '5' : '3.1.1', '-W', '20', ...args]);
  children.push(child);
  const code = await child.exited;
  return { code, stderr: child.stderr(), process: child };
}

const tooLongTopic = `open/${'x'.repeat(40)}`;

it(
  'pub and sub refuse an invalid topic before connecting (exit 2, not 1 for a refused connection)',
  async () => {
    // Nothing listens on port 1 of 127.0.0.1: a command that tried to connect would exit 1.
    const pub = runKeel(['pub', '-h', '127.0.0.1', '-p', '1', '-t', 'bad/#', '-m', 'x']);
    const sub = runKeel(['sub', '-h', '127.0.0.1', '-p', '1', '-t', 'open/#', '-t', 'a/#/b']);
    children.push(pub, sub);
    expect(await pub.exited).toBe(2);
    expect(pub.stderr()).toBe('keel pub: cannot publish to "bad/#": wildcard in topic name\n');
    expect(await sub.exited).toBe(2);
    expect(sub.stderr()).toBe('keel sub: cannot subscribe to "a/#/b": \'#\' must be the last level\n');
  },
  childTestTimeoutMs,
);

for (const version of versions) {
  describe(`MQTT ${version === 5 ? '5.0' : '3.1.1'}`, () => {
    it(
      'pub to a denied topic: 5.0 QoS 1 and 2 exit 1 naming the reason; QoS 0 and 3.1.1 cannot be refused',
      async () => {
        const deniedBefore = stats().authorization.publishDenied;
        const [qos0, qos1, qos2] = await Promise.all(['0', '1', '2'].map((qos) => keel('pub', version, ['-t', 'closed/x', '-m', 'x', '-q', qos])));
        // The broker denied all three; what each command could learn of it depends on QoS and version.
        expect(stats().authorization.publishDenied).toBe(deniedBefore + 3);
        expect(qos0!.code).toBe(0);
        for (const result of [qos1!, qos2!]) {
          if (version === 5) {
            expect(result.code).toBe(1);
            expect(result.stderr).toBe('keel pub: the broker refused the message: not authorized (0x87)\n');
          } else {
            expect(result.code).toBe(0);
            expect(result.stderr).toBe('');
          }
        }
      },
      childTestTimeoutMs,
    );

    it(
      'pub at QoS 0 and 1 exits 1 when the broker closes the connection over the message',
      async () => {
        const results = await Promise.all(['0', '1'].map((qos) => keel('pub', version, ['-t', tooLongTopic, '-m', 'x', '-q', qos])));
        results.forEach((result, qos) => {
          expect(result.code).toBe(1);
          const awaited = qos === 0 ? 'confirming it had read the message' : 'acknowledging the message';
          expect(result.stderr).toBe(
            version === 5
              ? 'keel pub: disconnected by the broker: topic name invalid (0x90)\n'
              : `keel pub: the broker closed the connection before ${awaited} (MQTT 3.1.1 cannot say why; the broker log does)\n`,
          );
        });
      },
      childTestTimeoutMs,
    );

    it(
      'pub names the reason of a refusing CONNACK',
      async () => {
        const result = await keel('pub', version, ['-i', 'a-client-id-longer-than-sixteen-bytes', '-t', 'open/x', '-m', 'x']);
        expect(result.code).toBe(1);
        const reason = version === 5 ? 'client identifier not valid (0x85)' : 'identifier rejected (return code 2)';
        expect(result.stderr).toBe(`keel pub: connection to 127.0.0.1:${server.port} refused: ${reason}\n`);
      },
      childTestTimeoutMs,
    );

    it(
      'sub exits 1 naming each refused filter, whether some or all were refused',
      async () => {
        const reason = version === 5 ? 'not authorized (0x87)' : 'failure (0x80; MQTT 3.1.1 names no reason)';
        const [some, all] = await Promise.all([keel('sub', version, ['-t', 'open/#', '-t', 'closed/#']), keel('sub', version, ['-t', 'closed/#', '-t', 'shut/+'])]);
        expect(some!.code).toBe(1);
        expect(some!.stderr).toBe(`keel sub: subscription to "closed/#" refused: ${reason}\nkeel sub: 1 of 2 subscriptions refused (keel sub stops unless all are granted)\n`);
        expect(all!.code).toBe(1);
        expect(all!.stderr).toBe(`keel sub: subscription to "closed/#" refused: ${reason}\nkeel sub: subscription to "shut/+" refused: ${reason}\nkeel sub: every subscription was refused\n`);
      },
      childTestTimeoutMs,
    );

    it(
      'sub exits 1 when the broker closes the connection over its SUBSCRIBE',
      async () => {
        const result = await keel('sub', version, ['-t', `open/${'y'.repeat(150)}`]);
        expect(result.code).toBe(1);
        expect(result.stderr).toBe(
          version === 5 ? 'keel sub: disconnected by the broker: packet too large (0x95)\n' : 'keel sub: the broker closed the connection (MQTT 3.1.1 cannot say why; the broker log does)\n',
        );
      },
      childTestTimeoutMs,
    );

    it(
      'sub exits 1 when the broker ends its connection (a session takeover)',
      async () => {
        const id = `take-${version}`;
        const topic = `open/takeover-${version}`;
        const { client } = await clients.connect(version);
        await client.publishAsync(topic, 'ready', { qos: 1, retain: true });
        const sub = runKeel(['sub', '-h', '127.0.0.1', '-p', String(server.port), '-V', version === 5 ? '5' : '3.1.1', '-i', id, '-t', topic, '-W', '20']);
        children.push(sub);
        // The retained message arrives after the SUBACK: from then on the subscriber is in place.
        await waitUntil(() => sub.stdout() === 'ready\n', 5_000, 'the retained message');
        await clients.connect(version, { clientId: id });
        expect(await sub.exited).toBe(1);
        expect(sub.stderr()).toBe(
          version === 5 ? 'keel sub: disconnected by the broker: session taken over (0x8e)\n' : 'keel sub: the broker closed the connection (MQTT 3.1.1 cannot say why; the broker log does)\n',
        );
      },
      childTestTimeoutMs,
    );
  });
}
