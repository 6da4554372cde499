/**
 * Proves that the broker is started with the same node flags however a user starts it: the
 * `keel` command's launcher line (io/cli.ts), `npm start` (package.json) and the benchmark's Keel
 * child all carry the same flags, and node accepts them. The benchmark reads the launcher line
 * rather than keeping its own copy, so its figures are those of the shipped launcher. Also that
 * `npm start` leaves the listen address to `keel serve`'s default, this machine only.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { launcherNodeFlags } from '../../bench/load/peers.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cliSource = readFileSync(`${root}io/cli.ts`, 'utf8');

function startScriptNodeFlags(): string[] {
  const manifest = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: Record<string, string> };
  const words = manifest.scripts.start!.split(/ +/);
  expect(words[0]).toBe('node');
  const scriptIndex = words.indexOf('dist/io/cli.js');
  expect(scriptIndex).toBeGreaterThan(0);
  return words.slice(1, scriptIndex);
}

describe('launcher flags', () => {
  it('npm start passes exactly the flags of the keel launcher line', () => {
    const flags = launcherNodeFlags(cliSource);
    expect(flags.length).toBeGreaterThan(0);
    expect(startScriptNodeFlags()).toEqual(flags);
  });

  it('npm start keeps the broker on this machine: its script names no host, so keel serve listens on 127.0.0.1', () => {
    const manifest = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: Record<string, string> };
    const words = manifest.scripts.start!.split(/ +/);
    expect(words.slice(words.indexOf('dist/io/cli.js') + 1, words.indexOf('dist/io/cli.js') + 2)).toEqual(['serve']);
    expect(words.filter((word) => word === '--host' || word === '-H' || word.startsWith('--host='))).toEqual([]);
  });

  it('node accepts the launcher flags', () => {
    const result = spawnSync(process.execPath, [...launcherNodeFlags(cliSource), '-e', 'process.exit(0)'], { encoding: 'utf8', timeout: 10_000 });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('reads the flags off a launcher line, and refuses a line it does not understand', () => {
    expect(launcherNodeFlags('#!/usr/bin/env node\nrest')).toEqual([]);
    expect(launcherNodeFlags('#!/usr/bin/env -S node --a=1 --b\n')).toEqual(['--a=1', '--b']);
    expect(() => launcherNodeFlags('#!/bin/sh\n')).toThrow(/launcher line/);
    expect(() => launcherNodeFlags('console.log(1)\n')).toThrow(/launcher line/);
  });
});
