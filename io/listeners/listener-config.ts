/**
 * The `listeners` setting: which addresses the broker accepts clients on, and how.
 *
 * Listeners are the Node backend's business, not the core's: the core only sees a listener's
 * name and its own connectionsMax (`ListenerInfo`). So `keel serve` takes `listeners` out of the
 * configuration file before the rest goes to `resolveConfig`, and this module checks it: every
 * problem is reported at once, with the listener's position and key, in the manner of
 * `resolveConfig`. Paths to certificate files are resolved against the configuration file's
 * directory here, so that nothing later depends on the working directory.
 *
 * Reading the certificate files (do they exist, does the key match, has the certificate expired)
 * is the next step's (tls-credentials.ts); what is checked here is the shape: a known protocol, a
 * port, a path for WebSockets, certificate settings only where TLS is, no two listeners on one
 * port of one address.
 */
import { isAbsolute, resolve } from 'node:path';

export const listenerProtocols = ['mqtt', 'mqtts', 'ws', 'wss'] as const;
export type ListenerProtocol = (typeof listenerProtocols)[number];

export interface ListenerConfig {
  readonly protocol: ListenerProtocol;
  /** Interface to listen on: an address of this machine, `0.0.0.0` or `::` for all of them. */
  readonly host: string;
  /** 0 lets the operating system choose (tests); the bound port is in the listener's name. */
  readonly port: number;
  /** ws and wss: the HTTP path of the upgrade request, e.g. `/mqtt`; null for mqtt and mqtts. */
  readonly path: string | null;
  /** mqtts and wss: PEM files, absolute paths. */
  readonly certFile: string | null;
  readonly keyFile: string | null;
  /** mqtts and wss: CA certificates that client certificates must verify against. */
  readonly caFile: string | null;
  readonly requireClientCertificate: boolean;
  /** The client certificate's subject CN is the client's user name (needs requireClientCertificate). */
  readonly identityAsUsername: boolean;
  /** Clients connected through this listener at once; null: only the broker-wide limit. */
  readonly connectionsMax: number | null;
  /** mqtt and mqtts: every connection starts with a PROXY protocol v1 or v2 header. */
  readonly proxyProtocol: boolean;
  /** ws and wss: browser origins allowed to connect; null: any. */
  readonly allowedOrigins: readonly string[] | null;
}

/** Without a `host`, a listener is reachable from this machine only, like `keel serve` without --host. */
export const listenerHostDefault = '127.0.0.1';

const knownKeys = ['protocol', 'host', 'port', 'path', 'certFile', 'keyFile', 'caFile', 'requireClientCertificate', 'identityAsUsername', 'connectionsMax', 'proxyProtocol', 'allowedOrigins'];

export function isTlsProtocol(protocol: ListenerProtocol): boolean {
  return protocol === 'mqtts' || protocol === 'wss';
}

export function isWebSocketProtocol(protocol: ListenerProtocol): boolean {
  return protocol === 'ws' || protocol === 'wss';
}

/** The name a listener has in log lines and in the core, e.g. `mqtts:0.0.0.0:8883`. */
export function listenerName(protocol: ListenerProtocol, host: string, port: number): string {
  return `${protocol}:${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** A listener with every optional setting at its default, for the command-line flags and tests. */
export function listenerDefaults(protocol: ListenerProtocol, host: string, port: number): ListenerConfig {
  return {
    protocol,
    host,
    port,
    path: isWebSocketProtocol(protocol) ? '/mqtt' : null,
    certFile: null,
    keyFile: null,
    caFile: null,
    requireClientCertificate: false,
    identityAsUsername: false,
    connectionsMax: null,
    proxyProtocol: false,
    allowedOrigins: null,
  };
}

/** When not ok, `listeners` holds the entries that were fine, so that their certificates can be checked too. */
export type ParsedListeners = { ok: true; listeners: ListenerConfig[] } | { ok: false; problems: string[]; listeners: ListenerConfig[] };

/**
 * Checks the `listeners` value of a configuration file. `baseDirectory` is the file's directory,
 * against which relative certificate paths are resolved.
 */
export function parseListeners(value: unknown, baseDirectory: string): ParsedListeners {
  if (!Array.isArray(value) || value.length === 0) return { ok: false, problems: ['"listeners" must be a non-empty array of listener objects'], listeners: [] };
  const problems: string[] = [];
  const listeners: ListenerConfig[] = [];
  value.forEach((entry, index) => {
    const parsed = parseListener(entry, `listeners[${index}]`, baseDirectory, problems);
    if (parsed !== null) listeners.push(parsed);
  });
  problems.push(...listenerConflicts(listeners));
  return problems.length === 0 ? { ok: true, listeners } : { ok: false, problems, listeners };
}

/** The problems of a list of listeners built elsewhere (command-line flags, tests). */
export function checkListeners(listeners: readonly ListenerConfig[]): string[] {
  const problems: string[] = [];
  listeners.forEach((listener, index) => {
    problems.push(...listenerRuleProblems(listener, `listener ${listenerName(listener.protocol, listener.host, listener.port)} (#${index + 1})`));
  });
  problems.push(...listenerConflicts(listeners));
  return problems;
}

