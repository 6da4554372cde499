/**
 * One simulated world: a clock, the event queue, the network, the disk, one broker at a time
 * (driven through the production Driver over a simulated Host), the model clients, the fault
 * injector and the checker.
 *
 * The run has two phases. While active (0..activeMs), clients follow their scripts and faults
 * strike at random: resets, half-open links, partitions, client crashes and broker crashes
 * (discard the Broker, its Driver and its store; every link dies; the disk loses or tears what
 * was not synced; after a delay a new Broker starts over a new DurableStateStore on the same
 * disk and recovers). Disk faults strike too (see disk.ts): EIO and a full disk make the store
 * fail, the broker halts and the world restarts it like after a crash; bit flips in synced data
 * are found by recovery, which halts with "corrupt log:" (the world, as the operator, runs the
 * documented repair, src/store/repair.ts, and restarts), "corrupt stream:" (the same operator runs
 * the stream repair, which cuts the stream's active segment at its damage, and restarts) or
 * "corrupt snapshot:" (unrecoverable: the run ends there, counted, not a violation, since the
 * broker did detect and report it). Damage the broker meets in a stream's files while running is reported in its log
 * (`stream-entry-damaged`, `stream-segment-damaged`) and excuses that stream's losses.
 * Then the world goes quiet (no faults, no stalls, and every client that stopped reading reads
 * again) for quietMs, long enough for every client to reconnect and every pending delivery to
 * complete; liveness is judged at its end (including that no QoS 0 message was lost silently on a
 * connection that stayed up), and last a fresh subscriber audits the retained table.
 *
 * The broker's `message-dropped` reports are passed to the checker (they excuse exactly the
 * message they name) and counted when the reason is the output cap, so a run says how often its
 * stalled readers made the cap bite. An output-cap drop is checked against the link itself: its
 * unsent bytes must be within one report step of the cap (`output-full-early` otherwise).
 *
 * The world also holds the broker to the keepalive it granted (keepalive-watch.ts): each client
 * reports the keepalive of every connection the broker accepted, and a connection that stays open
 * past 1.5 times it after its client went silent is a violation.
 *
 * What the world hands the broker (a client's bytes, a disk read) is a Node Buffer viewing a
 * shared chunk, as the Node host hands it (input-chunks.ts), and the rule `kept-bytes-alias`
 * (kept-bytes-check.ts) fails a run whose broker keeps such a view: periodically, before a crash
 * and at the end of the run.
 *
 * Everything that happens is a trace line, fed to the run's hash; the last lines are kept for
 * the report when a rule breaks. The first violation stops the run.
 */

import { RuleAuthorizer } from '../src/broker/authorizer.js';
import { Broker, type BrokerOptions } from '../src/broker/broker.js';
import { type BrokerConfig, outputReportStepBytes, resolveConfig } from '../src/config.js';
import { type BrokerCore, type ConnectionId, type ConnectionPeer, defaultListener, type LogFields, type LogLevel, type StorageRequest, type StorageResult } from '../src/contract.js';
import { Driver, type Host } from '../src/driver.js';
import { DurableStateStore, type DurableStoreOptions, streamLogOptionsFor } from '../src/store/durable-store.js';
import { planRepair, planStreamRepair, type RepairAction } from '../src/store/repair.js';
import type { StateStore } from '../src/store/state-store.js';
import { Checker } from './checker.js';
import { Impostor } from './clients/impostor.js';
import { type ClientContext, ModelClient } from './clients/model-client.js';
import { Prober } from './clients/prober.js';
import { dollarRoots } from './coverage.js';
import { DiskDevice } from './disk.js';
import { EventQueue, Timer } from './event-queue.js';
import { AccessOracle, aclRulesFor, impostorUser, WorldAuthenticator } from './identity.js';
import { InputChunks } from './input-chunks.js';
import { KeepAliveWatch } from './keepalive-watch.js';
import { keptBytesAlias, keptBytesCheckIntervalMs } from './kept-bytes-check.js';
import { type Link, Network } from './network.js';
import type { PlannedAdminCommand } from './operator.js';
import { Random } from './random.js';
import type { ClientPlan, FaultKind, WorldShape } from './shape.js';
import { noDiskFaults, SimulatedDisk } from './simulated-disk.js';
import { StreamChecker } from './stream-checker.js';
import { TraceHash } from './trace-hash.js';

export type BrokerFactory = (options: BrokerOptions) => BrokerCore;

/** Builds the store of one broker incarnation over the world's disk; tests plant store bugs here. */
export type StoreFactory = (options: DurableStoreOptions) => StateStore;

export const durableStore: StoreFactory = (options) => new DurableStateStore(options);

/** The real broker, as production runs it. */
export const realBroker: BrokerFactory = (options) => new Broker(options);

export interface Violation {
  rule: string;
  detail: string;
  atMs: number;
  recentEvents: string[];
}

interface RunningBroker {
  incarnation: number;
  core: BrokerCore;
  driver: Driver;
}

const recentEventsKept = 30;
const auditMs = 5_000;
/** In a stream world, how long the stream auditors (one reader per stream, from earliest) get to read. */
const streamAuditMs = 60_000;
/** How much longer the audit waits per retained topic of a retained pacing world (one-byte segments included). */
const auditMsPerPacedTopic = 60;

