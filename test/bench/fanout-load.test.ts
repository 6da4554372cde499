/**
 * Proves that the aggregate fan-out's load generator (bench/load/fanout-load.ts) counts exactly
 * what a broker delivered, although it never parses a delivery:
 *
 * - FrameCounter against the full packet scanner: a stream of identical QoS 0 PUBLISH packets cut
 *   at arbitrary points (fast-check) is counted as exactly as many frames as the scanner finds,
 *   and a stream with any other packet in it (a PINGRESP, a longer PUBLISH, a retained flag) is
 *   reported as a framing error instead of being counted;
 * - runFanout end to end against a Keel broker in this process: with two publishers and twelve
 *   subscribers, every subscriber receives every message (nothing lost, equal counts), the
 *   deliveries in the window agree with the broker's own count of messages sent, and the CPU
 *   figures are read.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { runFanout } from '../../bench/load/fanout-load.js';
import { FrameCounter } from '../../bench/load/frame-counter.js';
import { encodePingreq, encodePublish, PacketScanner, PacketType } from '../../bench/load/packets.js';
import type { RunningServer } from '../../io/server.js';
import { startBroker } from '../integration/helpers.js';

const packet = encodePublish({ level: 4, topic: 'bench/aggregate', payload: Buffer.alloc(64, 0x78), qos: 0 });

function counterFor(frame: Buffer): FrameCounter {
  return new FrameCounter(frame.length, frame[0]!, frame[1]!);
}

/** Cuts `stream` at the given points (sorted, deduplicated) and feeds the pieces in order. */
function feedInPieces(counter: FrameCounter, stream: Buffer, cuts: number[]): void {
  const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b);
  let start = 0;
  for (const point of [...points, stream.length]) {
    // A piece lands at an offset inside a larger buffer, as `onread` hands it over.
    const carrier = Buffer.alloc(point - start + 7, 0xee);
    stream.copy(carrier, 3, start, point);
    counter.feed(carrier, 3, 3 + point - start);
    start = point;
  }
}

function scannedPublishes(stream: Buffer): number {
  let publishes = 0;
  new PacketScanner().feed(stream, (type) => {
    if (type === PacketType.publish) publishes += 1;
  });
  return publishes;
}

describe('FrameCounter counts deliveries without parsing them', () => {
  it('counts as many frames as the packet scanner finds, however the stream is cut', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.array(fc.nat(), { maxLength: 60 }), (frames, cuts) => {
        const stream = Buffer.concat(Array.from({ length: frames }, () => packet));
        const counter = counterFor(packet);
        feedInPieces(counter, stream, cuts);
        expect(counter.framingError).toBeNull();
        expect(counter.frames).toBe(frames);
        expect(counter.frames).toBe(scannedPublishes(stream));
        expect(counter.aligned).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('holds a partial frame until its last byte, one byte at a time', () => {
    const counter = counterFor(packet);
    const stream = Buffer.concat([packet, packet]);
    for (let index = 0; index < stream.length; index++) {
      counter.feed(stream, index, index + 1);
      expect(counter.frames).toBe(index + 1 >= 2 * packet.length ? 2 : index + 1 >= packet.length ? 1 : 0);
      expect(counter.aligned).toBe((index + 1) % packet.length === 0);
    }
    expect(counter.framingError).toBeNull();
  });

  it('reports a framing error, not a count, when anything else is in the stream', () => {
    const longer = encodePublish({ level: 4, topic: 'bench/aggregate', payload: Buffer.alloc(65, 0x78), qos: 0 });
    const retained = Buffer.from(packet);
    retained[0] = retained[0]! | 0x01;
    const foreign = [encodePingreq(), longer, retained, packet.subarray(0, packet.length - 1)];
    fc.assert(
      fc.property(fc.constantFrom(...foreign), fc.integer({ min: 0, max: 20 }), fc.array(fc.nat(), { maxLength: 20 }), (intruder, before, cuts) => {
        const stream = Buffer.concat([...Array.from({ length: before }, () => packet), intruder, packet, packet]);
        const counter = counterFor(packet);
        feedInPieces(counter, stream, cuts);
        expect(counter.framingError).not.toBeNull();
        // A frame cut short is noticed at the next frame start, so it may have been counted: the
        // error fails the run, and no figure is reported from it.
        expect(counter.frames).toBeLessThanOrEqual(before + 1);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a frame whose Remaining Length does not fit one byte', () => {
    expect(() => new FrameCounter(200, 0x30, 198)).toThrow(/one-byte/);
    expect(() => new FrameCounter(80, 0x30, 77)).toThrow(/Remaining Length/);
  });
});

describe('runFanout against a Keel broker', () => {
  let server: RunningServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('delivers every message to every subscriber and counts them exactly', async () => {
    server = await startBroker({ syncPolicy: 'none' });
    const port = server.port;
    const subscribers = 12;
    const result = await runFanout({
      subscriberPorts: Array(subscribers).fill(port),
      publisherPorts: [port, port],
      topic: 'bench/aggregate',
      payloadBytes: 64,
      windowMessages: 256,
      messagesPerBatch: 16,
      warmupSeconds: 0.2,
      seconds: 0.5,
      watchPids: [process.pid],
    });
    expect(result.lost).toBe(0);
    expect(result.published).toBeGreaterThan(0);
    expect(result.delivered).toBeGreaterThan(0);
    expect(result.delivered % subscribers).toBe(0);
    expect(result.perSubscriberMin).toBe(result.perSubscriberMax);
    expect(result.perSubscriberMin * subscribers).toBe(result.delivered);
    // Every message published went to every subscriber, and the broker says it sent them.
    const counters = server.core.view.counters();
    expect(counters.messagesSent).toBe(result.published * subscribers);
    expect(counters.messagesReceived).toBe(result.published);
    expect(result.watchedCpuMicros).toHaveLength(1);
    expect(result.seconds).toBeGreaterThan(0.4);
    expect(result.machineCores).toBeGreaterThan(0);
  }, 30_000);
});
