/**
 * Proves `keel pub` and `keel sub` reach every kind of listener, as mosquitto_pub/sub do over TLS:
 * over mqtts trusting the test CA with `--cafile` (and refusing a server the CA did not sign),
 * with a client certificate (`--cert`, `--key`) where one is required, and over `ws` and `wss`
 * with `--ws`; the transport chooses the default port; TLS options that do not fit together are
 * usage errors (exit 2) before any connection.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { ensureBuilt, type KeelProcess, runKeel, waitUntil } from '../integration/helpers.js';
import { makeTestCertificates, type TestCertificates } from './certificates.js';
import { listener, startWithListeners } from './listener-helpers.js';

let certificates: TestCertificates;
let server: RunningServer;
const children: KeelProcess[] = [];

beforeAll(async () => {
  ensureBuilt();
  certificates = makeTestCertificates();
  const started = await startWithListeners([
    listener('mqtts', certificates),
    listener('mqtts', certificates, { caFile: certificates.caFile, requireClientCertificate: true }),
    listener('ws'),
    listener('wss', certificates),
  ]);
  server = started.server;
}, 60_000);

afterEach(() => {
  for (const child of children.splice(0)) child.child.kill('SIGKILL');
});

afterAll(async () => {
  await server.close();
  certificates.remove();
});

const childTestTimeoutMs = 30_000;

function keel(args: string[]): KeelProcess {
  const child = runKeel(args);
  children.push(child);
  return child;
}

/** `keel sub` on listener `index` with `transport` options, once the broker holds its subscription. */
async function subscribed(index: number, transport: string[], topic: string): Promise<KeelProcess> {
  const before = server.core.view.subscriptions({ limit: 100 }).length;
  const sub = keel(['sub', '-h', '127.0.0.1', '-p', String(server.listeners[index]!.port), ...transport, '-t', topic, '-C', '1', '-v', '-W', '20']);
  await Promise.race([
    waitUntil(() => server.core.view.subscriptions({ limit: 100 }).length > before, 15_000, 'the subscription'),
    sub.exited.then((code) => {
      throw new Error(`keel sub exited with ${code}: ${sub.stderr()}`);
    }),
  ]);
  return sub;
}

async function roundTrip(index: number, transport: string[], topic: string, payload: string): Promise<void> {
  const sub = await subscribed(index, transport, topic);
  const pub = keel(['pub', '-h', '127.0.0.1', '-p', String(server.listeners[index]!.port), ...transport, '-t', topic, '-m', payload, '-q', '1']);
  expect(await pub.exited, pub.stderr()).toBe(0);
  expect(await sub.exited, sub.stderr()).toBe(0);
  expect(sub.stdout()).toBe(`${topic} ${payload}\n`);
}

describe('keel pub and keel sub', () => {
  it(
    'round-trip over mqtts with --cafile, and refuse a server their CA did not sign',
    async () => {
      await roundTrip(0, ['--cafile', certificates.caFile], 'tls/hello', 'over TLS');
      // The client's own certificate is not a CA: the server's certificate does not verify against it.
      const pub = keel(['pub', '-h', '127.0.0.1', '-p', String(server.listeners[0]!.port), '--cafile', certificates.clientCert, '-t', 'tls/x', '-m', 'x']);
      expect(await pub.exited).toBe(1);
      expect(pub.stderr()).toMatch(/^keel pub: cannot connect to 127\.0\.0\.1:\d+: .*certificate/);
    },
    childTestTimeoutMs,
  );

  it(
    'connect with a client certificate where one is required',
    async () => {
      await roundTrip(1, ['--cafile', certificates.caFile, '--cert', certificates.clientCert, '--key', certificates.clientKey], 'mutual/hello', 'both verified');
      const without = keel(['pub', '-h', '127.0.0.1', '-p', String(server.listeners[1]!.port), '--cafile', certificates.caFile, '-t', 'mutual/x', '-m', 'x']);
      expect(await without.exited).toBe(1);
    },
    childTestTimeoutMs,
  );

  it(
    'round-trip over ws and wss with --ws',
    async () => {
      await roundTrip(2, ['--ws'], 'ws/hello', 'over WebSockets');
      await roundTrip(3, ['--ws', '--cafile', certificates.caFile], 'wss/hello', 'over secure WebSockets');
      const wrongPath = keel(['pub', '-h', '127.0.0.1', '-p', String(server.listeners[2]!.port), '--ws', '--ws-path', '/elsewhere', '-t', 'ws/x', '-m', 'x']);
      expect(await wrongPath.exited).toBe(1);
      // The listener answers 404 to the upgrade; the client library reports only that the connection ended.
      expect(wrongPath.stderr()).toMatch(/^keel pub: connection to ws:\/\/127\.0\.0\.1:\d+\/elsewhere closed before the broker accepted it\n$/);
    },
    childTestTimeoutMs,
  );

  it(
    'take TLS options that do not fit together as usage errors, before connecting',
    async () => {
      // Nothing listens on port 1: a command that tried to connect would exit 1, not 2.
      const cases: [string[], string][] = [
        [['--cafile', certificates.caFile, '--cert', certificates.clientCert], '--cert and --key go together'],
        [['--insecure'], '--insecure is for TLS connections (--cafile or --tls)'],
        [['--cafile', '/nonexistent/ca.pem'], 'cannot read --cafile /nonexistent/ca.pem: '],
        [['--ws', '--ws-path', 'mqtt'], '--ws-path must start with /'],
      ];
      for (const [options, message] of cases) {
        const pub = keel(['pub', '-h', '127.0.0.1', '-p', '1', ...options, '-t', 'x', '-m', 'x']);
        expect(await pub.exited).toBe(2);
        expect(pub.stderr()).toContain(`keel pub: ${message}`);
      }
    },
    childTestTimeoutMs,
  );
});
