/**
 * Retained pacing worlds: many retained topics and subscribers that cannot take them all at once.
 *
 * About one swarm world in seven (from the `${seed}:retained-pacing` stream) has client 0 publish
 * a few hundred retained messages on topics `r/0`, `r/1`, ... in its first few hundred milliseconds
 * (QoS 0 mostly, some QoS 1), so that every SUBSCRIBE after that owes them all. One to three
 * clients subscribe to them (`r/#`, `r/+`, or everything), stop reading right after their
 * SUBSCRIBE for a while (less than their own keepalive, so that they keep the link), and the
 * world's output cap is small: the replay (src/broker/retained-replay.ts) must wait for the
 * reader instead of shedding at the cap.
 *
 * What the checker then holds the broker to (checker.ts, `checkRetainedReplays`): a subscriber
 * whose connection stays up from its SUBSCRIBE to the end receives every retained message that
 * matched a filter of it when the SUBSCRIBE arrived and was not replaced or cleared since, once
 * per matching filter, QoS 0 included, and never one that was retained after the SUBSCRIBE; no
 * retained copy is ever reported dropped at the output cap; and a live QoS 1/2 message decided
 * after the SUBSCRIBE never overtakes the replay.
 */
import type { Qos } from '../src/codec/packets.js';
import type { BrokerConfig } from '../src/config.js';
import { Random } from './random.js';
import type { ClientPlan, PlannedPublish } from './shape.js';

export interface RetainedPacingPlan {
  topicCount: number;
  /** The clients that subscribe to the retained topics and stall right after. */
  subscribers: number[];
}

/** The root of the retained pacing topics: no other client publishes under it. */
export const pacingRoot = 'r';

/** The retained pacing plan of a world, or null; changes client 0's script and a few subscribers'. */
export function chooseRetainedPacing(seed: number, clients: ClientPlan[], configOverrides: Partial<BrokerConfig>): RetainedPacingPlan | null {
  const random = Random.stream(seed, 'retained-pacing');
  if (!random.chance(0.15)) return null;
  const topicCount = random.int(100, 600);
  const seeder = clients[0]!;
  const qosMax = configOverrides.maximumQos ?? 2;
  const retained: PlannedPublish[] = [];
  for (let index = 0; index < topicCount; index++) {
    retained.push({ atMs: random.int(0, 400), topic: `${pacingRoot}/${index}`, qos: Math.min(random.pick<Qos>([0, 0, 0, 1]), qosMax) as Qos, retain: true });
  }
  addPublishes(seeder, retained);
  const cap = random.pick([4096, 4096, 6144]);
  if ((configOverrides.connectionOutputBytesMax ?? Number.POSITIVE_INFINITY) > cap) configOverrides.connectionOutputBytesMax = cap;
  const candidates = clients.filter((client) => !client.violator);
  const subscribers: number[] = [];
  const wanted = random.int(1, Math.min(3, candidates.length));
  for (let count = 0; count < wanted; count++) {
    const client = random.pick(candidates);
    if (subscribers.includes(client.index)) continue;
    subscribers.push(client.index);
    const filter = random.pick([`${pacingRoot}/#`, `${pacingRoot}/#`, `${pacingRoot}/+`, '+/+', '#']);
    if (!client.subscriptions.some((subscription) => subscription.filter === filter)) client.subscriptions.push({ filter, qos: random.pick<Qos>([0, 0, 1, 2]) });
    // Shorter than its own keepalive (or the Server Keep Alive it will follow), which would
    // otherwise give up on the silent link.
    const serverKeepAlive = client.protocolVersion === 5 ? (configOverrides.serverKeepAliveSeconds ?? null) : null;
    const keepAliveMs = Math.max(1, serverKeepAlive ?? client.keepAliveSeconds) * 1000;
    client.retainedStallMs = Math.min(random.int(500, 8_000), keepAliveMs);
  }
  return { topicCount, subscribers };
}

/** Adds publishes to a client's script, keeping its order by time and each publish's expiry. */
function addPublishes(client: ClientPlan, added: PlannedPublish[]): void {
  const expiries = client.workload?.publishExpirySeconds;
  const entries = client.publishes.map((publish, index) => ({ publish, expiry: expiries?.[index] ?? null }));
  for (const publish of added) entries.push({ publish, expiry: null });
  // Stable: publishes planned for one moment keep the order they had.
  entries.sort((a, b) => a.publish.atMs - b.publish.atMs);
  client.publishes = entries.map((entry) => entry.publish);
  if (client.workload !== undefined) client.workload.publishExpirySeconds = entries.map((entry) => entry.expiry);
}
