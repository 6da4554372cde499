/**
 * Simulator throughput: simulated events per wall-clock second and seeds per minute, over a
 * fixed range of seeds (each seed a differently shaped world, so the figure is a typical mix),
 * against the real broker. Usage: node dist/bench/sim-bench.js [seedCount] [seedStart]
 */
import { runSimulation } from '../sim/simulation.js';

function main(): void {
  const seedCount = Number(process.argv[2] ?? 50);
  const seedStart = Number(process.argv[3] ?? 1_000);
  let events = 0;
  let simulatedMs = 0;
  let failures = 0;
  let slowestMs = 0;
  const startedMs = performance.now();
  for (let seed = seedStart; seed < seedStart + seedCount; seed++) {
    const seedStartedMs = performance.now();
    const result = runSimulation({ seed, stdout: () => {}, stderr: () => {} });
    slowestMs = Math.max(slowestMs, performance.now() - seedStartedMs);
    events += result.events;
    simulatedMs += result.simulatedMs;
    if (!result.ok) failures += 1;
  }
  const wallMs = performance.now() - startedMs;
  const lines = [
    `sim-bench seeds=${seedCount} (from ${seedStart}) failures=${failures}`,
    `  wall: ${(wallMs / 1000).toFixed(2)} s, slowest seed ${slowestMs.toFixed(0)} ms`,
    `  simulated events per wall second: ${Math.round(events / (wallMs / 1000))}`,
    `  seeds per minute: ${Math.round(seedCount / (wallMs / 60_000))}`,
    `  simulated time per wall second: ${(simulatedMs / wallMs).toFixed(0)}x`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
