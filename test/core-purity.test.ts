/**
 * Proves that the core under src/ stays pure: no clock, no randomness, no timers, no process,
 * no Node I/O. It scans every source file (comments stripped) for the forbidden names, and checks
 * the scanner itself on planted samples so that the rule cannot silently stop working.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const forbidden: { name: string; pattern: RegExp }[] = [
  { name: 'Date', pattern: /\bDate\b/ },
  { name: 'Math.random', pattern: /\bMath\s*\.\s*random\b/ },
  { name: 'timers', pattern: /\b(setTimeout|setInterval|setImmediate|clearTimeout|clearInterval|clearImmediate|queueMicrotask)\b/ },
  { name: 'process', pattern: /\bprocess\b/ },
  { name: 'performance', pattern: /\bperformance\b/ },
  { name: 'crypto randomness', pattern: /\bcrypto\s*\.\s*(random\w*|getRandomValues)\b/ },
  { name: 'node imports', pattern: /\bfrom\s+['"](node:[^'"]*|net|fs|fs\/promises|tls|http|https|dgram|child_process|worker_threads|os|crypto|timers)['"]/ },
  { name: 'dynamic or require imports', pattern: /\b(require\s*\(|import\s*\()/ },
  { name: 'Buffer', pattern: /\bBuffer\b/ },
];

function stripComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

function violations(source: string): string[] {
  const code = stripComments(source);
  return forbidden.filter((rule) => rule.pattern.test(code)).map((rule) => rule.name);
}

function sourceFiles(directory: string): string[] {
  const files: string[] = [];
  for (const name of readdirSync(directory)) {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) files.push(...sourceFiles(path));
    else if (name.endsWith('.ts')) files.push(path);
  }
  return files;
}

describe('core purity', () => {
  it('finds no clock, randomness, timer, process or node I/O under src/', () => {
    const files = sourceFiles(join(import.meta.dirname, '..', 'src'));
    expect(files.length).toBeGreaterThan(5);
    const found = files.flatMap((file) => violations(readFileSync(file, 'utf8')).map((v) => `${file}: ${v}`));
    expect(found).toEqual([]);
  });

  it('the scanner catches each planted violation and ignores comments', () => {
    expect(violations('const t = Date.now();')).toEqual(['Date']);
    expect(violations('let r = Math.random();')).toEqual(['Math.random']);
    expect(violations('setTimeout(f, 1);')).toEqual(['timers']);
    expect(violations('if (process.env.X) {}')).toEqual(['process']);
    expect(violations('performance.now()')).toEqual(['performance']);
    expect(violations("import { readFileSync } from 'node:fs';")).toEqual(['node imports']);
    expect(violations("import net from 'net';")).toEqual(['node imports']);
    expect(violations('const b = Buffer.alloc(1);')).toEqual(['Buffer']);
    expect(violations('// Date.now() is not used here\n/* Math.random */ const x = 1;')).toEqual([]);
  });
});
