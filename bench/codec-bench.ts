/**
 * Codec throughput beside mqtt-packet, measured in the same process and run.
 *
 * For each case (small and 1 KiB PUBLISH, QoS 0 and 1, MQTT 3.1.1 and 5.0) it decodes a stream
 * of `packetsPerRun` packets pushed as 64 KiB chunks (as a socket would deliver them), and
 * encodes `packetsPerRun` packets one at a time, with our codec and with mqtt-packet's parser
 * and generate. Each measurement is warmed up, then repeated `runs` times, ours and theirs
 * interleaved; the median is
 * reported as MB/s (wire bytes) and packets/s, with our speed divided by mqtt-packet's.
 *
 * Run: npm run build && node dist/bench/codec-bench.js
 */

import { performance } from 'node:perf_hooks';
import mqttPacket from 'mqtt-packet';
import { PacketDecoder } from '../src/codec/decoder.js';
import { encodePacket } from '../src/codec/encoder.js';
import type { ProtocolVersion, PublishPacket, Qos } from '../src/codec/packets.js';

const packetsPerRun = 20_000;
const runs = 11;
const warmupRuns = 3;
const chunkBytes = 64 * 1024;

interface Case {
  name: string;
  version: ProtocolVersion;
  packet: PublishPacket;
}

function makeCase(payloadBytes: number, qos: Qos, version: ProtocolVersion): Case {
  const payload = new Uint8Array(payloadBytes).map((_, index) => index & 0xff);
  const packet: PublishPacket = { type: 3, dup: false, qos, retain: false, topic: 'sensors/room1/t1', payload };
  if (qos > 0) packet.packetId = 42;
  const size = payloadBytes >= 1024 ? '1KiB' : 'small';
  return { name: `${size} qos${qos} v${version}`, version, packet };
}

function theirPacket(packet: PublishPacket): mqttPacket.IPublishPacket {
  const theirs: mqttPacket.IPublishPacket = { cmd: 'publish', topic: packet.topic, payload: Buffer.from(packet.payload), qos: packet.qos, dup: false, retain: false };
  if (packet.packetId !== undefined) theirs.messageId = packet.packetId;
  return theirs;
}

function chunked(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) chunks.push(bytes.subarray(offset, offset + chunkBytes));
  return chunks;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function time(work: () => void): number {
  const start = performance.now();
  work();
  return performance.now() - start;
}

/**
 * Median milliseconds of `runs` timed calls of each, after `warmupRuns` untimed ones. The two
 * are interleaved run by run, so that load from other processes on a shared machine falls on
 * both alike instead of on whichever happened to run during a busy moment.
 */
function measurePair(ours: () => void, theirs: () => void): [number, number] {
  for (let run = 0; run < warmupRuns; run++) {
    ours();
    theirs();
  }
  const oursTimes: number[] = [];
  const theirsTimes: number[] = [];
  for (let run = 0; run < runs; run++) {
    oursTimes.push(time(ours));
    theirsTimes.push(time(theirs));
  }
  return [median(oursTimes), median(theirsTimes)];
}

function ourDecode(chunks: Buffer[], version: ProtocolVersion): void {
  const decoder = new PacketDecoder({ packetBytesMax: 1 << 20, protocolVersion: version });
  let count = 0;
  for (const chunk of chunks) {
    decoder.push(chunk);
    while (decoder.next() !== null) count++;
  }
  if (count !== packetsPerRun) throw new Error(`decoded ${count} packets`);
}

function theirDecode(chunks: Buffer[], version: ProtocolVersion): void {
  const parser = mqttPacket.parser({ protocolVersion: version });
  let count = 0;
  parser.on('packet', () => count++);
  for (const chunk of chunks) parser.parse(chunk);
  if (count !== packetsPerRun) throw new Error(`mqtt-packet parsed ${count} packets`);
}

let sink = 0;

function ourEncode(packet: PublishPacket, version: ProtocolVersion): void {
  for (let index = 0; index < packetsPerRun; index++) sink += encodePacket(packet, version).length;
}

function theirEncode(packet: mqttPacket.IPublishPacket, version: ProtocolVersion): void {
  for (let index = 0; index < packetsPerRun; index++) sink += mqttPacket.generate(packet, { protocolVersion: version }).length;
}

function rate(milliseconds: number, packetBytes: number): { megabytesPerSecond: number; packetsPerSecond: number } {
  const seconds = milliseconds / 1000;
  return { megabytesPerSecond: (packetBytes * packetsPerRun) / seconds / 1e6, packetsPerSecond: packetsPerRun / seconds };
}

function row(name: string, operation: string, ours: number, theirs: number, packetBytes: number): string {
  const a = rate(ours, packetBytes);
  const b = rate(theirs, packetBytes);
  const cells = [
    name.padEnd(16),
    operation.padEnd(7),
    `${a.megabytesPerSecond.toFixed(0).padStart(6)} MB/s ${(a.packetsPerSecond / 1e6).toFixed(2).padStart(6)} Mpkt/s`,
    `${b.megabytesPerSecond.toFixed(0).padStart(6)} MB/s ${(b.packetsPerSecond / 1e6).toFixed(2).padStart(6)} Mpkt/s`,
    `${(theirs / ours).toFixed(2).padStart(5)}x`,
  ];
  return cells.join(' | ');
}

function main(): void {
  const cases: Case[] = [];
  for (const payloadBytes of [10, 1024]) for (const qos of [0, 1] as const) for (const version of [4, 5] as const) cases.push(makeCase(payloadBytes, qos, version));
  console.log(`codec bench: ${packetsPerRun} packets per run, median of ${runs} runs after ${warmupRuns} warm-up runs, node ${process.version}`);
  console.log(['case'.padEnd(16), 'op'.padEnd(7), 'keel'.padEnd(26), 'mqtt-packet'.padEnd(26), 'ratio'].join(' | '));
  const ratios: number[] = [];
  // One untimed pass over every case first, so that no case is measured against a cold JIT.
  for (const { version, packet } of cases) {
    const stream = chunked(Buffer.concat(Array.from({ length: packetsPerRun }, () => Buffer.from(encodePacket(packet, version)))));
    ourDecode(stream, version);
    theirDecode(stream, version);
    ourEncode(packet, version);
    theirEncode(theirPacket(packet), version);
  }
  for (const { name, version, packet } of cases) {
    const encoded = encodePacket(packet, version);
    const theirs = theirPacket(packet);
    const reference = mqttPacket.generate(theirs, { protocolVersion: version });
    if (!reference.equals(Buffer.from(encoded))) throw new Error(`${name}: encodings differ`);
    const stream = chunked(Buffer.concat(Array.from({ length: packetsPerRun }, () => reference)));
    const [decodeOurs, decodeTheirs] = measurePair(
      () => ourDecode(stream, version),
      () => theirDecode(stream, version),
    );
    const [encodeOurs, encodeTheirs] = measurePair(
      () => ourEncode(packet, version),
      () => theirEncode(theirs, version),
    );
    console.log(row(name, 'decode', decodeOurs, decodeTheirs, encoded.length));
    console.log(row(name, 'encode', encodeOurs, encodeTheirs, encoded.length));
    ratios.push(decodeTheirs / decodeOurs, encodeTheirs / encodeOurs);
  }
  console.log(`lowest ratio ${Math.min(...ratios).toFixed(2)}x (target: at least 2x)${sink < 0 ? '' : ''}`);
}

main();
