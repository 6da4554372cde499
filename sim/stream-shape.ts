/**
 * Stream worlds: durable streams (src/broker/streams/) in the world a seed builds.
 *
 * Drawn from `${seed}:streams` (and `${seed}:stream-reader:${k}` per reader) after every older
 * choice, so that a seed without streams keeps its world byte for byte. About a third of the
 * swarm worlds get one or two streams over the base topics: some kept for ever, some trimmed by
 * age, by size or both, some last-value (compacted to the newest entry per topic), with small
 * segments, a short maintenance interval and a small read-ahead, so that retention, compaction
 * and the move from file reads to memory reads happen within a run. Readers are clients of their
 * own, appended after the others (so no older client changes): plain `$stream` readers (MQTT 5.0
 * from earliest, latest, `offset:N` or `time:T`, or with no `stream-offset`; MQTT 3.1.1 from
 * latest or `$stream/NAME/earliest`), some with a sub-filter, some persistent, and consumer
 * groups of two or three members. Readers disconnect cleanly now and then, besides the faults
 * every client suffers (resets, crashes, partitions; the broker crashes too).
 *
 * A stream world runs the `always` sync policy, so that what was acknowledged is on the disk and
 * every stream rule holds across a crash (see stream-checker.ts).
 */
import type { StreamDefinition } from '../src/config.js';
import { Random } from './random.js';
import type { WorldShape } from './shape.js';

/** Where a reader asks to start: the `stream-offset` of MQTT 5.0 or the filter form of 3.1.1. */
export type StreamStartPlan = { kind: 'earliest' } | { kind: 'latest' } | { kind: 'offset'; offset: number } | { kind: 'time'; timeMs: number } | { kind: 'default' };

export interface StreamReaderPlan {
  stream: string;
  /** The filter the reader subscribes to, as sent. */
  filter: string;
  /** The sub-filter narrowing the stream, or null. */
  narrow: string | null;
  /** The consumer group's name, or null for a plain reader. */
  group: string | null;
  start: StreamStartPlan;
  /** Times at which the reader disconnects cleanly (and reconnects a little later). */
  disconnectsAtMs: number[];
}

const streamFilters = ['#', 'a/#', '+/x', 'b/+', 'a/x'] as const;
const narrowFilters = ['a/+', '+/x', 'b/#', 'c'] as const;

/** One seed in this many (of the swarm worlds that can have them) runs streams. */
const streamWorldChance = 0.3;

/** Adds streams and their readers to a swarm world (see the module comment); false when it has none. */
export function chooseStreamWorld(shape: WorldShape): boolean {
  const config = shape.configOverrides;
  // A world that grants QoS 0 only, or whose topic limits refuse `$stream/NAME/earliest/a/+`, has no readers worth checking.
  if (config.maximumQos === 0 || config.topicLevelsMax !== undefined) return false;
  const random = Random.stream(shape.seed, 'streams');
  if (!random.chance(streamWorldChance)) return false;
  const streams: StreamDefinition[] = [];
  const streamCount = random.int(1, 2);
  for (let index = 0; index < streamCount; index++) streams.push(chooseStream(random, `s${index + 1}`));
  config.streams = streams;
  config.streamSegmentBytesMax = 4096;
  config.streamIndexIntervalBytes = 256;
  config.streamMaintenanceIntervalMs = random.pick([100, 500, 1_000]);
  config.streamReadAheadBytesMax = random.pick([1024, 4096, 65_536]);
  shape.disk.store = { ...shape.disk.store, syncPolicy: 'always' };
  const readerCount = random.int(2, 5);
  const groupMembers = random.chance(0.5) ? random.int(2, 3) : 0;
  const group = { name: random.pick(['g1', 'g2']), stream: random.pick(streams).name, start: random.pick(['earliest', 'latest'] as const) };
  // A slow group (small windows, slow acknowledgements) falls behind, so that retention by age
  // reaches entries it has not acknowledged: those it must keep.
  if (groupMembers > 0 && random.chance(0.5)) config.inflightPerSessionMax = Math.min(config.inflightPerSessionMax ?? 4, random.int(1, 4));
  for (let reader = 0; reader < readerCount + groupMembers; reader++) {
    const index = shape.clients.length;
    const readerRandom = Random.stream(shape.seed, `stream-reader:${reader}`);
    // Group members speak MQTT 5.0: the group rules follow offsets, which 3.1.1 deliveries do not carry.
    const protocolVersion = reader >= readerCount || readerRandom.chance(0.65) ? 5 : 4;
    const member = reader >= readerCount;
    const plan = member ? groupMember(group) : chooseReader(readerRandom, streams, protocolVersion, shape.activeMs);
    const disconnectsAtMs: number[] = [];
    if (readerRandom.chance(0.4)) for (let count = readerRandom.int(1, 3); count > 0; count--) disconnectsAtMs.push(readerRandom.int(0, shape.activeMs));
    disconnectsAtMs.sort((a, b) => a - b);
    plan.disconnectsAtMs = disconnectsAtMs;
    shape.clients.push({
      index,
      clientId: `c${index}`,
      protocolVersion,
      // Most members are persistent: their sessions, and so the group, last through their absences.
      persistent: readerRandom.chance(member ? 0.85 : 0.6),
      keepAliveSeconds: readerRandom.int(5, 20),
      subscriptions: [{ filter: plan.filter, qos: 1 }],
      publishes: [],
      will: null,
      ackDelayMsMax: member ? readerRandom.pick([5, 400, 2_000]) : readerRandom.pick([0, 5, 50, 400]),
      cleanReconnectProbability: 0,
      violator: false,
      streamReader: plan,
    });
  }
  chooseStreamPressure(shape, streams);
  chooseStreamWrites(shape);
  shape.streams = streams;
  return true;
}

