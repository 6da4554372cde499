/**
 * `keel vopr --jobs N`: the same session as `runVopr` (vopr.ts), its seeds run on N worker
 * threads at once.
 *
 * Every seed is still one synchronous, deterministic run, whole on one thread; only which thread
 * runs it changes, and nothing of a run depends on that. Seeds are handed out in order, one at a
 * time to whichever worker is free, and their outcomes are added to the tally in seed order as
 * soon as every seed before them is in: so the lines printed (each failing seed, then the summary)
 * are those a single thread prints for the same seeds. When a seed fails and the session stops
 * at the first failure, no seed is handed out any more; the seeds already running finish, and
 * those after the failing one are dropped unreported, as a single thread would never have run
 * them. A `--minutes` budget stops the handing out; what is running finishes.
 *
 * A broker or store built by the caller (a test's factory) cannot cross to another thread: such a
 * session runs on the calling thread (`runVopr`).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { runVopr, type SeedOutcome, type VoprOptions, type VoprReporter, type VoprResult, VoprTally, voprPlan } from './vopr.js';

/** The run options a worker gets: everything of VoprOptions that can be posted (no factories). */
export type PostableVoprOptions = Omit<VoprOptions, 'brokerFactory' | 'storeFactory'>;

/** The messages between the session and a worker (vopr-worker.ts). */
export type ToWorker = { kind: 'seed'; seed: number } | { kind: 'stop' };
export type FromWorker = { kind: 'outcome'; outcome: SeedOutcome } | { kind: 'error'; seed: number; message: string };

/** Default `--jobs`: one worker per core the process may use. */
export function defaultJobs(): number {
  return availableParallelism();
}

export async function runVoprParallel(options: VoprOptions, reporter: VoprReporter, jobs: number): Promise<VoprResult> {
  if (!Number.isSafeInteger(jobs) || jobs < 1) throw new Error(`--jobs must be a positive integer, got ${jobs}`);
  if (jobs === 1 || options.brokerFactory !== undefined || options.storeFactory !== undefined) return runVopr(options, reporter);
  const { brokerFactory: _broker, storeFactory: _store, ...postable } = options;
  const { seedStart, count, deadlineMs } = voprPlan(options, reporter);
  const tally = new VoprTally(seedStart, reporter);
  const session = new Session(postable, tally, seedStart, count, deadlineMs, Math.min(jobs, Number.isFinite(count) ? Math.max(count, 1) : jobs));
  await session.run();
  return tally.finish();
}

/** The handing out of seeds to workers and the in-order tally of their outcomes. */
class Session {
  private seedNext: number;
  /** Outcomes that arrived before every seed below them was in, by seed. */
  private readonly waiting = new Map<number, SeedOutcome>();
  private seedToTally: number;
  private stopped = false;
  /** Set once the first failure is tallied in a session that stops at it: later seeds are not reported. */
  private tallyClosed = false;
  private running = 0;
  private readonly workers: Worker[] = [];

  constructor(
    private readonly options: PostableVoprOptions,
    private readonly tally: VoprTally,
    private readonly seedStart: number,
    private readonly count: number,
    private readonly deadlineMs: number,
    private readonly jobs: number,
  ) {
    this.seedNext = seedStart;
    this.seedToTally = seedStart;
  }

  run(): Promise<void> {
    return new Promise((resolve, reject) => {
      const fail = (error: Error): void => {
        this.stopped = true;
        for (const worker of this.workers) void worker.terminate();
        reject(error);
      };
      for (let index = 0; index < this.jobs; index++) {
        const worker = new Worker(new URL('./vopr-worker.js', import.meta.url), { workerData: this.options });
        this.workers.push(worker);
        worker.on('error', fail);
        worker.on('message', (message: FromWorker) => {
          if (message.kind === 'error') return fail(new Error(`vopr worker failed on seed ${message.seed}: ${message.message}`));
          this.running -= 1;
          this.arrived(message.outcome);
          if (!this.handOut(worker) && this.running === 0) {
            for (const each of this.workers) each.postMessage({ kind: 'stop' } satisfies ToWorker);
            resolve();
          }
        });
      }
      let handedOut = 0;
      for (const worker of this.workers) if (this.handOut(worker)) handedOut += 1;
      if (handedOut === 0) {
        for (const worker of this.workers) worker.postMessage({ kind: 'stop' } satisfies ToWorker);
        resolve();
      }
    });
  }

  /** Gives `worker` the next seed; false when the session hands out no more. */
  private handOut(worker: Worker): boolean {
    if (this.stopped || this.seedNext - this.seedStart >= this.count || Date.now() >= this.deadlineMs) return false;
    worker.postMessage({ kind: 'seed', seed: this.seedNext++ } satisfies ToWorker);
    this.running += 1;
    return true;
  }

  /** Tallies the outcomes that now follow on from every seed before them; stops at a failure unless going on. */
  private arrived(outcome: SeedOutcome): void {
    if (outcome.failure !== null && this.options.keepGoing !== true) this.stopped = true;
    this.waiting.set(outcome.seed, outcome);
    for (let next = this.waiting.get(this.seedToTally); next !== undefined; next = this.waiting.get(this.seedToTally)) {
      this.waiting.delete(this.seedToTally);
      this.seedToTally += 1;
      if (this.tallyClosed) continue;
      this.tally.add(next);
      if (next.failure !== null && this.options.keepGoing !== true) this.tallyClosed = true;
    }
  }
}
