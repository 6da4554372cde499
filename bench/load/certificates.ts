/**
 * The benchmark's TLS certificates, made with `openssl` when a TLS scenario first needs them: a CA
 * and a server certificate for 127.0.0.1 and localhost signed by it, both EC P-256. Keel and
 * Mosquitto are given the very same certificate and key, so a handshake costs both the same
 * cryptography; the load generator trusts the CA. The directory is removed when the process
 * exits. No private key is kept anywhere else.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface BenchCertificates {
  readonly caFile: string;
  readonly ca: Buffer;
  readonly certFile: string;
  readonly keyFile: string;
  /** What the certificates are, for the report. */
  readonly description: string;
}

let made: BenchCertificates | null = null;

/** The run's certificates, made on first use. Throws with openssl's message when it cannot. */
export function benchCertificates(): BenchCertificates {
  if (made !== null) return made;
  const directory = mkdtempSync(join(tmpdir(), 'keel-bench-tls-'));
  process.on('exit', () => rmSync(directory, { recursive: true, force: true }));
  const openssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: directory, stdio: 'pipe' });
  const curve = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  openssl(['genpkey', ...curve, '-out', 'ca.key']);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=Keel benchmark CA', '-days', '2', '-out', 'ca.crt']);
  openssl(['genpkey', ...curve, '-out', 'server.key']);
  openssl(['req', '-new', '-key', 'server.key', '-subj', '/CN=localhost', '-out', 'server.csr']);
  writeFileSync(join(directory, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.crt']);
  made = {
    caFile: join(directory, 'ca.crt'),
    ca: readFileSync(join(directory, 'ca.crt')),
    certFile: join(directory, 'server.crt'),
    keyFile: join(directory, 'server.key'),
    description: 'EC P-256 server key and certificate signed by a P-256 CA (the same files for every broker)',
  };
  return made;
}
