/**
 * The version of the installed Keel package, read from its package.json: for `keel --version` and
 * `$SYS/broker/version`. Compiled code runs from dist/io/, sources from io/, so the package file
 * is two or one level up.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function packageVersion(): string {
  for (const relative of ['../../package.json', '../package.json']) {
    try {
      const parsed = JSON.parse(readFileSync(fileURLToPath(new URL(relative, import.meta.url)), 'utf8')) as { name?: string; version?: string };
      if (parsed.name === 'keel' && typeof parsed.version === 'string') return parsed.version;
    } catch {
      // Try the next location.
    }
  }
  return '0.0.0';
}
