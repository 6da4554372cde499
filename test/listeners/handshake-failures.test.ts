/**
 * Proves the listener's failure bookkeeping: every failure is counted per kind; the log gets the
 * first failure of a kind at once and then, however many follow within the interval, one
 * summary line with their number and the last one's details (a flood costs two lines per kind per
 * interval); kinds are limited separately; close() summarizes what is held. And the deadline
 * queue behind the PROXY and WebSocket stages expires entries in order, once, only those not
 * removed in time, with one timer for all of them.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineQueue } from '../../io/listeners/deadline-queue.js';
import { HandshakeFailures } from '../../io/listeners/handshake-failures.js';
import type { LogFields } from '../../src/contract.js';

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe('HandshakeFailures', () => {
  function recorder(): { failures: HandshakeFailures; lines: { event: string; fields: LogFields }[] } {
    const lines: { event: string; fields: LogFields }[] = [];
    const failures = new HandshakeFailures('mqtts:127.0.0.1:8883', (_level, event, fields) => lines.push({ event, fields }), 10_000);
    return { failures, lines };
  }

  it('counts every failure and logs a flood as one line plus one summary per interval', () => {
    const { failures, lines } = recorder();
    for (let index = 0; index < 1_000; index++) failures.record('plainOnTlsListener', `10.0.0.${index % 250}:1000`, `reason ${index}`);
    expect(failures.counters.plainOnTlsListener).toBe(1_000);
    expect(lines).toEqual([{ event: 'handshake-failed', fields: { listener: 'mqtts:127.0.0.1:8883', kind: 'plainOnTlsListener', remoteAddress: '10.0.0.0:1000', reason: 'reason 0' } }]);
    vi.advanceTimersByTime(10_000);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toEqual({
      event: 'handshake-failed-repeated',
      fields: { listener: 'mqtts:127.0.0.1:8883', kind: 'plainOnTlsListener', count: 999, intervalMs: 10_000, lastRemoteAddress: '10.0.0.249:1000', lastReason: 'reason 999' },
    });
    // The next one after the interval is logged at once again.
    failures.record('plainOnTlsListener', '10.0.0.1:1', 'again');
    expect(lines).toHaveLength(3);
    expect(lines[2]!.event).toBe('handshake-failed');
  });

  it('limits each kind on its own, and says nothing more when nothing was held back', () => {
    const { failures, lines } = recorder();
    failures.record('tlsHandshakeTimeout', 'a:1', 'slow');
    failures.record('clientCertificateRejected', 'b:2', 'wrong CA');
    expect(lines.map((line) => line.fields.kind)).toEqual(['tlsHandshakeTimeout', 'clientCertificateRejected']);
    vi.advanceTimersByTime(20_000);
    expect(lines).toHaveLength(2);
    expect(failures.counters).toMatchObject({ tlsHandshakeTimeout: 1, clientCertificateRejected: 1, proxyHeaderInvalid: 0 });
  });

  it('summarizes what it holds when closed, and only counts afterwards', () => {
    const { failures, lines } = recorder();
    failures.record('webSocketUpgradeRefused', 'a:1', 'path');
    failures.record('webSocketUpgradeRefused', 'a:2', 'path');
    failures.close();
    expect(lines.map((line) => line.event)).toEqual(['handshake-failed', 'handshake-failed-repeated']);
    failures.record('webSocketUpgradeRefused', 'a:3', 'path');
    expect(lines).toHaveLength(2);
    expect(failures.counters.webSocketUpgradeRefused).toBe(3);
  });
});

describe('DeadlineQueue', () => {
  it('expires entries in order, once each, skipping those removed in time', () => {
    let nowMs = 0;
    const expired: string[] = [];
    const queue = new DeadlineQueue<{ name: string }>(
      100,
      (item) => expired.push(item.name),
      () => nowMs,
    );
    const a = { name: 'a' };
    const b = { name: 'b' };
    const c = { name: 'c' };
    queue.add(a);
    nowMs = 40;
    vi.advanceTimersByTime(40);
    queue.add(b);
    queue.add(c);
    expect(queue.delete(b)).toBe(true);
    nowMs = 100;
    vi.advanceTimersByTime(60);
    expect(expired).toEqual(['a']);
    nowMs = 140;
    vi.advanceTimersByTime(40);
    expect(expired).toEqual(['a', 'c']);
    expect(queue.size).toBe(0);
    expect(queue.delete(a)).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('hands back what waits when drained, and refuses a second deadline for one item', () => {
    const queue = new DeadlineQueue<object>(
      100,
      () => undefined,
      () => 0,
    );
    const item = {};
    queue.add(item);
    expect(() => queue.add(item)).toThrow(/second deadline/);
    expect(queue.drain()).toEqual([item]);
    expect(vi.getTimerCount()).toBe(0);
    expect(() => new DeadlineQueue(0, () => undefined)).toThrow(/positive whole number/);
  });
});
