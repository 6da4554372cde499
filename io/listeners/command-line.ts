/**
 * Which listeners `keel serve` opens, from its flags and its configuration file.
 *
 * Three ways, never mixed: nothing said (one plain listener on --host and --port, as before
 * listeners existed: 127.0.0.1:1883 by default); the convenience flags for the common case
 * (--tls-port, --ws-port, --wss-port beside the plain --port, all on --host, sharing --cert,
 * --key and --ca); or a `listeners` list in the configuration file, which says everything and
 * so takes no listener flag at all. Mixing the file's list with flags is a usage error that
 * names the flags, because silently preferring one would leave the operator guessing which
 * ports are open. Paths given as flags are relative to the working directory (those in the file
 * are relative to the file, see listener-config.ts).
 */
import { resolve } from 'node:path';
import { type ListenerConfig, listenerDefaults, parseListeners } from './listener-config.js';

export interface ListenerFlags {
  /** --host and --port, and whether each was given on the command line (not defaulted). */
  readonly host?: string | undefined;
  readonly port: number;
  readonly portGiven: boolean;
  readonly tlsPort?: number | undefined;
  readonly wsPort?: number | undefined;
  readonly wssPort?: number | undefined;
  readonly wsPath?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly ca?: string | undefined;
  readonly requireClientCertificate?: boolean | undefined;
  readonly identityAsUsername?: boolean | undefined;
}

export type ListenerChoice =
  /** No listener flags and no list in the file: the one plain listener of --host and --port. */
  | { readonly kind: 'host-and-port' }
  | { readonly kind: 'listeners'; readonly listeners: ListenerConfig[]; readonly fromFile: boolean }
  /** The command line is wrong (exit 2, with --help's hint). */
  | { readonly kind: 'usage'; readonly message: string }
  /**
   * The file's list has problems; `listeners` are its good entries. Both go to startServer, which
   * reports these problems with every other one it finds (certificates, settings) and exits 2.
   */
  | { readonly kind: 'problems'; readonly problems: string[]; readonly listeners: ListenerConfig[] };

/** Flags that open or shape a listener, by their command-line name. */
function givenListenerFlags(flags: ListenerFlags): string[] {
  const given: [string, unknown][] = [
    ['--host', flags.host],
    ['--port', flags.portGiven ? flags.port : undefined],
    ['--tls-port', flags.tlsPort],
    ['--ws-port', flags.wsPort],
    ['--wss-port', flags.wssPort],
    ['--ws-path', flags.wsPath],
    ['--cert', flags.cert],
    ['--key', flags.key],
    ['--ca', flags.ca],
    ['--require-client-certificate', flags.requireClientCertificate],
    ['--identity-as-username', flags.identityAsUsername],
  ];
  return given.filter(([, value]) => value !== undefined && value !== false).map(([name]) => name);
}

/**
 * `fileListeners` is the configuration file's `listeners` value (undefined when absent) and
 * `configDirectory` the file's directory.
 */
export function chooseListeners(flags: ListenerFlags, fileListeners: unknown, configDirectory: string, hostDefault: string): ListenerChoice {
  if (fileListeners !== undefined) {
    const given = givenListenerFlags(flags);
    if (given.length > 0)
      return { kind: 'usage', message: `the config file lists "listeners", so ${given.join(', ')} cannot be used as well: put every listener in the file, or remove "listeners" from it` };
    const parsed = parseListeners(fileListeners, configDirectory);
    return parsed.ok ? { kind: 'listeners', listeners: parsed.listeners, fromFile: true } : { kind: 'problems', problems: parsed.problems, listeners: parsed.listeners };
  }
  const tls = flags.tlsPort !== undefined || flags.wssPort !== undefined;
  const tlsOnly = [
    ['--cert', flags.cert],
    ['--key', flags.key],
    ['--ca', flags.ca],
    ['--require-client-certificate', flags.requireClientCertificate],
    ['--identity-as-username', flags.identityAsUsername],
  ].filter(([, value]) => value !== undefined && value !== false);
  if (!tls && tlsOnly.length > 0) {
    const names = tlsOnly.map(([name]) => name);
    return { kind: 'usage', message: `${names.join(', ')} ${names.length === 1 ? 'needs' : 'need'} --tls-port or --wss-port (a TLS listener to use ${names.length === 1 ? 'it' : 'them'})` };
  }
  if (flags.wsPath !== undefined && flags.wsPort === undefined && flags.wssPort === undefined) return { kind: 'usage', message: '--ws-path needs --ws-port or --wss-port' };
  if (!tls && flags.wsPort === undefined) return { kind: 'host-and-port' };
  return { kind: 'listeners', listeners: listenersFromFlags(flags, hostDefault), fromFile: false };
}

function listenersFromFlags(flags: ListenerFlags, hostDefault: string): ListenerConfig[] {
  const host = flags.host ?? hostDefault;
  const path = flags.wsPath ?? '/mqtt';
  const tls = {
    certFile: flags.cert === undefined ? null : resolve(flags.cert),
    keyFile: flags.key === undefined ? null : resolve(flags.key),
    caFile: flags.ca === undefined ? null : resolve(flags.ca),
    requireClientCertificate: flags.requireClientCertificate === true,
    identityAsUsername: flags.identityAsUsername === true,
  };
  const listeners: ListenerConfig[] = [listenerDefaults('mqtt', host, flags.port)];
  if (flags.tlsPort !== undefined) listeners.push({ ...listenerDefaults('mqtts', host, flags.tlsPort), ...tls });
  if (flags.wsPort !== undefined) listeners.push({ ...listenerDefaults('ws', host, flags.wsPort), path });
  if (flags.wssPort !== undefined) listeners.push({ ...listenerDefaults('wss', host, flags.wssPort), path, ...tls });
  return listeners;
}
