/**
 * How long a node waits, after its link to NATS comes up, before it may read hand-over markers
 * again: the initial replay of its watch of `keel-sessions` (src/cluster/session-registry.ts
 * `current`, contract.ts clusterWatchCurrent), as a function of the keys the bucket holds (one
 * per client id whose session lives anywhere in the cluster).
 *
 *   node --expose-gc dist/bench/watch-replay-bench.js [--keys 100000] [--rounds 3] [--core 0|1]
 *     [--cpu-profile FILE]
 *
 * One `nats-server -js` (temporary store). The bucket is filled with `--keys` owner values of the
 * size a claim writes, through nats.js directly (pipelined puts). Then the real cluster link
 * (io/cluster/nats-link.ts) watches it `--rounds` times, each a fresh watch as after a
 * reconnection, and the bench reports the time from the `kv-watch` request to its
 * `watch-current` input, and how many key changes came before it (every key, once).
 *
 * `--core 1` (the default) feeds the inputs to a real clustered core (a Broker over a memory
 * store, node `bench`, which owns none of the keys), as the host does: each round is a link
 * loss and return fed to the core, whose own `kv-watch` of the bucket goes to the link, and the
 * time runs to its `watch-current` fed to the core, so the core's work per key change (decoding
 * the owner, its `known` entry) is in it. With `--expose-gc` it also reports what the core's
 * entries cost: the heap after the replay less the heap before it, per key. `--core 0` counts the
 * inputs only (the link alone). `--cpu-profile FILE` writes a V8 CPU profile of the rounds only
 * (not the fill).
 *
 * Figures (README, Cluster, "What is not guaranteed"), 100,000 keys into a core, three rounds,
 * interleaved with the build before, this shared 2-core machine at a load average of 18 to 24:
 * 2.7 to 5.9 s and 0.9 to 1.2 s of CPU here, nats-server 0.5 to 0.7 s; the build before (nats.js's
 * push watch, JSON.parse of every owner, an object per known key) 8.0 to 12.5 s and 1.8 to 2.2 s
 * of CPU. The core's entries: 69 bytes per key (141 to 145 before). Where this process's time
 * went (`--cpu-profile`, three rounds, idle left out): before, 7.4 s, of it 2.7 s the garbage
 * collector (the push watch buffered the replay ahead of the core, so its entries lived long
 * enough to be promoted), 2.2 s nats.js (its parser; each JetStream message's reply subject, read
 * for the revision and the count pending), 1.7 s the core (decoding each key and owner, 0.4 s of it
 * text coding, and its entries); with the pull consumer and the fast decoding (before the compact
 * entries), 4.7 s: 1.1 s collector, 1.5 s nats.js, 0.9 s core, 0.5 s socket writes.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import type { ClusterInput } from '../io/cluster/input-queue.js';
import { NatsLink } from '../io/cluster/nats-link.js';
import { Logger } from '../io/logger.js';
import { Broker } from '../src/broker/broker.js';
import { encodeOwner, sessionKey, sessionsBucket } from '../src/cluster/session-registry.js';
import { resolveConfig } from '../src/config.js';
import { MemoryStateStore } from '../src/store/memory-store.js';
import { startNats, until } from './load/nats-peer.js';

const putsInFlightMax = 2_000;

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!(Number.isInteger(value) && value >= 0)) throw new Error(`--${name} needs a non-negative integer`);
  return value;
}

function textOption(name: string): string | null {
  const index = process.argv.indexOf(`--${name}`);
  return index < 0 ? null : (process.argv[index + 1] ?? null);
}

async function fill(url: string, keys: number): Promise<number> {
  const connection = await connect({ servers: [url] });
  const bucket = await new Kvm(connection).create(sessionsBucket, { history: 1 });
  const startMs = performance.now();
  let inFlight: Promise<number>[] = [];
  for (let index = 0; index < keys; index++) {
    inFlight.push(bucket.put(sessionKey(`client-${index}`), encodeOwner({ node: `n${index % 3}`, generation: `7.${index}` })));
    if (inFlight.length >= putsInFlightMax) {
      await Promise.all(inFlight);
      inFlight = [];
    }
  }
  await Promise.all(inFlight);
  const seconds = (performance.now() - startMs) / 1000;
  await connection.close();
  return seconds;
}

/** The heap in use after a full collection, or null without `--expose-gc`. */
function heapUsedBytes(): number | null {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) return null;
  collect();
  collect();
  return process.memoryUsage().heapUsed;
}

/** The CPU time a process used so far (Linux /proc; utime + stime at 100 ticks a second), in seconds. */
function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Where a round's inputs go: a counter, or a clustered core that asks for the watch itself. */
interface Sink {
  deliver(input: ClusterInput): void;
  /** Starts a fresh watch; returns the request id whose `watch-current` ends the round. */
  rewatch(link: NatsLink, round: number): number;
}

function counterSink(): Sink {
  return {
    deliver: () => undefined,
    rewatch(link, round) {
      link.request({ op: 'kv-watch', requestId: round, bucket: sessionsBucket });
      return round;
    },
  };
}

