/**
 * Proves the logger writes one parseable JSON object per line with time, level and event first,
 * drops lines under the threshold, cannot be disguised by a field named like a fixed key, and
 * that `announce` is shown at any threshold except silent.
 */
import { describe, expect, it } from 'vitest';
import { Logger, type LogThreshold } from '../../io/logger.js';

function capture(threshold: LogThreshold): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: new Logger(threshold, { write: (line: string) => lines.push(line) }), lines };
}

describe('Logger', () => {
  it('writes JSON lines with the fixed keys first', () => {
    const { logger, lines } = capture('debug');
    logger.info('listening', { port: 1883, host: '127.0.0.1' });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.endsWith('\n')).toBe(true);
    const parsed = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(['time', 'level', 'event', 'port', 'host']);
    expect(parsed).toMatchObject({ level: 'info', event: 'listening', port: 1883 });
    expect(Number.isNaN(Date.parse(parsed.time as string))).toBe(false);
  });

  it('drops lines below the threshold', () => {
    const { logger, lines } = capture('warn');
    logger.debug('a');
    logger.info('b');
    logger.warn('c');
    logger.error('d');
    expect(lines.map((line) => (JSON.parse(line) as { event: string }).event)).toEqual(['c', 'd']);
  });

  it('keeps its own level and event when a field has the same name', () => {
    const { logger, lines } = capture('info');
    logger.warn('socket-error', { level: 'debug', event: 'fake' });
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'warn', event: 'socket-error' });
  });

  it('announces at any threshold but silent', () => {
    const loud = capture('error');
    loud.logger.announce('listening', { port: 1 });
    expect(loud.lines).toHaveLength(1);
    const quiet = capture('silent');
    quiet.logger.announce('listening', { port: 1 });
    quiet.logger.error('boom');
    expect(quiet.lines).toHaveLength(0);
  });
});
