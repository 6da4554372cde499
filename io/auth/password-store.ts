/**
 * The password file as the running broker sees it: loaded once at start (a bad file stops the
 * start with every problem listed), then reloaded when it changes (see watched-file.ts), so
 * `keel passwd` takes effect without a restart, or at once on SIGHUP (`reload`, io/reload.ts).
 * The check runs on the authentication path; a reload that finds problems keeps the previous
 * users and reports the problems through `log`, so a half-edited file never locks everybody out.
 *
 * Beside the users it keeps the file's hash profile (decoy.ts), so that names the file does not
 * have are checked against decoys shaped like the entries it does have.
 */

import type { Reloadable, ReloadOutcome } from '../reload.js';
import { type HashProfile, profileOf } from './decoy.js';
import { type PasswordEntry, parsePasswordFile } from './password-file.js';
import { WatchedFile, type WatchedFileOptions } from './watched-file.js';

export type PasswordStoreOptions = WatchedFileOptions;

export class PasswordStore implements Reloadable {
  readonly what = 'password file';
  private entries: Map<string, PasswordEntry>;
  private hashProfile: HashProfile;
  private readonly log: NonNullable<PasswordStoreOptions['log']>;

  private constructor(
    private readonly watched: WatchedFile,
    entries: Map<string, PasswordEntry>,
    options: PasswordStoreOptions,
  ) {
    this.entries = entries;
    this.hashProfile = profileOf(entries.values());
    this.log = options.log ?? (() => undefined);
  }

  get file(): string {
    return this.watched.file;
  }

  /** Loads `file`; returns the problems instead when it cannot be read or has bad lines. */
  static open(file: string, options: PasswordStoreOptions = {}): PasswordStore | { problems: string[] } {
    const opened = WatchedFile.open(file, 'password file', options);
    if ('problems' in opened) return opened;
    const parsed = parsePasswordFile(opened.text, file);
    if (parsed.problems.length > 0) return { problems: parsed.problems };
    return new PasswordStore(opened.watched, parsed.entries, options);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Which hash parameters the file's entries use, and how often (for decoys). */
  get profile(): HashProfile {
    return this.hashProfile;
  }

  lookup(username: string): PasswordEntry | undefined {
    this.maybeReload();
    return this.entries.get(username);
  }

  /** Re-reads the file now (SIGHUP); a bad or unreadable file keeps the users in force. */
  reload(): ReloadOutcome {
    let unreadable = '';
    const text = this.watched.readNow((message) => {
      unreadable = message;
      this.log('warn', 'password-file-unreadable', { file: this.file, message });
    });
    if (text === null) return { what: this.what, ok: false, detail: `kept ${this.entries.size} users, cannot read ${this.file}: ${unreadable}` };
    const problems = this.apply(text);
    if (problems !== null) return { what: this.what, ok: false, detail: `kept ${this.entries.size} users, ${this.file} has problems: ${problems}` };
    return { what: this.what, ok: true, detail: `${this.entries.size} users from ${this.file}` };
  }

  private maybeReload(): void {
    const text = this.watched.changedText((message) => this.log('warn', 'password-file-unreadable', { file: this.file, message }));
    if (text !== null) this.apply(text);
  }

  /** Puts the text's users in force, or keeps the old ones and returns the problems. */
  private apply(text: string): string | null {
    const parsed = parsePasswordFile(text, this.file);
    if (parsed.problems.length > 0) {
      const problems = parsed.problems.join('; ');
      this.log('warn', 'password-file-invalid', { file: this.file, problems });
      return problems;
    }
    this.entries = parsed.entries;
    this.hashProfile = profileOf(parsed.entries.values());
    this.log('info', 'password-file-reloaded', { file: this.file, users: parsed.entries.size });
    return null;
  }
}
