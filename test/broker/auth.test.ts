/**
 * Proves the MQTT 5.0 enhanced authentication state machine (src/broker/handle-auth.ts): a
 * multi-step exchange that ends in CONNACK carrying the method and final data, refusals at any
 * step, unsupported methods, every packet that is out of place during or outside an exchange,
 * re-authentication that succeeds (AUTH 0x00) or fails (DISCONNECT), the connect timeout running
 * through the exchange and the bound on AUTH rounds.
 *
 * A scripted fake EnhancedAuthenticator stands in for a real method: "TOY" wants "hello", then
 * "answer-1" to "challenge-1", then "answer-2" to "challenge-2", and welcomes the client; "ONCE"
 * decides on the CONNECT's data alone. The broker is driven through the Harness with encoded
 * packets and the replies are decoded as a client would.
 */
import { describe, expect, it } from 'vitest';
import type { AuthenticationRequest, AuthenticationStep, EnhancedAuthenticator } from '../../src/broker/authenticator.js';
import { Broker } from '../../src/broker/broker.js';
import { type AuthPacket, type ConnectPacket, type Packet, PacketType, type Properties } from '../../src/codec/packets.js';
import type { BrokerConfig } from '../../src/config.js';
import { decodeText, Harness, type TestClient, text, will } from './harness.js';

type ToyState = { step: 1 | 2; user: string | undefined };

class ToyAuthenticator implements EnhancedAuthenticator {
  readonly methods = ['TOY', 'ONCE', 'FOREVER'];
  readonly requests: AuthenticationRequest[] = [];
  /** When set, the final step fails with this reason instead of succeeding. */
  finalFailure: number | null = null;
  /** When set, ONCE names this identity on a re-authentication instead of its usual one. */
  reauthenticationIdentity: string | null = null;

  start(method: string, data: Uint8Array | undefined, request: AuthenticationRequest): AuthenticationStep {
    this.requests.push(request);
    const said = data === undefined ? '' : decodeText(data);
    const identity = request.reauthentication === true ? (this.reauthenticationIdentity ?? 'once-user') : 'once-user';
    if (method === 'ONCE') return said === 'ok' ? { kind: 'success', data: text('fine'), identity } : { kind: 'failure', reasonCode: 0x87 };
    if (method === 'FOREVER') return { kind: 'continue', data: text('again'), state: 'forever' };
    if (said !== 'hello') return { kind: 'failure', reasonCode: 0x87 };
    return { kind: 'continue', data: text('challenge-1'), state: { step: 1, user: request.username } satisfies ToyState };
  }

  continue(state: unknown, data: Uint8Array | undefined): AuthenticationStep {
    if (state === 'forever') return { kind: 'continue', data: text('again'), state };
    const toy = state as ToyState;
    const said = data === undefined ? '' : decodeText(data);
    if (said !== `answer-${toy.step}`) return { kind: 'failure', reasonCode: 0x86 };
    if (toy.step === 1) return { kind: 'continue', data: text('challenge-2'), state: { step: 2, user: toy.user } satisfies ToyState };
    if (this.finalFailure !== null) return { kind: 'failure', reasonCode: this.finalFailure };
    return { kind: 'success', data: text('welcome') };
  }
}

function setup(overrides: Partial<BrokerConfig> = {}): { harness: Harness; authenticator: ToyAuthenticator } {
  const harness = new Harness(overrides);
  const authenticator = new ToyAuthenticator();
  harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, enhancedAuthenticator: authenticator });
  harness.collect();
  return { harness, authenticator };
}

function connectPacket(clientId: string, method: string, data?: string, options: Partial<ConnectPacket> = {}): ConnectPacket {
  const properties: Properties = { authenticationMethod: method };
  if (data !== undefined) properties.authenticationData = text(data);
  return { type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: true, keepAliveSeconds: 0, clientId, properties, ...options };
}

