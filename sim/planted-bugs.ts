/**
 * Deliberately broken brokers, to prove the checker is not a rubber stamp.
 *
 * Each planted bug wraps the real Broker from the outside (no hooks in src/): an intercepting
 * BrokerCore decodes the bytes flowing in both directions with Keel's codec and rewrites the
 * action stream the broker produces: it drops some PUBLISHes, duplicates others, or injects
 * PUBLISHes the broker never meant to send. Sends it leaves alone pass through byte for byte;
 * sends it touches are re-encoded packet by packet. A bug that must change what the broker reads
 * (swallow an acknowledgement meant for a packet of its own, feed it a packet the client never
 * sent) sets `rewritesInput`: the client's bytes then reach the broker as whole packets,
 * re-encoded, each passed through `rewriteClientPacket`. Tests run vopr over a range of seeds with
 * each of these and expect the named rule to fire. The planted store bugs at the end do the same
 * for durability: they wrap the real store and break one promise about the disk.
 */

import { Buffer } from 'node:buffer';
import type { Authorizer } from '../src/broker/authorizer.js';
import { Broker, type BrokerOptions } from '../src/broker/broker.js';
import { PacketDecoder } from '../src/codec/decoder.js';
import { encodePacket } from '../src/codec/encoder.js';
import { type Packet, PacketType, type ProtocolVersion, type PublishPacket, type Qos, type Will } from '../src/codec/packets.js';
import { type BrokerConfig, outputReportStepBytes } from '../src/config.js';
import type { Action, AdminCommand, BrokerCore, BrokerView, ConnectionId, ConnectionPeer, StorageRequest, StorageResult } from '../src/contract.js';
import { crc32c } from '../src/store/crc32c.js';
import { DurableStateStore, type DurableStoreOptions } from '../src/store/durable-store.js';
import type { DurableState, StateRecord, StateStore } from '../src/store/state-store.js';
import type { StreamEntry } from '../src/store/streams/stream-entry.js';
import type { StreamStore } from '../src/store/streams/stream-store.js';
import { checkTopicName, isBrokerTopic } from '../src/topics/validate.js';
import { parsePayload } from './clients/payload.js';
import { passwordFor } from './identity.js';
import type { PlantedBugName } from './planted-bug-names.js';
import { matchingFilter, splitShared, topicMatches } from './topic-match.js';
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
  /** Topic aliases the client set on this connection (5.0), to name what it publishes. */
  aliases: Map<number, string>;
  /** Garbage came in: with `rewritesInput`, the rest of its bytes pass through untouched. */
  rawInput: boolean;
  /** With `rewritesInput`: the client's bytes from the start of the packet being decoded (not yet handed on). */
  unconsumed: Uint8Array;
}

/** What a planted bug does with one packet the broker sends: keep it, drop it, and/or add packets. */
export interface Rewrite {
  keep: boolean;
  extra?: { connectionId: ConnectionId; packet: Packet }[];
}

export abstract class InterceptingBroker implements BrokerCore {
  protected readonly connections = new Map<ConnectionId, ConnectionView>();
  /** The filters of each client's current session (by client id), as its packets tell. */
  private readonly filtersByClient = new Map<string, Set<string>>();
  private pending: Action[] = [];
  /** Set by a bug that rewrites what the broker reads (see the module comment). */
  protected readonly rewritesInput: boolean = false;

  constructor(protected readonly inner: BrokerCore) {}

  /** The core inside, for rules that read the broker's tables (kept-bytes-check.ts). */
  get wrappedCore(): BrokerCore {
    return this.inner;
  }

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

  /** With `rewritesInput`: the packets the broker reads in place of one the client sent. */
  protected rewriteClientPacket(_nowMs: number, _connectionId: ConnectionId, packet: Packet): Packet[] {
    return [packet];
  }

  /** With `rewritesInput`: hands the broker a packet as if the client had sent it now. */
  protected feed(nowMs: number, connectionId: ConnectionId, packet: Packet): void {
    const version = packet.type === PacketType.Connect ? packet.protocolVersion : this.connections.get(connectionId)?.version;
    if (version === undefined) return;
    this.inner.bytesReceived(nowMs, connectionId, encodePacket(packet, version));
  }

  /** The filters of the session `connectionId` belongs to (empty before its CONNECT). */
  protected sessionFilters(connectionId: ConnectionId): ReadonlySet<string> {
    const clientId = this.connections.get(connectionId)?.clientId ?? null;
    return (clientId === null ? undefined : this.filtersByClient.get(clientId)) ?? new Set();
  }

