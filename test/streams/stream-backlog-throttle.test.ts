/**
 * Proves the bound on the streams' entries in memory (streamBacklogBytesMax): while the stream
 * writer cannot keep up (its segment writes held back, the log still durable), a publisher whose
 * messages are appended to a stream is paused (`pause-reading`, counted in
 * `throttle.streamPauses`) once the entries held reach the bound, its messages already taken still
 * acknowledged only once durable; when the writer catches up it writes and syncs at once (not at
 * streamUnsyncedBytesMax, here far above the bound, which would leave the publisher paused for
 * ever) until under half the bound, and the publisher resumes. Nothing is lost: a reader gets
 * every offset once, in order. A publisher whose topic no stream takes is never paused for it.
 * The log's records not yet written count with the entries: with the log's writes held back and
 * the segments keeping up, a publisher is paused all the same, and resumes once the log is written.
 * A will (a message from no connection, like a cluster arrival) appended while the backlog is
 * past its bound is admitted, counted apart (`backlogOverrunUnpausedEntries`) and logged once,
 * pauses nobody, and is in the stream at its offset once the writer catches up.
 * On a cluster node, a QoS 1 hand-off from another node that overruns the bound is admitted the
 * same way and pauses the node's hand-off consumer (`pace`), once per episode, until the backlog
 * is under half; the hand-offs are acknowledged as usual and are in the stream. A QoS 0 message
 * from another node, which nothing can hold back, skips the streams while the backlog is at its
 * bound (counted in `backlogDroppedEntries`) and still reaches the sessions.
 */
import { describe, expect, it } from 'vitest';
import { encodeHeaders } from '../../src/cluster/headers.js';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import { resolveConfig } from '../../src/config.js';
import type { ClusterMessage } from '../../src/contract.js';
import { decodeText, text, will } from '../broker/harness.js';
import { offsetOf, StreamHarness, takeAndAck } from './stream-harness.js';

const backlogBytesMax = 4096;
const payload = (index: number): string => `m${index}:${'v'.repeat(150)}`;

const throttled = { streamBacklogBytesMax: backlogBytesMax, streamUnsyncedBytesMax: 64 * 1024, streamSegmentBytesMax: 64 * 1024 };

let coreSequence = 0;
/**
 * Feeds messages from cluster node b on topic sensors/c: QoS 1 hand-offs at the given stream
 * sequences (payload `h<sequence>`), or QoS 0 core NATS messages (null, payload `c<n>`).
 */
function handoffs(harness: StreamHarness, sequences: (number | null)[], qos: 0 | 1): void {
  for (const sequence of sequences) {
    const core = sequence === null;
    if (core) coreSequence += 1;
    const message: ClusterMessage = {
      subject: core ? 'sensors.c' : '$KEEL.handoff.sensors.c',
      headers: encodeHeaders('b', qos, false, core ? `1-${coreSequence}` : null, undefined, null),
      payload: text(core ? `c${coreSequence}` : `h${sequence}`),
      subscriptionId: core ? 2 : null,
      consumerId: core ? null : 1,
      streamSequence: sequence,
      redelivered: false,
    };
    harness.broker.clusterMessage(harness.nowMs, message);
    harness.collect();
  }
}

function slowWriter(harness: StreamHarness): void {
  harness.gate.holdIf = (request) => 'file' in request && request.file.startsWith('stream-') && request.op !== 'read';
}

