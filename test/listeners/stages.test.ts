/**
 * Proves that a server loads the code of a listener stage only when a listener uses it
 * (io/listeners/stages.ts) and that the admin listener's metrics skip prom-client's unused parts
 * (io/admin/metrics.ts): `keel serve` with the default plain listener and its admin listener is
 * started in a child process, scraped once, and asked which of Node's TLS, HTTPS and zlib
 * modules, which `ws` files and which parts of prom-client it loaded (none of the first three); a TLS or WebSocket listener's
 * configuration loads its stage. The child is a separate process because this one has all of
 * them loaded already.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadListenerStages, needsListenerStages } from '../../io/listeners/stages.js';
import { ensureBuilt, repositoryRoot } from '../integration/helpers.js';

/** Starts a server from dist/ in a child process, scrapes /metrics once, and reports what it loaded. */
const childScript = `
import { createRequire } from 'node:module';
import http from 'node:http';
const { startServer } = await import(${JSON.stringify(join(repositoryRoot, 'dist', 'io', 'server.js'))});
const server = await startServer({ port: 0, config: { admin: { host: '127.0.0.1', port: 0 } } });
const scrape = await new Promise((resolve, reject) => {
  http.get({ host: '127.0.0.1', port: server.admin.port, path: '/metrics' }, (response) => {
    let text = '';
    response.on('data', (chunk) => { text += chunk; });
    response.on('end', () => resolve(text));
  }).on('error', reject);
});
const builtins = process.moduleLoadList.filter((name) => name.startsWith('NativeModule ')).map((name) => name.slice('NativeModule '.length));
const required = Object.keys(createRequire(import.meta.url).cache);
await server.close();
process.stdout.write(JSON.stringify({ builtins, required, scraped: scrape.includes('keel_messages_received_total') && scrape.includes('nodejs_heap_size_used_bytes') }));
`;

describe('listener stages', () => {
  it('a plain listener with the admin listener loads neither TLS nor WebSocket code, nor prom-client unused parts', () => {
    ensureBuilt();
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', childScript], { cwd: repositoryRoot, encoding: 'utf8', timeout: 30_000 });
    const loaded = JSON.parse(output) as { builtins: string[]; required: string[]; scraped: boolean };
    expect(loaded.scraped).toBe(true);
    expect(loaded.builtins).toContain('net');
    expect(loaded.builtins).toContain('http');
    // (node:cluster is loaded anyway: net.Server's listen asks it whether this is a worker.)
    for (const unused of ['tls', '_tls_wrap', 'https', 'zlib']) expect(loaded.builtins).not.toContain(unused);
    expect(loaded.required.some((file) => file.includes('/node_modules/prom-client/lib/registry.js'))).toBe(true);
    for (const unused of ['/node_modules/ws/', '/prom-client/lib/pushgateway.js', '/prom-client/lib/cluster.js', '/prom-client/lib/summary.js']) {
      expect(loaded.required.filter((file) => file.includes(unused))).toEqual([]);
    }
  }, 40_000);

  it('needs no stage for plain listeners only, and one for any TLS or WebSocket listener', () => {
    expect(needsListenerStages([{ protocol: 'mqtt' }, { protocol: 'mqtt' }])).toBe(false);
    for (const protocol of ['mqtts', 'ws', 'wss'] as const) expect(needsListenerStages([{ protocol: 'mqtt' }, { protocol }])).toBe(true);
  });

  it('loads the TLS stage for mqtts and wss listeners and the WebSocket stage for ws and wss ones', async () => {
    const plain = await loadListenerStages([{ protocol: 'mqtt' }]);
    expect(plain.tls).toBeNull();
    expect(plain.webSocket).toBeNull();
    const tls = await loadListenerStages([{ protocol: 'mqtt' }, { protocol: 'mqtts' }]);
    expect(typeof tls.tls?.handshakes.TlsHandshakes).toBe('function');
    expect(typeof tls.tls?.credentials.WatchedCredentials.open).toBe('function');
    expect(tls.webSocket).toBeNull();
    const webSocket = await loadListenerStages([{ protocol: 'ws' }]);
    expect(webSocket.tls).toBeNull();
    expect(typeof webSocket.webSocket?.WebSocketUpgrades).toBe('function');
    const secure = await loadListenerStages([{ protocol: 'wss' }]);
    expect(secure.tls).not.toBeNull();
    expect(secure.webSocket).not.toBeNull();
  });
});
