/**
 * One process at a time in a data directory. Two brokers appending to the same log corrupt it
 * (each believes it owns the next LSN and the end of the segment), and a repair that rewrites
 * files under a running broker does the same; so `keel serve` holds this lock for its lifetime
 * and `keel inspect --repair` while it repairs. Plain `keel inspect` only reads and takes no lock.
 * The core never sees the lock: it is the Node backend's business, like the sockets.
 *
 * Node has no flock, so the lock is a file, `keel.lock`, created with O_EXCL (exactly one of
 * several processes creating it at the same instant succeeds) and holding a JSON description of
 * its holder: PID, host name, boot id, PID namespace and the process's start time in clock ticks
 * since boot (Linux /proc), a wall-clock start for people, and a random token. It is removed on
 * an orderly stop, on a halt, and on any exit that runs Node's `exit` handlers; after SIGKILL or
 * a crash it stays behind, and the next process finds it stale and takes over:
 *
 * - a holder on another host, or in another PID namespace (a container sharing the directory),
 *   cannot be checked from here: the lock is respected and the message says how to remove it;
 * - another boot id: the machine restarted, so the holder is gone;
 * - no such process (ESRCH), or a zombie: gone;
 * - a process with that PID but another start time: the PID was reused, the holder is gone;
 * - our own PID without our token: an earlier process had our PID, it is gone;
 * - otherwise the holder runs and the lock is refused, naming its PID. Without /proc (not Linux)
 *   the start time is unknown, so a reused PID keeps the lock: the message then says to remove
 *   the file if that PID is not a keel process.
 *
 * Taking over a stale lock: the stale file is renamed aside (only one process's rename of that
 * file can succeed), its content compared with what was judged stale, then deleted, and the O_EXCL
 * creation tried again. If the content differs, another process took the lock over between our
 * look and our rename: its lock is put back and we look again. Residual risk: a third process that
 * creates the lock in the microseconds between that rename and the put-back loses its file to the
 * put-back and runs beside the process whose lock was put back. That needs a stale lock and three
 * processes starting within microseconds of each other. A lock file whose content cannot be read
 * as a holder (a crash between creation and write, or damage) counts as stale once it is older
 * than `unreadableGraceMs`; younger, it may be one being written, so we wait and look again.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, readlinkSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const lockFileName = 'keel.lock';
/** A lock file younger than this whose content is unreadable may be in the middle of its write. */
const unreadableGraceMs = 2_000;
/** Looks at the lock before giving up; each stale takeover or wait uses one. */
const attemptsMax = 50;
const waitMs = 50;
// Waiting must outlast the grace, or a lock left unreadable by a crash could never be taken over.
assert.ok(attemptsMax * waitMs > unreadableGraceMs, 'the attempts must outlast the grace for unreadable locks');

/** What a lock file says about the process that holds it. */
export interface LockHolder {
  readonly pid: number;
  /** What the holder runs ("keel serve"), for the message a second process prints. */
  readonly command: string;
  readonly hostname: string;
  /** Linux's /proc/sys/kernel/random/boot_id: another value means the machine restarted since. */
  readonly bootId: string | null;
  /** The PID namespace (/proc/self/ns/pid): PIDs of another namespace mean nothing here. */
  readonly pidNamespace: string | null;
  /** Field 22 of /proc/<pid>/stat, which tells a reused PID from the holder. */
  readonly startTicks: string | null;
  /** Wall clock, for people reading the message. */
  readonly startedAt: string;
  readonly token: string;
}

/** What the operating system says about a PID, behind a seam so that tests can pretend. */
export interface ProcessTable {
  /** This process, as it would describe itself in a lock (without command, start and token). */
  self(): Pick<LockHolder, 'pid' | 'hostname' | 'bootId' | 'pidNamespace' | 'startTicks'>;
  /** 'absent' when no such process exists (or it is a zombie); its start time when known. */
  lookup(pid: number): 'absent' | { startTicks: string | null };
}

export class DataDirectoryLockedError extends Error {
  constructor(
    readonly directory: string,
    readonly file: string,
    readonly holder: LockHolder,
    message: string,
  ) {
    super(message);
    this.name = 'DataDirectoryLockedError';
  }
}

export interface DataDirectoryLock {
  readonly file: string;
  readonly holder: LockHolder;
  /** The stale lock this one replaced, with why it was stale; null when there was none. */
  readonly replaced: { holder: LockHolder | null; why: string } | null;
  /** Removes the lock file if it is still ours; safe to call more than once. */
  release(): void;
}

/** Locks held by this process, by token: released by the exit handler if nobody else did. */
const heldLocks = new Map<string, DataDirectoryLock>();
let exitHandlerInstalled = false;

/**
 * Takes the lock on `directory` (which must exist) for `command`, or throws: a
 * DataDirectoryLockedError naming the holder when another process has it, an Error naming the
 * directory and the operating system's message when the lock file cannot be written.
 */
