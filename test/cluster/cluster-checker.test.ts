/**
 * Proves the cluster checker's delivery count per session (sim/cluster/cluster-checker.ts): a QoS
 * 2 message handed twice to one subscriber within one session is `qos2-duplicate`, in the session
 * it had and in a fresh one alike; once in a session the client was told it lost and once more in
 * the fresh session that subscribed again is no duplicate (seed 2500413: a node behind on the
 * hand-off stream routes an older message to a new subscriber); and what the fresh session is
 * owed is still judged (`acknowledged-lost`). A message the broker reported dropping for a
 * subscriber's session (`message-dropped`, by payload checksum and topic: a full session queue,
 * seed 8200047) is excused for that subscriber alone, and a report naming no publication excuses
 * nothing. Driven directly, with payloads as the model clients send them and a clock set by hand.
 */
import { describe, expect, it } from 'vitest';
import { messagePayload } from '../../sim/clients/payload.js';
import { ClusterChecker } from '../../sim/cluster/cluster-checker.js';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import { crc32c } from '../../src/store/crc32c.js';

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
  return { checker, clock, failures, subscribe, publish, deliver };
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

describe('cluster checker: drops the broker reported', () => {
  const other = 201;
  const dropWorld = () => {
    const bed = world();
    bed.subscribe(10);
    bed.checker.subscribeSent(other, topic);
    bed.checker.subackReceived(other, topic, true);
    for (const sequence of [1, 2]) {
      bed.publish(sequence, 20 + sequence);
      bed.checker.payloadSent(publisher, sequence, topic, messagePayload(publisher, sequence, 2, topic));
    }
    return bed;
  };

  it('excuses exactly the message reported dropped for that subscriber (seed 8200047: a full session queue)', () => {
    const { checker, failures } = dropWorld();
    checker.checkLiveness();
    expect(failures).toEqual([`acknowledged-lost: c${subscriber}: acknowledged QoS 2 ${publisher}|1 on ${topic} (sent at 21) never arrived`]);
    failures.length = 0;
    checker.brokerDropped(subscriber, topic, crc32c(messagePayload(publisher, 1, 2, topic)));
    expect(checker.dropsExcused).toBe(1);
    // Excused for the subscriber it was dropped for, still owed to the other one.
    checker.checkLiveness();
    expect(failures).toEqual([`acknowledged-lost: c${other}: acknowledged QoS 2 ${publisher}|1 on ${topic} (sent at 21) never arrived`]);
    failures.length = 0;
    // The other one's report excuses its copy of 3|1, not the first subscriber's 3|2.
    checker.brokerDropped(other, topic, crc32c(messagePayload(publisher, 1, 2, topic)));
    checker.checkLiveness();
    expect(failures).toEqual([`acknowledged-lost: c${subscriber}: acknowledged QoS 2 ${publisher}|2 on ${topic} (sent at 22) never arrived`]);
  });

  it('owes the message all the same when the report names no publication of the run', () => {
    const { checker, failures } = dropWorld();
    checker.brokerDropped(subscriber, 't/b', crc32c(messagePayload(publisher, 1, 2, topic)));
    checker.brokerDropped(subscriber, topic, crc32c(messagePayload(publisher, 9, 2, topic)));
    expect(checker.dropsUnattributed).toBe(2);
    checker.checkLiveness();
    expect(failures).toEqual([`acknowledged-lost: c${subscriber}: acknowledged QoS 2 ${publisher}|1 on ${topic} (sent at 21) never arrived`]);
  });
});
