/**
 * The cluster oracle: the single-node checker's delivery rules (sim/checker.ts) judged across a
 * whole cluster, from what the model clients sent and received, whichever node they used.
 *
 * Safety, as each PUBLISH reaches a subscriber:
 * - `never-published`: the payload names a publication no client made (or a damaged payload);
 * - `payload-topic`: the topic differs from the one published;
 * - `not-subscribed`: no filter the subscriber was granted (or had asked for) matches it;
 * - `qos0-duplicate`: a QoS 0 message delivered twice to one subscriber in one session (as below);
 * - `qos2-duplicate`: a QoS 2 message handed to the subscriber's application twice in one
 *   session (the model client does the receiver's half of QoS 2, so a copy it sees twice is the
 *   broker's fault). A session the client was told is gone (session present 0 after a node logged
 *   that its hand-over timed out, mover-client.ts) ends the count: the fresh session is a new
 *   subscriber, and a node behind on the hand-off stream routes to it what was published before
 *   it subscribed, as to any new subscriber there, even a message the lost session had got (seed
 *   2500413). Duplicates within a session, the lost one or the fresh one, still fail;
 * - `order`: per subscriber and session, per (publisher, node it published through, topic, QoS), a message
 *   seen for the first time after a later one of the same publisher (both sent once: a resend
 *   after the publisher reconnected is a publication whose order MQTT leaves open). Order is
 *   promised per node a publisher uses: a message it published through node A, then one through
 *   node B after reconnecting there, may reach B's subscribers in the other order while B is
 *   behind on the hand-off stream (cluster-node.ts, "Order").
 * Liveness, after the quiet period (every node up, NATS up, links healed, clients connected and
 * idle): `acknowledged-lost`: a QoS 1/2 publication whose PUBACK/PUBREC the publisher got, that
 * matches a subscription SUBACKed before the publication was first sent, has not reached that
 * subscriber (every subscriber's session is persistent and lives on its home node, whose disk
 * keeps what was synced: no loss is excused, but for a lost disk and for the broker's own report
 * of a message it dropped for that session, below).
 * A drop the broker reports (its `message-dropped` log line, which names the message by a CRC-32C
 * of its payload and its topic: a session queue past queuedMessagesPerSessionMax or
 * queuedBytesPerSessionMax under queueOverflowPolicy, a packet past the client's Maximum Packet
 * Size, an expired message) excuses exactly that message for that subscriber, as in the
 * single-node checker (sim/checker.ts). A subscriber left offline while its node is down may be
 * owed more than its queue holds: in heavy-sessions worlds half the messages are up to 900 kB,
 * and 5 s of them passed 16 MiB (seed 8200047). Reports counted in `dropsExcused`; one naming
 * no publication of the run excuses nothing (`dropsUnattributed`).
 * A lost disk (a node restarted with an empty data directory, cluster-world.ts loseDisk) excuses
 * exactly what lived only there: the sessions on that node (their clients are told so before
 * their next CONNACK: what the session was owed ends, as in `sessionLost`, and session present 0
 * is no `session-lost`; a QoS 2 publisher's PUBRELs are dropped, and the QoS 2 messages it had
 * sent without a PUBREC yet may reach a subscriber twice), and the acknowledged publications the
 * node fired as wills that the hand-off stream does not hold (`diskLost`). Other nodes' sessions,
 * retained messages and `$share` groups are judged as ever; each excuse is counted
 * (`lostDiskExcused`, vopr's coverage line).
 * Retained, after the quiet period, from a fresh subscriber on every node and the bucket's value:
 * `retained-diverged`: a node's retained message for a topic is not the one the `keel-retained`
 * bucket holds; `retained-lost`: a topic with an acknowledged retained publication has none;
 * `retained-stale`: the cluster's value was acknowledged before an acknowledged retained
 * publication on the same topic was first sent (so the newer one must have replaced it). The same
 * rule holds at every moment, not only at the end: it is judged too whenever a value lands in the
 * bucket (the NATS model tells) and whenever a retained publication is acknowledged, against the
 * value the bucket holds then. A fresh subscriber at that moment would get the older value after
 * the newer one was acknowledged; a later write hiding it by the end does not undo that.
 * `$share` groups have rules of their own (shared-checker.ts); this checker tells it of every
 * publication and acknowledgement.
 */
import type { PublishPacket, Qos } from '../../src/codec/packets.js';
import { crc32c } from '../../src/store/crc32c.js';
import { topicMatches } from '../topic-match.js';
import { publicationOf } from './publish-receipt.js';
import type { SharedChecker } from './shared-checker.js';

