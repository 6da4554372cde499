/**
 * Structured logging for the Node backend: one JSON object per line.
 *
 * Both the core's `log` actions and the backend's own events (listening, socket errors, shutdown)
 * go through here, so an operator greps one stream. Every line carries `time` (wall clock, ISO
 * 8601: wall time is fine here because the line is for humans and log shippers, never fed back
 * into the core), `level` and `event`, then the event's fields. Lines below the threshold are
 * dropped before they are formatted, so debug logging costs almost nothing when it is off.
 */
import type { LogFields, LogLevel } from '../src/contract.js';

export const logLevels: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** `silent` drops everything; tests use it to keep their output clean. */
export type LogThreshold = LogLevel | 'silent';

const rank: Record<LogThreshold, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

export function isLogThreshold(value: string): value is LogThreshold {
  return Object.hasOwn(rank, value);
}

export interface LineSink {
  write(line: string): unknown;
}

export class Logger {
  constructor(
    private readonly threshold: LogThreshold = 'info',
    private readonly sink: LineSink = process.stdout,
  ) {}

  enabled(level: LogLevel): boolean {
    return rank[level] >= rank[this.threshold];
  }

  log(level: LogLevel, event: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    this.write(level, event, fields);
  }

  private write(level: LogLevel, event: string, fields: LogFields): void {
    const time = new Date().toISOString();
    const line: Record<string, unknown> = { time, level, event, ...fields };
    // A field named like a fixed key must not disguise the line; the fixed keys keep their place
    // at the front (insertion order) and get their values back.
    line.time = time;
    line.level = level;
    line.event = event;
    this.sink.write(`${JSON.stringify(line)}\n`);
  }

  /**
   * Logs at info level even when the threshold is higher (not when silent): for the few lines
   * an operator or a script must always see, like the address the server listens on.
   */
  announce(event: string, fields: LogFields = {}): void {
    if (this.threshold === 'silent') return;
    this.write('info', event, fields);
  }

  debug(event: string, fields?: LogFields): void {
    this.log('debug', event, fields);
  }
  info(event: string, fields?: LogFields): void {
    this.log('info', event, fields);
  }
  warn(event: string, fields?: LogFields): void {
    this.log('warn', event, fields);
  }
  error(event: string, fields?: LogFields): void {
    this.log('error', event, fields);
  }
}