export class World implements ClientContext {
  readonly clock = { nowMs: 0 };
  readonly queue = new EventQueue();
  readonly network: Network;
  readonly checker: Checker;
  readonly streamChecker: StreamChecker;
  readonly clients: ModelClient[] = [];
  readonly hash = new TraceHash();
  readonly config: BrokerConfig;
  readonly disk: SimulatedDisk;
  /** The chunks every input is handed to the broker in, as Node Buffers (input-chunks.ts). */
  readonly inputChunks = new InputChunks();
  private readonly device: DiskDevice;
  private readonly faultRandom: Random;
  private readonly diskFaultRandom: Random;
  private broker: RunningBroker | null = null;
  private incarnationNext = 1;
  private adminRequestNext = 1;
  /** The broker's wakeup (Driver's setWakeup), and the incarnation that set it. */
  private readonly wakeup = new Timer(() => this.brokerInput((driver) => driver.tick(this.clock.nowMs), this.wakeupIncarnation));
  private wakeupIncarnation = 0;
  /**
   * A ring of the last trace lines and their times, for the violation report. A segment's line
   * is kept as its parts (`recentLines` null): it is built only if a report asks for it.
   */
  private readonly recentLines: (string | null)[] = new Array(recentEventsKept).fill('');
  private readonly recentSegmentToBroker: boolean[] = new Array(recentEventsKept).fill(false);
  private readonly recentSegmentLinks: number[] = new Array(recentEventsKept).fill(0);
  private readonly recentSegmentBytes: number[] = new Array(recentEventsKept).fill(0);
  private readonly recentTimesMs: number[] = new Array(recentEventsKept).fill(0);
  private recentNext = 0;
  private quiet = false;
  violation: Violation | null = null;
  events = 0;
  faults = 0;
  brokerRestarts = 0;
  /** Disk faults that struck: failed operations, full-disk episodes, bit flips, stalls (added at the end). */
  diskFaults = 0;
  /** Broker starts that finished recovery. */
  recoveries = 0;
  corruptionsReported = 0;
  repairs = 0;
  /** Set when recovery reported corruption that no repair can cut away; the run ends there. */
  unrecoverable: string | null = null;
  auditor: ModelClient | null = null;
  /** In a stream world: one reader per stream from earliest, started when the world is quiet. */
  readonly streamAuditors: ModelClient[] = [];
  /** The hostile world's prober (hostile.ts), if any. */
  prober: Prober | null = null;
  /** The identity world's impostor (identity.ts), if any. */
  impostor: Impostor | null = null;
  /** QoS 0 messages the broker reported dropping because a connection's output was at its cap. */
  outputFullDrops = 0;
  private readonly keepAliveWatch: KeepAliveWatch;
  /** When the kept-bytes rule next looks over the broker (kept-bytes-check.ts). */
  private keptBytesCheckAtMs = keptBytesCheckIntervalMs;

  constructor(
    readonly shape: WorldShape,
    private readonly brokerFactory: BrokerFactory,
    private readonly traceSink: ((line: string) => void) | null,
    private readonly storeFactory: StoreFactory = durableStore,
  ) {
    const resolved = resolveConfig(shape.configOverrides as Record<string, unknown>);
    if (!resolved.ok) throw new Error(`bad simulated config: ${resolved.problems.join('; ')}`);
    this.config = resolved.config;
    this.network = new Network(this.queue, Random.stream(shape.seed, 'network'), shape.network, this.clock, (line, bytes) => this.trace(line, bytes));
    this.checker = new Checker(this.clock, (rule, detail) => this.violation === null && this.fail(rule, detail), { outputBytesMax: this.config.connectionOutputBytesMax });
    this.streamChecker = new StreamChecker(shape.streams, this.checker, this.clock, (rule, detail) => this.violation === null && this.fail(rule, detail));
    this.keepAliveWatch = new KeepAliveWatch(this.queue, this.clock, (rule, detail) => this.fail(rule, detail));
    if (shape.kind === 'long-session') this.checker.noteCoverage('long-session');
    const diskRandom = Random.stream(shape.seed, 'disk-bytes');
    this.disk = new SimulatedDisk(() => diskRandom.next(), { ...noDiskFaults, ioErrorRate: shape.disk.ioErrorRate, readErrorRate: shape.disk.readErrorRate, tornWriteRate: shape.disk.tornWriteRate });
    this.device = new DiskDevice(Random.stream(shape.seed, 'disk'), shape.disk);
    this.faultRandom = Random.stream(shape.seed, 'faults');
    this.diskFaultRandom = Random.stream(shape.seed, 'disk-faults');
    this.network.broker = {
      acceptingIncarnation: () => (this.broker?.core.ready ? this.broker.incarnation : null),
      opened: (link) => this.brokerInput((driver) => driver.connectionOpened(this.clock.nowMs, link.id, this.peerOf(link))),
      bytes: (link, bytes) => this.brokerBytes(link, bytes),
      closed: (link) => this.brokerInput((driver) => driver.connectionClosed(this.clock.nowMs, link.id)),
      outputBuffered: (link, bufferedBytes) => this.brokerInput((driver) => driver.outputBuffered(this.clock.nowMs, link.id, bufferedBytes)),
    };
    this.network.traceSegment = (toBroker, linkId, segment) => this.traceSegment(toBroker, linkId, segment);
    this.network.inputChunks = this.inputChunks;
    // The same reporting step as the Node backend's (io/server.ts).
    this.network.outputReportStepBytes = outputReportStepBytes(this.config);
  }

