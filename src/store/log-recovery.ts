/**
 * The read side of the log: rebuilds state from the newest snapshot and the segments after it.
 *
 * Recovery is a small state machine over storage requests, like everything else in the core:
 * list the directory, read the newest snapshot whole, then read each relevant segment in LSN
 * order, handing every record to `onRecord`. What it tolerates and what it refuses:
 * - A torn tail on the last segment (a crash during the final write) is truncated, synced and
 *   reported as a warning: those records were never acknowledged under the `always` policy.
 * - Anything else (a checksum failure with valid records after it, a torn non-last segment, a
 *   gap in the sequence, a damaged snapshot) stops recovery with a message naming the file and
 *   offset. Skipping it silently could lose acknowledged data or resurrect deleted state.
 * - Leftover `*.tmp` files (a crash during a snapshot write) are deleted.
 * - With groups (`groupEndFlag`): the records of one broker input end with a flagged frame and
 *   count only whole. A trailing group without its end (its input's records never all reached
 *   the disk, so nothing that depends on them was acknowledged) is cut off the log like a torn
 *   tail: truncated, segments after it deleted, and the next LSN is the one after the last
 *   complete group. The caller, which sees every record, drops the incomplete group's records.
 * - With groups, the log must end with a seal before the broker acts on what it holds: the
 *   writer releases a record only once a later frame is synced (log-writer.ts), and a recovered
 *   tail that was never followed (its acknowledgements never went out, but the restarted broker
 *   will act on it) gets its seal written and synced here, as the last step.
 */
import { assert } from '../assert.js';
import type { StorageRequest, StorageResult } from '../contract.js';
import { isSeal, type OpenSegment, sealRecordType } from './log-writer.js';
import { encodeFrame, frameHeaderBytes, frameLsnAt, scanFramePositions } from './record-frame.js';
import { isStreamFile } from './streams/stream-files.js';

export const snapshotEndRecordType = 255;
const segmentPattern = /^wal-(\d{16})\.log$/;
const snapshotPattern = /^snapshot-(\d{16})\.snap$/;

export function snapshotFileName(coveredLsn: number): string {
  return `snapshot-${String(coveredLsn).padStart(16, '0')}.snap`;
}

export interface RecoveryOutcome {
  /** The LSN the next appended record gets. */
  nextLsn: number;
  /** Segment to keep appending to, or null to start a new one. */
  openSegment: OpenSegment | null;
  /** LSN covered by the snapshot recovered from (0 without one). */
  snapshotLsn: number;
  /** Every segment present after recovery, oldest first, with its first LSN. */
  segments: { name: string; firstLsn: number }[];
  /** Files left behind that a later snapshot should delete (covered segments, older snapshots). */
  obsoleteFiles: string[];
  /** Human-readable notes (torn tails truncated, temporary files removed). */
  warnings: string[];
}

/**
 * One record as recovery hands it to `onRecord`: its body is `bytes[bodyStart, bodyEnd)`. The
 * object and its bytes are recovery's, reused for the next record: a caller copies what it keeps.
 * Recovering 20,000 sessions made a record object, a body view, an origin and two position
 * objects per record, all garbage a moment later.
 */
export interface RecoveredFrame {
  bytes: Uint8Array;
  bodyStart: number;
  bodyEnd: number;
  type: number;
  lsn: number;
}

type Step = { kind: 'list' } | { kind: 'read'; file: string; size: number; snapshot: boolean; buffer: Uint8Array; filled: number } | { kind: 'cleanup' } | { kind: 'done' };

export class LogRecovery {
  private step: Step = { kind: 'list' };
  private inflightRequestId = -1;
  private readonly outbox: StorageRequest[] = [];
  private readQueue: { name: string; size: number; snapshot: boolean; firstLsn: number }[] = [];
  private cleanupQueue: StorageRequest[] = [];
  private expectedLsn = 1;
  private snapshotLsn = 0;
  private segments: { name: string; firstLsn: number }[] = [];
  private lastSegment: OpenSegment | null = null;
  private readonly obsoleteFiles: string[] = [];
  private readonly warnings: string[] = [];
  /** Where the last complete group ends (null: before the first segment read), with groups only. */
  private commitPoint: { file: string; offset: number; lsn: number; type: number } | null = null;
  /** The last record kept in the log, once read. */
  private tail: { lsn: number; type: number } | null = null;
  failure: string | null = null;
  outcome: RecoveryOutcome | null = null;
  /** The record handed to `onRecord`, refilled for each. */
  private readonly frame: RecoveredFrame = { bytes: new Uint8Array(0), bodyStart: 0, bodyEnd: 0, type: 0, lsn: 0 };

