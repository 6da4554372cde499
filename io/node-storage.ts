/**
 * Executes the core's storage requests against one data directory with Node's fs.
 *
 * The core issues requests as actions and learns their results later as inputs; this class is
 * the bridge. Requests on one file run one after another, in the order the core issued them, so a
 * `sync` covers every `write` issued before it on its file and a `rename` never overtakes the
 * write it publishes; requests on different files run side by side (storage-lanes.ts), so the
 * log's fsync does not hold up a stream segment's write and a segment's fsync does not hold up the
 * log's group commit. `list` and `sync-directory` wait for everything issued before them and hold
 * back everything after (the order src/store/storage-order.ts states, which the simulator's disk
 * keeps too). Results come back as requests finish, so across files in any order. Open files are
 * cached by name: the durable log appends to the same file many times, and reopening it per write
 * would dominate; only the request running in a file's lane opens, uses or closes its handle.
 *
 * Failures of the operating system are results (`ok: false` with a code), never exceptions: the
 * core decides what an EIO means. A malformed request (a file name that could escape the
 * directory) is a bug in the core and fails loudly.
 *
 * `probeDataDirectory` runs before recovery: it creates, writes, syncs and deletes a file, so that
 * a directory the broker cannot write (read-only, wrong owner, a read-only file system, no space)
 * stops the start with the directory and the operating system's message, instead of a halt on the
 * first durable write after the broker has said it is listening.
 */
