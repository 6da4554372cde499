/**
 * Whether dist/ is current: its command (dist/io/cli.js) is no older than tsconfig.json and every
 * TypeScript source it is built from. npm's `prepare` builds only when it is not (the first
 * `npx keel` in a fresh checkout installs the checkout into npx's cache, which ran the whole build
 * again: a minute of silence), and so do the tests that start the command (test/integration/
 * helpers.ts ensureBuilt). Plain JavaScript, since it runs before anything is built; run as a
 * program, it exits 0 when its checkout's dist/ is current and 1 when it is not.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folders dist/ is built from (`keel sim` and `keel vopr` load sim/ from dist/ too). */
const sourceFolders = ['src', 'io', 'sim', 'bench'];

/** The newest modification time of a `.ts` file under `directory`, 0 for none. */
function newestSourceMs(directory) {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/** Whether the checkout at `root` has a dist/ at least as new as its sources. */
export function distIsCurrent(root) {
  const cli = join(root, 'dist', 'io', 'cli.js');
  if (!existsSync(cli)) return false;
  const newest = Math.max(statSync(join(root, 'tsconfig.json')).mtimeMs, ...sourceFolders.map((folder) => newestSourceMs(join(root, folder))));
  return statSync(cli).mtimeMs >= newest;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exit(distIsCurrent(fileURLToPath(new URL('..', import.meta.url))) ? 0 : 1);
