/**
 * Proves the repair of a stream whose active segment lost synced entries to a flipped bit
 * (issue 15; simulator seed 1232): recovery refuses to start ("corrupt stream:") and leaves the
 * damaged bytes where they are; the repair plan copies the segment aside, cuts it after its last
 * valid entry and leaves a mark; the next start ends the stream there, counts the entries lost,
 * moves positions past the cut back to it, and hands the cut to the broker to commit; the next
 * append takes the first lost offset again, the mark goes once the cut is durable, and a later
 * start replays the cut and the new entries without complaint. `keel inspect --repair` does the
 * same to a data directory on the real file system.
 *
 * The store runs on the simulated disk with small segments, an early segment sync and frequent
 * snapshots, so that the damaged entries are in the segment only (the log records that held
 * them were deleted with the segments a snapshot covered).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repairDataDirectory } from '../../io/inspect.js';
import type { SimulatedDisk } from '../../sim/simulated-disk.js';
import { planStreamRepair, type RepairAction } from '../../src/store/repair.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { scanSegment } from '../../src/store/streams/segment-scan.js';
import { decodeText, newDisk, rigOptions, StoreRig, text } from './store-rig.js';

const all = { name: 'all', filter: '#', retentionMs: 0, retentionBytes: 0, lastValue: false };
const options = { ...rigOptions, snapshotLogBytes: 2048 };

function message(rig: StoreRig, index: number): StateRecord {
  const payload = text(`payload ${index} ${'x'.repeat(40)}`);
  return { kind: 'stream-appended', timeMs: 1_000 + index, topic: `t/${index % 3}`, qos: 1, payload, entries: [{ stream: 'all', offset: rig.state.streams.get('all')!.nextOffset }] };
}

/** Executes a plan the way the simulator's operator does (every step synced). */
function apply(disk: SimulatedDisk, actions: readonly RepairAction[]): void {
  for (const action of actions) {
    if (action.kind === 'copy') disk.execute({ op: 'write', requestId: 0, file: action.to, offset: 0, bytes: disk.fileBytes(action.from)!.slice() });
    else if (action.kind === 'truncate') disk.execute({ op: 'truncate', requestId: 0, file: action.file, length: action.length });
    else if (action.kind === 'write') disk.execute({ op: 'write', requestId: 0, file: action.file, offset: 0, bytes: action.bytes });
    else disk.execute({ op: 'rename', requestId: 0, from: action.from, to: action.to });
    disk.execute({ op: 'sync', requestId: 0, file: action.kind === 'copy' ? action.to : action.kind === 'rename' ? action.to : action.file });
  }
  disk.execute({ op: 'sync-directory', requestId: 0 });
}

const names = (disk: SimulatedDisk): string[] => disk.listFiles().map((file) => file.name);

/**
 * A store whose stream `all` has a flipped bit in a synced entry of its active segment (its
 * frame `frame`), the log no longer holding it; with `trimToActive` retention has trimmed the
 * stream to the active segment's first offset first, so the damage is in the stream's first entry.
 */
