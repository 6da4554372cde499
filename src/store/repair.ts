/**
 * The documented repair after recovery reported corruption, as a pure plan over file contents.
 *
 * `planRepair` reads the data directory's files the way recovery does (the newest snapshot, then
 * the segments it does not wholly cover, in LSN order) and cuts the log at the first damaged
 * record: the damaged segment is copied aside as `<name>.damaged` and truncated at the damage,
 * every later segment is renamed aside whole. Every record after the damage is lost (the broker
 * then starts from the readable prefix); the copies keep the bytes for forensic work. Segments
 * wholly covered by the snapshot are left alone: recovery never reads them and the next snapshot
 * deletes them, so damage there costs nothing.
 *
 * A record that reads back whole but cannot be applied (record-check.ts: say a will with an empty
 * topic, written by a version that did not validate it) stops recovery like damage does; the plan
 * cuts the log just before it in the same way.
 *
 * A damaged newest snapshot cannot be repaired this way, because the segments it replaced are
 * gone: the plan then has no actions and says so (`repairable` is false). Executing the plan is
 * the caller's business: `io/inspect.ts` does it with the file system, the simulator on its disk.
 */
import { assert } from '../assert.js';
import { snapshotEndRecordType } from './log-recovery.js';
import { groupEndFlag, isSeal } from './log-writer.js';
import { replayRecord } from './record-check.js';
import { decodeStateRecord } from './record-codec.js';
import { type FrameRecord, type ScanResult, scanFrames } from './record-frame.js';
import { createDurableState, type DurableState, type StateRecord } from './state-store.js';
import { scanSegment } from './streams/segment-scan.js';
import { cutMarkerName, indexFileName, segmentFilePattern as streamSegmentPattern } from './streams/stream-files.js';

export type RepairAction =
  /** Copy the file's current bytes to a new file (replacing one of that name). */
  | { kind: 'copy'; from: string; to: string }
  | { kind: 'truncate'; file: string; length: number }
  | { kind: 'rename'; from: string; to: string }
  /** Create a new file with these bytes (a stream repair's mark). */
  | { kind: 'write'; file: string; bytes: Uint8Array };

export interface RepairPlan {
  actions: RepairAction[];
  /** One line per action, or why there is nothing to do. */
  notes: string[];
  /** False when the damage cannot be cut away (a damaged newest snapshot). */
  repairable: boolean;
}

const recordBytesMax = 512 * 1024 * 1024;
const segmentPattern = /^wal-(\d{16})\.log$/;
const snapshotPattern = /^snapshot-(\d{16})\.snap$/;

interface Segment {
  name: string;
  firstLsn: number;
  scan: ScanResult;
}

export function planRepair(files: readonly { name: string; bytes: Uint8Array }[]): RepairPlan {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const snapshots = sorted.filter((file) => snapshotPattern.test(file.name));
  const newest = snapshots[snapshots.length - 1];
  let snapshotLsn = 0;
  if (newest !== undefined) {
    const damage = snapshotDamage(newest.bytes);
    if (damage !== null) {
      const notes = [`cannot repair: the newest snapshot ${newest.name} is damaged (${damage}) and the log it replaced is gone; move the directory aside to start empty`];
      return { actions: [], notes, repairable: false };
    }
    snapshotLsn = Number(snapshotPattern.exec(newest.name)![1]);
  }
  const segments = liveSegments(sorted, snapshotLsn);
  const damagedIndex = segments.findIndex((segment, index) => segment.scan.ending === 'corrupt' || (segment.scan.ending === 'torn' && index < segments.length - 1));
  // Recovery applies the records of every segment before a damaged one; the first it cannot
  // apply stops it first (record-check.ts), so the cut goes there.
  const readable = damagedIndex < 0 ? segments : segments.slice(0, damagedIndex);
  const unusable = firstUnusableRecord(newest === undefined ? null : scanFrames(newest.bytes, 1, recordBytesMax).records, readable, snapshotLsn);
  if (unusable !== null && unusable.segmentIndex < 0) {
    const notes = [`cannot repair: a record of the newest snapshot ${newest!.name} cannot be applied (${unusable.reason}) and the log it replaced is gone; move the directory aside to start empty`];
    return { actions: [], notes, repairable: false };
  }
  if (unusable !== null) return cutAtRecord(segments, unusable);
  if (damagedIndex < 0) return { actions: [], notes: ['nothing to repair'], repairable: true };
  return cutAt(segments, damagedIndex);
}

