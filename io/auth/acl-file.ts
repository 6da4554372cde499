/**
 * The ACL file: who may publish, subscribe to and receive which topics. Parsed here into the
 * rules that src/broker/authorizer.ts evaluates; loaded once at start (a bad file stops the start
 * with every problem listed, `file:line: why`), then reloaded when its modification time, size or
 * inode changes, looked at no more than once per `recheckMs`, or at once on SIGHUP (`reload`). A reload that finds problems keeps
 * the rules in force and logs a warning, so a half-edited file never opens or closes everything.
 *
 * Format, one statement per line (leading and trailing white space ignored):
 *
 *   # a comment (only as the first thing on a line: `#` is also a topic wildcard)
 *   pattern <access> <filter>   a rule for every client; %c is its client id, %u its user name
 *   user <name>                 starts the block of rules for the user <name>
 *   anonymous                   starts the block of rules for clients without a user name
 *   topic <access> <filter>     a rule of the current block
 *
 * <access> is read, write, readwrite or deny. The filter is the rest of the line (topic names may
 * hold spaces) and follows MQTT filter syntax, without `$share/`. A `topic` line before any block,
 * a user or anonymous block given twice, an unknown keyword or access, and a bad filter are
 * errors. How rules decide is described in src/broker/authorizer.ts.
 */

import { type Access, type AclRule, type AclRules, aclFilterProblem, RuleAuthorizer } from '../../src/broker/authorizer.js';
import type { Reloadable, ReloadOutcome } from '../reload.js';
import { WatchedFile, type WatchedFileOptions } from './watched-file.js';

/** A file with more rules than this is refused: every rule is scanned on a cache miss. */
export const aclRulesMax = 100_000;

const accesses: readonly Access[] = ['read', 'write', 'readwrite', 'deny'];

type Block = { kind: 'none' } | { kind: 'anonymous' } | { kind: 'user'; name: string };

interface ParseState {
  readonly users: Map<string, AclRule[]>;
  readonly anonymous: AclRule[];
  readonly patterns: AclRule[];
  anonymousSeen: boolean;
  block: Block;
  count: number;
}

/** The rules of an ACL file's text, and one problem per bad line (`name:line: why`). */
export function parseAclFile(text: string, name: string): { rules: AclRules; problems: string[] } {
  const state: ParseState = { users: new Map(), anonymous: [], patterns: [], anonymousSeen: false, block: { kind: 'none' }, count: 0 };
  const problems: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!.trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    const problem = parseLine(state, line, index + 1);
    if (problem !== null) problems.push(`${name}:${index + 1}: ${problem}`);
  }
  if (state.count > aclRulesMax) problems.push(`${name}: ${state.count} rules, more than the ${aclRulesMax} allowed`);
  return { rules: { users: state.users, anonymous: state.anonymous, patterns: state.patterns }, problems };
}

function parseLine(state: ParseState, line: string, lineNumber: number): string | null {
  const space = line.search(/\s/);
  const keyword = space < 0 ? line : line.slice(0, space);
  const rest = space < 0 ? '' : line.slice(space).trimStart();
  switch (keyword) {
    case 'user': {
      if (rest.length === 0) return 'user needs a name';
      if (state.users.has(rest)) return `user "${rest}" has a block already`;
      state.users.set(rest, []);
      state.block = { kind: 'user', name: rest };
      return null;
    }
    case 'anonymous': {
      if (rest.length > 0) return 'anonymous takes nothing after it';
      if (state.anonymousSeen) return 'the anonymous block is given twice';
      state.anonymousSeen = true;
      state.block = { kind: 'anonymous' };
      return null;
    }
    case 'topic':
    case 'pattern': {
      const rule = parseRule(rest, lineNumber);
      if (typeof rule === 'string') return `${keyword}: ${rule}`;
      const target = ruleList(state, keyword);
      if (target === null) return 'topic rule outside a user or anonymous block';
      target.push(rule);
      state.count += 1;
      return null;
    }
    default:
      return `unknown statement "${keyword}" (pattern, user, anonymous or topic)`;
  }
}

function ruleList(state: ParseState, keyword: 'topic' | 'pattern'): AclRule[] | null {
  if (keyword === 'pattern') return state.patterns;
  const block = state.block;
  if (block.kind === 'anonymous') return state.anonymous;
  if (block.kind === 'user') return state.users.get(block.name)!;
  return null;
}

