/**
 * Starts a Keel broker in this process, on one or several listeners (plain MQTT, MQTT over TLS,
 * WebSocket, WebSocket over TLS: io/listeners/): the one entry point shared by `keel serve` and
 * the integration tests.
 *
 * It resolves the configuration and checks the listeners and their certificates (every problem
 * reported at once, before anything listens), claims the data directory
 * (creates it, locks it against a second process, checks that it can be written), builds the core
 * over the durable state store there, wires it to the Node host through the shared Driver, opens
 * the admin listener if one is configured (io/admin/: health, metrics, the API, the dashboard;
 * off unless the settings have an `admin` key, since in-process servers are mostly tests; `keel
 * serve` supplies one), then lets the core recover what the directory holds, waits until it is
 * ready, and only then listens for MQTT, on every listener or on none (a port in use closes the
 * ones already bound and fails the start). The admin listener comes first so that `/readyz` can
 * say "recovering" during a long recovery. With `warmUpConnections` (off unless set) the server
 * runs that many loopback connections through a throwaway broker between recovery and listening
 * (io/warm-up.ts; `/readyz` says "warming up"). It is off by default because it does not pay for
 * itself on a bare restart: it costs more CPU before listening than the cold connections it makes
 * cheaper would have cost (README, Benchmarks); it pays where a readiness check keeps clients
 * away until the broker is ready (a load balancer, a rolling deploy). The lock is held until
 * `close()` has drained the storage queue, or until the process exits. `close()` is the orderly
 * stop that SIGINT/SIGTERM trigger: stop accepting, let the core say goodbye to every client, wait
 * for the sockets and the storage queue, then resolve. If the core halts, `halted` resolves with
 * its reason; `keel serve` then exits non-zero so that a supervisor restarts it into recovery.
 * `reload()` is what SIGHUP triggers: the password and ACL files, the TLS certificates and the
 * admin token file are read again at once (io/reload.ts); everything else the server was started
 * with needs a restart, and the report says so.
 *
 * With a `cluster` setting the server is a node of a Keel cluster: a NATS link (io/cluster/) carries
 * the core's cluster requests and feeds back what NATS says. It starts once recovery is done,
 * before the listeners open, and the server does not wait for it: a node without NATS serves its
 * local clients (degraded, says `/readyz`) and joins when NATS answers. It closes after the core's
 * goodbye, so the core's last requests still go out.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Authorizer } from '../src/broker/authorizer.js';
import { Broker } from '../src/broker/broker.js';
import { type BrokerConfig, clusterMessageBytesMaxDefault, outputReportStepBytes, outputResumeBytes, resolveConfig } from '../src/config.js';
import type { BrokerCore } from '../src/contract.js';
import { Driver } from '../src/driver.js';
import { DurableStateStore, durableStoreOptionsFor } from '../src/store/durable-store.js';
import { type AdminConfig, resolveAdminConfig, takeAdminSettings } from './admin/admin-config.js';
import { AdminToken } from './admin/admin-token.js';
import type { Operations } from './admin/operations.js';
import { Readiness } from './admin/readiness.js';
import { type AclFile, loadAclFile } from './auth/acl-file.js';
import { type Authentication, loadAuthentication } from './auth/setup.js';
import { MonotonicClock } from './clock.js';
import type { ClusterInput } from './cluster/input-queue.js';
import type { NatsLink, NatsLinkLimits } from './cluster/nats-link.js';
import { lockDataDirectory } from './data-directory-lock.js';
import type { HandshakeFailureCounters } from './listeners/handshake-failures.js';
import type { BoundAddress } from './listeners/listener.js';
import { type ListenerConfig, listenerDefaults } from './listeners/listener-config.js';
import { ListenerSet, type PreparedListeners, prepareListeners } from './listeners/listener-set.js';
import { type ListenerStages, loadListenerStages, needsListenerStages, noListenerStages } from './listeners/stages.js';
import { Logger } from './logger.js';
import { NodeHost, type NodeHostOptions, type WriteBatching } from './node-host.js';
import { probeDataDirectory } from './node-storage.js';
import { packageVersion } from './package-version.js';
import { collectRecoveryGarbage, heapUsedBytes } from './recovery-heap.js';
import { type Reloadable, type ReloadReport, reloadAll } from './reload.js';
import { warmUp, warmUpConcurrency, warmUpConnectionsProblem, warmUpDeadlineMs } from './warm-up.js';

export interface ServerOptions {
  /** Interface of the one plain MQTT listener when `listeners` is absent; 127.0.0.1 (this machine only) unless given, as for `keel serve`. */
  host?: string;
  /** Its port; 0 lets the operating system choose; the chosen port is in the result. */
  port?: number;
  /** Every listener, instead of `host` and `port` (io/listeners/listener-config.ts). */
  listeners?: readonly ListenerConfig[];
  /** Problems found in a `listeners` list before (its bad entries): reported with every other problem. */
  listenerProblems?: readonly string[];
  /** How often WebSocket clients are pinged; one that has not answered by the next ping is closed. */
  webSocketPingIntervalMs?: number;
  /**
   * BrokerConfig keys overriding the defaults, validated with `resolveConfig`; plus `admin`, the
   * admin listener's settings (io/admin/admin-config.ts), which io/ takes out first. No `admin`
   * key: no admin listener.
   */
  config?: Partial<BrokerConfig> | Record<string, unknown>;
  /** Data directory; when absent a fresh temporary one is used and removed on close. */
  dataDirectory?: string;
  /** Defaults to a silent logger: in-process servers are mostly tests. */
  logger?: Logger;
  writeBatching?: WriteBatching;
  /** How long close() waits for clients to go before destroying their sockets. */
  shutdownGraceMs?: number;
  /** Builds the core; tests of the backend pass a scripted fake. */
  createCore?: (config: BrokerConfig, nowMs: number) => BrokerCore;
  /** The cluster link's limits (io/cluster/nats-link.ts), for a `cluster` setting; tests shorten its waits. */
  clusterLimits?: Partial<NatsLinkLimits>;
}

