/**
 * The stream rules: an oracle of its own for the durable streams of a stream world
 * (stream-shape.ts), judging only from what clients sent and received.
 *
 * Its model of each stream is built from deliveries: every MQTT 5.0 delivery names its offset
 * (`stream-offset`), so each offset seen anywhere is pinned to the message its payload names, and
 * at the end an auditor per stream (a fresh 5.0 reader from `earliest`, started when the world is
 * quiet) reads what the stream keeps. It never reads the broker's tables. The rules:
 *
 * - Contents, as each delivery comes: the payload is one this run produced, its topic matches the
 *   stream's filter (and the reader's sub-filter); an offset always holds the same message
 *   (`stream-entry-changed`); a message sits at one offset, or at most at one per copy of it that
 *   reached the broker for QoS 1, whose resend is a publication of its own (`stream-duplicate`).
 * - Contents, at the end: offsets are dense from the first kept to the last (`stream-gap`); the
 *   auditor reached the last offset anyone saw (`stream-audit-incomplete`); every acknowledged
 *   QoS 1/2 message to a matching topic is in the stream (`stream-lost`), unless retention may
 *   have removed it (by age: it reached the broker more than retentionMs before the audit; by size:
 *   any old segment) or, last-value, a newer message on its topic is kept. Nothing is trimmed from a
 *   stream without retention; an age-only stream trims nothing younger than retentionMs
 *   (`stream-retention-early`); a last-value stream keeps the newest message of every topic.
 * - Plain readers (5.0): within a session, offsets increase (`stream-order`; a broker crash
 *   may set a reader back to its committed position); an offset skipped between two deliveries is
 *   one the reader's sub-filter does not match, one a last-value compaction superseded, or one
 *   retention cut and the delivery announced (or a broker crash between may have taken the
 *   announcement, which is not durable, or a QoS 0 delivery carrying it was lost with a
 *   connection) (`stream-skip`): so the replay-to-live seam
 *   neither skips nor repeats. The first delivery of a session is where the start asked
 *   (`stream-start`): offset 0 for earliest, N for offset:N when N existed, nothing older than T
 *   for time:T and nothing at or after T missed, nothing appended after the SUBACK missed for latest.
 * - Every reader's last session (persistent or not, it is online at the end): each kept offset
 *   from its first delivery on, and each appended after its SUBACK, that its sub-filter matches,
 *   was acknowledged by it (`stream-unacknowledged`): a persistent reader resumes from its first
 *   unacknowledged offset after a reconnect or a restart, skipping nothing.
 * - Consumer groups: an offset is given (not DUP) to a second member, or again to the same one,
 *   only if the member that had it may have lost it (its connection ended and its acknowledgement
 *   had not reached the broker) or the broker crashed meanwhile (`stream-group-duplicate`); and
 *   every offset from the group's first delivery on, and each appended after its first member's
 *   SUBACK, is acknowledged by some member (`stream-group-lost`), unless a size bound may have
 *   cut the group (the only retention allowed to).
 *
 * - Positions across crashes: a reader's session (plain 5.0 readers) or a group (of a stream
 *   without retention, which may cut a group ahead of what a restart gives it again) goes on after a
 *   broker restart from a committed position no older than the last one the client side can
 *   prove durable (`stream-position-lost`). Nothing waits for a position's record, so the proof
 *   is indirect: the record is logged in the input that read the PUBACK, and a later QoS 1
 *   publish to a stream's topic that reached the broker after it and was acknowledged before the
 *   crash shows the log synced past it (see durableHorizons). An acknowledgement without such a
 *   proof may come again after the crash (redelivery, never a skip), as the README promises.
 *   Across reconnects without a crash, `stream-order` and `stream-group-duplicate` already forbid
 *   any new delivery of an acknowledged offset, and `stream-skip`, `stream-unacknowledged` and
 *   `stream-group-lost` any offset skipped on resume.
 *
 * Not judged: what an amnesty (a repair after reported corruption) may have undone.
 */
import type { PublishPacket } from '../src/codec/packets.js';
import type { StreamDefinition } from '../src/config.js';
import type { Checker, MessageRecord } from './checker.js';
import { parsePayload } from './clients/payload.js';
import type { StreamReaderPlan } from './stream-shape.js';
import { topicMatches } from './topic-match.js';

export interface StreamDeliveryRecord {
  client: number;
  stream: string;
  /** The `stream-offset` it carried (MQTT 5.0), or null. */
  offset: number | null;
  key: string;
  topic: string;
  dup: boolean;
  /** When it arrived at the reader. */
  atMs: number;
  /** When the broker sent its last byte (a reader that stopped reading gets it much later). */
  sentMs: number;
  /** The reader's session it came in (counted by the checker). */
  session: number;
  /** The `stream-skipped` it announced (MQTT 5.0), or 0. */
  skipped: number;
  ackSent: boolean;
  ackArrivedMs: number | null;
}

