/**
 * A seeded random workout of one stream, checking its guarantees after every step: publishes of
 * every QoS, a persistent reader and a two-member consumer group that connect, disconnect and
 * acknowledge at random, stretches in which nothing becomes durable, process crashes and power
 * losses. It checks that an offset, once seen by any reader, always holds the same message (no
 * reader ever sees an entry a crash could give to another message); that every publish whose
 * PUBACK or PUBCOMP arrived is in the stream for good; that the persistent reader never skips an
 * offset, across reconnects and restarts; and that once the world is quiet the reader has every
 * offset and the group has handed every offset to one member or another.
 */
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import { decodeText, type TestClient } from '../broker/harness.js';
import { newDisk } from './store-rig.js';
import { offsetOf, StreamHarness } from './stream-harness.js';

const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600, receiveMaximum: 3 } };

interface World {
  harness: StreamHarness;
  random: () => number;
  /** What each offset was seen to hold. */
  seen: Map<number, string>;
  acknowledgedPublishes: Set<string>;
  reader: TestClient | null;
  /** The next offset the reader has not received (its deliveries arrive in order). */
  readerNext: number;
  members: (TestClient | null)[];
  groupSeen: Set<number>;
  published: number;
  /** Once quiet, every delivery is acknowledged (an unacknowledged one waits for a reconnect). */
  quiet: boolean;
}

function observe(world: World, publish: PublishPacket, who: string): void {
  const offset = offsetOf(publish)!;
  const payload = decodeText(publish.payload);
  const known = world.seen.get(offset);
  if (known !== undefined) expect(payload, `${who}: offset ${offset} changed its message`).toBe(known);
  world.seen.set(offset, payload);
}

/** What the reader received (also on a connection since closed: it got those before); acknowledges some. */
function readerStep(world: World): void {
  const reader = world.reader;
  if (reader === null) return;
  for (const publish of reader.publishes()) {
    observe(world, publish, 'reader');
    const offset = offsetOf(publish)!;
    // Never a skip: the next new offset is the one after the last received (resends repeat).
    expect(offset, 'the reader skipped an offset').toBeLessThanOrEqual(world.readerNext);
    if (offset === world.readerNext) world.readerNext += 1;
    if (!reader.closed && publish.qos > 0 && (world.quiet || world.random() < 0.8)) reader.acknowledge(publish);
  }
}

function groupStep(world: World): void {
  for (const member of world.members) {
    if (member === null) continue;
    for (const publish of member.publishes()) {
      observe(world, publish, 'group');
      world.groupSeen.add(offsetOf(publish)!);
      if (!member.closed && publish.qos > 0 && (world.quiet || world.random() < 0.8)) member.acknowledge(publish);
    }
  }
}

function publishStep(world: World): void {
  const publisher = world.harness.connect(`publisher-${world.published}`, 5);
  const payload = `p${world.published++}`;
  const qos = Math.floor(world.random() * 3) as 0 | 1 | 2;
  const acknowledgements = publisher.publish(`sensors/${Math.floor(world.random() * 4)}`, payload, qos);
  const done = acknowledgements.some((packet) => packet.type === (qos === 1 ? PacketType.Puback : PacketType.Pubcomp));
  if (qos > 0 && done) world.acknowledgedPublishes.add(payload);
  publisher.drop();
}

/** A persistent session's CONNACK waits for durability: a (re)connect happens with syncs running. */
function connectReader(world: World): void {
  world.harness.releaseHeld();
  const reader = world.harness.open(5);
  expect(reader.connect('reader', persistent).reasonCode).toBe(0);
  world.reader = reader;
  // A restart may have lost acknowledgements not yet durable: the reader may start again earlier.
  readerStep(world);
}

function connectMember(world: World, index: number): void {
  world.harness.releaseHeld();
  const member = world.harness.open(5);
  expect(member.connect(`member-${index}`, persistent).reasonCode).toBe(0);
  world.members[index] = member;
}

function chaos(world: World): void {
  const roll = world.random();
  const harness = world.harness;
  if (roll < 0.04) harness.restartAfterCrash();
  else if (roll < 0.07) harness.powerLoss();
  else if (roll < 0.12) harness.gate.hold.add('sync');
  else if (roll < 0.2) harness.releaseHeld();
  else if (roll < 0.26 && world.reader !== null && !world.reader.closed) world.reader.drop();
  else if (roll < 0.32) {
    const member = world.members[Math.floor(world.random() * 2)];
    if (member !== null && member !== undefined && !member.closed) member.drop();
  }
}

function run(seed: number, steps: number): void {
  const random = seedrandom(String(seed));
  const harness = new StreamHarness({}, newDisk(seed));
  const world: World = { harness, random, seen: new Map(), acknowledgedPublishes: new Set(), reader: null, readerNext: 0, members: [null, null], groupSeen: new Set(), published: 0, quiet: false };
  const reader = harness.open(5);
  reader.connect('reader', persistent);
  reader.subscribe([{ topicFilter: '$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
  world.reader = reader;
  for (const index of [0, 1]) {
    connectMember(world, index);
    world.members[index]!.subscribe([{ topicFilter: '$share/g/$stream/sensors', qos: 1 }], { userProperties: [['stream-offset', 'earliest']] });
  }
  for (let step = 0; step < steps; step++) {
    publishStep(world);
    readerStep(world);
    groupStep(world);
    chaos(world);
    readerStep(world);
    groupStep(world);
    if (world.reader === null || world.reader.closed) connectReader(world);
    for (const index of [0, 1]) if (world.members[index]!.closed && random() < 0.5) connectMember(world, index);
    groupStep(world);
  }
  quiet(world);
}

/** No more faults: everything moves until nothing is left. */
function quiet(world: World): void {
  world.quiet = true;
  world.harness.releaseHeld();
  // Reconnected, so that what was left unacknowledged is sent again.
  world.reader?.drop();
  readerStep(world);
  connectReader(world);
  for (const index of [0, 1]) {
    if (!world.members[index]!.closed) world.members[index]!.drop();
    groupStep(world);
    connectMember(world, index);
  }
  for (let round = 0; round < 500; round++) {
    readerStep(world);
    groupStep(world);
    world.harness.advance(5);
  }
  const end = world.harness.broker.state.streams.get('sensors')!.nextOffset;
  expect(world.readerNext, 'the reader got every offset').toBe(end);
  for (let offset = 0; offset < end; offset++) expect(world.groupSeen.has(offset), `the group handed out offset ${offset}`).toBe(true);
  const stored = new Set(world.seen.values());
  for (const payload of world.acknowledgedPublishes) expect(stored.has(payload), `acknowledged ${payload} is in the stream`).toBe(true);
}

describe('stream fuzz', () => {
  for (let seed = 1; seed <= 24; seed++) {
    it(`seed ${seed}`, () => run(seed, 120));
  }
});
