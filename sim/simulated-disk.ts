/**
 * A simulated data directory with the failure modes of real disks, executing the core's
 * StorageRequests.
 *
 * Each file has two images: `visible` (what reads see now) and `durable` (what survives a
 * crash). Writes and truncations change `visible` at once and are remembered as unsynced until
 * the file is synced. Creating, renaming and deleting files change the visible directory at once
 * and reach the durable directory only at `sync-directory`. A crash keeps a random subset of the
 * unsynced writes (each possibly torn to a prefix, which may be followed by zeros up to the write's
 * end when it grew the file) and a random prefix of the unsynced directory
 * operations, then the visible state becomes the durable one. Each image may be changed in place
 * (see `resize`), so the two share a buffer only while neither changes: a sync of a file written
 * whole since it was empty (a snapshot, written once, renamed, read back at recovery, deleted)
 * and a crash make them one image, and a write or truncation first gives the visible image a copy
 * of its own (`unshare`). A snapshot of a MiB was copied twice more before, at its sync and at
 * every crash.
 *
 * An unsynced write keeps no copy of its bytes while the visible image still holds them where it
 * wrote them: most writes append (a log, a snapshot of a MiB or more), and a copy of each was a
 * tenth of a world's time where sessions grow large. Before anything changes bytes an unsynced
 * write covers (a write before the end of the furthest one, a truncation into them, planted
 * damage), the unsynced writes take copies of their own (`keepPendingBytes`), so what a sync or
 * a crash applies is always what was written.
 *
 * Faults are drawn from the disk's own random stream: EIO on any operation, ENOSPC past a
 * capacity, latent read errors, and bit flips in synced data. Every injected corruption of synced
 * data is recorded in `corruptions`, so the checker knows which losses the broker was allowed to
 * report instead of hiding.
 */
import assert from 'node:assert/strict';
import { allocateBytes } from '../src/codec/byte-pool.js';
import type { StorageRequest, StorageResult } from '../src/contract.js';

export interface DiskFaults {
  /** Probability that a write, sync or directory operation fails with EIO. */
  ioErrorRate: number;
  /** Probability that a read fails with EIO. */
  readErrorRate: number;
  /** Probability that a crash tears each unsynced write (keeps a prefix) rather than keeping/dropping it whole. */
  tornWriteRate: number;
  /** Total bytes the disk holds; a write past it fails with ENOSPC. */
  capacityBytes: number;
}

export const noDiskFaults: DiskFaults = { ioErrorRate: 0, readErrorRate: 0, tornWriteRate: 0, capacityBytes: Number.MAX_SAFE_INTEGER };

type DirectoryOperation = { kind: 'create'; file: string } | { kind: 'rename'; from: string; to: string } | { kind: 'delete'; file: string };
/** An unsynced change; a write's `bytes` is null while they are `visible[offset, offset + length)`. */
type PendingWrite = { kind: 'write'; offset: number; length: number; bytes: Uint8Array | null } | { kind: 'truncate'; length: number };

interface SimulatedFile {
  visible: Uint8Array;
  durable: Uint8Array;
  unsynced: PendingWrite[];
  /** The end of the furthest unsynced write whose bytes are read from `visible`; 0 when none is. */
  visibleHeldEnd: number;
  /** `visible` and `durable` are the same view (nothing unsynced): neither is changed in place. */
  imagesShared: boolean;
}

export class SimulatedDisk {
  private files = new Map<string, SimulatedFile>();
  /** Names in the durable directory, mapped to the file object they name. */
  private durableDirectory = new Map<string, SimulatedFile>();
  private unsyncedDirectory: DirectoryOperation[] = [];
  readonly corruptions: { file: string; offset: number }[] = [];
  operations = 0;

  constructor(
    private readonly random: () => number,
    public faults: DiskFaults = noDiskFaults,
  ) {}

