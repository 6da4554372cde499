/**
 * The admin listener's settings: the `admin` key of a Keel configuration, which belongs to io/
 * (the core never sees it), so it is taken out of the settings object before the core's
 * `resolveConfig`, which rejects keys it does not know.
 *
 * `"admin": {"host", "port", "tokenFile"}` with defaults 127.0.0.1, 18083 and null; `"admin": null`
 * turns the listener off. Port 0 lets the operating system choose (tests; the chosen port is in
 * the `admin-listening` line). Every problem is reported at once, like the core's settings.
 *
 * The one rule that is about safety rather than form: the admin API can disconnect clients and
 * delete sessions, so a listener on anything but a loopback address must have a token file. On
 * loopback, only users of this machine can reach it, and a token is optional.
 */

export interface AdminConfig {
  /** Interface to listen on. */
  readonly host: string;
  /** TCP port; 0: chosen by the operating system. */
  readonly port: number;
  /** A file holding the bearer token the API asks for; null: no token (loopback only). */
  readonly tokenFile: string | null;
}

/** What `keel serve` uses when the configuration has no `admin` key: on, this machine only. */
export const adminDefaults: AdminConfig = Object.freeze({ host: '127.0.0.1', port: 18083, tokenFile: null });

const adminKeys = new Set(['host', 'port', 'tokenFile']);

/**
 * Splits a settings object into its `admin` part (undefined when the key is absent) and the rest,
 * which is the core's. The object passed in is not changed.
 */
export function takeAdminSettings(settings: Record<string, unknown>): { admin: unknown; core: Record<string, unknown> } {
  if (!Object.hasOwn(settings, 'admin')) return { admin: undefined, core: settings };
  const { admin, ...core } = settings;
  return { admin, core };
}

/**
 * The admin listener's settings from the `admin` value of a configuration: null when turned off,
 * `absent` when the key is missing. Problems are phrased as `admin.<key> ...`.
 */
export function resolveAdminConfig(value: unknown, absent: AdminConfig | null): { ok: true; admin: AdminConfig | null } | { ok: false; problems: string[] } {
  if (value === undefined) return { ok: true, admin: absent };
  if (value === null) return { ok: true, admin: null };
  if (typeof value !== 'object' || Array.isArray(value)) return { ok: false, problems: ['admin must be an object ({"host", "port", "tokenFile"}) or null (no admin listener)'] };
  const given = value as Record<string, unknown>;
  const problems: string[] = [];
  for (const key of Object.keys(given)) if (!adminKeys.has(key)) problems.push(`admin.${key} is not a setting (admin takes host, port and tokenFile)`);
  const host = given.host ?? adminDefaults.host;
  const port = given.port ?? adminDefaults.port;
  const tokenFile = given.tokenFile ?? null;
  if (typeof host !== 'string' || host.length === 0) problems.push('admin.host must be a non-empty string');
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65_535) problems.push('admin.port must be an integer from 0 to 65535 (0: chosen by the operating system)');
  if (tokenFile !== null && (typeof tokenFile !== 'string' || tokenFile.length === 0)) problems.push('admin.tokenFile must be a file name or null');
  if (problems.length > 0) return { ok: false, problems };
  const admin: AdminConfig = { host: host as string, port: port as number, tokenFile: tokenFile as string | null };
  const exposure = exposureProblem(admin);
  return exposure === null ? { ok: true, admin } : { ok: false, problems: [exposure] };
}

/** The admin API reachable from other machines without a token is refused outright. */
function exposureProblem(admin: AdminConfig): string | null {
  if (isLoopbackHost(admin.host) || admin.tokenFile !== null) return null;
  return `admin.host ${admin.host} is reachable from other machines: set admin.tokenFile (the API then asks for that token), or keep the admin listener on 127.0.0.1`;
}

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host.startsWith('::ffff:127.');
}
