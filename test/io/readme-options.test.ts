/**
 * Proves that README.md documents every option `--help` shows, command by command, so the two
 * cannot drift apart again: the program is built as the CLI builds it (`buildProgram`), and each
 * long option of each command must appear in that command's part of the README, which is its row
 * of the command table (`| \`keel NAME ...`) plus any section whose heading names `keel NAME`.
 * A missing option fails the test with the full list of what is missing, per command; a second
 * test proves that list by adding an undocumented option.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../io/cli.js';

const readme = readFileSync(join(resolve(import.meta.dirname, '../..'), 'README.md'), 'utf8');

/** The README's text about one command: its command-table row and the sections named after it. */
function commandText(markdown: string, name: string): string {
  const title = `\`keel ${name}\``;
  const rowStart = `| \`keel ${name} `;
  const parts: string[] = [];
  let inSection = false;
  let inCode = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inCode = !inCode;
    // A heading starts or ends a command's section; `#` inside a code block is no heading.
    if (!inCode && /^#{1,6} /.test(line)) inSection = line.includes(title);
    if (inSection || line.startsWith(rowStart) || line.startsWith(`| \`keel ${name}\``)) parts.push(line);
  }
  return parts.join('\n');
}

/** True when the text names the flag itself, not a longer flag that starts with it. */
function mentions(text: string, flag: string): boolean {
  return new RegExp(`(?<![\\w-])${flag.replace(/[-]/g, '\\-')}(?![\\w-])`).test(text);
}

/** Every long option `--help` shows that the README does not, as `keel NAME: --option`. */
function undocumentedOptions(program: Command, markdown: string): string[] {
  const missing: string[] = [];
  for (const option of program.options) if (option.long !== undefined && !option.hidden && !mentions(markdown, option.long)) missing.push(`keel: ${option.long}`);
  for (const command of program.commands) {
    const text = commandText(markdown, command.name());
    for (const option of command.options) {
      if (option.long === undefined || option.hidden) continue;
      if (!mentions(text, option.long)) missing.push(`keel ${command.name()}: ${option.long}`);
    }
  }
  return missing;
}

describe('README.md', () => {
  it('documents every option that --help shows, for every command', () => {
    const program = buildProgram();
    expect(program.commands.length).toBeGreaterThanOrEqual(7);
    const missing = undocumentedOptions(program, readme);
    expect(missing, `README.md does not document these options (add them to the command's table row or its section):\n  ${missing.join('\n  ')}`).toEqual([]);
    expect(mentions(readme, '--help')).toBe(true);
  });

  it('is held to an option added later: the test names it', () => {
    const program = buildProgram();
    const serve = program.commands.find((command) => command.name() === 'serve')!;
    serve.option('--lock-timeout <ms>', 'an option nobody documented');
    const pub = program.commands.find((command) => command.name() === 'pub')!;
    pub.option('--will-topic <topic>', 'another');
    expect(undocumentedOptions(program, readme)).toEqual(['keel serve: --lock-timeout', 'keel pub: --will-topic']);
  });

  it("looks for a command's options only in its own part", () => {
    const markdown = ['| `keel serve [--port N]` | runs |', '### `keel sub`', '`--port`, `--count`', '## Other', '`--seed`'].join('\n');
    expect(commandText(markdown, 'serve')).toBe('| `keel serve [--port N]` | runs |');
    expect(commandText(markdown, 'sub')).toBe('### `keel sub`\n`--port`, `--count`');
    expect(mentions('`--retain-as-published`', '--retain')).toBe(false);
    expect(mentions('`--no-local`', '--local')).toBe(false);
  });
});
