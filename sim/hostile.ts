/**
 * Hostile and odd inputs: the probes a hostile world sends the broker, each with the outcome the
 * broker promises for it.
 *
 * A hostile world (chooseHostile, from the `${seed}:hostile` stream, about three worlds in ten)
 * gets a prober (clients/prober.ts) that opens a connection of its own for each planned probe and
 * sends bytes built here with Keel's codec, bent where the codec would refuse to write them:
 * packets before CONNECT, protocol levels 3 to 6 under both protocol names, reserved flag bits,
 * remaining lengths longer than four bytes, ill-formed UTF-8 and U+0000, packets over the world's
 * packetBytesMax (some hostile worlds make it small), a second CONNECT, properties where they are
 * not allowed, topic alias 0, a client's subscription identifier, and CONNECTs whose will the
 * broker must refuse: empty, wildcard (`#`, `+`, `a+b`) and over-limit topics, `$SYS/...`, a QoS
 * above the world's maximumQos, a retained will where retain is not available (some hostile
 * worlds turn it off, and their clients then publish nothing retained).
 *
 * The outcomes follow src/broker/errors.ts and handle-connect.ts:
 * - before a CONNECT is decoded the broker does not know the client's version: a malformed
 *   CONNECT (bad flag, bad string, bad property, too large) and anything that is not a CONNECT
 *   end in a plain close; an unsupported protocol level or name gets the 3.1.1 CONNACK return
 *   code 1, whatever the level asked; "MQIsdp" level 3 (MQTT 3.1) is accepted;
 * - a decoded CONNECT with a will the broker must refuse: MQTT 5.0 CONNACK 0x90 (topic), 0x9B
 *   (QoS), 0x9A (retain), 0x87 (`$SYS`); MQTT 3.1.1 a plain close, or return code 5 for `$SYS`;
 * - after an accepted CONNECT: MQTT 5.0 DISCONNECT with the violation's reason code (0x81
 *   malformed, 0x82 protocol error, 0x90 topic name, 0x94 topic alias, 0x95 too large), 3.1.1 a
 *   plain close.
 * Every refused CONNECT carries a will the world could receive where its defect allows one, and
 * is followed by a valid CONNECT with the same client id, which must find no session: nothing of
 * a refused CONNECT may happen later.
 */
import { encodePacket } from '../src/codec/encoder.js';
import { type ConnectPacket, PacketType, type ProtocolVersion, type Qos, type Will } from '../src/codec/packets.js';
import type { BrokerConfig } from '../src/config.js';
import { willPayload } from './clients/payload.js';
import { Random } from './random.js';

/** What the broker must answer a probe with. */
export type ProbeExpectation =
  /** A CONNACK with this code (null: none at all), encoded for `version`, then the close. */
  | { kind: 'refused'; connack: number | null; version: ProtocolVersion }
  /** After an accepted CONNECT: DISCONNECT with this code (null: none, a plain close), then the close. */
  | { kind: 'disconnected'; disconnect: number | null }
  /** A CONNACK accepting it (the prober then leaves cleanly). */
  | { kind: 'accepted' };

export interface Probe {
  /** Names the probe in the trace and in failure reports. */
  name: string;
  clientId: string;
  /** The version the probe speaks once accepted (for the accepting CONNACK and what follows). */
  version: ProtocolVersion;
  /** A valid CONNECT sent first and expected to be accepted (null: the hostile bytes come first). */
  connect: Uint8Array | null;
  /** The bytes under test; empty for a connection that never sends a CONNECT. */
  hostile: Uint8Array;
  expect: ProbeExpectation;
  /** The will the hostile CONNECT carries, when the world could receive it; it must never be published. */
  will: { topic: string; generation: number } | null;
  /** After a refusal, a valid CONNECT with the same client id must find no session. */
  followUp: boolean;
  /** No whole CONNECT is ever sent: the broker owes the close at connectTimeoutMs. */
  silent: boolean;
}

