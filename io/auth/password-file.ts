/**
 * The password file: one `username:hash` line per user; blank lines and lines starting with `#`
 * are ignored. The user name is everything before the last `:` (a hash never contains one), so
 * MQTT user names with colons work. Two hash forms:
 *
 * - `scrypt$N$r$p$salt$key` (salt and key in base64): a slow, memory-hard hash for CONNECT
 *   passwords. Default cost N=16384, r=8, p=1: about 50 ms and 16 MiB per check on a 2020s core,
 *   which is why the authenticator caches results (password-authenticator.ts).
 * - `scram-sha-256$iterations$salt$storedKey$serverKey` (RFC 5802/7677): what a SCRAM-SHA-256
 *   server keeps. It serves SCRAM (io/auth/scram.ts) and also CONNECT passwords, which are checked
 *   by deriving the StoredKey again (PBKDF2-SHA-256 with the same salt and iterations).
 *
 * Passwords are bytes (MQTT passwords are binary); `keel passwd` stores the UTF-8 of its input.
 * No SASLprep is applied. Parsing bounds every cost parameter, so a damaged or hostile file
 * cannot make a check take minutes or gigabytes. Writes go to a new file that is then renamed
 * over the old one (mode 0600), so a reader never sees half a file.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export interface ScryptHash {
  readonly kind: 'scrypt';
  readonly cost: number;
  readonly blockSize: number;
  readonly parallelization: number;
  readonly salt: Buffer;
  readonly key: Buffer;
}

export interface ScramHash {
  readonly kind: 'scram-sha-256';
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export type PasswordHash = ScryptHash | ScramHash;

export interface PasswordEntry {
  readonly username: string;
  readonly hash: PasswordHash;
  /** The hash as written in the file: a changed line means a changed password. */
  readonly hashText: string;
}

export const scryptDefaults = { cost: 16_384, blockSize: 8, parallelization: 1, saltBytes: 16, keyBytes: 32 } as const;
/** RFC 7677 asks for at least 4096 iterations. */
export const scramIterationsDefault = 4_096;
const scryptCostMax = 1 << 20;
const scramIterationsMax = 10_000_000;
const sha256Bytes = 32;

export function hashPasswordScrypt(password: Uint8Array, cost: number = scryptDefaults.cost): ScryptHash {
  const salt = randomBytes(scryptDefaults.saltBytes);
  const key = scrypt(password, salt, scryptDefaults.keyBytes, cost, scryptDefaults.blockSize, scryptDefaults.parallelization);
  return { kind: 'scrypt', cost, blockSize: scryptDefaults.blockSize, parallelization: scryptDefaults.parallelization, salt, key };
}

export function hashPasswordScram(password: Uint8Array, iterations: number = scramIterationsDefault): ScramHash {
  const salt = randomBytes(16);
  const keys = scramKeys(password, salt, iterations);
  return { kind: 'scram-sha-256', iterations, salt, storedKey: keys.storedKey, serverKey: keys.serverKey };
}

