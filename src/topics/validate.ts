/**
 * Topic name and topic filter validation.
 *
 * Every check is one pass over the UTF-16 code units of the string, with no allocation on the
 * accepting path: the UTF-8 length is computed arithmetically from the code units instead of
 * encoding, and levels are counted by separators. A failed check returns a short human-readable
 * reason (for the log line and the 5.0 Reason String); the broker maps "invalid" to 0x90 (topic
 * name) or 0x8F (topic filter). Limits apply to the whole string as the client sent it, so a
 * shared filter `$share/g/a/b` counts four levels.
 *
 * The strings reaching here came out of the codec's UTF-8 decoder, which already refuses
 * ill-formed UTF-8; a lone surrogate can therefore only come from a programmatic caller, and is
 * refused rather than silently measured as U+FFFD [MQTT-1.5.4-1].
 */

export interface TopicLimits {
  topicBytesMax: number;
  topicLevelsMax: number;
}

const slash = 0x2f;
const plus = 0x2b;
const hash = 0x23;
const sharePrefix = '$share/';

/**
 * Checks what topic names and filters have in common: not empty [MQTT-4.7.3-1], no U+0000
 * [MQTT-4.7.3-2], well-formed UTF-16, within the byte and level limits [MQTT-4.7.3-3].
 * `kind` only words the reason.
 */
function checkCommon(text: string, limits: TopicLimits, kind: string): string | null {
  const length = text.length;
  if (length === 0) return `empty ${kind}`;
  let bytes = 0;
  let levels = 1;
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x80) {
      if (code === 0) return `${kind} contains U+0000`;
      if (code === slash) levels++;
      bytes += 1;
    } else if (code < 0x800) {
      bytes += 2;
    } else if (code >= 0xd800 && code <= 0xdbff) {
      const next = index + 1 < length ? text.charCodeAt(index + 1) : 0;
      if (next < 0xdc00 || next > 0xdfff) return `${kind} contains a lone surrogate`;
      bytes += 4;
      index++;
    } else if (code >= 0xdc00 && code <= 0xdfff) {
      return `${kind} contains a lone surrogate`;
    } else {
      bytes += 3;
    }
  }
  if (bytes > limits.topicBytesMax) return `${kind} longer than ${limits.topicBytesMax} bytes`;
  if (levels > limits.topicLevelsMax) return `${kind} has more than ${limits.topicLevelsMax} levels`;
  return null;
}

/** Null when `topic` is a valid topic name for PUBLISH, else a short reason. */
export function checkTopicName(topic: string, limits: TopicLimits): string | null {
  const common = checkCommon(topic, limits, 'topic name');
  if (common !== null) return common;
  for (let index = 0; index < topic.length; index++) {
    const code = topic.charCodeAt(index);
    // [MQTT-4.7.1-1] (3.1.1) / [MQTT-3.3.2-2] (5.0): wildcards are for filters only.
    if (code === plus || code === hash) return 'wildcard in topic name';
  }
  return null;
}

/**
 * Checks wildcard placement in a plain (non-shared) filter from `start` to the end: `+` must be
 * a whole level [MQTT-4.7.1-3]; `#` must be a whole level and the last one [MQTT-4.7.1-2].
 */
function checkWildcards(filter: string, start: number): string | null {
  const length = filter.length;
  for (let index = start; index < length; index++) {
    const code = filter.charCodeAt(index);
    if (code !== plus && code !== hash) continue;
    const levelStart = index === start || filter.charCodeAt(index - 1) === slash;
    if (code === plus) {
      const levelEnd = index + 1 === length || filter.charCodeAt(index + 1) === slash;
      if (!levelStart || !levelEnd) return "'+' must occupy a whole level";
    } else {
      if (!levelStart) return "'#' must occupy a whole level";
      if (index + 1 !== length) return "'#' must be the last level";
    }
  }
  return null;
}

