/**
 * Proves `keel inspect` and `--repair` on real files: a healthy directory verifies and reports
 * the rebuilt state's counts; a flipped byte in the middle of a segment is reported with file and
 * offset; repair cuts the log there (keeping a copy), after which inspection is clean and recovery
 * of the readable prefix succeeds. Before that, the plain inspection of the damaged directory
 * previews the repair without changing a byte: the files it keeps, the records and bytes it drops
 * per file, and the last good LSN, which the repair then matches exactly (or that it cannot help
 * with a damaged snapshot). Also that it reports the sessions and wills whose owner (user
 * name) is not stored, because an older version wrote their records: a mix of records with a user
 * name, with null (anonymous) and without the field is counted exactly, and the formatted report
 * names the count only when there is something to say.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { afterEach, describe, expect, it } from 'vitest';
import { formatInspectReport, inspectDataDirectory, repairDataDirectory } from '../../io/inspect.js';
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import { DurableStateStore } from '../../src/store/durable-store.js';
import type { StateRecord } from '../../src/store/state-store.js';

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function writeDataDirectory(records: StateRecord[]): string {
  const disk = new SimulatedDisk(seedrandom('inspect'));
  const store = new DurableStateStore({ syncPolicy: 'always', syncIntervalMs: 10, segmentBytesMax: 4096, snapshotLogBytes: 1 << 30, writeBytesMax: 1024 });
  const pump = (): void => {
    for (let requests = store.drainRequests(); requests.length > 0; requests = store.drainRequests()) {
      for (const request of requests) store.storageCompleted(0, disk.execute(request));
    }
  };
  pump();
  expect(store.recover(0)).toEqual([]);
  for (const record of records) {
    store.append(record);
    store.flush(0);
    pump();
  }
  const directory = mkdtempSync(join(tmpdir(), 'keel-inspect-'));
  directories.push(directory);
  for (const entry of disk.describe().split(',')) {
    const name = entry.split(':')[0]!;
    writeFileSync(join(directory, name), disk.fileBytes(name)!);
  }
  return directory;
}

function sampleRecords(): StateRecord[] {
  const records: StateRecord[] = [{ kind: 'session-created', clientId: 'alpha', protocolVersion: 5, expiryIntervalSeconds: 3600 }];
  records.push({ kind: 'subscription-added', clientId: 'alpha', subscription: { filter: 'a/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: 0 } });
  for (let id = 1; id <= 150; id++) {
    records.push({
      kind: 'message-stored',
      message: { messageId: id, topic: `a/${id}`, payload: new Uint8Array(20).fill(id), qos: 1, retain: true, properties: undefined, createdAtMs: id, expiryAtMs: null },
    });
    records.push({ kind: 'delivery-queued', clientId: 'alpha', sequence: id, messageId: id, qos: 1, retain: false, subscriptionIds: [], packetId: 0, phase: 'queued' });
    if (id % 10 === 0) records.push({ kind: 'retained-set', topic: `a/${id}`, messageId: id });
  }
  return records;
}

describe('keel inspect', () => {
  it('verifies a healthy directory and counts its state', () => {
    const directory = writeDataDirectory(sampleRecords());
    const report = inspectDataDirectory(directory);
    expect(report.problems).toEqual([]);
    expect(report.files.filter((f) => f.kind === 'segment').length).toBeGreaterThan(1);
    expect(report.state).toMatchObject({ sessions: 1, subscriptions: 1, retained: 15, queued: 150, inflight: 0, messages: 150 });
    expect(formatInspectReport(report)).toContain('every checksum verified: ok');
  });

  it('names file and offset of a damaged record, and repair cuts the log there', () => {
    const directory = writeDataDirectory(sampleRecords());
    const segment = readdirSync(directory)
      .filter((n) => n.startsWith('wal-'))
      .sort()[0]!;
    const bytes = readFileSync(join(directory, segment));
    bytes[1000] ^= 0x10;
    writeFileSync(join(directory, segment), bytes);
    const report = inspectDataDirectory(directory);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatch(new RegExp(`^corrupt log: ${segment.replace('.', '\\.')} at offset \\d+: checksum mismatch$`));
    expect(report.state).toBeNull();
    const actions = repairDataDirectory(directory);
    expect(actions[0]).toMatch(/copied to .*\.damaged, truncated at offset \d+/);
    const after = inspectDataDirectory(directory);
    expect(after.problems).toEqual([]);
    expect(after.state!.sessions).toBe(1);
    expect(after.state!.queued).toBeGreaterThan(0);
    expect(after.state!.queued).toBeLessThan(150);
    expect(readdirSync(directory).some((n) => n.endsWith('.damaged'))).toBe(true);
  });
});

/** Every file's name and bytes, to prove that inspection alone changes nothing. */
function snapshotOfFiles(directory: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(directory)
      .sort()
      .map((name) => [name, readFileSync(join(directory, name)).toString('base64')]),
  );
}

