/**
 * Deliberately broken brokers, to prove the checker is not a rubber stamp.
 *
 * Each planted bug wraps the real Broker from the outside (no hooks in src/): an intercepting
 * BrokerCore decodes the bytes flowing in both directions with Keel's codec and rewrites the
 * action stream the broker produces: it drops some PUBLISHes, duplicates others, or injects
 * PUBLISHes the broker never meant to send. Sends it leaves alone pass through byte for byte;
 * sends it touches are re-encoded packet by packet. Tests run vopr over a range of seeds with
 * each of these and expect the named rule to fire. The planted store bugs at the end do the same
 * for durability: they wrap the real store and break one promise about the disk.
 */

import { Broker, type BrokerOptions } from '../src/broker/broker.js';
import { PacketDecoder } from '../src/codec/decoder.js';
import { encodePacket } from '../src/codec/encoder.js';
import { type Packet, PacketType, type ProtocolVersion, type PublishPacket, type Will } from '../src/codec/packets.js';
import type { Action, AdminCommand, BrokerCore, BrokerView, ConnectionId, ConnectionPeer, StorageRequest, StorageResult } from '../src/contract.js';
import { crc32c } from '../src/store/crc32c.js';
import { DurableStateStore, type DurableStoreOptions } from '../src/store/durable-store.js';
import type { DurableState, StateRecord, StateStore } from '../src/store/state-store.js';
import type { PlantedBugName } from './planted-bug-names.js';
import { matchingFilter, topicMatches } from './topic-match.js';
import type { BrokerFactory, StoreFactory } from './world.js';

interface ConnectionView {
  version: ProtocolVersion | undefined;
  inbound: PacketDecoder;
  outbound: PacketDecoder | null;
  will: Will | null;
  filters: string[];
  /** The client id its CONNECT named (null before it). */
  clientId: string | null;
  /** The host's last report of its unsent output. */
  unsentBytes: number;
}

/** What a planted bug does with one packet the broker sends: keep it, drop it, and/or add packets. */
export interface Rewrite {
  keep: boolean;
  extra?: { connectionId: ConnectionId; packet: Packet }[];
}

export abstract class InterceptingBroker implements BrokerCore {
  protected readonly connections = new Map<ConnectionId, ConnectionView>();
  private pending: Action[] = [];

  constructor(protected readonly inner: BrokerCore) {}

  get ready(): boolean {
    return this.inner.ready;
  }

  get haltReason(): string | null {
    return this.inner.haltReason;
  }

  /** Decides the fate of a packet the broker is sending. */
  protected abstract onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite;

  /** Sees a packet a client sent, before the broker does. */
  protected onClientPacket(_connectionId: ConnectionId, _packet: Packet): void {}

  /** Queues a packet of the bug's own making for the next drain. */
  protected inject(connectionId: ConnectionId, packet: Packet): void {
    const version = this.connections.get(connectionId)?.version;
    if (version === undefined) return;
    this.pending.push({ kind: 'send', connectionId, bytes: encodePacket(packet, version) });
  }

  /** Queues an action of the bug's own making (a log line, say) for the next drain. */
  protected report(action: Action): void {
    this.pending.push(action);
  }

  connectionOpened(nowMs: number, connectionId: ConnectionId, peer: ConnectionPeer): void {
    this.connections.set(connectionId, { version: undefined, inbound: new PacketDecoder({ packetBytesMax: 1 << 28 }), outbound: null, will: null, filters: [], clientId: null, unsentBytes: 0 });
    this.inner.connectionOpened(nowMs, connectionId, peer);
  }

  bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void {
    const view = this.connections.get(connectionId);
    if (view !== undefined) this.watchInbound(connectionId, view, bytes.slice());
    this.inner.bytesReceived(nowMs, connectionId, bytes);
  }

  private watchInbound(connectionId: ConnectionId, view: ConnectionView, bytes: Uint8Array): void {
    try {
      view.inbound.push(bytes);
      for (let packet = view.inbound.next(); packet !== null; packet = view.inbound.next()) {
        if (packet.type === PacketType.Connect) {
          view.version = packet.protocolVersion;
          view.clientId = packet.clientId;
          view.will = packet.will ?? null;
          view.outbound = new PacketDecoder({ packetBytesMax: 1 << 28, protocolVersion: packet.protocolVersion });
        }
        if (packet.type === PacketType.Subscribe) view.filters.push(...packet.subscriptions.map((s) => s.topicFilter));
        this.onClientPacket(connectionId, packet);
      }
    } catch {
      // Garbage from a client is the broker's business; the bug only watches.
    }
  }

  connectionClosed(nowMs: number, connectionId: ConnectionId): void {
    this.connections.delete(connectionId);
    this.inner.connectionClosed(nowMs, connectionId);
  }