describe('stream backlog bound', () => {
  it('pauses the publishers feeding the streams at the bound, and resumes them under half once written and synced', () => {
    const harness = new StreamHarness({ streamBacklogBytesMax: backlogBytesMax, streamUnsyncedBytesMax: 64 * 1024, streamSegmentBytesMax: 64 * 1024 });
    const publisher = harness.connect('pub', 5);
    const bystander = harness.connect('other', 5);
    slowWriter(harness);
    let sent = 0;
    const answers = [];
    while (!publisher.readingPaused && sent < 100) answers.push(...publisher.publish(`sensors/${sent % 3}`, payload(sent++), 1));
    expect(publisher.readingChanges).toEqual(['pause-reading']);
    expect(harness.broker.stats.throttle.streamPauses).toBe(1);
    // At the bound, give or take one message: the pause was decided with the last publish's log
    // record not yet written (it counts too; the log writes it at the end of the input).
    const held = harness.broker.stats.streams.memoryBytes;
    expect(harness.broker.store.unwrittenBytes).toBe(0);
    expect(held).toBeGreaterThan(backlogBytesMax - 600);
    expect(held).toBeLessThan(backlogBytesMax + 600);
    // Every message taken was acknowledged once its record was durable (the log is not held back).
    expect(answers.filter((packet) => packet.type === PacketType.Puback).length).toBe(sent);
    // A message no stream takes pauses nobody, whatever the backlog.
    bystander.publish('elsewhere', 'x', 1);
    expect(bystander.readingPaused).toBe(false);
    // Bytes that still arrive from the paused publisher are taken (pausing is advisory).
    publisher.publish('sensors/0', payload(sent++), 1);
    expect(publisher.readingChanges).toEqual(['pause-reading']);
    // The writer catches up: it writes, syncs though far below streamUnsyncedBytesMax, and the publisher resumes.
    const syncsBefore = harness.broker.stats.streams.segmentSyncs;
    harness.releaseHeld();
    expect(harness.broker.stats.streams.segmentSyncs).toBeGreaterThan(syncsBefore);
    expect(publisher.readingChanges).toEqual(['pause-reading', 'resume-reading']);
    expect(harness.broker.stats.streams.memoryBytes * 2).toBeLessThan(backlogBytesMax);
    expect(harness.broker.stats.throttle.pausedCurrent).toBe(0);
    // Nothing lost: a reader from the first offset gets them all, in order.
    const reader = harness.connect('reader', 5, { properties: { receiveMaximum: 65_535 } });
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const got = [];
    for (let round = 0; round < 100 && got.length < sent; round++) got.push(...takeAndAck(reader));
    expect(got.map((publish) => offsetOf(publish))).toEqual([...Array(sent).keys()]);
    expect(got.map((publish) => decodeText(publish.payload))).toEqual([...Array(sent).keys()].map(payload));
  });

  it('counts the log records not yet written in the backlog: a publisher is paused when the log falls behind the segments', () => {
    const harness = new StreamHarness({ streamBacklogBytesMax: backlogBytesMax, streamUnsyncedBytesMax: 64 * 1024, streamSegmentBytesMax: 64 * 1024 });
    const publisher = harness.connect('pub', 5);
    // The log's writes are held back; the segments are written and synced as usual.
    harness.gate.holdIf = (request) => 'file' in request && request.file.startsWith('wal-') && request.op === 'write';
    let sent = 0;
    while (!publisher.readingPaused && sent < 200) publisher.publish(`sensors/${sent % 3}`, payload(sent++), 0);
    expect(publisher.readingChanges).toEqual(['pause-reading']);
    const unwritten = harness.broker.store.unwrittenBytes ?? 0;
    const entries = harness.broker.stats.streams.memoryBytes;
    // The stream entries alone are under the bound: the log's queue is what reached it.
    expect(entries).toBeLessThan(backlogBytesMax);
    expect(entries + unwritten).toBeGreaterThanOrEqual(backlogBytesMax);
    harness.gate.holdIf = () => false;
    harness.releaseHeld();
    expect(harness.broker.store.unwrittenBytes).toBe(0);
    expect(publisher.readingChanges).toEqual(['pause-reading', 'resume-reading']);
    // Nothing lost: a reader from the first offset gets them all, in order.
    const reader = harness.connect('reader', 5, { properties: { receiveMaximum: 65_535 } });
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const got = [];
    for (let round = 0; round < 100 && got.length < sent; round++) got.push(...takeAndAck(reader));
    expect(got.map((publish) => offsetOf(publish))).toEqual([...Array(sent).keys()]);
  });

  it('admits a will past the bound, counted and logged, pausing nobody; it is in the stream afterwards', () => {
    const harness = new StreamHarness({ streamBacklogBytesMax: backlogBytesMax, streamUnsyncedBytesMax: 64 * 1024, streamSegmentBytesMax: 64 * 1024 });
    const publisher = harness.connect('pub', 5);
    const leaving = harness.connect('leaving', 5, { will: will('sensors/will', 'gone', { qos: 1 }) });
    slowWriter(harness);
    let sent = 0;
    while (!publisher.readingPaused && sent < 100) publisher.publish(`sensors/${sent % 3}`, payload(sent++), 1);
    expect(publisher.readingPaused).toBe(true);
    const stats = harness.broker.stats.streams;
    expect(stats.backlogOverrunUnpausedEntries).toBe(0);
    const overrunBefore = stats.backlogOverrunEntries;
    const appendedBefore = stats.entriesAppended;
    leaving.drop();
    expect(stats.entriesAppended).toBe(appendedBefore + 1);
    expect(stats.backlogOverrunEntries).toBe(overrunBefore + 1);
    expect(stats.backlogOverrunUnpausedEntries).toBe(1);
    expect(harness.broker.stats.throttle.pausedCurrent).toBe(1);
    expect(harness.logs.filter((line) => line.event === 'stream-backlog-overrun')).toHaveLength(1);
    // The writer catches up; the will is the stream's last entry.
    harness.releaseHeld();
    expect(publisher.readingChanges).toEqual(['pause-reading', 'resume-reading']);
    const reader = harness.connect('reader', 5, { properties: { receiveMaximum: 65_535 } });
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const got = [];
    for (let round = 0; round < 100 && got.length < sent + 1; round++) got.push(...takeAndAck(reader));
    expect(got.map((publish) => offsetOf(publish))).toEqual([...Array(sent + 1).keys()]);
    expect(got[sent]!.topic).toBe('sensors/will');
    expect(decodeText(got[sent]!.payload)).toBe('gone');
  });

  it("pauses a cluster node's hand-off consumer when a hand-off overruns the bound, and resumes it under half", () => {
    const harness = new StreamHarness({ cluster: { nats: ['nats://test:4222'], nodeId: 'a' }, ...throttled });
    harness.clusterConnected();
    const publisher = harness.connect('pub', 5);
    slowWriter(harness);
    let sent = 0;
    while (!publisher.readingPaused && sent < 100) publisher.publish(`sensors/${sent % 3}`, payload(sent++), 1);
    expect(publisher.readingPaused).toBe(true);
    harness.takeClusterRequests();
    handoffs(harness, [1, 2], 1);
    // One pause for the episode, however many hand-offs the host had already sent on; they are
    // acknowledged as usual once the log holds them (the stream writer is what is behind).
    const paused = harness.takeClusterRequests();
    expect(paused.filter((request) => request.op === 'pace')).toEqual([{ op: 'pace', consumerId: 1, paused: true }]);
    expect(paused.filter((request) => request.op === 'ack').map((request) => request.op === 'ack' && request.streamSequence)).toEqual([1, 2]);
    const stats = harness.broker.stats.streams;
    expect(stats.backlogOverrunUnpausedEntries).toBe(2);
    expect(harness.broker.cluster?.counters.consumerPauses).toBe(1);
    // The writer catches up: the consumer resumes with the publisher.
    harness.releaseHeld();
    expect(harness.takeClusterRequests().filter((request) => request.op === 'pace')).toEqual([{ op: 'pace', consumerId: 1, paused: false }]);
    expect(publisher.readingPaused).toBe(false);
    // Under the bound a hand-off pauses nothing; both earlier ones are in the stream after the local messages.
    handoffs(harness, [3], 1);
    expect(harness.takeClusterRequests().filter((request) => request.op === 'pace')).toEqual([]);
    const reader = harness.connect('reader', 5, { properties: { receiveMaximum: 65_535 } });
    reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
    const got = [];
    for (let round = 0; round < 100 && got.length < sent + 3; round++) got.push(...takeAndAck(reader));
    expect(got.map((publish) => offsetOf(publish))).toEqual([...Array(sent + 3).keys()]);
    expect(got.slice(sent).map((publish) => decodeText(publish.payload))).toEqual(['h1', 'h2', 'h3']);
  });

  it('logs an overrun with no publisher to pause once per episode: again after the backlog went under half', () => {
    const harness = new StreamHarness({ cluster: { nats: ['nats://test:4222'], nodeId: 'a' }, ...throttled });
    harness.clusterConnected();
    const stats = harness.broker.stats.streams;
    const overruns = (): number => harness.logs.filter((line) => line.event === 'stream-backlog-overrun').length;
    let sequence = 0;
    for (const episode of [1, 2]) {
      slowWriter(harness);
      // Hand-offs alone fill the backlog: no connection publishes, so nobody is paused for it.
      while (stats.backlogOverrunUnpausedEntries === 0 || overruns() < episode) {
        handoffs(harness, [++sequence], 1);
        if (sequence > 200) break;
      }
      expect(harness.broker.stats.throttle.pausedCurrent).toBe(0);
      handoffs(harness, [++sequence], 1);
      expect(overruns()).toBe(episode);
      harness.releaseHeld();
      expect(stats.memoryBytes * 2).toBeLessThan(backlogBytesMax);
    }
  });

  it('leaves a QoS 0 message from another node out of the streams while the backlog is at its bound; its sessions still get it', () => {
    const harness = new StreamHarness({ cluster: { nats: ['nats://test:4222'], nodeId: 'a' }, ...throttled });
    harness.clusterConnected();
    const subscriber = harness.connect('sub', 5);
    subscriber.subscribe([{ topicFilter: 'sensors/#', qos: 0 }]);
    const publisher = harness.connect('pub', 5);
    const stats = harness.broker.stats.streams;
    // Under the bound it is appended like any message.
    handoffs(harness, [null], 0);
    expect(stats.entriesAppended).toBe(1);
    slowWriter(harness);
    let sent = 0;
    // Until the entries alone are at the bound (the log's unwritten records count too, but are written by the end of an input here).
    while (stats.memoryBytes < backlogBytesMax && sent < 100) publisher.publish(`sensors/${sent % 3}`, payload(sent++), 1);
    expect(publisher.readingPaused).toBe(true);
    subscriber.take();
    const appended = stats.entriesAppended;
    handoffs(harness, [null], 0);
    expect(stats.entriesAppended).toBe(appended);
    expect(stats.backlogDroppedEntries).toBe(1);
    expect(stats.backlogOverrunUnpausedEntries).toBe(0);
    expect((subscriber.take() as PublishPacket[]).map((publish) => decodeText(publish.payload))).toEqual(['c2']);
    // A local QoS 0 publisher is still paused and appended, not dropped.
    publisher.publish('sensors/0', 'late', 0);
    expect(stats.entriesAppended).toBe(appended + 1);
  });

  it('rejects a bound below 1 KiB at start-up, with the setting named', () => {
    for (const bad of [100, 'lots', 4096.5]) {
      const outcome = resolveConfig({ streamBacklogBytesMax: bad });
      expect(outcome.ok).toBe(false);
      if (!outcome.ok) expect(outcome.problems).toEqual([`"streamBacklogBytesMax" must be an integer from 1024 to ${2 ** 40}, got ${JSON.stringify(bad)}`]);
    }
    const defaults = resolveConfig({});
    expect(defaults.ok && defaults.config.streamBacklogBytesMax).toBe(16 * 1024 * 1024);
  });
});