describe('keel inspect on a damaged directory previews --repair', () => {
  it('names what the repair keeps and drops per file and the last good LSN, and the repair then does exactly that', () => {
    const directory = writeDataDirectory(sampleRecords());
    const segments = readdirSync(directory)
      .filter((n) => n.startsWith('wal-'))
      .sort();
    expect(segments.length).toBeGreaterThan(2);
    const damaged = segments[1]!;
    const bytes = readFileSync(join(directory, damaged));
    bytes[bytes.length >> 1] ^= 0x10;
    writeFileSync(join(directory, damaged), bytes);
    const before = snapshotOfFiles(directory);

    const report = inspectDataDirectory(directory);
    const preview = report.repairPreview!;
    expect(snapshotOfFiles(directory)).toEqual(before);
    expect(preview.repairable).toBe(true);
    expect(preview.untouched).toEqual([segments[0]]);
    expect(preview.cut).toMatchObject({ file: damaged, offset: report.files[1]!.problem!.offset, bytesDropped: bytes.length - report.files[1]!.problem!.offset });
    expect(preview.cut!.recordsKept).toBeGreaterThan(0);
    expect(preview.movedAside.map((moved) => moved.file)).toEqual(segments.slice(2));
    expect(preview.lastGoodLsn).toBe(preview.cut!.lastLsnKept);
    const nextFirstLsn = Number(/^wal-(\d+)\.log$/.exec(segments[2]!)![1]);
    expect(preview.cut!.lsnDropped).toEqual({ first: preview.lastGoodLsn! + 1, last: nextFirstLsn - 1 });
    const text = formatInspectReport(report);
    expect(text).toContain(`what \`keel inspect ${directory} --repair\` would do (nothing has been changed):`);
    expect(text).toContain(`  keep as they are: ${segments[0]}`);
    expect(text).toContain(
      `  ${damaged}: keep ${preview.cut!.recordsKept} records (lsn ${preview.cut!.firstLsnKept}..${preview.cut!.lastLsnKept}), drop ${preview.cut!.bytesDropped} bytes from offset ${preview.cut!.offset} (lsn ${preview.lastGoodLsn! + 1}..${nextFirstLsn - 1}: the first record recovery cannot use`,
    );
    for (const moved of preview.movedAside) expect(text).toContain(`  ${moved.file}: drop all ${moved.records} records (lsn ${moved.firstLsn}..${moved.lastLsn})`);
    expect(text).toContain(`  the log would end at lsn ${preview.lastGoodLsn}, its last good record`);

    repairDataDirectory(directory);
    const after = inspectDataDirectory(directory);
    expect(after.problems).toEqual([]);
    expect(after.repairPreview).toBeNull();
    const liveSegments = after.files.filter((file) => file.kind === 'segment');
    expect(liveSegments.map((file) => file.name)).toEqual([segments[0], damaged]);
    expect(liveSegments[1]).toMatchObject({ records: preview.cut!.recordsKept, lastLsn: preview.lastGoodLsn });
    for (const moved of preview.movedAside) expect(readdirSync(directory)).toContain(`${moved.file}.damaged`);
    expect(formatInspectReport(after)).not.toContain('--repair` would do');
  });

  it('previews a cut just before a whole record that cannot be applied, and the repair matches it', () => {
    const directory = writeDataDirectory([
      { kind: 'session-created', clientId: 'kept', protocolVersion: 4, expiryIntervalSeconds: 60, username: null },
      { kind: 'will-set', clientId: 'kept', will: { ...will, topic: '' }, username: null },
      { kind: 'session-created', clientId: 'lost', protocolVersion: 4, expiryIntervalSeconds: 60, username: null },
    ]);
    const report = inspectDataDirectory(directory);
    const segment = report.files.find((file) => file.kind === 'segment')!;
    expect(segment.ending).toBe('clean');
    const preview = report.repairPreview!;
    expect(preview.cut).toMatchObject({ file: segment.name, firstLsnKept: segment.firstLsn });
    expect(preview.cut!.recordsKept).toBeGreaterThan(0);
    expect(preview.cut!.recordsKept).toBeLessThan(segment.records);
    expect(preview.cut!.lsnDropped).toEqual({ first: preview.lastGoodLsn! + 1, last: segment.lastLsn });
    expect(formatInspectReport(report)).toContain(`  ${segment.name}: keep ${preview.cut!.recordsKept} records (lsn ${segment.firstLsn}..${preview.lastGoodLsn}), drop `);

    repairDataDirectory(directory);
    const after = inspectDataDirectory(directory);
    expect(after.problems).toEqual([]);
    expect(after.files.find((file) => file.name === segment.name)).toMatchObject({ records: preview.cut!.recordsKept, lastLsn: preview.lastGoodLsn });
  });

  it('says --repair cannot help when the newest snapshot is damaged', () => {
    const directory = writeDataDirectory(sampleRecords());
    writeFileSync(join(directory, 'snapshot-0000000000000005.snap'), Buffer.from('not a snapshot'));
    const report = inspectDataDirectory(directory);
    expect(report.repairPreview).toMatchObject({ repairable: false, cut: null, movedAside: [] });
    const text = formatInspectReport(report);
    expect(text).toMatch(/would do \(nothing has been changed\):\n {2}cannot repair: the newest snapshot snapshot-0000000000000005\.snap is damaged/);
  });
});