  constructor(
    private readonly nextRequestId: () => number,
    /** Every record in order, with where its frame starts (for reports naming file and offset). */
    private readonly onRecord: (record: Readonly<RecoveredFrame>, fromSnapshot: boolean, file: string, offset: number) => void,
    private readonly readBytesMax = 4 * 1024 * 1024,
    private readonly recordBytesMax = 512 * 1024 * 1024,
    private readonly groupEndFlag: number | null = null,
  ) {
    this.issue({ op: 'list', requestId: this.nextRequestId() });
  }

  get finished(): boolean {
    return this.outcome !== null || this.failure !== null;
  }

  /** How many requests `takeRequests` would return now. */
  get requestsWaiting(): number {
    return this.outbox.length;
  }

  takeRequests(): StorageRequest[] {
    return this.outbox.splice(0, this.outbox.length);
  }

  handleResult(result: StorageResult): boolean {
    if (result.requestId !== this.inflightRequestId) return false;
    this.inflightRequestId = -1;
    if (!result.ok) {
      this.failure = `recovery could not ${this.step.kind} ${'file' in this.step ? this.step.file : 'the data directory'}: ${result.code} ${result.message}`;
      return true;
    }
    if (this.step.kind === 'list') this.planReads(result.files ?? []);
    else if (this.step.kind === 'read') this.continueRead(result.bytes ?? new Uint8Array(0));
    else if (this.step.kind === 'cleanup') this.nextCleanup();
    return true;
  }

  private planReads(files: { name: string; size: number }[]): void {
    let newestSnapshot: { name: string; size: number; lsn: number } | null = null;
    for (const file of files) {
      const match = snapshotPattern.exec(file.name);
      if (match && (newestSnapshot === null || Number(match[1]) > newestSnapshot.lsn)) newestSnapshot = { ...file, lsn: Number(match[1]) };
      // The stream log's files (and its temporary ones) are its own recovery's (streams/stream-recovery.ts).
      if (file.name.endsWith('.tmp') && !isStreamFile(file.name)) {
        this.cleanupQueue.push({ op: 'delete', requestId: 0, file: file.name });
        this.warnings.push(`removed ${file.name}, left by a snapshot that never completed`);
      }
    }
    const segments = files
      .map((file) => ({ ...file, match: segmentPattern.exec(file.name) }))
      .filter((file) => file.match !== null)
      .map((file) => ({ name: file.name, size: file.size, firstLsn: Number(file.match![1]), snapshot: false }))
      .sort((a, b) => a.firstLsn - b.firstLsn);
    if (newestSnapshot !== null) {
      this.snapshotLsn = newestSnapshot.lsn;
      this.readQueue.push({ name: newestSnapshot.name, size: newestSnapshot.size, snapshot: true, firstLsn: 1 });
    }
    for (const file of files) {
      const match = snapshotPattern.exec(file.name);
      if (match && newestSnapshot !== null && Number(match[1]) < newestSnapshot.lsn) this.obsoleteFiles.push(file.name);
    }
    // Segments wholly covered by the snapshot are skipped; the one containing snapshotLsn + 1 is read.
    for (let index = 0; index < segments.length; index++) {
      const nextFirst = segments[index + 1]?.firstLsn ?? Infinity;
      if (nextFirst - 1 <= this.snapshotLsn) {
        this.obsoleteFiles.push(segments[index]!.name);
        continue;
      }
      this.readQueue.push(segments[index]!);
      this.segments.push({ name: segments[index]!.name, firstLsn: segments[index]!.firstLsn });
    }
    this.expectedLsn = this.snapshotLsn + 1;
    this.nextRead();
  }

  private nextRead(): void {
    const file = this.readQueue.shift();
    if (file === undefined) {
      this.cutIncompleteGroup();
      this.sealTail();
      return this.nextCleanup();
    }
    if (!file.snapshot && file.firstLsn > this.expectedLsn) {
      this.failure = `log records ${this.expectedLsn}..${file.firstLsn - 1} are missing before ${file.name}`;
      return;
    }
    this.step = { kind: 'read', file: file.name, size: file.size, snapshot: file.snapshot, buffer: new Uint8Array(file.size), filled: 0 };
    this.requestChunk();
  }

