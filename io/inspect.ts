/**
 * `keel inspect DIR`: what a data directory holds, with every checksum verified, and
 * `--repair`: the documented way to start again from what is readable after corruption.
 *
 * Inspection is read-only and independent of recovery's choices: it scans every file (older
 * snapshots and covered segments included), reports each file's records, ending and first
 * problem, then rebuilds the state exactly as the broker would (newest snapshot, then the log
 * after it) to count sessions, subscriptions, retained, queued and inflight messages.
 *
 * Repair (planned by src/store/repair.ts, executed here) cuts the log at the first damaged record
 * recovery would read: the damaged segment is copied aside as `<name>.damaged` and truncated at
 * the damage, later segments are moved aside whole. Every record after the damage is lost (the
 * broker then starts from the readable prefix); the copies keep the bytes for forensic work. A
 * damaged snapshot cannot be repaired this way, because the segments it replaced are gone;
 * inspection says so.
 *
 * Before anyone runs it, the plain inspection of a damaged directory previews the repair: the
 * same plan, not executed, told as what it keeps and drops per file and the last good LSN the log
 * would end at, so that the loss is known before it is chosen.
 */
import { copyFileSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assert } from '../src/assert.js';
import { snapshotEndRecordType } from '../src/store/log-recovery.js';
import { groupEndFlag, isSeal } from '../src/store/log-writer.js';
import { replayRecord } from '../src/store/record-check.js';
import { decodeStateRecord } from '../src/store/record-codec.js';
import { type FrameProblem, type FrameRecord, scanFrames } from '../src/store/record-frame.js';
import { planRepair, planStreamRepair, type RepairAction } from '../src/store/repair.js';
import { createDurableState, type DurableState, finishReplay, type StateRecord, type StateRecordKind } from '../src/store/state-store.js';
import { scanSegment } from '../src/store/streams/segment-scan.js';
import { isStreamFile, segmentFilePattern as streamSegmentPattern } from '../src/store/streams/stream-files.js';

const recordBytesMax = 512 * 1024 * 1024;
const segmentPattern = /^wal-(\d{16})\.log$/;
const snapshotPattern = /^snapshot-(\d{16})\.snap$/;

export interface FileReport {
  name: string;
  /** `stream`: a stream's segment (firstLsn/lastLsn are then its first and last entry's offsets) or index. */
  kind: 'segment' | 'snapshot' | 'stream' | 'other';
  bytes: number;
  records: number;
  firstLsn: number | null;
  lastLsn: number | null;
  ending: 'clean' | 'torn' | 'corrupt';
  problem: FrameProblem | null;
}

export interface InspectReport {
  directory: string;
  files: FileReport[];
  snapshotLsn: number;
  recordsByKind: Partial<Record<StateRecordKind, number>>;
  state: {
    sessions: number;
    subscriptions: number;
    retained: number;
    retainedBytes: number;
    queued: number;
    inflight: number;
    messages: number;
    wills: number;
    streams: number;
    ownersUnknown: OwnersUnknown;
  } | null;
  /** Problems that make the broker refuse to start; empty when the directory is healthy. */
  problems: string[];
  /** What `--repair` would do, when there are problems; null for a healthy directory. */
  repairPreview: RepairPreview | null;
}

/** The repair plan told as what it keeps and drops (nothing is changed by making it). */
export interface RepairPreview {
  /** False when the damage cannot be cut away (a damaged newest snapshot); `notes` says why. */
  repairable: boolean;
  /** Files the repair leaves as they are. */
  untouched: string[];
  /** The damaged segment, cut at the damage; null when the repair would change nothing. */
  cut: {
    file: string;
    recordsKept: number;
    firstLsnKept: number | null;
    lastLsnKept: number | null;
    offset: number;
    bytesDropped: number;
    /** The LSNs cut from this file, known when a later segment says where it ended; else null. */
    lsnDropped: { first: number; last: number } | null;
  } | null;
  /** Later segments, moved aside whole with every record in them. */
  movedAside: { file: string; records: number; firstLsn: number | null; lastLsn: number | null }[];
  /** The last record the log would keep (the snapshot's when the cut keeps none of the segment). */
  lastGoodLsn: number | null;
  /** The plan's own words when it does nothing (why it cannot, or that there is nothing to cut). */
  notes: string[];
}

