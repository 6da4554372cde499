/**
 * Proves the Node-side authenticators (io/auth/): the password file format (both hash forms,
 * bad lines reported with their line numbers, updates that keep other lines), the reloading
 * store (and its forced reload on SIGHUP), the password authenticator's decisions and its result
 * cache (measured by how many checks ran the slow hash, and invalidated by a password change),
 * and SCRAM-SHA-256 on the server side: RFC 7677's own example exchange replayed byte for byte,
 * then exchanges with an independent client (test/io/auth-scram-client.ts) that succeed or fail
 * for each reason. Files live in a fresh temporary directory; scrypt runs at a low cost where the
 * cost is not what is being tested.
 */
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PasswordAuthenticator } from '../../io/auth/password-authenticator.js';
import { formatHash, hashPasswordScram, hashPasswordScrypt, parseHash, parsePasswordFile, type ScramHash, scramKeys, updatePasswordFile, verifyPassword } from '../../io/auth/password-file.js';
import { PasswordStore } from '../../io/auth/password-store.js';
import { parseClientFirst, ScramSha256Authenticator } from '../../io/auth/scram.js';
import type { AuthenticationRequest, AuthenticationStep } from '../../src/broker/authenticator.js';
import { ScramClient } from './auth-scram-client.js';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');
const lowCost = 1_024;

let directory = '';
beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'keel-auth-'));
});
afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

function openStore(file: string, nowMs: () => number = () => 0): PasswordStore {
  const store = PasswordStore.open(file, { nowMs, recheckMs: 1_000 });
  if (!(store instanceof PasswordStore)) throw new Error(store.problems.join('\n'));
  return store;
}

function request(username: string | undefined, password?: string): AuthenticationRequest {
  return { clientId: 'c', username, password: password === undefined ? undefined : bytes(password), remoteAddress: '127.0.0.1:1', protocolVersion: 5 };
}

describe('password file', () => {
  it('round-trips both hash forms and verifies only the right password', () => {
    for (const hash of [hashPasswordScrypt(bytes('secret'), lowCost), hashPasswordScram(bytes('secret'), 4_096)]) {
      const parsed = parseHash(formatHash(hash));
      expect(typeof parsed).not.toBe('string');
      expect(formatHash(parsed as typeof hash)).toBe(formatHash(hash));
      expect(verifyPassword(parsed as typeof hash, bytes('secret'))).toBe(true);
      expect(verifyPassword(parsed as typeof hash, bytes('Secret'))).toBe(false);
      expect(verifyPassword(parsed as typeof hash, bytes(''))).toBe(false);
    }
  });

  it('salts: the same password twice gives different hashes', () => {
    expect(formatHash(hashPasswordScrypt(bytes('same'), lowCost))).not.toBe(formatHash(hashPasswordScrypt(bytes('same'), lowCost)));
  });

  it('reports every bad line with its number and skips comments and blank lines', () => {
    const good = formatHash(hashPasswordScrypt(bytes('x'), lowCost));
    const text = [
      `# users`,
      ``,
      `alice:${good}`,
      `nocolon`,
      `bob:md5$abc`,
      `carol:scrypt$1000$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5`,
      `alice:${good}`,
      `dave:scrypt$${2 ** 21}$8$1$c2FsdA==$a2V5a2V5a2V5a2V5a2V5a2V5`,
    ].join('\n');
    const parsed = parsePasswordFile(text, 'pw');
    expect([...parsed.entries.keys()]).toEqual(['alice']);
    expect(parsed.problems.map((problem) => problem.split(':').slice(0, 2).join(':'))).toEqual(['pw:4', 'pw:5', 'pw:6', 'pw:7', 'pw:8']);
    expect(parsed.problems[1]).toContain('unknown hash form');
    expect(parsed.problems[2]).toContain('power of two');
  });

  it('updates add, replace and delete one user and keep every other line; user names may contain colons', () => {
    const file = join(directory, 'passwords');
    writeFileSync(file, '# keep me\n');
    expect(updatePasswordFile(file, 'alice', hashPasswordScrypt(bytes('one'), lowCost))).toBe(false);
    expect(updatePasswordFile(file, 'site:bob', hashPasswordScrypt(bytes('two'), lowCost))).toBe(false);
    expect(updatePasswordFile(file, 'alice', hashPasswordScram(bytes('three'), 4_096))).toBe(true);
    let parsed = parsePasswordFile(readFileSync(file, 'utf8'), file);
    expect(parsed.problems).toEqual([]);
    expect(readFileSync(file, 'utf8').startsWith('# keep me\n')).toBe(true);
    expect(parsed.entries.get('alice')!.hash.kind).toBe('scram-sha-256');
    expect(verifyPassword(parsed.entries.get('alice')!.hash, bytes('three'))).toBe(true);
    expect(verifyPassword(parsed.entries.get('site:bob')!.hash, bytes('two'))).toBe(true);
    expect(updatePasswordFile(file, 'alice', null)).toBe(true);
    parsed = parsePasswordFile(readFileSync(file, 'utf8'), file);
    expect([...parsed.entries.keys()]).toEqual(['site:bob']);
    expect(() => updatePasswordFile(file, 'bad\nname', null)).toThrow(/line break/);
  });

  it('a SCRAM entry holds the RFC 5802 keys of its password', () => {
    const hash = hashPasswordScram(bytes('pencil'), 4_096);
    const keys = scramKeys(bytes('pencil'), hash.salt, 4_096);
    expect(hash.storedKey.equals(keys.storedKey)).toBe(true);
    expect(hash.serverKey.equals(keys.serverKey)).toBe(true);
  });
});

