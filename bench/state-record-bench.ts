/**
 * The state records that fill a log, in their two encodings side by side, in one process: the
 * generic JSON body (the types of `recordTypes`, what versions before the binary forms wrote,
 * still read) and the binary one (store/state-record-binary.ts). The socket benchmarks are
 * dominated by fsync waits and a shared machine's noise; this isolates the encoding's CPU.
 *
 * The records are those of the resume storm (a persistent session created, subscribed,
 * disconnected, resumed) and of a persistent QoS 1 publish (a 64-byte message stored, queued,
 * sent, acknowledged). For each it encodes and decodes `recordsPerRun` records with each form,
 * warm-up first, then `runs` rounds with the forms interleaved; prints the median ns per record
 * and the body bytes.
 *
 * Run: npm run build && node dist/bench/state-record-bench.js
 */
import { decodeStateRecord, encodeJsonRecord, encodeLogRecord, recordTypes } from '../src/store/record-codec.js';
import type { StateRecord } from '../src/store/state-store.js';
import { medianOf, nsPerCall } from './micro-timing.js';

const recordsPerRun = 100_000;
const runs = 9;
const warmupRuns = 3;

const clientId = 'resume-0012345';
const cases: StateRecord[] = [
  { kind: 'session-created', clientId, protocolVersion: 4, expiryIntervalSeconds: 0xffffffff, username: null },
  { kind: 'subscription-added', clientId, subscription: { filter: 'resume/12345', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: 0 } },
  { kind: 'session-disconnected', clientId, atMs: 1_234_567, expiryIntervalSeconds: 0xffffffff },
  { kind: 'session-resumed', clientId, protocolVersion: 4, expiryIntervalSeconds: 0xffffffff, username: null },
  {
    kind: 'message-stored',
    message: { messageId: 123_456, topic: 'bench/append/7', payload: new Uint8Array(64), qos: 1, retain: false, properties: undefined, createdAtMs: 1_234_567, expiryAtMs: null },
  },
  { kind: 'delivery-queued', clientId, sequence: 98_765, messageId: 123_456, qos: 1, retain: false, subscriptionIds: [], packetId: 0, phase: 'queued' },
  { kind: 'delivery-sent', clientId, sequence: 98_765, packetId: 4321 },
  { kind: 'delivery-completed', clientId, packetId: 4321 },
];

function measure(record: StateRecord): string {
  const json = encodeJsonRecord(record);
  const binary = encodeLogRecord(record);
  if (binary.type === recordTypes[record.kind]) throw new Error(`${record.kind} has no binary form`);
  const forms = {
    jsonEncode: () => encodeJsonRecord(record).length,
    binaryEncode: () => encodeLogRecord(record).body.length,
    jsonDecode: () => (decodeStateRecord(recordTypes[record.kind], json).kind === record.kind ? 1 : 0),
    binaryDecode: () => (decodeStateRecord(binary.type, binary.body).kind === record.kind ? 1 : 0),
  };
  const samples: Record<keyof typeof forms, number[]> = { jsonEncode: [], binaryEncode: [], jsonDecode: [], binaryDecode: [] };
  for (let run = 0; run < warmupRuns + runs; run++) {
    for (const name of Object.keys(forms) as (keyof typeof forms)[]) {
      const ns = nsPerCall(forms[name], recordsPerRun);
      if (run >= warmupRuns) samples[name].push(ns);
    }
  }
  return [
    `${record.kind.padEnd(22)}${String(json.length).padStart(6)} ${String(binary.body.length).padStart(7)}`,
    `${medianOf(samples.jsonEncode).toFixed(0).padStart(10)} ${medianOf(samples.binaryEncode).toFixed(0).padStart(10)}`,
    `${medianOf(samples.jsonDecode).toFixed(0).padStart(10)} ${medianOf(samples.binaryDecode).toFixed(0).padStart(10)}`,
  ].join('  ');
}

const lines = [
  `state records, JSON and binary bodies: median of ${runs} interleaved runs of ${recordsPerRun.toLocaleString('en-US')} records`,
  `${'record'.padEnd(22)}${'bytes JSON'.padStart(6)} ${'binary'.padStart(7)}  ${'encode ns JSON'.padStart(10)} ${'binary'.padStart(10)}  ${'decode ns JSON'.padStart(10)} ${'binary'.padStart(10)}`,
  ...cases.map(measure),
];
process.stdout.write(`${lines.join('\n')}\n`);
