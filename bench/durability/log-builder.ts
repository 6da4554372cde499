/**
 * Builds a data directory holding a long log whose replayed state is tiny, for the recovery
 * benchmark.
 *
 * The log is what a broker writes for one persistent QoS 1 subscriber receiving a steady stream:
 * a session and its subscription, then for every input a group of stored messages each queued
 * to the subscriber with a packet identifier, and in the next input the subscriber's PUBACKs
 * completing them. Every message is thus stored and released again, so replay must read and
 * apply every record while the state it ends with is one offline session. The records go through
 * the store's public API (StoreOnDisk over the real NodeStorage, sync policy `none`: fast, and the
 * files are the same), never a hand-made file, so the format is always the current one.
 *
 * Size is checked by listing the directory every few hundred groups; the build stops at the
 * first check past the target, so it overshoots by at most one check's worth.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { StateRecord } from '../../src/store/state-store.js';
import { StoreOnDisk } from './store-on-disk.js';

export interface LogBuildOptions {
  directory: string;
  logBytesTarget: number;
  payloadBytes: number;
  /** Messages per broker input (one group of stores, then one group of completions). */
  messagesPerGroup: number;
  segmentBytesMax: number;
}

export interface LogBuildResult {
  logBytes: number;
  records: number;
  messages: number;
  seconds: number;
}

export const recoveryClientId = 'bench-recovery-subscriber';
export const recoveryTopic = 'bench/durability/recovery';
/** Iterations (store group + completion group) between directory size checks. */
const iterationsPerCheck = 256;

/** Bytes of every file in `directory` (the log segments and anything else the store keeps). */
export function directoryBytes(directory: string): number {
  let total = 0;
  for (const name of readdirSync(directory)) total += statSync(join(directory, name)).size;
  return total;
}

export async function buildLog(options: LogBuildOptions, log: (line: string) => void): Promise<LogBuildResult> {
  if (options.messagesPerGroup < 1 || options.messagesPerGroup > 1_000) throw new Error('assertion failed: 1 to 1000 messages per group');
  const startMs = performance.now();
  const disk = new StoreOnDisk({ directory: options.directory, syncPolicy: 'none', segmentBytesMax: options.segmentBytesMax });
  let records = 0;
  let messages = 0;
  try {
    const existing = await disk.recover();
    if (existing.length > 0) throw new Error(`${options.directory} already holds a log; the builder needs an empty directory`);
    records += appendGroup(disk, openingRecords());
    const payload = new Uint8Array(options.payloadBytes).fill(0x72);
    let nextPacketId = 1;
    let nextProgressBytes = 0;
    for (let iteration = 0; ; iteration++) {
      const stored: StateRecord[] = [];
      const completed: StateRecord[] = [];
      for (let index = 0; index < options.messagesPerGroup; index++) {
        messages += 1;
        const packetId = nextPacketId;
        nextPacketId = nextPacketId >= 0xffff ? 1 : nextPacketId + 1;
        stored.push(...deliveryRecords(messages, packetId, payload));
        completed.push({ kind: 'delivery-completed', clientId: recoveryClientId, packetId });
      }
      records += appendGroup(disk, stored) + appendGroup(disk, completed);
      if (iteration % 16 === 15) await disk.drain();
      if (iteration % iterationsPerCheck !== iterationsPerCheck - 1) continue;
      const bytes = directoryBytes(options.directory);
      if (bytes >= nextProgressBytes) {
        log(`  built ${(bytes / 2 ** 20).toFixed(0)} MiB of ${(options.logBytesTarget / 2 ** 20).toFixed(0)} MiB`);
        nextProgressBytes += 256 * 2 ** 20;
      }
      if (bytes >= options.logBytesTarget) break;
    }
    records += appendGroup(disk, [{ kind: 'session-disconnected', clientId: recoveryClientId, atMs: 0, expiryIntervalSeconds: 0xffffffff }]);
    await disk.settle();
  } finally {
    await disk.close();
  }
  return { logBytes: directoryBytes(options.directory), records, messages, seconds: (performance.now() - startMs) / 1_000 };
}

function appendGroup(disk: StoreOnDisk, records: readonly StateRecord[]): number {
  disk.appendGroup(records);
  return records.length;
}

/** What a 3.1.1 CONNECT with Clean Session 0 and a QoS 1 SUBSCRIBE leave in the log. */
function openingRecords(): StateRecord[] {
  return [
    { kind: 'session-created', clientId: recoveryClientId, protocolVersion: 4, expiryIntervalSeconds: 0xffffffff },
    {
      kind: 'subscription-added',
      clientId: recoveryClientId,
      subscription: { filter: recoveryTopic, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: 0 },
    },
  ];
}

/** A QoS 1 publish routed to the online subscriber: the message body, then its delivery. */
function deliveryRecords(messageId: number, packetId: number, payload: Uint8Array): StateRecord[] {
  return [
    {
      kind: 'message-stored',
      message: { messageId, topic: recoveryTopic, payload, qos: 1, retain: false, properties: undefined, createdAtMs: 0, expiryAtMs: null },
    },
    { kind: 'delivery-queued', clientId: recoveryClientId, sequence: messageId, messageId, qos: 1, retain: false, subscriptionIds: [], packetId, phase: 'publish' },
  ];
}