/**
 * Sessions and wills with no stored owner (user name): their records were written by a version
 * that did not store it, so with an ACL file such a session gets nothing until its client connects
 * again, and such a will is withheld when its time comes.
 */
export interface OwnersUnknown {
  sessions: number;
  wills: number;
}

export function inspectDataDirectory(directory: string): InspectReport {
  const names = readdirSync(directory).sort();
  const files = names.map((name) => inspectFile(directory, name));
  const problems: string[] = [];
  const segments = files.filter((f) => f.kind === 'segment');
  const snapshots = files.filter((f) => f.kind === 'snapshot');
  const newest = snapshots[snapshots.length - 1];
  const snapshotLsn = newest ? Number(snapshotPattern.exec(newest.name)![1]) : 0;
  if (newest && newest.ending !== 'clean') problems.push(`corrupt snapshot: ${newest.name} at offset ${newest.problem?.offset}: ${newest.problem?.reason}`);
  segments.forEach((segment, index) => {
    const isLast = index === segments.length - 1;
    if (segment.ending === 'corrupt' || (segment.ending === 'torn' && !isLast)) {
      problems.push(`corrupt log: ${segment.name} at offset ${segment.problem!.offset}: ${segment.problem!.reason}`);
    }
  });
  const report: InspectReport = { directory, files, snapshotLsn, recordsByKind: {}, state: null, problems, repairPreview: null };
  if (problems.length === 0) rebuildState(directory, report, newest?.name ?? null, segments);
  if (problems.length > 0) report.repairPreview = previewRepair(directory, files);
  return report;
}

/** Plans the repair as `--repair` would (src/store/repair.ts) and tells it per file, changing nothing. */
function previewRepair(directory: string, files: FileReport[]): RepairPreview {
  const contents = readDirectoryFiles(directory);
  const plan = planRepair(contents);
  const preview: RepairPreview = { repairable: plan.repairable, untouched: [], cut: null, movedAside: [], lastGoodLsn: null, notes: [] };
  const report = (name: string): FileReport => {
    const file = files.find((candidate) => candidate.name === name);
    assert(file !== undefined, `the repair plan names ${name}, which inspection saw`);
    return file;
  };
  const touched = new Set<string>();
  let lastReadableLsn: number | null = null;
  for (const action of plan.actions) {
    if (action.kind === 'truncate') {
      const cut = previewCut(report(action.file), contents.find((file) => file.name === action.file)!.bytes, action.length);
      preview.cut = cut.preview;
      lastReadableLsn = cut.lastReadableLsn;
      // Segment names carry their first LSN; a cut that keeps none of its records ends the log before it.
      preview.lastGoodLsn = preview.cut.lastLsnKept ?? Number(segmentPattern.exec(action.file)![1]) - 1;
      touched.add(action.file);
    } else if (action.kind === 'rename') {
      const file = report(action.from);
      preview.movedAside.push({ file: file.name, records: file.records, firstLsn: file.firstLsn, lastLsn: file.lastLsn });
      touched.add(file.name);
    }
  }
  assert(plan.actions.length === 0 || preview.cut !== null, 'a repair that acts cuts one segment');
  if (preview.cut !== null) {
    // The next segment starts right after the cut one's last record; without one, the file's last whole record bounds it.
    const next = preview.movedAside[0];
    const last = next === undefined ? lastReadableLsn : Number(segmentPattern.exec(next.file)![1]) - 1;
    if (last !== null && last > preview.lastGoodLsn!) preview.cut.lsnDropped = { first: preview.lastGoodLsn! + 1, last };
  }
  if (plan.actions.length === 0) preview.notes = plan.notes;
  preview.untouched = files.filter((file) => !touched.has(file.name)).map((file) => file.name);
  return preview;
}

