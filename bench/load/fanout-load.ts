/**
 * The aggregate fan-out's load generator (runFanout). bench/cluster-bench.ts runs it in a process of
 * its own (fanout-worker.ts), so that its CPU is measured apart from the harness and the brokers.
 *
 * It is built to cost as little CPU per delivery as a Node process can, so that on a small machine
 * the brokers are what saturates:
 * - subscribers are bare sockets read with `onread` into one shared buffer (no stream machinery,
 *   no allocation per chunk); after the SUBACK their bytes are counted by FrameCounter (two byte
 *   comparisons per delivery, no parsing);
 * - publishers write one pre-encoded batch of QoS 0 PUBLISH packets again and again, closed loop:
 *   all publishers together stay at most `windowMessages` messages ahead of the average subscriber,
 *   so the figure is what the brokers sustain end to end, not what they buffer.
 *
 * The run: connect every subscriber and publisher (at most 50 handshakes in flight), publish until
 * every subscriber has received a message (or fail the run after 15 s: a subscription that never
 * reached a node would otherwise pass as a slow broker), go on for `warmupSeconds`, then measure
 * `seconds`: the
 * deliveries, and the CPU time of this process, of every process in `watchPids` (the brokers and
 * nats-server) and of the whole machine (/proc/stat: what other work took the cores meanwhile).
 * Then publishing stops, what is in flight lands (until deliveries stop for two seconds), and
 * QoS 0 loss is computed from what was sent and received.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { cpus } from 'node:os';
import { FrameCounter } from './frame-counter.js';
import { encodeConnect, encodePublish, encodeSubscribe } from './packets.js';
import { readCpuMicros } from './peers.js';

export interface FanoutPlan {
  /** One entry per subscriber: the MQTT port it connects to. */
  subscriberPorts: number[];
  /** One entry per publisher. */
  publisherPorts: number[];
  topic: string;
  payloadBytes: number;
  windowMessages: number;
  messagesPerBatch: number;
  warmupSeconds: number;
  seconds: number;
  /** Processes whose CPU time is read at the start and end of the measured window. */
  watchPids: number[];
}

export interface FanoutResult {
  /** Deliveries counted in the measured window, every subscriber together. */
  delivered: number;
  seconds: number;
  /** The fewest and most deliveries one subscriber got in the window. */
  perSubscriberMin: number;
  perSubscriberMax: number;
  /** CPU µs of each watched process in the window, in `watchPids` order. */
  watchedCpuMicros: number[];
  /**
   * The share of the window each watched process's main thread was runnable: on a core or waiting
   * in a run queue for one (/proc/<pid>/schedstat). Near 1 while its share of a core is lower means
   * it was CPU-bound and the machine's other work kept it waiting; for a Node process the main
   * thread is the event loop.
   */
  watchedRunnable: number[];
  generatorCpuMicros: number;
  generatorRunnable: number;
  /** CPU µs every core of the machine spent busy in the window (/proc/stat), all processes. */
  machineBusyMicros: number;
  machineCores: number;
  /** Messages published from start to stop, and deliveries owed for them that never came. */
  published: number;
  lost: number;
}

const setupTimeoutMs = 15_000;
const handshakesInFlightMax = 50;
/**
 * Deliveries stop for this long before the run counts what is missing as lost. One input of a
 * node (a read of a publisher's socket, hundreds of messages) is fanned out to every subscriber
 * before any of it is written, so on a loaded machine nothing may arrive for a second or more
 * while a node is still working (quiet periods of 0.5 s counted a whole window as lost).
 */
const settleQuietMs = 2_000;
const settleMaxMs = 15_000;
/** Batches one pump writes at most before yielding to the event loop. */
const batchesPerPumpMax = 64;
/** CONNACK accepted (3.1.1, no session present) and SUBACK granting QoS 0 to packet id 1. */
const connackAccepted = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const subackGranted = Buffer.from([0x90, 0x03, 0x00, 0x01, 0x00]);
/** One read buffer for every socket: `onread` callbacks run one at a time and keep nothing. */
const readBuffer = Buffer.allocUnsafe(256 * 1024);

