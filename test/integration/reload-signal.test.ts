/**
 * Proves that SIGHUP is a reload, as Mosquitto users expect, and never ends `keel serve` (Node's
 * default for SIGHUP is to die with status 129 and no log line). A real `keel serve` child
 * process runs with a password file and an ACL file; both are then edited in a way the file
 * watchers cannot see (same size, same inode, modification time put back), so that only the
 * SIGHUP can be what makes the edits take effect: before it, the old password and the old rules
 * are still in force a watcher interval later; after it, the broker logs one `reload` line naming
 * both files and what needs a restart, the new password connects and the new rule grants a
 * subscription. A broken edit and a SIGHUP leave the broker running, with the old rules and a
 * warning.
 */
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPasswordScrypt, updatePasswordFile } from '../../io/auth/password-file.js';
import { Clients, ensureBuilt, type KeelProcess, refusalCode, sleep, startKeelProcess, subscribeCodes, waitUntil } from './helpers.js';

let workDirectory: string;
const children: KeelProcess[] = [];

beforeAll(() => {
  ensureBuilt();
  workDirectory = mkdtempSync(join(tmpdir(), 'keel-reload-'));
}, 60_000);

afterAll(async () => {
  // Every child is gone before its directories are removed, so none writes into a removal.
  for (const keel of children) if (keel.child.exitCode === null && keel.child.signalCode === null) keel.child.kill('SIGKILL');
  await Promise.all(children.map((keel) => keel.exited));
  rmSync(workDirectory, { recursive: true, force: true });
});

/** Writes `text` over `file` in place and puts back a fixed modification time: the watcher sees no change. */
function editUnseen(file: string, text: string, seconds: number): void {
  expect(Buffer.byteLength(text)).toBe(readFileSync(file).length);
  writeFileSync(file, text);
  utimesSync(file, seconds, seconds);
}

function reloadLines(keel: KeelProcess): string[] {
  return keel
    .stdout()
    .split('\n')
    .filter((line) => line.includes('"event":"reload"'));
}

describe('SIGHUP on keel serve', () => {
  it('re-reads the password and ACL files at once, logs what it reloaded, and keeps running', async () => {
    const passwords = join(workDirectory, 'passwords');
    const acl = join(workDirectory, 'acl');
    updatePasswordFile(passwords, 'alice', hashPasswordScrypt(Buffer.from('old-pw'), 1_024));
    writeFileSync(acl, 'user alice\ntopic readwrite rooms/a\n');
    const seconds = Math.floor(Date.now() / 1000) - 60;
    for (const file of [passwords, acl]) utimesSync(file, seconds, seconds);
    const keel = await startKeelProcess(join(workDirectory, 'data'), ['--password-file', passwords, '--acl-file', acl]);
    children.push(keel);
    const clients = new Clients(() => keel.port);
    try {
      const { client } = await clients.connect(5, { username: 'alice', password: Buffer.from('old-pw') });
      expect(await subscribeCodes(client, 'rooms/b', { qos: 0 })).toEqual([0x87]);

      const newLine = readFileSync(passwords, 'utf8').replace(/^alice:.*$/m, `alice:${hashLine('new-pw')}`);
      editUnseen(passwords, newLine, seconds);
      editUnseen(acl, 'user alice\ntopic readwrite rooms/b\n', seconds);
      // Longer than the watchers' interval (1 s): they looked, and saw nothing to reload.
      await sleep(1_300);
      expect(await refusalCode(clients.connect(5, { username: 'alice', password: Buffer.from('new-pw') }))).toBe(0x86);
      expect(await subscribeCodes(client, 'rooms/b', { qos: 0 })).toEqual([0x87]);

      keel.child.kill('SIGHUP');
      await waitUntil(() => reloadLines(keel).length === 1, 5_000, 'the reload line');
      const line = JSON.parse(reloadLines(keel)[0]!) as Record<string, string>;
      expect(line.signal).toBe('SIGHUP');
      expect(line.reloaded).toBe(`password file: 1 users from ${passwords}; ACL file: 1 rules for 1 users from ${acl}`);
      expect(line.needsRestart).toMatch(/listeners \(protocols, addresses, ports, paths, which certificate files\), admin listener address and port, data directory, .*log level/);
      expect(keel.child.exitCode).toBeNull();
      expect(await subscribeCodes(client, 'rooms/b', { qos: 0 })).toEqual([0x00]);
      await clients.connect(5, { username: 'alice', password: Buffer.from('new-pw') });
    } finally {
      await clients.endAll();
    }
    keel.child.kill('SIGTERM');
    expect(await keel.exited).toBe(0);
  }, 20_000);

  it('keeps the old rules and warns when the ACL file is broken, and does not die', async () => {
    const acl = join(workDirectory, 'broken-acl');
    writeFileSync(acl, 'user alice\ntopic readwrite rooms/a\n');
    const keel = await startKeelProcess(join(workDirectory, 'data-broken'), ['--acl-file', acl]);
    children.push(keel);
    writeFileSync(acl, 'user alice\ntopic readwrite rooms/a\nnonsense\n');
    keel.child.kill('SIGHUP');
    await waitUntil(() => reloadLines(keel).length === 1, 5_000, 'the reload line');
    const line = JSON.parse(reloadLines(keel)[0]!) as Record<string, string>;
    expect(line.level).toBe('warn');
    expect(line.reloaded).toBe('nothing');
    expect(line.kept).toContain(`ACL file: kept 1 rules for 1 users, ${acl} has problems: ${acl}:3: unknown statement "nonsense"`);
    expect(keel.stdout()).toContain('"event":"acl-file-invalid"');
    // A second SIGHUP is handled like the first: the handler stays installed.
    keel.child.kill('SIGHUP');
    await waitUntil(() => reloadLines(keel).length === 2, 5_000, 'the second reload line');
    expect(keel.child.exitCode).toBeNull();
    keel.child.kill('SIGTERM');
    expect(await keel.exited).toBe(0);
  }, 20_000);
});

/** A password-file hash for `password`, the same length as any other at this cost. */
function hashLine(password: string): string {
  const file = join(workDirectory, `scratch-${password}`);
  updatePasswordFile(file, 'x', hashPasswordScrypt(Buffer.from(password), 1_024));
  return readFileSync(file, 'utf8').trim().slice('x:'.length);
}
