/**
 * MQTT 5.0 enhanced authentication (section 4.12): the AUTH packet and the exchange around it.
 *
 * The exchange is a small state machine kept on the connection (`connection.authentication`),
 * with every transition in `advance`:
 *
 *   CONNECT with method M  -> start(M)  -> stage 'connecting'
 *   'connecting'     + AUTH 0x18 (M)     -> continue()          (more AUTH 0x18 from us, or the end)
 *   'connecting'     + success           -> CONNACK 0x00 with M -> 'authenticated'
 *   'connecting'     + failure           -> CONNACK 0x8x, close [MQTT-4.12.0-4]
 *   'authenticated'  + AUTH 0x19 (M)     -> start(M)  -> 'reauthenticating' [MQTT-4.12.1-1]
 *   'reauthenticating' + AUTH 0x18 (M)   -> continue()
 *   'reauthenticating' + success         -> AUTH 0x00 with M    -> 'authenticated'
 *   'reauthenticating' + failure         -> DISCONNECT, close   [MQTT-4.12.1-2]
 *   'reauthenticating' + success as another identity -> DISCONNECT 0x87, close
 *
 * Everything else is a protocol error: an AUTH from a client that named no method
 * [MQTT-4.12.0-7], an AUTH with another method [MQTT-4.12.0-5], a reason code out of turn
 * [MQTT-4.12.0-3], and, between CONNECT and CONNACK, any packet but AUTH or DISCONNECT (a
 * DISCONNECT there just ends the attempt). During a re-authentication other packets keep
 * flowing under the previous authentication, as section 4.12.1 allows. The connection stays in
 * phase 'awaiting-connect' until CONNACK, so the connect timeout keeps running through the
 * exchange. Each exchange takes at most `authenticationRoundsMax` AUTH packets from the client.
 */
import { assert } from '../assert.js';
import { protocolError } from '../codec/errors.js';
import { type AuthPacket, type ConnectPacket, type Packet, PacketType, type Properties } from '../codec/packets.js';
import { connackReasonCodes, disconnectReasonCodes } from '../codec/reason-code-sets.js';
import { ReasonCode } from '../codec/reason-codes.js';
import type { AuthenticationRequest, AuthenticationStep } from './authenticator.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import { acceptConnect, refuse } from './handle-connect.js';
import { scheduleKeepAlive } from './keepalive.js';

export type AuthenticationStage = 'connecting' | 'authenticated' | 'reauthenticating';

export interface AuthenticationExchange {
  stage: AuthenticationStage;
  /** The method named in CONNECT; every AUTH must carry the same one [MQTT-4.12.0-5]. */
  readonly method: string;
  /** The method's own state between steps (opaque to the core); null when no step is pending. */
  state: unknown;
  /** The CONNECT waiting for the first exchange to succeed; null once it has. */
  connect: ConnectPacket | null;
  /** AUTH packets taken from the client in the current exchange. */
  rounds: number;
  /** The CONNECT's user name, or who the last successful exchange said was authenticated. */
  identity: string | undefined;
}

/** A CONNECT naming `method`: start the exchange, or refuse an unknown method [MQTT-4.12.0-1]. */
export function startAuthentication(broker: Broker, connection: Connection, packet: ConnectPacket, method: string, nowMs: number): void {
  assert(connection.phase === 'awaiting-connect', 'authentication starts before CONNACK');
  assert(connection.authentication === null, 'one CONNECT per connection');
  const authenticator = broker.enhancedAuthenticator;
  if (authenticator === undefined || !authenticator.methods.includes(method)) {
    return refuse(broker, connection, ReasonCode.BadAuthenticationMethod, nowMs, `authentication method ${method} not supported`);
  }
  connection.authentication = { stage: 'connecting', method, state: null, connect: packet, rounds: 0, identity: packet.username };
  const request: AuthenticationRequest = {
    clientId: packet.clientId,
    username: packet.username,
    password: packet.password,
    remoteAddress: connection.remoteAddress,
    protocolVersion: packet.protocolVersion,
  };
  advance(broker, connection, authenticator.start(method, packet.properties?.authenticationData, request), nowMs, true);
}

