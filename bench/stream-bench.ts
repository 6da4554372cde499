/**
 * Stream benchmark (issue 15): Keel's durable streams against NATS JetStream, in one run.
 *
 *   npm run build && node dist/bench/stream-bench.js [--messages 1000000] [--publishers 4]
 *     [--window 32] [--payload 64] [--seconds 5] [--warmup 2] [--runs 1] [--seeks 10]
 *     [--only append,replay,nats] [--replay-qos 0|1] [--replay-inflight 65535] [--data-root DIR] [--json FILE]
 *
 * What it measures (the method of each part is in bench/stream/keel-side.ts and nats-side.ts):
 * 1. append throughput: QoS 1 publishers under `syncPolicy: "always"` with 1 and 3 streams
 *    matching their topics, against two baselines without streams: nothing durable (nobody
 *    subscribed, no record, no sync) and an offline persistent QoS 1 session (every publish
 *    stored and synced before its PUBACK, the ordinary MQTT way); target: 1 and 3 streams within
 *    20 % of the offline-session baseline (the syncing one; see keel-side.ts and the README). And
 *    JetStream publishes with acknowledgement at the same concurrency;
 * 2. replay throughput: N stored 64-byte entries to one QoS 1 reader from `earliest`, after a
 *    restart on the filled directory (target: 500,000 msg/s at N = 10M), and an ordered JetStream
 *    consumer over the same N; with `--replay-qos 1` the entries are published at QoS 1, so the
 *    reader gets QoS 1 deliveries and acknowledges each (JetStream: an explicit-ack consumer);
 * 3. seek: SUBSCRIBE with `stream-offset: time:T` (T between the two halves) to the first
 *    delivery (target: under 10 ms);
 * 4. memory: the broker's peak RSS during the replay minus its idle RSS after the restart
 *    (target: under 100 MiB).
 *
 * Every figure is printed with its target and, where NATS did the same, the Keel/NATS ratio.
 * Brokers are child processes on free loopback ports; the load runs in this process on the same
 * cores, so absolute figures are what this machine does under that load, ratios the comparison.
 * Progress goes to stderr; the report (and --json) to stdout.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { integerOption, listOption } from './load/cli-options.js';
import { probeBroker } from './load/peers.js';
import { median } from './load/runner.js';
import {
  type AppendCase,
  type AppendMeasure,
  appendCases,
  type FillResult,
  fillKeelStream,
  fillWindow,
  measureKeelAppend,
  measureKeelReplay,
  measureKeelSeek,
  type ReplayMeasure,
  replayInflight,
  type SeekMeasure,
  startReplayBroker,
} from './stream/keel-side.js';
import {
  fillNatsStream,
  measureNatsAppend,
  measureNatsReplay,
  measureNatsSeek,
  type NatsAppendMeasure,
  type NatsFill,
  type NatsReplayMeasure,
  natsMaxAckPending,
  natsPullBatch,
  startNatsOn,
} from './stream/nats-side.js';
import { RssSampler } from './stream/processes.js';

interface Flags {
  messages: number;
  publishers: number;
  window: number;
  payload: number;
  seconds: number;
  warmup: number;
  runs: number;
  seeks: number;
  replayQos: 0 | 1;
  replayInflight: number;
  only: string[];
  dataRoot: string;
  json?: string;
}

const parts = ['append', 'replay', 'nats'];
const mebibyte = 2 ** 20;

function parseFlags(argv: string[]): Flags {
  const program = new Command('stream-bench')
    .description("Benchmark Keel's durable streams (append, replay, seek, memory) against NATS JetStream")
    .option('--messages <n>', 'entries stored for the replay and seek parts', integerOption(4, 1_000_000_000), 1_000_000)
    .option('--publishers <n>', 'QoS 1 publishers of the append part', integerOption(1, 1_000), 4)
    .option('--window <n>', 'unacknowledged publishes each of them keeps', integerOption(1, 8_000), 32)
    .option('--payload <bytes>', 'payload size of every message', integerOption(8, 1_000_000), 64)
    .option('--seconds <s>', 'measurement window of each append run', integerOption(1, 600), 5)
    .option('--warmup <s>', 'load before each append window', integerOption(0, 600), 2)
    .option('--runs <n>', 'append runs per configuration, interleaved (median reported)', integerOption(1, 100), 1)
    .option('--seeks <n>', 'seeks timed per broker', integerOption(1, 1_000), 10)
    .option('--replay-qos <0|1>', 'QoS the replayed entries are stored at, so the reader gets deliveries at that QoS', integerOption(0, 1), 0)
    .option('--replay-inflight <n>', "Keel's inflightPerSessionMax in the replay part (its default: 1024)", integerOption(1, 65_535), replayInflight)
    .option('--only <parts>', `comma-separated subset of ${parts.join(',')} (nats: the JetStream side of every part run)`, listOption, parts)
    .option('--data-root <dir>', 'where the brokers keep their data (a temporary directory under it, removed at the end)', tmpdir())
    .option('--json <file>', 'also write the results as JSON to this file')
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  program.parse(argv);
  const flags = program.opts<Flags>();
  const unknown = flags.only.filter((part) => !parts.includes(part));
  if (unknown.length > 0) {
    process.stderr.write(`stream-bench: unknown part ${unknown.join(', ')}; known: ${parts.join(', ')}\n`);
    process.exit(2);
  }
  return flags;
}

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function natsVersion(): string | null {
  const result = spawnSync('nats-server', ['--version'], { encoding: 'utf8', timeout: 5_000 });
  return result.error === undefined ? result.stdout.trim() : null;
}

interface AppendResults {
  /** By append case key (keel-side.ts `appendCases`). */
  keel: Record<AppendCase['key'], AppendMeasure[]>;
  nats: NatsAppendMeasure[];
}

