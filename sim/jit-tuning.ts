/**
 * How the simulator asks V8 to compile it: later, and so less.
 *
 * A simulator process runs a large body of code (the broker core, the store, the model clients,
 * the checkers) over worlds that each exercise a different part of it. With V8's default tiering
 * a function is handed to the optimizing compiler after a modest amount of interpreted work, and
 * a run of fifty seeds optimized (and after a deoptimization re-optimized) some seven hundred
 * functions: measured per thread (`/proc/self/task/*\/stat`), the compiler's background threads
 * took about 40 % of the process's CPU time (4.2 s of 9 s for seeds 1000-1049), against 5 s on
 * the thread that runs the worlds. A sixteen-fold interrupt budget lets a function run longer
 * in the baseline tiers before it is optimized: the lukewarm code of one kind of world is then
 * never compiled, the hot loops still are, and the background threads' time fell to under half
 * while the main thread's stayed within noise.
 *
 * It changes how fast the code runs, never what it does: a run's events and trace hash are the
 * same with and without it. V8's flags belong to the process (worker threads share them), so
 * only the simulator's entry points call this (`keel sim`, `keel vopr`, bench/sim-bench.ts), never
 * a module that a broker process may load, and never the tests.
 */
import { setFlagsFromString } from 'node:v8';

/** V8's default interrupt budget (Node 20) times sixteen. */
export const simulatorV8Flags = '--interrupt-budget=1081344';

let tuned = false;

/** Applies `simulatorV8Flags` to this process, once; call it before the simulator's modules run. */
export function tuneJitForSimulation(): void {
  if (tuned) return;
  tuned = true;
  setFlagsFromString(simulatorV8Flags);
}