interface UnusableRecord {
  /** Index into the segments, or -1 for the snapshot. */
  segmentIndex: number;
  offset: number;
  lsn: number;
  reason: string;
}

/**
 * Replays the snapshot's records and then the segments' after it the way recovery does (whole
 * groups, seals skipped, a trailing group without its end never applied) and returns the first record
 * that cannot be decoded or applied, or null.
 */
function firstUnusableRecord(snapshotRecordFrames: readonly FrameRecord[] | null, segments: readonly Segment[], snapshotLsn: number): UnusableRecord | null {
  const state = createDurableState();
  if (snapshotRecordFrames !== null) {
    for (let index = 0; index < snapshotRecordFrames.length - 1; index++) {
      const frame = snapshotRecordFrames[index]!;
      const reason = decodeAndReplay(state, frame.type, frame.body);
      if (reason !== null) return { segmentIndex: -1, offset: 0, lsn: frame.lsn, reason };
    }
  }
  let group: { frame: FrameRecord; segmentIndex: number; offset: number }[] = [];
  for (let segmentIndex = 0; segmentIndex < segments.length; segmentIndex++) {
    const scan = segments[segmentIndex]!.scan;
    for (const frame of scan.records) {
      // What the snapshot covers is in its records already; recovery skips it too.
      if (frame.lsn <= snapshotLsn) continue;
      if (!isSeal(frame.type)) group.push({ frame, segmentIndex, offset: frame.offset });
      if ((frame.type & groupEndFlag) === 0) continue;
      for (const member of group) {
        const reason = decodeAndReplay(state, member.frame.type & ~groupEndFlag, member.frame.body);
        if (reason !== null) return { segmentIndex: member.segmentIndex, offset: member.offset, lsn: member.frame.lsn, reason };
      }
      group = [];
    }
  }
  return null;
}

function decodeAndReplay(state: DurableState, type: number, body: Uint8Array): string | null {
  let record: StateRecord;
  try {
    record = decodeStateRecord(type, body);
  } catch (error) {
    return `cannot be decoded: ${(error as Error).message}`;
  }
  const problem = replayRecord(state, record);
  return problem === null ? null : `${record.kind} cannot be applied: ${problem}`;
}

/** Cuts the log just before a record recovery cannot apply, like `cutAt` does at damage. */
function cutAtRecord(segments: Segment[], unusable: UnusableRecord): RepairPlan {
  const segment = segments[unusable.segmentIndex]!;
  const actions: RepairAction[] = [
    { kind: 'copy', from: segment.name, to: `${segment.name}.damaged` },
    { kind: 'truncate', file: segment.name, length: unusable.offset },
  ];
  const notes = [
    `${segment.name}: record ${unusable.lsn} at offset ${unusable.offset}: ${unusable.reason}; copied to ${segment.name}.damaged, truncated at offset ${unusable.offset} (it and the records after it are dropped)`,
  ];
  for (const later of segments.slice(unusable.segmentIndex + 1)) {
    actions.push({ kind: 'rename', from: later.name, to: `${later.name}.damaged` });
    notes.push(`${later.name}: moved aside to ${later.name}.damaged (${later.scan.records.length} records dropped)`);
  }
  return { actions, notes, repairable: true };
}

/** Why a snapshot image is unusable, or null when it is whole. */
function snapshotDamage(bytes: Uint8Array): string | null {
  const scan = scanFrames(bytes, 1, recordBytesMax);
  if (scan.ending !== 'clean') return `offset ${scan.problem!.offset}: ${scan.problem!.reason}`;
  if (scan.records[scan.records.length - 1]?.type !== snapshotEndRecordType) return 'it has no end record';
  return null;
}

/** Segments in LSN order, without those the snapshot wholly covers (recovery skips them too). */
function liveSegments(sorted: readonly { name: string; bytes: Uint8Array }[], snapshotLsn: number): Segment[] {
  const all = sorted
    .map((file) => ({ file, match: segmentPattern.exec(file.name) }))
    .filter((entry) => entry.match !== null)
    .map((entry) => ({ file: entry.file, firstLsn: Number(entry.match![1]) }));
  const live: Segment[] = [];
  for (let index = 0; index < all.length; index++) {
    const nextFirstLsn = all[index + 1]?.firstLsn ?? Number.POSITIVE_INFINITY;
    if (nextFirstLsn - 1 <= snapshotLsn) continue;
    const { file, firstLsn } = all[index]!;
    live.push({ name: file.name, firstLsn, scan: scanFrames(file.bytes, firstLsn, recordBytesMax) });
  }
  return live;
}

