/**
 * Keel's half of the stream benchmark: append throughput with 0, 1 and 3 streams, filling a
 * stream with N messages, replaying it to one reader, and seeking into it by time.
 *
 * - Append: `publishers` raw-socket QoS 1 publishers (bench/load WindowPublisher), each with
 *   `window` PUBLISHes unacknowledged, on their own topics under `bench/append/`, to a broker with
 *   `syncPolicy: "always"`, in four cases (`appendCases`):
 *   - `none`: no stream and nobody subscribed. A QoS 1 publish then has nothing to make durable
 *     (no record, no sync, its PUBACK goes at once): the broker's routing and acknowledging alone.
 *   - `session`: no stream, but one persistent session (MQTT 3.1.1, clean session 0, so it never
 *     expires) subscribed at QoS 1 to `bench/append/#` and then disconnected, with queue bounds
 *     large enough for the whole run. Every publish is then stored for it the ordinary MQTT way
 *     (routing.ts `storeMessage`: a `message-stored` record, and outbound-queue.ts `enqueue`: a
 *     `delivery-queued` record), and its PUBACK waits for the sync of those records
 *     (handle-publish.ts `lsnSince`): the same load made durable without a stream, the syncing
 *     baseline the stream cases are judged against.
 *   - `streams-1`, `streams-3`: no subscriber, 1 or 3 streams whose filters all match the topics.
 *   After each run the data directory's write-ahead log and stream segment bytes are divided by
 *   the publishes acknowledged (warm-up included), which shows what each case writes: about
 *   nothing for `none`, two records per message for `session`, one record and one segment frame
 *   per stream for the streams.
 * - Fill: one raw-socket publisher writes N messages to `bench/replay/x` at QoS 0 as fast as the
 *   socket takes them, except two at QoS 1: one at offset N/2 (its PUBACK says that everything
 *   before it is appended and durable; the seek time T is taken 10 ms after it, and the second
 *   half starts 10 ms after T) and the last one (everything is appended and durable).
 *   With `qos: 1` (`--replay-qos 1`) every entry is published at QoS 1 instead, pipelined
 *   (bench/load WindowPublisher, `fillWindow` PUBLISHes unacknowledged): N/2 + 1 of them, all
 *   acknowledged, then T, then the rest. Stored entries keep their publish QoS, and a stream
 *   delivers min(entry QoS, subscription QoS), so only this fill gives the QoS 1 reader QoS 1
 *   deliveries (packet identifiers, PUBACKs, the session's inflight window).
 * - Replay: the broker is stopped and started again on the same directory (so the replay reads
 *   the segment files, not what the filling broker still held in memory), idle RSS is read, and
 *   one StreamReaderClient subscribes to `$stream/replay` from `earliest` and receives all N.
 * - Seek: fresh readers subscribe with `stream-offset: time:T`; each is timed from its SUBSCRIBE
 *   to its first delivery, whose offset must be N/2 + 1.
 */
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BenchClient } from '../load/client.js';
import { encodePublish } from '../load/packets.js';
import { makePayload, WindowPublisher } from '../load/publishers.js';
import { type BrokerProcess, RssSampler, startKeel } from './processes.js';
import { StreamReaderClient } from './stream-reader-client.js';

export interface AppendSettings {
  publishers: number;
  window: number;
  payloadBytes: number;
  warmupSeconds: number;
  seconds: number;
}

export interface AppendMeasure {
  acknowledgedPerSecond: number;
  /** Broker CPU time per acknowledged publish, µs. */
  cpuMicrosPerMessage: number;
  /** Write-ahead log and stream segment bytes in the data directory per publish acknowledged (warm-up included). */
  logBytesPerMessage: number;
  segmentBytesPerMessage: number;
}

/** One configuration of the append part (see the module comment). */
export interface AppendCase {
  readonly key: 'none' | 'session' | 'streams-1' | 'streams-3';
  readonly streams: number;
  /** An offline persistent session subscribed at QoS 1 to every publisher's topic. */
  readonly offlineSession: boolean;
  readonly label: string;
}

