/**
 * The seams for authentication, both synchronous so that the core stays a pure state machine.
 *
 * - `Authenticator` decides on a CONNECT that names no authentication method, from its user name
 *   and password. With none configured every such CONNECT is accepted (anonymous access).
 * - `EnhancedAuthenticator` runs MQTT 5.0 enhanced authentication (section 4.12) for the methods
 *   it lists. The core drives the AUTH exchange (handle-auth.ts); the authenticator only turns
 *   each piece of client data into the next step and keeps its own state between steps, which
 *   the core stores on the connection without looking into it. A CONNECT naming a method that no
 *   enhanced authenticator lists is refused with 0x8C Bad authentication method [MQTT-4.12.0-1].
 *
 * Whatever does the cryptography lives in io/ (io/auth/), behind these interfaces.
 */

export interface AuthenticationRequest {
  readonly clientId: string;
  /**
   * The CONNECT's user name. On re-authentication: the identity the first exchange established
   * (`success.identity`), or else the CONNECT's user name, so a method can refuse a change of user.
   * The core refuses one anyway: a re-authentication whose success names another identity ends
   * in DISCONNECT 0x87 (handle-auth.ts).
   */
  readonly username: string | undefined;
  readonly password: Uint8Array | undefined;
  readonly remoteAddress: string;
  readonly protocolVersion: 3 | 4 | 5;
  /** True when a connected client asked to re-authenticate (AUTH 0x19) [MQTT-4.12.1-1]. */
  readonly reauthentication?: boolean;
}

/** `reasonCode` is an MQTT 5.0 CONNACK reason (e.g. 0x86, 0x87); 3.1.1 clients get its equivalent. */
export type AuthenticationDecision = { ok: true } | { ok: false; reasonCode: number };

export interface Authenticator {
  authenticate(request: AuthenticationRequest): AuthenticationDecision;
}

/**
 * One step of an enhanced authentication exchange, as the method decides it:
 * - `continue`: send `data` to the client in AUTH 0x18 and hand its answer, with `state`, to
 *   `EnhancedAuthenticator.continue` [MQTT-4.12.0-2];
 * - `success`: the client is authenticated; `data` goes in the CONNACK (or AUTH 0x00 after a
 *   re-authentication); `identity` names who was authenticated, for later re-authentications;
 * - `failure`: refuse with `reasonCode`, a CONNACK reason of 0x80 or above (0x86, 0x87, 0x8C)
 *   [MQTT-4.12.0-4]. After a re-authentication it is sent in a DISCONNECT, where a code that
 *   DISCONNECT cannot carry (0x86, 0x8C) becomes 0x87 Not authorized [MQTT-4.12.1-2].
 */
export type AuthenticationStep =
  | { readonly kind: 'continue'; readonly data?: Uint8Array; readonly state: unknown }
  | { readonly kind: 'success'; readonly data?: Uint8Array; readonly identity?: string }
  | { readonly kind: 'failure'; readonly reasonCode: number };

export interface EnhancedAuthenticator {
  /** The Authentication Method names this authenticator answers, e.g. "SCRAM-SHA-256". */
  readonly methods: readonly string[];
  /** The first step, from the CONNECT's (or AUTH 0x19's) Authentication Data. */
  start(method: string, data: Uint8Array | undefined, request: AuthenticationRequest): AuthenticationStep;
  /** The next step, from the client's AUTH 0x18 Authentication Data and the previous step's state. */
  continue(state: unknown, data: Uint8Array | undefined): AuthenticationStep;
}