function damagedStore({ frame = 2, trimToActive = false }: { frame?: number; trimToActive?: boolean } = {}): {
  disk: SimulatedDisk;
  active: string;
  count: number;
  damagedOffset: number;
  cutPosition: number;
  damagedBytes: Uint8Array;
} {
  const rig = new StoreRig(newDisk(11), options, true);
  expect(rig.open()).toBe(true);
  rig.commit({ kind: 'stream-created', stream: all });
  rig.run();
  // Appends until the active segment holds a few synced entries (and a snapshot came).
  let count = 0;
  const activeSynced = (): number => rig.store.streams.filesFor('all')!.syncedOffset - rig.store.streams.segments('all').at(-1)!.baseOffset;
  while (count < 40 || activeSynced() < 5) {
    rig.commit(message(rig, count));
    rig.run();
    count += 1;
    expect(count).toBeLessThan(500);
  }
  rig.commit({ kind: 'stream-group-position', stream: 'all', group: 'workers', offset: count });
  rig.run();
  expect(rig.store.stats.snapshotsWritten).toBeGreaterThan(0);
  const active = names(rig.disk)
    .filter((name) => /^stream-all-\d{16}\.seg$/.test(name))
    .sort()
    .at(-1)!;
  const activeBase = Number(/-(\d{16})\.seg$/.exec(active)![1]);
  if (trimToActive) {
    rig.commit({ kind: 'stream-trimmed', stream: 'all', firstOffset: activeBase });
    rig.run();
    expect(rig.state.streams.get('all')!.firstOffset).toBe(activeBase);
  }
  const bytes = rig.disk.fileBytes(active)!;
  // A bit of an entry's payload rots, an entry the segment holds synced: the frame no longer checks, valid frames follow.
  const damagedOffset = activeBase + frame;
  expect(rig.store.streams.filesFor('all')!.syncedOffset).toBeGreaterThan(damagedOffset + 1);
  const cutPosition = framePosition(bytes, activeBase, frame);
  const position = cutPosition + 30;
  rig.disk.corrupt(active, position, bytes[position]! ^ 0x10);
  const damagedBytes = rig.disk.fileBytes(active)!.slice();
  return { disk: rig.disk, active, count, damagedOffset, cutPosition, damagedBytes };
}

