/**
 * CONNECT: refuse it with the right CONNACK code, or bind the connection to a new or resumed
 * session, taking the client id over from another connection if needed, and answer CONNACK.
 *
 * Refusals (CONNACK then close): client id too long or empty with a persistent 3.1.1 session
 * (0x85 / rc 2) [MQTT-3.1.3-8], authenticator says no (a CONNECT naming an authentication
 * method goes through the enhanced exchange of handle-auth.ts instead, which ends in
 * `acceptConnect` or a refusal), connectionsMax or sessionsMax reached (0x97 / rc 3), more CONNECTs per
 * second than connectionRatePerSecondMax (0x9F / rc 3), each limit counted in `stats.limits`. Takeover: the
 * existing connection with the same client id gets DISCONNECT 0x8E (5.0) and is closed as an
 * abnormal end, so its will follows the will rules [MQTT-3.1.4-3]. The CONNACK of a persistent
 * session waits until its records are durable.
 */

import { natsReserveBytes } from '../cluster/message-size.js';
import { type ConnackPacket, type ConnectPacket, PacketType, type Properties } from '../codec/packets.js';
import { ConnackReturnCode311, ReasonCode } from '../codec/reason-codes.js';
import { utf8Length } from '../codec/utf8.js';
import type { LogFields } from '../contract.js';
import { checkTopicName, isReservedTopic } from '../topics/validate.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import { connectionLogFields, packetBytesLimit } from './connection.js';
import { protocolError, violation } from './errors.js';
import { startAuthentication } from './handle-auth.js';
import { countTopicLimit, rateBucket } from './limits.js';
import { redeliver } from './outbound-queue.js';
import { replayFor } from './retained-replay.js';
import { endSession } from './session-lifecycle.js';
import type { LimitStats } from './stats.js';
import { discardWill } from './will.js';

const expiryNever = 0xffffffff;

/** The 3.1.1 CONNACK return code closest to a 5.0 reason code. */
function returnCode311(reasonCode: number): number {
  switch (reasonCode) {
    case ReasonCode.UnsupportedProtocolVersion:
      return ConnackReturnCode311.UnacceptableProtocolVersion;
    case ReasonCode.ClientIdentifierNotValid:
      return ConnackReturnCode311.IdentifierRejected;
    case ReasonCode.BadUserNameOrPassword:
      return ConnackReturnCode311.BadUserNameOrPassword;
    case ReasonCode.NotAuthorized:
    case ReasonCode.Banned:
    case ReasonCode.BadAuthenticationMethod:
      return ConnackReturnCode311.NotAuthorized;
    default:
      return ConnackReturnCode311.ServerUnavailable;
  }
}

/** What a CONNACK that ends an enhanced authentication carries [MQTT-4.12.0-5]. */
export interface ConnackAuthentication {
  readonly method: string;
  readonly data: Uint8Array | undefined;
}

/** The 5.0 CONNACK codes that refuse a client for who it is (see BrokerStats.authenticationFailures). */
function isIdentityRefusal(reasonCode: number): boolean {
  return reasonCode === ReasonCode.BadUserNameOrPassword || reasonCode === ReasonCode.NotAuthorized || reasonCode === ReasonCode.Banned || reasonCode === ReasonCode.BadAuthenticationMethod;
}

type Refusal = { reasonCode: number; why: string; limit?: keyof LimitStats };

export function refuse(broker: Broker, connection: Connection, reasonCode: number, nowMs: number, why: string, limit?: keyof LimitStats, extra: LogFields = {}): void {
  const code = connection.version === 5 ? reasonCode : returnCode311(reasonCode);
  broker.stats.connectsRefused += 1;
  if (connection.version === 5 ? isIdentityRefusal(code) : code === ConnackReturnCode311.BadUserNameOrPassword || code === ConnackReturnCode311.NotAuthorized) broker.stats.authenticationFailures += 1;
  if (limit !== undefined) broker.stats.limits[limit] += 1;
  broker.log('info', 'connect-refused', { ...connectionLogFields(connection), ...extra, protocolVersion: connection.version, reasonCode: code, why });
  broker.sendPacket(connection, { type: PacketType.Connack, sessionPresent: false, reasonCode: code }, 0, true);
  broker.closeConnection(connection, nowMs, `connect refused: ${why}`, 'discard', true);
}

