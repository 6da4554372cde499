/**
 * Every configured limit has its defined MQTT outcome and a counter in `broker.stats`, proved on
 * the state machine (broker harness, no sockets, time moved by hand): connectionsMax,
 * sessionsMax, connectionRatePerSecondMax and publishRatePerSecondMax (token buckets over the
 * core's time), packetBytesMax, receiveMaximum, the offline queue limits (count and bytes, with
 * both overflow policies, logged with the dropped message's id), the retained limits,
 * subscriptionsPerSessionMax, topicBytesMax and topicLevelsMax, each for 5.0 and 3.1.1 where the
 * outcome differs. Also: the new settings are validated by resolveConfig.
 */
import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../src/broker/token-bucket.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { type ConnectPacket, PacketType, type ProtocolVersion } from '../../src/codec/packets.js';
import { ReasonCode } from '../../src/codec/reason-codes.js';
import { resolveConfig } from '../../src/config.js';
import { decodeText, Harness } from './harness.js';

const persistent = (version: ProtocolVersion): Partial<ConnectPacket> => (version === 5 ? { cleanStart: false, properties: { sessionExpiryInterval: 3600 } } : { cleanStart: false });

describe('connection limits', () => {
  for (const [version, code] of [
    [5, ReasonCode.QuotaExceeded],
    [4, 3],
  ] as const) {
    it(`connectionsMax refuses the next CONNECT with ${code} (version ${version}) and counts it`, () => {
      const harness = new Harness({ connectionsMax: 2 });
      harness.connect('a', version);
      harness.connect('b', version);
      const third = harness.open(version);
      expect(third.connect('c').reasonCode).toBe(code);
      expect(third.closed).toBe(true);
      expect(harness.broker.stats.limits.connectionsMax).toBe(1);
      // A takeover of a connected client id is not a new connection.
      expect(harness.open(version).connect('a').reasonCode).toBe(0);
      expect(harness.broker.stats.limits.connectionsMax).toBe(1);
    });
  }

  it('sessionsMax refuses a new session and counts it', () => {
    const harness = new Harness({ sessionsMax: 1 });
    harness.connect('a', 5, persistent(5)).disconnect();
    expect(harness.open(5).connect('b').reasonCode).toBe(ReasonCode.QuotaExceeded);
    expect(harness.broker.stats.limits.sessionsMax).toBe(1);
  });

  for (const [version, code] of [
    [5, ReasonCode.ConnectionRateExceeded],
    [4, 3],
  ] as const) {
    it(`connectionRatePerSecondMax refuses CONNECTs past the rate with ${code} (version ${version}), then refills`, () => {
      const harness = new Harness({ connectionRatePerSecondMax: 3 });
      const codes = [0, 1, 2, 3, 4].map((index) => harness.open(version).connect(`c${index}`).reasonCode);
      expect(codes).toEqual([0, 0, 0, code, code]);
      expect(harness.broker.stats.limits.connectionRatePerSecondMax).toBe(2);
      expect(harness.broker.stats.connectsRefused).toBe(2);
      // A third of a second buys one more token at 3 per second.
      harness.advance(334);
      expect(harness.open(version).connect('later').reasonCode).toBe(0);
      expect(harness.open(version).connect('again').reasonCode).toBe(code);
    });
  }

  it('connectionRatePerSecondMax 0 means unlimited', () => {
    const harness = new Harness({ connectionRatePerSecondMax: 0 });
    for (let index = 0; index < 50; index++) expect(harness.open(4).connect(`c${index}`).reasonCode).toBe(0);
    expect(harness.broker.stats.limits.connectionRatePerSecondMax).toBe(0);
  });
});

