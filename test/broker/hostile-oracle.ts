/**
 * The oracle for hostile clients: what the MQTT specs let a broker answer to each step of a script
 * (test/codec/hostile-arbitraries.ts). The judge (hostile-judge.ts) checks what a broker did answer.
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
 * The model state carries what decides later answers: topic aliases set, QoS 2 identifiers
 * awaiting PUBREL, the session expiry, the will and the client's DISCONNECT.
 */

import type { StateRecord } from '../../src/store/state-store.js';
import { isBrokerTopic } from '../../src/topics/validate.js';
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
  authenticationDataWithoutMethod: false,
  /** F2: a second CONNECT with an unsupported protocol level gets DISCONNECT 0x84, a CONNACK-only code (expected 0x82). */
  secondConnectDisconnect0x84: false,
  /** F3: a client DISCONNECT with a reason code other than 0x00 and 0x04 (say 0x80) discards the will ([MQTT-3.1.2-10]: only 0x00 does). */
  willDiscardedOnDisconnectWithError: false,
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
export type Expected =
  | { type: 'connack'; cleanStart: boolean; assignedIdRequired: boolean }
  | { type: 'ack'; packetType: 4 | 5 | 7; packetId: number; codes: readonly number[] }
  | { type: 'pingresp' };

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
    // Keel's rule: $SYS is the broker's own; a will there is refused like an unauthorized one.
    else if (isBrokerTopic(topic)) problems.must('will topic reserved for the broker', [0x87], { returnCodes: [5] });
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
const disconnectCodes: ReadonlySet<number> = new Set(reasonCodes.disconnect);

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
  // Keel's rule: a PUBLISH to $SYS is refused like an unauthorized one (5.0: 0x87).
  const codes = version === 5 ? (topic !== null && isBrokerTopic(topic) ? [0x87] : [0x00, 0x10]) : [0x00];
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

/**
 * The user names each client id was connected with over the scripts one broker has seen. A
 * session belongs to the user it was made for, so a CONNECT naming a client id that another
 * user's session may still hold may be refused (0x87; 3.1.1: return code 5). "May": whether that
 * session still exists depends on expiries and clean starts this oracle does not follow.
 */
export class SessionOwners {
  private readonly usersByClientId = new Map<string, Set<string>>();

  /** Whether another user may own a session with this CONNECT's client id. */
  mayBelongToAnother(connect: ConnectCase): boolean {
    const clientId = mqttText(connect.clientId);
    if (clientId === null || clientId.length === 0) return false;
    const users = this.usersByClientId.get(clientId);
    if (users === undefined) return false;
    const user = userKey(connect);
    return [...users].some((other) => other !== user);
  }

  /** Records the CONNECTs of a script the broker was given. */
  note(script: Script): void {
    for (const step of script.steps) {
      if (step.kind !== 'connect') continue;
      const clientId = mqttText(step.connect.clientId);
      if (clientId === null || clientId.length === 0) continue;
      const users = this.usersByClientId.get(clientId) ?? new Set<string>();
      users.add(userKey(step.connect));
      this.usersByClientId.set(clientId, users);
    }
  }
}

function userKey(connect: ConnectCase): string {
  if (connect.username === null) return 'anonymous';
  return `user:${mqttText(connect.username) ?? 'not text'}`;
}

/** What the broker may answer to `step` in `state`, and the state after accepting it. */
export function stepVerdict(step: Step, state: ModelState, script: Script, limits: FuzzLimits, owners: SessionOwners | null = null): { verdict: Verdict; accepted: ModelState } {
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
  if (owners?.mayBelongToAnother(connect) === true) problems.may("client id of another user's session", [0x87], { returnCodes: [5] });
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
