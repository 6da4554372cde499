/**
 * What an idle TLS connection keeps on the V8 heap, in Keel and in a bare Node `tls.Server`, by
 * constructor: the answer to "what does Keel keep per TLS connection beyond Node's own" (issue 13).
 *
 * Each server is a child process started with `--heapsnapshot-signal=SIGUSR2` and the flag on
 * Keel's launcher line (`--max-semi-space-size=4`). Keel runs `keel serve` with one mqtts
 * listener (the benchmark's EC P-256 certificate, no admin listener); the bare server answers
 * every finished handshake with 4 bytes, a CONNACK's size. The generator here opens `--warmup`
 * connections that are reset once answered (so that code and caches exist before the first
 * snapshot), takes a snapshot (the child collects garbage first), opens `--connections` more that
 * stay open, takes a second one, and prints the difference divided by the held connections:
 * bytes (V8's self size) and objects per connection, by node type and constructor (the harness is
 * load/heap-per-connection.ts, shared with connection-heap-bench.ts). Keel gets a
 * CONNECT with a new client id on each connection and answers with its CONNACK.
 *
 * Run: npm run build && node dist/bench/tls-heap-bench.js [--connections 1000] [--warmup 300] [--rows 25]
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { benchCertificates } from './load/certificates.js';
import { integerOption } from './load/cli-options.js';
import { compareHeapPerConnection, type HeapBenchKind } from './load/heap-per-connection.js';
import { repositoryRoot } from './load/peers.js';

/** The bare server's child: a listening tls.Server that answers each finished handshake. */
function serveBare(certFile: string, keyFile: string, port: number): void {
  const answer = Buffer.from([0x20, 0x02, 0x00, 0x00]);
  const server = tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2', ALPNProtocols: ['mqtt'] }, (socket) => {
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.write(answer);
  });
  server.on('tlsClientError', () => undefined);
  server.listen(port, '127.0.0.1');
}

function overTls(): HeapBenchKind<tls.TLSSocket> {
  const certificates = benchCertificates();
  const context = tls.createSecureContext({ ca: certificates.ca });
  return {
    label: 'TLS',
    bareServer: 'tls.Server',
    start(server, directory, port, flags) {
      if (server === 'bare')
        return spawn(process.execPath, [...flags, fileURLToPath(import.meta.url), 'serve', certificates.certFile, certificates.keyFile, String(port)], { cwd: directory, stdio: 'inherit' });
      const configFile = join(directory, 'keel.json');
      writeFileSync(configFile, JSON.stringify({ admin: null, listeners: [{ protocol: 'mqtts', host: '127.0.0.1', port, certFile: certificates.certFile, keyFile: certificates.keyFile }] }));
      const cli = join(repositoryRoot(), 'dist', 'io', 'cli.js');
      return spawn(process.execPath, [...flags, cli, 'serve', '--data-dir', join(directory, 'data'), '--config', configFile, '--log-level', 'error'], { cwd: directory, stdio: 'inherit' });
    },
    connect: (port) => ({ socket: tls.connect({ host: '127.0.0.1', port, secureContext: context, servername: 'localhost', ALPNProtocols: ['mqtt'] }), ready: 'secureConnect' }),
  };
}

async function main(): Promise<void> {
  const program = new Command()
    .option('--connections <n>', 'idle TLS connections held between the two snapshots', integerOption(1, 15_000), 1_000)
    .option('--warmup <n>', 'connections opened and reset before the first snapshot', integerOption(0, 100_000), 300)
    .option('--rows <n>', 'rows of the table, largest differences first', integerOption(1, 1_000), 25)
    .parse();
  await compareHeapPerConnection(overTls(), program.opts<{ connections: number; warmup: number; rows: number }>());
}

if (process.argv[2] === 'serve') serveBare(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
else await main();
