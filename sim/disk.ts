/**
 * The simulated disk behind the broker's storage requests: a flat directory of files in memory.
 *
 * Each file keeps two images: what reads see now, and what survives a crash (the last synced
 * image). A crash throws away every unsynced write. Requests complete after a small random
 * latency, in the order issued (a single queue, like one device). Fault injection beyond losing
 * unsynced writes (torn writes, bit flips, EIO, full disk) is the durability work's next step;
 * the seams for it are `complete` and `crash`.
 */
import type { StorageRequest, StorageResult } from '../src/contract.js';
import type { Random } from './random.js';

interface File {
  current: Uint8Array;
  durable: Uint8Array;
}

export class SimDisk {
  private readonly files = new Map<string, File>();
  private lastCompletionMs = 0;

  constructor(private readonly random: Random) {}

  /** When the request started now completes: never before an earlier one. */
  completionMs(nowMs: number): number {
    const timeMs = Math.max(nowMs + this.random.int(0, 2), this.lastCompletionMs);
    this.lastCompletionMs = timeMs;
    return timeMs;
  }

  execute(request: StorageRequest): StorageResult {
    const requestId = request.requestId;
    switch (request.op) {
      case 'list': {
        const names = [...this.files.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        return { requestId, ok: true, files: names.map((name) => ({ name, size: this.files.get(name)!.current.length })) };
      }
      case 'read': {
        const file = this.files.get(request.file);
        if (file === undefined) return { requestId, ok: false, code: 'ENOENT', message: request.file };
        return { requestId, ok: true, bytes: file.current.slice(request.offset, request.offset + request.length) };
      }
      case 'write': {
        const file = this.fileFor(request.file);
        const end = request.offset + request.bytes.length;
        const grown = new Uint8Array(Math.max(end, file.current.length));
        grown.set(file.current);
        grown.set(request.bytes, request.offset);
        file.current = grown;
        return { requestId, ok: true };
      }
      case 'sync': {
        const file = this.files.get(request.file);
        if (file === undefined) return { requestId, ok: false, code: 'ENOENT', message: request.file };
        file.durable = file.current.slice();
        return { requestId, ok: true };
      }
      case 'truncate': {
        const file = this.fileFor(request.file);
        const cut = new Uint8Array(request.length);
        cut.set(file.current.subarray(0, Math.min(request.length, file.current.length)));
        file.current = cut;
        return { requestId, ok: true };
      }
      case 'rename': {
        const file = this.files.get(request.from);
        if (file === undefined) return { requestId, ok: false, code: 'ENOENT', message: request.from };
        this.files.delete(request.from);
        this.files.set(request.to, file);
        return { requestId, ok: true };
      }
      case 'delete':
        this.files.delete(request.file);
        return { requestId, ok: true };
      case 'sync-directory':
        return { requestId, ok: true };
    }
  }

  private fileFor(name: string): File {
    let file = this.files.get(name);
    if (file === undefined) {
      file = { current: new Uint8Array(0), durable: new Uint8Array(0) };
      this.files.set(name, file);
    }
    return file;
  }

  /** The process died: every file reverts to its last synced image. */
  crash(): void {
    for (const file of this.files.values()) file.current = file.durable.slice();
  }
}