export type ProbeKind =
  | 'before-connect'
  | 'protocol-level'
  | 'connect-flags'
  | 'connect-remaining-length'
  | 'connect-too-large'
  | 'connect-utf8'
  | 'connect-property'
  | 'will-property'
  | 'will-topic'
  | 'will-sys'
  | 'will-qos'
  | 'will-retain'
  | 'silent'
  | 'second-connect'
  | 'reserved-flags'
  | 'publish-flags'
  | 'remaining-length'
  | 'publish-utf8'
  | 'publish-wildcard'
  | 'publish-property'
  | 'publish-alias'
  | 'publish-subscription-id'
  | 'packet-type-zero'
  | 'trailing-bytes'
  | 'publish-too-large';

export const probeKinds: readonly ProbeKind[] = [
  'before-connect',
  'protocol-level',
  'connect-flags',
  'connect-remaining-length',
  'connect-too-large',
  'connect-utf8',
  'connect-property',
  'will-property',
  'will-topic',
  'will-sys',
  'will-qos',
  'will-retain',
  'silent',
  'second-connect',
  'reserved-flags',
  'publish-flags',
  'remaining-length',
  'publish-utf8',
  'publish-wildcard',
  'publish-property',
  'publish-alias',
  'publish-subscription-id',
  'packet-type-zero',
  'trailing-bytes',
  'publish-too-large',
];

export interface ProbePlan {
  atMs: number;
  kind: ProbeKind;
  version: 4 | 5;
  /** Picks among a kind's variants (which level, which bad topic, ...). */
  variant: number;
}

export interface HostilePlan {
  probes: ProbePlan[];
}

/** MQTT 5.0 reason codes the outcomes name. */
const Reason = {
  malformed: 0x81,
  protocolError: 0x82,
  notAuthorized: 0x87,
  topicNameInvalid: 0x90,
  topicAliasInvalid: 0x94,
  packetTooLarge: 0x95,
  retainNotSupported: 0x9a,
  qosNotSupported: 0x9b,
} as const;

/** Packets that are not CONNECT, as a first packet [MQTT-3.1.0-1]: PINGREQ, PUBLISH, SUBSCRIBE. */
const notConnect: readonly Uint8Array[] = [Uint8Array.of(0xc0, 0x00), Uint8Array.of(0x30, 0x03, 0x00, 0x01, 0x61), Uint8Array.of(0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00)];
/** Reserved fixed-header flags [MQTT-2.1.3-1]: PINGREQ 1, SUBSCRIBE 0, PUBREL 0, UNSUBSCRIBE 0. */
const reservedFlags: readonly Uint8Array[] = [
  Uint8Array.of(0xc1, 0x00),
  Uint8Array.of(0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00),
  Uint8Array.of(0x60, 0x02, 0x00, 0x01),
  Uint8Array.of(0xa0, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61),
];
/** Strings MQTT forbids [MQTT-1.5.4-1, -2]: ill-formed UTF-8, U+0000, an encoded surrogate. */
const badClientIds: readonly number[][] = [
  [0xc3, 0x28],
  [0x61, 0x00, 0x62],
  [0xed, 0xa0, 0x80],
];
const badTopics: readonly number[][] = [
  [0xc3, 0x28],
  [0x61, 0x00],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
];

/** 3.1.1 CONNACK return codes. */
const unacceptableProtocolVersion = 1;
const notAuthorized311 = 5;

/**
 * The hostile plan of a world, or null for most worlds. Changes the world's limits where a probe
 * needs them: a small packetBytesMax, a maximumQos below 2, retain unavailable (then no client
 * publishes retained). Drawn after every older choice, from a stream of its own.
 */
export function chooseHostile(seed: number, configOverrides: Partial<BrokerConfig>, activeMs: number, retainedInUse: boolean): HostilePlan | null {
  const random = Random.stream(seed, 'hostile');
  if (!random.chance(0.3)) return null;
  if (random.chance(0.4)) configOverrides.packetBytesMax = random.pick([512, 1024, 2048]);
  if (configOverrides.maximumQos === undefined && random.chance(0.25)) configOverrides.maximumQos = random.pick<0 | 1>([0, 1]);
  if (!retainedInUse && random.chance(0.25)) configOverrides.retainAvailable = false;
  const count = random.int(3, 12);
  const probes: ProbePlan[] = [];
  for (let index = 0; index < count; index++) {
    probes.push({ atMs: random.int(200, Math.max(300, activeMs - 2_000)), kind: random.pick(probeKinds), version: random.chance(0.5) ? 5 : 4, variant: random.int(0, 1_000) });
  }
  probes.sort((a, b) => a.atMs - b.atMs);
  return { probes };
}

