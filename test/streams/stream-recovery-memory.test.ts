/**
 * Proves that stream recovery holds in memory only the entries the files may lack, not every entry
 * appended since the last snapshot: after a restart on a log of thousands of stream entries (no
 * snapshot, so the log holds them all) the store reports holding at most what was unsynced when it
 * stopped (`stats.recoveryHeldBytesPeak`), and every entry still reads back exactly. Also after a
 * crash that loses the segment's unsynced writes (those entries are held and written back), after
 * retention trimmed the stream (entries below a trim are never held), and after a repair's cut of
 * the log left the files without entries they had (held from the log and restored).
 */
import { describe, expect, it } from 'vitest';
import { SimulatedDisk } from '../../sim/simulated-disk.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { entryFrameBytes } from '../../src/store/streams/stream-entry.js';
import { entryMemoryBytes } from '../../src/store/streams/stream-files.js';
import { decodeText, newDisk, rigOptions, StoreRig, text } from './store-rig.js';

const events = { name: 'events', filter: 'events/#', retentionMs: 0, retentionBytes: 0, lastValue: false };
const count = 3_000;

function appended(rig: StoreRig, index: number): StateRecord {
  const offset = rig.state.streams.get('events')!.nextOffset;
  return { kind: 'stream-appended', timeMs: 1_000 + index, topic: `events/${index % 7}`, qos: 1, payload: text(`event ${index} ${'e'.repeat(50)}`), entries: [{ stream: 'events', offset }] };
}

function filled(messages: number, disk: SimulatedDisk = newDisk(11)): StoreRig {
  const rig = new StoreRig(disk);
  expect(rig.open()).toBe(true);
  rig.commit({ kind: 'stream-created', stream: events });
  for (let index = 0; index < messages; index++) {
    rig.commit(appended(rig, index));
    if (index % 10 === 9) rig.run();
  }
  rig.run();
  return rig;
}

function payloads(rig: StoreRig, from = 0): string[] {
  return rig.readAll('events', from).map((entry) => decodeText(entry.payload));
}

const expected = (from: number, to: number): string[] => [...Array(to - from).keys()].map((index) => `event ${from + index} ${'e'.repeat(50)}`);

describe('stream recovery memory', () => {
  it('holds none of the entries its files hold, however many the log replays', () => {
    const rig = filled(count);
    const frameBytes = rig.store.streams.stats.bytesWritten;
    expect(frameBytes).toBeGreaterThan(count * 60);
    const again = new StoreRig(rig.disk);
    expect(again.open()).toBe(true);
    // The log replayed every entry (no snapshot); the files held all those that were synced.
    expect(again.store.recoveryOutcome).not.toBeNull();
    expect(again.state.streams.get('events')!.nextOffset).toBe(count);
    expect(again.store.streams.stats.recoveryHeldBytesPeak).toBe(0);
    expect(payloads(again)).toEqual(expected(0, count));
  });

  it('holds the entries a crash took from the files, and writes them back', () => {
    // A disk that loses every unsynced write in a crash (its draws all say "drop").
    const rig = filled(count, new SimulatedDisk(() => 0.1));
    // Entries written but not yet synced (under unsyncedBytesMax), then a power loss.
    const files = rig.store.streams.filesFor('events')!;
    let total = count;
    while (files.syncedOffset === files.writtenOffset && total < count + 100) {
      rig.commit(appended(rig, total++));
      rig.run();
    }
    const unsynced = files.writtenOffset - files.syncedOffset;
    expect(unsynced).toBeGreaterThan(0);
    rig.disk.crash();
    const again = new StoreRig(rig.disk);
    expect(again.open()).toBe(true);
    // Exactly the entries the crash took from the segment, each at what it costs in memory.
    const frame = entryFrameBytes({ offset: count, timeMs: 1_000 + count, topic: `events/${count % 7}`, qos: 1, properties: undefined, payload: text(`event ${count} ${'e'.repeat(50)}`) });
    expect(again.store.streams.stats.recoveryHeldBytesPeak).toBe(unsynced * entryMemoryBytes(frame));
    expect(unsynced * frame).toBeLessThanOrEqual(rigOptions.streams!.unsyncedBytesMax!);
    again.run();
    expect(payloads(again)).toEqual(expected(0, total));
    // Written back: a further restart finds them in the files and holds nothing.
    const third = new StoreRig(again.disk);
    expect(third.open()).toBe(true);
    expect(third.store.streams.stats.recoveryHeldBytesPeak).toBe(0);
    expect(payloads(third)).toEqual(expected(0, total));
  });

  it('holds none of the entries below a trim whose segments retention deleted', () => {
    const rig = filled(count);
    const segments = rig.store.streams.segments('events');
    expect(segments.length).toBeGreaterThan(4);
    const firstOffset = segments[3]!.baseOffset;
    rig.commit({ kind: 'stream-trimmed', stream: 'events', firstOffset });
    rig.run();
    expect(rig.store.streams.segments('events')[0]!.baseOffset).toBe(firstOffset);
    const again = new StoreRig(rig.disk);
    expect(again.open()).toBe(true);
    expect(again.state.streams.get('events')!.firstOffset).toBe(firstOffset);
    expect(again.store.streams.stats.recoveryHeldBytesPeak).toBe(0);
    expect(again.store.streams.takeRecoveryTrims()).toEqual([]);
    expect(payloads(again, firstOffset)).toEqual(expected(firstOffset, count));
  });

  it('starts a stream where its files start when the log lost the trim that deleted the segments below', () => {
    const rig = filled(count);
    const segments = rig.store.streams.segments('events');
    const filesStart = segments[2]!.baseOffset;
    // Retention's deletion without its trim record: what a repair that cut the trim off the log leaves.
    for (const file of rig.disk.listFiles().map((listed) => listed.name)) {
      if (file.startsWith('stream-events-') && Number(file.slice('stream-events-'.length, -4)) < filesStart) rig.disk.execute({ op: 'delete', requestId: 0, file });
    }
    rig.disk.execute({ op: 'sync-directory', requestId: 0 });
    const again = new StoreRig(rig.disk);
    expect(again.open()).toBe(true);
    expect(again.store.streams.stats.recoveryHeldBytesPeak).toBe(0);
    expect(again.store.streams.takeRecoveryTrims()).toEqual([{ stream: 'events', firstOffset: filesStart }]);
    expect(again.store.streams.takeNotes().map((note) => note.event)).toContain('stream-trim-restored');
    expect(payloads(again, filesStart)).toEqual(expected(filesStart, count));
  });
});
