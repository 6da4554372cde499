/**
 * The broker's configuration: every limit in one place, with defaults, validated once at start-up.
 *
 * Every table, queue and buffer in the core is bounded by a value from here, and each bound has a
 * defined outcome when it is hit (documented beside the field). `validateConfig` checks ranges
 * and the relations between limits so that the core can assert them instead of re-checking.
 * Times are integer milliseconds inside the core; MQTT's seconds are converted at the edges.
 */
import { checkTopicFilter, parseSharedFilter, type TopicLimits } from './topics/validate.js';

export type SyncPolicy = 'always' | 'interval' | 'none';

/** What a CONNECT gets when its client id names a session of another user (see BrokerConfig). */
export type SessionOwnerMismatch = 'refuse' | 'fresh-session';

/** What happens to a QoS 1/2 message offered to a session whose queue is full. */
export type QueueOverflowPolicy = 'drop-oldest' | 'reject-new';

/**
 * A durable stream (src/broker/streams/): every message published to a topic its filter matches
 * is appended to it with the next offset, and readers subscribe to `$stream/<name>`.
 */
export interface StreamDefinition {
  /** `[A-Za-z0-9_-]{1,64}`: it names the stream's files, so nothing else is allowed. */
  readonly name: string;
  /** A valid topic filter, not a shared one, not under `$stream/`. */
  readonly filter: string;
  /** Whole segments whose newest entry is older than this are deleted; 0: kept for ever. */
  readonly retentionMs: number;
  /** Past this many bytes the oldest whole segments are deleted; 0: no bound. */
  readonly retentionBytes: number;
  /** Compaction keeps only the newest entry per topic in sealed segments. */
  readonly lastValue: boolean;
}

/** What a stream name may be: it becomes part of file names, so only these characters. */
export const streamNamePattern = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Membership of a Keel cluster (README "Cluster", src/cluster/): the NATS servers the node reaches
 * the others through, and the node's name in the cluster. Each node of a cluster has its own
 * `nodeId` and its own data directory; NATS must run with JetStream.
 */
export interface ClusterConfig {
  /** NATS server URLs (`nats://host:port`, `tls://host:port`); at least one, the client picks among them. */
  readonly nats: readonly string[];
  /** This node's name: `[A-Za-z0-9_-]{1,32}`, unique in the cluster and the same across restarts. */
  readonly nodeId: string;
  /**
   * The largest NATS message a node may send: a message whose hand-off (payload, subject and
   * headers) would be larger is refused when published (cluster-node.ts `carries`), since NATS
   * would refuse it forever and everything queued behind it would wait. At most the NATS servers'
   * `max_payload` (1 MiB unless configured). Absent: clusterMessageBytesMaxDefault.
   */
  readonly messageBytesMax?: number;
  /**
   * How long a node waits for a moving client's session from the node that held it (the CONNACK
   * and the node's hand-off reader wait so long at most; then session present 0 and a fresh
   * session). Absent: handoverWaitMsDefault.
   */
  readonly handoverWaitMs?: number;
}

export const clusterNodeIdPattern = /^[A-Za-z0-9_-]{1,32}$/;
/** NATS's own default `max_payload`. */
export const clusterMessageBytesMaxDefault = 1024 * 1024;
const clusterMessageBytesRange = { min: 64 * 1024, max: 64 * 1024 * 1024 };
export const handoverWaitMsDefault = 5_000;
const handoverWaitRange = { min: 1_000, max: 600_000 };