/**
 * Called by the dispatcher for every AUTH packet and for every packet of a connection with an
 * exchange; returns false when the packet is none of this module's business.
 */
export function routeAuthentication(broker: Broker, connection: Connection, packet: Packet, nowMs: number): boolean {
  if (packet.type === PacketType.Auth) {
    handleAuth(broker, connection, packet, nowMs);
    return true;
  }
  const exchange = connection.authentication;
  if (exchange === null || exchange.stage !== 'connecting') return false;
  // Between CONNECT and CONNACK the client answers with AUTH or gives up (section 4.12).
  if (packet.type === PacketType.Disconnect) {
    broker.log('info', 'authentication-abandoned', { connectionId: connection.id, method: exchange.method });
    broker.closeConnection(connection, nowMs, 'client ended the authentication', 'discard', true);
    return true;
  }
  throw protocolError('packet-during-authentication', `packet type ${packet.type} before the authentication exchange ended`);
}

function handleAuth(broker: Broker, connection: Connection, packet: AuthPacket, nowMs: number): void {
  const exchange = connection.authentication;
  // [MQTT-3.1.0-1] Nothing but CONNECT comes first.
  if (exchange === null && connection.phase !== 'connected') throw protocolError('packet-before-connect', 'the first packet must be CONNECT');
  // [MQTT-4.12.0-7] Only a client that named a method in CONNECT may send AUTH.
  if (exchange === null) throw protocolError('unexpected-auth', 'AUTH without an authentication method');
  // [MQTT-4.12.0-5] [MQTT-4.12.1-1] The method stays the one named in CONNECT.
  if (packet.properties?.authenticationMethod !== exchange.method) {
    throw protocolError('auth-method-mismatch', `AUTH must name the method ${exchange.method}`);
  }
  // [MQTT-4.12.0-3] An answer carries 0x18; [MQTT-4.12.1-1] a new exchange after CONNACK opens with 0x19.
  const expected = exchange.stage === 'authenticated' ? ReasonCode.ReAuthenticate : ReasonCode.ContinueAuthentication;
  if (packet.reasonCode !== expected) {
    throw protocolError('unexpected-auth-reason', `AUTH reason 0x${packet.reasonCode.toString(16)} in stage ${exchange.stage}`);
  }
  const authenticator = broker.enhancedAuthenticator;
  assert(authenticator !== undefined, 'an exchange exists only with an enhanced authenticator');
  const data = packet.properties?.authenticationData;
  if (exchange.stage === 'authenticated') {
    exchange.stage = 'reauthenticating';
    exchange.rounds = 1;
    broker.log('info', 'reauthentication-started', { connectionId: connection.id, clientId: connection.clientId, method: exchange.method });
    return advance(broker, connection, authenticator.start(exchange.method, data, reauthenticationRequest(connection, exchange)), nowMs, false);
  }
  exchange.rounds += 1;
  if (exchange.rounds > broker.config.authenticationRoundsMax) {
    return advance(broker, connection, { kind: 'failure', reasonCode: ReasonCode.NotAuthorized }, nowMs, false);
  }
  advance(broker, connection, authenticator.continue(exchange.state, data), nowMs, false);
}

/** Who asks to re-authenticate: the password is not kept, the identity is. */
function reauthenticationRequest(connection: Connection, exchange: AuthenticationExchange): AuthenticationRequest {
  return {
    clientId: connection.clientId,
    username: exchange.identity,
    password: undefined,
    remoteAddress: connection.remoteAddress,
    protocolVersion: connection.version,
    reauthentication: true,
  };
}

/**
 * The one place the exchange changes stage. `viaConnect` is true when the step answers the
 * CONNECT itself: the dispatcher then schedules the keepalive, otherwise it is done here.
 */
