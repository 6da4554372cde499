/**
 * Warm start: before a server opens its real listeners, it runs a few thousand MQTT connections
 * through a throwaway broker over real loopback sockets, so that the first reconnect storm after a
 * restart meets compiled code instead of V8's interpreter. Off unless `warmUpConnections` asks
 * for it: it halves the CPU of the first connections after listening, but spends more CPU before
 * listening than that saves, so it helps only behind a readiness check (README, "Warm start").
 *
 * Why real sockets: a cold broker's CPU per connection is about three times a warm one's, and most
 * of that penalty is Node's own socket path (accept, `net.Socket` and its stream states, the
 * CONNACK's write), which only real connections exercise; a throwaway core driven without sockets
 * warmed only the core's third and bought nothing measurable (README, "Tried and dropped").
 *
 * What it owns: a temporary data directory, a `Broker` over a `DurableStateStore` there (the very
 * classes the real server uses, so that the code V8 optimizes here sees the same object shapes as
 * the real broker's and is not made polymorphic by stand-ins), a `NodeHost` with a silent logger,
 * one plain listener on 127.0.0.1 with a port chosen by the operating system, and the client
 * sockets. Each client sends a CONNECT (3.1.1 and 5.0 alternately, clean start, a client id that
 * only the throwaway broker ever sees), waits for its CONNACK, sends DISCONNECT and closes.
 *
 * What it guarantees: nothing of it reaches the real server. The real core, its host, its
 * listeners, its logger and its metrics are not passed in and never hear of these connections;
 * the throwaway broker is stopped and its directory removed before `warmUp` resolves. A
 * connection that fails is counted, and the whole run is bounded by `deadlineMs`, after which what
 * is left is destroyed; the server logs a failure and starts anyway (io/server.ts).
 *
 * What it assumes: the host may bind 127.0.0.1 (every Linux and macOS host can), and the process
 * has `concurrency` × 2 file descriptors to spare for a moment.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker } from '../src/broker/broker.js';
import { encodePacket, PacketType, type ProtocolVersion } from '../src/codec/index.js';
import { outputReportStepBytes, outputResumeBytes, resolveConfig } from '../src/config.js';
import { Driver } from '../src/driver.js';
import { DurableStateStore, durableStoreOptionsFor } from '../src/store/durable-store.js';
import type { Clock } from './clock.js';
import { listenerDefaults } from './listeners/listener-config.js';
import { ListenerSet } from './listeners/listener-set.js';
import { noListenerStages } from './listeners/stages.js';
import { Logger } from './logger.js';
import { NodeHost } from './node-host.js';

export interface WarmUpOptions {
  /** Connections to run through the throwaway broker; at least 1. */
  readonly connections: number;
  /** Handshakes in flight at once. */
  readonly concurrency: number;
  /** The whole run ends by then, finished or not. */
  readonly deadlineMs: number;
  readonly clock: Clock;
  /**
   * Whether the real core builds its info lines (BrokerOptions.logInfo): the throwaway core does
   * the same, so that the code it warms is the code the real one runs (its host drops the lines).
   */
  readonly logInfo: boolean;
}

export interface WarmUpReport {
  /** Connections that got their CONNACK. */
  readonly connected: number;
  /** Connections that failed (refused, reset, or cut by the deadline). */
  readonly failed: number;
  readonly durationMs: number;
  readonly timedOut: boolean;
}

/**
 * Enough connections to bring the CONNECT path near its warm cost (measured in batches of 250:
 * the CPU per connection kept falling until about 2,000). The warm start is off unless asked for:
 * see the module comment of io/server.ts and the README's figures for why.
 */
export const warmUpConnectionsSuggested = 2_000;
/** Bounds of the `warmUpConnections` setting; 0 turns the warm-up off. */
export const warmUpConnectionsMax = 100_000;
export const warmUpConcurrency = 100;
/** However slow the machine, the start is delayed by at most this much. */
export const warmUpDeadlineMs = 5_000;

/** The problem with a `warmUpConnections` value, or null when it is usable. */
export function warmUpConnectionsProblem(value: unknown): string | null {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= warmUpConnectionsMax) return null;
  return `warmUpConnections must be an integer from 0 (no warm-up) to ${warmUpConnectionsMax}`;
}

