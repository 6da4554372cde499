/**
 * NATS JetStream's half of the stream benchmark, measured in the same run as Keel's and shaped
 * the same way, through `@nats-io/jetstream` (the client Keel's cluster link uses):
 *
 * - Append: `publishers` connections, each keeping `window` JetStream publishes awaiting their
 *   acknowledgement (PubAck), 64-byte payloads, to a file-storage stream whose subject filter
 *   matches them. JetStream acknowledges once the message is in its store; nats-server 2.9 syncs
 *   its files on a timer (every two minutes), not before each acknowledgement, so this is NOT the
 *   footing of Keel's `syncPolicy: "always"`, where no PUBACK precedes its fsync: the README
 *   says so beside the figures.
 * - Fill: N messages published without acknowledgement (core NATS publishes into the stream's
 *   subject, flushed every 10,000), the stream's message count polled until it holds all N. As
 *   on Keel's side, the seek time T is taken between the two halves.
 * - Replay: the server is restarted on the same store, then an ordered consumer (a pull consumer
 *   the client re-creates on a gap; no acknowledgements) reads all N from the first. With
 *   `explicitAcks` (the bench's `--replay-qos 1`) it is instead an ephemeral pull consumer with
 *   AckExplicit and `max_ack_pending` 65,535 (Keel's replay window; the server's default is
 *   1,000): the server keeps every delivered message pending until its ack, redelivers after
 *   `ack_wait` (30 s by default) and stops delivering at `max_ack_pending` unacknowledged, the
 *   counterpart of a QoS 1 session's inflight window. The client acknowledges each message (one
 *   small publish to its reply subject, buffered by the client's writer).
 * - Seek: an ordered consumer starting at time T, timed from its creation to the first message.
 */
