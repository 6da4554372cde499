/**
 * A log as a build before binary record bodies wrote it: one group per record, every body JSON
 * (encodeJsonRecord), from LSN 1, written and synced to the simulated disk. The tests that show a
 * newer build recovering an older data directory start from it.
 */
import { expect } from 'vitest';
import type { SimulatedDisk } from '../../sim/simulated-disk.js';
import { groupEndFlag, segmentFileName } from '../../src/store/log-writer.js';
import { encodeJsonRecord, recordTypes } from '../../src/store/record-codec.js';
import { encodeFrame } from '../../src/store/record-frame.js';
import type { StateRecord } from '../../src/store/state-store.js';

export function writeOldLog(disk: SimulatedDisk, records: readonly StateRecord[]): void {
  const frames = records.map((record, index) => encodeFrame(index + 1, recordTypes[record.kind] | groupEndFlag, encodeJsonRecord(record)));
  const bytes = new Uint8Array(frames.reduce((sum, frame) => sum + frame.length, 0));
  let at = 0;
  for (const frame of frames) {
    bytes.set(frame, at);
    at += frame.length;
  }
  const file = segmentFileName(1);
  expect(disk.execute({ op: 'write', requestId: 1, file, offset: 0, bytes }).ok).toBe(true);
  expect(disk.execute({ op: 'sync', requestId: 2, file }).ok).toBe(true);
  expect(disk.execute({ op: 'sync-directory', requestId: 3 }).ok).toBe(true);
}
