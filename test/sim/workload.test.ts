/**
 * Proves the simulator's workload extensions do what the checker relies on, and that the
 * checker's new rules fire exactly where they must.
 *
 * - The network's stalled reader: bytes sent to a client that stopped reading stay counted as
 *   buffered (and reported to the broker side), reach it in order when it reads again, and an
 *   orderly close waits behind them; send times and arrival watches report the right instants.
 * - The checker, driven directly with hand-made observations: QoS 0 lost on a connection that
 *   stayed up is a violation unless the broker reported the drop; an expired message sent fresh
 *   is a violation and the forwarded expiry must be reduced by the time waited; a will is not
 *   published before its delay, nor after a resume within it, and is owed only if no resume
 *   could come before its delay ran out (counted again from each recovery after a crash that
 *   struck while it waited, in event order); nothing routed after an UNSUBACK
 *   comes through the removed filter, while what was routed before may.
 * - Whole runs: a seed whose stalled readers hit a small output cap (QoS 0 dropped and reported)
 *   passes; `workload: false` builds the world without the workload streams.
 */
import { describe, expect, it } from 'vitest';
import { Checker } from '../../sim/checker.js';
import { messagePayload, willPayload } from '../../sim/clients/payload.js';
import { EventQueue } from '../../sim/event-queue.js';
import { type BrokerSide, type ClientSide, Link, Network, type NetworkShape } from '../../sim/network.js';
import { Random } from '../../sim/random.js';
import { chooseShape } from '../../sim/shape.js';
import { runSimulation } from '../../sim/simulation.js';
import { PacketType, type PublishPacket, type Qos } from '../../src/codec/packets.js';
import { crc32c } from '../../src/store/crc32c.js';

const silentClient: ClientSide = { connected: () => {}, connectFailed: () => {}, bytes: () => {}, closed: () => {} };
/** A broker that is up and ignores everything; tests override what they watch. */
const silentBroker: BrokerSide = { acceptingIncarnation: () => 1, opened: () => {}, bytes: () => {}, closed: () => {}, outputBuffered: () => {} };

/** A network without stalls or partitions, with its own event queue and clock. */
function quietNetwork(seed: number, shape: Pick<NetworkShape, 'latencyMsMin' | 'latencyMsMax' | 'segmentBytesMax'>): { queue: EventQueue; clock: { nowMs: number }; network: Network } {
  const queue = new EventQueue();
  const clock = { nowMs: 0 };
  const network = new Network(queue, Random.stream(seed, 'network'), { ...shape, stallProbability: 0, stallMsMax: 10 }, clock, () => {});
  return { queue, clock, network };
}

function drain(queue: EventQueue, clock: { nowMs: number }, untilMs: number): void {
  for (let time = queue.peekTimeMs(); time !== null && time <= untilMs; time = queue.peekTimeMs()) {
    const event = queue.pop()!;
    clock.nowMs = event.timeMs;
    event.run();
  }
}