function parseListener(entry: unknown, where: string, baseDirectory: string, problems: string[]): ListenerConfig | null {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    problems.push(`${where}: must be an object like {"protocol": "mqtt", "host": "0.0.0.0", "port": 1883}`);
    return null;
  }
  const fields = entry as Record<string, unknown>;
  const before = problems.length;
  for (const key of Object.keys(fields)) if (!knownKeys.includes(key)) problems.push(`${where}: unknown key "${key}" (known: ${knownKeys.join(', ')})`);
  const protocol = fields.protocol;
  if (!(listenerProtocols as readonly unknown[]).includes(protocol)) {
    problems.push(`${where}: "protocol" must be one of ${listenerProtocols.join(', ')}${protocol === undefined ? '' : ` (got ${JSON.stringify(protocol)})`}`);
    return null;
  }
  const read = new FieldReader(fields, where, problems);
  const listener: ListenerConfig = {
    protocol: protocol as ListenerProtocol,
    host: read.string('host') ?? listenerHostDefault,
    port: read.port(),
    path: read.string('path'),
    certFile: read.file('certFile', baseDirectory),
    keyFile: read.file('keyFile', baseDirectory),
    caFile: read.file('caFile', baseDirectory),
    requireClientCertificate: read.boolean('requireClientCertificate'),
    identityAsUsername: read.boolean('identityAsUsername'),
    connectionsMax: read.connectionsMax(),
    proxyProtocol: read.boolean('proxyProtocol'),
    allowedOrigins: read.origins(),
  };
  problems.push(...listenerRuleProblems(listener, where));
  return problems.length === before ? listener : null;
}

/**
 * What a listener of its protocol may and must have. A setting that does not apply to it is a
 * problem when it asks for something (false and null ask for nothing).
 */
function listenerRuleProblems(listener: ListenerConfig, where: string): string[] {
  const problems: string[] = [];
  const present = (key: keyof ListenerConfig): boolean => listener[key] !== null && listener[key] !== false;
  const tls = isTlsProtocol(listener.protocol);
  const webSocket = isWebSocketProtocol(listener.protocol);
  if (tls) {
    if (listener.certFile === null) problems.push(`${where}: a ${listener.protocol} listener needs "certFile" (its certificate, PEM)`);
    if (listener.keyFile === null) problems.push(`${where}: a ${listener.protocol} listener needs "keyFile" (the certificate's private key, PEM)`);
    if (listener.requireClientCertificate && listener.caFile === null) problems.push(`${where}: "requireClientCertificate" needs "caFile" (the CA that client certificates must verify against)`);
    if (listener.identityAsUsername && !listener.requireClientCertificate)
      problems.push(`${where}: "identityAsUsername" needs "requireClientCertificate": true (a user name must come from a verified certificate)`);
  } else {
    for (const key of ['certFile', 'keyFile', 'caFile', 'requireClientCertificate', 'identityAsUsername'] as const) {
      if (present(key)) problems.push(`${where}: "${key}" is for TLS listeners (mqtts, wss), not ${listener.protocol}`);
    }
  }
  if (webSocket) {
    if (listener.path === null) problems.push(`${where}: a ${listener.protocol} listener needs "path" (the URL path clients connect to, e.g. "/mqtt")`);
    else if (!listener.path.startsWith('/')) problems.push(`${where}: "path" must start with "/" (got ${JSON.stringify(listener.path)})`);
    if (present('proxyProtocol')) problems.push(`${where}: "proxyProtocol" is for mqtt and mqtts listeners, not ${listener.protocol}`);
  } else {
    if (present('path')) problems.push(`${where}: "path" is for WebSocket listeners (ws, wss), not ${listener.protocol}`);
    if (present('allowedOrigins')) problems.push(`${where}: "allowedOrigins" is for WebSocket listeners (ws, wss), not ${listener.protocol}`);
  }
  return problems;
}

