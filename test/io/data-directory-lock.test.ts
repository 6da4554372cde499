/**
 * Proves the data directory lock (io/data-directory-lock.ts) on real directories:
 *
 * - a second lock in the same directory is refused with the holder's PID, until the first is
 *   released; release removes only a lock file that is still ours;
 * - a stale lock is taken over, and the takeover says why: its process is gone, its PID now
 *   belongs to another process (another start time, read from Linux's /proc), it was written
 *   before the machine restarted (another boot id), its PID is now ours, or its content is
 *   unreadable and old; an unreadable young one is waited for first;
 * - a lock that cannot be checked from here (another host) is respected, and the message says
 *   which file to remove if its holder is gone; so is one whose PID runs when the start time
 *   cannot be compared;
 * - a lock held by a process that ends with process.exit() is removed by the exit handler.
 *
 * Stale locks are written by hand, as a dead or different process would have left them; the
 * process table is the real one unless a case needs a PID's start time to be unknown.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DataDirectoryLockedError, type LockHolder, lockDataDirectory, lockFileName, type ProcessTable, systemProcessTable } from '../../io/data-directory-lock.js';
import { ensureBuilt, repositoryRoot } from '../integration/helpers.js';

let directory = '';
beforeEach(() => {
  directory = mkdtempSync(join(tmpdir(), 'keel-lock-'));
});
afterEach(() => {
  rmSync(directory, { recursive: true, force: true });
});

const lockFile = (): string => join(directory, lockFileName);
const hasProc = existsSync('/proc/self/stat');

/** A lock file as a process described by `changes` (otherwise like this one) would have left it. */
function writeLock(changes: Partial<LockHolder>): LockHolder {
  const holder: LockHolder = { ...systemProcessTable.self(), command: 'keel serve', startedAt: '2020-01-01T00:00:00.000Z', token: 'feedfeedfeedfeed', ...changes };
  writeFileSync(lockFile(), `${JSON.stringify(holder)}\n`);
  return holder;
}

/** The PID of a process that has exited and been collected. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

function startTicks(pid: number): string | null {
  if (!hasProc) return null;
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19]!;
}

describe('data directory lock', () => {
  // The exit-handler case runs the compiled module in a child process.
  beforeAll(() => ensureBuilt(), 120_000);

  it('refuses a second lock with the holder PID until the first is released', () => {
    const first = lockDataDirectory(directory, 'keel serve');
    expect(first.replaced).toBeNull();
    expect(() => lockDataDirectory(directory, 'keel inspect --repair')).toThrow(DataDirectoryLockedError);
    expect(() => lockDataDirectory(directory, 'keel inspect --repair')).toThrow(`data directory ${directory} is in use by keel serve (PID ${process.pid}, since `);
    first.release();
    first.release();
    expect(readdirSync(directory)).toEqual([]);
    const second = lockDataDirectory(directory, 'keel serve');
    expect(JSON.parse(readFileSync(lockFile(), 'utf8'))).toMatchObject({ pid: process.pid, command: 'keel serve', token: second.holder.token });
    second.release();
  });

  it('takes over the lock of a process that is gone, and says so', () => {
    const pid = deadPid();
    writeLock({ pid, startTicks: null });
    const lock = lockDataDirectory(directory, 'keel serve');
    expect(lock.replaced).toEqual({ holder: expect.objectContaining({ pid }), why: `process ${pid} is gone` });
    expect(readdirSync(directory)).toEqual([lockFileName]);
    lock.release();
  });

  it.skipIf(!hasProc)('tells a reused PID from the holder by its start time', () => {
    // The parent runs, so its PID is live; a lock that names another start time for it is stale.
    const pid = process.ppid;
    writeLock({ pid, startTicks: '1' });
    const lock = lockDataDirectory(directory, 'keel serve');
    expect(lock.replaced?.why).toBe(`PID ${pid} now belongs to another process`);
    lock.release();
    writeLock({ pid, startTicks: startTicks(pid) });
    expect(() => lockDataDirectory(directory, 'keel serve')).toThrow(`PID ${pid}, since 2020-01-01T00:00:00.000Z): process ${pid} runs; two processes in one data directory would corrupt it`);
  });

  it.skipIf(!hasProc)('takes over a lock written before the machine restarted', () => {
    writeLock({ pid: process.ppid, bootId: 'another-boot' });
    const afterReboot = lockDataDirectory(directory, 'keel serve');
    expect(afterReboot.replaced?.why).toBe('the machine has restarted since');
    afterReboot.release();
  });

  it('takes over a lock written by an earlier process with our PID', () => {
    writeLock({ pid: process.pid, token: 'not-ours' });
    const ourPid = lockDataDirectory(directory, 'keel serve');
    expect(ourPid.replaced?.why).toBe(`PID ${process.pid} is now this process`);
    ourPid.release();
  });

  it('respects what it cannot check, and names the file to remove', () => {
    writeLock({ pid: 4_242, hostname: 'elsewhere' });
    expect(() => lockDataDirectory(directory, 'keel serve')).toThrow(
      `is in use by keel serve (PID 4242 on host elsewhere, since 2020-01-01T00:00:00.000Z): it was taken on host elsewhere, where this process cannot check; if that is not a keel process using this directory, the lock is left from a crash: remove ${lockFile()}`,
    );
    // Without start times (no /proc), a live PID keeps the lock: it may be the holder.
    const blind: ProcessTable = { self: () => ({ ...systemProcessTable.self(), startTicks: null }), lookup: () => ({ startTicks: null }) };
    writeLock({ pid: process.ppid, startTicks: null });
    expect(() => lockDataDirectory(directory, 'keel serve', blind)).toThrow(`process ${process.ppid} runs, and this system cannot tell whether it is the holder; if that is not a keel process`);
  });

  it('waits for an unreadable young lock, and takes over an unreadable old one', () => {
    writeFileSync(lockFile(), '');
    const seconds = Date.now() / 1000 - 60;
    utimesSync(lockFile(), seconds, seconds);
    const old = lockDataDirectory(directory, 'keel serve');
    expect(old.replaced).toEqual({ holder: null, why: 'its content does not name a holder' });
    old.release();
    writeFileSync(lockFile(), '{"pid":');
    const startMs = Date.now();
    const young = lockDataDirectory(directory, 'keel serve');
    // It was given the benefit of the doubt (2 s) before it counted as stale.
    expect(Date.now() - startMs).toBeGreaterThanOrEqual(1_500);
    expect(young.replaced?.why).toBe('its content does not name a holder');
    young.release();
  });

  it('release leaves a lock file that is no longer ours', () => {
    const lock = lockDataDirectory(directory, 'keel serve');
    writeLock({ pid: 4_242, token: 'someone-else' });
    lock.release();
    expect(JSON.parse(readFileSync(lockFile(), 'utf8'))).toMatchObject({ token: 'someone-else' });
  });

  it('is removed when its process ends with process.exit()', () => {
    const module = join(repositoryRoot, 'dist', 'io', 'data-directory-lock.js');
    const script = `const { lockDataDirectory } = await import(${JSON.stringify(module)}); lockDataDirectory(${JSON.stringify(directory)}, 'test'); process.exit(3);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(3);
    expect(readdirSync(directory)).toEqual([]);
  });
});
