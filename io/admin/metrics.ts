/**
 * `/metrics`: the broker's figures in the Prometheus text format, through prom-client.
 *
 * Each server has a registry of its own (never prom-client's global one), so two servers in one
 * process, as in the tests, keep apart. Nothing here touches the publish path: every figure is
 * read from the core's read-only view when Prometheus scrapes (collect callbacks), from one
 * snapshot taken at the start of the scrape: `counters()` copies the core's counters, and
 * `gauges()` makes the one pass over the sessions that queue and inflight totals need (about 5 ms
 * for 100,000 sessions; see bench/metrics-bench.ts). The only figures recorded as they happen are
 * the sync latencies, timed by the storage backend around each fsync, and the admin listener's
 * own requests.
 *
 * Names follow Prometheus' conventions: a `keel_` prefix, `_total` on counters, base units
 * (`_seconds`, `_bytes`), one metric with a label where the core counts one thing by reason
 * (drops, limits, authorization denials). prom-client's default collectors add the process's
 * figures (`process_resident_memory_bytes`, `nodejs_heap_size_used_bytes`,
 * `nodejs_eventloop_lag_p99_seconds`, garbage collection) under their usual names.
 */
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import type { BrokerGauges, BrokerView } from '../../src/contract.js';
import type { NatsLinkCounters } from '../cluster/nats-link.js';

/**
 * prom-client's parts, required one by one rather than through its index: the index also loads
 * its Pushgateway (node:http, node:https, node:zlib), the cluster aggregator (node:cluster) and
 * Summary (tdigest), none of which Keel uses; skipping them saves an idle broker about 0.5 MiB
 * of heap and 1 MiB of resident memory (bench/broker-bench.ts, scenario `idle`). The package has
 * no `exports` map, so these paths are as public as its index; a test scrapes every metric.
 */
const requirePromClient = createRequire(import.meta.url);
const Registry = requirePromClient('prom-client/lib/registry') as typeof PromClient.Registry;
const Counter = requirePromClient('prom-client/lib/counter') as typeof PromClient.Counter;
type Counter<T extends string> = PromClient.Counter<T>;
const Gauge = requirePromClient('prom-client/lib/gauge') as typeof PromClient.Gauge;
const Histogram = requirePromClient('prom-client/lib/histogram') as typeof PromClient.Histogram;
type Histogram<T extends string> = PromClient.Histogram<T>;
const collectDefaultMetrics = requirePromClient('prom-client/lib/defaultMetrics') as typeof PromClient.collectDefaultMetrics;

/** What a scrape reads, once per scrape. */
interface Snapshot {
  readonly counters: Record<string, number | Record<string, number>>;
  readonly gauges: BrokerGauges;
  readonly ready: boolean;
  /** Durable streams held, and the bytes of their segment files. */
  readonly streams: { count: number; bytes: number };
}

export interface MetricsSource {
  readonly view: BrokerView;
  /** True once recovery has finished and every listener listens (/readyz). */
  ready(): boolean;
  version: string;
  /** A cluster node's link to NATS (io/cluster/nats-link.ts); absent for a single broker. */
  cluster?: ClusterLinkFigures | null;
}

/** What the metrics read of the cluster link, as it happens (not from the core's snapshot). */
export interface ClusterLinkFigures {
  readonly isUp: boolean;
  readonly counters: NatsLinkCounters;
}

/** Upper bounds of the sync-latency buckets, in seconds: 50 µs (page cache) to 5 s (a sick disk). */
const syncBucketsSeconds = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

type Read = (snapshot: Snapshot) => number;
type ReadLabelled = (snapshot: Snapshot) => Record<string, number>;

export class BrokerMetrics {
  readonly registry = new Registry();
  private snapshot: Snapshot | null = null;
  private readonly syncSeconds: Histogram<'op'>;
  private readonly adminRequests: Counter<'status'>;
  /** The listeners' handshake failure counters (io/listeners/handshake-failures.ts), once they listen. */
  private handshakeFailures: () => Record<string, Record<string, number>> = () => ({});

