/**
 * Preloaded into a Node broker under test (`node --expose-gc --import <this file> ...`, peers.ts)
 * so that the harness can read its V8 heap from outside: on SIGUSR2 it runs a full collection
 * (twice: the first may leave finalizable garbage for the second) and writes the heap figures as
 * JSON to the file named by KEEL_BENCH_HEAP_FILE, then renames it into place so that the harness
 * never reads half a file.
 *
 * The figures are the live heap after that collection, the part of resident memory that the
 * broker's own objects decide; what V8 keeps committed around them (heapTotal) and memory outside
 * the heap (sockets' native halves, buffers) are reported beside them. The probe costs nothing
 * until the signal: one listener and two small modules. Reading the heap moves it (the collection
 * frees garbage), so the harness reads the process's RSS first.
 */
import { renameSync, writeFileSync } from 'node:fs';

export interface HeapReading {
  /** Live V8 heap after a full collection. */
  heapUsedBytes: number;
  /** What V8 has committed for its heap (spaces, including the young generation). */
  heapTotalBytes: number;
  /** Memory outside the heap held by JavaScript objects (Buffers, ArrayBuffers). */
  externalBytes: number;
}

const file = process.env.KEEL_BENCH_HEAP_FILE;
const collect = (globalThis as { gc?: () => void }).gc;

if (file !== undefined && file !== '') {
  process.on('SIGUSR2', () => {
    collect?.();
    collect?.();
    const usage = process.memoryUsage();
    const reading: HeapReading = { heapUsedBytes: usage.heapUsed, heapTotalBytes: usage.heapTotal, externalBytes: usage.external };
    writeFileSync(`${file}.partial`, JSON.stringify({ ...reading, collected: collect !== undefined }));
    renameSync(`${file}.partial`, file);
  });
}
