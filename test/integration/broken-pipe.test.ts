/**
 * Proves that closing the pipe a command prints into is a quiet way to stop it: `keel sim --trace`,
 * `keel vopr`, `keel inspect` and `keel sub` run as child processes of the built CLI whose stdout
 * this process reads and then closes (after the first line, like `| head -n 1`, or before any
 * output); each must exit with 141 (128 + SIGPIPE, see io/broken-pipe.ts) and print no error or
 * stack trace. Before, each died of an unhandled EPIPE with a stack trace on stderr.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { Clients, ensureBuilt, repositoryRoot, startBroker } from './helpers.js';

let directory = '';
let server: RunningServer;
const children: ChildProcess[] = [];
const clients = new Clients(() => server.port);

beforeAll(async () => {
  ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), 'keel-broken-pipe-'));
  server = await startBroker();
}, 60_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await clients.endAll();
  await server.close();
  rmSync(directory, { recursive: true, force: true });
});

interface Ending {
  code: number | null;
  stderr: string;
  firstLine: string;
}

/**
 * Runs `keel <args>` with its stdout piped here, and closes that pipe after the first line (or,
 * with `closeAtOnce`, before the command can print anything).
 */
function runAndCloseStdout(args: string[], closeAtOnce = false): Promise<Ending> {
  const child = spawn(process.execPath, [join(repositoryRoot, 'dist', 'io', 'cli.js'), ...args], { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  if (closeAtOnce) child.stdout!.destroy();
  else {
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (stdout.includes('\n')) child.stdout!.destroy();
    });
  }
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr, firstLine: stdout.split('\n')[0]! })));
}

function expectQuietStop(ending: Ending): void {
  expect(ending.code).toBe(141);
  expect(ending.stderr).not.toMatch(/EPIPE|Error|\n\s+at /);
}

describe('a closed output pipe', () => {
  it('stops keel sim --trace quietly after the first line', async () => {
    const ending = await runAndCloseStdout(['sim', '--seed', '42', '--trace']);
    expect(ending.firstLine).toMatch(/^0 broker start/);
    expectQuietStop(ending);
  }, 30_000);

  it('stops keel vopr quietly', async () => {
    const ending = await runAndCloseStdout(['vopr', '--count', '1', '--seed-start', '3'], true);
    expectQuietStop(ending);
    expect(ending.stderr).toContain('vopr: seeds from 3');
  }, 30_000);

  it('stops keel inspect quietly', async () => {
    const dataDirectory = join(directory, 'empty-data');
    mkdirSync(dataDirectory);
    expectQuietStop(await runAndCloseStdout(['inspect', dataDirectory], true));
  }, 30_000);

  it('stops keel sub quietly when it has a message to print', async () => {
    const { client } = await clients.connect(5);
    await client.publishAsync('pipe/retained', 'hello', { qos: 1, retain: true });
    // The retained message reaches keel sub right after its SUBACK, and its output is already closed.
    const ending = await runAndCloseStdout(['sub', '-h', '127.0.0.1', '-p', String(server.port), '-t', 'pipe/retained', '-W', '20'], true);
    expectQuietStop(ending);
  }, 30_000);
});