interface Publication {
  readonly publisher: number;
  readonly sequence: number;
  readonly topic: string;
  readonly qos: Qos;
  readonly retain: boolean;
  readonly firstSentMs: number;
  /** The node it was first sent through. */
  readonly node: number;
  /** Sent again after the publisher reconnected: left out of order checks. */
  resent: boolean;
  acked: boolean;
  ackedMs: number;
  /** The node whose acknowledgement the publisher got (a will: the node that fired it); -1 when not known. */
  ackedNode: number;
  /** A will (mover-client.ts): owed from the DISCONNECT 0x8E, not from an acknowledgement after its hand-off. */
  readonly will: boolean;
}

interface Subscriber {
  /** Filter → time its SUBACK arrived (null: asked, not yet granted). */
  readonly filters: Map<string, number | null>;
  /** Publication keys seen (any QoS), in any session of the client. */
  readonly seen: Set<string>;
  /** Publication keys seen in the client's current session, with how often the application got them. */
  readonly inSession: Map<string, number>;
  /** Highest sequence seen first-time in the current session per publisher|node|topic|qos. */
  readonly highest: Map<string, number>;
  /** Publication keys the broker reported dropping for this client's session (brokerDropped). */
  readonly dropped: Set<string>;
}

export class ClusterChecker {
  private readonly publications = new Map<string, Publication>();
  private readonly subscribers = new Map<number, Subscriber>();
  /** What the `keel-retained` bucket holds now, per topic: a publication key, or null (deleted, or not a publication). */
  private readonly bucketHolds = new Map<string, string | null>();
  delivered = 0;
  /** The rules for `$share` groups (shared-checker.ts), told of every publication too. */
  shared: SharedChecker | null = null;
  /**
   * What a lost disk excused (diskLost), for vopr's coverage: sessions marked lost and sessions
   * found lost (a session present 0 taken for the lost one), wills (owed, not yet handed off) lost with
   * the node, and QoS 2 copies that reached a subscriber twice because their publisher's session
   * went with the disk in the middle of the handshake.
   */
  readonly lostDiskExcused = { sessionsMarked: 0, sessions: 0, wills: 0, duplicates: 0 };
  /** Acknowledged publications only the lost disk held: left out of `acknowledged-lost`. */
  private readonly lostWithDisk = new Set<string>();
  /** QoS 2 publications sent, not yet acknowledged, by a client whose session went with a lost disk. */
  private readonly resentAfterLostSession = new Set<string>();
  /** Payload identity (`crc|topic`) to publication key, for attributing the broker's drop reports. */
  private readonly payloadKeys = new Map<string, string>();
  /** Drop reports that named a publication, and those that named none (they excuse nothing). */
  dropsExcused = 0;
  dropsUnattributed = 0;

  constructor(
    private readonly clock: { nowMs: number },
    private readonly fail: (rule: string, detail: string) => void,
  ) {}

  get published(): number {
    return this.publications.size;
  }

  private subscriber(client: number): Subscriber {
    let state = this.subscribers.get(client);
    if (state === undefined) {
      state = { filters: new Map(), seen: new Set(), inSession: new Map(), highest: new Map(), dropped: new Set() };
      this.subscribers.set(client, state);
    }
    return state;
  }

  subscribeSent(client: number, filter: string): void {
    const state = this.subscriber(client);
    if (!state.filters.has(filter)) state.filters.set(filter, null);
  }

  /**
   * The client's session is gone and it was told so (session present 0 after a hand-over that
   * timed out, mover-client.ts): what it was owed is excused; its next SUBACK starts a new claim,
   * and the fresh session's deliveries are counted and ordered on their own (see qos2-duplicate).
   */
  sessionLost(client: number): void {
    const state = this.subscriber(client);
    state.filters.clear();
    state.inSession.clear();
    state.highest.clear();
  }

  subackReceived(client: number, filter: string, granted: boolean): void {
    const state = this.subscriber(client);
    if (granted && state.filters.get(filter) === null) state.filters.set(filter, this.clock.nowMs);
  }

