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
 * `serve` stops in an orderly way on SIGINT/SIGTERM and exits 0 within a bounded time.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { passwdCommand } from './auth/passwd-command.js';
import { exitQuietlyOnBrokenPipe } from './broken-pipe.js';
import { parsePort } from './client-options.js';
import { formatInspectReport, inspectDataDirectory, repairDataDirectory } from './inspect.js';
import { isLogThreshold, Logger, type LogThreshold } from './logger.js';
import { pubCommand } from './pub-command.js';
import { ConfigError, startServer } from './server.js';
import { simCommand, voprCommand } from './sim-commands.js';
import { subCommand } from './sub-command.js';

/** The orderly stop must finish within this, or the process exits anyway (with 1). */
const shutdownDeadlineMs = 10_000;

interface ServeFlags {
  port: number;
  host: string;
  config?: string;
  dataDir: string;
  logLevel: LogThreshold;
  passwordFile?: string;
  aclFile?: string;
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
    .option('-H, --host <host>', 'interface to listen on', '0.0.0.0')
    .option('-c, --config <file>', 'JSON file of BrokerConfig settings')
    .option('-d, --data-dir <dir>', 'data directory', './data')
    .option('-l, --log-level <level>', 'debug, info, warn, error or silent', parseLogLevel, 'info')
    .option('--password-file <file>', 'check user names and passwords against this file (see keel passwd); overrides passwordFile')
    .option('--acl-file <file>', 'allow topics to users by the rules in this file (reloaded when it changes); overrides aclFile')
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
  return program;
}

function inheritExit(command: Command, program: Command): Command {
  return command.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2)).configureOutput(program.configureOutput());
}

function parseLogLevel(value: string): LogThreshold {
  if (!isLogThreshold(value)) throw new InvalidArgumentError('must be debug, info, warn, error or silent');
  return value;
}

async function serve(flags: ServeFlags): Promise<void> {
  const overrides = flags.config === undefined ? {} : readConfigFile(flags.config);
  if (flags.passwordFile !== undefined) overrides.passwordFile = flags.passwordFile;
  if (flags.aclFile !== undefined) overrides.aclFile = flags.aclFile;
  const logger = new Logger(flags.logLevel);
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer({ host: flags.host, port: flags.port, config: overrides, dataDirectory: flags.dataDir, logger });
  } catch (error) {
    if (error instanceof ConfigError) fail(2, `invalid configuration${flags.config === undefined ? '' : ` in ${flags.config}`}:\n  ${error.problems.join('\n  ')}`);
    const message = (error as Error).message;
    const hint = /corrupt (log|snapshot)/.test(message)
      ? `\n  see what is damaged with: keel inspect ${flags.dataDir}\n  start from the readable part with: keel inspect ${flags.dataDir} --repair`
      : '';
    fail(1, `cannot start on ${flags.host}:${flags.port}: ${message}${hint}`);
  }
  const running = server;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.info('shutdown', { signal });
    setTimeout(() => {
      logger.error('shutdown-timeout', { deadlineMs: shutdownDeadlineMs });
      process.exit(1);
    }, shutdownDeadlineMs).unref();
    running.close().then(
      () => process.exit(0),
      (error: Error) => {
        logger.error('shutdown-failed', { message: error.message });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  void running.halted.then(async (reason) => {
    // The core stopped taking input: close what is left and exit non-zero for a supervisor.
    stopping = true;
    setTimeout(() => process.exit(1), 2_000).unref();
    await running.close().catch(() => undefined);
    process.stderr.write(`keel: the broker halted: ${reason}\n`);
    process.exit(1);
  });
}

function inspect(directory: string, flags: { repair?: boolean }): void {
  exitQuietlyOnBrokenPipe();
  let report: ReturnType<typeof inspectDataDirectory>;
  try {
    if (flags.repair) for (const line of repairDataDirectory(directory)) process.stdout.write(`repair: ${line}\n`);
    report = inspectDataDirectory(directory);
  } catch (error) {
    fail(2, `cannot inspect ${directory}: ${(error as Error).message}`);
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

function packageVersion(): string {
  // Compiled: dist/io/cli.js; from source: io/cli.ts. The package file is two or one level up.
  for (const relative of ['../../package.json', '../package.json']) {
    try {
      const text = readFileSync(fileURLToPath(new URL(relative, import.meta.url)), 'utf8');
      const parsed = JSON.parse(text) as { name?: string; version?: string };
      if (parsed.name === 'keel' && typeof parsed.version === 'string') return parsed.version;
    } catch {
      // Try the next location.
    }
  }
  return '0.0.0';
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
