/**
 * Swarm testing: the seed chooses the shape of the world it runs.
 *
 * From the `${seed}:shape` stream (and one `${seed}:client:${index}` stream per client, so that
 * adding a client does not change the others) this picks how many clients there are and what
 * each does (protocol version, clean or persistent session, subscriptions, a bounded publish
 * script, a will, slow acknowledgements, garbage), which faults happen and how often (a fifth of
 * the seeds have none at all), and which broker limits are small. Thousands of seeds thus cover
 * thousands of differently shaped worlds rather than one world with different noise.
 */
import type { BrokerConfig } from '../src/config.js';
import type { Qos } from '../src/codec/packets.js';
import { chooseDiskShape, type DiskShape } from './disk.js';
import type { NetworkShape } from './network.js';
import { Random } from './random.js';

export const publishTopics = ['a/x', 'a/y', 'b/x', 'b/y', 'c'] as const;
const filterPool = ['a/x', 'a/+', '+/x', 'a/#', '#', 'b/y', 'c', '+/+', 'will/#'] as const;
const sharedFilterPool = ['$share/g1/a/+', '$share/g2/+/y', '$share/g1/#'] as const;

export interface PlannedPublish {
  atMs: number;
  topic: string;
  qos: Qos;
  retain: boolean;
}

export interface ClientPlan {
  index: number;
  clientId: string;
  protocolVersion: 4 | 5;
  persistent: boolean;
  keepAliveSeconds: number;
  subscriptions: { filter: string; qos: Qos }[];
  publishes: PlannedPublish[];
  will: { topic: string; qos: Qos } | null;
  /** Acknowledgements of received messages wait up to this long (a slow reader when large). */
  ackDelayMsMax: number;
  /** Probability, per publish, of a clean DISCONNECT and reconnect right after it. */
  cleanReconnectProbability: number;
  /** Sends malformed bytes and vanishes instead of taking part; the checker ignores its traffic. */
  violator: boolean;
}

export type FaultKind = 'reset' | 'client-reset' | 'half-open' | 'partition' | 'client-crash' | 'broker-crash';
export const faultKinds: readonly FaultKind[] = ['reset', 'client-reset', 'half-open', 'partition', 'client-crash', 'broker-crash'];

export interface WorldShape {
  seed: number;
  clients: ClientPlan[];
  network: NetworkShape;
  /** Faults happen only before this; after it the world is quiet and liveness is checked. */
  activeMs: number;
  /** How long the quiet period lasts: the bound on completing every pending delivery. */
  quietMs: number;
  /** Mean time between faults while active, or null for a seed without faults. */
  faultIntervalMsMean: number | null;
  faultKinds: FaultKind[];
  configOverrides: Partial<BrokerConfig>;
  /** The store's options and the disk's faults (chosen from their own stream). */
  disk: DiskShape;
}

export function chooseShape(seed: number, overrides: { clientCount?: number; faults?: boolean } = {}): WorldShape {
  const random = Random.stream(seed, 'shape');
  const clientCount = overrides.clientCount ?? random.int(2, 12);
  const activeMs = random.int(5, 25) * 1_000;
  const network: NetworkShape = {
    latencyMsMin: random.int(0, 5),
    latencyMsMax: random.int(5, 80),
    segmentBytesMax: random.pick([1, 7, 64, 1500, 65536]),
    stallProbability: random.pick([0, 0.001, 0.01]),
    stallMsMax: random.int(10, 3_000),
  };
  const faulty = overrides.faults ?? random.chance(0.8);
  const kinds = faultKinds.filter(() => random.chance(0.6));
  const configOverrides: Partial<BrokerConfig> = {};
  if (random.chance(0.3)) configOverrides.inflightPerSessionMax = random.int(1, 4);
  if (random.chance(0.2)) configOverrides.queuedMessagesPerSessionMax = random.int(2, 30);
  const clients: ClientPlan[] = [];
  for (let index = 0; index < clientCount; index++) clients.push(chooseClient(seed, index, activeMs));
  const faultIntervalMsMean = faulty && kinds.length > 0 ? random.int(300, 5_000) : null;
  // Drawn last, so that the worlds of seeds chosen before this limit existed stay as they were.
  // A cap of a few KiB fills during stalls and partitions: QoS 0 is dropped, QoS 1/2 waits.
  if (random.chance(0.25)) configOverrides.connectionOutputBytesMax = random.pick([4096, 8192, 32_768]);
  return {
    seed,
    clients,
    network,
    activeMs,
    quietMs: 90_000,
    faultIntervalMsMean,
    faultKinds: kinds,
    configOverrides,
    disk: chooseDiskShape(seed, faulty),
  };
}

function chooseClient(seed: number, index: number, activeMs: number): ClientPlan {
  const random = Random.stream(seed, `client:${index}`);
  const violator = index > 1 && random.chance(0.1);
  const qosWeights = random.pick<Qos[]>([[0], [1], [2], [0, 1, 2], [1, 2], [0, 1, 1, 2, 2]]);
  const retainProbability = random.pick([0, 0.1, 0.5]);
  const publishCount = violator ? 0 : random.int(0, 40);
  const publishes: PlannedPublish[] = [];
  for (let count = 0; count < publishCount; count++) {
    publishes.push({ atMs: random.int(0, activeMs), topic: random.pick(publishTopics), qos: random.pick(qosWeights), retain: random.chance(retainProbability) });
  }
  publishes.sort((a, b) => a.atMs - b.atMs);
  const subscriptions: { filter: string; qos: Qos }[] = [];
  const subscriptionCount = violator ? 0 : random.int(0, 3);
  for (let count = 0; count < subscriptionCount; count++) {
    const filter = random.chance(0.15) ? random.pick(sharedFilterPool) : random.pick(filterPool);
    if (!subscriptions.some((s) => s.filter === filter)) subscriptions.push({ filter, qos: random.pick<Qos>([0, 1, 2]) });
  }
  return {
    index,
    clientId: `c${index}`,
    protocolVersion: random.chance(0.5) ? 5 : 4,
    persistent: random.chance(0.5),
    keepAliveSeconds: random.int(2, 20),
    subscriptions,
    publishes,
    will: random.chance(0.4) ? { topic: `will/c${index}`, qos: 1 } : null,
    ackDelayMsMax: random.pick([0, 5, 50, 2_000]),
    cleanReconnectProbability: random.pick([0, 0, 0.05]),
    violator,
  };
}
