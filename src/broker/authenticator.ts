/**
 * The seam for authentication. With no authenticator configured, every CONNECT is accepted
 * (anonymous access). An authenticator decides synchronously from the CONNECT's credentials;
 * MQTT 5.0 enhanced authentication (AUTH exchanges) is not implemented yet, so a CONNECT that
 * names an authentication method is refused with 0x8C Bad authentication method.
 */

export interface AuthenticationRequest {
  readonly clientId: string;
  readonly username: string | undefined;
  readonly password: Uint8Array | undefined;
  readonly remoteAddress: string;
  readonly protocolVersion: 3 | 4 | 5;
}

/** `reasonCode` is an MQTT 5.0 CONNACK reason (e.g. 0x86, 0x87); 3.1.1 clients get its equivalent. */
export type AuthenticationDecision = { ok: true } | { ok: false; reasonCode: number };

export interface Authenticator {
  authenticate(request: AuthenticationRequest): AuthenticationDecision;
}
