/**
 * The checker's rules for retained messages sent because of a SUBSCRIBE (the broker's paced
 * replay, src/broker/retained-replay.ts), judged per connection from what its client sent and
 * received and from when things reached the broker (the network's arrival times):
 *
 * - `retained-replay-lost` / `retained-replay-duplicated`: a subscriber whose connection stayed up
 *   from its SUBSCRIBE to the end got, as retained copies, every message that was retained when
 *   the SUBSCRIBE reached the broker and matched one of its granted plain filters, exactly once per
 *   such filter (each subscription replays on its own; a filter unsubscribed since may or may not
 *   have sent its copy), QoS 0 included. A message counts only when
 *   nothing could have taken it out of the table before the replay sent it: no other retained
 *   message on its topic at all, no operator's deletion, no expiry, no crash or amnesty since it
 *   arrived, nobody to whom the ACL would deny it; and only arrivals strictly before the SUBSCRIBE
 *   (two inputs of one millisecond may come in either order).
 * - `retained-replay-late`: a message that first reached the broker after the SUBSCRIBE reached
 *   the subscription live, never as a retained copy of its replay.
 * - `retained-dropped-output-full`: the broker reported dropping at the output cap a QoS 0 copy of
 *   a message that reached it before the connection's CONNECT: only a replay sends such a copy
 *   (QoS 0 is never stored for a session), and a replay waits at the cap instead.
 * - `replay-overtaken`: once a live QoS 1/2 copy decided after the SUBSCRIBE arrived (a fresh
 *   transmission, handed over at the moment it was decided), no retained copy of the replay may
 *   follow on that connection: new QoS 1/2 messages wait behind the replay.
 */
import type { PublishPacket } from '../src/codec/packets.js';
import type { SendTiming } from './checker.js';
import type { Link } from './network.js';
import { splitShared, topicMatches } from './topic-match.js';

/** What the audit reads of the checker's record of a published message. */
export interface MessageView {
  readonly key: string;
  readonly topic: string;
  readonly retain: boolean;
  readonly expirySeconds: number | null;
  readonly firstSentMs: number | null;
  readonly firstArrivalMs: number | null;
  readonly lastArrivalMs: number | null;
  readonly payloadBytes: number;
}

export interface ReplayAuditContext {
  readonly messages: ReadonlyMap<string, MessageView>;
  report(rule: string, detail: string): void;
  noteCoverage(name: string): void;
  /** A crash or an amnesty since `sinceMs` may have undone what reached the broker before. */
  mayHaveLostSince(sinceMs: number): boolean;
  /** The ACL lets `client` read `topic`, and the message was routed at all (its publisher may write it). */
  owedTo(client: number, message: MessageView): boolean;
  /** An operator cleared a retained message of `topic` at some point. */
  retainedCleared(topic: string): boolean;
}

interface SubscribeRecord {
  link: Link | null;
  filters: string[];
  arrivedMs: number | null;
  /** Filters SUBACK granted (codes 0..2), in SUBSCRIBE order. */
  granted: string[];
  /** Filters an UNSUBSCRIBE was sent for since: their replay may have ended. */
  left: Set<string>;
  /** Retained copies received on its link, by message key. */
  copies: Map<string, number>;
  /** The first live QoS 1/2 copy decided after the SUBSCRIBE arrived, if one came. */
  liveAfter: string | null;
}

export class ReplayAudit {
  /** Per client: the link of its current connection, and the SUBSCRIBE sent on it. */
  private readonly links = new Map<number, Link>();
  private readonly subscribes = new Map<number, SubscribeRecord>();

  constructor(
    private readonly context: ReplayAuditContext,
    private readonly outputBytesMax: number,
  ) {}

  connectionStarted(client: number, link: Link): void {
    this.links.set(client, link);
    this.subscribes.delete(client);
  }

  subscribeSent(client: number, filters: readonly string[]): void {
    this.subscribes.set(client, { link: null, filters: [...filters], arrivedMs: null, granted: [], left: new Set(), copies: new Map(), liveAfter: null });
  }

  /** Right after the SUBSCRIBE went out on `link`: watches its arrival. */
  subscribeOnLink(client: number, link: Link): void {
    const record = this.subscribes.get(client);
    if (record === undefined || record.link !== null || this.links.get(client) !== link) return;
    record.link = link;
    link.watchArrival((atMs) => (record.arrivedMs = atMs));
  }

  subackReceived(client: number, filters: readonly string[], codes: readonly number[]): void {
    const record = this.current(client);
    if (record === null || record.granted.length > 0) return;
    for (let index = 0; index < filters.length; index++) if ((codes[index] ?? 0x80) <= 2) record.granted.push(filters[index]!);
  }

  unsubscribeSent(client: number, filter: string): void {
    this.current(client)?.left.add(filter);
  }

  private current(client: number): SubscribeRecord | null {
    const record = this.subscribes.get(client);
    return record !== undefined && record.link !== null && record.link === this.links.get(client) ? record : null;
  }

