/**
 * Proves Keel's TLS listeners work with the reference C clients, Debian's `mosquitto_pub` and
 * `mosquitto_sub` (package mosquitto-clients; .ci/run installs it when missing): over mqtts
 * trusting the test CA with `--cafile`; with a client certificate (`--cert`, `--key`) against a
 * listener that requires one, where a client without a certificate is refused; and with
 * identityAsUsername, where the certificate's CN decides under an ACL that grants device-7 its own
 * topic and denies another: the granted subscription receives, the denied one is refused, and a
 * message to the denied topic is not delivered.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPasswordScrypt, updatePasswordFile } from '../../io/auth/password-file.js';
import type { RunningServer } from '../../io/server.js';
import { waitUntil } from '../integration/helpers.js';
import { makeTestCertificates, type TestCertificates } from './certificates.js';
import { listener, startWithListeners } from './listener-helpers.js';

let certificates: TestCertificates;
let directory: string;
const servers: RunningServer[] = [];
const children: ChildProcess[] = [];

beforeAll(() => {
  for (const tool of ['mosquitto_pub', 'mosquitto_sub']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'pipe' });
    } catch {
      throw new Error(`${tool} is missing: apt-get install mosquitto-clients (.ci/run does it)`);
    }
  }
  certificates = makeTestCertificates();
  directory = mkdtempSync(join(tmpdir(), 'keel-mosquitto-clients-'));
}, 60_000);

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

afterAll(() => {
  certificates.remove();
  rmSync(directory, { recursive: true, force: true });
});

interface Run {
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

function run(command: string, args: string[]): Run {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // 'close', not 'exit': the process may end before its output has been read from the pipes.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { exited, stdout: () => stdout, stderr: () => stderr };
}

function tlsArguments(port: number, certificate?: { cert: string; key: string }): string[] {
  return ['-h', '127.0.0.1', '-p', String(port), '--cafile', certificates.caFile, ...(certificate === undefined ? [] : ['--cert', certificate.cert, '--key', certificate.key])];
}

/** Starts mosquitto_sub and waits until the broker has its subscription. */
async function subscriber(server: RunningServer, args: string[]): Promise<Run> {
  const before = server.core.view.subscriptions({ limit: 100 }).length;
  const sub = run('mosquitto_sub', args);
  await Promise.race([
    waitUntil(() => server.core.view.subscriptions({ limit: 100 }).length > before, 5_000, 'the subscription'),
    sub.exited.then((code) => {
      throw new Error(`mosquitto_sub exited with ${code}: ${sub.stderr()}`);
    }),
  ]);
  return sub;
}

describe('mosquitto_pub and mosquitto_sub over TLS', () => {
  it('round-trip over mqtts with --cafile', async () => {
    const { server } = await startWithListeners([listener('mqtts', certificates)]);
    servers.push(server);
    const port = server.listeners[0]!.port;
    const sub = await subscriber(server, [...tlsArguments(port), '-t', 'tls/+', '-C', '1', '-v', '-W', '20']);
    const pub = run('mosquitto_pub', [...tlsArguments(port), '-t', 'tls/hello', '-m', 'over TLS', '-q', '1']);
    expect(await pub.exited).toBe(0);
    expect(await sub.exited).toBe(0);
    expect(sub.stdout()).toBe('tls/hello over TLS\n');
  });

  it('connect with a client certificate where one is required, and fail without one', async () => {
    const { server } = await startWithListeners([listener('mqtts', certificates, { caFile: certificates.caFile, requireClientCertificate: true })]);
    servers.push(server);
    const port = server.listeners[0]!.port;
    const client = { cert: certificates.clientCert, key: certificates.clientKey };
    const sub = await subscriber(server, [...tlsArguments(port, client), '-t', 'mutual', '-C', '1', '-W', '20']);
    expect(await run('mosquitto_pub', [...tlsArguments(port, client), '-t', 'mutual', '-m', 'both verified', '-q', '1']).exited).toBe(0);
    expect(await sub.exited).toBe(0);
    expect(sub.stdout()).toBe('both verified\n');
    const refused = run('mosquitto_pub', [...tlsArguments(port), '-t', 'mutual', '-m', 'no certificate', '-q', '1']);
    expect(await refused.exited).not.toBe(0);
    await waitUntil(() => server.listenerCounters()[server.listeners[0]!.name]!.clientCertificateRejected === 1, 3_000, 'the refusal counted');
  });

  it('with identityAsUsername, the certificate CN is the user the ACL grants one topic and denies another', async () => {
    const passwordFile = join(directory, 'passwords');
    const aclFile = join(directory, 'acl');
    updatePasswordFile(passwordFile, 'operator', hashPasswordScrypt(Buffer.from('secret'), 1_024));
    writeFileSync(aclFile, ['user device-7', 'topic readwrite devices/device-7/#', 'user device-8', 'topic readwrite devices/#', ''].join('\n'));
    const { server } = await startWithListeners([listener('mqtts', certificates, { caFile: certificates.caFile, requireClientCertificate: true, identityAsUsername: true })], {
      passwordFile,
      aclFile,
    });
    servers.push(server);
    const port = server.listeners[0]!.port;
    const device7 = { cert: certificates.clientCert, key: certificates.clientKey };
    const device8 = { cert: certificates.secondClientCert, key: certificates.secondClientKey };
    const own = await subscriber(server, [...tlsArguments(port, device7), '-V', '5', '-t', 'devices/device-7/#', '-C', '1', '-v', '-W', '20']);
    const denied = run('mosquitto_sub', [...tlsArguments(port, device7), '-V', '5', '-t', 'devices/device-8/#', '-W', '20']);
    // mosquitto_sub 2.0 says so and exits (with 0) when its only filter is refused.
    await denied.exited;
    expect(denied.stderr()).toBe('All subscription requests were denied.\n');
    // device-8 may write anywhere under devices/: what it sends to device-7's topic arrives. What
    // device-7 sends to device-8's topic is refused (5.0 PUBACK 0x87) and not routed: device-8's own
    // marker, published after that refusal was acknowledged, is the first thing device-8 gets.
    const other = await subscriber(server, [...tlsArguments(port, device8), '-V', '5', '-t', 'devices/device-8/#', '-C', '1', '-v', '-W', '20']);
    const spoofed = run('mosquitto_pub', [...tlsArguments(port, device7), '-V', '5', '-t', 'devices/device-8/cmd', '-m', 'spoofed', '-q', '1']);
    await spoofed.exited;
    expect(spoofed.stderr()).toMatch(/not authori[sz]ed/i);
    expect(await run('mosquitto_pub', [...tlsArguments(port, device8), '-V', '5', '-t', 'devices/device-8/cmd', '-m', 'marker', '-q', '1']).exited).toBe(0);
    expect(await other.exited).toBe(0);
    expect(other.stdout()).toBe('devices/device-8/cmd marker\n');
    expect(await run('mosquitto_pub', [...tlsArguments(port, device8), '-V', '5', '-t', 'devices/device-7/cmd', '-m', 'from device-8', '-q', '1']).exited).toBe(0);
    expect(await own.exited).toBe(0);
    expect(own.stdout()).toBe('devices/device-7/cmd from device-8\n');
    // Every client has gone: a tool's exit can come before the broker has read its DISCONNECT.
    await waitUntil(() => server.core.view.clients({ limit: 10 }).length === 0, 3_000, 'every client gone');
  });
});
