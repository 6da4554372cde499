/**
 * Simulator throughput: simulated events per second, seeds per minute and simulated time per
 * second, over a fixed range of seeds (each seed a differently shaped world, so the figure is a
 * typical mix), against the real broker.
 * Usage: node dist/bench/sim-bench.js [seedCount] [seedStart] [nodes]
 * where nodes is 1 (default: single-node worlds, the figure issue 17 names), 2 to 9 (cluster worlds
 * of that many nodes), or `vopr` (the mix `keel vopr` runs: about one seed in five a cluster of 2
 * or 3 nodes), or `movers` (cluster worlds with `--handover-movers`, the kind vopr runs most: 2 nodes
 * for even seeds, 3 for odd ones; `movers2` and `movers3` fix the count).
 *
 * Both wall time and the process's CPU time (user + system, from `process.cpuUsage`) are
 * reported: on a machine shared with other work the wall figures move with the load while the CPU
 * figures barely do, so compare CPU figures across runs taken at different times. The digest
 * line folds every seed's trace hash into one value: two builds that print the same digest ran
 * the same worlds event for event, so a speed change can be checked not to change behaviour.
 *
 * Like `keel sim` and `keel vopr`, the bench runs with the simulator's V8 tiering
 * (sim/jit-tuning.ts); `SIM_BENCH_V8_DEFAULTS=1` leaves V8's defaults, to tell that part of a
 * speed change from the code's.
 */
import { tuneJitForSimulation } from '../sim/jit-tuning.js';

const v8Defaults = process.env.SIM_BENCH_V8_DEFAULTS === '1';
if (!v8Defaults) tuneJitForSimulation();
// Loaded after the tuning, so that no simulator code has run under the defaults.
const [{ voprNodesForSeed }, { runSimulation }, { TraceHash }] = await Promise.all([import('../sim/cluster/cluster-world.js'), import('../sim/simulation.js'), import('../sim/trace-hash.js')]);

function main(): void {
  const seedCount = Number(process.argv[2] ?? 50);
  const seedStart = Number(process.argv[3] ?? 1_000);
  const nodesArgument = process.argv[4] ?? '1';
  const movers = nodesArgument === 'movers' || nodesArgument === 'movers2' || nodesArgument === 'movers3';
  const nodesOf = (seed: number): number => {
    if (nodesArgument === 'vopr') return voprNodesForSeed(seed);
    if (nodesArgument === 'movers') return seed % 2 === 0 ? 2 : 3;
    if (movers) return Number(nodesArgument.slice('movers'.length));
    return Number(nodesArgument);
  };
  if (!movers && nodesArgument !== 'vopr' && !(Number.isInteger(Number(nodesArgument)) && Number(nodesArgument) >= 1 && Number(nodesArgument) <= 9)) {
    throw new Error(`nodes must be 1 to 9, vopr, movers, movers2 or movers3, got ${nodesArgument}`);
  }
  let events = 0;
  let simulatedMs = 0;
  let failures = 0;
  let slowestMs = 0;
  const digest = new TraceHash();
  const startedMs = performance.now();
  const cpuStarted = process.cpuUsage();
  for (let seed = seedStart; seed < seedStart + seedCount; seed++) {
    const seedStartedMs = performance.now();
    const nodes = nodesOf(seed);
    const result = runSimulation({ seed, ...(nodes > 1 ? { nodes } : {}), ...(movers ? { handoverMovers: true } : {}), stdout: () => {}, stderr: () => {} });
    slowestMs = Math.max(slowestMs, performance.now() - seedStartedMs);
    events += result.events;
    simulatedMs += result.simulatedMs;
    digest.text(result.traceHash);
    if (!result.ok) failures += 1;
  }
  const wallMs = performance.now() - startedMs;
  const cpu = process.cpuUsage(cpuStarted);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const lines = [
    `sim-bench seeds=${seedCount} (from ${seedStart}) nodes=${nodesArgument} failures=${failures} events=${events} simulated_s=${(simulatedMs / 1000).toFixed(0)} v8=${v8Defaults ? 'defaults' : 'simulator tiering'}`,
    `  trace digest: ${digest.hex()}`,
    `  wall: ${(wallMs / 1000).toFixed(2)} s, slowest seed ${slowestMs.toFixed(0)} ms`,
    `  cpu: ${(cpuMs / 1000).toFixed(2)} s (user ${(cpu.user / 1e6).toFixed(2)}, system ${(cpu.system / 1e6).toFixed(2)}), ${(cpuMs / seedCount).toFixed(1)} ms per seed`,
    `  per wall second: ${Math.round(events / (wallMs / 1000))} events, ${(seedCount / (wallMs / 1000)).toFixed(1)} seeds, ${(simulatedMs / wallMs).toFixed(0)}x simulated time`,
    `  per cpu second: ${Math.round(events / (cpuMs / 1000))} events, ${(seedCount / (cpuMs / 1000)).toFixed(1)} seeds, ${(simulatedMs / cpuMs).toFixed(0)}x simulated time`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
