/**
 * fast-check generators for hostile clients: CONNECT (3.1, 3.1.1, 5.0) and PUBLISH packets that
 * are mostly well-formed but full of edge values, the packets around them (PUBREL, PINGREQ,
 * DISCONNECT, a second CONNECT, a PUBLISH before CONNECT) and scripts of such steps for one
 * connection, each ending with a DISCONNECT, a dropped socket or a half close.
 *
 * A case is a semantic value (what each field is) that `stepBytes` writes with the raw packet
 * builder, which checks nothing. The oracle (test/broker/hostile-oracle.ts) judges the same value
 * field by field, from the specs, without asking the codec. Strings are generated as bytes, so
 * that a field can be ill-formed UTF-8 or hold U+0000.
 *
 * Two timings: `simulated` (the core under a test harness, where time is data) uses any keepalive,
 * will delay and session expiry; `real` (a broker over TCP) keeps them at 0 or at least a day, so
 * that nothing fires during a later case and blames the wrong one.
 */
import fc from 'fast-check';
import { type Mutation, mqttString, mutate, propertiesByPacket } from './arbitraries.js';
import { type PropertyWireType, type RawProperty, rawConnect, rawDisconnect, rawPacket, rawPingreq, rawPublish, rawPubrel, utf8 } from './raw-packet.js';

/** The broker limits the generators aim at and the oracle judges by (small, so boundaries are cheap to reach). */
export interface FuzzLimits {
  topicBytesMax: number;
  topicLevelsMax: number;
  clientIdBytesMax: number;
  topicAliasMaximum: number;
  packetBytesMax: number;
  /** The broker's Receive Maximum: unreleased QoS 2 PUBLISHes past it cost the connection 0x93. */
  receiveMaximum: number;
}

/** BrokerConfig overrides for a broker under fuzz. */
export const fuzzLimits: FuzzLimits = { topicBytesMax: 64, topicLevelsMax: 8, clientIdBytesMax: 32, topicAliasMaximum: 4, packetBytesMax: 4096, receiveMaximum: 4 };

export type Timing = 'simulated' | 'real';
export type PropertyContext = 'connect' | 'will' | 'publish';

/** Every MQTT 5.0 property: identifier, name (as in `Properties`), wire type (section 2.2.2.2). */
export const propertyTable: readonly { id: number; name: string; wireType: PropertyWireType }[] = [
  { id: 0x01, name: 'payloadFormatIndicator', wireType: 'byte' },
  { id: 0x02, name: 'messageExpiryInterval', wireType: 'uint32' },
  { id: 0x03, name: 'contentType', wireType: 'string' },
  { id: 0x08, name: 'responseTopic', wireType: 'string' },
  { id: 0x09, name: 'correlationData', wireType: 'binary' },
  { id: 0x0b, name: 'subscriptionIdentifiers', wireType: 'variable' },
  { id: 0x11, name: 'sessionExpiryInterval', wireType: 'uint32' },
  { id: 0x12, name: 'assignedClientIdentifier', wireType: 'string' },
  { id: 0x13, name: 'serverKeepAlive', wireType: 'uint16' },
  { id: 0x15, name: 'authenticationMethod', wireType: 'string' },
  { id: 0x16, name: 'authenticationData', wireType: 'binary' },
  { id: 0x17, name: 'requestProblemInformation', wireType: 'byte' },
  { id: 0x18, name: 'willDelayInterval', wireType: 'uint32' },
  { id: 0x19, name: 'requestResponseInformation', wireType: 'byte' },
  { id: 0x1a, name: 'responseInformation', wireType: 'string' },
  { id: 0x1c, name: 'serverReference', wireType: 'string' },
  { id: 0x1f, name: 'reasonString', wireType: 'string' },
  { id: 0x21, name: 'receiveMaximum', wireType: 'uint16' },
  { id: 0x22, name: 'topicAliasMaximum', wireType: 'uint16' },
  { id: 0x23, name: 'topicAlias', wireType: 'uint16' },
  { id: 0x24, name: 'maximumQos', wireType: 'byte' },
  { id: 0x25, name: 'retainAvailable', wireType: 'byte' },
  { id: 0x26, name: 'userProperties', wireType: 'pair' },
  { id: 0x27, name: 'maximumPacketSize', wireType: 'uint32' },
  { id: 0x28, name: 'wildcardSubscriptionAvailable', wireType: 'byte' },
  { id: 0x29, name: 'subscriptionIdentifiersAvailable', wireType: 'byte' },
  { id: 0x2a, name: 'sharedSubscriptionAvailable', wireType: 'byte' },
];

