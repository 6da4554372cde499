/**
 * How long a node waits, after its link to NATS comes up, before it may read hand-over markers
 * again: the initial replay of its watch of `keel-sessions` (src/cluster/session-registry.ts
 * `current`, contract.ts clusterWatchCurrent), as a function of the keys the bucket holds (one
 * per client id whose session lives anywhere in the cluster).
 *
 *   node dist/bench/watch-replay-bench.js [--keys 100000] [--rounds 3]
 *
 * One `nats-server -js` (temporary store). The bucket is filled with `--keys` owner values of the
 * size a claim writes, through nats.js directly (pipelined puts). Then the real cluster link
 * (io/cluster/nats-link.ts) watches it `--rounds` times, each a fresh watch as after a
 * reconnection, and the bench reports the time from the `kv-watch` request to its
 * `watch-current` input, and how many key changes came before it (every key, once). The inputs go
 * to a counter, not to a broker: the core's own work per key change (a map update) is not in it.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import type { ClusterInput } from '../io/cluster/input-queue.js';
import { NatsLink } from '../io/cluster/nats-link.js';
import { Logger } from '../io/logger.js';
import { encodeOwner, sessionKey, sessionsBucket } from '../src/cluster/session-registry.js';
import { startNats, until } from './load/nats-peer.js';

const putsInFlightMax = 2_000;

function option(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!(Number.isInteger(value) && value > 0)) throw new Error(`--${name} needs a positive integer`);
  return value;
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

async function main(): Promise<void> {
  const keys = option('keys', 100_000);
  const rounds = option('rounds', 3);
  const children = new Set<ChildProcess>();
  const directory = mkdtempSync(join(tmpdir(), 'keel-watch-replay-'));
  try {
    const nats = await startNats(directory, children);
    const url = `nats://127.0.0.1:${nats.port}`;
    const fillSeconds = await fill(url, keys);
    console.log(`filled ${sessionsBucket} with ${keys} keys in ${fillSeconds.toFixed(1)} s`);
    let keyChanges = 0;
    let current: { requestId: number; afterKeyChanges: number; atMs: number } | null = null;
    let connected = false;
    const deliver = (input: ClusterInput): void => {
      if (input.kind === 'status') connected = input.status === 'connected';
      else if (input.kind === 'key-changed') keyChanges += 1;
      else if (input.kind === 'watch-current') current = { requestId: input.requestId, afterKeyChanges: keyChanges, atMs: performance.now() };
    };
    const link = new NatsLink({ servers: [url], nodeId: 'bench', logger: new Logger('warn', { write: () => true }), deliver });
    link.start();
    await until(() => connected, 'the link');
    const results: { seconds: number; afterKeyChanges: number }[] = [];
    for (let round = 1; round <= rounds; round++) {
      keyChanges = 0;
      current = null;
      const startMs = performance.now();
      link.request({ op: 'kv-watch', requestId: round, bucket: sessionsBucket });
      await until(() => current !== null, `the replay of round ${round}`, 300_000);
      const done = current as unknown as { requestId: number; afterKeyChanges: number; atMs: number };
      if (done.requestId !== round) throw new Error(`round ${round} got the signal of watch ${done.requestId}`);
      results.push({ seconds: (done.atMs - startMs) / 1000, afterKeyChanges: done.afterKeyChanges });
      console.log(`round ${round}: watch current after ${((done.atMs - startMs) / 1000).toFixed(2)} s, ${done.afterKeyChanges} key changes before it`);
    }
    await link.close();
    const sorted = results.map((result) => result.seconds).sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    console.log(
      `watch-replay keys=${keys} rounds=${rounds} median_s=${median.toFixed(2)} keys_per_s=${Math.round(keys / median)} all_keys_before_signal=${results.every((result) => result.afterKeyChanges === keys)}`,
    );
  } finally {
    for (const child of children) child.kill('SIGKILL');
    rmSync(directory, { recursive: true, force: true });
  }
}

await main();
