/**
 * Proves the ACL file (io/auth/acl-file.ts): a valid file becomes the user, anonymous and pattern
 * rules it spells; every bad line is reported with its file name and line number, all at once;
 * and live reload follows the file (with an injected clock, so the once-per-recheckMs limit is
 * tested without waiting): an edit takes effect, a broken edit keeps the rules in force and warns
 * once, a vanished file warns and keeps the rules, and nothing is looked at before recheckMs;
 * and `reload()` (SIGHUP) reads the file at once, even after an edit that kept its size and
 * modification time, and keeps the rules when the file is bad or gone.
 */
import { mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AclFile, loadAclFile, parseAclFile } from '../../io/auth/acl-file.js';

const alice = { clientId: 'phone', username: 'alice' };

describe('parseAclFile', () => {
  it('builds user, anonymous and pattern rules, with filters that hold spaces', () => {
    const text = [
      '# house rules',
      'pattern readwrite clients/%c/#',
      '',
      'user alice',
      '  topic read sensors/#',
      'topic deny sensors/secret',
      'topic write living room/lamp',
      'anonymous',
      'topic read public/#',
      'user bob smith',
      'topic readwrite #',
    ].join('\n');
    const { rules, problems } = parseAclFile(text, 'acl');
    expect(problems).toEqual([]);
    expect(rules.patterns).toEqual([{ access: 'readwrite', filter: 'clients/%c/#', line: 2 }]);
    expect(rules.users.get('alice')).toEqual([
      { access: 'read', filter: 'sensors/#', line: 5 },
      { access: 'deny', filter: 'sensors/secret', line: 6 },
      { access: 'write', filter: 'living room/lamp', line: 7 },
    ]);
    expect(rules.anonymous).toEqual([{ access: 'read', filter: 'public/#', line: 9 }]);
    expect(rules.users.get('bob smith')).toEqual([{ access: 'readwrite', filter: '#', line: 11 }]);
  });

  it('reports every bad line with its number', () => {
    const text = [
      'topic read early/topic',
      'user alice',
      'topic read',
      'topic maybe a/b',
      'topic read a/#/b',
      'topic write a+/b',
      'topic read $share/g/a',
      'frobnicate now',
      'user alice',
      'anonymous extra',
      'anonymous',
      'anonymous',
      'user',
    ].join('\n');
    const { problems } = parseAclFile(text, 'acl.conf');
    expect(problems).toEqual([
      'acl.conf:1: topic rule outside a user or anonymous block',
      'acl.conf:3: topic: expected <read|write|readwrite|deny> <filter>',
      'acl.conf:4: topic: unknown access "maybe" (read, write, readwrite or deny)',
      'acl.conf:5: topic: # must be a whole level and the last one: "a/#/b"',
      'acl.conf:6: topic: + must be a whole level: "a+/b"',
      'acl.conf:7: topic: a rule names topics, not shared subscriptions ($share/...): "$share/g/a"',
      'acl.conf:8: unknown statement "frobnicate" (pattern, user, anonymous or topic)',
      'acl.conf:9: user "alice" has a block already',
      'acl.conf:10: anonymous takes nothing after it',
      'acl.conf:12: the anonymous block is given twice',
      'acl.conf:13: user needs a name',
    ]);
  });
});