/** The reason to refuse this CONNECT, or null to accept it. */
function refusal(broker: Broker, connection: Connection, packet: ConnectPacket, nowMs: number): Refusal | null {
  if (utf8Length(packet.clientId) > broker.config.clientIdBytesMax) return { reasonCode: ReasonCode.ClientIdentifierNotValid, why: 'client id too long' };
  // [MQTT-3.1.3-8] 3.1.1: an empty client id is allowed only with a clean session.
  if (packet.clientId.length === 0 && packet.protocolVersion !== 5 && !packet.cleanStart) return { reasonCode: ReasonCode.ClientIdentifierNotValid, why: 'empty client id needs a clean session' };
  // Before the authenticator: a flood of CONNECTs must not buy a flood of credential checks.
  if (broker.connectionBucket !== null && !broker.connectionBucket.take(nowMs)) {
    return { reasonCode: ReasonCode.ConnectionRateExceeded, why: 'connectionRatePerSecondMax reached', limit: 'connectionRatePerSecondMax' };
  }
  // A user name the transport verified (mutual TLS) is the client's identity: no password is
  // checked, and an enhanced authentication, which would establish another identity, is refused.
  if (connection.verifiedUsername !== undefined) {
    if (packet.properties?.authenticationMethod !== undefined) return { reasonCode: ReasonCode.BadAuthenticationMethod, why: 'the transport already authenticated the client' };
    return null;
  }
  // A CONNECT naming an authentication method is decided by its enhanced exchange (handle-auth.ts).
  if (broker.authenticator !== undefined && packet.properties?.authenticationMethod === undefined) {
    const decision = broker.authenticator.authenticate({
      clientId: packet.clientId,
      username: packet.username,
      password: packet.password,
      remoteAddress: connection.remoteAddress,
      protocolVersion: packet.protocolVersion,
    });
    if (!decision.ok) return { reasonCode: decision.reasonCode, why: 'not authenticated' };
  }
  return null;
}

function requestedExpirySeconds(packet: ConnectPacket): number {
  if (packet.protocolVersion === 5) return packet.properties?.sessionExpiryInterval ?? 0;
  return packet.cleanStart ? 0 : expiryNever;
}

/**
 * A will's topic gets exactly the checks a PUBLISH's topic gets, before anything about the
 * connection is stored: a will that could never be published must not reach the log, where
 * recovery would find it again after every restart. MQTT 5.0 says why in CONNACK 0x90 (Topic Name
 * invalid, which the spec defines for the Will Topic); 3.1.1 has no code for it, so the
 * connection is closed without a CONNACK [MQTT-3.1.4-1] (errors.ts maps the violation).
 */
function checkWillTopic(broker: Broker, packet: ConnectPacket): void {
  if (packet.will === undefined) return;
  // [MQTT-3.2.2-12] / [MQTT-3.2.2-13]: a will the server cannot honour refuses the connection
  // (5.0: 0x9B QoS not supported, 0x9A Retain not supported; 3.1.1 has no code: a close).
  if (packet.will.qos > broker.config.maximumQos) throw violation(ReasonCode.QosNotSupported, 'will-qos-not-supported', `will QoS ${packet.will.qos} above maximum ${broker.config.maximumQos}`);
  if (packet.will.retain && !broker.config.retainAvailable) throw violation(ReasonCode.RetainNotSupported, 'will-retain-not-supported', 'will retain is not available');
  const will = packet.will;
  const problem = checkTopicName(will.topic, broker.config);
  if (problem !== null) {
    countTopicLimit(broker.stats.limits, broker.config, will.topic);
    throw violation(ReasonCode.TopicNameInvalid, 'will-topic-invalid', `will ${problem}`);
  }
  // A cluster node hands the will to the others when it fires: refused now if NATS could not carry it (cluster/message-size.ts).
  if (broker.cluster !== null && !broker.cluster.carries(will.topic, will.payload, will.qos, will.retain, will.properties)) {
    broker.stats.limits.clusterMessageBytesMax += 1;
    throw violation(ReasonCode.PacketTooLarge, 'will-too-large-for-cluster', `will larger than the cluster carries (cluster.messageBytesMax ${broker.cluster.messageBytesMax})`);
  }
}

