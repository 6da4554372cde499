/**
 * The cluster oracle's rules for `$share` groups across nodes (src/cluster/shared-groups.ts),
 * judged from what the model members (shared-members.ts) sent and received, what the publishers
 * sent and had acknowledged, and what NATS delivered of the `keel-shared` bucket to each node.
 *
 * Safety, as each PUBLISH reaches a member:
 * - `never-published` / `payload-topic`: as for plain subscribers;
 * - `shared-not-subscribed`: the topic does not match the group's filter;
 * - `shared-duplicated`: a publication sent once reached two members of one group, and neither
 *   may have lost it (a member may have lost it, so the cluster may pass it on, when its
 *   connection ended, its node crashed, or it left the group after the publication was sent).
 *
 * Liveness, after the quiet period: `shared-lost`: an acknowledged QoS 1/2 publication never
 * reached any member of a matching group that it was owed to. The publishing node chooses the
 * node from its view of the bucket, so a publication is owed only where that choice cannot have
 * gone to a node without a member for good. With X the node of the acknowledged send (QoS 2: the
 * first send's node, whose copy the acknowledgement stands for; QoS 1: the last send's) and W the
 * time from that send to the acknowledgement (when X chose):
 * - no member of the group left it after W began, nor was leaving (no UNSUBACK yet) when it began;
 * - throughout W, X's view of other nodes (the bucket changes NATS delivered to X since it last
 *   started) names only nodes with a member whose SUBACK came before W and that never leaves;
 * - a member on X itself that may have been in X's trie during W has its SUBACK before W;
 * - X's choice had somewhere to go throughout W: its view of others or a member of its own.
 * Members' sessions are persistent on their home node, whose disk keeps what was synced.
 */

import { parseSharedKey } from '../../src/cluster/shared-groups.js';
import type { PublishPacket, Qos } from '../../src/codec/packets.js';
import type { ClusterKeyChange } from '../../src/contract.js';
import { splitShared, topicMatches } from '../topic-match.js';
import { publicationOf } from './publish-receipt.js';

interface Interval {
  readonly subscribeSentMs: number;
  subackMs: number | null;
  unsubscribeSentMs: number | null;
  unsubackMs: number | null;
}

interface Member {
  readonly client: number;
  readonly home: number;
  readonly group: string;
  readonly filter: string;
  readonly intervals: Interval[];
  readonly seen: Map<string, number>;
  /** Times its connection ended (by either side, or its node's crash). */
  readonly connectionEndsMs: number[];
}

interface Send {
  readonly node: number;
  readonly atMs: number;
}

interface Publication {
  readonly topic: string;
  readonly qos: Qos;
  /** A will: its node publishes it when the connection ends, and again at recovery after a crash. */
  readonly will: boolean;
  readonly sends: Send[];
  ackedMs: number | null;
  /** Per group: the members it reached. */
  readonly receivers: Map<string, Set<number>>;
}

/** A bucket change as delivered to a node (or its restart, which empties its view). */
interface ViewEvent {
  readonly atMs: number;
  readonly kind: 'put' | 'delete' | 'reset';
  readonly group: string;
  readonly node: number;
}

export class SharedChecker {
  private readonly members = new Map<number, Member>();
  private readonly publications = new Map<string, Publication>();
  private readonly viewEvents: ViewEvent[][] = [];
  private readonly crashesMs: number[][] = [];
  /** Publications excused by a lost disk (excuse). */
  private readonly excused = new Set<string>();
  /** `<group>|<publication key>`: a node reported dropping the publication for a member of the group (memberDropped). */
  private readonly droppedForGroup = new Set<string>();
  delivered = 0;

  constructor(
    private readonly clock: { nowMs: number },
    nodes: number,
    private readonly fail: (rule: string, detail: string) => void,
  ) {
    for (let node = 0; node < nodes; node++) {
      this.viewEvents.push([]);
      this.crashesMs.push([]);
    }
  }

  // ---- what the world reports ---------------------------------------------------------------

  memberCreated(client: number, home: number, sharedFilter: string): void {
    const shared = splitShared(sharedFilter);
    if (shared === null) throw new Error(`not a shared filter: ${sharedFilter}`);
    this.members.set(client, { client, home, group: `${shared.group}/${shared.filter}`, filter: shared.filter, intervals: [], seen: new Map(), connectionEndsMs: [] });
  }

  subscribeSent(client: number): void {
    const member = this.member(client);
    const last = member.intervals.at(-1);
    // A SUBSCRIBE sent again (after a reconnection) continues the interval it opened.
    if (last !== undefined && last.unsubscribeSentMs === null) return;
    member.intervals.push({ subscribeSentMs: this.clock.nowMs, subackMs: null, unsubscribeSentMs: null, unsubackMs: null });
  }