export const appendCases: readonly AppendCase[] = [
  { key: 'none', streams: 0, offlineSession: false, label: '0 streams, nothing durable' },
  { key: 'session', streams: 0, offlineSession: true, label: '0 streams, offline QoS 1 session' },
  { key: 'streams-1', streams: 1, offlineSession: false, label: '1 stream' },
  { key: 'streams-3', streams: 3, offlineSession: false, label: '3 streams' },
];

const setupTimeoutMs = 10_000;
const replayStream = 'replay';
const replayTopic = 'bench/replay/x';
const appendFilters = ['bench/#', 'bench/append/#', 'bench/+/+'];
/** The offline session's queue bounds: far above what a run publishes, so that nothing is dropped. */
const offlineQueueMessagesMax = 10_000_000;
const offlineQueueBytesMax = 2 ** 36;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Stream definitions for the append part: `count` streams, every one matching `bench/append/<n>`. */
export function appendStreams(count: number): { name: string; filter: string }[] {
  if (count > appendFilters.length) throw new Error(`at most ${appendFilters.length} streams in the append part`);
  return appendFilters.slice(0, count).map((filter, index) => ({ name: `append-${index}`, filter }));
}

/** The broker's settings for one append case. */
export function appendConfig(appendCase: AppendCase): Record<string, unknown> {
  const config: Record<string, unknown> = { syncPolicy: 'always', streams: appendStreams(appendCase.streams) };
  if (appendCase.offlineSession) Object.assign(config, { queuedMessagesPerSessionMax: offlineQueueMessagesMax, queuedBytesPerSessionMax: offlineQueueBytesMax });
  return config;
}

/** Makes the `session` case's subscriber: a 3.1.1 session kept after its connection (clean session 0), subscribed at QoS 1, then gone. */
async function leaveOfflineSession(port: number): Promise<void> {
  const client = await BenchClient.open({ port, clientId: 'append-offline', level: 4, clean: false }, setupTimeoutMs);
  try {
    await client.subscribe('bench/append/#', 1, setupTimeoutMs);
    client.disconnect();
    const deadlineMs = Date.now() + setupTimeoutMs;
    while (!client.closed) {
      if (Date.now() > deadlineMs) throw new Error("the offline session's connection did not close");
      await sleep(5);
    }
  } finally {
    client.destroy();
  }
}

/** Bytes of the data directory's write-ahead log segments and of its stream segments. */
function writtenBytes(dataDirectory: string): { log: number; segments: number } {
  let log = 0;
  let segments = 0;
  for (const name of readdirSync(dataDirectory)) {
    if (name.startsWith('wal-') && name.endsWith('.log')) log += statSync(join(dataDirectory, name)).size;
    else if (name.startsWith('stream-') && name.endsWith('.seg')) segments += statSync(join(dataDirectory, name)).size;
  }
  return { log, segments };
}

