/**
 * STUB: the topics helper replaces this file. The exported signatures are the agreed API.
 */

/** One subscriber's entry under a filter. `key` identifies the subscriber (a session). */
export interface TrieEntry<V> {
  readonly key: string;
  value: V;
}

/** The members of one shared subscription group `$share/{name}/{filter}`, with a fair cursor. */
export interface SharedGroup<V> {
  readonly name: string;
  /** The filter without the `$share/{name}/` prefix. */
  readonly filter: string;
  readonly members: readonly TrieEntry<V>[];
  /** Round-robin position, advanced by `pickSharedMember`. */
  cursor: number;
}

export interface MatchSink<V> {
  /** Called once per matching (non-shared) filter and subscriber; overlapping filters call it again. */
  subscriber(entry: TrieEntry<V>, filter: string): void;
  /** Called once per matching shared group that has at least one member. */
  sharedGroup(group: SharedGroup<V>): void;
}

/**
 * Subscription trie. `subscribe`/`unsubscribe` take the full filter as the client sent it, so
 * `$share/g/a/+` lands in group `g` under `a/+`. Cost is O(levels) per operation, and matching
 * is O(levels x branching on +/#), independent of the number of subscriptions.
 */
export class SubscriptionTrie<V> {
  /** Adds or replaces the entry for `key` under `filter`; true when it was new. */
  subscribe(_filter: string, _key: string, _value: V): boolean {
    throw new Error('not implemented');
  }
  /** Removes the entry for `key` under `filter`; true when it existed. */
  unsubscribe(_filter: string, _key: string): boolean {
    throw new Error('not implemented');
  }
  /** Visits every subscription matching the topic name, applying the `$` rule [MQTT-4.7.2-1]. */
  match(_topic: string, _sink: MatchSink<V>): void {
    throw new Error('not implemented');
  }
  /** The entry for `key` under `filter`, if any. */
  get(_filter: string, _key: string): V | undefined {
    throw new Error('not implemented');
  }
  /** Number of (filter, key) entries, shared ones included. */
  get size(): number {
    throw new Error('not implemented');
  }
}

/** Chooses the next member of a shared group in round-robin order, skipping those `eligible` rejects. */
export function pickSharedMember<V>(_group: SharedGroup<V>, _eligible: (entry: TrieEntry<V>) => boolean): TrieEntry<V> | undefined {
  throw new Error('not implemented');
}
