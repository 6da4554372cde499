/**
 * Proves that a will's topic gets the checks a PUBLISH topic gets, at CONNECT, before anything is
 * stored (issue: an empty will topic crashed the broker when the will fired, and because the will
 * was already in the log, on every restart too). For each invalid topic, in both protocol
 * versions and with and without an authorizer (the authorizer asserted on the empty topic at once):
 * MQTT 5.0 gets CONNACK 0x90 and a close, 3.1.1 a close without CONNACK; no session, no will and
 * no record exist afterwards, and a restart from the store comes up clean.
 */
import { describe, expect, it } from 'vitest';
import type { Authorizer } from '../../src/broker/authorizer.js';
import { Broker } from '../../src/broker/broker.js';
import { PacketType } from '../../src/codec/packets.js';
import { Harness, will } from './harness.js';

const invalidWillTopics: [string, string][] = [
  ['empty', ''],
  ['multi-level wildcard', '#'],
  ['single-level wildcard', '+'],
  ['wildcard inside a level', 'a+b'],
  ['trailing wildcard', 'house/#'],
  ['longer than topicBytesMax', 'x'.repeat(33)],
  ['more levels than topicLevelsMax', 'a/b/c/d/e'],
];

const allowEverything: Authorizer = { canSubscribe: () => true, canPublish: () => true, canReceive: () => true };

function harnessFor(withAuthorizer: boolean): Harness {
  const harness = new Harness({ topicBytesMax: 32, topicLevelsMax: 4 });
  if (withAuthorizer) {
    harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authorizer: allowEverything });
    harness.collect();
  }
  return harness;
}

for (const withAuthorizer of [false, true]) {
  for (const version of [4, 5] as const) {
    describe(`an invalid will topic, version ${version}${withAuthorizer ? ', with an authorizer' : ''}`, () => {
      for (const [name, topic] of invalidWillTopics) {
        it(`refuses a will topic that is ${name} before storing anything`, () => {
          const harness = harnessFor(withAuthorizer);
          const watcher = harness.connect('watcher', 5, { cleanStart: true });
          watcher.subscribe(['#']);
          const client = harness.open(version);
          client.send({
            type: PacketType.Connect,
            protocolName: 'MQTT',
            protocolVersion: version,
            cleanStart: false,
            keepAliveSeconds: 1,
            clientId: 'victim',
            will: will(topic, 'bye', { qos: 1 }),
            ...(version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}),
          });
          const packets = client.take();
          if (version === 5) expect(packets).toEqual([expect.objectContaining({ type: PacketType.Connack, reasonCode: 0x90 })]);
          else expect(packets).toEqual([]);
          expect(client.closed).toBe(true);
          expect(harness.broker.state.sessions.has('victim')).toBe(false);
          expect(harness.broker.state.wills.size).toBe(0);
          expect(harness.store.records().some((record) => 'clientId' in record && record.clientId === 'victim')).toBe(false);
          harness.advance(10_000);
          expect(watcher.publishes()).toEqual([]);
          harness.restart();
          expect(harness.broker.ready).toBe(true);
          expect(harness.broker.haltReason).toBeNull();
        });
      }
    });
  }
}

describe('the will topic of the attack', () => {
  it('closes the 3.1.1 CONNECT from the report (will flag, empty will topic) without a crash or a stored will', () => {
    const harness = new Harness();
    const client = harness.open(4);
    client.sendBytes(Buffer.from('101900044d5154540406001e000676696374696d00000003627965', 'hex'));
    expect(client.take()).toEqual([]);
    expect(client.closed).toBe(true);
    expect(harness.broker.state.wills.size).toBe(0);
    expect(harness.broker.stats.protocolViolations).toBe(1);
  });

  it('still accepts a valid will topic next to the refused ones', () => {
    const harness = harnessFor(true);
    const client = harness.open(5);
    expect(client.connect('fine', { will: will('a/b/c', 'bye') }).reasonCode).toBe(0);
  });
});

describe('a will the server cannot honour', () => {
  it('5.0: a will QoS above maximumQos gets CONNACK 0x9B, a retained will without retain 0x9A', () => {
    const harness = new Harness({ maximumQos: 1, retainAvailable: false });
    expect(harness.open(5).connect('q', { will: will('w/q', 'x', { qos: 2 }) }).reasonCode).toBe(0x9b);
    expect(harness.open(5).connect('r', { will: will('w/r', 'x', { retain: true }) }).reasonCode).toBe(0x9a);
    expect(harness.open(5).connect('ok', { will: will('w/ok', 'x', { qos: 1 }) }).reasonCode).toBe(0);
    expect(harness.broker.state.wills.has('q')).toBe(false);
  });

  it('3.1.1: closes the connection without a CONNACK', () => {
    const harness = new Harness({ maximumQos: 0 });
    const client = harness.open(4);
    client.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 4, cleanStart: true, keepAliveSeconds: 0, clientId: 'q', will: will('w/q', 'x', { qos: 1 }) });
    expect(client.take()).toEqual([]);
    expect(client.closed).toBe(true);
  });
});
