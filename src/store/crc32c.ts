/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every stored record.
 *
 * Chosen over CRC-32 (IEEE) for its better error detection on storage-sized blocks, and because
 * it is the checksum storage systems conventionally use for logs. Slicing-by-8 tables make it
 * fast enough for the write path without native code: eight table look-ups per eight bytes. On a
 * little-endian host the eight bytes are read as two 32-bit words of an Int32Array over the same
 * memory (one load where there were four), which made it about 1.4x faster on a MiB; the view is
 * kept for the last buffer seen, since most checksums run over the encoder's one slab
 * (codec/byte-pool.ts) or one snapshot image, so a call makes no view of its own.
 */
import { assert } from '../assert.js';

const tables: Uint32Array[] = buildTables();
// One constant per table rather than a destructuring in every call: destructuring an array makes
// an iterator, and code that V8 has not optimized yet (the simulator's tiering keeps code longer
// in the baseline tiers, sim/jit-tuning.ts) really allocates it.
const t0 = tables[0]!;
const t1 = tables[1]!;
const t2 = tables[2]!;
const t3 = tables[3]!;
const t4 = tables[4]!;
const t5 = tables[5]!;
const t6 = tables[6]!;
const t7 = tables[7]!;

function buildTables(): Uint32Array[] {
  const result: Uint32Array[] = [];
  const first = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    first[byte] = crc >>> 0;
  }
  result.push(first);
  for (let slice = 1; slice < 8; slice++) {
    const previous = result[slice - 1]!;
    const table = new Uint32Array(256);
    for (let byte = 0; byte < 256; byte++) {
      table[byte] = ((previous[byte]! >>> 8) ^ first[previous[byte]! & 0xff]!) >>> 0;
    }
    result.push(table);
  }
  return result;
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/**
 * Below this many bytes the word loop is not worth finding the words: best of nine alternated
 * runs, 64 bytes went at 0.6x the byte loop's speed, 100 and 160 at 1x, 256 at 1.2x.
 */
const wordBytesMin = 192;
let wordsBuffer: ArrayBufferLike | null = null;
let words: Int32Array<ArrayBufferLike> = new Int32Array(0);

/** Continues a CRC-32C over `bytes[start, end)`; start a fresh checksum with `crc = 0`. */
export function crc32c(bytes: Uint8Array, crc = 0, start = 0, end = bytes.length): number {
  let value = ~crc >>> 0;
  let index = start;
  if (littleEndian && end - index >= wordBytesMin) {
    // Bytes up to a 4-byte boundary of the underlying buffer one by one, then words.
    while (((bytes.byteOffset + index) & 3) !== 0) {
      value = t0[(value ^ bytes[index]!) & 0xff]! ^ (value >>> 8);
      index++;
    }
    if (wordsBuffer !== bytes.buffer) {
      wordsBuffer = bytes.buffer;
      words = new Int32Array(bytes.buffer, 0, bytes.buffer.byteLength >>> 2);
    }
    const word = (bytes.byteOffset + index) >>> 2;
    const wordCount = ((end - index) >>> 3) * 2;
    assert(word + wordCount <= words.length, 'the words lie inside the buffer');
    value = crc32cWords(words, value, word, word + wordCount);
    index += wordCount * 4;
  }
  while (end - index >= 8) {
    const low = value ^ (bytes[index]! | (bytes[index + 1]! << 8) | (bytes[index + 2]! << 16) | (bytes[index + 3]! << 24));
    value = t7[low & 0xff]! ^ t6[(low >>> 8) & 0xff]! ^ t5[(low >>> 16) & 0xff]! ^ t4[low >>> 24]! ^ t3[bytes[index + 4]!]! ^ t2[bytes[index + 5]!]! ^ t1[bytes[index + 6]!]! ^ t0[bytes[index + 7]!]!;
    index += 8;
  }
  while (index < end) {
    value = t0[(value ^ bytes[index]!) & 0xff]! ^ (value >>> 8);
    index++;
  }
  return ~value >>> 0;
}

/** The slicing-by-8 step over `words[word, wordEnd)`, two words (eight bytes, little-endian) at a time. */
function crc32cWords(words: Int32Array<ArrayBufferLike>, value: number, word: number, wordEnd: number): number {
  let result = value;
  for (let at = word; at < wordEnd; at += 2) {
    const low = result ^ words[at]!;
    const high = words[at + 1]!;
    result = t7[low & 0xff]! ^ t6[(low >>> 8) & 0xff]! ^ t5[(low >>> 16) & 0xff]! ^ t4[low >>> 24]! ^ t3[high & 0xff]! ^ t2[(high >>> 8) & 0xff]! ^ t1[(high >>> 16) & 0xff]! ^ t0[high >>> 24]!;
  }
  return result;
}
