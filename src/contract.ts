/**
 * The IO contract: how a driver talks to the broker core, and the only types `src/` shares with
 * `io/` and `sim/`.
 *
 * The core is sans-IO. A driver calls an input method with the current time; the method runs to
 * completion synchronously and queues actions; the driver then drains the actions and carries
 * them out (send bytes, close a connection, perform a storage request, emit a log line), and asks
 * for the next deadline at which it must call `tick`. Nothing calls back into the core while an
 * input runs, and time handed to the core never goes backwards.
 *
 * The same driver loop runs over the real Node backend (`io/`) and over the simulated world
 * (`sim/`); the core cannot tell which.
 */

/** Chosen by the driver, unique for the lifetime of the process (never reused). */
export type ConnectionId = number;

/** A listener as the core sees it: one object shared by every connection it accepted. */
export interface ListenerInfo {
  /** Names it in log lines and counters, e.g. `mqtts:0.0.0.0:8883`. */
  readonly name: string;
  /**
   * Clients that may be connected through this listener at once; past it a CONNECT is refused
   * like at the broker-wide connectionsMax (5.0: CONNACK 0x97; 3.1.1: rc 3). null: no own limit.
   */
  readonly connectionsMax: number | null;
}

/** The listener of hosts and tests that have only one. */
export const defaultListener: ListenerInfo = Object.freeze({ name: 'mqtt', connectionsMax: null });

/**
 * What the host knows of a connection when it opens. Transports (TLS, WebSockets, the PROXY
 * protocol) end in the host; the core sees only this and the bytes.
 */