function auth(reasonCode: number, method: string | undefined, data?: string): AuthPacket {
  const properties: Properties = {};
  if (method !== undefined) properties.authenticationMethod = method;
  if (data !== undefined) properties.authenticationData = text(data);
  return { type: PacketType.Auth, reasonCode, properties };
}

/** The one packet the client got, checked to be of `type`. */
function only<T extends Packet['type']>(client: TestClient, type: T): Extract<Packet, { type: T }> {
  return client.takeOne(type);
}

function dataOf(packet: { properties?: Properties }): string | undefined {
  const data = packet.properties?.authenticationData;
  return data === undefined ? undefined : decodeText(data);
}

/** Runs the whole TOY exchange on a new connection; returns the client and the CONNACK. */
function connectWithToy(harness: Harness, clientId: string, options: Partial<ConnectPacket> = {}): TestClient {
  const client = harness.open(5);
  client.send(connectPacket(clientId, 'TOY', 'hello', options));
  expect(dataOf(only(client, PacketType.Auth))).toBe('challenge-1');
  client.send(auth(0x18, 'TOY', 'answer-1'));
  expect(dataOf(only(client, PacketType.Auth))).toBe('challenge-2');
  client.send(auth(0x18, 'TOY', 'answer-2'));
  const connack = only(client, PacketType.Connack);
  expect(connack.reasonCode).toBe(0);
  return client;
}