  constructor(private readonly source: MetricsSource) {
    collectDefaultMetrics({ register: this.registry });
    // Gauges that prom-client names like counters, which `promtool check metrics` refuses; the
    // same figures stay by type (nodejs_active_handles, nodejs_active_requests, nodejs_active_resources).
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    this.syncSeconds = new Histogram({
      name: 'keel_storage_sync_duration_seconds',
      help: 'How long each fsync of the log (op="file") or of the data directory (op="directory") took',
      labelNames: ['op'],
      buckets: syncBucketsSeconds,
      registers: [this.registry],
    });
    this.adminRequests = new Counter({ name: 'keel_admin_http_requests_total', help: 'Requests the admin listener answered, by HTTP status', labelNames: ['status'], registers: [this.registry] });
    this.defineConnections();
    this.defineMessages();
    this.defineState();
    this.defineStorage();
    if (source.cluster != null) this.defineCluster(source.cluster);
    this.defineStreams();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The storage backend's report of one sync (io/node-storage.ts SyncTimer). */
  readonly observeSync = (op: 'sync' | 'sync-directory', seconds: number): void => {
    this.syncSeconds.observe({ op: op === 'sync' ? 'file' : 'directory' }, seconds);
  };

  /** Where `keel_listener_handshake_failures_total` reads from: the listeners exist only after recovery. */
  readHandshakeFailuresFrom(read: () => Record<string, Record<string, number>>): void {
    this.handshakeFailures = read;
  }

  countAdminRequest(status: number): void {
    this.adminRequests.inc({ status: String(status) });
  }

  /** The text exposition of every metric, read from one snapshot of the core's view. */
  async scrape(): Promise<string> {
    this.snapshot = this.read();
    return this.registry.metrics();
  }

  private read(): Snapshot {
    const view = this.source.view;
    let bytes = 0;
    const streams = view.streams();
    for (const stream of streams) bytes += stream.bytes;
    return { counters: view.counters(), gauges: view.gauges(), ready: this.source.ready(), streams: { count: streams.length, bytes } };
  }

  private current(): Snapshot {
    // Set by scrape(); a collector reached some other way reads afresh.
    this.snapshot ??= this.read();
    return this.snapshot;
  }

  private defineConnections(): void {
    this.counter('keel_connections_opened_total', 'Transport connections accepted', (s) => count(s, 'connectionsOpened'));
    this.counter('keel_connects_refused_total', 'CONNECTs refused (any reason)', (s) => count(s, 'connectsRefused'));
    this.counter('keel_authentication_failures_total', 'CONNECTs refused as 0x86, 0x87, 0x8A or 0x8C (3.1.1: return code 4 or 5)', (s) => count(s, 'authenticationFailures'));
    this.counter('keel_session_takeovers_total', 'Connections ended because a client connected with the same client id', (s) => count(s, 'takeovers'));
    this.counter('keel_keepalive_timeouts_total', 'Connections closed for silence past 1.5 times their keepalive', (s) => count(s, 'keepAliveTimeouts'));
    this.counter('keel_connect_timeouts_total', 'Connections closed for sending no CONNECT in time', (s) => count(s, 'connectTimeouts'));
    this.counter('keel_protocol_violations_total', 'Connections closed for breaking the protocol', (s) => count(s, 'protocolViolations'));
    this.gauge('keel_connections_open', 'Transport connections open now, CONNECT or not', (s) => count(s, 'connectionsCurrent'));
    this.gauge('keel_clients_connected_max', 'The most clients connected at once since the start', (s) => count(s, 'clientsConnectedMax'));
    this.labelledGauge('keel_clients_connected', 'Clients connected now, by listener', 'listener', (s) => s.gauges.clientsByListener);
    this.labelledGauge('keel_clients_connected_by_version', 'Clients connected now, by MQTT protocol version', 'version', (s) => s.gauges.clientsByProtocolVersion);
    this.labelledCounter('keel_limit_hits_total', 'Times a configured limit was hit, by the setting', 'limit', (s) => group(s, 'limits'));
    this.labelledCounter('keel_authorization_denials_total', 'Refusals by the ACL, by what was refused', 'action', (s) =>
      renamed(group(s, 'authorization'), { subscribeDenied: 'subscribe', publishDenied: 'publish', receiveDenied: 'receive', willDenied: 'will' }),
    );
    this.counter('keel_throttle_publisher_pauses_total', 'Publishers paused because a receiver or the output budget was full', (s) => group(s, 'throttle').publisherPauses ?? 0);
    this.counter('keel_throttle_budget_pauses_total', 'Of the publisher pauses, those for outputBufferedBytesTotalMax', (s) => group(s, 'throttle').budgetPauses ?? 0);
    this.counter('keel_throttle_stream_pauses_total', 'Of the publisher pauses, those for streamBacklogBytesMax', (s) => group(s, 'throttle').streamPauses ?? 0);
    this.counter('keel_throttle_stalled_receivers_total', 'Receivers that held a publisher for publisherPauseMsMax without draining', (s) => group(s, 'throttle').stalledReceivers ?? 0);
    const failures = (): Record<string, Record<string, number>> => this.handshakeFailures();
    new Counter({
      name: 'keel_listener_handshake_failures_total',
      help: 'Connections a listener gave up on before MQTT began (PROXY header, TLS handshake, WebSocket upgrade or framing), by listener and kind',
      labelNames: ['listener', 'kind'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [listener, kinds] of Object.entries(failures())) {
          for (const [kind, total] of Object.entries(kinds)) this.inc({ listener, kind }, total);
        }
      },
    });
    this.gauge('keel_throttle_paused_connections', 'Connections not being read now', (s) => group(s, 'throttle').pausedCurrent ?? 0);
  }

