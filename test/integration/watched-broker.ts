/**
 * A real broker (startServer: the Node host, the shared Driver, the Broker over the durable store
 * in a data directory) watched for the failures no client may ever cause: a crash, a halt, a log
 * that a new broker cannot recover or that holds what no client may write.
 *
 * `keel serve` dies when an exception escapes the core: it escapes through a socket or storage
 * callback. In a test process that would be an unhandled error, and every later case would run
 * against a core left half way through an input. So the core is wrapped: an exception escaping
 * any input is recorded as the crash, and from then on the core takes no input and emits no
 * action, as if the process were gone. The broker, its store and its host are those of
 * `keel serve`, built as io/server.ts builds them; only this thin wrapper sits between the
 * driver and the Broker.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspectDataDirectory } from '../../io/inspect.js';
import { type RunningServer, startServer } from '../../io/server.js';
import { Broker } from '../../src/broker/broker.js';
import type { BrokerConfig } from '../../src/config.js';
import type { Action, AdminCommand, BrokerCore, BrokerView, ConnectionId, ConnectionPeer, StorageResult } from '../../src/contract.js';
import { DurableStateStore, durableStoreOptionsFor } from '../../src/store/durable-store.js';
import { snapshotEndRecordType } from '../../src/store/log-recovery.js';
import { groupEndFlag, isSeal } from '../../src/store/log-writer.js';
import { decodeStateRecord } from '../../src/store/record-codec.js';
import { scanFrames } from '../../src/store/record-frame.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { poisonedRecords } from '../broker/hostile-oracle.js';
import type { FuzzLimits } from '../codec/hostile-arbitraries.js';

/** How long a start may take before the test calls it hung. */
const startTimeoutMs = 10_000;

/** The Broker behind a recorder of escaping exceptions (see the file comment). */
export class CrashRecordingCore implements BrokerCore {
  crash: Error | null = null;
  readonly crashed: Promise<Error>;
  private reportCrash: (error: Error) => void = () => undefined;

  constructor(readonly broker: Broker) {
    this.crashed = new Promise((resolve) => (this.reportCrash = resolve));
  }

  get ready(): boolean {
    return this.broker.ready;
  }

  get haltReason(): string | null {
    return this.broker.haltReason;
  }

  connectionOpened(nowMs: number, connectionId: ConnectionId, peer: ConnectionPeer): void {
    this.guard(() => this.broker.connectionOpened(nowMs, connectionId, peer));
  }

  bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void {
    this.guard(() => this.broker.bytesReceived(nowMs, connectionId, bytes));
  }

  connectionClosed(nowMs: number, connectionId: ConnectionId): void {
    this.guard(() => this.broker.connectionClosed(nowMs, connectionId));
  }

  outputBuffered(nowMs: number, connectionId: ConnectionId, bufferedBytes: number): void {
    this.guard(() => this.broker.outputBuffered(nowMs, connectionId, bufferedBytes));
  }

  storageCompleted(nowMs: number, result: StorageResult): void {
    this.guard(() => this.broker.storageCompleted(nowMs, result));
  }

  tick(nowMs: number): void {
    this.guard(() => this.broker.tick(nowMs));
  }

  shutdown(nowMs: number): void {
    this.guard(() => this.broker.shutdown(nowMs));
  }

  adminRequest(nowMs: number, requestId: number, command: AdminCommand): void {
    this.guard(() => this.broker.adminRequest(nowMs, requestId, command));
  }

  get view(): BrokerView {
    return this.broker.view;
  }

  drainActions(): readonly Action[] {
    return this.crash === null ? this.broker.drainActions() : [];
  }

  nextDeadlineMs(): number | null {
    return this.crash === null ? this.broker.nextDeadlineMs() : null;
  }

  private guard(input: () => void): void {
    if (this.crash !== null) return;
    try {
      input();
    } catch (error) {
      this.crash = error instanceof Error ? error : new Error(String(error));
      this.reportCrash(this.crash);
    }
  }
}

export interface WatchedBroker {
  readonly server: RunningServer;
  readonly core: CrashRecordingCore;
  readonly dataDirectory: string;
  /** The crash or halt so far, or null. */
  problem(): string | null;
  close(): Promise<void>;
}

/** Starts a broker on `dataDirectory` (recovering what it holds); rejects if it crashes, halts or hangs while starting. */
export async function startWatchedBroker(dataDirectory: string, config: Partial<BrokerConfig>): Promise<WatchedBroker> {
  let core: CrashRecordingCore | null = null;
  const createCore = (resolved: BrokerConfig, nowMs: number): BrokerCore => {
    const store = new DurableStateStore(durableStoreOptionsFor(resolved));
    core = new CrashRecordingCore(new Broker({ config: resolved, nowMs, store, logDebug: false }));
    return core;
  };
  const starting = startServer({ host: '127.0.0.1', port: 0, config, dataDirectory, shutdownGraceMs: 200, createCore });
  // startServer builds the core before its first await; a core that crashes while recovering
  // never becomes ready, so the start is raced against the crash and a deadline.
  const recording = core as CrashRecordingCore | null;
  if (recording === null) throw new Error('startServer did not build the core');
  let timer: NodeJS.Timeout | undefined;
  const server = await Promise.race([
    starting,
    recording.crashed.then((error) => {
      throw new Error(`the broker crashed while recovering ${dataDirectory}: ${error.stack}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the broker did not start within ${startTimeoutMs} ms`)), startTimeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  let haltReason: string | null = null;
  void server.halted.then((reason) => (haltReason = reason));
  return {
    server,
    core: recording,
    dataDirectory,
    problem: () => {
      if (recording.crash !== null) return `the broker crashed (an exception escaped the core): ${recording.crash.stack}`;
      const halt = haltReason ?? recording.haltReason;
      return halt === null ? null : `the broker halted: ${halt}`;
    },
    close: () => server.close(),
  };
}

/** Every state record in a data directory's snapshots and log segments, in file order. */
export function durableRecords(directory: string): StateRecord[] {
  const records: StateRecord[] = [];
  for (const name of readdirSync(directory).sort()) {
    const segment = /^wal-(\d{16})\.log$/.exec(name);
    if (segment === null && !/^snapshot-\d{16}\.snap$/.test(name)) continue;
    const scan = scanFrames(readFileSync(join(directory, name)), segment === null ? 1 : Number(segment[1]), 512 * 1024 * 1024);
    for (const frame of scan.records) {
      if (isSeal(frame.type) || frame.type === snapshotEndRecordType) continue;
      records.push(decodeStateRecord(frame.type & ~groupEndFlag, frame.body));
    }
  }
  return records;
}

/** What `keel inspect` finds wrong with a data directory, and every record no client may write. */
export function dataDirectoryProblems(directory: string, limits: FuzzLimits): string[] {
  return [...inspectDataDirectory(directory).problems, ...poisonedRecords(durableRecords(directory), limits)];
}
