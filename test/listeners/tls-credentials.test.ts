/**
 * Proves a TLS listener's certificate files are checked and reloaded as documented
 * (io/listeners/tls-credentials.ts), on certificates made by openssl for the test: a good set
 * loads; a missing file, a file that is not PEM, a key of another certificate, an expired
 * certificate and an encrypted key are each refused with a message naming the file; a
 * certificate that expires within 14 days loads with a warning; a changed file is noticed by
 * `refresh()` (at most once per recheck) and a good new set replaces the old and is announced
 * through `onChange`, while a bad one (a certificate whose key has not been replaced yet) keeps
 * the old set and logs why, and succeeds once the key follows; `reload()` (SIGHUP) reads at once.
 */
import { copyFileSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCredentials, type TlsCredentials, WatchedCredentials } from '../../io/listeners/tls-credentials.js';
import { makeTestCertificates, type TestCertificates } from './certificates.js';

let certificates: TestCertificates;
let directory: string;

beforeAll(() => {
  certificates = makeTestCertificates();
  directory = mkdtempSync(join(tmpdir(), 'keel-credentials-'));
}, 60_000);

afterAll(() => {
  certificates.remove();
  rmSync(directory, { recursive: true, force: true });
});

function problemsOf(result: ReturnType<typeof WatchedCredentials.open>): string[] {
  if (!('problems' in result)) throw new Error('expected problems');
  return result.problems;
}

const quiet = (): void => undefined;

describe('TLS credentials at start-up', () => {
  it('load a certificate with its key and CA', () => {
    const opened = WatchedCredentials.open({ certFile: certificates.serverCert, keyFile: certificates.serverKey, caFile: certificates.caFile }, 'mqtts:x', quiet);
    expect(opened).toBeInstanceOf(WatchedCredentials);
    const current = (opened as WatchedCredentials).current;
    expect(current.subject).toBe('CN=localhost');
    expect(current.expiryWarning).toBeNull();
    expect(Date.parse(current.validTo)).toBeGreaterThan(Date.now() + 20 * 86_400_000);
  });

  it('refuse missing and unreadable files, naming each', () => {
    const problems = problemsOf(
      WatchedCredentials.open({ certFile: join(directory, 'missing.crt'), keyFile: join(directory, 'missing.key'), caFile: join(directory, 'missing-ca.crt') }, 'mqtts:x', quiet),
    );
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/^cannot read certFile .*missing\.crt: ENOENT/);
    expect(problems[1]).toMatch(/^cannot read keyFile .*missing\.key: ENOENT/);
    expect(problems[2]).toMatch(/^cannot read caFile .*missing-ca\.crt: ENOENT/);
  });

  it('refuse a key that does not match the certificate', () => {
    expect(problemsOf(WatchedCredentials.open({ certFile: certificates.serverCert, keyFile: certificates.strayKey, caFile: null }, 'mqtts:x', quiet))).toEqual([
      `keyFile ${certificates.strayKey} does not match the certificate in certFile ${certificates.serverCert}`,
    ]);
  });

  it('refuse an expired certificate', () => {
    expect(problemsOf(WatchedCredentials.open({ certFile: certificates.expiredCert, keyFile: certificates.expiredKey, caFile: null }, 'mqtts:x', quiet))[0]).toMatch(
      /^the certificate in certFile .*expired\.crt expired on \d{4}-/,
    );
  });

  it('refuse files that hold no PEM, and an encrypted key', () => {
    const text = join(directory, 'text.pem');
    writeFileSync(text, 'not a certificate\n');
    const problems = problemsOf(WatchedCredentials.open({ certFile: text, keyFile: text, caFile: text }, 'mqtts:x', quiet));
    expect(problems).toEqual([
      expect.stringMatching(/^certFile .*text\.pem holds no PEM certificate/),
      expect.stringMatching(/^keyFile .*text\.pem holds no usable PEM private key/),
      `caFile ${text} holds no PEM certificate`,
    ]);
    const encrypted = '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n';
    const result = checkCredentials({ cert: '', key: encrypted, ca: null }, { certFile: 'c', keyFile: 'k', caFile: null }, Date.now());
    expect((result as { problems: string[] }).problems[1]).toMatch(/it is encrypted/);
  });

  it('warn about a certificate that expires within 14 days', () => {
    const opened = WatchedCredentials.open({ certFile: certificates.expiringCert, keyFile: certificates.expiringKey, caFile: null }, 'mqtts:x', quiet) as WatchedCredentials;
    expect(opened.current.expiryWarning).toMatch(/expiring\.crt expires on .*, in [67]\.\d days$/);
  });
});

