/**
 * The one error type the codec raises for bad input from a peer.
 *
 * Decoding and validation report a protocol violation by throwing `ProtocolViolation`. It never
 * escapes the core: the broker catches it at the connection boundary and turns it into the
 * reason code it carries (MQTT 5.0 DISCONNECT or CONNACK) or a plain close (MQTT 3.1.1). Any other
 * exception out of the codec is a bug.
 */
import { ReasonCode } from './reason-codes.js';

export class ProtocolViolation extends Error {
  /** The MQTT 5.0 reason code the broker sends when it closes the connection for this. */
  readonly reasonCode: number;
  /** Stable machine-readable code for logs and tests, e.g. `remaining-length-malformed`. */
  readonly code: string;

  constructor(reasonCode: number, code: string, message: string) {
    super(message);
    this.name = 'ProtocolViolation';
    this.reasonCode = reasonCode;
    this.code = code;
  }
}

export function malformed(code: string, message: string): ProtocolViolation {
  return new ProtocolViolation(ReasonCode.MalformedPacket, code, message);
}

export function protocolError(code: string, message: string): ProtocolViolation {
  return new ProtocolViolation(ReasonCode.ProtocolError, code, message);
}