export interface BrokerConfig {
  /** Largest packet accepted from a client; bigger ones cost the connection 0x95. */
  packetBytesMax: number;
  /** Open connections; past it a CONNECT is refused (5.0: 0x97 Quota exceeded; 3.1.1: rc 3). */
  connectionsMax: number;
  /**
   * New connections (CONNECTs) accepted per second, as a token bucket holding one second's worth;
   * past it a CONNECT is refused (5.0: CONNACK 0x9F Connection rate exceeded; 3.1.1: rc 3).
   * 0: unlimited.
   */
  connectionRatePerSecondMax: number;
  /**
   * PUBLISH packets one connection may send per second, as a token bucket holding one second's
   * worth; past it the connection is closed (5.0: DISCONNECT 0x96 Message rate too high). 0: unlimited.
   */
  publishRatePerSecondMax: number;
  /** Sessions held, online or offline; past it a new session is refused like a connection. */
  sessionsMax: number;
  /** Subscriptions per session; past it SUBACK says 0x97 (3.1.1: 0x80) for the extra filters. */
  subscriptionsPerSessionMax: number;
  /** QoS 1/2 messages a client may have unacknowledged towards us (our Receive Maximum). */
  receiveMaximum: number;
  /**
   * QoS 1/2 messages we keep unacknowledged towards one client (capped by its Receive Maximum).
   * A window must cover rate x round trip: a broker turn that takes in a few hundred publishes
   * from several publishers must be able to send as many to one subscriber, or its backlog grows
   * without bound (64 held a QoS 1 subscriber to a sixth of the publishers' rate in the benchmark).
   */
  inflightPerSessionMax: number;
  /** Messages queued for one session beyond its inflight window. */
  queuedMessagesPerSessionMax: number;
  /** Payload bytes queued for one session beyond its inflight window. */
  queuedBytesPerSessionMax: number;
  /** Policy for QoS 1/2 messages once the queue is full; QoS 0 always goes first. */
  queueOverflowPolicy: QueueOverflowPolicy;
  /**
   * Bytes sent to one connection that its host may still hold unsent (a reader that stopped
   * reading). At or past it, new QoS 0 messages for that connection are dropped and counted
   * (`drops.outputFull`), new QoS 1/2 ones wait in the session's queue (its limits and
   * queueOverflowPolicy apply); the queue resumes once the host reports less than half of it.
   * Acknowledgements, PUBREL and redeliveries are always sent (the inflight window bounds them).
   */
  connectionOutputBytesMax: number;
  /**
   * Bytes sent to all connections together that their hosts may still hold unsent. At or past it,
   * a connection that publishes is no longer read (TCP backpressure on the publisher: its packets
   * wait in its socket and the client's writes slow down; nothing is dropped) until the total falls
   * below half of it; each pause is counted (`throttle.publisherPauses`). Connections that only
   * subscribe, acknowledge or ping are still read, so readers drain. 0: no budget (the per-connection
   * cap alone bounds output). When set, at least connectionOutputBytesMax.
   */
  outputBufferedBytesTotalMax: number;
  /**
   * How long a publisher may stay paused for one receiver at its output cap (throttle.ts); past
   * it the receiver counts as stalled and pauses nobody until it drains. 0: never pause for a
   * receiver (its session queue limits and overflow policy alone apply).
   */
  publisherPauseMsMax: number;
  /** Retained messages held; past it a new retained topic is not stored (5.0 PUBACK 0x97). */
  retainedMessagesMax: number;
  /** Retained payload bytes held; same outcome as `retainedMessagesMax`. */
  retainedBytesMax: number;
  /** Topic name / filter length in bytes; longer ones are invalid (0x90 / 0x8F). */
  topicBytesMax: number;
  /** Topic name / filter levels; more are invalid (0x90 / 0x8F). */
  topicLevelsMax: number;
  /** Client identifier length in bytes; longer is refused with 0x85. */
  clientIdBytesMax: number;
  /** Topic aliases a client may use towards us (our Topic Alias Maximum); 0 disables them. */
  topicAliasMaximum: number;
  /** Largest session expiry we honour, in seconds; larger requests are clamped and reported. */
  sessionExpirySecondsMax: number;
  /** When set, overrides the client's keepalive (5.0 Server Keep Alive). */
  serverKeepAliveSeconds: number | null;
  /**
   * The longest keepalive a client may have, in seconds. A client asking for more, or for 0 (no
   * keepalive at all), is held to this one; MQTT 5.0 clients are told so in CONNACK (Server Keep
   * Alive), 3.1.1 clients cannot be told and are held to it silently. null: no ceiling (a client
   * asking for 0 is never timed out). A connection silent for 1.5 times its keepalive is closed.
   */
  keepAliveSecondsMax: number | null;
  /**
   * A CONNECT naming the client id of a session that belongs to another user: `refuse` it (5.0:
   * CONNACK 0x87; 3.1.1: return code 5), or give it a `fresh-session`, ending the old one (its
   * will, if pending, is published for its own user). Either way nothing of the old session
   * passes to the newcomer.
   */
  sessionOwnerMismatch: SessionOwnerMismatch;
  /** A connection that has not sent CONNECT within this is closed. */
  connectTimeoutMs: number;
  /**
   * How often the broker publishes its figures as retained `$SYS/...` messages (broker/sys-topics.ts),
   * in seconds; 0: never.
   */
  sysIntervalSeconds: number;
  /** Highest QoS the broker grants. */
  maximumQos: 0 | 1 | 2;
  retainAvailable: boolean;
  wildcardSubscriptionAvailable: boolean;
  subscriptionIdentifiersAvailable: boolean;
  sharedSubscriptionAvailable: boolean;
  /** Durability of acknowledgements; see README "Durability". */
  syncPolicy: SyncPolicy;
  /** For `interval`: the longest a written record waits for its sync. */
  syncIntervalMs: number;
  /** A log segment file is closed and a new one started past this size. */
  segmentBytesMax: number;
  /** Log bytes written since the last snapshot that trigger the next snapshot (compaction). */
  snapshotLogBytes: number;
  /**
   * A file of `username:hash` lines (see io/auth/password-file.ts) that CONNECT credentials and
   * enhanced authentication are checked against; null: no password authentication. Read by the
   * Node backend; the core only sees the authenticators built from it.
   */
  passwordFile: string | null;
  /**
   * Whether a CONNECT without a user name is accepted (otherwise 5.0: CONNACK 0x87; 3.1.1: rc 5).
   * null: true when no passwordFile is configured, false when one is.
   */
  allowAnonymous: boolean | null;
  /** MQTT 5.0 enhanced authentication methods offered, e.g. ["SCRAM-SHA-256"]; they need passwordFile. */
  authenticationMethods: readonly string[];
  /** AUTH packets one enhanced (re-)authentication may take from the client before it fails (0x87). */
  authenticationRoundsMax: number;
  /**
   * An ACL file (see io/auth/acl-file.ts) deciding who may publish, subscribe to and receive which
   * topics; what no rule allows is denied. null: no topic authorization, everybody may do anything.
   * Read (and reloaded when it changes) by the Node backend; the core only sees the authorizer.
   */
  aclFile: string | null;
  /**
   * Durable streams defined at start-up (each is created if the data directory does not hold it
   * yet, and redefined if it holds it with other settings); more are created and deleted at run
   * time through the admin interface. In a config file `retentionMs`, `retentionBytes` and
   * `lastValue` may be left out (0, 0, false). An invalid name or filter, or a name given twice,
   * is a configuration error.
   */
  streams: readonly StreamDefinition[];
  /** Streams held at once; past it `create-stream` is refused (admin: invalid) and a config with more is an error. */
  streamsMax: number;
  /**
   * Consumer groups one stream keeps (each has a durable position); a SUBSCRIBE that would make
   * one more gets 0x97 Quota exceeded (3.1.1: 0x80) for that filter.
   */
  streamGroupsMax: number;
  /**
   * Bytes of stored entries one stream reader (a `$stream` subscription, or a consumer group)
   * reads ahead of what it has sent; at it the reader stops reading from disk until it has sent
   * some (backpressure, nothing is dropped). A single entry larger than this is still read alone.
   * A reader holds at most this plus its session's inflight window in memory.
   */
  streamReadAheadBytesMax: number;
  /** A stream segment file is sealed and a new one started past this size; retention deletes whole segments. */
  streamSegmentBytesMax: number;
  /** Bytes of a segment between two points of its sparse index (offset and time to file position). */
  streamIndexIntervalBytes: number;
  /**
   * Written stream bytes a stream may hold unsynced; past it the segment is synced. The entries
   * above a stream's synced offset stay in memory (a snapshot of the log carries them), so this
   * bounds that memory per stream.
   */
  streamUnsyncedBytesMax: number;
  /**
   * Released stream bytes (entries whose log record is durable) a stream gathers before it writes
   * them to its segment, at most streamUnsyncedBytesMax. They are durable in the log and held in
   * memory until synced either way, so a later write loses nothing on a crash; gathering makes one
   * write where a busy stream made one per group commit (README, Streams benchmark). Under the
   * backlog bound's pressure, and for the entries recovery writes back, the writer does not wait.
   */
  streamWriteBytesMin: number;
  /**
   * Stream entries every stream together may hold in memory, appended and not yet synced to
   * their segments (the writer's backlog, including what streamUnsyncedBytesMax lets wait),
   * counted as each entry's frame plus what its objects cost (about 300 bytes; an entry with a
   * 64-byte payload counts 411). At it, every connection whose PUBLISH was just appended to a stream stops being
   * read (counted in `throttle.publisherPauses` and `throttle.streamPauses`) and the writers sync
   * what they wrote without waiting for streamUnsyncedBytesMax, until the backlog is under half of
   * it: nothing is dropped, and an acknowledgement still waits for durability. The log's records
   * not yet written count too (each appended entry is also a `stream-appended` record, and the
   * log can fall behind the segments). It also bounds
   * what a restart holds in memory for the entries its files lack (stream-recovery.ts).
   */
  streamBacklogBytesMax: number;
  /** How often retention and last-value compaction look for work (each step is bounded). */
  streamMaintenanceIntervalMs: number;
  /**
   * Distinct topics a last-value stream tracks for compaction; past it compaction of that stream
   * stops (logged once and counted) and the stream keeps every entry until retention removes it.
   */
  streamLastValueTopicsMax: number;
  /** Runs this broker as a node of a cluster (src/cluster/); null: a single broker, nothing changes. */
  cluster: ClusterConfig | null;
}

