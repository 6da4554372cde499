/**
 * Where each of a run of recovered records was read: its file, the offset of its frame, its LSN,
 * and whether the file was a snapshot. Kept as parallel arrays (the file names are shared
 * strings), not as an object per record: a restart recovers every record of its log, and only a
 * record that cannot be applied ever has its origin asked for (`at`), to name it in a report.
 */
import { assert } from '../assert.js';
import type { RecordOrigin } from './state-store.js';

export class RecordOrigins {
  private files: string[] = [];
  private offsets: number[] = [];
  private lsns: number[] = [];
  private snapshots: boolean[] = [];

  get length(): number {
    return this.files.length;
  }

  push(file: string, offset: number, lsn: number, snapshot: boolean): void {
    this.files.push(file);
    this.offsets.push(offset);
    this.lsns.push(lsn);
    this.snapshots.push(snapshot);
  }

  /** Removes the origins from `index` on and returns them, in order, as a list of their own. */
  splitOff(index: number): RecordOrigins {
    assert(index >= 0 && index <= this.files.length, 'origins split within their length');
    const rest = new RecordOrigins();
    if (index === this.files.length) return rest;
    rest.files = this.files.splice(index);
    rest.offsets = this.offsets.splice(index);
    rest.lsns = this.lsns.splice(index);
    rest.snapshots = this.snapshots.splice(index);
    return rest;
  }

  /** The origin of the record at `index`, or null when there is none. */
  at(index: number): RecordOrigin | null {
    if (!(index >= 0 && index < this.files.length)) return null;
    return { file: this.files[index]!, offset: this.offsets[index]!, lsn: this.lsns[index]!, snapshot: this.snapshots[index]! };
  }
}