/** The property names a context may carry (from the spec's table, shared with the valid-packet arbitraries). */
export function allowedPropertyNames(context: PropertyContext): readonly string[] {
  return propertiesByPacket[context];
}

// ---- strings ------------------------------------------------------------------------------------

/**
 * Hostility is how often a generator picks a value the broker must or may refuse: 0 never, then
 * the weight of the hostile choice against 40 for the well-formed one, per field.
 */
/** `normal` most of the time; `edges` with weight `hostility` (an integer) against 40. */
function sometimes<T>(normal: fc.Arbitrary<T>, edges: fc.Arbitrary<T>, hostility: number): fc.Arbitrary<T> {
  if (hostility === 0) return normal;
  return fc.oneof({ weight: 40, arbitrary: normal }, { weight: hostility, arbitrary: edges });
}

/** Half the hostility, but not nothing when there is some. */
const half = (hostility: number): number => Math.ceil(hostility / 2);

const empty = new Uint8Array(0);
const letters = (maxLength: number, minLength = 0): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'abcxyz019-_.'), minLength, maxLength });

/** Byte sequences that are not well-formed UTF-8: overlong NUL, lone continuation, encoded surrogate, truncated, 0xFF, past U+10FFFF. */
const illFormedUtf8 = fc.constantFrom([0xc0, 0x80], [0x80], [0x61, 0xed, 0xa0, 0x80], [0xe2, 0x82], [0xff], [0x61, 0xfe, 0x62], [0xf4, 0x90, 0x80, 0x80]);
/** Well-formed, but code points the spec says SHOULD NOT appear (controls, non-characters), and a BOM. */
const discouragedText = fc.constantFrom('a\u0001b', '\u007f', 'x\u0085', 'a/\uffff', '\ufdd0', '\ufeffa', 'tab\there');

/** Text for names, values and user properties: plain, or with `hostility` not UTF-8, with U+0000, or discouraged. */
export function textBytes(hostility: number): fc.Arbitrary<Uint8Array> {
  const plain = fc.oneof({ weight: 4, arbitrary: letters(12).map(utf8) }, { weight: 1, arbitrary: mqttString(8).map(utf8) });
  const hostile = fc.oneof(
    discouragedText.map(utf8),
    illFormedUtf8.map((bytes) => Uint8Array.from(bytes)),
    fc.constant(Uint8Array.from([0x61, 0x00, 0x62])),
  );
  return sometimes(plain, hostile, hostility);
}

/** Payloads: binary (mostly not UTF-8: Payload Format Indicator 1 meets it), text, empty; with `hostility` over the maximum packet size. */
export function payloadBytes(limits: FuzzLimits, hostility: number): fc.Arbitrary<Uint8Array> {
  const fitting = fc.oneof({ weight: 6, arbitrary: fc.uint8Array({ maxLength: 48 }) }, { weight: 4, arbitrary: mqttString(16).map(utf8) }, { weight: 1, arbitrary: fc.constant(empty) });
  // Past the broker's maximum packet size: 0x95 Packet Too Large.
  return sometimes(fitting, fc.constant(new Uint8Array(limits.packetBytesMax)), Math.ceil(hostility / 4));
}

// ---- topics -------------------------------------------------------------------------------------

