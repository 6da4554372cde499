/**
 * Faults aimed at the steps of a session hand-over (src/cluster/session-handover.ts), so that the
 * shapes its crash rules guard come up in many seeds rather than one in thousands.
 *
 * Crashes and cuts drawn at random times seldom land between the two halves of a step: a node
 * that ended its copy of a session and has not yet synced that, a marker in the outbox and not
 * yet stored, a state put and not yet acknowledged. The rules of claim revisions (a stale copy
 * back from a crash, seed 8100075) and of the source that keeps the session for a newer claim's
 * marker (a source behind while its client moves on twice past a give-up, seed 5010652) need
 * exactly those moments. In a share of the worlds with movers that keep their sessions, the world
 * asks this module at each step whether to strike there:
 * - `copy-ended`: a node logged that it ended its copy of a session (another node's claim resumed
 *   the client without asking it, or a marker named others: `session-moved`,
 *   `handover-copy-ended`): it crashes at once, before the ending is synced, so its recovery may
 *   bring the copy back;
 * - `claim`, `marker`, `state`: a node's claim that asks for a hand-over, its marker (alone or in a
 *   batch) and a source's answer put into `keel-handover`: the node crashes just before the
 *   request goes to NATS, or once NATS has done it and before the node hears so;
 * - `adopted`: a node logged that it wrote an adopted session into its log: it crashes before
 *   that is durable, so it replays the marker;
 * - `source-cut`: a node sees a claim that asks it for the session: it is cut off from NATS for
 *   longer than the hand-over wait, so the claiming node gives up and the client moves on while
 *   the source is still behind the older marker.
 * Everything is drawn from streams of its own (`cluster-handover-faults`), so the worlds that do
 * not have these faults, and the other draws of those that do, are as before; the world's line
 * says `handover-faults=<crash chance>/<cut chance>`.
 */
import { decodeBatch, handoffBatchSubject } from '../../src/cluster/handoff-batch.js';
import { handoverBucket, handoverMarkerSubject } from '../../src/cluster/session-handover.js';
import { decodeOwner, sessionsBucket } from '../../src/cluster/session-registry.js';
import type { ClusterKeyChange, ClusterRequest } from '../../src/contract.js';
import { Random } from '../random.js';

/** What a world with hand-over faults strikes at, and how often. */
export interface HandoverFaultRates {
  /** The chance that a node crashes at one step of a hand-over it takes part in. */
  crashChance: number;
  /** The chance that a node asked for a session is cut off from NATS past the hand-over wait. */
  cutChance: number;
  /** How long a mover waits for a CONNACK before it moves on through another node (mover-client.ts). */
  connackPatienceMs: number;
}

/** The steps a crash can be aimed at; their counts are coverage (`keel sim`'s line, vopr's seeds). */
export const handoverFaultSteps = ['copy-ended', 'claim', 'marker', 'state', 'adopted', 'source-cut'] as const;
export type HandoverFaultStep = (typeof handoverFaultSteps)[number];

/** Where a crash at a request strikes: before it goes to NATS, or once NATS did it, before the node hears so. */
export type RequestCrash = 'before-sent' | 'before-acknowledged';

/** Log events after which the node crashes (with the step they stand for). */
const crashAfterLog: Readonly<Record<string, HandoverFaultStep>> = {
  'session-moved': 'copy-ended',
  'handover-copy-ended': 'copy-ended',
  'session-adopted': 'adopted',
};

/**
 * In half the worlds with movers that keep their sessions and with node crashes or NATS cuts;
 * the rest (and every world without such movers) draw nothing from their stream.
 */
export function chooseHandoverFaults(seed: number, handoverMovers: boolean, crashes: boolean, cuts: boolean): HandoverFaultRates | null {
  if (!handoverMovers || (!crashes && !cuts)) return null;
  const random = Random.stream(seed, 'cluster-handover-faults');
  if (!random.chance(0.5)) return null;
  return { crashChance: random.pick([0.1, 0.3, 0.6]), cutChance: random.pick([0.3, 0.6]), connackPatienceMs: random.pick([300, 1_000, 3_000]) };
}

export function describeHandoverFaults(rates: HandoverFaultRates | null): string {
  return rates === null ? '' : ` handover-faults=${rates.crashChance}/${rates.cutChance} connack-patience=${rates.connackPatienceMs}ms`;
}

/** The draws of one world's hand-over faults, and what they struck. */
export class HandoverFaults {
  private readonly random: Random;
  /** The claims already drawn for a cut (`<key>@<revision>`): a watch replays a claim after the cut, and it is not drawn again. */
  private readonly claimsSeen = new Set<string>();
  readonly struck: Record<HandoverFaultStep, number> = { 'copy-ended': 0, claim: 0, marker: 0, state: 0, adopted: 0, 'source-cut': 0 };

  constructor(
    seed: number,
    readonly rates: HandoverFaultRates,
    /** The longest a claiming node waits for a state (cluster.handoverWaitMs). */
    private readonly handoverWaitMs: number,
  ) {
    this.random = Random.stream(seed, 'cluster-handover-faults-draws');
  }

  /** The step a cluster request of a node is, if it is one a crash aims at. */
  private requestStep(request: ClusterRequest): HandoverFaultStep | null {
    if (request.op === 'kv-set' && request.value !== null) {
      if (request.bucket === handoverBucket) return 'state';
      if (request.bucket === sessionsBucket) return decodeOwner(request.value)?.handoverFrom === undefined ? null : 'claim';
      return null;
    }
    if (request.op !== 'publish-durable') return null;
    if (request.subject === handoverMarkerSubject) return 'marker';
    if (request.subject !== handoffBatchSubject) return null;
    return (decodeBatch(request.payload) ?? []).some((member) => member.subject === handoverMarkerSubject) ? 'marker' : null;
  }

  /** Whether (and where) the node crashes at this request, and the step it is. */
  atRequest(request: ClusterRequest): { step: HandoverFaultStep; crash: RequestCrash } | null {
    const step = this.requestStep(request);
    if (step === null || !this.random.chance(this.rates.crashChance)) return null;
    this.struck[step] += 1;
    return { step, crash: this.random.chance(0.5) ? 'before-sent' : 'before-acknowledged' };
  }

  /** Whether the node crashes right after it logged `event`. */
  atLog(event: string): boolean {
    const step = crashAfterLog[event];
    if (step === undefined || !this.random.chance(this.rates.crashChance)) return false;
    this.struck[step] += 1;
    return true;
  }

  /** How long to cut node `nodeId` off from NATS now that it saw `change`, or null. */
  cutAtClaim(nodeId: string, change: ClusterKeyChange): number | null {
    if (this.rates.cutChance === 0 || change.bucket !== sessionsBucket || change.value === null) return null;
    const owner = decodeOwner(change.value);
    if (owner === null || owner.node === nodeId || owner.handoverFrom !== nodeId) return null;
    const claim = `${change.key}@${change.revision}`;
    if (this.claimsSeen.has(claim)) return null;
    this.claimsSeen.add(claim);
    if (!this.random.chance(this.rates.cutChance)) return null;
    this.struck['source-cut'] += 1;
    // Past the wait, and long enough for the client to move on once or twice more meanwhile.
    return this.handoverWaitMs + this.random.int(200, 6_000);
  }

  /** The steps struck so far, for the run's line: `copy-ended:2,marker:1,...`. */
  describe(): string {
    return handoverFaultSteps.map((step) => `${step}:${this.struck[step]}`).join(',');
  }
}