async function runAppend(flags: Flags, root: string, withNats: boolean): Promise<AppendResults> {
  const results: AppendResults = { keel: { none: [], session: [], 'streams-1': [], 'streams-3': [] }, nats: [] };
  const settings = { publishers: flags.publishers, window: flags.window, payloadBytes: flags.payload, warmupSeconds: flags.warmup, seconds: flags.seconds };
  for (let run = 1; run <= flags.runs; run++) {
    for (const appendCase of appendCases) {
      const directory = mkdtempSync(join(root, `append-${appendCase.key}-`));
      const measure = await measureKeelAppend(directory, appendCase, settings);
      rmSync(directory, { recursive: true, force: true });
      results.keel[appendCase.key].push(measure);
      log(
        `[append] run ${run}/${flags.runs}: keel, ${appendCase.label}: ${Math.round(measure.acknowledgedPerSecond)} acks/s, ${measure.cpuMicrosPerMessage.toFixed(1)} µs CPU/msg, ${Math.round(measure.logBytesPerMessage)} log + ${Math.round(measure.segmentBytesPerMessage)} segment bytes/msg`,
      );
    }
    if (!withNats) continue;
    const directory = mkdtempSync(join(root, 'append-nats-'));
    const measure = await measureNatsAppend(directory, settings);
    rmSync(directory, { recursive: true, force: true });
    results.nats.push(measure);
    log(`[append] run ${run}/${flags.runs}: nats-server: ${Math.round(measure.acknowledgedPerSecond)} acks/s, ${measure.cpuMicrosPerMessage.toFixed(1)} µs CPU/msg`);
  }
  return results;
}

interface KeelReplayResults {
  fill: FillResult;
  /** The filling broker's peak RSS while it was filled (sampled every 50 ms). */
  fillPeakRssBytes: number;
  /** The filling broker's CPU time (user + system) per entry filled, µs: each entry is a `stream-appended` record and a segment frame. */
  fillCpuMicrosPerMessage: number;
  replay: ReplayMeasure;
  seek: SeekMeasure;
}