export function lockDataDirectory(directory: string, command: string, processes: ProcessTable = systemProcessTable): DataDirectoryLock {
  assert.ok(command.length > 0, 'a lock names the command that holds it');
  const file = join(directory, lockFileName);
  const holder: LockHolder = { ...processes.self(), command, startedAt: new Date().toISOString(), token: randomBytes(8).toString('hex') };
  const text = `${JSON.stringify(holder)}\n`;
  let replaced: DataDirectoryLock['replaced'] = null;
  for (let attempt = 0; attempt < attemptsMax; attempt++) {
    if (tryCreate(directory, file, text)) return remember(file, holder, text, replaced);
    const found = readLockFile(directory, file);
    if (found === null) continue;
    const verdict = judge(found, processes);
    if (verdict.kind === 'wait') {
      sleepSync(waitMs);
      continue;
    }
    if (verdict.kind === 'held') {
      assert.ok(found.holder !== null, 'only a lock that names its holder is held');
      throw lockedError(directory, file, found.holder, verdict);
    }
    if (moveAsideIfUnchanged(file, found.text, holder.token)) replaced = { holder: found.holder, why: verdict.why };
  }
  throw new Error(`cannot lock data directory ${directory}: ${file} changed hands ${attemptsMax} times while we tried; is another keel starting there?`);
}

/** Runs `action` while holding the lock on `directory`, and releases it however `action` ends. */
export function withDataDirectoryLock<T>(directory: string, command: string, action: () => T): T {
  const lock = lockDataDirectory(directory, command);
  try {
    return action();
  } finally {
    lock.release();
  }
}