  /** A retained copy (RETAIN 1, not DUP) reached `client`'s application. */
  retainedCopy(client: number, message: MessageView, packet: PublishPacket): void {
    const record = this.current(client);
    if (record === null || packet.dup) return;
    record.copies.set(message.key, (record.copies.get(message.key) ?? 0) + 1);
    if (record.liveAfter !== null) {
      this.context.report(
        'replay-overtaken',
        `c${client} got ${message.key} (${message.topic}) retained after the live ${record.liveAfter}, which the broker decided to send after the SUBSCRIBE arrived`,
      );
      return;
    }
    const arrivedMs = record.arrivedMs;
    if (arrivedMs !== null && message.firstArrivalMs !== null && message.firstArrivalMs > arrivedMs) {
      this.context.report(
        'retained-replay-late',
        `c${client} got ${message.key} (${message.topic}) as a retained copy; it first reached the broker at ${message.firstArrivalMs}ms, after the SUBSCRIBE (${arrivedMs}ms)`,
      );
    }
  }

  /** A live copy reached `client`'s application (see the module comment for what is tracked). */
  liveCopy(client: number, message: MessageView, packet: PublishPacket, timing: SendTiming): void {
    const record = this.current(client);
    if (record === null || record.liveAfter !== null || packet.qos === 0 || packet.dup || timing.decidedMs === null) return;
    if (record.arrivedMs !== null && timing.decidedMs > record.arrivedMs) record.liveAfter = message.key;
  }

  /** The broker reported dropping `message` for `client` at the output cap; `connectArrivedMs`: its connection's CONNECT. */
  outputFullDrop(client: number, message: MessageView, connectArrivedMs: number | null): void {
    if (connectArrivedMs === null || message.lastArrivalMs === null || message.lastArrivalMs >= connectArrivedMs) return;
    this.context.report(
      'retained-dropped-output-full',
      `c${client}: the broker dropped ${message.key} (${message.topic}) at the output cap; it reached the broker at ${message.lastArrivalMs}ms, before the connection's CONNECT (${connectArrivedMs}ms), so only a retained replay could send it, and a replay waits at the cap`,
    );
  }

  /** Liveness, at the end: every subscriber whose connection stayed up got its whole replay. */
  checkAtEnd(clients: Iterable<number>): void {
    for (const client of clients) {
      const record = this.current(client);
      const link = record?.link;
      if (record === null || link === null || link === undefined || !link.clientOpen || !link.brokerOpen || record.arrivedMs === null || record.granted.length === 0) continue;
      if (this.checkRecord(client, record, record.arrivedMs)) return;
    }
  }

  /** True when it reported a violation. */
  private checkRecord(client: number, record: SubscribeRecord, subscribedMs: number): boolean {
    const plain = record.granted.filter((filter) => splitShared(filter) === null);
    let owedBytes = 0;
    let owed = 0;
    for (const message of this.replayable(subscribedMs)) {
      const matching = plain.filter((filter) => topicMatches(filter, message.topic));
      // A filter unsubscribed since may have ended its replay, or sent its copy first.
      const least = matching.filter((filter) => !record.left.has(filter)).length;
      if (matching.length === 0 || !this.context.owedTo(client, message)) continue;
      owed += least;
      owedBytes += least * (message.payloadBytes + message.topic.length + 4);
      const got = record.copies.get(message.key) ?? 0;
      if (got >= least && got <= matching.length) continue;
      const rule = got < least ? 'retained-replay-lost' : 'retained-replay-duplicated';
      const owedText = least === matching.length ? `${least}` : `${least} to ${matching.length}`;
      this.context.report(
        rule,
        `c${client} got ${message.key} (${message.topic}) ${got} time(s) as a retained copy; its SUBSCRIBE (arrived at ${subscribedMs}ms, connection up since) owed it ${owedText} (${matching.join(', ')})`,
      );
      return true;
    }
    if (owed > 0) this.context.noteCoverage('retained-replays-judged');
    if (owedBytes > this.outputBytesMax) this.context.noteCoverage('retained-replays-past-cap');
    return false;
  }

  /** Retained messages surely in the table from before `subscribedMs` until the end (see the module comment). */
  private replayable(subscribedMs: number): MessageView[] {
    const byTopic = new Map<string, MessageView[]>();
    for (const message of this.context.messages.values()) {
      if (!message.retain || message.firstSentMs === null) continue;
      const list = byTopic.get(message.topic) ?? [];
      list.push(message);
      byTopic.set(message.topic, list);
    }
    const out: MessageView[] = [];
    for (const [topic, list] of byTopic) {
      if (list.length !== 1 || this.context.retainedCleared(topic)) continue;
      const message = list[0]!;
      if (message.expirySeconds !== null || message.firstArrivalMs === null || message.lastArrivalMs === null || message.lastArrivalMs >= subscribedMs) continue;
      if (this.context.mayHaveLostSince(message.firstArrivalMs)) continue;
      out.push(message);
    }
    return out;
  }
}