describe('broker reads paused on the simulated network (publisher throttling)', () => {
  it("holds the client's bytes in order and hands them over after the resume, ahead of bytes arriving at the same instant", () => {
    // A fixed latency, so that later bytes can be made to arrive exactly when the resume happens.
    const { queue, clock, network } = quietNetwork(5, { latencyMsMin: 5, latencyMsMax: 5, segmentBytesMax: 3 });
    const received: number[] = [];
    let closedAtBroker = false;
    network.broker = { ...silentBroker, bytes: (_link, bytes) => received.push(...bytes), closed: () => (closedAtBroker = true) };
    const link = network.connect(0, silentClient);
    drain(queue, clock, 100);
    clock.nowMs = 100;
    network.pauseBrokerReads(link);
    const sent = Array.from({ length: 30 }, (_, index) => index);
    network.clientSend(link, Uint8Array.from(sent.slice(0, 20)));
    drain(queue, clock, 200);
    expect(received).toEqual([]);
    expect(link.bytesDeliveredToBroker).toBe(0);
    // The resume runs at 205, before the later bytes' arrival events of that same instant.
    clock.nowMs = 200;
    queue.push(205, () => network.resumeBrokerReads(link));
    network.clientSend(link, Uint8Array.from(sent.slice(20)));
    network.clientClose(link);
    drain(queue, clock, 1_000);
    expect(received).toEqual(sent);
    expect(link.bytesDeliveredToBroker).toBe(30);
    expect(closedAtBroker).toBe(true);
  });

  it('sees a FIN that arrives while paused only after the held bytes', () => {
    const { queue, clock, network } = quietNetwork(6, { latencyMsMin: 1, latencyMsMax: 5, segmentBytesMax: 2 });
    const events: string[] = [];
    network.broker = { ...silentBroker, bytes: (_link, bytes) => events.push(`bytes ${bytes.length}`), closed: () => events.push('closed') };
    const link = network.connect(0, silentClient);
    drain(queue, clock, 100);
    network.pauseBrokerReads(link);
    network.clientSend(link, Uint8Array.of(1, 2, 3, 4));
    network.clientClose(link);
    drain(queue, clock, 500);
    expect(events).toEqual([]);
    network.resumeBrokerReads(link);
    drain(queue, clock, 600);
    expect(events.at(-1)).toBe('closed');
    expect(events.filter((event) => event.startsWith('bytes')).length).toBeGreaterThan(0);
    expect(link.bytesDeliveredToBroker).toBe(4);
  });
});

describe('stalled reader on the simulated network', () => {
  it('keeps held bytes buffered, reads them in order on release, and holds a FIN behind them', () => {
    const { queue, clock, network } = quietNetwork(3, { latencyMsMin: 1, latencyMsMax: 5, segmentBytesMax: 4 });
    const reports: number[] = [];
    network.broker = { ...silentBroker, outputBuffered: (_link, bytes) => reports.push(bytes) };
    const read: number[] = [];
    let closedHow: string | null = null;
    const client: ClientSide = { ...silentClient, bytes: (_link, bytes) => read.push(...bytes), closed: (_link, how) => (closedHow = how) };
    const link = network.connect(0, client);
    drain(queue, clock, 100);
    clock.nowMs = 100;
    network.holdReads(link);
    const sent = Array.from({ length: 40 }, (_, index) => index);
    network.brokerSend(link, Uint8Array.from(sent.slice(0, 20)));
    clock.nowMs = 150;
    network.brokerSend(link, Uint8Array.from(sent.slice(20)));
    network.flushOutputReports();
    network.brokerClose(link);
    drain(queue, clock, 1_000);
    expect(read).toEqual([]);
    expect(closedHow).toBeNull();
    expect(link.bytesSentToClient - link.bytesDeliveredToClient).toBe(40);
    expect(reports.at(-1)).toBe(40);
    expect(link.brokerSendTimeMs(19)).toBe(100);
    expect(link.brokerSendTimeMs(20)).toBe(150);
    network.releaseReads(link);
    expect(read).toEqual(sent);
    expect(closedHow).toBe('fin');
  });

  it('tells when the bytes a client sent so far reached the broker', () => {
    const { queue, clock, network } = quietNetwork(4, { latencyMsMin: 10, latencyMsMax: 30, segmentBytesMax: 1 });
    let _receivedBytes = 0;
    let receivedAtMs = -1;
    network.broker = {
      ...silentBroker,
      bytes: (_link, bytes) => {
        _receivedBytes += bytes.length;
        receivedAtMs = clock.nowMs;
      },
    };
    const link = network.connect(0, silentClient);
    drain(queue, clock, 100);
    network.clientSend(link, new Uint8Array(7));
    const arrivals: number[] = [];
    link.watchArrival((atMs) => arrivals.push(atMs, link.bytesDeliveredToBroker));
    drain(queue, clock, 10_000);
    expect(arrivals).toEqual([receivedAtMs, 7]);
  });
});

