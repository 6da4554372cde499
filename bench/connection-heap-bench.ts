/**
 * What an idle plain MQTT connection keeps on the V8 heap, in Keel and in a bare Node
 * `net.Server`, by constructor: the answer to "what does Keel keep per idle connection beyond
 * Node's own socket" (issue 17), the plain-TCP counterpart of tls-heap-bench.ts.
 *
 * Each server is a child process started with `--heapsnapshot-signal=SIGUSR2` and the flags on
 * Keel's launcher line. Keel runs `keel serve` with its default listener on a free port and no
 * admin listener; the bare server reads every socket and answers its first bytes with 4 bytes, a
 * CONNACK's size, as a broker's socket path does at the least. The generator here opens
 * `--warmup` connections that are reset once answered (so that code and caches exist before the
 * first snapshot), takes a snapshot (the child collects garbage first), opens `--connections`
 * more that stay open, takes a second one, and prints the difference divided by the held
 * connections: bytes (V8's self size) and objects per connection, by node type and constructor.
 * Each connection sends a CONNECT (3.1.1, clean session, keepalive 60) with a new client id.
 *
 * Run: npm run build && node dist/bench/connection-heap-bench.js [--connections 2000] [--warmup 500] [--rows 30]
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { integerOption } from './load/cli-options.js';
import { compareHeapPerConnection, type HeapBenchKind } from './load/heap-per-connection.js';
import { repositoryRoot } from './load/peers.js';

/** The bare server's child: a listening net.Server that answers each socket's first bytes. */
function serveBare(port: number): void {
  const answer = Buffer.from([0x20, 0x02, 0x00, 0x00]);
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.write(answer));
  });
  server.listen(port, '127.0.0.1');
}

const plain: HeapBenchKind<net.Socket> = {
  label: 'plain',
  bareServer: 'net.Server',
  start(server, directory, port, flags) {
    if (server === 'bare') return spawn(process.execPath, [...flags, fileURLToPath(import.meta.url), 'serve', String(port)], { cwd: directory, stdio: 'inherit' });
    const configFile = join(directory, 'keel.json');
    writeFileSync(configFile, JSON.stringify({ admin: null }));
    const cli = join(repositoryRoot(), 'dist', 'io', 'cli.js');
    const serve = ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(directory, 'data'), '--config', configFile, '--log-level', 'error'];
    return spawn(process.execPath, [...flags, cli, ...serve], { cwd: directory, stdio: 'inherit' });
  },
  connect: (port) => ({ socket: net.connect(port, '127.0.0.1'), ready: 'connect' }),
};

async function main(): Promise<void> {
  const program = new Command()
    .option('--connections <n>', 'idle connections held between the two snapshots', integerOption(1, 15_000), 2_000)
    .option('--warmup <n>', 'connections opened and reset before the first snapshot', integerOption(0, 100_000), 500)
    .option('--rows <n>', 'rows of the table, largest differences first', integerOption(1, 1_000), 30)
    .parse();
  await compareHeapPerConnection(plain, program.opts<{ connections: number; warmup: number; rows: number }>());
}

if (process.argv[2] === 'serve') serveBare(Number(process.argv[3]));
else await main();
