/**
 * The admin API's bearer token: read from `admin.tokenFile` at start-up (a missing, empty or short
 * file is a configuration error) and again on SIGHUP (a `Reloadable`: a bad file then keeps the
 * token in force and says why, like the password file).
 *
 * A request proves it holds the token with `Authorization: Bearer <token>`. The comparison takes
 * the same time whatever the guess: both sides are hashed with SHA-256 and the digests compared
 * with `timingSafeEqual`, so neither the length nor a matching prefix of the token leaks through
 * the response time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Reloadable, ReloadOutcome } from '../reload.js';

/** Shorter tokens are refused: they could be guessed over the network. */
export const tokenCharactersMin = 16;

export class AdminToken implements Reloadable {
  readonly what = 'admin token file';
  private digest: Buffer;

  private constructor(
    readonly file: string,
    token: string,
  ) {
    this.digest = sha256(token);
  }

  /** Reads the file; a problem is returned as one line for the configuration error. */
  static load(file: string): AdminToken | { problem: string } {
    const read = readToken(file);
    return typeof read === 'string' ? new AdminToken(file, read) : read;
  }

  /** True when `authorization` is `Bearer <the token>`. */
  matches(authorization: string | undefined): boolean {
    if (authorization === undefined) return false;
    const match = /^Bearer +(\S+) *$/i.exec(authorization);
    // Hashed even when malformed: a missing scheme takes as long as a wrong token.
    const offered = sha256(match === null ? '' : match[1]!);
    return timingSafeEqual(offered, this.digest) && match !== null;
  }

  reload(): ReloadOutcome {
    const read = readToken(this.file);
    if (typeof read !== 'string') return { what: this.what, ok: false, detail: `kept the token in force: ${read.problem}` };
    this.digest = sha256(read);
    return { what: this.what, ok: true, detail: `${this.file} read` };
  }
}

function readToken(file: string): string | { problem: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    return { problem: `cannot read admin.tokenFile ${file}: ${(error as Error).message}` };
  }
  // One line; surrounding white space (a trailing newline from `echo`) is not part of it.
  const token = text.trim();
  if (token.length < tokenCharactersMin) return { problem: `admin.tokenFile ${file} must hold a token of at least ${tokenCharactersMin} characters` };
  if (/\s/.test(token)) return { problem: `admin.tokenFile ${file} must hold one token without white space` };
  return token;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
