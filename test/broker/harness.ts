/**
 * A test harness for the broker state machine: no sockets, no timers. It creates a Broker over a
 * MemoryStateStore, opens connections, feeds them encoded packets (the codec's encodePacket),
 * drains the broker's actions after every input and decodes what each connection was sent with
 * a client-side PacketDecoder of that connection's version. Time only moves when a test says so.
 * `restart()` models a crash: the broker object is dropped and a new one replays the same store.
 * `openRaw()` gives a connection that keeps the raw bytes it is sent, for hostile-input tests
 * whose answers need not decode in the version the client claimed.
 */

import { Broker, type BrokerOptions } from '../../src/broker/broker.js';
import { PacketDecoder } from '../../src/codec/decoder.js';
import { encodePacket } from '../../src/codec/encoder.js';
import {
  type ConnackPacket,
  type ConnectPacket,
  type Packet,
  PacketType,
  type Properties,
  type ProtocolVersion,
  type PublishPacket,
  type Qos,
  type SubackPacket,
  type Subscription,
  type Will,
} from '../../src/codec/packets.js';
import { type BrokerConfig, defaultConfig } from '../../src/config.js';
import { type Action, type ClusterRequest, type ClusterResult, defaultListener, type ListenerInfo, type StorageRequest, type StorageResult } from '../../src/contract.js';
import { MemoryStateStore } from '../../src/store/memory-store.js';
import type { StateStore } from '../../src/store/state-store.js';

export const text = (value: string): Uint8Array => new TextEncoder().encode(value);
export const decodeText = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/**
 * For a harness over a store that issues storage requests (a DurableStateStore on a simulated
 * disk): how requests are executed (synchronously, between inputs, each result fed back as its own
 * input), how a restart makes the next store, and extra broker options.
 */
export interface HarnessStorage<S extends StateStore> {
  /** The result now, or null to hold it back (the test completes it later with `complete`). */
  execute(request: StorageRequest): StorageResult | null;
  restartStore(): S;
  brokerOptions?: Partial<BrokerOptions>;
}

export class Harness<S extends StateStore = MemoryStateStore> {
  readonly config: BrokerConfig;
  store: S;
  broker: Broker;
  nowMs = 1_000;
  readonly logs: Extract<Action, { kind: 'log' }>[] = [];
  readonly adminResults: Extract<Action, { kind: 'admin-result' }>[] = [];
  /** Requests a cluster node issued on its cluster link, in order (the test answers them). */
  readonly clusterRequests: ClusterRequest[] = [];

  /** A harness whose broker is node `nodeId` of a cluster (its link to NATS not up yet). */
  static clusterNode(nodeId = 'a'): Harness {
    return new Harness({ cluster: { nats: ['nats://test:4222'], nodeId } });
  }

  /** The cluster requests issued since the last call, taken out of `clusterRequests`. */
  takeClusterRequests(): ClusterRequest[] {
    return this.clusterRequests.splice(0);
  }

  /**
   * The cluster link comes up; what the node issues on it then (subscriptions, watches) is dropped.
   * `current`: the watch of `keel-sessions` says at once that its replay is in (an empty bucket),
   * so the node reads hand-over markers; false leaves that to the test (`sessionsWatchId`).
   */
  clusterConnected(current = true): void {
    this.broker.clusterStatus(this.nowMs, 'connected');
    this.collect();
    this.takeClusterRequests();
    if (!current) return;
    this.broker.clusterWatchCurrent(this.nowMs, 'keel-sessions', this.sessionsWatchId);
    this.collect();
    this.takeClusterRequests();
  }

  /** The request id of the newest `kv-watch` of `keel-sessions` the node issued (0: none yet). */
  sessionsWatchId = 0;
  /**
   * A cluster node's claims of client ids (`keel-sessions` compare-and-sets, session-registry.ts)
   * are answered at once as NATS would answer an uncontested one, and not kept in clusterRequests;
   * false keeps them there for the test to answer.
   */
  answerClaims = true;
  private claimRevision = 0;
  private readonly claimAnswers: ClusterResult[] = [];
  /** The listener the next `open` connects through, and the user name its transport verified. */
  listener: ListenerInfo = defaultListener;
  verifiedUsername: string | undefined = undefined;
  private readonly clients = new Map<number, Endpoint>();
  private nextConnectionId = 1;

