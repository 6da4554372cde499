/**
 * Topic authorization: the `Authorizer` seam the core asks, and `RuleAuthorizer`, which answers
 * from access-control rules (parsed from an ACL file by io/auth/acl-file.ts). Both are synchronous
 * and pure, so the core stays a deterministic state machine.
 *
 * Rules. A client's rules are its user block (or the anonymous block when it gave no user name)
 * plus every pattern rule, with `%c` replaced by its client id and `%u` by its user name. A rule
 * grants `read`, `write` or both (`readwrite`) on the topics its filter matches, or `deny`s them.
 * Deny wins over any grant; what no rule grants is denied.
 *
 * - canPublish(topic): a write rule matches the topic and no deny rule does.
 * - canReceive(topic): a read rule matches the topic and no deny rule does.
 * - canSubscribe(filter): some read rule *covers* the filter and no deny rule covers it.
 *   Rule R covers filter F when every topic name F can match is matched by R (section 4.7
 *   matching, including "a filter starting with a wildcard matches no `$` topic"): `a/#` covers
 *   `a/+/b`, `a` and `a/#`; `a/+` does not cover `a/#` (which also matches `a` and `a/x/y`).
 *   A deny rule that only overlaps the filter does not refuse the subscription: the topics it
 *   denies are withheld per message through canReceive, which the broker checks for every
 *   delivery (see access-control.ts), so a broad subscription never leaks a topic.
 * - readsEverything(filter): canReceive is true for every topic the filter matches (covered by a
 *   read rule, and no deny rule intersects it); the broker then skips per-topic checks.
 *
 * Substitution safety: a client id or user name containing `/`, `+`, `#` or NUL would turn a
 * pattern into a wider filter (a client named `#` must not read everything). Such a value makes
 * a granting pattern not apply and a deny pattern deny everything. A pattern naming `%u` does not
 * apply to a client without a user name.
 *
 * `generation` increases whenever the rules are replaced (live reload); the broker drops every
 * decision it cached for an older generation.
 */
import { assert } from '../assert.js';
import { matchesFilter } from '../topics/match-filter.js';
import { parseSharedFilter } from '../topics/validate.js';

/** Who asks: the client id bound to the session and the authenticated user name (none: anonymous). */
export interface Identity {
  readonly clientId: string;
  readonly username: string | undefined;
}

export interface Authorizer {
  /** May this client subscribe to `filter` (possibly `$share/{group}/...`)? */
  canSubscribe(identity: Identity, filter: string): boolean;
  /** May this client publish to the topic name `topic` (also asked for its will)? */
  canPublish(identity: Identity, topic: string): boolean;
  /** May a message on `topic` be delivered to this client? */
  canReceive(identity: Identity, topic: string): boolean;
  /**
   * Optional: true only when canReceive holds for every topic `filter` matches, so that the broker
   * may skip per-topic checks for a subscription to it. Without it every delivery is checked.
   */
  readsEverything?(identity: Identity, filter: string): boolean;
  /**
   * Optional: changes whenever decisions may change (rules reloaded). The broker caches decisions
   * per generation; an authorizer without one promises that its decisions never change.
   */
  readonly generation?: number;
}

export type Access = 'read' | 'write' | 'readwrite' | 'deny';

export interface AclRule {
  readonly access: Access;
  readonly filter: string;
  /** Where the rule was written (1-based), for messages; 0 when built in code. */
  readonly line: number;
}

export interface AclRules {
  readonly users: ReadonlyMap<string, readonly AclRule[]>;
  /** Rules for clients that gave no user name. */
  readonly anonymous: readonly AclRule[];
  /** Rules for everybody, with `%c` / `%u` substitution. */
  readonly patterns: readonly AclRule[];
}

const separator = '/';
const everything = '#';