export function handleConnect(broker: Broker, connection: Connection, packet: ConnectPacket, nowMs: number): void {
  connection.version = packet.protocolVersion;
  connection.clientId = packet.clientId;
  connection.username = connection.verifiedUsername ?? packet.username;
  // Section 3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol Error.
  if (packet.properties?.authenticationData !== undefined && packet.properties.authenticationMethod === undefined) {
    throw protocolError('authentication-data-without-method', 'CONNECT carries Authentication Data but no Authentication Method');
  }
  checkWillTopic(broker, packet);
  const refused = refusal(broker, connection, packet, nowMs);
  if (refused !== null) return refuse(broker, connection, refused.reasonCode, nowMs, refused.why, refused.limit);
  const method = packet.properties?.authenticationMethod;
  // MQTT 5.0 enhanced authentication: the exchange calls acceptConnect once it succeeds.
  if (method !== undefined) return startAuthentication(broker, connection, packet, method, nowMs);
  acceptConnect(broker, connection, packet, nowMs, null);
}

/**
 * Binds an authenticated CONNECT to a new or resumed session and answers CONNACK; after an
 * enhanced authentication the CONNACK carries its method and final data [MQTT-4.12.0-5].
 * connectionsMax is checked here, at the moment the client would start to count. A cluster node
 * passes the client id it claimed and the claim's `keel-sessions` revision, which the session's
 * record keeps (SessionState.claimRevision); a single node passes neither.
 */
export function acceptConnect(
  broker: Broker,
  connection: Connection,
  packet: ConnectPacket,
  nowMs: number,
  authentication: ConnackAuthentication | null,
  claimedClientId: string | null = null,
  claimRevision: number | null = null,
): void {
  const takesOver = broker.online.get(packet.clientId);
  if (broker.stats.clientsConnected >= broker.config.connectionsMax && takesOver === undefined) {
    return refuse(broker, connection, ReasonCode.QuotaExceeded, nowMs, 'connectionsMax reached', 'connectionsMax');
  }
  const listenerMax = connection.listener.connectionsMax;
  if (listenerMax !== null && broker.listenerClients(connection.listener) >= listenerMax && takesOver?.listener !== connection.listener) {
    return refuse(broker, connection, ReasonCode.QuotaExceeded, nowMs, `connectionsMax of listener ${connection.listener.name} reached`, 'listenerConnectionsMax');
  }
  const assigned = packet.clientId.length === 0;
  const clientId = claimedClientId ?? (assigned ? broker.generateClientId() : packet.clientId);
  // After an enhanced authentication the user is who the method said it was; a user name the
  // transport verified is the user whatever the CONNECT said.
  const identity = { clientId, username: connection.verifiedUsername ?? connection.authentication?.identity ?? packet.username };
  connection.clientId = clientId;
  connection.username = identity.username;
  // [MQTT-3.1.4-2] A will its client may not publish is refused at CONNECT (0x87 / rc 5), not
  // dropped silently when the connection ends: the client learns of it while it can still act.
  if (broker.access !== null && packet.will !== undefined && !broker.access.mayLeaveWill(identity, packet.will.topic)) {
    return refuse(broker, connection, ReasonCode.NotAuthorized, nowMs, 'will topic not authorized');
  }
  // $SYS is the broker's own (sys-topics.ts), $stream/ is for reading streams: no client
  // publishes there, not even by its will.
  if (packet.will !== undefined && isReservedTopic(packet.will.topic)) {
    broker.stats.authorization.willDenied += 1;
    return refuse(broker, connection, ReasonCode.NotAuthorized, nowMs, 'will topic reserved for the broker');
  }
  const username = identity.username ?? null;
  const owner = foreignOwner(broker, clientId, username);
  // A session belongs to the user it was made for: another user naming its client id gets
  // neither its subscriptions, nor its queue, nor its will (sessionOwnerMismatch).
  if (owner !== undefined && broker.config.sessionOwnerMismatch === 'refuse') {
    return refuse(broker, connection, ReasonCode.NotAuthorized, nowMs, 'client id belongs to a session of another user', undefined, { owner });
  }
  const requested = requestedExpirySeconds(packet);
  const expirySeconds = Math.min(requested, broker.config.sessionExpirySecondsMax);
  // A cluster node first claims the client id cluster-wide (session-registry.ts), which comes back here.
  if (broker.cluster !== null && claimedClientId === null) return broker.cluster.sessions.claim(connection, packet, authentication, clientId, nowMs);
  takeOver(broker, clientId, nowMs);
  const existing = broker.state.sessions.get(clientId);
  const resume = existing !== undefined && !packet.cleanStart && owner === undefined;
  if (!resume && broker.state.sessions.size - (existing === undefined ? 0 : 1) >= broker.config.sessionsMax) {
    return refuse(broker, connection, ReasonCode.QuotaExceeded, nowMs, 'sessionsMax reached', 'sessionsMax');
  }
  const appendedBefore = broker.store.appendedLsn;
  // The owner is durable (null: anonymous), so that topic authorization after a restart still
  // knows whose offline session and whose will it decides for (access-control.ts).
  if (resume) {
    // A resumed session cancels the will still waiting from its previous connection [MQTT-3.1.3-9].
    discardWill(broker, clientId);
    broker.sessionExpiryDeadlines.delete(clientId);
    const resumed = { kind: 'session-resumed', clientId, protocolVersion: packet.protocolVersion, expiryIntervalSeconds: expirySeconds, username } as const;
    broker.commit(claimRevision === null ? resumed : { ...resumed, claimRevision });
  } else {
    if (existing !== undefined) endSession(broker, clientId, nowMs);
    const created = { kind: 'session-created', clientId, protocolVersion: packet.protocolVersion, expiryIntervalSeconds: expirySeconds, username } as const;
    broker.commit(claimRevision === null ? created : { ...created, claimRevision });
  }
  if (packet.will !== undefined) broker.commit({ kind: 'will-set', clientId, will: packet.will, username });
  const keepAliveSeconds = grantedKeepAliveSeconds(broker, packet);
  bind(broker, connection, packet, clientId, keepAliveSeconds, nowMs);
  broker.access?.bind(connection, identity);
  const serverKeepAlive = keepAliveSeconds === packet.keepAliveSeconds && broker.config.serverKeepAliveSeconds === null ? null : keepAliveSeconds;
  const connack = connackFor(broker, connection, resume, assigned ? clientId : null, expirySeconds !== requested ? expirySeconds : null, serverKeepAlive, authentication);
  broker.sendPacket(connection, connack, Math.max(broker.lsnSince(appendedBefore), broker.pendingDeletionLsn(clientId)));
  logConnected(broker, connection, packet, keepAliveSeconds, resume);
  if (resume) redeliver(broker, connection.session!, connection, nowMs);
}

