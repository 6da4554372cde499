/**
 * Swarm testing: the seed chooses the shape of the world it runs.
 *
 * From the `${seed}:shape` stream (and one `${seed}:client:${index}` stream per client, so that
 * adding a client does not change the others) this picks how many clients there are and what
 * each does (protocol version, clean or persistent session, subscriptions, a bounded publish
 * script, a will, slow acknowledgements, garbage), which faults happen and how often (a fifth of
 * the seeds have none at all), and which broker limits are small. Thousands of seeds thus cover
 * thousands of differently shaped worlds rather than one world with different noise.
 *
 * After those, the workload streams (chooseWorldWorkload) and the coverage streams (coverage.ts:
 * deep and unusual topics, small topic limits, a smaller Maximum QoS, hung clients, filters that
 * change between sessions, and the rare long-session world kind) add what the base never did.
 */

import type { Qos } from '../src/codec/packets.js';
import type { BrokerConfig, StreamDefinition } from '../src/config.js';
import { type ClientCoverage, capQos, chooseLongSessionClients, chooseWorldCoverage, type LongSessionPlan } from './coverage.js';
import { chooseDiskShape, type DiskShape } from './disk.js';
import { chooseHostile, type HostilePlan } from './hostile.js';
import { type ClientIdentity, chooseIdentity, type IdentityPlan } from './identity.js';
import { chooseLargePayloads } from './large-payloads.js';
import type { NetworkShape } from './network.js';
import { chooseOperator, chooseSysReaders, type OperatorPlan } from './operator.js';
import { Random } from './random.js';
import { chooseRetainedPacing, type RetainedPacingPlan } from './retained-pacing.js';
import { chooseStreamWorld, type StreamReaderPlan } from './stream-shape.js';

export const publishTopics = ['a/x', 'a/y', 'b/x', 'b/y', 'c'] as const;
const filterPool = ['a/x', 'a/+', '+/x', 'a/#', '#', 'b/y', 'c', '+/+', 'will/#'] as const;
const sharedFilterPool = ['$share/g1/a/+', '$share/g2/+/y', '$share/g1/#'] as const;

export interface PlannedPublish {
  atMs: number;
  topic: string;
  qos: Qos;
  retain: boolean;
  /** A large payload's filler length (large-payloads.ts); absent: the usual small payload. */
  fillerBytes?: number;
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
  /** Workload drawn from the client's own `workload` stream (absent: none of it). */
  workload?: ClientWorkload;
  /** Coverage additions drawn from the client's own `coverage` stream (absent: none of them). */
  coverage?: ClientCoverage;
  /** A stream reader (stream-shape.ts): it subscribes to its `$stream` filter only and publishes nothing. */
  streamReader?: StreamReaderPlan;
  /** Retained pacing worlds (retained-pacing.ts): stop reading this long right after the first SUBSCRIBE. */
  retainedStallMs?: number;
  /** Identity worlds (identity.ts): the client's user, and how the broker learns it. */
  identity?: ClientIdentity;
}

/**
 * What a client does beyond its base script, chosen from `${seed}:client:${index}:workload` so
 * that the worlds of seeds chosen before these existed keep their base choices.
 */
export interface ClientWorkload {
  /** Windows in which the client stops reading its socket (a stalled reader); sorted, disjoint. */
  readStalls: { atMs: number; durationMs: number }[];
  /** MQTT 5.0: Topic Alias Maximum announced in CONNECT (aliases the broker may use towards it). */
  topicAliasMaximum: number;
  /** MQTT 5.0: use topic aliases towards the broker when its CONNACK allows them. */
  sendTopicAliases: boolean;
  /** MQTT 5.0: Will Delay Interval of its will, in seconds. */
  willDelaySeconds: number;
  /** MQTT 5.0: Session Expiry Interval of a clean-start client (persistent ones never expire). */
  cleanSessionExpirySeconds: number;
  /** MQTT 5.0: Message Expiry Interval per planned publish (same index), or null for none. */
  publishExpirySeconds: (number | null)[];
  /** One UNSUBSCRIBE of one of its filters at a planned time, or null. */
  unsubscribe: { atMs: number; filter: string } | null;
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
  /** `swarm`: the usual world; `long-session`: identifiers wrap (see coverage.ts). */
  kind: 'swarm' | 'long-session';
  /** Deep and unusual topics are in use: the retained audit also watches the `$` roots. */
  deepTopics: boolean;
  /** The world's durable streams (stream-shape.ts), also in configOverrides.streams; empty in most worlds. */
  streams: StreamDefinition[];
  /** Probes with hostile and odd inputs (hostile.ts), or null. */
  hostile: HostilePlan | null;
  /** Many retained topics and subscribers that stall on them (retained-pacing.ts), or null. */
  retainedPacing: RetainedPacingPlan | null;
  /** Authentication, an ACL and an impostor on another user's client id (identity.ts), or null. */
  identity: IdentityPlan | null;
  /** Admin commands the world issues (operator.ts), or null. */
  operator: OperatorPlan | null;
  /** Some clients read `$SYS/#`, published every few seconds (operator.ts). */
  sysReaders: boolean;
  /** How many planned publishes carry a large payload (large-payloads.ts); 0 in most worlds. */
  largePayloads: number;
}

