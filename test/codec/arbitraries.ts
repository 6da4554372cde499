/**
 * fast-check generators for valid MQTT packets in canonical form (see src/codec/decoder.ts), per
 * protocol version. They are written from the specs, independently of the codec's own tables,
 * so a wrong entry in the codec's property table or reason-code sets makes the round trip fail.
 */
import fc from 'fast-check';
import type { Packet, Properties, ProtocolVersion, PublishPacket, Qos, Subscription, UserProperty } from '../../src/codec/packets.js';

/** Any Unicode string without U+0000 (which MQTT forbids), up to `maxLength` code points. */
export const mqttString = (maxLength = 12): fc.Arbitrary<string> =>
  fc.oneof({ weight: 3, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength }) }, { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength }) }).filter((text) => !text.includes('\u0000'));

const topicName = (allowEmpty: boolean): fc.Arbitrary<string> => mqttString(20).filter((text) => !text.includes('+') && !text.includes('#') && (allowEmpty || text.length > 0));

const bytes = (maxLength = 16): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength });
const uint16 = fc.integer({ min: 0, max: 0xffff });
const uint32 = fc.integer({ min: 0, max: 0xffffffff });
const flag = fc.constantFrom(0, 1);
const qos = fc.constantFrom<Qos>(0, 1, 2);
const packetId = fc.integer({ min: 1, max: 0xffff });
const subscriptionIdentifier = fc.integer({ min: 1, max: 268_435_455 });
const userProperties: fc.Arbitrary<UserProperty[]> = fc.array(
  fc.tuple(mqttString(6), mqttString(6)).map(([name, value]): UserProperty => [name, value]),
  { minLength: 1, maxLength: 3 },
);

/** Value generators for every property, by name. */
const propertyValues = {
  payloadFormatIndicator: flag,
  messageExpiryInterval: uint32,
  contentType: mqttString(),
  responseTopic: topicName(false),
  correlationData: bytes(),
  subscriptionIdentifiers: fc.array(subscriptionIdentifier, { minLength: 1, maxLength: 3 }),
  sessionExpiryInterval: uint32,
  assignedClientIdentifier: mqttString(),
  serverKeepAlive: uint16,
  authenticationMethod: mqttString(),
  authenticationData: bytes(),
  requestProblemInformation: flag,
  willDelayInterval: uint32,
  requestResponseInformation: flag,
  responseInformation: mqttString(),
  serverReference: mqttString(),
  reasonString: mqttString(),
  receiveMaximum: fc.integer({ min: 1, max: 0xffff }),
  topicAliasMaximum: uint16,
  topicAlias: fc.integer({ min: 1, max: 0xffff }),
  maximumQos: flag,
  retainAvailable: flag,
  userProperties,
  maximumPacketSize: fc.integer({ min: 1, max: 0xffffffff }),
  wildcardSubscriptionAvailable: flag,
  subscriptionIdentifiersAvailable: flag,
  sharedSubscriptionAvailable: flag,
} satisfies { [K in keyof Properties]-?: fc.Arbitrary<unknown> };

type PropertyName = keyof typeof propertyValues;

