/**
 * Proves the checker rules added with the coverage worlds fire exactly where they must, driven
 * directly with hand-made observations (no broker): a delivery's QoS within what its matching
 * subscriptions were granted (and grants within the CONNACK's Maximum QoS); one copy per session
 * and publication however many plain subscriptions overlap, a publisher's resend being a new
 * publication; one member of a shared group per publication unless a member may have lost it;
 * nothing through a filter SUBACK refused or an earlier session had, unless an amnesty may have
 * undone that session's end; a clean start that reached the broker before a resume lets the will
 * go; and the keepalive watch, which wants a silent connection closed within 1.5 times its
 * keepalive of the last bytes that reached the broker. Then whole runs: the shapes the coverage
 * streams build (deep topics at the limits, hung clients, filter sets, the long-session world).
 */
import { describe, expect, it } from 'vitest';
import { Checker } from '../../sim/checker.js';
import { messagePayload, willPayload } from '../../sim/clients/payload.js';
import { chooseLongSessionClients, deepTopics } from '../../sim/coverage.js';
import { EventQueue } from '../../sim/event-queue.js';
import { KeepAliveWatch, keepAliveToleranceMs } from '../../sim/keepalive-watch.js';
import { type ClientSide, Link } from '../../sim/network.js';
import { chooseShape } from '../../sim/shape.js';
import { PacketType, type PublishPacket, type Qos } from '../../src/codec/packets.js';

const silentClient: ClientSide = { connected: () => {}, connectFailed: () => {}, bytes: () => {}, closed: () => {} };

interface Harness {
  clock: { nowMs: number };
  checker: Checker;
  violations: string[];
  links: Map<number, Link>;
}

function harness(): Harness {
  const clock = { nowMs: 0 };
  const violations: string[] = [];
  return { clock, violations, links: new Map(), checker: new Checker(clock, (rule) => violations.push(rule)) };
}

/** Client `client` connects (a persistent session), subscribes to `filters` at 10ms, and gets its SUBACK with `granted` at 20ms. */
function subscriber(h: Harness, client: number, filters: { filter: string; qos: Qos }[], granted: number[] = filters.map((f) => f.qos)): void {
  h.clock.nowMs = 5;
  const link = new Link(client + 100, client, silentClient);
  link.brokerOpen = true;
  h.links.set(client, link);
  h.checker.connectSent(client, 1, link, false, { willDelaySeconds: 0, sessionExpirySeconds: 0xffffffff, cleanStart: false });
  h.checker.sessionStarted(client);
  h.clock.nowMs = 10;
  h.checker.subscribeSent(client, filters);
  h.clock.nowMs = 20;
  h.checker.subackReceived(
    client,
    filters.map((f) => f.filter),
    granted,
  );
}

/** Client 0 publishes m0:`sequence` on `topic` at 100ms; it reaches the broker at 110ms. */
function published(h: Harness, topic: string, qos: Qos, sequence = 0): void {
  h.clock.nowMs = 100;
  h.checker.publishSent(0, sequence, topic, qos, false);
  h.checker.publishArrived(0, sequence, 110);
}

function copy(topic: string, sequence: number, publishedQos: Qos, deliveredQos: Qos, extra: Partial<PublishPacket> = {}): PublishPacket {
  return {
    type: PacketType.Publish,
    dup: false,
    qos: deliveredQos,
    retain: false,
    topic,
    payload: messagePayload(0, sequence, publishedQos, topic),
    ...(deliveredQos > 0 ? { packetId: 1 } : {}),
    ...extra,
  };
}

function deliver(h: Harness, client: number, packet: PublishPacket, atMs = 150): void {
  h.clock.nowMs = atMs;
  h.checker.publishReceived(client, packet, true, { sentMs: atMs - 5, decidedMs: atMs - 5 });
}