const level = fc.oneof({ weight: 5, arbitrary: letters(6) }, { weight: 1, arbitrary: mqttString(3).filter((text) => !/[/+#]/.test(text) && !text.includes('\u0000')) });

/** Topic names the spec allows, within the limits (some with empty levels, some not ASCII). */
export function validTopic(limits: FuzzLimits): fc.Arbitrary<Uint8Array> {
  return fc
    .array(level, { minLength: 1, maxLength: Math.min(4, limits.topicLevelsMax) })
    .map((levels) => levels.join('/'))
    .map((topic) => (topic.length === 0 ? 'a' : topic))
    .map(utf8)
    .filter((bytes) => bytes.length <= limits.topicBytesMax);
}

/** Topic names just past the limits, and far past them. */
function boundaryTopic(limits: FuzzLimits): fc.Arbitrary<Uint8Array> {
  const lengths = [limits.topicBytesMax + 1, limits.topicBytesMax + 2, limits.topicBytesMax * 4];
  const levels = [limits.topicLevelsMax + 1, limits.topicLevelsMax * 3];
  return fc.oneof(
    fc.constantFrom(...lengths).map((length) => utf8('t'.repeat(length))),
    fc.constantFrom(...levels).map((count) => utf8(Array.from({ length: count }, () => 'l').join('/'))),
    fc.constantFrom(...levels).map((count) => utf8('/'.repeat(count - 1))),
  );
}

/**
 * Every kind of topic a client might send where a topic name belongs: valid ones (some `$`, some
 * exactly at a limit) and, with `hostility`, empty, wildcards, over a limit, U+0000, not UTF-8,
 * discouraged code points.
 */
export function hostileTopic(limits: FuzzLimits, hostility: number): fc.Arbitrary<Uint8Array> {
  const valid = fc.oneof(
    { weight: 12, arbitrary: validTopic(limits) },
    { weight: 1, arbitrary: fc.constantFrom('$SYS/x', '$', '$x/y', '/', 'a//b').map(utf8) },
    { weight: 1, arbitrary: fc.constantFrom(utf8('t'.repeat(limits.topicBytesMax)), utf8(Array.from({ length: limits.topicLevelsMax }, () => 'l').join('/'))) },
  );
  const hostile = fc.oneof(
    { weight: 2, arbitrary: fc.constant(empty) },
    { weight: 3, arbitrary: fc.constantFrom('#', '+', 'a/+', 'a/#', 'a+b', '#/a', '+/+', 'a/b#', 'sport/+/player', '$share/g/#').map(utf8) },
    { weight: 2, arbitrary: boundaryTopic(limits) },
    { weight: 1, arbitrary: fc.constantFrom([0x00], [0x61, 0x00, 0x62], [0x61, 0x2f, 0x00]).map((bytes) => Uint8Array.from(bytes)) },
    { weight: 1, arbitrary: illFormedUtf8.map((bytes) => Uint8Array.from(bytes)) },
    { weight: 1, arbitrary: discouragedText.map(utf8) },
  );
  return sometimes(valid, hostile, hostility);
}

// ---- properties ---------------------------------------------------------------------------------

const uint32Edges = fc.oneof(fc.constantFrom(0, 1, 0xffffffff), fc.nat());
/** Intervals in seconds: any in simulated time; 0 or at least a day over real sockets. */
function interval(timing: Timing): fc.Arbitrary<number> {
  if (timing === 'simulated') return fc.oneof(fc.constantFrom(0, 1, 2, 5, 60, 0xffffffff), fc.nat());
  return fc.oneof(fc.constant(0), fc.constantFrom(86_400, 0xffffffff), fc.integer({ min: 86_400, max: 0xffffffff }));
}

function propertyValue(name: string, wireType: PropertyWireType, timing: Timing, limits: FuzzLimits, hostility: number): fc.Arbitrary<RawProperty['value']> {
  switch (name) {
    case 'sessionExpiryInterval':
    case 'willDelayInterval':
      return interval(timing);
    case 'topicAlias':
      return sometimes(fc.integer({ min: 1, max: limits.topicAliasMaximum }), fc.constantFrom(0, limits.topicAliasMaximum + 1, 0xffff), hostility);
    case 'receiveMaximum':
      return sometimes(fc.constantFrom(1, 2, 0xffff), fc.constant(0), hostility);
    case 'maximumPacketSize':
      return sometimes(fc.constantFrom(1, 5, 64, 0xffff, 0xffffffff), fc.constant(0), hostility);
    case 'responseTopic':
      return hostileTopic(limits, hostility);
  }
  switch (wireType) {
    case 'byte':
      return sometimes(fc.constantFrom(0, 1), fc.constantFrom(2, 0xff), hostility);
    case 'uint16':
      return fc.oneof(fc.constantFrom(0, 1, 0xffff), fc.integer({ min: 0, max: 0xffff }));
    case 'uint32':
      return uint32Edges;
    case 'variable':
      return sometimes(fc.constantFrom(1, 127, 128, 16_383, 268_435_455), fc.constant(0), hostility);
    case 'string':
      return textBytes(hostility);
    case 'binary':
      return fc.uint8Array({ maxLength: 16 });
    case 'pair':
      return fc.tuple(textBytes(hostility), textBytes(hostility));
  }
}

function propertyOf(entry: (typeof propertyTable)[number], timing: Timing, limits: FuzzLimits, hostility: number): fc.Arbitrary<RawProperty> {
  return propertyValue(entry.name, entry.wireType, timing, limits, hostility).map((value) => ({ id: entry.id, wireType: entry.wireType, value }));
}

/** Unknown identifiers (each written as a one-byte value: the broker must not get that far). */
const unknownProperty: fc.Arbitrary<RawProperty> = fc.constantFrom(0x00, 0x04, 0x07, 0x2b, 0x7f).map((id) => ({ id, wireType: 'byte', value: 0 }));

/** Allowed in CONNECT, but refused by a broker without enhanced authentication (or, data alone, a Protocol Error). */
const authenticationProperties = new Set(['authenticationMethod', 'authenticationData']);

/**
 * A property list for `context`: distinct allowed properties with edge values; with `hostility`,
 * one that belongs to another packet, an unknown identifier, an authentication method or data,
 * or a second copy of one of them.
 */
export function propertyList(context: PropertyContext, timing: Timing, limits: FuzzLimits, hostility: number): fc.Arbitrary<RawProperty[]> {
  const names = allowedPropertyNames(context);
  const allowed = propertyTable.filter((entry) => names.includes(entry.name) && !authenticationProperties.has(entry.name));
  const refused = propertyTable.filter((entry) => !names.includes(entry.name) || authenticationProperties.has(entry.name));
  const hostile = fc.oneof(
    fc.constantFrom(...refused).chain((entry) => propertyOf(entry, timing, limits, hostility)),
    unknownProperty,
  );
  const one = sometimes(
    fc.constantFrom(...allowed).chain((entry) => propertyOf(entry, timing, limits, hostility)),
    hostile,
    hostility,
  );
  const again = sometimes(fc.constant(null), fc.nat(), hostility);
  return fc
    .tuple(fc.uniqueArray(one, { selector: (property) => property.id, maxLength: 4 }), again)
    .map(([list, repeat]) => (repeat === null || list.length === 0 ? list : [...list, list[repeat % list.length]!]));
}

// ---- CONNECT ------------------------------------------------------------------------------------

export type Version = 3 | 4 | 5;

export interface WillCase {
  /** 3 is malformed. */
  qos: number;
  retain: boolean;
  topic: Uint8Array;
  payload: Uint8Array;
  /** Written only in 5.0. */
  properties: RawProperty[];
}

export interface ConnectCase {
  protocolName: Uint8Array;
  protocolLevel: number;
  /** Low bits of the first byte; 0 in a valid CONNECT [MQTT-2.1.3-1]. */
  headerFlags: number;
  /** The reserved connect flag [MQTT-3.1.2-3]. */
  reservedFlag: boolean;
  cleanStart: boolean;
  keepAliveSeconds: number;
  /** Written only when the protocol is 5.0. */
  properties: RawProperty[];
  clientId: Uint8Array;
  will: WillCase | null;
  /** Will QoS / retain bits set while the will flag is 0 [MQTT-3.1.2-11, -13]. */
  strayWillBits: number;
  username: Uint8Array | null;
  password: Uint8Array | null;
}

/** The protocol version a CONNECT's name and level announce, or null when unsupported. */
export function announcedVersion(connect: Pick<ConnectCase, 'protocolName' | 'protocolLevel'>): Version | null {
  const name = new TextDecoder().decode(connect.protocolName);
  if (name === 'MQTT' && (connect.protocolLevel === 4 || connect.protocolLevel === 5)) return connect.protocolLevel;
  if (name === 'MQIsdp' && connect.protocolLevel === 3) return 3;
  return null;
}

export interface ConnectOptions {
  timing: Timing;
  limits: FuzzLimits;
  /** Client ids are `${pool}-a` .. `${pool}-f` mostly, so sessions are resumed and taken over. */
  pool: string;
  /** Relative weight of each invalid variant (0: a CONNECT the broker must accept, edge values aside). */
  hostility: number;
  /** Will topics; valid ones unless a test is about will topics. */
  willTopic: fc.Arbitrary<Uint8Array>;
  /** Weight of CONNECTs carrying a will, out of 4. */
  willWeight?: number;
}

function clientIdBytes(options: ConnectOptions): fc.Arbitrary<Uint8Array> {
  const { pool, limits } = options;
  const named = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f').map((name) => utf8(`${pool}-${name}`));
  const long = (length: number): Uint8Array => utf8(`${pool}-${'x'.repeat(Math.max(0, length - pool.length - 1))}`);
  const validEdges = fc.oneof(
    fc.constant(empty),
    fc.constantFrom(limits.clientIdBytesMax, 23, 24).map(long),
    mqttString(6).map((text) => utf8(`${pool}~${text}`)),
  );
  const invalid = fc.oneof(
    fc.constantFrom(limits.clientIdBytesMax + 1, limits.clientIdBytesMax + 40).map(long),
    illFormedUtf8.map((bytes) => Uint8Array.from([...utf8(pool), ...bytes])),
    fc.constant(Uint8Array.from([...utf8(pool), 0x00])),
  );
  return sometimes(fc.oneof({ weight: 6, arbitrary: named }, { weight: 1, arbitrary: validEdges }), invalid, options.hostility);
}

function willCase(options: ConnectOptions): fc.Arbitrary<WillCase> {
  return fc.record({
    qos: sometimes(fc.constantFrom(0, 1, 2), fc.constant(3), options.hostility),
    retain: fc.boolean(),
    topic: options.willTopic,
    payload: payloadBytes(options.limits, 0),
    properties: propertyList('will', options.timing, options.limits, options.hostility),
  });
}

function keepAlive(timing: Timing): fc.Arbitrary<number> {
  if (timing === 'simulated') return fc.oneof(fc.constantFrom(0, 1, 2, 10, 0xffff), fc.integer({ min: 0, max: 0xffff }));
  return fc.oneof(fc.constantFrom(0, 0xffff), fc.integer({ min: 60, max: 0xffff }));
}

const unsupportedProtocols = fc.constantFrom<{ name: string; level: number }>(
  { name: 'MQTT', level: 0 },
  { name: 'MQTT', level: 3 },
  { name: 'MQTT', level: 6 },
  { name: 'MQTT', level: 255 },
  { name: 'MQIsdp', level: 4 },
  { name: 'mqtt', level: 4 },
  { name: 'MQTT5', level: 5 },
  { name: '', level: 5 },
);

export function connectCase(version: Version, options: ConnectOptions): fc.Arbitrary<ConnectCase> {
  const hostility = options.hostility;
  const valid: { name: string; level: number } = { name: version === 3 ? 'MQIsdp' : 'MQTT', level: version };
  const willWeight = options.willWeight ?? 2;
  return fc
    .record({
      protocol: sometimes(fc.constant(valid), unsupportedProtocols, half(hostility)),
      headerFlags: sometimes(fc.constant(0), fc.integer({ min: 1, max: 15 }), half(hostility)),
      reservedFlag: sometimes(fc.constant(false), fc.constant(true), half(hostility)),
      cleanStart: fc.boolean(),
      keepAliveSeconds: keepAlive(options.timing),
      properties: version === 5 ? propertyList('connect', options.timing, options.limits, hostility) : fc.constant<RawProperty[]>([]),
      clientId: clientIdBytes(options),
      will: fc.oneof({ weight: 4 - willWeight, arbitrary: fc.constant(null) }, { weight: willWeight, arbitrary: willCase(options) }),
      strayWillBits: sometimes(fc.constant(0), fc.constantFrom(0x08, 0x10, 0x18, 0x20, 0x28), half(hostility)),
      username: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: textBytes(hostility) }),
      password: fc.oneof({ weight: 4, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }) }),
      // A 5.0 session outlives its connection only with a session expiry: most get one.
      sessionExpiry: fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: interval(options.timing) }),
    })
    .map(({ protocol, sessionExpiry, ...fields }) => {
      const expiry: RawProperty[] = version < 5 || sessionExpiry === null || fields.properties.some((property) => property.id === 0x11) ? [] : [{ id: 0x11, wireType: 'uint32', value: sessionExpiry }];
      return { ...fields, properties: [...expiry, ...fields.properties], protocolName: utf8(protocol.name), protocolLevel: protocol.level };
    })
    .map((connect) => ({ ...connect, strayWillBits: connect.will === null ? connect.strayWillBits : 0 }))
    .map((connect) =>
      // 3.1.1 forbids a password without a user name [MQTT-3.1.2-22]: kept only when hostile.
      hostility === 0 && version < 5 && connect.username === null ? { ...connect, password: null } : connect,
    );
}