describe('AclFile', () => {
  let directory: string;
  let file: string;
  let nowMs: number;
  let logs: { level: string; event: string }[];

  beforeEach(() => {
    directory = mkdtempSync(join(tmpdir(), 'keel-acl-'));
    file = join(directory, 'acl');
    nowMs = 0;
    logs = [];
  });
  afterEach(() => rmSync(directory, { recursive: true, force: true }));

  const open = (): AclFile => {
    const acl = AclFile.open(file, { recheckMs: 1_000, nowMs: () => nowMs, log: (level, event) => logs.push({ level, event }) });
    if (!(acl instanceof AclFile)) throw new Error(acl.problems.join('\n'));
    return acl;
  };
  // A different size guarantees a different fingerprint even within one mtime tick.
  const write = (text: string): void => writeFileSync(file, text);

  it('refuses to open a missing or bad file, listing the problems', () => {
    expect(AclFile.open(file)).toEqual({ problems: [expect.stringContaining(`cannot read ACL file ${file}`)] });
    write('user a\ntopic read\n');
    expect(AclFile.open(file)).toEqual({ problems: [`${file}:2: topic: expected <read|write|readwrite|deny> <filter>`] });
  });

  it('applies an edit after recheckMs, and not before', () => {
    write('user alice\ntopic read a/#\n');
    const acl = open();
    expect(acl.authorizer.canReceive(alice, 'a/1')).toBe(true);
    write('user alice\ntopic read b/#\n# longer now\n');
    nowMs = 999;
    acl.maybeReload();
    expect(acl.authorizer.canReceive(alice, 'a/1')).toBe(true);
    nowMs = 1_000;
    acl.maybeReload();
    expect(acl.authorizer.canReceive(alice, 'a/1')).toBe(false);
    expect(acl.authorizer.canReceive(alice, 'b/1')).toBe(true);
    expect(acl.authorizer.generation).toBe(1);
    expect(logs).toEqual([{ level: 'info', event: 'acl-file-reloaded' }]);
  });

  it('keeps the rules in force when an edit is broken, warns once, and takes the fix', () => {
    write('user alice\ntopic read a/#\n');
    const acl = open();
    write('user alice\ntopic reed a/#\n');
    for (let step = 1; step <= 3; step++) {
      nowMs = step * 1_000;
      acl.maybeReload();
    }
    expect(acl.authorizer.canReceive(alice, 'a/1')).toBe(true);
    expect(acl.authorizer.generation).toBe(0);
    expect(logs).toEqual([{ level: 'warn', event: 'acl-file-invalid' }]);
    write('user alice\ntopic read c/#\n');
    nowMs = 10_000;
    acl.maybeReload();
    expect(acl.authorizer.canReceive(alice, 'c/1')).toBe(true);
    expect(logs.at(-1)).toEqual({ level: 'info', event: 'acl-file-reloaded' });
  });

  it('keeps the rules in force when the file vanishes', () => {
    write('user alice\ntopic read a/#\n');
    const acl = open();
    unlinkSync(file);
    nowMs = 5_000;
    acl.maybeReload();
    expect(acl.authorizer.canReceive(alice, 'a/1')).toBe(true);
    expect(logs).toEqual([{ level: 'warn', event: 'acl-file-unreadable' }]);
  });

  it('reload() re-reads at once, even an edit the watcher cannot see, and keeps the rules when the file is bad', () => {
    write('user alice\ntopic read a/#\n');
    const acl = open();
    // Same size, same inode, same modification time: only a forced read notices this edit.
    const seconds = Math.floor(Date.now() / 1000) - 60;
    utimesSync(file, seconds, seconds);
    const reopened = open();
    write('user alice\ntopic read b/#\n');
    utimesSync(file, seconds, seconds);
    nowMs = 5_000;
    reopened.maybeReload();
    expect(reopened.authorizer.canReceive(alice, 'b/1')).toBe(false);
    expect(acl.reload()).toEqual({ what: 'ACL file', ok: true, detail: `1 rules for 1 users from ${file}` });
    expect(acl.authorizer.canReceive(alice, 'b/1')).toBe(true);
    write('user alice\ntopic reed c/#\n');
    expect(acl.reload()).toEqual({ what: 'ACL file', ok: false, detail: `kept 1 rules for 1 users, ${file} has problems: ${file}:2: topic: unknown access "reed" (read, write, readwrite or deny)` });
    unlinkSync(file);
    expect(acl.reload()).toMatchObject({ ok: false, detail: expect.stringMatching(/^kept 1 rules for 1 users, cannot read .*ENOENT/) });
    expect(acl.authorizer.canReceive(alice, 'b/1')).toBe(true);
  });

  it('loadAclFile gives null without a file and the problems of a bad one', () => {
    const quiet = { info: () => undefined, warn: () => undefined };
    expect(loadAclFile(null, quiet)).toBeNull();
    write('nonsense\n');
    expect(loadAclFile(file, quiet)).toEqual({ problems: [`${file}:1: unknown statement "nonsense" (pattern, user, anonymous or topic)`] });
  });
});