/** What an endpoint reports to the run it belongs to. */
interface Sink {
  delivered(count: number): void;
}

/** A bare MQTT 3.1.1 connection: matches its handshake replies byte for byte, then counts frames. */
class Endpoint {
  readonly socket: net.Socket;
  private expected: Buffer[] = [connackAccepted];
  private matched = 0;
  private waiter: { resolve: () => void; reject: (error: Error) => void } | null = null;
  failure: Error | null = null;

  constructor(
    port: number,
    clientId: string,
    readonly counter: FrameCounter | null,
    private readonly sink: Sink,
  ) {
    this.socket = net.connect({ host: '127.0.0.1', port, noDelay: true, onread: { buffer: readBuffer, callback: (bytes, buffer) => this.onRead(bytes, buffer) } });
    this.socket.on('error', (error) => this.fail(error));
    this.socket.on('close', () => this.fail(new Error(`${clientId}: connection closed by the broker`)));
    this.socket.write(encodeConnect({ clientId, level: 4, keepAliveSeconds: 0, clean: true }));
  }

  /** Resolves once every expected handshake reply has arrived. */
  settled(): Promise<void> {
    if (this.expected.length === 0) return Promise.resolve();
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  subscribe(topic: string): Promise<void> {
    this.expected.push(subackGranted);
    this.socket.write(encodeSubscribe(4, 1, [{ filter: topic, qos: 0 }]));
    return this.settled();
  }

  private onRead(bytes: number, buffer: Uint8Array): boolean {
    let offset = 0;
    while (this.expected.length > 0 && offset < bytes) {
      const reply = this.expected[0]!;
      if (buffer[offset] !== reply[this.matched]) {
        this.fail(new Error(`unexpected handshake byte 0x${buffer[offset]!.toString(16)} (expected ${reply.toString('hex')})`));
        return true;
      }
      offset += 1;
      this.matched += 1;
      if (this.matched === reply.length) {
        this.expected.shift();
        this.matched = 0;
        if (this.expected.length === 0) this.settle();
      }
    }
    if (offset === bytes) return true;
    if (this.counter === null) {
      this.fail(new Error('a publisher received bytes after its CONNACK'));
      return true;
    }
    this.sink.delivered(this.counter.feed(buffer, offset, bytes));
    return true;
  }

  private settle(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.resolve();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.reject(error);
  }
}

class Publisher {
  sent = 0;
  writable = true;

  constructor(
    readonly endpoint: Endpoint,
    private readonly batch: Buffer,
    private readonly messagesPerBatch: number,
    onDrain: () => void,
  ) {
    endpoint.socket.on('drain', () => {
      this.writable = true;
      onDrain();
    });
  }

  writeBatch(): void {
    this.sent += this.messagesPerBatch;
    this.writable = this.endpoint.socket.write(this.batch);
  }
}

async function openAll<T>(count: number, open: (index: number) => Promise<T>): Promise<T[]> {
  const opened: T[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      opened[index] = await open(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(handshakesInFlightMax, count) }, worker));
  return opened;
}

function machineBusyMicros(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait (10 ms ticks).
  const busyTicks = fields.slice(0, 8).reduce((sum, value, index) => (index === 3 || index === 4 ? sum : sum + value), 0);
  return busyTicks * 10_000;
}

/** Time the main thread of `pid` spent on a core plus waiting for one, in ns; 0 if unreadable. */
function runnableNs(pid: number): number {
  try {
    const [onCoreNs, waitingNs] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    return (onCoreNs ?? 0) + (waitingNs ?? 0);
  } catch {
    return 0;
  }
}

