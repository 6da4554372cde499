/**
 * Proves that a run is a pure function of its seed: the same seed twice in one process prints
 * the same bytes (trace hash included), a second process prints them too, and different seeds
 * build different worlds.
 *
 * The cross-process check needs the simulator as plain JavaScript. Rather than depend on a full
 * `npm run build` (which fails while any engineer's file does not typecheck), it compiles the
 * import closure of sim/main.ts with the TypeScript compiler API into a temporary directory
 * (with a `node_modules` link back to the project's), then runs `node <tmp>/sim/main.js sim`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { runSimulation } from '../../sim/simulation.js';

function capture(seed: number): { lines: string[]; hash: string; shape: string } {
  const lines: string[] = [];
  const result = runSimulation({ seed, stdout: (line) => lines.push(line), stderr: () => {} });
  return { lines, hash: result.traceHash, shape: result.shape };
}

const projectRoot = resolve(import.meta.dirname, '../..');
let buildDirectory: string | null = null;

function compileSimulator(): string {
  const directory = mkdtempSync(join(tmpdir(), 'keel-sim-'));
  buildDirectory = directory;
  const parsed = ts.getParsedCommandLineOfConfigFile(join(projectRoot, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  if (parsed === undefined) throw new Error('cannot read tsconfig.json');
  const options = { ...parsed.options, outDir: directory, rootDir: projectRoot, sourceMap: false, noEmitOnError: false, incremental: false };
  const program = ts.createProgram([join(projectRoot, 'sim/main.ts')], options);
  program.emit();
  writeFileSync(join(directory, 'package.json'), '{"type":"module"}\n');
  symlinkSync(join(projectRoot, 'node_modules'), join(directory, 'node_modules'), 'dir');
  return join(directory, 'sim/main.js');
}

afterAll(() => {
  if (buildDirectory !== null) rmSync(buildDirectory, { recursive: true, force: true });
});

describe('simulation determinism', () => {
  it('prints the same bytes for the same seed twice in one process', () => {
    const first = capture(7);
    const second = capture(7);
    expect(second.lines).toEqual(first.lines);
    expect(first.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(first.lines.at(-1)).toContain(`trace_hash=${first.hash}`);
    // Not a speed test: a loaded machine takes seconds per world.
  }, 60_000);

  it('prints the same bytes for the same seed in another process', () => {
    const mainPath = compileSimulator();
    const inProcess = capture(7);
    const child = spawnSync(process.execPath, [mainPath, 'sim', '--seed', '7'], { encoding: 'utf8', timeout: 150_000 });
    expect(child.stderr).toContain('wall_ms=');
    expect(child.status).toBe(inProcess.lines[0]!.startsWith('ok') ? 0 : 1);
    expect(child.stdout).toBe(inProcess.lines.map((line) => `${line}\n`).join(''));
  }, 180_000);

  it('builds different worlds from different seeds', () => {
    const runs = [1, 2, 3, 4, 5, 6].map((seed) => capture(seed));
    expect(new Set(runs.map((run) => run.hash)).size).toBe(runs.length);
    expect(new Set(runs.map((run) => run.shape)).size).toBe(runs.length);
    // Seed 6 is a stream world, whose stream audit adds a minute of simulated time.
  }, 120_000);
});