describe('per-packet limits', () => {
  it('publishRatePerSecondMax disconnects a 5.0 client with 0x96 and closes a 3.1.1 one', () => {
    const harness = new Harness({ publishRatePerSecondMax: 5 });
    const fast5 = harness.connect('fast5', 5);
    const fast4 = harness.connect('fast4', 4);
    for (let index = 0; index < 5; index++) {
      fast5.publish('t', 'x', 0);
      fast4.publish('t', 'x', 0);
    }
    expect(fast5.closed || fast4.closed).toBe(false);
    fast5.publish('t', 'x', 0);
    expect(fast5.takeOne(PacketType.Disconnect).reasonCode).toBe(ReasonCode.MessageRateTooHigh);
    expect(fast5.closed).toBe(true);
    fast4.publish('t', 'x', 0);
    expect(fast4.take()).toEqual([]);
    expect(fast4.closed).toBe(true);
    expect(harness.broker.stats.limits.publishRatePerSecondMax).toBe(2);
  });

  it('publishRatePerSecondMax lets a client sustain the rate', () => {
    const harness = new Harness({ publishRatePerSecondMax: 10 });
    const steady = harness.connect('steady', 5);
    // 100 ms per message is exactly 10 per second, far past the initial burst of 10.
    for (let index = 0; index < 40; index++) {
      steady.publish('t', 'x', 0);
      harness.advance(100);
    }
    expect(steady.closed).toBe(false);
    expect(harness.broker.stats.limits.publishRatePerSecondMax).toBe(0);
  });

  it('packetBytesMax closes with 0x95 and counts it', () => {
    const harness = new Harness({ packetBytesMax: 256 });
    const client = harness.connect('big', 5);
    client.publish('t', 'x'.repeat(300), 0);
    expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(ReasonCode.PacketTooLarge);
    expect(harness.broker.stats.limits.packetBytesMax).toBe(1);
  });

  it('receiveMaximum exceeded closes with 0x93 and counts it', () => {
    // QoS 2 identifiers stay unacknowledged until PUBREL, so three in a row exceed a maximum of 2.
    const harness = new Harness({ receiveMaximum: 2 });
    const client = harness.connect('eager', 5);
    for (let packetId = 1; packetId <= 3; packetId++) {
      client.send({ type: PacketType.Publish, dup: false, qos: 2, retain: false, topic: 't', packetId, payload: new Uint8Array(1) });
    }
    expect(client.take().find((packet) => packet.type === PacketType.Disconnect)).toMatchObject({ reasonCode: ReasonCode.ReceiveMaximumExceeded });
    expect(client.closed).toBe(true);
    expect(harness.broker.stats.limits.receiveMaximum).toBe(1);
  });

  for (const [version, limits, topic] of [
    [5, { topicBytesMax: 8 }, 'a/very/long/topic'],
    [4, { topicLevelsMax: 3 }, 'a/b/c/d'],
  ] as const) {
    it(`a topic name over ${Object.keys(limits)[0]} closes the connection (version ${version}, 0x90 on 5.0) and counts it`, () => {
      const harness = new Harness(limits);
      const client = harness.connect('p', version);
      client.publish(topic, 'x', 0);
      if (version === 5) expect(client.takeOne(PacketType.Disconnect).reasonCode).toBe(ReasonCode.TopicNameInvalid);
      expect(client.closed).toBe(true);
      const stats = harness.broker.stats.limits;
      expect([stats.topicBytesMax, stats.topicLevelsMax]).toEqual('topicBytesMax' in limits ? [1, 0] : [0, 1]);
    });
  }

  it('topic filters over the limits get SUBACK 0x8F (0x80 on 3.1.1) and are counted', () => {
    const harness = new Harness({ topicBytesMax: 10, topicLevelsMax: 3 });
    const five = harness.connect('five', 5);
    expect(five.subscribe(['ok/+', 'x/y/z/w', 'waytoolongfilter']).reasonCodes).toEqual([2, ReasonCode.TopicFilterInvalid, ReasonCode.TopicFilterInvalid]);
    const four = harness.connect('four', 4);
    expect(four.subscribe(['a/b/c/d']).reasonCodes).toEqual([0x80]);
    expect(harness.broker.stats.limits.topicLevelsMax).toBe(2);
    expect(harness.broker.stats.limits.topicBytesMax).toBe(1);
  });

  it('subscriptionsPerSessionMax refuses extra filters with 0x97 (0x80 on 3.1.1), replacing one is fine', () => {
    const harness = new Harness({ subscriptionsPerSessionMax: 2 });
    const five = harness.connect('five', 5);
    expect(five.subscribe(['a', 'b', 'c']).reasonCodes).toEqual([2, 2, ReasonCode.QuotaExceeded]);
    expect(five.subscribe(['a']).reasonCodes).toEqual([2]);
    const four = harness.connect('four', 4);
    expect(four.subscribe(['a', 'b', 'c']).reasonCodes).toEqual([2, 2, 0x80]);
    expect(harness.broker.stats.limits.subscriptionsPerSessionMax).toBe(2);
  });
});