  /**
   * Node `node` lost its disk (cluster-world.ts loseDisk). `stored`: the publications the hand-off
   * stream holds. A will that `node` fired (owed from the DISCONNECT 0x8E, before its hand-off is
   * stored) and that the stream does not hold lived only in its log: it is excused from
   * `acknowledged-lost` (and from `shared-lost`). Nothing else is: a client's QoS 1/2 message is
   * acknowledged only once the stream holds its hand-off (its retained put once the bucket holds
   * it), so an acknowledged message missing from the stream is a bug, lost disk or not. The
   * sessions on the node are excused by their clients (sessionLost, duplicateExcused).
   */
  diskLost(node: number, stored: ReadonlySet<string>): string[] {
    const excused: string[] = [];
    for (const [key, publication] of this.publications) {
      if (!publication.will || !publication.acked || publication.ackedNode !== node || stored.has(key) || this.lostWithDisk.has(key)) continue;
      this.lostWithDisk.add(key);
      this.lostDiskExcused.wills += 1;
      this.shared?.excuse(key);
      excused.push(key);
    }
    return excused;
  }

  /**
   * A QoS 2 publication in the middle of its handshake (no PUBREC yet) when its publisher's
   * session went with a lost disk: the node may have handed it off already, and the fresh session
   * knows nothing of its packet id, so the resend is a new message. A subscriber may get it twice.
   */
  duplicateExcused(publisher: number, sequence: number): void {
    this.resentAfterLostSession.add(`${publisher}|${sequence}`);
  }

  /** `will`: a will that `node` publishes when the connection ends (mover-client.ts), not a client's PUBLISH. */
  publishSent(publisher: number, sequence: number, topic: string, qos: Qos, resend: boolean, node: number, retain = false, will = false): void {
    this.shared?.publishSent(publisher, sequence, topic, qos, node, will);
    const key = `${publisher}|${sequence}`;
    const existing = this.publications.get(key);
    if (existing !== undefined) {
      if (resend) existing.resent = true;
      return;
    }
    this.publications.set(key, { publisher, sequence, topic, qos, retain, firstSentMs: this.clock.nowMs, node, resent: false, acked: false, ackedMs: 0, ackedNode: -1, will });
  }

  /** The payload publication `publisher|sequence` carries on `topic`: a drop report names it by its checksum. */
  payloadSent(publisher: number, sequence: number, topic: string, payload: Uint8Array): void {
    this.payloadKeys.set(`${crc32c(payload)}|${topic}`, `${publisher}|${sequence}`);
  }

  /** The broker reported dropping the message with this payload checksum on `topic` for `client`'s session. */
  brokerDropped(client: number, topic: string, payloadCrc32c: number): void {
    const key = this.payloadKeys.get(`${payloadCrc32c}|${topic}`);
    if (key === undefined) {
      this.dropsUnattributed += 1;
      return;
    }
    this.subscriber(client).dropped.add(key);
    this.shared?.memberDropped(client, key);
    this.dropsExcused += 1;
  }

  /** `node`: the node whose acknowledgement (or DISCONNECT 0x8E, for a will) the publisher got. */
  publishAcked(publisher: number, sequence: number, node = -1): void {
    this.shared?.publishAcked(publisher, sequence);
    const publication = this.publications.get(`${publisher}|${sequence}`);
    if (publication !== undefined && !publication.acked) {
      publication.acked = true;
      publication.ackedMs = this.clock.nowMs;
      publication.ackedNode = node;
      if (publication.retain) this.judgeBucket(publication.topic, 'holds');
    }
  }

  /** A value landed in the bucket now (`key`: its publication, null when it names none). */
  retainedLanded(topic: string, key: string | null): void {
    this.bucketHolds.set(topic, key);
    this.judgeBucket(topic, 'got');
  }

  /** `retained-stale` now: the bucket's value of `topic` must not be older than an acknowledged publication sent after its acknowledgement. */
  private judgeBucket(topic: string, verb: 'got' | 'holds'): void {
    const key = this.bucketHolds.get(topic) ?? null;
    const value = key === null ? undefined : this.publications.get(key);
    if (value === undefined || !value.acked) return;
    for (const other of this.publications.values()) {
      if (!other.retain || !other.acked || other.topic !== topic || other.firstSentMs <= value.ackedMs) continue;
      return this.fail(
        'retained-stale',
        `${topic}: the bucket ${verb} ${key} (acknowledged at ${value.ackedMs}) at ${this.clock.nowMs}, after ${other.publisher}|${other.sequence} (sent at ${other.firstSentMs}, acknowledged at ${other.ackedMs})`,
      );
    }
  }

