/**
 * Starts a Keel broker on a TCP port in this process: the one entry point shared by `keel serve`
 * and the integration tests.
 *
 * It resolves the configuration (every problem reported at once), claims the data directory
 * (creates it, locks it against a second process, checks that it can be written), builds the core
 * over the durable state store there, wires it to the Node host through the shared Driver, opens
 * the admin listener if one is configured (io/admin/: health, metrics, the API, the dashboard;
 * off unless the settings have an `admin` key, since in-process servers are mostly tests; `keel
 * serve` supplies one), then lets the core recover what the directory holds, waits until it is
 * ready, and only then listens for MQTT. The admin listener comes first so that `/readyz` can say
 * "recovering" during a long recovery. The lock is held until
 * `close()` has drained the storage queue, or until the process exits. `close()` is the orderly
 * stop that SIGINT/SIGTERM trigger: stop accepting, let the core say goodbye to every client, wait
 * for the sockets and the storage queue, then resolve. If the core halts, `halted` resolves with
 * its reason; `keel serve` then exits non-zero so that a supervisor restarts it into recovery.
 * `reload()` is what SIGHUP triggers: the password and ACL files and the admin token file are
 * read again at once (io/reload.ts); everything else the server was started with needs a restart, and the report
 * says so.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Authorizer } from '../src/broker/authorizer.js';
import { Broker } from '../src/broker/broker.js';
import { type BrokerConfig, outputReportStepBytes, outputResumeBytes, resolveConfig } from '../src/config.js';
import type { BrokerCore } from '../src/contract.js';
import { Driver } from '../src/driver.js';
import { DurableStateStore, streamLogOptionsFor } from '../src/store/durable-store.js';
import { type AdminConfig, resolveAdminConfig, takeAdminSettings } from './admin/admin-config.js';
import { AdminToken } from './admin/admin-token.js';
import { Operations } from './admin/operations.js';
import { Readiness } from './admin/readiness.js';
import { type AclFile, loadAclFile } from './auth/acl-file.js';
import { type Authentication, loadAuthentication } from './auth/setup.js';
import { MonotonicClock } from './clock.js';
import { lockDataDirectory } from './data-directory-lock.js';
import { Logger } from './logger.js';
import { NodeHost, type NodeHostOptions, type WriteBatching } from './node-host.js';
import { probeDataDirectory } from './node-storage.js';
import { packageVersion } from './package-version.js';
import { type Reloadable, type ReloadReport, reloadAll } from './reload.js';

export interface ServerOptions {
  /** Interface to listen on; 127.0.0.1 (this machine only) unless given, as for `keel serve`. */
  host?: string;
  /** 0 lets the operating system choose; the chosen port is in the result. */
  port?: number;
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
}

export interface RunningServer {
  readonly host: string;
  readonly port: number;
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
  /** Re-reads the password, ACL and admin token files now; never throws (see io/reload.ts). */
  reload(): ReloadReport;
  /** Where the admin listener listens, or null when there is none. */
  readonly admin: { readonly host: string; readonly port: number } | null;
}

/** What a running server keeps until it is restarted, as a reload reports it. */
export const restartOnly: readonly string[] = [
  'listen address and port',
  'admin listener address and port',
  'data directory',
  'settings (--config, including which password and ACL files)',
  'log level',
];

