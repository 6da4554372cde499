/**
 * Holds the broker to the keepalive it granted [MQTT-3.1.2-24]: once it accepted a connection
 * with a keepalive of K seconds (the CONNECT's, or the Server Keep Alive of a 5.0 CONNACK), it
 * must close that connection within 1.5 K after the last bytes from the client reached it, give or
 * take `keepAliveToleranceMs` of timer granularity. A broker that never times out a silent client
 * (a hung one, or one whose link went half-open) keeps the link open past that deadline:
 * `keepalive-not-enforced`. A keepalive of 0 asks for nothing.
 *
 * Judged from the link alone: when bytes from its client last reached the broker, and whether the
 * broker reads the link at all: while it throttles a publisher (reads paused) no close is owed,
 * since that client's packets may be waiting unread, and after the resume the keepalive counts
 * from the resume (a broker that timed such a client out would drop a client that did nothing
 * wrong, with its will); and whether the broker's side is still open (a close, a crash and a reset all end it). Counting from the last byte rather
 * than the last whole packet only moves the deadline later, so the rule never asks for an early
 * close. One pending check per watched link, as in the broker: when it fires it recomputes the
 * deadline from the latest arrival and waits again if that moved.
 */
import type { EventQueue } from './event-queue.js';
import type { Link } from './network.js';

/** Slack for timer granularity: a broker's timer may fire this late. */
export const keepAliveToleranceMs = 50;

export class KeepAliveWatch {
  constructor(
    private readonly queue: EventQueue,
    private readonly clock: { nowMs: number },
    private readonly report: (rule: string, detail: string) => void,
  ) {}

  /** The broker accepted `link` with this keepalive: from now on it owes the close. */
  watch(link: Link, keepAliveSeconds: number): void {
    if (keepAliveSeconds === 0 || !link.brokerOpen) return;
    this.schedule(link, keepAliveSeconds * 1000);
  }

  private deadlineMs(link: Link, keepAliveMs: number): number {
    // While the broker does not read the link, the silence is the broker's: no close is owed
    // (the client's packets may be waiting unread), and the keepalive counts again from the resume.
    const sinceMs = link.brokerReadsHeld ? this.clock.nowMs : Math.max(link.lastDeliveredToBrokerMs, link.brokerReadsResumedMs);
    return sinceMs + Math.floor((keepAliveMs * 3) / 2) + keepAliveToleranceMs;
  }

  private schedule(link: Link, keepAliveMs: number): void {
    this.queue.push(Math.max(this.deadlineMs(link, keepAliveMs), this.clock.nowMs), () => this.check(link, keepAliveMs));
  }

  private check(link: Link, keepAliveMs: number): void {
    if (!link.brokerOpen) return;
    const deadlineMs = this.deadlineMs(link, keepAliveMs);
    if (deadlineMs > this.clock.nowMs) return this.schedule(link, keepAliveMs);
    this.report(
      'keepalive-not-enforced',
      `L${link.id} (c${link.clientIndex}) is still open at ${this.clock.nowMs}ms: nothing from its client reached the broker since ${link.lastDeliveredToBrokerMs}ms, and with a keepalive of ${keepAliveMs / 1000}s the broker had to close it by ${deadlineMs - keepAliveToleranceMs}ms`,
    );
  }
}
