/**
 * The broker's counters: plain numbers, mutated in place, read by the simulator, benchmarks and
 * operators. Every message the broker decides not to deliver is counted under `drops`, by reason,
 * so that a checker can tell a reported loss from a silent one.
 */

export interface DropStats {
  /** A session's queue was full (queueOverflowPolicy decided which message went). */
  queueOverflow: number;
  /** QoS 0 messages for sessions without a connection: not queued, by design. */
  qos0Offline: number;
  /** Larger than the receiving client's Maximum Packet Size [MQTT-3.1.2-25]. */
  packetTooLarge: number;
  /** The message expiry interval ran out while the message waited. */
  expired: number;
  /** Sessions that ended (expired or cleaned) with deliveries still pending. */
  sessionEnded: number;
  /**
   * QoS 0 messages not sent because the connection's unsent output was at connectionOutputBytesMax
   * (its reader stopped reading). QoS 1/2 ones wait in the queue instead (counted under
   * queueOverflow if the queue then overflows).
   */
  outputFull: number;
}

/** Publisher throttling (throttle.ts): reading paused on publishers whose output would pile up. */
export interface ThrottleStats {
  /** Every pause: a QoS 1/2 message was kept for a receiver at connectionOutputBytesMax, or the budget below. */
  publisherPauses: number;
  /** Of `publisherPauses`, those because all output together passed outputBufferedBytesTotalMax. */
  budgetPauses: number;
  /** Of `publisherPauses`, those because the streams' entries in memory reached streamBacklogBytesMax. */
  streamPauses: number;
  /** Connections not being read right now. */
  pausedCurrent: number;
  /** Receivers that held a publisher for publisherPauseMsMax without draining (then pause nobody until they do). */
  stalledReceivers: number;
}

/**
 * How often each configured limit was hit, named after its setting. Limits that drop messages
 * are counted where the drop is: queuedMessagesPerSessionMax / queuedBytesPerSessionMax in
 * `drops.queueOverflow`, retainedMessagesMax / retainedBytesMax in `retainedRefused`.
 */
export interface LimitStats {
  /** CONNECTs refused because connectionsMax clients were connected (0x97 / rc 3). */
  connectionsMax: number;
  /** CONNECTs refused because their listener's own connectionsMax was reached (0x97 / rc 3). */
  listenerConnectionsMax: number;
  /** CONNECTs refused because sessionsMax sessions were held (0x97 / rc 3). */
  sessionsMax: number;
  /** CONNECTs refused by connectionRatePerSecondMax (0x9F / rc 3). */
  connectionRatePerSecondMax: number;
  /** Connections closed for sending faster than publishRatePerSecondMax (0x96). */
  publishRatePerSecondMax: number;
  /** Connections closed for a packet larger than packetBytesMax (0x95). */
  packetBytesMax: number;
  /** A cluster node's PUBLISHes and wills refused as larger than NATS carries (cluster.messageBytesMax, 0x95). */
  clusterMessageBytesMax: number;
  /** Connections closed for more unacknowledged QoS 1/2 PUBLISHes than our Receive Maximum (0x93). */
  receiveMaximum: number;
  /** Filters refused because the session had subscriptionsPerSessionMax (SUBACK 0x97 / 0x80). */
  subscriptionsPerSessionMax: number;
  /** Topic names (PUBLISH, 0x90) and filters (SUBACK 0x8F) refused for exceeding topicBytesMax. */
  topicBytesMax: number;
  /** Topic names (PUBLISH, 0x90) and filters (SUBACK 0x8F) refused for exceeding topicLevelsMax. */
  topicLevelsMax: number;
}

/**
 * Decisions of the authorizer (BrokerOptions.authorizer) that refused something; each is also
 * logged as `not-authorized`. A receive denial is a message withheld from one session.
 */
export interface AuthorizationStats {
  /** Filters refused in SUBACK (5.0: 0x87; 3.1.1: 0x80). */
  subscribeDenied: number;
  /** PUBLISH packets not routed (5.0 QoS 1/2: PUBACK/PUBREC 0x87). */
  publishDenied: number;
  /** Deliveries withheld from a session whose client may not read the topic. */
  receiveDenied: number;
  /** CONNECTs refused for their will topic, and wills not published when their time came. */
  willDenied: number;
}

/**
 * Durable streams (broker/streams/). Appends count entries (a message in two streams is two);
 * the store's side (writes, syncs, reads, deletions, damage, compaction) is copied in after every
 * input.
 */