import { AckPolicy, type Consumer, DeliverPolicy, jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { makePayload } from '../load/publishers.js';
import { type BrokerProcess, RssSampler, startNats } from './processes.js';

export interface NatsAppendMeasure {
  acknowledgedPerSecond: number;
  cpuMicrosPerMessage: number;
}

const replayStreamName = 'REPLAY';
/** Messages an ordered consumer asks for per pull (the client refills at 75 %). */
export const natsPullBatch = 10_000;
/** Unacknowledged messages an explicit-ack consumer may have (the same window as Keel's replay session). */
export const natsMaxAckPending = 65_535;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function server(broker: BrokerProcess): string {
  return `nats://127.0.0.1:${broker.port}`;
}

export async function measureNatsAppend(
  storeDirectory: string,
  settings: { publishers: number; window: number; payloadBytes: number; warmupSeconds: number; seconds: number },
): Promise<NatsAppendMeasure> {
  const broker = await startNats(storeDirectory);
  const connections: NatsConnection[] = [];
  let stopped = false;
  try {
    const admin = await connect({ servers: server(broker) });
    connections.push(admin);
    await (await jetstreamManager(admin)).streams.add({ name: 'APPEND', subjects: ['bench.append.>'], storage: StorageType.File });
    const payload = makePayload(settings.payloadBytes);
    let acknowledged = 0;
    const loops: Promise<void>[] = [];
    for (let index = 0; index < settings.publishers; index++) {
      const connection = await connect({ servers: server(broker) });
      connections.push(connection);
      const js = jetstream(connection);
      const subject = `bench.append.${index}`;
      // `window` loops, each with one publish awaiting its acknowledgement: `window` in flight.
      for (let slot = 0; slot < settings.window; slot++) {
        loops.push(
          (async () => {
            while (!stopped) {
              await js.publish(subject, payload);
              acknowledged += 1;
            }
          })(),
        );
      }
    }
    await sleep(settings.warmupSeconds * 1_000);
    const before = { count: acknowledged, cpu: broker.cpuMicros(), ms: performance.now() };
    await sleep(settings.seconds * 1_000);
    const count = acknowledged - before.count;
    const seconds = (performance.now() - before.ms) / 1_000;
    const cpu = broker.cpuMicros() - before.cpu;
    stopped = true;
    await Promise.all(loops);
    return { acknowledgedPerSecond: count / seconds, cpuMicrosPerMessage: count === 0 ? 0 : cpu / count };
  } finally {
    stopped = true;
    for (const connection of connections) await connection.close().catch(() => {});
    await broker.stop();
  }
}

export interface NatsFill {
  seconds: number;
  seekTimeMs: number;
  /** 0-based index (stream sequence minus one) of the first message after the seek time. */
  secondHalfIndex: number;
}

async function streamMessages(connection: NatsConnection): Promise<number> {
  return (await (await jetstreamManager(connection)).streams.info(replayStreamName)).state.messages;
}

async function publishUnacknowledged(connection: NatsConnection, payload: Uint8Array, count: number): Promise<void> {
  for (let index = 0; index < count; index++) {
    connection.publish('replay.x', payload);
    if (index % 10_000 === 9_999) await connection.flush();
  }
  await connection.flush();
}

async function waitForMessages(connection: NatsConnection, count: number, timeoutMs: number): Promise<void> {
  const deadlineMs = Date.now() + timeoutMs;
  for (;;) {
    const stored = await streamMessages(connection);
    if (stored === count) return;
    if (stored > count) throw new Error(`NATS stream holds ${stored} messages, more than the ${count} published`);
    if (Date.now() > deadlineMs) throw new Error(`NATS stream holds ${stored} of ${count} messages after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Creates the replay stream on a running server and fills it with `messages` (see the module comment). */
export async function fillNatsStream(broker: BrokerProcess, messages: number, payloadBytes: number): Promise<NatsFill> {
  const connection = await connect({ servers: server(broker) });
  try {
    await (await jetstreamManager(connection)).streams.add({ name: replayStreamName, subjects: ['replay.>'], storage: StorageType.File });
    const payload = makePayload(payloadBytes);
    const half = Math.floor(messages / 2) + 1;
    const startMs = performance.now();
    await publishUnacknowledged(connection, payload, half);
    await waitForMessages(connection, half, 600_000);
    await sleep(10);
    const seekTimeMs = Date.now();
    await sleep(10);
    await publishUnacknowledged(connection, payload, messages - half);
    await waitForMessages(connection, messages, 600_000);
    return { seconds: (performance.now() - startMs) / 1_000, seekTimeMs, secondHalfIndex: half };
  } finally {
    await connection.close();
  }
}

export async function startNatsOn(storeDirectory: string): Promise<BrokerProcess> {
  return startNats(storeDirectory);
}

export interface NatsReplayMeasure {
  messagesPerSecond: number;
  seconds: number;
  firstMessageMs: number;
  idleRssBytes: number;
  peakRssBytes: number;
  /** CPU time (user + system) per replayed message: nats-server's, and this process's (the consumer's), µs. */
  brokerCpuMicrosPerMessage: number;
  readerCpuMicrosPerMessage: number;
  problems: string[];
}

/** An ephemeral pull consumer from the first message, acknowledging explicitly (removed 60 s after its last use). */
async function explicitAckConsumer(connection: NatsConnection): Promise<Consumer> {
  const info = await (await jetstreamManager(connection)).consumers.add(replayStreamName, {
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    max_ack_pending: natsMaxAckPending,
    inactive_threshold: 60_000_000_000,
  });
  return jetstream(connection).consumers.get(replayStreamName, info.name);
}

/** An ordered consumer (or with `explicitAcks` an explicit-ack one) reads all `messages` from the first; RSS of nats-server sampled throughout. */
export async function measureNatsReplay(broker: BrokerProcess, messages: number, payloadBytes: number, idleRssBytes: number, explicitAcks = false): Promise<NatsReplayMeasure> {
  const connection = await connect({ servers: server(broker) });
  const sampler = new RssSampler(broker);
  try {
    const consumer = explicitAcks ? await explicitAckConsumer(connection) : await jetstream(connection).consumers.get(replayStreamName, { deliver_policy: DeliverPolicy.All });
    let received = 0;
    let wrongSize = 0;
    let outOfOrder = 0;
    let firstAtMs = 0;
    let lastAtMs = 0;
    const cpuBefore = { broker: broker.cpuMicros(), reader: process.cpuUsage() };
    const startMs = performance.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`NATS replay: ${received} of ${messages} after 900 s`)), 900_000);
      void consumer.consume({
        max_messages: natsPullBatch,
        callback: (message) => {
          if (received === 0) firstAtMs = performance.now();
          if (message.seq !== received + 1) outOfOrder += 1;
          if (message.data.length !== payloadBytes) wrongSize += 1;
          if (explicitAcks) message.ack();
          received += 1;
          if (received === messages) {
            lastAtMs = performance.now();
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    const brokerCpuMicros = broker.cpuMicros() - cpuBefore.broker;
    const readerCpu = process.cpuUsage(cpuBefore.reader);
    const peakRssBytes = sampler.stop();
    const problems: string[] = [];
    if (outOfOrder > 0) problems.push(`${outOfOrder} messages out of sequence`);
    if (wrongSize > 0) problems.push(`${wrongSize} payloads of the wrong size`);
    const seconds = (lastAtMs - startMs) / 1_000;
    return {
      messagesPerSecond: messages / seconds,
      seconds,
      firstMessageMs: firstAtMs - startMs,
      idleRssBytes,
      peakRssBytes,
      brokerCpuMicrosPerMessage: brokerCpuMicros / messages,
      readerCpuMicrosPerMessage: (readerCpu.user + readerCpu.system) / messages,
      problems,
    };
  } finally {
    sampler.stop();
    await connection.close();
  }
}

/** `count` ordered consumers starting at the seek time, each timed from its creation to its first message. */
export async function measureNatsSeek(broker: BrokerProcess, fill: NatsFill, count: number): Promise<{ samplesMs: number[]; wrongIndexes: number[] }> {
  const connection = await connect({ servers: server(broker) });
  const samplesMs: number[] = [];
  const wrongIndexes: number[] = [];
  try {
    const js = jetstream(connection);
    for (let index = 0; index < count; index++) {
      const startMs = performance.now();
      const consumer = await js.consumers.get(replayStreamName, { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(fill.seekTimeMs).toISOString() });
      const message = await consumer.next({ expires: 10_000 });
      if (message === null) throw new Error('NATS seek: no message within 10 s');
      samplesMs.push(performance.now() - startMs);
      if (message.seq - 1 !== fill.secondHalfIndex) wrongIndexes.push(message.seq - 1);
      await consumer.delete().catch(() => false);
      await sleep(50);
    }
    return { samplesMs, wrongIndexes };
  } finally {
    await connection.close();
  }
}