/** Why `filter` cannot be a rule's filter, or null. Shared filters name subscriptions, not topics. */
export function aclFilterProblem(filter: string): string | null {
  if (filter.length === 0) return 'empty topic filter';
  if (filter.includes('\u0000')) return 'NUL in topic filter';
  if (filter.startsWith('$share/')) return 'a rule names topics, not shared subscriptions ($share/...)';
  const levels = filter.split(separator);
  for (let index = 0; index < levels.length; index++) {
    const level = levels[index]!;
    if (level.includes('#') && (level !== '#' || index !== levels.length - 1)) return '# must be a whole level and the last one';
    if (level.includes('+') && level !== '+') return '+ must be a whole level';
  }
  return null;
}

/**
 * True when every topic name matched by `filter` is matched by `rule` (both valid, non-shared).
 * Walks both level by level: `#` in the rule takes whatever is left (including nothing: `a/#`
 * matches `a`), `+` in the rule takes any single level of the filter but not a `#`, and a literal
 * level only covers the same literal.
 */
export function covers(rule: string, filter: string): boolean {
  const ruleLevels = rule.split(separator);
  const filterLevels = filter.split(separator);
  // [MQTT-4.7.2-1] A rule starting with a wildcard matches no `$` topic, which a filter starting
  // with a literal `$` level matches exclusively.
  if (isWildcard(ruleLevels[0]!) && filterLevels[0]!.startsWith('$')) return false;
  for (let index = 0; ; index++) {
    const ruleLevel = ruleLevels[index];
    const filterLevel = filterLevels[index];
    if (ruleLevel === everything) return true;
    if (ruleLevel === undefined || filterLevel === undefined) return ruleLevel === filterLevel;
    // The filter's `#` also matches its parent, which only a rule's `#` matches, unless that
    // parent would be the empty topic (no topic name is empty): then the filter's `#` means
    // `+/#`, and `#` covers `#`, `+/#` too.
    if (filterLevel === everything) return isEmptyTopic(filterLevels, index) && ruleLevel === '+' && ruleLevels[index + 1] === everything;
    if (ruleLevel === '+') continue;
    if (filterLevel === '+' || filterLevel !== ruleLevel) return false;
  }
}

/** True when some topic name is matched by both filters (both valid, non-shared). */
export function intersects(first: string, second: string): boolean {
  const firstLevels = first.split(separator);
  const secondLevels = second.split(separator);
  // A filter starting with a wildcard meets no `$` topic; one starting with `$...` meets only those.
  if (isWildcard(firstLevels[0]!) && secondLevels[0]!.startsWith('$')) return false;
  if (isWildcard(secondLevels[0]!) && firstLevels[0]!.startsWith('$')) return false;
  for (let index = 0; ; index++) {
    const a = firstLevels[index];
    const b = secondLevels[index];
    // `#` meets whatever the other has left, and its parent level unless that is the empty topic.
    // (Both prefixes matched level by level, so the common topic is empty if either spells it.)
    const parentIsEmpty = isEmptyTopic(firstLevels, index) || isEmptyTopic(secondLevels, index);
    if (a === everything) return b !== undefined || !parentIsEmpty;
    if (b === everything) return a !== undefined || !parentIsEmpty;
    if (a === undefined || b === undefined) return a === b;
    if (a !== '+' && b !== '+' && a !== b) return false;
  }
}

/** True when the first `count` levels spell the empty string, which is no topic name. */
function isEmptyTopic(levels: readonly string[], count: number): boolean {
  return count === 0 || (count === 1 && levels[0] === '');
}

function isWildcard(level: string): boolean {
  return level === '+' || level === everything;
}

/** A substituted pattern that cannot be applied safely (see the module comment). */
const unsafe = Symbol('unsafe');