  /** What the transport tells the broker about a connection: identity worlds verify some users (identity.ts). */
  private peerOf(link: Link): ConnectionPeer {
    const peer = { remoteAddress: `sim:c${link.clientIndex}`, listener: defaultListener };
    const identity = this.shape.clients[link.clientIndex]?.identity;
    const verifiedUsername = identity?.verified === true ? identity.username : this.impostor?.verifiedUsername(link);
    return verifiedUsername === undefined ? peer : { ...peer, verifiedUsername };
  }

  private clientIndex(clientId: string): number | null {
    const index = this.shape.clients.findIndex((plan) => plan.clientId === clientId);
    if (index >= 0) return index;
    const streamAuditor = this.streamAuditors.find((auditor) => auditor.plan.clientId === clientId);
    if (streamAuditor !== undefined) return streamAuditor.plan.index;
    return this.auditor !== null && clientId === this.auditor.plan.clientId ? this.auditor.plan.index : null;
  }

  /**
   * Hashes `${nowMs} ${line}` (then the segment's bytes) without building that string: every
   * event passes here, and the joined line is only needed when printed (--trace) or reported.
   */
  trace(line: string, bytes?: Uint8Array): void {
    const nowMs = this.clock.nowMs;
    this.hash.integer(nowMs);
    this.hash.units(' ');
    this.hash.text(line);
    if (bytes !== undefined) this.hash.bytes(bytes);
    if (this.traceSink !== null) this.traceSink(`${nowMs} ${line}`);
    const slot = this.recentNext % recentEventsKept;
    this.recentLines[slot] = line;
    this.recentTimesMs[slot] = nowMs;
    this.recentNext += 1;
  }

  /**
   * Traces a segment's arrival exactly as `trace(segmentLine(...), segment)` would, without
   * building the line: its parts are hashed one by one (numbers as their decimal text).
   */
  private traceSegment(toBroker: boolean, linkId: number, segment: Uint8Array): void {
    if (this.traceSink !== null) return this.trace(segmentLine(toBroker, linkId, segment.length), segment);
    const nowMs = this.clock.nowMs;
    const hash = this.hash;
    hash.integer(nowMs);
    hash.units(toBroker ? ' net c>b L' : ' net b>c L');
    hash.integer(linkId);
    hash.units(' ');
    hash.integer(segment.length);
    hash.text('B');
    hash.bytes(segment);
    const slot = this.recentNext % recentEventsKept;
    this.recentLines[slot] = null;
    this.recentSegmentToBroker[slot] = toBroker;
    this.recentSegmentLinks[slot] = linkId;
    this.recentSegmentBytes[slot] = segment.length;
    this.recentTimesMs[slot] = nowMs;
    this.recentNext += 1;
  }

  /** The last `recentEventsKept` trace lines, oldest first. */
  private recentEvents(): string[] {
    const events: string[] = [];
    for (let index = Math.max(0, this.recentNext - recentEventsKept); index < this.recentNext; index++) {
      const slot = index % recentEventsKept;
      const line = this.recentLines[slot] ?? segmentLine(this.recentSegmentToBroker[slot]!, this.recentSegmentLinks[slot]!, this.recentSegmentBytes[slot]!);
      events.push(`${this.recentTimesMs[slot]!} ${line}`);
    }
    return events;
  }

  /** ClientContext: the client saw the broker break the protocol. */
  reportViolation(rule: string, detail: string): void {
    this.fail(rule, detail);
  }

  /** ClientContext: the broker accepted `link` with this keepalive. */
  watchKeepAlive(link: Link, keepAliveSeconds: number): void {
    this.keepAliveWatch.watch(link, keepAliveSeconds);
  }

  fail(rule: string, detail: string): void {
    if (this.violation !== null) return;
    this.trace(`VIOLATION ${rule}: ${detail}`);
    this.violation = { rule, detail, atMs: this.clock.nowMs, recentEvents: this.recentEvents() };
  }

  /** Runs an input through the current broker's driver; a throw from the broker is a failed run. */
  private brokerInput(input: (driver: Driver) => void, incarnation?: number): void {
    const broker = this.broker;
    if (broker === null || (incarnation !== undefined && incarnation !== broker.incarnation)) return;
    try {
      input(broker.driver);
    } catch (error) {
      this.fail('broker-threw', errorText(error));
      return;
    }
    // The host's part after every input: tell the broker how much of its output is still buffered.
    this.network.flushOutputReports();
  }

  /**
   * `brokerInput` for a segment's bytes, the most frequent input, without a closure per call:
   * the same steps (the current incarnation, a throw fails the run, then the buffered reports).
   */
  private brokerBytes(link: Link, bytes: Uint8Array): void {
    const broker = this.broker;
    if (broker === null) return;
    try {
      broker.driver.bytesReceived(this.clock.nowMs, link.id, bytes);
    } catch (error) {
      this.fail('broker-threw', errorText(error));
      return;
    }
    this.network.flushOutputReports();
  }

