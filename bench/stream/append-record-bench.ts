/**
 * The `stream-appended` record's two encodings side by side, in one process: the generic JSON
 * body (record type 24, what versions before the binary form wrote, still read) and the binary
 * one (type 32, store/stream-appended-codec.ts). The append benchmark's figures are dominated by
 * fsync waits on a shared machine; this isolates the encoding's CPU, which is steady.
 *
 * For 1 and 3 streams, 64-byte payloads (and a message with MQTT 5.0 properties), it encodes and
 * decodes `recordsPerRun` records with each form, warm-up first, then `runs` rounds with the two
 * forms interleaved; prints the median ns per record and the body bytes.
 *
 * Run: npm run build && node dist/bench/stream/append-record-bench.js
 */
import { decodeStateRecord, encodeJsonRecord, encodeStateRecord, recordTypes } from '../../src/store/record-codec.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { streamAppendedBinaryType } from '../../src/store/stream-appended-codec.js';
import { medianOf, nsPerCall } from '../micro-timing.js';

const recordsPerRun = 100_000;
const runs = 9;
const warmupRuns = 3;

interface Case {
  name: string;
  record: StateRecord;
}

function makeCase(name: string, streams: number, withProperties: boolean): Case {
  const record: StateRecord = {
    kind: 'stream-appended',
    timeMs: 1_767_225_600_000,
    topic: 'bench/append/0',
    qos: 1,
    payload: new Uint8Array(64).map((_, index) => index),
    entries: Array.from({ length: streams }, (_, index) => ({ stream: `append-${index}`, offset: 1_234_567 + index })),
  };
  if (withProperties) record.properties = { contentType: 'application/json', userProperties: [['site', 'hall']] };
  return { name, record };
}

const cases: Case[] = [makeCase('1 stream', 1, false), makeCase('3 streams', 3, false), makeCase('1 stream, MQTT 5.0 properties', 1, true)];

function measure(entry: Case): string {
  const json = encodeJsonRecord(entry.record);
  const binary = encodeStateRecord(entry.record).body;
  const forms = {
    jsonEncode: () => encodeJsonRecord(entry.record).length,
    binaryEncode: () => encodeStateRecord(entry.record).body.length,
    jsonDecode: () => (decodeStateRecord(recordTypes['stream-appended'], json).kind === 'stream-appended' ? 1 : 0),
    binaryDecode: () => (decodeStateRecord(streamAppendedBinaryType, binary).kind === 'stream-appended' ? 1 : 0),
  };
  const samples: Record<keyof typeof forms, number[]> = { jsonEncode: [], binaryEncode: [], jsonDecode: [], binaryDecode: [] };
  for (let run = 0; run < warmupRuns + runs; run++) {
    for (const name of Object.keys(forms) as (keyof typeof forms)[]) {
      const ns = nsPerCall(forms[name], recordsPerRun);
      if (run >= warmupRuns) samples[name].push(ns);
    }
  }
  const encodeRatio = medianOf(samples.jsonEncode) / medianOf(samples.binaryEncode);
  return [
    `${entry.name.padEnd(32)}${String(json.length).padStart(6)} ${String(binary.length).padStart(7)}`,
    `${medianOf(samples.jsonEncode).toFixed(0).padStart(10)} ${medianOf(samples.binaryEncode).toFixed(0).padStart(10)} ${`${encodeRatio.toFixed(1)}x`.padStart(7)}`,
    `${medianOf(samples.jsonDecode).toFixed(0).padStart(10)} ${medianOf(samples.binaryDecode).toFixed(0).padStart(10)}`,
  ].join('  ');
}

const lines = [
  `stream-appended record, JSON (type 24) and binary (type 32): median of ${runs} interleaved runs of ${recordsPerRun.toLocaleString('en-US')} records`,
  `${'case'.padEnd(32)}${'bytes JSON'.padStart(6)} ${'binary'.padStart(7)}  ${'encode ns JSON'.padStart(10)} ${'binary'.padStart(10)} ${'faster'.padStart(7)}  ${'decode ns JSON'.padStart(10)} ${'binary'.padStart(10)}`,
  ...cases.map(measure),
];
process.stdout.write(`${lines.join('\n')}\n`);
