/**
 * The oracle for hostile clients: what the MQTT specs let a broker answer to each step of a script
 * (test/codec/hostile-arbitraries.ts), and a judge that checks what a broker did answer.
 *
 * Every field of a step is judged on its own, from the specs, without asking the codec. Each
 * problem found is a "must" (the broker must refuse the packet) or a "may" (the spec lets it
 * refuse or accept), with the reason codes allowed for it. When a packet holds several problems
 * the spec does not say which one wins, so any of their codes is allowed. A refusal may be a bare
 * close, except where the spec (or Keel's own rule) fixes the answer: client id too long or
 * rejected (5.0 CONNACK 0x85, 3.1.1 return code 2), an unsupported protocol level (return code 1
 * or 0x84), an invalid will topic (5.0 CONNACK 0x90). A step whose bytes the broker cannot read as
 * the client meant them (a packet identifier left out of QoS 1, or written into QoS 0) makes the
 * rest of the script "unknown": then only the shape of the answer is judged (packet types a
 * server sends, reason codes from the right table, nothing after a refusal, a close after one).
 *
 * The judge walks the steps and the packets received together. Where a step may be accepted or
 * refused it tries both, because the packets alone do not always say (an accepted QoS 0 PUBLISH
 * is silent). It also knows the little state that decides later answers: topic aliases set,
 * QoS 2 identifiers awaiting PUBREL, whether the session expiry was 0.
 */
import { PacketDecoder } from '../../src/codec/decoder.js';
import type { Packet } from '../../src/codec/packets.js';
import type { StateRecord } from '../../src/store/state-store.js';
import { reasonCodes } from '../codec/arbitraries.js';
import {
  allowedPropertyNames,
  announcedVersion,
  type ConnectCase,
  type FuzzLimits,
  type PropertyContext,
  type PublishCase,
  propertyTable,
  type Script,
  type Step,
  stepBytes,
  type Version,
} from '../codec/hostile-arbitraries.js';
import type { RawProperty } from '../codec/raw-packet.js';

/**
 * Deviations from the specs this fuzzer found in Keel, each pinned by a focused test in
 * test/integration/fuzz-findings.test.ts that fails until it is fixed. The oracle tolerates
 * them so that the properties keep searching past them: set an entry to false (or delete it)
 * once its fix lands, and the properties hold the broker to the spec again.
 */
export const knownFindings = {
  /** F1: CONNECT with Authentication Data but no Authentication Method is accepted (section 3.1.2.11.10: Protocol Error). */
  authenticationDataWithoutMethod: true,
  /** F2: a second CONNECT with an unsupported protocol level gets DISCONNECT 0x84, a CONNACK-only code (expected 0x82). */
  secondConnectDisconnect0x84: true,
  /** F3: a client DISCONNECT with a reason code other than 0x00 and 0x04 (say 0x80) discards the will ([MQTT-3.1.2-10]: only 0x00 does). */
  willDiscardedOnDisconnectWithError: true,
};

// ---- text and topic rules -----------------------------------------------------------------------

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The string, or null when the bytes are not well-formed UTF-8 or hold U+0000 [MQTT-1.5.4-1, -2]. */
export function mqttText(bytes: Uint8Array): string | null {
  if (bytes.includes(0)) return null;
  try {
    return fatalUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/** Code points that SHOULD NOT appear; a receiver MAY treat them as malformed (section 1.5.4). */
function hasDiscouragedCodePoint(text: string): boolean {
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f)) return true;
    if ((code >= 0xfdd0 && code <= 0xfdef) || (code & 0xfffe) === 0xfffe) return true;
  }
  return false;
}

/** Why `text` is not a topic name the broker may accept, or null. */
export function topicNameProblem(text: string, limits: FuzzLimits): string | null {
  // [MQTT-4.7.3-1] at least one character; [MQTT-3.3.2-2] no wildcards.
  if (text.length === 0) return 'empty topic name';
  if (text.includes('+') || text.includes('#')) return `wildcard in topic name ${JSON.stringify(text)}`;
  // The broker's limits, which a will topic and a PUBLISH topic share.
  if (new TextEncoder().encode(text).length > limits.topicBytesMax) return `topic name over ${limits.topicBytesMax} bytes`;
  if (text.split('/').length > limits.topicLevelsMax) return `topic name over ${limits.topicLevelsMax} levels`;
  return null;
}

/** Why a topic taken from the durable log could never have been accepted, or null. */
export function storedTopicProblem(topic: string, limits: FuzzLimits): string | null {
  if (topic.includes('\u0000')) return 'topic holds U+0000';
  return topicNameProblem(topic, limits);
}

/** Records holding a topic no client may set: the log is poisoned by them. */
export function poisonedRecords(records: readonly StateRecord[], limits: FuzzLimits): string[] {
  const found: string[] = [];
  for (const record of records) {
    let topic: string | null = null;
    if (record.kind === 'will-set') topic = record.will.topic;
    if (record.kind === 'message-stored') topic = record.message.topic;
    if (record.kind === 'retained-set') topic = record.topic;
    const problem = topic === null ? null : storedTopicProblem(topic, limits);
    if (problem !== null) found.push(`${record.kind}: ${problem}`);
  }
  return found;
}

