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
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { integerOption } from './load/cli-options.js';
import { freePort, keelNodeArguments, repositoryRoot } from './load/peers.js';

type Server = 'keel' | 'bare';
const inFlight = 50;
const batchDeadlineMs = 120_000;

/** The bare server's child: a listening net.Server that answers each socket's first bytes. */
function serveBare(port: number): void {
  const answer = Buffer.from([0x20, 0x02, 0x00, 0x00]);
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => socket.write(answer));
  });
  server.listen(port, '127.0.0.1');
}

function startServer(server: Server, directory: string, port: number): ChildProcess {
  const flags = [...keelNodeArguments(), '--heapsnapshot-signal=SIGUSR2'];
  if (server === 'bare') return spawn(process.execPath, [...flags, fileURLToPath(import.meta.url), 'serve', String(port)], { cwd: directory, stdio: 'inherit' });
  const configFile = join(directory, 'keel.json');
  writeFileSync(configFile, JSON.stringify({ admin: null }));
  const cli = join(repositoryRoot(), 'dist', 'io', 'cli.js');
  const serve = ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', join(directory, 'data'), '--config', configFile, '--log-level', 'error'];
  return spawn(process.execPath, [...flags, cli, ...serve], { cwd: directory, stdio: 'inherit' });
}

async function waitForPort(port: number): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const open = await new Promise<boolean>((resolve) => {
      const probe = net.connect(port, '127.0.0.1');
      probe.once('connect', () => {
        probe.destroy();
        resolve(true);
      });
      probe.once('error', () => resolve(false));
    });
    if (open) return;
    await sleep(100);
  }
  throw new Error(`nothing listening on port ${port} after 30 s`);
}

/** An MQTT 3.1.1 CONNECT: clean session, keepalive 60, this client id. */
function connectPacket(clientId: string): Buffer {
  const id = Buffer.from(clientId);
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, id.length >> 8, id.length & 0xff]), id]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

let clientCount = 0;

/** Opens `count` connections, `inFlight` at a time; each is reset or held once answered. */
async function openBatch(port: number, count: number, held: net.Socket[] | null): Promise<void> {
  let opened = 0;
  const openOne = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', (error) => reject(new Error(`connection failed: ${error.message}`)));
      socket.once('connect', () => socket.write(connectPacket(`plain-heap-${clientCount++}`)));
      socket.once('data', () => {
        if (held === null) socket.destroy();
        else held.push(socket);
        resolve();
      });
    });
  const worker = async (): Promise<void> => {
    while (opened < count) {
      opened += 1;
      await openOne();
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`batch of ${count} not answered within ${batchDeadlineMs} ms`)), batchDeadlineMs);
  });
  try {
    await Promise.race([Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker)), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Signals the child and waits for its snapshot file to be complete. */
async function takeSnapshot(child: ChildProcess, directory: string): Promise<string> {
  const existing = new Set(readdirSync(directory));
  child.kill('SIGUSR2');
  for (let attempt = 0; attempt < 600; attempt++) {
    await sleep(200);
    const written = readdirSync(directory).find((name) => name.endsWith('.heapsnapshot') && !existing.has(name));
    if (written === undefined) continue;
    const file = join(directory, written);
    // The file is created first, then written in pieces after a collection: it is complete once
    // it is not empty, its size stopped changing and it ends the snapshot's JSON object.
    let size = -1;
    while (size === 0 || size !== statSync(file).size || !readFileSync(file, 'utf8').trimEnd().endsWith('}')) {
      size = statSync(file).size;
      await sleep(500);
    }
    return file;
  }
  throw new Error('no heap snapshot within 120 s');
}

interface Tally {
  count: number;
  bytes: number;
}

/**
 * Self size and count of a snapshot's nodes, by type and name (strings and numbers by type only).
 * Plain objects (constructor `Object`) and arrays are told apart by what refers to them: the
 * name of the first property or element edge that points at them, so that the session record,
 * the host's record and the arrays each one holds get a row of their own.
 */
function tallySnapshot(file: string): Map<string, Tally> {
  const snapshot = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
    nodes: number[];
    edges: number[];
    strings: string[];
  };
  const meta = snapshot.snapshot.meta;
  const fields = meta.node_fields;
  const types = meta.node_types[0];
  const [typeAt, nameAt, sizeAt, edgeCountAt] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size'), fields.indexOf('edge_count')];
  const edgeFields = meta.edge_fields;
  const [edgeTypeAt, edgeNameAt, edgeToAt] = [edgeFields.indexOf('type'), edgeFields.indexOf('name_or_index'), edgeFields.indexOf('to_node')];
  const propertyEdge = meta.edge_types[0].indexOf('property');
  const referredAs = new Map<number, string>();
  let edge = 0;
  for (let index = 0; index < snapshot.nodes.length; index += fields.length) {
    const owner = snapshot.nodes[index + nameAt]!;
    for (let count = snapshot.nodes[index + edgeCountAt]!; count > 0; count--, edge += edgeFields.length) {
      if (snapshot.edges[edge + edgeTypeAt] !== propertyEdge) continue;
      const to = snapshot.edges[edge + edgeToAt]!;
      if (!referredAs.has(to)) referredAs.set(to, `${snapshot.strings[owner]!.slice(0, 30)}.${snapshot.strings[snapshot.edges[edge + edgeNameAt]!]}`);
    }
  }
  const tallies = new Map<string, Tally>();
  for (let index = 0; index < snapshot.nodes.length; index += fields.length) {
    const type = types[snapshot.nodes[index + typeAt]!]!;
    const named = !/string|number|code/.test(type);
    let key = named ? `${type} ${snapshot.strings[snapshot.nodes[index + nameAt]!]!.slice(0, 50)}` : type;
    if (key === 'object Object' || key === 'object Array' || key === 'array ' || key === 'closure ') key += ` (${referredAs.get(index) ?? '?'})`;
    const tally = tallies.get(key) ?? { count: 0, bytes: 0 };
    tally.count += 1;
    tally.bytes += snapshot.nodes[index + sizeAt]!;
    tallies.set(key, tally);
  }
  return tallies;
}

