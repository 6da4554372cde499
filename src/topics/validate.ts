/**
 * STUB: the topics helper replaces this file. The exported signatures are the agreed API.
 */

export interface TopicLimits {
  topicBytesMax: number;
  topicLevelsMax: number;
}

/** Null when `topic` is a valid topic name for PUBLISH, else a short reason. */
export function checkTopicName(_topic: string, _limits: TopicLimits): string | null {
  throw new Error('not implemented');
}

/** Null when `filter` is a valid topic filter (shared form included), else a short reason. */
export function checkTopicFilter(_filter: string, _limits: TopicLimits): string | null {
  throw new Error('not implemented');
}

/** `{ group, filter }` for `$share/{group}/{filter}`, null for a filter that is not shared. */
export function parseSharedFilter(_filter: string): { group: string; filter: string } | null {
  throw new Error('not implemented');
}

/** True when the filter contains `+` or `#` (after removing any `$share/{group}/` prefix). */
export function hasWildcard(_filter: string): boolean {
  throw new Error('not implemented');
}
