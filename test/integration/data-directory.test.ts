/**
 * Proves, with real `keel serve` and `keel inspect` child processes, that a data directory has one
 * user at a time and that a directory the broker cannot use stops it before it listens:
 *
 * - a second `keel serve` on the same directory exits 1 at once, naming the first one's PID; the
 *   first keeps serving, and after it stops the directory verifies clean and holds no lock; of two
 *   started at the same instant, exactly one runs;
 * - after SIGKILL (no cleanup at all) a new broker starts on the same directory, replacing the
 *   stale lock and logging that it did;
 * - `keel inspect --repair` refuses (exit 1, naming the PID) while a broker runs there, and plain
 *   `keel inspect` reads the directory beside it;
 * - a data directory that cannot be written (read-only; for root, immutable) or created (its
 *   parent is a regular file) makes `keel serve` exit 1 with the directory and the operating
 *   system's error, without a `listening` line.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Clients, ensureBuilt, type KeelProcess, runKeel, startKeelProcess, waitUntil } from './helpers.js';
import { unwritableDirectory } from './unwritable-directory.js';

let workDirectory: string;
const children: KeelProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  workDirectory = mkdtempSync(join(tmpdir(), 'keel-data-directory-'));
}, 60_000);

afterAll(async () => {
  // Every child is gone before its directories are removed, so none writes into a removal.
  for (const keel of children) if (keel.child.exitCode === null && keel.child.signalCode === null) keel.child.kill('SIGKILL');
  await Promise.all(children.map((keel) => keel.exited));
  rmSync(workDirectory, { recursive: true, force: true });
});

async function serve(directory: string): Promise<KeelProcess & { port: number }> {
  const keel = await startKeelProcess(directory);
  children.push(keel);
  return keel;
}

function run(args: string[]): KeelProcess {
  const keel = runKeel(args);
  children.push(keel);
  return keel;
}

describe('one process per data directory', () => {
  it('a second keel serve exits 1 naming the first one, which keeps serving', async () => {
    const directory = join(workDirectory, 'shared');
    const first = await serve(directory);
    const second = run(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', directory]);
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toContain(`data directory ${directory} is in use by keel serve (PID ${first.child.pid}, since `);
    expect(second.stderr()).toContain('two processes in one data directory would corrupt it');
    expect(second.stdout()).not.toContain('"event":"listening"');
    const clients = new Clients(() => first.port);
    const { client } = await clients.connect(4, { clientId: 'keeper', clean: false });
    await client.publishAsync('kept/topic', 'still here', { qos: 1, retain: true });
    await clients.endAll();
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(existsSync(join(directory, 'keel.lock'))).toBe(false);
    const inspected = run(['inspect', directory]);
    expect(await inspected.exited).toBe(0);
    expect(inspected.stdout()).toContain('every checksum verified: ok');
  }, 20_000);

  it('of two keel serve started at the same instant, exactly one runs and the other names it', async () => {
    const directory = join(workDirectory, 'race');
    const racers = [0, 1].map(() => run(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', directory]));
    const listening = (keel: KeelProcess): boolean => keel.stdout().includes('"event":"listening"');
    await waitUntil(() => racers.some((keel) => keel.child.exitCode !== null) && racers.some(listening), 10_000, 'one broker listening and one gone');
    const loser = racers.find((keel) => keel.child.exitCode !== null)!;
    const winner = racers.find((keel) => keel !== loser)!;
    expect(loser.child.exitCode).toBe(1);
    expect(loser.stderr()).toContain(`is in use by keel serve (PID ${winner.child.pid}, since `);
    expect(listening(loser)).toBe(false);
    expect(winner.child.exitCode).toBeNull();
    winner.child.kill('SIGTERM');
    expect(await winner.exited).toBe(0);
  }, 20_000);

  it('after SIGKILL, a new keel serve takes over the stale lock and says so', async () => {
    const directory = join(workDirectory, 'killed');
    const killed = await serve(directory);
    killed.child.kill('SIGKILL');
    await killed.exited;
    expect(readdirSync(directory)).toContain('keel.lock');
    const restarted = await serve(directory);
    expect(restarted.stdout()).toMatch(new RegExp(`"event":"stale-lock-replaced".*"pid":${killed.child.pid},"why":"process ${killed.child.pid} is gone"`));
    restarted.child.kill('SIGTERM');
    expect(await restarted.exited).toBe(0);
  }, 20_000);

  it('keel inspect --repair refuses while a broker runs; keel inspect reads beside it', async () => {
    const directory = join(workDirectory, 'busy');
    const keel = await serve(directory);
    const repair = run(['inspect', directory, '--repair']);
    expect(await repair.exited).toBe(1);
    expect(repair.stderr()).toContain(`cannot inspect ${directory}: data directory ${directory} is in use by keel serve (PID ${keel.child.pid}, since `);
    const inspect = run(['inspect', directory]);
    expect(await inspect.exited).toBe(0);
    expect(inspect.stdout()).toMatch(/keel\.lock {2}other/);
    keel.child.kill('SIGTERM');
    expect(await keel.exited).toBe(0);
    const repairAfter = run(['inspect', directory, '--repair']);
    expect(await repairAfter.exited).toBe(0);
    expect(repairAfter.stdout()).toContain('repair: nothing to repair');
    expect(existsSync(join(directory, 'keel.lock'))).toBe(false);
  }, 20_000);
});

describe('a data directory that cannot be used', () => {
  it('read-only: keel serve exits 1 naming the directory and the error, before it listens', async (context) => {
    const directory = join(workDirectory, 'read-only');
    mkdirSync(directory);
    const made = unwritableDirectory(directory);
    if (!made.ok) {
      context.skip(made.reason);
      return;
    }
    try {
      const keel = run(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', directory]);
      expect(await keel.exited).toBe(1);
      expect(keel.stderr()).toMatch(new RegExp(`^keel: cannot start on 127\\.0\\.0\\.1:0: data directory ${directory} is not writable: (EACCES|EPERM|EROFS): `));
      expect(keel.stdout()).not.toContain('"event":"listening"');
    } finally {
      made.undo();
    }
  }, 10_000);

  it('under a regular file: keel serve exits 1 naming the directory and the error', async () => {
    const file = join(workDirectory, 'a-file');
    writeFileSync(file, 'not a directory');
    const directory = join(file, 'data');
    const keel = run(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', directory]);
    expect(await keel.exited).toBe(1);
    expect(keel.stderr()).toContain(`cannot create data directory ${directory}: ENOTDIR`);
    expect(keel.stdout()).not.toContain('"event":"listening"');
  }, 10_000);
});