interface Harness {
  clock: { nowMs: number };
  checker: Checker;
  violations: string[];
}

function harness(): Harness {
  const clock = { nowMs: 0 };
  const violations: string[] = [];
  return { clock, violations, checker: new Checker(clock, (rule) => violations.push(rule)) };
}

function publish(topic: string, publisher: number, sequence: number, qos: Qos, extra: Partial<PublishPacket> = {}): PublishPacket {
  return { type: PacketType.Publish, dup: false, qos, retain: false, topic, payload: messagePayload(publisher, sequence, qos, topic), ...extra };
}

/** Client 1 subscribes to `filter` at 10ms (SUBACK at 20ms); client 0 publishes m0:0 on a/x at 100ms, reaching the broker at 110ms. */
function subscribedAndPublished(h: Harness, filter: string, qos: Qos, expirySeconds: number | null = null): void {
  h.clock.nowMs = 10;
  h.checker.sessionStarted(1);
  h.checker.subscribeSent(1, [{ filter, qos }]);
  h.clock.nowMs = 20;
  h.checker.subackReceived(1, [filter], [qos]);
  h.clock.nowMs = 100;
  h.checker.publishSent(0, 0, 'a/x', qos, false, expirySeconds);
  h.checker.publishArrived(0, 0, 110);
}

describe('checker: QoS 0 and the output cap', () => {
  it('reports QoS 0 lost on a connection that stayed up, unless the broker reported the drop', () => {
    const lost = harness();
    subscribedAndPublished(lost, 'a/#', 0);
    lost.checker.checkQos0Delivered(new Map([[1, 5]]));
    expect(lost.violations).toEqual(['qos0-lost']);

    const reported = harness();
    subscribedAndPublished(reported, 'a/#', 0);
    reported.checker.brokerDropped(1, 'a/x', crc32c(messagePayload(0, 0, 0, 'a/x')));
    reported.checker.checkQos0Delivered(new Map([[1, 5]]));
    expect(reported.violations).toEqual([]);

    // A connection made after the message was sent, or one that did not stay up, is owed nothing.
    const reconnected = harness();
    subscribedAndPublished(reconnected, 'a/#', 0);
    reconnected.checker.checkQos0Delivered(new Map([[1, 105]]));
    reconnected.checker.checkQos0Delivered(new Map());
    expect(reconnected.violations).toEqual([]);
  });
});

describe('checker: message expiry', () => {
  it('rejects a fresh copy decided after expiry, but not a DUP resend', () => {
    const h = harness();
    subscribedAndPublished(h, 'a/x', 1, 4);
    h.clock.nowMs = 4_200;
    h.checker.publishReceived(1, publish('a/x', 0, 0, 1, { packetId: 1, dup: true }), true, { sentMs: 4_150, decidedMs: 4_150 }, 4);
    expect(h.violations).toEqual([]);
    h.checker.publishReceived(1, publish('a/x', 0, 0, 1, { packetId: 2 }), true, { sentMs: 4_150, decidedMs: 4_150 }, 4);
    expect(h.violations).toEqual(['expired-delivered']);
  });

  it('wants the forwarded interval reduced by exactly the time waited', () => {
    const withExpiry = (interval: number | undefined): PublishPacket =>
      publish('a/x', 0, 0, 1, { packetId: 1, ...(interval === undefined ? {} : { properties: { messageExpiryInterval: interval } }) });
    for (const [interval, decidedMs, violations] of [
      [3, 1_500, []], // 4110 - 1500 = 2610 ms left: 3 s
      [4, 1_500, ['expiry-interval']], // not reduced
      [2, 1_500, ['expiry-interval']], // reduced too much
      [4, null, []], // maybe decided at arrival: up to the full 4 s
      [undefined, 1_500, ['expiry-interval']], // dropped
    ] as const) {
      const h = harness();
      subscribedAndPublished(h, 'a/x', 1, 4);
      h.clock.nowMs = 1_600;
      h.checker.publishReceived(1, withExpiry(interval), true, { sentMs: 1_500, decidedMs }, 5);
      expect(h.violations, `interval ${String(interval)} decided ${String(decidedMs)}`).toEqual(violations);
    }
  });

  it('rejects an expiry interval on a message published without one', () => {
    const h = harness();
    subscribedAndPublished(h, 'a/x', 1);
    h.checker.publishReceived(1, publish('a/x', 0, 0, 1, { packetId: 1, properties: { messageExpiryInterval: 9 } }), true, { sentMs: 200, decidedMs: 200 }, 5);
    expect(h.violations).toEqual(['expiry-invented']);
  });
});