  constructor(
    overrides: Partial<BrokerConfig> = {},
    store: S = new MemoryStateStore() as unknown as S,
    private readonly storage: HarnessStorage<S> | null = null,
  ) {
    this.config = { ...defaultConfig, ...overrides };
    this.store = store;
    this.broker = new Broker({ ...this.storage?.brokerOptions, config: this.config, nowMs: this.nowMs, store });
    this.collect();
  }

  /** Opens a transport connection that will speak `version`. */
  open(version: ProtocolVersion = 4): TestClient {
    const client = new TestClient(this, this.nextConnectionId++, version);
    this.clients.set(client.id, client);
    this.broker.connectionOpened(this.nowMs, client.id, {
      remoteAddress: `10.0.0.${client.id}:1883`,
      listener: this.listener,
      ...(this.verifiedUsername === undefined ? {} : { verifiedUsername: this.verifiedUsername }),
    });
    this.collect();
    return client;
  }

  /** Opens a transport connection that records what it is sent as raw bytes. */
  openRaw(): RawTestConnection {
    const connection = new RawTestConnection(this, this.nextConnectionId++);
    this.clients.set(connection.id, connection);
    this.broker.connectionOpened(this.nowMs, connection.id, { remoteAddress: `10.0.0.${connection.id}:1883`, listener: this.listener });
    this.collect();
    return connection;
  }

  /** Opens and connects; returns the client after checking the CONNACK succeeded. */
  connect(clientId: string, version: ProtocolVersion = 4, options: Partial<ConnectPacket> = {}): TestClient {
    const client = this.open(version);
    const connack = client.connect(clientId, options);
    if (connack.reasonCode !== 0) throw new Error(`CONNACK refused ${connack.reasonCode}`);
    return client;
  }

  advance(milliseconds: number): void {
    this.nowMs += milliseconds;
    this.broker.tick(this.nowMs);
    this.collect();
  }

  /** Advances to the broker's next deadline, if any; returns whether there was one. */
  advanceToDeadline(): boolean {
    const deadline = this.broker.nextDeadlineMs();
    if (deadline === null) return false;
    this.nowMs = Math.max(this.nowMs, deadline);
    this.broker.tick(this.nowMs);
    this.collect();
    return true;
  }

  /** Crash and restart: every connection is gone without notice; a new broker replays the store. */
  restart(): void {
    for (const client of this.clients.values()) client.closed = true;
    this.clients.clear();
    if (this.storage !== null) this.store = this.storage.restartStore();
    this.broker = new Broker({ ...this.storage?.brokerOptions, config: this.config, nowMs: this.nowMs, store: this.store });
    this.collect();
  }

  collect(): void {
    // Storage results are fed back as inputs of their own once the actions before them are handled.
    for (let round = 0; ; round++) {
      if (round > 1_000_000) throw new Error('storage requests never stop');
      const results = this.collectOnce();
      const answers = this.claimAnswers.splice(0);
      if (results.length === 0 && answers.length === 0) return;
      for (const result of results) this.broker.storageCompleted(this.nowMs, result);
      for (const answer of answers) this.broker.clusterCompleted(this.nowMs, answer);
    }
  }

  /** Feeds a storage result that `HarnessStorage.execute` held back. */
  complete(result: StorageResult): void {
    this.broker.storageCompleted(this.nowMs, result);
    this.collect();
  }