  /** The topic a client's PUBLISH names, its alias resolved; null when unknown. */
  protected publishedTopic(connectionId: ConnectionId, packet: PublishPacket): string | null {
    if (packet.topic !== '') return packet.topic;
    const alias = packet.properties?.topicAlias;
    return alias === undefined ? null : (this.connections.get(connectionId)?.aliases.get(alias) ?? null);
  }

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
    this.connections.set(connectionId, {
      version: undefined,
      inbound: new PacketDecoder({ packetBytesMax: 1 << 28 }),
      outbound: null,
      will: null,
      filters: [],
      clientId: null,
      unsentBytes: 0,
      aliases: new Map(),
      rawInput: false,
      unconsumed: new Uint8Array(0),
    });
    this.inner.connectionOpened(nowMs, connectionId, peer);
  }

  bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void {
    const view = this.connections.get(connectionId);
    if (!this.rewritesInput || view === undefined || view.rawInput) {
      if (view !== undefined) this.watchInbound(connectionId, view, bytes.slice(), null);
      this.inner.bytesReceived(nowMs, connectionId, bytes);
      return;
    }
    const joined = new Uint8Array(view.unconsumed.length + bytes.length);
    joined.set(view.unconsumed, 0);
    joined.set(bytes, view.unconsumed.length);
    view.unconsumed = joined;
    const passed = this.watchInbound(connectionId, view, bytes.slice(), nowMs);
    if (!passed) {
      // The broker gets the undecodable packet whole, from its first byte (earlier pieces of it
      // were held here), so that it answers it as it would without the bug in the way.
      view.rawInput = true;
      const rest = view.unconsumed;
      view.unconsumed = new Uint8Array(0);
      this.inner.bytesReceived(nowMs, connectionId, rest);
    }
  }

  /**
   * Decodes what the client sent and shows each whole packet to the bug; with `feedAtMs`, also
   * hands the broker the rewritten packets. False when the bytes could not be decoded.
   */
  private watchInbound(connectionId: ConnectionId, view: ConnectionView, bytes: Uint8Array, feedAtMs: number | null): boolean {
    let unconsumedBefore = 0;
    try {
      view.inbound.push(bytes);
      unconsumedBefore = view.inbound.bufferedBytes;
      for (let packet = view.inbound.next(); packet !== null; packet = view.inbound.next()) {
        this.noteClientPacket(view, packet);
        this.onClientPacket(connectionId, packet);
        if (feedAtMs !== null) for (const fed of this.rewriteClientPacket(feedAtMs, connectionId, packet)) this.feed(feedAtMs, connectionId, fed);
        unconsumedBefore = view.inbound.bufferedBytes;
      }
      if (feedAtMs !== null) view.unconsumed = view.unconsumed.subarray(view.unconsumed.length - view.inbound.bufferedBytes);
      return true;
    } catch {
      if (feedAtMs !== null) view.unconsumed = view.unconsumed.subarray(view.unconsumed.length - unconsumedBefore);
      // Garbage from a client is the broker's business; the bug only watches.
      return false;
    }
  }

  private noteClientPacket(view: ConnectionView, packet: Packet): void {
    if (packet.type === PacketType.Connect) {
      view.version = packet.protocolVersion;
      view.clientId = packet.clientId;
      view.will = packet.will ?? null;
      view.outbound = new PacketDecoder({ packetBytesMax: 1 << 28, protocolVersion: packet.protocolVersion });
      if (packet.cleanStart || !this.filtersByClient.has(packet.clientId)) this.filtersByClient.set(packet.clientId, new Set());
    }
    const filters = view.clientId === null ? undefined : this.filtersByClient.get(view.clientId);
    if (packet.type === PacketType.Subscribe) {
      view.filters.push(...packet.subscriptions.map((s) => s.topicFilter));
      for (const subscription of packet.subscriptions) filters?.add(subscription.topicFilter);
    }
    if (packet.type === PacketType.Unsubscribe) for (const filter of packet.topicFilters) filters?.delete(filter);
    const alias = packet.type === PacketType.Publish ? packet.properties?.topicAlias : undefined;
    if (packet.type === PacketType.Publish && alias !== undefined && packet.topic !== '') view.aliases.set(alias, packet.topic);
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

  drainActions(): readonly Action[] {
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

/** Sends a payload over 64 KiB cut to its first 64 KiB (a fixed-size output buffer); only large-payload worlds have such payloads. */
class LargePayloadCut extends InterceptingBroker {
  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.payload.length <= largePayloadCutBytes) return { keep: true };
    return { keep: false, extra: [{ connectionId, packet: { ...packet, payload: packet.payload.subarray(0, largePayloadCutBytes) } }] };
  }
}
const largePayloadCutBytes = 65_536;

/**
 * Writes each input's sends one after the other into one output buffer, and the next input's into
 * the same buffer from its start again: a broker that reuses its output buffer once the host has
 * taken what it sent. A host that still holds an earlier send (Node's socket.write keeps a buffer
 * it could not write at once; the simulator's network keeps it until its segments arrive) then
 * writes what a later packet left there.
 */
class SendBufferReused extends InterceptingBroker {
  private buffer = new Uint8Array(4096);

  protected onBrokerPacket(): Rewrite {
    return { keep: true };
  }