/**
 * The cut segment's part of the preview. The cut is at a record boundary: at the damage, or just
 * before a whole record that cannot be applied (which scans fine, so it counts among the records
 * read, and the kept ones are those before the cut).
 */
function previewCut(file: FileReport, bytes: Uint8Array, length: number): { preview: NonNullable<RepairPreview['cut']>; lastReadableLsn: number | null } {
  const scan = scanFrames(bytes, Number(segmentPattern.exec(file.name)![1]), recordBytesMax);
  const kept = scan.records.filter((record) => record.offset < length);
  const after = scan.records.filter((record) => record.offset >= length);
  assert(kept.length + after.length === file.records, 'a rescan reads the records inspection read');
  const preview = {
    file: file.name,
    recordsKept: kept.length,
    firstLsnKept: kept[0]?.lsn ?? null,
    lastLsnKept: kept[kept.length - 1]?.lsn ?? null,
    offset: length,
    bytesDropped: file.bytes - length,
    lsnDropped: null,
  };
  // Whole records after the cut, in a file with no damage, show how far the dropped LSNs go.
  return { preview, lastReadableLsn: scan.ending === 'clean' ? (after[after.length - 1]?.lsn ?? null) : null };
}

function readDirectoryFiles(directory: string): { name: string; bytes: Uint8Array }[] {
  return readdirSync(directory)
    .filter((name) => statSync(join(directory, name)).isFile())
    .map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(directory, name))) }));
}

function inspectFile(directory: string, name: string): FileReport {
  const bytes = statSync(join(directory, name)).size;
  if (isStreamFile(name)) return inspectStreamFile(directory, name, bytes);
  const segmentMatch = segmentPattern.exec(name);
  const kind = segmentMatch ? 'segment' : snapshotPattern.test(name) ? 'snapshot' : 'other';
  if (kind === 'other') return { name, kind, bytes, records: 0, firstLsn: null, lastLsn: null, ending: 'clean', problem: null };
  const scan = scanFrames(readFileSync(join(directory, name)), segmentMatch ? Number(segmentMatch[1]) : 1, recordBytesMax);
  let ending = scan.ending;
  let problem = scan.problem;
  if (kind === 'snapshot' && ending === 'clean' && scan.records[scan.records.length - 1]?.type !== snapshotEndRecordType) {
    ending = 'corrupt';
    problem = { offset: scan.validEnd, reason: 'snapshot has no end record' };
  }
  const first = scan.records[0];
  const last = scan.records[scan.records.length - 1];
  return { name, kind, bytes, records: scan.records.length, firstLsn: first?.lsn ?? null, lastLsn: last?.lsn ?? null, ending, problem };
}

/**
 * A stream's file: a segment is scanned like recovery scans one (entries, and where damage or a
 * torn tail starts); an index or a compaction's leftover is listed by size. What is found here is
 * shown, not counted among the problems: readers skip damage in sealed segments, and recovery
 * writes back what the log still has. Damage to synced entries of an active segment does stop the
 * start ("corrupt stream:"); `--repair` cuts it (repair.ts, planStreamRepair), but this preview
 * does not tell it per file.
 */
function inspectStreamFile(directory: string, name: string, bytes: number): FileReport {
  const report: FileReport = { name, kind: 'stream', bytes, records: 0, firstLsn: null, lastLsn: null, ending: 'clean', problem: null };
  const match = streamSegmentPattern.exec(name);
  if (match === null) return report;
  const content = readFileSync(join(directory, name));
  const scan = scanSegment(content, 0, Number(match[2]) - 1, (frame) => {
    report.records += 1;
    report.firstLsn ??= frame.offset;
    report.lastLsn = frame.offset;
    return true;
  });
  if (scan.ending.kind === 'clean') return report;
  const damaged = scan.ending.kind === 'damaged';
  report.ending = damaged && scan.ending.resume !== null ? 'corrupt' : 'torn';
  report.problem = { offset: scan.ending.position, reason: damaged ? scan.ending.reason : 'a frame runs past the end of the file' };
  return report;
}