/** The limits a probe's outcome depends on. */
export type ProbeLimits = Pick<BrokerConfig, 'packetBytesMax' | 'maximumQos' | 'retainAvailable' | 'topicBytesMax' | 'topicLevelsMax'>;

/**
 * The probe of plan number `generation` for the prober with client index `prober`, or null when
 * the world's limits leave nothing for that kind to test (a will QoS above 2, say).
 */
export function buildProbe(plan: ProbePlan, prober: number, generation: number, limits: ProbeLimits): Probe | null {
  const clientId = `h${prober}-${generation}`;
  const base = { clientId, version: plan.version as ProtocolVersion, connect: null, will: null, followUp: false, silent: plan.kind === 'silent' };
  const post = postConnectProbe(plan, clientId, limits);
  if (post !== null) return { ...base, ...post, name: `${plan.kind} v${plan.version}`, connect: connectBytes(plan.version, clientId), followUp: false };
  const pre = preConnectProbe(plan, prober, generation, clientId, limits);
  if (pre === null) return null;
  return { ...base, ...pre, followUp: pre.expect.kind === 'refused' };
}

type PreConnect = Pick<Probe, 'name' | 'hostile' | 'expect' | 'will'> & { version?: ProtocolVersion };

/** A probe whose hostile bytes come first: a bad or refused CONNECT, or no CONNECT at all. */
function preConnectProbe(plan: ProbePlan, prober: number, generation: number, clientId: string, limits: ProbeLimits): PreConnect | null {
  const version = plan.version;
  const close = { kind: 'refused', connack: null, version } as const;
  // A will the world could receive, on a topic every client may see: it must never be published.
  const validWill = { topic: `will/h${prober}`, generation };
  const willOf = (topic: string, qos: Qos = 0, retain = false): Will => ({ topic, qos, retain, payload: willPayload(prober, generation, topic) });
  switch (plan.kind) {
    case 'before-connect':
      return { name: 'packet before CONNECT', hostile: pick(plan.variant, notConnect), expect: close, will: null };
    case 'protocol-level':
      return protocolLevelProbe(plan, clientId, willOf(validWill.topic), validWill);
    case 'connect-flags': {
      // [MQTT-3.1.2-3] the reserved flag bit of CONNECT must be 0.
      const bytes = connectBytes(version, clientId, { lasting: true, will: willOf(validWill.topic) });
      bytes[connectFlagsOffset(bytes)] |= 0x01;
      return { name: 'CONNECT reserved flag', hostile: bytes, expect: close, will: validWill };
    }
    case 'connect-remaining-length':
      return { name: 'CONNECT remaining length of five bytes', hostile: Uint8Array.of(0x10, 0xff, 0xff, 0xff, 0xff, 0x01), expect: close, will: null };
    case 'connect-too-large':
      // Refused from its fixed header alone: the body never needs to arrive.
      return { name: `CONNECT over packetBytesMax ${limits.packetBytesMax}`, hostile: oversizeHeader(0x10, limits.packetBytesMax), expect: close, will: null };
    case 'connect-utf8':
      return { name: 'CONNECT client id not UTF-8', hostile: connectWithRawClientId(version, pick(plan.variant, badClientIds)), expect: close, will: null };
    case 'connect-property':
      if (version !== 5) return null;
      // Topic Alias (0x23) belongs in PUBLISH, not in CONNECT.
      return { name: 'CONNECT with a PUBLISH property', hostile: connectWithRawProperties(clientId, Uint8Array.of(0x23, 0x00, 0x01), null), expect: close, will: null };
    case 'will-property':
      if (version !== 5) return null;
      // Session Expiry Interval (0x11) belongs in CONNECT, not in the will properties.
      return {
        name: 'will with a CONNECT property',
        hostile: connectWithRawProperties(clientId, new Uint8Array(0), {
          topic: validWill.topic,
          properties: Uint8Array.of(0x11, 0, 0, 0, 5),
          payload: willPayload(prober, generation, validWill.topic),
        }),
        expect: close,
        will: validWill,
      };
    case 'will-topic':
      return willTopicProbe(plan, clientId, limits, willOf);
    case 'will-sys':
      return {
        name: 'will on $SYS',
        hostile: connectBytes(version, clientId, { lasting: true, will: willOf('$SYS/keel/h') }),
        expect: { kind: 'refused', connack: version === 5 ? Reason.notAuthorized : notAuthorized311, version },
        will: null,
      };
    case 'will-qos':
      if (limits.maximumQos === 2) return null;
      return refusedWill(
        version,
        'will QoS above maximumQos',
        connectBytes(version, clientId, { lasting: true, will: willOf(validWill.topic, (limits.maximumQos + 1) as Qos) }),
        Reason.qosNotSupported,
        validWill,
      );
    case 'will-retain':
      if (limits.retainAvailable) return null;
      return refusedWill(version, 'retained will without retain', connectBytes(version, clientId, { lasting: true, will: willOf(validWill.topic, 0, true) }), Reason.retainNotSupported, validWill);
    case 'silent':
      // No CONNECT at all (half of it, or nothing): closed at connectTimeoutMs.
      return { name: 'no CONNECT', hostile: plan.variant % 2 === 0 ? new Uint8Array(0) : connectBytes(version, clientId).subarray(0, 5), expect: close, will: null };
    default:
      return null;
  }
}