  execute(request: StorageRequest): StorageResult {
    this.operations++;
    const id = request.requestId;
    if (request.op !== 'read' && request.op !== 'list' && this.random() < this.faults.ioErrorRate) {
      return { requestId: id, ok: false, code: 'EIO', message: `simulated I/O error on ${request.op}` };
    }
    switch (request.op) {
      case 'list':
        return {
          requestId: id,
          ok: true,
          files: [...this.files.entries()].map(([name, file]) => ({ name, size: file.visible.length })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
        };
      case 'read':
        return this.read(id, request.file, request.offset, request.length);
      case 'write':
        return this.write(id, request.file, request.offset, request.bytes);
      case 'sync': {
        const file = this.files.get(request.file);
        if (file === undefined) return enoent(id, request.file);
        if (file.imagesShared) return { requestId: id, ok: true };
        if (file.durable.length === 0) {
          // All of it was written since it was empty: the visible image is what is durable now.
          file.durable = file.visible;
          file.imagesShared = true;
          file.unsynced = [];
          file.visibleHeldEnd = 0;
          return { requestId: id, ok: true };
        }
        // The durable image plus the unsynced changes is the visible image; applying them in
        // place costs what was written since the last sync, not a copy of the whole file.
        for (const pending of file.unsynced) file.durable = pending.kind === 'truncate' ? resize(file.durable, pending.length) : applyWrite(file.durable, pending.offset, pendingBytes(file, pending));
        file.unsynced = [];
        file.visibleHeldEnd = 0;
        assert.equal(file.durable.length, file.visible.length, 'a synced file is as long as its visible image');
        return { requestId: id, ok: true };
      }
      case 'truncate': {
        const file = this.files.get(request.file);
        if (file === undefined) return enoent(id, request.file);
        if (file.imagesShared) unshare(file);
        if (request.length < file.visibleHeldEnd) keepPendingBytes(file);
        file.visible = resize(file.visible, request.length);
        file.unsynced.push({ kind: 'truncate', length: request.length });
        return { requestId: id, ok: true };
      }
      case 'rename': {
        const file = this.files.get(request.from);
        if (file === undefined) return enoent(id, request.from);
        this.files.delete(request.from);
        this.files.set(request.to, file);
        this.unsyncedDirectory.push({ kind: 'rename', from: request.from, to: request.to });
        return { requestId: id, ok: true };
      }
      case 'delete':
        if (!this.files.delete(request.file)) return enoent(id, request.file);
        this.unsyncedDirectory.push({ kind: 'delete', file: request.file });
        return { requestId: id, ok: true };
      case 'sync-directory':
        for (const operation of this.unsyncedDirectory) applyDirectoryOperation(this.durableDirectory, operation, this.files);
        this.unsyncedDirectory = [];
        return { requestId: id, ok: true };
    }
  }

  /** The bytes read are a copy the caller owns, in an ArrayBuffer of their own (the worlds hand them on without another copy, input-chunks.ts `adopt`). */
  private read(id: number, name: string, offset: number, length: number): StorageResult {
    const file = this.files.get(name);
    if (file === undefined) return enoent(id, name);
    if (this.random() < this.faults.readErrorRate) return { requestId: id, ok: false, code: 'EIO', message: `simulated read error on ${name}` };
    return { requestId: id, ok: true, bytes: file.visible.slice(offset, Math.min(file.visible.length, offset + length)) };
  }

  private write(id: number, name: string, offset: number, bytes: Uint8Array): StorageResult {
    let file = this.files.get(name);
    // The sum over every file is taken only while a full disk is simulated (most writes come without one).
    if (this.faults.capacityBytes !== noDiskFaults.capacityBytes) {
      const growth = Math.max(0, offset + bytes.length - (file?.visible.length ?? 0));
      if (this.usedBytes() + growth > this.faults.capacityBytes) return { requestId: id, ok: false, code: 'ENOSPC', message: 'simulated full disk' };
    }
    if (file === undefined) {
      file = { visible: new Uint8Array(0), durable: new Uint8Array(0), unsynced: [], visibleHeldEnd: 0, imagesShared: false };
      this.files.set(name, file);
      this.unsyncedDirectory.push({ kind: 'create', file: name });
    }
    if (file.imagesShared) unshare(file);
    if (offset < file.visibleHeldEnd) keepPendingBytes(file);
    if (file.visible.length < offset + bytes.length) file.visible = resize(file.visible, offset + bytes.length);
    file.visible.set(bytes, offset);
    file.unsynced.push({ kind: 'write', offset, length: bytes.length, bytes: null });
    file.visibleHeldEnd = Math.max(file.visibleHeldEnd, offset + bytes.length);
    return { requestId: id, ok: true };
  }

  usedBytes(): number {
    let total = 0;
    for (const file of this.files.values()) total += file.visible.length;
    return total;
  }

  /** Power loss: keep a random subset of unsynced writes (some torn) and a random prefix of directory operations. */
  crash(): void {
    for (const file of new Set([...this.files.values(), ...this.durableDirectory.values()])) {
      assert.ok(!file.imagesShared || file.unsynced.length === 0, 'a file whose images are shared has nothing unsynced');
      let image = file.durable;
      for (const pending of file.unsynced) {
        const roll = this.random();
        if (roll < 0.5) continue;
        if (pending.kind === 'truncate') image = resize(image, pending.length);
        else {
          const kept = roll < 0.5 + this.faults.tornWriteRate * 0.5 ? Math.floor(this.random() * pending.length) : pending.length;
          image = applyWrite(image, pending.offset, pendingBytes(file, pending).subarray(0, kept));
          // Half the tears of a write that grew the file leave it grown, the rest zeros: a file
          // system that extends the file before its data lands (no draw of its own, so that no
          // other fault of a world moves).
          if (kept < pending.length && kept % 2 === 1 && image.length < pending.offset + pending.length) image = resize(image, pending.offset + pending.length);
        }
      }
      file.durable = image;
      file.visible = image;
      file.imagesShared = true;
      file.unsynced = [];
      file.visibleHeldEnd = 0;
    }
    const keep = Math.floor(this.random() * (this.unsyncedDirectory.length + 1));
    for (const operation of this.unsyncedDirectory.slice(0, keep)) applyDirectoryOperation(this.durableDirectory, operation, this.files);
    this.unsyncedDirectory = [];
    this.files = new Map(this.durableDirectory);
    this.durableDirectory = new Map(this.durableDirectory);
  }

  /**
   * The disk is lost for good and replaced by an empty one (the cluster world's lost disk): every
   * file, synced or not, is gone. Draws nothing from the disk's random stream.
   */
  wipe(): void {
    this.files = new Map();
    this.durableDirectory = new Map();
    this.unsyncedDirectory = [];
  }

  /** Flips one bit of synced data in a random file; returns where, or null when there is nothing synced. */
  flipDurableBit(): { file: string; offset: number } | null {
    const candidates = [...this.durableDirectory.entries()].filter(([, file]) => file.durable.length > 0 && file.unsynced.length === 0);
    if (candidates.length === 0) return null;
    const [name, file] = candidates[Math.floor(this.random() * candidates.length)]!;
    const offset = Math.floor(this.random() * file.durable.length);
    const bit = 1 << Math.floor(this.random() * 8);
    file.durable[offset]! ^= bit;
    if (!file.imagesShared) file.visible[offset]! ^= bit;
    this.corruptions.push({ file: name, offset });
    return { file: name, offset };
  }

  /** Sorted names and sizes of the visible directory, for traces and tests. */
  describe(): string {
    return [...this.files.entries()]
      .map(([name, file]) => `${name}:${file.visible.length}`)
      .sort()
      .join(',');
  }

  /** Every visible file with a copy of its bytes, sorted by name (what an operator's tool reads). */
  listFiles(): { name: string; bytes: Uint8Array }[] {
    return [...this.files.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, file]) => ({ name, bytes: file.visible.slice() }));
  }

  fileBytes(name: string): Uint8Array | undefined {
    return this.files.get(name)?.visible;
  }

  /** Test seam: overwrite bytes of a file in both images (planting damage on purpose). */
  corrupt(name: string, offset: number, value: number): void {
    const file = this.files.get(name);
    assert.ok(file !== undefined && offset < file.visible.length, `cannot corrupt ${name} at ${offset}`);
    keepPendingBytes(file);
    file.visible[offset] = value;
    file.durable[offset] = value;
    this.corruptions.push({ file: name, offset });
  }
}