// ---- problems and verdicts ----------------------------------------------------------------------

interface Problem {
  why: string;
  /** A "must": the broker may not accept the packet. */
  required: boolean;
  /** 5.0 reason codes allowed (CONNACK before the connection is accepted, DISCONNECT after). */
  codes: readonly number[];
  /** 5.0 must send the packet (else a bare close is allowed too). */
  packetRequired: boolean;
  /** 3.1/3.1.1 CONNACK return codes allowed; empty: any refusal code. */
  returnCodes: readonly number[];
  returnCodeRequired: boolean;
}

type Fixed = Partial<Pick<Problem, 'packetRequired' | 'returnCodes' | 'returnCodeRequired'>>;

class Problems {
  readonly list: Problem[] = [];
  unknownWhy: string | null = null;

  must(why: string, codes: readonly number[], fixed: Fixed = {}): void {
    this.list.push({ why, required: true, codes, packetRequired: false, returnCodes: [], returnCodeRequired: false, ...fixed });
  }

  may(why: string, codes: readonly number[], fixed: Fixed = {}): void {
    this.list.push({ why, required: false, codes, packetRequired: false, returnCodes: [], returnCodeRequired: false, ...fixed });
  }

  unknown(why: string): void {
    this.unknownWhy ??= why;
  }
}

/** One packet the broker must answer an accepted step with. */
type Expected = { type: 'connack'; cleanStart: boolean; assignedIdRequired: boolean } | { type: 'ack'; packetType: 4 | 5 | 7; packetId: number; codes: readonly number[] } | { type: 'pingresp' };

export interface Refusal {
  why: string[];
  codes: ReadonlySet<number>;
  packetRequired: boolean;
  /** Null: any 3.1.1 refusal return code. */
  returnCodes: ReadonlySet<number> | null;
  returnCodeRequired: boolean;
}

export interface Verdict {
  /** The answer to an accepted step; null when the broker must refuse it. */
  accept: Expected[] | null;
  /** How the broker may refuse it; null when it must accept it. */
  refuse: Refusal | null;
  /** Set when the broker cannot read the step as the client meant it. */
  unknownWhy: string | null;
  /** Accepting the step ends the connection (a client DISCONNECT). */
  closesAfter: boolean;
}

function verdictOf(problems: Problems, accept: Expected[], closesAfter = false): Verdict {
  if (problems.unknownWhy !== null) return { accept: null, refuse: null, unknownWhy: problems.unknownWhy, closesAfter };
  const list = problems.list;
  const required = list.some((problem) => problem.required);
  if (list.length === 0) return { accept, refuse: null, unknownWhy: null, closesAfter };
  const refuse: Refusal = {
    why: list.map((problem) => `${problem.required ? 'must' : 'may'}: ${problem.why}`),
    codes: new Set(list.flatMap((problem) => problem.codes)),
    packetRequired: list.every((problem) => problem.packetRequired),
    returnCodes: list.some((problem) => problem.returnCodes.length === 0) ? null : new Set(list.flatMap((problem) => problem.returnCodes)),
    returnCodeRequired: list.every((problem) => problem.returnCodeRequired),
  };
  return { accept: required ? null : accept, refuse, unknownWhy: null, closesAfter };
}

// ---- properties ---------------------------------------------------------------------------------

const booleanProperties = new Set([
  'payloadFormatIndicator',
  'requestProblemInformation',
  'requestResponseInformation',
  'maximumQos',
  'retainAvailable',
  'wildcardSubscriptionAvailable',
  'subscriptionIdentifiersAvailable',
  'sharedSubscriptionAvailable',
]);
const nonZeroProperties = new Set(['receiveMaximum', 'maximumPacketSize', 'topicAlias', 'subscriptionIdentifiers']);

function textProblems(what: string, bytes: Uint8Array, problems: Problems): string | null {
  const text = mqttText(bytes);
  if (text === null) problems.must(`${what} is not well-formed UTF-8 without U+0000`, [0x81]);
  else if (hasDiscouragedCodePoint(text)) problems.may(`${what} holds a code point that SHOULD NOT appear`, [0x81]);
  return text;
}

function valueProblems(name: string, value: RawProperty['value'], problems: Problems): void {
  // Section 2.2.2.2 and each property's own section: flags take 0 or 1; these four are never 0.
  if (booleanProperties.has(name) && value !== 0 && value !== 1) problems.must(`${name} ${value} is neither 0 nor 1`, [0x82]);
  if (nonZeroProperties.has(name) && value === 0) problems.must(`${name} 0`, name === 'topicAlias' ? [0x82, 0x94] : [0x82]);
  if (value instanceof Uint8Array && propertyTable.find((entry) => entry.name === name)?.wireType === 'string') textProblems(name, value, problems);
  if (Array.isArray(value)) {
    textProblems(`${name} name`, value[0]!, problems);
    textProblems(`${name} value`, value[1]!, problems);
  }
}