  private requestChunk(): void {
    assert(this.step.kind === 'read', 'reading');
    if (this.step.filled >= this.step.size) return this.finishFile();
    const length = Math.min(this.readBytesMax, this.step.size - this.step.filled);
    this.issue({ op: 'read', requestId: this.nextRequestId(), file: this.step.file, offset: this.step.filled, length });
  }

  private continueRead(bytes: Uint8Array): void {
    assert(this.step.kind === 'read', 'reading');
    if (bytes.length === 0) {
      // The file shrank since it was listed; what was read is all there is.
      this.step.buffer = this.step.buffer.subarray(0, this.step.filled);
      this.step.size = this.step.filled;
    }
    this.step.buffer.set(bytes.subarray(0, this.step.size - this.step.filled), this.step.filled);
    this.step.filled += Math.min(bytes.length, this.step.size - this.step.filled);
    this.requestChunk();
  }

  private finishFile(): void {
    assert(this.step.kind === 'read', 'reading');
    const { file, snapshot, buffer } = this.step;
    if (snapshot) return this.finishSnapshot(file, buffer);
    const firstLsn = Number(segmentPattern.exec(file)![1]);
    const scan = scanFramePositions(buffer, firstLsn, this.recordBytesMax);
    const isLast = this.readQueue.length === 0;
    if (scan.ending === 'corrupt' || (scan.ending === 'torn' && !isLast)) {
      this.failure = `corrupt log: ${file} at offset ${scan.problem!.offset}: ${scan.problem!.reason}`;
      return;
    }
    this.handFrames(buffer, scan.positions, file);
    if (scan.positions.length === 0 && firstLsn < this.expectedLsn && isLast === false) {
      this.failure = `empty log segment ${file} before the end of the log`;
      return;
    }
    // Appending continues in the last segment only if its records end right before the next LSN
    // (a snapshot newer than the log's synced end means the next record starts a new segment).
    const lastLsn = scan.positions.length > 0 ? scan.lastLsn : firstLsn - 1;
    if (isLast && lastLsn === this.expectedLsn - 1) this.lastSegment = { name: file, size: scan.validEnd };
    if (scan.ending === 'torn' || scan.validEnd < buffer.length) {
      this.warnings.push(`truncated ${file} at offset ${scan.validEnd} (${buffer.length - scan.validEnd} bytes of an interrupted write: ${scan.problem?.reason ?? 'zero fill'})`);
      this.cleanupQueue.push({ op: 'truncate', requestId: 0, file, length: scan.validEnd }, { op: 'sync', requestId: 0, file });
    }
    this.nextRead();
  }

  /**
   * Hands the records at `positions` (checked frames of the segment `file`) to `onRecord`, one at a
   * time, and moves the commit point and the tail past them. Nothing is allocated per record.
   */
  private handFrames(buffer: Uint8Array, positions: readonly number[], file: string): void {
    const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const frame = this.frame;
    frame.bytes = buffer;
    let committedAt = -1;
    for (let index = 0; index < positions.length; index++) {
      const position = positions[index]!;
      const lsn = frameLsnAt(buffer, position, view);
      const type = buffer[position + 16]!;
      // Records the snapshot covers are committed; so is a group's flagged last record.
      const committed = lsn < this.expectedLsn || (this.groupEndFlag !== null && (type & this.groupEndFlag) !== 0);
      if (committed) committedAt = position;
      if (lsn < this.expectedLsn) continue;
      // A seal holds no state; it only follows the records before it (log-writer.ts).
      if (!isSeal(type)) {
        frame.bodyStart = position + frameHeaderBytes;
        frame.bodyEnd = frame.bodyStart + view.getUint32(position + 4, true);
        frame.type = type;
        frame.lsn = lsn;
        this.onRecord(frame, false, file, position);
      }
      this.expectedLsn = lsn + 1;
    }
    frame.bytes = new Uint8Array(0);
    if (committedAt >= 0) {
      const end = committedAt + frameHeaderBytes + view.getUint32(committedAt + 4, true);
      this.commitPoint = { file, offset: end, lsn: frameLsnAt(buffer, committedAt, view), type: buffer[committedAt + 16]! };
    }
    const last = positions[positions.length - 1];
    if (last !== undefined) this.tail = { lsn: frameLsnAt(buffer, last, view), type: buffer[last + 16]! };
  }

