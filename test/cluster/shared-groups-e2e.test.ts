/**
 * `$share` groups across a Keel cluster, end to end (issue 16): two `keel serve --cluster` child
 * processes on one `nats-server -js` (nats-fixture.ts), one member of `$share/g/t/#` on each node,
 * and a publisher on each node. 200 QoS 1 messages, published alternately through either node,
 * each reach exactly one of the two members (none lost, none twice: the run has no fault), and
 * both members get some, as the publishing node chooses one node per message round robin.
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, test } from 'vitest';
import type { KeelProcess } from '../integration/helpers.js';
import { waitUntil } from '../integration/helpers.js';
import { type ClusterNode, useClusterTestBed } from './cluster-test-bed.js';
import { startNats } from './nats-fixture.js';

const bed = useClusterTestBed('keel-shared-e2e-');
const { startNode } = bed;

async function client(node: ClusterNode, clientId: string): Promise<MqttClient> {
  return (await bed.connect(node, clientId, { connectTimeout: 5_000 })).client;
}

/** True once `node` logged that `other` has members of group `g/t/#` (its view of the bucket). */
function sees(node: KeelProcess, other: string): boolean {
  return node
    .stdout()
    .split('\n')
    .some((line) => line.includes('"event":"cluster-shared-view"') && line.includes(`"node":"${other}"`) && line.includes('"members":"some"'));
}

describe('shared groups across a keel cluster on nats-server -js', () => {
  test('200 QoS 1 messages published on either node reach exactly one member each, and both members get some', async () => {
    const nats = await startNats();
    const [a, b] = [await startNode(nats, 'sa'), await startNode(nats, 'sb')];
    const memberA = await client(a, 'member-a');
    const memberB = await client(b, 'member-b');
    const received: { member: string; text: string }[] = [];
    memberA.on('message', (_topic, payload) => received.push({ member: 'a', text: payload.toString('utf8') }));
    memberB.on('message', (_topic, payload) => received.push({ member: 'b', text: payload.toString('utf8') }));
    await memberA.subscribeAsync('$share/g/t/#', { qos: 1 });
    await memberB.subscribeAsync('$share/g/t/#', { qos: 1 });
    // Each node chooses among the nodes it knows to have members: wait until each knows the other.
    await waitUntil(() => sees(a, 'sb') && sees(b, 'sa'), 15_000, 'each node sees the other one as a member of g');
    const publishers = [await client(a, 'publisher-a'), await client(b, 'publisher-b')];
    const texts = Array.from({ length: 200 }, (_, index) => `m${index}`);
    for (let index = 0; index < texts.length; index++) await publishers[index % 2]!.publishAsync(`t/${index % 5}`, texts[index]!, { qos: 1 });
    await waitUntil(() => received.length >= texts.length, 20_000, `${texts.length} messages across the two members`);
    // Time for a duplicate to show up, had there been one.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(received.map((message) => message.text).sort()).toEqual([...texts].sort());
    const onA = received.filter((message) => message.member === 'a').length;
    expect(onA).toBeGreaterThan(0);
    expect(received.length - onA).toBeGreaterThan(0);
    await nats.stop();
  }, 120_000);

  test('a member node killed with SIGKILL is passed over once silent: QoS 1 messages published then all reach the member on the live node', async () => {
    const nats = await startNats();
    const [a, b, c] = [await startNode(nats, 'la'), await startNode(nats, 'lb'), await startNode(nats, 'lc')];
    const memberB = await client(b, 'member-b');
    const memberC = await client(c, 'member-c');
    const received: string[] = [];
    memberB.on('message', (_topic, payload) => received.push(payload.toString('utf8')));
    await memberB.subscribeAsync('$share/g/t/#', { qos: 1 });
    await memberC.subscribeAsync('$share/g/t/#', { qos: 1 });
    await waitUntil(() => sees(a, 'lb') && sees(a, 'lc'), 15_000, 'node la sees lb and lc as members of g');
    const publisher = await client(a, 'publisher-a');
    c.child.kill('SIGKILL');
    // Past the silence after which a node is passed over (aliveSilenceMs, 3.5 s), with a margin.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const texts = Array.from({ length: 40 }, (_, index) => `m${index}`);
    for (const text of texts) await publisher.publishAsync('t/x', text, { qos: 1 });
    // lc still has a member in keel-shared (its key stays while its session lives): without the
    // heartbeats about half of these would wait in the stream for lc's return.
    await waitUntil(() => received.length >= texts.length, 15_000, `${texts.length} messages at the member on lb`);
    expect([...received].sort()).toEqual([...texts].sort());
    const adminPort = /"event":"admin-listening".*"port":(\d+)/.exec(a.stdout())?.[1];
    expect(adminPort).toBeDefined();
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    expect(metrics).toMatch(/keel_cluster_shared_events_total\{event="silent_passed_over"\} [1-9]/);
    await nats.stop();
  }, 120_000);
});
