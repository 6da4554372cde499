/**
 * Unit tests of the simulator's parts, each against an independent reference: the event queue
 * against a sort by (time, insertion), the trace hash against a BigInt FNV-1a 64, the random
 * streams for independence between clients, the oracle's topic matcher on the spec's examples,
 * and the network for in-order delivery of every stream under 1-byte segmentation and jitter.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { messagePayload, parsePayload, willPayload } from '../../sim/clients/payload.js';
import { EventQueue, Timer } from '../../sim/event-queue.js';
import { type ClientSide, InFlight, type Link, Network } from '../../sim/network.js';
import { Random } from '../../sim/random.js';
import { chooseShape } from '../../sim/shape.js';
import { topicMatches } from '../../sim/topic-match.js';
import { TraceHash } from '../../sim/trace-hash.js';

function referenceFnv(bytes: number[]): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash.toString(16).padStart(16, '0');
}

describe('event queue', () => {
  it('pops in (time, insertion) order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }), (times) => {
        const queue = new EventQueue();
        const popped: number[] = [];
        for (const [index, time] of times.entries()) queue.push(time, () => popped.push(index));
        for (let event = queue.pop(); event !== undefined; event = queue.pop()) event.run();
        const expected = times
          .map((time, index) => ({ time, index }))
          .sort((a, b) => a.time - b.time || a.index - b.index)
          .map((e) => e.index);
        expect(popped).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });

  it('pops in (time, insertion) order over more distinct times than its first capacity, fractional ones too', () => {
    // Events wait in one bucket per distinct time, and the times in a heap that starts at 256.
    const time = fc.oneof(fc.integer({ min: 0, max: 3_000 }), fc.double({ min: 0, max: 3_000, noNaN: true }));
    fc.assert(
      fc.property(fc.array(time, { minLength: 300, maxLength: 1_500 }), (times) => {
        const queue = new EventQueue();
        const popped: number[] = [];
        for (const [index, timeMs] of times.entries()) queue.push(timeMs, () => popped.push(index));
        expect(queue.size).toBe(times.length);
        for (let event = queue.pop(); event !== undefined; event = queue.pop()) event.run();
        const expected = times
          .map((timeMs, index) => ({ timeMs, index }))
          .sort((a, b) => a.timeMs - b.timeMs || a.index - b.index)
          .map((e) => e.index);
        expect(popped).toEqual(expected);
        expect(queue.size).toBe(0);
      }),
      { numRuns: 50 },
    );
  });

  it('keeps that order when events are pushed while others run, past its first capacity', () => {
    // Each run may schedule more events (at or after now), as the world's events do; the heap
    // grows past its initial 1,024 slots. The reference is a sort by (time, push order).
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 1_500 }), (plan) => {
        const queue = new EventQueue();
        const pushed: { time: number; order: number }[] = [];
        const ran: number[] = [];
        let next = 0;
        const schedule = (time: number): void => {
          const order = pushed.length;
          pushed.push({ time, order });
          queue.push(time, () => {
            ran.push(order);
            const [delay, count] = plan[next++ % plan.length]!;
            if (next < plan.length) for (let index = 0; index < count; index++) schedule(time + delay);
          });
        };
        for (const [time] of plan) schedule(time);
        let lastTime = -1;
        for (let time = queue.peekTimeMs(); time !== null; time = queue.peekTimeMs()) {
          expect(time).toBeGreaterThanOrEqual(lastTime);
          lastTime = time;
          queue.popRun()();
        }
        expect(queue.size).toBe(0);
        const expected = [...pushed].sort((a, b) => a.time - b.time || a.order - b.order).map((event) => event.order);
        expect(ran).toEqual(expected);
      }),
      { numRuns: 30 },
    );
  });
});

describe('event queue timers', () => {
  // The reference is how the worlds kept a moving deadline before timers: a new event per move,
  // which runs only if no later move superseded it. A timer must run exactly those, at the same
  // places among the other events, and the queue must count it as one pending event while armed.
  type Step = { kind: 'push' | 'arm'; timeMs: number } | { kind: 'disarm' } | { kind: 'pop' };
  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ kind: fc.constantFrom('push' as const, 'arm' as const), timeMs: fc.integer({ min: 0, max: 15 }) }),
    fc.constant({ kind: 'disarm' as const }),
    fc.constant({ kind: 'pop' as const }),
  );

  it('runs where the last event pushed for each move would have run, and nothing for a superseded one', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
        const timed = new EventQueue();
        const reference = new EventQueue();
        const timedRan: string[] = [];
        const referenceRan: string[] = [];
        let label = '';
        const timer = new Timer(() => timedRan.push(`timer ${label}`));
        let token = 0;
        let pending = 0;
        const popBoth = (): void => {
          const timeMs = timed.peekTimeMs();
          if (timeMs !== null) timedRan.push(`at ${timeMs}`);
          if (timeMs !== null) timed.popRun()();
          // The reference pops superseded moves as events that do nothing: past them to the next real one, if any.
          for (let before = referenceRan.length; referenceRan.length === before; ) {
            const referenceMs = reference.peekTimeMs();
            if (referenceMs === null) break;
            referenceRan.push(`at ${referenceMs}`);
            reference.popRun()();
            if (referenceRan.length === before + 1) referenceRan.pop();
          }
        };
        for (const [index, next] of steps.entries()) {
          if (next.kind === 'push') {
            pending += 1;
            timed.push(next.timeMs, () => timedRan.push(`event ${index}`));
            reference.push(next.timeMs, () => referenceRan.push(`event ${index}`));
          } else if (next.kind === 'arm') {
            label = String(index);
            timed.arm(timer, next.timeMs);
            const mine = ++token;
            const moved = String(index);
            reference.push(next.timeMs, () => {
              if (mine === token) referenceRan.push(`timer ${moved}`);
            });
          } else if (next.kind === 'disarm') {
            timed.disarm(timer);
            token += 1;
          } else {
            popBoth();
          }
        }
        while (timed.peekTimeMs() !== null) popBoth();
        popBoth();
        expect(reference.peekTimeMs()).toBeNull();
        expect(timedRan).toEqual(referenceRan);
        expect(timed.size).toBe(0);
        expect(timedRan.filter((ran) => ran.startsWith('event'))).toHaveLength(pending);
      }),
      { numRuns: 300 },
    );
  });

  it('counts an armed timer as one pending event, however often it moved', () => {
    const queue = new EventQueue();
    const timer = new Timer(() => {});
    queue.push(5, () => {});
    queue.arm(timer, 9);
    queue.arm(timer, 3);
    expect(queue.size).toBe(2);
    expect(queue.peekTimeMs()).toBe(3);
    queue.disarm(timer);
    expect(queue.size).toBe(1);
    expect(queue.peekTimeMs()).toBe(5);
    expect(() => queue.arm(timer, Number.NaN)).toThrow(/finite/);
  });
});

describe('trace hash', () => {
  it('is FNV-1a 64 over the bytes fed', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 300 }), (bytes) => {
        const hash = new TraceHash();
        hash.bytes(Uint8Array.from(bytes));
        expect(hash.hex()).toBe(referenceFnv(bytes));
      }),
      { numRuns: 300 },
    );
    expect(new TraceHash().hex()).toBe('cbf29ce484222325');
  });

  it('hashes text as its UTF-16 units, low byte first, and numbers as their decimal text', () => {
    // The world hashes `${nowMs} ${line}` in pieces (integer, units, text) without joining them;
    // that must be the same hash as the joined line, as a byte array, through the reference.
    fc.assert(
      fc.property(
        fc.oneof(fc.nat(), fc.constantFrom(0, -0, 9, 10, 99, 100, 0x7fffffff, 0x80000000, -1, 1.5), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.double({ noNaN: true })),
        fc.string({ unit: 'binary', maxLength: 40 }),
        (nowMs, line) => {
          const joined = `${nowMs} ${line}\n`;
          const bytes: number[] = [];
          for (let index = 0; index < joined.length; index++) bytes.push(joined.charCodeAt(index) & 0xff, joined.charCodeAt(index) >>> 8);
          bytes.pop(); // the separator is one byte, not a UTF-16 unit
          const hash = new TraceHash();
          hash.integer(nowMs);
          hash.units(' ');
          hash.text(line);
          expect(hash.hex()).toBe(referenceFnv(bytes));
        },
      ),
      { numRuns: 100 },
    );
  }, 30_000);

  it('hashes Latin-1 text (one multiplication per unit) exactly as two byte steps', () => {
    // Trace lines are ASCII, which takes the fast path; units just below and above 0x100 take
    // either path, and the text after a number starts from a different hash state every time.
    const unit = fc.integer({ min: 0, max: 0x2ff }).map((code) => String.fromCharCode(code));
    fc.assert(
      fc.property(fc.nat(), fc.string({ unit, maxLength: 60 }), (nowMs, line) => {
        const joined = `${nowMs} ${line}`;
        const bytes: number[] = [];
        for (let index = 0; index < joined.length; index++) bytes.push(joined.charCodeAt(index) & 0xff, joined.charCodeAt(index) >>> 8);
        const hash = new TraceHash();
        hash.integer(nowMs);
        hash.units(` ${line}`);
        expect(hash.hex()).toBe(referenceFnv(bytes));
      }),
      { numRuns: 300 },
    );
  }, 30_000);
});

describe('random streams and world shapes', () => {
  it('gives each named stream the same numbers in every run', () => {
    const a = Random.stream(5, 'network');
    const b = Random.stream(5, 'network');
    const c = Random.stream(5, 'disk');
    const drawsA = [a.next(), a.next(), a.next()];
    expect([b.next(), b.next(), b.next()]).toEqual(drawsA);
    expect([c.next(), c.next(), c.next()]).not.toEqual(drawsA);
  });

  it('keeps every client plan when the client count changes', () => {
    const small = chooseShape(11, { clientCount: 3 });
    const large = chooseShape(11, { clientCount: 9 });
    expect(large.clients.slice(0, 3)).toEqual(small.clients);
    expect(large.network).toEqual(small.network);
  });

  it('varies the world with the seed, faults off in some seeds', () => {
    const shapes = Array.from({ length: 60 }, (_, seed) => chooseShape(seed));
    expect(new Set(shapes.map((s) => s.clients.length)).size).toBeGreaterThan(5);
    expect(shapes.some((s) => s.faultIntervalMsMean === null)).toBe(true);
    expect(shapes.some((s) => s.faultKinds.includes('broker-crash'))).toBe(true);
    expect(shapes.some((s) => s.clients.some((c) => c.violator))).toBe(true);
    // Stream readers (stream-shape.ts) come on top of the 2 to 12 clients of the base world.
    const base = (s: (typeof shapes)[number]) => s.clients.filter((c) => c.streamReader === undefined);
    expect(shapes.every((s) => base(s).length >= 2 && base(s).length <= 12)).toBe(true);
    expect(shapes.some((s) => s.streams.length > 0 && s.clients.some((c) => c.streamReader !== undefined))).toBe(true);
    expect(shapes.every((s) => s.streams.length > 0 || s.clients.every((c) => c.streamReader === undefined))).toBe(true);
  });
});

describe('payloads', () => {
  it('round-trip and reject any changed byte', () => {
    const payload = messagePayload(3, 41, 2, 'a/x');
    expect(parsePayload(payload)).toEqual({ kind: 'message', publisher: 3, sequence: 41, qos: 2, topic: 'a/x' });
    expect(parsePayload(willPayload(2, 5, 'will/c2'))).toEqual({ kind: 'will', client: 2, generation: 5, topic: 'will/c2' });
    for (let index = 0; index < payload.length; index++) {
      const flipped = payload.slice();
      flipped[index] ^= 0x01;
      expect(parsePayload(flipped)).toBeNull();
    }
    expect(parsePayload(payload.subarray(0, payload.length - 1))).toBeNull();
  });

  it('are the documented text, byte for byte, for any topic', () => {
    // The format of the module comment, spelled out here as a string: the payloads are built and
    // checked on bytes, and must stay what this text says (a run's bytes are part of its trace hash).
    const filler = (head: string): string => {
      let sum = 0;
      for (let index = 0; index < head.length; index++) sum = (sum * 31 + head.charCodeAt(index)) % 9973;
      const length = sum % 5 === 0 ? 150 + (sum % 60) : sum % 24;
      let state = 2166136261;
      for (let index = 0; index < head.length; index++) state = Math.imul(state ^ head.charCodeAt(index), 16777619) >>> 0;
      let out = '';
      for (let index = 0; index < length; index++) {
        state = Math.imul(state ^ index, 16777619) >>> 0;
        out += String.fromCharCode(97 + (state % 26));
      }
      return out;
    };
    const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
    const lengths = new Set<number>();
    for (const topic of ['a/x', 'ü/€/😀', 'deep/a/b/c/d', '$SYS/x', '']) {
      for (let sequence = 0; sequence < 40; sequence++) {
        const head = `m|7|${sequence}|1|${topic}`;
        const payload = messagePayload(7, sequence, 1, topic);
        expect(text(payload)).toBe(`${head}|${filler(head)}`);
        lengths.add(filler(head).length);
        expect(parsePayload(payload)).toEqual({ kind: 'message', publisher: 7, sequence, qos: 1, topic });
        // One more filler byte, one byte less, or a separator in the filler: no longer intact.
        expect(parsePayload(new Uint8Array([...payload, 97]))).toBeNull();
        if (filler(head).length > 0) {
          expect(parsePayload(payload.subarray(0, payload.length - 1))).toBeNull();
          const split = payload.slice();
          split[split.length - 1] = 0x7c;
          expect(parsePayload(split)).toBeNull();
        }
      }
      const will = willPayload(4, 9, topic);
      expect(text(will)).toBe(`w|4|9|${topic}|${filler(`w|4|9|${topic}`)}`);
      expect(parsePayload(will)).toEqual({ kind: 'will', client: 4, generation: 9, topic });
    }
    // Both kinds of filler length occur (short, and 150 or more).
    expect([...lengths].some((length) => length < 24) && [...lengths].some((length) => length >= 150)).toBe(true);
    // Not UTF-8 in the head: not a payload.
    expect(parsePayload(new Uint8Array([0x6d, 0xff, 0x7c]))).toBeNull();
  });
});

describe('oracle topic matching', () => {
  it('follows the spec examples', () => {
    expect(topicMatches('sport/tennis/player1/#', 'sport/tennis/player1')).toBe(true);
    expect(topicMatches('sport/tennis/player1/#', 'sport/tennis/player1/ranking')).toBe(true);
    expect(topicMatches('sport/#', 'sport')).toBe(true);
    expect(topicMatches('sport/tennis/+', 'sport/tennis/player1')).toBe(true);
    expect(topicMatches('sport/tennis/+', 'sport/tennis/player1/ranking')).toBe(false);
    expect(topicMatches('sport/+', 'sport')).toBe(false);
    expect(topicMatches('+/+', '/finance')).toBe(true);
    expect(topicMatches('#', '$SYS/uptime')).toBe(false);
    expect(topicMatches('+/uptime', '$SYS/uptime')).toBe(false);
    expect(topicMatches('$SYS/#', '$SYS/uptime')).toBe(true);
  });
});

describe('simulated network', () => {
  it('hands out segments in flight oldest first, across bursts and long backlogs', () => {
    const inFlight = new InFlight();
    const segment = (value: number) => Uint8Array.of(value & 0xff, value >> 8);
    let added = 0;
    let taken = 0;
    // Bursts that run empty (the list rewinds) and one backlog of 3,000 that never does (it is cut).
    for (const [adds, takes] of [
      [3, 3],
      [5, 2],
      [1, 4],
      [3000, 1500],
      [10, 1510],
    ] as const) {
      for (let index = 0; index < adds; index++) inFlight.add(segment(added++));
      for (let index = 0; index < takes; index++) expect([...inFlight.take()]).toEqual([...segment(taken++)]);
    }
    expect(taken).toBe(added);
    expect(() => inFlight.take()).toThrow('no segment in flight');
  });

  it('delivers every stream in order, whatever the segmentation and jitter', () => {
    const queue = new EventQueue();
    const clock = { nowMs: 0 };
    const shape = { latencyMsMin: 0, latencyMsMax: 50, segmentBytesMax: 3, stallProbability: 0.05, stallMsMax: 500 };
    const network = new Network(queue, Random.stream(1, 'network'), shape, clock, () => {});
    const received = new Map<number, number[]>();
    network.broker = {
      acceptingIncarnation: () => 1,
      opened: () => {},
      bytes: (link, bytes) => received.set(link.id, [...(received.get(link.id) ?? []), ...bytes]),
      closed: () => {},
      outputBuffered: () => {},
    };
    const client: ClientSide = { connected: () => {}, connectFailed: () => {}, bytes: () => {}, closed: () => {} };
    const links: Link[] = [0, 1, 2].map((index) => network.connect(index, client));
    const run = (untilMs: number): void => {
      for (let time = queue.peekTimeMs(); time !== null && time <= untilMs; time = queue.peekTimeMs()) {
        const event = queue.pop()!;
        clock.nowMs = event.timeMs;
        event.run();
      }
    };
    run(1_000);
    const sent = new Map<number, number[]>();
    for (let round = 0; round < 50; round++) {
      for (const link of links) {
        const chunk = Array.from({ length: 1 + ((round * 7 + link.id) % 11) }, (_, i) => (round * 31 + i + link.id) & 0xff);
        sent.set(link.id, [...(sent.get(link.id) ?? []), ...chunk]);
        network.clientSend(link, Uint8Array.from(chunk));
      }
      clock.nowMs += 3;
      run(clock.nowMs);
    }
    run(100_000);
    for (const link of links) expect(received.get(link.id)).toEqual(sent.get(link.id));
  });
});
