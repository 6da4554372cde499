/**
 * The subscription trie: which subscribers want a topic name.
 *
 * One node per filter level. A node's literal children live in a Map keyed by the level string;
 * its `+` and `#` children are dedicated fields, so matching a topic level costs one Map lookup
 * plus at most two field reads. Every node remembers the plain filter that leads to it, so a
 * match reports the filter without rebuilding it. Subscribers under a node sit in a Map keyed by
 * subscriber key (insertion-ordered, O(1) add/remove); shared subscriptions sit in groups keyed
 * by share name, each group holding its members in an array in subscription order plus a
 * round-robin cursor.
 *
 * Costs: subscribe, unsubscribe and get walk the filter's levels once, O(levels). Match walks the
 * topic once per live branch, O(levels x wildcard branching), and never looks at subscriptions
 * that cannot match. Unsubscribe prunes nodes left empty, so churn does not leak memory. Removing
 * a shared member costs O(group size) because the member array keeps subscription order.
 *
 * Determinism: every iteration is in insertion order (Map order and array order), so the same
 * sequence of operations always reports matches in the same order, which the simulator relies on
 * to replay runs.
 *
 * Matching walks the topic with indexOf instead of splitting it, so a match allocates only the
 * level substrings it looks up (none for a one-level topic) and no closures. The sink must not
 * modify the trie while a match is running (asserted).
 */
import { assert } from '../assert.js';
import { checkTopicFilter, parseSharedFilter } from './validate.js';

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
  /**
   * Round-robin position, advanced by `pickSharedMember`: the index of the member due next, from
   * 0 to `members.length` inclusive (the length means "start over at the first member").
   */
  cursor: number;
}

export interface MatchSink<V> {
  /** Called once per matching (non-shared) filter and subscriber; overlapping filters call it again. */
  subscriber(entry: TrieEntry<V>, filter: string): void;
  /** Called once per matching shared group that has at least one member. */
  sharedGroup(group: SharedGroup<V>): void;
}

/** A shared group as the trie keeps it: the public shape plus a key index. */
class Group<V> implements SharedGroup<V> {
  readonly members: TrieEntry<V>[] = [];
  readonly memberByKey = new Map<string, TrieEntry<V>>();
  cursor = 0;
  constructor(
    readonly name: string,
    readonly filter: string,
  ) {}
}

class TrieNode<V> {
  children: Map<string, TrieNode<V>> | null = null;
  plus: TrieNode<V> | null = null;
  hash: TrieNode<V> | null = null;
  entries: Map<string, TrieEntry<V>> | null = null;
  groups: Map<string, Group<V>> | null = null;
  constructor(
    readonly parent: TrieNode<V> | null,
    /** The level this node stands for in its parent: a literal, `+` or `#`. */
    readonly level: string,
    /** The plain filter from the root down to and including this level. */
    readonly filter: string,
  ) {}

  isEmpty(): boolean {
    return this.entries === null && this.groups === null && this.children === null && this.plus === null && this.hash === null;
  }
}

/** Structural validity only: the broker applies the configured limits before subscribing. */
const unlimited = { topicBytesMax: Number.POSITIVE_INFINITY, topicLevelsMax: Number.POSITIVE_INFINITY };
const dollar = 0x24;

/**
 * Subscription trie. `subscribe`/`unsubscribe` take the full filter as the client sent it, so
 * `$share/g/a/+` lands in group `g` under `a/+`. Cost is O(levels) per operation, and matching
 * is O(levels x branching on +/#), independent of the number of subscriptions.
 */
export class SubscriptionTrie<V> {
  private readonly root = new TrieNode<V>(null, '', '');
  private entryCount = 0;
  private nodeTotal = 1;
  private matching = false;

  /** Adds or replaces the entry for `key` under `filter`; true when it was new. */
  subscribe(filter: string, key: string, value: V): boolean {
    assert(!this.matching, 'the trie is not modified from inside a match');
    assert(checkTopicFilter(filter, unlimited) === null, 'subscribe takes a valid filter (the broker validates first)');
    const shared = parseSharedFilter(filter);
    const plain = shared === null ? filter : shared.filter;
    const node = this.nodeFor(plain);
    const created = shared === null ? addEntry(node, key, value) : addMember(node, shared.group, key, value);
    if (created) this.entryCount++;
    return created;
  }

