/**
 * Movers: model MQTT 5.0 clients that take their own client id over from node to node, and the
 * rules the cluster checks about them (session-registry.ts: a client id is unique cluster-wide;
 * session-handover.ts: a persistent session moves with its client).
 *
 * A mover connects with a QoS 2 will on `t/w` whose payload names the mover and the connection's
 * generation. In worlds run with `--handover-movers` it also has a persistent session (expiry
 * never): clean start on its first connection, clean start 0 on every later one; on a CONNACK with
 * session present 0 it subscribes to its filter (QoS 1 or 2); with session present 1 it does not,
 * and relies on the session the nodes handed over. Without it, every connection is a clean start
 * and the mover subscribes to nothing (the movers of before the hand-over; their seeds replay).
 * Now and then, while the world is active, it connects again through another node and leaves its
 * previous connection open, as a client does whose old TCP connection is half-open: the old node
 * must notice through the `keel-sessions` bucket and end that connection, and hand its session to
 * the new node. Packets that still reach an abandoned connection are not read (it is half-open),
 * so what the old node had sent and not seen acknowledged must come again on the new connection.
 * Each will is a publication of the cluster checker (the mover as publisher, the generation as
 * sequence, left out of order checks), armed when its CONNECT goes out and owed once the old
 * connection got DISCONNECT 0x8E (a takeover is an abnormal end: the will must reach every
 * subscriber subscribed before; `acknowledged-lost` otherwise, and a QoS 2 subscriber given it
 * twice is `qos2-duplicate`). As a subscriber the mover is judged like any other by the cluster
 * checker (`acknowledged-lost` included, over its moves).
 *
 * Rules of its own (the last two with `--handover-movers`):
 * - `takeover-without-0x8E`: a connection the node closed as taken over never got DISCONNECT 0x8E;
 * - `two-sessions`: after the quiet period a mover still has an accepted connection open other
 *   than its newest accepted one (two nodes serve one client id, or the old one won);
 * - `session-present-unknown`: session present 1 on a mover's first connection (clean start, so
 *   no node can hold a session for it);
 * - In worlds with heavy sessions (cluster-world.ts HeavySessions) a mover about to move stops
 *   reading its connection first now and then, for a while, as a client does whose link went
 *   half-open before it gave up on it: what its session is sent meanwhile stays unacknowledged, so
 *   the session it then takes along holds it (a state of several MiB, in parts: handover-parts.ts).
 *
 * - `session-lost`: session present 0 on a later connection, although the mover had a session,
 *   unless the node it connected to logged that the hand-over timed out for it while a fault could
 *   have held it up (a node down or cut off, a reader behind, a link just back: cluster-world.ts
 *   handoverMayHaveStalled); the checker then excuses what the lost session was owed.
 */
import { PacketDecoder } from '../../src/codec/decoder.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { type Packet, PacketType } from '../../src/codec/packets.js';
import { messagePayload } from '../clients/payload.js';
import type { Random } from '../random.js';
import type { ClusterWorld, Pipe, PipeClient } from './cluster-world.js';
import { receivePublish } from './publish-receipt.js';

export const willTopic = 't/w';
const moverFilters = ['t/+', 't/#', 'u/a', '#', 't/a'];

/** One connection of a mover. */
interface MoverConnection {
  readonly pipe: Pipe;
  readonly decoder: PacketDecoder;
  readonly generation: number;
  connacked: boolean;
  takenOver: boolean;
  /** Not read any more (a stall before a move): half-open from the mover's side. */
  stalled: boolean;
}

/** Stalls before moves (cluster-world.ts HeavySessions), with the stream that draws them. */
export interface MoverStalls {
  readonly stallChance: number;
  readonly stallMsMax: number;
  readonly random: Random;
}

/** A shaped hand-over plan that drives a mover (handover-shapes.ts): what it hears from it. */
export interface MoverPlanListener {
  connack(node: number, present: boolean): void;
  subscribed(): void;
}