  /** A PUBLISH reached subscriber `client`'s application (QoS 2: once per packet id handshake). */
  publishReceived(client: number, packet: PublishPacket): void {
    const found = publicationOf(client, packet, this.publications, this.fail);
    if (found === null) return;
    const { key, publication } = found;
    const state = this.subscriber(client);
    let matching = false;
    for (const filter of state.filters.keys()) if (topicMatches(filter, packet.topic)) matching = true;
    if (!matching) return this.fail('not-subscribed', `c${client}: ${key} on ${packet.topic} matches none of ${[...state.filters.keys()].join(', ')}`);
    const count = (state.inSession.get(key) ?? 0) + 1;
    state.inSession.set(key, count);
    state.seen.add(key);
    this.delivered += 1;
    if (count > 1) {
      if (publication.qos === 0) return this.fail('qos0-duplicate', `c${client}: QoS 0 ${key} delivered ${count} times`);
      if (publication.qos === 2 && packet.qos === 2 && this.resentAfterLostSession.has(key)) {
        this.lostDiskExcused.duplicates += 1;
        return;
      }
      if (publication.qos === 2 && packet.qos === 2) return this.fail('qos2-duplicate', `c${client}: QoS 2 ${key} handed to the application ${count} times`);
      return;
    }
    if (publication.resent) return;
    const orderKey = `${publication.publisher}|${publication.node}|${publication.topic}|${publication.qos}`;
    const highest = state.highest.get(orderKey) ?? 0;
    if (publication.sequence < highest) {
      const later = this.publications.get(`${publication.publisher}|${highest}`);
      if (later !== undefined && !later.resent)
        return this.fail('order', `c${client}: ${key} arrived after ${publication.publisher}|${highest} on ${publication.topic} (both through n${publication.node})`);
    }
    if (publication.sequence > highest) state.highest.set(orderKey, publication.sequence);
  }

  /**
   * After the quiet period: what a fresh subscriber on `node` got as retained (topic → publication
   * key) against what the bucket holds (topic → publication key).
   */
  checkRetained(node: number, seen: ReadonlyMap<string, string>, bucket: ReadonlyMap<string, string>): void {
    const topics = new Set<string>([...seen.keys(), ...bucket.keys()]);
    for (const publication of this.publications.values()) if (publication.retain && publication.acked) topics.add(publication.topic);
    for (const topic of [...topics].sort()) {
      const here = seen.get(topic) ?? null;
      const there = bucket.get(topic) ?? null;
      if (here !== there) return this.fail('retained-diverged', `n${node} gives ${here ?? 'nothing'} as retained on ${topic}, the bucket holds ${there ?? 'nothing'}`);
      const newestAcked = this.newestAckedRetained(topic);
      if (there === null) {
        if (newestAcked !== null) this.fail('retained-lost', `${topic}: acknowledged retained ${newestAcked.publisher}|${newestAcked.sequence} but the cluster has none`);
        if (newestAcked !== null) return;
        continue;
      }
      const value = this.publications.get(there);
      if (value === undefined || !value.retain || value.topic !== topic) return this.fail('retained-diverged', `${topic}: the retained ${there} was never published retained there`);
      for (const other of this.publications.values()) {
        if (other.retain && other.acked && other.topic === topic && value.acked && other.firstSentMs > value.ackedMs) {
          return this.fail(
            'retained-stale',
            `${topic}: retained ${there} (acknowledged at ${value.ackedMs}) outlived ${other.publisher}|${other.sequence} (sent at ${other.firstSentMs}, acknowledged)`,
          );
        }
      }
    }
  }

  private newestAckedRetained(topic: string): Publication | null {
    let newest: Publication | null = null;
    for (const publication of this.publications.values()) {
      if (publication.retain && publication.acked && publication.topic === topic && (newest === null || publication.ackedMs > newest.ackedMs)) newest = publication;
    }
    return newest;
  }

  /** After the quiet period: every acknowledged QoS 1/2 publication reached every subscriber it was owed to, or was reported dropped for it. */
  checkLiveness(): void {
    for (const [key, publication] of this.publications) {
      if (!publication.acked || publication.qos === 0 || this.lostWithDisk.has(key)) continue;
      for (const [client, state] of this.subscribers) {
        let owed = false;
        for (const [filter, subackMs] of state.filters) {
          if (subackMs !== null && subackMs < publication.firstSentMs && topicMatches(filter, publication.topic)) owed = true;
        }
        if (owed && !state.seen.has(key) && !state.dropped.has(key)) {
          this.fail('acknowledged-lost', `c${client}: acknowledged QoS ${publication.qos} ${key} on ${publication.topic} (sent at ${publication.firstSentMs}) never arrived`);
          return;
        }
      }
    }
  }
}
