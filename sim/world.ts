/**
 * One simulated world: a clock, the event queue, the network, the disk, one broker at a time
 * (driven through the production Driver over a simulated Host), the model clients, the fault
 * injector and the checker.
 *
 * The run has two phases. While active (0..activeMs), clients follow their scripts and faults
 * strike at random: resets, half-open links, partitions, client crashes and broker crashes
 * (discard the Broker and Driver; every link dies; after a delay a new Broker starts over the
 * same store). Then the world goes quiet (no faults, no stalls) for quietMs, long enough for
 * every client to reconnect and every pending delivery to complete; liveness is judged at its
 * end, and last a fresh subscriber audits the retained table.
 *
 * Everything that happens is a trace line, fed to the run's hash; the last lines are kept for
 * the report when a rule breaks. The first violation stops the run.
 */
import { Broker, type BrokerOptions } from '../src/broker/broker.js';
import { resolveConfig, type BrokerConfig } from '../src/config.js';
import type { BrokerCore, ConnectionId, LogFields, LogLevel, StorageRequest } from '../src/contract.js';
import { MemoryStateStore } from '../src/store/memory-store.js';
import type { StateStore } from '../src/store/state-store.js';
import { Driver, type Host } from '../io/driver.js';
import { Checker } from './checker.js';
import { ModelClient, type ClientContext } from './clients/model-client.js';
import { SimDisk } from './disk.js';
import { EventQueue } from './event-queue.js';
import { Network, type Link } from './network.js';
import { Random } from './random.js';
import type { ClientPlan, FaultKind, WorldShape } from './shape.js';
import { TraceHash } from './trace-hash.js';

export type BrokerFactory = (options: BrokerOptions) => BrokerCore;

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

export class World implements ClientContext {
  readonly clock = { nowMs: 0 };
  readonly queue = new EventQueue();
  readonly network: Network;
  readonly checker: Checker;
  readonly clients: ModelClient[] = [];
  readonly hash = new TraceHash();
  readonly config: BrokerConfig;
  private readonly disk: SimDisk;
  private readonly faultRandom: Random;
  private readonly store: StateStore;
  private broker: RunningBroker | null = null;
  private incarnationNext = 1;
  private wakeupToken = 0;
  private recent: string[] = [];
  private quiet = false;
  violation: Violation | null = null;
  events = 0;
  faults = 0;
  brokerRestarts = 0;
  auditor: ModelClient | null = null;

  constructor(
    readonly shape: WorldShape,
    private readonly brokerFactory: BrokerFactory,
    private readonly traceSink: ((line: string) => void) | null,
    storeFactory: () => StateStore = () => new MemoryStateStore(),
  ) {
    const resolved = resolveConfig(shape.configOverrides as Record<string, unknown>);
    if (!resolved.ok) throw new Error(`bad simulated config: ${resolved.problems.join('; ')}`);
    this.config = resolved.config;
    this.network = new Network(this.queue, Random.stream(shape.seed, 'network'), shape.network, this.clock, (line, bytes) => this.trace(line, bytes));
    this.checker = new Checker(this.clock, (rule, detail) => this.violation === null && this.fail(rule, detail));
    this.disk = new SimDisk(Random.stream(shape.seed, 'disk'));
    this.faultRandom = Random.stream(shape.seed, 'faults');
    this.store = storeFactory();
    this.network.broker = {
      acceptingIncarnation: () => (this.broker !== null && this.broker.core.ready ? this.broker.incarnation : null),
      opened: (link) => this.brokerInput((driver) => driver.connectionOpened(this.clock.nowMs, link.id, `sim:c${link.clientIndex}`)),
      bytes: (link, bytes) => this.brokerInput((driver) => driver.bytesReceived(this.clock.nowMs, link.id, bytes)),
      closed: (link) => this.brokerInput((driver) => driver.connectionClosed(this.clock.nowMs, link.id)),
    };
  }

  private clientIndex(clientId: string): number | null {
    const index = this.shape.clients.findIndex((plan) => plan.clientId === clientId);
    if (index >= 0) return index;
    return this.auditor !== null && clientId === this.auditor.plan.clientId ? this.auditor.plan.index : null;
  }

  trace(line: string, bytes?: Uint8Array): void {
    const text = `${this.clock.nowMs} ${line}`;
    this.hash.text(text);
    if (bytes !== undefined) this.hash.bytes(bytes);
    if (this.traceSink !== null) this.traceSink(text);
    this.recent.push(text);
    if (this.recent.length > recentEventsKept * 2) this.recent = this.recent.slice(-recentEventsKept);
  }

  /** ClientContext: the client saw the broker break the protocol. */
  reportViolation(rule: string, detail: string): void {
    this.fail(rule, detail);
  }

  fail(rule: string, detail: string): void {
    if (this.violation !== null) return;
    this.trace(`VIOLATION ${rule}: ${detail}`);
    this.violation = { rule, detail, atMs: this.clock.nowMs, recentEvents: this.recent.slice(-recentEventsKept) };
  }