interface Entry {
  key: string;
  topic: string;
  seenMs: number;
}

interface StreamModel {
  definition: StreamDefinition;
  /** The broker reported entries of this stream damaged on the disk (and the disk did damage them). */
  damaged: boolean;
  entries: Map<number, Entry>;
  offsetsByKey: Map<string, Set<number>>;
}

interface ReaderSession {
  subscribeSentMs: number | null;
  subackMs: number | null;
}

interface ReaderState {
  client: number;
  plan: StreamReaderPlan;
  protocolVersion: 4 | 5;
  persistent: boolean;
  audit: boolean;
  sessions: ReaderSession[];
  deliveries: StreamDeliveryRecord[];
  connectionEndsMs: number[];
}

export class StreamChecker {
  private readonly streams = new Map<string, StreamModel>();
  private readonly readers = new Map<number, ReaderState>();
  private readonly crashesMs: number[] = [];
  /** Reader deliveries seen, for the run's summary. */
  deliveries = 0;

  constructor(
    definitions: readonly StreamDefinition[],
    private readonly checker: Checker,
    private readonly clock: { nowMs: number },
    private readonly report: (rule: string, detail: string) => void,
  ) {
    for (const definition of definitions) this.streams.set(definition.name, { definition, damaged: false, entries: new Map(), offsetsByKey: new Map() });
  }

  get active(): boolean {
    return this.streams.size > 0;
  }

  addReader(client: number, plan: StreamReaderPlan, protocolVersion: 4 | 5, persistent: boolean, audit = false): void {
    this.readers.set(client, { client, plan, protocolVersion, persistent, audit, sessions: [], deliveries: [], connectionEndsMs: [] });
  }

  /** The broker found and reported damage the disk did to this stream's files: the entries there may be gone. */
  streamDamaged(stream: string): void {
    const model = this.streams.get(stream);
    if (model !== undefined) model.damaged = true;
    this.checker.noteCoverage('stream-damage-reported');
  }

  brokerCrashed(): void {
    this.crashesMs.push(this.clock.nowMs);
  }

  private reader(client: number): ReaderState {
    const reader = this.readers.get(client);
    if (reader === undefined) throw new Error(`c${client} is not a stream reader`);
    return reader;
  }

  private currentSession(reader: ReaderState): ReaderSession {
    if (reader.sessions.length === 0) reader.sessions.push({ subscribeSentMs: null, subackMs: null });
    return reader.sessions[reader.sessions.length - 1]!;
  }

  sessionStarted(client: number): void {
    this.reader(client).sessions.push({ subscribeSentMs: null, subackMs: null });
  }

  subscribeSent(client: number): void {
    this.currentSession(this.reader(client)).subscribeSentMs = this.clock.nowMs;
  }

  subackReceived(client: number, code: number): void {
    const reader = this.reader(client);
    if (code >= 0x80) this.report('stream-refused', `c${client} ${reader.plan.filter} refused with 0x${code.toString(16)}`);
    this.currentSession(reader).subackMs ??= this.clock.nowMs;
  }

  connectionEnded(client: number): void {
    this.reader(client).connectionEndsMs.push(this.clock.nowMs);
  }

  ackSent(_client: number, delivery: StreamDeliveryRecord | null): void {
    if (delivery !== null) delivery.ackSent = true;
  }

  ackArrived(_client: number, delivery: StreamDeliveryRecord | null, atMs: number): void {
    if (delivery !== null) delivery.ackArrivedMs ??= atMs;
  }

