/**
 * A copy of bytes that owns its own memory. The host hands the core Node Buffers (a socket's
 * chunk, a file's read), and `Buffer.prototype.slice` is a view, unlike `Uint8Array.prototype.slice`:
 * a "copy" made with `.slice()` would keep the whole chunk alive for as long as the copy lives (a
 * retained message, a will, a stream entry), beyond every byte bound that counts the copy's length.
 * The simulator hands the core Buffers too, and its `kept-bytes-alias` rule fails a run that keeps
 * such a view (sim/kept-bytes-check.ts).
 */
export function ownCopy(bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array {
  const copy = new Uint8Array(end - start);
  copy.set(bytes.subarray(start, end));
  return copy;
}