/** Thrown by `startServer` when the configuration is invalid; `problems` has one line per fault. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const { config, admin } = resolveSettings(options.config ?? {});
  const logger = options.logger ?? new Logger('silent');
  const access = loadAccess(config, admin, logger);
  const claimed = claimDataDirectory(options.dataDirectory, logger);
  const dataDirectory = claimed.dataDirectory;
  const clock = new MonotonicClock();
  const logDebug = logger.enabled('debug');
  const core = (options.createCore ?? ((coreConfig, nowMs) => defaultCore(coreConfig, nowMs, access.authentication, access.authorizer, logDebug)))(config, clock.nowMs());
  const readiness = new Readiness();
  const operations = admin === null ? null : new Operations({ config: admin, token: access.token, view: core.view, readiness, clock, topicLimits: config, version: packageVersion() });
  const halted = readiness.halted;
  const host = createHost(options, config, { clock, logger, dataDirectory, onHalt: (reason) => readiness.set('halted', reason) }, operations);
  const driver = new Driver(core, host);
  host.attach(driver);
  const server = net.createServer({ noDelay: true }, (socket) => host.accept(socket));
  let address: net.AddressInfo;
  let adminAddress: net.AddressInfo | null = null;
  try {
    adminAddress = await openAdmin(operations, host, logger);
    readiness.set('recovering');
    driver.start(clock.nowMs());
    access.acl?.watch();
    await readyOrHalted(host, halted);
    readiness.set('opening listeners');
    server.on('error', (error) => logger.error('server-error', { message: error.message }));
    address = await listen(server, options.host ?? '127.0.0.1', options.port ?? 0);
  } catch (error) {
    // The lock goes last: nothing may write to the directory once another process can have it.
    access.acl?.close();
    await operations?.close();
    await host.stop(0).catch(() => undefined);
    claimed.release();
    throw error;
  }
  readiness.set('ready');
  logger.announce('listening', { host: address.address, port: address.port, dataDirectory });

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      readiness.set('stopping');
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      await host.stop(options.shutdownGraceMs ?? 3_000);
      await serverClosed;
      await operations?.close();
      access.acl?.close();
      claimed.release();
      logger.info('stopped', {});
    })();
    return closing;
  };
  return {
    host: address.address,
    port: address.port,
    config,
    dataDirectory,
    core,
    connectionCount: () => host.connections.size,
    close,
    halted,
    reload: () => reloadAll([...access.reloadables, ...(operations?.reloadables ?? [])], restartOnly),
    admin: adminAddress === null ? null : { host: adminAddress.address, port: adminAddress.port },
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

/** Opens the admin listener, if there is one, before recovery starts (see the module comment). */
async function openAdmin(operations: Operations | null, host: NodeHost, logger: Logger): Promise<net.AddressInfo | null> {
  if (operations === null) return null;
  const address = await operations.listen(host, logger);
  logger.announce('admin-listening', { host: address.address, port: address.port });
  return address;
}

/** The core's settings and the admin listener's (taken out first: the core's reject unknown keys). */
function resolveSettings(settings: Record<string, unknown>): { config: BrokerConfig; admin: AdminConfig | null } {
  const split = takeAdminSettings(settings);
  const resolved = resolveConfig(split.core);
  const admin = resolveAdminConfig(split.admin, null);
  const problems = [...(resolved.ok ? [] : resolved.problems), ...(admin.ok ? [] : admin.problems)];
  if (!resolved.ok || !admin.ok) throw new ConfigError(problems);
  return { config: resolved.config, admin: admin.admin };
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
  /** What SIGHUP re-reads; TLS certificates will join here when listeners get them. */
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

function defaultCore(config: BrokerConfig, nowMs: number, authentication: Authentication, authorizer: Authorizer | undefined, logDebug: boolean): BrokerCore {
  const store = new DurableStateStore({
    syncPolicy: config.syncPolicy,
    syncIntervalMs: config.syncIntervalMs,
    segmentBytesMax: config.segmentBytesMax,
    snapshotLogBytes: config.snapshotLogBytes,
    writeBytesMax: 4 * 1024 * 1024,
    streams: streamLogOptionsFor(config),
  });
  // Stream entries are stamped with Unix time: the core's clock is monotonic, so the host says
  // once, at start, how far apart the two are (BrokerOptions.wallClockOffsetMs).
  const wallClockOffsetMs = Date.now() - nowMs;
  // Debug lines the logger would drop are not built by the core at all (BrokerOptions.logDebug).
  return new Broker({ config, nowMs, store, logDebug, wallClockOffsetMs, version: `keel ${packageVersion()}`, ...authentication, ...(authorizer === undefined ? {} : { authorizer }) });
}

function listen(server: net.Server, host: string, port: number): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve(server.address() as net.AddressInfo);
    });
  });
}