function parseRule(text: string, line: number): AclRule | string {
  const space = text.search(/\s/);
  if (space < 0) return 'expected <read|write|readwrite|deny> <filter>';
  const access = text.slice(0, space) as Access;
  if (!accesses.includes(access)) return `unknown access "${access}" (read, write, readwrite or deny)`;
  const filter = text.slice(space).trimStart();
  const problem = aclFilterProblem(filter);
  if (problem !== null) return `${problem}: "${filter}"`;
  return { access, filter, line };
}

export type AclFileOptions = WatchedFileOptions;

export class AclFile implements Reloadable {
  readonly what = 'ACL file';
  /** What the core is given: the same object for the life of the file; reloads replace its rules. */
  readonly authorizer: RuleAuthorizer;
  private timer: NodeJS.Timeout | null = null;
  private readonly log: NonNullable<AclFileOptions['log']>;

  private constructor(
    private readonly watched: WatchedFile,
    rules: AclRules,
    options: AclFileOptions,
  ) {
    this.authorizer = new RuleAuthorizer(rules);
    this.log = options.log ?? (() => undefined);
  }

  get file(): string {
    return this.watched.file;
  }

  /** Loads `file`; returns the problems instead when it cannot be read or has bad lines. */
  static open(file: string, options: AclFileOptions = {}): AclFile | { problems: string[] } {
    const opened = WatchedFile.open(file, 'ACL file', options);
    if ('problems' in opened) return opened;
    const parsed = parseAclFile(opened.text, file);
    if (parsed.problems.length > 0) return { problems: parsed.problems };
    return new AclFile(opened.watched, parsed.rules, options);
  }

  /**
   * Looks at the file every `recheckMs` on a timer. The broker caches decisions, so waiting for
   * it to ask (as the password store does) could leave an edit unnoticed for a long time.
   */
  watch(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.maybeReload(), this.watched.recheckMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Reloads when `recheckMs` has passed since the last look and the file changed. */
  maybeReload(): void {
    const text = this.watched.changedText((message) => this.log('warn', 'acl-file-unreadable', { file: this.file, message }));
    if (text !== null) this.apply(text);
  }

  /** Re-reads the file now (SIGHUP, io/reload.ts); a bad or unreadable file keeps the rules in force. */
  reload(): ReloadOutcome {
    let unreadable = '';
    const text = this.watched.readNow((message) => {
      unreadable = message;
      this.log('warn', 'acl-file-unreadable', { file: this.file, message });
    });
    const inForce = (): string => {
      const counts = ruleCounts(this.authorizer.rules);
      return `${counts.rules} rules for ${counts.users} users`;
    };
    if (text === null) return { what: this.what, ok: false, detail: `kept ${inForce()}, cannot read ${this.file}: ${unreadable}` };
    const problems = this.apply(text);
    if (problems !== null) return { what: this.what, ok: false, detail: `kept ${inForce()}, ${this.file} has problems: ${problems}` };
    return { what: this.what, ok: true, detail: `${inForce()} from ${this.file}` };
  }

  /** Puts the text's rules in force, or keeps the old ones and returns the problems. */
  private apply(text: string): string | null {
    const parsed = parseAclFile(text, this.file);
    if (parsed.problems.length > 0) {
      const problems = parsed.problems.join('; ');
      this.log('warn', 'acl-file-invalid', { file: this.file, problems });
      return problems;
    }
    this.authorizer.replace(parsed.rules);
    this.log('info', 'acl-file-reloaded', { file: this.file, ...ruleCounts(parsed.rules) });
    return null;
  }
}

export function ruleCounts(rules: AclRules): { users: number; rules: number } {
  let count = rules.anonymous.length + rules.patterns.length;
  for (const list of rules.users.values()) count += list.length;
  return { users: rules.users.size, rules: count };
}

/**
 * The ACL file named by `config.aclFile`, loaded and watched, or null when none is configured
 * (everybody may do anything, as without authorization); its problems when it cannot be used.
 */
export function loadAclFile(
  file: string | null,
  logger: { info(event: string, fields: Record<string, string | number>): void; warn(event: string, fields: Record<string, string | number>): void },
): AclFile | null | { problems: string[] } {
  if (file === null) return null;
  const acl = AclFile.open(file, { log: (level, event, fields) => logger[level](event, fields) });
  if (!(acl instanceof AclFile)) return acl;
  logger.info('authorization', { aclFile: file, ...ruleCounts(acl.authorizer.rules) });
  return acl;
}
