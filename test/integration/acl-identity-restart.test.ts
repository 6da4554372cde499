/**
 * Proves over TCP, with the `mqtt` client in 3.1.1 and 5.0, that topic authorization decides for
 * the same identities after a real restart of the server on the same data directory (password
 * file and ACL file as in production): alice's persistent session, offline across the restart,
 * queues the messages bob publishes after it (alice may read a/#) and receives them when she
 * reconnects; and a will that carol (MQTT 5.0, Will Delay Interval 1 s) left before the shutdown
 * is published after the restart for carol, who may write its topic, and reaches alice too.
 * Before the owner's user name was durable, both were withheld until the client reconnected.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPasswordScrypt, updatePasswordFile } from '../../io/auth/password-file.js';
import { type RunningServer, startServer } from '../../io/server.js';
import type { BrokerStats } from '../../src/broker/stats.js';
import { Clients, persistent, subscribeCodes, versions, waitUntil } from './helpers.js';

const rules = ['user alice', 'topic read a/#', 'topic read wills/#', 'user bob', 'topic write a/#', 'user carol', 'topic write wills/#'].join('\n');

let directory = '';
let passwordFile = '';
let aclFile = '';
let server: RunningServer | null = null;
const clients = new Clients(() => server!.port);
const users = { alice: 'wonderland', bob: 'builder', carol: 'singer' };

beforeAll(() => {
  directory = mkdtempSync(join(tmpdir(), 'keel-acl-restart-'));
  passwordFile = join(directory, 'passwords');
  aclFile = join(directory, 'acl');
  // A low scrypt cost keeps the suite fast; the cost is a property of each hash, not of the broker.
  for (const [user, password] of Object.entries(users)) updatePasswordFile(passwordFile, user, hashPasswordScrypt(Buffer.from(password), 1_024));
  writeFileSync(aclFile, `${rules}\n`);
});

afterEach(async () => {
  await clients.endAll();
  await server?.close();
  server = null;
});

afterAll(() => rmSync(directory, { recursive: true, force: true }));

function start(dataDirectory: string): Promise<RunningServer> {
  return startServer({ host: '127.0.0.1', port: 0, dataDirectory, config: { passwordFile, aclFile }, shutdownGraceMs: 500 });
}

const stats = (): BrokerStats => (server!.core as unknown as { stats: BrokerStats }).stats;
const login = (user: keyof typeof users): { username: string; password: string } => ({ username: user, password: users[user] });

describe('topic authorization across a restart on the same data directory', () => {
  for (const version of versions) {
    it(`delivers to alice's offline ${version === 5 ? '5.0' : '3.1.1'} session what was published after the restart, and carol's will`, async () => {
      const dataDirectory = mkdtempSync(join(directory, 'data-'));
      server = await start(dataDirectory);
      const aliceId = clients.id('alice');
      const { client: alice } = await clients.connect(version, { clientId: aliceId, ...persistent(version), ...login('alice') });
      expect(await subscribeCodes(alice, ['a/#', 'wills/#'], { qos: 1 })).toEqual([1, 1]);
      await alice.endAsync();
      // carol is connected when the server stops: a shutdown ends her connection abnormally, and
      // her will waits out its delay, durably, into the next life of the broker.
      const carolWill = { topic: 'wills/carol', payload: Buffer.from('carol left'), qos: 1 as const, retain: false, properties: { willDelayInterval: 1 } };
      await clients.connect(5, { clientId: clients.id('carol'), ...persistent(5), ...login('carol'), will: carolWill });
      await server.close();
      expect(stats().willsPublished).toBe(0);

      server = await start(dataDirectory);
      const { client: bob } = await clients.connect(version, { clientId: clients.id('bob'), ...login('bob') });
      await bob.publishAsync('a/after-restart', 'for alice', { qos: 1 });
      await waitUntil(() => stats().willsPublished === 1, 4_000, "carol's will");
      expect(stats().authorization.receiveDenied).toBe(0);
      expect(stats().authorization.willDenied).toBe(0);

      const { connack, inbox } = await clients.connect(version, { clientId: aliceId, ...persistent(version), ...login('alice') });
      expect(connack.sessionPresent).toBe(true);
      await inbox.waitFor(2);
      expect(inbox.payloads().sort()).toEqual(['carol left', 'for alice']);
    }, 15_000);
  }
});