  subackReceived(client: number): void {
    const last = this.member(client).intervals.at(-1);
    if (last !== undefined && last.unsubscribeSentMs === null && last.subackMs === null) last.subackMs = this.clock.nowMs;
  }

  unsubscribeSent(client: number): void {
    const last = this.member(client).intervals.at(-1);
    if (last !== undefined && last.unsubscribeSentMs === null) last.unsubscribeSentMs = this.clock.nowMs;
  }

  unsubackReceived(client: number): void {
    const last = this.member(client).intervals.at(-1);
    if (last !== undefined && last.unsubscribeSentMs !== null && last.unsubackMs === null) last.unsubackMs = this.clock.nowMs;
  }

  connectionEnded(client: number): void {
    this.member(client).connectionEndsMs.push(this.clock.nowMs);
  }

  nodeCrashed(node: number): void {
    this.crashesMs[node]!.push(this.clock.nowMs);
    this.viewEvents[node]!.push({ atMs: this.clock.nowMs, kind: 'reset', group: '', node });
  }

  /** A `keel-shared` change the node took in (it was ready for it). */
  viewChanged(node: number, change: ClusterKeyChange): void {
    const parsed = parseSharedKey(change.key);
    if (parsed === null || !parsed.nodeId.startsWith('n')) return;
    const owner = Number(parsed.nodeId.slice(1));
    if (owner === node) return;
    this.viewEvents[node]!.push({ atMs: this.clock.nowMs, kind: change.value === null ? 'delete' : 'put', group: `${parsed.name}/${parsed.filter}`, node: owner });
  }

  publishSent(publisher: number, sequence: number, topic: string, qos: Qos, node: number, will = false): void {
    const key = `${publisher}|${sequence}`;
    let publication = this.publications.get(key);
    if (publication === undefined) {
      publication = { topic, qos, will, sends: [], ackedMs: null, receivers: new Map() };
      this.publications.set(key, publication);
    }
    publication.sends.push({ node, atMs: this.clock.nowMs });
  }

  /**
   * A node reported dropping publication `key` for `client` (a `message-dropped` log: its queue was
   * full, say). When the client is a member, its group is owed that publication no more: the
   * message was given to the group, and the limit's outcome is a reported drop (seed 25000034:
   * a member's queue overflowed while it was offline after its node's crash).
   */
  memberDropped(client: number, key: string): void {
    const member = this.members.get(client);
    if (member !== undefined) this.droppedForGroup.add(`${member.group}|${key}`);
  }

  /** An acknowledged publication that only a lost disk held (cluster-checker.ts diskLost): no group is owed it. */
  excuse(key: string): void {
    this.excused.add(key);
  }

  /**
   * The member's session went with its home node's disk: it is out of its group from now on, as
   * if it had left (an interval ends now), until its SUBSCRIBE on the fresh session opens another.
   */
  memberLostSession(client: number): void {
    const last = this.member(client).intervals.at(-1);
    if (last === undefined) return;
    if (last.unsubscribeSentMs === null) last.unsubscribeSentMs = this.clock.nowMs;
    if (last.unsubackMs === null) last.unsubackMs = this.clock.nowMs;
  }

  publishAcked(publisher: number, sequence: number): void {
    const publication = this.publications.get(`${publisher}|${sequence}`);
    if (publication !== undefined && publication.ackedMs === null) publication.ackedMs = this.clock.nowMs;
  }

  /** A PUBLISH reached member `client`'s application (QoS 2: once per packet id handshake). */
  publishReceived(client: number, packet: PublishPacket): void {
    const found = publicationOf(client, packet, this.publications, this.fail);
    if (found === null) return;
    const { key, publication } = found;
    const member = this.member(client);
    if (!topicMatches(member.filter, packet.topic)) return this.fail('shared-not-subscribed', `c${client}: ${key} on ${packet.topic} does not match its group ${member.group}`);
    member.seen.set(key, (member.seen.get(key) ?? 0) + 1);
    this.delivered += 1;
    let receivers = publication.receivers.get(member.group);
    if (receivers === undefined) {
      receivers = new Set();
      publication.receivers.set(member.group, receivers);
    }
    receivers.add(client);
    if (receivers.size < 2 || publication.sends.length > 1) return;
    const firstSentMs = publication.sends[0]!.atMs;
    const holders = [...receivers].filter((receiver) => !this.mayHaveLost(this.member(receiver), firstSentMs));
    if (holders.length < 2) return;
    this.fail(
      'shared-duplicated',
      `group ${member.group} gave ${key} (${publication.topic}, sent once at ${firstSentMs}) to ${holders.map((holder) => `c${holder} on n${this.member(holder).home}`).join(' and ')}; none of them lost it meanwhile`,
    );
  }

