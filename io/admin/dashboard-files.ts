/**
 * The dashboard's files, served by the admin listener from the installed package: the page, its
 * script and style from `io/admin/dashboard/` (plain files, no build step: `tsc` compiles only
 * TypeScript into `dist/`, so they are read from the package's own folder, which package.json's
 * `files` ships), and uPlot, the charting library, from its npm package. Nothing comes from a
 * CDN, so the dashboard works on a machine without internet access.
 *
 * The files are read once, on the first request for each, and kept (a few tens of KiB in all):
 * the set is fixed, so a request can never name a file outside it.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface StaticFile {
  readonly contentType: string;
  readonly bytes: Buffer;
}

const here = dirname(fileURLToPath(import.meta.url));

/**
 * The package root: this module runs from io/admin/ (sources, as in the tests) or from
 * dist/io/admin/ (compiled); the package.json named keel decides which.
 */
function packageRoot(): string {
  for (const candidate of [join(here, '..', '..'), join(here, '..', '..', '..')]) {
    try {
      const manifest = JSON.parse(readFileSync(join(candidate, 'package.json'), 'utf8')) as { name?: string };
      if (manifest.name === 'keel') return candidate;
    } catch {
      // Try the next candidate.
    }
  }
  throw new Error(`cannot find the keel package above ${here}`);
}

function uplotFile(name: string): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('uplot/package.json')), 'dist', name);
}

const routes: Record<string, { contentType: string; path: () => string }> = {
  '/': { contentType: 'text/html; charset=utf-8', path: () => join(packageRoot(), 'io', 'admin', 'dashboard', 'index.html') },
  '/dashboard.js': { contentType: 'text/javascript; charset=utf-8', path: () => join(packageRoot(), 'io', 'admin', 'dashboard', 'dashboard.js') },
  '/dashboard.css': { contentType: 'text/css; charset=utf-8', path: () => join(packageRoot(), 'io', 'admin', 'dashboard', 'dashboard.css') },
  '/vendor/uPlot.iife.min.js': { contentType: 'text/javascript; charset=utf-8', path: () => uplotFile('uPlot.iife.min.js') },
  '/vendor/uPlot.min.css': { contentType: 'text/css; charset=utf-8', path: () => uplotFile('uPlot.min.css') },
};

const cache = new Map<string, StaticFile>();

/** The file served at `pathname`, or null when there is none. Throws if the package lacks it. */
export function dashboardFile(pathname: string): StaticFile | null {
  const route = routes[pathname];
  if (route === undefined) return null;
  let file = cache.get(pathname);
  if (file === undefined) {
    file = { contentType: route.contentType, bytes: readFileSync(route.path()) };
    cache.set(pathname, file);
  }
  return file;
}