  private defineMessages(): void {
    this.counter('keel_packets_received_total', 'MQTT packets received', (s) => count(s, 'packetsReceived'));
    this.counter('keel_packets_sent_total', 'MQTT packets sent', (s) => count(s, 'packetsSent'));
    this.counter('keel_received_bytes_total', 'Bytes received from clients', (s) => count(s, 'bytesReceived'));
    this.counter('keel_sent_bytes_total', 'Bytes sent to clients', (s) => count(s, 'bytesSent'));
    this.counter('keel_messages_received_total', 'PUBLISH packets accepted from clients', (s) => count(s, 'messagesReceived'));
    this.counter('keel_messages_sent_total', 'PUBLISH packets sent to clients, redeliveries included', (s) => count(s, 'messagesSent'));
    this.counter('keel_messages_unmatched_total', 'Messages that matched no subscription', (s) => count(s, 'messagesUnmatched'));
    this.labelledCounter('keel_messages_dropped_total', 'Messages not delivered to a session, by reason', 'reason', (s) => group(s, 'drops'));
    this.counter('keel_wills_published_total', 'Will messages published', (s) => count(s, 'willsPublished'));
    this.counter('keel_retained_refused_total', 'New retained topics refused by retainedMessagesMax or retainedBytesMax', (s) => count(s, 'retainedRefused'));
  }

  private defineState(): void {
    this.labelledGauge('keel_sessions', 'Sessions held, by whether their client is connected', 'state', (s) => ({ online: s.gauges.sessionsOnline, offline: s.gauges.sessionsOffline }));
    this.counter('keel_sessions_expired_total', 'Sessions ended by their expiry interval', (s) => count(s, 'sessionsExpired'));
    this.gauge('keel_subscriptions', 'Subscriptions held', (s) => s.gauges.subscriptions);
    this.gauge('keel_retained_messages', 'Retained messages held ($SYS ones included)', (s) => s.gauges.retainedMessages);
    this.gauge('keel_retained_payload_bytes', 'Payload bytes of the retained messages ($SYS ones included)', (s) => s.gauges.retainedBytes);
    this.gauge('keel_queued_messages', 'Messages waiting in session queues', (s) => s.gauges.queuedMessages);
    this.gauge('keel_inflight_messages', 'QoS 1 and 2 messages sent and not yet acknowledged', (s) => s.gauges.inflightMessages);
    this.gauge('keel_stored_messages', 'Messages held in memory (queued, inflight or retained)', (s) => s.gauges.storedMessages);
    this.gauge('keel_ready', '1 once recovery has finished and every listener listens', (s) => (s.ready ? 1 : 0));
    this.gauge('keel_recovery_duration_seconds', 'How long recovery took at start-up (0 until it has finished)', (s) => (s.gauges.recoveryMs ?? 0) / 1000);
    const version = this.source.version;
    new Gauge({
      name: 'keel_build_info',
      help: 'The running version of Keel, as a label; always 1',
      labelNames: ['version'],
      registers: [this.registry],
      collect() {
        this.set({ version }, 1);
      },
    });
  }