/**
 * The user name of the stored session for `clientId` when that is another user than `username`,
 * else undefined (no session, the same user, or an owner an older version did not record, which
 * the newcomer then becomes). Null stands for anonymous, as in SessionState.username.
 */
function foreignOwner(broker: Broker, clientId: string, username: string | null): string | null | undefined {
  const stored = broker.state.sessions.get(clientId)?.username;
  if (stored === undefined || stored === username) return undefined;
  return stored;
}

/**
 * The keepalive the connection is held to, in seconds (0: none). MQTT 5.0 clients are told it in
 * CONNACK's Server Keep Alive when it is not what they asked for [MQTT-3.2.2-21]; 3.1.1 has no way
 * to say it, so a 3.1.1 client asking for more than keepAliveSecondsMax is held to the ceiling
 * without knowing (a client that stays within its own keepalive is well within it anyway).
 */
function grantedKeepAliveSeconds(broker: Broker, packet: ConnectPacket): number {
  const config = broker.config;
  if (packet.protocolVersion === 5 && config.serverKeepAliveSeconds !== null) return config.serverKeepAliveSeconds;
  const ceiling = config.keepAliveSecondsMax;
  const requested = packet.keepAliveSeconds;
  if (ceiling !== null && (requested === 0 || requested > ceiling)) return ceiling;
  return requested;
}

/** The operator's line for every accepted connection (its refusals are logged by `refuse`). */
function logConnected(broker: Broker, connection: Connection, packet: ConnectPacket, keepAliveSeconds: number, sessionPresent: boolean): void {
  // Not even built when the host drops info lines: in a cold reconnect storm, building this
  // object (a spread, still interpreted) was about 6 % of the broker's CPU (a --cpu-prof of the
  // benchmark's cold batch).
  if (!broker.logInfo) return;
  broker.log('info', 'client-connected', {
    ...connectionLogFields(connection),
    protocolVersion: packet.protocolVersion,
    cleanStart: packet.cleanStart,
    keepAliveSeconds,
    sessionPresent,
  });
}