describe('offline queue limits', () => {
  function offlineSubscriber(harness: Harness): void {
    harness.connect('sub', 5, persistent(5)).subscribe([{ topicFilter: 'q', qos: 1 }]);
    harness.broker.connections.forEach((connection) => {
      if (connection.clientId === 'sub') harness.broker.connectionClosed(harness.nowMs, connection.id);
    });
    harness.collect();
  }

  function resumeAndRead(harness: Harness): string[] {
    const back = harness.open(5);
    back.connect('sub', persistent(5));
    return back.publishes().map((publish) => decodeText(publish.payload));
  }

  it('QoS 0 is never queued for an offline session: dropped first and counted', () => {
    const harness = new Harness({ queuedMessagesPerSessionMax: 2 });
    offlineSubscriber(harness);
    const publisher = harness.connect('pub', 5);
    publisher.publish('q', 'zero', 0);
    publisher.publish('q', 'one-a', 1);
    publisher.publish('q', 'one-b', 1);
    expect(harness.broker.stats.drops.qos0Offline).toBe(1);
    expect(harness.broker.stats.drops.queueOverflow).toBe(0);
    expect(resumeAndRead(harness)).toEqual(['one-a', 'one-b']);
  });

  it('queuedMessagesPerSessionMax with drop-oldest keeps the newest, logs each drop with its message id', () => {
    const harness = new Harness({ queuedMessagesPerSessionMax: 3, queueOverflowPolicy: 'drop-oldest' });
    offlineSubscriber(harness);
    const publisher = harness.connect('pub', 5);
    for (let index = 0; index < 5; index++) publisher.publish('q', `m${index}`, 1);
    expect(harness.broker.stats.drops.queueOverflow).toBe(2);
    const drops = harness.logs.filter((log) => log.event === 'message-dropped');
    expect(drops.map((log) => log.fields.reason)).toEqual(['queue-overflow', 'queue-overflow']);
    expect(drops.every((log) => typeof log.fields.messageId === 'number' && log.fields.messageId > 0)).toBe(true);
    expect(new Set(drops.map((log) => log.fields.messageId)).size).toBe(2);
    expect(resumeAndRead(harness)).toEqual(['m2', 'm3', 'm4']);
  });

  it('queuedMessagesPerSessionMax with reject-new keeps the oldest', () => {
    const harness = new Harness({ queuedMessagesPerSessionMax: 3, queueOverflowPolicy: 'reject-new' });
    offlineSubscriber(harness);
    const publisher = harness.connect('pub', 5);
    for (let index = 0; index < 5; index++) publisher.publish('q', `m${index}`, 1);
    expect(harness.broker.stats.drops.queueOverflow).toBe(2);
    expect(resumeAndRead(harness)).toEqual(['m0', 'm1', 'm2']);
  });

  it('queuedBytesPerSessionMax bounds the payload bytes queued', () => {
    const harness = new Harness({ queuedBytesPerSessionMax: 25, queueOverflowPolicy: 'drop-oldest' });
    offlineSubscriber(harness);
    const publisher = harness.connect('pub', 5);
    for (let index = 0; index < 4; index++) publisher.publish('q', `${index}`.repeat(10), 1);
    expect(harness.broker.state.sessions.get('sub')!.queuedBytes).toBe(20);
    expect(harness.broker.stats.drops.queueOverflow).toBe(2);
    expect(resumeAndRead(harness)).toEqual(['2'.repeat(10), '3'.repeat(10)]);
  });
});

describe('retained limits', () => {
  for (const limits of [{ retainedMessagesMax: 1 }, { retainedBytesMax: 6 }]) {
    it(`${Object.keys(limits)[0]}: a new retained topic past the limit gets PUBACK 0x97, is still routed, and is counted`, () => {
      const harness = new Harness(limits);
      const live = harness.connect('live', 5);
      live.subscribe(['r/#']);
      const publisher = harness.connect('pub', 5);
      expect(publisher.publish('r/1', 'first', 1, { retain: true })[0]).toMatchObject({ type: PacketType.Puback, reasonCode: 0 });
      expect(publisher.publish('r/2', 'second', 1, { retain: true })[0]).toMatchObject({ type: PacketType.Puback, reasonCode: ReasonCode.QuotaExceeded });
      expect(live.publishes().map((publish) => decodeText(publish.payload))).toEqual(['first', 'second']);
      expect(harness.broker.stats.retainedRefused).toBe(1);
      expect([...harness.broker.state.retained.keys()]).toEqual(['r/1']);
      // Replacing the retained message of a topic already held is not a new topic.
      expect(publisher.publish('r/1', 'again', 1, { retain: true })[0]).toMatchObject({ reasonCode: 0 });
    });
  }
});

