/**
 * A configuration file the running broker re-reads when it changes (the password file, the ACL
 * file). One mechanism for both: the file is read once at start, and afterwards looked at (one
 * stat) at most once per `recheckMs`; a change in modification time, size or inode hands the new
 * text to the owner, exactly once per change, so a broken edit is reported once rather than every
 * `recheckMs`, and the owner keeps its previous contents until a good edit arrives.
 *
 * An operator can also ask for a reload now (SIGHUP, see io/reload.ts): `readNow` reads the file
 * whether or not it looks changed, because an edit that kept the size and landed within the file
 * system's timestamp resolution would otherwise go unseen, and "reload" should mean reload.
 */
import { readFileSync, statSync } from 'node:fs';

export interface WatchedFileOptions {
  /** How often, at most, the file is looked at again. */
  recheckMs?: number;
  log?: (level: 'info' | 'warn', event: string, fields: Record<string, string | number>) => void;
  /** Milliseconds of a monotonic clock; injectable for tests. */
  nowMs?: () => number;
}

export class WatchedFile {
  private fingerprint: string;
  private checkedMs: number;
  readonly recheckMs: number;
  private readonly nowMs: () => number;

  private constructor(
    readonly file: string,
    fingerprint: string,
    options: WatchedFileOptions,
  ) {
    this.fingerprint = fingerprint;
    this.recheckMs = options.recheckMs ?? 1_000;
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.checkedMs = this.nowMs();
  }

  /** Reads `file` for the first time; `what` names it in the problem ("password file"). */
  static open(file: string, what: string, options: WatchedFileOptions): { watched: WatchedFile; text: string } | { problems: string[] } {
    try {
      const fingerprint = fingerprintOf(file);
      const text = readFileSync(file, 'utf8');
      return { watched: new WatchedFile(file, fingerprint, options), text };
    } catch (error) {
      return { problems: [`cannot read ${what} ${file}: ${(error as Error).message}`] };
    }
  }

  /**
   * The file's new text when `recheckMs` has passed and it changed since the last look, else null.
   * An unreadable file is reported through `onUnreadable` and looked at again next time.
   */
  changedText(onUnreadable: (message: string) => void): string | null {
    const nowMs = this.nowMs();
    if (nowMs - this.checkedMs < this.recheckMs) return null;
    this.checkedMs = nowMs;
    try {
      const fingerprint = fingerprintOf(this.file);
      if (fingerprint === this.fingerprint) return null;
      const text = readFileSync(this.file, 'utf8');
      this.fingerprint = fingerprint;
      return text;
    } catch (error) {
      onUnreadable((error as Error).message);
      return null;
    }
  }

  /**
   * The file's text, read now whatever the interval and the fingerprint say; null when it cannot
   * be read (reported through `onUnreadable`). Counts as a look: the next `changedText` compares
   * against what was read here.
   */
  readNow(onUnreadable: (message: string) => void): string | null {
    this.checkedMs = this.nowMs();
    try {
      const fingerprint = fingerprintOf(this.file);
      const text = readFileSync(this.file, 'utf8');
      this.fingerprint = fingerprint;
      return text;
    } catch (error) {
      onUnreadable((error as Error).message);
      return null;
    }
  }
}

function fingerprintOf(file: string): string {
  const stat = statSync(file, { bigint: true });
  return `${stat.mtimeNs}:${stat.size}:${stat.ino}`;
}