  /** Removes the entry for `key` under `filter`; true when it existed. */
  unsubscribe(filter: string, key: string): boolean {
    assert(!this.matching, 'the trie is not modified from inside a match');
    const shared = parseSharedFilter(filter);
    const node = this.findNode(shared === null ? filter : shared.filter);
    if (node === null) return false;
    const removed = shared === null ? removeEntry(node, key) : removeMember(node, shared.group, key);
    if (!removed) return false;
    this.entryCount--;
    assert(this.entryCount >= 0, 'entry count stays non-negative');
    this.prune(node);
    return true;
  }

  /** Visits every subscription matching the topic name, applying the `$` rule [MQTT-4.7.2-1]. */
  match(topic: string, sink: MatchSink<V>): void {
    assert(topic.length > 0, 'match takes a non-empty topic name');
    assert(!this.matching, 'match is not re-entered');
    this.matching = true;
    try {
      // A filter starting with a wildcard does not match a topic starting with '$' [MQTT-4.7.2-1].
      const wildcards = topic.charCodeAt(0) !== dollar;
      matchFrom(this.root, topic, 0, sink, wildcards);
    } finally {
      this.matching = false;
    }
  }

  /** The entry for `key` under `filter`, if any. */
  get(filter: string, key: string): V | undefined {
    const shared = parseSharedFilter(filter);
    const node = this.findNode(shared === null ? filter : shared.filter);
    if (node === null) return undefined;
    if (shared === null) return node.entries?.get(key)?.value;
    return node.groups?.get(shared.group)?.memberByKey.get(key)?.value;
  }

  /** Number of (filter, key) entries, shared ones included. */
  get size(): number {
    return this.entryCount;
  }

  /** Number of trie nodes, the root included; 1 when empty. Lets tests and metrics see pruning. */
  get nodeCount(): number {
    return this.nodeTotal;
  }

  /** The node for a plain filter, created along the way as needed. */
  private nodeFor(filter: string): TrieNode<V> {
    let node = this.root;
    let start = 0;
    for (;;) {
      const end = filter.indexOf('/', start);
      const stop = end < 0 ? filter.length : end;
      node = this.childFor(node, filter, start, stop);
      if (end < 0) return node;
      start = end + 1;
    }
  }

  private childFor(node: TrieNode<V>, filter: string, start: number, stop: number): TrieNode<V> {
    assert(start <= stop, 'a level has a non-negative length');
    assert(node.level !== '#', "'#' is always the last level");
    const level = filter.slice(start, stop);
    if (level === '+') {
      node.plus ??= this.newNode(node, level, filter, stop);
      return node.plus;
    }
    if (level === '#') {
      node.hash ??= this.newNode(node, level, filter, stop);
      return node.hash;
    }
    node.children ??= new Map();
    const children = node.children;
    let child = children.get(level);
    if (child === undefined) {
      child = this.newNode(node, level, filter, stop);
      children.set(level, child);
    }
    return child;
  }

  private newNode(parent: TrieNode<V>, level: string, filter: string, stop: number): TrieNode<V> {
    this.nodeTotal++;
    return new TrieNode<V>(parent, level, filter.slice(0, stop));
  }

  /** The node for a plain filter, or null when no subscription ever created it. */
  private findNode(filter: string): TrieNode<V> | null {
    let node: TrieNode<V> | null = this.root;
    let start = 0;
    for (;;) {
      const end = filter.indexOf('/', start);
      const level = end < 0 ? filter.slice(start) : filter.slice(start, end);
      if (level === '+') node = node.plus;
      else if (level === '#') node = node.hash;
      else node = node.children?.get(level) ?? null;
      if (node === null || end < 0) return node;
      start = end + 1;
    }
  }

  /** Detaches empty nodes from `node` upwards, so the trie holds only live paths. */
  private prune(node: TrieNode<V>): void {
    let current = node;
    while (current.parent !== null && current.isEmpty()) {
      const parent: TrieNode<V> = current.parent;
      if (parent.plus === current) parent.plus = null;
      else if (parent.hash === current) parent.hash = null;
      else {
        const children = parent.children;
        assert(children !== null && children.get(current.level) === current, 'a node is known to its parent');
        children.delete(current.level);
        if (children.size === 0) parent.children = null;
      }
      this.nodeTotal--;
      current = parent;
    }
    assert(this.nodeTotal >= 1, 'the root is never pruned');
  }
}

/**
 * Reports everything under `node` that matches the topic from offset `start` on; `start` is -1
 * once every level has been consumed. `wildcards` is false only at the root of a `$` topic.
 */
