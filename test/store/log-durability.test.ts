/**
 * Proves the log's durability contract on a simulated disk that loses unsynced writes, tears
 * them, and reorders directory operations on crash: after a crash at any step, recovery yields
 * exactly a prefix of the appended records that contains every record the writer had released
 * under the `always` policy; a torn tail is truncated with a warning; a flipped bit in synced data
 * stops recovery with the file and offset, including in the last record released (commit after
 * data: a released record is always followed by a synced frame, so its damage cannot pass for a
 * torn tail); recovery seals a tail that has no seal; snapshots replace the log they cover, and a
 * crash at any step of writing one still recovers every released record.
 */
import fc from 'fast-check';
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import type { StorageRequest } from '../../src/contract.js';
import { LogRecovery, type RecoveredFrame, type RecoveryOutcome } from '../../src/store/log-recovery.js';
import { groupEndFlag, isSeal, LogWriter, segmentFileName } from '../../src/store/log-writer.js';
import type { PlannedLogRecord } from '../../src/store/record-codec.js';
import { frameHeaderBytes } from '../../src/store/record-frame.js';
import { SnapshotWriter } from '../../src/store/snapshot-writer.js';

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

function recover(disk: SimulatedDisk): { records: string[]; lsns: number[]; outcome: RecoveryOutcome | null; failure: string | null } {
  let requestId = 1;
  const records: string[] = [];
  const lsns: number[] = [];
  // Records count only in whole groups; recovery cuts a trailing incomplete one off the log and
  // leaves dropping its records to the caller, as the state store does.
  let group: { lsn: number; body: Uint8Array }[] = [];
  const onRecord = (frame: Readonly<RecoveredFrame>, fromSnapshot: boolean): void => {
    // The frame and its bytes are recovery's, reused for the next record: keep a copy.
    const record = { lsn: frame.lsn, type: frame.type, body: frame.bytes.slice(frame.bodyStart, frame.bodyEnd) };
    group.push(record);
    if (!fromSnapshot && (record.type & groupEndFlag) === 0) return;
    for (const member of group) {
      records.push(new TextDecoder().decode(member.body));
      lsns.push(member.lsn);
    }
    group = [];
  };
  const recovery = new LogRecovery(() => requestId++, onRecord, 64, undefined, groupEndFlag);
  pump(disk, { takeRequests: () => recovery.takeRequests(), handleResult: (r) => recovery.handleResult(r) });
  return { records, lsns, outcome: recovery.outcome, failure: recovery.failure };
}

/** Appends one group (one broker input's records); returns their LSNs. */
function appendGroup(writer: LogWriter, bodies: Uint8Array[]): number[] {
  const lsns = bodies.map((bytes) => writer.append(1, bytes));
  writer.markGroupEnd();
  return lsns;
}

function body(index: number): Uint8Array {
  return new TextEncoder().encode(`record-${index}-${'x'.repeat(index % 23)}`);
}

/** A snapshot record of type 1 whose body is `text`, encoded already. */
function compactedRecord(text: string): PlannedLogRecord {
  const bytes = new TextEncoder().encode(text);
  return { type: 1, bodyBytes: bytes.length, body: bytes, record: null };
}

