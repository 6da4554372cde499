/**
 * The oracle's own topic matching: deliberately a separate, naive implementation from the
 * broker's trie, so that a bug in the trie cannot hide itself from the checker.
 */

/**
 * The levels of a topic or filter. The checker matches the same few dozen names against each
 * other for every delivery, so their splits are kept (the cache is emptied when it reaches its
 * bound; what is in it is a pure function of the name, so no run can tell).
 */
const levelsCache = new Map<string, readonly string[]>();
const levelsCacheMax = 4_096;

function levelsOf(name: string): readonly string[] {
  let levels = levelsCache.get(name);
  if (levels === undefined) {
    if (levelsCache.size >= levelsCacheMax) levelsCache.clear();
    levels = name.split('/');
    levelsCache.set(name, levels);
  }
  return levels;
}

/** True when `topic` matches `filter` (a plain filter, not `$share/...`). */
export function topicMatches(filter: string, topic: string): boolean {
  const filterLevels = levelsOf(filter);
  const topicLevels = levelsOf(topic);
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