function rebuildState(directory: string, report: InspectReport, snapshotName: string | null, segments: FileReport[]): void {
  const state = createDurableState();
  // A record that reads back whole but cannot be applied stops recovery the way damage does
  // (src/store/record-check.ts), and is reported the same way, with its file and offset.
  const apply = (type: number, frame: FrameRecord, file: string, snapshot: boolean): void => {
    const where = `corrupt ${snapshot ? 'snapshot' : 'log'}: ${file} at offset ${frame.offset}: record ${frame.lsn}`;
    let record: StateRecord;
    try {
      record = decodeStateRecord(type, frame.body);
    } catch (error) {
      throw new Error(`${where} cannot be decoded: ${(error as Error).message}`);
    }
    report.recordsByKind[record.kind] = (report.recordsByKind[record.kind] ?? 0) + 1;
    const problem = replayRecord(state, record);
    if (problem !== null) throw new Error(`${where} (${record.kind}) cannot be applied: ${problem}`);
  };
  try {
    if (snapshotName !== null) {
      for (const record of scanFrames(readFileSync(join(directory, snapshotName)), 1, recordBytesMax).records) {
        if (record.type !== snapshotEndRecordType) apply(record.type, record, snapshotName, true);
      }
    }
    // The records of one broker input count only whole: the last carries the group flag, and a
    // trailing group without it is what recovery cuts off (durable-store.ts).
    let group: { record: FrameRecord; file: string }[] = [];
    for (const segment of segments) {
      const firstLsn = Number(segmentPattern.exec(segment.name)![1]);
      for (const record of scanFrames(readFileSync(join(directory, segment.name)), firstLsn, recordBytesMax).records) {
        if (record.lsn <= report.snapshotLsn) continue;
        group.push({ record, file: segment.name });
        if ((record.type & groupEndFlag) === 0) continue;
        // A seal (log-writer.ts) holds no state; it only follows the records before it.
        for (const member of group) if (!isSeal(member.record.type)) apply(member.record.type & ~groupEndFlag, member.record, member.file, false);
        group = [];
      }
    }
  } catch (error) {
    report.problems.push((error as Error).message);
    return;
  }
  finishReplay(state);
  let subscriptions = 0;
  let queued = 0;
  let inflight = 0;
  for (const session of state.sessions.values()) {
    subscriptions += session.subscriptions.size;
    queued += session.queue.length;
    inflight += session.inflight.size;
  }
  report.state = {
    sessions: state.sessions.size,
    subscriptions,
    retained: state.retained.size,
    retainedBytes: state.retainedBytes,
    queued,
    inflight,
    messages: state.messages.size,
    wills: state.wills.size,
    streams: state.streams.size,
    ownersUnknown: ownersUnknown(state),
  };
}

function ownersUnknown(state: DurableState): OwnersUnknown {
  let sessions = 0;
  for (const session of state.sessions.values()) if (session.username === undefined) sessions += 1;
  let wills = 0;
  for (const clientId of state.wills.keys()) if (!state.willUsernames!.has(clientId)) wills += 1;
  return { sessions, wills };
}