/** The properties a context may carry, by name, first occurrence only; problems with the rest. */
function propertyProblems(properties: readonly RawProperty[], context: PropertyContext, problems: Problems): Map<string, RawProperty['value']> {
  const byName = new Map<string, RawProperty['value']>();
  const seen = new Set<number>();
  for (const property of properties) {
    const entry = propertyTable.find((candidate) => candidate.id === property.id);
    // Section 2.2.2.2: an identifier that is unknown or not valid for the packet is malformed
    // (Keel calls the second a Protocol Error: both are accepted here).
    if (entry === undefined) {
      problems.must(`unknown property 0x${property.id.toString(16)}`, [0x81]);
      continue;
    }
    if (!allowedPropertyNames(context).includes(entry.name)) {
      problems.must(`${entry.name} is not allowed in ${context}`, [0x81, 0x82]);
      continue;
    }
    const repeatable = entry.name === 'userProperties' || (entry.name === 'subscriptionIdentifiers' && context === 'publish');
    if (seen.has(property.id) && !repeatable) problems.must(`${entry.name} twice`, [0x82]);
    seen.add(property.id);
    valueProblems(entry.name, property.value, problems);
    if (!byName.has(entry.name)) byName.set(entry.name, property.value);
  }
  return byName;
}

function payloadFormatProblems(properties: Map<string, RawProperty['value']>, payload: Uint8Array, problems: Problems): void {
  // [MQTT-3.3.2-4] A receiver MAY check a payload that says it is UTF-8; 0x99 if it is not.
  if (properties.get('payloadFormatIndicator') === 1 && mqttText(payload) === null) problems.may('payload is not UTF-8 but says it is', [0x99]);
}

function responseTopicProblems(properties: Map<string, RawProperty['value']>, limits: FuzzLimits, problems: Problems): void {
  const value = properties.get('responseTopic');
  const text = value instanceof Uint8Array ? mqttText(value) : null;
  // [MQTT-3.3.2-13, -14] a Response Topic is a topic name; a broker may refuse one that is not.
  if (text !== null && topicNameProblem(text, limits) !== null) problems.may(`response topic: ${topicNameProblem(text, limits)}`, [0x82, 0x90]);
}

// ---- CONNECT ------------------------------------------------------------------------------------

const clientIdRejected: Fixed = { packetRequired: true, returnCodes: [2], returnCodeRequired: true };

function connectProblems(connect: ConnectCase, limits: FuzzLimits, problems: Problems): void {
  // [MQTT-2.1.3-1] the flag bits of CONNECT are reserved.
  if (connect.headerFlags !== 0) problems.must('CONNECT header flags set', [0x81]);
  const version = announcedVersion(connect);
  if (version === null) {
    // [MQTT-3.1.2-2]: 3.1.1 must answer return code 1 for a level it does not support (a name
    // that is not MQTT may get a bare close); 5.0 may answer 0x84. Nothing later can be read.
    const named = new TextDecoder().decode(connect.protocolName) === 'MQTT';
    problems.must('unsupported protocol name or level', [0x84], { returnCodes: [1], returnCodeRequired: named, packetRequired: named });
    return;
  }
  if (connect.reservedFlag) problems.must('reserved connect flag set', [0x81]); // [MQTT-3.1.2-3]
  if (connect.strayWillBits !== 0) problems.must('will QoS or retain without the will flag', [0x81, 0x82]); // [MQTT-3.1.2-11, -13]
  if (connect.will?.qos === 3) problems.must('will QoS 3', [0x81]); // [MQTT-3.1.2-12]
  if (version < 5 && connect.password !== null && connect.username === null) problems.must('password without user name', [0x81]); // 3.1.1 [MQTT-3.1.2-22]
  if (version === 5) connectPropertyProblems(connect, problems);
  clientIdProblems(connect, version, limits, problems);
  if (connect.will !== null) willProblems(connect.will, version, limits, problems);
  if (connect.username !== null) textProblems('user name', connect.username, problems);
}

function connectPropertyProblems(connect: ConnectCase, problems: Problems): void {
  const properties = propertyProblems(connect.properties, 'connect', problems);
  // Section 3.1.2.11.10: Authentication Data without a method is a Protocol Error.
  if (properties.has('authenticationData') && !properties.has('authenticationMethod')) {
    if (knownFindings.authenticationDataWithoutMethod) problems.may('authentication data without a method (known finding F1)', [0x82]);
    else problems.must('authentication data without a method', [0x82]);
  }
  // [MQTT-4.12.0-1] a method the server does not support (this broker has none): 0x8C or 0x87.
  if (properties.has('authenticationMethod')) problems.must('authentication method not supported', [0x8c, 0x87]);
}

function clientIdProblems(connect: ConnectCase, version: Version, limits: FuzzLimits, problems: Problems): void {
  const text = mqttText(connect.clientId);
  if (text === null) {
    problems.must('client id is not well-formed UTF-8 without U+0000', [0x81, 0x85]);
    return;
  }
  if (hasDiscouragedCodePoint(text)) problems.may('client id holds a code point that SHOULD NOT appear', [0x81, 0x85], { returnCodes: [2] });
  // [MQTT-3.1.3-8] (3.1.1 [MQTT-3.1.3-9]): a client id the server rejects gets 0x85 / 2.
  if (connect.clientId.length > limits.clientIdBytesMax) problems.must(`client id over ${limits.clientIdBytesMax} bytes`, [0x85], clientIdRejected);
  // 3.1.1 [MQTT-3.1.3-8]: an empty client id needs a clean session.
  if (text.length === 0 && version < 5 && !connect.cleanStart) problems.must('empty client id without a clean session', [0x85], clientIdRejected);
  // MQTT 3.1 asks for 1 to 23 characters; a broker may be lenient.
  if (version === 3 && (text.length === 0 || [...text].length > 23)) problems.may('3.1 client id outside 1..23 characters', [0x85], { returnCodes: [2] });
}