  private startBroker(): void {
    const incarnation = this.incarnationNext++;
    this.trace(`broker start #${incarnation}`);
    try {
      // The stream log's sizes come from the broker's configuration, as in production.
      const store = this.storeFactory({ ...this.shape.disk.store, streams: streamLogOptionsFor(this.config) });
      const identity = this.shape.identity;
      const access = identity === null ? {} : { authenticator: new WorldAuthenticator(), authorizer: new RuleAuthorizer(aclRulesFor(identity)) };
      const core = this.brokerFactory({ config: this.config, nowMs: this.clock.nowMs, store, ...access });
      const driver = new Driver(core, this.hostFor(incarnation));
      this.broker = { incarnation, core, driver };
      driver.start(this.clock.nowMs);
    } catch (error) {
      this.fail('broker-threw', `while starting: ${errorText(error)}`);
      return;
    }
    // Crash again while recovery is still reading (or cleaning up): recovery must be restartable.
    if (!this.quiet && this.incarnationNext > 2 && this.diskFaultRandom.chance(this.shape.disk.crashDuringRecoveryProbability)) {
      this.queue.push(this.clock.nowMs + this.diskFaultRandom.int(0, 20), () => {
        if (this.broker?.incarnation === incarnation && !this.quiet) this.crashBroker('during recovery');
      });
    }
  }

  /** The process dies: the broker and its store are gone, the disk keeps what it kept, a restart follows. */
  private crashBroker(why = ''): void {
    const broker = this.broker;
    if (broker === null) return;
    this.trace(`fault broker-crash #${broker.incarnation}${why === '' ? '' : ` ${why}`}`);
    this.checkKeptBytes('before a crash');
    this.broker = null;
    this.brokerRestarts += 1;
    this.checker.brokerCrashed();
    this.streamChecker.brokerCrashed();
    // The interval policy acknowledges before syncing (by design): what a crash loses is allowed.
    if (this.shape.disk.store.syncPolicy !== 'always') this.openAmnesty();
    this.network.brokerCrashed(broker.incarnation);
    this.disk.crash();
    this.queue.push(this.clock.nowMs + this.faultRandom.int(50, 3_000), () => this.startBroker());
  }

  /** The broker halted: a failed store or damage found by recovery. The process exits. */
  private brokerHalted(reason: string): void {
    const corrupt = /^corrupt (log|snapshot|stream): (\S+?):? /.exec(reason);
    if (corrupt === null) return this.crashBroker('after halt');
    this.corruptionsReported += 1;
    const file = corrupt[2]!;
    // Corruption the disk injected into that file is expected; under `always` nothing else may look like it.
    // A stream names its segment files by pattern (`stream-NAME-*.seg`).
    const named = file.endsWith('*.seg') ? (name: string) => name.startsWith(file.slice(0, -5)) && name.endsWith('.seg') : (name: string) => name === file;
    const injected = this.disk.corruptions.some((corruption) => named(corruption.file));
    if (!injected && this.shape.disk.store.syncPolicy === 'always') {
      return this.fail('corruption-without-damage', `recovery reported "${reason}" but the disk never damaged ${file}`);
    }
    this.crashBroker('after halt');
    // No documented repair cuts a snapshot's damage away (the log it replaced is gone): the broker
    // detected and reported it, and the run ends there, counted, not a violation.
    if (corrupt[1] === 'snapshot') {
      this.unrecoverable = reason;
      this.trace(`UNRECOVERABLE corruption reported: ${reason}`);
      return;
    }
    this.repair(reason, corrupt[1] === 'stream');
  }

  /** The operator runs the documented repair (cut the log, or a stream's active segment, at the damage) before the restart. */
  private repair(reason: string, stream: boolean): void {
    const plan = stream ? planStreamRepair(this.disk.listFiles()) : planRepair(this.disk.listFiles());
    for (const note of plan.notes) this.trace(`repair: ${note}`);
    if (plan.actions.length === 0) {
      this.fail('repair-found-nothing', `recovery reported "${reason}" but the repair plan finds nothing to cut: ${plan.notes.join('; ')}`);
      return;
    }
    this.applyRepair(plan.actions);
    this.repairs += 1;
    if (stream) this.checker.noteCoverage('stream-repairs');
    this.openAmnesty();
  }

  /** The broker may have forgotten what it had made durable: the checker excuses, the impostor cleans up again. */
  private openAmnesty(): void {
    this.checker.openAmnesty();
    this.impostor?.amnestyOpened();
  }

