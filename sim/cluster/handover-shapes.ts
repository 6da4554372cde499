/**
 * Shaped hand-over plans: in a share of the worlds with movers that keep their sessions, one mover
 * follows a scripted itinerary whose steps are chained on what the world observes (a CONNACK, a
 * node's log line, a claim won at NATS, a node ready again), not on clock draws, so that the
 * shapes the crash rules of session-handover.ts guard come up in many seeds rather than none.
 *
 * Random faults and aimed ones (handover-faults.ts) strike one step at a time. The shapes below
 * need several unlikely events in a row, each on the right node at the right moment; drawn per
 * step they did not chain in thousands of seeds (test/cluster/cluster-sim.test.ts, the planted
 * bugs skipped until this plan). Each plan is a chain of steps; `a` is the node that holds the
 * session first, `b` the node the client moves to while `a` is down:
 *
 * 1. the client connects to `a` (clean start) and subscribes; a while later `a` crashes and stays
 *    down past the hand-over wait; the client moves to `b`, whose claim asks `a` (marker m1);
 *    `b` gives up (`handover-timed-out`: session present 0, a fresh session, which subscribes).
 *    `a` still holds its copy of the session; the give-up writes a claim that starts the fresh
 *    session's line (session-registry.ts claimGivenUp), unless a newer claim came first;
 * 2. (`stale-copy`) the client connects to `b` once more: `b` resumes its fresh session under a
 *    claim that asks no one, the line of every later claim; (`giveup-no-claim`, 3 nodes or more)
 *    the client moves on to a third node `c`, which takes the fresh session from `b`;
 * 3. `a` comes back and the client connects there at once, before `a` has read m1: `a` wins a
 *    claim that asks for the session and crashes before it learns so (its marker is never queued).
 *    In `stale-copy`, `a` ends its copy for the resume of step 2 just before, and its disk is slow
 *    from then on (`slowDiskMs`), so the ending is not yet durable at the crash: the copy is back,
 *    a stale copy restored by a crash (seed 8100075's chain);
 * 4. the client moves to `b`, whose claim asks `a` (marker m3; in `giveup-no-claim` it names `c`
 *    as a prior); `a` comes back within the hand-over wait.
 *
 * At m1, `a` is a source still behind in the stream after its client moved on twice, past an older
 * claim whose node gave the hand-over up, while a newer claim asks it for the session at m3: the
 * rule that keeps the session for m3 (seed 5010652; planted bug `handover-serves-older-marker`,
 * which hands it over at m1, where `b` drops it as late) and the rule that ends a copy older than
 * the newer claim's line (seed 8100075; planted bug `session-revision-ignored`, which keeps the
 * stale copy and hands it over at m3, over the client's live session) decide there. Without
 * step 2's resume, only the give-up's claim tells `a` its copy from the session: the shapes
 * `older-marker` (2 nodes or more) and `giveup-no-claim` reached the hole of a give-up that wrote
 * no claim (17 seeds), and of one whose claim could not be written (12200045, closed by the
 * destination that takes the newest of several answers).
 *
 * The seed (a stream of its own, `cluster-handover-shapes`, so worlds without a plan draw nothing
 * new) chooses whether a world has a plan, which shape, the nodes and the delays between steps.
 * Every step waits for its event at most `stepWaitMsMax`; a step that does not come (a random fault
 * got in the way) abandons the plan: the held node restarts and the mover moves on its own again.
 * The world keeps its other clients and faults. The world's line says `handover-shape=<name>`.
 */
import { assert } from '../../src/assert.js';
import { decodeOwner, sessionKey, sessionsBucket } from '../../src/cluster/session-registry.js';
import { handoverWaitMsDefault } from '../../src/config.js';
import type { ClusterRequest } from '../../src/contract.js';
import { Random } from '../random.js';

export const handoverShapeNames = ['older-marker', 'stale-copy', 'giveup-no-claim', 'lost-marker'] as const;
export type HandoverShapeName = (typeof handoverShapeNames)[number];
/** The shapes a world draws; `lost-marker` is run by name only (`--handover-shape`). */
const drawnShapeNames: readonly HandoverShapeName[] = ['older-marker', 'stale-copy', 'giveup-no-claim'];