  private collectOnce(): StorageResult[] {
    const results: StorageResult[] = [];
    for (const action of this.broker.drainActions()) {
      if (action.kind === 'log') {
        this.logs.push(action);
        continue;
      }
      if (action.kind === 'storage') {
        if (this.storage === null) throw new Error('the memory store issues no storage requests');
        const result = this.storage.execute(action.request);
        if (result !== null) results.push(result);
        continue;
      }
      if (action.kind === 'halt') throw new Error(`broker halted: ${action.reason}`);
      if (action.kind === 'admin-result') {
        this.adminResults.push(action);
        continue;
      }
      if (action.kind === 'cluster') {
        // Only a cluster node issues them; a test of one reads and answers them (test/cluster/).
        if (this.config.cluster === null) throw new Error('the harness runs a broker without a cluster');
        const request = action.request;
        if (request.op === 'kv-watch' && request.bucket === 'keel-sessions') this.sessionsWatchId = request.requestId;
        if (this.answerClaims && request.op === 'kv-set' && request.bucket === 'keel-sessions') {
          this.claimRevision += 1;
          this.claimAnswers.push({ requestId: request.requestId, ok: true, sequence: this.claimRevision });
          continue;
        }
        if (this.answerClaims && request.op === 'kv-watch' && request.bucket === 'keel-sessions') continue;
        this.clusterRequests.push(request);
        continue;
      }
      const client = this.clients.get(action.connectionId);
      if (client === undefined) throw new Error(`action for unknown connection ${action.connectionId}`);
      if (client.closed) throw new Error(`action after close on connection ${action.connectionId}`);
      if (action.kind === 'send') client.receiveBytes(action.bytes);
      else if (action.kind === 'pause-reading' || action.kind === 'resume-reading') {
        // The harness keeps feeding bytes either way (the pause is advisory); it records the state.
        client.readingPaused = action.kind === 'pause-reading';
        client.readingChanges.push(action.kind);
      } else {
        client.closed = true;
        client.closeReason = action.reason;
      }
    }
    return results;
  }

  logEvents(): string[] {
    return this.logs.map((log) => log.event);
  }
}

/** What the harness hands a connection's actions to. */
interface Endpoint {
  closed: boolean;
  closeReason: string;
  readingPaused: boolean;
  readonly readingChanges: string[];
  receiveBytes(bytes: Uint8Array): void;
}

/** A connection that keeps every byte it is sent, undecoded. */
export class RawTestConnection implements Endpoint {
  private readonly chunks: Uint8Array[] = [];
  closed = false;
  closeReason = '';
  readingPaused = false;
  readonly readingChanges: string[] = [];

  constructor(
    private readonly harness: Harness<StateStore>,
    readonly id: number,
  ) {}

  receiveBytes(bytes: Uint8Array): void {
    this.chunks.push(bytes.slice());
  }

  /** Everything received so far, in order. */
  received(): Uint8Array {
    return Buffer.concat(this.chunks);
  }

  sendBytes(bytes: Uint8Array): void {
    if (this.closed) throw new Error('send on a closed test connection');
    this.harness.broker.bytesReceived(this.harness.nowMs, this.id, bytes);
    this.harness.collect();
  }

  /** The transport drops (no DISCONNECT). */
  drop(): void {
    this.closed = true;
    this.harness.broker.connectionClosed(this.harness.nowMs, this.id);
    this.harness.collect();
  }
}

export class TestClient implements Endpoint {
  readonly decoder: PacketDecoder;
  private inbox: Packet[] = [];
  closed = false;
  /** Whether the broker last asked to stop reading from this client (throttle.ts). */
  readingPaused = false;
  /** Every pause-reading / resume-reading asked for, in order. */
  readonly readingChanges: string[] = [];
  closeReason = '';
  private nextPacketId = 1;

  constructor(
    private readonly harness: Harness<StateStore>,
    readonly id: number,
    readonly version: ProtocolVersion,
  ) {
    this.decoder = new PacketDecoder({ packetBytesMax: 64 * 1024 * 1024, protocolVersion: version });
  }

  receiveBytes(bytes: Uint8Array): void {
    this.decoder.push(bytes);
    for (let packet = this.decoder.next(); packet !== null; packet = this.decoder.next()) this.inbox.push(packet);
  }

  send(packet: Packet): void {
    this.sendBytes(encodePacket(packet, this.version));
  }

  sendBytes(bytes: Uint8Array): void {
    if (this.closed) throw new Error('send on a closed test connection');
    this.harness.broker.bytesReceived(this.harness.nowMs, this.id, bytes);
    this.harness.collect();
  }

  /** The transport drops (no DISCONNECT). */
  drop(): void {
    this.closed = true;
    this.harness.broker.connectionClosed(this.harness.nowMs, this.id);
    this.harness.collect();
  }

  /** Every packet received since the last call. */
  take(): Packet[] {
    const packets = this.inbox;
    this.inbox = [];
    return packets;
  }

  /** Received PUBLISH packets since the last take (other packets are discarded). */
  publishes(): PublishPacket[] {
    return this.take().filter((packet): packet is PublishPacket => packet.type === PacketType.Publish);
  }