  /** Cuts a trailing group that lost its end off the log (see the module comment). */
  private cutIncompleteGroup(): void {
    if (this.groupEndFlag === null) return;
    // A snapshot may cover more than the log kept (it can include records never synced there).
    const committedLsn = Math.max(this.commitPoint?.lsn ?? 0, this.snapshotLsn);
    if (this.expectedLsn - 1 <= committedLsn) return;
    this.warnings.push(`discarded records ${committedLsn + 1}..${this.expectedLsn - 1}: the last input's records never all reached the disk`);
    const point = this.commitPoint;
    const keptIndex = point === null ? -1 : this.segments.findIndex((segment) => segment.name === point.file);
    // Later segments go newest first, each deletion made durable before the next, and all of
    // them before the cut segment shrinks: a crash at any step then leaves a contiguous log, never
    // a later segment after a missing or shortened one, a gap no recovery could cross (seed 301856).
    for (const segment of this.segments.slice(keptIndex + 1).reverse()) {
      this.cleanupQueue.push({ op: 'delete', requestId: 0, file: segment.name }, { op: 'sync-directory', requestId: 0 });
    }
    if (point !== null) this.cleanupQueue.push({ op: 'truncate', requestId: 0, file: point.file, length: point.offset }, { op: 'sync', requestId: 0, file: point.file });
    this.segments = this.segments.slice(0, keptIndex + 1);
    this.tail = point === null ? null : { lsn: point.lsn, type: point.type };
    // Appending continues in the cut segment only if it now ends right before the next LSN.
    this.lastSegment = point !== null && point.lsn === committedLsn ? { name: point.file, size: point.offset } : null;
    this.expectedLsn = committedLsn + 1;
  }

  /** Appends and syncs a seal after a tail that has none (see the module comment). */
  private sealTail(): void {
    const segment = this.lastSegment;
    if (this.groupEndFlag === null || segment === null || this.tail === null) return;
    if (this.tail.lsn !== this.expectedLsn - 1 || isSeal(this.tail.type)) return;
    const frame = encodeFrame(this.expectedLsn, sealRecordType | this.groupEndFlag, new Uint8Array(0));
    this.cleanupQueue.push({ op: 'write', requestId: 0, file: segment.name, offset: segment.size, bytes: frame }, { op: 'sync', requestId: 0, file: segment.name });
    this.lastSegment = { name: segment.name, size: segment.size + frame.length };
    this.tail = { lsn: this.expectedLsn, type: sealRecordType | this.groupEndFlag };
    this.expectedLsn += 1;
  }

  private finishSnapshot(file: string, buffer: Uint8Array): void {
    const scan = scanFramePositions(buffer, 1, this.recordBytesMax);
    const last = scan.positions[scan.positions.length - 1];
    if (scan.ending !== 'clean' || last === undefined || buffer[last + 16] !== snapshotEndRecordType) {
      const where = scan.problem ? `offset ${scan.problem.offset}: ${scan.problem.reason}` : 'it has no end record';
      this.failure = `corrupt snapshot: ${file} at ${where}`;
      return;
    }
    const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const frame = this.frame;
    frame.bytes = buffer;
    for (let index = 0; index < scan.positions.length - 1; index++) {
      const position = scan.positions[index]!;
      frame.bodyStart = position + frameHeaderBytes;
      frame.bodyEnd = frame.bodyStart + view.getUint32(position + 4, true);
      frame.type = buffer[position + 16]!;
      frame.lsn = frameLsnAt(buffer, position, view);
      this.onRecord(frame, true, file, position);
    }
    frame.bytes = new Uint8Array(0);
    this.nextRead();
  }

  private nextCleanup(): void {
    const request = this.cleanupQueue.shift();
    if (request !== undefined) {
      this.step = { kind: 'cleanup' };
      this.issue({ ...request, requestId: this.nextRequestId() });
      return;
    }
    this.step = { kind: 'done' };
    this.outcome = {
      nextLsn: this.expectedLsn,
      openSegment: this.lastSegment,
      snapshotLsn: this.snapshotLsn,
      segments: this.segments,
      obsoleteFiles: this.obsoleteFiles,
      warnings: this.warnings,
    };
  }

  private issue(request: StorageRequest): void {
    this.inflightRequestId = request.requestId;
    this.outbox.push(request);
  }
}