  private defineStorage(): void {
    const storage = (s: Snapshot, key: string): number => s.gauges.storage?.[key] ?? 0;
    this.counter('keel_storage_records_appended_total', 'Records appended to the log', (s) => storage(s, 'recordsAppended'));
    this.counter('keel_storage_appended_bytes_total', 'Record bytes appended to the log', (s) => storage(s, 'bytesAppended'));
    this.counter('keel_storage_syncs_total', 'Syncs of the log that completed (group commit: one per batch)', (s) => storage(s, 'syncs'));
    this.counter('keel_storage_snapshots_total', 'Snapshots written', (s) => storage(s, 'snapshotsWritten'));
    this.gauge('keel_storage_last_snapshot_duration_seconds', 'How long the last snapshot took (0 before the first)', (s) => storage(s, 'lastSnapshotMs') / 1000);
  }

  private defineCluster(link: ClusterLinkFigures): void {
    this.gauge('keel_cluster_link_up', '1 while the link to NATS is up and set up (stream, consumer, buckets)', () => (link.isUp ? 1 : 0));
    this.labelledCounter('keel_cluster_requests_total', 'Cluster link requests of the core, by operation', 'op', () => ({ ...link.counters.requests }));
    this.labelledCounter('keel_cluster_request_failures_total', 'Durable publishes and key-value sets that failed, by code', 'code', () => ({ ...link.counters.failures }));
    this.labelledCounter('keel_cluster_messages_dropped_total', 'Core NATS (QoS 0) messages dropped: published while the link was down, or arriving with the input queue full', 'reason', () => ({
      'link-down': link.counters.publishesDropped,
      'input-queue-full': link.counters.messagesDropped,
    }));
    this.counter('keel_cluster_link_losses_total', 'Times the link to NATS went down after being up', () => link.counters.linkLosses);
    // The core's side of the cluster (src/cluster/): what it sent, stored and applied.
    const node = (s: Snapshot, keys: Record<string, string>): Record<string, number> => pick(group(s, 'clusterNode'), keys);
    this.labelledCounter(
      'keel_cluster_handoffs_total',
      'QoS 1/2 hand-offs through the JetStream stream: sent, stored (acknowledged by JetStream), failed, applied here, redelivered (arrived again after being applied)',
      'outcome',
      (s) => node(s, { handoffsSent: 'sent', handoffsStored: 'stored', handoffFailures: 'failed', handoffsApplied: 'applied', handoffRedeliveries: 'redelivered' }),
    );
    this.labelledCounter(
      'keel_cluster_handoff_batches_total',
      'Stream messages that carried several hand-offs (handoff-batch.ts): sent by this node, of which sent_logged carried QoS 2 messages or wills (named in the log first), applied here from other nodes',
      'direction',
      (s) => node(s, { handoffBatchesSent: 'sent', loggedBatchesSent: 'sent_logged', handoffBatchesApplied: 'applied' }),
    );
    this.counter(
      'keel_cluster_consumer_pauses_total',
      "Times this node paused its hand-off consumer because the streams' backlog was at streamBacklogBytesMax",
      (s) => group(s, 'clusterNode').consumerPauses ?? 0,
    );
    this.counter(
      'keel_cluster_markers_held_for_watch_total',
      "Times this node's stream reader stood at a hand-over marker until its watch of keel-sessions had replayed the bucket (after the link came up)",
      (s) => group(s, 'clusterNode').markersHeldForWatch ?? 0,
    );
    this.counter(
      'keel_cluster_handoff_gaps_total',
      'Hand-offs that arrived ahead of an earlier one this node had not applied (held back for the redelivery)',
      (s) => group(s, 'clusterNode').handoffGaps ?? 0,
    );
    this.counter(
      'keel_cluster_handoff_gaps_below_floor_total',
      "Gaps this node gave up at once because every missing sequence was at or below its consumer's ack floor (its log lost them: cluster-handoff-gap-skipped why=ack-floor)",
      (s) => group(s, 'clusterNode').handoffGapsBelowFloor ?? 0,
    );
    this.counter(
      'keel_cluster_handovers_sent_in_parts_total',
      'Sessions this node handed over to another node whose state took several puts of keel-handover (larger than one NATS message: handover-parts.ts)',
      (s) => group(s, 'clusterHandover').sentInParts ?? 0,
    );
    this.labelledCounter('keel_cluster_core_messages_total', 'QoS 0 messages over core NATS: sent, received, and received twice (dropped)', 'kind', (s) =>
      node(s, { coreSent: 'sent', coreReceived: 'received', coreDuplicates: 'duplicate' }),
    );
    this.labelledCounter(
      'keel_cluster_retained_total',
      'Retained messages through the keel-retained bucket (retained-sync.ts): put, changes applied here, puts that met a newer value (conflict), found already in (already_in), put again at the newer revision (rebased), dropped as superseded',
      'op',
      (s) => pick(group(s, 'clusterRetained'), { puts: 'put', applied: 'applied', conflicts: 'conflict', alreadyIn: 'already_in', rebased: 'rebased', dropped: 'dropped' }),
    );
    this.counter(
      'keel_cluster_unmappable_topics_total',
      'Messages whose topic has no NATS subject (kept on this node only) or arriving subjects with no topic',
      (s) => group(s, 'clusterNode').unmappable ?? 0,
    );
    this.labelledCounter('keel_cluster_session_claims_total', 'Client id claims in keel-sessions: made, won, retried (the key moved first), refused (0x88: no NATS in time)', 'outcome', (s) =>
      pick(group(s, 'clusterSessions'), { claims: 'made', claimsWon: 'won', claimRetries: 'retried', claimsRefused: 'refused' }),
    );
    this.counter('keel_cluster_sessions_taken_over_total', 'Connections closed because their client id was claimed by another node (0x8E)', (s) => group(s, 'clusterSessions').takenOver ?? 0);
    this.counter('keel_cluster_sessions_dropped_total', 'Sessions this node ended because another node owns their client id', (s) => group(s, 'clusterSessions').sessionsDropped ?? 0);
    this.labelledCounter(
      'keel_cluster_shared_events_total',
      "$share groups across nodes: a node chosen for a group at a publication here (chosen), this node chosen (chosen_here), a message from another node delivered to a group chosen for this node (delivered), a choice of this node that found no member left (stale_choice), a choice that passed over a member node not heard from lately (silent_passed_over), a change of this node's view of keel-shared (view_change)",
      'event',
      (s) =>
        pick(group(s, 'clusterShared'), {
          choices: 'chosen',
          chosenHere: 'chosen_here',
          delivered: 'delivered',
          staleChoices: 'stale_choice',
          silentPassedOver: 'silent_passed_over',
          viewChanges: 'view_change',
        }),
    );
    this.labelledCounter('keel_cluster_shared_bucket_writes_total', "Writes of this node's groups to keel-shared, by result", 'result', (s) =>
      pick(group(s, 'clusterShared'), { bucketWrites: 'written', bucketFailures: 'failed' }),
    );
    this.gauge(
      'keel_cluster_session_keys_known',
      "Client ids whose keel-sessions key this node knows (it watches the whole bucket: grows with the cluster's clients)",
      (s) => s.gauges.cluster?.knownSessionKeys ?? 0,
    );
    this.gauge('keel_cluster_session_claims_pending', 'CONNECTs waiting for their client id claim', (s) => s.gauges.cluster?.claimsPending ?? 0);
    this.gauge('keel_cluster_reader_stopped', '1 when this node stopped reading the hand-off stream at a message written by a newer Keel (upgrade it), else 0', (s) =>
      s.gauges.cluster?.readerHeldAt == null ? 0 : 1,
    );
  }

