/**
 * The recovery benchmark: how long a broker needs, from start to accepting connections, to
 * recover a data directory holding a long log (built by log-builder.ts).
 *
 * The production measure spawns `node dist/io/cli.js serve --data-dir D` on a free loopback port
 * and polls the port with TCP connects every few milliseconds: the server listens only after
 * recovery finished, so spawn-to-first-accepted-connect is what an operator waits for after a
 * restart (node's own start-up included). The child's peak resident set (VmHWM) is read while it
 * still runs, and its `recovered` log line says how many records it replayed. The directory can
 * first be evicted from the page cache (each file synced, then `dd iflag=nocache count=0`, which
 * asks the kernel to drop its cached pages), so the cold figure includes reading from the device.
 *
 * The in-process measure runs only the store's recovery over NodeStorage, plus applying the
 * records to a fresh state as the broker does: the part of the restart that grows with the log.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { applyRecord, createDurableState, finishReplay } from '../../src/store/state-store.js';
import { canConnect, freePort, readProcessStatusBytes, repositoryRoot } from '../load/peers.js';
import { StoreOnDisk } from './store-on-disk.js';

export interface RecoveryMeasurement {
  /** 'serve (cold cache)', 'serve (warm cache)' or 'store only (warm cache)'. */
  method: string;
  seconds: number;
  records: number;
  /** Peak resident set of the recovering process; null for the in-process measure. */
  peakRssBytes: number | null;
}

const pollIntervalMs = 5;
const stopTimeoutMs = 10_000;
/** Recovering children still running; killed if the bench exits first. */
const liveChildren = new Set<ChildProcess>();

process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/** Syncs every file of `directory`, then asks the kernel to drop their cached pages. */
export function evictFromPageCache(directory: string): boolean {
  let evicted = true;
  for (const name of readdirSync(directory)) {
    const path = join(directory, name);
    const descriptor = openSync(path, 'r');
    try {
      fsyncSync(descriptor);
    } finally {
      closeSync(descriptor);
    }
    const result = spawnSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none'], { encoding: 'utf8', timeout: 30_000 });
    if (result.status !== 0) evicted = false;
  }
  return evicted;
}

/** Times `keel serve --data-dir directory` from spawn to its port accepting a connection. */
export async function measureServeRecovery(directory: string, configFile: string, method: string, timeoutMs: number): Promise<RecoveryMeasurement> {
  const port = await freePort();
  const cli = join(repositoryRoot(), 'dist', 'io', 'cli.js');
  const args = [cli, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', directory, '--config', configFile, '--log-level', 'info', '--no-admin'];
  const startMs = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    // Only the head matters (the recovered line comes first); bounded so a chatty child cannot grow it.
    if (output.length < 64 * 1024) output += chunk.toString('utf8');
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      liveChildren.delete(child);
      resolve();
    }),
  );
  try {
    await waitUntilAccepting(
      port,
      startMs + timeoutMs,
      () => exited,
      () => output,
    );
    const seconds = (performance.now() - startMs) / 1_000;
    const peakRssBytes = readProcessStatusBytes(child.pid!, 'VmHWM');
    const records = recoveredRecords(output);
    if (records === null) throw new Error(`keel did not log how many records it recovered: ${output.slice(0, 500)}`);
    return { method, seconds, records, peakRssBytes };
  } finally {
    if (!exited) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs);
    await exit;
    clearTimeout(timer);
  }
}

/** The `records` field of the broker's `recovered` log line, or null when absent. */
export function recoveredRecords(output: string): number | null {
  for (const line of output.split('\n')) {
    if (!line.includes('"recovered"')) continue;
    try {
      const parsed = JSON.parse(line) as { event?: string; records?: unknown };
      if (parsed.event === 'recovered' && typeof parsed.records === 'number') return parsed.records;
    } catch {}
  }
  return null;
}

async function waitUntilAccepting(port: number, deadlineMs: number, exited: () => boolean, output: () => string): Promise<void> {
  while (performance.now() < deadlineMs) {
    if (exited()) throw new Error(`keel exited before listening: ${output().trim().slice(-1_000) || '(no output)'}`);
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, pollIntervalMs));
  }
  throw new Error(`keel did not accept connections on ${port} in time: ${output().trim().slice(-1_000)}`);
}

/** Times the store's recovery alone (read, check, decode every record) plus applying them. */
export async function measureStoreRecovery(directory: string, segmentBytesMax: number): Promise<RecoveryMeasurement> {
  const startMs = performance.now();
  const disk = new StoreOnDisk({ directory, syncPolicy: 'none', segmentBytesMax });
  try {
    const state = createDurableState();
    const count = await disk.recoverInto((records) => {
      for (let index = 0; index < records.length; index++) applyRecord(state, records[index]!);
    });
    finishReplay(state);
    const seconds = (performance.now() - startMs) / 1_000;
    if (state.sessions.size !== 1 || state.messages.size !== 0) {
      throw new Error(`recovered state is not the one the builder wrote: ${state.sessions.size} sessions, ${state.messages.size} messages`);
    }
    return { method: 'store only (warm cache)', seconds, records: count, peakRssBytes: null };
  } finally {
    await disk.close();
  }
}

/** Writes the config `keel serve` recovers with: the builder's segment size, no compaction. */
export function writeRecoveryConfig(file: string, segmentBytesMax: number): void {
  writeFileSync(file, JSON.stringify({ syncPolicy: 'always', segmentBytesMax, snapshotLogBytes: 2 ** 40 }));
}