export const defaultConfig: Readonly<BrokerConfig> = Object.freeze({
  packetBytesMax: 1024 * 1024,
  connectionsMax: 100_000,
  connectionRatePerSecondMax: 0,
  publishRatePerSecondMax: 0,
  sessionsMax: 200_000,
  subscriptionsPerSessionMax: 1_000,
  receiveMaximum: 1_024,
  inflightPerSessionMax: 1_024,
  queuedMessagesPerSessionMax: 1_000,
  queuedBytesPerSessionMax: 16 * 1024 * 1024,
  queueOverflowPolicy: 'drop-oldest',
  connectionOutputBytesMax: 1024 * 1024,
  outputBufferedBytesTotalMax: 0,
  publisherPauseMsMax: 5000,
  retainedMessagesMax: 100_000,
  retainedBytesMax: 256 * 1024 * 1024,
  topicBytesMax: 1_024,
  topicLevelsMax: 64,
  clientIdBytesMax: 256,
  topicAliasMaximum: 64,
  sessionExpirySecondsMax: 0xffffffff,
  serverKeepAliveSeconds: null,
  keepAliveSecondsMax: 65_535,
  sessionOwnerMismatch: 'refuse',
  connectTimeoutMs: 10_000,
  sysIntervalSeconds: 10,
  maximumQos: 2,
  retainAvailable: true,
  wildcardSubscriptionAvailable: true,
  subscriptionIdentifiersAvailable: true,
  sharedSubscriptionAvailable: true,
  syncPolicy: 'always',
  syncIntervalMs: 100,
  segmentBytesMax: 64 * 1024 * 1024,
  snapshotLogBytes: 256 * 1024 * 1024,
  passwordFile: null,
  allowAnonymous: null,
  authenticationMethods: Object.freeze([]) as readonly string[],
  authenticationRoundsMax: 8,
  aclFile: null,
  streams: Object.freeze([]) as readonly StreamDefinition[],
  streamsMax: 100,
  streamGroupsMax: 1_000,
  streamReadAheadBytesMax: 1024 * 1024,
  streamSegmentBytesMax: 16 * 1024 * 1024,
  streamIndexIntervalBytes: 16 * 1024,
  streamUnsyncedBytesMax: 4 * 1024 * 1024,
  streamWriteBytesMin: 64 * 1024,
  // 16 MiB, not 64: the entries and records it counts cost about twice their counted bytes in
  // memory, and a QoS 0 fill of 1M entries peaked at 180 MiB resident instead of 310 to 340 at the
  // same fill rate (README, Benchmarks, Streams, fourth round).
  streamBacklogBytesMax: 16 * 1024 * 1024,
  streamMaintenanceIntervalMs: 1_000,
  streamLastValueTopicsMax: 1_000_000,
  cluster: null,
} satisfies BrokerConfig);