  /** A reader got a PUBLISH: checked against the stream's contents now, recorded for the end. */
  delivered(client: number, packet: PublishPacket, sentMs: number = this.clock.nowMs): StreamDeliveryRecord | null {
    const reader = this.reader(client);
    const model = this.streams.get(reader.plan.stream)!;
    const where = `c${client} ${reader.plan.filter}`;
    const identity = parsePayload(packet.payload);
    if (identity === null) return this.fail('stream-payload-corrupt', `${where} got a payload no client sent on ${packet.topic}`);
    if (identity.topic !== packet.topic) return this.fail('stream-topic-mismatch', `${where} got ${packet.topic} carrying a message for ${identity.topic}`);
    const key = identity.kind === 'message' ? `m${identity.publisher}:${identity.sequence}` : `w${identity.client}:${identity.generation}`;
    if (identity.kind === 'message' && !this.checker.messages.has(key)) return this.fail('stream-unknown', `${where} got ${key}, never published`);
    if (!topicMatches(model.definition.filter, packet.topic)) return this.fail('stream-foreign', `${where} got ${key} on ${packet.topic}, outside the stream's filter ${model.definition.filter}`);
    if (reader.plan.narrow !== null && !topicMatches(reader.plan.narrow, packet.topic)) return this.fail('stream-foreign', `${where} got ${key} on ${packet.topic}, outside its sub-filter`);
    const properties = new Map(packet.properties?.userProperties ?? []);
    let offset: number | null = null;
    if (reader.protocolVersion === 5) {
      const text = properties.get('stream-offset');
      if (text === undefined || !/^\d+$/.test(text) || properties.get('stream') !== model.definition.name) {
        return this.fail('stream-offset-missing', `${where} got ${key} with stream=${properties.get('stream')} stream-offset=${text}`);
      }
      offset = Number(text);
      this.recordEntry(model, offset, key, packet.topic, where);
    }
    this.deliveries += 1;
    if (offset !== null && !packet.dup) this.checker.noteCoverage('stream-deliveries');
    const record: StreamDeliveryRecord = {
      client,
      stream: model.definition.name,
      offset,
      key,
      topic: packet.topic,
      dup: packet.dup,
      atMs: this.clock.nowMs,
      sentMs,
      session: Math.max(0, reader.sessions.length - 1),
      skipped: Number(properties.get('stream-skipped') ?? 0),
      // A QoS 0 delivery needs no acknowledgement: it counts as taken on arrival.
      ackSent: packet.qos === 0,
      ackArrivedMs: packet.qos === 0 ? this.clock.nowMs : null,
    };
    reader.deliveries.push(record);
    return record;
  }

  private fail(rule: string, detail: string): null {
    this.report(rule, detail);
    return null;
  }

  private recordEntry(model: StreamModel, offset: number, key: string, topic: string, where: string): void {
    const existing = model.entries.get(offset);
    if (existing !== undefined) {
      if (existing.key === key) return;
      if (!this.amnestySince(existing.seenMs)) {
        this.report('stream-entry-changed', `${where}: ${model.definition.name} offset ${offset} held ${existing.key}, now ${key}`);
        return;
      }
      model.offsetsByKey.get(existing.key)?.delete(offset);
    }
    model.entries.set(offset, { key, topic, seenMs: this.clock.nowMs });
    const offsets = model.offsetsByKey.get(key) ?? new Set<number>();
    model.offsetsByKey.set(key, offsets);
    offsets.add(offset);
    const record = this.checker.messages.get(key);
    const allowed = record !== undefined && record.qos === 1 ? Math.max(1, record.arrivals) : 1;
    if (offsets.size > allowed && !this.amnestySince(0)) {
      this.report('stream-duplicate', `${where}: ${key} is in ${model.definition.name} at offsets ${[...offsets].join(', ')} (${record?.arrivals ?? 0} copies reached the broker)`);
    }
  }

  private amnestySince(sinceMs: number): boolean {
    return this.checker.amnestyAfter(sinceMs);
  }

  private crashBetween(fromMs: number, toMs: number): boolean {
    return this.crashesMs.some((atMs) => atMs >= fromMs && atMs <= toMs);
  }

  private message(key: string): MessageRecord | undefined {
    return this.checker.messages.get(key);
  }

  /** The end-of-run rules (see the module comment), once the auditors have read every stream. */
  finish(): void {
    if (this.checker.amnesties > 0) return;
    const auditStartMs = Math.min(...[...this.readers.values()].filter((reader) => reader.audit).map((reader) => reader.sessions[0]?.subackMs ?? this.clock.nowMs));
    for (const model of this.streams.values()) {
      const auditor = [...this.readers.values()].find((reader) => reader.audit && reader.plan.stream === model.definition.name);
      // A stream whose damaged entries the broker reported: their loss is allowed, so no completeness rule holds for it.
      if (auditor === undefined || model.damaged) continue;
      const kept = new Map<number, string>();
      for (const delivery of auditor.deliveries) if (delivery.offset !== null) kept.set(delivery.offset, delivery.key);
      if (!this.checkKept(model, kept, auditStartMs)) return;
      if (!this.checkAcknowledgedKept(model, kept, auditStartMs)) return;
      for (const reader of this.readers.values()) {
        if (reader.audit || reader.plan.stream !== model.definition.name || reader.plan.group !== null) continue;
        if (!this.checkReaderSessions(model, reader)) return;
        if (!this.checkReaderOwed(model, reader)) return;
      }
      for (const group of new Set([...this.readers.values()].filter((r) => r.plan.group !== null && r.plan.stream === model.definition.name).map((r) => r.plan.group!))) {
        const members = [...this.readers.values()].filter((r) => r.plan.group === group && r.plan.stream === model.definition.name);
        if (!this.checkGroup(model, group, members)) return;
      }
    }
    if (!this.checkCommittedPositions()) return;
  }