describe('checker: the QoS granted', () => {
  it('wants a delivery at no more than the highest QoS granted to a matching subscription', () => {
    const h = harness();
    subscriber(h, 1, [{ filter: 'a/+', qos: 0 }]);
    published(h, 'a/x', 2);
    deliver(h, 1, copy('a/x', 0, 2, 0));
    expect(h.violations).toEqual([]);
    deliver(h, 1, copy('a/x', 0, 2, 1, { dup: true }));
    expect(h.violations).toEqual(['qos-above-grant']);
  });

  it('bounds by the grant when it is below the request (maximumQos), and by the request before the SUBACK', () => {
    const granted = harness();
    subscriber(granted, 1, [{ filter: 'a/x', qos: 2 }], [1]);
    published(granted, 'a/x', 2);
    deliver(granted, 1, copy('a/x', 0, 2, 2));
    expect(granted.violations).toEqual(['qos-above-grant']);

    const pending = harness();
    pending.checker.sessionStarted(1);
    pending.checker.subscribeSent(1, [{ filter: 'a/x', qos: 1 }]);
    published(pending, 'a/x', 1);
    deliver(pending, 1, copy('a/x', 0, 1, 1));
    expect(pending.violations).toEqual([]);
  });

  it('takes the highest of overlapping subscriptions, and holds grants to the Maximum QoS of the CONNACK', () => {
    const h = harness();
    subscriber(h, 1, [
      { filter: 'a/+', qos: 0 },
      { filter: 'a/#', qos: 1 },
    ]);
    published(h, 'a/x', 2);
    deliver(h, 1, copy('a/x', 0, 2, 1));
    expect(h.violations).toEqual([]);

    const capped = harness();
    capped.checker.connackReceived(1, 1, false, false, true, 1);
    capped.checker.sessionStarted(1);
    capped.checker.subscribeSent(1, [{ filter: 'a/x', qos: 2 }]);
    capped.checker.subackReceived(1, ['a/x'], [2]);
    expect(capped.violations).toEqual(['suback-above-maximum-qos']);
  });
});

describe('checker: one copy per session and publication', () => {
  it('allows one copy however many plain subscriptions overlap (QoS 0)', () => {
    const h = harness();
    subscriber(h, 1, [
      { filter: 'a/+', qos: 0 },
      { filter: 'a/#', qos: 0 },
    ]);
    published(h, 'a/x', 0);
    deliver(h, 1, copy('a/x', 0, 0, 0));
    expect(h.violations).toEqual([]);
    deliver(h, 1, copy('a/x', 0, 0, 0));
    expect(h.violations).toEqual(['qos0-duplicated']);
  });

  it('allows DUP resends and a copy per publication (QoS 1), not a second first transmission', () => {
    const h = harness();
    subscriber(h, 1, [
      { filter: 'a/+', qos: 1 },
      { filter: 'a/#', qos: 0 },
    ]);
    published(h, 'a/x', 1);
    deliver(h, 1, copy('a/x', 0, 1, 1));
    deliver(h, 1, copy('a/x', 0, 1, 1, { dup: true }));
    expect(h.violations).toEqual([]);
    deliver(h, 1, copy('a/x', 0, 1, 0));
    expect(h.violations).toEqual(['duplicate-delivery']);

    const resent = harness();
    subscriber(resent, 1, [{ filter: 'a/+', qos: 1 }]);
    published(resent, 'a/x', 1);
    deliver(resent, 1, copy('a/x', 0, 1, 1));
    resent.checker.publishArrived(0, 0, 160);
    deliver(resent, 1, copy('a/x', 0, 1, 1), 170);
    expect(resent.violations).toEqual([]);
  });

  it('allows a shared group its own copy beside the plain one', () => {
    const h = harness();
    subscriber(h, 1, [
      { filter: 'a/+', qos: 0 },
      { filter: '$share/g/a/#', qos: 0 },
    ]);
    published(h, 'a/x', 0);
    deliver(h, 1, copy('a/x', 0, 0, 0));
    deliver(h, 1, copy('a/x', 0, 0, 0));
    expect(h.violations).toEqual([]);
    deliver(h, 1, copy('a/x', 0, 0, 0));
    expect(h.violations).toEqual(['qos0-duplicated']);
  });
});

describe('checker: a shared group gives each publication to one member', () => {
  function twoMembers(): Harness {
    const h = harness();
    subscriber(h, 1, [{ filter: '$share/g/a/+', qos: 1 }]);
    subscriber(h, 2, [{ filter: '$share/g/a/+', qos: 1 }]);
    published(h, 'a/x', 1);
    deliver(h, 1, copy('a/x', 0, 1, 1));
    return h;
  }

  it('rejects a second member receiving it', () => {
    const h = twoMembers();
    expect(h.violations).toEqual([]);
    deliver(h, 2, copy('a/x', 0, 1, 1), 160);
    expect(h.violations).toEqual(['shared-duplicated']);
  });

  it('lets it go to another member when the first may have lost it, or when it was published again', () => {
    const lost = twoMembers();
    lost.links.get(1)!.brokerEndMs = 155;
    deliver(lost, 2, copy('a/x', 0, 1, 1), 160);
    expect(lost.violations).toEqual([]);

    const again = twoMembers();
    again.checker.publishArrived(0, 0, 155);
    deliver(again, 2, copy('a/x', 0, 1, 1), 160);
    expect(again.violations).toEqual([]);
  });

  it('counts a member with a plain subscription too only once its copies outnumber the plain ones', () => {
    const h = harness();
    subscriber(h, 1, [{ filter: '$share/g/a/+', qos: 0 }]);
    subscriber(h, 2, [
      { filter: '$share/g/a/+', qos: 0 },
      { filter: 'a/#', qos: 0 },
    ]);
    published(h, 'a/x', 0);
    deliver(h, 1, copy('a/x', 0, 0, 0));
    deliver(h, 2, copy('a/x', 0, 0, 0));
    expect(h.violations).toEqual([]);
    deliver(h, 2, copy('a/x', 0, 0, 0));
    expect(h.violations).toEqual(['shared-duplicated']);
  });
});

