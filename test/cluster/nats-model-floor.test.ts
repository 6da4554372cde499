/**
 * Proves the simulated NATS answers a node's `consume` with its consumer's ack floor as JetStream
 * keeps it (sim/cluster/nats-model.ts): the highest sequence with every one up to it
 * acknowledged, an acknowledgement covering every sequence up to it (ack policy all); the answer
 * reaches the node before any delivery of that consume; and it is the floor of the moment, after a
 * reconnection too. The model runs on its own event queue, with one node's sink recording what it
 * hears and acknowledging what the test lets it.
 */
import { describe, expect, it } from 'vitest';
import { NatsModel, type NatsNodeSink } from '../../sim/cluster/nats-model.js';
import { EventQueue } from '../../sim/event-queue.js';
import { Random } from '../../sim/random.js';

const filterSubject = '$KEEL.handoff.>';

/** Runs the queue's events up to `untilMs`, the clock following them. */
function runUntil(queue: EventQueue, clock: { nowMs: number }, untilMs: number): void {
  for (let next = queue.peekTimeMs(); next !== null && next <= untilMs; next = queue.peekTimeMs()) {
    clock.nowMs = next;
    queue.popRun()();
  }
  clock.nowMs = untilMs;
}

describe('the simulated NATS ack floor', () => {
  it('answers a consume with the highest sequence acknowledged with all below it, before its deliveries', () => {
    const queue = new EventQueue();
    const clock = { nowMs: 0 };
    const model = new NatsModel(queue, clock, Random.stream(1, 'nats'), 1, () => {});
    const heard: string[] = [];
    let nextRequestId = 1;
    let consumeRequestId = 0;
    // The node acknowledges in stream order, as the core does: here up to `acknowledgedUpTo`.
    let acknowledgedUpTo = 3;
    const sink: NatsNodeSink = {
      status: (status) => {
        heard.push(status);
        if (status !== 'connected') return;
        consumeRequestId = nextRequestId++;
        model.request(0, { op: 'consume', requestId: consumeRequestId, consumerId: 1, filterSubject });
      },
      message: (message) => {
        heard.push(`delivery ${message.streamSequence}`);
        if (message.streamSequence! <= acknowledgedUpTo) model.request(0, { op: 'ack', consumerId: 1, streamSequence: message.streamSequence! });
      },
      completed: (result) => {
        if (result.requestId === consumeRequestId) heard.push(`floor ${result.ok ? result.sequence : result.code}`);
      },
      keyChanged: () => {},
      watchCurrent: () => {},
    };
    model.nodeStarted(0, sink);
    runUntil(queue, clock, 1_000);
    expect(heard).toEqual(['connected', 'floor 0']);
    for (let index = 1; index <= 6; index++) {
      model.request(0, { op: 'publish-durable', requestId: nextRequestId++, subject: '$KEEL.handoff.a', headers: {}, payload: new Uint8Array(1), dedupeId: `d${index}` });
    }
    runUntil(queue, clock, 1_500);
    expect(heard.filter((line) => line.startsWith('delivery'))).toEqual([1, 2, 3, 4, 5, 6].map((sequence) => `delivery ${sequence}`));
    // 4 to 6 are pending: the floor stays at 3.
    expect(model.consumerAckFloor(0)).toBe(3);
    heard.length = 0;
    model.partition(0, 500);
    runUntil(queue, clock, 3_000);
    const reconnected = heard.indexOf('connected');
    expect(reconnected).toBeGreaterThan(0);
    expect(heard.slice(reconnected, reconnected + 2)).toEqual(['connected', 'floor 3']);
    // 4 to 6 come again after their ack wait; acknowledged now, the floor is 6.
    acknowledgedUpTo = 6;
    runUntil(queue, clock, 6_000);
    expect(heard).toContain('delivery 4');
    expect(model.consumerAckFloor(0)).toBe(6);
    heard.length = 0;
    model.partition(0, 500);
    runUntil(queue, clock, 7_500);
    expect(heard.filter((line) => line.startsWith('floor'))).toEqual(['floor 6']);
    expect(heard.filter((line) => line.startsWith('delivery'))).toEqual([]);
    // An acknowledgement covers every sequence up to it: 9 alone takes 7 and 8 along.
    for (let index = 7; index <= 9; index++) {
      model.request(0, { op: 'publish-durable', requestId: nextRequestId++, subject: '$KEEL.handoff.a', headers: {}, payload: new Uint8Array(1), dedupeId: `d${index}` });
    }
    runUntil(queue, clock, 8_000);
    expect(model.consumerAckFloor(0)).toBe(6);
    model.request(0, { op: 'ack', consumerId: 1, streamSequence: 9 });
    runUntil(queue, clock, 8_500);
    expect(model.consumerAckFloor(0)).toBe(9);
  });
});