/** Null when `filter` is a valid topic filter (shared form included), else a short reason. */
export function checkTopicFilter(filter: string, limits: TopicLimits): string | null {
  const common = checkCommon(filter, limits, 'topic filter');
  if (common !== null) return common;
  if (!filter.startsWith(sharePrefix)) return checkWildcards(filter, 0);
  // The ShareName must be followed by '/' and a topic filter [MQTT-4.8.2-2].
  const nameEnd = filter.indexOf('/', sharePrefix.length);
  if (nameEnd < 0) return 'shared subscription without a topic filter';
  // The ShareName is at least one character long [MQTT-4.8.2-1].
  if (nameEnd === sharePrefix.length) return 'empty share name';
  for (let index = sharePrefix.length; index < nameEnd; index++) {
    const code = filter.charCodeAt(index);
    // The ShareName cannot hold '/', '+' or '#' [MQTT-4.8.2-2]; '/' ends it by construction.
    if (code === plus || code === hash) return 'wildcard in share name';
  }
  // [MQTT-4.8.2-2] again: the '/' after the ShareName must be followed by a topic filter.
  if (nameEnd + 1 === filter.length) return 'shared subscription without a topic filter';
  return checkWildcards(filter, nameEnd + 1);
}

/**
 * `{ group, filter }` for `$share/{group}/{filter}`, null for a filter that is not shared.
 * A string that starts with `$share/` but has no `/` after the group name (`$share/g`) is not
 * a shared filter in this sense and gives null; `checkTopicFilter` rejects it.
 */
export function parseSharedFilter(filter: string): { group: string; filter: string } | null {
  if (!filter.startsWith(sharePrefix)) return null;
  const nameEnd = filter.indexOf('/', sharePrefix.length);
  if (nameEnd < 0) return null;
  return { group: filter.slice(sharePrefix.length, nameEnd), filter: filter.slice(nameEnd + 1) };
}

/** True when the filter contains `+` or `#` (after removing any `$share/{group}/` prefix). */
export function hasWildcard(filter: string): boolean {
  let start = 0;
  if (filter.startsWith(sharePrefix)) {
    const nameEnd = filter.indexOf('/', sharePrefix.length);
    if (nameEnd >= 0) start = nameEnd + 1;
  }
  for (let index = start; index < filter.length; index++) {
    const code = filter.charCodeAt(index);
    if (code === plus || code === hash) return true;
  }
  return false;
}

/**
 * True for a topic name reserved for the broker's own publications (`$SYS` and below): clients
 * may read them (with permission) but not publish there (broker/sys-topics.ts).
 */
export function isBrokerTopic(topic: string): boolean {
  return topic === '$SYS' || topic.startsWith('$SYS/');
}

/**
 * True for a subscription to a durable stream (`$stream/...`, or shared: `$share/{group}/$stream/...`):
 * such a subscription reads the stream through a cursor (broker/streams/) and is never in the
 * subscription trie, which matches topics clients publish to, and nobody publishes to `$stream/`.
 */
export function isStreamFilter(filter: string): boolean {
  if (filter.startsWith(streamPrefix)) return true;
  if (!filter.startsWith(sharePrefix)) return false;
  const nameEnd = filter.indexOf('/', sharePrefix.length);
  return nameEnd >= 0 && filter.startsWith(streamPrefix, nameEnd + 1);
}

/**
 * True for a topic no client may publish to, nor leave a will on: the broker's own `$SYS`, and
 * `$stream/`, whose names are for reading streams (a message there could never be read: a
 * `$stream` subscription reads a stream, not that topic).
 */
export function isReservedTopic(topic: string): boolean {
  return isBrokerTopic(topic) || isStreamTopic(topic);
}

/** True for a topic under `$stream/`: reading a stream is subscribing there, and no client may publish there. */
export function isStreamTopic(topic: string): boolean {
  return topic === '$stream' || topic.startsWith(streamPrefix);
}

const streamPrefix = '$stream/';