  /**
   * Committed positions survive crashes (see "Positions across crashes" in the module comment):
   * for every plain 5.0 reader's session and every group, no delivery after a crash is of an
   * offset below a position whose commit was durable before that crash.
   */
  private checkCommittedPositions(): boolean {
    const horizons = this.durableHorizons();
    for (const model of this.streams.values()) {
      if (model.damaged) continue;
      const name = model.definition.name;
      const plain = [...this.readers.values()].filter((r) => !r.audit && r.plan.stream === name && r.plan.group === null && r.protocolVersion === 5);
      for (const reader of plain) {
        const sessions = new Set(reader.deliveries.map((delivery) => delivery.session));
        for (const session of sessions) {
          const deliveries = reader.deliveries.filter((delivery) => delivery.session === session && delivery.offset !== null);
          const passable = (entry: Entry): boolean => reader.plan.narrow !== null && !topicMatches(reader.plan.narrow, entry.topic);
          if (!this.checkPositionKept(model, `c${reader.client} ${reader.plan.filter}`, deliveries, passable, horizons, true)) return false;
        }
      }
      // A group cut by retention jumps ahead of entries it may be given again after a restart
      // that set it back: its run of acknowledgements proves nothing there, so it is not judged.
      const retained = model.definition.retentionMs > 0 || model.definition.retentionBytes > 0;
      for (const group of new Set([...this.readers.values()].filter((r) => r.plan.group !== null && r.plan.stream === name && !retained).map((r) => r.plan.group!))) {
        const deliveries = [...this.readers.values()]
          .filter((r) => r.plan.group === group && r.plan.stream === name)
          .flatMap((member) => member.deliveries.filter((delivery) => delivery.offset !== null));
        deliveries.sort((a, b) => a.atMs - b.atMs);
        if (!this.checkPositionKept(model, `${name} group ${group}`, deliveries, () => false, horizons, false)) return false;
      }
    }
    return true;
  }

  /**
   * Per crash (in order), the latest time before which everything the broker logged is known to
   * be on the disk by that crash: the first arrival, after the crash before it, of a QoS 1
   * message to a stream's topic whose publisher had its PUBACK before this crash. Such a publish
   * writes a `stream-appended` record in the input that reads it, and its PUBACK waits until the
   * log is synced past that record, so every record of an earlier input was synced too. A
   * position is committed in the input that read the PUBACK moving it; one read strictly before
   * the horizon is durable. -Infinity where no such message proves anything.
   */
  private durableHorizons(): number[] {
    const horizons = this.crashesMs.map(() => Number.NEGATIVE_INFINITY);
    const filters = [...this.streams.values()].map((model) => model.definition.filter);
    for (const record of this.checker.messages.values()) {
      if (record.qos !== 1 || record.ackedMs === null || record.firstArrivalMs === null) continue;
      if (!filters.some((filter) => topicMatches(filter, record.topic))) continue;
      const crash = this.crashesMs.findIndex((atMs) => atMs >= record.firstArrivalMs!);
      if (crash < 0 || record.ackedMs >= this.crashesMs[crash]!) continue;
      horizons[crash] = Math.max(horizons[crash]!, record.firstArrivalMs);
    }
    return horizons;
  }

  /**
   * One reader's session (or one group): for each crash, the position its acknowledgements had
   * provably made durable before it (the offset after the longest run, from where this broker
   * incarnation resumed it, of offsets acknowledged, or passed without an acknowledgement: QoS 0
   * entries, entries outside a sub-filter); no later delivery may be below it
   * (`stream-position-lost`). Offsets never seen end the run: nothing is assumed of them.
   *
   * Where the incarnation resumed: a plain reader is given its entries in offset order, so the
   * lowest offset it got before the acknowledgements is where it resumed (an entry it had unacked
   * comes again, DUP, before any later one). A group gives an entry a member gave back after later
   * ones (seed 970961), so for a group it is the lowest offset given from the restart on, at any
   * time: the group's first unacknowledged offset is given again sooner or later.
   */
  private checkPositionKept(model: StreamModel, where: string, deliveries: StreamDeliveryRecord[], passable: (entry: Entry) => boolean, horizons: number[], inOrder: boolean): boolean {
    let durableEnd = Number.NEGATIVE_INFINITY;
    let provenAtCrashMs = 0;
    for (let crash = 0; crash < this.crashesMs.length; crash++) {
      const startMs = crash === 0 ? Number.NEGATIVE_INFINITY : this.crashesMs[crash - 1]!;
      const crashMs = this.crashesMs[crash]!;
      const horizonMs = horizons[crash]!;
      const acknowledged = new Set<number>();
      let provenMs = Number.NEGATIVE_INFINITY;
      for (const delivery of deliveries) {
        const ackMs = delivery.ackArrivedMs;
        if (ackMs === null || ackMs <= startMs || ackMs >= horizonMs || this.isQos0(delivery.key)) continue;
        acknowledged.add(delivery.offset!);
        provenMs = Math.max(provenMs, ackMs);
      }
      if (acknowledged.size === 0) continue;
      const resumed = deliveries.filter((delivery) => delivery.atMs > startMs && (!inOrder || delivery.atMs <= provenMs)).map((delivery) => delivery.offset!);
      if (resumed.length === 0) continue;
      const end = this.acknowledgedRunEnd(model, Math.min(...resumed), acknowledged, passable);
      if (end > durableEnd) {
        durableEnd = end;
        provenAtCrashMs = crashMs;
      }
      // Coverage: a durable position the rule holds a later incarnation to.
      if (deliveries.some((delivery) => delivery.atMs > crashMs)) this.checker.noteCoverage('stream-positions-proven');
      for (const delivery of deliveries) {
        if (delivery.atMs <= crashMs || delivery.offset! >= durableEnd) continue;
        return this.failed(
          'stream-position-lost',
          `${where}: offset ${delivery.offset} delivered again at ${delivery.atMs}ms after the broker crashed at ${provenAtCrashMs}ms, though its position had reached ${durableEnd} by acknowledgements made durable before that crash`,
        );
      }
    }
    return true;
  }

