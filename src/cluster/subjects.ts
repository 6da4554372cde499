/**
 * MQTT topics ↔ NATS subjects, the way nats-server's own MQTT support maps them, so that a
 * NATS-native service reads what MQTT clients publish through Keel and publishes to them without
 * a bridge.
 *
 * Theory. An MQTT topic is a list of levels separated by `/`; a NATS subject is a list of
 * non-empty tokens separated by `.`. The mapping works level by level:
 * - the separator `/` becomes `.`;
 * - a `.` inside a level becomes `//` (NATS would take a lone `.` for a separator);
 * - an empty level (a leading `/`, `a//b`, a trailing `/`) becomes the token `/` (NATS has no
 *   empty tokens); so `/a` ↔ `/.a`, `a//b` ↔ `a./.b`, `a/` ↔ `a./`, `/` ↔ `/./`;
 * - in filters, `+` ↔ `*` and `#` ↔ `>`.
 * Every other character is kept. The token `/` can only come from an empty level and a non-empty
 * level yields `/` only in pairs, so the mapping is one to one and `subjectToTopic` inverts it.
 *
 * What cannot be mapped (null; such traffic stays on the node where it was published):
 * - whitespace and control characters (below U+0020) and DEL: they would break the NATS protocol
 *   line (nats-server refuses the same set, less the control characters it does not check);
 * - a level that is exactly `*` or `>` in a topic name or filter: NATS would read it as a
 *   wildcard, so the message would reach the wrong subscribers;
 * - a topic or filter whose first level starts with `$` (`$SYS`, `$share` is handled before):
 *   those are each node's own, and NATS reserves `$`-subjects (`$JS`, `$KV`, `$KEEL`) for its own
 *   machinery, so an MQTT topic must not be able to publish into them.
 *
 * An MQTT filter `a/#` also matches `a` itself [MQTT-4.7.1-2], a NATS `a.>` does not: such a
 * filter maps to two subjects, `a` and `a.>` (`#` alone maps to `>` only, which matches every
 * subject). MQTT wildcards at the first level do not match `$` topics, NATS wildcards do; since
 * `$` topics are never mapped, no `$` topic reaches a node through its subscriptions.
 */

const slash = 0x2f;
const space = 0x20;
const del = 0x7f;

/** True when the text holds a character no subject may carry. */
function hasUnmappableCharacter(text: string): boolean {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code <= space || code === del) return true;
  }
  return false;
}

function levelToToken(level: string): string {
  if (level.length === 0) return '/';
  return level.indexOf('.') < 0 ? level : level.replaceAll('.', '//');
}

function tokenToLevel(token: string): string {
  if (token === '/') return '';
  return token.indexOf('/') < 0 ? token : token.replaceAll('//', '.');
}

/** Maps levels (after the checks) to a subject, wildcards translated when `wildcards` is set. */
function levelsToSubject(levels: readonly string[], wildcards: boolean): string {
  const tokens: string[] = new Array(levels.length);
  for (let index = 0; index < levels.length; index++) {
    const level = levels[index]!;
    if (wildcards && level === '+') tokens[index] = '*';
    else if (wildcards && level === '#') tokens[index] = '>';
    else tokens[index] = levelToToken(level);
  }
  return tokens.join('.');
}

/** Null when the levels may be mapped, else why not. */
function unmappableReason(text: string, levels: readonly string[]): string | null {
  if (text.charCodeAt(0) === 0x24) return 'topics starting with $ stay on their node';
  if (hasUnmappableCharacter(text)) return 'whitespace and control characters cannot travel in a NATS subject';
  for (const level of levels) {
    if (level === '*' || level === '>') return `a level "${level}" would be a NATS wildcard`;
  }
  return null;
}

/** Why a topic name or filter is not carried across the cluster, or null when it is. */
export function topicUnmappableReason(topicOrFilter: string): string | null {
  return unmappableReason(topicOrFilter, topicOrFilter.split('/'));
}

/** The NATS subject of a valid MQTT topic name, or null when it cannot be mapped (see above). */
export function topicToSubject(topic: string): string | null {
  const levels = topic.split('/');
  if (unmappableReason(topic, levels) !== null) return null;
  return levelsToSubject(levels, false);
}

/**
 * The NATS subjects that together match what a valid, non-shared MQTT filter matches (one, or
 * two for a filter ending in `/#`), or null when it cannot be mapped.
 */
export function filterToSubjects(filter: string): string[] | null {
  const levels = filter.split('/');
  if (unmappableReason(filter, levels) !== null) return null;
  const subject = levelsToSubject(levels, true);
  if (levels.length > 1 && levels[levels.length - 1] === '#') {
    // [MQTT-4.7.1-2] `a/#` matches the parent level `a` too.
    return [levelsToSubject(levels.slice(0, -1), true), subject];
  }
  return [subject];
}

/**
 * The MQTT topic of a NATS subject (a published subject: no wildcards), or null when the subject
 * is not the image of a mappable topic (an empty token, a lone `/` inside a token, whitespace, a
 * `$` start): a NATS-native publisher's message on such a subject reaches no MQTT subscriber.
 */
export function subjectToTopic(subject: string): string | null {
  if (subject.length === 0 || hasUnmappableCharacter(subject)) return null;
  const tokens = subject.split('.');
  const levels: string[] = new Array(tokens.length);
  for (let index = 0; index < tokens.length; index++) {
    const token = tokens[index]!;
    if (token.length === 0 || token === '*' || token === '>') return null;
    if (token !== '/' && !slashesPaired(token)) return null;
    levels[index] = tokenToLevel(token);
  }
  const topic = levels.join('/');
  return topic.charCodeAt(0) === 0x24 ? null : topic;
}

/** True when every `/` in a token is one of a pair (the image of a `.`). */
function slashesPaired(token: string): boolean {
  let run = 0;
  for (let index = 0; index < token.length; index++) {
    if (token.charCodeAt(index) === slash) {
      run += 1;
    } else {
      if (run % 2 !== 0) return false;
      run = 0;
    }
  }
  return run % 2 === 0;
}

/** The hand-off stream's subject for a topic's durable messages (the host's stream captures `$KEEL.handoff.>`). */
export const handoffPrefix = '$KEEL.handoff.';

export function handoffSubject(subject: string): string {
  return `${handoffPrefix}${subject}`;
}

/** The topic subject inside a hand-off subject, or null for a subject outside the hand-off space. */
export function subjectOfHandoff(subject: string): string | null {
  return subject.startsWith(handoffPrefix) ? subject.slice(handoffPrefix.length) : null;
}

/** NATS subject matching (`*` one token, `>` one or more), for tests and the simulated NATS. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const patternTokens = pattern.split('.');
  const subjectTokens = subject.split('.');
  for (let index = 0; index < patternTokens.length; index++) {
    const token = patternTokens[index]!;
    if (token === '>') return subjectTokens.length > index;
    if (index >= subjectTokens.length) return false;
    if (token !== '*' && token !== subjectTokens[index]) return false;
  }
  return patternTokens.length === subjectTokens.length;
}