/** O_EXCL creation with the whole content; false when a lock file exists already. */
function tryCreate(directory: string, file: string, text: string): boolean {
  let descriptor: number;
  try {
    descriptor = openSync(file, 'wx', 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw unwritable(directory, error as Error);
  }
  try {
    writeSync(descriptor, text);
    // Synced so that a machine crash leaves a readable lock (judged stale by its boot id), not an empty file.
    fsyncSync(descriptor);
  } catch (error) {
    closeSync(descriptor);
    unlinkSync(file);
    throw unwritable(directory, error as Error);
  }
  closeSync(descriptor);
  return true;
}

function unwritable(directory: string, error: Error): Error {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  const what = ['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'EIO'].includes(code) ? 'is not writable' : 'cannot be locked';
  return new Error(`data directory ${directory} ${what}: ${error.message}`, { cause: error });
}

interface FoundLock {
  readonly text: string;
  /** Null when the content is not a lock holder's description. */
  readonly holder: LockHolder | null;
  readonly ageMs: number;
}

/** The lock file's content, or null when it is gone (released between our create and our read). */
function readLockFile(directory: string, file: string): FoundLock | null {
  try {
    const ageMs = Date.now() - statSync(file).mtimeMs;
    const text = readFileSync(file, 'utf8');
    return { text, holder: parseHolder(text), ageMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`data directory ${directory} cannot be locked: ${(error as Error).message}`, { cause: error });
  }
}

function parseHolder(text: string): LockHolder | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const holder = value as Record<string, unknown>;
  const optionalString = (key: string): boolean => holder[key] === null || typeof holder[key] === 'string';
  if (!Number.isSafeInteger(holder.pid) || (holder.pid as number) <= 0) return null;
  if (typeof holder.command !== 'string' || typeof holder.hostname !== 'string' || typeof holder.startedAt !== 'string' || typeof holder.token !== 'string') return null;
  if (!optionalString('bootId') || !optionalString('pidNamespace') || !optionalString('startTicks')) return null;
  return holder as unknown as LockHolder;
}

/** `certain`: the holder was seen running; otherwise it may be an unrelated process or out of sight. */
type Verdict = { kind: 'held'; why: string; certain: boolean } | { kind: 'stale'; why: string } | { kind: 'wait' };

/** Whether the lock's holder may still be using the directory. */
function judge(found: FoundLock, processes: ProcessTable): Verdict {
  const holder = found.holder;
  if (holder === null) return found.ageMs < unreadableGraceMs ? { kind: 'wait' } : { kind: 'stale', why: 'its content does not name a holder' };
  const self = processes.self();
  if (holder.hostname !== self.hostname) return { kind: 'held', why: `it was taken on host ${holder.hostname}, where this process cannot check`, certain: false };
  if (holder.bootId !== null && self.bootId !== null && holder.bootId !== self.bootId) return { kind: 'stale', why: 'the machine has restarted since' };
  if (holder.pidNamespace !== null && self.pidNamespace !== null && holder.pidNamespace !== self.pidNamespace) {
    return { kind: 'held', why: 'it was taken in another PID namespace (container), where this process cannot check', certain: false };
  }
  if (holder.pid === self.pid) {
    // Every lock this process holds is in heldLocks; any other with our PID is an earlier process's.
    return heldLocks.has(holder.token) ? { kind: 'held', why: 'this very process holds it', certain: true } : { kind: 'stale', why: `PID ${holder.pid} is now this process` };
  }
  const running = processes.lookup(holder.pid);
  if (running === 'absent') return { kind: 'stale', why: `process ${holder.pid} is gone` };
  if (holder.startTicks !== null && running.startTicks !== null && holder.startTicks !== running.startTicks) {
    return { kind: 'stale', why: `PID ${holder.pid} now belongs to another process` };
  }
  if (holder.startTicks === null || running.startTicks === null) {
    return { kind: 'held', why: `process ${holder.pid} runs, and this system cannot tell whether it is the holder`, certain: false };
  }
  return { kind: 'held', why: `process ${holder.pid} runs`, certain: true };
}

function lockedError(directory: string, file: string, holder: LockHolder, verdict: { why: string; certain: boolean }): DataDirectoryLockedError {
  const who = `${holder.command} (PID ${holder.pid}${holder.hostname === hostname() ? '' : ` on host ${holder.hostname}`}, since ${holder.startedAt})`;
  const advice = verdict.certain
    ? 'two processes in one data directory would corrupt it; stop that one first'
    : `if that is not a keel process using this directory, the lock is left from a crash: remove ${file}`;
  return new DataDirectoryLockedError(directory, file, holder, `data directory ${directory} is in use by ${who}: ${verdict.why}; ${advice}`);
}

/**
 * Moves the stale lock out of the way if it is still the one judged stale; true when it was
 * removed. Only one process's rename of a given file succeeds, so two processes taking over the
 * same stale lock cannot both remove it; one of them then wins the O_EXCL creation.
 */
function moveAsideIfUnchanged(file: string, judgedText: string, token: string): boolean {
  const aside = `${file}.stale-${process.pid}-${token}`;
  try {
    renameSync(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  if (readFileSync(aside, 'utf8') !== judgedText) {
    // Another process took the lock over between our look and our rename: give its lock back.
    renameSync(aside, file);
    return false;
  }
  unlinkSync(aside);
  return true;
}

function remember(file: string, holder: LockHolder, text: string, replaced: DataDirectoryLock['replaced']): DataDirectoryLock {
  let held = true;
  const lock: DataDirectoryLock = {
    file,
    holder,
    replaced,
    release: () => {
      if (!held) return;
      held = false;
      heldLocks.delete(holder.token);
      removeIfOurs(file, text);
    },
  };
  assert.ok(!heldLocks.has(holder.token), 'a lock token is used once');
  heldLocks.set(holder.token, lock);
  if (!exitHandlerInstalled) {
    exitHandlerInstalled = true;
    // process.exit() (a failed start, a halt, a shutdown past its deadline) skips every orderly
    // release; the exit handlers still run, and a synchronous unlink is allowed there.
    process.on('exit', () => {
      for (const held of [...heldLocks.values()]) held.release();
    });
  }
  return lock;
}

function removeIfOurs(file: string, text: string): void {
  try {
    // Someone who removed a lock by hand and started another process owns the file now: leave it.
    if (readFileSync(file, 'utf8') === text) unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readOrNull(read: () => string): string | null {
  try {
    return read().trim();
  } catch {
    return null;
  }
}

/** Field 22 (start time) and field 3 (state) of /proc/<pid>/stat; null where there is no /proc. */
function procStat(pid: number): { state: string; startTicks: string } | null {
  const text = readOrNull(() => readFileSync(`/proc/${pid}/stat`, 'utf8'));
  if (text === null) return null;
  // The command name (field 2) is in parentheses and may hold spaces and parentheses itself.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTicks = fields[19];
  if (state === undefined || startTicks === undefined) return null;
  return { state, startTicks };
}

/** The real process table: /proc where there is one, `kill(pid, 0)` everywhere. */
export const systemProcessTable: ProcessTable = {
  self: () => ({
    pid: process.pid,
    hostname: hostname(),
    bootId: readOrNull(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
    pidNamespace: readOrNull(() => readlinkSync('/proc/self/ns/pid')),
    startTicks: procStat(process.pid)?.startTicks ?? null,
  }),
  lookup: (pid) => {
    assert.ok(Number.isSafeInteger(pid) && pid > 0, 'a PID to look up is a positive integer');
    try {
      // Signal 0 checks existence only; EPERM means it exists but belongs to another user.
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') return 'absent';
    }
    const stat = procStat(pid);
    // A zombie has exited; only its parent has not collected its status yet.
    if (stat !== null && (stat.state === 'Z' || stat.state === 'X')) return 'absent';
    return { startTicks: stat?.startTicks ?? null };
  },
};