export interface RunningServer {
  /** The first listener's address (the only one without `listeners`). */
  readonly host: string;
  readonly port: number;
  /** Every listener, in the order configured, with the port it is bound to. */
  readonly listeners: readonly BoundAddress[];
  /** Connections each listener gave up on before the core heard of them, by listener name and kind. */
  listenerCounters(): Record<string, HandshakeFailureCounters>;
  readonly config: BrokerConfig;
  readonly dataDirectory: string;
  /** The core this server drives (tests and tools read its counters, e.g. `stats.limits`). */
  readonly core: BrokerCore;
  /** Connections currently open at the TCP level. */
  connectionCount(): number;
  /** Orderly stop; safe to call more than once. */
  close(): Promise<void>;
  /** Resolves with the reason if the core halts (storage failure, damage found in recovery). */
  readonly halted: Promise<string>;
  /** Re-reads the password, ACL and admin token files and the TLS certificates now; never throws (see io/reload.ts). */
  reload(): ReloadReport;
  /** Where the admin listener listens, or null when there is none. */
  readonly admin: { readonly host: string; readonly port: number } | null;
  /** A cluster node's link to NATS, or null for a single broker. */
  readonly clusterLink: NatsLink | null;
}

/** What a running server keeps until it is restarted, as a reload reports it. */
export const restartOnly: readonly string[] = [
  'listeners (protocols, addresses, ports, paths, which certificate files)',
  'admin listener address and port',
  'data directory',
  'settings (--config, including which password and ACL files)',
  'log level',
];

/** A WebSocket peer is pinged this often; proxies commonly drop connections idle for 60 s. */
export const webSocketPingIntervalMsDefault = 30_000;