  outputBuffered(nowMs: number, connectionId: ConnectionId, bufferedBytes: number): void {
    const view = this.connections.get(connectionId);
    if (view !== undefined) view.unsentBytes = bufferedBytes;
    this.inner.outputBuffered(nowMs, connectionId, bufferedBytes);
  }

  /** Whether the host last reported unsent output on the connection (a reader falling behind). */
  protected backlogged(connectionId: ConnectionId): boolean {
    return (this.connections.get(connectionId)?.unsentBytes ?? 0) > 0;
  }

  storageCompleted(nowMs: number, result: StorageResult): void {
    this.inner.storageCompleted(nowMs, result);
  }

  tick(nowMs: number): void {
    this.inner.tick(nowMs);
  }

  adminRequest(nowMs: number, requestId: number, command: AdminCommand): void {
    this.inner.adminRequest(nowMs, requestId, command);
  }

  get view(): BrokerView {
    return this.inner.view;
  }

  shutdown(nowMs: number): void {
    this.inner.shutdown(nowMs);
  }

  nextDeadlineMs(): number | null {
    return this.inner.nextDeadlineMs();
  }

  drainActions(): Action[] {
    const out: Action[] = [];
    const injected = this.pending;
    this.pending = [];
    for (const action of this.inner.drainActions()) {
      if (action.kind === 'send') this.rewriteSend(action, out);
      else out.push(action);
      if (action.kind === 'close') this.connections.delete(action.connectionId);
    }
    out.push(...injected, ...this.pending);
    this.pending = [];
    return out;
  }

  private rewriteSend(action: Extract<Action, { kind: 'send' }>, out: Action[]): void {
    const view = this.connections.get(action.connectionId);
    if (view === undefined || view.outbound === null || view.version === undefined) {
      out.push(action);
      return;
    }
    const packets: Packet[] = [];
    let changed = false;
    try {
      view.outbound.push(action.bytes.slice());
      for (let packet = view.outbound.next(); packet !== null; packet = view.outbound.next()) {
        const rewrite = this.onBrokerPacket(action.connectionId, packet);
        if (rewrite.keep) packets.push(packet);
        else changed = true;
        for (const extra of rewrite.extra ?? []) {
          if (extra.connectionId === action.connectionId) packets.push(extra.packet);
          else this.inject(extra.connectionId, extra.packet);
          changed = changed || extra.connectionId === action.connectionId;
        }
      }
    } catch {
      out.push(action);
      return;
    }
    if (!changed || view.outbound.bufferedBytes > 0) {
      out.push(action);
      return;
    }
    for (const packet of packets) out.push({ kind: 'send', connectionId: action.connectionId, bytes: encodePacket(packet, view.version) });
  }

  /** Connections past CONNECT other than `except`, in id order. */
  protected otherConnections(except: ConnectionId): ConnectionId[] {
    const ids: ConnectionId[] = [];
    for (const [id, view] of this.connections) if (id !== except && view.version !== undefined) ids.push(id);
    return ids.sort((a, b) => a - b);
  }
}

/** Forgets to resend unacknowledged QoS 1 messages when a session resumes (drops DUP redeliveries). */
class SkipQos1Redelivery extends InterceptingBroker {
  protected onBrokerPacket(_connectionId: ConnectionId, packet: Packet): Rewrite {
    return { keep: !(packet.type === PacketType.Publish && packet.qos === 1 && packet.dup) };
  }
}

/** Delivers some QoS 2 messages twice, the second time under a fresh packet identifier. */
class Qos2Twice extends InterceptingBroker {
  private fakeIdNext = 0;
  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.qos !== 2 || packet.dup || packet.retain) return { keep: true };
    const packetId = 0xf000 + (this.fakeIdNext++ % 0xfff);
    return { keep: true, extra: [{ connectionId, packet: { ...packet, packetId } }] };
  }
}

/** Also sends each message, at QoS 0, to the next connection, subscribed or not. */
class DeliverUnsubscribed extends InterceptingBroker {
  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.dup || packet.topic === '') return { keep: true };
    // A connection of the same version, so the copy carries what that one would get; by name,
    // since topic aliases belong to a connection.
    const version = this.connections.get(connectionId)?.version;
    const target = this.otherConnections(connectionId).find((id) => this.connections.get(id)?.version === version);
    if (target === undefined) return { keep: true };
    const { packetId: _packetId, properties, ...rest } = packet;
    const expiry = properties?.messageExpiryInterval;
    const copy: PublishPacket = { ...rest, qos: 0, retain: false, ...(expiry === undefined ? {} : { properties: { messageExpiryInterval: expiry } }) };
    return { keep: true, extra: [{ connectionId: target, packet: copy }] };
  }
}

