/**
 * The password file as the running broker sees it: loaded once at start (a bad file stops the
 * start with every problem listed), then reloaded when its modification time or size changes, so
 * `keel passwd` takes effect without a restart. The check is a stat at most once per
 * `recheckMs`, on the authentication path; a reload that finds problems keeps the previous users
 * and reports the problems through `log`, so a half-edited file never locks everybody out.
 */
import { readFileSync, statSync } from 'node:fs';
import { parsePasswordFile, type PasswordEntry } from './password-file.js';

export interface PasswordStoreOptions {
  /** How often, at most, the file is looked at again. */
  recheckMs?: number;
  log?: (level: 'info' | 'warn', event: string, fields: Record<string, string | number>) => void;
  /** Milliseconds of a monotonic clock; injectable for tests. */
  nowMs?: () => number;
}

export class PasswordStore {
  private entries: Map<string, PasswordEntry>;
  private fingerprint: string;
  private checkedMs: number;
  private readonly recheckMs: number;
  private readonly log: NonNullable<PasswordStoreOptions['log']>;
  private readonly nowMs: () => number;

  private constructor(
    readonly file: string,
    entries: Map<string, PasswordEntry>,
    fingerprint: string,
    options: PasswordStoreOptions,
  ) {
    this.entries = entries;
    this.fingerprint = fingerprint;
    this.recheckMs = options.recheckMs ?? 1_000;
    this.log = options.log ?? (() => undefined);
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.checkedMs = this.nowMs();
  }

  /** Loads `file`; returns the problems instead when it cannot be read or has bad lines. */
  static open(file: string, options: PasswordStoreOptions = {}): PasswordStore | { problems: string[] } {
    let text: string;
    let fingerprint: string;
    try {
      fingerprint = fingerprintOf(file);
      text = readFileSync(file, 'utf8');
    } catch (error) {
      return { problems: [`cannot read password file ${file}: ${(error as Error).message}`] };
    }
    const parsed = parsePasswordFile(text, file);
    if (parsed.problems.length > 0) return { problems: parsed.problems };
    return new PasswordStore(file, parsed.entries, fingerprint, options);
  }

  get size(): number {
    return this.entries.size;
  }

  lookup(username: string): PasswordEntry | undefined {
    this.maybeReload();
    return this.entries.get(username);
  }

  private maybeReload(): void {
    const nowMs = this.nowMs();
    if (nowMs - this.checkedMs < this.recheckMs) return;
    this.checkedMs = nowMs;
    let fingerprint: string;
    let text: string;
    try {
      fingerprint = fingerprintOf(this.file);
      if (fingerprint === this.fingerprint) return;
      text = readFileSync(this.file, 'utf8');
    } catch (error) {
      this.log('warn', 'password-file-unreadable', { file: this.file, message: (error as Error).message });
      return;
    }
    const parsed = parsePasswordFile(text, this.file);
    if (parsed.problems.length > 0) {
      this.log('warn', 'password-file-invalid', { file: this.file, problems: parsed.problems.join('; ') });
      return;
    }
    this.fingerprint = fingerprint;
    this.entries = parsed.entries;
    this.log('info', 'password-file-reloaded', { file: this.file, users: parsed.entries.size });
  }
}

function fingerprintOf(file: string): string {
  const stat = statSync(file, { bigint: true });
  return `${stat.mtimeNs}:${stat.size}:${stat.ino}`;
}