describe('password store', () => {
  it('reloads a changed file at most once per recheck interval and keeps the old users when the new file is bad', () => {
    const file = join(directory, 'passwords');
    updatePasswordFile(file, 'alice', hashPasswordScrypt(bytes('a'), lowCost));
    let nowMs = 0;
    const store = openStore(file, () => nowMs);
    expect(store.lookup('bob')).toBeUndefined();
    updatePasswordFile(file, 'bob', hashPasswordScrypt(bytes('b'), lowCost));
    nowMs = 999;
    expect(store.lookup('bob')).toBeUndefined();
    nowMs = 1_000;
    expect(store.lookup('bob')).toBeDefined();
    writeFileSync(file, 'garbage line\n');
    nowMs = 2_500;
    expect(store.lookup('alice')).toBeDefined();
  });

  it('reload() re-reads at once, even an edit the watcher cannot see, and keeps the users when the file is bad', () => {
    const file = join(directory, 'passwords');
    updatePasswordFile(file, 'alice', hashPasswordScrypt(bytes('a'), lowCost));
    // Same size, same inode, same modification time: only a forced read notices the edit.
    const seconds = Math.floor(Date.now() / 1000) - 60;
    utimesSync(file, seconds, seconds);
    const store = openStore(file, () => 5_000);
    const before = readFileSync(file, 'utf8');
    writeFileSync(file, before.replace('alice:', 'alicf:'));
    utimesSync(file, seconds, seconds);
    expect(store.lookup('alicf')).toBeUndefined();
    expect(store.reload()).toEqual({ what: 'password file', ok: true, detail: `1 users from ${file}` });
    expect(store.lookup('alicf')).toBeDefined();
    writeFileSync(file, 'garbage\n');
    expect(store.reload()).toEqual({ what: 'password file', ok: false, detail: `kept 1 users, ${file} has problems: ${file}:1: expected username:hash` });
    expect(store.lookup('alicf')).toBeDefined();
  });

  it('refuses to open a missing or bad file, listing the problems', () => {
    const missing = PasswordStore.open(join(directory, 'nope'));
    expect('problems' in missing && missing.problems[0]).toMatch(/cannot read password file/);
    const file = join(directory, 'bad');
    writeFileSync(file, 'x:y\n');
    const bad = PasswordStore.open(file);
    expect('problems' in bad && bad.problems[0]).toMatch(/bad:1: unknown hash form/);
  });
});