interface Snapshot {
  delivered: number;
  perSubscriber: number[];
  watched: number[];
  watchedRunnableNs: number[];
  generator: number;
  generatorRunnableNs: number;
  machine: number;
  timeNs: bigint;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One run of the load: its endpoints, its closed-loop window and its counters. */
class FanoutRun implements Sink {
  deliveredTotal = 0;
  private subscribers: Endpoint[] = [];
  private publishers: Publisher[] = [];
  private publishing = false;
  private pumpScheduled = false;
  private readonly schedule = (): void => this.schedulePump();
  private readonly pumpNow = (): void => this.pump();

  constructor(private readonly plan: FanoutPlan) {
    if (plan.windowMessages < plan.messagesPerBatch) throw new Error('assertion failed: the window must hold at least one batch');
    if (plan.subscriberPorts.length === 0 || plan.publisherPorts.length === 0) throw new Error('assertion failed: the load needs subscribers and publishers');
  }

  delivered(count: number): void {
    this.deliveredTotal += count;
    this.schedulePump();
  }

  async run(): Promise<FanoutResult> {
    const setup = this.connect();
    await Promise.race([setup, sleep(setupTimeoutMs).then(() => Promise.reject(new Error('setup timed out')))]);
    try {
      return await this.measure();
    } finally {
      this.publishing = false;
      for (const endpoint of this.endpoints()) endpoint.socket.destroy();
    }
  }

  private endpoints(): Endpoint[] {
    return [...this.subscribers, ...this.publishers.map((publisher) => publisher.endpoint)];
  }

  private async connect(): Promise<void> {
    const plan = this.plan;
    const packet = encodePublish({ level: 4, topic: plan.topic, payload: Buffer.alloc(plan.payloadBytes, 0x78), qos: 0 });
    this.subscribers = await openAll(plan.subscriberPorts.length, async (index) => {
      const counter = new FrameCounter(packet.length, packet[0]!, packet[1]!);
      const endpoint = new Endpoint(plan.subscriberPorts[index]!, `aggr-s${index}-${process.pid}`, counter, this);
      await endpoint.settled();
      await endpoint.subscribe(plan.topic);
      return endpoint;
    });
    const publisherEndpoints = await openAll(plan.publisherPorts.length, async (index) => {
      const endpoint = new Endpoint(plan.publisherPorts[index]!, `aggr-p${index}-${process.pid}`, null, this);
      await endpoint.settled();
      return endpoint;
    });
    const batch = Buffer.concat(Array.from({ length: plan.messagesPerBatch }, () => packet));
    this.publishers = publisherEndpoints.map((endpoint) => new Publisher(endpoint, batch, plan.messagesPerBatch, this.schedule));
  }

  private async measure(): Promise<FanoutResult> {
    const plan = this.plan;
    // Subscriptions reach the other node through NATS; publishing waits until every one delivers.
    await sleep(300);
    this.publishing = true;
    const fallback = setInterval(this.schedule, 2);
    this.schedulePump();
    try {
      await this.untilEverySubscriberReceived();
      await sleep(plan.warmupSeconds * 1_000);
      const start = this.snapshot();
      await sleep(plan.seconds * 1_000);
      const end = this.snapshot();
      this.publishing = false;
      await this.settle();
      this.checkStreams();
      return this.result(start, end);
    } finally {
      clearInterval(fallback);
    }
  }

  /**
   * Waits until every delivery owed has arrived, or none arrived for `settleQuietMs` (at most
   * `settleMaxMs`): what has not arrived by then counts as lost.
   */
  private async settle(): Promise<void> {
    const deadlineMs = Date.now() + settleMaxMs;
    let last = this.deliveredTotal;
    let quietSinceMs = Date.now();
    while (Date.now() < deadlineMs && Date.now() - quietSinceMs < settleQuietMs && last < this.published() * this.subscribers.length) {
      await sleep(50);
      if (this.deliveredTotal !== last) {
        last = this.deliveredTotal;
        quietSinceMs = Date.now();
      }
    }
  }

