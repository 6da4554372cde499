/**
 * Decoy credentials: what a check runs against when the password file has no usable entry for a
 * user name, so that the answer for a name nobody has costs and looks the same as the answer for
 * a real user with a wrong password (RFC 5802 section 9 asks this of SCRAM; the same reasoning
 * holds for CONNECT passwords).
 *
 * "The same" means the same shape as the file's real entries, not one fixed decoy: a file whose
 * users are all SCRAM entries (PBKDF2, ~1 ms) must not answer unknown names with scrypt (~40 ms),
 * and a SCRAM exchange must show the iteration count and salt length the real entries have. So
 * the password store keeps a profile of the file (which hash parameters occur, how often), and a
 * decoy is derived from the user name and a secret: its parameters are drawn from the profile in
 * proportion to how often they occur, its salt and keys are keyed digests of the name. The same
 * name gets the same decoy every time, so asking twice reveals nothing, and an unknown name
 * cannot be told from a real user of the kind it was drawn as. No key can match a decoy: the
 * callers refuse an unknown name whatever the check says.
 *
 * The secret is random per process. A durable secret (kept in the data directory) would also
 * keep an unknown name's salt across restarts, as a real user's salt is kept; we chose not to
 * store and protect one more secret file for that, and accept that someone who probes one name
 * before and after a restart can see that its salt changed.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { type PasswordEntry, type PasswordHash, type ScramHash, type ScryptHash, scramIterationsDefault, scryptDefaults } from './password-file.js';

/** The parameters of one hash form as they occur in the file, without salt and key. */
export type HashShape =
  | { readonly kind: 'scram-sha-256'; readonly iterations: number; readonly saltBytes: number }
  | { readonly kind: 'scrypt'; readonly cost: number; readonly blockSize: number; readonly parallelization: number; readonly saltBytes: number; readonly keyBytes: number };

type ScramShape = Extract<HashShape, { kind: 'scram-sha-256' }>;
type ScryptShape = Extract<HashShape, { kind: 'scrypt' }>;

/** How often each shape occurs in a password file, in a stable order (by shape, not by line). */
export interface HashProfile {
  readonly scram: readonly { shape: ScramShape; count: number }[];
  readonly scrypt: readonly { shape: ScryptShape; count: number }[];
}

/** What `keel passwd` writes by default: the decoy of a file that has no entry of a kind. */
const scramShapeDefault: ScramShape = { kind: 'scram-sha-256', iterations: scramIterationsDefault, saltBytes: 16 };
const scryptShapeDefault: ScryptShape = {
  kind: 'scrypt',
  cost: scryptDefaults.cost,
  blockSize: scryptDefaults.blockSize,
  parallelization: scryptDefaults.parallelization,
  saltBytes: scryptDefaults.saltBytes,
  keyBytes: scryptDefaults.keyBytes,
};
const sha256Bytes = 32;
/** A draw is a 32-bit fraction of a keyed digest: fine enough for any file's proportions. */
const drawRange = 2 ** 32;

export function profileOf(entries: Iterable<PasswordEntry>): HashProfile {
  const scram = new Map<string, { shape: ScramShape; count: number }>();
  const scrypt = new Map<string, { shape: ScryptShape; count: number }>();
  for (const { hash } of entries) {
    const shape = shapeOf(hash);
    const key = JSON.stringify(shape);
    if (shape.kind === 'scram-sha-256') scram.set(key, { shape, count: (scram.get(key)?.count ?? 0) + 1 });
    else scrypt.set(key, { shape, count: (scrypt.get(key)?.count ?? 0) + 1 });
  }
  // Sorted by shape so that the same file gives the same draws whatever the order of its lines.
  const byKey = <T>(map: Map<string, T>): T[] => [...map.entries()].sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0)).map(([, value]) => value);
  return { scram: byKey(scram), scrypt: byKey(scrypt) };
}

function shapeOf(hash: PasswordHash): HashShape {
  if (hash.kind === 'scram-sha-256') return { kind: 'scram-sha-256', iterations: hash.iterations, saltBytes: hash.salt.length };
  const { cost, blockSize, parallelization } = hash;
  return { kind: 'scrypt', cost, blockSize, parallelization, saltBytes: hash.salt.length, keyBytes: hash.key.length };
}

export class Decoys {
  /** `secret` is injectable for tests; production uses a fresh random one per process. */
  constructor(private readonly secret: Buffer = randomBytes(32)) {
    assert.ok(secret.length >= 16, 'a decoy secret needs at least 16 bytes');
  }

  /**
   * SCRAM credentials for a name without SCRAM keys (unknown, or a user with only a scrypt hash):
   * the parameters of one of the file's SCRAM entries, drawn by the name.
   */
  scram(username: string, profile: HashProfile): ScramHash {
    const shape = draw(profile.scram, this.fraction('scram-shape', username)) ?? scramShapeDefault;
    return {
      kind: 'scram-sha-256',
      iterations: shape.iterations,
      salt: this.derive('scram-salt', username, shape.saltBytes),
      storedKey: this.derive('scram-stored-key', username, sha256Bytes),
      serverKey: this.derive('scram-server-key', username, sha256Bytes),
    };
  }

  /**
   * A hash for a name the file does not have, to check a CONNECT password against: a SCRAM or a
   * scrypt hash in the proportion the file holds them. A name drawn as SCRAM gets exactly the
   * credentials `scram` shows for it, so both methods tell the same story about the name.
   */
  password(username: string, profile: HashProfile): PasswordHash {
    const scramCount = total(profile.scram);
    const everyCount = scramCount + total(profile.scrypt);
    if (everyCount > 0 && this.fraction('kind', username) * everyCount < scramCount) return this.scram(username, profile);
    const shape = draw(profile.scrypt, this.fraction('scrypt-shape', username)) ?? scryptShapeDefault;
    const hash: ScryptHash = {
      kind: 'scrypt',
      cost: shape.cost,
      blockSize: shape.blockSize,
      parallelization: shape.parallelization,
      salt: this.derive('scrypt-salt', username, shape.saltBytes),
      key: this.derive('scrypt-key', username, shape.keyBytes),
    };
    return hash;
  }

  /** A number in [0, 1) fixed by the label, the name and the secret. */
  private fraction(label: string, username: string): number {
    return this.derive(label, username, 4).readUInt32BE(0) / drawRange;
  }

  /** `length` bytes fixed by the label, the name and the secret (HMAC blocks with a counter). */
  private derive(label: string, username: string, length: number): Buffer {
    assert.ok(Number.isSafeInteger(length) && length >= 0, 'a derived length must be a non-negative integer');
    const blocks: Buffer[] = [];
    // The label and counter come first and have a fixed form, so no name can imitate another input.
    for (let counter = 0; counter * sha256Bytes < length; counter++) {
      blocks.push(createHmac('sha256', this.secret).update(`${label}:${counter}:`).update(username, 'utf8').digest());
    }
    return Buffer.concat(blocks).subarray(0, length);
  }
}

function total(shapes: readonly { count: number }[]): number {
  let sum = 0;
  for (const { count } of shapes) sum += count;
  return sum;
}

/** The shape that `fraction` falls on when each takes its share of [0, 1); null when none. */
function draw<T>(shapes: readonly { shape: T; count: number }[], fraction: number): T | null {
  assert.ok(fraction >= 0 && fraction < 1, 'a draw needs a fraction in [0, 1)');
  let remaining = fraction * total(shapes);
  for (const { shape, count } of shapes) {
    if (remaining < count) return shape;
    remaining -= count;
  }
  return shapes.length === 0 ? null : shapes[shapes.length - 1]!.shape;
}