/** A decoded CONNECT refused for its will: 5.0 CONNACK `reason`, 3.1.1 a plain close. */
function refusedWill(version: 4 | 5, name: string, bytes: Uint8Array, reason: number, will: Probe['will']): PreConnect {
  return { name, hostile: bytes, expect: { kind: 'refused', connack: version === 5 ? reason : null, version }, will };
}

function protocolLevelProbe(plan: ProbePlan, clientId: string, will: Will, validWill: Probe['will']): PreConnect {
  const variants: { name: string; level: number }[] = [
    { name: 'MQTT', level: 3 },
    { name: 'MQTT', level: 6 },
    { name: 'MQTT', level: 2 },
    { name: 'MQIsdp', level: 4 },
    { name: 'MQIsdp', level: 3 },
  ];
  const { name, level } = pick(plan.variant, variants);
  const accepted = name === 'MQIsdp' && level === 3;
  const base: ConnectPacket = {
    type: PacketType.Connect,
    protocolName: name === 'MQIsdp' ? 'MQIsdp' : 'MQTT',
    protocolVersion: name === 'MQIsdp' ? 3 : 4,
    cleanStart: true,
    keepAliveSeconds: 0,
    clientId,
  };
  const bytes = encodePacket(accepted ? base : { ...base, will }, base.protocolVersion).slice();
  bytes[connectFlagsOffset(bytes) - 1] = level;
  if (accepted) return { name: 'MQTT 3.1 (MQIsdp level 3)', hostile: bytes, expect: { kind: 'accepted' }, will: null, version: 3 };
  // [MQTT-3.1.2-2] 3.1.1 return code 1, whatever level the client asked for.
  return { name: `protocol ${name} level ${level}`, hostile: bytes, expect: { kind: 'refused', connack: unacceptableProtocolVersion, version: 4 }, will: validWill };
}

function willTopicProbe(plan: ProbePlan, clientId: string, limits: ProbeLimits, willOf: (topic: string) => Will): PreConnect | null {
  const levelsOver = Array.from({ length: limits.topicLevelsMax + 1 }, () => 'w').join('/');
  const bytesOver = `w/${'x'.repeat(Math.max(1, limits.topicBytesMax - 1))}`;
  // The empty topic twice: the bug found outside began with one.
  const topic = pick(plan.variant, ['', '#', '', 'will/+', 'a+b', 'w/#/x', levelsOver, bytesOver]);
  const bytes = connectBytes(plan.version, clientId, { lasting: true, will: willOf(topic) });
  // Too long for the world's packets: that probe tests nothing about wills.
  if (bytes.length > limits.packetBytesMax) return null;
  return refusedWill(plan.version, `will topic ${JSON.stringify(topic.length > 24 ? `${topic.slice(0, 24)}...` : topic)}`, bytes, Reason.topicNameInvalid, null);
}