describe('checker: UNSUBSCRIBE', () => {
  it('allows what reached the broker before the UNSUBACK, and nothing after', () => {
    const h = harness();
    subscribedAndPublished(h, 'a/x', 1);
    h.clock.nowMs = 120;
    h.checker.unsubscribeSent(1, 'a/x');
    h.clock.nowMs = 130;
    h.checker.unsubackReceived(1, 'a/x');
    h.checker.publishReceived(1, publish('a/x', 0, 0, 1, { packetId: 1 }), true);
    expect(h.violations).toEqual([]);
    h.clock.nowMs = 140;
    h.checker.publishSent(0, 1, 'a/x', 1, false);
    h.checker.publishArrived(0, 1, 150);
    h.checker.publishReceived(1, publish('a/x', 0, 1, 1, { packetId: 2 }), true);
    expect(h.violations).toEqual(['not-subscribed']);
  });
});

describe('checker: will delay', () => {
  function willScenario(deliveredAtMs: number, resumedAtMs: number | null): string[] {
    const h = harness();
    h.clock.nowMs = 10;
    h.checker.sessionStarted(1);
    h.checker.subscribeSent(1, [{ filter: 'will/#', qos: 1 }]);
    h.checker.subackReceived(1, ['will/#'], [1]);
    const link = new Link(7, 0, silentClient);
    h.checker.connectSent(0, 1, link, true, { willDelaySeconds: 3, sessionExpirySeconds: 0xffffffff, cleanStart: false });
    h.clock.nowMs = 20;
    h.checker.connackReceived(0, 1, false, false, false);
    h.clock.nowMs = 1_000;
    link.brokerEndMs = 1_000;
    h.checker.connectionEnded(0, 1, link, 'abnormal');
    if (resumedAtMs !== null) {
      h.clock.nowMs = resumedAtMs - 10;
      h.checker.connectSent(0, 2, new Link(8, 0, silentClient), false, { willDelaySeconds: 3, sessionExpirySeconds: 0xffffffff, cleanStart: false });
      h.clock.nowMs = resumedAtMs;
      h.checker.connackReceived(0, 2, true, true, false);
    }
    h.clock.nowMs = deliveredAtMs;
    const payload = willPayload(0, 1, 'will/c0');
    h.checker.publishReceived(1, { type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 'will/c0', packetId: 1, payload }, true);
    return h.violations;
  }

  it('lets a clean-start CONNECT end the session early, even an older one held up in the network', () => {
    const h = harness();
    h.clock.nowMs = 10;
    h.checker.sessionStarted(1);
    h.checker.subscribeSent(1, [{ filter: 'will/#', qos: 1 }]);
    h.checker.subackReceived(1, ['will/#'], [1]);
    const options = { willDelaySeconds: 3, sessionExpirySeconds: 5, cleanStart: true };
    const stale = new Link(6, 0, silentClient);
    h.checker.connectSent(0, 1, stale, false, options);
    h.clock.nowMs = 500;
    const link = new Link(7, 0, silentClient);
    h.checker.connectSent(0, 2, link, true, options);
    link.noteDeliveredToBroker(1, 510);
    h.clock.nowMs = 520;
    h.checker.connackReceived(0, 2, false, false, true);
    h.clock.nowMs = 1_000;
    link.brokerEndMs = 1_000;
    h.checker.connectionEnded(0, 2, link, 'abnormal');
    const deliver = (): void =>
      h.checker.publishReceived(1, { type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 'will/c0', packetId: 1, payload: willPayload(0, 2, 'will/c0') }, true);
    h.clock.nowMs = 1_100;
    deliver();
    expect(h.violations).toEqual(['will-early']);
    h.violations.length = 0;
    stale.noteDeliveredToBroker(1, 1_050);
    deliver();
    expect(h.violations).toEqual([]);
  });

  it('waits out the delay, and a resume within it cancels the will', () => {
    expect(willScenario(4_100, null)).toEqual([]);
    expect(willScenario(2_000, null)).toEqual(['will-early']);
    expect(willScenario(4_100, 2_500)).toEqual(['will-after-resume']);
    expect(willScenario(4_500, 4_200)).toEqual([]);
  });
});