/** Thrown by `startServer` when the configuration is invalid; `problems` has one line per fault. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? new Logger('silent');
  // Plain listeners need no stage: no await before the core is built (see stages.ts).
  const stages = needsListenerStages(listenerConfigs(options)) ? await loadListenerStages(listenerConfigs(options)) : noListenerStages;
  const { config, admin, listeners: prepared, warmUpConnections } = checkConfiguration(options, logger, stages);
  const access = loadAccess(config, admin, logger);
  const claimed = claimDataDirectory(options.dataDirectory, logger);
  const dataDirectory = claimed.dataDirectory;
  const clock = new MonotonicClock();
  const logLevels = { logDebug: logger.enabled('debug'), logInfo: logger.enabled('info') };
  const core = (options.createCore ?? ((coreConfig, nowMs) => defaultCore(coreConfig, nowMs, access.authentication, access.authorizer, logLevels)))(config, clock.nowMs());
  if (config.cluster !== null && core.clusterStatus === undefined) {
    claimed.release();
    throw new ConfigError(['"cluster" is set, but this broker core cannot run as a cluster node']);
  }
  const readiness = new Readiness();
  // The link feeds the host, which is made below with the link's figures for its metrics.
  let host: NodeHost | null = null;
  const clusterLink = await createClusterLink(config, options, logger, (input) => host?.feedCluster(input));
  if (clusterLink !== null)
    readiness.watchCluster(
      () => clusterLink.isUp,
      () => core.view.clusterReaderHeldAt(),
    );
  // Loaded only when there is an admin listener: the metrics library and its dependencies are
  // 1 to 3 MiB of a broker's resident memory here, for nothing when nobody can scrape them.
  const operations =
    admin === null
      ? null
      : new (await import('./admin/operations.js')).Operations({
          config: admin,
          token: access.token,
          view: core.view,
          readiness,
          clock,
          topicLimits: config,
          version: packageVersion(),
          cluster: clusterLink,
        });
  const halted = readiness.halted;
  host = createHost(options, config, { clock, logger, dataDirectory, onHalt: (reason) => readiness.set('halted', reason) }, operations);
  const driver = new Driver(core, host);
  host.attach(driver);
  if (clusterLink !== null) host.attachCluster(clusterLink);
  let listeners: ListenerSet;
  let adminAddress: net.AddressInfo | null = null;
  try {
    adminAddress = await openAdmin(operations, host, logger);
    readiness.set('recovering');
    const heapBeforeRecovery = heapUsedBytes();
    driver.start(clock.nowMs());
    access.acl?.watch();
    await readyOrHalted(host, halted);
    // Recovery's records are garbage now; an idle broker would keep their pages (io/recovery-heap.ts).
    collectRecoveryGarbage(heapBeforeRecovery);
    clusterLink?.start();
    if (warmUpConnections > 0) {
      readiness.set('warming up');
      await warmUpBeforeListening(warmUpConnections, clock, logger, logLevels.logInfo);
    }
    readiness.set('opening listeners');
    listeners = await ListenerSet.start(prepared, listenerContext(options, config, host, logger));
    const started = listeners;
    operations?.metrics.readHandshakeFailuresFrom(() => started.counters());
  } catch (error) {
    // The lock goes last: nothing may write to the directory once another process can have it.
    access.acl?.close();
    await operations?.close();
    await host.stop(0).catch(() => undefined);
    await clusterLink?.close();
    claimed.release();
    throw error;
  }
  readiness.set('ready');
  for (const bound of listeners.addresses) {
    logger.announce('listening', { host: bound.host, port: bound.port, protocol: bound.protocol, ...(bound.path === null ? {} : { path: bound.path }), listener: bound.name, dataDirectory });
  }

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      readiness.set('stopping');
      // Accepting stops first; the core then says goodbye to the clients it has.
      const listenersClosed = listeners.close();
      await host.stop(options.shutdownGraceMs ?? 3_000);
      await clusterLink?.close();
      await listenersClosed;
      await operations?.close();
      access.acl?.close();
      claimed.release();
      logger.info('stopped', {});
    })();
    return closing;
  };
  const first = listeners.addresses[0]!;
  const reloadables = [...access.reloadables, ...listeners.reloadables(), ...(operations?.reloadables ?? [])];
  return {
    host: first.host,
    port: first.port,
    listeners: listeners.addresses,
    listenerCounters: () => listeners.counters(),
    config,
    dataDirectory,
    core,
    connectionCount: () => host.connections.size,
    close,
    halted,
    reload: () => reloadAll(reloadables, restartOnly),
    admin: adminAddress === null ? null : { host: adminAddress.address, port: adminAddress.port },
    clusterLink,
  };
}

/**
 * The NATS link of a cluster node (not started), or null without a `cluster` setting. The NATS
 * client is loaded only then: it costs every other `keel` command half a second of start-up.
 */
async function createClusterLink(config: BrokerConfig, options: ServerOptions, logger: Logger, deliver: (input: ClusterInput) => void): Promise<NatsLink | null> {
  if (config.cluster === null) return null;
  const { NatsLink } = await import('./cluster/nats-link.js');
  return new NatsLink({
    servers: config.cluster.nats,
    nodeId: config.cluster.nodeId,
    messageBytesMax: config.cluster.messageBytesMax ?? clusterMessageBytesMaxDefault,
    logger,
    deliver,
    ...(options.clusterLimits === undefined ? {} : { limits: options.clusterLimits }),
  });
}