/** Gives the visible image a buffer of its own, before it is changed in place. */
function unshare(file: SimulatedFile): void {
  assert.ok(file.unsynced.length === 0, 'a file whose images are shared has nothing unsynced');
  const copy = resize(new Uint8Array(0), file.visible.length);
  copy.set(file.visible);
  file.visible = copy;
  file.imagesShared = false;
}

/** The bytes an unsynced write wrote (a view of the visible image while it holds them). */
function pendingBytes(file: SimulatedFile, pending: PendingWrite & { kind: 'write' }): Uint8Array {
  if (pending.bytes !== null) return pending.bytes;
  assert.ok(pending.offset + pending.length <= file.visibleHeldEnd, 'a write read from the visible image lies before its held end');
  return file.visible.subarray(pending.offset, pending.offset + pending.length);
}

/**
 * Gives every unsynced write that reads its bytes from the visible image a copy of its own (a
 * view of the encoder's slab, byte-pool.ts, unless large), before the visible image changes
 * under it.
 */
function keepPendingBytes(file: SimulatedFile): void {
  for (const pending of file.unsynced) {
    if (pending.kind !== 'write' || pending.bytes !== null) continue;
    const copy = allocateBytes(pending.length);
    copy.set(file.visible.subarray(pending.offset, pending.offset + pending.length));
    pending.bytes = copy;
  }
  file.visibleHeldEnd = 0;
}