describe('checker: a delayed will across broker restarts', () => {
  /** c0's connection ends at 1000ms with a 1 s will delay; the broker crashes and recovers twice (once in one ms); c0 reconnects. */
  function owedAfterRestarts(reconnectSentMs: number): string[] {
    const h = harness();
    h.clock.nowMs = 10;
    h.checker.sessionStarted(1);
    h.checker.subscribeSent(1, [{ filter: 'will/#', qos: 1 }]);
    h.checker.subackReceived(1, ['will/#'], [1]);
    const link = new Link(7, 0, silentClient);
    const options = { willDelaySeconds: 1, sessionExpirySeconds: 0xffffffff, cleanStart: false };
    h.checker.connectSent(0, 1, link, true, options);
    h.clock.nowMs = 20;
    h.checker.connackReceived(0, 1, false, false, false);
    h.clock.nowMs = 1_000;
    link.brokerEndMs = 1_000;
    h.checker.connectionEnded(0, 1, link, 'abnormal');
    for (const [atMs, event] of [
      [1_500, 'crash'],
      [2_000, 'recovered'],
      [2_000, 'crash'],
      [5_000, 'recovered'],
    ] as const) {
      h.clock.nowMs = atMs;
      if (event === 'crash') h.checker.brokerCrashed();
      else h.checker.brokerRecovered();
    }
    h.clock.nowMs = reconnectSentMs;
    const reconnect = new Link(8, 0, silentClient);
    h.checker.connectSent(0, 2, reconnect, true, options);
    reconnect.noteDeliveredToBroker(1, reconnectSentMs + 20);
    h.clock.nowMs = 90_000;
    h.checker.checkDeliveredObligations();
    return h.violations;
  }

  it('owes the will only if no resume could come before its delay, counted from the last recovery', () => {
    expect(owedAfterRestarts(5_500)).toEqual([]);
    expect(owedAfterRestarts(5_990)).toEqual(['lost']); // sent in time, but reached the broker after the delay
    expect(owedAfterRestarts(6_500)).toEqual(['lost']);
  });
});

describe('workload in whole runs', () => {
  it('passes a seed whose stalled readers hit a small output cap (QoS 0 dropped and reported)', () => {
    const lines: string[] = [];
    const result = runSimulation({ seed: 14, stdout: (line) => lines.push(line), stderr: () => {} });
    expect(result.ok, lines.join('\n')).toBe(true);
    expect(result.readStalls).toBeGreaterThan(0);
    expect(result.outputFullDrops).toBeGreaterThan(0);
  });

  it('builds the world without the workload streams when asked', () => {
    const without = chooseShape(14, { workload: false });
    const withWorkload = chooseShape(14);
    expect(without.clients.every((client) => client.workload === undefined)).toBe(true);
    expect(withWorkload.clients.some((client) => (client.workload?.readStalls.length ?? 0) > 0)).toBe(true);
    expect(withWorkload.network).toEqual(without.network);
    expect(withWorkload.faultKinds).toEqual(without.faultKinds);
  });
});
