/**
 * Proves the mqtts listener end to end with the `mqtt` client and raw sockets, over certificates
 * made by openssl for the test:
 *
 * - a client that trusts the test CA connects over TLS 1.2 or newer with ALPN `mqtt` and round-trips
 *   a message, beside a plain listener of the same broker; TLS 1.1 is refused;
 * - mutual TLS: with requireClientCertificate a client needs a certificate from caFile; without one,
 *   or with one from another CA, it is refused before any MQTT byte, counted, and a connected client
 *   notices nothing; with identityAsUsername the certificate's CN is the user name the ACL decides
 *   for (one topic granted, another denied), no password is asked although a password file
 *   requires one, and a certificate without a CN is refused;
 * - handshake failures (plain MQTT to the TLS port, TLS to the plain port, a client that stops
 *   mid-handshake, a flood of them) are counted, logged once per kind rather than per failure, and
 *   leave other clients alone; the stalled handshake is cut at connectTimeoutMs;
 * - the certificate is reloaded when its files change and on SIGHUP: new connections get the new
 *   one, an established connection keeps working, a broken file keeps the old certificate and
 *   logs a warning.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPasswordScrypt, updatePasswordFile } from '../../io/auth/password-file.js';
import type { RunningServer } from '../../io/server.js';
import { sleep, subscribeCodes, waitUntil } from '../integration/helpers.js';
import { makeTestCertificates, type TestCertificates } from './certificates.js';
import { ListenerClients, type LogCapture, listener, roundTrip, startWithListeners, trusting, urlOf } from './listener-helpers.js';

let certificates: TestCertificates;
let directory: string;
const clients = new ListenerClients();
const servers: RunningServer[] = [];

beforeAll(() => {
  certificates = makeTestCertificates();
  directory = mkdtempSync(join(tmpdir(), 'keel-tls-it-'));
}, 60_000);

afterEach(async () => {
  await clients.endAll();
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

afterAll(() => {
  certificates.remove();
  rmSync(directory, { recursive: true, force: true });
});

async function start(...args: Parameters<typeof startWithListeners>): Promise<{ server: RunningServer; logs: LogCapture }> {
  const started = await startWithListeners(...args);
  servers.push(started.server);
  return started;
}

function tlsStream(client: MqttClient): tls.TLSSocket {
  return client.stream as unknown as tls.TLSSocket;
}

/** Resolves with the error code of a TLS connection attempt, or 'connected'. */
function tlsAttempt(port: number, options: tls.ConnectionOptions): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options }, () => {
      // TLS 1.3: the server refuses a client certificate after the client's side is done; wait for its verdict.
      socket.once('data', () => resolve('connected'));
      socket.write(Buffer.from([0xc0, 0x00]));
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    socket.on('close', () => resolve('closed'));
  });
}

