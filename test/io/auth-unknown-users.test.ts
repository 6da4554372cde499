/**
 * Proves that neither authentication method tells which user names exist (RFC 5802 section 9):
 *
 * - CONNECT passwords: an unknown name costs what a known user with a wrong password costs, for a
 *   file of SCRAM users (PBKDF2) and for a file of scrypt users alike. Measured by timing many
 *   checks of each kind, interleaved so that the machine's noise falls on both, each with a fresh
 *   password so that no cache answers, and comparing the medians and lower quartiles within a
 *   factor of two: loose enough for a busy shared machine, tight enough to catch the old decoy
 *   (scrypt at its default cost for every file: 30 times a SCRAM user's cost, 8 times that of a
 *   low-cost scrypt user). One of up to three measurements must agree, so that a burst of load
 *   from elsewhere cannot fail the test while a real difference always does.
 * - The decoys themselves: the same name always gets the same one; a mixed file's unknown names
 *   are drawn as SCRAM or scrypt in the file's proportion; a name drawn as SCRAM gets the very
 *   credentials a SCRAM exchange shows for it.
 * - SCRAM exchanges: the server-first message for an unknown name (or a user with only a scrypt
 *   hash) has the real entries' salt length and iteration count and a nonce of the same form,
 *   and is the same for the same name every time. Both paths do the same work by construction
 *   (the decoy is derived on every exchange); a timing comparison guards against gross
 *   differences only, because the two differ by microseconds at most.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Decoys, profileOf } from '../../io/auth/decoy.js';
import { PasswordAuthenticator } from '../../io/auth/password-authenticator.js';
import { hashPasswordScram, hashPasswordScrypt, type PasswordHash, type ScramHash, scramKeys, updatePasswordFile } from '../../io/auth/password-file.js';
import { PasswordStore } from '../../io/auth/password-store.js';
import { ScramSha256Authenticator } from '../../io/auth/scram.js';
import type { AuthenticationRequest } from '../../src/broker/authenticator.js';
import { ScramClient } from './auth-scram-client.js';

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

let directory = '';
beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'keel-unknown-users-'));
});
afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

function storeWith(users: Record<string, PasswordHash>): PasswordStore {
  const file = join(directory, 'passwords');
  for (const [user, hash] of Object.entries(users)) updatePasswordFile(file, user, hash);
  const store = PasswordStore.open(file);
  if (!(store instanceof PasswordStore)) throw new Error(store.problems.join('\n'));
  return store;
}

function request(username: string | undefined, password?: Uint8Array): AuthenticationRequest {
  return { clientId: 'c', username, password, remoteAddress: '127.0.0.1:1', protocolVersion: 5 };
}

let sampleCount = 0;

/**
 * Milliseconds per call of each case, `rounds` times, the cases taking turns in alternating order
 * (AB, BA, ...) so that neither always runs right after the other. Each call gets a number never
 * given before, to make its user name or password fresh, so that no cache answers it.
 */
function timeInterleaved(cases: Record<string, (sample: number) => void>, rounds: number): Record<string, number[]> {
  const samples: Record<string, number[]> = {};
  for (const name of Object.keys(cases)) samples[name] = [];
  for (let round = -2; round < rounds; round++) {
    const order = Object.entries(cases);
    if (round % 2 !== 0) order.reverse();
    for (const [name, run] of order) {
      const sample = sampleCount++;
      const startMs = performance.now();
      run(sample);
      // The first two rounds warm up (JIT, caches of the file system) and are not kept.
      if (round >= 0) samples[name]!.push(performance.now() - startMs);
    }
  }
  return samples;
}

function quantile(samples: number[], fraction: number): number {
  const sorted = [...samples].sort((left, right) => left - right);
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!;
}

/** Why the two timings differ by more than a factor of two (median or lower quartile), or null. */
function costDifference(left: number[], right: number[]): string | null {
  for (const [name, fraction] of [
    ['median', 0.5],
    ['lower quartile', 0.25],
  ] as const) {
    const ratio = quantile(left, fraction) / quantile(right, fraction);
    if (ratio <= 0.5 || ratio >= 2) return `${name} ${quantile(left, fraction).toFixed(3)} ms vs ${quantile(right, fraction).toFixed(3)} ms`;
  }
  return null;
}

