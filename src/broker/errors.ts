/**
 * The one mapping from a protocol violation to what the client is told before its connection is
 * closed. Every handler reports a peer's protocol error by throwing `ProtocolViolation`; the
 * broker catches it at the connection boundary, asks `violationOutcome` what to send, logs it
 * and closes only that connection.
 *
 * - Before CONNECT is accepted, an MQTT 5.0 client gets CONNACK with the reason code
 *   [MQTT-3.2.2-6 allows it]; a client whose protocol level we do not support gets the 3.1.1
 *   CONNACK return code 1 (unacceptable protocol version) [MQTT-3.1.2-2], which 3.1.1 and older
 *   clients understand; other 3.1/3.1.1 failures before CONNECT are a plain close.
 * - After CONNECT, MQTT 5.0 gets DISCONNECT with the reason code [MQTT-4.13.1-1 for malformed
 *   and protocol errors]; 3.1/3.1.1 gets a plain close (that version has no way to say why).
 */
import { ProtocolViolation, protocolError } from '../codec/errors.js';
import { type ConnackPacket, type DisconnectPacket, PacketType, type ProtocolVersion } from '../codec/packets.js';
import { disconnectReasonCodes } from '../codec/reason-code-sets.js';
import { ConnackReturnCode311, ReasonCode } from '../codec/reason-codes.js';

export interface ViolationOutcome {
  /** The packet to send before closing, or null for a plain close. */
  readonly packet: ConnackPacket | DisconnectPacket | null;
  /** The version to encode it with. */
  readonly version: ProtocolVersion;
}

export function violationOutcome(connected: boolean, knownVersion: ProtocolVersion | undefined, violation: ProtocolViolation): ViolationOutcome {
  if (!connected) {
    if (knownVersion === 5) {
      return { packet: { type: PacketType.Connack, sessionPresent: false, reasonCode: violation.reasonCode }, version: 5 };
    }
    if (violation.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
      const packet: ConnackPacket = { type: PacketType.Connack, sessionPresent: false, reasonCode: ConnackReturnCode311.UnacceptableProtocolVersion };
      return { packet, version: 4 };
    }
    return { packet: null, version: knownVersion ?? 4 };
  }
  if (knownVersion === 5) {
    // A reason only CONNACK may carry (0x84 for a second CONNECT of another level, say) becomes
    // a Protocol Error: DISCONNECT has its own set of reason codes (section 3.14.2.1).
    const reasonCode = disconnectReasonCodes.has(violation.reasonCode) ? violation.reasonCode : ReasonCode.ProtocolError;
    return { packet: { type: PacketType.Disconnect, reasonCode }, version: 5 };
  }
  return { packet: null, version: knownVersion ?? 4 };
}

/** A violation with an explicit MQTT 5.0 reason code other than Protocol Error. */
export function violation(reasonCode: number, code: string, message: string): ProtocolViolation {
  return new ProtocolViolation(reasonCode, code, message);
}

export { ProtocolViolation, protocolError };