export function connectBytes(connect: ConnectCase): Uint8Array {
  const version5 = announcedVersion(connect) === 5;
  const will = connect.will;
  let connectFlags = connect.strayWillBits;
  if (connect.reservedFlag) connectFlags |= 0x01;
  if (connect.cleanStart) connectFlags |= 0x02;
  if (will !== null) connectFlags |= 0x04 | ((will.qos & 3) << 3) | (will.retain ? 0x20 : 0);
  if (connect.password !== null) connectFlags |= 0x40;
  if (connect.username !== null) connectFlags |= 0x80;
  return rawConnect({
    headerFlags: connect.headerFlags,
    protocolName: connect.protocolName,
    protocolLevel: connect.protocolLevel,
    connectFlags,
    keepAliveSeconds: connect.keepAliveSeconds,
    properties: version5 ? connect.properties : null,
    clientId: connect.clientId,
    will: will === null ? null : { properties: version5 ? will.properties : null, topic: will.topic, payload: will.payload },
    username: connect.username,
    password: connect.password,
  });
}

// ---- PUBLISH ------------------------------------------------------------------------------------

export interface PublishCase {
  /** 3 is malformed. */
  qos: number;
  dup: boolean;
  retain: boolean;
  topic: Uint8Array;
  /**
   * `normal`: an identifier exactly when QoS > 0; `zero`: identifier 0; `missing` / `extra`: the
   * identifier left out of a QoS 1/2 PUBLISH, or written into a QoS 0 one (the broker then reads
   * the following bytes as something else: only the shape of its answer can be judged).
   */
  packetIdMode: 'normal' | 'zero' | 'missing' | 'extra';
  packetId: number;
  /** Written only in 5.0. */
  properties: RawProperty[];
  payload: Uint8Array;
}