function advance(broker: Broker, connection: Connection, step: AuthenticationStep, nowMs: number, viaConnect: boolean): void {
  const exchange = connection.authentication;
  assert(exchange !== null, 'a step needs an exchange');
  assert(exchange.stage !== 'authenticated', 'no step without an exchange in progress');
  switch (step.kind) {
    case 'continue':
      exchange.state = step.state;
      // [MQTT-4.12.0-2] More data is needed: AUTH 0x18, naming the method [MQTT-4.12.0-5].
      broker.sendPacket(connection, authPacket(ReasonCode.ContinueAuthentication, exchange.method, step.data));
      return;
    case 'success':
      return succeed(broker, connection, exchange, step.data, step.identity, nowMs, viaConnect);
    case 'failure':
      return failAuthentication(broker, connection, exchange, step.reasonCode, nowMs);
  }
}

function succeed(broker: Broker, connection: Connection, exchange: AuthenticationExchange, data: Uint8Array | undefined, identity: string | undefined, nowMs: number, viaConnect: boolean): void {
  const wasConnecting = exchange.stage === 'connecting';
  if (!wasConnecting && identity !== undefined && identity !== exchange.identity) {
    // The session, its owner for topic authorization and its will belong to the identity the
    // connection was accepted as. A re-authentication proves that identity again; it cannot
    // switch the connection to another user (who would inherit grants decided for the first).
    broker.log('info', 'reauthentication-identity-changed', { connectionId: connection.id, clientId: connection.clientId, method: exchange.method, was: exchange.identity ?? null, now: identity });
    return failAuthentication(broker, connection, exchange, ReasonCode.NotAuthorized, nowMs);
  }
  exchange.stage = 'authenticated';
  exchange.state = null;
  exchange.rounds = 0;
  if (identity !== undefined) exchange.identity = identity;
  broker.log('info', wasConnecting ? 'authenticated' : 'reauthenticated', { connectionId: connection.id, method: exchange.method, identity: exchange.identity ?? null });
  if (!wasConnecting) {
    // Section 4.12.1: the re-authentication ends with AUTH 0x00, naming the method [MQTT-4.12.0-5].
    broker.sendPacket(connection, authPacket(ReasonCode.Success, exchange.method, data));
    return;
  }
  const connect = exchange.connect;
  assert(connect !== null, 'the first exchange keeps its CONNECT');
  exchange.connect = null;
  acceptConnect(broker, connection, connect, nowMs, { method: exchange.method, data });
  if (!viaConnect && connection.phase === 'connected') scheduleKeepAlive(broker, connection, nowMs);
}

function failAuthentication(broker: Broker, connection: Connection, exchange: AuthenticationExchange, reasonCode: number, nowMs: number): void {
  // An authenticator's refusal must be a refusal the client can read; anything else is our bug.
  assert(reasonCode >= 0x80, `authentication failure reason 0x${reasonCode.toString(16)} is not a failure`);
  assert(connackReasonCodes.has(reasonCode), `authentication failure reason 0x${reasonCode.toString(16)} is not a CONNACK reason`);
  broker.log('info', 'authentication-failed', { connectionId: connection.id, method: exchange.method, stage: exchange.stage, reasonCode });
  if (exchange.stage === 'connecting') {
    // [MQTT-4.12.0-4] Refused at any point: CONNACK 0x80 or above, then close.
    return refuse(broker, connection, reasonCode, nowMs, 'authentication failed');
  }
  // [MQTT-4.12.1-2] A failed re-authentication: DISCONNECT, then close; the will follows the
  // rules of any connection the server ends.
  const disconnectReason = disconnectReasonCodes.has(reasonCode) ? reasonCode : ReasonCode.NotAuthorized;
  broker.sendPacket(connection, { type: PacketType.Disconnect, reasonCode: disconnectReason }, 0, true);
  broker.closeConnection(connection, nowMs, 're-authentication failed', 'publish', true);
}

function authPacket(reasonCode: number, method: string, data: Uint8Array | undefined): AuthPacket {
  const properties: Properties = { authenticationMethod: method };
  if (data !== undefined) properties.authenticationData = data;
  return { type: PacketType.Auth, reasonCode, properties };
}
