/**
 * Proves the reload mechanism shared by the password and ACL files: nothing is read before
 * `recheckMs` has passed, an unchanged file is not handed over again, a change is handed over
 * exactly once (so a broken edit is reported once, not every second), and an unreadable file is
 * reported and looked at again later.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WatchedFile } from '../../io/auth/watched-file.js';

const directories: string[] = [];
afterEach(() => {
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

describe('watched configuration file', () => {
  it('hands over each change once, after recheckMs, and reports an unreadable file', () => {
    const directory = mkdtempSync(join(tmpdir(), 'keel-watched-'));
    directories.push(directory);
    const file = join(directory, 'users');
    writeFileSync(file, 'first');
    let nowMs = 0;
    const opened = WatchedFile.open(file, 'test file', { recheckMs: 1_000, nowMs: () => nowMs });
    if ('problems' in opened) throw new Error(opened.problems.join());
    expect(opened.text).toBe('first');
    const watched = opened.watched;
    const unreadable: string[] = [];
    const look = (): string | null => watched.changedText((message) => unreadable.push(message));

    writeFileSync(file, 'second, longer');
    nowMs = 500;
    expect(look()).toBeNull();
    nowMs = 1_000;
    expect(look()).toBe('second, longer');
    nowMs = 2_000;
    expect(look()).toBeNull();

    rmSync(file);
    nowMs = 3_000;
    expect(look()).toBeNull();
    expect(unreadable).toHaveLength(1);
    writeFileSync(file, 'third');
    nowMs = 4_000;
    expect(look()).toBe('third');
    expect(WatchedFile.open(join(directory, 'missing'), 'test file', {})).toMatchObject({ problems: [expect.stringMatching(/^cannot read test file .*missing/)] });
  });
});
