/**
 * What a node knows of every key of `keel-sessions` (session-registry.ts): per client id, the
 * newest revision its watch or its own claim showed, and what that revision says. Every node
 * holds one entry per client id of the whole cluster, most of them plain claims of other nodes'
 * clients, so those are kept as one number each instead of an object: `revision * nodesIndexedMax
 * + node index`, the node's name in a table of the first `nodesIndexedMax` names seen (a cluster
 * has a handful). An entry that says more (a deletion, an undecodable value, a hand-over, an
 * earlier claim's marker, a line other than its own revision and node, priors, a marker passed) or whose node or revision does not fit stays an object.
 * Reading a compact entry gives the object it stands for: the registry cannot tell the two apart.
 *
 * Cost (Node 20, 64-bit; heap after 100,000 plain claims of other nodes less the heap before): 141
 * bytes a key with objects, 69 with numbers (the map's slot and the client id remain). A number
 * takes no memory of its own while it is a small integer (revisions below 2^31 / nodesIndexedMax,
 * about 33 million), else a 16-byte heap number, still less than the object's 72.
 */
import { assert } from '../assert.js';

/** What this node last saw of a key: its revision (order), whether it exists, and its owner. */
export interface KnownKey {
  readonly revision: number;
  readonly present: boolean;
  readonly node: string | null;
  readonly handoverFrom: string | null;
  /** The revision of the claim whose marker carries its hand-over: its own, or an earlier one's (SessionOwner.markerRevision). */
  readonly markerRevision: number;
  /** Its session's line (SessionOwner.lineageRevision; `revision` for a claim that asked no one), null when unknown. */
  readonly lineageRevision: number | null;
  /** The node of the claim that started that line (SessionOwner.lineageNode; `node` for a claim that asked no one), null when unknown. */
  readonly lineageNode: string | null;
  /** The priors its marker names (SessionOwner.priors), nearest first; empty for none. */
  readonly priors: readonly string[];
  /** This node's reader has passed the marker of this claim (its hand-over is behind anything this node queues now). */
  readonly markerPassed: boolean;
}

/** Node names a compact entry can name; entries of further nodes are objects. */
const nodesIndexedMax = 64;

const noPriors: readonly string[] = Object.freeze([]);

export class KnownKeys {
  private readonly entries = new Map<string, KnownKey | number>();
  /** Node names by index, in the order first seen; never shrinks (at most nodesIndexedMax). */
  private readonly nodes: string[] = [];
  private readonly nodeIndexes = new Map<string, number>();

  get size(): number {
    return this.entries.size;
  }

  get(clientId: string): KnownKey | undefined {
    const entry = this.entries.get(clientId);
    if (typeof entry !== 'number') return entry;
    const index = entry % nodesIndexedMax;
    const revision = (entry - index) / nodesIndexedMax;
    const node = this.nodes[index];
    assert(node !== undefined, 'a compact entry names an indexed node');
    return { revision, present: true, node, handoverFrom: null, markerRevision: revision, lineageRevision: revision, lineageNode: node, priors: noPriors, markerPassed: false };
  }

  /** The revision of the key, undefined when unknown (without building the entry). */
  revisionOf(clientId: string): number | undefined {
    const entry = this.entries.get(clientId);
    if (typeof entry !== 'number') return entry?.revision;
    return (entry - (entry % nodesIndexedMax)) / nodesIndexedMax;
  }

  set(clientId: string, key: KnownKey): void {
    assert(Number.isSafeInteger(key.revision) && key.revision > 0, 'a known revision is a positive integer');
    this.entries.set(clientId, this.compact(key) ?? key);
  }

  clear(): void {
    this.entries.clear();
  }

  /** The number standing for `key`, or null when it says more than a plain claim or does not fit. */
  private compact(key: KnownKey): number | null {
    if (
      !key.present ||
      key.node === null ||
      key.handoverFrom !== null ||
      key.priors.length > 0 ||
      key.markerPassed ||
      key.markerRevision !== key.revision ||
      key.lineageRevision !== key.revision ||
      key.lineageNode !== key.node
    )
      return null;
    if (key.revision > Math.floor((Number.MAX_SAFE_INTEGER - nodesIndexedMax) / nodesIndexedMax)) return null;
    let index = this.nodeIndexes.get(key.node);
    if (index === undefined) {
      if (this.nodes.length === nodesIndexedMax) return null;
      index = this.nodes.length;
      this.nodes.push(key.node);
      this.nodeIndexes.set(key.node, index);
    }
    return key.revision * nodesIndexedMax + index;
  }
}