function listenerContext(options: ServerOptions, config: BrokerConfig, host: NodeHost, logger: Logger) {
  return {
    host,
    log: logger.log.bind(logger),
    connectTimeoutMs: config.connectTimeoutMs,
    packetBytesMax: config.packetBytesMax,
    webSocketPingIntervalMs: options.webSocketPingIntervalMs ?? webSocketPingIntervalMsDefault,
  };
}

function createHost(options: ServerOptions, config: BrokerConfig, base: Pick<NodeHostOptions, 'clock' | 'logger' | 'dataDirectory' | 'onHalt'>, operations: Operations | null): NodeHost {
  return new NodeHost({
    ...base,
    writeBatching: options.writeBatching ?? 'input',
    outputReportStepBytes: outputReportStepBytes(config),
    outputResumeBytes: outputResumeBytes(config),
    ...(operations === null ? {} : { onStorageSync: operations.observeSync }),
  });
}

/**
 * Runs the CONNECT path through a throwaway broker on its own loopback port (io/warm-up.ts) and
 * logs one line of what it did; never fails the start (a failed warm-up leaves a cold broker).
 */
async function warmUpBeforeListening(connections: number, clock: MonotonicClock, logger: Logger, logInfo: boolean): Promise<void> {
  try {
    const report = await warmUp({ connections, concurrency: warmUpConcurrency, deadlineMs: warmUpDeadlineMs, clock, logInfo });
    const fields = { connections: report.connected, durationMs: report.durationMs, ...(report.failed === 0 ? {} : { failed: report.failed }), ...(report.timedOut ? { timedOut: true } : {}) };
    if (report.failed === 0) logger.announce('warm-up', fields);
    else logger.warn('warm-up', fields);
  } catch (error) {
    logger.warn('warm-up-failed', { message: (error as Error).message });
  }
}

/** Opens the admin listener, if there is one, before recovery starts (see the module comment). */
async function openAdmin(operations: Operations | null, host: NodeHost, logger: Logger): Promise<net.AddressInfo | null> {
  if (operations === null) return null;
  const address = await operations.listen(host, logger);
  logger.announce('admin-listening', { host: address.address, port: address.port });
  return address;
}

/**
 * Resolves the broker settings, the admin listener's (taken out first: the core's reject unknown
 * keys) and prepares the listeners (their certificates read and checked); every problem of all
 * three is one ConfigError, thrown before anything else happens.
 */
function checkConfiguration(
  options: ServerOptions,
  logger: Logger,
  stages: ListenerStages,
): { config: BrokerConfig; admin: AdminConfig | null; listeners: PreparedListeners; warmUpConnections: number } {
  if (options.listeners !== undefined && (options.host !== undefined || options.port !== undefined)) throw new Error('startServer takes either listeners or host and port, not both');
  const split = takeAdminSettings(options.config ?? {});
  const { warmUpConnections = 0, ...coreSettings } = split.core;
  const warmUpProblem = warmUpConnectionsProblem(warmUpConnections);
  const resolved = resolveConfig(coreSettings);
  const admin = resolveAdminConfig(split.admin, null);
  const configs = listenerConfigs(options);
  if (configs.length === 0 && (options.listenerProblems ?? []).length === 0) throw new ConfigError(['"listeners" must be a non-empty array of listener objects']);
  const prepared = prepareListeners(configs, (level, event, fields) => logger[level](event, fields), stages);
  const problems = [
    ...(resolved.ok ? [] : resolved.problems),
    ...(admin.ok ? [] : admin.problems),
    ...(warmUpProblem === null ? [] : [warmUpProblem]),
    ...(options.listenerProblems ?? []),
    ...('problems' in prepared ? prepared.problems : []),
  ];
  if (!resolved.ok || !admin.ok || 'problems' in prepared || problems.length > 0) throw new ConfigError(problems);
  for (const warning of prepared.warnings) logger.warn('tls-certificate-expiring', { detail: warning });
  return { config: resolved.config, admin: admin.admin, listeners: prepared, warmUpConnections: warmUpConnections as number };
}