describe('an mqtts listener', () => {
  it('serves a client that trusts the CA over TLS 1.2+ with ALPN mqtt, beside a plain listener', async () => {
    const { server } = await start([listener('mqtt'), listener('mqtts', certificates)]);
    const secure = await clients.connect(urlOf(server, 1), trusting(certificates, { ALPNProtocols: ['mqtt'] }));
    expect(tlsStream(secure).alpnProtocol).toBe('mqtt');
    expect(['TLSv1.2', 'TLSv1.3']).toContain(tlsStream(secure).getProtocol());
    const plain = await clients.connect(urlOf(server, 0));
    const arrived = new Promise<string>((resolve) => plain.on('message', (_topic, payload) => resolve(payload.toString())));
    await plain.subscribeAsync('across/listeners');
    await secure.publishAsync('across/listeners', 'from TLS to plain', { qos: 1 });
    expect(await arrived).toBe('from TLS to plain');
    expect(
      server.core.view
        .clients({ limit: 10 })
        .map((client) => client.listener)
        .sort(),
    ).toEqual([server.listeners[0]!.name, server.listeners[1]!.name].sort());
  });

  it('refuses TLS 1.1, and a client that does not trust the certificate fails on its side', async () => {
    const { server } = await start([listener('mqtts', certificates)]);
    const port = server.listeners[0]!.port;
    expect(await tlsAttempt(port, { ca: readFileSync(certificates.caFile), minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).toMatch(/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|NO_PROTOCOLS/);
    expect(await tlsAttempt(port, { ca: readFileSync(certificates.wrongCaFile) })).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    await waitUntil(() => server.listenerCounters()[server.listeners[0]!.name]!.tlsHandshakeFailed >= 1, 3_000, 'the TLS 1.1 failure counted');
  });
});

describe('mutual TLS', () => {
  it('requires a certificate from caFile; refusals are counted and disturb nobody', async () => {
    const { server } = await start([listener('mqtts', certificates, { caFile: certificates.caFile, requireClientCertificate: true })]);
    const name = server.listeners[0]!.name;
    const withCertificate = await clients.connect(urlOf(server, 0), trusting(certificates, { cert: readFileSync(certificates.clientCert), key: readFileSync(certificates.clientKey) }));
    const port = server.listeners[0]!.port;
    expect(await tlsAttempt(port, { ca: readFileSync(certificates.caFile) })).not.toBe('connected');
    expect(await tlsAttempt(port, { ca: readFileSync(certificates.caFile), cert: readFileSync(certificates.wrongCaClientCert), key: readFileSync(certificates.wrongCaClientKey) })).not.toBe(
      'connected',
    );
    await waitUntil(() => server.listenerCounters()[name]!.clientCertificateRejected === 2, 3_000, 'two rejected client certificates');
    expect((await roundTrip(withCertificate, 'still/here', 'yes')).toString()).toBe('yes');
    expect(server.core.view.clients({ limit: 10 })).toHaveLength(1);
  });

  it('identityAsUsername: the CN is the user name the ACL decides for, without a password', async () => {
    const passwordFile = join(directory, 'passwords');
    const aclFile = join(directory, 'acl');
    updatePasswordFile(passwordFile, 'alice', hashPasswordScrypt(Buffer.from('wonderland'), 1_024));
    writeFileSync(aclFile, ['user device-7', 'topic readwrite devices/device-7/#', 'topic deny devices/device-7/firmware', ''].join('\n'));
    const { server, logs } = await start([listener('mqtts', certificates, { caFile: certificates.caFile, requireClientCertificate: true, identityAsUsername: true })], { passwordFile, aclFile });
    const device = await clients.connect(
      urlOf(server, 0),
      trusting(certificates, { protocolVersion: 5, username: 'alice', cert: readFileSync(certificates.clientCert), key: readFileSync(certificates.clientKey) }),
    );
    expect(server.core.view.clients({ limit: 10 })[0]!.username).toBe('device-7');
    expect(logs.events('client-connected')[0]).toMatchObject({ username: 'device-7', listener: server.listeners[0]!.name });
    expect((await roundTrip(device, 'devices/device-7/temperature', '21.5')).toString()).toBe('21.5');
    expect(await subscribeCodes(device, ['devices/device-7/#', 'devices/device-8/#', 'devices/device-7/firmware'], { qos: 0 })).toEqual([0, 0x87, 0x87]);
    await expect(device.publishAsync('devices/device-8/temperature', 'spoofed', { qos: 1 })).rejects.toThrow(/Not authorized|0x87|135/i);
    const port = server.listeners[0]!.port;
    expect(await tlsAttempt(port, { ca: readFileSync(certificates.caFile), cert: readFileSync(certificates.noCommonNameCert), key: readFileSync(certificates.noCommonNameKey) })).not.toBe('connected');
    await waitUntil(() => server.listenerCounters()[server.listeners[0]!.name]!.clientCertificateWithoutIdentity === 1, 3_000, 'the certificate without CN refused');
  });
});

describe('handshake failures', () => {
  it('are counted per kind, logged once per kind, and leave other clients alone', async () => {
    const { server, logs } = await start([listener('mqtt'), listener('mqtts', certificates)], { connectTimeoutMs: 400 });
    const [plainPort, tlsPort] = server.listeners.map((bound) => bound.port) as [number, number];
    const [plainName, tlsName] = server.listeners.map((bound) => bound.name) as [string, string];
    const bystander = await clients.connect(urlOf(server, 1), trusting(certificates));
    const connect = Buffer.from('101000044d5154540402003c0004746573740000', 'hex');
    const sockets: net.Socket[] = [];
    for (let index = 0; index < 50; index++) {
      const plainToTls = net.connect(tlsPort, '127.0.0.1', () => plainToTls.write(connect));
      const tlsToPlain = tls.connect({ host: '127.0.0.1', port: plainPort, rejectUnauthorized: false });
      sockets.push(plainToTls, tlsToPlain);
    }
    for (const socket of sockets) socket.on('error', () => undefined);
    // A client that starts a handshake (a record header) and then says nothing more.
    const staller = net.connect(tlsPort, '127.0.0.1', () => staller.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    const stallerClosed = new Promise<number>((resolve) => {
      const startMs = Date.now();
      staller.on('close', () => resolve(Date.now() - startMs));
    });
    staller.on('error', () => undefined);
    await waitUntil(() => server.listenerCounters()[tlsName]!.plainOnTlsListener === 50 && server.listenerCounters()[plainName]!.tlsOnPlainListener === 50, 10_000, 'every failure counted');
    expect(await stallerClosed).toBeLessThan(3_000);
    await waitUntil(() => server.listenerCounters()[tlsName]!.tlsHandshakeTimeout === 1, 3_000, 'the stalled handshake counted');
    const failed = logs.events('handshake-failed');
    expect(failed.filter((line) => line.kind === 'plainOnTlsListener')).toHaveLength(1);
    expect(failed.filter((line) => line.kind === 'tlsOnPlainListener')).toHaveLength(1);
    expect(failed.find((line) => line.kind === 'tlsOnPlainListener')).toMatchObject({ listener: plainName, remoteAddress: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    // The core never saw the TLS bytes as a malformed CONNECT.
    expect(logs.events('protocol-violation')).toHaveLength(0);
    expect((await roundTrip(bystander, 'bystander', 'unbothered')).toString()).toBe('unbothered');
    for (const socket of sockets) socket.destroy();
  }, 20_000);
});

describe('certificate reload', () => {
  function liveCopy(): { certFile: string; keyFile: string } {
    const certFile = join(directory, 'live.crt');
    const keyFile = join(directory, 'live.key');
    copyFileSync(certificates.serverCert, certFile);
    copyFileSync(certificates.serverKey, keyFile);
    return { certFile, keyFile };
  }

  function replace(file: string, from: string, secondsLater: number): void {
    copyFileSync(from, file);
    const when = new Date(Date.now() + secondsLater * 1_000);
    utimesSync(file, when, when);
  }

  function serialOf(client: MqttClient): string {
    return tlsStream(client).getPeerCertificate().serialNumber;
  }

  it('gives new connections the new certificate when the files change, and keeps established ones', async () => {
    const files = liveCopy();
    const { server, logs } = await start([listener('mqtts', certificates, files)]);
    const before = await clients.connect(urlOf(server, 0), trusting(certificates));
    const firstSerial = serialOf(before);
    replace(files.certFile, certificates.expiringCert, 5);
    replace(files.keyFile, certificates.expiringKey, 5);
    // The files are looked at no more than once a second, as each connection arrives.
    await sleep(1_100);
    const after = await clients.connect(urlOf(server, 0), trusting(certificates));
    expect(serialOf(after)).not.toBe(firstSerial);
    expect(serialOf(before)).toBe(firstSerial);
    expect((await roundTrip(before, 'old/connection', 'still fine')).toString()).toBe('still fine');
    expect(logs.events('tls-certificate-loaded')).toHaveLength(1);
    expect(logs.events('tls-certificate-expiring')).toHaveLength(1);
  });

  it('reloads on SIGHUP, and a broken key keeps the old certificate with a warning', async () => {
    const files = liveCopy();
    const { server, logs } = await start([listener('mqtts', certificates, files)]);
    const first = await clients.connect(urlOf(server, 0), trusting(certificates));
    replace(files.certFile, certificates.expiringCert, 9);
    replace(files.keyFile, certificates.expiringKey, 9);
    const report = server.reload();
    expect(report.outcomes).toEqual([{ what: `TLS certificate of ${server.listeners[0]!.name}`, ok: true, detail: expect.stringMatching(/^CN=localhost, valid to .*, for new connections$/) }]);
    const second = await clients.connect(urlOf(server, 0), trusting(certificates));
    expect(serialOf(second)).not.toBe(serialOf(first));
    writeFileSync(files.keyFile, 'half-written\n');
    expect(server.reload().outcomes[0]).toMatchObject({ ok: false, detail: expect.stringMatching(/^kept the previous certificate/) });
    expect(logs.events('tls-certificate-invalid')).toHaveLength(1);
    const third = await clients.connect(urlOf(server, 0), trusting(certificates));
    expect(serialOf(third)).toBe(serialOf(second));
  });
});