function takeOver(broker: Broker, clientId: string, nowMs: number): void {
  const previous = broker.online.get(clientId);
  if (previous === undefined) return;
  broker.stats.takeovers += 1;
  broker.log('info', 'session-takeover', { clientId, connectionId: previous.id });
  if (previous.version === 5) {
    broker.sendPacket(previous, { type: PacketType.Disconnect, reasonCode: ReasonCode.SessionTakenOver }, 0, true);
  }
  broker.closeConnection(previous, nowMs, 'session taken over', 'publish', true);
}

function bind(broker: Broker, connection: Connection, packet: ConnectPacket, clientId: string, keepAliveSeconds: number, nowMs: number): void {
  connection.phase = 'connected';
  connection.clientId = clientId;
  connection.session = broker.state.sessions.get(clientId)!;
  connection.keepAliveMs = keepAliveSeconds * 1000;
  connection.lastPacketMs = nowMs;
  connection.connectedAtMs = nowMs;
  connection.receiveMaximum = packet.properties?.receiveMaximum ?? 65_535;
  connection.maximumPacketSize = packet.properties?.maximumPacketSize ?? packetBytesLimit;
  connection.outgoingAliasMaximum = packet.protocolVersion === 5 ? (packet.properties?.topicAliasMaximum ?? 0) : 0;
  connection.will = packet.will ?? null;
  // A resumed session may still owe retained messages to a subscription made before (retained-replay.ts).
  connection.retainedReplay = replayFor(broker, connection.session);
  connection.publishBucket = rateBucket(broker.config.publishRatePerSecondMax, nowMs);
  broker.online.set(clientId, connection);
  broker.stats.clientsConnected += 1;
  if (broker.stats.clientsConnected > broker.stats.clientsConnectedMax) broker.stats.clientsConnectedMax = broker.stats.clientsConnected;
  broker.countListenerClient(connection.listener, 1);
}

function connackFor(
  broker: Broker,
  connection: Connection,
  sessionPresent: boolean,
  assignedClientId: string | null,
  clampedExpiry: number | null,
  serverKeepAlive: number | null,
  authentication: ConnackAuthentication | null,
): ConnackPacket {
  const connack: ConnackPacket = { type: PacketType.Connack, sessionPresent, reasonCode: 0 };
  if (connection.version !== 5) return connack;
  const config = broker.config;
  const properties: Properties = {};
  if (config.receiveMaximum !== 65_535) properties.receiveMaximum = config.receiveMaximum;
  if (config.maximumQos < 2) properties.maximumQos = config.maximumQos;
  if (!config.retainAvailable) properties.retainAvailable = 0;
  // A cluster node also says what NATS carries (cluster/message-size.ts): a hint, as properties grow in headers.
  const packetMax = broker.cluster === null ? config.packetBytesMax : Math.min(config.packetBytesMax, broker.cluster.messageBytesMax - natsReserveBytes);
  if (packetMax < packetBytesLimit) properties.maximumPacketSize = packetMax;
  if (config.topicAliasMaximum > 0) properties.topicAliasMaximum = config.topicAliasMaximum;
  if (!config.wildcardSubscriptionAvailable) properties.wildcardSubscriptionAvailable = 0;
  if (!config.subscriptionIdentifiersAvailable) properties.subscriptionIdentifiersAvailable = 0;
  if (!config.sharedSubscriptionAvailable) properties.sharedSubscriptionAvailable = 0;
  if (assignedClientId !== null) properties.assignedClientIdentifier = assignedClientId;
  if (serverKeepAlive !== null) properties.serverKeepAlive = serverKeepAlive;
  if (clampedExpiry !== null) properties.sessionExpiryInterval = clampedExpiry;
  if (authentication !== null) {
    properties.authenticationMethod = authentication.method;
    if (authentication.data !== undefined) properties.authenticationData = authentication.data;
  }
  if (Object.keys(properties).length > 0) connack.properties = properties;
  return connack;
}