/** About one seed in this many builds a long-session world (see coverage.ts); each costs a few seconds. */
const longSessionOneIn = 400;

/**
 * `workload: false` leaves out everything drawn from the workload streams (stalled readers, bursts,
 * MQTT 5.0 extras, unsubscribes, the limits they add): the world a seed built before those existed,
 * byte for byte, so that seeds found then still reproduce what they found.
 */
export function chooseShape(seed: number, overrides: { clientCount?: number; faults?: boolean; workload?: boolean; largePayloads?: boolean } = {}): WorldShape {
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
  // From a stream of its own, so the choices above stay what they were for every seed. Stalled
  // readers (see ClientWorkload) make a small cap bite, so a good share of seeds get one.
  if (overrides.workload !== false) chooseWorldWorkload(seed, clients, configOverrides, activeMs);
  const shape: WorldShape = {
    seed,
    clients,
    network,
    activeMs,
    quietMs: 90_000,
    faultIntervalMsMean,
    faultKinds: kinds,
    configOverrides,
    disk: chooseDiskShape(seed, faulty),
    kind: 'swarm',
    deepTopics: false,
    streams: [],
    hostile: null,
    retainedPacing: null,
    identity: null,
    operator: null,
    sysReaders: false,
    largePayloads: 0,
  };
  // The coverage streams come last and only with the workload (see coverage.ts).
  if (overrides.workload === false) return shape;
  if (overrides.clientCount === undefined && Random.stream(seed, 'coverage:kind').chance(1 / longSessionOneIn)) return longSessionShape(shape);
  shape.deepTopics = chooseWorldCoverage(seed, clients, configOverrides, activeMs).deepTopics;
  chooseAdversity(shape);
  // Streams last of all, from streams of their own (stream-shape.ts); a test that fixes the client
  // count gets none, and neither does an identity world (its clients all need a user and an ACL
  // the stream readers do not have yet).
  if (overrides.clientCount === undefined && shape.identity === null) chooseStreamWorld(shape);
  // Large payloads after everything else, from a stream of their own (large-payloads.ts).
  if (overrides.clientCount === undefined && overrides.largePayloads !== false) shape.largePayloads = chooseLargePayloads(shape);
  return shape;
}

/**
 * The worlds that test the broker's edges (each from a stream of its own, after every older
 * choice): many retained topics for stalled subscribers (retained-pacing.ts), hostile and odd
 * inputs (hostile.ts). A limit one of them lowers applies to every client: publishes and wills
 * within maximumQos, nothing retained without retainAvailable.
 */
function chooseAdversity(shape: WorldShape): void {
  const config = shape.configOverrides;
  shape.retainedPacing = chooseRetainedPacing(shape.seed, shape.clients, config);
  const maximumQosBefore = config.maximumQos;
  shape.hostile = chooseHostile(shape.seed, config, shape.activeMs, shape.retainedPacing !== null);
  const maximumQos = config.maximumQos;
  if (maximumQos !== maximumQosBefore && (maximumQos === 0 || maximumQos === 1)) for (const client of shape.clients) capQos(client, maximumQos);
  if (config.retainAvailable === false) for (const client of shape.clients) for (const publish of client.publishes) publish.retain = false;
  shape.identity = chooseIdentity(shape.seed, shape.clients, config, shape.activeMs);
  if (shape.identity !== null) for (const client of shape.clients) client.identity = shape.identity.clients[client.index]!;
  shape.operator = chooseOperator(shape.seed, shape.clients, shape.activeMs, shape.identity?.impostor?.victim ?? null);
  shape.sysReaders = chooseSysReaders(shape.seed, shape.clients, config);
}

/**
 * The long-session world: three clients (see chooseLongSessionClients), a quick and quiet network
 * and disk, a small inflight window, and no faults but a few connection resets, so that sessions
 * resume across the wrap with identifiers in flight. Its log is compacted often.
 */