  /** The offset after the run from `base` of offsets acknowledged or passable (see checkPositionKept). */
  private acknowledgedRunEnd(model: StreamModel, base: number, acknowledged: Set<number>, passable: (entry: Entry) => boolean): number {
    let end = base;
    for (let offset = base; ; offset++) {
      if (acknowledged.has(offset)) {
        end = offset + 1;
        continue;
      }
      const entry = model.entries.get(offset);
      if (entry === undefined || !(this.isQos0(entry.key) || passable(entry))) return end;
    }
  }

  /** What the auditor read: dense (or compacted), reaching the last offset seen, trimmed only by retention. */
  private checkKept(model: StreamModel, kept: Map<number, string>, auditStartMs: number): boolean {
    const { definition, entries } = model;
    const known = [...entries.keys()];
    if (known.length === 0) return true;
    const lastKnown = Math.max(...known);
    const offsets = [...kept.keys()];
    const first = offsets.length === 0 ? Number.POSITIVE_INFINITY : Math.min(...offsets);
    const last = offsets.length === 0 ? -1 : Math.max(...offsets);
    if (last < lastKnown) return this.failed('stream-audit-incomplete', `${definition.name}: a reader from earliest got to offset ${last}; offset ${lastKnown} was delivered before`);
    for (let offset = first; offset <= last; offset++) {
      if (kept.has(offset)) continue;
      const entry = entries.get(offset);
      if (definition.lastValue && (entry === undefined || this.supersededIn(model, offset, entry.topic, kept))) continue;
      return this.failed(
        definition.lastValue ? 'stream-last-value-lost' : 'stream-gap',
        `${definition.name}: offset ${offset} (${entry?.key ?? 'never seen'}) is missing between ${first} and ${last}`,
      );
    }
    if (first === 0 || definition.lastValue) return true;
    if (definition.retentionMs === 0 && definition.retentionBytes === 0) return this.failed('stream-trimmed-without-retention', `${definition.name} starts at ${first} and has no retention`);
    if (definition.retentionBytes > 0) return true;
    for (const [offset, entry] of entries) {
      if (offset >= first) continue;
      const arrivalMs = this.message(entry.key)?.lastArrivalMs ?? null;
      if (arrivalMs !== null && arrivalMs >= auditStartMs - definition.retentionMs) {
        return this.failed(
          'stream-retention-early',
          `${definition.name}: offset ${offset} (${entry.key}, appended at ${arrivalMs}ms) is gone by ${auditStartMs}ms with retentionMs ${definition.retentionMs}`,
        );
      }
    }
    return true;
  }

  /** A later offset of the same topic is kept: compaction may have removed this one. */
  private supersededIn(model: StreamModel, offset: number, topic: string, kept: Map<number, string>): boolean {
    for (const [other, key] of kept) if (other > offset && model.entries.get(other)?.topic === topic && key !== undefined) return true;
    return false;
  }

  /** Every acknowledged QoS 1/2 message to a matching topic is in the stream, unless retention or compaction may have removed it. */
  private checkAcknowledgedKept(model: StreamModel, kept: Map<number, string>, auditStartMs: number): boolean {
    const { definition } = model;
    for (const record of this.checker.messages.values()) {
      if (record.ackedMs === null || record.qos === 0 || !topicMatches(definition.filter, record.topic)) continue;
      if ((model.offsetsByKey.get(record.key)?.size ?? 0) > 0) continue;
      if (definition.retentionBytes > 0) continue;
      if (definition.retentionMs > 0 && record.lastArrivalMs !== null && record.lastArrivalMs < auditStartMs - definition.retentionMs) continue;
      if (definition.lastValue && this.newerKept(record, kept)) continue;
      return this.failed('stream-lost', `${definition.name}: ${record.key} on ${record.topic} was acknowledged at ${record.ackedMs}ms and is at no offset`);
    }
    return true;
  }

