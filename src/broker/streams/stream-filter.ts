/**
 * What a `$stream` subscription asks for: parsing its topic filter and its `stream-offset`.
 *
 *   $stream/<name>                     the stream, from `latest` unless `stream-offset` says otherwise
 *   $stream/<name>/earliest[/<filter>] from the oldest kept entry (for MQTT 3.1.1, which has no properties)
 *   $stream/<name>/latest[/<filter>]   from the next entry appended
 *   $stream/<name>/<filter>            only entries whose topic matches <filter> (a narrowing)
 *   $share/<group>/$stream/<name>[...] a consumer group: each entry goes to one member
 *
 * A narrowing filter whose first level is literally `earliest` or `latest` is written after an
 * explicit start (`$stream/s/latest/earliest/#`). The MQTT 5.0 user property `stream-offset` on
 * the SUBSCRIBE (`earliest`, `latest`, `offset:<n>`, `time:<unix ms>`) applies to every `$stream`
 * filter of the packet and wins over a start in the filter.
 *
 * A consumer group is identified by its share name and its narrowing: `$share/g/$stream/s` and
 * `$share/g/$stream/s/a/#` are two groups (`g` and `g/a/#`), as `$share/g/a` and `$share/g/b`
 * are two shared subscriptions in MQTT; a start in the filter does not change the group.
 */
import type { Properties } from '../../codec/packets.js';
import { streamNamePattern } from '../../config.js';
import { checkTopicFilter, parseSharedFilter, type TopicLimits } from '../../topics/validate.js';

export const streamPrefix = '$stream/';
export const streamOffsetProperty = 'stream-offset';

export type StreamStart = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'offset'; offset: number } | { kind: 'time'; timeMs: number };

export interface StreamSubscriptionSpec {
  readonly stream: string;
  /** Only entries whose topic matches it; null for the whole stream. */
  readonly narrow: string | null;
  /** The consumer group's key (share name, then `/` and the narrowing when there is one), or null. */
  readonly group: string | null;
  /** A start named in the filter, or null. */
  readonly start: StreamStart | null;
}

/** The spec of a `$stream` filter (plain or shared), or why it cannot be one. */
export function parseStreamFilter(filter: string, limits: TopicLimits): StreamSubscriptionSpec | string {
  const shared = parseSharedFilter(filter);
  const plain = shared === null ? filter : shared.filter;
  if (!plain.startsWith(streamPrefix)) return 'not a stream filter';
  const rest = plain.slice(streamPrefix.length);
  const nameEnd = rest.indexOf('/');
  const stream = nameEnd < 0 ? rest : rest.slice(0, nameEnd);
  if (!streamNamePattern.test(stream)) return `no stream can be named "${stream}"`;
  let narrow: string | null = nameEnd < 0 ? null : rest.slice(nameEnd + 1);
  let start: StreamStart | null = null;
  if (narrow !== null) {
    const levelEnd = narrow.indexOf('/');
    const level = levelEnd < 0 ? narrow : narrow.slice(0, levelEnd);
    if (level === 'earliest' || level === 'latest') {
      start = { kind: level };
      narrow = levelEnd < 0 ? null : narrow.slice(levelEnd + 1);
    }
  }
  if (narrow !== null) {
    const problem = checkTopicFilter(narrow, limits);
    if (problem !== null || parseSharedFilter(narrow) !== null) return `the filter after the stream name is invalid: ${problem ?? 'shared'}`;
  }
  const group = shared === null ? null : narrow === null ? shared.group : `${shared.group}/${narrow}`;
  return { stream, narrow, group, start };
}

/**
 * The `stream-offset` user property of a SUBSCRIBE: null when absent, the start when valid, and
 * a problem when present but malformed (or given twice).
 */
export function streamOffsetOf(properties: Properties | undefined): StreamStart | null | { problem: string } {
  const values = (properties?.userProperties ?? []).filter(([name]) => name === streamOffsetProperty).map(([, value]) => value);
  if (values.length === 0) return null;
  if (values.length > 1) return { problem: `${streamOffsetProperty} is given ${values.length} times` };
  const start = parseStreamStart(values[0]!);
  return start ?? { problem: `${streamOffsetProperty} must be earliest, latest, offset:<n> or time:<unix ms>, got "${values[0]}"` };
}

export function parseStreamStart(value: string): StreamStart | null {
  if (value === 'earliest' || value === 'latest') return { kind: value };
  const match = /^(offset|time):(\d{1,16})$/.exec(value);
  if (match === null) return null;
  const number = Number(match[2]);
  if (!Number.isSafeInteger(number)) return null;
  return match[1] === 'offset' ? { kind: 'offset', offset: number } : { kind: 'time', timeMs: number };
}
