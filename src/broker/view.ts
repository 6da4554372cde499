/**
 * The core's read-only face (contract.ts BrokerView): what metrics and the admin API may see.
 *
 * Everything returned is a fresh plain object or a summary: io/ never holds one of the core's
 * own tables or state objects, so the only way to change the core stays its inputs. Lists are
 * pages in key order (client id, topic), after an `after` key, at most `limit` long; sorting a
 * table of 100,000 keys for a page costs tens of milliseconds, which an operator's request can
 * afford and the publish path never pays. Totals that need a pass over every session (queued and
 * inflight messages) are computed when asked, for the same reason.
 */
import { assert } from '../assert.js';
import type { BrokerGauges, BrokerView, ClientSummary, PageQuery, RetainedSummary, SessionSummary, StreamSummary, SubscriptionSummary } from '../contract.js';
import type { SessionState, SubscriptionState } from '../store/state-store.js';
import { matchesFilter } from '../topics/match-filter.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import { streamSummaries } from './streams/stream-admin.js';

/** The most items one page may hold, whatever the query asks. */
export const pageItemsMax = 1_000;
const payloadTextBytesMax = 256;
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export class BrokerInspection implements BrokerView {
  /** Core time when recovery finished, for `recoveryMs`. */
  readyAtMs: number | null = null;

  constructor(
    private readonly broker: Broker,
    private readonly startedMs: number,
  ) {}

  counters(): Record<string, number | Record<string, number>> {
    const stats = this.broker.stats;
    const copy: Record<string, number | Record<string, number>> = {};
    for (const [key, value] of Object.entries(stats)) copy[key] = typeof value === 'number' ? value : { ...(value as Record<string, number>) };
    const cluster = this.broker.cluster;
    if (cluster !== null) {
      // A cluster node's own counters (cluster-node.ts, retained-sync.ts, session-registry.ts, shared-groups.ts, session-handover.ts), one group each.
      copy.clusterNode = { ...cluster.counters };
      copy.clusterHandover = { ...cluster.handover.counters };
      copy.clusterRetained = { ...cluster.retained.counters };
      copy.clusterSessions = { ...cluster.sessions.counters };
      copy.clusterShared = { ...cluster.shares.counters };
    }
    return copy;
  }

  gauges(): BrokerGauges {
    const broker = this.broker;
    let queued = 0;
    let inflight = 0;
    for (const session of broker.state.sessions.values()) {
      queued += session.queue.length;
      inflight += session.inflight.size;
    }
    const store = broker.store.stats;
    return {
      sessionsOnline: broker.online.size,
      sessionsOffline: broker.state.sessions.size - broker.online.size,
      subscriptions: broker.trie.size,
      retainedMessages: broker.state.retained.size,
      retainedBytes: broker.state.retainedBytes,
      queuedMessages: queued,
      inflightMessages: inflight,
      storedMessages: broker.state.messages.size,
      clientsByListener: broker.clientsPerListener(),
      clientsByProtocolVersion: clientsByProtocolVersion(broker.online.values()),
      storage: store === undefined ? null : { ...store },
      recoveryMs: this.readyAtMs === null ? null : this.readyAtMs - this.startedMs,
      cluster:
        broker.cluster === null ? null : { knownSessionKeys: broker.cluster.sessions.knownKeys, claimsPending: broker.cluster.sessions.claimsPending, readerHeldAt: broker.cluster.readerHeldAt },
    };
  }

  clusterReaderHeldAt(): number | null {
    return this.broker.cluster?.readerHeldAt ?? null;
  }

  clients(query: PageQuery): ClientSummary[] {
    const online = this.broker.online;
    return page([...online.keys()], query).map((clientId) => clientSummary(online.get(clientId)!));
  }

  client(clientId: string): (ClientSummary & { subscriptionList: SubscriptionSummary[] }) | null {
    const connection = this.broker.online.get(clientId);
    if (connection === undefined) return null;
    const subscriptionList = [...connection.session!.subscriptions.values()].map((subscription) => subscriptionSummary(clientId, subscription));
    return { ...clientSummary(connection), subscriptionList };
  }

  sessions(query: PageQuery): SessionSummary[] {
    const sessions = this.broker.state.sessions;
    return page([...sessions.keys()], query).map((clientId) => this.sessionSummary(sessions.get(clientId)!));
  }

  subscriptions(query: PageQuery): SubscriptionSummary[] {
    // Keyed by client id and filter, so that a page boundary inside one session's list is exact.
    const keys: string[] = [];
    const byKey = new Map<string, SubscriptionSummary>();
    for (const session of this.broker.state.sessions.values()) {
      for (const subscription of session.subscriptions.values()) {
        const key = `${session.clientId}\u0000${subscription.filter}`;
        keys.push(key);
        byKey.set(key, subscriptionSummary(session.clientId, subscription));
      }
    }
    return page(keys, query).map((key) => byKey.get(key)!);
  }

  retained(query: PageQuery & { filter?: string }): RetainedSummary[] {
    const filter = query.filter ?? '#';
    const state = this.broker.state;
    const topics = [...state.retained.keys()].filter((topic) => matchesFilter(filter, topic));
    return page(topics, query).map((topic) => {
      const message = state.messages.get(state.retained.get(topic)!)!;
      return { topic, qos: message.qos, payloadBytes: message.payload.length, payloadText: payloadText(message.payload), storedAtMs: message.createdAtMs };
    });
  }

  streams(): StreamSummary[] {
    return streamSummaries(this.broker);
  }

  private sessionSummary(session: SessionState): SessionSummary {
    return {
      clientId: session.clientId,
      username: session.username ?? null,
      online: this.broker.online.has(session.clientId),
      protocolVersion: session.protocolVersion,
      expiryIntervalSeconds: session.expiryIntervalSeconds,
      offlineSinceMs: session.offlineSinceMs,
      queued: session.queue.length,
      inflight: session.inflight.size,
      subscriptions: session.subscriptions.size,
    };
  }
}

