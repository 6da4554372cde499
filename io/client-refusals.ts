/**
 * How `keel pub` and `keel sub` put a broker's refusal into words: the name MQTT gives the reason
 * code and the code itself, e.g. `not authorized (0x87)`.
 *
 * Names come from the codec's own tables (src/codec/reason-codes.ts), so the client tools and
 * the broker cannot disagree about what a code means. MQTT 3.1.1 has fewer words than 5.0: its
 * CONNACK return codes 1..5 are a separate table (printed as `return code N`, because 0x05 means
 * something else in 5.0), and its SUBACK failure 0x80 names no reason at all; a 3.1.1 broker that
 * refuses a PUBLISH can only close the connection, which carries no code.
 */
import { ConnackReturnCode311, ReasonCode } from '../src/codec/reason-codes.js';
import type { MqttProtocolVersion } from './client-options.js';

/** Where a code was read: CONNACK has a 3.1.1 table of its own, SUBACK a bare 3.1.1 failure. */
export type ReasonSource = 'connack' | 'suback' | 'ack' | 'disconnect';

/** The lower-case words of a constant's name: `BadUserNameOrPassword` -> `bad user name or password`. */
function words(constantName: string): string {
  return constantName
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .replace(/\bqos\b/g, 'QoS');
}

// Only the failure codes (0x80 and above) have one name each; below that several constants share
// a value (Success, NormalDisconnection, GrantedQos0), and none of them is a refusal.
const reasonNames = new Map(
  Object.entries(ReasonCode)
    .filter(([, code]) => code >= 0x80)
    .map(([constantName, code]) => [code as number, words(constantName)]),
);
const connackReturnNames311 = new Map(
  Object.entries(ConnackReturnCode311)
    .filter(([, code]) => code > 0)
    .map(([constantName, code]) => [code as number, words(constantName)]),
);

function hex(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')}`;
}

/** `not authorized (0x87)`, `not authorized (return code 5)`, or `failure (0x80; MQTT 3.1.1 names no reason)`. */
export function describeReasonCode(code: number, source: ReasonSource, version: MqttProtocolVersion): string {
  if (version !== 5 && source === 'connack') return `${connackReturnNames311.get(code) ?? 'unknown return code'} (return code ${code})`;
  // 3.1.1 calls its one SUBACK failure code "Failure" (section 3.9.3) and has nothing finer.
  if (version !== 5 && source === 'suback') return `failure (${hex(code)}; MQTT 3.1.1 names no reason)`;
  if (source === 'disconnect' && code === ReasonCode.NormalDisconnection) return `normal disconnection (${hex(code)})`;
  return `${reasonNames.get(code) ?? 'unknown reason code'} (${hex(code)})`;
}

/** Appends the broker's MQTT 5 Reason String, when it sent one, to a described code. */
export function withReasonString(described: string, properties: { reasonString?: string } | undefined): string {
  const reasonString = properties?.reasonString;
  return reasonString === undefined || reasonString === '' ? described : `${described}: ${reasonString}`;
}
