/**
 * Shared machinery for the listener tests: a broker in this process with a list of listeners on
 * 127.0.0.1 (ports chosen by the system) whose log lines are kept for the test to read, `mqtt`
 * clients over any listener's URL that are ended after each test, and a round-trip check that a
 * connected client still works (what "did not disturb other clients" is measured by).
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type ListenerConfig, type ListenerProtocol, listenerDefaults } from '../../io/listeners/listener-config.js';
import { Logger } from '../../io/logger.js';
import { type RunningServer, type ServerOptions, startServer } from '../../io/server.js';
import type { BrokerConfig } from '../../src/config.js';
import { waitUntil } from '../integration/helpers.js';
import type { TestCertificates } from './certificates.js';

/** Log lines of an in-process broker, parsed. */
export class LogCapture {
  readonly lines: Record<string, unknown>[] = [];
  readonly logger = new Logger('debug', { write: (line: string) => this.lines.push(JSON.parse(line) as Record<string, unknown>) });

  events(event: string): Record<string, unknown>[] {
    return this.lines.filter((line) => line.event === event);
  }
}

/** A listener on 127.0.0.1, port chosen by the system; TLS ones with the test server certificate. */
export function listener(protocol: ListenerProtocol, certificates: TestCertificates | null = null, extra: Partial<ListenerConfig> = {}): ListenerConfig {
  const tls = protocol === 'mqtts' || protocol === 'wss';
  if (tls && certificates === null) throw new Error(`a ${protocol} listener needs the test certificates`);
  return { ...listenerDefaults(protocol, '127.0.0.1', 0), ...(tls ? { certFile: certificates!.serverCert, keyFile: certificates!.serverKey } : {}), ...extra };
}

export async function startWithListeners(listeners: ListenerConfig[], config: Partial<BrokerConfig> = {}, options: Partial<ServerOptions> = {}): Promise<{ server: RunningServer; logs: LogCapture }> {
  const logs = new LogCapture();
  const server = await startServer({ listeners, config, logger: logs.logger, shutdownGraceMs: 500, ...options });
  return { server, logs };
}

/** The URL of a server's listener number `index`. */
export function urlOf(server: RunningServer, index: number): string {
  const bound = server.listeners[index]!;
  return `${bound.protocol}://127.0.0.1:${bound.port}${bound.path ?? ''}`;
}

/** `mqtt` clients of one test file, ended after each test. */
export class ListenerClients {
  private readonly clients: MqttClient[] = [];
  private counter = 0;

  async connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
    const client = mqtt.connect(url, { clientId: `listener-${process.pid}-${++this.counter}`, reconnectPeriod: 0, connectTimeout: 5_000, ...options });
    this.clients.push(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error(`closed before CONNACK (${url})`)));
    });
    return client;
  }

  async endAll(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((client) => client.endAsync(true).catch(() => undefined)));
  }
}

export function trusting(certificates: TestCertificates, extra: IClientOptions = {}): IClientOptions {
  return { ca: readFileSync(certificates.caFile), ...extra };
}

/** Subscribes `client` to `topic`, publishes `payload` from it and waits for it to come back. */
export async function roundTrip(client: MqttClient, topic: string, payload: string | Buffer, timeoutMs = 5_000): Promise<Buffer> {
  await client.subscribeAsync(topic, { qos: 1 });
  let received: Buffer | null = null;
  const onMessage = (arrived: string, bytes: Buffer): void => {
    if (arrived === topic) received = bytes;
  };
  client.on('message', onMessage);
  try {
    await client.publishAsync(topic, payload, { qos: 1 });
    await waitUntil(() => received !== null, timeoutMs, `the round trip on ${topic}`);
  } finally {
    client.off('message', onMessage);
  }
  return received!;
}