  takeOne<T extends Packet['type']>(type: T): Extract<Packet, { type: T }> {
    const packets = this.take();
    if (packets.length !== 1 || packets[0]!.type !== type) {
      throw new Error(`expected one packet of type ${type}, got ${JSON.stringify(packets.map((p) => p.type))}`);
    }
    return packets[0] as Extract<Packet, { type: T }>;
  }

  connect(clientId: string, options: Partial<ConnectPacket> = {}): ConnackPacket {
    const packet: ConnectPacket = {
      type: PacketType.Connect,
      protocolName: this.version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: this.version,
      cleanStart: true,
      keepAliveSeconds: 0,
      clientId,
      ...options,
    };
    this.send(packet);
    const packets = this.take();
    const connack = packets[0];
    if (connack === undefined || connack.type !== PacketType.Connack) throw new Error(`expected CONNACK first, got ${JSON.stringify(packets.map((p) => p.type))}`);
    // Redeliveries of a resumed session follow the CONNACK: keep them for the test.
    this.inbox = packets.slice(1);
    return connack;
  }

  subscribe(filters: (string | Partial<Subscription>)[], properties?: Properties): SubackPacket {
    const subscriptions: Subscription[] = filters.map((entry) => {
      const base: Subscription = { topicFilter: '', qos: 2, noLocal: false, retainAsPublished: false, retainHandling: 0 };
      return typeof entry === 'string' ? { ...base, topicFilter: entry } : { ...base, ...entry };
    });
    const packetId = this.allocatePacketId();
    const packet: Packet = { type: PacketType.Subscribe, packetId, subscriptions };
    if (properties !== undefined) packet.properties = properties;
    this.send(packet);
    const packets = this.take();
    const suback = packets.find((p): p is SubackPacket => p.type === PacketType.Suback);
    if (suback === undefined) throw new Error(`no SUBACK: ${JSON.stringify(packets.map((p) => p.type))}`);
    // Put back anything after the SUBACK (retained messages) for the test to read.
    this.inbox = packets.filter((p) => p !== suback).concat(this.inbox);
    return suback;
  }

  /** Publishes; for QoS 1/2 completes the handshake and returns the acknowledgements received. */
  publish(topic: string, payload: string | Uint8Array, qos: Qos = 0, options: Partial<PublishPacket> = {}): Packet[] {
    const packet: PublishPacket = {
      type: PacketType.Publish,
      dup: false,
      qos,
      retain: false,
      topic,
      payload: typeof payload === 'string' ? text(payload) : payload,
      ...options,
    };
    if (qos > 0 && packet.packetId === undefined) packet.packetId = this.allocatePacketId();
    this.send(packet);
    if (qos === 0) return [];
    const acks = this.take();
    if (qos === 2 && acks.some((p) => p.type === PacketType.Pubrec)) {
      this.send({ type: PacketType.Pubrel, packetId: packet.packetId!, reasonCode: 0 });
      acks.push(...this.take());
    }
    return acks;
  }

  /** Acknowledges a received QoS 1/2 PUBLISH fully (PUBACK, or PUBREC + PUBREL→PUBCOMP). */
  acknowledge(publish: PublishPacket): void {
    if (publish.qos === 1) this.send({ type: PacketType.Puback, packetId: publish.packetId!, reasonCode: 0 });
    if (publish.qos === 2) {
      this.send({ type: PacketType.Pubrec, packetId: publish.packetId!, reasonCode: 0 });
      const pubrel = this.take().find((p) => p.type === PacketType.Pubrel);
      if (pubrel === undefined) throw new Error('no PUBREL after PUBREC');
      this.send({ type: PacketType.Pubcomp, packetId: publish.packetId!, reasonCode: 0 });
    }
  }

  disconnect(reasonCode = 0, properties?: Properties): void {
    const packet: Packet = { type: PacketType.Disconnect, reasonCode };
    if (properties !== undefined) packet.properties = properties;
    this.send(packet);
  }

  allocatePacketId(): number {
    const id = this.nextPacketId;
    this.nextPacketId = this.nextPacketId >= 0xffff ? 1 : this.nextPacketId + 1;
    return id;
  }
}

export function will(topic: string, payload: string, options: Partial<Will> = {}): Will {
  return { topic, payload: text(payload), qos: 0, retain: false, ...options };
}
