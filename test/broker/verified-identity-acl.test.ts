/**
 * Proves the core's side of mutual TLS with identityAsUsername under topic authorization: a user
 * name the transport verified (ConnectionPeer.verifiedUsername) is the identity every ACL decision
 * is made for, whatever user name the CONNECT claims. The rules grant device-7 its own subtree
 * (with a deny inside it), device-8 everything under devices/ but device-7's subtree, and, by a
 * `%u` pattern, an inbox per user; the tests show SUBSCRIBE,
 * PUBLISH and delivery follow the verified name (a forged CONNECT user name gains nothing), `%u`
 * is substituted with it, a will on a topic it may not write refuses the CONNECT, and the session
 * belongs to it: a connection verified as another device cannot take the session over, while a
 * reconnect with the same certificate resumes it, its owner kept across a restart (durable state).
 */
import { describe, expect, it } from 'vitest';
import { type AclRule, type AclRules, RuleAuthorizer } from '../../src/broker/authorizer.js';
import { Broker } from '../../src/broker/broker.js';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
import type { ListenerInfo } from '../../src/contract.js';
import { decodeText, Harness, will } from './harness.js';

function rule(access: AclRule['access'], filter: string): AclRule {
  return { access, filter, line: 0 };
}

const rules: AclRules = {
  users: new Map([
    ['device-7', [rule('readwrite', 'devices/device-7/#'), rule('deny', 'devices/device-7/firmware')]],
    ['device-8', [rule('readwrite', 'devices/#'), rule('deny', 'devices/device-7/#')]],
  ]),
  anonymous: [],
  patterns: [rule('readwrite', 'inbox/%u/#')],
};

const mutualTls: ListenerInfo = { name: 'mqtts:0.0.0.0:8883', connectionsMax: null };

/** A broker with the rules, whose next connections come verified as `username`. */
function harnessVerifiedAs(username: string): Harness {
  const harness = new Harness();
  const authorizer = new RuleAuthorizer(rules);
  harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authorizer });
  harness.collect();
  harness.listener = mutualTls;
  harness.verifiedUsername = username;
  return harness;
}

describe('a verified identity under an ACL', () => {
  it('decides SUBSCRIBE, PUBLISH and delivery, whatever user name the CONNECT claims', () => {
    const harness = harnessVerifiedAs('device-7');
    const device = harness.open(5);
    expect(device.connect('sensor', { username: 'device-8' }).reasonCode).toBe(0);
    const suback = device.subscribe(['devices/device-7/#', 'devices/device-8/#', 'devices/device-7/firmware', 'inbox/device-7/#', 'inbox/device-8/#']);
    expect(suback.reasonCodes).toEqual([2, 0x87, 0x87, 2, 0x87]);
    harness.verifiedUsername = 'device-8';
    const other = harness.open(5);
    expect(other.connect('other').reasonCode).toBe(0);
    expect(other.subscribe(['devices/#']).reasonCodes).toEqual([2]);
    // device-7 may not write into device-8's subtree: refused and not routed.
    const refused = device.publish('devices/device-8/cmd', 'spoofed', 1);
    expect(refused.map((packet) => (packet as { reasonCode?: number }).reasonCode)).toEqual([0x87]);
    // What device-7 may write and read comes back to it (the deliveries arrive with each PUBACK).
    const answers = [
      ...device.publish('devices/device-7/temperature', '21.5', 1),
      ...device.publish('inbox/device-7/note', 'to myself', 1),
      ...device.publish('devices/device-7/firmware', 'not mine', 1),
    ];
    const own = answers.filter((packet): packet is PublishPacket => packet.type === PacketType.Publish).map((packet) => `${packet.topic} ${decodeText(packet.payload)}`);
    expect(own).toEqual(['devices/device-7/temperature 21.5', 'inbox/device-7/note to myself']);
    // device-8 may read devices/# but not device-7's subtree: those messages are withheld from it.
    expect(other.publishes()).toEqual([]);
    // ...while its own messages reach it through the same filter.
    const delivered = other.publish('devices/device-8/cmd', 'reboot', 1).filter((packet) => packet.type === PacketType.Publish);
    expect(delivered.map((packet) => (packet as PublishPacket).topic)).toEqual(['devices/device-8/cmd']);
    expect(device.publishes()).toEqual([]);
  });

  it('refuses a will on a topic the verified identity may not write', () => {
    const harness = harnessVerifiedAs('device-7');
    expect(harness.open(5).connect('sensor', { will: will('devices/device-8/status', 'gone') }).reasonCode).toBe(0x87);
    expect(harness.open(4).connect('sensor', { will: will('devices/device-8/status', 'gone') }).reasonCode).toBe(5);
    expect(harness.open(5).connect('sensor', { will: will('devices/device-7/status', 'gone') }).reasonCode).toBe(0);
  });

  it('owns the session: another verified device cannot take it over, the same one resumes it after a restart', () => {
    const harness = harnessVerifiedAs('device-7');
    const persistent = { cleanStart: false, properties: { sessionExpiryInterval: 3600 } };
    const first = harness.open(5);
    expect(first.connect('sensor', persistent).reasonCode).toBe(0);
    first.subscribe(['devices/device-7/#']);
    first.disconnect();
    harness.verifiedUsername = 'device-8';
    expect(harness.open(5).connect('sensor', persistent).reasonCode).toBe(0x87);
    harness.restart();
    harness.broker = new Broker({ config: harness.config, nowMs: harness.nowMs, store: harness.store, authorizer: new RuleAuthorizer(rules) });
    harness.collect();
    harness.verifiedUsername = 'device-7';
    const again = harness.open(5);
    const connack = again.connect('sensor', persistent);
    expect(connack.reasonCode).toBe(0);
    expect(connack.sessionPresent).toBe(true);
    expect(harness.broker.state.sessions.get('sensor')?.username).toBe('device-7');
  });
});
