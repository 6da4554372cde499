/**
 * Makes a directory unwritable for this process, for the tests of what Keel does with a data
 * directory it cannot write. For an ordinary user, chmod 0555 does it. Root is not stopped by
 * permissions, so for root the directory gets the immutable attribute (chattr +i) instead, where
 * the file system and the process's capabilities allow it; where neither works, the caller is
 * told why, to skip the test with that reason. Either way the result is checked by trying to
 * create a file, so a test never believes in a read-only directory that is not.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Unwritable = { ok: true; undo(): void } | { ok: false; reason: string };

export function unwritableDirectory(directory: string): Unwritable {
  const asRoot = process.getuid?.() === 0;
  let undo: () => void;
  if (asRoot) {
    const made = spawnSync('chattr', ['+i', directory], { encoding: 'utf8' });
    if (made.status !== 0) return { ok: false, reason: `running as root, whom chmod does not stop, and chattr +i failed: ${made.error?.message ?? made.stderr.trim()}` };
    undo = () => spawnSync('chattr', ['-i', directory]);
  } else {
    chmodSync(directory, 0o555);
    undo = () => chmodSync(directory, 0o755);
  }
  const probe = join(directory, 'can-i-write');
  try {
    writeFileSync(probe, 'x');
  } catch {
    return { ok: true, undo };
  }
  unlinkSync(probe);
  undo();
  return { ok: false, reason: `${asRoot ? 'chattr +i' : 'chmod 0555'} did not stop this process from writing` };
}
