/**
 * The code of the listener stages a configuration uses, loaded only then: TLS (node:tls and
 * node:crypto, through tls-handshakes.ts and tls-credentials.ts) for mqtts and wss listeners, the
 * WebSocket upgrade (the `ws` package, which brings node:http, node:https, node:tls and node:zlib
 * with it) for ws and wss ones. A broker with only plain MQTT listeners, the default, loads
 * neither: compiling and keeping that code cost an idle broker about 1.5 MiB of heap and as much
 * again of the `node` binary's pages (measured with bench/broker-bench.ts, scenario `idle`).
 *
 * `loadListenerStages` is awaited once, before the listeners are checked (listener-set.ts), so
 * that everything after it stays synchronous; a stage asked for but not loaded is a bug (assert).
 * With plain listeners only there is nothing to load and startServer does not await at all
 * before it builds the core (`noListenerStages`), as before stages were loaded lazily: the
 * integration tests' watched broker takes the core from startServer synchronously.
 */
import assert from 'node:assert/strict';
import { isTlsProtocol, isWebSocketProtocol, type ListenerConfig } from './listener-config.js';
import type * as TlsCredentialsModule from './tls-credentials.js';
import type * as TlsHandshakesModule from './tls-handshakes.js';
import type * as WebSocketUpgradeModule from './websocket-upgrade.js';

export interface ListenerStages {
  /** tls-credentials.ts and tls-handshakes.ts, when some listener is mqtts or wss; else null. */
  readonly tls: { readonly credentials: typeof TlsCredentialsModule; readonly handshakes: typeof TlsHandshakesModule } | null;
  /** websocket-upgrade.ts, when some listener is ws or wss; else null. */
  readonly webSocket: typeof WebSocketUpgradeModule | null;
}

/** What plain MQTT listeners need: no stage. */
export const noListenerStages: ListenerStages = Object.freeze({ tls: null, webSocket: null });

/** Whether any of `configs` needs a stage loaded (a TLS or WebSocket listener). */
export function needsListenerStages(configs: readonly Pick<ListenerConfig, 'protocol'>[]): boolean {
  return configs.some((config) => isTlsProtocol(config.protocol) || isWebSocketProtocol(config.protocol));
}

/** Loads the stages `configs` use (entries without a known protocol load nothing; the check reports them). */
export async function loadListenerStages(configs: readonly Pick<ListenerConfig, 'protocol'>[]): Promise<ListenerStages> {
  const needsTls = configs.some((config) => isTlsProtocol(config.protocol));
  const needsWebSocket = configs.some((config) => isWebSocketProtocol(config.protocol));
  const [credentials, handshakes, webSocket] = await Promise.all([
    needsTls ? import('./tls-credentials.js') : null,
    needsTls ? import('./tls-handshakes.js') : null,
    needsWebSocket ? import('./websocket-upgrade.js') : null,
  ]);
  const stages: ListenerStages = { tls: credentials === null || handshakes === null ? null : { credentials, handshakes }, webSocket };
  assert.equal(stages.tls !== null, needsTls, 'the TLS stage is loaded exactly when a listener needs it');
  return stages;
}

/** The TLS stage, which `loadListenerStages` loaded for these listeners. */
export function requireTlsStage(stages: ListenerStages): NonNullable<ListenerStages['tls']> {
  assert.ok(stages.tls !== null, 'a TLS listener without the TLS stage loaded (loadListenerStages)');
  return stages.tls;
}

/** The WebSocket stage, which `loadListenerStages` loaded for these listeners. */
export function requireWebSocketStage(stages: ListenerStages): NonNullable<ListenerStages['webSocket']> {
  assert.ok(stages.webSocket !== null, 'a WebSocket listener without the WebSocket stage loaded (loadListenerStages)');
  return stages.webSocket;
}
