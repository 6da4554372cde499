/**
 * What the end-to-end cluster tests share: `keel serve --cluster` child processes in a temporary
 * directory of the test file, MQTT.js clients on them, and the hooks that end every client and
 * kill every node after each test and remove the directory and the NATS servers at the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { ensureBuilt, type KeelProcess, startKeelProcess, waitUntil } from '../integration/helpers.js';
import { type NatsServer, stopAllNats } from './nats-fixture.js';

export type ClusterNode = KeelProcess & { port: number; dataDirectory: string; nodeId: string };

export interface ClusterTestBed {
  /** The nodes started and the clients connected in the current test (ended after it). */
  readonly nodes: ClusterNode[];
  readonly clients: MqttClient[];
  /** Starts `keel serve --cluster` (on a fresh data directory unless one is given) and waits until its link to NATS is up. */
  startNode(nats: NatsServer | string, nodeId: string, dataDirectory?: string): Promise<ClusterNode>;
  /** Connects an MQTT 5.0 client; resolves with it and its CONNACK's session present flag. */
  connect(node: ClusterNode, clientId: string, options?: mqtt.IClientOptions): Promise<{ client: MqttClient; sessionPresent: boolean }>;
}

/** Registers the test file's hooks; `prefix` names its temporary directory. */
export function useClusterTestBed(prefix: string): ClusterTestBed {
  let directory = '';
  const nodes: ClusterNode[] = [];
  const clients: MqttClient[] = [];
  beforeAll(() => {
    ensureBuilt();
    directory = mkdtempSync(join(tmpdir(), prefix));
  }, 120_000);
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.endAsync(true).catch(() => undefined)));
    for (const node of nodes.splice(0)) {
      if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL');
      await node.exited;
    }
  });
  afterAll(async () => {
    await stopAllNats();
    rmSync(directory, { recursive: true, force: true });
  });
  return {
    nodes,
    clients,
    async startNode(nats, nodeId, dataDirectory = join(directory, `${nodeId}-${Date.now()}`)) {
      const keel = await startKeelProcess(dataDirectory, ['--cluster', typeof nats === 'string' ? nats : nats.url, '--node-id', nodeId]);
      const node = { ...keel, dataDirectory, nodeId };
      nodes.push(node);
      await waitUntil(() => node.stdout().includes('"event":"cluster-link-up"'), 15_000, `${nodeId}: cluster-link-up`);
      return node;
    },
    async connect(node, clientId, options = {}) {
      const client = mqtt.connect({ host: '127.0.0.1', port: node.port, protocolVersion: 5, clientId, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
      clients.push(client);
      const sessionPresent = await new Promise<boolean>((resolve, reject) => {
        client.once('connect', (connack) => resolve(connack.sessionPresent));
        client.once('error', reject);
      });
      return { client, sessionPresent };
    },
  };
}
