/**
 * The oracle's own topic matching: deliberately a separate, naive implementation from the
 * broker's trie, so that a bug in the trie cannot hide itself from the checker.
 */

/** True when `topic` matches `filter` (a plain filter, not `$share/...`). */
export function topicMatches(filter: string, topic: string): boolean {
  const filterLevels = filter.split('/');
  const topicLevels = topic.split('/');
  // [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with '$'.
  if (topic.startsWith('$') && (filterLevels[0] === '#' || filterLevels[0] === '+')) return false;
  for (let index = 0; index < filterLevels.length; index++) {
    const level = filterLevels[index]!;
    if (level === '#') return true;
    if (index >= topicLevels.length) return false;
    if (level !== '+' && level !== topicLevels[index]) return false;
  }
  return filterLevels.length === topicLevels.length;
}

/** Splits `$share/{group}/{filter}`; null for a filter that is not shared. */
export function splitShared(filter: string): { group: string; filter: string } | null {
  if (!filter.startsWith('$share/')) return null;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  return { group: rest.slice(0, slash), filter: rest.slice(slash + 1) };
}

/** The plain filter a subscription matches with, shared prefix removed. */
export function matchingFilter(filter: string): string {
  const shared = splitShared(filter);
  return shared === null ? filter : shared.filter;
}