  /** Runs an input through the current broker's driver; a throw from the broker is a failed run. */
  private brokerInput(input: (driver: Driver) => void, incarnation?: number): void {
    const broker = this.broker;
    if (broker === null || (incarnation !== undefined && incarnation !== broker.incarnation)) return;
    try {
      input(broker.driver);
    } catch (error) {
      this.fail('broker-threw', errorText(error));
    }
  }

  private startBroker(): void {
    const incarnation = this.incarnationNext++;
    this.trace(`broker start #${incarnation}`);
    try {
      const core = this.brokerFactory({ config: this.config, nowMs: this.clock.nowMs, store: this.store });
      const driver = new Driver(core, this.hostFor(incarnation));
      this.broker = { incarnation, core, driver };
      driver.start(this.clock.nowMs);
    } catch (error) {
      this.fail('broker-threw', `while starting: ${errorText(error)}`);
    }
  }

  private crashBroker(): void {
    const broker = this.broker;
    if (broker === null) return;
    this.trace(`fault broker-crash #${broker.incarnation}`);
    this.broker = null;
    this.brokerRestarts += 1;
    this.checker.brokerCrashed();
    this.network.brokerCrashed(broker.incarnation);
    this.disk.crash();
    this.queue.push(this.clock.nowMs + this.faultRandom.int(50, 3_000), () => this.startBroker());
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
        this.network.brokerClose(linkOf(connectionId));
      },
      storage: (request) => this.storage(incarnation, request),
      log: (level, event, fields) => this.log(level, event, fields),
      setWakeup: (deadlineMs) => {
        const token = ++this.wakeupToken;
        if (deadlineMs === null) return;
        this.queue.push(Math.max(deadlineMs, this.clock.nowMs), () => {
          if (token !== this.wakeupToken) return;
          this.brokerInput((driver) => driver.tick(this.clock.nowMs), incarnation);
        });
      },
    };
  }

  private storage(incarnation: number, request: StorageRequest): void {
    this.queue.push(this.disk.completionMs(this.clock.nowMs), () => {
      if (this.broker === null || this.broker.incarnation !== incarnation) return;
      const result = this.disk.execute(request);
      this.trace(`disk ${request.op} #${request.requestId} ${result.ok ? 'ok' : result.code}`);
      this.brokerInput((driver) => driver.storageCompleted(this.clock.nowMs, result), incarnation);
    });
  }

  private log(level: LogLevel, event: string, fields: LogFields): void {
    const parts: string[] = [];
    for (const key of Object.keys(fields)) parts.push(`${key}=${String(fields[key])}`);
    this.trace(`log ${level} ${event} ${parts.join(' ')}`);
    if (event === 'message-dropped' && typeof fields.clientId === 'string') {
      // The broker's report of a message it dropped for a session (a full queue): one loss allowed there.
      const index = this.clientIndex(fields.clientId);
      if (index !== null) this.checker.brokerDropped(index);
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
        if (client.link !== null && client.link.clientOpen) this.network.reset(client.link);
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
      this.clients.push(client);
      client.start();
    }
    this.scheduleFault();
    const quietAtMs = this.shape.activeMs;
    const livenessAtMs = quietAtMs + this.shape.quietMs;
    this.queue.push(quietAtMs, () => this.goQuiet());
    this.queue.push(livenessAtMs, () => this.checkLiveness());
    this.queue.push(livenessAtMs + auditMs, () => this.auditRetained());
    const endMs = livenessAtMs + auditMs;
    while (this.violation === null) {
      const event = this.queue.pop();
      if (event === undefined || event.timeMs > endMs) break;
      this.clock.nowMs = event.timeMs;
      this.events += 1;
      if (this.events > eventsMax) {
        this.fail('runaway', `more than ${eventsMax} events`);
        break;
      }
      event.run();
    }
  }

  private auditRetained(): void {
    const auditor = this.auditor!;
    if (!auditor.online) return this.fail('liveness-offline', `a fresh subscriber could not connect within ${auditMs}ms of a quiet world`);
    this.checker.checkRetained(auditor.plan.index);
  }

  private goQuiet(): void {
    this.quiet = true;
    this.network.quiet();
    this.trace('quiet: faults stop');
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
    const plan: ClientPlan = {
      index: this.shape.clients.length,
      clientId: 'auditor',
      protocolVersion: 5,
      persistent: false,
      keepAliveSeconds: 30,
      subscriptions: [{ filter: '#', qos: 1 }],
      publishes: [],
      will: null,
      ackDelayMsMax: 0,
      cleanReconnectProbability: 0,
      violator: false,
    };
    this.auditor = new ModelClient(plan, Random.stream(this.shape.seed, 'client:auditor'), this);
    this.auditor.start();
  }
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}${error.stack ? ` @ ${error.stack.split('\n')[1]?.trim() ?? ''}` : ''}`;
  return String(error);
}
