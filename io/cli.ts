#!/usr/bin/env -S node --max-semi-space-size=4
/**
 * `keel`: the command line. `serve` runs the broker; `passwd` edits its password file; `pub` and `sub` are small clients in the
 * manner of mosquitto_pub/sub; `sim` and `vopr` run the deterministic simulator.
 *
 * The first line is the launcher, and it sizes V8's young generation for a broker: at most 4 MiB
 * per semi-space instead of Node's 16. Under a flood towards a stalled QoS 1 subscriber most
 * messages live for milliseconds in the stalled session's queue, V8 reads that survival as a
 * reason to grow the young generation to its maximum, and the process held ~50 MiB of heap for
 * ~20 MiB in use (peak RSS 104 MiB; with the flag 83 MiB, throughput unchanged, measured with
 * `npm run bench`). `npm start` passes the same flag (a test keeps the two equal); running
 * `node dist/io/cli.js` directly uses Node's defaults.
 *
 * Exit codes: 0 success; 1 a runtime failure (cannot listen, cannot connect, refused, a seed that
 * broke a rule); 2 a usage or configuration error, with every problem printed; 3 a client timeout
 * (-W); 141 the reader of the output went away (sim, vopr, sub, inspect; see broken-pipe.ts).
 * `serve` stops in an orderly way on SIGINT/SIGTERM and exits 0 within a bounded time (a signal
 * during start-up takes effect once the broker has started; a second one ends it at once);
 * SIGHUP makes it re-read its password, ACL and admin token files and log what it reloaded (it never ends the
 * process, which is Node's default for SIGHUP).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { adminDefaults } from './admin/admin-config.js';
import { passwdCommand } from './auth/passwd-command.js';
import { exitQuietlyOnBrokenPipe } from './broken-pipe.js';
import { parsePort } from './client-options.js';
import { DataDirectoryLockedError, withDataDirectoryLock } from './data-directory-lock.js';
import { formatInspectReport, inspectDataDirectory, repairDataDirectory } from './inspect.js';
import { chooseListeners } from './listeners/command-line.js';
import type { ListenerConfig } from './listeners/listener-config.js';
import { isLogThreshold, Logger, type LogThreshold } from './logger.js';
import { packageVersion } from './package-version.js';
import { pubCommand } from './pub-command.js';
import { reloadLogFields } from './reload.js';
import { ConfigError, type RunningServer, startServer } from './server.js';
import { simCommand, voprCommand } from './sim-commands.js';
import { streamCommand } from './stream-command.js';
import { subCommand } from './sub-command.js';
import { warmUpConnectionsProblem, warmUpConnectionsSuggested } from './warm-up.js';

/** The orderly stop must finish within this, or the process exits anyway (with 1). */
const shutdownDeadlineMs = 10_000;
/**
 * Without --host the broker is reachable from this machine only, as Mosquitto 2 is until a
 * listener is configured: a broker that allows anonymous clients by default must not be open to
 * the network by default too. Opening it up is one explicit flag.
 */
const hostDefault = '127.0.0.1';

interface ServeFlags {
  port: number;
  host?: string;
  config?: string;
  dataDir: string;
  logLevel: LogThreshold;
  passwordFile?: string;
  aclFile?: string;
  adminPort?: number;
  /** False with --no-admin. */
  admin: boolean;
  tlsPort?: number;
  wsPort?: number;
  wssPort?: number;
  wsPath?: string;
  cert?: string;
  key?: string;
  ca?: string;
  requireClientCertificate?: boolean;
  identityAsUsername?: boolean;
  /** --warm-up-connections: overrides warmUpConnections. */
  warmUpConnections?: number;
  /** --cluster, each occurrence possibly a comma list. */
  cluster?: string[];
  nodeId?: string;
}