/** One append run: a fresh broker in `directory` for `appendCase`, measured for `seconds`. */
export async function measureKeelAppend(directory: string, appendCase: AppendCase, settings: AppendSettings): Promise<AppendMeasure> {
  mkdirSync(directory, { recursive: true });
  const dataDirectory = join(directory, 'data');
  const broker = await startKeel(dataDirectory, join(directory, 'keel.json'), appendConfig(appendCase));
  const clients: BenchClient[] = [];
  try {
    if (appendCase.offlineSession) await leaveOfflineSession(broker.port);
    const startMs = Date.now();
    const deadlineMs = startMs + (settings.warmupSeconds + settings.seconds) * 1_000 + 500;
    const publishers: WindowPublisher[] = [];
    for (let index = 0; index < settings.publishers; index++) {
      const client = await BenchClient.open({ port: broker.port, clientId: `append-${index}`, level: 4 }, setupTimeoutMs);
      clients.push(client);
      const topic = `bench/append/${index}`;
      publishers.push(new WindowPublisher(client, { level: 4, topic, payload: makePayload(settings.payloadBytes), window: settings.window }, { messagesMax: Number.MAX_SAFE_INTEGER, deadlineMs }));
    }
    for (const publisher of publishers) publisher.pump();
    const acknowledged = (): number => publishers.reduce((sum, publisher) => sum + publisher.acknowledged, 0);
    await sleep(settings.warmupSeconds * 1_000);
    const before = { count: acknowledged(), cpu: broker.cpuMicros(), ms: performance.now() };
    await sleep(settings.seconds * 1_000);
    const count = acknowledged() - before.count;
    const seconds = (performance.now() - before.ms) / 1_000;
    const cpu = broker.cpuMicros() - before.cpu;
    for (const client of clients) if (client.error !== null) throw new Error(`append publisher failed: ${client.error.message}`);
    const total = Math.max(1, acknowledged());
    const written = writtenBytes(dataDirectory);
    return { acknowledgedPerSecond: count / seconds, cpuMicrosPerMessage: count === 0 ? 0 : cpu / count, logBytesPerMessage: written.log / total, segmentBytesPerMessage: written.segments / total };
  } finally {
    for (const client of clients) client.destroy();
    await broker.stop();
  }
}

export interface FillResult {
  messages: number;
  seconds: number;
  /** Unix time between the two halves: entries before it are offsets 0..N/2, after it N/2+1.. */
  seekTimeMs: number;
  /** The first offset appended after `seekTimeMs`. */
  secondHalfOffset: number;
  /** Entries stored at QoS 1 (all of them, or the QoS 0 fill's two markers): the QoS 1 deliveries a replay owes. */
  qos1Entries: number;
}

/** Writes `count` copies of a QoS 0 PUBLISH to the client's socket, honouring backpressure. */
async function floodQos0(client: BenchClient, packet: Buffer, count: number): Promise<void> {
  const perBatch = 256;
  const batch = Buffer.concat(Array.from({ length: perBatch }, () => packet));
  let left = count;
  while (left > 0) {
    const take = Math.min(left, perBatch);
    left -= take;
    const bytes = take === perBatch ? batch : batch.subarray(0, take * packet.length);
    if (!client.socket.write(bytes)) await new Promise((resolve) => client.socket.once('drain', resolve));
    if (client.closed) throw new Error(`fill publisher closed: ${client.error?.message ?? 'by the broker'}`);
  }
}

/** Sends one QoS 1 PUBLISH and waits for its PUBACK (all earlier ones on the connection are then in). */
async function publishAcknowledged(client: BenchClient, payload: Buffer, packetId: number, timeoutMs: number): Promise<void> {
  const before = client.pubacksReceived;
  client.socket.write(encodePublish({ level: 4, topic: replayTopic, payload, qos: 1, packetId }));
  const deadlineMs = Date.now() + timeoutMs;
  while (client.pubacksReceived === before) {
    if (Date.now() > deadlineMs || client.closed) throw new Error(`no PUBACK for fill marker ${packetId} within ${timeoutMs} ms`);
    await sleep(2);
  }
}

/** QoS 1 PUBLISHes the QoS 1 fill keeps unacknowledged (under the broker's default Receive Maximum, 1,024). */
export const fillWindow = 1_000;

/** Publishes `count` QoS 1 messages with `fillWindow` in flight and resolves once all are acknowledged. */
async function publishPipelined(client: BenchClient, payload: Buffer, count: number, timeoutMs: number): Promise<void> {
  const deadlineMs = Date.now() + timeoutMs;
  const publisher = new WindowPublisher(client, { level: 4, topic: replayTopic, payload, window: fillWindow }, { messagesMax: count, deadlineMs });
  publisher.pump();
  while (publisher.acknowledged < count) {
    if (client.closed) throw new Error(`fill publisher closed: ${client.error?.message ?? 'by the broker'}`);
    if (Date.now() > deadlineMs) throw new Error(`QoS 1 fill: ${publisher.acknowledged} of ${count} acknowledged after ${timeoutMs} ms`);
    await sleep(5);
  }
  publisher.stop();
}