describe('enhanced authentication: the exchange before CONNACK', () => {
  it('runs a multi-step exchange: AUTH 0x18 with the method each way, then CONNACK 0x00 with method and final data', () => {
    const { harness, authenticator } = setup();
    const client = harness.open(5);
    client.send(connectPacket('toy-client', 'TOY', 'hello', { username: 'alice' }));
    const first = only(client, PacketType.Auth);
    expect(first.reasonCode).toBe(0x18);
    expect(first.properties?.authenticationMethod).toBe('TOY'); // [MQTT-4.12.0-5]
    expect(harness.broker.online.has('toy-client')).toBe(false);
    client.send(auth(0x18, 'TOY', 'answer-1'));
    const second = only(client, PacketType.Auth);
    expect([second.reasonCode, dataOf(second)]).toEqual([0x18, 'challenge-2']);
    client.send(auth(0x18, 'TOY', 'answer-2'));
    const connack = only(client, PacketType.Connack);
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.authenticationMethod).toBe('TOY');
    expect(dataOf(connack)).toBe('welcome');
    expect(harness.broker.online.has('toy-client')).toBe(true);
    expect(authenticator.requests[0]!.username).toBe('alice');
    // The session works like any other afterwards.
    client.send({ type: PacketType.Pingreq });
    expect(only(client, PacketType.Pingresp).type).toBe(PacketType.Pingresp);
  });

  it('accepts at once when the first step succeeds: no AUTH, CONNACK with the data', () => {
    const { harness } = setup();
    const client = harness.open(5);
    client.send(connectPacket('once', 'ONCE', 'ok'));
    const connack = only(client, PacketType.Connack);
    expect([connack.reasonCode, connack.properties?.authenticationMethod, dataOf(connack)]).toEqual([0, 'ONCE', 'fine']);
  });

  it("refuses with the method's reason at the first step (0x87) and closes", () => {
    const { harness } = setup();
    const client = harness.open(5);
    client.send(connectPacket('nope', 'ONCE', 'wrong'));
    expect(only(client, PacketType.Connack).reasonCode).toBe(0x87);
    expect(client.closed).toBe(true);
    expect(harness.broker.stats.connectsRefused).toBe(1);
  });

  it("refuses with the method's reason in the middle of the exchange (0x86) and closes [MQTT-4.12.0-4]", () => {
    const { harness } = setup();
    const client = harness.open(5);
    client.send(connectPacket('mid', 'TOY', 'hello'));
    client.take();
    client.send(auth(0x18, 'TOY', 'wrong answer'));
    expect(only(client, PacketType.Connack).reasonCode).toBe(0x86);
    expect(client.closed).toBe(true);
    expect(harness.broker.online.has('mid')).toBe(false);
  });

  it('refuses a method the authenticator does not offer with 0x8C [MQTT-4.12.0-1]', () => {
    const { harness, authenticator } = setup();
    const client = harness.open(5);
    client.send(connectPacket('other', 'SCRAM-SHA-1', 'x'));
    expect(only(client, PacketType.Connack).reasonCode).toBe(0x8c);
    expect(client.closed).toBe(true);
    expect(authenticator.requests).toHaveLength(0);
  });

  it('does not consult the password authenticator for a CONNECT that names a method', () => {
    const harness = new Harness();
    let consulted = 0;
    const authenticator = new ToyAuthenticator();
    const passwords = {
      authenticate: () => {
        consulted++;
        return { ok: false as const, reasonCode: 0x86 };
      },
    };
    harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authenticator: passwords, enhancedAuthenticator: authenticator });
    const client = harness.open(5);
    client.send(connectPacket('once', 'ONCE', 'ok'));
    expect(only(client, PacketType.Connack).reasonCode).toBe(0);
    expect(consulted).toBe(0);
    expect(harness.open(5).connect('plain').reasonCode).toBe(0x86);
    expect(consulted).toBe(1);
  });

  it('the connect timeout keeps running during the exchange', () => {
    const { harness } = setup({ connectTimeoutMs: 5_000 });
    const client = harness.open(5);
    harness.advance(3_000);
    client.send(connectPacket('slow', 'TOY', 'hello'));
    client.take();
    harness.advance(1_999);
    expect(client.closed).toBe(false);
    harness.advance(1);
    expect(client.closed).toBe(true);
    expect(client.take()).toEqual([]);
    expect(harness.broker.stats.connectTimeouts).toBe(1);
  });

  it('fails an exchange that takes more than authenticationRoundsMax AUTH packets (0x87)', () => {
    const { harness } = setup({ authenticationRoundsMax: 3 });
    const client = harness.open(5);
    client.send(connectPacket('loop', 'FOREVER'));
    for (let round = 1; round <= 3; round++) {
      expect(only(client, PacketType.Auth).reasonCode).toBe(0x18);
      client.send(auth(0x18, 'FOREVER', `round ${round}`));
    }
    expect(only(client, PacketType.Auth).reasonCode).toBe(0x18);
    expect(client.closed).toBe(false);
    client.send(auth(0x18, 'FOREVER', 'round 4'));
    expect(only(client, PacketType.Connack).reasonCode).toBe(0x87);
    expect(client.closed).toBe(true);
  });

  it('schedules the keepalive of a connection accepted by an AUTH', () => {
    const { harness } = setup();
    const client = connectWithToy(harness, 'kept', { keepAliveSeconds: 10 });
    harness.advance(14_999);
    expect(client.closed).toBe(false);
    harness.advance(1);
    expect(only(client, PacketType.Disconnect).reasonCode).toBe(0x8d);
    expect(client.closed).toBe(true);
  });
});