type Rule = { min: number; max: number };
const integerRules: { [K in keyof BrokerConfig]?: Rule } = {
  packetBytesMax: { min: 64, max: 268_435_460 },
  connectionsMax: { min: 1, max: 10_000_000 },
  connectionRatePerSecondMax: { min: 0, max: 10_000_000 },
  publishRatePerSecondMax: { min: 0, max: 10_000_000 },
  sessionsMax: { min: 1, max: 100_000_000 },
  subscriptionsPerSessionMax: { min: 1, max: 1_000_000 },
  receiveMaximum: { min: 1, max: 65_535 },
  inflightPerSessionMax: { min: 1, max: 65_535 },
  queuedMessagesPerSessionMax: { min: 0, max: 10_000_000 },
  queuedBytesPerSessionMax: { min: 0, max: 2 ** 40 },
  connectionOutputBytesMax: { min: 4096, max: 2 ** 40 },
  outputBufferedBytesTotalMax: { min: 0, max: 2 ** 50 },
  publisherPauseMsMax: { min: 0, max: 3_600_000 },
  retainedMessagesMax: { min: 0, max: 100_000_000 },
  retainedBytesMax: { min: 0, max: 2 ** 40 },
  topicBytesMax: { min: 1, max: 65_535 },
  topicLevelsMax: { min: 1, max: 65_535 },
  clientIdBytesMax: { min: 1, max: 65_535 },
  topicAliasMaximum: { min: 0, max: 65_535 },
  sessionExpirySecondsMax: { min: 0, max: 0xffffffff },
  connectTimeoutMs: { min: 1, max: 3_600_000 },
  sysIntervalSeconds: { min: 0, max: 86_400 },
  syncIntervalMs: { min: 1, max: 60_000 },
  segmentBytesMax: { min: 4096, max: 2 ** 32 },
  snapshotLogBytes: { min: 4096, max: 2 ** 40 },
  authenticationRoundsMax: { min: 1, max: 1_000 },
  streamsMax: { min: 0, max: 10_000 },
  streamGroupsMax: { min: 1, max: 1_000_000 },
  streamReadAheadBytesMax: { min: 1024, max: 2 ** 32 },
  // Recovery reads the active segment whole: a bound that keeps that one read reasonable.
  streamSegmentBytesMax: { min: 4096, max: 2 ** 30 },
  streamIndexIntervalBytes: { min: 256, max: 2 ** 26 },
  streamUnsyncedBytesMax: { min: 4096, max: 2 ** 36 },
  streamWriteBytesMin: { min: 1, max: 2 ** 36 },
  streamBacklogBytesMax: { min: 1024, max: 2 ** 40 },
  streamMaintenanceIntervalMs: { min: 1, max: 3_600_000 },
  streamLastValueTopicsMax: { min: 1, max: 100_000_000 },
};

