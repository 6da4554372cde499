/**
 * Proves the stream log inside the durable store, without a broker, on the simulated disk:
 * appended entries reach the segment files only once their log record is durable, in offset
 * order per stream, across segment rotations with indexes written at sealing; a crash at every
 * step of a small history recovers every released entry exactly (and nothing the log lost); a
 * torn segment tail is cut and written back from the log; a log cut below a stream's files cuts
 * the files; a snapshot carries the unsynced entries; trims and deletions remove files only once
 * durable, and recovery finishes what a crash interrupted.
 */
import { describe, expect, it } from 'vitest';
import type { StateRecord } from '../../src/store/state-store.js';
import { decodeText, newDisk, rigOptions, StoreRig, text } from './store-rig.js';

const sensors = { name: 'sensors', filter: 'sensors/#', retentionMs: 0, retentionBytes: 0, lastValue: false };
const all = { name: 'all', filter: '#', retentionMs: 0, retentionBytes: 0, lastValue: false };

/** Message `index` of the history: on sensors/<n>, in `all` always and in `sensors` every other time. */
function message(rig: StoreRig, index: number): StateRecord {
  const entries = [{ stream: 'all', offset: rig.state.streams.get('all')!.nextOffset }];
  if (index % 2 === 0) entries.push({ stream: 'sensors', offset: rig.state.streams.get('sensors')!.nextOffset });
  const payload = text(`payload ${index} ${'x'.repeat(index % 97)}`);
  return { kind: 'stream-appended', timeMs: 1_000 + index, topic: `sensors/${index % 5}`, qos: 1, payload, entries };
}

/** What `all` and `sensors` must hold after `count` messages: payload texts by offset. */
function expected(count: number): { all: string[]; sensors: string[] } {
  const result = { all: [] as string[], sensors: [] as string[] };
  for (let index = 0; index < count; index++) {
    const payload = `payload ${index} ${'x'.repeat(index % 97)}`;
    result.all.push(payload);
    if (index % 2 === 0) result.sensors.push(payload);
  }
  return result;
}

function started(seed = 1, options = rigOptions): StoreRig {
  const rig = new StoreRig(newDisk(seed), options);
  expect(rig.open()).toBe(true);
  rig.commit({ kind: 'stream-created', stream: sensors });
  rig.commit({ kind: 'stream-created', stream: all });
  rig.run();
  return rig;
}

/** A rig whose streams gather `writeBytesMin` released bytes per write (the others write every release). */
function gathering(writeBytesMin: number, backlogBytesMax = 64 * 1024 * 1024): StoreRig {
  return started(1, { ...rigOptions, streams: { ...rigOptions.streams, unsyncedBytesMax: 4096, writeBytesMin, backlogBytesMax } });
}

/** Counts the segment writes the rig's disk executes. */
function countSegmentWrites(rig: StoreRig): { count: number } {
  const counter = { count: 0 };
  const execute = rig.disk.execute.bind(rig.disk);
  rig.disk.execute = (request) => {
    if (request.op === 'write' && request.file.endsWith('.seg')) counter.count += 1;
    return execute(request);
  };
  return counter;
}

function streamFiles(rig: StoreRig): string[] {
  return rig.disk
    .listFiles()
    .map((file) => file.name)
    .filter((name) => name.startsWith('stream-'));
}