/** What a seed chose for its shaped plan. */
export interface HandoverShapeChoice {
  readonly name: HandoverShapeName;
  /**
   * The node that holds the session first, the node the client moves to while it is down, and
   * (`giveup-no-claim`) a third node the client moves on to from there; -1 in the other shapes.
   */
  readonly a: number;
  readonly b: number;
  readonly c: number;
  /** How long the client stays on `a` before `a` crashes. */
  readonly settleMs: number;
  /** How long after the give-up (and the fresh session's SUBACK) `a` comes back. */
  readonly afterGiveUpMs: number;
  /** How often the mover tries `a` while it starts again (the node must be ready). */
  readonly pollMs: number;
  /** How long `a` stays down after its crash at the claim, below the hand-over wait so the last claim is served. */
  readonly downAfterClaimMs: number;
  /**
   * How long `a`'s disk operations take once it ended its copy after its restart (`stale-copy`): a
   * slow disk, so that the ending is not yet durable when `a` crashes at its claim.
   */
  readonly slowDiskMs: number;
}

/**
 * How long `lost-marker` lets `b` be back before the client returns to it (on top of a drawn
 * settle): past the catch-up a world allows a hand-over (cluster-world.ts handoverMayHaveStalled).
 */
const lostMarkerSettleMs = 3_500;
/** How long a step waits for its event before the plan is abandoned. */
const stepWaitMsMax = 15_000;
/** The shortest active phase of a world with a plan: the chain takes a give-up (5 s) and a few restarts. */
export const handoverShapeActiveMsMin = 25_000;

/**
 * `force`: true runs a plan in every world with movers that keep their sessions (`--handover-shapes`),
 * false in none (`--no-handover-shapes`); undefined in half of them. 2 nodes: `older-marker` or
 * `stale-copy`; 3 or more: `giveup-no-claim` too.
 */
export function chooseHandoverShape(seed: number, nodes: number, handoverMovers: boolean, force: boolean | undefined, only?: HandoverShapeName): HandoverShapeChoice | null {
  if (!handoverMovers || (force === false && only === undefined)) return null;
  const random = Random.stream(seed, 'cluster-handover-shapes');
  if (force !== true && only === undefined && !random.chance(0.5)) return null;
  // The shapes drawn are those of before `lost-marker`, so that a seed draws what it drew then.
  const names = drawnShapeNames.filter((name) => nodes >= 3 || name !== 'giveup-no-claim');
  const drawn = random.pick(names);
  // vopr's mix with every plan giveup-no-claim: its worlds of 2 nodes have none (`keel sim` refuses the pair, run-options.ts checkRunOptions).
  if (only === 'giveup-no-claim' && nodes < 3) return null;
  const name = only ?? drawn;
  const a = random.int(0, nodes - 1);
  const b = (a + random.int(1, nodes - 1)) % nodes;
  assert(a !== b, 'the client moves to another node than the one that holds its session');
  let c = -1;
  // Nodes other than a and b exist here (3 or more), so the draw ends; a bound keeps it honest.
  for (let draws = 0; name === 'giveup-no-claim' && (c === -1 || c === a || c === b); draws++) {
    assert(draws < 10_000, 'a third node is drawn');
    c = random.int(0, nodes - 1);
  }
  assert(name !== 'giveup-no-claim' || (c !== a && c !== b), 'giveup-no-claim moves on to a third node');
  return {
    name,
    a,
    b,
    c,
    settleMs: random.int(100, 2_000),
    afterGiveUpMs: random.int(0, 1_500),
    pollMs: random.int(1, 30),
    downAfterClaimMs: random.int(100, handoverWaitMsDefault - 1_500),
    slowDiskMs: random.int(20, 400),
  };
}

export function describeHandoverShape(choice: HandoverShapeChoice | null): string {
  if (choice === null) return '';
  return ` handover-shape=${choice.name}:a=n${choice.a},b=n${choice.b}${choice.c === -1 ? '' : `,c=n${choice.c}`}`;
}

/** What the plan asks of the world. */
export interface ShapeWorld {
  quiet(): boolean;
  nowMs(): number;
  trace(line: string): void;
  schedule(atMs: number, run: () => void): void;
  /** Crashes node `node`; it stays down until restartHeld. */
  crashHeld(node: number, why: string): void;
  /** Starts a node held down (nothing if it runs). */
  restartHeld(node: number): void;
  /** Whether node `node` accepts connections. */
  accepting(node: number): boolean;
  /** Node `node`'s disk operations take `delayMs` more from now on (0: as before). */
  slowDisk(node: number, delayMs: number): void;
}

/** What the plan drives: one mover, taken out of its own moves while the plan runs. */
export interface ShapedMover {
  readonly clientId: string;
  /** Opens a new connection to `node` (the previous one left open); false when the node does not accept. */
  connectTo(node: number): boolean;
  /** Gives the mover back its own moves. */
  release(): void;
}

/** The events a step waits for. */
type ShapeEvent = { kind: 'connack'; node: number; present: boolean } | { kind: 'suback' } | { kind: 'log'; node: number; event: string } | { kind: 'claim-crash'; node: number };

