/**
 * Proves the durability benchmark measures what it claims, at toy size:
 *
 * - the write path: one short run per sync policy and load shape against a real `keel serve`
 *   child (dist/io/cli.js) yields acknowledged and delivered rates above zero and ordered latency
 *   percentiles for every (policy, shape) pair, and the table names every policy;
 * - recovery: a 2 MiB log built through the store API (in 1 MiB segments, so recovery crosses
 *   segment boundaries) is recovered by `keel serve` and by the store alone, each replaying
 *   exactly the records the builder wrote, and the temporary directory is gone afterwards;
 * - the disk check: a log larger than half the free space is refused before anything is written.
 *
 * The child runs compiled JavaScript: `npm run build` first.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { recoveredRecords } from '../../bench/durability/recovery.js';
import { renderRecovery, renderWritePath } from '../../bench/durability/report.js';
import { freeBytes, runRecoveryPart, runWritePathPart } from '../../bench/durability/run.js';
import { syncPolicies } from '../../bench/durability/write-path.js';
import { repositoryRoot } from '../../bench/load/peers.js';

const dataRoot = mkdtempSync(join(tmpdir(), 'keel-durability-test-'));
const quiet = (): void => undefined;

afterAll(() => rmSync(dataRoot, { recursive: true, force: true }));

function requireBuild(): void {
  const cli = join(repositoryRoot(), 'dist', 'io', 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
}

describe('durability bench: write path', () => {
  it('measures every sync policy under both loads with sane figures', async () => {
    requireBuild();
    const rows = await runWritePathPart({ runs: 1, seconds: 1, payloadBytes: 64, publishers: 2, window: 4, policies: syncPolicies }, quiet);
    expect(rows.map((row) => `${row.policy}/${row.shape.name}`)).toEqual(['always/many', 'always/single', 'interval/many', 'interval/single', 'none/many', 'none/single']);
    for (const row of rows) {
      expect(row.errors).toEqual([]);
      const median = row.median!;
      expect(median.acknowledgedPerSecond).toBeGreaterThan(0);
      expect(median.deliveredPerSecond).toBeGreaterThan(0);
      expect(median.latencySamples).toBeGreaterThan(0);
      expect(median.latencyMsP50).toBeGreaterThan(0);
      expect(median.latencyMsP99).toBeGreaterThanOrEqual(median.latencyMsP50);
      expect(median.latencyMsP999).toBeGreaterThanOrEqual(median.latencyMsP99);
    }
    const table = renderWritePath(rows).join('\n');
    for (const policy of syncPolicies) expect(table).toMatch(new RegExp(`^${policy} +2 pub x window 4`, 'm'));
    expect(table).not.toContain('failed');
  }, 25_000);
});

describe('durability bench: recovery', () => {
  it('recovers a log built through the store, replaying every record, and deletes it', async () => {
    requireBuild();
    const logBytes = 2 * 2 ** 20;
    const result = await runRecoveryPart({ logBytes, dataRoot, payloadBytes: 64, segmentBytesMax: 2 ** 20, cold: false, timeoutMs: 15_000 }, quiet);
    expect(result.errors).toEqual([]);
    expect(result.build.logBytes).toBeGreaterThanOrEqual(logBytes);
    expect(result.build.records).toBe(3 * result.build.messages + 3);
    expect(result.measurements.map((measurement) => measurement.method)).toEqual(['serve (warm cache)', 'store only (warm cache)']);
    for (const measurement of result.measurements) {
      expect(measurement.records).toBe(result.build.records);
      expect(measurement.seconds).toBeGreaterThan(0);
    }
    expect(result.measurements[0]!.peakRssBytes).toBeGreaterThan(10 * 2 ** 20);
    expect(renderRecovery(result).join('\n')).toMatch(/^serve \(warm cache\) +0\.00\d/m);
    expect(readdirSync(dataRoot)).toEqual([]);
  }, 20_000);

  it('refuses to build a log when less than twice its size is free', async () => {
    const tooLarge = Math.ceil(freeBytes(dataRoot) / 2) + 2 ** 20;
    await expect(runRecoveryPart({ logBytes: tooLarge, dataRoot, payloadBytes: 64, segmentBytesMax: 2 ** 20, cold: false, timeoutMs: 1_000 }, quiet)).rejects.toThrow(/refusing/);
    expect(readdirSync(dataRoot)).toEqual([]);
  });

  it('reads the replayed record count from the broker log line', () => {
    const output = '{"time":"t","level":"info","event":"listening"}\n{"time":"t","level":"info","event":"recovered","records":42,"sessions":1}\n';
    expect(recoveredRecords(output)).toBe(42);
    expect(recoveredRecords('{"event":"listening"}\n')).toBeNull();
  });
});