export class MoverClient implements PipeClient {
  /** The plan that drives this mover (handover-shapes.ts), while it does: no moves of its own then. */
  private plan: MoverPlanListener | null = null;
  private readonly connections = new Map<number, MoverConnection>();
  /** The connection it uses now (the newest it opened), null while it has none. */
  private current: MoverConnection | null = null;
  private generation = 0;
  /** The newest generation whose CONNACK arrived. */
  private newestAccepted = 0;
  private reconnectScheduled = false;
  moves = 0;
  takeovers = 0;
  /** Connections answered with session present 1 after a move (the hand-over worked). */
  resumed = 0;
  /** Whether a node granted this mover's subscription (it then holds a session). */
  private subscribed = false;
  /** QoS 2 packet ids received and not yet released (the receiver's half, kept with the session). */
  private readonly incomingQos2 = new Set<number>();
  /** Set when a node logged that the hand-over for this mover timed out: the next session present 0 is excused. */
  private handoverTimedOut = false;
  /**
   * Set when a connection the mover had already left was told session present 0 after a hand-over
   * timed out: the session was reset there, so whatever the mover's current connection resumes is
   * that fresh session, without the subscription (seed 2100908); or when its own first CONNECT's
   * clean start was accepted after it moved on (cleanStartAccepted), its subscription kept until
   * then. The next CONNACK subscribes again, and a session present 0 then is no lost session.
   */
  private sessionReset = false;
  /** The node of the newest connection whose CONNACK arrived (where its session lives, unless a move is under way). */
  private newestAcceptedNode = -1;
  /**
   * The connections opened since the newest accepted one, by generation: a node may have adopted
   * the session for one of them though its CONNACK never came (the node crashed before sending it).
   */
  private readonly openedSinceAccepted: { generation: number; node: number }[] = [];
  /**
   * Set when a node that may hold the mover's session (that of its newest accepted connection, or
   * of the connection it is waiting on) lost its disk: the next session present 0 is excused.
   */
  private sessionWiped = false;
  private readonly filter: string;
  private readonly qos: 1 | 2;

  constructor(
    private readonly world: ClusterWorld,
    readonly index: number,
    private readonly random: Random,
    private readonly moveMeanMs: number,
    /** False: clean start every time, no subscription (the movers of worlds without `--handover-movers`). */
    private readonly persistent: boolean,
    /** Null: a mover never stalls (worlds without heavy sessions). */
    private readonly stalls: MoverStalls | null = null,
    /**
     * How long the mover waits for a CONNACK before it connects through another node, leaving that
     * connection open too (worlds with hand-over faults, handover-faults.ts); null: it waits for good.
     */
    private readonly connackPatienceMs: number | null = null,
  ) {
    this.filter = persistent ? random.pick(moverFilters) : '';
    this.qos = persistent ? random.pick([1, 2] as const) : 1;
  }

  get clientId(): string {
    return `m${this.index}`;
  }

  /** A shaped hand-over plan drives this mover from now on (its own moves stop until release). */
  drivenBy(plan: MoverPlanListener): void {
    this.plan = plan;
  }

  /** The plan is done with this mover: it moves on its own again. */
  release(): void {
    this.plan = null;
    if (this.current === null) return this.scheduleReconnect();
    if (this.current.connacked) this.scheduleMove();
  }

  /** Connects through a random node (another one than now when it moves). */
  connect(): void {
    this.reconnectScheduled = false;
    const nodes = this.world.nodes.length;
    const avoid = this.current?.pipe.node ?? -1;
    let node = this.random.int(0, nodes - 1);
    if (node === avoid) node = (node + 1) % nodes;
    if (!this.connectTo(node)) this.scheduleReconnect();
  }