describe('limit settings', () => {
  it('resolveConfig validates the rate limits', () => {
    expect(resolveConfig({ connectionRatePerSecondMax: 100, publishRatePerSecondMax: 0 }).ok).toBe(true);
    const bad = resolveConfig({ connectionRatePerSecondMax: -1, publishRatePerSecondMax: 1.5 });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.problems.some((problem) => problem.includes('connectionRatePerSecondMax'))).toBe(true);
      expect(bad.problems.some((problem) => problem.includes('publishRatePerSecondMax'))).toBe(true);
    }
  });

  it('a token bucket bursts to its rate, then refills at it, whatever the gaps', () => {
    const bucket = new TokenBucket(4, 0);
    expect([0, 0, 0, 0, 0].map(() => bucket.take(0))).toEqual([true, true, true, true, false]);
    expect(bucket.take(249)).toBe(false);
    expect(bucket.take(250)).toBe(true);
    // A long idle gap refills to the burst, not beyond.
    const afterGap = [0, 0, 0, 0, 0].map(() => bucket.take(1_000_000));
    expect(afterGap).toEqual([true, true, true, true, false]);
  });

  it('the PUBACK bytes of a packetBytesMax refusal are never sent', () => {
    // Guard for the harness: a packet over the limit is refused from its header alone.
    const harness = new Harness({ packetBytesMax: 64 });
    const client = harness.connect('c', 4);
    client.sendBytes(encodePacket({ type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 't', packetId: 1, payload: new Uint8Array(100) }, 4));
    expect(client.take()).toEqual([]);
    expect(client.closed).toBe(true);
    expect(harness.broker.stats.limits.packetBytesMax).toBe(1);
  });
});

/*
 * connectionOutputBytesMax: the host reports how much of a connection's output it still buffers
 * (`outputBuffered`); here the test plays the host and reports by hand. Past the cap QoS 0 is
 * dropped and counted, QoS 1/2 waits in the session queue (its limits and policy apply), and the
 * queue resumes once a report falls below half the cap. Other subscribers are not affected.
 */