describe('checker: subscriptions a session does not have', () => {
  it('rejects deliveries through a filter SUBACK refused', () => {
    const h = harness();
    subscriber(h, 1, [{ filter: 'l/+/+/+/+/+', qos: 1 }], [0x80]);
    published(h, 'l/m/m/m/m/x', 1);
    deliver(h, 1, copy('l/m/m/m/m/x', 0, 1, 1));
    expect(h.violations).toEqual(['not-subscribed']);
  });

  it("rejects deliveries through an earlier session's filter after a clean start, unless an amnesty followed it", () => {
    for (const amnesty of [false, true]) {
      const h = harness();
      subscriber(h, 1, [{ filter: 'a/+', qos: 1 }]);
      h.clock.nowMs = 50;
      h.checker.connackReceived(1, 2, false, false, true);
      h.checker.sessionStarted(1);
      h.checker.subscribeSent(1, [{ filter: 'b/#', qos: 1 }]);
      h.checker.subackReceived(1, ['b/#'], [1]);
      if (amnesty) {
        h.clock.nowMs = 60;
        h.checker.openAmnesty();
      }
      published(h, 'a/x', 1);
      deliver(h, 1, copy('a/x', 0, 1, 1));
      expect(h.violations, `amnesty ${amnesty}`).toEqual(amnesty ? [] : ['not-subscribed']);
    }
  });

  it('rejects session present on a clean start', () => {
    const h = harness();
    h.checker.connackReceived(1, 1, true, false, true);
    expect(h.violations).toEqual(['session-present-on-clean-start']);
  });
});

describe('checker: a will and a clean start before a resume', () => {
  it('lets the will go when a clean start reached the broker before the session was resumed', () => {
    for (const cleanStartFirst of [false, true]) {
      const h = harness();
      subscriber(h, 1, [{ filter: 'will/#', qos: 1 }]);
      const options = { willDelaySeconds: 3, sessionExpirySeconds: 0xffffffff, cleanStart: false };
      const link = new Link(7, 0, silentClient);
      h.checker.connectSent(0, 1, link, true, options);
      h.checker.connackReceived(0, 1, false, false, false);
      h.clock.nowMs = 1_000;
      link.brokerEndMs = 1_000;
      h.checker.connectionEnded(0, 1, link, 'abnormal');
      h.clock.nowMs = 1_200;
      const clean = new Link(8, 0, silentClient);
      h.checker.connectSent(0, 2, clean, false, { ...options, cleanStart: true });
      if (cleanStartFirst) clean.noteDeliveredToBroker(1, 1_210);
      h.clock.nowMs = 1_500;
      h.checker.connectSent(0, 3, new Link(9, 0, silentClient), false, options);
      h.clock.nowMs = 1_600;
      h.checker.connackReceived(0, 3, true, !cleanStartFirst, false);
      h.clock.nowMs = 1_700;
      h.checker.publishReceived(1, { type: PacketType.Publish, dup: false, qos: 1, retain: false, topic: 'will/c0', packetId: 1, payload: willPayload(0, 1, 'will/c0') }, true);
      expect(h.violations, `clean start first ${cleanStartFirst}`).toEqual(cleanStartFirst ? [] : ['will-after-resume']);
    }
  });
});

