/**
 * Proves the clustered core's half of `$share` groups across nodes (src/cluster/shared-groups.ts)
 * with a test playing NATS by hand: the bucket key and header formats round-trip; a node puts its
 * membership of a group into `keel-shared` with its first member and deletes it with its last; a
 * message published on a node whose view holds another node with members of the group is given
 * to one node per message, round robin, in the `Keel-Share` header, and the local member gets only
 * the ones chosen for this node; a message from another node is delivered to the local member
 * only when its header names this node, and a choice for a group with no member here any more is
 * counted, not delivered; a key of this node's that it no longer stands behind is deleted.
 */
import { describe, expect, it } from 'vitest';
import { aliveIntervalMs, aliveSilenceMs, aliveSubjectPrefix } from '../../src/cluster/cluster-node.js';
import { decodeBatch, handoffBatchSubject } from '../../src/cluster/handoff-batch.js';
import { encodeHeaders } from '../../src/cluster/headers.js';
import { decodeShareChoices, encodeShareChoices, headerShare, parseSharedKey, sharedBucket, sharedKey } from '../../src/cluster/shared-groups.js';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import type { ClusterRequest } from '../../src/contract.js';
import { decodeText, Harness, text } from '../broker/harness.js';

const node = (nodeId = 'a'): Harness => Harness.clusterNode(nodeId);
const take = (harness: Harness): ClusterRequest[] => harness.takeClusterRequests();
const connected = (harness: Harness): void => harness.clusterConnected();

function keyChanged(harness: Harness, key: string, present: boolean, revision: number): void {
  harness.broker.clusterKeyChanged(harness.nowMs, { bucket: sharedBucket, key, value: present ? text('{}') : null, revision });
  harness.collect();
}

function handoff(harness: Harness, sequence: number, payload: string, share: string | null): void {
  const headers: Record<string, string> = encodeHeaders('b', 1, false, null, undefined, null);
  if (share !== null) headers[headerShare] = share;
  harness.broker.clusterMessage(harness.nowMs, { subject: '$KEEL.handoff.t.x', headers, payload: text(payload), subscriptionId: null, consumerId: 1, streamSequence: sequence, redelivered: false });
  harness.collect();
}

/**
 * Plays JetStream for this node's durable publishes until none is left: stores each one and
 * returns the headers of every hand-off in them in order (a batch's one by one).
 */
function storeHandoffs(harness: Harness): Record<string, string>[] {
  const headers: Record<string, string>[] = [];
  for (let sequence = 1; sequence < 100; sequence++) {
    const durable = take(harness).filter((request) => request.op === 'publish-durable') as Extract<ClusterRequest, { op: 'publish-durable' }>[];
    if (durable.length === 0) return headers;
    for (const request of durable) {
      if (request.subject === handoffBatchSubject) headers.push(...decodeBatch(request.payload)!.map((entry) => ({ ...entry.headers })));
      else headers.push(request.headers);
      harness.broker.clusterCompleted(harness.nowMs, { requestId: request.requestId, ok: true, sequence });
      harness.collect();
    }
  }
  return headers;
}

function payloads(packets: unknown[]): string[] {
  return (packets as PublishPacket[]).filter((packet) => packet.type === PacketType.Publish).map((packet) => decodeText(packet.payload));
}