export interface PublishOptions {
  timing: Timing;
  limits: FuzzLimits;
  hostility: number;
}

export function publishCase(version: Version, options: PublishOptions): fc.Arbitrary<PublishCase> {
  const { hostility, limits } = options;
  const topic = hostileTopic(limits, hostility);
  // A Topic Alias the broker allows, set with a topic or used with an empty one (5.0 only).
  const alias = version === 5 ? fc.oneof({ weight: 5, arbitrary: fc.constant(null) }, { weight: 2, arbitrary: fc.tuple(fc.constantFrom(1, 2), fc.boolean()) }) : fc.constant(null);
  return fc
    .record({
      qos: sometimes(fc.constantFrom(0, 1, 2), fc.constant(3), half(hostility)),
      // DUP is fine on QoS 1/2; on QoS 0 it is malformed [MQTT-3.3.1-2], hence its own hostility.
      dup: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      dupOnQos0: sometimes(fc.constant(false), fc.constant(true), half(hostility)),
      retain: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      topic,
      packetIdMode: sometimes(fc.constant('normal' as const), fc.constantFrom('zero' as const, 'missing' as const, 'extra' as const), half(hostility)),
      packetId: fc.oneof(fc.constantFrom(1, 2, 0xffff), fc.integer({ min: 1, max: 0xffff })),
      properties: version === 5 ? propertyList('publish', options.timing, limits, hostility) : fc.constant<RawProperty[]>([]),
      payload: payloadBytes(limits, hostility),
      alias,
    })
    .map(({ alias: aliasChoice, dupOnQos0, ...publish }) => {
      const dup = publish.qos === 0 ? dupOnQos0 : publish.dup;
      if (aliasChoice === null) return { ...publish, dup };
      const [value, useIt] = aliasChoice;
      const aliasProperty: RawProperty = { id: 0x23, wireType: 'uint16', value };
      return { ...publish, dup, topic: useIt ? empty : publish.topic, properties: [aliasProperty, ...publish.properties] };
    });
}