describe('keepalive watch', () => {
  function watched(keepAliveSeconds: number): { queue: EventQueue; clock: { nowMs: number }; link: Link; violations: string[]; runUntil: (untilMs: number) => void } {
    const queue = new EventQueue();
    const clock = { nowMs: 0 };
    const violations: string[] = [];
    const watch = new KeepAliveWatch(queue, clock, (rule) => violations.push(rule));
    const link = new Link(1, 0, silentClient);
    link.brokerOpen = true;
    link.noteDeliveredToBroker(10, 100);
    clock.nowMs = 120;
    watch.watch(link, keepAliveSeconds);
    const runUntil = (untilMs: number): void => {
      for (let time = queue.peekTimeMs(); time !== null && time <= untilMs; time = queue.peekTimeMs()) {
        const event = queue.pop()!;
        clock.nowMs = event.timeMs;
        event.run();
      }
    };
    return { queue, clock, link, violations, runUntil };
  }

  it('wants a silent connection closed within 1.5 times its keepalive, give or take the tolerance', () => {
    const closed = watched(2);
    closed.runUntil(3_099);
    closed.link.brokerOpen = false;
    closed.runUntil(10_000);
    expect(closed.violations).toEqual([]);

    const open = watched(2);
    open.runUntil(3_100 + keepAliveToleranceMs - 1);
    expect(open.violations).toEqual([]);
    open.runUntil(3_100 + keepAliveToleranceMs);
    expect(open.violations).toEqual(['keepalive-not-enforced']);
  });

  it('counts from the last bytes that reached the broker, and asks nothing of keepalive 0', () => {
    const talking = watched(2);
    talking.runUntil(2_000);
    talking.link.noteDeliveredToBroker(2, 2_000);
    talking.runUntil(5_000 + keepAliveToleranceMs - 1);
    expect(talking.violations).toEqual([]);
    talking.runUntil(5_000 + keepAliveToleranceMs);
    expect(talking.violations).toEqual(['keepalive-not-enforced']);

    const none = watched(0);
    none.runUntil(1_000_000);
    expect(none.violations).toEqual([]);
    expect(none.queue.peekTimeMs()).toBeNull();
  });
});

describe('coverage world shapes', () => {
  const shapes = Array.from({ length: 300 }, (_, seed) => chooseShape(seed));

  it('gives a share of worlds deep topics, small topic limits, a lower Maximum QoS, a Server Keep Alive and hung clients', () => {
    const deep = shapes.filter((shape) => shape.deepTopics);
    expect(deep.length).toBeGreaterThan(60);
    expect(deep.some((shape) => shape.clients.some((client) => client.publishes.some((p) => p.topic.startsWith('$'))))).toBe(true);
    expect(deep.some((shape) => shape.clients.some((client) => client.publishes.some((p) => (deepTopics as readonly string[]).includes(p.topic) && p.topic.includes('//'))))).toBe(true);
    const limited = shapes.filter((shape) => shape.configOverrides.topicLevelsMax !== undefined);
    expect(limited.length).toBeGreaterThan(20);
    for (const shape of limited) {
      const { topicLevelsMax, topicBytesMax } = shape.configOverrides;
      // Every topic published fits the limits (the broker would cut the publisher off otherwise).
      for (const client of shape.clients)
        for (const publish of client.publishes) {
          expect(publish.topic.split('/').length).toBeLessThanOrEqual(topicLevelsMax!);
          expect(new TextEncoder().encode(publish.topic).length).toBeLessThanOrEqual(topicBytesMax!);
        }
    }
    const capped = shapes.filter((shape) => shape.configOverrides.maximumQos !== undefined);
    expect(capped.length).toBeGreaterThan(20);
    for (const shape of capped) for (const client of shape.clients) for (const p of client.publishes) expect(p.qos).toBeLessThanOrEqual(shape.configOverrides.maximumQos!);
    expect(shapes.filter((shape) => shape.configOverrides.serverKeepAliveSeconds !== undefined).length).toBeGreaterThan(20);
    expect(shapes.filter((shape) => shape.clients.some((client) => (client.coverage?.hangs.length ?? 0) > 0)).length).toBeGreaterThan(60);
    expect(shapes.filter((shape) => shape.clients.some((client) => (client.coverage?.subscriptionSets.length ?? 0) > 1)).length).toBeGreaterThan(100);
    // Not a speed test: it builds hundreds of worlds, seconds on a loaded machine.
  }, 60_000);

  it('builds none of it without the workload streams, and a rare long-session world', () => {
    expect(Array.from({ length: 50 }, (_, seed) => chooseShape(seed, { workload: false })).every((shape) => shape.clients.every((c) => c.coverage === undefined))).toBe(true);
    const long = chooseShape(794);
    expect(long.kind).toBe('long-session');
    expect(long.clients[0]!.publishes.filter((p) => p.qos > 0).length).toBeGreaterThan(65_535);
    expect(chooseLongSessionClients(794, { messageCount: 10, intervalMs: 3 })[1]!.subscriptions).toEqual([{ filter: 'long/#', qos: 2 }]);
  });
});