describe('password authenticator', () => {
  function setup(allowAnonymous: boolean): { authenticator: PasswordAuthenticator; file: string } {
    const file = join(directory, 'passwords');
    updatePasswordFile(file, 'alice', hashPasswordScrypt(bytes('wonderland'), lowCost));
    updatePasswordFile(file, 'bob', hashPasswordScram(bytes('builder'), 4_096));
    return { authenticator: new PasswordAuthenticator(openStore(file), { allowAnonymous }), file };
  }

  it('accepts the right password (either hash form), refuses others with 0x86 and anonymous per the setting with 0x87', () => {
    const { authenticator } = setup(false);
    expect(authenticator.authenticate(request('alice', 'wonderland'))).toEqual({ ok: true });
    expect(authenticator.authenticate(request('bob', 'builder'))).toEqual({ ok: true });
    expect(authenticator.authenticate(request('alice', 'builder'))).toEqual({ ok: false, reasonCode: 0x86 });
    expect(authenticator.authenticate(request('alice'))).toEqual({ ok: false, reasonCode: 0x86 });
    expect(authenticator.authenticate(request('mallory', 'wonderland'))).toEqual({ ok: false, reasonCode: 0x86 });
    expect(authenticator.authenticate(request(undefined))).toEqual({ ok: false, reasonCode: 0x87 });
    expect(setup(true).authenticator.authenticate(request(undefined))).toEqual({ ok: true });
  });

  it('answers a repeated check from its cache, for good and bad passwords alike', () => {
    const { authenticator } = setup(false);
    for (let attempt = 0; attempt < 50; attempt++) {
      expect(authenticator.authenticate(request('alice', 'wonderland')).ok).toBe(true);
      expect(authenticator.authenticate(request('alice', 'guess')).ok).toBe(false);
      expect(authenticator.authenticate(request('mallory', 'x')).ok).toBe(false);
    }
    expect(authenticator.stats).toEqual({ hashed: 3, cached: 147 });
    // A different password for a cached user is checked for real.
    expect(authenticator.authenticate(request('alice', 'wonderland!')).ok).toBe(false);
    expect(authenticator.stats.hashed).toBe(4);
  });

  it('a cached answer is tied to the hash line: after a reload the new password works and the old one does not', () => {
    const file = join(directory, 'passwords');
    updatePasswordFile(file, 'alice', hashPasswordScrypt(bytes('old'), lowCost));
    let nowMs = 0;
    const authenticator = new PasswordAuthenticator(
      openStore(file, () => nowMs),
      { allowAnonymous: false },
    );
    expect(authenticator.authenticate(request('alice', 'old')).ok).toBe(true);
    expect(authenticator.authenticate(request('alice', 'new')).ok).toBe(false);
    updatePasswordFile(file, 'alice', hashPasswordScrypt(bytes('new'), lowCost));
    nowMs = 5_000;
    expect(authenticator.authenticate(request('alice', 'old')).ok).toBe(false);
    expect(authenticator.authenticate(request('alice', 'new')).ok).toBe(true);
    expect(authenticator.stats.hashed).toBe(4);
  });

  it('keeps each cache within cacheEntriesMax', () => {
    const { file } = setup(false);
    const authenticator = new PasswordAuthenticator(openStore(file), { allowAnonymous: false, cacheEntriesMax: 2 });
    for (const password of ['a', 'b', 'c']) authenticator.authenticate(request('alice', password));
    const hashedBefore = authenticator.stats.hashed;
    authenticator.authenticate(request('alice', 'a')); // evicted: hashed again
    authenticator.authenticate(request('alice', 'c')); // still cached
    expect(authenticator.stats.hashed).toBe(hashedBefore + 1);
  });
});

