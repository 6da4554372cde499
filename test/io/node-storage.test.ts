/**
 * Proves NodeStorage executes every StorageRequest kind against a real directory, completes one
 * file's requests in the order issued (a sync issued after a write completes after it) while
 * another file's requests go on beside one that is slow (a test subclass holds a request back
 * before carrying it out), holds `list` and `sync-directory` behind everything
 * issued before them and everything issued after behind them, reports operating-system
 * failures as results with the contract's codes rather than exceptions, and keeps file names
 * inside the directory and away from the backend's own files (the lock, the write probe); and
 * that the start-up write probe leaves a writable directory as it was and refuses an unwritable
 * one (read-only; for root, immutable) with its name and the operating system's error.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NodeStorage, probeDataDirectory } from '../../io/node-storage.js';
import type { StorageRequest, StorageResult } from '../../src/contract.js';
import { unwritableDirectory } from '../integration/unwritable-directory.js';

let directory: string;
let storage: NodeStorage;
let results: StorageResult[];

beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'keel-storage-'));
  results = [];
  storage = new NodeStorage(directory, (result) => results.push(result));
});

afterEach(async () => {
  await storage.close();
  rmSync(directory, { recursive: true, force: true });
});

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array | undefined): string => new TextDecoder().decode(data);

async function run(...requests: StorageRequest[]): Promise<StorageResult[]> {
  const before = results.length;
  for (const request of requests) storage.submit(request);
  await storage.close();
  return results.slice(before);
}

describe('NodeStorage', () => {
  it('writes at offsets, reads back, and reads short at end of file', async () => {
    const done = await run(
      { op: 'write', requestId: 1, file: 'a.log', offset: 0, bytes: bytes('hello world') },
      { op: 'write', requestId: 2, file: 'a.log', offset: 6, bytes: bytes('WORLD') },
      { op: 'sync', requestId: 3, file: 'a.log' },
      { op: 'read', requestId: 4, file: 'a.log', offset: 0, length: 100 },
      { op: 'read', requestId: 5, file: 'a.log', offset: 6, length: 3 },
    );
    expect(done.map((result) => result.requestId)).toEqual([1, 2, 3, 4, 5]);
    expect(done.every((result) => result.ok)).toBe(true);
    expect(text((done[3] as { bytes?: Uint8Array }).bytes)).toBe('hello WORLD');
    expect(text((done[4] as { bytes?: Uint8Array }).bytes)).toBe('WOR');
    expect(readFileSync(join(directory, 'a.log'), 'utf8')).toBe('hello WORLD');
  });

  it('does not truncate an existing file when it first opens it', async () => {
    writeFileSync(join(directory, 'kept.log'), 'abcdef');
    await run({ op: 'write', requestId: 1, file: 'kept.log', offset: 2, bytes: bytes('XY') });
    expect(readFileSync(join(directory, 'kept.log'), 'utf8')).toBe('abXYef');
  });

  it('truncates, renames, deletes, syncs the directory and lists sorted with sizes', async () => {
    const done = await run(
      { op: 'write', requestId: 1, file: 'snapshot.tmp', offset: 0, bytes: bytes('0123456789') },
      { op: 'truncate', requestId: 2, file: 'snapshot.tmp', length: 4 },
      { op: 'rename', requestId: 3, from: 'snapshot.tmp', to: 'snapshot' },
      { op: 'write', requestId: 4, file: 'b', offset: 0, bytes: bytes('x') },
      { op: 'write', requestId: 5, file: 'a', offset: 0, bytes: bytes('yy') },
      { op: 'delete', requestId: 6, file: 'b' },
      { op: 'sync-directory', requestId: 7 },
      { op: 'list', requestId: 8 },
    );
    expect(done.every((result) => result.ok)).toBe(true);
    expect((done[7] as { files?: unknown }).files).toEqual([
      { name: 'a', size: 2 },
      { name: 'snapshot', size: 4 },
    ]);
    expect(readFileSync(join(directory, 'snapshot'), 'utf8')).toBe('0123');
  });

  it('reports a missing file as an ENOENT result, not an exception', async () => {
    const done = await run(
      { op: 'read', requestId: 1, file: 'missing', offset: 0, length: 10 },
      { op: 'delete', requestId: 2, file: 'missing' },
      { op: 'rename', requestId: 3, from: 'missing', to: 'other' },
    );
    expect(done).toEqual([
      expect.objectContaining({ requestId: 1, ok: false, code: 'ENOENT' }),
      expect.objectContaining({ requestId: 2, ok: false, code: 'ENOENT' }),
      expect.objectContaining({ requestId: 3, ok: false, code: 'ENOENT' }),
    ]);
  });

  it('completes asynchronously, never inside submit', () => {
    storage.submit({ op: 'list', requestId: 1 });
    expect(results).toEqual([]);
    expect(storage.pendingCount).toBe(1);
  });

  it('refuses file names that could leave the directory, synchronously', () => {
    for (const file of ['../escape', 'a/b', '..', '.', '']) {
      expect(() => storage.submit({ op: 'write', requestId: 1, file, offset: 0, bytes: bytes('x') })).toThrow(/storage file name/);
    }
    expect(() => storage.submit({ op: 'rename', requestId: 2, from: 'ok', to: '/etc/passwd' })).toThrow(/storage file name/);
    expect(storage.pendingCount).toBe(0);
  });

  it("keeps the backend's own files (lock, write probe) out of the core's namespace", async () => {
    for (const name of ['keel.lock', 'keel.lock.stale-1-ab', 'keel-write-probe', 'wal-0000000000000001.log']) writeFileSync(join(directory, name), 'x');
    const [listed] = await run({ op: 'list', requestId: 1 });
    expect(listed).toEqual({ requestId: 1, ok: true, files: [{ name: 'wal-0000000000000001.log', size: 1 }] });
    for (const file of ['keel.lock', 'keel-write-probe']) {
      expect(() => storage.submit({ op: 'delete', requestId: 2, file })).toThrow(/belongs to the backend/);
    }
  });
});

describe('NodeStorage across files', () => {
  /**
   * NodeStorage with the given requests held back until released, each then carried out for real:
   * a slow fsync, or any slow request, on demand.
   */
  class GatedStorage extends NodeStorage {
    private readonly gates = new Map<number, () => void>();
    private readonly held = new Set<number>();

    hold(requestId: number): void {
      this.held.add(requestId);
    }

    release(requestId: number): void {
      const open = this.gates.get(requestId);
      expect(open, `request ${requestId} is being held`).toBeDefined();
      this.gates.delete(requestId);
      open!();
    }

    isHeld(requestId: number): boolean {
      return this.gates.has(requestId);
    }

    protected override async perform(request: StorageRequest): Promise<StorageResult> {
      if (this.held.delete(request.requestId)) await new Promise<void>((resolve) => this.gates.set(request.requestId, resolve));
      return super.perform(request);
    }
  }

  let gated: GatedStorage;
  beforeEach(() => {
    gated = new GatedStorage(directory, (result) => results.push(result));
  });
  afterEach(async () => {
    await gated.close();
  });

  const settled = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50));
  const completedIds = (): number[] => results.map((result) => result.requestId);

  it("lets another file's write and sync complete while one file's fsync is slow, and keeps that file's order", async () => {
    gated.hold(2);
    gated.submit({ op: 'write', requestId: 1, file: 'wal.log', offset: 0, bytes: bytes('record') });
    gated.submit({ op: 'sync', requestId: 2, file: 'wal.log' });
    gated.submit({ op: 'write', requestId: 3, file: 'wal.log', offset: 6, bytes: bytes('-next') });
    gated.submit({ op: 'write', requestId: 4, file: 's-0.seg', offset: 0, bytes: bytes('frame') });
    gated.submit({ op: 'sync', requestId: 5, file: 's-0.seg' });
    // The two files' first writes run side by side: either may finish first. One file's requests
    // finish in the order issued.
    const acrossFiles = (ids: number[]): number[] => [...ids].sort((a, b) => a - b);
    await vi.waitFor(() => expect(acrossFiles(completedIds())).toEqual([1, 4, 5]));
    expect(completedIds().indexOf(4)).toBeLessThan(completedIds().indexOf(5));
    expect(gated.isHeld(2)).toBe(true);
    // The log's next write waits for its sync: it must not overtake it.
    await settled();
    expect(acrossFiles(completedIds())).toEqual([1, 4, 5]);
    expect(readFileSync(join(directory, 'wal.log'), 'utf8')).toBe('record');
    expect(gated.pendingCount).toBe(2);
    gated.release(2);
    await vi.waitFor(() => expect(completedIds().slice(3)).toEqual([2, 3]));
    expect(acrossFiles(completedIds().slice(0, 3))).toEqual([1, 4, 5]);
    expect(results.every((result) => result.ok)).toBe(true);
    expect(readFileSync(join(directory, 'wal.log'), 'utf8')).toBe('record-next');
    expect(readFileSync(join(directory, 's-0.seg'), 'utf8')).toBe('frame');
  });

  it('holds list and sync-directory behind every earlier request, and every later request behind them', async () => {
    gated.hold(1);
    gated.submit({ op: 'write', requestId: 1, file: 'slow.seg', offset: 0, bytes: bytes('s') });
    gated.submit({ op: 'write', requestId: 2, file: 'a.seg', offset: 0, bytes: bytes('aa') });
    gated.submit({ op: 'sync-directory', requestId: 3 });
    gated.submit({ op: 'write', requestId: 4, file: 'b.seg', offset: 0, bytes: bytes('bbb') });
    gated.submit({ op: 'list', requestId: 5 });
    await vi.waitFor(() => expect(completedIds()).toEqual([2]));
    await settled();
    expect(completedIds()).toEqual([2]);
    gated.release(1);
    await vi.waitFor(() => expect(completedIds()).toEqual([2, 1, 3, 4, 5]));
    expect((results[4] as { files?: unknown }).files).toEqual([
      { name: 'a.seg', size: 2 },
      { name: 'b.seg', size: 3 },
      { name: 'slow.seg', size: 1 },
    ]);
  });
});

describe('probeDataDirectory', () => {
  it('leaves a writable directory as it found it', () => {
    probeDataDirectory(directory);
    expect(readdirSync(directory)).toEqual([]);
  });

  it('refuses an unwritable directory, naming it and the error', (context) => {
    const readOnly = join(directory, 'read-only');
    mkdirSync(readOnly);
    const made = unwritableDirectory(readOnly);
    if (!made.ok) {
      context.skip(made.reason);
      return;
    }
    try {
      expect(() => probeDataDirectory(readOnly)).toThrow(new RegExp(`^data directory ${readOnly} is not writable: (EACCES|EPERM|EROFS): `));
    } finally {
      made.undo();
    }
  });
});