  /** `stats.streams` (src/broker/stats.ts), one counter each, and two gauges from the core's stream view. */
  private defineStreams(): void {
    const streams = (s: Snapshot, key: string): number => group(s, 'streams')[key] ?? 0;
    const counters: [string, string, string][] = [
      ['keel_stream_entries_appended_total', 'Entries appended to streams (a message in two streams counts twice)', 'entriesAppended'],
      ['keel_stream_appended_bytes_total', 'Payload bytes appended to streams', 'bytesAppended'],
      ['keel_stream_deliveries_total', 'Stream entries sent to readers (resends not counted)', 'deliveries'],
      ['keel_stream_replay_reads_total', 'Storage reads for stream readers behind the memory tail', 'replayReads'],
      ['keel_stream_replay_read_bytes_total', 'Bytes those reads returned', 'replayReadBytes'],
      ['keel_stream_entries_skipped_total', 'Offsets readers lost before reaching them (retention, damage), each announced', 'entriesSkipped'],
      ['keel_stream_groups_cut_total', 'Consumer groups retentionBytes moved past unacknowledged entries', 'groupsCut'],
      ['keel_stream_group_entries_cut_total', 'Offsets those groups lost', 'groupEntriesCut'],
      ['keel_stream_entries_written_total', 'Stream entries written to segment files', 'entriesWritten'],
      ['keel_stream_segment_syncs_total', 'Syncs of stream segment files', 'segmentSyncs'],
      ['keel_stream_segments_deleted_total', 'Stream segments deleted (retention, stream deletion)', 'segmentsDeleted'],
      ['keel_stream_trims_total', "Retention passes that moved a stream's first offset", 'trims'],
      ['keel_stream_damaged_frames_total', 'Damaged stream frames found (reported and skipped)', 'damagedFrames'],
      ['keel_stream_compaction_steps_total', 'Last-value compaction steps run', 'compactionSteps'],
      ['keel_stream_compactions_total', 'Last-value segment rewrites finished', 'compactions'],
      ['keel_stream_entries_compacted_total', 'Entries last-value compaction removed', 'entriesCompacted'],
      ['keel_stream_backlog_overrun_entries_total', 'Entries appended while the backlog was at streamBacklogBytesMax (their publishers paused after)', 'backlogOverrunEntries'],
      ['keel_stream_backlog_overrun_unpaused_entries_total', 'Of those, entries of messages no connection sent (wills, cluster hand-offs)', 'backlogOverrunUnpausedEntries'],
      ['keel_stream_backlog_dropped_entries_total', 'Entries of QoS 0 messages from other cluster nodes left out of streams while the backlog was at its bound', 'backlogDroppedEntries'],
    ];
    for (const [name, help, key] of counters) this.counter(name, help, (s) => streams(s, key));
    this.gauge('keel_streams', 'Durable streams held', (s) => s.streams.count);
    this.gauge('keel_stream_bytes', 'Bytes of every stream segment file', (s) => s.streams.bytes);
    this.gauge('keel_stream_memory_bytes', 'Stream entries held in memory, appended and not yet synced to a segment (frame bytes plus about 300 per entry; bounded by streamBacklogBytesMax)', (s) =>
      streams(s, 'memoryBytes'),
    );
  }

