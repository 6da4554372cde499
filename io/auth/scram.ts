/**
 * SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash) as an MQTT 5.0 enhanced authentication method,
 * server side, against the `scram-sha-256$...` entries of the password file.
 *
 * The four messages ride in Authentication Data, as in the spec's non-normative example:
 *   CONNECT (or AUTH 0x19)  client-first  "n,,n=user,r=client-nonce"
 *   AUTH 0x18               server-first  "r=client-nonce+server-nonce,s=salt,i=iterations"
 *   AUTH 0x18               client-final  "c=biws,r=nonce,p=client-proof"
 *   CONNACK 0x00 (AUTH 0x00) server-final "v=server-signature"
 * The server proves it knows the ServerKey; the client proves it knows the password without
 * sending it. The server keeps only StoredKey and ServerKey, so it never derives the salted
 * password and the exchange costs a few HMACs.
 *
 * Refusals: wrong proof, unknown user or a user with only a scrypt hash: 0x86; a malformed
 * message, channel binding ("p="), an authorization identity other than the user, or a user
 * other than the CONNECT's user name (or, on re-authentication, the identity already
 * authenticated): 0x87.
 *
 * Unknown users (RFC 5802 section 9): a name without SCRAM keys gets decoy credentials
 * (decoy.ts): a salt of the real entries' length and one of their iteration counts, derived from
 * the name and a per-process secret, so the same name always gets the same server-first
 * message, and the exchange fails only at the proof. Both paths do the same work: the decoy is
 * derived for every exchange, known user or not, and the proof is checked the same way, so
 * neither the messages nor their timing tell which users exist.
 *
 * Not done: SASLprep (names and passwords are compared as UTF-8 bytes), channel binding
 * (SCRAM-SHA-256-PLUS).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthenticationRequest, AuthenticationStep, EnhancedAuthenticator } from '../../src/broker/authenticator.js';
import { ReasonCode } from '../../src/codec/reason-codes.js';
import { Decoys } from './decoy.js';
import type { ScramHash } from './password-file.js';
import type { PasswordStore } from './password-store.js';

export const scramSha256 = 'SCRAM-SHA-256';
/** SCRAM messages are short; anything longer is refused before it is parsed. */
const messageBytesMax = 2_048;
const serverNonceBytes = 18;

interface ScramState {
  readonly username: string;
  readonly gs2Header: string;
  readonly clientFirstBare: string;
  readonly serverFirst: string;
  readonly nonce: string;
  readonly credentials: ScramHash;
  /** False for a made-up user: the exchange runs to the proof and then fails. */
  readonly known: boolean;
}

export class ScramSha256Authenticator implements EnhancedAuthenticator {
  readonly methods = [scramSha256];

  /**
   * `serverNonce` is injectable so that tests can replay RFC 7677's example exchange; `decoys` is
   * shared with the password authenticator, so that both show an unknown name the same decoy.
   */
  constructor(
    private readonly store: PasswordStore,
    private readonly serverNonce: () => string = () => randomBytes(serverNonceBytes).toString('base64'),
    private readonly decoys: Decoys = new Decoys(),
  ) {}

  start(method: string, data: Uint8Array | undefined, request: AuthenticationRequest): AuthenticationStep {
    if (method !== scramSha256) return { kind: 'failure', reasonCode: ReasonCode.BadAuthenticationMethod };
    const text = decode(data);
    if (text === null) return notAuthorized;
    const first = parseClientFirst(text);
    if (first === null) return notAuthorized;
    // The SCRAM user must be the one the CONNECT named, or the one authenticated before.
    if (request.username !== undefined && request.username !== first.username) return notAuthorized;
    const entry = this.store.lookup(first.username);
    // Derived whether or not it is used, so that a known user costs what an unknown one does.
    const decoy = this.decoys.scram(first.username, this.store.profile);
    const known = entry !== undefined && entry.hash.kind === 'scram-sha-256';
    const credentials = known ? (entry.hash as ScramHash) : decoy;
    const nonce = first.clientNonce + this.serverNonce();
    const serverFirst = `r=${nonce},s=${credentials.salt.toString('base64')},i=${credentials.iterations}`;
    const state: ScramState = { username: first.username, gs2Header: first.gs2Header, clientFirstBare: first.bare, serverFirst, nonce, credentials, known };
    return { kind: 'continue', data: Buffer.from(serverFirst, 'utf8'), state };
  }

