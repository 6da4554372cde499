/**
 * Coverage worlds: situations the base swarm never produced, each drawn from streams of its own
 * (`${seed}:coverage` for the world, `${seed}:client:${index}:coverage` per client) after every
 * older choice, so that a seed's base and workload choices stay what they were.
 *
 * - Topic shapes: a share of worlds publish and subscribe with deeper and unusual topics: three
 *   and more levels, empty levels (`a//b`, `/a`, `a/`, `/`), `$` topics that leading wildcards
 *   must not match [MQTT-4.7.2-1], and, with small topicBytesMax/topicLevelsMax, topics and filters
 *   exactly at the limits (multi-byte characters included) and filters just past them (refused).
 * - Granted QoS: some worlds run with maximumQos 0 or 1, so SUBACK grants less than asked; every
 *   publish and will is capped to it (the broker would refuse more, as it should).
 * - Keepalive: some clients hang (send nothing, read nothing, keep the link open) for a while,
 *   often longer than one and a half times their keepalive, so that the broker must time them out;
 *   some worlds set a Server Keep Alive, and a few clients ask for no keepalive at all.
 * - Narrow paths: some clients change their filters between sessions (a fresh session takes the
 *   next filter set), and some persistent clients start a clean session now and then.
 * - Long sessions: a rare world kind (chooseLongSessionShape) in which one persistent session
 *   receives more than 65,535 QoS 1/2 messages through a slow acknowledger, and one publisher
 *   sends as many, so that packet identifiers wrap on both sides while some are in flight.
 */
import type { Qos } from '../src/codec/packets.js';
import type { BrokerConfig } from '../src/config.js';
import { Random } from './random.js';
import { type ClientPlan, type PlannedPublish, publishTopics } from './shape.js';

/** Topics of the deep worlds: levels beyond two, empty levels, `$` topics (besides the base ones). */
export const deepTopics = ['a/b/c', 'a/b/c/d', 'a//b', '/a', 'a/', '/', '$sys/x', '$sys/a/b', 'a/x/y'] as const;
/** Filters of the deep worlds: wildcards against every shape above, and the `$` roots. */
export const deepFilters = ['a/+/c', 'a/#', '+/+/+', '+/b/#', '#', '+', '/+', '+/', '+/+', 'a/+/#', '$sys/#', '$sys/+', '+/x', 'a//b', '+//+', '/#', '+/#'] as const;
const deepSharedFilters = ['$share/g3/+/+/+', '$share/g3/a/#', '$share/g4/$sys/#', '$share/g1/a/+'] as const;
/** The `$` topic roots a deep world publishes to; the retained audit subscribes to them too. */
export const dollarRoots = ['$sys'] as const;

/** What a client does in the coverage worlds, from its own coverage stream. */
export interface ClientCoverage {
  /** Windows in which the client process hangs: it neither sends nor reads, and its link stays open. */
  hangs: { atMs: number; durationMs: number }[];
  /** Filter sets used in turn by each fresh session; the first is the plan's own subscriptions. */
  subscriptionSets: { filter: string; qos: Qos }[][];
  /** Connection generations (1-based) at which a persistent client starts a clean session anyway. */
  cleanStartGenerations: number[];
}

export interface WorldCoverage {
  /** Deep and unusual topics and filters are in use (and maybe small topic limits). */
  deepTopics: boolean;
}

/** Adds the coverage choices to a swarm world (see the module comment). */
export function chooseWorldCoverage(seed: number, clients: ClientPlan[], configOverrides: Partial<BrokerConfig>, activeMs: number): WorldCoverage {
  const random = Random.stream(seed, 'coverage');
  const deep = random.chance(0.35);
  const smallLimits = deep && random.chance(0.5);
  if (smallLimits) {
    configOverrides.topicLevelsMax = random.pick([4, 5, 6]);
    configOverrides.topicBytesMax = random.pick([16, 20, 32]);
  }
  if (random.chance(0.15)) configOverrides.maximumQos = random.pick<0 | 1>([0, 1]);
  const maximumQos = configOverrides.maximumQos;
  if (random.chance(0.2)) configOverrides.serverKeepAliveSeconds = random.pick([1, 3, 10]);
  const hangProbability = random.pick([0, 0.15, 0.5]);
  const limitTopics = smallLimits ? nearLimitTopics(configOverrides.topicLevelsMax!, configOverrides.topicBytesMax!) : null;
  for (const client of clients) {
    if (client.violator) continue;
    const clientRandom = Random.stream(seed, `client:${client.index}:coverage`);
    if (deep) reshapeTopics(clientRandom, client, limitTopics);
    client.coverage = chooseClientCoverage(clientRandom, client, configOverrides, activeMs, hangProbability, deep);
  }
  if (maximumQos === 0 || maximumQos === 1) for (const client of clients) capQos(client, maximumQos);
  return { deepTopics: deep };
}