/** The QoS 1 fill: N/2 + 1 entries acknowledged, the seek time, then the rest. */
async function fillQos1(client: BenchClient, messages: number, payload: Buffer): Promise<FillResult> {
  const half = Math.floor(messages / 2);
  const startMs = performance.now();
  await publishPipelined(client, payload, half + 1, 3_600_000);
  await sleep(10);
  const seekTimeMs = Date.now();
  await sleep(10);
  await publishPipelined(client, payload, messages - half - 1, 3_600_000);
  return { messages, seconds: (performance.now() - startMs) / 1_000, seekTimeMs, secondHalfOffset: half + 1, qos1Entries: messages };
}

/** Fills the replay stream of a running broker with `messages` entries at QoS `qos` (see the module comment). */
export async function fillKeelStream(broker: BrokerProcess, messages: number, payloadBytes: number, qos: 0 | 1 = 0): Promise<FillResult> {
  if (messages < 4) throw new Error('the replay needs at least 4 messages');
  const payload = makePayload(payloadBytes);
  if (qos === 1) {
    const client = await BenchClient.open({ port: broker.port, clientId: 'fill', level: 4 }, setupTimeoutMs);
    try {
      return await fillQos1(client, messages, payload);
    } finally {
      client.destroy();
    }
  }
  const packet = encodePublish({ level: 4, topic: replayTopic, payload, qos: 0 });
  const client = await BenchClient.open({ port: broker.port, clientId: 'fill', level: 4 }, setupTimeoutMs);
  try {
    const half = Math.floor(messages / 2);
    const startMs = performance.now();
    await floodQos0(client, packet, half);
    await publishAcknowledged(client, payload, 1, 600_000);
    await sleep(10);
    const seekTimeMs = Date.now();
    await sleep(10);
    await floodQos0(client, packet, messages - half - 2);
    await publishAcknowledged(client, payload, 2, 600_000);
    return { messages, seconds: (performance.now() - startMs) / 1_000, seekTimeMs, secondHalfOffset: half + 1, qos1Entries: 2 };
  } finally {
    client.destroy();
  }
}

export interface ReplayMeasure {
  reader: string;
  messages: number;
  seconds: number;
  messagesPerSecond: number;
  /** From SUBSCRIBE to the first delivery, ms. */
  firstMessageMs: number;
  idleRssBytes: number;
  peakRssBytes: number;
  /** Start of the broker on the filled directory until it listened, ms. */
  recoveryMs: number;
  /** CPU time (user + system) per replayed message: the broker's, and this process's (the reader's), µs. */
  brokerCpuMicrosPerMessage: number;
  readerCpuMicrosPerMessage: number;
  /** Deliveries that carried a packet identifier (QoS 1), and the PUBACKs the reader sent back. */
  qos1Deliveries: number;
  pubacksSent: number;
  problems: string[];
}

/**
 * The replay broker's `inflightPerSessionMax` unless `--replay-inflight` says otherwise (the
 * broker's default is 1,024): QoS 1 deliveries a session may have unacknowledged at once.
 */
export const replayInflight = 65_535;

/** The broker's settings for the replay: one stream, and by default a window as large as MQTT allows. */
export function replayConfig(inflight = replayInflight): Record<string, unknown> {
  return { syncPolicy: 'always', inflightPerSessionMax: inflight, streams: [{ name: replayStream, filter: 'bench/replay/#' }] };
}

export async function startReplayBroker(directory: string, inflight = replayInflight): Promise<BrokerProcess> {
  return startKeel(join(directory, 'data'), join(directory, 'keel.json'), replayConfig(inflight));
}