export interface ConnectionPeer {
  /** The client's address as `host:port` (behind a load balancer: the one its PROXY header gave). */
  readonly remoteAddress: string;
  readonly listener: ListenerInfo;
  /**
   * A user name the transport has verified (mutual TLS with identityAsUsername: the client
   * certificate's subject CN). The core then takes it as the client's user name, whatever the
   * CONNECT says, and checks no password. Absent for every other connection.
   */
  readonly verifiedUsername?: string;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | null>;

/**
 * Storage requests: a flat namespace of files in one data directory. Order (src/store/
 * storage-order.ts): requests naming the same file (a rename names two) take effect and complete
 * in the order issued; requests on different files may run at once and complete in any order, so
 * the core waits for a result before issuing anything that depends on it in another file; `list`
 * and `sync-directory` come after every request issued before them and before every one after.
 */
export type StorageRequest =
  | { op: 'list'; requestId: number }
  | { op: 'read'; requestId: number; file: string; offset: number; length: number }
  /** Writes at `offset`, creating the file if it does not exist. Not durable until `sync`. */
  | { op: 'write'; requestId: number; file: string; offset: number; bytes: Uint8Array }
  | { op: 'sync'; requestId: number; file: string }
  | { op: 'truncate'; requestId: number; file: string; length: number }
  | { op: 'rename'; requestId: number; from: string; to: string }
  | { op: 'delete'; requestId: number; file: string }
  /** Makes creations, renames and deletions in the directory durable. */
  | { op: 'sync-directory'; requestId: number };

export type StorageErrorCode = 'EIO' | 'ENOSPC' | 'ENOENT' | 'EOTHER';

export type StorageResult =
  | {
      requestId: number;
      ok: true;
      /** For `read`: the bytes read (shorter than asked at end of file). */
      bytes?: Uint8Array;
      /** For `list`: every file with its size in bytes, sorted by name. */
      files?: { name: string; size: number }[];
    }
  | { requestId: number; ok: false; code: StorageErrorCode; message: string };

export type Action =
  /**
   * Write these bytes to the connection, after everything sent before on it. From here on they
   * belong to the host, which may hold them until the socket takes them: the core never writes
   * into them again (the simulator's network keeps them, not a copy, to see that it does not).
   */
  | { kind: 'send'; connectionId: ConnectionId; bytes: Uint8Array }
  /** Flush what was sent before, then close the connection. No input arrives for it afterwards. */
  | { kind: 'close'; connectionId: ConnectionId; reason: string }
  /**
   * Stop reading from the connection (TCP backpressure on a publisher whose messages the broker
   * would otherwise have to buffer: see `outputBufferedBytesTotalMax` and the output cap in
   * src/broker/throttle.ts) until `resume-reading`. Advisory: bytes that still arrive are taken
   * as usual, so a host that cannot pause may ignore it. Never sent for a closing connection.
   */
  | { kind: 'pause-reading'; connectionId: ConnectionId }
  /** Read from the connection again after `pause-reading`. */
  | { kind: 'resume-reading'; connectionId: ConnectionId }
  | { kind: 'storage'; request: StorageRequest }
  /** A request on the cluster link (only for a node started with a cluster; see ClusterRequest). */
  | { kind: 'cluster'; request: ClusterRequest }
  | { kind: 'log'; level: LogLevel; event: string; fields: LogFields }
  /** The outcome of an `adminRequest`, once what it changed is durable. */
  | { kind: 'admin-result'; requestId: number; outcome: AdminOutcome }
  /**
   * The core cannot go on safely (its storage failed, or recovery found damage it must not skip).
   * It has stopped taking input; the driver's host stops the process (production: exit non-zero,
   * so a supervisor restarts it and recovery runs; simulator: a crash followed by a restart).
   */
  | { kind: 'halt'; reason: string };

/**
 * An operator's change of state (the admin API, or the simulator's workload). Like a client's
 * packet it is an input: the core applies it, logs it, makes it durable where it must be, and
 * answers with an `admin-result` action once it is.
 */
export type AdminCommand =
  /** Ends the client's connection (5.0: DISCONNECT 0x98 Administrative action); its session stays. */
  | { kind: 'disconnect-client'; clientId: string }
  /** Ends the client's session, online (disconnected with 0x98) or offline, durably. */
  | { kind: 'delete-session'; clientId: string }
  /** Clears the retained message of a topic, durably. */
  | { kind: 'delete-retained'; topic: string }
  /**
   * Creates a durable stream (README "Streams"): `name` `[A-Za-z0-9_-]{1,64}`, `filter` a valid
   * non-shared topic filter; `retentionMs` / `retentionBytes` 0 or absent for no bound. Refused
   * (invalid) when the name is in use or still being deleted, or past `streamsMax`.
   */
  | { kind: 'create-stream'; stream: { name: string; filter: string; retentionMs?: number; retentionBytes?: number; lastValue?: boolean } }
  /** Deletes a stream: every `$stream` subscription to it is removed, then the stream and its files. */
  | { kind: 'delete-stream'; name: string };

/**
 * The cluster link (README "Cluster"): how one node of a Keel cluster reaches the others through
 * NATS. It is a third kind of IO beside connections and storage: the core asks with `cluster`
 * actions and hears back through the `ClusterInputs` methods. The Node host maps it onto NATS
 * (core NATS, JetStream, its key-value store; io/cluster/); the simulator models NATS with its
 * failures (sim/cluster/). Stream, consumer and bucket names are the host's: the core names only
 * subjects, buckets and keys, and the host sets up what they need before it reports `connected`.
 *
 * Subjects are MQTT topics mapped the way nats-server's MQTT support maps them (src/cluster/
 * subjects.ts), so NATS-native services read and write the same messages.
 */
export type ClusterHeaders = Readonly<Record<string, string>>;

export type ClusterRequest =
  /** Core NATS: at most once, no completion (QoS 0 messages, notices). */
  | { op: 'publish'; subject: string; headers: ClusterHeaders; payload: Uint8Array }
  /**
   * Into the durable hand-off stream: answered by `clusterCompleted` with the same requestId, ok
   * (with the stream sequence) once the stream holds it, or failed. `dedupeId` makes a retry after
   * a lost answer store it once.
   */
  | { op: 'publish-durable'; requestId: number; subject: string; headers: ClusterHeaders; payload: Uint8Array; dedupeId: string }
  /** Receive core NATS messages on a subject (NATS wildcards), optionally one member of a queue group. */
  | { op: 'subscribe'; subscriptionId: number; subject: string; queueGroup: string | null }
  | { op: 'unsubscribe'; subscriptionId: number }
  /**
   * Receive the hand-off stream through this node's durable consumer (named by the host from the
   * node id): at least once, in stream order, each delivery redelivered until acknowledged.
   *
   * Answered by `clusterCompleted` with the same requestId, before any delivery of this consume:
   * ok with `sequence` = the consumer's ack floor as the host found it when it bound the consumer
   * for this consume (JetStream's `ack_floor.stream_seq`; 0 for a consumer that never had an
   * acknowledgement, a new one or one deleted and made again), or failed (`unavailable` when the
   * link dropped first, or the floor could not be read). The floor means: every stream sequence at
   * or below it was acknowledged by this consumer (or is no longer in the stream), so this
   * consumer will never deliver it again; only a new consumer under the same name (deleted and
   * made again: floor 0 then) could. It is a lower bound of the floor at any later moment of the
   * same consumer, since a floor only grows. What a core may conclude: a sequence at or below the
   * floor that its log does not hold as applied will not come on this link (the log lost it, as
   * a node only acknowledges what its log holds); no conclusion about sequences above it. An
   * answer belongs to the consume with its requestId only: a later consume (after the next
   * `connected`) may find another consumer.
   */
  | { op: 'consume'; requestId: number; consumerId: number; filterSubject: string }
  /**
   * Every delivery up to this stream sequence is done with (safe in this node's own log, or given
   * up): do not redeliver them. Cumulative: the core acknowledges in stream order, never past a
   * sequence it still waits for; so nothing above a consumer's ack floor was acknowledged, and the
   * consumer delivers every sequence above it that the stream holds.
   */
  | { op: 'ack'; consumerId: number; streamSequence: number }
  /**
   * Stop handing this consumer's deliveries to the core (`paused`), or start again. Backpressure:
   * the core pauses while what it takes would overrun a memory bound of its own (the streams'
   * backlog). While paused the host holds at most what the consumer may have unacknowledged and
   * hands it over, in stream order, on resume; a redelivery of a held sequence replaces it. A new
   * `consume` (after every `connected`) starts unpaused.
   */
  | { op: 'pace'; consumerId: number; paused: boolean }
  /**
   * Key-value: set `key` in `bucket`; with `expectedRevision` only if the key is at that revision
   * (0: only if absent), else it fails with `wrong-revision`. `value` null deletes.
   */
  | { op: 'kv-set'; requestId: number; bucket: string; key: string; value: Uint8Array | null; expectedRevision: number | null }
  /**
   * Every entry of the bucket, then every change, as `clusterKeyChanged` inputs in revision order;
   * once the entries the bucket held when the watch began are all in (its initial replay), one
   * `clusterWatchCurrent` with this `requestId`. A watch of a bucket already watched replaces it.
   */
  | { op: 'kv-watch'; requestId: number; bucket: string };

/** What a node hears on the link. `subscriptionId` for core NATS, `consumerId` + `streamSequence` for the hand-off stream. */
export interface ClusterMessage {
  readonly subject: string;
  readonly headers: ClusterHeaders;
  readonly payload: Uint8Array;
  readonly subscriptionId: number | null;
  readonly consumerId: number | null;
  readonly streamSequence: number | null;
  /** The stream delivered it before and was not acknowledged in time. */
  readonly redelivered: boolean;
}

export type ClusterResult =
  | { requestId: number; ok: true /** publish-durable: the stream sequence; kv-set: the key's new revision; consume: the consumer's ack floor. */; sequence: number }
  | { requestId: number; ok: false; code: 'wrong-revision' | 'unavailable' | 'timeout'; message: string };

export interface ClusterKeyChange {
  readonly bucket: string;
  readonly key: string;
  /** null: the key was deleted. */
  readonly value: Uint8Array | null;
  readonly revision: number;
}

/**
 * The inputs of the cluster link. `clusterStatus('connected')` comes first and again after every
 * reconnection (the core then re-issues its subscriptions, consumers and watches); while
 * `disconnected`, requests the core issues fail with `unavailable`. With `connected` comes the
 * hand-off stream's identity (`stream`: the host's, its creation time on NATS), which changes only
 * when the stream is made anew (a NATS that lost its store): its sequences then start again at 1.
 */
export interface ClusterInputs {
  clusterStatus(nowMs: number, status: 'connected' | 'disconnected', stream?: string): void;
  clusterMessage(nowMs: number, message: ClusterMessage): void;
  /**
   * Several messages that arrived together, in arrival order: the same as one `clusterMessage`
   * each, except that they are one input (one group commit, one pass releasing what became
   * durable), as several PUBLISH packets in one `bytesReceived` are. A host that takes messages in
   * bursts uses it to pay the per-input work once per burst; the simulator feeds them one by one.
   */
  clusterMessages(nowMs: number, messages: readonly ClusterMessage[]): void;
  clusterCompleted(nowMs: number, result: ClusterResult): void;
  clusterKeyChanged(nowMs: number, change: ClusterKeyChange): void;
  /**
   * The `kv-watch` with `requestId` has delivered its initial replay: every key of `bucket` as it
   * stood at some moment after the request (an empty bucket: at once). Sent once per watch, after
   * its last replayed entry; a watch replaced or lost with the link before then may never send
   * it, and one of a replaced watch may still come (the core tells them apart by `requestId`).
   */
  clusterWatchCurrent(nowMs: number, bucket: string, requestId: number): void;
}

export type AdminOutcome = { ok: true } | { ok: false; status: 'not-found' | 'invalid'; message: string };

/** One connected client, as the admin API lists it. */
export interface ClientSummary {
  clientId: string;
  username: string | null;
  listener: string;
  remoteAddress: string;
  protocolVersion: 3 | 4 | 5;
  /** Core time (ms) of its CONNECT; hosts turn it into wall-clock time. */
  connectedAtMs: number;
  keepAliveSeconds: number;
  queued: number;
  inflight: number;
  subscriptions: number;
}

export interface SubscriptionSummary {
  clientId: string;
  filter: string;
  qos: 0 | 1 | 2;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId: number;
}

export interface SessionSummary {
  clientId: string;
  username: string | null;
  online: boolean;
  protocolVersion: 3 | 4 | 5;
  expiryIntervalSeconds: number;
  /** Core time (ms) it went offline; null while online. */
  offlineSinceMs: number | null;
  queued: number;
  inflight: number;
  subscriptions: number;
}

export interface RetainedSummary {
  topic: string;
  qos: 0 | 1 | 2;
  payloadBytes: number;
  /** The payload as text when it is valid UTF-8 of at most 256 bytes, else null. */
  payloadText: string | null;
  storedAtMs: number;
}

/** A durable stream as the admin API and `keel stream ls` show it. */
export interface StreamSummary {
  name: string;
  filter: string;
  retentionMs: number;
  retentionBytes: number;
  lastValue: boolean;
  /** The oldest offset kept (retention deletes whole segments below it). */
  firstOffset: number;
  /** The offset the next entry gets; the stream holds [firstOffset, nextOffset) less what compaction removed. */
  nextOffset: number;
  /** Unix time (ms) of the newest entry; 0 when none. */
  lastTimeMs: number;
  /** Bytes of its segment files, and how many there are. */
  bytes: number;
  segments: number;
  /** `$stream` subscriptions reading it (of sessions bound since the broker started). */
  readers: number;
  /** Consumer groups: their position (the lowest offset no member acknowledged) and members. */
  groups: { group: string; offset: number; members: number }[];
}

/** A page: items after the key `after` (in key order), at most `limit` of them. */
export interface PageQuery {
  after?: string;
  limit: number;
}

/**
 * What io/ may read of the core between inputs (metrics, the admin API, `$SYS` is the core's
 * own): copies and summaries, never the core's tables, so nothing outside the core can change
 * its state except through inputs.
 */
export interface BrokerView {
  /** Every counter the core keeps, as a plain object of numbers (nested by area). */
  counters(): Record<string, number | Record<string, number>>;
  /** Current sizes: sessions online/offline, subscriptions, retained, queued, inflight, clients per listener. */
  gauges(): BrokerGauges;
  /**
   * Where a cluster node's hand-off reader stopped at a message of a newer format (its stream
   * sequence), or null: gauges().cluster.readerHeldAt without the pass over every session, for
   * `/readyz`, which probes ask for every few seconds.
   */
  clusterReaderHeldAt(): number | null;
  clients(query: PageQuery): ClientSummary[];
  client(clientId: string): (ClientSummary & { subscriptionList: SubscriptionSummary[] }) | null;
  sessions(query: PageQuery): SessionSummary[];
  subscriptions(query: PageQuery): SubscriptionSummary[];
  /** Retained messages whose topic matches `filter` (default `#`), by topic. */
  retained(query: PageQuery & { filter?: string }): RetainedSummary[];
  /** Every durable stream, by name. */
  streams(): StreamSummary[];
}

export interface BrokerGauges {
  sessionsOnline: number;
  sessionsOffline: number;
  subscriptions: number;
  retainedMessages: number;
  retainedBytes: number;
  queuedMessages: number;
  inflightMessages: number;
  storedMessages: number;
  clientsByListener: Record<string, number>;
  /** Connected clients by protocol version as MQTT names it: `3.1`, `3.1.1`, `5.0` (absent: none). */
  clientsByProtocolVersion: Record<string, number>;
  /** Store counters (records, bytes, syncs, snapshots), when the store keeps them. */
  storage: Record<string, number | null> | null;
  /** How long recovery took at start-up, in core milliseconds; null while recovering. */
  recoveryMs: number | null;
  /**
   * A cluster node's state (src/cluster/): client ids whose `keel-sessions` key this node knows (it
   * watches the whole bucket), CONNECTs waiting for their claim, and the hand-off stream sequence
   * its reader stopped at, a message of a newer format (src/cluster/stream-format.ts; null while it
   * reads). Null for a single broker.
   */
  cluster: { knownSessionKeys: number; claimsPending: number; readerHeldAt: number | null } | null;
}

/**
 * The inputs a driver feeds and the outputs it drains. Implemented by `Broker`. The cluster link's
 * inputs are there only in a core built for a cluster (a driver asserts them before use).
 */
export interface BrokerCore extends Partial<ClusterInputs> {
  /**
   * False while the core is still recovering its state from storage (driven by the storage
   * actions it queues). A driver accepts connections only once it is true.
   */
  readonly ready: boolean;
  /** A transport connection was accepted (and its transport handshake, if any, finished). */
  connectionOpened(nowMs: number, connectionId: ConnectionId, peer: ConnectionPeer): void;
  /** Bytes arrived on a connection, in order; any split is possible. */
  bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void;
  /** The transport connection ended without the core asking (peer closed, reset, error). */
  connectionClosed(nowMs: number, connectionId: ConnectionId): void;
  /**
   * How many bytes sent on a connection are still buffered in the host, not yet handed to the OS
   * or the peer. Hosts report it when it changes (after writing an input's sends, and when the
   * buffer drains); the core caps each connection's output with it (`connectionOutputBytesMax`).
   */
  outputBuffered(nowMs: number, connectionId: ConnectionId, bufferedBytes: number): void;
  /** A storage request issued earlier has finished. */
  storageCompleted(nowMs: number, result: StorageResult): void;
  /** Time passed; fire whatever deadline is due. */
  tick(nowMs: number): void;
  /** An operator's command; answered by an `admin-result` action with the same `requestId`. */
  adminRequest(nowMs: number, requestId: number, command: AdminCommand): void;
  /** Read-only access for metrics and the admin API (see BrokerView). */
  readonly view: BrokerView;
  /** Orderly stop: 5.0 clients get DISCONNECT 0x8B, every connection is closed. */
  shutdown(nowMs: number): void;
  /** Why the core halted, or null while it runs. */
  readonly haltReason: string | null;
  /** Everything queued since the last drain, in order; the queue is emptied. */
  drainActions(): readonly Action[];
  /** The earliest time at which `tick` has work to do, or null when nothing is scheduled. */
  nextDeadlineMs(): number | null;
}