  override drainActions(): readonly Action[] {
    const actions = super.drainActions();
    let total = 0;
    for (const action of actions) if (action.kind === 'send') total += action.bytes.length;
    if (total > this.buffer.length) this.buffer = new Uint8Array(total);
    let offset = 0;
    return actions.map((action) => {
      if (action.kind !== 'send') return action;
      const bytes = this.buffer.subarray(offset, offset + action.bytes.length);
      bytes.set(action.bytes);
      offset += bytes.length;
      return { ...action, bytes };
    });
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

/** A QoS 0 copy of a PUBLISH, sent by name (aliases belong to a connection), keeping its expiry. */
function plainCopy(packet: PublishPacket, topic: string): PublishPacket {
  const { packetId: _packetId, properties, ...rest } = packet;
  const expiry = properties?.messageExpiryInterval;
  return { ...rest, topic, dup: false, qos: 0, retain: false, ...(expiry === undefined ? {} : { properties: { messageExpiryInterval: expiry } }) };
}

/**
 * A trie that forgets [MQTT-4.7.2-1]: a filter starting with `+` or `#` also matches topics that
 * start with `$`. Emulated at publication: each subscriber whose session has such a filter that
 * would match the topic but for the `$` rule (and no filter that rightly matches) gets a copy.
 */
class WildcardMatchesDollarTopic extends InterceptingBroker {
  protected onBrokerPacket(): Rewrite {
    return { keep: true };
  }

  protected override onClientPacket(connectionId: ConnectionId, packet: Packet): void {
    if (packet.type !== PacketType.Publish) return;
    const topic = this.publishedTopic(connectionId, packet);
    if (topic === null || !topic.startsWith('$')) return;
    const version = this.connections.get(connectionId)?.version;
    for (const target of [connectionId, ...this.otherConnections(connectionId)]) {
      if (this.connections.get(target)?.version !== version) continue;
      const filters = [...this.sessionFilters(target)].map(matchingFilter);
      if (filters.some((filter) => topicMatches(filter, topic))) continue;
      // The `$` rule ignored: the topic's first level stands for an ordinary one.
      if (!filters.some((filter) => /^[+#]/.test(filter) && topicMatches(filter, `x${topic.slice(1)}`))) continue;
      this.inject(target, plainCopy(packet, topic));
    }
  }
}

/**
 * Delivers at the QoS a message was published with, not the (lower) QoS its subscription was
 * granted (min(published, granted) slipped to the published QoS). Emulated for copies the broker
 * sends at QoS 0 of messages published at QoS 1 or 2: they go at QoS 1 under an identifier of the
 * bug's own, whose PUBACK the broker never sees.
 */
class QosAboveGrant extends InterceptingBroker {
  protected override readonly rewritesInput = true;
  private readonly ownIds = new Map<ConnectionId, Set<number>>();
  private idNext = 0;

  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.qos !== 0 || packet.retain) return { keep: true };
    const identity = parsePayload(packet.payload);
    if (identity === null || identity.kind !== 'message' || identity.qos === 0) return { keep: true };
    const packetId = 0xf000 + (this.idNext++ % 0xfff);
    const ids = this.ownIds.get(connectionId) ?? new Set();
    ids.add(packetId);
    this.ownIds.set(connectionId, ids);
    return { keep: false, extra: [{ connectionId, packet: { ...packet, qos: 1 as Qos, packetId } }] };
  }

  protected override rewriteClientPacket(_nowMs: number, connectionId: ConnectionId, packet: Packet): Packet[] {
    if (packet.type === PacketType.Puback && this.ownIds.get(connectionId)?.delete(packet.packetId) === true) return [];
    return [packet];
  }
}

/**
 * A shared group that hands a message to the member it chose and to the next one too (the round
 * robin cursor moved, the first pick kept). Emulated on copies sent to a member whose only
 * matching filter is the shared one: another member of the group (by connection) gets a copy.
 */
class SharedToTwoMembers extends InterceptingBroker {
  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.dup || packet.retain || packet.topic === '') return { keep: true };
    const matching = [...this.sessionFilters(connectionId)].filter((filter) => topicMatches(matchingFilter(filter), packet.topic));
    if (matching.length !== 1 || splitShared(matching[0]!) === null) return { keep: true };
    const version = this.connections.get(connectionId)?.version;
    const other = this.otherConnections(connectionId).find((id) => this.connections.get(id)?.version === version && this.sessionFilters(id).has(matching[0]!));
    if (other === undefined) return { keep: true };
    return { keep: true, extra: [{ connectionId: other, packet: plainCopy(packet, packet.topic) }] };
  }
}

/**
 * Never times a silent client out. Emulated by feeding the broker a PINGREQ of the client's
 * whenever the client has been silent for a whole keepalive, before the broker's timer looks
 * (and swallowing the PINGRESP): the broker believes every client alive.
 */
class KeepaliveNeverEnforced extends InterceptingBroker {
  protected override readonly rewritesInput = true;
  private readonly keepAliveMs = new Map<ConnectionId, number>();
  private readonly lastPacketMs = new Map<ConnectionId, number>();
  private readonly pingsFed = new Map<ConnectionId, number>();

  constructor(
    inner: BrokerCore,
    private readonly serverKeepAliveSeconds: number | null,
  ) {
    super(inner);
  }

  protected override rewriteClientPacket(nowMs: number, connectionId: ConnectionId, packet: Packet): Packet[] {
    if (packet.type === PacketType.Connect) {
      const serverKeepAlive = packet.protocolVersion === 5 ? this.serverKeepAliveSeconds : null;
      this.keepAliveMs.set(connectionId, (serverKeepAlive ?? packet.keepAliveSeconds) * 1000);
    }
    this.lastPacketMs.set(connectionId, nowMs);
    return [packet];
  }

