/**
 * Proves the cluster checker's delivery count per session (sim/cluster/cluster-checker.ts): a QoS
 * 2 message handed twice to one subscriber within one session is `qos2-duplicate`, in the session
 * it had and in a fresh one alike; once in a session the client was told it lost and once more in
 * the fresh session that subscribed again is no duplicate (seed 2500413: a node behind on the
 * hand-off stream routes an older message to a new subscriber); and what the fresh session is
 * owed is still judged (`acknowledged-lost`). Driven directly, with payloads as the model clients
 * send them and a clock set by hand.
 */
import { describe, expect, it } from 'vitest';
import { messagePayload } from '../../sim/clients/payload.js';
import { ClusterChecker } from '../../sim/cluster/cluster-checker.js';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';

const subscriber = 200;
const publisher = 3;
const topic = 't/a';

function world() {
  const clock = { nowMs: 0 };
  const failures: string[] = [];
  const checker = new ClusterChecker(clock, (rule, detail) => failures.push(`${rule}: ${detail}`));
  const subscribe = (atMs: number) => {
    clock.nowMs = atMs;
    checker.subscribeSent(subscriber, topic);
    checker.subackReceived(subscriber, topic, true);
  };
  const publish = (sequence: number, atMs: number) => {
    clock.nowMs = atMs;
    checker.publishSent(publisher, sequence, topic, 2, false, 0);
    checker.publishAcked(publisher, sequence);
  };
  const deliver = (sequence: number, packetId: number) => {
    const packet: PublishPacket = { type: PacketType.Publish, topic, qos: 2, retain: false, dup: false, packetId, payload: messagePayload(publisher, sequence, 2, topic) };
    checker.publishReceived(subscriber, packet);
  };
  return { checker, failures, subscribe, publish, deliver };
}

describe('cluster checker: QoS 2 once per session', () => {
  it('fails a QoS 2 message handed to the application twice in one session', () => {
    const { failures, subscribe, publish, deliver } = world();
    subscribe(10);
    publish(1, 20);
    deliver(1, 1);
    expect(failures).toEqual([]);
    deliver(1, 2);
    expect(failures).toEqual([`qos2-duplicate: c${subscriber}: QoS 2 ${publisher}|1 handed to the application 2 times`]);
  });

  it('counts a lost session and the fresh one apart, and still fails twice in the fresh one', () => {
    const { checker, failures, subscribe, publish, deliver } = world();
    subscribe(10);
    publish(1, 20);
    deliver(1, 1);
    checker.sessionLost(subscriber);
    subscribe(30);
    deliver(1, 1);
    expect(failures).toEqual([]);
    deliver(1, 2);
    expect(failures).toEqual([`qos2-duplicate: c${subscriber}: QoS 2 ${publisher}|1 handed to the application 2 times`]);
  });

  it('still owes the fresh session what was published after its SUBACK', () => {
    const { checker, failures, subscribe, publish, deliver } = world();
    subscribe(10);
    publish(1, 20);
    deliver(1, 1);
    checker.sessionLost(subscriber);
    subscribe(30);
    publish(2, 40);
    checker.checkLiveness();
    expect(failures).toEqual([`acknowledged-lost: c${subscriber}: acknowledged QoS 2 ${publisher}|2 on ${topic} (sent at 40) never arrived`]);
    failures.length = 0;
    deliver(2, 2);
    checker.checkLiveness();
    expect(failures).toEqual([]);
  });
});