export function publishBytes(publish: PublishCase, version: Version): Uint8Array {
  const wantsId = publish.qos > 0;
  let packetId: number | null = wantsId ? publish.packetId : null;
  if (publish.packetIdMode === 'zero' && wantsId) packetId = 0;
  if (publish.packetIdMode === 'missing') packetId = null;
  if (publish.packetIdMode === 'extra') packetId = publish.packetId;
  return rawPublish({
    qos: publish.qos,
    dup: publish.dup,
    retain: publish.retain,
    topic: publish.topic,
    packetId,
    properties: version === 5 ? publish.properties : null,
    payload: publish.payload,
  });
}

// ---- scripts ------------------------------------------------------------------------------------

export type Step =
  | { kind: 'connect'; connect: ConnectCase }
  | { kind: 'publish'; publish: PublishCase }
  /** PUBREL: `flags` is 2 in a valid one; the identifier may be known, unknown or 0. */
  | { kind: 'pubrel'; packetId: number; flags: number }
  | { kind: 'pingreq' }
  /** DISCONNECT from the client: 0x00, or 0x04 (with will); 5.0 may change the session expiry. */
  | { kind: 'disconnect'; reasonCode: number; sessionExpiry: number | null };

/**
 * How the client leaves if the broker has not closed the connection: drop the socket, half-close
 * it, or (simulated time only) stay silent until keepalive, a takeover or a restart ends it.
 */