const will = { topic: 'w', payload: new Uint8Array([1]), qos: 0 as const, retain: false };

describe('keel inspect and stored owners', () => {
  it('counts the sessions and wills without a stored user name', () => {
    const directory = writeDataDirectory([
      { kind: 'session-created', clientId: 'old', protocolVersion: 4, expiryIntervalSeconds: 60 },
      { kind: 'session-created', clientId: 'alice', protocolVersion: 5, expiryIntervalSeconds: 60, username: 'alice' },
      { kind: 'session-created', clientId: 'anonymous', protocolVersion: 5, expiryIntervalSeconds: 60, username: null },
      { kind: 'session-created', clientId: 'older', protocolVersion: 5, expiryIntervalSeconds: 60, username: 'bob' },
      // An older version resumed it: the owner is unknown again.
      { kind: 'session-resumed', clientId: 'older', protocolVersion: 5, expiryIntervalSeconds: 60 },
      { kind: 'will-set', clientId: 'old', will },
      { kind: 'will-set', clientId: 'alice', will, username: 'alice' },
    ]);
    const report = inspectDataDirectory(directory);
    expect(report.problems).toEqual([]);
    expect(report.state).toMatchObject({ sessions: 4, wills: 2, ownersUnknown: { sessions: 2, wills: 1 } });
    expect(formatInspectReport(report)).toContain('owner unknown (written before user names were stored): sessions=2 wills=1');
  });

  it('says nothing about owners when every one is stored', () => {
    const directory = writeDataDirectory([
      { kind: 'session-created', clientId: 'alice', protocolVersion: 5, expiryIntervalSeconds: 60, username: 'alice' },
      { kind: 'will-set', clientId: 'alice', will, username: null },
    ]);
    const report = inspectDataDirectory(directory);
    expect(report.state).toMatchObject({ ownersUnknown: { sessions: 0, wills: 0 } });
    expect(formatInspectReport(report)).not.toContain('owner unknown');
  });
});

describe('keel inspect and records that cannot be applied', () => {
  it('names the record, and repair cuts the log before it so that recovery comes up', () => {
    const directory = writeDataDirectory([
      { kind: 'session-created', clientId: 'kept', protocolVersion: 4, expiryIntervalSeconds: 60, username: null },
      { kind: 'session-created', clientId: 'victim', protocolVersion: 4, expiryIntervalSeconds: 60, username: null },
      { kind: 'will-set', clientId: 'victim', will: { ...will, topic: '' }, username: null },
      { kind: 'session-created', clientId: 'lost', protocolVersion: 4, expiryIntervalSeconds: 60, username: null },
    ]);
    const report = inspectDataDirectory(directory);
    expect(report.problems).toEqual([expect.stringMatching(/^corrupt log: wal-0000000000000001\.log at offset \d+: record \d+ \(will-set\) cannot be applied: will empty topic name$/)]);
    repairDataDirectory(directory);
    const repaired = inspectDataDirectory(directory);
    expect(repaired.problems).toEqual([]);
    expect(repaired.state).toMatchObject({ sessions: 2, wills: 0 });
  });
});