/** SaltedPassword, ClientKey, StoredKey and ServerKey of RFC 5802 section 3, with SHA-256. */
export function scramKeys(password: Uint8Array, salt: Uint8Array, iterations: number): { clientKey: Buffer; storedKey: Buffer; serverKey: Buffer } {
  const salted = pbkdf2Sync(password, salt, iterations, sha256Bytes, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return { clientKey, storedKey: createHash('sha256').update(clientKey).digest(), serverKey };
}

/** Checks a password against a stored hash, in time that does not depend on where they differ. */
export function verifyPassword(hash: PasswordHash, password: Uint8Array): boolean {
  if (hash.kind === 'scrypt') {
    const key = scrypt(password, hash.salt, hash.key.length, hash.cost, hash.blockSize, hash.parallelization);
    return timingSafeEqual(key, hash.key);
  }
  return timingSafeEqual(scramKeys(password, hash.salt, hash.iterations).storedKey, hash.storedKey);
}

function scrypt(password: Uint8Array, salt: Uint8Array, length: number, cost: number, blockSize: number, parallelization: number): Buffer {
  // scrypt needs 128 * N * r bytes; Node's default ceiling (32 MiB) is too low for N=2^15, r=8.
  const maxmem = 256 * cost * blockSize + 1024 * 1024;
  return scryptSync(password, salt, length, { N: cost, r: blockSize, p: parallelization, maxmem });
}

export function formatHash(hash: PasswordHash): string {
  if (hash.kind === 'scrypt') {
    return ['scrypt', hash.cost, hash.blockSize, hash.parallelization, hash.salt.toString('base64'), hash.key.toString('base64')].join('$');
  }
  return ['scram-sha-256', hash.iterations, hash.salt.toString('base64'), hash.storedKey.toString('base64'), hash.serverKey.toString('base64')].join('$');
}

/** The hash in `text`, or a sentence saying what is wrong with it. */
export function parseHash(text: string): PasswordHash | string {
  const fields = text.split('$');
  if (fields[0] === 'scrypt') {
    if (fields.length !== 6) return 'scrypt needs scrypt$N$r$p$salt$key';
    const [cost, blockSize, parallelization] = [Number(fields[1]), Number(fields[2]), Number(fields[3])];
    if (!isInteger(cost, 2, scryptCostMax) || (cost & (cost - 1)) !== 0) return `scrypt N must be a power of two up to ${scryptCostMax}`;
    if (!isInteger(blockSize, 1, 32) || !isInteger(parallelization, 1, 16)) return 'scrypt r must be 1..32 and p 1..16';
    const salt = base64(fields[4]!);
    const key = base64(fields[5]!);
    if (salt === null || key === null || key.length < 16) return 'scrypt salt and key must be base64 (key at least 16 bytes)';
    return { kind: 'scrypt', cost, blockSize, parallelization, salt, key };
  }
  if (fields[0] === 'scram-sha-256') {
    if (fields.length !== 5) return 'scram-sha-256 needs scram-sha-256$iterations$salt$storedKey$serverKey';
    const iterations = Number(fields[1]);
    if (!isInteger(iterations, 1, scramIterationsMax)) return `scram-sha-256 iterations must be 1..${scramIterationsMax}`;
    const [salt, storedKey, serverKey] = [base64(fields[2]!), base64(fields[3]!), base64(fields[4]!)];
    if (salt === null || storedKey?.length !== sha256Bytes || serverKey?.length !== sha256Bytes) return 'scram-sha-256 salt, storedKey and serverKey must be base64 (keys of 32 bytes)';
    return { kind: 'scram-sha-256', iterations, salt, storedKey, serverKey };
  }
  return `unknown hash form "${fields[0]}" (scrypt or scram-sha-256)`;
}

function isInteger(value: number, min: number, max: number): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}

function base64(text: string): Buffer | null {
  if (text.length === 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return null;
  return Buffer.from(text, 'base64');
}

/** Every entry of a password file's text, and one problem per bad line (`file:line: why`). */
export function parsePasswordFile(text: string, name: string): { entries: Map<string, PasswordEntry>; problems: string[] } {
  const entries = new Map<string, PasswordEntry>();
  const problems: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!;
    if (line.trim().length === 0 || line.startsWith('#')) continue;
    const colon = line.lastIndexOf(':');
    if (colon <= 0) {
      problems.push(`${name}:${index + 1}: expected username:hash`);
      continue;
    }
    const username = line.slice(0, colon);
    const hashText = line.slice(colon + 1);
    const hash = parseHash(hashText);
    if (typeof hash === 'string') problems.push(`${name}:${index + 1}: ${hash}`);
    else if (entries.has(username)) problems.push(`${name}:${index + 1}: user "${username}" appears twice`);
    else entries.set(username, { username, hash, hashText });
  }
  return { entries, problems };
}

/** Why `username` cannot be written to a password file, or null. */
export function usernameProblem(username: string): string | null {
  if (username.length === 0) return 'the user name is empty';
  if (/[\r\n]/.test(username)) return 'the user name contains a line break';
  if (username.startsWith('#')) return 'the user name starts with # (a comment in the file)';
  return null;
}

/**
 * Adds or replaces `username` (or removes it when `hash` is null) and rewrites the file through a
 * rename. Lines it does not understand are kept as they are. Returns whether the user existed.
 */
export function updatePasswordFile(file: string, username: string, hash: PasswordHash | null): boolean {
  const problem = usernameProblem(username);
  if (problem !== null) throw new Error(problem);
  const lines = existsSync(file) ? readFileSync(file, 'utf8').split(/\r?\n/) : [];
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const prefix = `${username}:`;
  // The user's line is the one whose name (before the last colon) is exactly this user name.
  const index = lines.findIndex((line) => line.startsWith(prefix) && line.lastIndexOf(':') === prefix.length - 1);
  const existed = index >= 0;
  if (hash === null) {
    if (existed) lines.splice(index, 1);
  } else if (existed) {
    lines[index] = prefix + formatHash(hash);
  } else {
    lines.push(prefix + formatHash(hash));
  }
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, lines.length === 0 ? '' : `${lines.join('\n')}\n`, { mode: 0o600 });
  renameSync(temporary, file);
  return existed;
}