describe('SCRAM-SHA-256 (server side)', () => {
  function scramFile(users: Record<string, ScramHash>): string {
    const file = join(directory, 'passwords');
    for (const [user, hash] of Object.entries(users)) updatePasswordFile(file, user, hash);
    return file;
  }

  function run(authenticator: ScramSha256Authenticator, client: ScramClient, connectUser?: string): { first: AuthenticationStep; final: AuthenticationStep } {
    const first = authenticator.start('SCRAM-SHA-256', bytes(client.clientFirst()), request(connectUser));
    if (first.kind !== 'continue') return { first, final: first };
    const final = authenticator.continue(first.state, bytes(client.clientFinal(Buffer.from(first.data!).toString('utf8'))));
    return { first, final };
  }

  it("replays RFC 7677's example exchange exactly", () => {
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    const keys = scramKeys(bytes('pencil'), salt, 4_096);
    const file = scramFile({ user: { kind: 'scram-sha-256', iterations: 4_096, salt, storedKey: keys.storedKey, serverKey: keys.serverKey } });
    const authenticator = new ScramSha256Authenticator(openStore(file), () => '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0');
    const first = authenticator.start('SCRAM-SHA-256', bytes('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'), request(undefined));
    expect(first.kind).toBe('continue');
    if (first.kind !== 'continue') return;
    expect(Buffer.from(first.data!).toString()).toBe('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
    const final = authenticator.continue(first.state, bytes('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ='));
    expect(final.kind).toBe('success');
    if (final.kind !== 'success') return;
    expect(Buffer.from(final.data!).toString()).toBe('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
    expect(final.identity).toBe('user');
  });

  it('authenticates an independent client, who verifies the server in turn', () => {
    const file = scramFile({ 'ann,e=x': hashPasswordScram(bytes('s3cret'), 4_096) });
    const client = new ScramClient('ann,e=x', 's3cret');
    const { final } = run(new ScramSha256Authenticator(openStore(file)), client);
    expect(final.kind).toBe('success');
    if (final.kind === 'success') expect(client.verifyServerFinal(Buffer.from(final.data!).toString())).toBe(true);
  });

  it('fails a wrong password, an unknown user and a user with only a scrypt hash with 0x86, after the same first step', () => {
    const file = scramFile({ ann: hashPasswordScram(bytes('right'), 4_096) });
    updatePasswordFile(file, 'plain', hashPasswordScrypt(bytes('right'), lowCost));
    const authenticator = new ScramSha256Authenticator(openStore(file));
    for (const client of [new ScramClient('ann', 'wrong'), new ScramClient('nobody', 'right'), new ScramClient('plain', 'right')]) {
      const { first, final } = run(authenticator, client);
      expect(first.kind).toBe('continue');
      expect(final).toEqual({ kind: 'failure', reasonCode: 0x86 });
    }
    // An unknown user's made-up salt is stable, so asking twice does not reveal that it is made up.
    const salts = [0, 1].map(() => {
      const step = authenticator.start('SCRAM-SHA-256', bytes(new ScramClient('nobody', 'x').clientFirst()), request(undefined));
      return step.kind === 'continue' ? Buffer.from(step.data!).toString().split(',')[1] : '';
    });
    expect(salts[0]).toBe(salts[1]);
  });

  it('refuses with 0x87 a user other than the CONNECT user name, malformed messages, channel binding and a replayed nonce', () => {
    const file = scramFile({ ann: hashPasswordScram(bytes('pw'), 4_096) });
    const authenticator = new ScramSha256Authenticator(openStore(file));
    const refused = { kind: 'failure', reasonCode: 0x87 };
    expect(run(authenticator, new ScramClient('ann', 'pw'), 'bob').final).toEqual(refused);
    expect(run(authenticator, new ScramClient('ann', 'pw'), 'ann').final.kind).toBe('success');
    for (const message of ['', 'n,,', 'n,,r=abc', 'p=tls-unique,,n=ann,r=abc', 'n,,n=ann,r=a,b', 'n,,m=ext,n=ann,r=abc', 'n,a=bob,n=ann,r=abc', 'n,,n=a=nn,r=abc']) {
      expect(authenticator.start('SCRAM-SHA-256', bytes(message), request(undefined)), message).toEqual(refused);
    }
    expect(authenticator.start('SCRAM-SHA-256', undefined, request(undefined))).toEqual(refused);
    expect(parseClientFirst('y,a=ann,n=ann,r=abc')?.username).toBe('ann');
    const client = new ScramClient('ann', 'pw');
    const first = authenticator.start('SCRAM-SHA-256', bytes(client.clientFirst()), request(undefined));
    if (first.kind !== 'continue') throw new Error('expected continue');
    const final = client.clientFinal(Buffer.from(first.data!).toString());
    expect(authenticator.continue(first.state, bytes(final.replace(/r=[^,]+/, 'r=other')))).toEqual(refused);
    expect(authenticator.continue(first.state, bytes(final.replace('c=biws', 'c=eSws')))).toEqual(refused);
    expect(authenticator.continue(first.state, bytes('c=biws'))).toEqual(refused);
  });
});
