/**
 * User name and password authentication for CONNECT (3.1, 3.1.1 and 5.0 without an
 * authentication method), against the password file, behind the core's synchronous
 * `Authenticator` seam.
 *
 * Outcomes: no user name: accepted when anonymous access is allowed, else 0x87 Not authorized
 * (3.1.1: rc 5); a user name with a wrong or missing password, or an unknown user: 0x86 Bad user
 * name or password (3.1.1: rc 4). An unknown user is checked against a decoy (decoy.ts) shaped
 * like the file's entries: a file of SCRAM users answers unknown names with PBKDF2 at their
 * iteration count, a file of scrypt users with scrypt at their cost, a mixed file with either in
 * proportion, the same one for the same name every time. So timing does not tell which user
 * names exist, whichever hash form the file holds.
 *
 * Cost: the hash is slow on purpose (scrypt, ~50 ms), and the seam is synchronous, so a check
 * blocks the event loop. A reconnect storm of clients that all know their password must not
 * cost that each time, so results are cached: per user, a keyed HMAC (random key per process)
 * of the last password that verified, and a bounded set of HMACs of (user, password) pairs that
 * failed, each tied to the exact hash line it was checked against, so a changed password file
 * invalidates them. A cached answer costs one HMAC (~2 µs). The caches hold only keyed digests,
 * never passwords, and each is bounded (`cacheEntriesMax`, oldest evicted first). A flood of
 * distinct wrong passwords is not helped by any cache: connectionRatePerSecondMax bounds it.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthenticationDecision, AuthenticationRequest, Authenticator } from '../../src/broker/authenticator.js';
import { ReasonCode } from '../../src/codec/reason-codes.js';
import { Decoys } from './decoy.js';
import { type PasswordEntry, verifyPassword } from './password-file.js';
import type { PasswordStore } from './password-store.js';

export interface PasswordAuthenticatorOptions {
  allowAnonymous: boolean;
  /** Entries per cache (verified users; failed pairs). */
  cacheEntriesMax?: number;
  /** Shared with the SCRAM authenticator, so that both show an unknown name the same decoy. */
  decoys?: Decoys;
}

export interface PasswordAuthenticatorStats {
  /** Checks that ran the slow hash. */
  hashed: number;
  /** Checks answered from a cache. */
  cached: number;
}

interface Verified {
  readonly hashText: string;
  readonly digest: Buffer;
}

export class PasswordAuthenticator implements Authenticator {
  readonly stats: PasswordAuthenticatorStats = { hashed: 0, cached: 0 };
  private readonly allowAnonymous: boolean;
  private readonly cacheEntriesMax: number;
  private readonly cacheKey = randomBytes(32);
  /** User name to the digest of its last good password. */
  private readonly verified = new Map<string, Verified>();
  /** Digest of a failed (user, password) pair, in hex, to the hash line it failed against. */
  private readonly refused = new Map<string, string>();
  /** What unknown users are checked against, so that they cost as much as known ones. */
  private readonly decoys: Decoys;

  constructor(
    private readonly store: PasswordStore,
    options: PasswordAuthenticatorOptions,
  ) {
    this.allowAnonymous = options.allowAnonymous;
    this.cacheEntriesMax = options.cacheEntriesMax ?? 10_000;
    this.decoys = options.decoys ?? new Decoys();
  }

  authenticate(request: AuthenticationRequest): AuthenticationDecision {
    if (request.username === undefined) {
      return this.allowAnonymous ? { ok: true } : { ok: false, reasonCode: ReasonCode.NotAuthorized };
    }
    const bad: AuthenticationDecision = { ok: false, reasonCode: ReasonCode.BadUserNameOrPassword };
    if (request.password === undefined) return bad;
    const entry = this.store.lookup(request.username);
    const digest = this.digest(request.username, request.password);
    const hashText = entry?.hashText ?? '';
    const cached = this.fromCache(request.username, hashText, digest);
    if (cached !== null) {
      this.stats.cached += 1;
      return cached ? { ok: true } : bad;
    }
    this.stats.hashed += 1;
    const good = this.check(request.username, entry, request.password);
    this.remember(request.username, hashText, digest, good);
    return good ? { ok: true } : bad;
  }

  private check(username: string, entry: PasswordEntry | undefined, password: Uint8Array): boolean {
    if (entry === undefined) {
      // The decoy's answer is ignored: an unknown user is refused even if the bytes matched.
      verifyPassword(this.decoys.password(username, this.store.profile), password);
      return false;
    }
    return verifyPassword(entry.hash, password);
  }

  private digest(username: string, password: Uint8Array): Buffer {
    const name = Buffer.from(username, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(name.length);
    // Length-prefixed, so that ("ab", "c") and ("a", "bc") never share a digest.
    return createHmac('sha256', this.cacheKey).update(length).update(name).update(password).digest();
  }

  /** true or false when a cache knows the answer for this exact hash line, null otherwise. */
  private fromCache(username: string, hashText: string, digest: Buffer): boolean | null {
    const verified = this.verified.get(username);
    if (verified !== undefined && verified.hashText === hashText && timingSafeEqual(verified.digest, digest)) return true;
    const refusedAgainst = this.refused.get(digest.toString('hex'));
    if (refusedAgainst !== undefined && refusedAgainst === hashText) return false;
    return null;
  }

  private remember(username: string, hashText: string, digest: Buffer, good: boolean): void {
    if (good) {
      this.verified.delete(username);
      this.verified.set(username, { hashText, digest });
      evictOldest(this.verified, this.cacheEntriesMax);
      return;
    }
    const key = digest.toString('hex');
    this.refused.delete(key);
    this.refused.set(key, hashText);
    evictOldest(this.refused, this.cacheEntriesMax);
  }
}

/** Maps iterate in insertion order: the first keys are the oldest. */
function evictOldest<K, V>(map: Map<K, V>, sizeMax: number): void {
  while (map.size > sizeMax) {
    const oldest = map.keys().next();
    if (oldest.done === true) return;
    map.delete(oldest.value);
  }
}