  /**
   * Opens a new connection to `node`, leaving the one it uses open (a move); false when the node
   * does not accept connections now. A plan may name the node the mover is on already.
   */
  connectTo(node: number): boolean {
    const pipe = this.world.openPipe(this, node);
    if (pipe === null) return false;
    this.generation += 1;
    const generation = this.generation;
    const connection: MoverConnection = { pipe, decoder: new PacketDecoder({ packetBytesMax: 1 << 20, protocolVersion: 5 }), generation, connacked: false, takenOver: false, stalled: false };
    this.connections.set(pipe.id, connection);
    this.current = connection;
    this.openedSinceAccepted.push({ generation, node });
    this.world.trace(`m${this.index} connect n${node} L${pipe.id} gen=${generation}`);
    // The will is a publication from the moment its CONNECT goes out; sent twice, so it is left out of order checks.
    this.world.checker.publishSent(this.index, generation, willTopic, 2, false, node, false, true);
    this.world.checker.publishSent(this.index, generation, willTopic, 2, true, node, false, true);
    const payload = messagePayload(this.index, generation, 2, willTopic);
    this.world.checker.payloadSent(this.index, generation, willTopic, payload);
    const connect: Packet = {
      type: PacketType.Connect,
      protocolName: 'MQTT',
      protocolVersion: 5,
      cleanStart: !this.persistent || generation === 1,
      keepAliveSeconds: 0,
      clientId: this.clientId,
      ...(this.persistent ? { properties: { sessionExpiryInterval: 0xffffffff } } : {}),
      will: { topic: willTopic, payload, qos: 2, retain: false },
    };
    this.world.clientSend(pipe, encodePacket(connect, 5));
    if (this.connackPatienceMs !== null) this.world.queue.push(this.world.clock.nowMs + this.connackPatienceMs, () => this.impatient(connection));
    return true;
  }

  /**
   * No CONNACK yet on the connection it uses: the mover moves on through another node, as a client
   * does whose CONNACK timed out, while the node it left may still be waiting for a hand-over (a
   * source cut off or down: the client moves on past the hand-over, the shape seed 5010652 needs).
   */
  private impatient(connection: MoverConnection): void {
    if (this.world.quiet || this.plan !== null || this.current !== connection || connection.connacked) return;
    this.moves += 1;
    this.world.trace(`m${this.index} waited ${this.connackPatienceMs}ms for a CONNACK, moves, leaving L${connection.pipe.id} open`);
    this.connect();
  }

  private scheduleReconnect(): void {
    if (this.reconnectScheduled || this.plan !== null) return;
    this.reconnectScheduled = true;
    this.world.queue.push(this.world.clock.nowMs + this.random.int(100, 500), () => this.connect());
  }

  private scheduleMove(): void {
    if (this.world.quiet || this.plan !== null) return;
    this.world.queue.push(this.world.clock.nowMs + this.random.int(1, this.moveMeanMs * 2), () => {
      if (this.world.quiet || this.plan !== null || this.current === null || !this.current.connacked) return;
      const stallMs = this.stallBeforeMove();
      if (stallMs !== null) return this.stall(this.current, stallMs);
      this.moves += 1;
      this.world.trace(`m${this.index} moves, leaving L${this.current.pipe.id} open`);
      this.connect();
    });
  }

  /** How long the mover stops reading before this move, null when it moves at once. */
  private stallBeforeMove(): number | null {
    const stalls = this.stalls;
    if (stalls === null || !stalls.random.chance(stalls.stallChance)) return null;
    return stalls.random.int(Math.floor(stalls.stallMsMax / 2), stalls.stallMsMax);
  }

  /** Stops reading `connection` for `stallMs`, then moves (unless the connection ended meanwhile: it connects again then anyway). */
  private stall(connection: MoverConnection, stallMs: number): void {
    connection.stalled = true;
    this.world.trace(`m${this.index} stalls L${connection.pipe.id} for ${stallMs}ms`);
    this.world.queue.push(this.world.clock.nowMs + stallMs, () => {
      if (this.current !== connection || this.plan !== null) return;
      this.moves += 1;
      this.world.trace(`m${this.index} moves, leaving L${connection.pipe.id} open`);
      this.connect();
    });
  }

