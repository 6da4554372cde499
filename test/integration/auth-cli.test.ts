/**
 * Proves `keel passwd` and `keel serve --password-file` as users run them, in child processes of
 * the built CLI: the password read from standard input or --password lands in the file as a
 * scrypt (default cost) or SCRAM-SHA-256 entry, --delete removes it, bad input exits 2, and a
 * served broker accepts exactly the credentials in the file, picking up a change made by
 * `keel passwd` while it runs.
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Clients, ensureBuilt, type KeelProcess, runKeel, sleep, startKeelProcess } from './helpers.js';

let directory = '';
let port = 0;
const children: KeelProcess[] = [];
const clients = new Clients(() => port);

beforeAll(() => {
  ensureBuilt();
  directory = mkdtempSync(join(tmpdir(), 'keel-passwd-'));
}, 60_000);

afterAll(async () => {
  await clients.endAll();
  for (const keel of children) keel.child.kill('SIGKILL');
  rmSync(directory, { recursive: true, force: true });
});

async function passwd(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const keel = runKeel(['passwd', ...args], input);
  children.push(keel);
  const code = await keel.exited;
  return { code, stdout: keel.stdout(), stderr: keel.stderr() };
}

function entries(file: string): Record<string, string> {
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  return Object.fromEntries(lines.map((line) => [line.slice(0, line.lastIndexOf(':')), line.slice(line.lastIndexOf(':') + 1)]));
}

describe('keel passwd', () => {
  it('adds users from standard input or --password, as scrypt or SCRAM entries, updates and deletes them', async () => {
    const file = join(directory, 'users');
    expect((await passwd([file, 'alice'], 'wonderland\nignored second line\n')).code).toBe(0);
    expect((await passwd([file, 'bob', '--scram', '--password', 'builder'])).stdout).toMatch(/added bob .*scram-sha-256/);
    expect(entries(file).alice).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(entries(file).bob).toMatch(/^scram-sha-256\$4096\$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const before = entries(file).alice;
    expect((await passwd([file, 'alice', '--password', 'again'])).stdout).toMatch(/updated alice/);
    expect(entries(file).alice).not.toBe(before);
    expect((await passwd([file, 'bob', '--delete'])).code).toBe(0);
    expect(Object.keys(entries(file))).toEqual(['alice']);
    // Four `keel` processes, each hashing with scrypt: seconds on a loaded machine.
  }, 20_000);

  it('exits 2 on an empty password or a bad iteration count', async () => {
    const file = join(directory, 'other');
    const empty = await passwd([file, 'alice'], '\n');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/password is empty/);
    expect((await passwd([file, 'alice', '--scram', '--iterations', '10', '--password', 'x'])).code).toBe(2);
  });
});

describe('keel serve --password-file', () => {
  it('accepts the users in the file, refuses the rest, and sees a user added while it runs', async () => {
    const file = join(directory, 'served');
    expect((await passwd([file, 'alice', '--password', 'wonderland'])).code).toBe(0);
    const keel = await startKeelProcess(join(directory, 'data'), ['--password-file', file]);
    children.push(keel);
    port = keel.port;
    expect((await clients.connect(5, { username: 'alice', password: 'wonderland' })).connack.reasonCode ?? 0).toBe(0);
    await expect(clients.connect(4, { username: 'alice', password: 'nope' })).rejects.toMatchObject({ code: 4 });
    await expect(clients.connect(5)).rejects.toMatchObject({ code: 0x87 });
    await expect(clients.connect(5, { username: 'dora', password: 'explorer' })).rejects.toMatchObject({ code: 0x86 });
    expect((await passwd([file, 'dora', '--scram', '--password', 'explorer'])).code).toBe(0);
    // The broker looks at the file again at most once a second.
    await sleep(1_100);
    expect((await clients.connect(4, { username: 'dora', password: 'explorer' })).connack.returnCode).toBe(0);
    keel.child.kill('SIGTERM');
    expect(await keel.exited).toBe(0);
  }, 20_000);
});