const protocolVersionNames: Record<number, string> = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

/**
 * One pass over the connected clients, made only when asked (a scrape): cheaper than keeping a
 * count per version up to date on every CONNECT and close, which the broker would pay always.
 */
function clientsByProtocolVersion(connections: Iterable<Connection>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const connection of connections) {
    const name = protocolVersionNames[connection.version];
    assert(name !== undefined, 'a connected client has a protocol version');
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** The keys after `query.after`, in order, at most `query.limit` (and `pageItemsMax`) of them. */
function page(keys: string[], query: PageQuery): string[] {
  keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const after = query.after;
  let start = 0;
  if (after !== undefined) {
    // Binary search for the first key past `after`: pages stay exact while keys come and go.
    let high = keys.length;
    while (start < high) {
      const middle = (start + high) >>> 1;
      if (keys[middle]! <= after) start = middle + 1;
      else high = middle;
    }
  }
  const limit = Math.max(0, Math.min(query.limit, pageItemsMax));
  return keys.slice(start, start + limit);
}

function clientSummary(connection: Connection): ClientSummary {
  const session = connection.session!;
  return {
    clientId: connection.clientId,
    username: connection.username ?? null,
    listener: connection.listener.name,
    remoteAddress: connection.remoteAddress,
    protocolVersion: connection.version,
    connectedAtMs: connection.connectedAtMs,
    keepAliveSeconds: connection.keepAliveMs / 1000,
    queued: session.queue.length,
    inflight: session.inflight.size,
    subscriptions: session.subscriptions.size,
  };
}

function subscriptionSummary(clientId: string, subscription: SubscriptionState): SubscriptionSummary {
  const { filter, qos, noLocal, retainAsPublished, retainHandling, subscriptionId } = subscription;
  return { clientId, filter, qos, noLocal, retainAsPublished, retainHandling, subscriptionId };
}

function payloadText(payload: Uint8Array): string | null {
  if (payload.length > payloadTextBytesMax) return null;
  try {
    return textDecoder.decode(payload);
  } catch {
    return null;
  }
}