  /** Executes a repair plan on the disk, durably (an operator's tool, not subject to the run's faults). */
  private applyRepair(actions: readonly RepairAction[]): void {
    const saved = this.disk.faults;
    this.disk.faults = noDiskFaults;
    const run = (request: StorageRequest): void => {
      const result = this.disk.execute(request);
      if (!result.ok) throw new Error(`repair step ${request.op} failed: ${result.code} ${result.message}`);
    };
    for (const action of actions) {
      if (action.kind === 'copy') {
        const bytes = this.disk.fileBytes(action.from)!.slice();
        if (this.disk.fileBytes(action.to) !== undefined) run({ op: 'truncate', requestId: 0, file: action.to, length: 0 });
        run({ op: 'write', requestId: 0, file: action.to, offset: 0, bytes });
        run({ op: 'sync', requestId: 0, file: action.to });
      } else if (action.kind === 'truncate') {
        run({ op: 'truncate', requestId: 0, file: action.file, length: action.length });
        run({ op: 'sync', requestId: 0, file: action.file });
      } else if (action.kind === 'write') {
        if (this.disk.fileBytes(action.file) !== undefined) run({ op: 'truncate', requestId: 0, file: action.file, length: 0 });
        run({ op: 'write', requestId: 0, file: action.file, offset: 0, bytes: action.bytes });
        run({ op: 'sync', requestId: 0, file: action.file });
      } else {
        run({ op: 'rename', requestId: 0, from: action.from, to: action.to });
      }
    }
    run({ op: 'sync-directory', requestId: 0 });
    this.disk.faults = saved;
  }

  private hostFor(incarnation: number): Host {
    const linkOf = (connectionId: ConnectionId): Link => {
      const link = this.network.links.get(connectionId);
      if (link === undefined) throw new Error(`broker named unknown connection ${connectionId}`);
      return link;
    };
    return {
      send: (connectionId, bytes) => this.network.brokerSend(linkOf(connectionId), bytes),
      close: (connectionId, reason) => {
        this.trace(`broker close L${connectionId} ${reason}`);
        if (reason === 'keepalive timeout') this.checker.noteCoverage('keepalive-timeouts');
        this.network.brokerClose(linkOf(connectionId));
      },
      // Publisher throttling: the link holds the client's bytes at the broker's side meanwhile.
      pauseReading: (connectionId) => this.network.pauseBrokerReads(linkOf(connectionId)),
      resumeReading: (connectionId) => this.network.resumeBrokerReads(linkOf(connectionId)),
      storage: (request) => this.storage(incarnation, request),
      log: (level, event, fields) => this.log(level, event, fields),
      // A halted broker is a process that exits; the world restarts it like after a crash.
      halt: (reason) => {
        this.trace(`broker halt #${incarnation} ${reason}`);
        this.queue.push(this.clock.nowMs, () => {
          if (this.broker !== null && this.broker.incarnation === incarnation) this.brokerHalted(reason);
        });
      },
      adminResult: (requestId, outcome) => {
        this.trace(`admin #${requestId} ${outcome.ok ? 'ok' : `${outcome.status}: ${outcome.message}`}`);
        this.checker.adminResulted(requestId, outcome.ok);
      },
      // One timer, moved by every input: a crashed incarnation's last wakeup still runs, and does nothing.
      setWakeup: (deadlineMs) => {
        if (deadlineMs === null) return this.queue.disarm(this.wakeup);
        this.wakeupIncarnation = incarnation;
        this.queue.arm(this.wakeup, Math.max(deadlineMs, this.clock.nowMs));
      },
    };
  }

  private storage(incarnation: number, request: StorageRequest): void {
    this.queue.push(this.device.completionMs(this.clock.nowMs, this.quiet, request), () => {
      if (this.broker === null || this.broker.incarnation !== incarnation) return;
      const result = this.inChunk(this.disk.execute(request));
      this.trace(`disk ${request.op} #${request.requestId} ${result.ok ? 'ok' : result.code}`);
      if (!result.ok && result.code !== 'ENOENT') this.diskFaults += 1;
      // A crash right after the operation took effect, before the broker heard of it.
      const crashProbability = this.shape.disk.crashAfterOperationProbability;
      if (!this.quiet && crashProbability > 0 && this.diskFaultRandom.chance(crashProbability)) return this.crashBroker(`after ${request.op}`);
      this.brokerInput((driver) => driver.storageCompleted(this.clock.nowMs, result), incarnation);
    });
  }

  /** A read's bytes as the Node host would hand them: a Buffer viewing a shared chunk (input-chunks.ts). */
  private inChunk(result: StorageResult): StorageResult {
    if (!result.ok || result.bytes === undefined) return result;
    return { ...result, bytes: this.inputChunks.adopt(result.bytes) };
  }

  /** Disk full for a while: capacity just above what is in use, then an operator frees space. */
  private scheduleFullDisk(): void {
    const mean = this.shape.disk.fullDiskIntervalMsMean;
    if (mean === null) return;
    const atMs = this.clock.nowMs + this.diskFaultRandom.int(1, mean * 2);
    if (atMs >= this.shape.activeMs) return;
    this.queue.push(atMs, () => {
      const capacityBytes = this.disk.usedBytes() + this.diskFaultRandom.int(0, 8_192);
      this.disk.faults = { ...this.disk.faults, capacityBytes };
      this.diskFaults += 1;
      this.trace(`fault disk-full capacity=${capacityBytes}`);
      const freedAtMs = Math.min(this.clock.nowMs + this.diskFaultRandom.int(200, 5_000), this.shape.activeMs);
      this.queue.push(freedAtMs, () => {
        this.disk.faults = { ...this.disk.faults, capacityBytes: noDiskFaults.capacityBytes };
        this.trace('disk space freed');
        this.scheduleFullDisk();
      });
    });
  }

