/**
 * Proves the log's durability contract on a simulated disk that loses unsynced writes, tears
 * them, and reorders directory operations on crash: after a crash at any step, recovery yields
 * exactly a prefix of the appended records that contains every record the writer had released
 * under the `always` policy; a torn tail is truncated with a warning; a flipped bit in synced data
 * stops recovery with the file and offset; snapshots replace the log they cover, and a crash at
 * any step of writing one still recovers every released record.
 */
import fc from 'fast-check';
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import type { StorageRequest } from '../../src/contract.js';
import { LogRecovery, type RecoveryOutcome } from '../../src/store/log-recovery.js';
import { LogWriter, segmentFileName } from '../../src/store/log-writer.js';
import { SnapshotWriter } from '../../src/store/snapshot-writer.js';
import { SimulatedDisk } from '../../sim/simulated-disk.js';

type Source = { takeRequests(): StorageRequest[]; handleResult(result: ReturnType<SimulatedDisk['execute']>, nowMs: number): boolean };

/** Executes requests one at a time; stops after `budget` operations (Infinity for all). */
function pump(disk: SimulatedDisk, source: Source, budget = Infinity): number {
  let used = 0;
  for (;;) {
    const requests = source.takeRequests();
    if (requests.length === 0) return used;
    for (const request of requests) {
      if (used >= budget) return used;
      used++;
      expect(source.handleResult(disk.execute(request), 0)).toBe(true);
    }
  }
}

function recover(disk: SimulatedDisk): { records: string[]; outcome: RecoveryOutcome | null; failure: string | null } {
  let requestId = 1;
  const records: string[] = [];
  const recovery = new LogRecovery(() => requestId++, (record) => records.push(new TextDecoder().decode(record.body)), 64);
  pump(disk, { takeRequests: () => recovery.takeRequests(), handleResult: (r) => recovery.handleResult(r) });
  return { records, outcome: recovery.outcome, failure: recovery.failure };
}

function body(index: number): Uint8Array {
  return new TextEncoder().encode(`record-${index}-${'x'.repeat(index % 23)}`);
}

describe('log durability on a faulty disk', () => {
  it('recovers a prefix holding every released record after a crash at any step', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 400 }), fc.string({ minLength: 1, maxLength: 8 }), (count, crashAfter, seed) => {
        const disk = new SimulatedDisk(seedrandom(seed), { ioErrorRate: 0, readErrorRate: 0, tornWriteRate: 0.5, capacityBytes: 1 << 30 });
        let requestId = 1;
        const writer = new LogWriter({ segmentBytesMax: 300, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax: 120 }, 1, null, () => requestId++);
        let budget = crashAfter;
        for (let index = 1; index <= count && budget > 0; index++) {
          writer.append(1, body(index));
          if (index % 3 === 0 || index === count) {
            writer.flush(0);
            budget -= pump(disk, writer, budget);
          }
        }
        const released = writer.releasedLsn;
        disk.crash();
        const { records, outcome, failure } = recover(disk);
        expect(failure).toBeNull();
        expect(records.length).toBeGreaterThanOrEqual(released);
        expect(records.length).toBeLessThanOrEqual(writer.appendedLsn);
        expect(records).toEqual(Array.from({ length: records.length }, (_, i) => new TextDecoder().decode(body(i + 1))));
        expect(outcome!.nextLsn).toBe(records.length + 1);
      }),
      { numRuns: 300 },
    );
  });

  it('continues appending after recovery, across restarts', () => {
    const disk = new SimulatedDisk(seedrandom('restarts'));
    let expected = 0;
    for (let round = 0; round < 5; round++) {
      const { records, outcome, failure } = recover(disk);
      expect(failure).toBeNull();
      expect(records.length).toBe(expected);
      let requestId = 1000 * (round + 1);
      const writer = new LogWriter({ segmentBytesMax: 256, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax: 4096 }, outcome!.nextLsn, outcome!.openSegment, () => requestId++);
      for (let index = 0; index < 7; index++) writer.append(2, body(expected + index + 1));
      writer.flush(0);
      pump(disk, writer);
      expected += 7;
      expect(writer.releasedLsn).toBe(expected);
      disk.crash();
    }
    expect(disk.describe()).toContain(segmentFileName(1));
  });

  it('refuses to start on a flipped bit in the middle of a segment, naming file and offset', () => {
    const disk = new SimulatedDisk(seedrandom('flip'));
    let requestId = 1;
    const writer = new LogWriter({ segmentBytesMax: 1 << 20, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax: 1 << 20 }, 1, null, () => requestId++);
    for (let index = 1; index <= 10; index++) writer.append(1, body(index));
    writer.flush(0);
    pump(disk, writer);
    disk.corrupt(segmentFileName(1), 40, 0x7f ^ (disk.fileBytes(segmentFileName(1))![40] ?? 0));
    const { failure, records } = recover(disk);
    expect(failure).toMatch(/^corrupt log: wal-0000000000000001\.log at offset \d+: checksum mismatch/);
    expect(records.length).toBeLessThan(10);
  });

  it('truncates a torn final record and reports it', () => {
    const disk = new SimulatedDisk(seedrandom('torn'));
    let requestId = 1;
    const writer = new LogWriter({ segmentBytesMax: 1 << 20, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax: 1 << 20 }, 1, null, () => requestId++);
    for (let index = 1; index <= 4; index++) writer.append(1, body(index));
    writer.flush(0);
    pump(disk, writer);
    const size = disk.fileBytes(segmentFileName(1))!.length;
    disk.execute({ op: 'truncate', requestId: 0, file: segmentFileName(1), length: size - 3 });
    disk.execute({ op: 'sync', requestId: 0, file: segmentFileName(1) });
    const { failure, records, outcome } = recover(disk);
    expect(failure).toBeNull();
    expect(records.length).toBe(3);
    expect(outcome!.warnings.join()).toMatch(/truncated wal-0000000000000001\.log at offset \d+/);
    expect(recover(disk).outcome!.warnings).toEqual([]);
  });

  it('replaces covered segments with a snapshot, surviving a crash at every snapshot step', () => {
    for (let crashAfter = 0; crashAfter <= 12; crashAfter++) {
      const disk = new SimulatedDisk(seedrandom(`snapshot-${crashAfter}`));
      let requestId = 1;
      const writer = new LogWriter({ segmentBytesMax: 200, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax: 1 << 20 }, 1, null, () => requestId++);
      for (let index = 1; index <= 20; index++) {
        writer.append(1, body(index));
        writer.flush(0);
        pump(disk, writer);
      }
      // The snapshot stands for records 1..20 as one compacted record per five originals.
      const first = recover(disk).outcome!;
      const obsolete = first.segments.map((s) => s.name);
      writer.rotate();
      const snapshot = new SnapshotWriter(
        { coveredLsn: 20, records: [1, 2, 3, 4].map((n) => ({ type: 1, body: new TextEncoder().encode(`compacted-${n}`) })), obsoleteFiles: obsolete },
        () => requestId++,
        64,
      );
      const used = pump(disk, snapshot, crashAfter);
      disk.crash();
      const { records, failure } = recover(disk);
      expect(failure).toBeNull();
      const completed = snapshot.done && used <= crashAfter;
      if (records[0]?.startsWith('compacted')) expect(records).toEqual(['compacted-1', 'compacted-2', 'compacted-3', 'compacted-4']);
      else expect(records.length).toBe(20);
      if (completed) expect(records[0]).toBe('compacted-1');
    }
  });
});