function enoent(requestId: number, name: string): StorageResult {
  return { requestId, ok: false, code: 'ENOENT', message: `no such file: ${name}` };
}

/** The smallest buffer an image grows into: a log or a snapshot starts with many small writes. */
const imageBytesMin = 4096;

/**
 * A file image of `length` bytes. Images are views over buffers that may be larger, doubled when
 * outgrown, so that a log's appends do not copy the whole file each time. Bytes of the buffer
 * past the view are kept zero (a truncation clears what it cuts), so a file extended by a write
 * past its end reads zeros in the gap, as on a real disk. May change `bytes` in place: the caller
 * replaces the image it passed with the one returned.
 */
function resize(bytes: Uint8Array, length: number): Uint8Array {
  if (length <= bytes.length) {
    bytes.fill(0, length);
    return bytes.subarray(0, length);
  }
  if (bytes.byteOffset === 0 && bytes.buffer.byteLength >= length) return new Uint8Array(bytes.buffer, 0, length);
  const grown = new Uint8Array(new ArrayBuffer(Math.max(length, bytes.length * 2, imageBytesMin)), 0, length);
  grown.set(bytes);
  return grown;
}

/** `image` with `bytes` written at `offset`, in place when it has room (see `resize`). */
function applyWrite(image: Uint8Array, offset: number, bytes: Uint8Array): Uint8Array {
  const result = image.length < offset + bytes.length ? resize(image, offset + bytes.length) : image;
  result.set(bytes, offset);
  return result;
}

function applyDirectoryOperation(directory: Map<string, SimulatedFile>, operation: DirectoryOperation, live: Map<string, SimulatedFile>): void {
  if (operation.kind === 'create') {
    const file = live.get(operation.file);
    if (file !== undefined && !directory.has(operation.file)) directory.set(operation.file, file);
  } else if (operation.kind === 'rename') {
    const file = directory.get(operation.from) ?? live.get(operation.to);
    directory.delete(operation.from);
    if (file !== undefined) directory.set(operation.to, file);
  } else {
    directory.delete(operation.file);
  }
}
