/**
 * Worlds with large payloads: some planned publishes carry hundreds of bytes to a few hundred KiB
 * instead of the usual few dozen.
 *
 * Why. Every other world's payloads stay under about 250 bytes, so whole paths of the broker were
 * never driven by the simulator: payloads above the slab bound get a copy of their own
 * (payload-slab.ts), packets that span several of the host's 64 KiB input chunks
 * (input-chunks.ts) must be reassembled from views of more than one chunk, a log record can be
 * larger than a log segment or the disk's largest write, one message can be larger than
 * `connectionOutputBytesMax` (it must still go out, and not stall its session), and a stream
 * entry or a retained value can be large. A payload still names itself (clients/payload.ts: its
 * filler length is part of its head), so the checker judges every large message as any other.
 *
 * From a stream of its own (`coverage:large-payloads`), after every other choice, so a world that
 * gets none is the world the seed built before. Not with one-byte-ish network segments (a 100 KiB
 * packet would be tens of thousands of events) nor with a small `packetBytesMax` (the broker would
 * refuse the packet, which hostile.ts covers).
 */
import { Random } from './random.js';
import type { WorldShape } from './shape.js';

/** About one world in this many gets large payloads. */
const worldsOneIn = 4;
/** Network segments at least this large (sizes drawn up to it) keep a large packet to a few hundred events. */
const segmentBytesMaxAtLeast = 1500;

/** Marks some of the world's planned publishes large; returns how many (0: the world is unchanged). */
export function chooseLargePayloads(shape: WorldShape): number {
  const random = Random.stream(shape.seed, 'coverage:large-payloads');
  if (!random.chance(1 / worldsOneIn)) return 0;
  if (shape.network.segmentBytesMax < segmentBytesMaxAtLeast || shape.configOverrides.packetBytesMax !== undefined) return 0;
  // How often a publish is large in this world, and how large they get.
  const share = random.pick([0.05, 0.2, 0.5]);
  const ceiling = random.pick([4_096, 32_768, 200_000]);
  let count = 0;
  for (const client of shape.clients) {
    if (client.violator) continue;
    for (const publish of client.publishes) {
      if (!random.chance(share)) continue;
      // Mostly just above the slab bound (512 B), sometimes near the ceiling.
      publish.fillerBytes = random.chance(0.7) ? random.int(513, Math.min(4_096, ceiling)) : random.int(Math.floor(ceiling / 2), ceiling);
      count += 1;
    }
  }
  return count;
}
