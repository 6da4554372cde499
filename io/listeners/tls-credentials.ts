/**
 * A TLS listener's certificate, private key and client CA: read and checked at start-up, watched
 * afterwards, and reloaded when they change or on SIGHUP.
 *
 * At start-up every problem is a configuration error, reported with the others before anything
 * listens: a file that cannot be read, one that holds no PEM certificate or key, a key that does
 * not belong to the certificate, a certificate that has expired or is not valid yet, or anything
 * else OpenSSL refuses to build a context from. A certificate that expires within
 * `expiryWarningDays` is a warning.
 *
 * Afterwards the three files are watched with the password file's mechanism
 * (io/auth/watched-file.ts): the listener asks `refresh()` as each connection arrives, which
 * costs at most one stat per file per second. When one of them changed, all three are read again
 * and checked as at start-up; a good set becomes the listener's new context (connections made
 * from then on get it, established ones keep theirs), a bad one is reported once and the old
 * context stays, so a certificate renewal that writes the key a moment after the certificate
 * succeeds on the second change and never takes the listener down. SIGHUP (`reload()`, a
 * `Reloadable`) does the same at once, whether or not the files look changed.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { WatchedFile, type WatchedFileOptions } from '../auth/watched-file.js';
import type { Reloadable, ReloadOutcome } from '../reload.js';

/** TLS 1.0 and 1.1 are deprecated (RFC 8996); Mosquitto's default floor is 1.2 too. */
export const tlsVersionMin = 'TLSv1.2';
/** A certificate this close to its end is worth a warning at start-up and on reload. */
export const expiryWarningDays = 14;
const dayMs = 86_400_000;

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string | null;
}

/** A checked set: what goes into a secure context, and what the log says about it. */
export interface TlsCredentials {
  readonly cert: string;
  readonly key: string;
  readonly ca: string | undefined;
  readonly subject: string;
  /** The certificate's notAfter, ISO 8601. */
  readonly validTo: string;
  /** Set when the certificate expires within expiryWarningDays. */
  readonly expiryWarning: string | null;
}

type Texts = { cert: string; key: string; ca: string | null };

/** The options of a secure context built from `credentials`, the same at start-up and on reload. */
export function secureContextOptions(credentials: TlsCredentials): tls.SecureContextOptions {
  return { cert: credentials.cert, key: credentials.key, ...(credentials.ca === undefined ? {} : { ca: credentials.ca }), minVersion: tlsVersionMin };
}

/** Checks a set of PEM texts read from `files`; every problem names its file. */
export function checkCredentials(texts: Texts, files: TlsFiles, nowMs: number): TlsCredentials | { problems: string[] } {
  const problems: string[] = [];
  const certificate = parseCertificate(texts.cert, files.certFile, problems);
  const key = parseKey(texts.key, files.keyFile, problems);
  if (texts.ca !== null && !/-----BEGIN CERTIFICATE-----/.test(texts.ca)) problems.push(`caFile ${files.caFile} holds no PEM certificate`);
  if (certificate === null || key === null) return { problems };
  if (!certificate.checkPrivateKey(key)) problems.push(`keyFile ${files.keyFile} does not match the certificate in certFile ${files.certFile}`);
  const validFromMs = Date.parse(certificate.validFrom);
  const validToMs = Date.parse(certificate.validTo);
  if (validToMs <= nowMs) problems.push(`the certificate in certFile ${files.certFile} expired on ${new Date(validToMs).toISOString()}`);
  if (validFromMs > nowMs) problems.push(`the certificate in certFile ${files.certFile} is not valid before ${new Date(validFromMs).toISOString()}`);
  if (problems.length > 0) return { problems };
  const credentials = {
    cert: texts.cert,
    key: texts.key,
    ca: texts.ca ?? undefined,
    subject: certificate.subject.replaceAll('\n', ', '),
    validTo: new Date(validToMs).toISOString(),
    expiryWarning: expiryWarning(validToMs, nowMs, files.certFile),
  };
  // Whatever else OpenSSL refuses (a key too weak for its security level, a broken CA bundle).
  try {
    tls.createSecureContext(secureContextOptions(credentials));
  } catch (error) {
    return { problems: [`cannot use certFile ${files.certFile} with keyFile ${files.keyFile}${files.caFile === null ? '' : ` and caFile ${files.caFile}`}: ${(error as Error).message}`] };
  }
  return credentials;
}

function parseCertificate(text: string, file: string, problems: string[]): X509Certificate | null {
  try {
    return new X509Certificate(text);
  } catch (error) {
    problems.push(`certFile ${file} holds no PEM certificate (${(error as Error).message})`);
    return null;
  }
}

