/**
 * Publisher throttling (src/broker/throttle.ts) in the state machine, with the test playing the
 * host: it reports each connection's unsent output by hand (`outputBuffered`) and reads the
 * `pause-reading` / `resume-reading` actions the harness records per client. Proves: a QoS 1 copy
 * kept for a receiver at its output cap pauses the publisher, which resumes once that receiver
 * reports less than half the cap (or goes away); QoS 0 for such a receiver pauses nobody; the
 * total output budget (outputBufferedBytesTotalMax) pauses any publisher until the total is under
 * half of it; nothing is lost on the way, and the counters say what happened. A receiver that
 * holds a publisher for publisherPauseMsMax without draining is taken for stalled: the publisher
 * resumes and that receiver pauses nobody until it drains (0 turns per-receiver pauses off).
 */
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { decodeText, Harness, type TestClient } from './harness.js';

const outputBytesMax = 4096;

function report(harness: Harness, client: TestClient, bufferedBytes: number): void {
  harness.broker.outputBuffered(harness.nowMs, client.id, bufferedBytes);
  harness.collect();
}

function subscribers(harness: Harness, qos: 0 | 1): { slow: TestClient; fast: TestClient; publisher: TestClient } {
  const slow = harness.connect('slow', 5);
  slow.subscribe([{ topicFilter: 't', qos }]);
  const fast = harness.connect('fast', 5);
  fast.subscribe([{ topicFilter: 't', qos }]);
  return { slow, fast, publisher: harness.connect('pub', 5) };
}