function willProblems(will: NonNullable<ConnectCase['will']>, version: Version, limits: FuzzLimits, problems: Problems): void {
  const topic = mqttText(will.topic);
  if (topic === null) problems.must('will topic is not well-formed UTF-8 without U+0000', [0x81, 0x90]);
  else {
    // Keel's rule: a will topic gets exactly the checks of a PUBLISH topic, at CONNECT, before
    // anything is stored: 5.0 CONNACK 0x90 then close; 3.1.1 close without a success CONNACK.
    const problem = topicNameProblem(topic, limits);
    if (problem !== null) problems.must(`will ${problem}`, [0x90], { packetRequired: true });
    else if (hasDiscouragedCodePoint(topic)) problems.may('will topic holds a code point that SHOULD NOT appear', [0x81, 0x90]);
  }
  if (version < 5) return;
  const properties = propertyProblems(will.properties, 'will', problems);
  payloadFormatProblems(properties, will.payload, problems);
  responseTopicProblems(properties, limits, problems);
}

// ---- PUBLISH and the rest -----------------------------------------------------------------------

export interface ModelState {
  phase: 'awaiting-connect' | 'connected' | 'closed' | 'unknown';
  /** Null until a CONNECT announced a supported version. */
  version: Version | null;
  /** Topic aliases the client set on this connection. */
  aliases: ReadonlySet<number>;
  /** QoS 2 identifiers received on this connection and not yet released. */
  pendingQos2: ReadonlySet<number>;
  /** The session expiry set at CONNECT, in seconds (5.0; 3.1.1: 0 for a clean session, else never). */
  sessionExpirySeconds: number;
  /** The session may hold QoS 2 identifiers from an earlier connection (it was not started clean). */
  mayHoldEarlierQos2: boolean;
  /** The will of the accepted CONNECT: its topic (null when not text) and delay; null when none. */
  will: { topic: string | null; delaySeconds: number } | null;
  /** The client's DISCONNECT, once sent: its reason code and the session expiry it set, if any. */
  disconnect: { reasonCode: number; sessionExpiry: number | null } | null;
}

export const initialState: ModelState = {
  phase: 'awaiting-connect',
  version: null,
  aliases: new Set(),
  pendingQos2: new Set(),
  sessionExpirySeconds: 0,
  mayHoldEarlierQos2: false,
  will: null,
  disconnect: null,
};

const expiryNever = 0xffffffff;

function publishVerdict(publish: PublishCase, state: ModelState, limits: FuzzLimits, problems: Problems): { verdict: Verdict; accepted: ModelState } {
  const version = state.version!;
  if (publish.qos === 3) problems.must('PUBLISH QoS 3', [0x81]); // [MQTT-3.3.1-4]
  if (publish.dup && publish.qos === 0) problems.must('DUP on QoS 0', [0x81]); // [MQTT-3.3.1-2]
  const hasId = publish.qos > 0;
  if (publish.packetIdMode === 'missing' && hasId) problems.unknown('packet identifier left out');
  if (publish.packetIdMode === 'extra' && !hasId) problems.unknown('packet identifier written into QoS 0');
  if (publish.packetIdMode === 'zero' && hasId) problems.must('packet identifier 0', [0x81, 0x82]); // [MQTT-2.2.1-3]
  const topic = mqttText(publish.topic);
  if (topic === null) problems.must('topic is not well-formed UTF-8 without U+0000', [0x81]);
  else if (topic.length > 0) {
    const problem = topicNameProblem(topic, limits);
    if (problem !== null) problems.must(problem, [0x90]);
    else if (hasDiscouragedCodePoint(topic)) problems.may('topic holds a code point that SHOULD NOT appear', [0x81, 0x90]);
  }
  let aliases = state.aliases;
  const duplicate = publish.qos === 2 && state.pendingQos2.has(publish.packetId);
  // [MQTT-3.3.4-7] more unacknowledged QoS 1/2 PUBLISHes than the broker's Receive Maximum: 0x93.
  // Identifiers left by an earlier connection of the session count too, and only the broker knows them.
  if (version === 5 && (publish.qos === 1 || publish.qos === 2) && !duplicate) {
    if (state.pendingQos2.size >= limits.receiveMaximum) problems.must('over the Receive Maximum', [0x93]);
    else if (state.mayHoldEarlierQos2) problems.may('over the Receive Maximum with identifiers from an earlier connection', [0x93]);
  }
  if (version === 5) {
    const properties = propertyProblems(publish.properties, 'publish', problems);
    if (properties.has('subscriptionIdentifiers')) problems.must('subscription identifier from a client', [0x82]); // [MQTT-3.3.4-6]
    const alias = properties.get('topicAlias') as number | undefined;
    // [MQTT-3.3.2-9, -10] an alias above the maximum the server announced is 0x94.
    if (alias !== undefined && alias > limits.topicAliasMaximum) problems.must(`topic alias ${alias} over the maximum`, [0x94]);
    const aliasUsable = alias !== undefined && alias > 0 && alias <= limits.topicAliasMaximum;
    // Section 3.3.2.3.4: an empty topic needs an alias the client set before.
    if (topic === '' && !(aliasUsable && state.aliases.has(alias))) problems.must('empty topic without a known topic alias', [0x82]);
    if (aliasUsable && topic !== null && topic.length > 0) aliases = new Set([...aliases, alias]);
    payloadFormatProblems(properties, publish.payload, problems);
    responseTopicProblems(properties, limits, problems);
  } else if (topic === '') problems.must('empty topic', [0x82]); // [MQTT-4.7.3-1]
  const codes = version === 5 ? [0x00, 0x10] : [0x00];
  const accept: Expected[] = [];
  if (publish.qos === 1) accept.push({ type: 'ack', packetType: 4, packetId: publish.packetId, codes });
  if (publish.qos === 2) accept.push({ type: 'ack', packetType: 5, packetId: publish.packetId, codes });
  const pendingQos2 = publish.qos === 2 ? new Set([...state.pendingQos2, publish.packetId]) : state.pendingQos2;
  return { verdict: verdictOf(problems, accept), accepted: { ...state, aliases, pendingQos2 } };
}