  override tick(nowMs: number): void {
    for (const [connectionId, keepAliveMs] of this.keepAliveMs) {
      if (!this.connections.has(connectionId)) {
        this.keepAliveMs.delete(connectionId);
        continue;
      }
      if (keepAliveMs === 0 || nowMs - (this.lastPacketMs.get(connectionId) ?? nowMs) < keepAliveMs) continue;
      this.lastPacketMs.set(connectionId, nowMs);
      this.pingsFed.set(connectionId, (this.pingsFed.get(connectionId) ?? 0) + 1);
      this.feed(nowMs, connectionId, { type: PacketType.Pingreq });
    }
    super.tick(nowMs);
  }

  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    const fed = this.pingsFed.get(connectionId) ?? 0;
    if (packet.type !== PacketType.Pingresp || fed === 0) return { keep: true };
    this.pingsFed.set(connectionId, fed - 1);
    return { keep: false };
  }
}

/**
 * Packet identifiers that collide on wrap: right after a session's identifiers wrap past 65,535,
 * the broker hands out identifiers still in flight (its in-use check skipped on that path).
 * Emulated per session: after the wrap, each of the next fresh QoS 2 PUBLISHes (while the real
 * identifier is below 64) goes out under the identifier of another QoS 2 delivery still awaiting
 * its PUBREC; the client's acknowledgements of an identifier are handed back in order.
 */
class PacketIdReusedOnWrap extends InterceptingBroker {
  protected override readonly rewritesInput = true;
  private readonly sessions = new Map<string, WrapState>();

  private session(connectionId: ConnectionId): WrapState | null {
    const clientId = this.connections.get(connectionId)?.clientId ?? null;
    if (clientId === null) return null;
    let state = this.sessions.get(clientId);
    if (state === undefined) {
      state = { lastFreshId: 0, wrapped: false, wireOf: new Map(), awaiting: new Map(), awaitingPubrec: [] };
      this.sessions.set(clientId, state);
    }
    return state;
  }

  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    const state = this.session(connectionId);
    if (state === null || (packet.type !== PacketType.Publish && packet.type !== PacketType.Pubrel)) return { keep: true };
    if (packet.type === PacketType.Publish && packet.qos > 0 && !packet.dup) this.assign(state, packet);
    const realId = packet.packetId;
    if (realId === undefined) return { keep: true };
    const wireId = state.wireOf.get(realId) ?? realId;
    if (packet.type === PacketType.Pubrel) state.awaitingPubrec = state.awaitingPubrec.filter((id) => id !== realId);
    this.expect(state, wireId, realId);
    if (wireId === realId) return { keep: true };
    return { keep: false, extra: [{ connectionId, packet: { ...packet, packetId: wireId } }] };
  }

  /** The wire identifier of a fresh QoS 1/2 PUBLISH: its own, or after the wrap a colliding one. */
  private assign(state: WrapState, packet: PublishPacket): void {
    const realId = packet.packetId!;
    if (state.lastFreshId > 60_000 && realId < 1_000) state.wrapped = true;
    state.lastFreshId = realId;
    state.wireOf.delete(realId);
    const victim = state.awaitingPubrec[0];
    if (state.wrapped && realId < 64 && packet.qos === 2 && victim !== undefined) state.wireOf.set(realId, state.wireOf.get(victim) ?? victim);
    if (packet.qos === 2) state.awaitingPubrec.push(realId);
  }

  /** Notes that the client will answer `wireId` for `realId` (once per packet sent). */
  private expect(state: WrapState, wireId: number, realId: number): void {
    const queue = state.awaiting.get(wireId) ?? [];
    if (!queue.includes(realId)) queue.push(realId);
    state.awaiting.set(wireId, queue);
  }

  protected override rewriteClientPacket(_nowMs: number, connectionId: ConnectionId, packet: Packet): Packet[] {
    if (packet.type !== PacketType.Puback && packet.type !== PacketType.Pubrec && packet.type !== PacketType.Pubcomp) return [packet];
    const state = this.session(connectionId);
    const queue = state?.awaiting.get(packet.packetId);
    if (state === null || queue === undefined || queue.length === 0) return [packet];
    const realId = queue.shift()!;
    if (queue.length === 0) state.awaiting.delete(packet.packetId);
    if (packet.type !== PacketType.Pubrec && state.wireOf.get(realId) !== undefined && !queue.includes(realId)) state.wireOf.delete(realId);
    return [{ ...packet, packetId: realId }];
  }
}

interface WrapState {
  /** The identifier of the last fresh QoS 1/2 PUBLISH the broker sent this session. */
  lastFreshId: number;
  wrapped: boolean;
  /** Real identifier to the one on the wire, where they differ. */
  wireOf: Map<number, number>;
  /** Per wire identifier, the real ones the client's next acknowledgements of it answer, in order. */
  awaiting: Map<number, number[]>;
  /** Real identifiers of QoS 2 deliveries sent and not yet released (PUBREL), oldest first. */
  awaitingPubrec: number[];
}

/**
 * A clean start that keeps the subscriptions of the session it replaces (the old session's
 * subscriptions not cleared). Emulated at publication: each connection whose client had a filter
 * in an earlier session, not subscribed again since, that matches the topic (and no current filter
 * does) gets a copy.
 */