function longSessionShape(swarm: WorldShape): WorldShape {
  const random = Random.stream(swarm.seed, 'coverage:long-session-world');
  // The subscriber keeps up (a window of 8 to 16 and acknowledgements within 10 ms take well over
  // 250 messages a second), so its queue never overflows and every message counts for the wrap.
  const plan: LongSessionPlan = { messageCount: random.int(66_000, 68_000), intervalMs: 4 };
  const activeMs = 200 + plan.messageCount * plan.intervalMs + 1_000;
  const disk = chooseDiskShape(swarm.seed, false);
  disk.store = { ...disk.store, syncPolicy: 'always', segmentBytesMax: 16_384, snapshotLogBytes: 16_384 };
  return {
    ...swarm,
    clients: chooseLongSessionClients(swarm.seed, plan),
    network: { latencyMsMin: 0, latencyMsMax: 3, segmentBytesMax: 65_536, stallProbability: 0, stallMsMax: 10 },
    activeMs,
    faultIntervalMsMean: random.chance(0.5) ? random.int(20_000, 60_000) : null,
    faultKinds: ['reset', 'client-reset'],
    configOverrides: { inflightPerSessionMax: random.int(8, 16) },
    disk,
    kind: 'long-session',
  };
}

function chooseWorldWorkload(seed: number, clients: ClientPlan[], configOverrides: Partial<BrokerConfig>, activeMs: number): void {
  const workload = Random.stream(seed, 'workload');
  const smallCap = workload.chance(0.45) ? workload.pick([4096, 4096, 6144, 12_288]) : null;
  if (smallCap !== null && (configOverrides.connectionOutputBytesMax ?? Number.POSITIVE_INFINITY) > smallCap) configOverrides.connectionOutputBytesMax = smallCap;
  if (workload.chance(0.2)) configOverrides.topicAliasMaximum = workload.pick([0, 1, 3]);
  // Stalls and bursts cluster around one moment, so that output piles up where a reader stopped.
  const pressureAtMs = workload.int(0, Math.floor(activeMs * 0.8));
  for (const client of clients) if (!client.violator) client.workload = chooseWorkload(seed, client, activeMs, pressureAtMs);
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

function chooseWorkload(seed: number, client: ClientPlan, activeMs: number, pressureAtMs: number): ClientWorkload {
  const random = Random.stream(seed, `client:${client.index}:workload`);
  const readStalls: { atMs: number; durationMs: number }[] = [];
  // Only a reader that is sent something can stall usefully.
  if (client.subscriptions.length > 0 && random.chance(0.6)) {
    let fromMs = random.chance(0.6) ? Math.max(0, pressureAtMs - random.int(0, 1_000)) : random.int(0, Math.floor(activeMs / 2));
    const stallCount = random.int(1, 3);
    for (let count = 0; count < stallCount && fromMs < activeMs; count++) {
      // Short stalls resume; long ones outlast the client's own keepalive (it gives up and
      // reconnects); the longest last until the world goes quiet.
      const durationMs = random.pick([500, 2_000, 6_000, 20_000, activeMs]);
      readStalls.push({ atMs: fromMs, durationMs: Math.min(durationMs, activeMs - fromMs) });
      fromMs += durationMs + random.int(100, 5_000);
    }
  }
  // A burst of publishes in a short window: output piles up at any subscriber that stopped reading.
  if (random.chance(0.4)) {
    const burstAtMs = random.chance(0.6) ? Math.min(activeMs, pressureAtMs + random.int(0, 1_000)) : random.int(0, activeMs);
    const burstMs = random.int(100, 2_000);
    const topic = random.pick(publishTopics);
    const count = random.int(20, 150);
    for (let index = 0; index < count; index++) {
      client.publishes.push({ atMs: Math.min(activeMs, burstAtMs + random.int(0, burstMs)), topic, qos: random.chance(0.8) ? 0 : 1, retain: false });
    }
    client.publishes.sort((a, b) => a.atMs - b.atMs);
  }
  const version5 = client.protocolVersion === 5;
  const expiryProbability = version5 ? random.pick([0, 0.3, 0.8]) : 0;
  const publishExpirySeconds = client.publishes.map(() => (random.chance(expiryProbability) ? random.pick([1, 2, 4, 30]) : null));
  const unsubscribable = client.subscriptions.filter((subscription) => subscription.filter !== 'will/#' || random.chance(0.5));
  const unsubscribe = unsubscribable.length > 0 && random.chance(0.3) ? { atMs: random.int(0, activeMs), filter: random.pick(unsubscribable).filter } : null;
  return {
    readStalls,
    topicAliasMaximum: version5 ? random.pick([0, 0, 1, 2, 16]) : 0,
    sendTopicAliases: version5 && random.chance(0.5),
    willDelaySeconds: version5 && client.will !== null ? random.pick([0, 0, 1, 3, 8]) : 0,
    cleanSessionExpirySeconds: version5 && !client.persistent ? random.pick([0, 0, 2, 5]) : 0,
    publishExpirySeconds,
    unsubscribe,
  };
}