describe('shared groups across a cluster', () => {
  it('round-trips bucket keys and share headers, and rejects what it never makes', () => {
    const key = sharedKey('g', 'a/+/#', 'n-1');
    expect(key).toMatch(/^[A-Za-z0-9_-]+\.n-1$/);
    expect(parseSharedKey(key)).toEqual({ name: 'g', filter: 'a/+/#', nodeId: 'n-1' });
    expect(parseSharedKey('nodot')).toBeNull();
    expect(parseSharedKey('!!.a')).toBeNull();
    const choices = new Map([
      ['g/a,b=c', 'n1'],
      ['h/é/#', 'n2'],
    ]);
    const header = encodeShareChoices(choices);
    expect(header).toMatch(/^[\x21-\x7e]+$/);
    expect(decodeShareChoices(header)).toEqual(choices);
    expect(decodeShareChoices('%zz=a,=b,g%2Fx=n1')).toEqual(new Map([['g/x', 'n1']]));
  });

  it('puts its membership into keel-shared with the first member and deletes it with the last', () => {
    const harness = node();
    connected(harness);
    const first = harness.connect('m1', 5);
    first.subscribe(['$share/g/t/#']);
    const key = sharedKey('g', 't/#', 'a');
    expect(take(harness).filter((request) => request.op === 'kv-set')).toMatchObject([{ op: 'kv-set', bucket: sharedBucket, key, expectedRevision: null }]);
    const second = harness.connect('m2', 5);
    second.subscribe(['$share/g/t/#']);
    expect(take(harness).filter((request) => request.op === 'kv-set')).toEqual([]);
    first.send({ type: PacketType.Unsubscribe, packetId: 5, topicFilters: ['$share/g/t/#'] });
    expect(take(harness).filter((request) => request.op === 'kv-set')).toEqual([]);
    second.send({ type: PacketType.Unsubscribe, packetId: 6, topicFilters: ['$share/g/t/#'] });
    const sets = take(harness).filter((request) => request.op === 'kv-set');
    expect(sets).toMatchObject([{ op: 'kv-set', bucket: sharedBucket, key, value: null }]);
  });

  it('gives each message published here to one node of the group, round robin, and delivers only its own share', () => {
    const harness = node();
    connected(harness);
    const member = harness.connect('m', 5);
    member.subscribe([{ topicFilter: '$share/g/t/#', qos: 1 }]);
    keyChanged(harness, sharedKey('g', 't/#', 'b'), true, 1);
    take(harness);
    member.take();
    const publisher = harness.connect('p', 5);
    for (let index = 0; index < 4; index++) publisher.publish('t/x', `m${index}`, 1, { packetId: index + 1 });
    expect(storeHandoffs(harness).map((headers) => headers[headerShare])).toEqual(['g%2Ft%2F%23=a', 'g%2Ft%2F%23=b', 'g%2Ft%2F%23=a', 'g%2Ft%2F%23=b']);
    expect(payloads(member.take())).toEqual(['m0', 'm2']);
  });

  it('chooses among the other nodes for a group with no member here', () => {
    const harness = node();
    connected(harness);
    keyChanged(harness, sharedKey('g', 't/x', 'b'), true, 1);
    keyChanged(harness, sharedKey('g', 't/x', 'c'), true, 2);
    const publisher = harness.connect('p', 5);
    publisher.publish('t/x', 'zero', 0);
    publisher.publish('t/x', 'zero', 0);
    keyChanged(harness, sharedKey('g', 't/x', 'c'), false, 3);
    publisher.publish('t/x', 'zero', 0);
    const core = take(harness).filter((request) => request.op === 'publish') as Extract<ClusterRequest, { op: 'publish' }>[];
    expect(core.map((request) => request.headers[headerShare])).toEqual(['g%2Ft%2Fx=b', 'g%2Ft%2Fx=c', 'g%2Ft%2Fx=b']);
  });

  it('publishes a heartbeat every second while connected, and passes over member nodes not heard from lately', () => {
    const harness = node();
    const link = (status: 'connected' | 'disconnected'): void => {
      harness.broker.clusterStatus(harness.nowMs, status);
      harness.collect();
    };
    const heartbeats = (): string[] =>
      take(harness)
        .filter((request) => request.op === 'publish' && request.subject.startsWith(aliveSubjectPrefix))
        .map((request) => (request as Extract<ClusterRequest, { op: 'publish' }>).subject);
    link('connected');
    const onConnect = take(harness);
    expect(onConnect).toContainEqual({ op: 'subscribe', subscriptionId: expect.any(Number), subject: '$KEEL.alive.*', queueGroup: null });
    expect(onConnect.filter((request) => request.op === 'publish').map((request) => (request as Extract<ClusterRequest, { op: 'publish' }>).subject)).toEqual(['$KEEL.alive.a']);
    keyChanged(harness, sharedKey('g', 't/x', 'b'), true, 1);
    keyChanged(harness, sharedKey('g', 't/x', 'c'), true, 2);
    const publisher = harness.connect('p', 5);
    const choices = (count: number): string[] => {
      for (let index = 0; index < count; index++) publisher.publish('t/x', 'zero', 0);
      return (take(harness).filter((request) => request.op === 'publish' && !request.subject.startsWith(aliveSubjectPrefix)) as Extract<ClusterRequest, { op: 'publish' }>[]).map(
        (request) => request.headers[headerShare]!,
      );
    };
    const alive = (nodeId: string): void => {
      harness.broker.clusterMessage(harness.nowMs, {
        subject: `${aliveSubjectPrefix}${nodeId}`,
        headers: {},
        payload: new Uint8Array(0),
        subscriptionId: 1,
        consumerId: null,
        streamSequence: null,
        redelivered: false,
      });
      harness.collect();
    };
    // Connected for less than the silence: nobody is passed over yet.
    expect(choices(2)).toEqual(['g%2Ft%2Fx=b', 'g%2Ft%2Fx=c']);
    for (let second = 0; second < 4; second++) {
      harness.advance(aliveIntervalMs);
      alive('b');
    }
    expect(heartbeats()).toEqual(['$KEEL.alive.a', '$KEEL.alive.a', '$KEEL.alive.a', '$KEEL.alive.a']);
    // c was never heard: every choice goes to b.
    expect(choices(3)).toEqual(['g%2Ft%2Fx=b', 'g%2Ft%2Fx=b', 'g%2Ft%2Fx=b']);
    expect(harness.broker.cluster!.shares.counters.silentPassedOver).toBeGreaterThan(0);
    alive('c');
    expect(new Set(choices(2))).toEqual(new Set(['g%2Ft%2Fx=b', 'g%2Ft%2Fx=c']));
    // Both silent past aliveSilenceMs: the round robin goes on over both.
    harness.advance(aliveSilenceMs);
    expect(new Set(choices(2))).toEqual(new Set(['g%2Ft%2Fx=b', 'g%2Ft%2Fx=c']));
    // Cut off from NATS: no heartbeat, and no way to tell; back on the link, one at once.
    link('disconnected');
    harness.advance(3 * aliveIntervalMs);
    expect(heartbeats()).toEqual([]);
    link('connected');
    expect(heartbeats()).toEqual(['$KEEL.alive.a']);
    expect(new Set(choices(2))).toEqual(new Set(['g%2Ft%2Fx=b', 'g%2Ft%2Fx=c']));
    harness.advance(aliveIntervalMs / 2);
    expect(heartbeats()).toEqual([]);
    harness.advance(aliveIntervalMs / 2);
    expect(heartbeats()).toEqual(['$KEEL.alive.a']);
  });

  it('delivers a message from another node only for the groups that name this node', () => {
    const harness = node();
    connected(harness);
    const member = harness.connect('m', 5);
    member.subscribe([{ topicFilter: '$share/g/t/#', qos: 1 }]);
    member.take();
    handoff(harness, 1, 'mine', 'g%2Ft%2F%23=a');
    handoff(harness, 2, 'theirs', 'g%2Ft%2F%23=b');
    handoff(harness, 3, 'unknown', null);
    handoff(harness, 4, 'other-group', 'h%2Ft%2F%23=a');
    expect(payloads(member.take())).toEqual(['mine']);
    expect(harness.broker.cluster!.shares.counters.staleChoices).toBe(1);
    expect(take(harness).filter((request) => request.op === 'ack')).toHaveLength(4);
  });

  it('deletes a key of its own that it no longer stands behind', () => {
    const harness = node();
    connected(harness);
    const stale = sharedKey('g', 't/#', 'a');
    keyChanged(harness, stale, true, 4);
    expect(take(harness)).toMatchObject([{ op: 'kv-set', bucket: sharedBucket, key: stale, value: null }]);
    keyChanged(harness, sharedKey('g', 't/#', 'b'), true, 5);
    expect(take(harness)).toEqual([]);
  });
});