describe('publisher throttling', () => {
  it('pauses a publisher whose QoS 1 copy waits for a receiver at its cap, and resumes it below half the cap', () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax });
    const { slow, fast, publisher } = subscribers(harness, 1);
    report(harness, slow, outputBytesMax);
    publisher.publish('t', 'm0', 1);
    expect(publisher.readingChanges).toEqual(['pause-reading']);
    expect(harness.broker.stats.throttle).toEqual({ publisherPauses: 1, budgetPauses: 0, streamPauses: 0, pausedCurrent: 1, stalledReceivers: 0 });
    // Bytes that still arrive are taken (the pause is advisory) and do not pause it twice.
    publisher.publish('t', 'm1', 1);
    expect(publisher.readingChanges).toEqual(['pause-reading']);
    expect(fast.publishes().map((publish) => decodeText(publish.payload))).toEqual(['m0', 'm1']);
    // Other connections are still served and read: the fast subscriber's acknowledgement changes nothing.
    report(harness, fast, 100);
    expect(publisher.readingPaused).toBe(true);
    report(harness, slow, outputBytesMax / 2);
    expect(publisher.readingPaused).toBe(true);
    // Under half the cap even after its queue moved (the two kept copies): the publisher resumes.
    // (Resuming is judged after the queue moved: a backlog that fills the output again keeps it paused.)
    report(harness, slow, 100);
    expect(publisher.readingChanges).toEqual(['pause-reading', 'resume-reading']);
    expect(harness.broker.stats.throttle.pausedCurrent).toBe(0);
    // The queue moved on the same report: nothing kept for the slow receiver was lost.
    expect(slow.publishes().map((publish) => decodeText(publish.payload))).toEqual(['m0', 'm1']);
  });

  it("never pauses for QoS 0 (dropped at the cap instead) nor for a publisher's own output", () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax });
    const { slow, publisher } = subscribers(harness, 0);
    report(harness, slow, outputBytesMax);
    for (let index = 0; index < 3; index++) publisher.publish('t', `q${index}`, 1);
    expect(harness.broker.stats.drops.outputFull).toBe(3);
    expect(publisher.readingChanges).toEqual([]);
    // A client at its own cap that publishes to itself is not paused by its own output.
    const self = harness.connect('self', 5);
    self.subscribe([{ topicFilter: 'own', qos: 1 }]);
    report(harness, self, outputBytesMax);
    self.publish('own', 'x', 1);
    expect(self.readingChanges).toEqual([]);
    expect(harness.broker.stats.throttle.publisherPauses).toBe(0);
  });

  it('resumes a publisher when the receiver it waits for disconnects', () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax });
    const { slow, publisher } = subscribers(harness, 1);
    report(harness, slow, outputBytesMax * 2);
    publisher.publish('t', 'm', 1);
    expect(publisher.readingPaused).toBe(true);
    slow.drop();
    // The close is an input; its end releases the publisher.
    expect(publisher.readingChanges).toEqual(['pause-reading', 'resume-reading']);
  });

  it('releases publishers from a receiver that stays full for publisherPauseMsMax, until it drains', () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax, publisherPauseMsMax: 2_000 });
    const { slow, fast, publisher } = subscribers(harness, 1);
    report(harness, slow, outputBytesMax);
    publisher.publish('t', 'm0', 1);
    expect(publisher.readingPaused).toBe(true);
    harness.advance(1_999);
    expect(publisher.readingPaused).toBe(true);
    // The pause's own deadline wakes the broker: no other input is needed to release it.
    expect(harness.advanceToDeadline()).toBe(true);
    expect(harness.nowMs).toBeLessThanOrEqual(1_000 + 2_000);
    expect(publisher.readingChanges).toEqual(['pause-reading', 'resume-reading']);
    expect(harness.broker.stats.throttle.stalledReceivers).toBe(1);
    expect(harness.logEvents()).toContain('receiver-stalled');
    // The stalled receiver pauses nobody now; its copies wait in its session queue instead.
    for (let index = 1; index <= 3; index++) publisher.publish('t', `m${index}`, 1);
    expect(publisher.readingChanges).toEqual(['pause-reading', 'resume-reading']);
    expect(fast.publishes().map((publish) => decodeText(publish.payload))).toEqual(['m0', 'm1', 'm2', 'm3']);
    // Once it drains it is a receiver like any other again, and can pause a publisher.
    report(harness, slow, 0);
    expect(slow.publishes().map((publish) => decodeText(publish.payload))).toEqual(['m0', 'm1', 'm2', 'm3']);
    report(harness, slow, outputBytesMax);
    publisher.publish('t', 'm4', 1);
    expect(publisher.readingChanges).toEqual(['pause-reading', 'resume-reading', 'pause-reading']);
    expect(harness.broker.stats.throttle.publisherPauses).toBe(2);
  });

  it('never pauses for a receiver when publisherPauseMsMax is 0', () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax, publisherPauseMsMax: 0 });
    const { slow, publisher } = subscribers(harness, 1);
    report(harness, slow, outputBytesMax);
    publisher.publish('t', 'm0', 1);
    expect(publisher.readingChanges).toEqual([]);
    expect(harness.broker.stats.throttle.publisherPauses).toBe(0);
  });

  it('pauses any publisher while all output together is at the budget, until it is under half', () => {
    const budget = 3 * outputBytesMax;
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax, outputBufferedBytesTotalMax: budget });
    const { slow, fast, publisher } = subscribers(harness, 0);
    report(harness, slow, outputBytesMax - 1);
    report(harness, fast, outputBytesMax - 1);
    publisher.publish('t', 'under', 0);
    expect(publisher.readingChanges).toEqual([]);
    const other = harness.connect('other', 5);
    report(harness, other, outputBytesMax + 2);
    publisher.publish('t', 'over', 0);
    expect(publisher.readingChanges).toEqual(['pause-reading']);
    expect(harness.broker.stats.throttle).toEqual({ publisherPauses: 1, budgetPauses: 1, streamPauses: 0, pausedCurrent: 1, stalledReceivers: 0 });
    // QoS 0 was still delivered to receivers under their cap: the budget pauses, it does not drop.
    expect(fast.publishes().map((publish) => decodeText(publish.payload))).toEqual(['under', 'over']);
    report(harness, other, 0);
    expect(publisher.readingPaused).toBe(true);
    report(harness, slow, 0);
    expect(publisher.readingChanges).toEqual(['pause-reading', 'resume-reading']);
    // A closed connection's output no longer counts.
    report(harness, slow, outputBytesMax);
    report(harness, fast, outputBytesMax);
    report(harness, other, outputBytesMax + 1);
    publisher.publish('t', 'again', 0);
    expect(publisher.readingPaused).toBe(true);
    other.drop();
    expect(harness.broker.throttle.outputBytesTotal).toBe(2 * outputBytesMax);
    expect(publisher.readingPaused).toBe(true);
    slow.drop();
    expect(harness.broker.throttle.outputBytesTotal).toBe(outputBytesMax);
    expect(publisher.readingPaused).toBe(false);
    expect(harness.broker.stats.throttle).toEqual({ publisherPauses: 2, budgetPauses: 2, streamPauses: 0, pausedCurrent: 0, stalledReceivers: 0 });
  });

  it("validates the budget: 0 or at least one connection's cap", () => {
    expect(resolveConfig({ outputBufferedBytesTotalMax: 0 }).ok).toBe(true);
    expect(resolveConfig({ outputBufferedBytesTotalMax: 64 * 1024 * 1024 }).ok).toBe(true);
    const low = resolveConfig({ connectionOutputBytesMax: 8192, outputBufferedBytesTotalMax: 4096 });
    expect(low.ok).toBe(false);
    if (!low.ok) expect(low.problems.join('\n')).toMatch(/outputBufferedBytesTotalMax/);
    expect(resolveConfig({ outputBufferedBytesTotalMax: -1 }).ok).toBe(false);
  });
});

describe('keepalive of a throttled publisher', () => {
  it('is not timed out while the broker does not read it, and counts again from the resume', () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax, publisherPauseMsMax: 60_000 });
    const slow = harness.connect('slow', 5);
    slow.subscribe([{ topicFilter: 't', qos: 1 }]);
    const publisher = harness.connect('pub', 5, { keepAliveSeconds: 2 });
    report(harness, slow, outputBytesMax);
    publisher.publish('t', 'm0', 1);
    expect(publisher.readingPaused).toBe(true);
    // Far past 1.5x its keepalive: its PINGREQs would be waiting unread at the broker.
    harness.advance(10_000);
    expect(publisher.closed).toBe(false);
    expect(harness.broker.stats.keepAliveTimeouts).toBe(0);
    report(harness, slow, 0);
    expect(publisher.readingPaused).toBe(false);
    harness.advance(2_999);
    expect(publisher.closed).toBe(false);
    harness.advance(1);
    expect(publisher.closed).toBe(true);
    expect(harness.broker.stats.keepAliveTimeouts).toBe(1);
  });
});