/**
 * Passes when one of up to three measurements finds `unknown` and `known` within a factor of two.
 * A busy machine can spoil one measurement; a real difference (the old decoy's 8 to 30 times)
 * spoils all three.
 */
function expectSameCost(measure: () => Record<string, number[]>): void {
  const differences: string[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const samples = measure();
    const difference = costDifference(samples.unknown!, samples.known!);
    if (difference === null) return;
    differences.push(difference);
  }
  expect.fail(`unknown and known users cost differently in every measurement: ${differences.join('; ')}`);
}

describe('CONNECT passwords: an unknown user costs what a known one does', () => {
  it('in a file of SCRAM users, whose check is PBKDF2 at their iteration count', () => {
    const iterations = 16_384;
    const store = storeWith({ ann: hashPasswordScram(bytes('a'), iterations), bob: hashPasswordScram(bytes('b'), iterations) });
    const authenticator = new PasswordAuthenticator(store, { allowAnonymous: false });
    expectSameCost(() =>
      timeInterleaved(
        {
          unknown: (sample) => expect(authenticator.authenticate(request(`nobody-${sample}`, bytes(`guess-${sample}`))).ok).toBe(false),
          known: (sample) => expect(authenticator.authenticate(request(sample % 2 === 0 ? 'ann' : 'bob', bytes(`guess-${sample}`))).ok).toBe(false),
        },
        40,
      ),
    );
    expect(authenticator.stats.cached).toBe(0);
  });

  it('in a file of scrypt users, whose check is scrypt at their cost', () => {
    const cost = 2_048;
    const store = storeWith({ ann: hashPasswordScrypt(bytes('a'), cost), bob: hashPasswordScrypt(bytes('b'), cost) });
    const authenticator = new PasswordAuthenticator(store, { allowAnonymous: false });
    expectSameCost(() =>
      timeInterleaved(
        {
          unknown: (sample) => expect(authenticator.authenticate(request(`nobody-${sample}`, bytes(`guess-${sample}`))).ok).toBe(false),
          known: (sample) => expect(authenticator.authenticate(request(sample % 2 === 0 ? 'ann' : 'bob', bytes(`guess-${sample}`))).ok).toBe(false),
        },
        25,
      ),
    );
    expect(authenticator.stats.cached).toBe(0);
  });
});

describe('decoys', () => {
  const scram = hashPasswordScram(bytes('x'), 8_192);
  const scrypt = hashPasswordScrypt(bytes('x'), 1_024);
  const entry = (username: string, hash: PasswordHash) => ({ username, hash, hashText: '' });

  it('are the same for the same name and differ between names', () => {
    const profile = profileOf([entry('a', scram), entry('b', scrypt)]);
    const decoys = new Decoys();
    expect(decoys.password('mallory', profile)).toEqual(decoys.password('mallory', profile));
    expect(decoys.scram('mallory', profile)).toEqual(decoys.scram('mallory', profile));
    expect(decoys.scram('mallory', profile).salt.equals(decoys.scram('trudy', profile).salt)).toBe(false);
    // Another process (another secret) makes up other salts.
    expect(new Decoys().scram('mallory', profile).salt.equals(decoys.scram('mallory', profile).salt)).toBe(false);
  });

  it("draw unknown names as SCRAM or scrypt in the file's proportion, with the entries' parameters", () => {
    const profile = profileOf([entry('a', scram), entry('b', scrypt), entry('c', scrypt), entry('d', scrypt)]);
    const decoys = new Decoys();
    let drawnScram = 0;
    for (let index = 0; index < 2_000; index++) {
      const name = `name-${index}`;
      const decoy = decoys.password(name, profile);
      if (decoy.kind === 'scram-sha-256') {
        drawnScram += 1;
        expect(decoy).toEqual(decoys.scram(name, profile));
        expect(decoy.iterations).toBe(8_192);
      } else {
        expect([decoy.cost, decoy.blockSize, decoy.parallelization, decoy.salt.length, decoy.key.length]).toEqual([1_024, 8, 1, 16, 32]);
      }
    }
    // One entry in four is SCRAM: 500 expected; the bounds are over 7 standard deviations wide.
    expect(drawnScram).toBeGreaterThan(350);
    expect(drawnScram).toBeLessThan(650);
  });
});