/** The listeners to start: the `listeners` given, or one plain listener on `host` and `port`. */
function listenerConfigs(options: ServerOptions): readonly ListenerConfig[] {
  return options.listeners ?? [listenerDefaults('mqtt', options.host ?? '127.0.0.1', options.port ?? 0)];
}

/** A core that halts during recovery never becomes ready: the start fails instead of hanging. */
function readyOrHalted(host: NodeHost, halted: Promise<string>): Promise<void> {
  return Promise.race([
    host.whenReady(),
    halted.then((reason) => {
      throw new Error(`the broker halted while recovering: ${reason}`);
    }),
  ]);
}

interface Access {
  readonly authentication: Authentication;
  readonly authorizer: Authorizer | undefined;
  readonly acl: AclFile | null;
  /** The admin API's bearer token (admin.tokenFile), or null. */
  readonly token: AdminToken | null;
  /** What SIGHUP re-reads of access control; the listeners add their certificates, the admin listener its token. */
  readonly reloadables: Reloadable[];
}

/** The password file, methods, ACL file and admin token file; any problem with them is a ConfigError. */
function loadAccess(config: BrokerConfig, admin: AdminConfig | null, logger: Logger): Access {
  // Password file and enhanced methods (io/auth/): a bad file is a configuration error too.
  const loaded = loadAuthentication(config, logger);
  if ('problems' in loaded) throw new ConfigError(loaded.problems);
  // The ACL file (io/auth/acl-file.ts): a bad file is a configuration error; it is then watched.
  const acl = loadAclFile(config.aclFile, logger);
  if (acl !== null && 'problems' in acl) throw new ConfigError(acl.problems);
  const token = admin?.tokenFile == null ? null : AdminToken.load(admin.tokenFile);
  if (token !== null && 'problem' in token) throw new ConfigError([token.problem]);
  const reloadables: Reloadable[] = [];
  if (loaded.passwordStore !== null) reloadables.push(loaded.passwordStore);
  if (acl !== null) reloadables.push(acl);
  return { authentication: loaded.authentication, authorizer: acl?.authorizer, acl, token, reloadables };
}

interface ClaimedDirectory {
  readonly dataDirectory: string;
  /** Gives up the lock (and removes a temporary directory); safe to call more than once. */
  release(): void;
}

/**
 * Makes the data directory this process's before recovery reads it: created if missing, locked
 * (io/data-directory-lock.ts: a second broker there fails here, naming the first one's PID), and
 * probed for writing (node-storage.ts), so that every reason it cannot be used stops the start
 * with the directory's name, before the broker says it is listening.
 */
function claimDataDirectory(requested: string | undefined, logger: Logger): ClaimedDirectory {
  const temporary = requested === undefined;
  const dataDirectory = requested ?? mkdtempSync(join(tmpdir(), 'keel-data-'));
  try {
    mkdirSync(dataDirectory, { recursive: true });
  } catch (error) {
    throw new Error(`cannot create data directory ${dataDirectory}: ${(error as Error).message}`, { cause: error });
  }
  const lock = lockDataDirectory(dataDirectory, 'keel serve');
  if (lock.replaced !== null) logger.warn('stale-lock-replaced', { file: lock.file, pid: lock.replaced.holder?.pid ?? null, why: lock.replaced.why });
  const release = (): void => {
    lock.release();
    if (temporary) rmSync(dataDirectory, { recursive: true, force: true });
  };
  try {
    probeDataDirectory(dataDirectory);
  } catch (error) {
    release();
    throw error;
  }
  return { dataDirectory, release };
}

function defaultCore(config: BrokerConfig, nowMs: number, authentication: Authentication, authorizer: Authorizer | undefined, logLevels: { logDebug: boolean; logInfo: boolean }): BrokerCore {
  const store = new DurableStateStore(durableStoreOptionsFor(config));
  // Stream entries are stamped with Unix time: the core's clock is monotonic, so the host says
  // once, at start, how far apart the two are (BrokerOptions.wallClockOffsetMs).
  const wallClockOffsetMs = Date.now() - nowMs;
  // Debug and info lines the logger would drop are not built by the core at all (BrokerOptions.logDebug, logInfo).
  return new Broker({ config, nowMs, store, ...logLevels, wallClockOffsetMs, version: `keel ${packageVersion()}`, ...authentication, ...(authorizer === undefined ? {} : { authorizer }) });
}
