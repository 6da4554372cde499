/**
 * The harness the two heap benchmarks share (connection-heap-bench.ts for plain MQTT over TCP,
 * tls-heap-bench.ts for MQTT over TLS): a server child started with `--heapsnapshot-signal=SIGUSR2`,
 * `warmup` connections opened and reset once answered (so that code and caches exist before the
 * first snapshot), a snapshot (the child collects garbage first), `connections` more held open,
 * a second snapshot, and the difference divided by the held connections, by node type and
 * constructor, printed for a bare Node server beside Keel.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, keelNodeArguments } from './peers.js';

export type HeapServer = 'keel' | 'bare';

export interface HeapBenchKind<S extends net.Socket> {
  /** In file names and the report: `plain` or `TLS`. */
  readonly label: string;
  /** The bare server's class in the report: `net.Server`, `tls.Server`. */
  readonly bareServer: string;
  /** Starts the child listening on `port`; `flags` are the node flags it must be started with. */
  start(server: HeapServer, directory: string, port: number, flags: string[]): ChildProcess;
  /** A client socket towards `port`, and the event after which it may send its CONNECT. */
  connect(port: number): { socket: S; ready: string };
}

export interface Tally {
  count: number;
  bytes: number;
}

const inFlight = 50;
const batchDeadlineMs = 120_000;
let clientCount = 0;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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

/** Opens `count` connections, `inFlight` at a time; each is reset or held once answered. */
async function openBatch<S extends net.Socket>(kind: HeapBenchKind<S>, port: number, count: number, held: S[] | null): Promise<void> {
  let opened = 0;
  const openOne = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const { socket, ready } = kind.connect(port);
      socket.on('error', (error) => reject(new Error(`connection failed: ${error.message}`)));
      socket.once(ready, () => socket.write(connectPacket(`${kind.label.toLowerCase()}-heap-${clientCount++}`)));
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

async function measure<S extends net.Socket>(kind: HeapBenchKind<S>, server: HeapServer, warmup: number, connections: number): Promise<Map<string, Tally>> {
  const directory = mkdtempSync(join(tmpdir(), `keel-${kind.label.toLowerCase()}-heap-${server}-`));
  const port = await freePort();
  const child = kind.start(server, directory, port, [...keelNodeArguments(), '--heapsnapshot-signal=SIGUSR2']);
  const held: S[] = [];
  try {
    await waitForPort(port);
    await openBatch(kind, port, warmup, null);
    await sleep(1_000);
    const before = tallySnapshot(await takeSnapshot(child, directory));
    await openBatch(kind, port, connections, held);
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

/** Measures the bare server, then Keel, and prints the table. */
export async function compareHeapPerConnection<S extends net.Socket>(kind: HeapBenchKind<S>, options: { connections: number; warmup: number; rows: number }): Promise<void> {
  const bare = await measure(kind, 'bare', options.warmup, options.connections);
  const keel = await measure(kind, 'keel', options.warmup, options.connections);
  const total = (tallies: Map<string, Tally>): number => [...tallies.values()].reduce((sum, tally) => sum + tally.bytes, 0);
  console.log(`Node ${process.version}, ${options.connections} idle ${kind.label} connections after ${options.warmup} reset ones; V8 heap (self size) per connection`);
  console.log(`total: bare ${kind.bareServer} ${total(bare).toFixed(0)} B, Keel ${total(keel).toFixed(0)} B, Keel beyond bare ${(total(keel) - total(bare)).toFixed(0)} B\n`);
  console.log('   bare B  bare n   keel B  keel n  Keel-bare B  node type and constructor');
  const keys = [...new Set([...bare.keys(), ...keel.keys()])];
  const zero = { count: 0, bytes: 0 };
  const largest = (key: string): number => Math.max(Math.abs((keel.get(key) ?? zero).bytes), Math.abs((bare.get(key) ?? zero).bytes));
  keys.sort((a, b) => largest(b) - largest(a));
  for (const key of keys.slice(0, options.rows)) {
    const [b, k] = [bare.get(key) ?? zero, keel.get(key) ?? zero];
    console.log(
      `${b.bytes.toFixed(0).padStart(9)} ${b.count.toFixed(2).padStart(7)} ${k.bytes.toFixed(0).padStart(8)} ${k.count.toFixed(2).padStart(7)} ${(k.bytes - b.bytes).toFixed(0).padStart(12)}  ${key}`,
    );
  }
}