export function buildProgram(): Command {
  const program = new Command('keel')
    .description('Keel: an MQTT 3.1.1 and 5.0 broker built as a deterministic state machine')
    .version(packageVersion(), '--version')
    // Usage errors exit 2 (commander's default is 1, which we keep for runtime failures).
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  program
    .command('serve')
    .description('run the broker')
    .option('-p, --port <port>', 'TCP port (0: chosen by the operating system)', parsePort, 1883)
    .option('-H, --host <host>', `interface to listen on (default: ${hostDefault}, this machine only; 0.0.0.0 for every interface)`)
    .option('-c, --config <file>', 'JSON file of BrokerConfig settings')
    .option('-d, --data-dir <dir>', 'data directory', './data')
    .option('-l, --log-level <level>', 'debug, info, warn, error or silent', parseLogLevel, 'info')
    .option('--password-file <file>', 'check user names and passwords against this file (see keel passwd); overrides passwordFile')
    .option('--acl-file <file>', 'allow topics to users by the rules in this file (reloaded when it changes); overrides aclFile')
    .option(
      '--admin-port <port>',
      `admin listener port: health, /metrics, the API and the dashboard (default: ${adminDefaults.port} on ${adminDefaults.host}; 0: chosen by the operating system); overrides admin.port`,
      parsePort,
    )
    .option('--no-admin', 'no admin listener (as "admin": null in the config file)')
    .option(
      '--warm-up-connections <n>',
      `before listening, run this many throwaway loopback connections through the CONNECT path (a warm start; ${warmUpConnectionsSuggested} is enough; default 0: none); overrides warmUpConnections`,
      parseWarmUpConnections,
    )
    .option('--tls-port <port>', 'also listen for MQTT over TLS on this port (needs --cert and --key)', parsePort)
    .option('--ws-port <port>', 'also listen for MQTT over WebSocket on this port', parsePort)
    .option('--wss-port <port>', 'also listen for MQTT over secure WebSocket on this port (needs --cert and --key)', parsePort)
    .option('--ws-path <path>', 'URL path of the WebSocket listeners (default: /mqtt)')
    .option('--cert <file>', 'TLS certificate (PEM) of the --tls-port and --wss-port listeners; reloaded when it changes')
    .option('--key <file>', 'private key (PEM) of --cert')
    .option('--ca <file>', 'CA certificates (PEM) that client certificates must verify against')
    .option('--require-client-certificate', 'TLS clients must present a certificate that verifies against --ca')
    .option('--identity-as-username', "a client certificate's subject CN is the client's user name (needs --require-client-certificate)")
    .option('--cluster <url>', 'run as a node of a Keel cluster through this NATS server (nats://host:4222; repeat or comma-separate for several); overrides cluster.nats', collectList)
    .option('--node-id <id>', "this node's name in the cluster ([A-Za-z0-9_-]{1,32}, unique, the same across restarts); overrides cluster.nodeId")
    .action(serve);
  program
    .command('inspect')
    .description('show what a data directory holds and verify every checksum (exit 1 when damaged)')
    .argument('<dir>', 'data directory')
    .option('--repair', 'cut the log at the first damaged record, keeping a copy of what is cut (loses the records after it)')
    .action(inspect);
  program.addCommand(inheritExit(passwdCommand(), program));
  program.addCommand(inheritExit(pubCommand(), program));
  program.addCommand(inheritExit(subCommand(), program));
  program.addCommand(inheritExit(simCommand(), program));
  program.addCommand(inheritExit(voprCommand(), program));
  const stream = inheritExit(streamCommand(), program);
  for (const subcommand of stream.commands) inheritExit(subcommand, program);
  program.addCommand(stream);
  return program;
}

function inheritExit(command: Command, program: Command): Command {
  return command.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2)).configureOutput(program.configureOutput());
}

function parseWarmUpConnections(value: string): number {
  const count = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  const problem = warmUpConnectionsProblem(count);
  if (problem !== null) throw new InvalidArgumentError(problem.replace('warmUpConnections ', ''));
  return count;
}

function parseLogLevel(value: string): LogThreshold {
  if (!isLogThreshold(value)) throw new InvalidArgumentError('must be debug, info, warn, error or silent');
  return value;
}

/** What the signal handlers of `serve` share; they are installed before the broker starts. */
interface ServeState {
  /** Null until the broker listens. */
  server: RunningServer | null;
  /** Set by the first SIGINT or SIGTERM, or by a halt. */
  stopping: boolean;
}

