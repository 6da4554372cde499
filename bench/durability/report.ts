/**
 * Turns the durability benchmark's results into the table it prints and the JSON it can save.
 *
 * One table, two parts: the write path (one row per sync policy and load shape: acknowledged
 * publishes per second, delivered per second, PUBACK latency percentiles) and recovery (one row
 * per method: log size, seconds, MiB/s, records/s, peak RSS). Above it: the machine (reusing
 * bench/load/report.ts describeMachine), the filesystem the data directories live on (fsync cost
 * depends on it) and the exact command. A pair with no successful run shows "failed", and the
 * reasons are listed under the table.
 */
import { spawnSync } from 'node:child_process';
import { describeMachine, type Machine } from '../load/report.js';
import { formatNumber } from '../load/runner.js';
import type { LogBuildResult } from './log-builder.js';
import type { RecoveryMeasurement } from './recovery.js';
import type { WritePathRow } from './write-path.js';

export interface RecoveryResult {
  build: LogBuildResult;
  measurements: RecoveryMeasurement[];
  errors: string[];
}

export interface DurabilityReport {
  command: string;
  machine: Machine & { filesystem: string };
  writePath: WritePathRow[] | null;
  recovery: RecoveryResult | null;
}

export function describeDurabilityMachine(keelVersion: string, dataRoot: string): Machine & { filesystem: string } {
  const machine = describeMachine({ keel: { available: true, version: keelVersion } });
  // `df -T` names the filesystem type and device; a tmpfs would make every fsync free.
  const df = spawnSync('df', ['-T', '-h', dataRoot], { encoding: 'utf8', timeout: 5_000 });
  const line = df.status === 0 ? df.stdout.trim().split('\n').slice(-1)[0]!.split(/\s+/) : [];
  const filesystem = line.length >= 2 ? `${line[1]} on ${line[0]} (${dataRoot})` : `unknown (${dataRoot})`;
  return { ...machine, filesystem };
}

function pad(rows: string[][], numericFrom: number): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const format = (row: string[]): string =>
    row
      .map((text, column) => (column >= numericFrom ? text.padStart(widths[column]!) : text.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  return [format(rows[0]!), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.slice(1).map(format)];
}

function milliseconds(value: number): string {
  return value >= 10 ? value.toFixed(1) : value.toFixed(3);
}

export function renderWritePath(rows: WritePathRow[]): string[] {
  const table = [['syncPolicy', 'load', 'acked msg/s', 'delivered msg/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'runs ok']];
  for (const row of rows) {
    const shape = `${row.shape.publishers} pub x window ${row.shape.window}`;
    const median = row.median;
    const ok = `${row.runs.length}/${row.runs.length + row.errors.length}`;
    if (median === null) {
      table.push([row.policy, shape, 'failed', 'failed', '-', '-', '-', ok]);
      continue;
    }
    table.push([
      row.policy,
      shape,
      formatNumber(Math.round(median.acknowledgedPerSecond)),
      formatNumber(Math.round(median.deliveredPerSecond)),
      milliseconds(median.latencyMsP50),
      milliseconds(median.latencyMsP99),
      milliseconds(median.latencyMsP999),
      ok,
    ]);
  }
  return pad(table, 2);
}

export function renderRecovery(result: RecoveryResult): string[] {
  const build = result.build;
  const gibibytes = build.logBytes / 2 ** 30;
  const table = [['recovery', 'log GiB', 'records', 'seconds', 'MiB/s', 'records/s', 'peak RSS MiB']];
  for (const measurement of result.measurements) {
    table.push([
      measurement.method,
      gibibytes.toFixed(3),
      formatNumber(measurement.records),
      measurement.seconds.toFixed(2),
      formatNumber(build.logBytes / 2 ** 20 / measurement.seconds),
      formatNumber(Math.round(measurement.records / measurement.seconds)),
      measurement.peakRssBytes === null ? '-' : formatNumber(Math.round(measurement.peakRssBytes / 2 ** 20)),
    ]);
  }
  const built = `log built in ${build.seconds.toFixed(1)} s through the store API: ${formatNumber(build.messages)} messages, ${formatNumber(build.records)} records, ${formatNumber(build.logBytes)} bytes`;
  return [...pad(table, 1), built];
}

export function renderReport(report: DurabilityReport): string {
  const machine = report.machine;
  const lines = [
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, node ${machine.node}, keel ${machine.versions.keel ?? 'unknown'}`,
    `data directories on: ${machine.filesystem}`,
    `command: ${report.command}`,
    '',
  ];
  if (report.writePath !== null) lines.push(...renderWritePath(report.writePath), '');
  if (report.recovery !== null) lines.push(...renderRecovery(report.recovery), '');
  const notes = failureNotes(report);
  if (notes.length > 0) lines.push('failures:', ...notes.map((note) => `  ${note}`));
  return lines.join('\n').trimEnd();
}

function failureNotes(report: DurabilityReport): string[] {
  const notes = new Set<string>();
  for (const row of report.writePath ?? []) for (const error of row.errors) notes.add(`write ${row.policy} ${row.shape.name}: ${error}`);
  for (const error of report.recovery?.errors ?? []) notes.add(`recovery: ${error}`);
  return [...notes];
}