class CleanStartKeepsSubscriptions extends InterceptingBroker {
  /** Per client id: the filters the previous sessions had and this one did not ask for. */
  private readonly kept = new Map<string, Set<string>>();
  private readonly current = new Map<string, Set<string>>();

  protected onBrokerPacket(): Rewrite {
    return { keep: true };
  }

  protected override onClientPacket(connectionId: ConnectionId, packet: Packet): void {
    const clientId = this.connections.get(connectionId)?.clientId ?? null;
    if (clientId === null) return;
    const current = this.current.get(clientId) ?? new Set<string>();
    const kept = this.kept.get(clientId) ?? new Set<string>();
    this.current.set(clientId, current);
    this.kept.set(clientId, kept);
    if (packet.type === PacketType.Connect && packet.cleanStart) {
      for (const filter of current) kept.add(filter);
      current.clear();
    } else if (packet.type === PacketType.Subscribe) {
      for (const { topicFilter } of packet.subscriptions) {
        current.add(topicFilter);
        kept.delete(topicFilter);
      }
    } else if (packet.type === PacketType.Unsubscribe) {
      for (const filter of packet.topicFilters) current.delete(filter);
    } else if (packet.type === PacketType.Publish) {
      this.copyToKept(connectionId, packet);
    }
  }

  private copyToKept(connectionId: ConnectionId, packet: PublishPacket): void {
    const topic = this.publishedTopic(connectionId, packet);
    if (topic === null) return;
    const version = this.connections.get(connectionId)?.version;
    for (const target of [connectionId, ...this.otherConnections(connectionId)]) {
      const clientId = this.connections.get(target)?.clientId ?? null;
      if (clientId === null || this.connections.get(target)?.version !== version) continue;
      const matches = (filters: Set<string> | undefined): boolean => [...(filters ?? [])].some((filter) => topicMatches(matchingFilter(filter), topic));
      if (matches(this.kept.get(clientId)) && !matches(this.current.get(clientId))) this.inject(target, plainCopy(packet, topic));
    }
  }
}

/**
 * Routing that forgets to merge a session's overlapping subscriptions: one copy per matching
 * filter instead of one per session [MQTT-3.3.4-2]. Emulated on copies to a session with two or
 * more matching plain filters: an extra copy at QoS 0 (the lower filter's copy).
 */
class CopyPerOverlappingFilter extends InterceptingBroker {
  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.dup || packet.retain || packet.topic === '') return { keep: true };
    const plain = [...this.sessionFilters(connectionId)].filter((filter) => splitShared(filter) === null && topicMatches(filter, packet.topic));
    if (plain.length < 2) return { keep: true };
    return { keep: true, extra: [{ connectionId, packet: plainCopy(packet, packet.topic) }] };
  }
}

/** True for a will the broker must refuse at CONNECT (handle-connect.ts checkWillTopic and the `$SYS` rule). */
function refusableWill(will: Will, config: BrokerConfig): boolean {
  return checkTopicName(will.topic, config) !== null || isBrokerTopic(will.topic) || will.qos > config.maximumQos || (will.retain && !config.retainAvailable);
}

/**
 * A will check that was lost: a CONNECT whose will the broker must refuse (an invalid or `$SYS`
 * topic, a QoS above maximumQos, retain where it is unavailable) is accepted, its will dropped
 * instead. Emulated by removing such a will from the CONNECT the broker reads: its CONNACK says
 * success.
 */
class WillTopicUnchecked extends InterceptingBroker {
  protected override readonly rewritesInput = true;

  constructor(
    inner: BrokerCore,
    private readonly config: BrokerConfig,
  ) {
    super(inner);
  }

  protected onBrokerPacket(): Rewrite {
    return { keep: true };
  }

  protected override rewriteClientPacket(_nowMs: number, _connectionId: ConnectionId, packet: Packet): Packet[] {
    if (packet.type !== PacketType.Connect || packet.will === undefined || !refusableWill(packet.will, this.config)) return [packet];
    const { will: _will, ...rest } = packet;
    return [rest];
  }
}

/**
 * The bug found outside, at its first step: an empty will topic reaches code that asserts a topic
 * is never empty, and the process dies. Emulated by throwing from the input that brings such a
 * CONNECT; the simulator must report it as `broker-threw`.
 */
class EmptyWillTopicThrows extends InterceptingBroker {
  private emptyWillSeen = false;

  protected onBrokerPacket(): Rewrite {
    return { keep: true };
  }

  protected override onClientPacket(_connectionId: ConnectionId, packet: Packet): void {
    if (packet.type === PacketType.Connect && packet.will?.topic === '') this.emptyWillSeen = true;
  }

  override bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void {
    super.bytesReceived(nowMs, connectionId, bytes);
    if (!this.emptyWillSeen) return;
    this.emptyWillSeen = false;
    throw new Error('assertion failed: a topic name is never empty');
  }
}

/**
 * The retained flood of issue 12, item 6: a QoS 0 retained copy sent because of a SUBSCRIBE is
 * shed at the output cap like live traffic (reported as an output-full drop) instead of waiting
 * for the connection to drain.
 */
