/**
 * Proves authentication end to end over TCP, in a broker started with a password file:
 * user name and password with the `mqtt` client in 3.1.1 and 5.0 (right password accepted,
 * wrong password 0x86 / rc 4, anonymous refused 0x87 / rc 5 unless allowAnonymous), and
 * SCRAM-SHA-256 enhanced authentication with a raw client (mqtt-packet on a bare socket) that
 * does the client side of SCRAM itself: CONNECT -> AUTH 0x18 -> AUTH 0x18 -> CONNACK carrying the
 * server's signature, re-authentication with AUTH 0x19 ending in AUTH 0x00, a wrong password,
 * an unknown method, and configuration mistakes refused at start-up.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPasswordScram, hashPasswordScrypt, updatePasswordFile } from '../../io/auth/password-file.js';
import type { RunningServer } from '../../io/server.js';
import { ConfigError } from '../../io/server.js';
import { ScramClient } from '../io/auth-scram-client.js';
import { Clients, type RawClient, RawClients, refusalCode, startBroker, versions } from './helpers.js';

let directory = '';
let passwordFile = '';
let server: RunningServer;
let open: RunningServer | null = null;
const clients = new Clients(() => (open ?? server).port);
const raws = new RawClients(() => server.port);

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), 'keel-auth-it-'));
  passwordFile = join(directory, 'passwords');
  // A low scrypt cost keeps the suite fast; the cost is a property of each hash, not of the broker.
  updatePasswordFile(passwordFile, 'alice', hashPasswordScrypt(Buffer.from('wonderland'), 1_024));
  updatePasswordFile(passwordFile, 'bob', hashPasswordScram(Buffer.from('builder'), 4_096));
  server = await startBroker({ passwordFile, authenticationMethods: ['SCRAM-SHA-256'] });
});

afterEach(async () => {
  await clients.endAll();
  raws.destroyAll();
  await open?.close();
  open = null;
});

afterAll(async () => {
  await server.close();
  rmSync(directory, { recursive: true, force: true });
});

const raw = (): Promise<RawClient> => raws.open(5);

describe('user name and password', () => {
  for (const version of versions) {
    it(`version ${version}: accepts the right password, for a scrypt and a SCRAM entry`, async () => {
      expect((await clients.connect(version, { username: 'alice', password: 'wonderland' })).connack.returnCode ?? 0).toBe(0);
      expect((await clients.connect(version, { username: 'bob', password: 'builder' })).connack.returnCode ?? 0).toBe(0);
    });

    it(`version ${version}: refuses a wrong password or unknown user (${version === 5 ? '0x86' : 'rc 4'})`, async () => {
      const expected = version === 5 ? 0x86 : 4;
      expect(await refusalCode(clients.connect(version, { username: 'alice', password: 'builder' }))).toBe(expected);
      expect(await refusalCode(clients.connect(version, { username: 'mallory', password: 'x' }))).toBe(expected);
    });

    it(`version ${version}: refuses anonymous clients when a password file is configured (${version === 5 ? '0x87' : 'rc 5'})`, async () => {
      expect(await refusalCode(clients.connect(version))).toBe(version === 5 ? 0x87 : 5);
    });
  }

  it('allowAnonymous: true lets anonymous clients in but still checks given passwords', async () => {
    open = await startBroker({ passwordFile, allowAnonymous: true });
    expect((await clients.connect(5)).connack.reasonCode ?? 0).toBe(0);
    expect(await refusalCode(clients.connect(5, { username: 'alice', password: 'nope' }))).toBe(0x86);
    expect((await clients.connect(4, { username: 'alice', password: 'wonderland' })).connack.returnCode).toBe(0);
  });

  it('refuses to start on a missing password file, an unknown method, or methods without a file', async () => {
    for (const config of [
      { passwordFile: join(directory, 'missing') },
      { passwordFile, authenticationMethods: ['SCRAM-SHA-1'] },
      { authenticationMethods: ['SCRAM-SHA-256'] },
      { allowAnonymous: false },
    ]) {
      await expect(startBroker(config), JSON.stringify(config)).rejects.toBeInstanceOf(ConfigError);
    }
  });
});

describe('SCRAM-SHA-256 enhanced authentication', () => {
  /** Runs a full SCRAM exchange from CONNECT; returns the client and the CONNACK. */
  async function scramConnect(client: RawClient, scram: ScramClient, username?: string) {
    client.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepalive: 0,
      clientId: `scram-${process.pid}-${Math.floor(Math.random() * 1e9)}`,
      ...(username === undefined ? {} : { username }),
      properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from(scram.clientFirst()) },
    });
    const challenge = await client.next('auth');
    expect(challenge.reasonCode).toBe(0x18);
    expect(challenge.properties?.authenticationMethod).toBe('SCRAM-SHA-256');
    const serverFirst = challenge.properties!.authenticationData!.toString('utf8');
    client.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from(scram.clientFinal(serverFirst)) } });
    return client.next('connack');
  }

  it('authenticates with SCRAM, the client verifies the server, and re-authentication ends in AUTH 0x00', async () => {
    const client = await raw();
    const scram = new ScramClient('bob', 'builder');
    const connack = await scramConnect(client, scram, 'bob');
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.authenticationMethod).toBe('SCRAM-SHA-256');
    expect(scram.verifyServerFinal(connack.properties!.authenticationData!.toString('utf8'))).toBe(true);

    // [MQTT-4.12.1-1] Re-authentication on the same connection.
    const again = new ScramClient('bob', 'builder');
    client.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from(again.clientFirst()) } });
    const challenge = await client.next('auth');
    expect(challenge.reasonCode).toBe(0x18);
    const final = again.clientFinal(challenge.properties!.authenticationData!.toString('utf8'));
    client.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from(final) } });
    const done = await client.next('auth');
    expect(done.reasonCode).toBe(0x00);
    expect(again.verifyServerFinal(done.properties!.authenticationData!.toString('utf8'))).toBe(true);
    client.send({ cmd: 'pingreq' });
    await client.next('pingresp');
  });

  it('refuses a wrong SCRAM password with CONNACK 0x86 and closes', async () => {
    const client = await raw();
    const connack = await scramConnect(client, new ScramClient('bob', 'wrong'));
    expect(connack.reasonCode).toBe(0x86);
    await client.closed;
  });

  it('a re-authentication as another user ends in DISCONNECT 0x87', async () => {
    // The identity the first exchange established (bob) may not change on re-authentication.
    const client = await raw();
    expect((await scramConnect(client, new ScramClient('bob', 'builder'))).reasonCode).toBe(0);
    client.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: Buffer.from(new ScramClient('carol', 'c').clientFirst()) } });
    expect((await client.next('disconnect')).reasonCode).toBe(0x87);
    await client.closed;
  });

  it('refuses an authentication method it does not offer with 0x8C', async () => {
    const client = await raw();
    const connack = await client.connect({ properties: { authenticationMethod: 'SCRAM-SHA-1', authenticationData: Buffer.from('n,,n=bob,r=abc') } });
    expect(connack.reasonCode).toBe(0x8c);
    await client.closed;
  });

  it('AUTH from a client that connected with a password is a protocol error (DISCONNECT 0x82)', async () => {
    const client = await raw();
    expect((await client.connect({ username: 'alice', password: Buffer.from('wonderland') })).reasonCode).toBe(0);
    client.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'SCRAM-SHA-256' } });
    expect((await client.next('disconnect')).reasonCode).toBe(0x82);
    await client.closed;
  });
});