function parseKey(text: string, file: string, problems: string[]): KeyObject | null {
  try {
    return createPrivateKey(text);
  } catch (error) {
    const encrypted = /ENCRYPTED/.test(text) ? ': it is encrypted, and Keel takes unencrypted keys only (restrict the file with chmod 600 instead)' : ` (${(error as Error).message})`;
    problems.push(`keyFile ${file} holds no usable PEM private key${encrypted}`);
    return null;
  }
}

function expiryWarning(validToMs: number, nowMs: number, certFile: string): string | null {
  const daysLeft = (validToMs - nowMs) / dayMs;
  if (daysLeft >= expiryWarningDays) return null;
  return `the certificate in certFile ${certFile} expires on ${new Date(validToMs).toISOString()}, in ${daysLeft.toFixed(1)} days`;
}

export type CredentialsLog = (level: 'info' | 'warn', event: string, fields: Record<string, string>) => void;

export interface CredentialsOptions {
  /** Wall-clock milliseconds, against which validity is checked. */
  readonly nowMs?: () => number;
  /** How often the files are looked at (io/auth/watched-file.ts); injectable for tests. */
  readonly watch?: WatchedFileOptions;
}

/** A TLS listener's files, watched, with the credentials now in force. */
export class WatchedCredentials implements Reloadable {
  private credentials: TlsCredentials;
  /** Called with each new set once it is in force (the listener builds its new context). */
  onChange: ((credentials: TlsCredentials) => void) | null = null;

  private constructor(
    private readonly files: TlsFiles,
    private readonly watched: WatchedFile[],
    credentials: TlsCredentials,
    /** The listener's name for log lines; set again once it is bound (port 0 becomes a number). */
    public listener: string,
    private readonly log: CredentialsLog,
    private readonly nowMs: () => number,
  ) {
    this.credentials = credentials;
  }

  get what(): string {
    return `TLS certificate of ${this.listener}`;
  }

  /** Reads and checks the files for the first time; every problem is returned. */
  static open(files: TlsFiles, listener: string, log: CredentialsLog, options: CredentialsOptions = {}): WatchedCredentials | { problems: string[] } {
    const nowMs = options.nowMs ?? Date.now;
    const problems: string[] = [];
    const opened = [['certFile', files.certFile] as const, ['keyFile', files.keyFile] as const, ...(files.caFile === null ? [] : [['caFile', files.caFile] as const])].map(([what, file]) => {
      const result = WatchedFile.open(file, what, options.watch ?? {});
      if ('problems' in result) problems.push(...result.problems);
      return result;
    });
    if (problems.length > 0) return { problems };
    const watched = opened.map((result) => (result as { watched: WatchedFile }).watched);
    const texts = opened.map((result) => (result as { text: string }).text);
    const checked = checkCredentials({ cert: texts[0]!, key: texts[1]!, ca: texts[2] ?? null }, files, nowMs());
    if ('problems' in checked) return checked;
    return new WatchedCredentials(files, watched, checked, listener, log, nowMs);
  }

  get current(): TlsCredentials {
    return this.credentials;
  }

  /** Called before each handshake: when a file changed, the set is read and checked again. */
  refresh(): void {
    let changed = false;
    for (const file of this.watched) {
      const text = file.changedText((message) => this.log('warn', 'tls-certificate-unreadable', { listener: this.listener, file: file.file, message }));
      if (text !== null) changed = true;
    }
    if (changed) this.readAll();
  }

  /** SIGHUP: reads all three files now. */
  reload(): ReloadOutcome {
    return this.readAll();
  }

  private readAll(): ReloadOutcome {
    const problems: string[] = [];
    const texts = this.watched.map((file) => file.readNow((message) => problems.push(`cannot read ${file.file}: ${message}`)));
    const checked = problems.length > 0 ? { problems } : checkCredentials({ cert: texts[0]!, key: texts[1]!, ca: texts[2] ?? null }, this.files, this.nowMs());
    if ('problems' in checked) {
      const detail = `kept the previous certificate (${this.credentials.subject}, valid to ${this.credentials.validTo}): ${checked.problems.join('; ')}`;
      this.log('warn', 'tls-certificate-invalid', { listener: this.listener, detail });
      return { what: this.what, ok: false, detail };
    }
    this.credentials = checked;
    this.onChange?.(checked);
    if (checked.expiryWarning !== null) this.log('warn', 'tls-certificate-expiring', { listener: this.listener, detail: checked.expiryWarning });
    const detail = `${checked.subject}, valid to ${checked.validTo}, for new connections`;
    this.log('info', 'tls-certificate-loaded', { listener: this.listener, detail });
    return { what: this.what, ok: true, detail };
  }
}