async function measure(server: Server, warmup: number, connections: number): Promise<Map<string, Tally>> {
  const directory = mkdtempSync(join(tmpdir(), `keel-plain-heap-${server}-`));
  const port = await freePort();
  const child = startServer(server, directory, port);
  const held: net.Socket[] = [];
  try {
    await waitForPort(port);
    await openBatch(port, warmup, null);
    await sleep(1_000);
    const before = tallySnapshot(await takeSnapshot(child, directory));
    await openBatch(port, connections, held);
    await sleep(1_000);
    const after = tallySnapshot(await takeSnapshot(child, directory));
    const difference = new Map<string, Tally>();
    for (const key of new Set([...before.keys(), ...after.keys()])) {
      const from = before.get(key) ?? { count: 0, bytes: 0 };
      const to = after.get(key) ?? { count: 0, bytes: 0 };
      difference.set(key, { count: (to.count - from.count) / connections, bytes: (to.bytes - from.bytes) / connections });
    }
    return difference;
  } finally {
    for (const socket of held) socket.destroy();
    child.kill();
    rmSync(directory, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function main(): Promise<void> {
  const program = new Command()
    .option('--connections <n>', 'idle connections held between the two snapshots', integerOption(1, 15_000), 2_000)
    .option('--warmup <n>', 'connections opened and reset before the first snapshot', integerOption(0, 100_000), 500)
    .option('--rows <n>', 'rows of the table, largest differences first', integerOption(1, 1_000), 30)
    .parse();
  const options = program.opts<{ connections: number; warmup: number; rows: number }>();
  const results = new Map<Server, Map<string, Tally>>();
  for (const server of ['bare', 'keel'] as const) results.set(server, await measure(server, options.warmup, options.connections));
  const bare = results.get('bare')!;
  const keel = results.get('keel')!;
  const total = (tallies: Map<string, Tally>): number => [...tallies.values()].reduce((sum, tally) => sum + tally.bytes, 0);
  console.log(`Node ${process.version}, ${options.connections} idle connections after ${options.warmup} reset ones; V8 heap (self size) per connection`);
  console.log(`total: bare net.Server ${total(bare).toFixed(0)} B, Keel ${total(keel).toFixed(0)} B, Keel beyond bare ${(total(keel) - total(bare)).toFixed(0)} B\n`);
  console.log('   bare B  bare n   keel B  keel n  Keel-bare B  node type and constructor');
  const keys = [...new Set([...bare.keys(), ...keel.keys()])];
  const zero = { count: 0, bytes: 0 };
  keys.sort((a, b) => Math.max(Math.abs((keel.get(b) ?? zero).bytes), Math.abs((bare.get(b) ?? zero).bytes)) - Math.max(Math.abs((keel.get(a) ?? zero).bytes), Math.abs((bare.get(a) ?? zero).bytes)));
  for (const key of keys.slice(0, options.rows)) {
    const [b, k] = [bare.get(key) ?? zero, keel.get(key) ?? zero];
    console.log(
      `${b.bytes.toFixed(0).padStart(9)} ${b.count.toFixed(2).padStart(7)} ${k.bytes.toFixed(0).padStart(8)} ${k.count.toFixed(2).padStart(7)} ${(k.bytes - b.bytes).toFixed(0).padStart(12)}  ${key}`,
    );
  }
}

if (process.argv[2] === 'serve') serveBare(Number(process.argv[3]));
else await main();