/** A clustered core over a memory store; of its cluster requests only its watch of the sessions bucket goes to NATS. */
function coreSink(url: string): Sink & { knownKeys(): number } {
  const resolved = resolveConfig({ cluster: { nats: [url], nodeId: 'bench' } });
  if (!resolved.ok) throw new Error(resolved.problems.join('; '));
  const broker = new Broker({ config: resolved.config, nowMs: Math.floor(performance.now()), store: new MemoryStateStore(), logDebug: false, logInfo: false });
  let watchRequestId = 0;
  const drain = (): void => {
    for (const action of broker.drainActions()) {
      if (action.kind === 'halt') throw new Error(`the core halted: ${action.reason}`);
      if (action.kind === 'cluster' && action.request.op === 'kv-watch' && action.request.bucket === sessionsBucket) watchRequestId = action.request.requestId;
    }
  };
  drain();
  return {
    deliver(input) {
      // The link's own `connected` is not the core's: the rounds make the core's link go and come back.
      if (input.kind === 'status') return;
      const nowMs = Math.floor(performance.now());
      if (input.kind === 'key-changed') broker.clusterKeyChanged(nowMs, input.change);
      else if (input.kind === 'watch-current') broker.clusterWatchCurrent(nowMs, input.bucket, input.requestId);
      drain();
    },
    rewatch(link, round) {
      broker.clusterStatus(Math.floor(performance.now()), 'disconnected');
      drain();
      broker.clusterStatus(Math.floor(performance.now()), 'connected');
      watchRequestId = 0;
      drain();
      if (watchRequestId === 0) throw new Error(`the core issued no watch of ${sessionsBucket} in round ${round}`);
      link.request({ op: 'kv-watch', requestId: watchRequestId, bucket: sessionsBucket });
      return watchRequestId;
    },
    knownKeys: () => broker.cluster?.sessions.knownKeys ?? 0,
  };
}

async function main(): Promise<void> {
  const keys = option('keys', 100_000);
  const rounds = option('rounds', 3);
  const core = option('core', 1) === 1;
  const profilePath = textOption('cpu-profile');
  if (keys === 0 || rounds === 0) throw new Error('--keys and --rounds need at least 1');
  const children = new Set<ChildProcess>();
  const directory = mkdtempSync(join(tmpdir(), 'keel-watch-replay-'));
  try {
    const nats = await startNats(directory, children);
    const url = `nats://127.0.0.1:${nats.port}`;
    const fillSeconds = await fill(url, keys);
    console.log(`filled ${sessionsBucket} with ${keys} keys in ${fillSeconds.toFixed(1)} s`);
    const sink = core ? coreSink(url) : counterSink();
    let keyChanges = 0;
    let current: { requestId: number; afterKeyChanges: number; atMs: number } | null = null;
    let connected = false;
    const deliver = (input: ClusterInput): void => {
      if (input.kind === 'status') connected = input.status === 'connected';
      else if (input.kind === 'key-changed') keyChanges += 1;
      sink.deliver(input);
      if (input.kind === 'watch-current') current = { requestId: input.requestId, afterKeyChanges: keyChanges, atMs: performance.now() };
    };
    const link = new NatsLink({ servers: [url], nodeId: 'bench', logger: new Logger('warn', { write: () => true }), deliver });
    link.start();
    await until(() => connected, 'the link');
    const profiler = profilePath === null ? null : new Session();
    if (profiler !== null) {
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
    const results: { seconds: number; afterKeyChanges: number; heapBytesPerKey: number | null }[] = [];
    for (let round = 1; round <= rounds; round++) {
      keyChanges = 0;
      current = null;
      const heapBeforeBytes = heapUsedBytes();
      const natsCpuBeforeSeconds = processCpuSeconds(nats.child.pid!);
      const cpuBefore = process.cpuUsage();
      const startMs = performance.now();
      const requestId = sink.rewatch(link, round);
      await until(() => current !== null, `the replay of round ${round}`, 300_000);
      const done = current as unknown as { requestId: number; afterKeyChanges: number; atMs: number };
      if (done.requestId !== requestId) throw new Error(`round ${round} got the signal of watch ${done.requestId}`);
      const cpu = process.cpuUsage(cpuBefore);
      const natsCpuSeconds = processCpuSeconds(nats.child.pid!) - natsCpuBeforeSeconds;
      const heapAfterBytes = heapUsedBytes();
      const heapBytesPerKey = core && heapBeforeBytes !== null && heapAfterBytes !== null ? (heapAfterBytes - heapBeforeBytes) / keys : null;
      const seconds = (done.atMs - startMs) / 1000;
      results.push({ seconds, afterKeyChanges: done.afterKeyChanges, heapBytesPerKey });
      const heap = heapBytesPerKey === null ? '' : `, heap ${Math.round(heapBytesPerKey)} bytes per key`;
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      console.log(
        `round ${round}: watch current after ${seconds.toFixed(2)} s, ${done.afterKeyChanges} key changes before it; CPU: this process ${cpuSeconds.toFixed(2)} s, nats-server ${natsCpuSeconds.toFixed(2)} s${heap}`,
      );
    }
    if (profiler !== null && profilePath !== null) {
      const { profile } = await profiler.post('Profiler.stop');
      writeFileSync(profilePath, JSON.stringify(profile));
      profiler.disconnect();
    }
    await link.close();
    const sorted = results.map((result) => result.seconds).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    // Round 1 fills the core's entries from empty; later rounds replace them (the link loss clears them).
    const heap = results[0]?.heapBytesPerKey;
    console.log(
      `watch-replay keys=${keys} rounds=${rounds} core=${core} median_s=${median.toFixed(2)} keys_per_s=${Math.round(keys / median)} all_keys_before_signal=${results.every((result) => result.afterKeyChanges === keys)}${heap === null || heap === undefined ? '' : ` heap_bytes_per_key=${Math.round(heap)}`}`,
    );
  } finally {
    for (const child of children) child.kill('SIGKILL');
    rmSync(directory, { recursive: true, force: true });
  }
}

await main();