export interface StreamStats {
  entriesAppended: number;
  /** Payload bytes appended, per entry. */
  bytesAppended: number;
  /** Stream entries sent to readers (resends not counted). */
  deliveries: number;
  /** Storage reads made for readers behind the memory tail, and the bytes they returned. */
  replayReads: number;
  replayReadBytes: number;
  /** Offsets readers lost before reaching them (retention, damage): each announced to its reader. */
  entriesSkipped: number;
  /** Consumer groups whose position retention had to move past entries they had not acknowledged. */
  groupsCut: number;
  /** Offsets those groups lost. */
  groupEntriesCut: number;
  entriesWritten: number;
  segmentSyncs: number;
  /** Segments deleted (retention, stream deletion). */
  segmentsDeleted: number;
  /** Retention decisions that moved a stream's first offset (one `stream-trimmed` record each). */
  trims: number;
  damagedFrames: number;
  /** Last-value compaction: steps run, segments rewritten, entries dropped. */
  compactionSteps: number;
  compactions: number;
  entriesCompacted: number;
  /** What the stream entries held in memory now cost, appended and not yet synced (bounded by streamBacklogBytesMax). */
  memoryBytes: number;
  /** The most recovery held at once for entries the stream files lacked (store/streams/stream-recovery.ts). */
  recoveryHeldBytesPeak: number;
  /** Entries appended while the entries in memory were at or past streamBacklogBytesMax (admitted; their publishers paused after). */
  backlogOverrunEntries: number;
  /** Of those, entries of messages from no connection (wills, cluster arrivals): nobody could be paused for them (throttle.ts). */
  backlogOverrunUnpausedEntries: number;
  /** Entries of QoS 0 messages from other cluster nodes left out while the backlog was at its bound (throttle.ts). */
  backlogDroppedEntries: number;
}

export interface BrokerStats {
  connectionsOpened: number;
  /** Transport connections currently open (CONNECT or not). */
  connectionsCurrent: number;
  /** Connections that completed CONNECT and are open. */
  clientsConnected: number;
  /** The most clients connected at once since the broker started. */
  clientsConnectedMax: number;
  /** Sessions held, online or offline (updated after each input). */
  sessionsCurrent: number;
  sessionsExpired: number;
  packetsReceived: number;
  packetsSent: number;
  bytesReceived: number;
  bytesSent: number;
  /** PUBLISH packets accepted from clients (duplicates of unreleased QoS 2 not counted). */
  messagesReceived: number;
  /** PUBLISH packets sent to clients (redeliveries included). */
  messagesSent: number;
  /** Routed messages that matched no subscription. */
  messagesUnmatched: number;
  protocolViolations: number;
  connectsRefused: number;
  /**
   * Of `connectsRefused`, those a client sees as refused for who it is: 5.0 CONNACK 0x86 Bad User
   * Name or Password, 0x87 Not Authorized, 0x8A Banned or 0x8C Bad Authentication Method (3.1.1:
   * return code 4 or 5). Operators alert on it: a burst is someone guessing passwords. It counts
   * the wire code, so the 0x87 refusals for a will topic (also in `authorization.willDenied`) and
   * for a client id owned by another user are in it too.
   */
  authenticationFailures: number;
  takeovers: number;
  keepAliveTimeouts: number;
  connectTimeouts: number;
  willsPublished: number;
  /** New retained topics refused by retainedMessagesMax / retainedBytesMax. */
  retainedRefused: number;
  drops: DropStats;
  limits: LimitStats;
  authorization: AuthorizationStats;
  throttle: ThrottleStats;
  streams: StreamStats;
}

export function createStats(): BrokerStats {
  return {
    connectionsOpened: 0,
    connectionsCurrent: 0,
    clientsConnected: 0,
    clientsConnectedMax: 0,
    sessionsCurrent: 0,
    sessionsExpired: 0,
    packetsReceived: 0,
    packetsSent: 0,
    bytesReceived: 0,
    bytesSent: 0,
    messagesReceived: 0,
    messagesSent: 0,
    messagesUnmatched: 0,
    protocolViolations: 0,
    connectsRefused: 0,
    authenticationFailures: 0,
    takeovers: 0,
    keepAliveTimeouts: 0,
    connectTimeouts: 0,
    willsPublished: 0,
    retainedRefused: 0,
    drops: { queueOverflow: 0, qos0Offline: 0, packetTooLarge: 0, expired: 0, sessionEnded: 0, outputFull: 0 },
    limits: {
      connectionsMax: 0,
      listenerConnectionsMax: 0,
      sessionsMax: 0,
      connectionRatePerSecondMax: 0,
      publishRatePerSecondMax: 0,
      packetBytesMax: 0,
      clusterMessageBytesMax: 0,
      receiveMaximum: 0,
      subscriptionsPerSessionMax: 0,
      topicBytesMax: 0,
      topicLevelsMax: 0,
    },
    authorization: { subscribeDenied: 0, publishDenied: 0, receiveDenied: 0, willDenied: 0 },
    throttle: { publisherPauses: 0, budgetPauses: 0, streamPauses: 0, pausedCurrent: 0, stalledReceivers: 0 },
    streams: {
      entriesAppended: 0,
      bytesAppended: 0,
      deliveries: 0,
      replayReads: 0,
      replayReadBytes: 0,
      entriesSkipped: 0,
      groupsCut: 0,
      groupEntriesCut: 0,
      entriesWritten: 0,
      segmentSyncs: 0,
      segmentsDeleted: 0,
      trims: 0,
      damagedFrames: 0,
      compactionSteps: 0,
      compactions: 0,
      entriesCompacted: 0,
      memoryBytes: 0,
      recoveryHeldBytesPeak: 0,
      backlogOverrunEntries: 0,
      backlogOverrunUnpausedEntries: 0,
      backlogDroppedEntries: 0,
    },
  };
}