describe('enhanced authentication: packets out of place', () => {
  const duringExchange: [string, Packet][] = [
    ['PINGREQ', { type: PacketType.Pingreq }],
    ['PUBLISH', { type: PacketType.Publish, dup: false, qos: 0, retain: false, topic: 't', payload: text('x') }],
    ['SUBSCRIBE', { type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 't', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }] }],
    ['a second CONNECT', connectPacket('again', 'TOY', 'hello')],
    ['AUTH with another method [MQTT-4.12.0-5]', auth(0x18, 'ONCE', 'answer-1')],
    ['AUTH without a method', auth(0x18, undefined, 'answer-1')],
    ['AUTH 0x19 before CONNACK', auth(0x19, 'TOY', 'answer-1')],
    ['AUTH 0x00 from the client [MQTT-4.12.0-3]', auth(0x00, 'TOY', 'answer-1')],
  ];
  for (const [name, packet] of duringExchange) {
    it(`during the exchange, ${name} is a protocol error: CONNACK 0x82 and close`, () => {
      const { harness } = setup();
      const client = harness.open(5);
      client.send(connectPacket('strict', 'TOY', 'hello'));
      client.take();
      client.send(packet);
      expect(only(client, PacketType.Connack).reasonCode).toBe(0x82);
      expect(client.closed).toBe(true);
      expect(harness.broker.online.size).toBe(0);
    });
  }

  it('during the exchange, DISCONNECT ends the attempt quietly', () => {
    const { harness } = setup();
    const client = harness.open(5);
    client.send(connectPacket('quitter', 'TOY', 'hello', { will: will('w/quitter', 'gone') }));
    client.take();
    client.disconnect(0x00);
    expect(client.closed).toBe(true);
    expect(client.take()).toEqual([]);
    expect(harness.broker.state.sessions.has('quitter')).toBe(false);
    expect(harness.logEvents()).toContain('authentication-abandoned');
  });

  it('AUTH from a client that named no method is a protocol error [MQTT-4.12.0-7]', () => {
    const { harness } = setup();
    const client = harness.connect('plain', 5);
    client.send(auth(0x19, 'TOY', 'hello'));
    expect(only(client, PacketType.Disconnect).reasonCode).toBe(0x82);
    expect(client.closed).toBe(true);
  });

  it('AUTH before any CONNECT closes the connection', () => {
    const { harness } = setup();
    const client = harness.open(5);
    client.send(auth(0x19, 'TOY', 'hello'));
    expect(client.closed).toBe(true);
    expect(harness.broker.stats.protocolViolations).toBe(1);
  });

  it('after CONNACK, AUTH 0x18 outside a re-authentication and AUTH 0x19 with another method are protocol errors', () => {
    const { harness } = setup();
    const continued = connectWithToy(harness, 'a');
    continued.send(auth(0x18, 'TOY', 'answer-1'));
    expect(only(continued, PacketType.Disconnect).reasonCode).toBe(0x82);
    expect(continued.closed).toBe(true);
    const switched = connectWithToy(harness, 'b');
    switched.send(auth(0x19, 'ONCE', 'ok'));
    expect(only(switched, PacketType.Disconnect).reasonCode).toBe(0x82);
  });
});

