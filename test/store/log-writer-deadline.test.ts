/**
 * Proves the interval sync policy's deadline never asks for a tick that can do nothing: while a
 * write or sync is in flight the writer reports no deadline (its completion drives the next
 * step), and once idle with unsynced records it reports the sync deadline, at which `flush`
 * starts exactly one sync. Regression for simulator seed 8, where a past deadline reported during
 * an in-flight sync made the driver tick at the same instant forever.
 */
import { describe, expect, it } from 'vitest';
import { LogWriter } from '../../src/store/log-writer.js';

describe('log writer deadline under the interval policy', () => {
  it('reports no deadline while a sync is in flight, and the sync deadline once idle', () => {
    let requestId = 1;
    const writer = new LogWriter({ segmentBytesMax: 4096, syncPolicy: 'interval', syncIntervalMs: 100, writeBytesMax: 1024 }, 1, null, () => requestId++);
    writer.append(1, Uint8Array.of(1, 2, 3));
    writer.flush(0);
    const [write] = writer.takeRequests();
    expect(write?.op).toBe('write');
    expect(writer.nextDeadlineMs()).toBeNull();
    expect(writer.handleResult({ requestId: write!.requestId, ok: true }, 10)).toBe(true);
    // Written, not synced: the sync is due 100 ms after the write completed.
    expect(writer.nextDeadlineMs()).toBe(110);
    writer.flush(50);
    expect(writer.takeRequests()).toEqual([]);
    writer.flush(110);
    const [sync] = writer.takeRequests();
    expect(sync?.op).toBe('sync');
    // The deadline has passed and the sync is in flight: nothing for a tick to do until it completes.
    expect(writer.nextDeadlineMs()).toBeNull();
    writer.flush(120);
    expect(writer.takeRequests()).toEqual([]);
    expect(writer.handleResult({ requestId: sync!.requestId, ok: true }, 130)).toBe(true);
    // A new segment's name is made durable by a directory sync before the records count as synced.
    const [directorySync] = writer.takeRequests();
    expect(directorySync?.op).toBe('sync-directory');
    expect(writer.nextDeadlineMs()).toBeNull();
    expect(writer.handleResult({ requestId: directorySync!.requestId, ok: true }, 131)).toBe(true);
    expect(writer.syncedLsn).toBe(1);
    expect(writer.nextDeadlineMs()).toBeNull();
  });
});

describe('log writer segment rotation under the interval policy', () => {
  it('syncs the segment it leaves before writing the next one', () => {
    // Regression for simulator seed 138: the new segment was synced while the old one's tail was
    // not; a crash kept the former and lost the latter, and recovery refused the gap forever.
    let requestId = 1;
    const writer = new LogWriter({ segmentBytesMax: 64, syncPolicy: 'interval', syncIntervalMs: 1_000, writeBytesMax: 1024 }, 1, null, () => requestId++);
    const operations: string[] = [];
    const complete = (nowMs: number): void => {
      for (let requests = writer.takeRequests(); requests.length > 0; requests = writer.takeRequests()) {
        for (const request of requests) {
          operations.push(`${request.op} ${'file' in request ? request.file : ''}`.trim());
          writer.handleResult({ requestId: request.requestId, ok: true }, nowMs);
        }
      }
    };
    writer.append(1, new Uint8Array(30));
    writer.flush(0);
    complete(0);
    writer.append(1, new Uint8Array(30));
    writer.flush(1);
    complete(1);
    const first = 'wal-0000000000000001.log';
    const second = 'wal-0000000000000002.log';
    expect(operations).toEqual([`write ${first}`, `sync ${first}`, 'sync-directory', `write ${second}`]);
    expect(writer.syncedLsn).toBe(1);
  });
});
