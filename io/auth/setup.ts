/**
 * Builds the authenticators the core is given (BrokerOptions.authenticator and
 * .enhancedAuthenticator) from the configuration: `passwordFile`, `allowAnonymous` (null: true
 * without a password file, false with one) and `authenticationMethods`. With neither a password
 * file nor methods, there are none and everybody is anonymous, as before. Every configuration
 * problem is returned at once, for `startServer` to report as a ConfigError.
 */
import type { Authenticator, EnhancedAuthenticator } from '../../src/broker/authenticator.js';
import type { BrokerConfig } from '../../src/config.js';
import type { Logger } from '../logger.js';
import { PasswordAuthenticator } from './password-authenticator.js';
import { PasswordStore } from './password-store.js';
import { ScramSha256Authenticator, scramSha256 } from './scram.js';

export interface Authentication {
  authenticator?: Authenticator;
  enhancedAuthenticator?: EnhancedAuthenticator;
}

export const supportedAuthenticationMethods: readonly string[] = [scramSha256];

export function loadAuthentication(config: BrokerConfig, logger: Logger): Authentication | { problems: string[] } {
  const problems: string[] = [];
  for (const method of config.authenticationMethods) {
    if (!supportedAuthenticationMethods.includes(method)) problems.push(`"authenticationMethods": unknown method "${method}" (supported: ${supportedAuthenticationMethods.join(', ')})`);
  }
  if (config.passwordFile === null) {
    if (config.authenticationMethods.length > 0) problems.push('"authenticationMethods" need a "passwordFile" to verify against');
    if (config.allowAnonymous === false) problems.push('"allowAnonymous": false needs a "passwordFile", or nobody could connect');
    return problems.length > 0 ? { problems } : {};
  }
  const store = PasswordStore.open(config.passwordFile, { log: (level, event, fields) => logger[level](event, fields) });
  if (!(store instanceof PasswordStore)) problems.push(...store.problems);
  if (problems.length > 0 || !(store instanceof PasswordStore)) return { problems };
  const allowAnonymous = config.allowAnonymous ?? false;
  logger.info('authentication', { passwordFile: config.passwordFile, users: store.size, allowAnonymous, methods: config.authenticationMethods.join(',') });
  const authentication: Authentication = { authenticator: new PasswordAuthenticator(store, { allowAnonymous }) };
  if (config.authenticationMethods.includes(scramSha256)) authentication.enhancedAuthenticator = new ScramSha256Authenticator(store);
  return authentication;
}