class RetainedReplayDropsAtCap extends InterceptingBroker {
  constructor(
    inner: BrokerCore,
    private readonly config: BrokerConfig,
  ) {
    super(inner);
  }

  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    const view = this.connections.get(connectionId);
    const clientId = view?.clientId ?? null;
    if (packet.type !== PacketType.Publish || !packet.retain || packet.dup || packet.qos !== 0 || clientId === null) return { keep: true };
    // Where the real cap check sheds live QoS 0: the host reports unsent output at the cap.
    if ((view?.unsentBytes ?? 0) < this.config.connectionOutputBytesMax - outputReportStepBytes(this.config)) return { keep: true };
    this.report({ kind: 'log', level: 'debug', event: 'message-dropped', fields: { clientId, reason: 'output-full', topic: packet.topic, payloadCrc32c: crc32c(packet.payload) } });
    return { keep: false };
  }
}

/** A replay cursor that steps over one entry: every 50th QoS 0 retained copy on a connection is never sent. */
class RetainedReplaySkipsOne extends InterceptingBroker {
  private readonly retainedSent = new Map<ConnectionId, number>();

  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || !packet.retain || packet.dup || packet.qos !== 0) return { keep: true };
    const sent = (this.retainedSent.get(connectionId) ?? 0) + 1;
    this.retainedSent.set(connectionId, sent);
    return { keep: sent % 50 !== 0 };
  }
}

/**
 * Issue 12's session leak: the check that a session belongs to the user now connecting with its
 * client id is skipped, so another user resumes it (its subscriptions, its queue). Emulated by
 * handing the broker such a CONNECT with the owner's user name and password in place of the
 * newcomer's (a connection whose transport verified its user is left alone).
 */
class SessionOwnerUnchecked extends InterceptingBroker {
  protected override readonly rewritesInput = true;
  /** Per client id: the user of the last connection the broker accepted for it. */
  private readonly owners = new Map<string, string | undefined>();
  private readonly verified = new Map<ConnectionId, string>();
  private readonly users = new Map<ConnectionId, string | undefined>();

  override connectionOpened(nowMs: number, connectionId: ConnectionId, peer: ConnectionPeer): void {
    if (peer.verifiedUsername !== undefined) this.verified.set(connectionId, peer.verifiedUsername);
    super.connectionOpened(nowMs, connectionId, peer);
  }

  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    const clientId = this.connections.get(connectionId)?.clientId ?? null;
    if (packet.type === PacketType.Connack && packet.reasonCode === 0 && clientId !== null) this.owners.set(clientId, this.users.get(connectionId));
    return { keep: true };
  }

  protected override rewriteClientPacket(_nowMs: number, connectionId: ConnectionId, packet: Packet): Packet[] {
    if (packet.type !== PacketType.Connect) return [packet];
    const verified = this.verified.get(connectionId);
    this.users.set(connectionId, verified ?? packet.username);
    if (verified !== undefined || !this.owners.has(packet.clientId)) return [packet];
    const owner = this.owners.get(packet.clientId);
    if (owner === packet.username) return [packet];
    this.users.set(connectionId, owner);
    const { username: _username, password: _password, ...rest } = packet;
    return [owner === undefined ? rest : { ...rest, username: owner, password: passwordFor(owner) }];
  }

  override connectionClosed(nowMs: number, connectionId: ConnectionId): void {
    this.verified.delete(connectionId);
    this.users.delete(connectionId);
    super.connectionClosed(nowMs, connectionId);
  }
}

/**
 * The per-message ACL check skipped: every subscription the ACL let through is taken to read all
 * that its filter matches (`readsEverything` answered by `canSubscribe`), so a topic a deny rule
 * withholds from a broad subscription is delivered anyway, live, queued, resent or retained.
 */
function aclReadsEverything(options: BrokerOptions): BrokerCore {
  const authorizer = options.authorizer;
  if (authorizer === undefined) return new Broker(options);
  const slipped: Authorizer = {
    canSubscribe: (identity, filter) => authorizer.canSubscribe(identity, filter),
    canPublish: (identity, topic) => authorizer.canPublish(identity, topic),
    canReceive: (identity, topic) => authorizer.canReceive(identity, topic),
    readsEverything: (identity, filter) => authorizer.canSubscribe(identity, filter),
  };
  return new Broker({ ...options, authorizer: slipped });
}

/** Answers an operator's command of one kind with success and does nothing. */
class AdminCommandIgnored extends InterceptingBroker {
  constructor(
    inner: BrokerCore,
    private readonly ignored: AdminCommand['kind'],
  ) {
    super(inner);
  }

  protected onBrokerPacket(): Rewrite {
    return { keep: true };
  }

  override adminRequest(nowMs: number, requestId: number, command: AdminCommand): void {
    if (command.kind !== this.ignored) return super.adminRequest(nowMs, requestId, command);
    this.report({ kind: 'admin-result', requestId, outcome: { ok: true } });
  }
}

function wrap(Wrapper: new (inner: BrokerCore) => InterceptingBroker): BrokerFactory {
  return (options: BrokerOptions) => new Wrapper(new Broker(options));
}