/**
 * Unsent output below which a connection counts as drained again: its held-back queue moves and
 * the publishers throttled for it resume. Half the cap, so a reader hovering at the cap does not
 * flap on every report. The core decides with it, and hosts report crossing it.
 */
export function outputResumeBytes(config: BrokerConfig): number {
  return Math.ceil(config.connectionOutputBytesMax / 2);
}

/** How far a host's figure of a connection's unsent output may move before it reports again. */
export function outputReportStepBytes(config: BrokerConfig): number {
  return Math.min(16 * 1024, Math.floor(config.connectionOutputBytesMax / 4));
}

/**
 * Merges `overrides` onto the defaults and checks every value. Returns the config or the list of
 * readable problems (one per bad key); unknown keys are problems too, so typos do not pass silently.
 */
export function resolveConfig(overrides: Record<string, unknown>): { ok: true; config: BrokerConfig } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const config: Record<string, unknown> = { ...defaultConfig };
  for (const [key, value] of Object.entries(overrides)) {
    if (!(key in defaultConfig)) {
      problems.push(`unknown setting "${key}"`);
      continue;
    }
    config[key] = value;
  }
  for (const [key, rule] of Object.entries(integerRules) as [keyof BrokerConfig, Rule][]) {
    const value = config[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < rule.min || value > rule.max) {
      problems.push(`"${key}" must be an integer from ${rule.min} to ${rule.max}, got ${JSON.stringify(value)}`);
    }
  }
  checkEnum(config, 'syncPolicy', ['always', 'interval', 'none'], problems);
  checkEnum(config, 'queueOverflowPolicy', ['drop-oldest', 'reject-new'], problems);
  checkEnum(config, 'maximumQos', [0, 1, 2], problems);
  for (const key of ['retainAvailable', 'wildcardSubscriptionAvailable', 'subscriptionIdentifiersAvailable', 'sharedSubscriptionAvailable'] as const) {
    if (typeof config[key] !== 'boolean') problems.push(`"${key}" must be true or false, got ${JSON.stringify(config[key])}`);
  }
  checkAuthentication(config, problems);
  checkOutputBudget(config, problems);
  checkNullableInteger(config, 'serverKeepAliveSeconds', 0, 65_535, problems);
  checkNullableInteger(config, 'keepAliveSecondsMax', 1, 65_535, problems);
  checkEnum(config, 'sessionOwnerMismatch', ['refuse', 'fresh-session'], problems);
  config.streams = checkStreams(config, problems);
  config.cluster = checkCluster(config.cluster, problems);
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, config: config as unknown as BrokerConfig };
}

