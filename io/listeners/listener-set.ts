/**
 * All of a server's listeners, started as one: either every one of them listens, or none does.
 *
 * Start-up is in two steps, so that a bad configuration stops the broker before anything is
 * bound or any data directory is claimed: `prepareListeners` checks the list (listener-config.ts)
 * and reads and checks every certificate (tls-credentials.ts), returning every problem at once;
 * `startListeners`, once the core is ready, binds the ports in the order given. If one cannot be
 * bound (a port in use), the ones already bound are closed again before the error goes up, so the
 * caller can release the data directory and exit with nothing half-started; the error names the
 * listener's address.
 */
import assert from 'node:assert/strict';
import type { Reloadable } from '../reload.js';
import type { HandshakeFailureCounters } from './handshake-failures.js';
import { type BoundAddress, Listener, type ListenerContext } from './listener.js';
import { checkListeners, isTlsProtocol, type ListenerConfig, listenerName } from './listener-config.js';
import { type ListenerStages, requireTlsStage } from './stages.js';
import type { CredentialsLog, WatchedCredentials } from './tls-credentials.js';

export interface PreparedListeners {
  readonly configs: readonly ListenerConfig[];
  /** Per listener, in order: its watched certificate, or null for a listener without TLS. */
  readonly credentials: readonly (WatchedCredentials | null)[];
  /** Certificates that expire soon; the server logs them. */
  readonly warnings: readonly string[];
  /** The code of the stages these listeners use (stages.ts). */
  readonly stages: ListenerStages;
}

/**
 * Checks the listeners and reads their certificates; every problem is returned, nothing is bound.
 * `stages` must hold what `configs` use (loadListenerStages).
 */
export function prepareListeners(configs: readonly ListenerConfig[], log: CredentialsLog, stages: ListenerStages): PreparedListeners | { problems: string[] } {
  const problems = checkListeners(configs);
  const warnings: string[] = [];
  const credentials = configs.map((config) => {
    if (!isTlsProtocol(config.protocol) || config.certFile === null || config.keyFile === null) return null;
    const opened = requireTlsStage(stages).credentials.WatchedCredentials.open(
      { certFile: config.certFile, keyFile: config.keyFile, caFile: config.caFile },
      listenerName(config.protocol, config.host, config.port),
      log,
    );
    if ('problems' in opened) {
      problems.push(...opened.problems.map((problem) => `listener ${listenerName(config.protocol, config.host, config.port)}: ${problem}`));
      return null;
    }
    if (opened.current.expiryWarning !== null) warnings.push(opened.current.expiryWarning);
    return opened;
  });
  if (problems.length > 0) return { problems };
  assert.equal(credentials.length, configs.length, 'one credentials slot per listener');
  return { configs, credentials, warnings, stages };
}

/** Running listeners, with what the server reports and reloads of them. */
export class ListenerSet {
  private constructor(private readonly listeners: readonly Listener[]) {}

  /** Binds every listener in order; on a failure closes those bound and rethrows. */
  static async start(prepared: PreparedListeners, context: ListenerContext): Promise<ListenerSet> {
    const listeners = prepared.configs.map((config, index) => new Listener(config, prepared.credentials[index] ?? null, context, prepared.stages));
    const started: Listener[] = [];
    try {
      for (const listener of listeners) {
        await listener.listen();
        started.push(listener);
      }
    } catch (error) {
      await Promise.all(listeners.map((listener) => listener.close()));
      throw error;
    }
    assert.equal(started.length, prepared.configs.length, 'every listener is bound, or the start failed');
    return new ListenerSet(started);
  }

  get addresses(): BoundAddress[] {
    return this.listeners.map((listener) => listener.address!);
  }

  /** Handshake failures per listener name (see handshake-failures.ts). */
  counters(): Record<string, HandshakeFailureCounters> {
    return Object.fromEntries(this.listeners.map((listener) => [listener.name, { ...listener.failures.counters }]));
  }

  /** The certificates SIGHUP reloads. */
  reloadables(): Reloadable[] {
    return this.listeners.flatMap((listener) => (listener.reloadable === null ? [] : [listener.reloadable]));
  }

  /** Stops accepting on every listener. */
  async close(): Promise<void> {
    await Promise.all(this.listeners.map((listener) => listener.close()));
  }
}
