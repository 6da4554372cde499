/**
 * SUBSCRIBE and UNSUBSCRIBE.
 *
 * Each filter gets its own result: the granted QoS, min(requested, maximumQos) [MQTT-3.9.3-?],
 * or a failure (MQTT 5.0 reason code; 3.1.1 has only 0x80): invalid filter 0x8F, shared
 * subscriptions unavailable 0x9E, wildcards unavailable 0xA2, subscription identifiers
 * unavailable 0xA1, not authorized 0x87 (access-control.ts), subscriptionsPerSessionMax reached 0x97. No Local on a shared subscription
 * is a protocol error for the whole packet [MQTT-3.8.3-4]. Re-subscribing to a filter replaces
 * the subscription [MQTT-3.8.4-3]. Retained messages go out after the SUBACK, per Retain
 * Handling. SUBACK/UNSUBACK wait for their records to be durable.
 *
 * `$stream/...` filters read a durable stream (streams/streams.ts): granted QoS 1 at most (see
 * streams/stream-delivery.ts for why); an unknown stream is 0x8F, a malformed `stream-offset`
 * user property 0x83, no read permission on the stream's filter 0x87, one consumer group more
 * than streamGroupsMax 0x97 (3.1.1: 0x80 for each), with the reason in the SUBACK's Reason String
 * (5.0). Their reader starts sending after the SUBACK.
 */

import type { Properties } from '../codec/packets.js';
import { PacketType, type Qos, type SubackPacket, type SubscribePacket, type Subscription, type UnsubscribePacket } from '../codec/packets.js';
import { ReasonCode, SubackFailure311 } from '../codec/reason-codes.js';
import type { SessionState, SubscriptionState } from '../store/state-store.js';
import { checkTopicFilter, hasWildcard, isStreamFilter, parseSharedFilter } from '../topics/validate.js';
import type { Broker } from './broker.js';
import type { Connection } from './connection.js';
import { protocolError } from './errors.js';
import { countTopicLimit } from './limits.js';
import { pump } from './outbound-queue.js';
import { startRetainedReplay } from './retained-replay.js';

function failureCode(broker: Broker, session: SessionState, request: Subscription, subscriptionId: number, properties: Properties | undefined, reasons: string[]): number | null {
  const config = broker.config;
  if (checkTopicFilter(request.topicFilter, config) !== null) {
    countTopicLimit(broker.stats.limits, config, request.topicFilter);
    return ReasonCode.TopicFilterInvalid;
  }
  if (!config.sharedSubscriptionAvailable && parseSharedFilter(request.topicFilter) !== null) return ReasonCode.SharedSubscriptionsNotSupported;
  if (!config.wildcardSubscriptionAvailable && hasWildcard(request.topicFilter)) return ReasonCode.WildcardSubscriptionsNotSupported;
  if (!config.subscriptionIdentifiersAvailable && subscriptionId !== 0) return ReasonCode.SubscriptionIdentifiersNotSupported;
  if (isStreamFilter(request.topicFilter)) {
    // Its own checks: the stream exists, the stream-offset parses, the client may read the stream.
    const refusal = broker.streams.refusal(session, request, properties);
    if (refusal !== null) {
      reasons.push(refusal.reason);
      return refusal.code;
    }
    // Section 3.9.3: 0x87 Not authorized (3.1.1: 0x80 Failure) for this filter alone.
  } else if (broker.access !== null && !broker.access.maySubscribe(session, request.topicFilter)) return ReasonCode.NotAuthorized;
  if (!session.subscriptions.has(request.topicFilter) && session.subscriptions.size >= config.subscriptionsPerSessionMax) {
    broker.stats.limits.subscriptionsPerSessionMax += 1;
    return ReasonCode.QuotaExceeded;
  }
  return null;
}

export function handleSubscribe(broker: Broker, connection: Connection, packet: SubscribePacket, nowMs: number): void {
  for (const request of packet.subscriptions) {
    // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
    if (request.noLocal && parseSharedFilter(request.topicFilter) !== null) throw protocolError('shared-no-local', 'No Local set on a shared subscription');
  }
  const session = connection.session!;
  const subscriptionId = packet.properties?.subscriptionIdentifiers?.[0] ?? 0;
  const appendedBefore = broker.store.appendedLsn;
  const reasonCodes: number[] = [];
  const reasons: string[] = [];
  const added: { subscription: SubscriptionState; isNew: boolean }[] = [];
  let readsStream = false;
  for (const request of packet.subscriptions) {
    const failure = failureCode(broker, session, request, subscriptionId, packet.properties, reasons);
    if (failure !== null) {
      reasonCodes.push(connection.version === 5 ? failure : SubackFailure311);
      continue;
    }
    const isStream = isStreamFilter(request.topicFilter);
    // A stream delivery is QoS 1 at most (streams/stream-delivery.ts).
    const qos = Math.min(request.qos, broker.config.maximumQos, isStream ? 1 : 2) as Qos;
    const subscription: SubscriptionState = {
      filter: request.topicFilter,
      qos,
      noLocal: request.noLocal,
      retainAsPublished: request.retainAsPublished,
      retainHandling: request.retainHandling,
      subscriptionId,
    };
    const isNew = !session.subscriptions.has(request.topicFilter);
    broker.commit({ kind: 'subscription-added', clientId: session.clientId, subscription });
    if (isStream) broker.streams.subscribed(session, subscription, packet.properties);
    else added.push({ subscription, isNew });
    readsStream ||= isStream;
    reasonCodes.push(qos);
  }
  const suback: SubackPacket = { type: PacketType.Suback, packetId: packet.packetId, reasonCodes };
  if (connection.version === 5 && reasons.length > 0) suback.properties = { reasonString: reasons.join('; ') };
  broker.sendPacket(connection, suback, broker.lsnSince(appendedBefore));
  // Retained messages go out after the SUBACK, paced by what the connection takes (retained-replay.ts).
  for (const { subscription, isNew } of added) startRetainedReplay(broker, session, subscription, isNew);
  if (connection.retainedReplay !== null || readsStream) pump(broker, session, connection, nowMs);
}

export function handleUnsubscribe(broker: Broker, connection: Connection, packet: UnsubscribePacket, _nowMs: number): void {
  const session = connection.session!;
  const appendedBefore = broker.store.appendedLsn;
  const reasonCodes: number[] = [];
  for (const filter of packet.topicFilters) {
    if (!session.subscriptions.has(filter)) {
      reasonCodes.push(ReasonCode.NoSubscriptionExisted);
      continue;
    }
    if (isStreamFilter(filter)) broker.streams.unsubscribed(session, filter);
    broker.commit({ kind: 'subscription-removed', clientId: session.clientId, filter });
    reasonCodes.push(ReasonCode.Success);
  }
  const codes = connection.version === 5 ? reasonCodes : [];
  broker.sendPacket(connection, { type: PacketType.Unsuback, packetId: packet.packetId, reasonCodes: codes }, broker.lsnSince(appendedBefore));
}