function cutAt(segments: Segment[], damagedIndex: number): RepairPlan {
  const damaged = segments[damagedIndex]!;
  const problem = damaged.scan.problem;
  assert(problem !== null, 'a damaged segment names its problem');
  assert(problem.offset === damaged.scan.validEnd, 'the damage starts where the valid records end');
  const lastLsn = damaged.scan.records[damaged.scan.records.length - 1]?.lsn ?? 'none';
  const actions: RepairAction[] = [
    { kind: 'copy', from: damaged.name, to: `${damaged.name}.damaged` },
    { kind: 'truncate', file: damaged.name, length: problem.offset },
  ];
  const notes = [`${damaged.name}: copied to ${damaged.name}.damaged, truncated at offset ${problem.offset} (records after lsn ${lastLsn} in it are dropped)`];
  for (const later of segments.slice(damagedIndex + 1)) {
    actions.push({ kind: 'rename', from: later.name, to: `${later.name}.damaged` });
    notes.push(`${later.name}: moved aside to ${later.name}.damaged (${later.scan.records.length} records dropped)`);
  }
  return { actions, notes, repairable: true };
}

/**
 * The stream half of the repair, for "corrupt stream:" (entries that were synced in a stream's
 * active segment are neither readable there nor in the log any more). Each stream's active (last)
 * segment is scanned as recovery scans it; where it does not end cleanly, it is copied aside as
 * `<name>.damaged` and truncated after its last valid entry, its index file (if any) is moved
 * aside too, and a mark (`stream-NAME-OFFSET.cut`) tells recovery that the operator accepts the
 * stream ending there: the entries from that offset on are lost (recovery counts them and logs
 * `stream-cut`), the next append takes the offset again, and positions past it move back to it.
 * An active segment that ends cleanly is left alone (a repair that finds nothing says so).
 */
export function planStreamRepair(files: readonly { name: string; bytes: Uint8Array }[]): RepairPlan {
  const lastSegments = new Map<string, { name: string; baseOffset: number; bytes: Uint8Array }>();
  for (const file of files) {
    const match = streamSegmentPattern.exec(file.name);
    if (match === null) continue;
    const baseOffset = Number(match[2]);
    const previous = lastSegments.get(match[1]!);
    if (previous === undefined || previous.baseOffset < baseOffset) lastSegments.set(match[1]!, { name: file.name, baseOffset, bytes: file.bytes });
  }
  const actions: RepairAction[] = [];
  const notes: string[] = [];
  const names = new Set(files.map((file) => file.name));
  for (const [stream, segment] of [...lastSegments].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    let entries = 0;
    const scan = scanSegment(segment.bytes, 0, segment.baseOffset - 1, () => {
      entries += 1;
      return true;
    });
    if (scan.ending.kind === 'clean') continue;
    const cutOffset = scan.lastOffset + 1;
    assert(cutOffset >= segment.baseOffset, "a cut is at or after its segment's first offset");
    actions.push({ kind: 'copy', from: segment.name, to: `${segment.name}.damaged` }, { kind: 'truncate', file: segment.name, length: scan.end });
    const index = indexFileName(segment.name);
    if (names.has(index)) actions.push({ kind: 'rename', from: index, to: `${index}.damaged` });
    const marker = `the operator cut stream ${stream} at offset ${cutOffset}: the entries from there on were damaged (${segment.name}.damaged keeps the bytes)\n`;
    actions.push({ kind: 'write', file: cutMarkerName(stream, cutOffset), bytes: new TextEncoder().encode(marker) });
    notes.push(
      `${segment.name}: copied to ${segment.name}.damaged, truncated at offset ${scan.end} after ${entries} entries (stream ${stream} ends at offset ${cutOffset}; every entry from there on is lost, counted at the next start)`,
    );
  }
  if (actions.length === 0) notes.push('no stream segment to repair');
  return { actions, notes, repairable: true };
}