interface Step {
  readonly label: string;
  /** What the step does when it starts. */
  readonly act: () => void;
  /** The event that ends the step; `timer`: the step's own delay ends it (after); null: it ends at once. */
  readonly until: ((event: ShapeEvent) => boolean) | 'timer' | null;
}

export class HandoverShapePlan {
  private readonly stepList: Step[];
  private index = -1;
  private deadlineToken = 0;
  /** The node whose next won claim of the mover's key (one asking a node for the session) crashes it, or null. */
  private crashAtClaimOf: number | null = null;
  private readonly held = new Set<number>();
  /** Steps the plan got through, and whether it ran to its end. */
  reached = 0;
  completed = false;
  abandoned: string | null = null;

  constructor(
    readonly choice: HandoverShapeChoice,
    private readonly world: ShapeWorld,
    private readonly mover: ShapedMover,
  ) {
    this.stepList = this.stepsOf(choice);
  }

  private stepsOf(choice: HandoverShapeChoice): Step[] {
    const { a, b, c } = choice;
    const subscribed = (event: ShapeEvent) => event.kind === 'suback';
    if (choice.name === 'lost-marker') {
      return [
        { label: `connect n${a}`, act: () => this.connectWhenReady(a), until: subscribed },
        { label: 'settle', act: () => this.after(choice.settleMs), until: 'timer' },
        // `b` wins a claim that asks `a` and crashes before it learns so: its marker is never queued.
        { label: `move to n${b}, crash at its claim`, act: () => this.claimAndCrash(b), until: (event) => event.kind === 'claim-crash' && event.node === b },
        { label: `n${b} down`, act: () => this.after(choice.afterGiveUpMs), until: 'timer' },
        { label: `restart n${b}`, act: () => this.restart(b), until: null },
        // Long enough for `b` to be back and caught up, so that a hand-over that times out is not the world's doing.
        { label: `n${b} catches up`, act: () => this.after(lostMarkerSettleMs + choice.settleMs), until: 'timer' },
        // `a` is up throughout and still holds the session: the client must get it on `b`.
        { label: `connect n${b} again`, act: () => this.connectWhenReady(b), until: (event) => event.kind === 'connack' && event.node === b },
      ];
    }
    const steps: Step[] = [
      { label: `connect n${a}`, act: () => this.connectWhenReady(a), until: subscribed },
      { label: 'settle', act: () => this.after(choice.settleMs), until: 'timer' },
      // The give-up: `b`'s claim asks `a`, down past the hand-over wait; the fresh session subscribes.
      { label: `crash n${a}, move to n${b}`, act: () => this.crashAndMove(a, b), until: (event) => event.kind === 'log' && event.node === b && event.event === 'handover-timed-out' },
      { label: 'fresh session subscribed', act: () => {}, until: subscribed },
    ];
    if (choice.name === 'stale-copy') {
      // A resume on `b` that asks no one: the line of every later claim.
      steps.push({ label: `connect n${b} again`, act: () => this.connect(b), until: (event) => event.kind === 'connack' && event.node === b });
    }
    if (choice.name === 'giveup-no-claim') {
      // The fresh session moves on from `b` to `c` (a claim of `c` that asks `b`).
      steps.push({ label: `move to n${c}`, act: () => this.connect(c), until: (event) => event.kind === 'connack' && event.node === c });
    }
    steps.push(
      { label: 'wait', act: () => this.after(choice.afterGiveUpMs), until: 'timer' },
      {
        label: `restart n${a}, connect there, crash at its claim`,
        act: () => this.restartAndClaim(a),
        until: (event) => event.kind === 'claim-crash' && event.node === a,
      },
      { label: `move to n${b}`, act: () => this.connect(b), until: (event) => event.kind === 'log' && event.node === b && event.event === 'handover-requested' },
      { label: `n${a} down`, act: () => this.after(choice.downAfterClaimMs), until: 'timer' },
      { label: `restart n${a}`, act: () => this.restart(a), until: (event) => event.kind === 'connack' && event.node === b },
    );
    return steps;
  }

  /** How many steps the plan has. */
  get steps(): number {
    return this.stepList.length;
  }

  /** Starts the plan (instead of the mover's first connection). */
  start(): void {
    this.next();
  }

  // ---- what the world tells the plan --------------------------------------------------------

  connack(node: number, present: boolean): void {
    this.observe({ kind: 'connack', node, present });
  }

  subscribed(): void {
    this.observe({ kind: 'suback' });
  }