/**
 * From `${seed}:stream-writes` (the choices above stay as older seeds made them): how many released
 * bytes a stream gathers before it writes them to its segment. Worlds are small, so the default
 * (64 KiB) would leave most entries unwritten until recovery; most worlds gather less, some write
 * every release as earlier builds did.
 */
function chooseStreamWrites(shape: WorldShape): void {
  const random = Random.stream(shape.seed, 'stream-writes');
  shape.configOverrides.streamWriteBytesMin = random.pick([1, 512, 4096, 65_536]);
}

/**
 * From `${seed}:stream-pressure` (so that the choices above stay as older seeds made them): some
 * worlds bound the streams' backlog far below what their publishers send (streamBacklogBytesMax of
 * a few KiB), so that publishers are paused for it and resumed within a run; some make every
 * stream last-value, so that compaction rewrites segments under readers reading them (seed
 * 1010413 needed a read issued between a rewrite's rename and its directory sync).
 */
function chooseStreamPressure(shape: WorldShape, streams: StreamDefinition[]): void {
  const random = Random.stream(shape.seed, 'stream-pressure');
  if (random.chance(0.4)) shape.configOverrides.streamBacklogBytesMax = random.pick([1024, 2048, 8192]);
  if (random.chance(0.2)) streams.splice(0, streams.length, ...streams.map((stream) => ({ ...stream, lastValue: true })));
}

function chooseStream(random: Random, name: string): StreamDefinition {
  const retention = random.pick(['none', 'none', 'age', 'age', 'size', 'both'] as const);
  return {
    name,
    filter: random.pick(streamFilters),
    retentionMs: retention === 'age' || retention === 'both' ? random.pick([1_500, 4_000]) : 0,
    retentionBytes: retention === 'size' || retention === 'both' ? random.pick([8_192, 16_384]) : 0,
    lastValue: random.chance(0.25),
  };
}

function chooseReader(random: Random, streams: StreamDefinition[], protocolVersion: 4 | 5, activeMs: number): StreamReaderPlan {
  const stream = random.pick(streams).name;
  const narrow = random.chance(0.2) ? random.pick(narrowFilters) : null;
  let start: StreamStartPlan;
  if (protocolVersion === 4) start = random.chance(0.5) ? { kind: 'earliest' } : { kind: 'default' };
  else {
    const kind = random.pick(['earliest', 'latest', 'offset', 'time', 'default'] as const);
    if (kind === 'offset') start = { kind, offset: random.int(0, 40) };
    else if (kind === 'time') start = { kind, timeMs: random.int(0, activeMs) };
    else start = { kind };
  }
  const earliestInFilter = protocolVersion === 4 && start.kind === 'earliest';
  const filter = `$stream/${stream}${earliestInFilter ? '/earliest' : ''}${narrow === null ? '' : `/${narrow}`}`;
  return { stream, filter, narrow, group: null, start, disconnectsAtMs: [] };
}

function groupMember(group: { name: string; stream: string; start: 'earliest' | 'latest' }): StreamReaderPlan {
  // Every member names the same group; the first SUBSCRIBE creates it, from earliest or latest.
  const filter = `$share/${group.name}/$stream/${group.stream}${group.start === 'earliest' ? '/earliest' : ''}`;
  return { stream: group.stream, filter, narrow: null, group: group.name, start: { kind: group.start }, disconnectsAtMs: [] };
}

/** The `stream-offset` user property value for a start, or null when none is sent. */
export function streamOffsetValue(start: StreamStartPlan): string | null {
  switch (start.kind) {
    case 'earliest':
    case 'latest':
      return start.kind;
    case 'offset':
      return `offset:${start.offset}`;
    case 'time':
      return `time:${start.timeMs}`;
    case 'default':
      return null;
  }
}