function connectedVerdict(step: Step, state: ModelState, limits: FuzzLimits, problems: Problems): { verdict: Verdict; accepted: ModelState } {
  switch (step.kind) {
    case 'connect':
      // [MQTT-3.1.0-2]; 0x84 is a CONNACK code, not a DISCONNECT one (known finding F2).
      problems.must('a second CONNECT', knownFindings.secondConnectDisconnect0x84 ? [0x81, 0x82, 0x84] : [0x81, 0x82]);
      return { verdict: verdictOf(problems, []), accepted: state };
    case 'publish':
      return publishVerdict(step.publish, state, limits, problems);
    case 'pubrel': {
      if (step.flags !== 2) problems.must('PUBREL flags not 0010', [0x81]); // [MQTT-3.6.1-1]
      if (step.packetId === 0) problems.must('packet identifier 0', [0x81, 0x82]); // [MQTT-2.2.1-3]
      // An unknown identifier is answered 0x92 in 5.0 (an earlier connection of the session may know it).
      const codes = state.pendingQos2.has(step.packetId) ? [0x00] : state.version === 5 ? [0x00, 0x92] : [0x00];
      const pendingQos2 = new Set([...state.pendingQos2].filter((id) => id !== step.packetId));
      return { verdict: verdictOf(problems, [{ type: 'ack', packetType: 7, packetId: step.packetId, codes }]), accepted: { ...state, pendingQos2 } };
    }
    case 'pingreq':
      return { verdict: verdictOf(problems, [{ type: 'pingresp' }]), accepted: state };
    case 'disconnect':
      // [MQTT-3.14.2-2] a session expiry of 0 at CONNECT may not be raised at DISCONNECT.
      if (state.version === 5 && state.sessionExpirySeconds === 0 && step.sessionExpiry !== null && step.sessionExpiry !== 0) problems.must('session expiry raised from 0 at DISCONNECT', [0x82]);
      // Section 3.14.2.1: a reason code outside the DISCONNECT table is a Protocol Error.
      if (state.version === 5 && !disconnectCodes.has(step.reasonCode)) problems.must(`DISCONNECT reason code 0x${step.reasonCode.toString(16)}`, [0x81, 0x82]);
      return { verdict: verdictOf(problems, [], true), accepted: { ...state, phase: 'closed', disconnect: { reasonCode: step.reasonCode, sessionExpiry: step.sessionExpiry } } };
  }
}

/** What the broker may answer to `step` in `state`, and the state after accepting it. */
export function stepVerdict(step: Step, state: ModelState, script: Script, limits: FuzzLimits): { verdict: Verdict; accepted: ModelState } {
  const problems = new Problems();
  // Section 3.1.2.11.4 / 4.13: a packet over the broker's maximum size is 0x95, whatever it holds.
  if (stepBytes(step, script.version).length > limits.packetBytesMax) problems.must('packet over the maximum packet size', [0x95]);
  if (state.phase === 'connected') return connectedVerdict(step, state, limits, problems);
  if (step.kind !== 'connect') {
    problems.must('the first packet is not CONNECT', [0x81, 0x82]); // [MQTT-3.1.0-1]
    return { verdict: verdictOf(problems, []), accepted: state };
  }
  const connect = step.connect;
  connectProblems(connect, limits, problems);
  const version = announcedVersion(connect);
  const accept: Expected[] = [{ type: 'connack', cleanStart: connect.cleanStart, assignedIdRequired: version === 5 && connect.clientId.length === 0 }];
  const expiry = connect.properties.find((property) => property.id === 0x11)?.value ?? 0;
  const willDelay = connect.will?.properties.find((property) => property.id === 0x18)?.value ?? 0;
  const accepted: ModelState = {
    phase: 'connected',
    version,
    aliases: new Set(),
    pendingQos2: new Set(),
    sessionExpirySeconds: version === 5 ? (expiry as number) : connect.cleanStart ? 0 : expiryNever,
    mayHoldEarlierQos2: !connect.cleanStart,
    will: connect.will === null ? null : { topic: mqttText(connect.will.topic), delaySeconds: version === 5 ? (willDelay as number) : 0 },
    disconnect: null,
  };
  return { verdict: verdictOf(problems, accept), accepted };
}