  /** A bit of synced data rots; often a crash follows soon, so that recovery reads the damage. */
  private scheduleBitFlip(): void {
    const mean = this.shape.disk.bitFlipIntervalMsMean;
    if (mean === null) return;
    const atMs = this.clock.nowMs + this.diskFaultRandom.int(1, mean * 2);
    if (atMs >= this.shape.activeMs) return;
    this.queue.push(atMs, () => {
      const flipped = this.disk.flipDurableBit();
      if (flipped !== null) {
        this.diskFaults += 1;
        this.trace(`fault bit-flip ${flipped.file}@${flipped.offset}`);
        if (this.diskFaultRandom.chance(0.7)) {
          const crashAtMs = this.clock.nowMs + this.diskFaultRandom.int(1, 2_000);
          if (crashAtMs < this.shape.activeMs) this.queue.push(crashAtMs, () => this.crashBroker('to read a flipped bit'));
        }
      }
      this.scheduleBitFlip();
    });
  }

  private log(level: LogLevel, event: string, fields: LogFields): void {
    const parts: string[] = [];
    for (const key of Object.keys(fields)) parts.push(`${key}=${String(fields[key])}`);
    this.trace(`log ${level} ${event} ${parts.join(' ')}`);
    if (event === 'message-dropped' && typeof fields.clientId === 'string' && typeof fields.topic === 'string' && typeof fields.payloadCrc32c === 'number') {
      // The broker's report of the exact message it dropped for a session: that loss is allowed there.
      const index = this.clientIndex(fields.clientId);
      if (index !== null) this.checker.brokerDropped(index, fields.topic, fields.payloadCrc32c);
      if (fields.reason === 'output-full') {
        this.outputFullDrops += 1;
        if (index !== null) this.checkOutputFull(index, fields.topic);
        if (index !== null) this.checker.outputFullDropped(index, fields.topic, fields.payloadCrc32c);
      }
    }
    if (event === 'keepalive-timeout' && typeof fields.connectionId === 'number' && typeof fields.keepAliveSeconds === 'number') {
      this.checkKeepAliveClose(fields.connectionId, fields.keepAliveSeconds);
    }
    if ((event === 'stream-entry-damaged' || event === 'stream-segment-damaged') && typeof fields.stream === 'string' && typeof fields.file === 'string') {
      // Stream data the disk damaged, found and reported: what it held is excused. Nothing else may look like it.
      if (!this.disk.corruptions.some((corruption) => corruption.file === fields.file)) {
        this.fail('corruption-without-damage', `the broker reported ${event} in ${fields.file} but the disk never damaged it`);
      }
      this.streamChecker.streamDamaged(fields.stream);
    }
    if (event === 'stream-backlog-full') this.checker.noteCoverage('stream-backlog-full');
    // A repair ended a stream at its damage (stream-recovery.ts): what was after the cut is excused.
    if (event === 'stream-cut' && typeof fields.stream === 'string') this.streamChecker.streamDamaged(fields.stream);
    if (event === 'recovered') {
      this.recoveries += 1;
      this.checker.brokerRecovered();
    }
  }

  /**
   * A QoS 0 copy dropped because the receiver's output is full: it must be, give or take the
   * reporting step. The broker's figure is the host's last report plus what the current input
   * sent, and a report is made whenever the real figure moved by a step (or fell to 0), so the
   * real unsent bytes on the receiver's link exceed connectionOutputBytesMax minus one step.
   * Without this the drop report alone would excuse the loss, whatever the buffer held.
   */
  private checkOutputFull(clientIndex: number, topic: string): void {
    let bufferedBytes = 0;
    for (const link of this.network.links.values()) {
      if (link.clientIndex !== clientIndex || !link.brokerOpen) continue;
      bufferedBytes = Math.max(bufferedBytes, link.bytesSentToClient - link.bytesDeliveredToClient);
    }
    const floorBytes = this.config.connectionOutputBytesMax - this.network.outputReportStepBytes;
    if (bufferedBytes <= floorBytes) {
      this.fail(
        'output-full-early',
        `c${clientIndex}: QoS 0 ${topic} dropped as output-full with ${bufferedBytes} bytes unsent (cap ${this.config.connectionOutputBytesMax}, report step ${this.network.outputReportStepBytes})`,
      );
    }
  }

  /**
   * A keepalive close is owed to silence, never to the broker's own throttling: a publisher whose
   * link the broker stopped reading may have sent its PINGREQs in time, and they wait unread. So
   * no keepalive close while reads are paused, nor within 1.5 keepalives of their resume.
   */
  private checkKeepAliveClose(connectionId: number, keepAliveSeconds: number): void {
    const link = this.network.links.get(connectionId);
    if (link === undefined) return;
    const sinceResumeMs = this.clock.nowMs - link.brokerReadsResumedMs;
    if (link.brokerReadsHeld || (link.brokerReadsResumedMs > 0 && sinceResumeMs < Math.floor((keepAliveSeconds * 1000 * 3) / 2))) {
      this.fail(
        'keepalive-close-while-throttled',
        `L${connectionId} (c${link.clientIndex}) closed for keepalive at ${this.clock.nowMs}ms while the broker ${link.brokerReadsHeld ? 'was not reading it' : `had resumed reading it only ${sinceResumeMs}ms before`}`,
      );
    }
  }