  private async untilEverySubscriberReceived(): Promise<void> {
    const deadlineMs = Date.now() + setupTimeoutMs;
    let silent = this.subscribers.length;
    while (silent > 0 && Date.now() < deadlineMs) {
      await sleep(50);
      silent = this.subscribers.filter((subscriber) => subscriber.counter!.frames === 0).length;
    }
    if (silent > 0) throw new Error(`${silent} of ${this.subscribers.length} subscribers received nothing within ${setupTimeoutMs} ms of publishing`);
  }

  /** Fails the run on a broken connection, a framing error or a delivery cut short. */
  private checkStreams(): void {
    for (const endpoint of this.endpoints()) {
      if (endpoint.failure !== null) throw endpoint.failure;
      const counter = endpoint.counter;
      if (counter === null) continue;
      if (counter.framingError !== null) throw new Error(counter.framingError);
      if (!counter.aligned) throw new Error('a subscriber holds a partial delivery after the run settled');
    }
  }

  private published(): number {
    let total = 0;
    for (const publisher of this.publishers) total += publisher.sent;
    return total;
  }

  private schedulePump(): void {
    if (this.pumpScheduled || !this.publishing) return;
    this.pumpScheduled = true;
    setImmediate(this.pumpNow);
  }

  /** Writes batches round-robin over the publishers while the window has room for one more. */
  private pump(): void {
    this.pumpScheduled = false;
    const { windowMessages, messagesPerBatch } = this.plan;
    const subscriberCount = this.subscribers.length;
    let sent = this.published();
    for (let turn = 0; turn < batchesPerPumpMax && this.publishing; turn++) {
      let progressed = false;
      for (const publisher of this.publishers) {
        if (!publisher.writable || sent - this.deliveredTotal / subscriberCount + messagesPerBatch > windowMessages) continue;
        publisher.writeBatch();
        sent += messagesPerBatch;
        progressed = true;
      }
      if (!progressed) return;
    }
    this.schedulePump();
  }

  private snapshot(): Snapshot {
    const usage = process.cpuUsage();
    return {
      delivered: this.deliveredTotal,
      perSubscriber: this.subscribers.map((subscriber) => subscriber.counter!.frames),
      watched: this.plan.watchPids.map(readCpuMicros),
      watchedRunnableNs: this.plan.watchPids.map(runnableNs),
      generator: usage.user + usage.system,
      generatorRunnableNs: runnableNs(process.pid),
      machine: machineBusyMicros(),
      timeNs: process.hrtime.bigint(),
    };
  }

  private result(start: Snapshot, end: Snapshot): FanoutResult {
    const elapsedNs = Number(end.timeNs - start.timeNs);
    const perSubscriber = end.perSubscriber.map((frames, index) => frames - start.perSubscriber[index]!);
    const published = this.published();
    return {
      delivered: end.delivered - start.delivered,
      seconds: elapsedNs / 1e9,
      perSubscriberMin: Math.min(...perSubscriber),
      perSubscriberMax: Math.max(...perSubscriber),
      watchedCpuMicros: end.watched.map((micros, index) => micros - start.watched[index]!),
      watchedRunnable: end.watchedRunnableNs.map((ns, index) => (ns - start.watchedRunnableNs[index]!) / elapsedNs),
      generatorCpuMicros: end.generator - start.generator,
      generatorRunnable: (end.generatorRunnableNs - start.generatorRunnableNs) / elapsedNs,
      machineBusyMicros: end.machine - start.machine,
      machineCores: cpus().length,
      published,
      lost: published * this.subscribers.length - this.deliveredTotal,
    };
  }
}

/** Runs the load once as `plan` says; rejects (having closed every connection) when the run fails. */
export function runFanout(plan: FanoutPlan): Promise<FanoutResult> {
  return new FanoutRun(plan).run();
}

/** The longest a run of `plan` may take, set-up included, before its caller should give up on it. */
export function fanoutDeadlineMs(plan: FanoutPlan): number {
  return 2 * setupTimeoutMs + settleMaxMs + (plan.warmupSeconds + plan.seconds + 5) * 1_000;
}