async function runKeelReplay(flags: Flags, root: string): Promise<KeelReplayResults> {
  const directory = mkdtempSync(join(root, 'replay-keel-'));
  try {
    const filling = await startReplayBroker(directory, flags.replayInflight);
    log(`[replay] keel: filling ${flags.messages} entries at QoS ${flags.replayQos}`);
    const fillSampler = new RssSampler(filling);
    const fillCpuBefore = filling.cpuMicros();
    const fill = await fillKeelStream(filling, flags.messages, flags.payload, flags.replayQos);
    const fillCpuMicrosPerMessage = (filling.cpuMicros() - fillCpuBefore) / fill.messages;
    const fillPeakRssBytes = fillSampler.stop();
    log(
      `[replay] keel: filled in ${fill.seconds.toFixed(1)} s (${Math.round(fill.messages / fill.seconds)} msg/s, ${fillCpuMicrosPerMessage.toFixed(1)} µs broker CPU/msg), peak RSS ${(fillPeakRssBytes / mebibyte).toFixed(1)} MiB; restarting on the same directory`,
    );
    await filling.stop();
    const broker = await startReplayBroker(directory, flags.replayInflight);
    try {
      await sleep(2_000);
      const idle = broker.rssBytes();
      const replay = await measureKeelReplay(broker, fill, flags.payload, idle);
      log(
        `[replay] keel: ${Math.round(replay.messagesPerSecond)} msg/s, RSS idle ${(idle / mebibyte).toFixed(1)} MiB, peak ${(replay.peakRssBytes / mebibyte).toFixed(1)} MiB${replay.problems.length > 0 ? `; PROBLEMS: ${replay.problems.join('; ')}` : ''}`,
      );
      const seek = await measureKeelSeek(broker, fill, flags.payload, flags.seeks);
      log(`[seek] keel: median ${median(seek.samplesMs)?.toFixed(2)} ms over ${seek.samplesMs.length}`);
      return { fill, fillPeakRssBytes, fillCpuMicrosPerMessage, replay, seek };
    } finally {
      await broker.stop();
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

interface NatsReplayResults {
  fill: NatsFill;
  fillPeakRssBytes: number;
  replay: NatsReplayMeasure;
  seek: { samplesMs: number[]; wrongIndexes: number[] };
}

async function runNatsReplay(flags: Flags, root: string): Promise<NatsReplayResults> {
  const directory = mkdtempSync(join(root, 'replay-nats-'));
  try {
    const filling = await startNatsOn(directory);
    log(`[replay] nats: filling ${flags.messages} messages`);
    const fillSampler = new RssSampler(filling);
    const fill = await fillNatsStream(filling, flags.messages, flags.payload);
    const fillPeakRssBytes = fillSampler.stop();
    log(`[replay] nats: filled in ${fill.seconds.toFixed(1)} s, peak RSS ${(fillPeakRssBytes / mebibyte).toFixed(1)} MiB; restarting on the same store`);
    await filling.stop();
    const server = await startNatsOn(directory);
    try {
      await sleep(2_000);
      const idle = server.rssBytes();
      const replay = await measureNatsReplay(server, flags.messages, flags.payload, idle, flags.replayQos === 1);
      log(`[replay] nats: ${Math.round(replay.messagesPerSecond)} msg/s, RSS idle ${(idle / mebibyte).toFixed(1)} MiB, peak ${(replay.peakRssBytes / mebibyte).toFixed(1)} MiB`);
      const seek = await measureNatsSeek(server, fill, flags.seeks);
      log(`[seek] nats: median ${median(seek.samplesMs)?.toFixed(2)} ms over ${seek.samplesMs.length}`);
      return { fill, fillPeakRssBytes, replay, seek };
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

function fmt(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '-';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(keel: number | null | undefined, nats: number | null | undefined): string {
  if (keel === null || keel === undefined || nats === null || nats === undefined || nats === 0) return '-';
  return `${(keel / nats).toFixed(2)}x`;
}

function verdict(met: boolean): string {
  return met ? 'met' : 'MISSED';
}

function appendLines(append: AppendResults): string[] {
  const rate = (measures: { acknowledgedPerSecond: number }[]): number | null => median(measures.map((measure) => measure.acknowledgedPerSecond));
  const cpu = (measures: { cpuMicrosPerMessage: number }[]): number | null => median(measures.map((measure) => measure.cpuMicrosPerMessage));
  const bytes = (measures: AppendMeasure[], pick: (measure: AppendMeasure) => number): number | null => median(measures.map(pick));
  const relative = (value: number | null, base: number | null): string => (value === null || base === null || base === 0 ? '-' : `${(value / base).toFixed(2)}x`);
  const nothing = rate(append.keel.none);
  const session = rate(append.keel.session);
  const nats = append.nats.length > 0 ? rate(append.nats) : null;
  const lines = ['append (QoS 1, acknowledged msg/s, median)     Keel  µs CPU/msg  log B/msg  seg B/msg  vs nothing durable  vs offline session  target (>= 0.80 of session)  Keel/NATS'];
  for (const appendCase of appendCases) {
    const measures = append.keel[appendCase.key];
    const keel = rate(measures);
    const target = appendCase.streams === 0 || keel === null || session === null || session === 0 ? '' : verdict(keel / session >= 0.8);
    lines.push(
      `  keel, ${appendCase.label.padEnd(34)}${fmt(keel).padStart(10)}  ${fmt(cpu(measures), 1).padStart(10)}  ${fmt(bytes(measures, (measure) => measure.logBytesPerMessage)).padStart(9)}  ${fmt(bytes(measures, (measure) => measure.segmentBytesPerMessage)).padStart(9)}  ${relative(keel, nothing).padStart(18)}  ${relative(keel, session).padStart(18)}  ${target.padStart(27)}  ${ratio(keel, nats).padStart(9)}`,
    );
  }
  if (nats !== null)
    lines.push(`  nats-server JetStream (file storage, PubAck)${fmt(nats).padStart(8)}  ${fmt(cpu(append.nats), 1).padStart(10)}   (Keel/NATS above: that Keel case against JetStream)`);
  lines.push('  target judged against the offline-session case: it makes every message durable before its PUBACK as the stream cases do; the nothing-durable case never syncs');
  return lines;
}

function replayLines(flags: Flags, keel: KeelReplayResults | null, nats: NatsReplayResults | null): string[] {
  const lines: string[] = [];
  const keelSeek = keel === null ? null : median(keel.seek.samplesMs);
  const natsSeek = nats === null ? null : median(nats.seek.samplesMs);
  const growth = keel === null ? null : (keel.replay.peakRssBytes - keel.replay.idleRssBytes) / mebibyte;
  const natsGrowth = nats === null ? null : (nats.replay.peakRssBytes - nats.replay.idleRssBytes) / mebibyte;
  lines.push(`replay of ${fmt(flags.messages)} entries of ${flags.payload} bytes at QoS ${flags.replayQos}, one reader from the first    Keel          NATS    Keel/NATS   target`);
  const target = flags.messages >= 10_000_000 ? verdict((keel?.replay.messagesPerSecond ?? 0) >= 500_000) : `${verdict((keel?.replay.messagesPerSecond ?? 0) >= 500_000)} (target is at 10M)`;
  lines.push(
    `  replay msg/s${' '.repeat(63)}${fmt(keel?.replay.messagesPerSecond).padStart(10)}  ${fmt(nats?.replay.messagesPerSecond).padStart(12)}  ${ratio(keel?.replay.messagesPerSecond, nats?.replay.messagesPerSecond).padStart(10)}   >= 500,000: ${keel === null ? '-' : target}`,
  );
  lines.push(
    `  broker CPU per replayed message, µs${' '.repeat(40)}${fmt(keel?.replay.brokerCpuMicrosPerMessage, 2).padStart(10)}  ${fmt(nats?.replay.brokerCpuMicrosPerMessage, 2).padStart(12)}  ${ratio(keel?.replay.brokerCpuMicrosPerMessage, nats?.replay.brokerCpuMicrosPerMessage).padStart(10)}   (lower is better)`,
  );
  lines.push(
    `  reader CPU per message (this process), µs${' '.repeat(34)}${fmt(keel?.replay.readerCpuMicrosPerMessage, 2).padStart(10)}  ${fmt(nats?.replay.readerCpuMicrosPerMessage, 2).padStart(12)}`,
  );
  lines.push(`  subscribe to first delivery, ms${' '.repeat(44)}${fmt(keel?.replay.firstMessageMs, 2).padStart(10)}  ${fmt(nats?.replay.firstMessageMs, 2).padStart(12)}`);
  lines.push(
    `  seek by time to first delivery, ms (median of ${flags.seeks}; max)${' '.repeat(17)}${`${fmt(keelSeek, 2)}; ${fmt(keel === null ? null : Math.max(...keel.seek.samplesMs), 2)}`.padStart(10)}  ${`${fmt(natsSeek, 2)}; ${fmt(nats === null ? null : Math.max(...nats.seek.samplesMs), 2)}`.padStart(12)}  ${ratio(keelSeek, natsSeek).padStart(10)}   < 10 ms: ${keelSeek === null ? '-' : verdict(keelSeek < 10)}`,
  );
  lines.push(
    `  RSS idle after restart / peak during replay, MiB${' '.repeat(27)}${`${fmt((keel?.replay.idleRssBytes ?? Number.NaN) / mebibyte, 1)} / ${fmt((keel?.replay.peakRssBytes ?? Number.NaN) / mebibyte, 1)}`.padStart(10)}  ${`${fmt((nats?.replay.idleRssBytes ?? Number.NaN) / mebibyte, 1)} / ${fmt((nats?.replay.peakRssBytes ?? Number.NaN) / mebibyte, 1)}`.padStart(12)}`,
  );
  lines.push(
    `  RSS peak while filling, MiB${' '.repeat(48)}${fmt((keel?.fillPeakRssBytes ?? Number.NaN) / mebibyte, 1).padStart(10)}  ${fmt((nats?.fillPeakRssBytes ?? Number.NaN) / mebibyte, 1).padStart(12)}  ${ratio(keel?.fillPeakRssBytes, nats?.fillPeakRssBytes).padStart(10)}`,
  );
  lines.push(
    `  RSS growth during replay, MiB${' '.repeat(46)}${fmt(growth, 1).padStart(10)}  ${fmt(natsGrowth, 1).padStart(12)}  ${ratio(growth, natsGrowth).padStart(10)}   < 100 MiB: ${growth === null ? '-' : verdict(growth < 100)}`,
  );
  if (keel !== null) {
    const filler = flags.replayQos === 1 ? `one raw QoS 1 publisher, ${fmt(fillWindow)} unacknowledged` : 'one raw QoS 0 publisher, 2 QoS 1 markers';
    lines.push(
      `  keel: filled at ${fmt(keel.fill.messages / keel.fill.seconds)} msg/s, ${fmt(keel.fillCpuMicrosPerMessage, 1)} µs broker CPU per entry (${filler}); recovery of the filled directory ${fmt(keel.replay.recoveryMs)} ms`,
    );
    lines.push(
      `  keel reader: ${keel.replay.reader}; ${fmt(keel.replay.qos1Deliveries)} QoS 1 deliveries, ${fmt(keel.replay.pubacksSent)} PUBACKs sent; broker inflightPerSessionMax ${fmt(flags.replayInflight)}`,
    );
    const problems = [...keel.replay.problems, ...(keel.seek.wrongOffsets.length > 0 ? [`seek started at offsets ${keel.seek.wrongOffsets.join(', ')}, not ${keel.fill.secondHalfOffset}`] : [])];
    if (problems.length > 0) lines.push(`  keel PROBLEMS: ${problems.join('; ')}`);
  }
  if (nats !== null) {
    lines.push(
      `  nats: filled at ${fmt(flags.messages / nats.fill.seconds)} msg/s (core publishes, no acknowledgement); reader: ${flags.replayQos === 1 ? `pull consumer with AckExplicit, max_ack_pending ${fmt(natsMaxAckPending)}, every message acknowledged` : 'ordered consumer, no acknowledgements'} (@nats-io/jetstream 3.3.1), pulls of ${fmt(natsPullBatch)}`,
    );
    const problems = [...nats.replay.problems, ...(nats.seek.wrongIndexes.length > 0 ? [`seek started at ${nats.seek.wrongIndexes.join(', ')}, not ${nats.fill.secondHalfIndex}`] : [])];
    if (problems.length > 0) lines.push(`  nats PROBLEMS: ${problems.join('; ')}`);
  }
  return lines;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv);
  const keel = probeBroker('keel');
  if (!keel.available) {
    process.stderr.write(`stream-bench: keel cannot start: ${keel.reason}\n`);
    process.exit(2);
  }
  const nats = flags.only.includes('nats') ? natsVersion() : null;
  if (flags.only.includes('nats') && nats === null) log('stream-bench: nats-server not found (apt-get install nats-server): the JetStream side is skipped');
  const root = mkdtempSync(join(flags.dataRoot, 'keel-stream-bench-'));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      rmSync(root, { recursive: true, force: true });
      process.exit(130);
    });
  }
  try {
    const append = flags.only.includes('append') ? await runAppend(flags, root, nats !== null) : null;
    const keelReplay = flags.only.includes('replay') ? await runKeelReplay(flags, root) : null;
    const natsReplay = flags.only.includes('replay') && nats !== null ? await runNatsReplay(flags, root) : null;
    const header = [
      `stream bench: ${['node', ...process.argv.slice(1)].join(' ')}`,
      `machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}, keel ${keel.version}, ${nats ?? 'no nats-server'}; data under ${flags.dataRoot}`,
      `append: ${flags.publishers} publishers x window ${flags.window}, ${flags.payload}-byte payloads, ${flags.warmup} s warm-up + ${flags.seconds} s, ${flags.runs} run(s); keel syncPolicy "always", no subscriber but the offline session of its case`,
    ];
    const lines = [...header, '', ...(append === null ? [] : appendLines(append)), '', ...(keelReplay === null && natsReplay === null ? [] : replayLines(flags, keelReplay, natsReplay))];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (flags.json !== undefined) writeFileSync(flags.json, `${JSON.stringify({ command: header[0], flags, append, keelReplay, natsReplay }, null, 2)}\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