describe('SCRAM exchanges: an unknown user looks like a known one', () => {
  /** A SCRAM entry with a salt of `saltBytes`, unlike `keel passwd`'s 16, to see the decoy follow. */
  function scramEntry(password: string, iterations: number, saltBytes: number): ScramHash {
    const salt = Buffer.alloc(saltBytes, 7);
    const keys = scramKeys(bytes(password), salt, iterations);
    return { kind: 'scram-sha-256', iterations, salt, storedKey: keys.storedKey, serverKey: keys.serverKey };
  }

  function serverFirst(authenticator: ScramSha256Authenticator, client: ScramClient): Map<string, string> {
    const step = authenticator.start('SCRAM-SHA-256', bytes(client.clientFirst()), request(undefined));
    if (step.kind !== 'continue') throw new Error(`expected continue, got ${step.kind}`);
    return new Map(
      Buffer.from(step.data!)
        .toString('utf8')
        .split(',')
        .map((attribute) => [attribute.slice(0, 1), attribute.slice(2)]),
    );
  }

  it("shows an unknown name the entries' salt length and iteration count, and the same salt every time", () => {
    const store = storeWith({ ann: scramEntry('pw', 8_192, 20), plain: hashPasswordScrypt(bytes('pw'), 1_024) });
    const authenticator = new ScramSha256Authenticator(store);
    const known = serverFirst(authenticator, new ScramClient('ann', 'x'));
    expect(Buffer.from(known.get('s')!, 'base64').length).toBe(20);
    for (const name of ['nobody', 'plain']) {
      const client = new ScramClient(name, 'x');
      const first = serverFirst(authenticator, client);
      expect([...first.keys()], name).toEqual([...known.keys()]);
      expect(first.get('i'), name).toBe('8192');
      expect(Buffer.from(first.get('s')!, 'base64').length, name).toBe(20);
      expect(first.get('r')!.startsWith(client.clientNonce), name).toBe(true);
      expect(first.get('r')!.length - client.clientNonce.length, name).toBe(known.get('r')!.length - new ScramClient('ann', 'x').clientNonce.length);
      const again = serverFirst(authenticator, new ScramClient(name, 'x'));
      expect(again.get('s'), name).toBe(first.get('s'));
      expect(again.get('r'), name).not.toBe(first.get('r'));
    }
    expect(serverFirst(authenticator, new ScramClient('nobody', 'x')).get('s')).not.toBe(serverFirst(authenticator, new ScramClient('somebody', 'x')).get('s'));
  });

  it('takes as long for an unknown name as for a known user with a wrong password', () => {
    const store = storeWith({ ann: scramEntry('pw', 4_096, 16) });
    const authenticator = new ScramSha256Authenticator(store);
    const exchange = (name: string): void => {
      const client = new ScramClient(name, 'wrong');
      const step = authenticator.start('SCRAM-SHA-256', bytes(client.clientFirst()), request(undefined));
      if (step.kind !== 'continue') throw new Error('expected continue');
      // The client's side (PBKDF2) is not the server's work: send a made-up proof instead.
      const nonce = Buffer.from(step.data!).toString('utf8').split(',')[0]!.slice(2);
      const final = authenticator.continue(step.state, bytes(`c=biws,r=${nonce},p=${Buffer.alloc(32, 1).toString('base64')}`));
      expect(final).toEqual({ kind: 'failure', reasonCode: 0x86 });
    };
    // One sample is a batch of exchanges: a single one takes tens of microseconds, too short to time alone.
    const batch = (name: string) => () => {
      for (let index = 0; index < 50; index++) exchange(name);
    };
    expectSameCost(() => timeInterleaved({ unknown: batch('nobody'), known: batch('ann') }, 40));
  });
});