type PostConnect = Pick<Probe, 'hostile' | 'expect'>;

/** A probe sent after an accepted CONNECT, or null for a kind that comes first. */
function postConnectProbe(plan: ProbePlan, clientId: string, limits: ProbeLimits): PostConnect | null {
  const version = plan.version;
  const disconnect = (reason: number): PostConnect['expect'] => ({ kind: 'disconnected', disconnect: version === 5 ? reason : null });
  switch (plan.kind) {
    case 'second-connect':
      // [MQTT-3.1.0-2] a second CONNECT is a protocol error.
      return { hostile: connectBytes(version, clientId), expect: disconnect(Reason.protocolError) };
    case 'reserved-flags':
      return { hostile: pick(plan.variant, reservedFlags), expect: disconnect(Reason.malformed) };
    case 'publish-flags':
      // QoS 3, and DUP on QoS 0 [MQTT-3.3.1-2], [MQTT-3.3.1-4].
      return { hostile: publishBytes(version, plan.variant % 2 === 0 ? 0x36 : 0x38, [0x61], null), expect: disconnect(Reason.malformed) };
    case 'remaining-length':
      return { hostile: Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x01), expect: disconnect(Reason.malformed) };
    case 'publish-utf8':
      return { hostile: publishBytes(version, 0x30, pick(plan.variant, badTopics), null), expect: disconnect(Reason.malformed) };
    case 'publish-wildcard':
      return { hostile: publishBytes(version, 0x30, [...new TextEncoder().encode(pick(plan.variant, ['a/#', '+', 'a+b']))], null), expect: disconnect(Reason.topicNameInvalid) };
    case 'publish-property':
      if (version !== 5) return null;
      // Session Expiry Interval is not a PUBLISH property (a protocol error); 0x7f is no property at all.
      return plan.variant % 2 === 0
        ? { hostile: publishBytes(5, 0x30, [0x61], Uint8Array.of(0x11, 0, 0, 0, 1)), expect: disconnect(Reason.protocolError) }
        : { hostile: publishBytes(5, 0x30, [0x61], Uint8Array.of(0x7f, 0)), expect: disconnect(Reason.malformed) };
    case 'publish-alias':
      if (version !== 5) return null;
      // Alias 0 is refused by the decoder (a property that must not be 0: protocol error); one
      // above the broker's Topic Alias Maximum by the handler [MQTT-3.3.2-10].
      return plan.variant % 2 === 0
        ? { hostile: publishBytes(5, 0x30, [0x61], Uint8Array.of(0x23, 0x00, 0x00)), expect: disconnect(Reason.protocolError) }
        : { hostile: publishBytes(5, 0x30, [0x61], Uint8Array.of(0x23, 0xff, 0xff)), expect: disconnect(Reason.topicAliasInvalid) };
    case 'publish-subscription-id':
      if (version !== 5) return null;
      return { hostile: publishBytes(5, 0x30, [0x61], Uint8Array.of(0x0b, 0x01)), expect: disconnect(Reason.protocolError) };
    case 'packet-type-zero':
      // Type 0 is reserved; so is AUTH (15) before MQTT 5.0.
      return { hostile: version === 4 && plan.variant % 2 === 1 ? Uint8Array.of(0xf0, 0x00) : Uint8Array.of(0x00, 0x00), expect: disconnect(Reason.malformed) };
    case 'trailing-bytes':
      // Section 4.13: every byte of the remaining length belongs to a field.
      return { hostile: Uint8Array.of(0xc0, 0x01, 0x00), expect: disconnect(Reason.malformed) };
    case 'publish-too-large':
      return { hostile: oversizeHeader(0x30, limits.packetBytesMax), expect: disconnect(Reason.packetTooLarge) };
    default:
      return null;
  }
}

function pick<T>(variant: number, items: readonly T[]): T {
  return items[variant % items.length]!;
}

