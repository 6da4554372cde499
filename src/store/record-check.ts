/**
 * Which records recovery can apply: the rule that keeps a bad input from poisoning the log.
 *
 * A record that reaches the log is replayed on every start. If replaying it throws, or leaves a
 * state the broker cannot act on (a will whose topic no subscription trie can match, say), the
 * broker dies again on every restart and its data directory is lost to it. Two defences:
 *
 * - Before commit: the broker asserts `recordProblem` is null for every record it appends
 *   (Broker.commit), so a handler that forgot to validate something stops loudly before the bad
 *   record is written, not after. Handlers validate client input themselves and answer with the
 *   right reason code; reaching the assertion is a Keel bug.
 * - At recovery: `replayRecord` checks the same rules and applies the record, turning an
 *   assertion inside `applyRecord` (a record for an unknown session, a packet identifier in use)
 *   into a value. The broker then halts with the record's file and offset, like any corruption,
 *   and the documented repair (repair.ts) can cut the log there.
 *
 * The checks are structural: what every record of its kind must satisfy whatever the
 * configuration (topic names and filters valid under MQTT's own limits, QoS and packet
 * identifiers in range). Configured limits may have changed since the record was written, so they
 * are not checked here.
 */
import { streamNamePattern } from '../config.js';
import { checkTopicFilter, checkTopicName, parseSharedFilter, type TopicLimits } from '../topics/validate.js';
import { applyRecord, type DurableState, type StateRecord } from './state-store.js';

/** MQTT's own bounds on a topic: a two-byte length, so at most 65,535 bytes (and as many levels). */
const protocolTopicLimits: TopicLimits = { topicBytesMax: 65_535, topicLevelsMax: 65_535 };
const expiryNever = 0xffffffff;

function qosProblem(qos: number, lowest: number): string | null {
  return Number.isInteger(qos) && qos >= lowest && qos <= 2 ? null : `QoS ${qos} out of range`;
}

function packetIdProblem(packetId: number, allowZero: boolean): string | null {
  const lowest = allowZero ? 0 : 1;
  return Number.isInteger(packetId) && packetId >= lowest && packetId <= 0xffff ? null : `packet identifier ${packetId} out of range`;
}

function clientIdProblem(clientId: string): string | null {
  return typeof clientId === 'string' && clientId.length > 0 ? null : 'empty client id';
}

function sessionProblem(record: Extract<StateRecord, { kind: 'session-created' | 'session-resumed' }>): string | null {
  if (record.protocolVersion !== 3 && record.protocolVersion !== 4 && record.protocolVersion !== 5) return `protocol version ${String(record.protocolVersion)}`;
  const expiry = record.expiryIntervalSeconds;
  if (!Number.isInteger(expiry) || expiry < 0 || expiry > expiryNever) return `session expiry ${expiry} out of range`;
  const revision = record.claimRevision;
  if (revision !== undefined && (!Number.isSafeInteger(revision) || revision <= 0)) return `claim revision ${revision} out of range`;
  return clientIdProblem(record.clientId);
}

/** Why `record` must never be in the log, or null when it may be. */
export function recordProblem(record: StateRecord): string | null {
  switch (record.kind) {
    case 'session-created':
    case 'session-resumed':
      return sessionProblem(record);
    case 'subscription-added': {
      const problem = checkTopicFilter(record.subscription.filter, protocolTopicLimits);
      return problem ?? qosProblem(record.subscription.qos, 0) ?? clientIdProblem(record.clientId);
    }
    case 'message-stored':
      return checkTopicName(record.message.topic, protocolTopicLimits) ?? qosProblem(record.message.qos, 0);
    case 'retained-set':
    case 'retained-cleared':
      return checkTopicName(record.topic, protocolTopicLimits);
    case 'will-set': {
      const problem = checkTopicName(record.will.topic, protocolTopicLimits);
      return problem === null ? (qosProblem(record.will.qos, 0) ?? clientIdProblem(record.clientId)) : `will ${problem}`;
    }
    case 'delivery-queued':
      return qosProblem(record.qos, 1) ?? packetIdProblem(record.packetId, true);
    case 'stream-created':
    case 'stream-deleted':
    case 'stream-appended':
    case 'stream-trimmed':
    case 'stream-cut':
    case 'stream-position':
    case 'stream-group-position':
      return streamRecordProblem(record);
    case 'delivery-sent':
    case 'delivery-released':
    case 'delivery-completed':
    case 'incoming-qos2-recorded':
    case 'incoming-qos2-released':
      return packetIdProblem(record.packetId, false);
    case 'cluster-applied':
      if (record.stream !== undefined && (typeof record.stream !== 'string' || record.stream.length === 0)) return `hand-off stream ${JSON.stringify(record.stream)} is not a name`;
      return offsetProblem(record.sequence, 'hand-off sequence');
    case 'cluster-outbox-added':
      return offsetProblem(record.entry.id, 'outbox id') ?? (typeof record.entry.subject === 'string' && record.entry.subject.length > 0 ? null : 'outbox entry without subject');
    case 'cluster-outbox-done':
      return offsetProblem(record.id, 'outbox id');
    default:
      return null;
  }
}

