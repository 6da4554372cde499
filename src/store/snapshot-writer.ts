/**
 * Writes a snapshot of the live state and retires the log it replaces (compaction).
 *
 * The snapshot is a file of ordinary frames (LSNs 1..n inside the file) closed by an end record,
 * named after the last log LSN it covers. It is written to `<name>.tmp`, synced, renamed into
 * place, and the directory is synced, so at every instant either the old or the new snapshot is
 * the newest complete one (a crash leaves at most a `.tmp` that recovery deletes). Only then are
 * the segments wholly covered by it and the older snapshots deleted, followed by one more
 * directory sync. A storage failure abandons the snapshot; the log it would have replaced is
 * still intact, so nothing is lost, and the failure is reported to the caller.
 */
import { assert } from '../assert.js';
import type { StorageRequest, StorageResult } from '../contract.js';
import { snapshotEndRecordType, snapshotFileName } from './log-recovery.js';
import { type PlannedLogRecord, writePlannedBody } from './record-codec.js';
import { frameHeaderBytes, sealFrame, writeFrame } from './record-frame.js';

export interface SnapshotPlan {
  coveredLsn: number;
  /** Sized, their bodies written into the image as it is encoded (record-codec.ts `planLogRecord`). */
  records: PlannedLogRecord[];
  /** Files to delete once the snapshot is durable (covered segments, older snapshots). */
  obsoleteFiles: string[];
}

export class SnapshotWriter {
  private readonly steps: StorageRequest[] = [];
  private inflightRequestId = -1;
  private readonly outbox: StorageRequest[] = [];
  failure: string | null = null;
  done = false;
  readonly fileName: string;
  readonly bytesWritten: number;

  constructor(
    plan: SnapshotPlan,
    private readonly nextRequestId: () => number,
    writeBytesMax: number,
  ) {
    assert(plan.coveredLsn >= 0, 'covered LSN is not negative');
    this.fileName = snapshotFileName(plan.coveredLsn);
    const temporary = `${this.fileName}.tmp`;
    const image = encodeSnapshot(plan.records);
    this.bytesWritten = image.length;
    for (let offset = 0; offset < image.length; offset += writeBytesMax) {
      this.steps.push({ op: 'write', requestId: 0, file: temporary, offset, bytes: image.subarray(offset, Math.min(image.length, offset + writeBytesMax)) });
    }
    this.steps.push({ op: 'sync', requestId: 0, file: temporary }, { op: 'rename', requestId: 0, from: temporary, to: this.fileName }, { op: 'sync-directory', requestId: 0 });
    for (const file of plan.obsoleteFiles) this.steps.push({ op: 'delete', requestId: 0, file });
    if (plan.obsoleteFiles.length > 0) this.steps.push({ op: 'sync-directory', requestId: 0 });
    this.issueNext();
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
      this.failure = `snapshot ${this.fileName} failed: ${result.code} ${result.message}`;
      return true;
    }
    this.issueNext();
    return true;
  }

  private issueNext(): void {
    const step = this.steps.shift();
    if (step === undefined) {
      this.done = true;
      return;
    }
    const request: StorageRequest = { ...step, requestId: this.nextRequestId() };
    this.inflightRequestId = request.requestId;
    this.outbox.push(request);
  }
}

function encodeSnapshot(records: PlannedLogRecord[]): Uint8Array {
  let size = frameHeaderBytes + 4;
  for (const record of records) size += frameHeaderBytes + record.bodyBytes;
  const image = new Uint8Array(size);
  let offset = 0;
  let lsn = 1;
  for (const record of records) {
    const bodyStart = offset + frameHeaderBytes;
    writePlannedBody(record, image.subarray(bodyStart, bodyStart + record.bodyBytes));
    offset = sealFrame(image, offset, lsn++, record.type, record.bodyBytes);
  }
  const count = new Uint8Array(4);
  new DataView(count.buffer).setUint32(0, records.length, true);
  offset = writeFrame(image, offset, lsn, snapshotEndRecordType, count);
  assert(offset === size, 'snapshot size computed exactly');
  return image;
}
