/**
 * Streams made and unmade: from the configuration at start-up, and by the admin commands
 * `create-stream` and `delete-stream` (contract.ts), which are inputs like any other and answered
 * once durable (admin.ts).
 *
 * - At start-up every configured stream the data directory does not hold is created, and one it
 *   holds with other settings is redefined (its entries, offsets and groups stay; a new filter
 *   applies to messages published from then on). A stream created at run time and not in the
 *   configuration stays: the configuration adds streams, it does not remove them.
 * - `create-stream` validates like the configuration does, and refuses a name in use, a name whose
 *   files are still being deleted (the store removes them once the deletion is durable; try again
 *   a moment later), more than `streamsMax` streams, and a broker whose store keeps no streams.
 * - `delete-stream` removes every session's `$stream` subscription to it first (an UNSUBSCRIBE on
 *   each client's behalf: they are not told, as MQTT has no way to tell them), then the stream;
 *   its files go once that is durable. A stream in the configuration comes back, empty, at the next
 *   start.
 */
import type { StreamDefinition } from '../../config.js';
import { streamDefinitionFrom } from '../../config.js';
import type { AdminOutcome, StreamSummary } from '../../contract.js';
import type { StreamState } from '../../store/state-store.js';
import type { Broker } from '../broker.js';
import { parseStreamFilter } from './stream-filter.js';

const done: AdminOutcome = Object.freeze({ ok: true });

function invalid(message: string): AdminOutcome {
  return { ok: false, status: 'invalid', message };
}

/** At start-up: the configured streams, created or redefined; then the filters' trie. */
export function reconcileConfiguredStreams(broker: Broker): void {
  const state = broker.state;
  for (const definition of broker.config.streams) {
    const existing = state.streams.get(definition.name);
    if (existing !== undefined && sameDefinition(existing, definition)) continue;
    broker.log('info', existing === undefined ? 'stream-created' : 'stream-redefined', { stream: definition.name, filter: definition.filter, from: 'configuration' });
    broker.commit({ kind: 'stream-created', stream: definition });
  }
  for (const stream of state.streams.values()) broker.streams.trie.subscribe(stream.filter, stream.name, stream.name);
}

function sameDefinition(stream: StreamState, definition: StreamDefinition): boolean {
  return stream.filter === definition.filter && stream.retentionMs === definition.retentionMs && stream.retentionBytes === definition.retentionBytes && stream.lastValue === definition.lastValue;
}

export function createStream(broker: Broker, fields: Record<string, unknown>): AdminOutcome {
  const definition = streamDefinitionFrom(fields, broker.config);
  if ('problems' in definition) return invalid(definition.problems.join('; '));
  const store = broker.store.streams;
  if (store === undefined) return invalid('this broker keeps no streams (its store cannot)');
  if (broker.state.streams.has(definition.name)) return invalid(`stream ${definition.name} exists`);
  if (store.isDeleting(definition.name)) return invalid(`stream ${definition.name} is still being deleted; try again`);
  if (broker.state.streams.size >= broker.config.streamsMax) return invalid(`streamsMax (${broker.config.streamsMax}) streams exist`);
  broker.log('info', 'stream-created', { stream: definition.name, filter: definition.filter, from: 'admin' });
  broker.commit({ kind: 'stream-created', stream: definition });
  broker.streams.trie.subscribe(definition.filter, definition.name, definition.name);
  return done;
}

export function deleteStream(broker: Broker, name: string): AdminOutcome {
  const stream = broker.state.streams.get(name);
  if (stream === undefined) return { ok: false, status: 'not-found', message: `no stream ${name}` };
  let subscriptions = 0;
  for (const session of broker.state.sessions.values()) {
    for (const filter of [...session.subscriptions.keys()]) {
      const spec = parseStreamFilter(filter, protocolLimits);
      if (typeof spec === 'string' || spec.stream !== name) continue;
      broker.streams.unsubscribed(session, filter);
      broker.commit({ kind: 'subscription-removed', clientId: session.clientId, filter });
      subscriptions += 1;
    }
  }
  broker.streams.streamDeleted(name);
  broker.streams.trie.unsubscribe(stream.filter, name);
  broker.log('info', 'stream-deleted', { stream: name, subscriptionsRemoved: subscriptions });
  broker.commit({ kind: 'stream-deleted', stream: name });
  return done;
}

/** Every stream as operators see it (view.ts): definition, offsets, files, groups, readers. */
export function streamSummaries(broker: Broker): StreamSummary[] {
  const store = broker.store.streams;
  const summaries: StreamSummary[] = [];
  for (const stream of broker.state.streams.values()) {
    const segments = store?.segments(stream.name) ?? [];
    let bytes = 0;
    for (const segment of segments) bytes += segment.bytes;
    const live = broker.streams.groupsOf(stream.name);
    const groups = [...stream.groups].map(([group, offset]) => ({ group, offset: live.get(group)?.position() ?? offset, members: live.get(group)?.members.size ?? 0 }));
    summaries.push({
      name: stream.name,
      filter: stream.filter,
      retentionMs: stream.retentionMs,
      retentionBytes: stream.retentionBytes,
      lastValue: stream.lastValue,
      firstOffset: stream.firstOffset,
      nextOffset: stream.nextOffset,
      lastTimeMs: stream.lastTimeMs,
      bytes,
      segments: segments.length,
      readers: broker.streams.readersOf(stream.name).size,
      groups,
    });
  }
  return summaries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const protocolLimits = { topicBytesMax: 65_535, topicLevelsMax: 65_535 };