function offsetProblem(offset: unknown, what: string): string | null {
  return typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0 ? null : `${what} ${String(offset)} is not an offset`;
}

function optionalOffsetProblem(offset: unknown, what: string): string | null {
  return offset === undefined ? null : offsetProblem(offset, what);
}

function streamNameProblem(name: unknown): string | null {
  return typeof name === 'string' && streamNamePattern.test(name) ? null : `stream name ${JSON.stringify(name)} is invalid`;
}

type StreamRecord = Extract<StateRecord, { kind: 'stream-created' | 'stream-deleted' | 'stream-appended' | 'stream-trimmed' | 'stream-cut' | 'stream-position' | 'stream-group-position' }>;

function streamRecordProblem(record: StreamRecord): string | null {
  switch (record.kind) {
    case 'stream-created':
      return streamCreatedProblem(record);
    case 'stream-deleted':
      return streamNameProblem(record.stream);
    case 'stream-appended':
      return streamAppendedProblem(record);
    case 'stream-trimmed':
      return streamNameProblem(record.stream) ?? offsetProblem(record.firstOffset, 'first offset');
    case 'stream-cut':
      return streamNameProblem(record.stream) ?? offsetProblem(record.nextOffset, 'cut offset') ?? offsetProblem(record.lost, 'entries lost');
    case 'stream-position': {
      const notBefore = record.notBeforeMs;
      if (notBefore !== undefined && !Number.isSafeInteger(notBefore)) return `position time ${notBefore} is not a time`;
      if (record.skipped !== undefined && (!Number.isSafeInteger(record.skipped) || record.skipped < 1)) return `reader skipped count ${record.skipped} is not a positive integer`;
      return clientIdProblem(record.clientId) ?? checkTopicFilter(record.filter, protocolTopicLimits) ?? offsetProblem(record.offset, 'position');
    }
    case 'stream-group-position':
      if (typeof record.group !== 'string' || record.group.length === 0) return 'empty consumer group';
      if (record.skipped !== undefined && (!Number.isSafeInteger(record.skipped) || record.skipped < 1)) return `group skipped count ${record.skipped} is not a positive integer`;
      return streamNameProblem(record.stream) ?? offsetProblem(record.offset, 'group position');
  }
}

function streamCreatedProblem(record: Extract<StateRecord, { kind: 'stream-created' }>): string | null {
  const { name, filter, retentionMs, retentionBytes, lastValue } = record.stream;
  const problem = streamNameProblem(name) ?? checkTopicFilter(filter, protocolTopicLimits);
  if (problem !== null) return problem;
  if (parseSharedFilter(filter) !== null) return 'a stream filter is not shared';
  if (!Number.isSafeInteger(retentionMs) || retentionMs < 0 || !Number.isSafeInteger(retentionBytes) || retentionBytes < 0) return 'stream retention out of range';
  if (typeof lastValue !== 'boolean') return 'stream lastValue is not a boolean';
  const counterProblem = optionalOffsetProblem(record.nextOffset, 'next offset') ?? optionalOffsetProblem(record.firstOffset, 'first offset');
  if (counterProblem !== null) return counterProblem;
  if ((record.firstOffset ?? 0) > (record.nextOffset ?? 0)) return 'stream starts after its end';
  if (record.lastTimeMs !== undefined && !Number.isSafeInteger(record.lastTimeMs)) return 'stream time is not a time';
  return null;
}

function streamAppendedProblem(record: Extract<StateRecord, { kind: 'stream-appended' }>): string | null {
  const problem = checkTopicName(record.topic, protocolTopicLimits) ?? qosProblem(record.qos, 0);
  if (problem !== null) return problem;
  if (!Number.isSafeInteger(record.timeMs)) return `entry time ${record.timeMs} is not a time`;
  if (!Array.isArray(record.entries) || record.entries.length === 0) return 'an appended message names no stream';
  for (let index = 0; index < record.entries.length; index++) {
    const entry = record.entries[index]!;
    const entryProblem = streamNameProblem(entry.stream) ?? offsetProblem(entry.offset, 'offset');
    if (entryProblem !== null) return entryProblem;
    for (let other = 0; other < index; other++) if (record.entries[other]!.stream === entry.stream) return `stream ${entry.stream} named twice`;
  }
  return null;
}

/**
 * Applies a record read back from storage; returns why it cannot be applied (and then the state
 * must not be used any more: it may be half changed), or null.
 */
export function replayRecord(state: DurableState, record: StateRecord): string | null {
  const problem = recordProblem(record);
  if (problem !== null) return problem;
  try {
    applyRecord(state, record);
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
