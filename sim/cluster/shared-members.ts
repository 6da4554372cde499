/**
 * Members of `$share` groups in a simulated cluster (issue 16): model MQTT 5.0 clients with a
 * persistent session on their home node, each a member of one group, that come and go. While the
 * world is active a member leaves its group (UNSUBSCRIBE) and joins it again (SUBSCRIBE) at random
 * times; its connection drops with the world's faults and it reconnects to its home node, asking
 * again for what was not answered. It does the receiver's half of QoS 1 and 2 and tells the
 * shared checker (shared-checker.ts) what reached its application.
 *
 * What a world gets is chosen from a random stream of its own (`cluster-shared`), so the rest of
 * the world's shape is the one the seed chose before shared groups existed.
 */
import { PacketDecoder } from '../../src/codec/decoder.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { type Packet, PacketType, type PublishPacket, type Qos } from '../../src/codec/packets.js';
import { Random } from '../random.js';
import { receivePublish } from './publish-receipt.js';
import type { SharedChecker } from './shared-checker.js';

/** The world as a member sees it (cluster-world.ts implements it). */
export interface MemberWorld {
  readonly clock: { nowMs: number };
  readonly quiet: boolean;
  readonly nodeCount: number;
  readonly sharedChecker: SharedChecker;
  schedule(atMs: number, run: () => void): void;
  trace(line: string): void;
  fail(rule: string, detail: string): void;
  openPipe(client: SharedMember, node: number): MemberPipe | null;
  clientSend(pipe: MemberPipe, bytes: Uint8Array): void;
  closePipe(pipe: MemberPipe, why: string, tellNode: boolean): void;
}

export interface MemberPipe {
  readonly id: number;
  readonly node: number;
}

export interface SharedShape {
  members: number;
  /** How often (mean, ms) a member leaves or joins its group; null: members never leave. */
  churnMeanMs: number | null;
}

const groupFilters = ['$share/g1/t/#', '$share/g1/t/+', '$share/g2/#', '$share/g2/t/a'];

export function chooseSharedShape(seed: number): SharedShape {
  const random = Random.stream(seed, 'cluster-shared');
  if (!random.chance(0.7)) return { members: 0, churnMeanMs: null };
  return { members: random.int(2, 5), churnMeanMs: random.chance(0.6) ? random.int(1_500, 6_000) : null };
}

/** Member client indices start here (subscribers and publishers come first, auditors at 100). */
const firstMemberIndex = 50;

/**
 * The members of a world (none in about 30% of worlds): homes spread over the nodes (the first two
 * on different nodes, so a group spans nodes), in one or two groups; their connections drop at
 * the world's client-drop rate, from a random stream of their own.
 */
export function startSharedMembers(world: MemberWorld, worldShape: { seed: number; activeMs: number; clientDropMeanMs: number | null }): SharedMember[] {
  const seed = worldShape.seed;
  const shape = chooseSharedShape(seed);
  const random = Random.stream(seed, 'cluster-shared-members');
  const filters = random.chance(0.5) ? [random.pick(groupFilters)] : [random.pick(groupFilters), random.pick(groupFilters)];
  const members: SharedMember[] = [];
  for (let index = 0; index < shape.members; index++) {
    const clientIndex = firstMemberIndex + index;
    const home = index < 2 ? (random.int(0, world.nodeCount - 1) + index) % world.nodeCount : random.int(0, world.nodeCount - 1);
    const filter = filters[index % filters.length]!;
    const member = new SharedMember(world, clientIndex, home, filter, random.pick([1, 2] as const), shape.churnMeanMs, Random.stream(seed, `client-${clientIndex}`));
    world.sharedChecker.memberCreated(clientIndex, home, filter);
    world.trace(`c${clientIndex} member of ${filter} on n${home}`);
    members.push(member);
  }
  const dropMeanMs = worldShape.clientDropMeanMs;
  if (members.length > 0 && dropMeanMs !== null) scheduleDrops(world, members, dropMeanMs, worldShape.activeMs, Random.stream(seed, 'cluster-shared-faults'));
  return members;
}

function scheduleDrops(world: MemberWorld, members: SharedMember[], meanMs: number, activeMs: number, random: Random): void {
  const atMs = world.clock.nowMs + random.int(1, meanMs * 2);
  if (atMs >= activeMs) return;
  world.schedule(atMs, () => {
    if (world.quiet) return;
    random.pick(members).dropConnection();
    scheduleDrops(world, members, meanMs, activeMs, random);
  });
}

export class SharedMember {
  private pipe: MemberPipe | null = null;
  private decoder: PacketDecoder | null = null;
  private connected = false;
  private generation = 0;
  /** Whether it wants to be in its group, and whether the broker said it is. */
  private wanted = true;
  private joined = false;
  /** The packet id of the SUBSCRIBE / UNSUBSCRIBE not yet answered, 0 when none. */
  private pendingPacketId = 0;
  private nextPacketId = 1;
  private everJoined = false;
  private readonly incomingQos2 = new Set<number>();
  /** Its home node lost its disk (and its session with it): the next session present 0 is excused. */
  private sessionWiped = false;

  constructor(
    private readonly world: MemberWorld,
    readonly index: number,
    readonly home: number,
    readonly filter: string,
    private readonly qos: Qos,
    private readonly churnMeanMs: number | null,
    private readonly random: Random,
  ) {}

  start(): void {
    this.world.schedule(this.world.clock.nowMs + this.random.int(50, 300), () => this.connect());
    this.scheduleChurn();
  }