  private counter(name: string, help: string, read: Read): void {
    const current = (): Snapshot => this.current();
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read(current()));
      },
    });
  }

  private labelledCounter(name: string, help: string, label: string, read: ReadLabelled): void {
    const current = (): Snapshot => this.current();
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [value, total] of Object.entries(read(current()))) this.inc({ [label]: value }, total);
      },
    });
  }

  private gauge(name: string, help: string, read: Read): void {
    const current = (): Snapshot => this.current();
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read(current()));
      },
    });
  }

  private labelledGauge(name: string, help: string, label: string, read: ReadLabelled): void {
    const current = (): Snapshot => this.current();
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        // Reset first: a listener or version with no clients left must not keep its last value.
        this.reset();
        for (const [value, figure] of Object.entries(read(current()))) this.set({ [label]: value }, figure);
      },
    });
  }
}

function count(snapshot: Snapshot, key: string): number {
  const value = snapshot.counters[key];
  return typeof value === 'number' ? value : 0;
}

function group(snapshot: Snapshot, key: string): Record<string, number> {
  const value = snapshot.counters[key];
  return typeof value === 'object' ? value : {};
}

/** The counters of `values` named in `names`, under those names; the rest left out. */
function pick(values: Record<string, number>, names: Record<string, string>): Record<string, number> {
  const result: Record<string, number> = {};
  for (const [key, name] of Object.entries(names)) result[name] = values[key] ?? 0;
  return result;
}

function renamed(values: Record<string, number>, names: Record<string, string>): Record<string, number> {
  const result: Record<string, number> = {};
  for (const [key, value] of Object.entries(values)) result[names[key] ?? key] = value;
  return result;
}