  /**
   * A message on the record's topic that the stream keeps was appended after the record: it
   * reached the broker no earlier than the latest the record can have been appended. A QoS 1
   * resend is a publication of its own (appended again), so that is its last arrival; a QoS 2
   * resend is not appended again unless a broker crash since its first arrival may have lost the
   * identifier that deduplicates it, so that is its first arrival (seed 967420).
   */
  private newerKept(record: MessageRecord, kept: Map<number, string>): boolean {
    const appendedByMs = this.lastAppendMs(record);
    for (const key of kept.values()) {
      const other = this.message(key);
      if (other !== undefined && other.key !== record.key && other.topic === record.topic && this.lastAppendMs(other) >= appendedByMs) return true;
    }
    return false;
  }

  /**
   * When a message's last copy in the stream can have reached the broker: a QoS 1 resend is
   * appended again, and compaction keeps the newest copy, so a kept message counts from its last
   * arrival (seeds 1900832 and 1901759: a kept message first sent before the lost one, resent after
   * it); a QoS 2 resend only after a crash (see above).
   */
  private lastAppendMs(record: MessageRecord): number {
    const first = record.firstArrivalMs ?? 0;
    const last = record.lastArrivalMs ?? 0;
    return record.qos === 2 && !this.crashBetween(first, last) ? first : last;
  }

  /** A plain 5.0 reader, session by session: increasing offsets, no unexplained skip, the start it asked for. */
  private checkReaderSessions(model: StreamModel, reader: ReaderState): boolean {
    if (reader.protocolVersion !== 5) return true;
    const bySession = new Map<number, StreamDeliveryRecord[]>();
    // A DUP resend of an offset this session already got is a repeat; one it never got (the first
    // copy went down with its link) continues the sequence like a first transmission. A broker
    // crash that rewinds the session to its durable position starts the count afresh: what is
    // sent after the rewind, resends included, is the new sequence (seed 1502881).
    const received = new Map<number, Set<number>>();
    for (const delivery of reader.deliveries) {
      if (delivery.offset === null) continue;
      const list = bySession.get(delivery.session) ?? [];
      bySession.set(delivery.session, list);
      let got = received.get(delivery.session);
      const previous = list[list.length - 1];
      if (got === undefined || (previous !== undefined && delivery.offset <= previous.offset! && this.crashBetween(previous.sentMs, delivery.sentMs))) {
        got = new Set<number>();
        received.set(delivery.session, got);
      }
      const seen = got.has(delivery.offset);
      got.add(delivery.offset);
      if (delivery.dup && seen) continue;
      list.push(delivery);
    }
    for (const [sessionIndex, deliveries] of bySession) {
      if (deliveries.length === 0) continue;
      const session = reader.sessions[sessionIndex];
      if (session !== undefined && !this.checkStart(model, reader, session, deliveries[0]!)) return false;
      for (let index = 1; index < deliveries.length; index++) {
        const previous = deliveries[index - 1]!;
        const delivery = deliveries[index]!;
        if (delivery.offset! <= previous.offset!) {
          if (this.crashBetween(previous.sentMs, delivery.sentMs)) continue;
          return this.failed(
            'stream-order',
            `c${reader.client} ${reader.plan.filter}: offset ${delivery.offset} at ${delivery.atMs}ms after ${previous.offset} at ${previous.atMs}ms, no broker crash between`,
          );
        }
        for (let offset = previous.offset! + 1; offset < delivery.offset!; offset++) {
          if (this.skipExplained(model, reader, offset, previous, delivery)) continue;
          return this.failed('stream-skip', `c${reader.client} ${reader.plan.filter}: got offset ${delivery.offset} after ${previous.offset}, skipping ${offset} (${model.entries.get(offset)?.key})`);
        }
      }
    }
    return true;
  }

  private skipExplained(model: StreamModel, reader: ReaderState, offset: number, previous: StreamDeliveryRecord, next: StreamDeliveryRecord): boolean {
    const entry = model.entries.get(offset);
    if (entry === undefined) return true;
    if (reader.plan.narrow !== null && !topicMatches(reader.plan.narrow, entry.topic)) return true;
    // A QoS 0 entry is sent once: a connection of the session that ended before the next delivery
    // may have taken it with it (sent after `previous`, or before it when `previous` is a resend).
    const sessionStartMs = reader.sessions[previous.session]?.subscribeSentMs ?? 0;
    if (this.isQos0(entry.key) && reader.connectionEndsMs.some((atMs) => atMs >= sessionStartMs && atMs <= next.atMs)) return true;
    const definition = model.definition;
    if (definition.lastValue && [...model.entries].some(([other, e]) => other > offset && e.topic === entry.topic)) return true;
    // Retention may cut a plain reader (it is never waited for); the cut is announced on its next
    // delivery, but that announcement lives in memory: a broker crash between may take it along,
    // and so may a QoS 0 delivery that carried it and went down with a connection.
    if (!(definition.retentionMs > 0 || definition.retentionBytes > 0)) return false;
    return next.skipped > 0 || this.crashBetween(previous.sentMs, next.sentMs) || this.announcementMayBeLost(model, reader, previous, next);
  }

