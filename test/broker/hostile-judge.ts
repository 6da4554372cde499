/**
 * The judge for hostile clients: it splits what a broker sent into packets and walks them together
 * with a script's steps, asking the oracle (hostile-oracle.ts) what each step allows. Where a
 * step may be accepted or refused it tries both, because the packets alone do not always say (an
 * accepted QoS 0 PUBLISH is silent). Besides the verdict it says which will must have been
 * published once the connection is gone, and, for a live client, how long to wait after each step.
 */
import { PacketDecoder } from '../../src/codec/decoder.js';
import type { Packet } from '../../src/codec/packets.js';
import { reasonCodes } from '../codec/arbitraries.js';
import { announcedVersion, type FuzzLimits, type Script, type Step, stepBytes, type Version } from '../codec/hostile-arbitraries.js';
import { type Expected, initialState, knownFindings, type ModelState, type Refusal, type SessionOwners, stepVerdict } from './hostile-oracle.js';

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
  owners: SessionOwners | null;
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
  const { verdict, accepted } = stepVerdict(step, state, context.script, context.limits, context.owners);
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
export function judge(script: Script, observation: Observation, limits: FuzzLimits, owners: SessionOwners | null = null): Judgement {
  const framed = frameBytes(observation.bytes);
  if (framed.problem !== null) return { failure: `the broker sent bytes that are not MQTT packets: ${framed.problem}`, willDue: null };
  if (framed.leftover > 0 && observation.brokerClosed) return { failure: 'the broker closed the connection in the middle of a packet', willDue: null };
  const context: Context = { script, frames: framed.frames, brokerClosed: observation.brokerClosed, limits, owners, end: null };
  const failure = judgeFrom(context, 0, 0, initialState);
  owners?.note(script);
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

export function stepHints(script: Script, limits: FuzzLimits, owners: SessionOwners | null = null): StepHint[] {
  let state = initialState;
  return script.steps.map((step) => {
    if (state.phase === 'unknown') return { responses: 0, closes: 'maybe' };
    if (state.phase === 'closed') return { responses: 0, closes: 'yes' };
    const { verdict, accepted } = stepVerdict(step, state, script, limits, owners);
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
