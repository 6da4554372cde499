/**
 * Test certificates, made with `openssl` at test time in a temporary directory (no private key is
 * ever committed): a test CA; a server certificate for 127.0.0.1 and localhost signed by it;
 * client certificates signed by it (CN `device-7`, CN `device-8`, and one with no CN); a second,
 * unrelated CA with a client certificate of its own (the "wrong CA"); a server certificate that
 * has already expired, one that expires in a week, and the key of another certificate (a key that
 * matches nothing). Keys are EC P-256: quick to make, and what the TLS benchmark uses for both
 * brokers.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificates {
  readonly directory: string;
  readonly caFile: string;
  readonly serverCert: string;
  readonly serverKey: string;
  /** The SPKI hash of the server key, base64 (Chromium's --ignore-certificate-errors-spki-list). */
  readonly serverSpkiSha256: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly secondClientCert: string;
  readonly secondClientKey: string;
  readonly noCommonNameCert: string;
  readonly noCommonNameKey: string;
  readonly wrongCaFile: string;
  readonly wrongCaClientCert: string;
  readonly wrongCaClientKey: string;
  readonly expiredCert: string;
  readonly expiredKey: string;
  readonly expiringCert: string;
  readonly expiringKey: string;
  /** A valid key that belongs to none of the certificates above. */
  readonly strayKey: string;
  remove(): void;
}

function openssl(directory: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: directory, stdio: 'pipe' });
}

function newKey(directory: string, name: string): string {
  openssl(directory, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
  return join(directory, `${name}.key`);
}

/** A certificate for `name.key` signed by `ca`, valid `days` days (0: already over by the time it is read). */
function signed(directory: string, name: string, subject: string, ca: string, days: number, extensions: string | null): string {
  openssl(directory, ['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
  const args = ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', String(days), '-out', `${name}.crt`];
  if (extensions !== null) {
    writeFileSync(join(directory, `${name}.ext`), extensions);
    args.push('-extfile', `${name}.ext`);
  }
  openssl(directory, args);
  return join(directory, `${name}.crt`);
}

function certificateAuthority(directory: string, name: string, commonName: string): string {
  newKey(directory, name);
  openssl(directory, ['req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${commonName}`, '-days', '30', '-out', `${name}.crt`]);
  return join(directory, `${name}.crt`);
}

export function makeTestCertificates(): TestCertificates {
  const directory = mkdtempSync(join(tmpdir(), 'keel-certs-'));
  const serverExtensions = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n';
  const clientExtensions = 'extendedKeyUsage=clientAuth\n';
  const caFile = certificateAuthority(directory, 'ca', 'Keel Test CA');
  const wrongCaFile = certificateAuthority(directory, 'wrong-ca', 'Unrelated CA');
  const serverKey = newKey(directory, 'server');
  const serverCert = signed(directory, 'server', '/CN=localhost', 'ca', 30, serverExtensions);
  const clientKey = newKey(directory, 'client');
  const clientCert = signed(directory, 'client', '/O=Keel tests/CN=device-7', 'ca', 30, clientExtensions);
  const secondClientKey = newKey(directory, 'second-client');
  const secondClientCert = signed(directory, 'second-client', '/CN=device-8', 'ca', 30, clientExtensions);
  const noCommonNameKey = newKey(directory, 'no-cn');
  const noCommonNameCert = signed(directory, 'no-cn', '/O=Keel tests/OU=no common name', 'ca', 30, clientExtensions);
  const wrongCaClientKey = newKey(directory, 'wrong-ca-client');
  const wrongCaClientCert = signed(directory, 'wrong-ca-client', '/CN=device-7', 'wrong-ca', 30, clientExtensions);
  const expiredKey = newKey(directory, 'expired');
  const expiredCert = signed(directory, 'expired', '/CN=localhost', 'ca', 0, serverExtensions);
  const expiringKey = newKey(directory, 'expiring');
  const expiringCert = signed(directory, 'expiring', '/CN=localhost', 'ca', 7, serverExtensions);
  const strayKey = newKey(directory, 'stray');
  const spki = execFileSync('sh', ['-c', 'openssl pkey -in server.key -pubout -outform der | openssl dgst -sha256 -binary | base64'], { cwd: directory, encoding: 'utf8' }).trim();
  return {
    directory,
    caFile,
    serverCert,
    serverKey,
    serverSpkiSha256: spki,
    clientCert,
    clientKey,
    secondClientCert,
    secondClientKey,
    noCommonNameCert,
    noCommonNameKey,
    wrongCaFile,
    wrongCaClientCert,
    wrongCaClientKey,
    expiredCert,
    expiredKey,
    expiringCert,
    expiringKey,
    strayKey,
    remove: () => rmSync(directory, { recursive: true, force: true }),
  };
}