  /**
   * A QoS 0 entry the reader's sub-filter matches lies between `previous` and `next`, and a
   * connection of the session ended before `next` came: the first delivery after a cut, which
   * announces it, may have been that entry, and lost.
   */
  private announcementMayBeLost(model: StreamModel, reader: ReaderState, previous: StreamDeliveryRecord, next: StreamDeliveryRecord): boolean {
    const sessionStartMs = reader.sessions[previous.session]?.subscribeSentMs ?? 0;
    if (!reader.connectionEndsMs.some((atMs) => atMs >= sessionStartMs && atMs <= next.atMs)) return false;
    for (let offset = previous.offset! + 1; offset < next.offset!; offset++) {
      const entry = model.entries.get(offset);
      if (entry !== undefined && this.isQos0(entry.key) && (reader.plan.narrow === null || topicMatches(reader.plan.narrow, entry.topic))) return true;
    }
    return false;
  }

  /** The first delivery of a session is where its start asked (streams without retention or compaction). */
  private checkStart(model: StreamModel, reader: ReaderState, session: ReaderSession, first: StreamDeliveryRecord): boolean {
    const definition = model.definition;
    if (definition.lastValue || definition.retentionMs > 0 || definition.retentionBytes > 0) return true;
    const start = reader.plan.start;
    const offset = first.offset!;
    const where = `c${reader.client} ${reader.plan.filter} (${start.kind})`;
    const matching = (entry: Entry): boolean => reader.plan.narrow === null || topicMatches(reader.plan.narrow, entry.topic);
    // A QoS 0 entry sent before the first one that arrived may have gone down with a connection.
    const lostLink = reader.connectionEndsMs.some((atMs) => atMs >= (session.subscribeSentMs ?? 0) && atMs <= first.atMs);
    for (const [other, entry] of model.entries) {
      if (other >= offset || !matching(entry) || (lostLink && this.isQos0(entry.key))) continue;
      const record = this.message(entry.key);
      if (record === undefined || record.firstArrivalMs === null) continue;
      const missed =
        start.kind === 'earliest' ||
        (start.kind === 'offset' && other >= start.offset && session.subscribeSentMs !== null && record.lastArrivalMs! < session.subscribeSentMs) ||
        (start.kind === 'time' && record.firstArrivalMs >= start.timeMs) ||
        ((start.kind === 'latest' || start.kind === 'default') && session.subackMs !== null && record.firstArrivalMs > session.subackMs);
      if (missed) return this.failed('stream-start', `${where}: first delivery is offset ${offset}, but offset ${other} (${entry.key}, reached the broker at ${record.firstArrivalMs}ms) was due`);
    }
    const record = this.message(first.key);
    if (start.kind === 'time' && record?.lastArrivalMs !== null && record !== undefined && record.lastArrivalMs < start.timeMs) {
      return this.failed('stream-start', `${where}: first delivery ${first.key} at offset ${offset} was appended at ${record.lastArrivalMs}ms, before ${start.timeMs}`);
    }
    return true;
  }

  /** The reader's last session acknowledged every offset owed to it (see the module comment). */
  private checkReaderOwed(model: StreamModel, reader: ReaderState): boolean {
    const definition = model.definition;
    if (definition.lastValue || definition.retentionMs > 0 || definition.retentionBytes > 0) return true;
    const sessionIndex = reader.sessions.length - 1;
    const session = reader.sessions[sessionIndex];
    if (session === undefined || session.subackMs === null) return true;
    const acknowledged = new Set<string>();
    let firstOffset = Number.POSITIVE_INFINITY;
    for (const delivery of reader.deliveries) {
      if (delivery.session !== sessionIndex) continue;
      if (delivery.ackSent) acknowledged.add(delivery.key);
      const offset = delivery.offset ?? this.onlyOffset(model, delivery.key);
      if (offset !== null) firstOffset = Math.min(firstOffset, offset);
    }
    const start = reader.plan.start;
    for (const [offset, entry] of model.entries) {
      if (reader.plan.narrow !== null && !topicMatches(reader.plan.narrow, entry.topic)) continue;
      if (this.isQos0(entry.key)) continue;
      const record = this.message(entry.key);
      const appendedAfter = record?.firstArrivalMs !== null && record !== undefined && record.firstArrivalMs > session.subackMs && (start.kind !== 'time' || record.firstArrivalMs >= start.timeMs);
      if (offset < firstOffset && !appendedAfter) continue;
      if (acknowledged.has(entry.key)) continue;
      return this.failed(
        'stream-unacknowledged',
        `c${reader.client} ${reader.plan.filter}: offset ${offset} (${entry.key}) never acknowledged in its last session (first offset ${firstOffset}, SUBACK at ${session.subackMs}ms)`,
      );
    }
    return true;
  }