function matchFrom<V>(node: TrieNode<V>, topic: string, start: number, sink: MatchSink<V>, wildcards: boolean): void {
  if (start < 0) {
    report(node, sink);
    // `#` also matches its parent level: `a/#` matches `a` [MQTT-4.7.1-2].
    if (node.hash !== null) report(node.hash, sink);
    return;
  }
  if (wildcards && node.hash !== null) report(node.hash, sink);
  const end = topic.indexOf('/', start);
  const next = end < 0 ? -1 : end + 1;
  const children = node.children;
  if (children !== null) {
    const child = children.get(end < 0 ? topic.slice(start) : topic.slice(start, end));
    if (child !== undefined) matchFrom(child, topic, next, sink, true);
  }
  // `+` matches exactly one level, an empty one included.
  if (wildcards && node.plus !== null) matchFrom(node.plus, topic, next, sink, true);
}

function report<V>(node: TrieNode<V>, sink: MatchSink<V>): void {
  const entries = node.entries;
  if (entries !== null) {
    for (const entry of entries.values()) sink.subscriber(entry, node.filter);
  }
  const groups = node.groups;
  if (groups !== null) {
    for (const group of groups.values()) {
      assert(group.members.length > 0, 'empty groups are removed');
      sink.sharedGroup(group);
    }
  }
}

function addEntry<V>(node: TrieNode<V>, key: string, value: V): boolean {
  node.entries ??= new Map();
  const entries = node.entries;
  const existing = entries.get(key);
  if (existing !== undefined) {
    existing.value = value;
    return false;
  }
  entries.set(key, { key, value });
  return true;
}

function removeEntry<V>(node: TrieNode<V>, key: string): boolean {
  const entries = node.entries;
  if (entries === null || !entries.delete(key)) return false;
  if (entries.size === 0) node.entries = null;
  return true;
}

/** Adds or replaces a shared member; a replaced member keeps its place in the rotation. */
function addMember<V>(node: TrieNode<V>, name: string, key: string, value: V): boolean {
  node.groups ??= new Map();
  const groups = node.groups;
  let group = groups.get(name);
  if (group === undefined) {
    group = new Group<V>(name, node.filter);
    groups.set(name, group);
  }
  const existing = group.memberByKey.get(key);
  if (existing !== undefined) {
    existing.value = value;
    return false;
  }
  const entry: TrieEntry<V> = { key, value };
  group.memberByKey.set(key, entry);
  group.members.push(entry);
  assert(group.members.length === group.memberByKey.size, 'member array and index agree');
  return true;
}

/**
 * Removes a shared member and keeps the cursor on the member that was due next: members before
 * the cursor shift it back by one; removing the member under the cursor leaves the cursor on its
 * successor. The cursor may rest at `members.length` (the last member was picked last): it wraps
 * only when the next pick happens, so a member that joins meanwhile is due before the rotation
 * starts over, exactly as if it had been there all along.
 */
function removeMember<V>(node: TrieNode<V>, name: string, key: string): boolean {
  const groups = node.groups;
  const group = groups?.get(name);
  if (groups === null || group === undefined) return false;
  const entry = group.memberByKey.get(key);
  if (entry === undefined) return false;
  group.memberByKey.delete(key);
  const index = group.members.indexOf(entry);
  assert(index >= 0, 'an indexed member is in the member array');
  group.members.splice(index, 1);
  if (index < group.cursor) group.cursor--;
  assert(group.cursor <= group.members.length, 'the cursor stays within one past the last member');
  if (group.members.length === 0) groups.delete(name);
  if (groups.size === 0) node.groups = null;
  return true;
}

/**
 * Chooses the next member of a shared group in round-robin order, skipping those `eligible` rejects.
 * The cursor is the index of the member due next; `members.length` means "wrap to the first".
 * The rotation is therefore exactly: the first eligible member after the one picked last, in
 * subscription order, cyclically; members that were skipped as ineligible get no credit.
 */
export function pickSharedMember<V>(group: SharedGroup<V>, eligible: (entry: TrieEntry<V>) => boolean): TrieEntry<V> | undefined {
  const members = group.members;
  const count = members.length;
  if (count === 0) return undefined;
  assert(Number.isInteger(group.cursor) && group.cursor >= 0, 'the cursor is a non-negative integer');
  assert(group.cursor <= count, 'the cursor is at most one past the last member');
  let index = group.cursor === count ? 0 : group.cursor;
  for (let tried = 0; tried < count; tried++) {
    const member = members[index]!;
    index++;
    if (eligible(member)) {
      group.cursor = index;
      return member;
    }
    if (index === count) index = 0;
  }
  return undefined;
}