export function formatInspectReport(report: InspectReport): string {
  const lines = [`data directory ${report.directory}`];
  for (const file of report.files) {
    const range = file.firstLsn === null ? '' : ` ${file.kind === 'stream' ? 'offsets' : 'lsn'} ${file.firstLsn}..${file.lastLsn}`;
    const problem = file.problem ? ` ${file.ending} at offset ${file.problem.offset}: ${file.problem.reason}` : ` ${file.ending}`;
    lines.push(`  ${file.name}  ${file.kind}  ${file.bytes} bytes  ${file.records} records${range}${file.kind === 'other' ? '' : problem}`);
  }
  if (report.snapshotLsn > 0) lines.push(`newest snapshot covers lsn 1..${report.snapshotLsn}`);
  if (report.state !== null) {
    const s = report.state;
    lines.push(
      `state: ${s.sessions} sessions, ${s.subscriptions} subscriptions, ${s.retained} retained (${s.retainedBytes} bytes), ${s.queued} queued, ${s.inflight} inflight, ${s.messages} stored messages, ${s.wills} wills, ${s.streams} streams`,
    );
    if (s.ownersUnknown.sessions + s.ownersUnknown.wills > 0) {
      const { sessions, wills } = s.ownersUnknown;
      lines.push(`owner unknown (written before user names were stored): sessions=${sessions} wills=${wills}; with an ACL file`);
      lines.push('  these sessions get nothing until their clients reconnect, and these wills are withheld');
    }
    const kinds = Object.entries(report.recordsByKind).map(([kind, count]) => `${kind}=${count}`);
    lines.push(`records replayed: ${kinds.join(' ') || 'none'}`);
  }
  if (report.problems.length === 0) lines.push('every checksum verified: ok');
  for (const problem of report.problems) lines.push(`PROBLEM: ${problem}`);
  if (report.repairPreview !== null) lines.push(...formatRepairPreview(report.directory, report.repairPreview));
  return lines.join('\n');
}

function lsnRange(first: number | null, last: number | null): string {
  return first === null ? 'no records' : `lsn ${first}..${last}`;
}

/** The dry-run section: what `--repair` would keep and drop, in the order it would act. */
function formatRepairPreview(directory: string, preview: RepairPreview): string[] {
  const lines = [`what \`keel inspect ${directory} --repair\` would do (nothing has been changed):`];
  if (preview.cut === null) {
    // A repairable plan that does nothing found no damaged record in the log to cut.
    if (preview.repairable) lines.push('  nothing: the log has no damaged record for it to cut');
    else lines.push(...preview.notes.map((note) => `  ${note}`));
    return lines;
  }
  const cut = preview.cut;
  if (preview.untouched.length > 0) lines.push(`  keep as they are: ${preview.untouched.join(', ')}`);
  const droppedLsns = cut.lsnDropped === null ? '' : `lsn ${cut.lsnDropped.first}..${cut.lsnDropped.last}: `;
  lines.push(
    `  ${cut.file}: keep ${cut.recordsKept} records (${lsnRange(cut.firstLsnKept, cut.lastLsnKept)}), drop ${cut.bytesDropped} bytes from offset ${cut.offset} ` +
      `(${droppedLsns}the first record recovery cannot use and everything after it in this file); a copy of the whole file is kept as ${cut.file}.damaged`,
  );
  for (const moved of preview.movedAside) {
    lines.push(`  ${moved.file}: drop all ${moved.records} records (${lsnRange(moved.firstLsn, moved.lastLsn)}); the file is moved aside as ${moved.file}.damaged`);
  }
  lines.push(`  the log would end at lsn ${preview.lastGoodLsn}, its last good record; everything after it would be lost`);
  return lines;
}

/**
 * Cuts the log at its first damaged record; returns what was done, one line per action. The plan
 * is the pure `planRepair` (shared with the simulator, which runs the same repair on its disk);
 * this executes it with the file system.
 */
export function repairDataDirectory(directory: string): string[] {
  const plan = planRepair(readDirectoryFiles(directory));
  for (const action of plan.actions) applyRepairAction(directory, action);
  // Then the streams' active segments ("corrupt stream:"); the log's repair left their files alone.
  const streamPlan = planStreamRepair(readDirectoryFiles(directory));
  for (const action of streamPlan.actions) applyRepairAction(directory, action);
  return [...plan.notes, ...streamPlan.notes];
}

function applyRepairAction(directory: string, action: RepairAction): void {
  if (action.kind === 'copy') copyFileSync(join(directory, action.from), join(directory, action.to));
  else if (action.kind === 'truncate') truncateSync(join(directory, action.file), action.length);
  else if (action.kind === 'write') writeFileSync(join(directory, action.file), action.bytes);
  else renameSync(join(directory, action.from), join(directory, action.to));
}