describe('stream repair', () => {
  it('cuts an active segment at a flipped bit in its synced part, and the stream goes on from the cut', () => {
    const { disk, active, count, damagedOffset, cutPosition, damagedBytes } = damagedStore();
    // Every start halts, and leaves the damage where it is.
    for (let attempt = 0; attempt < 2; attempt++) {
      const halted = new StoreRig(disk, options);
      expect(halted.open()).toBe(false);
      expect(halted.store.failure).toMatch(/^corrupt stream: stream-all-\d{16}\.seg: stream all entry \d+ is neither in its files nor in the log/);
      expect(disk.fileBytes(active)).toEqual(damagedBytes);
    }

    const plan = planStreamRepair(disk.listFiles());
    expect(plan.notes.join('\n')).toContain(`${active}: copied to ${active}.damaged, truncated at offset ${cutPosition}`);
    expect(plan.notes.join('\n')).toContain(`stream all ends at offset ${damagedOffset}`);
    apply(disk, plan.actions);
    expect(disk.fileBytes(`${active}.damaged`)).toEqual(damagedBytes);
    const marker = `stream-all-${String(damagedOffset).padStart(16, '0')}.cut`;
    expect(names(disk)).toContain(marker);

    const repaired = new StoreRig(disk, options);
    expect(repaired.open(), String(repaired.store.failure)).toBe(true);
    const notes = repaired.store.streams.takeNotes();
    expect(notes.find((note) => note.event === 'stream-cut')?.fields).toEqual({
      stream: 'all',
      offset: damagedOffset,
      lost: count - damagedOffset,
      why: 'entries damaged on the disk, cut by a repair',
    });
    const cuts = repaired.store.streams.takeRecoveryCuts();
    expect(cuts).toEqual([{ stream: 'all', nextOffset: damagedOffset, lost: count - damagedOffset }]);
    // The broker commits the cut before anything else; the group's position moves back to it.
    repaired.commit({ kind: 'stream-cut', ...cuts[0]! });
    expect(repaired.state.streams.get('all')!.nextOffset).toBe(damagedOffset);
    expect(repaired.state.streams.get('all')!.groups.get('workers')).toBe(damagedOffset);
    repaired.run();
    expect(names(repaired.disk)).not.toContain(marker);
    expect(repaired.readAll('all').map((entry) => decodeText(entry.payload))).toEqual(payloads(0, damagedOffset));
    // Dense offsets: the next append takes the first offset lost.
    repaired.commit(message(repaired, 1000));
    repaired.run();
    expect(repaired.readAll('all', damagedOffset).map((entry) => [entry.offset, decodeText(entry.payload)])).toEqual([[damagedOffset, `payload 1000 ${'x'.repeat(40)}`]]);

    // A crash now, and a start that replays the cut and the new entry: nothing missing, nothing cut again.
    repaired.disk.crash();
    const again = new StoreRig(repaired.disk, options);
    expect(again.open(), String(again.store.failure)).toBe(true);
    expect(again.store.streams.takeRecoveryCuts()).toEqual([]);
    expect(again.store.streams.takeNotes().map((note) => note.event)).not.toContain('stream-cut');
    expect(again.readAll('all').map((entry) => decodeText(entry.payload))).toEqual([...payloads(0, damagedOffset), `payload 1000 ${'x'.repeat(40)}`]);
  });

  it("keeps a damaged active segment that holds the stream's first entry, so that the repair can cut it (seed 4006865)", () => {
    // Recovery took a segment whose scan ended at once for one wholly below the stream's start,
    // deleted it, and then stopped for the entries it had held: the operator's repair found no
    // segment to cut, and every later start stopped the same way.
    const { disk, active, count, damagedOffset, cutPosition, damagedBytes } = damagedStore({ frame: 0, trimToActive: true });
    const halted = new StoreRig(disk, options);
    expect(halted.open()).toBe(false);
    expect(halted.store.failure).toContain(`corrupt stream: ${active}: stream all entry ${damagedOffset} is neither in its files nor in the log`);
    expect(disk.fileBytes(active)).toEqual(damagedBytes);

    const plan = planStreamRepair(disk.listFiles());
    expect(plan.notes.join('\n')).toContain(`${active}: copied to ${active}.damaged, truncated at offset ${cutPosition} after 0 entries`);
    apply(disk, plan.actions);
    const repaired = new StoreRig(disk, options);
    expect(repaired.open(), String(repaired.store.failure)).toBe(true);
    expect(repaired.store.streams.takeRecoveryCuts()).toEqual([{ stream: 'all', nextOffset: damagedOffset, lost: count - damagedOffset }]);
  });

  it('is what keel inspect --repair does to a data directory', () => {
    const { disk, active, count, damagedOffset, damagedBytes } = damagedStore();
    const directory = mkdtempSync(join(tmpdir(), 'keel-stream-repair-'));
    try {
      for (const file of disk.listFiles()) writeFileSync(join(directory, file.name), file.bytes);
      const notes = repairDataDirectory(directory);
      expect(notes).toContain('nothing to repair');
      expect(notes.join('\n')).toContain(`stream all ends at offset ${damagedOffset}`);
      expect(new Uint8Array(readFileSync(join(directory, `${active}.damaged`)))).toEqual(damagedBytes);
      // The broker's store starts on what the repair left.
      const repairedDisk = newDisk(13);
      for (const name of readdirSync(directory)) {
        repairedDisk.execute({ op: 'write', requestId: 0, file: name, offset: 0, bytes: new Uint8Array(readFileSync(join(directory, name))) });
        repairedDisk.execute({ op: 'sync', requestId: 0, file: name });
      }
      repairedDisk.execute({ op: 'sync-directory', requestId: 0 });
      const repaired = new StoreRig(repairedDisk, options);
      expect(repaired.open(), String(repaired.store.failure)).toBe(true);
      expect(repaired.store.streams.takeRecoveryCuts()).toEqual([{ stream: 'all', nextOffset: damagedOffset, lost: count - damagedOffset }]);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('finds nothing to cut in a stream whose active segment ends cleanly', () => {
    const rig = new StoreRig(newDisk(12), options);
    expect(rig.open()).toBe(true);
    rig.commit({ kind: 'stream-created', stream: all });
    for (let index = 0; index < 5; index++) rig.commit(message(rig, index));
    rig.run();
    const plan = planStreamRepair(rig.disk.listFiles());
    expect(plan.actions).toEqual([]);
    expect(plan.notes).toEqual(['no stream segment to repair']);
  });
});

function payloads(from: number, to: number): string[] {
  const result: string[] = [];
  for (let index = from; index < to; index++) result.push(`payload ${index} ${'x'.repeat(40)}`);
  return result;
}

/** Where frame `n` of a segment starts, as a scan finds it. */
function framePosition(bytes: Uint8Array, baseOffset: number, n: number): number {
  const positions: number[] = [];
  scanSegment(bytes, 0, baseOffset - 1, (frame) => {
    positions.push(frame.position);
    return true;
  });
  expect(positions.length).toBeGreaterThan(n + 1);
  return positions[n]!;
}