export async function warmUp(options: WarmUpOptions): Promise<WarmUpReport> {
  assert.ok(Number.isInteger(options.connections) && options.connections >= 1, 'warm-up needs at least one connection');
  assert.ok(Number.isInteger(options.concurrency) && options.concurrency >= 1, 'warm-up needs a positive concurrency');
  const startedMs = options.clock.nowMs();
  const dataDirectory = mkdtempSync(join(tmpdir(), 'keel-warm-up-'));
  const throwaway = await startThrowaway(dataDirectory, options.clock, options.logInfo);
  try {
    const outcome = await runClients(throwaway.port, options);
    return { ...outcome, durationMs: Math.round(options.clock.nowMs() - startedMs) };
  } finally {
    await throwaway.stop();
    rmSync(dataDirectory, { recursive: true, force: true });
  }
}

interface Throwaway {
  readonly port: number;
  stop(): Promise<void>;
}

/** A broker with default settings, its host and one plain listener, as startServer wires them. */
async function startThrowaway(dataDirectory: string, clock: Clock, logInfo: boolean): Promise<Throwaway> {
  const resolved = resolveConfig({});
  assert.ok(resolved.ok, 'the default configuration resolves');
  const config = resolved.config;
  const silent = new Logger('silent');
  const core = new Broker({ config, nowMs: clock.nowMs(), store: new DurableStateStore(durableStoreOptionsFor(config)), logDebug: false, logInfo, version: 'keel warm-up' });
  const host = new NodeHost({ clock, logger: silent, dataDirectory, writeBatching: 'input', outputReportStepBytes: outputReportStepBytes(config), outputResumeBytes: outputResumeBytes(config) });
  const driver = new Driver(core, host);
  host.attach(driver);
  driver.start(clock.nowMs());
  await host.whenReady();
  const prepared = { configs: [listenerDefaults('mqtt', '127.0.0.1', 0)], credentials: [null], warnings: [], stages: noListenerStages };
  const context = { host, log: () => undefined, connectTimeoutMs: config.connectTimeoutMs, packetBytesMax: config.packetBytesMax, webSocketPingIntervalMs: 30_000 };
  let listeners: ListenerSet;
  try {
    listeners = await ListenerSet.start(prepared, context);
  } catch (error) {
    await host.stop(0);
    throw error;
  }
  const port = listeners.addresses[0]!.port;
  assert.ok(port > 0, 'the warm-up listener is bound');
  return {
    port,
    stop: async () => {
      const closed = listeners.close();
      await host.stop(0);
      await closed;
    },
  };
}

/** The CONNECT of client `index` (3.1.1 for even indexes, 5.0 for odd ones) and the DISCONNECT. */
function clientPackets(index: number): { connect: Uint8Array; disconnect: Uint8Array } {
  const version: ProtocolVersion = index % 2 === 0 ? 4 : 5;
  const connect = encodePacket({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: version, cleanStart: true, keepAliveSeconds: 60, clientId: `keel-warm-up-${index}` }, version);
  const disconnect = encodePacket({ type: PacketType.Disconnect, reasonCode: 0 }, version);
  return { connect, disconnect };
}

/** Opens `connections` clients, `concurrency` at a time, each CONNECT, CONNACK, DISCONNECT, close. */
function runClients(port: number, options: WarmUpOptions): Promise<Omit<WarmUpReport, 'durationMs'>> {
  return new Promise((resolve) => {
    const open = new Set<net.Socket>();
    let started = 0;
    let connected = 0;
    let failed = 0;
    let finished = false;
    const finish = (timedOut: boolean): void => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      const cut = [...open];
      open.clear();
      failed += cut.length;
      for (const socket of cut) socket.destroy();
      resolve({ connected, failed, timedOut });
    };
    const deadline = setTimeout(() => finish(true), options.deadlineMs);
    const startNext = (): void => {
      if (finished) return;
      if (started === options.connections) {
        if (open.size === 0) finish(false);
        return;
      }
      const packets = clientPackets(started++);
      const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
      let acknowledged = false;
      open.add(socket);
      socket.on('connect', () => socket.write(packets.connect));
      socket.on('data', (chunk: Buffer) => {
        if (acknowledged) return;
        acknowledged = true;
        // A CONNACK whose return code / reason code (its fourth byte) is 0 accepts the client.
        if (chunk[0] === 0x20 && chunk[3] === 0) connected++;
        else failed++;
        socket.end(packets.disconnect);
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (!open.delete(socket)) return;
        if (!acknowledged) failed++;
        startNext();
      });
    };
    for (let slot = 0; slot < options.concurrency; slot++) startNext();
  });
}