describe('connection output cap', () => {
  const outputBytesMax = 4096;

  function stalledPair(harness: Harness, qos: 0 | 1): { slow: ReturnType<Harness['connect']>; fast: ReturnType<Harness['connect']> } {
    const slow = harness.connect('slow', 5);
    slow.subscribe([{ topicFilter: 't', qos }]);
    const fast = harness.connect('fast', 5);
    fast.subscribe([{ topicFilter: 't', qos }]);
    return { slow, fast };
  }

  function report(harness: Harness, client: { id: number }, bufferedBytes: number): void {
    harness.broker.outputBuffered(harness.nowMs, client.id, bufferedBytes);
    harness.collect();
  }

  const texts = (client: { publishes(): { payload: Uint8Array }[] }): string[] => client.publishes().map((publish) => decodeText(publish.payload));

  it('drops QoS 0 for a connection at the cap, counts and logs it, while another subscriber keeps receiving', () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax });
    const { slow, fast } = stalledPair(harness, 0);
    const publisher = harness.connect('pub', 5);
    report(harness, slow, outputBytesMax);
    for (let index = 0; index < 5; index++) publisher.publish('t', `m${index}`, 0);
    expect(texts(slow)).toEqual([]);
    expect(texts(fast)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(harness.broker.stats.drops.outputFull).toBe(5);
    const drops = harness.logs.filter((log) => log.event === 'message-dropped');
    expect(drops.map((log) => `${log.fields.clientId}:${log.fields.reason}`)).toEqual(Array(5).fill('slow:output-full'));
    // Drained: QoS 0 flows again (what was dropped stays dropped).
    report(harness, slow, 0);
    publisher.publish('t', 'after', 0);
    expect(texts(slow)).toEqual(['after']);
    expect(harness.broker.stats.drops.outputFull).toBe(5);
  });

  it('counts the sends of one input before any report: a burst stops at the cap', () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax });
    const { slow, fast } = stalledPair(harness, 0);
    const publisher = harness.connect('pub', 5);
    const payload = 'x'.repeat(1000);
    const burst: Uint8Array[] = [];
    for (let index = 0; index < 10; index++) burst.push(encodePacket({ type: PacketType.Publish, dup: false, qos: 0, retain: false, topic: 't', payload: new TextEncoder().encode(payload) }, 5));
    const bytes = new Uint8Array(burst.reduce((sum, part) => sum + part.length, 0));
    let offset = 0;
    for (const part of burst) {
      bytes.set(part, offset);
      offset += part.length;
    }
    // The host still holds half the cap for `slow`, nothing for `fast`.
    report(harness, slow, outputBytesMax / 2);
    publisher.sendBytes(bytes);
    const slowCount = slow.publishes().length;
    const fastCount = fast.publishes().length;
    // Sends stop once the cap is reached: the last one sent started below it.
    expect(fastCount).toBe(Math.ceil(outputBytesMax / burst[0]!.length));
    expect(slowCount).toBe(Math.ceil(outputBytesMax / 2 / burst[0]!.length));
    expect(harness.broker.stats.drops.outputFull).toBe(20 - slowCount - fastCount);
    // The next input starts from the host's last report: 0 for `fast`, half the cap for `slow`.
    report(harness, slow, 0);
    publisher.publish('t', 'next', 0);
    expect(texts(slow)).toEqual(['next']);
    expect(texts(fast)).toEqual(['next']);
  });

  it('keeps QoS 1 in the session queue at the cap and sends it, in order, once a report falls below half', () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax, inflightPerSessionMax: 2 });
    const { slow, fast } = stalledPair(harness, 1);
    const publisher = harness.connect('pub', 5);
    report(harness, slow, outputBytesMax + 100);
    for (let index = 0; index < 3; index++) publisher.publish('t', `m${index}`, 1);
    expect(slow.publishes()).toEqual([]);
    expect(harness.broker.state.sessions.get('slow')!.queue.length).toBe(3);
    for (const publish of fast.publishes()) fast.acknowledge(publish);
    // Still over half the cap: nothing moves.
    report(harness, slow, outputBytesMax / 2);
    expect(slow.publishes()).toEqual([]);
    // Below half: the window (2) fills; an acknowledgement lets the third go.
    report(harness, slow, outputBytesMax / 2 - 1);
    const first = slow.publishes();
    expect(first.map((publish) => decodeText(publish.payload))).toEqual(['m0', 'm1']);
    slow.acknowledge(first[0]!);
    expect(texts(slow)).toEqual(['m2']);
    expect(harness.broker.stats.drops.outputFull).toBe(0);
    expect(harness.broker.stats.drops.queueOverflow).toBe(0);
  });

  it('acknowledgements and PINGRESP still go to a connection at the cap', () => {
    const harness = new Harness({ connectionOutputBytesMax: outputBytesMax });
    const { slow } = stalledPair(harness, 1);
    report(harness, slow, outputBytesMax * 4);
    expect(slow.publish('elsewhere', 'p', 1).map((packet) => packet.type)).toEqual([PacketType.Puback]);
    slow.send({ type: PacketType.Pingreq });
    expect(slow.take().map((packet) => packet.type)).toEqual([PacketType.Pingresp]);
  });

  for (const [policy, kept] of [
    ['drop-oldest', ['m2', 'm3']],
    ['reject-new', ['m0', 'm1']],
  ] as const) {
    it(`past the cap the queue limit applies with ${policy}, each drop counted and logged`, () => {
      const harness = new Harness({ connectionOutputBytesMax: outputBytesMax, queuedMessagesPerSessionMax: 2, queueOverflowPolicy: policy });
      const { slow } = stalledPair(harness, 1);
      const publisher = harness.connect('pub', 5);
      report(harness, slow, outputBytesMax);
      for (let index = 0; index < 4; index++) publisher.publish('t', `m${index}`, 1);
      expect(harness.broker.stats.drops.queueOverflow).toBe(2);
      const reasons = harness.logs.filter((log) => log.event === 'message-dropped' && log.fields.clientId === 'slow').map((log) => log.fields.reason);
      expect(reasons).toEqual(['queue-overflow', 'queue-overflow']);
      report(harness, slow, 0);
      expect(texts(slow)).toEqual([...kept]);
    });
  }

  it('resolveConfig validates connectionOutputBytesMax', () => {
    expect(resolveConfig({}).ok && resolveConfig({}).ok).toBe(true);
    const fine = resolveConfig({ connectionOutputBytesMax: 4096 });
    expect(fine.ok && fine.config.connectionOutputBytesMax).toBe(4096);
    const tooSmall = resolveConfig({ connectionOutputBytesMax: 1000 });
    expect(tooSmall.ok).toBe(false);
    if (!tooSmall.ok) expect(tooSmall.problems.join()).toContain('connectionOutputBytesMax');
  });
});