describe('TLS credentials while running', () => {
  function liveFiles(): { certFile: string; keyFile: string } {
    const certFile = join(directory, `live-${Math.random()}.crt`);
    const keyFile = `${certFile}.key`;
    copyFileSync(certificates.serverCert, certFile);
    copyFileSync(certificates.serverKey, keyFile);
    return { certFile, keyFile };
  }

  /** Replaces a file's contents and moves its modification time, as an editor or certbot would. */
  function replace(file: string, from: string, secondsLater: number): void {
    copyFileSync(from, file);
    const when = new Date(Date.now() + secondsLater * 1_000);
    utimesSync(file, when, when);
  }

  it('take a changed certificate once its key matches, keeping the old one meanwhile', () => {
    const files = liveFiles();
    let clockMs = 0;
    const logs: string[] = [];
    const opened = WatchedCredentials.open({ ...files, caFile: null }, 'mqtts:x', (_level, event, fields) => logs.push(`${event} ${fields.detail ?? ''}`), {
      watch: { nowMs: () => clockMs },
    }) as WatchedCredentials;
    const changes: TlsCredentials[] = [];
    opened.onChange = (credentials) => changes.push(credentials);
    // The certificate is renewed first (to one valid for a week), its key a moment later.
    replace(files.certFile, certificates.expiringCert, 5);
    clockMs += 1_000;
    opened.refresh();
    expect(changes).toHaveLength(0);
    expect(logs.at(-1)).toMatch(/^tls-certificate-invalid kept the previous certificate \(CN=localhost, valid to .*\): keyFile .* does not match/);
    replace(files.keyFile, certificates.expiringKey, 6);
    opened.refresh();
    // Looked at less than a second ago: not yet.
    expect(changes).toHaveLength(0);
    clockMs += 1_000;
    opened.refresh();
    expect(changes).toHaveLength(1);
    expect(opened.current.expiryWarning).not.toBeNull();
    expect(logs.some((line) => line.startsWith('tls-certificate-expiring'))).toBe(true);
    expect(logs.at(-1)).toMatch(/^tls-certificate-loaded CN=localhost, valid to .*, for new connections$/);
  });

  it('are read at once on SIGHUP, whatever the interval says', () => {
    const files = liveFiles();
    const opened = WatchedCredentials.open({ ...files, caFile: null }, 'mqtts:x', quiet, { watch: { nowMs: () => 0 } }) as WatchedCredentials;
    let changes = 0;
    opened.onChange = () => changes++;
    replace(files.certFile, certificates.expiringCert, 5);
    replace(files.keyFile, certificates.expiringKey, 5);
    // The clock never moves: refresh() does not look.
    opened.refresh();
    expect(changes).toBe(0);
    const outcome = opened.reload();
    expect(outcome).toMatchObject({ what: 'TLS certificate of mqtts:x', ok: true });
    expect(changes).toBe(1);
    replace(files.keyFile, certificates.strayKey, 7);
    expect(opened.reload()).toMatchObject({ ok: false, detail: expect.stringMatching(/^kept the previous certificate/) });
    expect(changes).toBe(1);
  });

  it('refuse an expired certificate on reload', () => {
    const files = liveFiles();
    const opened = WatchedCredentials.open({ ...files, caFile: null }, 'mqtts:x', quiet) as WatchedCredentials;
    replace(files.certFile, certificates.expiredCert, 5);
    replace(files.keyFile, certificates.expiredKey, 5);
    expect(opened.reload()).toMatchObject({ ok: false, detail: expect.stringMatching(/expired on/) });
    expect(opened.current.subject).toBe('CN=localhost');
    expect(opened.current.expiryWarning).toBeNull();
  });
});