export type Ending = 'drop' | 'end' | 'linger';

export interface Script {
  /** The version the client speaks after CONNECT (what its PUBLISH, PUBREL and DISCONNECT look like). */
  version: Version;
  steps: Step[];
  ending: Ending;
  /** Where each step's bytes are cut into separate writes (see `split`). */
  cuts: number[];
}

export function stepBytes(step: Step, version: Version): Uint8Array {
  switch (step.kind) {
    case 'connect':
      return connectBytes(step.connect);
    case 'publish':
      return publishBytes(step.publish, version);
    case 'pubrel':
      return rawPubrel(step.packetId, step.flags);
    case 'pingreq':
      return rawPingreq();
    case 'disconnect': {
      const properties: RawProperty[] = step.sessionExpiry === null ? [] : [{ id: 0x11, wireType: 'uint32', value: step.sessionExpiry }];
      return rawDisconnect(version === 5, step.reasonCode, properties);
    }
  }
}

const versions = fc.constantFrom<Version>(3, 4, 4, 5, 5, 5);
const cuts = fc.array(fc.nat(), { maxLength: 4 });

function ending(timing: Timing): fc.Arbitrary<Ending> {
  return timing === 'simulated' ? fc.constantFrom<Ending>('drop', 'drop', 'end', 'linger') : fc.constantFrom<Ending>('drop', 'drop', 'end');
}

export interface ScriptOptions {
  timing: Timing;
  limits: FuzzLimits;
  pool: string;
}

function disconnectStep(timing: Timing): fc.Arbitrary<Step> {
  return fc.record({
    kind: fc.constant('disconnect' as const),
    // 0x80 and 0x8E are in the table (the second is the server's), 0x05 is not.
    reasonCode: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0x00, 0x04) }, { weight: 1, arbitrary: fc.constantFrom(0x80, 0x8e, 0x05) }),
    sessionExpiry: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: interval(timing) }),
  });
}

/** Cuts a script after its first DISCONNECT: nothing a client sends after it is read. */
function upToDisconnect(steps: Step[]): Step[] {
  const index = steps.findIndex((step) => step.kind === 'disconnect');
  return index < 0 ? steps : steps.slice(0, index + 1);
}

/** One CONNECT full of edge values (will topics as `willTopic` says), maybe a PINGREQ, then the ending. */
export function connectScript(options: ScriptOptions & { willTopic: fc.Arbitrary<Uint8Array>; willWeight?: number }): fc.Arbitrary<Script> {
  return versions.chain((version) =>
    fc.record({
      version: fc.constant(version),
      steps: fc
        .tuple(
          connectCase(version, { ...options, hostility: 2 }),
          fc.oneof(
            fc.constant([]),
            fc.constant([{ kind: 'pingreq' } as Step]),
            disconnectStep(options.timing).map((step) => [step]),
          ),
        )
        .map(([connect, rest]) => [{ kind: 'connect' as const, connect }, ...rest]),
      ending: ending(options.timing),
      cuts,
    }),
  );
}