/** Never hands out retained messages on subscribe. */
class ForgetRetained extends InterceptingBroker {
  protected onBrokerPacket(_connectionId: ConnectionId, packet: Packet): Rewrite {
    return { keep: !(packet.type === PacketType.Publish && packet.retain) };
  }
}

/** Publishes the will even when the client says a clean goodbye. */
class WillOnCleanDisconnect extends InterceptingBroker {
  protected onBrokerPacket(): Rewrite {
    return { keep: true };
  }

  protected override onClientPacket(connectionId: ConnectionId, packet: Packet): void {
    if (packet.type !== PacketType.Disconnect || packet.reasonCode !== 0) return;
    const will = this.connections.get(connectionId)?.will;
    if (will === null || will === undefined) return;
    for (const target of this.otherConnections(connectionId)) {
      const filters = this.connections.get(target)!.filters;
      if (!filters.some((filter) => topicMatches(matchingFilter(filter), will.topic))) continue;
      this.inject(target, { type: PacketType.Publish, dup: false, qos: 0, retain: false, topic: will.topic, payload: will.payload });
    }
  }
}

/** Never publishes a will (drops every will PUBLISH on its way out). */
class NeverFireWill extends InterceptingBroker {
  protected onBrokerPacket(_connectionId: ConnectionId, packet: Packet): Rewrite {
    // Will payloads from the model clients start with "w|" (see sim/clients/payload.ts).
    return { keep: !(packet.type === PacketType.Publish && packet.payload[0] === 0x77 && packet.payload[1] === 0x7c) };
  }
}

/** While any connection reports unsent output (a reader that stopped), drops QoS 0 to every other one, unreported. */
class StallDropsOthers extends InterceptingBroker {
  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.qos !== 0) return { keep: true };
    const othersBacklogged = [...this.connections.keys()].some((id) => id !== connectionId && this.backlogged(id));
    return { keep: !othersBacklogged };
  }
}

/**
 * Drops QoS 0 copies to any connection with unsent output, however little, and reports each as an
 * output-full drop, exactly as the real broker reports one: the report alone would excuse it.
 */
class Qos0DroppedAsOutputFull extends InterceptingBroker {
  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    const clientId = this.connections.get(connectionId)?.clientId ?? null;
    if (packet.type !== PacketType.Publish || packet.qos !== 0 || packet.topic === '' || clientId === null || !this.backlogged(connectionId)) return { keep: true };
    this.report({ kind: 'log', level: 'debug', event: 'message-dropped', fields: { clientId, reason: 'output-full', topic: packet.topic, payloadCrc32c: crc32c(packet.payload) } });
    return { keep: false };
  }
}

/** Forwards messages without their Message Expiry Interval. */
class DropExpiryInterval extends InterceptingBroker {
  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.properties?.messageExpiryInterval === undefined) return { keep: true };
    const { messageExpiryInterval: _interval, ...properties } = packet.properties;
    return { keep: false, extra: [{ connectionId, packet: { ...packet, properties } }] };
  }
}

/** Publishes a will (at QoS 0) the moment its connection drops, ignoring the Will Delay Interval. */
class WillIgnoresDelay extends InterceptingBroker {
  protected onBrokerPacket(): Rewrite {
    return { keep: true };
  }

  override connectionClosed(nowMs: number, connectionId: ConnectionId): void {
    const will = this.connections.get(connectionId)?.will;
    if (will !== null && will !== undefined && (will.properties?.willDelayInterval ?? 0) > 0) {
      for (const target of this.otherConnections(connectionId)) {
        const filters = this.connections.get(target)!.filters;
        if (!filters.some((filter) => topicMatches(matchingFilter(filter), will.topic))) continue;
        this.inject(target, { type: PacketType.Publish, dup: false, qos: 0, retain: false, topic: will.topic, payload: will.payload });
      }
    }
    super.connectionClosed(nowMs, connectionId);
  }
}

/** Acknowledges UNSUBSCRIBE but goes on copying (at QoS 0) what matches the filter to that connection. */
class UnsubscribeIgnored extends InterceptingBroker {
  private readonly removed = new Map<ConnectionId, string[]>();

  protected override onClientPacket(connectionId: ConnectionId, packet: Packet): void {
    if (packet.type !== PacketType.Unsubscribe) return;
    this.removed.set(connectionId, [...(this.removed.get(connectionId) ?? []), ...packet.topicFilters]);
  }

  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.dup || packet.topic === '') return { keep: true };
    const extra: { connectionId: ConnectionId; packet: Packet }[] = [];
    for (const [target, filters] of this.removed) {
      // Between connections of one version, so that what the copy carries is what the target would get.
      if (target === connectionId || this.connections.get(target)?.version !== this.connections.get(connectionId)?.version) continue;
      if (!filters.some((filter) => topicMatches(matchingFilter(filter), packet.topic))) continue;
      // The target's aliases are its own: the copy goes by name, keeping the expiry it had.
      const { packetId: _packetId, properties, ...rest } = packet;
      const expiry = properties?.messageExpiryInterval;
      extra.push({ connectionId: target, packet: { ...rest, qos: 0, retain: false, ...(expiry === undefined ? {} : { properties: { messageExpiryInterval: expiry } }) } });
    }
    return { keep: true, extra };
  }
}

