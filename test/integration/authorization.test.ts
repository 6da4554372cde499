/**
 * Proves topic authorization end to end over TCP, in a broker started with a password file and an
 * ACL file, with the `mqtt` client in 3.1.1 and 5.0: SUBACK refuses only the filter the rules do
 * not cover (0x87 / 0x80); a PUBLISH to a denied topic is not routed (5.0 QoS 1: PUBACK 0x87,
 * which the client reports as an error; 3.1.1: acknowledged as usual); a broad subscription and
 * retained messages never carry a topic the subscriber may not read; %c patterns; a will on a
 * denied topic refuses the CONNECT (0x87 / rc 5); and an edit of the ACL file takes effect
 * while the broker runs; `keel serve --acl-file` serves the rules and refuses a bad file with exit 2
 * and its line numbers. "Not delivered" is proved by a marker published after the forbidden
 * message on a topic the subscriber does get: per-publisher ordering means it would have come first.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPasswordScrypt, updatePasswordFile } from '../../io/auth/password-file.js';
import type { RunningServer } from '../../io/server.js';
import type { BrokerStats } from '../../src/broker/stats.js';
import { Clients, ensureBuilt, persistent, refusalCode, runKeel, sleep, startBroker, startKeelProcess, subscribeCodes, type Version, versions } from './helpers.js';

const rules = [
  '# integration rules',
  'pattern readwrite clients/%c/#',
  'user alice',
  'topic readwrite house/#',
  'topic deny house/safe',
  'user bob',
  'topic read house/#',
  'topic deny house/private',
  'topic write news/#',
].join('\n');

let directory = '';
let aclFile = '';
let server: RunningServer;
const clients = new Clients(() => server.port);
const alice = { username: 'alice', password: 'wonderland' };
const bob = { username: 'bob', password: 'builder' };

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'keel-acl-it-'));
  const passwordFile = join(directory, 'passwords');
  aclFile = join(directory, 'acl');
  // A low scrypt cost keeps the suite fast; the cost is a property of each hash, not of the broker.
  updatePasswordFile(passwordFile, 'alice', hashPasswordScrypt(Buffer.from('wonderland'), 1_024));
  updatePasswordFile(passwordFile, 'bob', hashPasswordScrypt(Buffer.from('builder'), 1_024));
  writeFileSync(aclFile, `${rules}\n`);
  server = await startBroker({ passwordFile, aclFile });
});

afterEach(() => clients.endAll());

afterAll(async () => {
  await server.close();
  rmSync(directory, { recursive: true, force: true });
});

const stats = (): BrokerStats => (server.core as unknown as { stats: BrokerStats }).stats;

for (const version of versions) {
  const notAuthorized = version === 5 ? 0x87 : 0x80;

  describe(`MQTT ${version === 5 ? '5.0' : '3.1.1'}`, () => {
    it(`refuses only the uncovered filter in SUBACK (0x${notAuthorized.toString(16)})`, async () => {
      const { client } = await clients.connect(version, alice);
      expect(await subscribeCodes(client, ['house/#', 'garage/#', 'house/safe'], { qos: 1 })).toEqual([1, notAuthorized, notAuthorized]);
      const { client: reader } = await clients.connect(version, bob);
      // bob reads house/#, so a filter it covers is granted even though house/private is denied.
      expect(await subscribeCodes(reader, ['house/+', '#'], { qos: 0 })).toEqual([0, notAuthorized]);
    });

    it('does not route a denied PUBLISH and answers it as the version allows', async () => {
      const { client: reader, inbox } = await clients.connect(version, bob);
      // Exact filters: retained messages other tests leave under house/ stay out of the way.
      expect(await subscribeCodes(reader, ['house/kitchen', 'house/safe'], { qos: 1 })).toEqual([1, 1]);
      const { client: writer } = await clients.connect(version, alice);
      const deniedBefore = stats().authorization.publishDenied;
      const denied = writer.publishAsync('house/safe', 'hidden', { qos: 1 });
      if (version === 5) await expect(denied).rejects.toMatchObject({ code: 0x87 });
      else await denied;
      await writer.publishAsync('house/kitchen', 'marker', { qos: 1 });
      await inbox.waitForPayload('marker');
      expect(inbox.payloads()).toEqual(['marker']);
      expect(stats().authorization.publishDenied).toBe(deniedBefore + 1);
      // bob may not write house/#: not routed either.
      const { inbox: aliceInbox } = await clients.connect(version, alice).then(async (connected) => {
        await subscribeCodes(connected.client, 'house/kitchen', { qos: 1 });
        return connected;
      });
      const bobWrites = reader.publishAsync('house/kitchen', 'from bob', { qos: 1 });
      if (version === 5) await expect(bobWrites).rejects.toMatchObject({ code: 0x87 });
      else await bobWrites;
      await writer.publishAsync('house/kitchen', 'second marker', { qos: 1 });
      await aliceInbox.waitForPayload('second marker');
      expect(aliceInbox.payloads()).toEqual(['second marker']);
    });

    it('withholds topics a broad subscription matches but its client may not read, retained ones included', async () => {
      const { client: writer } = await clients.connect(version, alice);
      await writer.publishAsync('house/private', `retained private ${version}`, { qos: 1, retain: true });
      await writer.publishAsync('house/lamp', `retained lamp ${version}`, { qos: 1, retain: true });
      const { client: reader, inbox } = await clients.connect(version, bob);
      await subscribeCodes(reader, 'house/#', { qos: 1 });
      await writer.publishAsync('house/private', 'live private', { qos: 1 });
      await writer.publishAsync('house/lamp', 'marker', { qos: 1 });
      await inbox.waitForPayload('marker');
      expect(inbox.payloads()).toEqual([`retained lamp ${version}`, 'marker']);
      expect(inbox.messages.map((message) => message.topic)).not.toContain('house/private');
    });

    it('lets a %c pattern give each client its own subtree', async () => {
      const { client, inbox } = await clients.connect(version, { ...bob, clientId: `bob-${version}` });
      expect(await subscribeCodes(client, [`clients/bob-${version}/#`, 'clients/other/#'], { qos: 1 })).toEqual([1, notAuthorized]);
      await client.publishAsync(`clients/bob-${version}/status`, 'mine', { qos: 1 });
      await inbox.waitForPayload('mine');
    });

    it(`refuses a CONNECT whose will topic is denied (${version === 5 ? '0x87' : 'rc 5'})`, async () => {
      const refused = await refusalCode(clients.connect(version, { ...bob, will: { topic: 'house/will', payload: Buffer.from('bye'), qos: 0, retain: false } }));
      expect(refused).toBe(version === 5 ? 0x87 : 5);
      const accepted = await clients.connect(version, { ...bob, will: { topic: 'news/bob', payload: Buffer.from('bye'), qos: 0, retain: false } });
      expect(accepted.connack.returnCode ?? accepted.connack.reasonCode ?? 0).toBe(0);
    });

    it(`refuses another user the client id of alice's session, which keeps its queue (${version === 5 ? '0x87' : 'rc 5'})`, async () => {
      const sharedId = clients.id('shared-id');
      const { client: owner } = await clients.connect(version, { ...alice, clientId: sharedId, ...persistent(version) });
      expect(await subscribeCodes(owner, 'house/#', { qos: 1 })).toEqual([1]);
      await owner.endAsync();
      const { client: writer } = await clients.connect(version, alice);
      await writer.publishAsync('house/hall', 'for alice', { qos: 1 });
      expect(await refusalCode(clients.connect(version, { ...bob, clientId: sharedId, ...persistent(version) }))).toBe(version === 5 ? 0x87 : 5);
      const back = await clients.connect(version, { ...alice, clientId: sharedId, ...persistent(version) });
      expect(back.connack.sessionPresent).toBe(true);
      await back.inbox.waitForPayload('for alice');
    });
  });
}

describe('live reload', () => {
  it('applies an edit of the ACL file while the broker runs', async () => {
    const version: Version = 5;
    const { client } = await clients.connect(version, bob);
    expect(await subscribeCodes(client, 'garage/#', { qos: 0 })).toEqual([0x87]);
    writeFileSync(aclFile, `${rules}\ntopic read garage/#\n`);
    // The file is looked at once a second: ask until the new rule answers, for at most 5 s.
    const deadlineMs = Date.now() + 5_000;
    let codes = [0x87];
    while (codes[0] !== 0 && Date.now() < deadlineMs) {
      await sleep(100);
      codes = await subscribeCodes(client, 'garage/#', { qos: 0 });
    }
    expect(codes).toEqual([0]);
  });
});

describe('keel serve --acl-file', () => {
  it('exits 2 naming the bad lines, and serves a good file', async () => {
    ensureBuilt();
    const bad = join(directory, 'bad-acl');
    writeFileSync(bad, 'user alice\ntopic raed a/#\n');
    const refused = runKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(directory, 'data-bad'), '--acl-file', bad]);
    expect(await refused.exited).toBe(2);
    expect(refused.stderr()).toContain(`${bad}:2: topic: unknown access "raed"`);
    const keel = await startKeelProcess(join(directory, 'data-good'), ['--acl-file', aclFile, '--log-level', 'warn']);
    try {
      const cli = new Clients(() => keel.port);
      // No password file: anonymous clients, who get only the patterns here.
      const { client } = await cli.connect(5, { clientId: 'cli-client' });
      expect(await subscribeCodes(client, ['clients/cli-client/#', 'house/#'], { qos: 0 })).toEqual([0, 0x87]);
      await cli.endAll();
    } finally {
      keel.child.kill('SIGKILL');
    }
  }, 90_000);
});