describe('enhanced authentication: re-authentication [MQTT-4.12.1-1]', () => {
  it('AUTH 0x19 runs a new exchange ending in AUTH 0x00, while other packets keep flowing', () => {
    const { harness, authenticator } = setup();
    const client = connectWithToy(harness, 'again', { username: 'alice' });
    client.send(auth(0x19, 'TOY', 'hello'));
    const challenge = only(client, PacketType.Auth);
    expect([challenge.reasonCode, challenge.properties?.authenticationMethod, dataOf(challenge)]).toEqual([0x18, 'TOY', 'challenge-1']);
    const request = authenticator.requests[1]!;
    expect(request.reauthentication).toBe(true);
    expect(request.username).toBe('alice');
    expect(request.password).toBeUndefined();
    // Section 4.12.1: the session goes on under the previous authentication meanwhile.
    const acks = client.publish('t', 'during', 1);
    expect(acks.map((packet) => packet.type)).toEqual([PacketType.Puback]);
    client.send(auth(0x18, 'TOY', 'answer-1'));
    expect(dataOf(only(client, PacketType.Auth))).toBe('challenge-2');
    client.send(auth(0x18, 'TOY', 'answer-2'));
    const done = only(client, PacketType.Auth);
    expect([done.reasonCode, done.properties?.authenticationMethod, dataOf(done)]).toEqual([0x00, 'TOY', 'welcome']);
    expect(client.closed).toBe(false);
    // And a further re-authentication may follow.
    client.send(auth(0x19, 'TOY', 'hello'));
    expect(only(client, PacketType.Auth).reasonCode).toBe(0x18);
  });

  it('passes the identity established by the first exchange to a re-authentication', () => {
    const { harness, authenticator } = setup();
    const client = harness.open(5);
    client.send(connectPacket('ident', 'ONCE', 'ok'));
    client.take();
    client.send(auth(0x19, 'ONCE', 'ok'));
    expect(only(client, PacketType.Auth).reasonCode).toBe(0x00);
    expect(authenticator.requests[1]!.username).toBe('once-user');
  });

  it('a re-authentication that succeeds as another identity ends in DISCONNECT 0x87: the connection keeps its owner', () => {
    const { harness, authenticator } = setup();
    const watcher = harness.connect('watcher', 5);
    watcher.subscribe(['w/#']);
    const client = harness.open(5);
    const properties: Properties = { authenticationMethod: 'ONCE', authenticationData: text('ok'), sessionExpiryInterval: 300 };
    client.send(connectPacket('switcher', 'ONCE', 'ok', { will: will('w/switcher', 'gone'), properties }));
    expect(only(client, PacketType.Connack).reasonCode).toBe(0);
    authenticator.reauthenticationIdentity = 'mallory';
    client.send(auth(0x19, 'ONCE', 'ok'));
    expect(only(client, PacketType.Disconnect).reasonCode).toBe(0x87);
    expect(client.closed).toBe(true);
    expect(harness.broker.online.has('switcher')).toBe(false);
    // The session stays its first owner's; the will is published as for any refused re-authentication.
    expect(harness.broker.state.sessions.get('switcher')?.username ?? null).toBe('once-user');
    expect(watcher.publishes().map((message) => decodeText(message.payload))).toEqual(['gone']);
  });

  it('a failed re-authentication ends in DISCONNECT (0x86 becomes 0x87) and publishes the will [MQTT-4.12.1-2]', () => {
    const { harness, authenticator } = setup();
    const watcher = harness.connect('watcher', 5);
    watcher.subscribe(['w/#']);
    const client = connectWithToy(harness, 'doomed', { will: will('w/doomed', 'bye') });
    authenticator.finalFailure = 0x86;
    client.send(auth(0x19, 'TOY', 'hello'));
    client.send(auth(0x18, 'TOY', 'answer-1'));
    client.take();
    client.send(auth(0x18, 'TOY', 'answer-2'));
    expect(only(client, PacketType.Disconnect).reasonCode).toBe(0x87);
    expect(client.closed).toBe(true);
    expect(harness.broker.online.has('doomed')).toBe(false);
    expect(watcher.publishes().map((message) => decodeText(message.payload))).toEqual(['bye']);
  });

  for (const [refusal, sent] of [
    [0x8c, 0x87],
    [0x89, 0x89],
    [0x87, 0x87],
  ] as const) {
    it(`a re-authentication refused with 0x${refusal.toString(16)} ends in DISCONNECT 0x${sent.toString(16)}`, () => {
      const { harness, authenticator } = setup();
      const client = connectWithToy(harness, 'method');
      authenticator.finalFailure = refusal;
      client.send(auth(0x19, 'TOY', 'hello'));
      client.send(auth(0x18, 'TOY', 'answer-1'));
      client.take();
      client.send(auth(0x18, 'TOY', 'answer-2'));
      expect(only(client, PacketType.Disconnect).reasonCode).toBe(sent);
    });
  }

  it('AUTH 0x19 during a re-authentication is a protocol error', () => {
    const { harness } = setup();
    const client = connectWithToy(harness, 'twice');
    client.send(auth(0x19, 'TOY', 'hello'));
    client.take();
    client.send(auth(0x19, 'TOY', 'hello'));
    expect(only(client, PacketType.Disconnect).reasonCode).toBe(0x82);
  });
});
