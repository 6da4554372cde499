/**
 * The context a benchmark scenario runs with, for tests: the broker's own readings and restart,
 * and small loads (a second of traffic, a few connections) unless a test sets its own.
 */
import type { RunningBroker } from '../../bench/load/peers.js';
import type { ScenarioContext } from '../../bench/load/scenario-kit.js';
import { plainTcp } from '../../bench/load/transport.js';

export function scenarioContext(broker: RunningBroker, settings: Partial<ScenarioContext> = {}): ScenarioContext {
  return {
    port: broker.port,
    transport: plainTcp,
    rssBytes: broker.rssBytes,
    memory: broker.memory,
    heap: broker.heap,
    cpuMicros: broker.cpuMicros,
    cpuSplitMicros: broker.cpuSplitMicros,
    restartBroker: broker.restart,
    idleSeconds: 4,
    connectConcurrency: 100,
    level: 4,
    payloadBytes: 64,
    seconds: 1,
    connections: 10,
    rateMessagesPerSecond: 100,
    latencyWarmupSeconds: 0,
    connectWarmupConnections: 0,
    tlsConnections: 1,
    tlsWarmupConnections: 0,
    ...settings,
  };
}