/** Topics and filters at (and filters just past) the world's small topic limits. */
interface LimitTopics {
  topics: string[];
  filters: string[];
}

/**
 * A topic of exactly `levels` levels and `bytes` UTF-8 bytes: `l/m/.../` then a last level padded
 * to length, with one two-byte character in it when there is room (bytes, not characters, count).
 */
export function topicAtLimit(levels: number, bytes: number, first = 'l'): string {
  const head = `${first}/${'m/'.repeat(levels - 2)}`;
  const room = bytes - head.length;
  if (room < 1) throw new Error(`no topic of ${levels} levels fits in ${bytes} bytes`);
  return room >= 3 ? `${head}\u00fc${'z'.repeat(room - 2)}` : `${head}${'z'.repeat(room)}`;
}

function nearLimitTopics(levels: number, bytes: number): LimitTopics {
  const longest = topicAtLimit(levels, bytes);
  const wildcards = (count: number): string => Array.from({ length: count }, () => '+').join('/');
  return {
    topics: [longest, topicAtLimit(levels - 1, bytes - 1)],
    filters: [
      `l/${wildcards(levels - 2)}/#`,
      wildcards(levels),
      longest,
      'l/#',
      // One level too many, and one byte too many: SUBACK refuses them (0x8F / 0x80).
      wildcards(levels + 1),
      `${longest}z`,
    ],
  };
}

/** A deep world: the client's topics and filters are drawn again, position by position. */
function reshapeTopics(random: Random, client: ClientPlan, limitTopics: LimitTopics | null): void {
  const topics: readonly string[] = [...publishTopics, ...deepTopics, ...(limitTopics?.topics ?? [])];
  for (const publish of client.publishes) publish.topic = random.pick(topics);
  const filters: readonly string[] = [...deepFilters, ...(limitTopics?.filters ?? [])];
  const previous = client.subscriptions.map((subscription) => subscription.filter);
  const chosen: { filter: string; qos: Qos }[] = [];
  for (const subscription of client.subscriptions) {
    const filter = random.chance(0.15) ? random.pick(deepSharedFilters) : random.pick(filters);
    if (!chosen.some((s) => s.filter === filter)) chosen.push({ filter, qos: subscription.qos });
  }
  client.subscriptions = chosen;
  // The planned UNSUBSCRIBE names a filter the client still has: the one now in its place.
  const unsubscribe = client.workload?.unsubscribe ?? null;
  if (unsubscribe !== null) {
    const replacement = chosen[previous.indexOf(unsubscribe.filter)] ?? chosen[0];
    if (replacement === undefined) client.workload!.unsubscribe = null;
    else unsubscribe.filter = replacement.filter;
  }
}

function chooseClientCoverage(random: Random, client: ClientPlan, config: Partial<BrokerConfig>, activeMs: number, hangProbability: number, deep: boolean): ClientCoverage {
  if (random.chance(0.1)) client.keepAliveSeconds = 0;
  const serverKeepAlive = client.protocolVersion === 5 ? (config.serverKeepAliveSeconds ?? null) : null;
  const keepAliveMs = (serverKeepAlive ?? client.keepAliveSeconds) * 1000;
  const hangs: { atMs: number; durationMs: number }[] = [];
  if (random.chance(hangProbability)) {
    let fromMs = random.int(0, Math.floor(activeMs / 2));
    const hangCount = random.int(1, 2);
    for (let count = 0; count < hangCount && fromMs < activeMs - 1_000; count++) {
      // Shorter than the broker's patience (1.5x keepalive), and well past it.
      const durationMs = keepAliveMs === 0 ? random.pick([2_000, 8_000]) : Math.round(keepAliveMs * random.pick([0.6, 1.2, 2.2, 3]));
      hangs.push({ atMs: fromMs, durationMs: Math.min(durationMs, activeMs - fromMs) });
      fromMs += durationMs + random.int(500, 5_000);
    }
  }
  const subscriptionSets = [client.subscriptions];
  if (random.chance(0.35)) subscriptionSets.push(alternateSubscriptions(random, client, deep));
  const cleanStartGenerations: number[] = [];
  if (client.persistent && random.chance(0.3)) {
    for (let generation = random.int(2, 4); generation < 40; generation += random.int(2, 6)) cleanStartGenerations.push(generation);
  }
  return { hangs, subscriptionSets, cleanStartGenerations };
}