function checkNullableInteger(config: Record<string, unknown>, key: string, min: number, max: number, problems: string[]): void {
  const value = config[key];
  if (value === null) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.push(`"${key}" must be null or an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
}

function checkEnum(config: Record<string, unknown>, key: string, allowed: readonly unknown[], problems: string[]): void {
  if (!allowed.includes(config[key])) {
    problems.push(`"${key}" must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(config[key])}`);
  }
}

/** A budget below one connection's cap would let a single slow reader stop every publisher. */
function checkOutputBudget(config: Record<string, unknown>, problems: string[]): void {
  const budget = config.outputBufferedBytesTotalMax;
  const cap = config.connectionOutputBytesMax;
  if (typeof budget !== 'number' || typeof cap !== 'number' || budget === 0) return;
  if (budget < cap) problems.push(`"outputBufferedBytesTotalMax" must be 0 or at least connectionOutputBytesMax (${cap}), got ${budget}`);
}

function checkAuthentication(config: Record<string, unknown>, problems: string[]): void {
  const file = config.passwordFile;
  if (file !== null && (typeof file !== 'string' || file.length === 0)) problems.push(`"passwordFile" must be null or a file path, got ${JSON.stringify(file)}`);
  const aclFile = config.aclFile;
  if (aclFile !== null && (typeof aclFile !== 'string' || aclFile.length === 0)) problems.push(`"aclFile" must be null or a file path, got ${JSON.stringify(aclFile)}`);
  const anonymous = config.allowAnonymous;
  if (anonymous !== null && typeof anonymous !== 'boolean') problems.push(`"allowAnonymous" must be null, true or false, got ${JSON.stringify(anonymous)}`);
  const methods = config.authenticationMethods;
  if (!Array.isArray(methods) || !methods.every((method) => typeof method === 'string' && method.length > 0)) {
    problems.push(`"authenticationMethods" must be a list of method names, got ${JSON.stringify(methods)}`);
  }
}

/**
 * The `cluster` object: null, or `nats` (a URL or a non-empty list of them) and `nodeId`. A single
 * URL string is accepted and becomes a list of one.
 */
function checkCluster(value: unknown, problems: string[]): ClusterConfig | null {
  if (value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) {
    problems.push(`"cluster" must be null or an object with "nats" and "nodeId", got ${JSON.stringify(value)}`);
    return null;
  }
  const fields = value as Record<string, unknown>;
  const before = problems.length;
  for (const key of Object.keys(fields)) if (key !== 'nats' && key !== 'nodeId' && key !== 'messageBytesMax' && key !== 'handoverWaitMs') problems.push(`unknown cluster setting "${key}"`);
  const nats = typeof fields.nats === 'string' ? [fields.nats] : fields.nats;
  if (!Array.isArray(nats) || nats.length === 0 || !nats.every(isNatsUrl)) {
    problems.push(`"cluster.nats" must be a NATS URL (nats://host:port) or a non-empty list of them, got ${JSON.stringify(fields.nats)}`);
  }
  const nodeId = fields.nodeId;
  if (typeof nodeId !== 'string' || !clusterNodeIdPattern.test(nodeId)) problems.push(`"cluster.nodeId" must match [A-Za-z0-9_-]{1,32}, got ${JSON.stringify(nodeId)}`);
  const messageBytesMax = fields.messageBytesMax === undefined ? clusterMessageBytesMaxDefault : fields.messageBytesMax;
  if (typeof messageBytesMax !== 'number' || !Number.isInteger(messageBytesMax) || messageBytesMax < clusterMessageBytesRange.min || messageBytesMax > clusterMessageBytesRange.max) {
    problems.push(
      `"cluster.messageBytesMax" must be an integer from ${clusterMessageBytesRange.min} to ${clusterMessageBytesRange.max} (at most the NATS servers' max_payload), got ${JSON.stringify(fields.messageBytesMax)}`,
    );
  }
  const handoverWaitMs = fields.handoverWaitMs === undefined ? handoverWaitMsDefault : fields.handoverWaitMs;
  if (typeof handoverWaitMs !== 'number' || !Number.isInteger(handoverWaitMs) || handoverWaitMs < handoverWaitRange.min || handoverWaitMs > handoverWaitRange.max) {
    problems.push(`"cluster.handoverWaitMs" must be an integer from ${handoverWaitRange.min} to ${handoverWaitRange.max} (milliseconds), got ${JSON.stringify(fields.handoverWaitMs)}`);
  }
  if (problems.length > before) return null;
  return Object.freeze({ nats: Object.freeze([...(nats as string[])]), nodeId: nodeId as string, messageBytesMax: messageBytesMax as number, handoverWaitMs: handoverWaitMs as number });
}