/** Which properties each packet may carry, from the MQTT 5.0 property table (section 2.2.2.2). */
export const propertiesByPacket = {
  connect: [
    'sessionExpiryInterval',
    'receiveMaximum',
    'maximumPacketSize',
    'topicAliasMaximum',
    'requestResponseInformation',
    'requestProblemInformation',
    'userProperties',
    'authenticationMethod',
    'authenticationData',
  ],
  will: ['willDelayInterval', 'payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'userProperties'],
  connack: [
    'sessionExpiryInterval',
    'receiveMaximum',
    'maximumQos',
    'retainAvailable',
    'maximumPacketSize',
    'assignedClientIdentifier',
    'topicAliasMaximum',
    'reasonString',
    'userProperties',
    'wildcardSubscriptionAvailable',
    'subscriptionIdentifiersAvailable',
    'sharedSubscriptionAvailable',
    'serverKeepAlive',
    'responseInformation',
    'serverReference',
    'authenticationMethod',
    'authenticationData',
  ],
  publish: ['payloadFormatIndicator', 'messageExpiryInterval', 'topicAlias', 'responseTopic', 'correlationData', 'userProperties', 'subscriptionIdentifiers', 'contentType'],
  ack: ['reasonString', 'userProperties'],
  subscribe: ['subscriptionIdentifiers', 'userProperties'],
  unsubscribe: ['userProperties'],
  disconnect: ['sessionExpiryInterval', 'reasonString', 'userProperties', 'serverReference'],
  auth: ['authenticationMethod', 'authenticationData', 'reasonString', 'userProperties'],
} satisfies Record<string, PropertyName[]>;

/** Properties for a packet kind, or undefined (the canonical form of "none"). */
export function propertiesArbitrary(names: readonly PropertyName[]): fc.Arbitrary<Properties | undefined> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  // Several Subscription Identifiers only in PUBLISH (the one kind that also carries Topic Alias).
  const manySubscriptionIdentifiers = names.includes('topicAlias');
  for (const name of names) {
    model[name] = name === 'subscriptionIdentifiers' && !manySubscriptionIdentifiers ? subscriptionIdentifier.map((id) => [id]) : propertyValues[name];
  }
  return fc.record(model, { requiredKeys: [] }).map((properties) => (Object.keys(properties).length === 0 ? undefined : (properties as Properties)));
}

/** Adds `key: value` to `target` only when value is defined (canonical form: absent, not undefined). */
function withOptional<T extends object, K extends string, V>(target: T, key: K, value: V | undefined): T {
  if (value !== undefined) (target as Record<string, unknown>)[key] = value;
  return target;
}

