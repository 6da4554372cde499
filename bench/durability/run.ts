/**
 * Runs the durability benchmark's two parts and gathers one report: the write path under each
 * sync policy (write-path.ts), then recovery of a large log (log-builder.ts, recovery.ts).
 *
 * The recovery part owns a temporary directory under `dataRoot`. It refuses to start unless the
 * filesystem has at least twice the log's size free (the log, plus room for whatever else is
 * running), and it deletes the directory when it ends, whether it succeeded or not; an
 * interrupted run's directory is deleted by the exit hook below (and, for SIGINT/SIGTERM, by the
 * command's signal handlers, since signals skip exit hooks).
 */
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { SyncPolicy } from '../../src/config.js';
import { buildLog } from './log-builder.js';
import { evictFromPageCache, measureServeRecovery, measureStoreRecovery, type RecoveryMeasurement, writeRecoveryConfig } from './recovery.js';
import type { RecoveryResult } from './report.js';
import { type LoadShape, runWritePath, type WritePathRow, withDeadline } from './write-path.js';

export interface WritePathSettings {
  runs: number;
  seconds: number;
  payloadBytes: number;
  publishers: number;
  window: number;
  policies: readonly SyncPolicy[];
}

export interface RecoverySettings {
  logBytes: number;
  dataRoot: string;
  payloadBytes: number;
  segmentBytesMax: number;
  /** Evict the log from the page cache before the first `keel serve` recovery. */
  cold: boolean;
  /** Longest one recovery may take before it counts as failed. */
  timeoutMs: number;
}

const liveDirectories = new Set<string>();

/** Deletes the recovery part's directories still in use (for exit and signal handlers). */
export function removeLiveDirectories(): void {
  for (const directory of liveDirectories) rmSync(directory, { recursive: true, force: true });
  liveDirectories.clear();
}

process.on('exit', removeLiveDirectories);

/** Many publishers with a window each (throughput), and one with a window of one (latency). */
export function loadShapes(settings: WritePathSettings): LoadShape[] {
  return [
    { name: 'many', publishers: settings.publishers, window: settings.window },
    { name: 'single', publishers: 1, window: 1 },
  ];
}

export function runWritePathPart(settings: WritePathSettings, log: (line: string) => void): Promise<WritePathRow[]> {
  return runWritePath({ runs: settings.runs, seconds: settings.seconds, payloadBytes: settings.payloadBytes, shapes: loadShapes(settings), policies: settings.policies }, log);
}

/** Free bytes for an unprivileged writer on the filesystem holding `directory` (what df shows). */
export function freeBytes(directory: string): number {
  const stats = statfsSync(directory);
  return stats.bavail * stats.bsize;
}

export async function runRecoveryPart(settings: RecoverySettings, log: (line: string) => void): Promise<RecoveryResult> {
  const available = freeBytes(settings.dataRoot);
  if (available < 2 * settings.logBytes) {
    throw new Error(
      `refusing to build a ${(settings.logBytes / 2 ** 20).toFixed(0)} MiB log in ${settings.dataRoot}: ` +
        `${(available / 2 ** 20).toFixed(0)} MiB free, at least twice the log (${((2 * settings.logBytes) / 2 ** 20).toFixed(0)} MiB) is required; ` +
        'use --log-mib or --data-root',
    );
  }
  const root = mkdtempSync(join(settings.dataRoot, 'keel-durability-'));
  liveDirectories.add(root);
  try {
    const directory = join(root, 'data');
    const configFile = join(root, 'keel.json');
    writeRecoveryConfig(configFile, settings.segmentBytesMax);
    log(`building a ${(settings.logBytes / 2 ** 20).toFixed(0)} MiB log in ${directory}`);
    const build = await buildLog({ directory, logBytesTarget: settings.logBytes, payloadBytes: settings.payloadBytes, messagesPerGroup: 16, segmentBytesMax: settings.segmentBytesMax }, log);
    log(`built ${build.logBytes} bytes, ${build.records} records in ${build.seconds.toFixed(1)} s`);
    const measurements: RecoveryMeasurement[] = [];
    const errors: string[] = [];
    const attempt = async (what: string, measure: () => Promise<RecoveryMeasurement>): Promise<void> => {
      try {
        const measurement = await withDeadline(measure(), settings.timeoutMs + 15_000, what);
        measurements.push(measurement);
        log(`[recovery] ${measurement.method}: ${measurement.seconds.toFixed(2)} s, ${measurement.records} records`);
      } catch (error) {
        errors.push(`${what}: ${(error as Error).message}`);
        log(`[recovery] ${what}: FAILED: ${(error as Error).message}`);
      }
    };
    if (settings.cold) {
      const evicted = evictFromPageCache(directory);
      await attempt('serve (cold cache)', () => measureServeRecovery(directory, configFile, evicted ? 'serve (cold cache)' : 'serve (eviction failed)', settings.timeoutMs));
    }
    await attempt('serve (warm cache)', () => measureServeRecovery(directory, configFile, 'serve (warm cache)', settings.timeoutMs));
    await attempt('store only (warm cache)', () => measureStoreRecovery(directory, settings.segmentBytesMax));
    return { build, measurements, errors };
  } finally {
    rmSync(root, { recursive: true, force: true });
    liveDirectories.delete(root);
  }
}
