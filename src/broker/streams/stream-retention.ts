/**
 * Retention: a stream keeps its entries for `retentionMs` and within `retentionBytes`, deleting
 * whole sealed segments, oldest first, on the core's deadline (`stream-maintenance`, every
 * `streamMaintenanceIntervalMs`); the active segment is never deleted.
 *
 * By age, a segment goes when its newest entry is older than `retentionMs`, but never while a
 * live consumer group (one with at least one member session, connected or not) has not
 * acknowledged every entry in it: a group that falls behind holds the stream's age bound open.
 * By size, the oldest segments go until the stream is within `retentionBytes`, whatever any group
 * has acknowledged: a disk bound that a stalled consumer could suspend is no bound. A group left
 * behind that way moves on to the stream's new first offset: the skip is logged
 * (`stream-group-cut`), counted (`stats.streams.groupsCut`, `groupEntriesCut`) and announced to
 * the member that gets the group's next delivery (`stream-skipped`, MQTT 5.0). Individual readers
 * are never waited for (their place is theirs to keep up with): one that falls behind finds its
 * next entries gone, and is told the same way.
 *
 * A trim is a `stream-trimmed` record; the store deletes the segment files only once it is
 * durable, and recovery deletes what a crash left (store/streams/stream-recovery.ts).
 *
 * The same deadline starts last-value compaction (store/streams/stream-compaction.ts): at most one
 * segment rewrite per last-value stream at a time, which then runs one storage request per step.
 */
import type { StreamState } from '../../store/state-store.js';
import type { SegmentSummary } from '../../store/streams/stream-store.js';
import type { GroupReader } from './stream-groups.js';
import type { Streams } from './streams.js';

/** One retention pass over every stream (bounded by streams x segments, both bounded by configuration). */
export function applyRetention(streams: Streams, nowMs: number): void {
  if (!streams.available) return;
  for (const stream of streams.broker.state.streams.values()) {
    if (stream.retentionMs === 0 && stream.retentionBytes === 0) continue;
    const firstOffset = retainedFrom(streams, stream, nowMs);
    if (firstOffset <= stream.firstOffset) continue;
    streams.broker.commit({ kind: 'stream-trimmed', stream: stream.name, firstOffset });
    streams.broker.stats.streams.trims += 1;
    streams.broker.log('info', 'stream-trimmed', { stream: stream.name, firstOffset });
    for (const group of streams.groupsOf(stream.name).values()) cutGroup(streams, group, firstOffset);
  }
}

/** The first offset the stream keeps after this pass (whole segments). */
function retainedFrom(streams: Streams, stream: StreamState, nowMs: number): number {
  const segments = streams.store.segments(stream.name);
  let bytes = 0;
  for (const segment of segments) bytes += segment.bytes;
  const oldestAllowedMs = streams.wallClockMs(nowMs) - stream.retentionMs;
  const acknowledged = liveGroupsPosition(streams, stream);
  let cut = 0;
  // Bounded by the segments; the last (active) one always stays.
  while (cut < segments.length - 1 && segments[cut]!.sealed) {
    const segment = segments[cut]!;
    const overSize = stream.retentionBytes > 0 && bytes > stream.retentionBytes;
    if (!overSize && !isExpired(segment, segments[cut + 1]!, stream, oldestAllowedMs, acknowledged)) break;
    bytes -= segment.bytes;
    cut += 1;
  }
  return cut === 0 ? stream.firstOffset : segments[cut]!.baseOffset;
}

function isExpired(segment: SegmentSummary, next: SegmentSummary, stream: StreamState, oldestAllowedMs: number, acknowledged: number): boolean {
  if (stream.retentionMs === 0 || segment.lastTimeMs >= oldestAllowedMs) return false;
  // Every entry of the segment is below the next segment's base: all acknowledged by every live group?
  return next.baseOffset <= acknowledged;
}

/** The lowest position among the stream's live consumer groups (those with members), or +Infinity. */
function liveGroupsPosition(streams: Streams, stream: StreamState): number {
  let position = Number.POSITIVE_INFINITY;
  for (const group of streams.groupsOf(stream.name).values()) if (group.members.size > 0) position = Math.min(position, group.position());
  return position;
}

/** A group the trim left behind moves to the new first offset; the loss is logged, counted, announced. */
function cutGroup(streams: Streams, group: GroupReader, firstOffset: number): void {
  const position = group.position();
  if (position >= firstOffset) return;
  const skipped = group.dropBelow(firstOffset);
  streams.broker.stats.streams.groupsCut += 1;
  streams.broker.stats.streams.groupEntriesCut += skipped;
  streams.broker.log('warn', 'stream-group-cut', { stream: group.stream, group: group.key, fromOffset: position, toOffset: firstOffset, skipped, why: 'retentionBytes reached' });
  streams.groupMoved(group);
}

/** Starts a segment rewrite in every last-value stream that has one worth doing. */
export function compactLastValueStreams(streams: Streams): void {
  if (!streams.available) return;
  for (const stream of streams.broker.state.streams.values()) if (stream.lastValue) streams.store.compact(stream.name, stream.nextOffset);
}