/** A CONNECT that mostly succeeds, then PUBLISHes full of edge values, with PUBRELs for their identifiers. */
export function publishScript(options: ScriptOptions): fc.Arbitrary<Script> {
  const willTopic = validTopic(options.limits);
  return versions.chain((version) => {
    const publishes = fc.array(publishCase(version, { ...options, hostility: 1 }), { minLength: 1, maxLength: 6 });
    return fc.record({
      version: fc.constant(version),
      steps: fc.tuple(connectCase(version, { ...options, hostility: 0, willTopic }), publishes, fc.boolean()).map(([connect, list, release]) => {
        const steps: Step[] = [{ kind: 'connect', connect }];
        for (const publish of list) {
          steps.push({ kind: 'publish', publish });
          if (release && publish.qos === 2) steps.push({ kind: 'pubrel', packetId: publish.packetId, flags: 2 });
        }
        return steps;
      }),
      ending: ending(options.timing),
      cuts,
    });
  });
}

/**
 * Mixed sequences: usually CONNECT first, but sometimes a PUBLISH or PUBREL before it; then
 * PUBLISH, PUBREL for known and unknown identifiers, PINGREQ, a second CONNECT, DISCONNECT.
 */
export function sequenceScript(options: ScriptOptions): fc.Arbitrary<Script> {
  const willTopic = validTopic(options.limits);
  return versions.chain((version) => {
    const connect = connectCase(version, { ...options, hostility: 1, willTopic }).map((value): Step => ({ kind: 'connect', connect: value }));
    const publish = publishCase(version, { ...options, hostility: 1 }).map((value): Step => ({ kind: 'publish', publish: value }));
    const pubrel = fc.record({
      kind: fc.constant('pubrel' as const),
      packetId: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(1, 2, 0xffff) }, { weight: 1, arbitrary: fc.constant(0) }),
      flags: fc.oneof({ weight: 8, arbitrary: fc.constant(2) }, { weight: 1, arbitrary: fc.constantFrom(0, 3) }),
    });
    const later = fc.oneof(
      { weight: 6, arbitrary: publish },
      { weight: 3, arbitrary: pubrel },
      { weight: 2, arbitrary: fc.constant<Step>({ kind: 'pingreq' }) },
      { weight: 1, arbitrary: connect },
      { weight: 1, arbitrary: disconnectStep(options.timing) },
    );
    const first = fc.oneof({ weight: 9, arbitrary: connect }, { weight: 1, arbitrary: fc.oneof(publish, pubrel, fc.constant<Step>({ kind: 'pingreq' })) });
    return fc.record({
      version: fc.constant(version),
      steps: fc.tuple(first, fc.array(later, { maxLength: 6 })).map(([head, tail]) => upToDisconnect([head, ...tail])),
      ending: ending(options.timing),
      cuts,
    });
  });
}

// ---- mutations ----------------------------------------------------------------------------------

/** A lie in one packet's remaining length: a few bytes off, or far past any maximum. */
export interface LengthChange {
  step: number;
  delta: number;
}

export const lengthChange: fc.Arbitrary<LengthChange> = fc.record({
  step: fc.nat(),
  delta: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: -4, max: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(127, 1 << 14, 1 << 27) }),
});

/** The packet with its remaining length changed by `delta` (never below 0), its body untouched. */
export function withRemainingLength(packet: Uint8Array, delta: number): Uint8Array {
  let length = 0;
  let multiplier = 1;
  let index = 1;
  for (; index < packet.length && index <= 4; index++) {
    length += (packet[index]! & 0x7f) * multiplier;
    multiplier *= 128;
    if ((packet[index]! & 0x80) === 0) break;
  }
  const body = packet.subarray(index + 1);
  return rawPacket(packet[0]!, body, Math.min(Math.max(0, length + delta), 268_435_455));
}

/** A script's bytes with remaining lengths changed, then the whole stream mutated byte by byte. */
export function mutatedBytes(script: Script, changes: readonly LengthChange[], mutations: readonly Mutation[]): Uint8Array {
  const packets = script.steps.map((step) => stepBytes(step, script.version));
  for (const change of changes) {
    if (packets.length === 0) break;
    const index = change.step % packets.length;
    packets[index] = withRemainingLength(packets[index]!, change.delta);
  }
  return mutate(Buffer.concat(packets), mutations);
}