/**
 * The replay-to-live seam skips one entry: a reader whose cursor read entries from the files and
 * then finds the next ones in memory loses the first of those. Planted in the store's stream
 * reads (the broker's store is wrapped before the broker sees it): the offset a file read ended at
 * is remembered, and the next memory read from exactly there hands back all but its first entry.
 */
function withSeamSkippingStreams(store: StateStore): StateStore {
  const log = store.streams;
  if (log === undefined) return store;
  const seams = new Set<string>();
  const wrapped = new Proxy(log, {
    get(target, property) {
      if (property === 'takeReadResults') {
        return () => {
          const results = target.takeReadResults();
          for (const result of results) if (!result.stale && result.entries.length > 0) seams.add(`${result.stream}:${result.nextOffset}`);
          return results;
        };
      }
      if (property === 'readMemory') {
        return (stream: string, offset: number, bytesMax: number, into: StreamEntry[]): number | null => {
          if (!seams.delete(`${stream}:${offset}`)) return target.readMemory(stream, offset, bytesMax, into);
          const read: StreamEntry[] = [];
          const next = target.readMemory(stream, offset, bytesMax, read);
          if (next === null) seams.add(`${stream}:${offset}`);
          into.push(...read.slice(1));
          return next;
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  (store as { streams?: StreamStore }).streams = wrapped;
  return store;
}

/** Whether a PUBLISH the broker sends is a stream delivery: it names its offset (5.0), or its session reads only streams (3.1.1). */
function isStreamDelivery(packet: PublishPacket, filters: ReadonlySet<string>): boolean {
  if (packet.properties?.userProperties?.some(([name]) => name === 'stream-offset') === true) return true;
  if (filters.size === 0) return false;
  for (const filter of filters) if (!matchingFilter(filter).startsWith('$stream/')) return false;
  return true;
}

/**
 * The committed position runs ahead of the acknowledgements: each QoS 1 stream delivery is taken
 * as acknowledged at the broker's next input (a PUBACK fed to it then), and the client's own
 * PUBACK for it is swallowed. A delivery the client never got, or got and could not acknowledge
 * before its link died, is then never sent again: not on resume, not after a restart.
 */
class StreamCommitBeforeAck extends InterceptingBroker {
  protected override readonly rewritesInput = true;
  private early: { connectionId: ConnectionId; packetId: number }[] = [];
  private readonly swallow = new Map<ConnectionId, Set<number>>();

  protected onBrokerPacket(connectionId: ConnectionId, packet: Packet): Rewrite {
    if (packet.type !== PacketType.Publish || packet.qos !== 1 || packet.dup || !isStreamDelivery(packet, this.sessionFilters(connectionId))) return { keep: true };
    this.early.push({ connectionId, packetId: packet.packetId! });
    return { keep: true };
  }

  private acknowledgeEarly(nowMs: number): void {
    const early = this.early;
    this.early = [];
    for (const { connectionId, packetId } of early) {
      if (!this.connections.has(connectionId)) continue;
      const ids = this.swallow.get(connectionId) ?? new Set();
      ids.add(packetId);
      this.swallow.set(connectionId, ids);
      this.feed(nowMs, connectionId, { type: PacketType.Puback, packetId, reasonCode: 0 });
    }
  }

  protected override rewriteClientPacket(_nowMs: number, connectionId: ConnectionId, packet: Packet): Packet[] {
    if (packet.type === PacketType.Puback && this.swallow.get(connectionId)?.delete(packet.packetId) === true) return [];
    return [packet];
  }

  override bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void {
    this.acknowledgeEarly(nowMs);
    super.bytesReceived(nowMs, connectionId, bytes);
  }

  override connectionClosed(nowMs: number, connectionId: ConnectionId): void {
    this.acknowledgeEarly(nowMs);
    this.swallow.delete(connectionId);
    super.connectionClosed(nowMs, connectionId);
  }

  override storageCompleted(nowMs: number, result: StorageResult): void {
    this.acknowledgeEarly(nowMs);
    super.storageCompleted(nowMs, result);
  }

  override tick(nowMs: number): void {
    this.acknowledgeEarly(nowMs);
    super.tick(nowMs);
  }
}

/**
 * Retention by age that ignores consumer groups: while the broker runs its retention pass (the
 * `stream-maintenance` deadline), the streams object answers that no stream has any group, so
 * segments a group with members has not acknowledged are trimmed, and no group is told it was cut.
 * Patched on the instance from outside; the rest of the broker is the real one.
 */
function retentionIgnoringGroups(broker: Broker): Broker {
  const streams = broker.streams;
  const groupsOf = streams.groupsOf.bind(streams);
  const maintenanceDue = streams.maintenanceDue.bind(streams);
  const tick = broker.tick.bind(broker);
  let retaining = false;
  const none = new Map() as ReturnType<typeof groupsOf>;
  streams.groupsOf = (stream: string) => (retaining ? none : groupsOf(stream));
  streams.maintenanceDue = () => {
    maintenanceDue();
    retaining = true;
  };
  broker.tick = (nowMs: number) => {
    try {
      tick(nowMs);
    } finally {
      retaining = false;
    }
  };
  return broker;
}

/**
 * Positions kept in memory only: after the first position record of each reader (its
 * subscription's) and each group, every later `stream-position` and `stream-group-position`
 * record is applied to the state but not written to the log. Acknowledgements move the position
 * as before; a restart sets it back to the last one that reached the disk (the first, or the one a
 * snapshot of the state carried), so acknowledged entries are delivered again as new. Patched on
 * the instance from outside; the rest of the broker is the real one.
 */
function positionsNotLogged(broker: Broker): Broker {
  const commit = broker.commit.bind(broker);
  const logged = new Set<string>();
  broker.commit = (record: StateRecord, volatile?: boolean): number => {
    if (record.kind === 'stream-position' || record.kind === 'stream-group-position') {
      const key = record.kind === 'stream-position' ? `reader ${record.clientId} ${record.filter}` : `group ${record.stream} ${record.group}`;
      if (logged.has(key)) return commit(record, true);
      logged.add(key);
    }
    return commit(record, volatile);
  };
  return broker;
}

/**
 * Retained payloads kept as views of the received bytes: storeMessage as it was before ownCopy,
 * "copying" a retained payload with `.slice()`, which on the Node Buffers a host hands the core is
 * a view of the whole chunk. Patched on the instance from outside: the bytes of the current input
 * are remembered, and a retained message stored while it runs whose payload lies in them gets, in
 * place of its copy, the view that `.slice()` made there. (A packet split across inputs was copied
 * whole by the decoder, and the old code then kept a view of that copy, not of the input: those
 * are left as they are.) With plain Uint8Arrays as input `.slice()` copies, and nothing shows.
 */
function retainedPayloadView(broker: Broker): Broker {
  const bytesReceived = broker.bytesReceived.bind(broker);
  const commit = broker.commit.bind(broker);
  let input: Uint8Array | null = null;
  broker.bytesReceived = (nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void => {
    input = bytes;
    try {
      bytesReceived(nowMs, connectionId, bytes);
    } finally {
      input = null;
    }
  };
  broker.commit = (record: StateRecord, volatile?: boolean): number => {
    if (record.kind === 'message-stored' && record.message.retain && input !== null && record.message.payload.length > 0) {
      const payload = record.message.payload;
      const at = Buffer.from(input.buffer, input.byteOffset, input.byteLength).indexOf(payload);
      if (at >= 0) return commit({ ...record, message: { ...record.message, payload: input.slice(at, at + payload.length) } }, volatile);
    }
    return commit(record, volatile);
  };
  return broker;
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
  'wildcard-matches-dollar-topic': wrap(WildcardMatchesDollarTopic),
  'qos-above-grant': wrap(QosAboveGrant),
  'copy-per-overlapping-filter': wrap(CopyPerOverlappingFilter),
  'shared-to-two-members': wrap(SharedToTwoMembers),
  'keepalive-never-enforced': (options: BrokerOptions) => new KeepaliveNeverEnforced(new Broker(options), options.config.serverKeepAliveSeconds),
  'packet-id-reused-on-wrap': wrap(PacketIdReusedOnWrap),
  'clean-start-keeps-subscriptions': wrap(CleanStartKeepsSubscriptions),
  'stream-seam-skips-one': (options: BrokerOptions) => new Broker({ ...options, store: withSeamSkippingStreams(options.store) }),
  'stream-commit-before-ack': wrap(StreamCommitBeforeAck),
  'stream-retention-cuts-group': (options: BrokerOptions) => retentionIgnoringGroups(new Broker(options)),
  'stream-position-not-logged': (options: BrokerOptions) => positionsNotLogged(new Broker(options)),
  'will-topic-unchecked': (options: BrokerOptions) => new WillTopicUnchecked(new Broker(options), options.config),
  'empty-will-topic-throws': wrap(EmptyWillTopicThrows),
  'retained-replay-drops-at-cap': (options: BrokerOptions) => new RetainedReplayDropsAtCap(new Broker(options), options.config),
  'retained-replay-skips-one': wrap(RetainedReplaySkipsOne),
  'session-owner-unchecked': wrap(SessionOwnerUnchecked),
  'acl-reads-everything': aclReadsEverything,
  'delete-retained-ignored': (options: BrokerOptions) => new AdminCommandIgnored(new Broker(options), 'delete-retained'),
  'delete-session-ignored': (options: BrokerOptions) => new AdminCommandIgnored(new Broker(options), 'delete-session'),
  'retained-payload-view': (options: BrokerOptions) => retainedPayloadView(new Broker(options)),
  'large-payload-cut': wrap(LargePayloadCut),
  'send-buffer-reused': wrap(SendBufferReused),
} satisfies Record<PlantedBugName, BrokerFactory>;

export type { PlantedBugName };

/**
 * Planted store bugs: wrappers around the real DurableStateStore, from outside, that break one
 * durability promise each. The world builds one per broker incarnation over the same disk.
 */
abstract class StoreWrapper implements StateStore {
  constructor(protected readonly inner: DurableStateStore) {}
  /** The real store's streams: a stream world runs on a planted store bug as on the real store. */
  get streams(): StreamStore {
    return this.inner.streams;
  }
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
  get unwrittenBytes(): number {
    return this.inner.unwrittenBytes ?? 0;
  }
  flush(nowMs: number): void {
    this.inner.flush(nowMs);
  }
  drainRequests(): readonly StorageRequest[] {
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