describe('log durability on a faulty disk', () => {
  it('recovers a prefix holding every released record after a crash at any step', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 400 }), fc.string({ minLength: 1, maxLength: 8 }), (count, crashAfter, seed) => {
        const disk = new SimulatedDisk(seedrandom(seed), { ioErrorRate: 0, readErrorRate: 0, tornWriteRate: 0.5, capacityBytes: 1 << 30 });
        let requestId = 1;
        const writer = new LogWriter({ segmentBytesMax: 300, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax: 120 }, 1, null, () => requestId++);
        let budget = crashAfter;
        const appended: number[] = [];
        /** For each appended record, the LSN that ends its group: a record counts only whole. */
        const groupEnds: number[] = [];
        let group: Uint8Array[] = [];
        for (let index = 1; index <= count && budget > 0; index++) {
          group.push(body(index));
          if (index % 3 === 0 || index === count) {
            const lsns = appendGroup(writer, group);
            appended.push(...lsns);
            groupEnds.push(...lsns.map(() => lsns[lsns.length - 1]!));
            group = [];
            writer.flush(0);
            budget -= pump(disk, writer, budget);
          }
        }
        const released = groupEnds.filter((end) => end <= writer.releasedLsn).length;
        disk.crash();
        const { records, lsns, outcome, failure } = recover(disk);
        expect(failure).toBeNull();
        expect(records.length).toBeGreaterThanOrEqual(released);
        expect(records.length).toBeLessThanOrEqual(appended.length);
        expect(records).toEqual(Array.from({ length: records.length }, (_, i) => new TextDecoder().decode(body(i + 1))));
        expect(lsns).toEqual(appended.slice(0, records.length));
        expect(outcome!.nextLsn).toBeGreaterThan(lsns[lsns.length - 1] ?? 0);
      }),
      { numRuns: 300 },
    );
  });

  it('writes a seal with a group that ends its batch, so one sync releases the group', () => {
    const disk = new SimulatedDisk(seedrandom('batch-seal'));
    let requestId = 1;
    const writer = new LogWriter({ segmentBytesMax: 1 << 20, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax: 1 << 20 }, 1, null, () => requestId++);
    const step = (): StorageRequest => {
      const requests = writer.takeRequests();
      expect(requests.length).toBe(1);
      expect(writer.handleResult(disk.execute(requests[0]!), 0)).toBe(true);
      return requests[0]!;
    };
    const [first, second] = appendGroup(writer, [body(1), body(2)]);
    writer.flush(0);
    const write = step();
    expect(write.op === 'write' && write.bytes.length).toBe(2 * frameHeaderBytes + body(1).length + body(2).length + frameHeaderBytes);
    expect(writer.releasedLsn).toBe(0);
    // The group's write, its sync, the new segment's directory sync: then the group is released.
    expect([step().op, step().op]).toEqual(['sync', 'sync-directory']);
    expect(writer.syncedLsn).toBe(second! + 1);
    expect(writer.releasedLsn).toBeGreaterThanOrEqual(second!);
    expect(writer.quiescent).toBe(true);
    // An idle writer adds nothing more: the batch's seal is the log's last frame.
    writer.flush(1);
    expect(writer.takeRequests()).toEqual([]);
    const bytes = disk.fileBytes(segmentFileName(1))!;
    expect(isSeal(bytes[bytes.length - frameHeaderBytes + 16]!)).toBe(true);
    expect(first).toBe(1);
  });

  it('releases the last record of a batch without room for a seal only once a later frame is synced', () => {
    const disk = new SimulatedDisk(seedrandom('seal'));
    let requestId = 1;
    // Room for the record's frame and not one byte more: its batch cannot carry a seal.
    const writeBytesMax = frameHeaderBytes + body(1).length;
    const writer = new LogWriter({ segmentBytesMax: 1 << 20, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax }, 1, null, () => requestId++);
    const step = (): StorageRequest => {
      const requests = writer.takeRequests();
      expect(requests.length).toBe(1);
      expect(writer.handleResult(disk.execute(requests[0]!), 0)).toBe(true);
      return requests[0]!;
    };
    const [first] = appendGroup(writer, [body(1)]);
    writer.flush(0);
    // The group's write, its sync, the new segment's directory sync.
    expect([step().op, step().op, step().op]).toEqual(['write', 'sync', 'sync-directory']);
    expect(writer.syncedLsn).toBe(first);
    expect(writer.releasedLsn).toBeLessThan(first!);
    const [write] = writer.takeRequests();
    expect(write?.op).toBe('write');
    expect(write!.op === 'write' && write!.bytes.length).toBe(frameHeaderBytes);
    expect(writer.handleResult({ requestId: write!.requestId, ok: true }, 0)).toBe(true);
    pump(disk, writer);
    expect(writer.releasedLsn).toBeGreaterThanOrEqual(first!);
    expect(writer.quiescent).toBe(true);
    // The seal is written once: an idle writer adds nothing more.
    writer.flush(1);
    expect(writer.takeRequests()).toEqual([]);
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
      const lsns = appendGroup(
        writer,
        Array.from({ length: 7 }, (_, index) => body(expected + index + 1)),
      );
      writer.flush(0);
      pump(disk, writer);
      expected += 7;
      expect(writer.releasedLsn).toBeGreaterThanOrEqual(lsns[6]!);
      disk.crash();
    }
    expect(disk.describe()).toContain(segmentFileName(1));
  });

  it('refuses to start on a flipped bit in the last released record, naming file and offset', () => {
    const disk = new SimulatedDisk(seedrandom('flip-last'));
    let requestId = 1;
    const writer = new LogWriter({ segmentBytesMax: 1 << 20, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax: 1 << 20 }, 1, null, () => requestId++);
    appendGroup(writer, [body(1), body(2)]);
    writer.flush(0);
    pump(disk, writer);
    const lastDataRecord = appendGroup(writer, [body(3)])[0]!;
    writer.flush(0);
    pump(disk, writer);
    expect(writer.releasedLsn).toBeGreaterThanOrEqual(lastDataRecord);
    const file = segmentFileName(1);
    const bytes = disk.fileBytes(file)!;
    // The seal is the file's last frame; the released record ends right before it.
    const offset = bytes.length - frameHeaderBytes - 3;
    disk.corrupt(file, offset, bytes[offset]! ^ 0x10);
    const { failure } = recover(disk);
    expect(failure).toMatch(/^corrupt log: wal-0000000000000001\.log at offset \d+: checksum mismatch/);
  });

  it('seals a recovered tail that has no seal before it finishes', () => {
    const disk = new SimulatedDisk(seedrandom('unsealed'));
    let requestId = 1;
    // No room for a seal in the group's write, so the seal would be a write of its own.
    const writeBytesMax = 2 * frameHeaderBytes + body(1).length + body(2).length;
    const writer = new LogWriter({ segmentBytesMax: 1 << 20, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax }, 1, null, () => requestId++);
    appendGroup(writer, [body(1), body(2)]);
    writer.flush(0);
    pump(disk, writer, 3); // write, sync, directory sync: the seal's write never happens
    disk.crash();
    const file = segmentFileName(1);
    const before = disk.fileBytes(file)!.length;
    const first = recover(disk);
    expect(first.records).toEqual([body(1), body(2)].map((bytes) => new TextDecoder().decode(bytes)));
    expect(disk.fileBytes(file)!.length).toBe(before + frameHeaderBytes);
    expect(first.outcome!.openSegment).toEqual({ name: file, size: before + frameHeaderBytes });
    expect(first.outcome!.nextLsn).toBe(4);
    disk.crash(); // the seal was synced by recovery
    const second = recover(disk);
    expect(second.records.length).toBe(2);
    expect(disk.fileBytes(file)!.length).toBe(before + frameHeaderBytes);
    expect(isSeal(disk.fileBytes(file)![before + 16]!)).toBe(true);
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
    appendGroup(writer, [body(1), body(2)]);
    appendGroup(writer, [body(3), body(4)]);
    writer.flush(0);
    pump(disk, writer);
    // Tear the last data record (the seal after it goes too): its group is incomplete and cut.
    const size = disk.fileBytes(segmentFileName(1))!.length - frameHeaderBytes;
    disk.execute({ op: 'truncate', requestId: 0, file: segmentFileName(1), length: size - 3 });
    disk.execute({ op: 'sync', requestId: 0, file: segmentFileName(1) });
    const { failure, records, outcome } = recover(disk);
    expect(failure).toBeNull();
    expect(records.length).toBe(2);
    expect(outcome!.warnings.join()).toMatch(/truncated wal-0000000000000001\.log at offset \d+/);
    expect(recover(disk).outcome!.warnings).toEqual([]);
  });

  it('replaces covered segments with a snapshot, surviving a crash at every snapshot step', () => {
    for (let crashAfter = 0; crashAfter <= 12; crashAfter++) {
      const disk = new SimulatedDisk(seedrandom(`snapshot-${crashAfter}`));
      let requestId = 1;
      const writer = new LogWriter({ segmentBytesMax: 200, syncPolicy: 'always', syncIntervalMs: 10, writeBytesMax: 1 << 20 }, 1, null, () => requestId++);
      for (let index = 1; index <= 20; index++) {
        appendGroup(writer, [body(index)]);
        writer.flush(0);
        pump(disk, writer);
      }
      // The snapshot stands for records 1..20 as one compacted record per five originals.
      const first = recover(disk).outcome!;
      const obsolete = first.segments.map((s) => s.name);
      writer.rotate();
      const snapshot = new SnapshotWriter({ coveredLsn: writer.appendedLsn, records: [1, 2, 3, 4].map((n) => compactedRecord(`compacted-${n}`)), obsoleteFiles: obsolete }, () => requestId++, 64);
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
