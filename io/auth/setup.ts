/**
 * Builds the authenticators the core is given (BrokerOptions.authenticator and
 * .enhancedAuthenticator) from the configuration: `passwordFile`, `allowAnonymous` (null: true
 * without a password file, false with one) and `authenticationMethods`. With neither a password
 * file nor methods, there are none and everybody is anonymous, as before. Every configuration
 * problem is returned at once, for `startServer` to report as a ConfigError. The password store
 * is returned beside them, for the server to reload on SIGHUP (io/reload.ts).
 *
 * Both authenticators share one set of decoys (decoy.ts), so that a name the file does not have
 * looks the same to a CONNECT password check and to a SCRAM exchange.
 */
import type { Authenticator, EnhancedAuthenticator } from '../../src/broker/authenticator.js';
import type { BrokerConfig } from '../../src/config.js';
import type { Logger } from '../logger.js';
import { Decoys } from './decoy.js';
import { PasswordAuthenticator } from './password-authenticator.js';
import { PasswordStore } from './password-store.js';
import { ScramSha256Authenticator, scramSha256 } from './scram.js';

export interface Authentication {
  authenticator?: Authenticator;
  enhancedAuthenticator?: EnhancedAuthenticator;
}

export interface LoadedAuthentication {
  /** What the core is given. */
  readonly authentication: Authentication;
  /** The password file, when there is one. */
  readonly passwordStore: PasswordStore | null;
}

export const supportedAuthenticationMethods: readonly string[] = [scramSha256];

export function loadAuthentication(config: BrokerConfig, logger: Logger): LoadedAuthentication | { problems: string[] } {
  const problems: string[] = [];
  for (const method of config.authenticationMethods) {
    if (!supportedAuthenticationMethods.includes(method)) problems.push(`"authenticationMethods": unknown method "${method}" (supported: ${supportedAuthenticationMethods.join(', ')})`);
  }
  if (config.passwordFile === null) {
    if (config.authenticationMethods.length > 0) problems.push('"authenticationMethods" need a "passwordFile" to verify against');
    if (config.allowAnonymous === false) problems.push('"allowAnonymous": false needs a "passwordFile", or nobody could connect');
    return problems.length > 0 ? { problems } : { authentication: {}, passwordStore: null };
  }
  const store = PasswordStore.open(config.passwordFile, { log: (level, event, fields) => logger[level](event, fields) });
  if (!(store instanceof PasswordStore)) problems.push(...store.problems);
  if (problems.length > 0 || !(store instanceof PasswordStore)) return { problems };
  const allowAnonymous = config.allowAnonymous ?? false;
  logger.info('authentication', { passwordFile: config.passwordFile, users: store.size, allowAnonymous, methods: config.authenticationMethods.join(',') });
  const decoys = new Decoys();
  const authentication: Authentication = { authenticator: new PasswordAuthenticator(store, { allowAnonymous, decoys }) };
  if (config.authenticationMethods.includes(scramSha256)) authentication.enhancedAuthenticator = new ScramSha256Authenticator(store, undefined, decoys);
  return { authentication, passwordStore: store };
}