function substitute(filter: string, identity: Identity): string | null | typeof unsafe {
  if (!filter.includes('%')) return filter;
  const namesUser = filter.includes('%u');
  if (namesUser && identity.username === undefined) return null;
  if (namesUser && !isSafeValue(identity.username!)) return unsafe;
  if (filter.includes('%c') && !isSafeValue(identity.clientId)) return unsafe;
  // One left-to-right pass over the pattern, so that a value that itself contains "%c" or "%u"
  // is never substituted again.
  let out = '';
  for (let index = 0; index < filter.length; index++) {
    const isPlaceholder = filter.charCodeAt(index) === percent;
    const next = filter.charCodeAt(index + 1);
    if (isPlaceholder && next === letterC) {
      out += identity.clientId;
      index += 1;
    } else if (isPlaceholder && next === letterU) {
      out += identity.username!;
      index += 1;
    } else {
      out += filter[index];
    }
  }
  return out;
}

const percent = 0x25;
const letterC = 0x63;
const letterU = 0x75;

function isSafeValue(value: string): boolean {
  return !(value.includes('/') || value.includes('+') || value.includes('#') || value.includes('\u0000'));
}

interface EffectiveRule {
  readonly access: Access;
  readonly filter: string;
}

const denyEverything: EffectiveRule = Object.freeze({ access: 'deny', filter: everything });

function grants(access: Access, wanted: 'read' | 'write'): boolean {
  return access === 'readwrite' || access === wanted;
}

export class RuleAuthorizer implements Authorizer {
  private current: AclRules;
  private generationValue = 0;

  constructor(rules: AclRules) {
    this.current = rules;
  }

  get generation(): number {
    return this.generationValue;
  }

  get rules(): AclRules {
    return this.current;
  }

  /** Live reload: decisions from now on follow `rules`. */
  replace(rules: AclRules): void {
    this.current = rules;
    this.generationValue += 1;
  }

  canPublish(identity: Identity, topic: string): boolean {
    return this.decideTopic(identity, topic, 'write');
  }

  canReceive(identity: Identity, topic: string): boolean {
    return this.decideTopic(identity, topic, 'read');
  }

  canSubscribe(identity: Identity, filter: string): boolean {
    const plain = plainFilter(filter);
    let covered = false;
    for (const rule of this.effectiveRules(identity)) {
      if (rule.access === 'deny' && covers(rule.filter, plain)) return false;
      if (grants(rule.access, 'read') && covers(rule.filter, plain)) covered = true;
    }
    return covered;
  }

  readsEverything(identity: Identity, filter: string): boolean {
    const plain = plainFilter(filter);
    let covered = false;
    for (const rule of this.effectiveRules(identity)) {
      if (rule.access === 'deny' && intersects(rule.filter, plain)) return false;
      if (grants(rule.access, 'read') && covers(rule.filter, plain)) covered = true;
    }
    return covered;
  }

  private decideTopic(identity: Identity, topic: string, wanted: 'read' | 'write'): boolean {
    assert(topic.length > 0, 'a topic name is never empty');
    let allowed = false;
    for (const rule of this.effectiveRules(identity)) {
      if (!matchesFilter(rule.filter, topic)) continue;
      // Deny wins over every grant, wherever it is written.
      if (rule.access === 'deny') return false;
      if (grants(rule.access, wanted)) allowed = true;
    }
    return allowed;
  }

  /** The client's block (user or anonymous) and the patterns, substituted for it. */
  private effectiveRules(identity: Identity): EffectiveRule[] {
    const block = identity.username === undefined ? this.current.anonymous : (this.current.users.get(identity.username) ?? []);
    const rules: EffectiveRule[] = [...block];
    for (const pattern of this.current.patterns) {
      const filter = substitute(pattern.filter, identity);
      if (filter === null) continue;
      if (filter === unsafe) {
        if (pattern.access === 'deny') rules.push(denyEverything);
        continue;
      }
      rules.push({ access: pattern.access, filter });
    }
    return rules;
  }
}

function plainFilter(filter: string): string {
  const shared = parseSharedFilter(filter);
  return shared === null ? filter : shared.filter;
}