/** One reader replays the whole stream from `earliest`; RSS is sampled throughout. */
export async function measureKeelReplay(broker: BrokerProcess, fill: FillResult, payloadBytes: number, idleRssBytes: number): Promise<ReplayMeasure> {
  const messages = fill.messages;
  const reader = await StreamReaderClient.open(broker.port, 'replay-reader', payloadBytes, setupTimeoutMs);
  const sampler = new RssSampler(broker);
  try {
    const cpuBefore = { broker: broker.cpuMicros(), reader: process.cpuUsage() };
    await reader.subscribe(`$stream/${replayStream}`, 'earliest', setupTimeoutMs);
    await reader.whenReceived(messages, 900_000);
    const brokerCpuMicros = broker.cpuMicros() - cpuBefore.broker;
    const readerCpu = process.cpuUsage(cpuBefore.reader);
    const peakRssBytes = sampler.stop();
    const counts = reader.counts;
    const seconds = (counts.lastAtMs - counts.subscribedAtMs) / 1_000;
    const problems: string[] = [];
    if (counts.firstOffset !== 0) problems.push(`first offset ${counts.firstOffset}, not 0`);
    if (counts.outOfOrder > 0) problems.push(`${counts.outOfOrder} deliveries out of offset order`);
    if (counts.wrongSize > 0) problems.push(`${counts.wrongSize} payloads of the wrong size`);
    if (counts.received !== messages) problems.push(`${counts.received} deliveries for ${messages} entries`);
    // Each entry stored at QoS 1 must come as a QoS 1 delivery (with a packet identifier), and only those.
    if (counts.withPacketId !== fill.qos1Entries) problems.push(`${counts.withPacketId} QoS 1 deliveries, expected ${fill.qos1Entries}`);
    if (counts.pubacksSent !== counts.withPacketId) problems.push(`${counts.pubacksSent} PUBACKs sent for ${counts.withPacketId} QoS 1 deliveries`);
    const qos = fill.qos1Entries === messages ? 1 : 0;
    return {
      reader: `raw-socket MQTT 5 reader (bench/stream/stream-reader-client.ts), subscribed at QoS 1, Receive Maximum 65535; ${qos === 1 ? 'QoS 1 deliveries, every PUBACK sent (one write per received chunk)' : 'QoS 0 deliveries but for the 2 QoS 1 markers (entries stored at QoS 0)'}`,
      messages,
      seconds,
      messagesPerSecond: messages / seconds,
      firstMessageMs: counts.firstAtMs - counts.subscribedAtMs,
      idleRssBytes,
      peakRssBytes,
      recoveryMs: broker.readyAtMs - broker.spawnedAtMs,
      brokerCpuMicrosPerMessage: brokerCpuMicros / messages,
      readerCpuMicrosPerMessage: (readerCpu.user + readerCpu.system) / messages,
      qos1Deliveries: counts.withPacketId,
      pubacksSent: counts.pubacksSent,
      problems,
    };
  } finally {
    sampler.stop();
    reader.destroy();
  }
}

export interface SeekMeasure {
  samplesMs: number[];
  /** First offsets delivered that were not the expected one. */
  wrongOffsets: number[];
}

/** `count` fresh readers, one after the other, each seeking to `time:<seekTimeMs>`. */
export async function measureKeelSeek(broker: BrokerProcess, fill: FillResult, payloadBytes: number, count: number): Promise<SeekMeasure> {
  const samplesMs: number[] = [];
  const wrongOffsets: number[] = [];
  for (let index = 0; index < count; index++) {
    const reader = await StreamReaderClient.open(broker.port, `seek-${index}`, payloadBytes, setupTimeoutMs);
    try {
      await reader.subscribe(`$stream/${replayStream}`, `time:${fill.seekTimeMs}`, setupTimeoutMs);
      await reader.whenReceived(1, setupTimeoutMs);
      samplesMs.push(reader.counts.firstAtMs - reader.counts.subscribedAtMs);
      if (reader.counts.firstOffset !== fill.secondHalfOffset) wrongOffsets.push(reader.counts.firstOffset);
    } finally {
      reader.destroy();
    }
    await sleep(50);
  }
  return { samplesMs, wrongOffsets };
}