/** Sends PUBLISHes to clients that allow topic aliases under an alias it never defined on the connection. */
class UndefinedTopicAlias extends InterceptingBroker {
  private readonly aliasMaximum = new Map<ConnectionId, number>();

  protected override onClientPacket(connectionId: ConnectionId, packet: Packet): void {
    if (packet.type === PacketType.Connect) this.aliasMaximum.set(connectionId, packet.properties?.topicAliasMaximum ?? 0);
  }

  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    const maximum = this.aliasMaximum.get(connectionId) ?? 0;
    if (packet.type !== PacketType.Publish || maximum === 0 || packet.properties?.topicAlias !== undefined) return { keep: true };
    return { keep: false, extra: [{ connectionId, packet: { ...packet, topic: '', properties: { ...packet.properties, topicAlias: maximum } } }] };
  }
}

function wrap(Wrapper: new (inner: BrokerCore) => InterceptingBroker): BrokerFactory {
  return (options: BrokerOptions) => new Wrapper(new Broker(options));
}

export const plantedBugs = {
  'skip-qos1-redelivery': wrap(SkipQos1Redelivery),
  'qos2-twice': wrap(Qos2Twice),
  'deliver-unsubscribed': wrap(DeliverUnsubscribed),
  'forget-retained': wrap(ForgetRetained),
  'will-on-clean-disconnect': wrap(WillOnCleanDisconnect),
  'never-fire-will': wrap(NeverFireWill),
  'stall-drops-others-qos0': wrap(StallDropsOthers),
  'qos0-dropped-as-output-full': wrap(Qos0DroppedAsOutputFull),
  'drop-expiry-interval': wrap(DropExpiryInterval),
  'will-ignores-delay': wrap(WillIgnoresDelay),
  'unsubscribe-ignored': wrap(UnsubscribeIgnored),
  'undefined-topic-alias': wrap(UndefinedTopicAlias),
} satisfies Record<PlantedBugName, BrokerFactory>;

export type { PlantedBugName };

/**
 * Planted store bugs: wrappers around the real DurableStateStore, from outside, that break one
 * durability promise each. The world builds one per broker incarnation over the same disk.
 */
abstract class StoreWrapper implements StateStore {
  constructor(protected readonly inner: DurableStateStore) {}
  recover(nowMs: number): readonly StateRecord[] | null {
    return this.inner.recover(nowMs);
  }
  append(record: StateRecord): number {
    return this.inner.append(record);
  }
  get durableLsn(): number {
    return this.inner.durableLsn;
  }
  get appendedLsn(): number {
    return this.inner.appendedLsn;
  }
  flush(nowMs: number): void {
    this.inner.flush(nowMs);
  }
  drainRequests(): StorageRequest[] {
    return this.inner.drainRequests();
  }
  storageCompleted(nowMs: number, result: StorageResult): void {
    this.inner.storageCompleted(nowMs, result);
  }
  nextDeadlineMs(): number | null {
    return this.inner.nextDeadlineMs();
  }
  get failure(): string | null {
    return this.inner.failure;
  }
  maybeCompact(state: DurableState): void {
    this.inner.maybeCompact(state);
  }
}

/** Acknowledges before fsync: reports every appended record as durable at once. */
class AckBeforeSync extends StoreWrapper {
  override get durableLsn(): number {
    return this.inner.appendedLsn;
  }
}

/** Recovery that silently skips a damaged-looking record: drops the last subscription it read. */
class RecoverySkipsRecord extends StoreWrapper {
  override recover(nowMs: number): readonly StateRecord[] | null {
    const records = this.inner.recover(nowMs);
    if (records === null) return null;
    let skip = -1;
    for (let index = 0; index < records.length; index++) if (records[index]!.kind === 'subscription-added') skip = index;
    return skip < 0 ? records : records.filter((_record, index) => index !== skip);
  }
}

export const plantedStoreBugs = {
  'ack-before-sync': (options: DurableStoreOptions) => new AckBeforeSync(new DurableStateStore(options)),
  'recovery-skips-record': (options: DurableStoreOptions) => new RecoverySkipsRecord(new DurableStateStore(options)),
} satisfies Record<string, StoreFactory>;

export type PlantedStoreBugName = keyof typeof plantedStoreBugs;