  private scheduleFault(): void {
    const mean = this.shape.faultIntervalMsMean;
    if (mean === null) return;
    const atMs = this.clock.nowMs + this.faultRandom.int(1, mean * 2);
    if (atMs >= this.shape.activeMs) return;
    this.queue.push(atMs, () => {
      this.injectFault(this.faultRandom.pick(this.shape.faultKinds));
      this.scheduleFault();
    });
  }

  private injectFault(kind: FaultKind): void {
    const client = this.clients[this.faultRandom.int(0, this.clients.length - 1)]!;
    this.faults += 1;
    this.trace(`fault ${kind} c${client.plan.index}`);
    switch (kind) {
      case 'reset':
        if (client.link?.clientOpen) this.network.reset(client.link);
        return;
      case 'client-reset':
        return client.reset();
      case 'half-open':
        return client.vanish();
      case 'partition':
        return this.network.partition(client.plan.index, Math.min(this.clock.nowMs + this.faultRandom.int(200, 15_000), this.shape.activeMs));
      case 'client-crash':
        return client.crash(this.faultRandom.int(100, 5_000));
      case 'broker-crash':
        return this.crashBroker();
    }
  }

  /** Runs the world to its end (or its first violation). */
  run(eventsMax: number): void {
    this.startBroker();
    for (const plan of this.shape.clients) {
      const client = new ModelClient(plan, Random.stream(this.shape.seed, `client:${plan.index}`), this);
      if (plan.violator) this.checker.markViolator(plan.index);
      if (plan.streamReader !== undefined) this.streamChecker.addReader(plan.index, plan.streamReader, plan.protocolVersion, plan.persistent);
      this.clients.push(client);
      client.start();
    }
    this.startActors();
    this.scheduleFault();
    this.scheduleFullDisk();
    this.scheduleBitFlip();
    const quietAtMs = this.shape.activeMs;
    const livenessAtMs = quietAtMs + this.shape.quietMs;
    this.queue.push(quietAtMs, () => this.goQuiet());
    this.queue.push(livenessAtMs, () => this.checkLiveness());
    this.queue.push(livenessAtMs + this.auditMs, () => this.auditRetained());
    const streamsEndMs = livenessAtMs + this.auditMs + streamAuditMs;
    if (this.streamChecker.active) this.queue.push(streamsEndMs, () => this.auditStreams());
    const endMs = this.streamChecker.active ? streamsEndMs : livenessAtMs + this.auditMs;
    while (this.violation === null && this.unrecoverable === null) {
      const timeMs = this.queue.peekTimeMs();
      if (timeMs === null || timeMs > endMs) break;
      const run = this.queue.popRun();
      this.clock.nowMs = timeMs;
      this.events += 1;
      if (this.events > eventsMax) {
        this.fail('runaway', `more than ${eventsMax} events`);
        break;
      }
      run();
      if (timeMs >= this.keptBytesCheckAtMs) {
        this.keptBytesCheckAtMs = timeMs + keptBytesCheckIntervalMs;
        this.checkKeptBytes('periodic');
      }
    }
    this.checkKeptBytes('end of run');
  }

  /** The rule `kept-bytes-alias` (kept-bytes-check.ts); it reads the broker and traces nothing unless it fails. */
  private checkKeptBytes(when: string): void {
    const broker = this.broker;
    if (broker === null || this.violation !== null) return;
    const alias = keptBytesAlias(broker.core, this.inputChunks);
    if (alias !== null) this.fail('kept-bytes-alias', `${when} (broker #${broker.incarnation}): ${alias}`);
  }

  /**
   * The actors beside the model clients, each with a client index past the auditor's (whose index
   * is the client count): the hostile world's prober. Faults aimed at clients never choose them.
   */
  private startActors(): void {
    const hostile = this.shape.hostile;
    if (hostile !== null) {
      this.prober = new Prober(this.shape.clients.length + 1, hostile.probes, this.config, this);
      this.prober.start();
    }
    for (const planned of this.shape.operator?.commands ?? []) this.queue.push(planned.atMs, () => this.issueAdmin(planned));
    if (this.shape.sysReaders) this.checker.noteCoverage('sys-worlds');
    const identity = this.shape.identity;
    if (identity === null) return;
    const oracle = new AccessOracle(identity);
    const impostorIndex = this.shape.clients.length + 2;
    this.checker.setAccess((client, topic) => oracle.mayRead(client === impostorIndex ? impostorUser : this.shape.clients[client]?.identity?.username, topic));
    this.checker.noteCoverage('identity-worlds');
    if (this.shape.clients.some((client) => client.identity?.verified === true)) this.checker.noteCoverage('verified-peers');
    const plan = identity.impostor;
    if (plan === null) return;
    // The victim's session ends only by a fault of the broker or an amnesty (see impostor.ts): a
    // 3.1.1 clean session of its own would end it, and so would a short session expiry cap.
    const victim = this.shape.clients[plan.victim]!;
    const victimSessionLasts = this.config.sessionExpirySecondsMax >= 1_000_000 && (victim.protocolVersion === 5 || (victim.coverage?.cleanStartGenerations.length ?? 0) === 0);
    this.impostor = new Impostor(impostorIndex, plan, identity.ownerMismatch, victimSessionLasts, this);
    this.impostor.start();
  }

  /** How long the fresh subscriber has to take the whole retained table. */
  private get auditMs(): number {
    return auditMs + (this.shape.retainedPacing?.topicCount ?? 0) * auditMsPerPacedTopic;
  }