  /** Delivered at QoS 0 (the message's QoS caps the delivery's): at most once, owed to nobody. */
  private isQos0(key: string): boolean {
    return this.message(key)?.qos === 0;
  }

  private onlyOffset(model: StreamModel, key: string): number | null {
    const offsets = model.offsetsByKey.get(key);
    return offsets !== undefined && offsets.size === 1 ? [...offsets][0]! : null;
  }

  /** One member per offset (losses excepted), and every owed offset acknowledged by some member. */
  private checkGroup(model: StreamModel, group: string, members: ReaderState[]): boolean {
    const definition = model.definition;
    const holders = new Map<number, StreamDeliveryRecord>();
    const all = members.flatMap((member) => member.deliveries.filter((delivery) => !delivery.dup && delivery.offset !== null));
    // In the order the broker gave them: a member that stopped reading may get its copy after
    // the broker, having lost its connection, gave the offset to another (seed 968306).
    all.sort((a, b) => a.sentMs - b.sentMs);
    for (const delivery of all) {
      const holder = holders.get(delivery.offset!);
      holders.set(delivery.offset!, delivery);
      if (holder === undefined || this.mayHaveLost(holder, delivery)) continue;
      return this.failed(
        'stream-group-duplicate',
        `${definition.name} group ${group}: offset ${delivery.offset} went to c${holder.client} at ${holder.atMs}ms and again to c${delivery.client} at ${delivery.atMs}ms`,
      );
    }
    if (definition.lastValue || definition.retentionBytes > 0) return true;
    // An age bound spares a group only while it has members: members whose sessions last for ever.
    if (definition.retentionMs > 0 && !members.every((member) => member.persistent)) return true;
    const cut = all.find((delivery) => delivery.skipped > 0);
    if (cut !== undefined) {
      return this.failed(
        'stream-group-cut',
        `${definition.name} group ${group}: c${cut.client} was told ${cut.skipped} offset(s) before ${cut.offset} were skipped, with no size bound and a member all along`,
      );
    }
    const joins = members.map((member) => member.sessions[0]?.subackMs ?? null).filter((atMs): atMs is number => atMs !== null);
    if (joins.length === 0) return true;
    const joinMs = Math.min(...joins);
    const acknowledged = new Set<number>();
    for (const delivery of members.flatMap((member) => member.deliveries)) if (delivery.ackSent && delivery.offset !== null) acknowledged.add(delivery.offset);
    const firstOffset = all.length === 0 ? Number.POSITIVE_INFINITY : Math.min(...all.map((delivery) => delivery.offset!));
    const lastOffset = Math.max(-1, ...model.entries.keys());
    for (let offset = Math.min(firstOffset, lastOffset + 1); offset <= lastOffset; offset++) {
      if (acknowledged.has(offset)) continue;
      const entry = model.entries.get(offset);
      // Never seen: trimmed before anyone read it (a QoS 0 entry a member lost may be), judged by the announcement below.
      if (entry === undefined || this.isQos0(entry.key)) continue;
      const record = entry === undefined ? undefined : this.message(entry.key);
      if (offset < firstOffset && !(record?.firstArrivalMs != null && record.firstArrivalMs > joinMs)) continue;
      return this.failed('stream-group-lost', `${definition.name} group ${group}: offset ${offset} (${entry?.key ?? 'never seen'}) acknowledged by no member (first group offset ${firstOffset})`);
    }
    for (const [offset, entry] of model.entries) {
      if (offset >= firstOffset || acknowledged.has(offset) || this.isQos0(entry.key)) continue;
      const record = this.message(entry.key);
      if (record?.firstArrivalMs != null && record.firstArrivalMs > joinMs) {
        return this.failed('stream-group-lost', `${definition.name} group ${group}: offset ${offset} (${entry.key}) appended after the group formed, acknowledged by no member`);
      }
    }
    return true;
  }

  /** The first holder of an offset may have lost it before it went again: its link ended unacknowledged, or the broker crashed. */
  private mayHaveLost(holder: StreamDeliveryRecord, again: StreamDeliveryRecord): boolean {
    if (this.crashBetween(holder.sentMs, again.sentMs)) return true;
    const acknowledgedBefore = holder.ackArrivedMs !== null && holder.ackArrivedMs <= again.sentMs;
    if (acknowledgedBefore) return false;
    const member = this.readers.get(holder.client)!;
    return member.connectionEndsMs.some((atMs) => atMs >= holder.sentMs);
  }

  private failed(rule: string, detail: string): false {
    this.report(rule, detail);
    return false;
  }
}