/**
 * A CONNECT without keepalive or user name. `lasting`: a session that outlives the connection
 * (3.1.1 clean session 0, 5.0 the longest expiry), which is what a refused CONNECT asks for, so
 * that a session it wrongly left behind shows in the follow-up; otherwise a volatile one (3.1.1
 * clean, 5.0 no expiry) that starts clean unless `resume` (5.0 only).
 */
export function connectBytes(version: ProtocolVersion, clientId: string, options: { lasting?: boolean; resume?: boolean; will?: Will } = {}): Uint8Array {
  const lasting = options.lasting === true;
  const cleanStart = version === 5 ? !(lasting || options.resume === true) : !lasting;
  const packet: ConnectPacket = { type: PacketType.Connect, protocolName: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version, cleanStart, keepAliveSeconds: 0, clientId };
  if (version === 5 && lasting) packet.properties = { sessionExpiryInterval: 0xffffffff };
  if (options.will !== undefined) packet.will = options.will;
  return encodePacket(packet, version).slice();
}

/** Offset of the CONNECT flags byte: after the fixed header, the protocol name and the level. */
function connectFlagsOffset(bytes: Uint8Array): number {
  let offset = 1;
  while ((bytes[offset]! & 0x80) !== 0) offset += 1;
  offset += 1;
  const nameLength = (bytes[offset]! << 8) | bytes[offset + 1]!;
  return offset + 2 + nameLength + 1;
}

/** A fixed header announcing one byte more than `packetBytesMax` in all (the body is never sent). */
function oversizeHeader(firstByte: number, packetBytesMax: number): Uint8Array {
  // Total = 1 + length-of-remaining-length + remaining length > packetBytesMax.
  return Uint8Array.of(firstByte, ...remainingLength(packetBytesMax));
}

export function remainingLength(value: number): number[] {
  const out: number[] = [];
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    out.push(byte);
  } while (rest > 0);
  return out;
}

function framed(firstByte: number, body: readonly number[]): Uint8Array {
  return Uint8Array.of(firstByte, ...remainingLength(body.length), ...body);
}

function lengthPrefixed(bytes: readonly number[] | Uint8Array): number[] {
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

/** A PUBLISH with a raw topic (QoS from the flags; packet id 1 when QoS > 0), raw 5.0 properties, payload "x". */
function publishBytes(version: ProtocolVersion, firstByte: number, topic: readonly number[], properties: Uint8Array | null): Uint8Array {
  const qos = (firstByte >> 1) & 3;
  const body = [...lengthPrefixed(topic), ...(qos > 0 ? [0x00, 0x01] : [])];
  if (version === 5) {
    const props = properties ?? new Uint8Array(0);
    body.push(...remainingLength(props.length), ...props);
  }
  body.push(0x78);
  return framed(firstByte, body);
}

/** A clean-start CONNECT whose client id is the raw bytes given (ill-formed UTF-8, U+0000, a surrogate). */
function connectWithRawClientId(version: ProtocolVersion, clientId: readonly number[]): Uint8Array {
  const body = [...lengthPrefixed([0x4d, 0x51, 0x54, 0x54]), version, 0x02, 0x00, 0x00];
  if (version === 5) body.push(0x00);
  body.push(...lengthPrefixed(clientId));
  return framed(0x10, body);
}

/** A 5.0 CONNECT with raw CONNECT properties and, optionally, a will with raw will properties. */
function connectWithRawProperties(clientId: string, properties: Uint8Array, will: { topic: string; properties: Uint8Array; payload: Uint8Array } | null): Uint8Array {
  const encoder = new TextEncoder();
  const body = [...lengthPrefixed([0x4d, 0x51, 0x54, 0x54]), 5, will === null ? 0x02 : 0x06, 0x00, 0x00];
  body.push(...remainingLength(properties.length), ...properties, ...lengthPrefixed(encoder.encode(clientId)));
  if (will !== null) body.push(...remainingLength(will.properties.length), ...will.properties, ...lengthPrefixed(encoder.encode(will.topic)), ...lengthPrefixed(will.payload));
  return framed(0x10, body);
}