// ---- what the broker sent -----------------------------------------------------------------------

export interface Frame {
  type: number;
  flags: number;
  body: Uint8Array;
  bytes: Uint8Array;
}

/** Splits bytes into packets by their fixed headers (no other checks); `leftover` is a partial tail. */
export function frameBytes(bytes: Uint8Array): { frames: Frame[]; leftover: number; problem: string | null } {
  const frames: Frame[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    let length = 0;
    let multiplier = 1;
    let index = offset + 1;
    for (;;) {
      if (index >= bytes.length) return { frames, leftover: bytes.length - offset, problem: null };
      const byte = bytes[index++]!;
      length += (byte & 0x7f) * multiplier;
      if ((byte & 0x80) === 0) break;
      multiplier *= 128;
      if (index - offset > 4) return { frames, leftover: 0, problem: `remaining length over four bytes at offset ${offset}` };
    }
    if (index + length > bytes.length) return { frames, leftover: bytes.length - offset, problem: null };
    frames.push({ type: bytes[offset]! >> 4, flags: bytes[offset]! & 0x0f, body: bytes.subarray(index, index + length), bytes: bytes.subarray(offset, index + length) });
    offset = index + length;
  }
  return { frames, leftover: 0, problem: null };
}

/** The packet, decoded by the codec of the version the connection speaks; a string if it is malformed. */
function strictly(frame: Frame, version: Version): Packet | string {
  const decoder = new PacketDecoder({ packetBytesMax: 1 << 28, protocolVersion: version });
  decoder.push(frame.bytes);
  try {
    return decoder.next() ?? 'incomplete';
  } catch (error) {
    return `a malformed packet (${(error as Error).message}): ${hex(frame.bytes)}`;
  }
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

const connackCodes = new Set(reasonCodes.connack);
const disconnectCodes = new Set(reasonCodes.disconnect);
const anyReturnCode = new Set([1, 2, 3, 4, 5]);
const codeList = (codes: ReadonlySet<number>): string => [...codes].map((code) => `0x${code.toString(16)}`).join(', ');

// ---- the judge ----------------------------------------------------------------------------------

export interface Observation {
  /** Everything the broker sent on the connection, in order. */
  bytes: Uint8Array;
  /** Whether the broker closed the connection (before the client left on its own). */
  brokerClosed: boolean;
}

/** How the connection ended on the path the judge accepted. */
type End = { how: 'refused'; state: ModelState; step: Step } | { how: 'disconnected'; state: ModelState } | { how: 'open'; state: ModelState } | { how: 'unknown' };

interface Context {
  script: Script;
  frames: Frame[];
  brokerClosed: boolean;
  limits: FuzzLimits;
  /** Set on the accepted path only (a branch that fails never reaches a terminal success). */
  end: End | null;
}

function matchExpected(frame: Frame | undefined, want: Expected, version: Version | null): string | null {
  if (frame === undefined) return `expected ${want.type === 'ack' ? `packet type ${want.packetType}` : want.type}, got nothing`;
  const decoded = version === null ? null : strictly(frame, version);
  if (typeof decoded === 'string') return `the broker sent ${decoded}`;
  if (want.type === 'pingresp') return frame.type === 13 ? null : `expected PINGRESP, got packet type ${frame.type}`;
  if (want.type === 'ack') {
    if (frame.type !== want.packetType) return `expected packet type ${want.packetType}, got ${frame.type}`;
    const packetId = (frame.body[0]! << 8) | frame.body[1]!;
    const code = frame.body.length > 2 ? frame.body[2]! : 0;
    if (packetId !== want.packetId) return `acknowledgement for identifier ${packetId}, expected ${want.packetId}`;
    return want.codes.includes(code) ? null : `acknowledgement code 0x${code.toString(16)} not in {${codeList(new Set(want.codes))}}`;
  }
  if (frame.type !== 2) return `expected CONNACK, got packet type ${frame.type}`;
  if (frame.body[1] !== 0) return `CONNACK refused with 0x${frame.body[1]!.toString(16)} a CONNECT that must be accepted`;
  // [MQTT-3.2.2-2] (3.1.1 [MQTT-3.2.2-1]): a clean start never has a session present.
  if (want.cleanStart && (frame.body[0]! & 1) === 1) return 'session present on a clean start';
  // [MQTT-3.2.2-16] an empty client id is answered with the one assigned.
  const assigned = decoded?.type === 2 ? decoded.properties?.assignedClientIdentifier : undefined;
  if (want.assignedIdRequired && (assigned === undefined || assigned.length === 0)) return 'no Assigned Client Identifier for an empty client id';
  return null;
}

function matchRefusal(context: Context, cursor: number, refusal: Refusal, state: ModelState, version: Version | null): string | null {
  const frame = context.frames[cursor];
  const returnCodes = refusal.returnCodes ?? anyReturnCode;
  if (state.phase === 'awaiting-connect' && frame !== undefined) {
    if (frame.type !== 2) return `expected a refusing CONNACK or a close, got packet type ${frame.type}`;
    const code = frame.body[1]!;
    const allowed = version === 5 ? refusal.codes : version === null ? new Set([...refusal.codes, ...returnCodes]) : returnCodes;
    if (!allowed.has(code)) return `CONNACK code 0x${code.toString(16)} not in {${codeList(allowed)}}`;
    const decoded = version === null ? null : strictly(frame, version);
    if (typeof decoded === 'string') return `the broker sent ${decoded}`;
    cursor += 1;
  } else if (state.phase === 'awaiting-connect') {
    const required = version === 5 ? refusal.packetRequired : version === null ? refusal.packetRequired || refusal.returnCodeRequired : refusal.returnCodeRequired;
    if (required) return `closed without the CONNACK {${codeList(version === 5 ? refusal.codes : returnCodes)}} the spec asks for`;
  } else if (frame !== undefined) {
    if (state.version !== 5) return `expected a close (3.1.1 has no server DISCONNECT), got packet type ${frame.type}`;
    if (frame.type !== 14) return `expected DISCONNECT or a close, got packet type ${frame.type}`;
    const code = frame.body[0] ?? 0;
    if (!refusal.codes.has(code)) return `DISCONNECT code 0x${code.toString(16)} not in {${codeList(refusal.codes)}}`;
    // The codec rightly refuses to decode the DISCONNECT of known finding F2.
    const decoded = knownFindings.secondConnectDisconnect0x84 && code === 0x84 ? null : strictly(frame, 5);
    if (typeof decoded === 'string') return `the broker sent ${decoded}`;
    cursor += 1;
  }
  if (cursor < context.frames.length) return `${context.frames.length - cursor} packet(s) after the refusal`;
  if (!context.brokerClosed) return 'the broker did not close the connection';
  return null;
}

/** Only the shape of the rest is known: packets a server may send, codes from their tables, a close after a refusal. */
function judgeShape(frames: readonly Frame[], brokerClosed: boolean, cursor: number): string | null {
  for (let index = cursor; index < frames.length; index++) {
    const frame = frames[index]!;
    const last = index === frames.length - 1;
    if (![2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 15].includes(frame.type)) return `the broker sent packet type ${frame.type}, which servers never send`;
    if (frame.type === 2) {
      if (index !== 0) return 'a CONNACK that is not the first packet';
      const code = frame.body[1]!;
      if (!connackCodes.has(code) && !anyReturnCode.has(code)) return `CONNACK code 0x${code.toString(16)} is in no CONNACK table`;
      if (code !== 0 && !(last && brokerClosed)) return `a refusing CONNACK (0x${code.toString(16)}) not followed by a close`;
    }
    if (frame.type === 14) {
      const code = frame.body[0] ?? 0;
      const knownF2 = knownFindings.secondConnectDisconnect0x84 && code === 0x84;
      if (!knownF2 && (code < 0x80 || !disconnectCodes.has(code))) return `DISCONNECT code 0x${code.toString(16)} is not a server's error code`;
      if (!(last && brokerClosed)) return 'a DISCONNECT not followed by a close';
    }
  }
  return null;
}

function judgeEnd(context: Context, cursor: number, state: ModelState): string | null {
  if (state.phase === 'unknown') {
    context.end = { how: 'unknown' };
    return judgeShape(context.frames, context.brokerClosed, cursor);
  }
  if (state.phase === 'closed') {
    if (cursor < context.frames.length) return `${context.frames.length - cursor} packet(s) after the client's DISCONNECT`;
    context.end = { how: 'disconnected', state };
    return context.brokerClosed ? null : "the broker did not close the connection after the client's DISCONNECT";
  }
  if (cursor < context.frames.length)
    return `unexpected packet(s): ${context.frames
      .slice(cursor)
      .map((frame) => hex(frame.bytes))
      .join(' ')}`;
  context.end = { how: 'open', state };
  return context.brokerClosed ? 'the broker closed a connection in good standing' : null;
}

function judgeFrom(context: Context, index: number, cursor: number, state: ModelState): string | null {
  if (state.phase === 'unknown' || state.phase === 'closed' || index === context.script.steps.length) return judgeEnd(context, cursor, state);
  const step = context.script.steps[index]!;
  const { verdict, accepted } = stepVerdict(step, state, context.script, context.limits);
  if (verdict.unknownWhy !== null) return judgeFrom(context, index, cursor, { ...state, phase: 'unknown' });
  const version = state.phase === 'connected' ? state.version : step.kind === 'connect' ? announcedVersion(step.connect) : null;
  const failures: string[] = [];
  if (verdict.accept !== null) {
    let next = cursor;
    let local: string | null = null;
    for (const want of verdict.accept) {
      local = matchExpected(context.frames[next], want, version);
      if (local !== null) break;
      next += 1;
    }
    if (local === null) {
      const rest = judgeFrom(context, index + 1, next, accepted);
      if (rest === null) return null;
      failures.push(rest);
    } else failures.push(`step ${index + 1} (${step.kind}) accepted: ${local}`);
  }
  if (verdict.refuse !== null) {
    const refused = matchRefusal(context, cursor, verdict.refuse, state, version);
    if (refused === null) {
      context.end = { how: 'refused', state, step };
      return null;
    }
    failures.push(`step ${index + 1} (${step.kind}) refused [${verdict.refuse.why.join('; ')}]: ${refused}`);
  }
  return failures.join('\n  or ');
}

/**
 * The topic of the will the broker must have published once the connection is gone, or null when
 * none is certainly due now: no will was accepted, the client ended normally (DISCONNECT 0x00
 * [MQTT-3.14.4-3]), the will waits for its delay (never past the session's end [MQTT-3.1.3-9]),
 * the topic starts with `$` (an observer of `#` cannot see it), or the path is unknown.
 */
function willDue(end: End, script: Script): string | null {
  if (end.how === 'unknown') return null;
  const { will, version } = end.state;
  if (end.state.phase !== 'connected' && end.state.phase !== 'closed') return null;
  if (will === null || will.topic === null || will.topic.startsWith('$')) return null;
  let expirySeconds = end.state.sessionExpirySeconds;
  if (end.how === 'disconnected') {
    const { reasonCode, sessionExpiry } = end.state.disconnect!;
    // [MQTT-3.1.2-10] only DISCONNECT 0x00 removes the will; 0x04 asks for it explicitly.
    if (reasonCode === 0x00 || version! < 5) return null;
    if (reasonCode !== 0x04 && knownFindings.willDiscardedOnDisconnectWithError) return null;
    if (sessionExpiry !== null) expirySeconds = sessionExpiry;
  }
  // A refused DISCONNECT (say, one raising the session expiry from 0) may or may not count as normal.
  if (end.how === 'refused' && end.step.kind === 'disconnect') return null;
  // A client that lingers has not left yet.
  if (end.how === 'open' && script.ending === 'linger') return null;
  const dueNow = version! < 5 || will.delaySeconds === 0 || expirySeconds === 0;
  return dueNow ? will.topic : null;
}

export interface Judgement {
  /** Why the broker's answers are not ones the specs allow for the script, or null. */
  failure: string | null;
  /** The topic of the will that must have been published once the connection is gone (see `willDue`). */
  willDue: string | null;
}

/** Judges the broker's answers to a script, and says which will must then have gone out. */
export function judge(script: Script, observation: Observation, limits: FuzzLimits): Judgement {
  const framed = frameBytes(observation.bytes);
  if (framed.problem !== null) return { failure: `the broker sent bytes that are not MQTT packets: ${framed.problem}`, willDue: null };
  if (framed.leftover > 0 && observation.brokerClosed) return { failure: 'the broker closed the connection in the middle of a packet', willDue: null };
  const context: Context = { script, frames: framed.frames, brokerClosed: observation.brokerClosed, limits, end: null };
  const failure = judgeFrom(context, 0, 0, initialState);
  return { failure, willDue: failure === null && context.end !== null ? willDue(context.end, script) : null };
}

/** Null when the broker's answer is one the specs allow for the script; otherwise why not. */
export function judgeScript(script: Script, observation: Observation, limits: FuzzLimits): string | null {
  return judge(script, observation, limits).failure;
}

/** Only the shape: for bytes that were mutated after they were built. */
export function judgeShapeOnly(observation: Observation): string | null {
  const framed = frameBytes(observation.bytes);
  if (framed.problem !== null) return `the broker sent bytes that are not MQTT packets: ${framed.problem}`;
  return judgeShape(framed.frames, observation.brokerClosed, 0);
}

/** Per step, when a live client may send the next one: how many answers to wait for, and whether a close will come. */
export interface StepHint {
  responses: number;
  closes: 'yes' | 'no' | 'maybe';
}

export function stepHints(script: Script, limits: FuzzLimits): StepHint[] {
  let state = initialState;
  return script.steps.map((step) => {
    if (state.phase === 'unknown') return { responses: 0, closes: 'maybe' };
    if (state.phase === 'closed') return { responses: 0, closes: 'yes' };
    const { verdict, accepted } = stepVerdict(step, state, script, limits);
    if (verdict.unknownWhy !== null || verdict.accept === null) {
      state = { ...state, phase: verdict.unknownWhy !== null ? 'unknown' : 'closed' };
      return { responses: 0, closes: verdict.unknownWhy !== null ? 'maybe' : 'yes' };
    }
    state = accepted;
    const closes = verdict.refuse !== null ? 'maybe' : verdict.closesAfter ? 'yes' : 'no';
    return { responses: verdict.accept.length, closes };
  });
}

/** A readable account of a script: each step's bytes in hex, for reproducing a failure by hand. */
export function describeScript(script: Script): string {
  const steps = script.steps.map((step, index) => `    ${index + 1}. ${step.kind}: ${hex(stepBytes(step, script.version))}`);
  return [`version ${script.version}, ending ${script.ending}, cuts [${script.cuts.join(', ')}]`, ...steps].join('\n');
}