function isNatsUrl(value: unknown): boolean {
  return typeof value === 'string' && /^(nats|tls|ws|wss):\/\/[^\s/]+$/.test(value);
}

/**
 * The `streams` list: each entry checked (with defaults filled in for the optional settings), and
 * names unique. Every problem is listed, each naming the entry, so one start-up shows them all.
 */
function checkStreams(config: Record<string, unknown>, problems: string[]): readonly StreamDefinition[] {
  const entries = config.streams;
  if (!Array.isArray(entries)) {
    problems.push(`"streams" must be a list of stream definitions, got ${JSON.stringify(entries)}`);
    return [];
  }
  const definitions: StreamDefinition[] = [];
  const seen = new Set<string>();
  for (let index = 0; index < entries.length; index++) {
    const entry: unknown = entries[index];
    const where = `"streams"[${index}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      problems.push(`${where} must be an object with "name" and "filter", got ${JSON.stringify(entry)}`);
      continue;
    }
    const definition = streamDefinitionFrom(entry as Record<string, unknown>, config as unknown as TopicLimits);
    if ('problems' in definition) for (const problem of definition.problems) problems.push(`${where}: ${problem}`);
    // A name given twice is a problem even when either entry has others.
    const name = (entry as Record<string, unknown>).name;
    if (typeof name === 'string' && seen.has(name)) problems.push(`${where}: stream name "${name}" is used twice`);
    if (typeof name === 'string') seen.add(name);
    if (!('problems' in definition)) definitions.push(definition);
  }
  const streamsMax = config.streamsMax;
  if (typeof streamsMax === 'number' && entries.length > streamsMax) problems.push(`"streams" holds ${entries.length} streams, more than streamsMax (${streamsMax})`);
  return definitions;
}

const streamKeys = new Set(['name', 'filter', 'retentionMs', 'retentionBytes', 'lastValue']);

/**
 * A stream definition from untrusted fields (a config file entry, an admin command): every
 * problem, or the definition with defaults for what was left out. Topic limits are the broker's,
 * so that a stream filter is one a client could subscribe to.
 */
export function streamDefinitionFrom(fields: Record<string, unknown>, limits: TopicLimits): StreamDefinition | { problems: string[] } {
  const problems: string[] = [];
  for (const key of Object.keys(fields)) if (!streamKeys.has(key)) problems.push(`unknown stream setting "${key}"`);
  const { name, filter } = fields;
  if (typeof name !== 'string' || !streamNamePattern.test(name)) problems.push(`"name" must match [A-Za-z0-9_-]{1,64}, got ${JSON.stringify(name)}`);
  const filterProblem = typeof filter === 'string' ? streamFilterProblem(filter, limits) : `must be a topic filter, got ${JSON.stringify(filter)}`;
  if (filterProblem !== null) problems.push(`"filter" ${filterProblem}`);
  const retentionMs = fields.retentionMs ?? 0;
  const retentionBytes = fields.retentionBytes ?? 0;
  const lastValue = fields.lastValue ?? false;
  if (!isWholeNumber(retentionMs)) problems.push(`"retentionMs" must be a whole number of milliseconds (0: for ever), got ${JSON.stringify(retentionMs)}`);
  if (!isWholeNumber(retentionBytes)) problems.push(`"retentionBytes" must be a whole number of bytes (0: no bound), got ${JSON.stringify(retentionBytes)}`);
  if (typeof lastValue !== 'boolean') problems.push(`"lastValue" must be true or false, got ${JSON.stringify(lastValue)}`);
  if (problems.length > 0) return { problems };
  return { name: name as string, filter: filter as string, retentionMs: retentionMs as number, retentionBytes: retentionBytes as number, lastValue: lastValue as boolean };
}

function isWholeNumber(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Why `filter` cannot be a stream's filter, or null. */
function streamFilterProblem(filter: string, limits: TopicLimits): string | null {
  const problem = checkTopicFilter(filter, limits);
  if (problem !== null) return `is not a valid topic filter: ${problem}`;
  if (parseSharedFilter(filter) !== null) return 'must not be a shared subscription';
  // Nothing can be published there (clients may not publish to $stream/...), so it would stay empty.
  if (filter === '$stream' || filter.startsWith('$stream/')) return 'must not be under $stream/';
  return null;
}