/** A second filter set, not the same as the first (often disjoint from it). */
function alternateSubscriptions(random: Random, client: ClientPlan, deep: boolean): { filter: string; qos: Qos }[] {
  const pool: readonly string[] = deep ? deepFilters : ['a/x', 'a/+', '+/x', 'a/#', '#', 'b/y', 'c', '+/+', 'b/#', '+/y'];
  const count = random.int(1, 3);
  const set: { filter: string; qos: Qos }[] = [];
  for (let index = 0; index < count; index++) {
    const filter = random.pick(pool);
    if (!set.some((s) => s.filter === filter)) set.push({ filter, qos: random.pick<Qos>([0, 1, 2]) });
  }
  const same = set.length === client.subscriptions.length && set.every((s) => client.subscriptions.some((t) => t.filter === s.filter && t.qos === s.qos));
  if (same) set.pop();
  return set;
}

/** maximumQos below 2: a client publishes (and leaves wills) at no more than it [MQTT-3.2.2-11]. */
export function capQos(client: ClientPlan, maximumQos: 0 | 1): void {
  for (const publish of client.publishes) if (publish.qos > maximumQos) publish.qos = maximumQos;
  if (client.will !== null && client.will.qos > maximumQos) client.will = { ...client.will, qos: maximumQos };
}

/** The long-session world: how many messages, at what pace. */
export interface LongSessionPlan {
  messageCount: number;
  intervalMs: number;
}

/**
 * The long-session world kind (see the module comment). Client 0 publishes `messageCount`
 * QoS 1/2 messages on `long/a`, `long/b` and (one in 50) `long/c`; client 1 (persistent, `long/#`
 * at QoS 2, slow to acknowledge) receives them all, with a small inflight window; client 2
 * (`long/c` at QoS 1) receives only those, so a message routed to the wrong session shows.
 * Latency is small and segments are whole, to keep the cost per message down.
 */
export function chooseLongSessionClients(seed: number, plan: LongSessionPlan): ClientPlan[] {
  const random = Random.stream(seed, 'coverage:long-session');
  const publishes: PlannedPublish[] = [];
  for (let index = 0; index < plan.messageCount; index++) {
    const topic = index % 50 === 49 ? 'long/c' : index % 2 === 0 ? 'long/a' : 'long/b';
    publishes.push({ atMs: 200 + index * plan.intervalMs, topic, qos: random.chance(0.5) ? 1 : 2, retain: false });
  }
  const base = { will: null, cleanReconnectProbability: 0, violator: false } as const;
  return [
    { ...base, index: 0, clientId: 'c0', protocolVersion: random.chance(0.5) ? 5 : 4, persistent: true, keepAliveSeconds: 10, subscriptions: [], publishes, ackDelayMsMax: 0 },
    {
      ...base,
      index: 1,
      clientId: 'c1',
      protocolVersion: random.chance(0.5) ? 5 : 4,
      persistent: true,
      keepAliveSeconds: 10,
      subscriptions: [{ filter: 'long/#', qos: 2 }],
      publishes: [],
      ackDelayMsMax: random.pick([5, 10]),
    },
    {
      ...base,
      index: 2,
      clientId: 'c2',
      protocolVersion: random.chance(0.5) ? 5 : 4,
      persistent: random.chance(0.5),
      keepAliveSeconds: 10,
      subscriptions: [{ filter: 'long/c', qos: 1 }],
      publishes: [],
      ackDelayMsMax: 0,
    },
  ];
}