async function serve(flags: ServeFlags, command: Command): Promise<void> {
  const overrides = flags.config === undefined ? {} : readConfigFile(flags.config);
  if (flags.passwordFile !== undefined) overrides.passwordFile = flags.passwordFile;
  if (flags.aclFile !== undefined) overrides.aclFile = flags.aclFile;
  applyAdminFlags(overrides, flags);
  applyClusterFlags(overrides, flags);
  if (flags.warmUpConnections !== undefined) overrides.warmUpConnections = flags.warmUpConnections;
  const listening = chooseServeListeners(flags, command, overrides);
  const logger = new Logger(flags.logLevel);
  const state: ServeState = { server: null, stopping: false };
  // Installed before the start: a signal that arrived between the listening line and a later
  // installation would meet Node's default action and end the process on the spot.
  process.on('SIGHUP', (signal) => reloadOnSignal(signal, state, logger));
  process.on('SIGINT', (signal) => requestStop(signal, state, logger));
  process.on('SIGTERM', (signal) => requestStop(signal, state, logger));
  const host = flags.host ?? hostDefault;
  let running: RunningServer;
  try {
    const where = listening === null ? { host, port: flags.port } : { listeners: listening.listeners, listenerProblems: listening.problems };
    running = await startServer({ ...where, config: overrides, dataDirectory: flags.dataDir, logger });
  } catch (error) {
    if (error instanceof ConfigError) fail(2, `invalid configuration${flags.config === undefined ? '' : ` in ${flags.config}`}:\n  ${error.problems.join('\n  ')}`);
    const message = (error as Error).message;
    const hint = /corrupt (log|snapshot)/.test(message)
      ? `\n  see what is damaged with: keel inspect ${flags.dataDir}\n  start from the readable part with: keel inspect ${flags.dataDir} --repair`
      : '';
    // A listener's own error names its address; others are about the whole start.
    fail(1, message.startsWith('cannot listen on ') ? `cannot start: ${message}` : `cannot start on ${host}:${flags.port}: ${message}${hint}`);
  }
  state.server = running;
  // A defaulted --host (no listeners list) is the local-only case; otherwise each listener is judged.
  if (listening === null || (!listening.fromFile && flags.host === undefined)) warnAboutExposure(running, flags.host === undefined, logger);
  else warnAboutListeners(running, listening.listeners, logger);
  // A stop asked for while the broker was starting waited for the start to finish.
  if (state.stopping) stopServer(running, logger);
  void running.halted.then(async (reason) => {
    // The core stopped taking input: close what is left and exit non-zero for a supervisor.
    state.stopping = true;
    setTimeout(() => process.exit(1), 2_000).unref();
    await running.close().catch(() => undefined);
    process.stderr.write(`keel: the broker halted: ${reason}\n`);
    process.exit(1);
  });
}

/** Commander's collector for a repeatable option whose values may also be comma lists. */
function collectList(value: string, previous: string[] | undefined): string[] {
  return [
    ...(previous ?? []),
    ...value
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part !== ''),
  ];
}

/**
 * --cluster and --node-id fill the `cluster` setting (src/config.ts checks it): each replaces its
 * field of a `cluster` object from the config file; given alone, the other must come from the file,
 * else the configuration check names what is missing.
 */
function applyClusterFlags(overrides: Record<string, unknown>, flags: ServeFlags): void {
  if (flags.cluster === undefined && flags.nodeId === undefined) return;
  const configured = overrides.cluster;
  const base = typeof configured === 'object' && configured !== null ? (configured as Record<string, unknown>) : {};
  overrides.cluster = { ...base, ...(flags.cluster === undefined ? {} : { nats: flags.cluster }), ...(flags.nodeId === undefined ? {} : { nodeId: flags.nodeId }) };
}

/**
 * `keel serve` has an admin listener unless told otherwise (startServer has none without an
 * `admin` key): the config file's `admin` settings, or the defaults, with --admin-port's port;
 * --no-admin or `"admin": null` turns it off (an explicit --admin-port turns it back on).
 */
function applyAdminFlags(overrides: Record<string, unknown>, flags: ServeFlags): void {
  if (!flags.admin) {
    overrides.admin = null;
    return;
  }
  const configured = overrides.admin;
  if (configured === undefined) overrides.admin = { ...adminDefaults };
  if (flags.adminPort === undefined) return;
  const base = typeof configured === 'object' && configured !== null ? configured : adminDefaults;
  overrides.admin = { ...base, port: flags.adminPort };
}

/**
 * The first SIGINT or SIGTERM stops the broker in an orderly way; while it is still starting
 * (recovering), once it has started. A second one during the start ends the process at once,
 * which recovery is built to survive, for an operator who will not wait.
 */
function requestStop(signal: NodeJS.Signals, state: ServeState, logger: Logger): void {
  if (state.stopping) {
    if (state.server !== null) return;
    logger.warn('shutdown-forced', { signal });
    process.exit(1);
  }
  state.stopping = true;
  logger.info('shutdown', { signal, ...(state.server === null ? { when: 'once started' } : {}) });
  if (state.server !== null) stopServer(state.server, logger);
}

/** Orderly stop, bounded by shutdownDeadlineMs; the process exits 0, or 1 if it failed or took too long. */
function stopServer(server: RunningServer, logger: Logger): void {
  setTimeout(() => {
    logger.error('shutdown-timeout', { deadlineMs: shutdownDeadlineMs });
    process.exit(1);
  }, shutdownDeadlineMs).unref();
  server.close().then(
    () => process.exit(0),
    (error: Error) => {
      logger.error('shutdown-failed', { message: error.message });
      process.exit(1);
    },
  );
}