import assert from 'node:assert/strict';
import { closeSync, constants, fsyncSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { type FileHandle, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { StorageErrorCode, StorageRequest, StorageResult } from '../src/contract.js';
import { storageScope } from '../src/store/storage-order.js';
import { lockFileName } from './data-directory-lock.js';
import { type LaneTask, StorageLanes } from './storage-lanes.js';

/** The flat namespace the contract promises: no separators, no dot entries. */
const fileNamePattern = /^[A-Za-z0-9._-]{1,255}$/;

/**
 * Written and removed by the probe. Recovery ignores it (it is neither a segment, a snapshot nor a
 * `*.tmp` file); one left by a crash during the probe is overwritten and removed by the next one.
 * Only the holder of the directory's lock probes, so two probes never share the name.
 */
export const probeFileName = 'keel-write-probe';
const probeBytes = 4_096;

/**
 * The backend's own files in the data directory (the lock, its stale copies being removed, the
 * write probe) are outside the core's namespace: `list` does not show them, so the core's view of
 * the directory is the same here as on the simulator's disk, and a request naming one is a bug.
 */
function isBackendFile(name: string): boolean {
  return name === lockFileName || name.startsWith(`${lockFileName}.`) || name === probeFileName;
}

/**
 * Creates (or truncates), writes, syncs and deletes the probe file, then syncs the directory; any
 * failure is an Error naming the directory and carrying the operating system's message.
 */
export function probeDataDirectory(directory: string): void {
  const file = join(directory, probeFileName);
  try {
    const descriptor = openSync(file, 'w', 0o600);
    try {
      writeSync(descriptor, new Uint8Array(probeBytes));
      fsyncSync(descriptor);
    } finally {
      closeSync(descriptor);
    }
    unlinkSync(file);
    const directoryDescriptor = openSync(directory, 'r');
    try {
      fsyncSync(directoryDescriptor);
    } finally {
      closeSync(directoryDescriptor);
    }
  } catch (error) {
    // Best effort: a probe file left behind is harmless, and the next probe replaces it.
    try {
      unlinkSync(file);
    } catch {}
    throw new Error(`data directory ${directory} is not writable: ${(error as Error).message}`, { cause: error });
  }
}

export type StorageCompletion = (result: StorageResult) => void;

/**
 * Told the wall time a sync took, in seconds, measured here around the fsync itself (the core
 * sees only completions, in its own time): the sync-latency histogram of /metrics.
 */
export type SyncTimer = (op: 'sync' | 'sync-directory', seconds: number) => void;

export class NodeStorage {
  private readonly lanes = new StorageLanes<StorageRequest>((task) => this.run(task));
  private readonly handles = new Map<string, FileHandle>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly directory: string,
    private readonly complete: StorageCompletion,
    private readonly syncTimer?: SyncTimer,
  ) {
    // Creating the directory up front turns a bad --data-dir into a start-up error, not an EIO
    // on the first write long after the broker said it was listening.
    mkdirSync(directory, { recursive: true });
  }

  /** Queues a request; its result arrives through the completion callback on a later turn. */
  submit(request: StorageRequest): void {
    // Checked here, synchronously, so a bad name fails inside the core's own call stack.
    const scope = storageScope(request);
    if (scope.kind === 'files') for (const file of scope.files) this.path(file);
    this.lanes.submit(request, scope);
  }

  /** Requests submitted but not yet completed (running or waiting their turn). */
  get pendingCount(): number {
    return this.lanes.pendingCount;
  }

  /** Resolves once every submitted request has completed; then closes the cached files. */
  async close(): Promise<void> {
    if (this.lanes.pendingCount > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const handles = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(handles.map((handle) => handle.close()));
  }

  private run(task: LaneTask<StorageRequest>): void {
    const request = task.item;
    this.execute(request).then(
      (result) => {
        assert.equal(result.requestId, request.requestId);
        this.lanes.complete(task);
        this.complete(result);
        if (this.lanes.pendingCount === 0) this.wakeIdleWaiters();
      },
      (error: unknown) => {
        // Only a bug reaches here (execute maps every fs failure to a result): stop loudly.
        process.nextTick(() => {
          throw error;
        });
      },
    );
  }

  private wakeIdleWaiters(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  private async execute(request: StorageRequest): Promise<StorageResult> {
    try {
      return await this.perform(request);
    } catch (error) {
      if (!isSystemError(error)) throw error;
      return { requestId: request.requestId, ok: false, code: errorCode(error.code), message: error.message };
    }
  }

  /** Carries out one request; a test subclass may hold one back (a slow fsync) to watch the lanes. */
  protected async perform(request: StorageRequest): Promise<StorageResult> {
    const requestId = request.requestId;
    switch (request.op) {
      case 'list':
        return { requestId, ok: true, files: await this.list() };
      case 'read':
        return { requestId, ok: true, bytes: await this.read(request.file, request.offset, request.length) };
      case 'write':
        await this.write(request.file, request.offset, request.bytes);
        return { requestId, ok: true };
      case 'sync': {
        const handle = await this.handle(request.file);
        const startedMs = performance.now();
        await handle.sync();
        this.syncTimer?.('sync', (performance.now() - startedMs) / 1000);
        return { requestId, ok: true };
      }
      case 'truncate':
        await (await this.handle(request.file)).truncate(request.length);
        return { requestId, ok: true };
      case 'rename':
        await this.forget(request.from);
        await this.forget(request.to);
        await rename(this.path(request.from), this.path(request.to));
        return { requestId, ok: true };
      case 'delete':
        await this.forget(request.file);
        await unlink(this.path(request.file));
        return { requestId, ok: true };
      case 'sync-directory': {
        const startedMs = performance.now();
        await this.syncDirectory();
        this.syncTimer?.('sync-directory', (performance.now() - startedMs) / 1000);
        return { requestId, ok: true };
      }
    }
  }

  private async list(): Promise<{ name: string; size: number }[]> {
    const entries = await readdir(this.directory, { withFileTypes: true });
    const files: { name: string; size: number }[] = [];
    for (const entry of entries) {
      if (!entry.isFile() || isBackendFile(entry.name)) continue;
      const info = await stat(join(this.directory, entry.name));
      files.push({ name: entry.name, size: info.size });
    }
    files.sort((left, right) => (left.name < right.name ? -1 : left.name > right.name ? 1 : 0));
    return files;
  }

  private async read(file: string, offset: number, length: number): Promise<Uint8Array> {
    assert.ok(Number.isSafeInteger(offset) && offset >= 0, 'read offset must be a non-negative integer');
    assert.ok(Number.isSafeInteger(length) && length >= 0, 'read length must be a non-negative integer');
    const handle = await this.handle(file, false);
    const bytes = new Uint8Array(length);
    let filled = 0;
    // A read may return fewer bytes than asked; only zero means end of file.
    while (filled < length) {
      const { bytesRead } = await handle.read(bytes, filled, length - filled, offset + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return bytes.subarray(0, filled);
  }

  private async write(file: string, offset: number, bytes: Uint8Array): Promise<void> {
    assert.ok(Number.isSafeInteger(offset) && offset >= 0, 'write offset must be a non-negative integer');
    const handle = await this.handle(file);
    let written = 0;
    while (written < bytes.length) {
      const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, offset + written);
      assert.ok(bytesWritten > 0, 'write made no progress');
      written += bytesWritten;
    }
  }

  private async syncDirectory(): Promise<void> {
    const handle = await open(this.directory, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** The cached handle for `file`, opened read-write; `create` false makes a missing file ENOENT. */
  private async handle(file: string, create = true): Promise<FileHandle> {
    const cached = this.handles.get(file);
    if (cached !== undefined) return cached;
    // O_CREAT without O_TRUNC or O_APPEND: a missing file is created, an existing one is kept and
    // positional writes land where the core asked.
    const flags = create ? constants.O_RDWR | constants.O_CREAT : constants.O_RDWR;
    const handle = await open(this.path(file), flags, 0o644);
    this.handles.set(file, handle);
    return handle;
  }

  private async forget(file: string): Promise<void> {
    this.path(file);
    const handle = this.handles.get(file);
    if (handle === undefined) return;
    this.handles.delete(file);
    await handle.close();
  }

  private path(file: string): string {
    assert.ok(fileNamePattern.test(file), `storage file name not allowed: ${JSON.stringify(file)}`);
    assert.ok(file !== '.' && file !== '..', 'storage file name must not be a dot entry');
    assert.ok(!isBackendFile(file), `storage file name belongs to the backend: ${file}`);
    return join(this.directory, file);
  }
}

interface SystemError extends Error {
  code: string;
  errno: number;
}

/** An operating-system failure (it carries errno), as opposed to an assertion or other bug. */
function isSystemError(error: unknown): error is SystemError {
  if (!(error instanceof Error)) return false;
  const candidate = error as { code?: unknown; errno?: unknown };
  return typeof candidate.code === 'string' && typeof candidate.errno === 'number';
}

function errorCode(code: string): StorageErrorCode {
  switch (code) {
    case 'EIO':
      return 'EIO';
    case 'ENOSPC':
    case 'EDQUOT':
      return 'ENOSPC';
    case 'ENOENT':
      return 'ENOENT';
    default:
      return 'EOTHER';
  }
}