  /** The operator's command (operator.ts), as the admin API would hand it to the core; skipped while the broker is down. */
  private issueAdmin(planned: PlannedAdminCommand): void {
    const broker = this.broker;
    const described = `${planned.command.kind} ${'clientId' in planned.command ? planned.command.clientId : 'topic' in planned.command ? planned.command.topic : ''}`;
    if (broker === null || !broker.core.ready || this.quiet) {
      this.trace(`admin ${described} skipped: broker down`);
      return;
    }
    const requestId = this.adminRequestNext++;
    this.trace(`admin #${requestId} ${described}`);
    this.checker.adminRequested(requestId, planned.command, planned.client);
    this.brokerInput((driver) => driver.adminRequest(this.clock.nowMs, requestId, planned.command), broker.incarnation);
  }

  private auditRetained(): void {
    const auditor = this.auditor!;
    if (!auditor.online) return this.fail('liveness-offline', `a fresh subscriber could not connect within ${this.auditMs}ms of a quiet world`);
    this.checker.checkRetained(auditor.plan.index);
  }

  /** The stream rules judged at the end (stream-checker.ts), once every stream auditor has read its stream. */
  private auditStreams(): void {
    for (const auditor of this.streamAuditors) {
      if (!auditor.online) return this.fail('liveness-offline', `stream auditor ${auditor.plan.clientId} could not connect within ${streamAuditMs}ms`);
    }
    this.streamChecker.finish();
  }

  /** One fresh MQTT 5.0 reader per stream, from earliest: what each stream keeps, as a client sees it. */
  private startStreamAuditors(): void {
    for (const stream of this.shape.streams) {
      const index = this.shape.clients.length + 1 + this.streamAuditors.length;
      const reader = { stream: stream.name, filter: `$stream/${stream.name}`, narrow: null, group: null, start: { kind: 'earliest' as const }, disconnectsAtMs: [] };
      const plan: ClientPlan = {
        index,
        clientId: `c${index}`,
        protocolVersion: 5,
        persistent: false,
        keepAliveSeconds: 30,
        subscriptions: [{ filter: reader.filter, qos: 1 }],
        publishes: [],
        will: null,
        ackDelayMsMax: 0,
        cleanReconnectProbability: 0,
        violator: false,
        streamReader: reader,
      };
      this.streamChecker.addReader(index, reader, 5, false, true);
      const auditor = new ModelClient(plan, Random.stream(this.shape.seed, `client:stream-auditor:${stream.name}`), this);
      this.streamAuditors.push(auditor);
      auditor.start();
    }
  }

  private goQuiet(): void {
    this.quiet = true;
    this.network.quiet();
    // The disk heals too: no more errors, and whatever space was short is freed.
    this.disk.faults = { ...noDiskFaults, tornWriteRate: this.shape.disk.tornWriteRate };
    this.trace('quiet: faults stop');
  }

  get deviceStalls(): number {
    return this.device.stalls;
  }

  get isQuiet(): boolean {
    return this.quiet;
  }

  private checkLiveness(): void {
    this.trace('liveness check');
    for (const client of this.clients) {
      if (client.plan.violator) continue;
      if (!client.online) return this.fail('liveness-offline', `c${client.plan.index} is not connected ${this.shape.quietMs}ms after faults stopped`);
      if (!client.settled) {
        return this.fail('liveness-pending', `c${client.plan.index} still has ${client.outgoing.length} publish(es) unacknowledged ${this.shape.quietMs}ms after faults stopped`);
      }
    }
    this.checker.checkDeliveredObligations();
    if (this.violation !== null) return;
    const connected = new Map<number, number>();
    for (const client of this.clients) {
      const link = client.link;
      if (client.online && link?.clientOpen && link.brokerOpen) connected.set(client.plan.index, client.connackAtMs);
    }
    this.checker.checkQos0Delivered(connected);
    if (this.violation !== null) return;
    this.checker.checkRetainedReplays(connected.keys());
    if (this.violation !== null) return;
    const plan: ClientPlan = {
      index: this.shape.clients.length,
      clientId: 'auditor',
      protocolVersion: 5,
      persistent: false,
      keepAliveSeconds: 30,
      // '#' leaves out `$` topics [MQTT-4.7.2-1]: their roots are subscribed to by name.
      subscriptions: [{ filter: '#', qos: 1 }, ...(this.shape.deepTopics ? dollarRoots.map((root) => ({ filter: `${root}/#`, qos: 1 as const })) : [])],
      publishes: [],
      will: null,
      ackDelayMsMax: 0,
      cleanReconnectProbability: 0,
      violator: false,
    };
    this.auditor = new ModelClient(plan, Random.stream(this.shape.seed, 'client:auditor'), this);
    this.auditor.start();
    this.startStreamAuditors();
  }
}

/** The trace line of a segment's arrival (network.ts). */
function segmentLine(toBroker: boolean, linkId: number, bytes: number): string {
  return `net ${toBroker ? 'c>b' : 'b>c'} L${linkId} ${bytes}B`;
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}${error.stack ? ` @ ${error.stack.split('\n')[1]?.trim() ?? ''}` : ''}`;
  return String(error);
}