  bytesArrived(pipe: Pipe, bytes: Uint8Array): void {
    const connection = this.connections.get(pipe.id);
    if (connection === undefined) return;
    try {
      connection.decoder.push(bytes);
      for (let packet = connection.decoder.next(); packet !== null; packet = connection.decoder.next()) this.packetArrived(connection, packet);
    } catch (error) {
      this.world.fail('client-decode', `m${this.index}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private packetArrived(connection: MoverConnection, packet: Packet): void {
    if (packet.type === PacketType.Connack) return this.connackArrived(connection, packet.reasonCode, packet.sessionPresent);
    if (packet.type === PacketType.Disconnect) {
      this.world.trace(`m${this.index} DISCONNECT L${connection.pipe.id} 0x${packet.reasonCode.toString(16)}`);
      if (packet.reasonCode !== 0x8e) return;
      connection.takenOver = true;
      this.takeovers += 1;
      // A connection ended by a takeover owes its will.
      if (connection.connacked) this.world.checker.publishAcked(this.index, connection.generation, connection.pipe.node);
      return;
    }
    // An abandoned or stalled connection is half-open: nothing else on it is read.
    if (connection !== this.current || connection.stalled) return;
    if (packet.type === PacketType.Suback) {
      const granted = packet.reasonCodes[0]! < 0x80;
      this.world.checker.subackReceived(this.index, this.filter, granted);
      this.subscribed = this.subscribed || granted;
      if (granted) this.plan?.subscribed();
      return;
    }
    if (packet.type === PacketType.Publish) {
      this.world.trace(`m${this.index} got ${packet.topic} q${packet.qos}${packet.dup ? ' dup' : ''} id=${packet.packetId ?? '-'}`);
      receivePublish(
        packet,
        this.incomingQos2,
        (delivered) => this.world.checker.publishReceived(this.index, delivered),
        (answer) => this.world.clientSend(connection.pipe, encodePacket(answer, 5)),
      );
      return;
    }
    if (packet.type === PacketType.Pubrel) {
      this.incomingQos2.delete(packet.packetId);
      this.world.clientSend(connection.pipe, encodePacket({ type: PacketType.Pubcomp, packetId: packet.packetId, reasonCode: 0 }, 5));
    }
  }

  private connackArrived(connection: MoverConnection, reasonCode: number, sessionPresent: boolean): void {
    this.world.trace(`m${this.index} CONNACK L${connection.pipe.id} rc=${reasonCode} present=${sessionPresent}`);
    if (reasonCode !== 0) return;
    connection.connacked = true;
    if (connection.generation > this.newestAccepted) this.newestAcceptedNode = connection.pipe.node;
    this.newestAccepted = Math.max(this.newestAccepted, connection.generation);
    while (this.openedSinceAccepted.length > 0 && this.openedSinceAccepted[0]!.generation <= this.newestAccepted) this.openedSinceAccepted.shift();
    if (connection !== this.current) return;
    this.plan?.connack(connection.pipe.node, sessionPresent);
    if (!this.persistent) return this.scheduleMove();
    if (sessionPresent && connection.generation === 1) {
      return this.world.fail('session-present-unknown', `m${this.index}: session present 1 on its first connection (clean start) on n${connection.pipe.node}`);
    }
    if (sessionPresent && !this.sessionReset) {
      if (connection.generation > 1) this.resumed += 1;
    } else {
      if (this.subscribed && !this.handoverTimedOut && !this.sessionWiped && !this.sessionReset) {
        return this.world.fail(
          'session-lost',
          `m${this.index}: session present 0 on n${connection.pipe.node} (generation ${connection.generation}) though its session lived and no hand-over timed out with a fault to excuse it`,
        );
      }
      // A fresh session: what the lost one was owed is excused, and the subscription starts over.
      // Its deliveries are counted apart from the old one's even when the mover never saw its
      // SUBACK (it came on a connection already left, seed 5200147): the old session had one.
      if (this.subscribed && this.sessionWiped && !this.handoverTimedOut) this.world.checker.lostDiskExcused.sessions += 1;
      if (this.subscribed || connection.generation > 1) this.world.checker.sessionLost(this.index);
      this.subscribed = false;
      this.incomingQos2.clear();
      this.world.checker.subscribeSent(this.index, this.filter);
      const subscribe: Packet = { type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: this.filter, qos: this.qos, noLocal: false, retainAsPublished: false, retainHandling: 2 }] };
      this.world.clientSend(connection.pipe, encodePacket(subscribe, 5));
    }
    this.handoverTimedOut = false;
    this.sessionWiped = false;
    this.sessionReset = false;
    this.scheduleMove();
  }

  /**
   * Node `node` lost its disk. The mover's session may have lived there: on the node of its newest
   * accepted connection (unless a move has taken it elsewhere since), or on a node it connected to
   * since, which may have adopted it for a connection whose CONNACK never came (seed 5300238) or
   * be adopting it now. Its next session present 0 is then excused (sessionLost).
   */
  diskLost(node: number): void {
    if (!this.persistent || !this.subscribed) return;
    if (this.newestAcceptedNode !== node && !this.openedSinceAccepted.some((opened) => opened.node === node)) return;
    this.sessionWiped = true;
    this.world.checker.lostDiskExcused.sessionsMarked += 1;
  }

  /**
   * A node gave a CONNECT of this mover (clean start 0) a fresh session. Excused only after a node
   * logged that the mover's hand-over timed out (the rule of session-lost); the CONNACK may go to a
   * connection the mover has already left, or none at all (taken over before it was sent).
   */
  sessionResetByNode(): void {
    if (!this.persistent || !(this.handoverTimedOut || this.sessionWiped) || !this.subscribed) return;
    this.world.checker.sessionLost(this.index);
    this.subscribed = false;
    this.sessionReset = true;
  }

  /**
   * A node accepted a CONNECT of this mover with clean start 1. Only its first CONNECT asks for
   * one, so once it has opened a later connection that CONNECT was accepted late: its claim waited
   * (its node cut from NATS) while the mover, out of patience, moved on, got a session elsewhere
   * and subscribed there; the clean start ended that session, and the connection it was made for
   * is one the mover has left (seed 12530098: the mover then resumed the fresh session, session
   * present 1, and never subscribed again). The client asked for it, so nothing is broken: the next
   * CONNACK starts over, session present or not (what the old session was owed is excused, as after
   * sessionResetByNode). The old session's connection keeps its subscription until then (it may
   * still deliver, until its node sees the claim), and so does a SUBACK in flight meanwhile.
   */
  cleanStartAccepted(): void {
    if (!this.persistent || this.generation === 1) return;
    this.sessionReset = true;
  }

  /** A node logged that the hand-over of this mover's session timed out, and a fault could have held it up (its session present 0 is excused). */
  handoverGaveUp(): void {
    this.handoverTimedOut = true;
  }

  closed(pipe: Pipe, why = ''): void {
    const connection = this.connections.get(pipe.id);
    if (connection === undefined) return;
    this.connections.delete(pipe.id);
    if (why.startsWith('node closed: session taken over') && !connection.takenOver) {
      this.world.fail('takeover-without-0x8E', `m${this.index}: L${pipe.id} on n${pipe.node} closed as taken over without DISCONNECT 0x8E`);
    }
    if (connection !== this.current) return;
    this.current = null;
    this.scheduleReconnect();
  }

  /** After the quiet period: one accepted connection at most, and the newest; the rule broken, or null. */
  finalProblem(): { rule: string; detail: string } | null {
    for (const connection of this.connections.values()) {
      if (connection.connacked && connection.generation !== this.newestAccepted) {
        const detail = `m${this.index}: L${connection.pipe.id} on n${connection.pipe.node} (generation ${connection.generation}) is still open beside generation ${this.newestAccepted}`;
        return { rule: 'two-sessions', detail };
      }
    }
    if (this.current === null || !this.current.connacked) return { rule: 'not-idle', detail: `m${this.index}: not connected after the quiet period` };
    return null;
  }
}
