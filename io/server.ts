/**
 * Starts a Keel broker on a TCP port in this process: the one entry point shared by `keel serve`
 * and the integration tests.
 *
 * It resolves the configuration (every problem reported at once), claims the data directory
 * (creates it, locks it against a second process, checks that it can be written), builds the core
 * over the durable state store there (recovering what it holds), wires it to the Node host through
 * the shared Driver, waits until the core is ready, and only then listens. The lock is held until
 * `close()` has drained the storage queue, or until the process exits. `close()` is the orderly
 * stop that SIGINT/SIGTERM trigger: stop accepting, let the core say goodbye to every client, wait
 * for the sockets and the storage queue, then resolve. If the core halts, `halted` resolves with
 * its reason; `keel serve` then exits non-zero so that a supervisor restarts it into recovery.
 * `reload()` is what SIGHUP triggers: the password and ACL files are read again at once
 * (io/reload.ts); everything else the server was started with needs a restart, and the report
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
import { type AclFile, loadAclFile } from './auth/acl-file.js';
import { type Authentication, loadAuthentication } from './auth/setup.js';
import { MonotonicClock } from './clock.js';
import { lockDataDirectory } from './data-directory-lock.js';
import { Logger } from './logger.js';
import { NodeHost, type WriteBatching } from './node-host.js';
import { probeDataDirectory } from './node-storage.js';
import { packageVersion } from './package-version.js';
import { type Reloadable, type ReloadReport, reloadAll } from './reload.js';

export interface ServerOptions {
  /** Interface to listen on; 127.0.0.1 (this machine only) unless given, as for `keel serve`. */
  host?: string;
  /** 0 lets the operating system choose; the chosen port is in the result. */
  port?: number;
  /** BrokerConfig keys overriding the defaults; validated with `resolveConfig`. */
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
  /** Re-reads the password and ACL files now; never throws (see io/reload.ts). */
  reload(): ReloadReport;
}

/** What a running server keeps until it is restarted, as a reload reports it. */
export const restartOnly: readonly string[] = ['listen address and port', 'data directory', 'settings (--config, including which password and ACL files)', 'log level'];

/** Thrown by `startServer` when the configuration is invalid; `problems` has one line per fault. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const resolved = resolveConfig((options.config ?? {}) as Record<string, unknown>);
  if (!resolved.ok) throw new ConfigError(resolved.problems);
  const config = resolved.config;
  const logger = options.logger ?? new Logger('silent');
  const access = loadAccess(config, logger);
  const claimed = claimDataDirectory(options.dataDirectory, logger);
  const dataDirectory = claimed.dataDirectory;
  const clock = new MonotonicClock();
  const logDebug = logger.enabled('debug');
  const createCore = options.createCore ?? ((coreConfig: BrokerConfig, nowMs: number) => defaultCore(coreConfig, nowMs, access.authentication, access.authorizer, logDebug));
  const core = createCore(config, clock.nowMs());
  let reportHalt: (reason: string) => void = () => undefined;
  const halted = new Promise<string>((resolve) => (reportHalt = resolve));
  const host = new NodeHost({
    clock,
    logger,
    dataDirectory,
    writeBatching: options.writeBatching ?? 'input',
    onHalt: (reason) => reportHalt(reason),
    outputReportStepBytes: outputReportStepBytes(config),
    outputResumeBytes: outputResumeBytes(config),
  });
  const driver = new Driver(core, host);
  host.attach(driver);
  driver.start(clock.nowMs());
  access.acl?.watch();
  const server = net.createServer({ noDelay: true }, (socket) => host.accept(socket));
  let address: net.AddressInfo;
  try {
    await readyOrHalted(host, halted);
    server.on('error', (error) => logger.error('server-error', { message: error.message }));
    address = await listen(server, options.host ?? '127.0.0.1', options.port ?? 0);
  } catch (error) {
    // The lock goes last: nothing may write to the directory once another process can have it.
    access.acl?.close();
    await host.stop(0).catch(() => undefined);
    claimed.release();
    throw error;
  }
  logger.announce('listening', { host: address.address, port: address.port, dataDirectory });

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
      await host.stop(options.shutdownGraceMs ?? 3_000);
      await serverClosed;
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
    reload: () => reloadAll(access.reloadables, restartOnly),
  };
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
  /** What SIGHUP re-reads; TLS certificates will join here when listeners get them. */
  readonly reloadables: Reloadable[];
}

/** The password file, methods and ACL file; any problem with them is a ConfigError. */
function loadAccess(config: BrokerConfig, logger: Logger): Access {
  // Password file and enhanced methods (io/auth/): a bad file is a configuration error too.
  const loaded = loadAuthentication(config, logger);
  if ('problems' in loaded) throw new ConfigError(loaded.problems);
  // The ACL file (io/auth/acl-file.ts): a bad file is a configuration error; it is then watched.
  const acl = loadAclFile(config.aclFile, logger);
  if (acl !== null && 'problems' in acl) throw new ConfigError(acl.problems);
  const reloadables: Reloadable[] = [];
  if (loaded.passwordStore !== null) reloadables.push(loaded.passwordStore);
  if (acl !== null) reloadables.push(acl);
  return { authentication: loaded.authentication, authorizer: acl?.authorizer, acl, reloadables };
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