/** Two listeners cannot share a port on one address, nor on any address when one takes them all. */
function listenerConflicts(listeners: readonly ListenerConfig[]): string[] {
  const problems: string[] = [];
  for (let first = 0; first < listeners.length; first++) {
    for (let second = first + 1; second < listeners.length; second++) {
      const a = listeners[first]!;
      const b = listeners[second]!;
      if (a.port === 0 || a.port !== b.port) continue;
      if (a.host === b.host || isWildcard(a.host) || isWildcard(b.host)) {
        problems.push(`listeners ${listenerName(a.protocol, a.host, a.port)} and ${listenerName(b.protocol, b.host, b.port)} use the same port ${a.port}: give each its own`);
      }
    }
  }
  return problems;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

/** Reads one listener's fields, noting a problem for each value of the wrong type. */
class FieldReader {
  constructor(
    private readonly fields: Record<string, unknown>,
    private readonly where: string,
    private readonly problems: string[],
  ) {}

  string(key: string): string | null {
    const value = this.fields[key];
    if (value === undefined || value === null) return null;
    if (typeof value === 'string' && value.length > 0) return value;
    this.problems.push(`${this.where}: "${key}" must be a non-empty string`);
    return null;
  }

  boolean(key: string): boolean {
    const value = this.fields[key];
    if (value === undefined || value === null) return false;
    if (typeof value === 'boolean') return value;
    this.problems.push(`${this.where}: "${key}" must be true or false`);
    return false;
  }

  port(): number {
    const value = this.fields.port;
    if (Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 65_535) return value as number;
    this.problems.push(`${this.where}: "port" must be an integer from 0 to 65535${value === undefined ? ' (it is required)' : ''}`);
    return 0;
  }

  file(key: string, baseDirectory: string): string | null {
    const value = this.string(key);
    if (value === null) return null;
    return isAbsolute(value) ? value : resolve(baseDirectory, value);
  }

  connectionsMax(): number | null {
    const value = this.fields.connectionsMax;
    if (value === undefined || value === null) return null;
    if (Number.isInteger(value) && (value as number) >= 1) return value as number;
    this.problems.push(`${this.where}: "connectionsMax" must be a positive integer or null`);
    return null;
  }

  origins(): string[] | null {
    const value = this.fields.allowedOrigins;
    if (value === undefined || value === null) return null;
    if (!Array.isArray(value) || value.length === 0 || !value.every((origin) => typeof origin === 'string')) {
      this.problems.push(`${this.where}: "allowedOrigins" must be a non-empty array of origins like "https://example.com"`);
      return null;
    }
    const origins: string[] = [];
    for (const origin of value as string[]) {
      const normalized = normalizeOrigin(origin);
      if (normalized === null) this.problems.push(`${this.where}: "allowedOrigins": ${JSON.stringify(origin)} is not an origin (scheme://host[:port], no path)`);
      else origins.push(normalized);
    }
    return origins;
  }
}

/**
 * An origin as browsers send it in the `Origin` header (lower-case scheme and host, default port
 * left out), or null when `text` is not one.
 */
export function normalizeOrigin(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return null;
  }
  if (url.origin === 'null' || url.pathname.length > 1 || url.search !== '' || url.hash !== '' || url.username !== '') return null;
  return url.origin;
}