/** Reason codes each packet may carry, from the MQTT 5.0 tables (sections 3.2.2.2 and following). */
export const reasonCodes = {
  connack: [0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f],
  pubackPubrec: [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
  pubrelPubcomp: [0x00, 0x92],
  suback: [0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
  unsuback: [0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91],
  disconnect: [0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2],
  auth: [0x00, 0x18, 0x19],
};

function v5Properties(version: ProtocolVersion, names: readonly PropertyName[]): fc.Arbitrary<Properties | undefined> {
  return version === 5 ? propertiesArbitrary(names) : fc.constant(undefined);
}

function connectArbitrary(version: ProtocolVersion): fc.Arbitrary<Packet> {
  const will = fc.record({ topic: topicName(false), payload: bytes(), qos, retain: fc.boolean(), properties: v5Properties(version, propertiesByPacket.will) });
  return (
    fc
      .record({
        cleanStart: fc.boolean(),
        keepAliveSeconds: uint16,
        clientId: mqttString(23),
        will: fc.option(will, { nil: undefined }),
        username: fc.option(mqttString(), { nil: undefined }),
        password: fc.option(bytes(), { nil: undefined }),
        properties: v5Properties(version, propertiesByPacket.connect),
      })
      // 3.1.1 [MQTT-3.1.2-22]: no password without a user name.
      .filter((fields) => version === 5 || fields.password === undefined || fields.username !== undefined)
      .map((fields) => {
        const packet = {
          type: 1,
          protocolName: version === 3 ? 'MQIsdp' : 'MQTT',
          protocolVersion: version,
          cleanStart: fields.cleanStart,
          keepAliveSeconds: fields.keepAliveSeconds,
          clientId: fields.clientId,
        };
        if (fields.will !== undefined) {
          const { properties, ...rest } = fields.will;
          withOptional(packet, 'will', withOptional({ ...rest }, 'properties', properties));
        }
        withOptional(packet, 'username', fields.username);
        withOptional(packet, 'password', fields.password);
        return withOptional(packet, 'properties', fields.properties) as Packet;
      })
  );
}

function connackArbitrary(version: ProtocolVersion): fc.Arbitrary<Packet> {
  const code = version === 5 ? fc.constantFrom(...reasonCodes.connack) : fc.integer({ min: 0, max: 5 });
  return fc
    .record({ sessionPresent: fc.boolean(), reasonCode: code, properties: v5Properties(version, propertiesByPacket.connack) })
    .map(({ sessionPresent, reasonCode, properties }) => withOptional({ type: 2, sessionPresent: sessionPresent && reasonCode === 0, reasonCode }, 'properties', properties) as Packet);
}

export function publishArbitrary(version: ProtocolVersion): fc.Arbitrary<PublishPacket> {
  return fc
    .record({
      qos,
      dup: fc.boolean(),
      retain: fc.boolean(),
      topic: topicName(version === 5),
      packetId,
      payload: bytes(64),
      properties: v5Properties(version, propertiesByPacket.publish),
    })
    .map((fields) => {
      let properties = fields.properties;
      // 5.0 allows an empty topic only with a Topic Alias (section 3.3.2.3.4).
      if (fields.topic === '' && properties?.topicAlias === undefined) properties = { ...properties, topicAlias: 1 };
      const packet = { type: 3, dup: fields.qos > 0 && fields.dup, qos: fields.qos, retain: fields.retain, topic: fields.topic };
      withOptional(packet, 'packetId', fields.qos > 0 ? fields.packetId : undefined);
      return withOptional(withOptional(packet, 'payload', fields.payload), 'properties', properties) as PublishPacket;
    });
}

function ackArbitrary(version: ProtocolVersion, type: 4 | 5 | 6 | 7): fc.Arbitrary<Packet> {
  const codes = type === 4 || type === 5 ? reasonCodes.pubackPubrec : reasonCodes.pubrelPubcomp;
  return fc
    .record({ packetId, reasonCode: version === 5 ? fc.constantFrom(...codes) : fc.constant(0), properties: v5Properties(version, propertiesByPacket.ack) })
    .map(({ packetId: id, reasonCode, properties }) => withOptional({ type, packetId: id, reasonCode }, 'properties', properties) as Packet);
}

function subscriptionArbitrary(version: ProtocolVersion): fc.Arbitrary<Subscription> {
  if (version < 5) {
    return fc.record({ topicFilter: mqttString(16), qos }).map(({ topicFilter, qos: q }) => ({ topicFilter, qos: q, noLocal: false, retainAsPublished: false, retainHandling: 0 }));
  }
  return (
    fc
      .record({ topicFilter: mqttString(16), qos, noLocal: fc.boolean(), retainAsPublished: fc.boolean(), retainHandling: fc.constantFrom<0 | 1 | 2>(0, 1, 2) })
      // [MQTT-3.8.3-4] No Local is not allowed on a shared subscription.
      .map((subscription) => (subscription.topicFilter.startsWith('$share/') ? { ...subscription, noLocal: false } : subscription))
  );
}

function subscribeFamilyArbitrary(version: ProtocolVersion): fc.Arbitrary<Packet>[] {
  const filters = fc.array(mqttString(16), { minLength: 1, maxLength: 4 });
  return [
    fc
      .record({ packetId, subscriptions: fc.array(subscriptionArbitrary(version), { minLength: 1, maxLength: 4 }), properties: v5Properties(version, propertiesByPacket.subscribe) })
      .map((fields) => withOptional({ type: 8, packetId: fields.packetId, subscriptions: fields.subscriptions }, 'properties', fields.properties) as Packet),
    fc
      .record({
        packetId,
        reasonCodes: fc.array(fc.constantFrom(...(version === 5 ? reasonCodes.suback : [0, 1, 2, 0x80])), { minLength: 1, maxLength: 4 }),
        properties: v5Properties(version, propertiesByPacket.ack),
      })
      .map((fields) => withOptional({ type: 9, packetId: fields.packetId, reasonCodes: fields.reasonCodes }, 'properties', fields.properties) as Packet),
    fc
      .record({ packetId, topicFilters: filters, properties: v5Properties(version, propertiesByPacket.unsubscribe) })
      .map((fields) => withOptional({ type: 10, packetId: fields.packetId, topicFilters: fields.topicFilters }, 'properties', fields.properties) as Packet),
    fc
      .record({
        packetId,
        reasonCodes: version === 5 ? fc.array(fc.constantFrom(...reasonCodes.unsuback), { minLength: 1, maxLength: 4 }) : fc.constant([]),
        properties: v5Properties(version, propertiesByPacket.ack),
      })
      .map((fields) => withOptional({ type: 11, packetId: fields.packetId, reasonCodes: fields.reasonCodes }, 'properties', fields.properties) as Packet),
  ];
}

function reasonAndPropertiesArbitrary(version: ProtocolVersion, type: 14 | 15): fc.Arbitrary<Packet> {
  const codes = type === 14 ? reasonCodes.disconnect : reasonCodes.auth;
  return fc
    .record({ reasonCode: version === 5 ? fc.constantFrom(...codes) : fc.constant(0), properties: v5Properties(version, type === 14 ? propertiesByPacket.disconnect : propertiesByPacket.auth) })
    .map(({ reasonCode, properties }) => withOptional({ type, reasonCode }, 'properties', properties) as Packet);
}

/** Every packet type the version has, with CONNECT only when `includeConnect`. */
export function packetArbitraries(version: ProtocolVersion, includeConnect = true): fc.Arbitrary<Packet>[] {
  const all: fc.Arbitrary<Packet>[] = [
    connackArbitrary(version),
    publishArbitrary(version),
    ackArbitrary(version, 4),
    ackArbitrary(version, 5),
    ackArbitrary(version, 6),
    ackArbitrary(version, 7),
    ...subscribeFamilyArbitrary(version),
    fc.constant({ type: 12 } as Packet),
    fc.constant({ type: 13 } as Packet),
    reasonAndPropertiesArbitrary(version, 14),
  ];
  if (version === 5) all.push(reasonAndPropertiesArbitrary(version, 15));
  if (includeConnect) all.unshift(connectArbitrary(version));
  return all;
}

export function packetArbitrary(version: ProtocolVersion, includeConnect = true): fc.Arbitrary<Packet> {
  return fc.oneof(...packetArbitraries(version, includeConnect));
}

export function connectPacketArbitrary(version: ProtocolVersion): fc.Arbitrary<Packet> {
  return connectArbitrary(version);
}

/** Cuts `bytes` at the given (unsorted, possibly repeated) points. */
export function split(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const cuts = [...new Set(points.map((point) => point % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > start) chunks.push(bytes.slice(start, cut));
    start = Math.max(start, cut);
  }
  return chunks;
}

/**
 * A change to a byte stream, as a hostile peer or a broken network would make it: a byte
 * overwritten or one bit flipped, the stream cut short, a range deleted, bytes spliced in.
 */
export type Mutation =
  | { kind: 'overwrite'; at: number; value: number }
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'insert'; at: number; bytes: number[] };

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 8 }) }) },
);

/** Applies the mutations in order; positions wrap around the current length. */
export function mutate(bytes: Uint8Array | readonly number[], mutations: readonly Mutation[]): Uint8Array {
  const result = [...bytes];
  for (const change of mutations) {
    const at = change.at % (result.length + 1);
    if (change.kind === 'overwrite' && at < result.length) result[at] = change.value;
    if (change.kind === 'flip' && at < result.length) result[at] = result[at]! ^ (1 << change.bit);
    if (change.kind === 'truncate') result.length = at;
    if (change.kind === 'delete') result.splice(at, change.length);
    if (change.kind === 'insert') result.splice(at, 0, ...change.bytes);
  }
  return new Uint8Array(result);
}