describe('stream log', () => {
  it('writes released entries in order across segments, and reads them back from memory and files', () => {
    const rig = started();
    for (let index = 0; index < 120; index++) {
      rig.commit(message(rig, index));
      // Several messages per input, as group commit sees them.
      if (index % 3 === 2) rig.run();
    }
    rig.run();
    const want = expected(120);
    expect(rig.readAll('all').map((entry) => decodeText(entry.payload))).toEqual(want.all);
    expect(rig.readAll('sensors').map((entry) => decodeText(entry.payload))).toEqual(want.sensors);
    expect(rig.readAll('all', 77).map((entry) => entry.offset)).toEqual([...Array(43).keys()].map((index) => index + 77));
    const files = streamFiles(rig);
    expect(files.filter((name) => name.startsWith('stream-all-') && name.endsWith('.seg')).length).toBeGreaterThan(2);
    // Every sealed segment has its index; the active one has none yet.
    const segments = files.filter((name) => name.startsWith('stream-all-') && name.endsWith('.seg'));
    for (const segment of segments.slice(0, -1)) expect(files).toContain(`${segment.slice(0, -4)}.idx`);
    expect(files).not.toContain(`${segments.at(-1)!.slice(0, -4)}.idx`);
    expect(rig.store.streams.stats.entriesWritten).toBe(180);
  });

  it('holds an entry back from readers and files until its record is durable', () => {
    const rig = started();
    rig.commit(message(rig, 0));
    rig.store.flush(0);
    rig.store.streams.release(rig.store.durableLsn);
    expect(rig.store.streams.releasedOffset('all')).toBe(0);
    expect(rig.store.streams.readMemory('all', 0, 1024, [])).toBe(0);
    expect(streamFiles(rig)).toEqual([]);
    rig.run();
    expect(rig.store.streams.releasedOffset('all')).toBe(1);
    expect(streamFiles(rig)).toEqual(['stream-all-0000000000000000.seg', 'stream-sensors-0000000000000000.seg']);
  });

  it('recovers every released entry exactly after a crash at any step', () => {
    const messages = 40;
    let steps = 0;
    for (let budget = 0; ; budget += 3) {
      const rig = new StoreRig(newDisk(budget + 7));
      let released = { all: 0, sensors: 0 };
      let finished = false;
      let crashed = !rig.open(budget);
      if (!crashed) {
        crashed = !rig.run(budget);
        if (!crashed) rig.commit({ kind: 'stream-created', stream: sensors });
        if (!crashed) rig.commit({ kind: 'stream-created', stream: all });
        for (let index = 0; index < messages && !crashed; index++) {
          rig.commit(message(rig, index));
          crashed = !rig.run(budget);
          if (rig.state.streams.has('all') && rig.store.streams.ready) released = { all: rig.store.streams.releasedOffset('all'), sensors: rig.store.streams.releasedOffset('sensors') };
        }
        finished = !crashed;
      }
      rig.disk.crash();
      const again = new StoreRig(rig.disk);
      expect(again.open(), `recovery after budget ${budget}: ${again.store.failure}`).toBe(true);
      const allStream = again.state.streams.get('all');
      const recovered = { all: allStream?.nextOffset ?? 0, sensors: again.state.streams.get('sensors')?.nextOffset ?? 0 };
      expect(recovered.all).toBeGreaterThanOrEqual(released.all);
      expect(recovered.sensors).toBeGreaterThanOrEqual(released.sensors);
      if (allStream !== undefined) {
        const want = expected(recovered.all);
        expect(again.readAll('all').map((entry) => decodeText(entry.payload))).toEqual(want.all);
        expect(again.readAll('sensors').map((entry) => decodeText(entry.payload))).toEqual(want.sensors.slice(0, recovered.sensors));
      }
      steps += 1;
      if (finished) break;
    }
    expect(steps).toBeGreaterThan(20);
  });

  it('cuts a torn segment tail and writes the entries back from the log', () => {
    const rig = started();
    for (let index = 0; index < 10; index++) rig.commit(message(rig, index));
    rig.run();
    const active = streamFiles(rig).find((name) => name.startsWith('stream-all-'))!;
    const size = rig.disk.fileBytes(active)!.length;
    // The last frame's body gets a flipped byte: it no longer checks, and nothing valid follows.
    rig.disk.corrupt(active, size - 2, rig.disk.fileBytes(active)![size - 2]! ^ 0xff);
    const again = new StoreRig(rig.disk);
    expect(again.open()).toBe(true);
    const notes = again.store.streams.takeNotes().map((note) => note.event);
    expect(notes).toContain('stream-tail-truncated');
    expect(notes).toContain('stream-entries-restored');
    expect(again.readAll('all').map((entry) => decodeText(entry.payload))).toEqual(expected(10).all);
    again.run();
    // Written back: a third start finds the files whole.
    const third = new StoreRig(again.disk);
    expect(third.open()).toBe(true);
    expect(third.store.streams.takeNotes().map((note) => note.event)).not.toContain('stream-entries-restored');
    expect(third.readAll('all').map((entry) => decodeText(entry.payload))).toEqual(expected(10).all);
  });

  it('cuts the files back to where a repaired log ends', () => {
    const options = { ...rigOptions, segmentBytesMax: 4096 };
    const rig = new StoreRig(newDisk(3), options);
    expect(rig.open()).toBe(true);
    rig.commit({ kind: 'stream-created', stream: sensors });
    rig.commit({ kind: 'stream-created', stream: all });
    rig.run();
    // Enough appends for more than three log segments of 4 KiB (binary stream-appended records are about 70 bytes here).
    for (let index = 0; index < 160; index++) {
      rig.commit(message(rig, index));
      rig.run();
    }
    // The operator's repair moved the newest log segments aside: the log now ends earlier.
    const logSegments = rig.disk
      .listFiles()
      .map((file) => file.name)
      .filter((name) => name.startsWith('wal-'));
    expect(logSegments.length).toBeGreaterThan(3);
    for (const name of logSegments.slice(-2)) rig.disk.execute({ op: 'rename', requestId: 0, from: name, to: `${name}.aside` });
    rig.disk.execute({ op: 'sync-directory', requestId: 0 });
    const again = new StoreRig(rig.disk, options);
    expect(again.open(), String(again.store.failure)).toBe(true);
    const kept = again.state.streams.get('all')!.nextOffset;
    expect(kept).toBeLessThan(160);
    expect(again.store.streams.takeNotes().map((note) => note.event)).toContain('stream-files-cut');
    expect(again.readAll('all').map((entry) => decodeText(entry.payload))).toEqual(expected(kept).all);
    // New appends take the offsets after the cut.
    again.commit(message(again, 1000));
    again.run();
    expect(again.readAll('all', kept).map((entry) => entry.offset)).toEqual([kept]);
  });

  it('carries the unsynced entries in a snapshot, whose log segments are then deleted', () => {
    const options = { ...rigOptions, snapshotLogBytes: 4096, streams: { ...rigOptions.streams, unsyncedBytesMax: 1 << 20, segmentBytesMax: 1 << 20 } };
    const rig = new StoreRig(newDisk(5), options, true);
    expect(rig.open()).toBe(true);
    rig.commit({ kind: 'stream-created', stream: sensors });
    rig.commit({ kind: 'stream-created', stream: all });
    for (let index = 0; index < 80; index++) {
      rig.commit(message(rig, index));
      rig.run();
    }
    expect(rig.store.stats.snapshotsWritten).toBeGreaterThan(0);
    // Never synced (the threshold is never reached): the snapshot and the log hold the entries.
    expect(rig.store.streams.filesFor('all')!.syncedOffset).toBe(0);
    rig.disk.crash();
    const again = new StoreRig(rig.disk, options);
    expect(again.open(), String(again.store.failure)).toBe(true);
    expect(again.readAll('all').map((entry) => decodeText(entry.payload))).toEqual(expected(80).all);
  });

  it('deletes trimmed segments once the trim is durable, and recovery finishes a trim a crash cut short', () => {
    const rig = started();
    for (let index = 0; index < 250; index++) rig.commit(message(rig, index));
    rig.run();
    const summaries = rig.store.streams.segments('all');
    expect(summaries.length).toBeGreaterThan(4);
    const firstOffset = summaries[2]!.baseOffset;
    rig.commit({ kind: 'stream-trimmed', stream: 'all', firstOffset });
    rig.run();
    expect(rig.store.streams.segments('all')[0]!.baseOffset).toBe(firstOffset);
    // Each sealed segment with its index, and the active one.
    expect(streamFiles(rig).filter((name) => name.startsWith('stream-all-')).length).toBe(2 * (summaries.length - 2) - 1);
    expect(rig.readAll('all', firstOffset).map((entry) => entry.offset)[0]).toBe(firstOffset);
    // A trim whose deletions never ran: the restarted store deletes the segments itself.
    const later = rig.store.streams.segments('all')[1]!.baseOffset;
    rig.commit({ kind: 'stream-trimmed', stream: 'all', firstOffset: later });
    rig.store.flush(0);
    rig.run(rig.executed + 2);
    const again = new StoreRig(rig.disk);
    expect(again.open()).toBe(true);
    expect(again.store.streams.segments('all')[0]!.baseOffset).toBe(later);
    expect(again.readAll('all', later).map((entry) => decodeText(entry.payload))).toEqual(expected(250).all.slice(later));
  });

  it('deletes a deleted stream’s files, and recovery removes files of a stream the log deleted', () => {
    const rig = started();
    for (let index = 0; index < 30; index++) rig.commit(message(rig, index));
    rig.run();
    rig.commit({ kind: 'stream-deleted', stream: 'sensors' });
    expect(rig.store.streams.isDeleting('sensors')).toBe(true);
    rig.run();
    expect(rig.store.streams.isDeleting('sensors')).toBe(false);
    expect(streamFiles(rig).some((name) => name.startsWith('stream-sensors-'))).toBe(false);
    rig.commit({ kind: 'stream-deleted', stream: 'all' });
    rig.store.flush(0);
    // The record is durable (its sync ran), the deletions are not.
    rig.run(rig.executed + 2);
    const again = new StoreRig(rig.disk);
    expect(again.open()).toBe(true);
    expect(again.store.streams.takeNotes().map((note) => note.event)).toContain('stream-files-removed');
    expect(again.state.streams.size).toBe(0);
    expect(streamFiles(again)).toEqual([]);
  });

  it('gathers released entries until streamWriteBytesMin before writing them, and reads them from memory meanwhile', () => {
    const writeBytesMin = 1_000;
    const rig = gathering(writeBytesMin);
    const writes = countSegmentWrites(rig);
    const files = rig.store.streams.filesFor('all')!;
    let gathered = false;
    for (let index = 0; index < 200; index++) {
      rig.commit(message(rig, index));
      rig.run();
      // Every release is seen by the writer, which writes only once enough waits.
      expect(files.releasedOffset).toBe(index + 1);
      expect(files.unwrittenBytes).toBeLessThan(writeBytesMin);
      if (files.writtenOffset < files.releasedOffset) gathered = true;
      expect(rig.readAll('all', Math.max(0, index - 5)).map((entry) => decodeText(entry.payload))).toEqual(expected(index + 1).all.slice(Math.max(0, index - 5)));
    }
    expect(gathered).toBe(true);
    // 300 releases (200 of all, 100 of sensors), about 12 KiB of frames: a write per KiB or so, not per release.
    expect(writes.count).toBeGreaterThan(5);
    expect(writes.count).toBeLessThan(30);
    expect(rig.readAll('all').map((entry) => decodeText(entry.payload))).toEqual(expected(200).all);
    expect(rig.readAll('sensors').map((entry) => decodeText(entry.payload))).toEqual(expected(200).sensors);
  });

  it('recovers the entries a stream had gathered and not written, and writes them back at once', () => {
    const rig = gathering(100_000);
    for (let index = 0; index < 40; index++) {
      rig.commit(message(rig, index));
      rig.run();
    }
    expect(rig.store.streams.stats.entriesWritten).toBe(0);
    const again = new StoreRig(rig.disk, { ...rigOptions, streams: { ...rigOptions.streams, unsyncedBytesMax: 4096, writeBytesMin: 100_000 } });
    expect(again.open()).toBe(true);
    expect(again.store.streams.stats.recoveryHeldBytesPeak).toBeGreaterThan(0);
    // Written back although far below streamWriteBytesMin: recovery does not leave them waiting.
    expect(again.store.streams.stats.entriesWritten).toBe(60);
    expect(again.readAll('all').map((entry) => decodeText(entry.payload))).toEqual(expected(40).all);
    expect(again.readAll('sensors').map((entry) => decodeText(entry.payload))).toEqual(expected(40).sensors);
  });

  it('writes every release at once under the backlog bound’s pressure', () => {
    // A backlog bound so small that any entry in memory is pressure.
    const rig = gathering(100_000, 256);
    for (let index = 0; index < 20; index++) {
      rig.commit(message(rig, index));
      rig.run();
      const files = rig.store.streams.filesFor('all')!;
      expect(files.writtenOffset).toBe(files.releasedOffset);
    }
    expect(rig.store.streams.stats.entriesWritten).toBe(30);
  });
});