  logged(node: number, event: string, clientId: unknown): void {
    if (clientId !== this.mover.clientId) return;
    // `a`, back, ends its copy for the resume on `b` while it claims: its disk slows down, so the
    // ending is not yet durable when it crashes at its claim and its recovery brings the copy back.
    if (this.choice.name === 'stale-copy' && this.crashAtClaimOf === node && event === 'session-moved') this.world.slowDisk(node, this.choice.slowDiskMs);
    this.observe({ kind: 'log', node, event });
  }

  /** Whether node `node` crashes once NATS did `request`, before it hears so (a claim of the mover's key it wins). */
  crashAtAcknowledgement(node: number, request: ClusterRequest): boolean {
    if (this.crashAtClaimOf !== node || this.world.quiet()) return false;
    if (request.op !== 'kv-set' || request.bucket !== sessionsBucket || request.key !== sessionKey(this.mover.clientId) || request.value === null) return false;
    return decodeOwner(request.value)?.handoverFrom !== undefined;
  }

  /** Node `node` crashed at its claim (crashAtAcknowledgement): it stays down until the plan restarts it. */
  claimCrashed(node: number): void {
    this.crashAtClaimOf = null;
    this.world.slowDisk(node, 0);
    this.held.add(node);
    this.observe({ kind: 'claim-crash', node });
  }

  /** Whether the plan holds node `node` down (the world does not restart it). */
  holds(node: number): boolean {
    return this.held.has(node);
  }

  /** The world went quiet: the plan stops where it is. */
  stop(): void {
    if (this.completed || this.abandoned !== null) return;
    this.abandon('the world went quiet');
  }

  // ---- the steps ----------------------------------------------------------------------------

  private observe(event: ShapeEvent): void {
    const step = this.stepList[this.index];
    if (step === undefined || this.completed || this.abandoned !== null || typeof step.until !== 'function' || !step.until(event)) return;
    this.next();
  }

  private next(): void {
    assert(!this.completed && this.abandoned === null, 'a plan that ended takes no further step');
    if (this.world.quiet()) return this.abandon('the world went quiet');
    this.reached = this.index + 1;
    this.index += 1;
    const step = this.stepList[this.index];
    if (step === undefined) return this.complete();
    this.world.trace(`shape ${this.choice.name} step ${this.index} ${step.label}`);
    const token = ++this.deadlineToken;
    this.world.schedule(this.world.nowMs() + stepWaitMsMax, () => {
      if (token === this.deadlineToken && this.index < this.stepList.length && !this.completed && this.abandoned === null) this.abandon(`step ${this.index} (${step.label}) waited ${stepWaitMsMax}ms`);
    });
    step.act();
    if (step.until === null) this.next();
  }

  /** Ends a timed step after `delayMs`. */
  private after(delayMs: number): void {
    const index = this.index;
    this.world.schedule(this.world.nowMs() + delayMs, () => {
      if (this.index === index && !this.completed && this.abandoned === null) this.next();
    });
  }

  private connect(node: number): void {
    if (!this.mover.connectTo(node)) this.abandon(`n${node} did not accept the mover`);
  }

  /** Connects as soon as `node` accepts (it may be starting again). */
  private connectWhenReady(node: number): void {
    const index = this.index;
    const attempt = () => {
      if (this.index !== index || this.abandoned !== null || this.world.quiet()) return;
      if (this.world.accepting(node) && this.mover.connectTo(node)) return;
      this.world.schedule(this.world.nowMs() + this.choice.pollMs, attempt);
    };
    attempt();
  }

  private crashAndMove(down: number, to: number): void {
    this.held.add(down);
    this.world.crashHeld(down, `shape ${this.choice.name}: the session's node goes down past the hand-over wait`);
    this.connectWhenReady(to);
  }

  /** The mover connects to `node`, whose next won claim of its key crashes it (held down). */
  private claimAndCrash(node: number): void {
    this.crashAtClaimOf = node;
    this.connectWhenReady(node);
  }

  private restartAndClaim(node: number): void {
    this.crashAtClaimOf = node;
    this.restart(node);
    this.connectWhenReady(node);
  }

  private restart(node: number): void {
    this.held.delete(node);
    this.world.restartHeld(node);
  }

  private complete(): void {
    this.completed = true;
    this.world.trace(`shape ${this.choice.name} completed`);
    this.mover.release();
  }

  private abandon(why: string): void {
    this.abandoned = why;
    if (this.crashAtClaimOf !== null) this.world.slowDisk(this.crashAtClaimOf, 0);
    this.crashAtClaimOf = null;
    this.world.trace(`shape ${this.choice.name} abandoned: ${why}`);
    for (const node of [...this.held]) this.restart(node);
    this.mover.release();
  }
}