  private scheduleChurn(): void {
    const mean = this.churnMeanMs;
    if (mean === null) return;
    this.world.schedule(this.world.clock.nowMs + this.random.int(1, mean * 2), () => {
      if (this.world.quiet) return;
      this.wanted = !this.wanted;
      this.world.trace(`c${this.index} ${this.wanted ? 'joins' : 'leaves'} ${this.filter}`);
      this.settle();
      this.scheduleChurn();
    });
  }

  private connect(): void {
    if (this.pipe !== null) return;
    const pipe = this.world.openPipe(this, this.home);
    if (pipe === null) {
      this.world.schedule(this.world.clock.nowMs + this.random.int(100, 500), () => this.connect());
      return;
    }
    this.pipe = pipe;
    this.decoder = new PacketDecoder({ packetBytesMax: 1 << 20, protocolVersion: 5 });
    this.generation += 1;
    this.world.trace(`c${this.index} connect n${this.home} L${pipe.id} gen=${this.generation} member`);
    this.send({
      type: PacketType.Connect,
      protocolName: 'MQTT',
      protocolVersion: 5,
      cleanStart: this.generation === 1,
      keepAliveSeconds: 0,
      clientId: `c${this.index}`,
      properties: { sessionExpiryInterval: 0xffffffff },
    });
  }

  dropConnection(): void {
    if (this.pipe !== null) this.world.closePipe(this.pipe, 'client dropped', true);
  }

  /** Node `node` lost its disk: a member at home there lost its session and is out of its group until it subscribes again. */
  diskLost(node: number): void {
    if (this.home !== node || this.generation === 0) return;
    this.sessionWiped = true;
    this.world.sharedChecker.memberLostSession(this.index);
    this.joined = false;
  }

  closed(pipe: MemberPipe): void {
    if (this.pipe !== pipe) return;
    this.pipe = null;
    this.decoder = null;
    this.connected = false;
    this.pendingPacketId = 0;
    this.world.sharedChecker.connectionEnded(this.index);
    this.world.schedule(this.world.clock.nowMs + this.random.int(50, 500), () => this.connect());
  }

  private send(packet: Packet): void {
    if (this.pipe !== null) this.world.clientSend(this.pipe, encodePacket(packet, 5));
  }

  bytesArrived(pipe: MemberPipe, bytes: Uint8Array): void {
    if (pipe !== this.pipe || this.decoder === null) return;
    try {
      this.decoder.push(bytes);
      for (let packet = this.decoder.next(); packet !== null; packet = this.decoder.next()) {
        this.packetArrived(packet);
        if (this.pipe !== pipe) return;
      }
    } catch (error) {
      this.world.fail('client-decode', `c${this.index}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private packetArrived(packet: Packet): void {
    switch (packet.type) {
      case PacketType.Connack:
        this.world.trace(`c${this.index} CONNACK rc=${packet.reasonCode} present=${packet.sessionPresent}`);
        if (packet.reasonCode !== 0) return this.dropConnection();
        if (!packet.sessionPresent && this.generation > 1 && this.everJoined && !this.sessionWiped)
          return this.world.fail('session-lost', `c${this.index}: its persistent session on n${this.home} is gone`);
        this.connected = true;
        this.sessionWiped = false;
        // A fresh session: no QoS 2 message is half received in it (packet ids start over).
        if (!packet.sessionPresent) this.incomingQos2.clear();
        return this.settle();
      case PacketType.Suback:
        return this.answered(packet.packetId, packet.reasonCodes[0]! < 0x80, true);
      case PacketType.Unsuback:
        return this.answered(packet.packetId, true, false);
      case PacketType.Publish:
        return this.publishArrived(packet);
      case PacketType.Pubrel:
        this.incomingQos2.delete(packet.packetId);
        return this.send({ type: PacketType.Pubcomp, packetId: packet.packetId, reasonCode: 0 });
      default:
        return;
    }
  }

  /** Sends what brings the broker in line with what the member wants, one request at a time. */
  private settle(): void {
    if (!this.connected || this.pendingPacketId !== 0 || this.wanted === this.joined) return;
    const packetId = this.nextPacketId++;
    this.pendingPacketId = packetId;
    if (this.wanted) {
      this.world.sharedChecker.subscribeSent(this.index);
      this.send({ type: PacketType.Subscribe, packetId, subscriptions: [{ topicFilter: this.filter, qos: this.qos, noLocal: false, retainAsPublished: false, retainHandling: 2 }] });
    } else {
      this.world.sharedChecker.unsubscribeSent(this.index);
      this.send({ type: PacketType.Unsubscribe, packetId, topicFilters: [this.filter] });
    }
  }

  private answered(packetId: number, granted: boolean, subscribe: boolean): void {
    if (packetId !== this.pendingPacketId) return;
    this.pendingPacketId = 0;
    if (subscribe && !granted) return this.world.fail('shared-refused', `c${this.index}: the broker refused ${this.filter}`);
    if (subscribe) {
      this.joined = true;
      this.everJoined = true;
      this.world.sharedChecker.subackReceived(this.index);
    } else {
      this.joined = false;
      this.world.sharedChecker.unsubackReceived(this.index);
    }
    this.settle();
  }

  private publishArrived(packet: PublishPacket): void {
    this.world.trace(`c${this.index} got ${packet.topic} q${packet.qos}${packet.dup ? ' dup' : ''} id=${packet.packetId ?? '-'} member`);
    receivePublish(
      packet,
      this.incomingQos2,
      (delivered) => this.world.sharedChecker.publishReceived(this.index, delivered),
      (answer) => this.send(answer),
    );
  }

  /** Why this member is not settled at the end, or null. */
  idleProblem(): string | null {
    if (!this.connected) return 'not connected after the quiet period';
    if (this.pendingPacketId !== 0) return `its ${this.wanted ? 'SUBSCRIBE' : 'UNSUBSCRIBE'} was never answered`;
    return null;
  }
}
