/**
 * The order a host must keep among the core's storage requests (src/contract.ts, "Storage
 * requests"), as one function both hosts use: the Node backend (io/storage-lanes.ts) and the
 * simulator's disk device (sim/disk.ts).
 *
 * A request names the files it touches. Requests that share a file take effect and complete in the
 * order issued (a `sync` covers every `write` issued before it on its file; a `read` issued after
 * a `rename` reads the renamed file). Requests on different files may run at the same time and
 * complete in any order: the core never relies on one file's request finishing before another
 * file's unless it waited for the first one's result before issuing the second. The two requests
 * about the whole directory are barriers: `list` sees every request issued before it and none
 * after, and `sync-directory` makes durable every creation, rename and deletion issued before it
 * (the stream log deletes a segment's files and syncs the directory in one go, without waiting).
 */

import type { StorageRequest } from '../contract.js';

/** What a request must stay ordered with: the files it names, or the whole directory. */
export type StorageScope = { kind: 'files'; files: readonly string[] } | { kind: 'directory' };

const directoryScope: StorageScope = Object.freeze({ kind: 'directory' });

export function storageScope(request: StorageRequest): StorageScope {
  switch (request.op) {
    case 'list':
    case 'sync-directory':
      return directoryScope;
    case 'rename':
      // Ordered with both names: what was issued on the old name and what follows on the new one.
      return { kind: 'files', files: request.from === request.to ? [request.from] : [request.from, request.to] };
    default:
      return { kind: 'files', files: [request.file] };
  }
}