/**
 * Says who can reach the broker when that may surprise: only this machine (the default), or
 * everyone who can reach the port, without a password.
 */
function warnAboutExposure(server: RunningServer, hostDefaulted: boolean, logger: Logger): void {
  if (hostDefaulted) {
    logger.warn('local-only', { host: server.host, hint: 'reachable from this machine only; pass --host 0.0.0.0 (every interface) or an address of this machine to accept other clients' });
    return;
  }
  const anonymous = server.config.passwordFile === null || server.config.allowAnonymous === true;
  if (anonymous && !isLoopback(server.host)) {
    logger.warn('anonymous-access', { host: server.host, hint: 'anyone who can reach this port may connect without a password; see --password-file and allowAnonymous' });
  }
}

/**
 * The listeners' version of the exposure warnings: one `anonymous-access` line per listener that
 * anyone who reaches it may use without a password (not on loopback, anonymous clients allowed,
 * and no verified client certificate standing in for a user name).
 */
function warnAboutListeners(server: RunningServer, listeners: readonly ListenerConfig[], logger: Logger): void {
  const anonymous = server.config.passwordFile === null || server.config.allowAnonymous === true;
  listeners.forEach((listener, index) => {
    const verified = listener.requireClientCertificate && listener.identityAsUsername;
    if (anonymous && !verified && !isLoopback(listener.host)) {
      logger.warn('anonymous-access', { listener: server.listeners[index]!.name, hint: 'anyone who can reach this listener may connect without a password; see --password-file and allowAnonymous' });
    }
  });
}

/**
 * The listeners of `keel serve` (io/listeners/command-line.ts): null for the one plain listener of
 * --host and --port. A usage error ends the process with exit 2; problems of the file's list go
 * to startServer with the list's good entries, to be reported with all the others. The list is
 * taken out of `overrides`, since the broker's settings do not include it.
 */
function chooseServeListeners(flags: ServeFlags, command: Command, overrides: Record<string, unknown>): { listeners: ListenerConfig[]; fromFile: boolean; problems: string[] } | null {
  const fileListeners = overrides.listeners;
  delete overrides.listeners;
  const configDirectory = flags.config === undefined ? process.cwd() : dirname(resolve(flags.config));
  const choice = chooseListeners({ ...flags, portGiven: command.getOptionValueSource('port') === 'cli' }, fileListeners, configDirectory, hostDefault);
  if (choice.kind === 'usage') fail(2, `serve: ${choice.message}\n(see keel serve --help)`);
  if (choice.kind === 'problems') return { listeners: choice.listeners, fromFile: true, problems: choice.problems };
  return choice.kind === 'listeners' ? { listeners: choice.listeners, fromFile: choice.fromFile, problems: [] } : null;
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

/** Reloads what a running server can reload, and says in one log line what changed and what did not. */
function reloadOnSignal(signal: NodeJS.Signals, state: ServeState, logger: Logger): void {
  if (state.server === null || state.stopping) {
    const reason = state.stopping ? 'stopping' : 'starting (it reads its files as it starts; send SIGHUP again once it listens)';
    logger.announce('reload-skipped', { signal, reason });
    return;
  }
  const report = state.server.reload();
  const fields = { signal, ...reloadLogFields(report) };
  // A file that could not be used is worth a warning; its own warning says why in detail.
  if (report.outcomes.every((outcome) => outcome.ok)) logger.announce('reload', fields);
  else logger.warn('reload', fields);
}

function inspect(directory: string, flags: { repair?: boolean }): void {
  exitQuietlyOnBrokenPipe();
  let report: ReturnType<typeof inspectDataDirectory>;
  try {
    if (flags.repair) for (const line of withDataDirectoryLock(directory, 'keel inspect --repair', () => repairDataDirectory(directory))) process.stdout.write(`repair: ${line}\n`);
    report = inspectDataDirectory(directory);
  } catch (error) {
    fail(error instanceof DataDirectoryLockedError ? 1 : 2, `cannot inspect ${directory}: ${(error as Error).message}`);
  }
  process.stdout.write(`${formatInspectReport(report)}\n`);
  process.exitCode = report.problems.length === 0 ? 0 : 1;
}

/** Reads the --config file; any problem ends the process with exit 2 and names the file. */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    fail(2, `cannot read config file ${file}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    fail(2, `config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail(2, `config file ${file} must hold a JSON object of settings`);
  }
  return parsed as Record<string, unknown>;
}

function fail(code: number, message: string): never {
  process.stderr.write(`keel: ${message}\n`);
  process.exit(code);
}

function invokedDirectly(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (invokedDirectly()) {
  await buildProgram().parseAsync(process.argv);
}
