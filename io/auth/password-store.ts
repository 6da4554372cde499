/**
 * The password file as the running broker sees it: loaded once at start (a bad file stops the
 * start with every problem listed), then reloaded when it changes (see watched-file.ts), so
 * `keel passwd` takes effect without a restart. The check runs on the authentication path; a
 * reload that finds problems keeps the previous users and reports the problems through `log`, so
 * a half-edited file never locks everybody out.
 */
import { type PasswordEntry, parsePasswordFile } from './password-file.js';
import { WatchedFile, type WatchedFileOptions } from './watched-file.js';

export type PasswordStoreOptions = WatchedFileOptions;

export class PasswordStore {
  private entries: Map<string, PasswordEntry>;
  private readonly log: NonNullable<PasswordStoreOptions['log']>;

  private constructor(
    private readonly watched: WatchedFile,
    entries: Map<string, PasswordEntry>,
    options: PasswordStoreOptions,
  ) {
    this.entries = entries;
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

  lookup(username: string): PasswordEntry | undefined {
    this.maybeReload();
    return this.entries.get(username);
  }

  private maybeReload(): void {
    const text = this.watched.changedText((message) => this.log('warn', 'password-file-unreadable', { file: this.file, message }));
    if (text === null) return;
    const parsed = parsePasswordFile(text, this.file);
    if (parsed.problems.length > 0) {
      this.log('warn', 'password-file-invalid', { file: this.file, problems: parsed.problems.join('; ') });
      return;
    }
    this.entries = parsed.entries;
    this.log('info', 'password-file-reloaded', { file: this.file, users: parsed.entries.size });
  }
}