  continue(state: unknown, data: Uint8Array | undefined): AuthenticationStep {
    const scram = state as ScramState;
    const text = decode(data);
    if (text === null) return notAuthorized;
    const final = parseClientFinal(text);
    if (final === null) return notAuthorized;
    if (final.channelBinding !== Buffer.from(scram.gs2Header, 'utf8').toString('base64') || final.nonce !== scram.nonce) return notAuthorized;
    const authMessage = `${scram.clientFirstBare},${scram.serverFirst},${final.withoutProof}`;
    const clientSignature = hmac(scram.credentials.storedKey, authMessage);
    if (final.proof.length !== clientSignature.length) return badCredentials;
    const clientKey = Buffer.alloc(clientSignature.length);
    for (let index = 0; index < clientKey.length; index++) clientKey[index] = final.proof[index]! ^ clientSignature[index]!;
    const storedKey = createHash('sha256').update(clientKey).digest();
    if (!timingSafeEqual(storedKey, scram.credentials.storedKey) || !scram.known) return badCredentials;
    const serverSignature = hmac(scram.credentials.serverKey, authMessage);
    return { kind: 'success', data: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'), identity: scram.username };
  }
}

const notAuthorized: AuthenticationStep = { kind: 'failure', reasonCode: ReasonCode.NotAuthorized };
const badCredentials: AuthenticationStep = { kind: 'failure', reasonCode: ReasonCode.BadUserNameOrPassword };
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

function hmac(key: Uint8Array, message: string): Buffer {
  return createHmac('sha256', key).update(message, 'utf8').digest();
}

function decode(data: Uint8Array | undefined): string | null {
  if (data === undefined || data.length === 0 || data.length > messageBytesMax) return null;
  try {
    return fatalUtf8.decode(data);
  } catch {
    return null;
  }
}

/** RFC 5802 section 5.1: "=2C" is a comma and "=3D" an equals sign; any other "=" is malformed. */
function decodeSaslName(value: string): string | null {
  if (/=(?!2C|3D)/.test(value)) return null;
  return value.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/** A printable ASCII nonce without commas (RFC 5802 section 7). */
function isNonce(value: string): boolean {
  return value.length > 0 && /^[\x21-\x2b\x2d-\x7e]+$/.test(value);
}

export function parseClientFirst(text: string): { gs2Header: string; bare: string; username: string; clientNonce: string } | null {
  const first = text.indexOf(',');
  const second = first < 0 ? -1 : text.indexOf(',', first + 1);
  if (second < 0) return null;
  const flag = text.slice(0, first);
  // "n": the client does not do channel binding; "y": it could, but thinks we cannot. "p=": unsupported.
  if (flag !== 'n' && flag !== 'y') return null;
  const gs2Header = text.slice(0, second + 1);
  const bare = text.slice(second + 1);
  const attributes = bare.split(',');
  // Extensions are `x=value`; "m=" is a mandatory one we do not know, so it must fail (RFC 5802 5.1).
  if (attributes.length < 2 || attributes.some((attribute) => !/^[A-Za-z]=/.test(attribute) || attribute.startsWith('m='))) return null;
  if (!attributes[0]!.startsWith('n=') || !attributes[1]!.startsWith('r=')) return null;
  const username = decodeSaslName(attributes[0]!.slice(2));
  const clientNonce = attributes[1]!.slice(2);
  if (username === null || username.length === 0 || !isNonce(clientNonce)) return null;
  const authzid = text.slice(first + 1, second);
  if (authzid !== '' && (!authzid.startsWith('a=') || decodeSaslName(authzid.slice(2)) !== username)) return null;
  return { gs2Header, bare, username, clientNonce };
}

export function parseClientFinal(text: string): { channelBinding: string; nonce: string; proof: Buffer; withoutProof: string } | null {
  const proofAt = text.lastIndexOf(',p=');
  if (proofAt < 0) return null;
  const withoutProof = text.slice(0, proofAt);
  const proofText = text.slice(proofAt + 3);
  const attributes = withoutProof.split(',');
  if (attributes.length < 2 || !attributes[0]!.startsWith('c=') || !attributes[1]!.startsWith('r=')) return null;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(proofText)) return null;
  return { channelBinding: attributes[0]!.slice(2), nonce: attributes[1]!.slice(2), proof: Buffer.from(proofText, 'base64'), withoutProof };
}
