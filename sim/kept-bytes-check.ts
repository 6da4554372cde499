/**
 * The rule `kept-bytes-alias`: nothing the broker keeps long-term is a view of the world's input.
 *
 * The world hands the broker every input as a Node Buffer viewing a shared chunk (input-chunks.ts),
 * as the Node host does. A stored message, a will, an outbox entry or a stream entry whose bytes
 * are still such a view (a `.slice()` of a Buffer, a `subarray`, the input itself) keeps the whole
 * chunk alive for as long as it lives: memory no byte bound counts (the bug that reached us from
 * outside, fixed with codec/own-copy.ts). The broker lists what it keeps (src/broker/kept-bytes.ts)
 * and the rule fails the run on the first array whose buffer is one of the world's chunks,
 * whatever its length: the broker's own slabs and arenas are never one, so it cannot mistake them.
 *
 * The worlds run it every `keptBytesCheckIntervalMs` of simulated time (between events, so the
 * trace does not change), just before a broker crashes (what it kept is still there) and at the
 * end of the run. It reads the broker's tables, so it needs the real `Broker` behind a planted
 * bug's wrapper: a wrapper says what it wraps through `wrappedCore`.
 */
import { Broker } from '../src/broker/broker.js';
import { forEachKeptBytes } from '../src/broker/kept-bytes.js';
import type { BrokerCore } from '../src/contract.js';
import type { InputChunks } from './input-chunks.js';

/** How often (simulated time) a world looks over what its broker keeps. */
export const keptBytesCheckIntervalMs = 5_000;

/** A core that wraps another (a planted bug's wrapper): the rule looks at the one inside. */
export interface WrapsCore {
  readonly wrappedCore: BrokerCore;
}

/** The real broker behind `core`, or null when it cannot be reached (a wrapper that does not say). */
export function brokerBehind(core: BrokerCore): Broker | null {
  let current: BrokerCore | undefined = core;
  // Bounded: each step unwraps one layer, and wrappers nest a layer or two.
  for (let depth = 0; depth < 8 && current !== undefined; depth++) {
    if (current instanceof Broker) return current;
    current = (current as Partial<WrapsCore>).wrappedCore;
  }
  return null;
}

/** The first kept array of `core` that is a view of one of `chunks`, described; null when none is. */
export function keptBytesAlias(core: BrokerCore, chunks: InputChunks): string | null {
  const broker = brokerBehind(core);
  if (broker === null) return null;
  let found: string | null = null;
  forEachKeptBytes(broker, (kind, key, field, bytes) => {
    if (found !== null || !chunks.holds(bytes)) return;
    found = `${kind} ${key} keeps its ${field} (${bytes.byteLength} bytes) as a view of a ${bytes.buffer.byteLength}-byte chunk of the world's input, not a copy of its own`;
  });
  return found;
}