  private member(client: number): Member {
    const member = this.members.get(client);
    if (member === undefined) throw new Error(`c${client} is not a shared member`);
    return member;
  }

  /** The member may have lost a message sent at `fromMs`: its connection ended, its node crashed, or it left the group since. */
  private mayHaveLost(member: Member, fromMs: number): boolean {
    if (member.connectionEndsMs.some((atMs) => atMs >= fromMs)) return true;
    if (this.crashesMs[member.home]!.some((atMs) => atMs >= fromMs)) return true;
    return member.intervals.some((interval) => interval.unsubscribeSentMs !== null && interval.unsubscribeSentMs >= fromMs);
  }

  // ---- liveness -----------------------------------------------------------------------------

  /** After the quiet period: every acknowledged QoS 1/2 publication reached each group it was owed to. */
  checkLiveness(): void {
    const groups = new Map<string, Member[]>();
    for (const member of this.members.values()) {
      const list = groups.get(member.group) ?? [];
      list.push(member);
      groups.set(member.group, list);
    }
    for (const [key, publication] of this.publications) {
      if (publication.ackedMs === null || publication.qos === 0 || this.excused.has(key)) continue;
      for (const [group, members] of groups) {
        if (!topicMatches(members[0]!.filter, publication.topic)) continue;
        if (members.some((member) => member.seen.has(key))) continue;
        if (this.droppedForGroup.has(`${group}|${key}`)) continue;
        const why = this.owedBecause(publication, members);
        if (why === null) continue;
        this.fail('shared-lost', `group ${group} never got acknowledged QoS ${publication.qos} ${key} on ${publication.topic}: ${why}`);
        return;
      }
    }
  }

  /** Why the group was owed the publication (a readable account), or null when it was not. */
  private owedBecause(publication: Publication, members: Member[]): string | null {
    const send = publication.qos === 2 ? publication.sends[0]! : publication.sends.at(-1)!;
    const startMs = send.atMs;
    const endMs = publication.ackedMs!;
    const node = send.node;
    // A will goes out when its connection is taken over (its "acknowledgement"); a crash of its
    // node before the will's hand-off is durable fires it again at recovery, when the node's view
    // of the bucket starts empty (seed 982254): nothing is owed then.
    if (publication.will && this.crashesMs[node]!.some((atMs) => atMs >= startMs)) return null;
    // No member left, or was still leaving, once the window began.
    for (const member of members) {
      for (const interval of member.intervals) {
        if (interval.unsubscribeSentMs !== null && (interval.unsubackMs === null || interval.unsubackMs >= startMs)) return null;
      }
    }
    const stableHomes = new Set<number>();
    for (const member of members) if (this.stableSince(member, startMs)) stableHomes.add(member.home);
    // A member on the publishing node that may have been in its trie during the window is stable.
    for (const member of members) {
      if (member.home !== node) continue;
      const current = member.intervals.at(-1);
      const gone = current === undefined || (current.unsubackMs !== null && current.unsubackMs < startMs);
      if (!gone && current.subscribeSentMs <= endMs && !this.stableSince(member, startMs)) return null;
    }
    const views = this.viewsDuring(node, startMs, endMs, members[0]!.group);
    for (const view of views) {
      for (const other of view) if (!stableHomes.has(other)) return null;
      if (view.size === 0 && !stableHomes.has(node)) return null;
    }
    return `sent through n${node} at ${startMs}, acknowledged at ${endMs}; n${node} saw members on ${[...views[0]!].map((other) => `n${other}`).join(', ') || 'no other node'}, stable members live on ${[...stableHomes].map((home) => `n${home}`).join(', ')}`;
  }

  /** Subscribed (SUBACK) before `atMs` and never leaving after. */
  private stableSince(member: Member, atMs: number): boolean {
    const current = member.intervals.at(-1);
    return current !== undefined && current.unsubscribeSentMs === null && current.subackMs !== null && current.subackMs < atMs;
  }

  /** Every state of `node`'s view of other nodes' members of `group` from `startMs` to `endMs`. */
  private viewsDuring(node: number, startMs: number, endMs: number, group: string): Set<number>[] {
    const view = new Set<number>();
    const states: Set<number>[] = [];
    for (const event of this.viewEvents[node]!) {
      if (event.atMs > endMs) break;
      if (event.atMs >= startMs && states.length === 0) states.push(new Set(view));
      if (event.kind === 'reset') view.clear();
      else if (event.group !== group) continue;
      else if (event.kind === 'put') view.add(event.node);
      else view.delete(event.node);
      if (event.atMs >= startMs) states.push(new Set(view));
    }
    if (states.length === 0) states.push(view);
    return states;
  }
}
