/**
 * Proves the admin listener's command-line side with real `keel serve` processes: `--admin-port 0`
 * opens it on a port the operating system chooses and says so in an `admin-listening` line (and it
 * answers /healthz); `--no-admin` opens none; `"admin": null` in the config file turns it off and an
 * explicit `--admin-port` turns it back on; an admin listener beyond loopback without a token file
 * is a configuration error: exit 2, naming the file and the rule.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, type KeelProcess, repositoryRoot, runKeel, startKeelProcess, waitUntil } from './helpers.js';

let directory = '';
const children: KeelProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), 'keel-admin-cli-'));
}, 60_000);

afterAll(async () => {
  for (const keel of children) if (keel.child.exitCode === null && keel.child.signalCode === null) keel.child.kill('SIGKILL');
  await Promise.all(children.map((keel) => keel.exited));
  rmSync(directory, { recursive: true, force: true });
});

/** `node dist/io/cli.js <args>`, exactly these arguments. */
function spawnKeel(args: string[]): KeelProcess {
  const child = spawn(process.execPath, [join(repositoryRoot, 'dist', 'io', 'cli.js'), ...args], { cwd: repositoryRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

function adminPort(keel: KeelProcess): number | null {
  const match = /"event":"admin-listening","host":"127\.0\.0\.1","port":(\d+)/.exec(keel.stdout());
  return match === null ? null : Number(match[1]);
}

async function stop(keel: KeelProcess): Promise<void> {
  keel.child.kill('SIGTERM');
  expect(await keel.exited).toBe(0);
}

describe('keel serve and its admin listener', () => {
  it('--admin-port 0 opens it on a chosen port and says where; --no-admin opens none', async () => {
    const withAdmin = await startKeelProcess(join(directory, 'with'), ['--admin-port', '0']);
    children.push(withAdmin);
    const port = adminPort(withAdmin);
    expect(port).not.toBeNull();
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    await stop(withAdmin);
    const without = await startKeelProcess(join(directory, 'without'), ['--no-admin']);
    children.push(without);
    expect(adminPort(without)).toBeNull();
    await stop(without);
  }, 30_000);

  it('"admin": null in the config file turns it off, and --admin-port turns it back on', async () => {
    const file = join(directory, 'off.json');
    writeFileSync(file, JSON.stringify({ admin: null }));
    // Spawned as it is: runKeel would add --admin-port 0 to a serve that names no admin flag.
    const off = spawnKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(directory, 'off'), '--config', file]);
    children.push(off);
    await waitUntil(() => off.stdout().includes('"event":"listening"'), 10_000, 'the listening line');
    expect(adminPort(off)).toBeNull();
    expect(off.stdout()).not.toContain('admin-listening');
    await stop(off);
    const on = await startKeelProcess(join(directory, 'on'), ['--config', file, '--admin-port', '0']);
    children.push(on);
    expect(adminPort(on)).not.toBeNull();
    await stop(on);
  }, 30_000);

  it('refuses an admin listener beyond loopback without a token file: exit 2', async () => {
    const file = join(directory, 'open.json');
    writeFileSync(file, JSON.stringify({ admin: { host: '0.0.0.0', port: 0 } }));
    const keel = runKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(directory, 'open'), '--config', file]);
    children.push(keel);
    expect(await keel.exited).toBe(2);
    expect(keel.stderr()).toContain(`invalid configuration in ${file}:`);
    expect(keel.stderr()).toContain('admin.host 0.0.0.0 is reachable from other machines: set admin.tokenFile');
  }, 30_000);
});
