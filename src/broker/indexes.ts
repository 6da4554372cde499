/**
 * Keeps the subscription trie (a derived index, never stored) in step with durable state.
 *
 * `updateTrieForRecord` runs just before a record is applied, while the state still shows what
 * the record replaces (a deleted session's subscriptions, say). After recovery the trie is rebuilt
 * from the replayed sessions in their insertion order, so shared-group member order is the same
 * as a fresh run that made the same subscriptions. `$stream` subscriptions are not in the trie:
 * they read a stream through a cursor (broker/streams/).
 */
import type { DurableState, StateRecord, SubscriptionState } from '../store/state-store.js';
import type { SubscriptionTrie } from '../topics/trie.js';
import { isStreamFilter } from '../topics/validate.js';

export function updateTrieForRecord(trie: SubscriptionTrie<SubscriptionState>, state: DurableState, record: StateRecord): void {
  switch (record.kind) {
    case 'subscription-added':
      if (!isStreamFilter(record.subscription.filter)) trie.subscribe(record.subscription.filter, record.clientId, record.subscription);
      return;
    case 'subscription-removed':
      if (!isStreamFilter(record.filter)) trie.unsubscribe(record.filter, record.clientId);
      return;
    case 'session-created':
    case 'session-deleted': {
      const existing = state.sessions.get(record.clientId);
      if (existing === undefined) return;
      for (const filter of existing.subscriptions.keys()) if (!isStreamFilter(filter)) trie.unsubscribe(filter, record.clientId);
      return;
    }
    default:
      return;
  }
}

export function rebuildTrie(trie: SubscriptionTrie<SubscriptionState>, state: DurableState): void {
  for (const session of state.sessions.values()) {
    for (const subscription of session.subscriptions.values()) if (!isStreamFilter(subscription.filter)) trie.subscribe(subscription.filter, session.clientId, subscription);
  }
}
