/**
 * The aggregate fan-out's load generator as a process of its own: bench/cluster-bench.ts forks it
 * with a FanoutPlan (JSON) as its one argument, and it answers over IPC with one message,
 * `{ result }` or `{ error }`, then exits. Its own CPU is part of the result (fanout-load.ts).
 */
import { type FanoutPlan, fanoutDeadlineMs, runFanout } from './fanout-load.js';

function main(): void {
  const plan = JSON.parse(process.argv[2] ?? '') as FanoutPlan;
  const deadlineMs = fanoutDeadlineMs(plan);
  const guard = setTimeout(() => {
    process.send?.({ error: `the load generator did not finish within ${deadlineMs} ms` });
    process.exit(2);
  }, deadlineMs);
  runFanout(plan).then(
    (result) => {
      clearTimeout(guard);
      process.send!({ result }, () => process.exit(0));
    },
    (error: unknown) => {
      clearTimeout(guard);
      process.send!({ error: (error as Error).message }, () => process.exit(1));
    },
  );
}

main();
