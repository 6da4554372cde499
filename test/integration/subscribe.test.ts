/**
 * Subscriptions over real TCP in MQTT 3.1.1 and 5.0: granted QoS and per-filter failure codes in
 * SUBACK ([MQTT-3.8.4-5], [MQTT-3.9.3-1]; the limits' outcomes are those documented in
 * src/config.ts), UNSUBSCRIBE stopping delivery ([MQTT-3.10.4-1], 5.0 UNSUBACK 0x11), overlapping
 * subscriptions delivering at the highest matching QoS ([MQTT-3.3.5-1]), 5.0 subscription options
 * (No Local [MQTT-3.8.3-3], Retain As Published [MQTT-3.3.1-12/13], Retain Handling
 * [MQTT-3.3.1-9..11]), subscription identifiers ([MQTT-3.3.4-3..5]) and shared subscriptions
 * (each message to exactly one member, 4.8.2). Ordering is checked with marker messages rather
 * than sleeps wherever a test must prove that something did not arrive.
 */

import type { IPublishPacket } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { Clients, Inbox, startBroker, subscribeCodes, versions } from './helpers.js';

let server: RunningServer;
let limited: RunningServer;
const clients = new Clients(() => server.port);
const limitedClients = new Clients(() => limited.port);

beforeAll(async () => {
  server = await startBroker();
  limited = await startBroker({ subscriptionsPerSessionMax: 2, maximumQos: 1 });
});
afterEach(async () => {
  await clients.endAll();
  await limitedClients.endAll();
});
afterAll(async () => {
  await server?.close();
  await limited?.close();
});

const text = (message: IPublishPacket): string => Buffer.from(message.payload).toString('utf8');

describe.each(versions)('MQTT protocol level %i: subscribing', (version) => {
  it('grants the requested QoS for each filter', async () => {
    const { client } = await clients.connect(version);
    expect(await subscribeCodes(client, ['grant/0', 'grant/1', 'grant/2'], { qos: 0 })).toEqual([0, 0, 0]);
    expect(await subscribeCodes(client, 'grant/+/x', { qos: 1 })).toEqual([1]);
    expect(await subscribeCodes(client, 'grant/#', { qos: 2 })).toEqual([2]);
  });

  it('grants at most the configured maximum QoS', async () => {
    const { client } = await limitedClients.connect(version);
    expect(await subscribeCodes(client, 'capped/qos', { qos: 2 })).toEqual([1]);
  });

  it('refuses only the filters past the per-session limit', async () => {
    const { client } = await limitedClients.connect(version);
    const codes = await subscribeCodes(client, ['limit/a', 'limit/b', 'limit/c'], { qos: 1 });
    expect(codes).toEqual([1, 1, version === 5 ? 0x97 : 0x80]);
    // Re-subscribing to an existing filter replaces it and is not a new subscription [MQTT-3.8.4-3].
    expect(await subscribeCodes(client, 'limit/a', { qos: 0 })).toEqual([0]);
  });

  it('stops delivering after UNSUBSCRIBE', async () => {
    const { client } = await clients.connect(version);
    const inbox = new Inbox(client);
    await client.subscribeAsync(['unsub/a', 'unsub/marker'], { qos: 1 });
    await client.publishAsync('unsub/a', 'before', { qos: 1 });
    await inbox.waitForPayload('before');
    const unsuback = (await client.unsubscribeAsync(['unsub/a', 'unsub/never'])) as { granted?: number[] } | undefined;
    if (version === 5) expect(unsuback?.granted).toEqual([0x00, 0x11]);
    await client.publishAsync('unsub/a', 'after', { qos: 1 });
    await client.publishAsync('unsub/marker', 'marker', { qos: 1 });
    await inbox.waitForPayload('marker');
    expect(inbox.payloads()).toEqual(['before', 'marker']);
  });

  it('delivers a message matching overlapping subscriptions at the highest granted QoS', async () => {
    const { client } = await clients.connect(version);
    const inbox = new Inbox(client);
    await client.subscribeAsync('overlap/+', { qos: 0 });
    await client.subscribeAsync('overlap/#', { qos: 1 });
    const { client: publisher } = await clients.connect(version);
    await publisher.publishAsync('overlap/x', 'both match', { qos: 2 });
    await publisher.publishAsync('overlap/marker/deep', 'marker', { qos: 1 });
    await inbox.waitForPayload('marker');
    const copies = inbox.messages.filter((message) => text(message) === 'both match');
    expect(copies.length).toBeGreaterThanOrEqual(1);
    expect(Math.max(...copies.map((message) => message.qos))).toBe(1);
  });

  it('matches wildcards and not what they exclude', async () => {
    const { client } = await clients.connect(version);
    const inbox = new Inbox(client);
    await client.subscribeAsync(['wild/+/leaf', 'wild/deep/#'], { qos: 1 });
    const { client: publisher } = await clients.connect(version);
    for (const topic of ['wild/a/leaf', 'wild/a/b/leaf', 'wild/deep', 'wild/deep/x/y', 'wild/leaf']) {
      await publisher.publishAsync(topic, topic, { qos: 1 });
    }
    await publisher.publishAsync('wild/marker/leaf', 'marker', { qos: 1 });
    await inbox.waitForPayload('marker');
    // "wild/deep/#" also matches the parent "wild/deep" [MQTT-4.7.1-2]; "+" is exactly one level.
    expect(inbox.payloads()).toEqual(['wild/a/leaf', 'wild/deep', 'wild/deep/x/y', 'marker']);
  });
});

describe('MQTT 5.0 subscription options', () => {
  it('No Local: a client does not receive its own publications', async () => {
    const { client } = await clients.connect(5);
    const inbox = new Inbox(client);
    await client.subscribeAsync('nolocal/t', { qos: 1, nl: true });
    await client.subscribeAsync('nolocal/marker', { qos: 1 });
    const { client: other } = await clients.connect(5);
    await client.publishAsync('nolocal/t', 'own', { qos: 1 });
    await other.publishAsync('nolocal/t', 'other', { qos: 1 });
    await client.publishAsync('nolocal/marker', 'marker', { qos: 1 });
    await inbox.waitForPayload('marker');
    expect(inbox.payloads()).toEqual(['other', 'marker']);
  });

  it('Retain As Published keeps the retain flag on live messages; otherwise it is cleared', async () => {
    const { client: keeps } = await clients.connect(5);
    const { client: clears } = await clients.connect(5);
    const keptInbox = new Inbox(keeps);
    const clearedInbox = new Inbox(clears);
    await keeps.subscribeAsync('rap/t', { qos: 1, rap: true });
    await clears.subscribeAsync('rap/t', { qos: 1, rap: false });
    const { client: publisher } = await clients.connect(5);
    await publisher.publishAsync('rap/t', 'live retained', { qos: 1, retain: true });
    const [kept] = await keptInbox.waitFor(1);
    const [cleared] = await clearedInbox.waitFor(1);
    expect(kept!.retain).toBe(true);
    expect(cleared!.retain).toBe(false);
    await publisher.publishAsync('rap/t', '', { qos: 1, retain: true });
  });

  it('Retain Handling 0, 1 and 2 decide when retained messages are sent', async () => {
    const { client: publisher } = await clients.connect(5);
    await publisher.publishAsync('rh/t', 'retained', { qos: 1, retain: true });
    const { client } = await clients.connect(5);
    const inbox = new Inbox(client);
    const countRetained = (): number => inbox.messages.filter((message) => message.retain && text(message) === 'retained').length;
    const mark = async (label: string): Promise<void> => {
      await client.subscribeAsync(`rh/marker/${label}`, { qos: 1 });
      await publisher.publishAsync(`rh/marker/${label}`, label, { qos: 1 });
      await inbox.waitForPayload(label);
    };
    await client.subscribeAsync('rh/t', { qos: 1, rh: 1 });
    await mark('first');
    expect(countRetained()).toBe(1);
    // Retain Handling 1 on an existing subscription: nothing sent again [MQTT-3.3.1-10].
    await client.subscribeAsync('rh/t', { qos: 1, rh: 1 });
    await mark('second');
    expect(countRetained()).toBe(1);
    // Retain Handling 0: sent on every SUBSCRIBE [MQTT-3.3.1-9].
    await client.subscribeAsync('rh/t', { qos: 1, rh: 0 });
    await mark('third');
    expect(countRetained()).toBe(2);
    // Retain Handling 2: never sent [MQTT-3.3.1-11].
    await client.subscribeAsync('rh/+', { qos: 1, rh: 2 });
    await mark('fourth');
    expect(countRetained()).toBe(2);
    await publisher.publishAsync('rh/t', '', { qos: 1, retain: true });
  });

  it('subscription identifiers come back on the messages they matched', async () => {
    const { client } = await clients.connect(5);
    const inbox = new Inbox(client);
    await client.subscribeAsync('subid/+', { qos: 1, properties: { subscriptionIdentifier: 7 } });
    await client.subscribeAsync('subid/#', { qos: 1, properties: { subscriptionIdentifier: 9 } });
    await client.subscribeAsync('subid-plain/x', { qos: 1 });
    const { client: publisher } = await clients.connect(5);
    await publisher.publishAsync('subid/a', 'two subscriptions', { qos: 1 });
    await publisher.publishAsync('subid/a/b', 'one subscription', { qos: 1 });
    await publisher.publishAsync('subid-plain/x', 'marker', { qos: 1 });
    await inbox.waitForPayload('marker');
    const identifiers = (payload: string): number[] =>
      inbox.messages
        .filter((message) => text(message) === payload)
        .flatMap((message) => {
          const value = message.properties?.subscriptionIdentifier;
          return value === undefined ? [] : Array.isArray(value) ? value : [value];
        })
        .sort((left, right) => left - right);
    // One copy with both identifiers, or one copy per subscription with its own [MQTT-3.3.4-4/5].
    expect(identifiers('two subscriptions')).toEqual([7, 9]);
    expect(identifiers('one subscription')).toEqual([9]);
    expect(identifiers('marker')).toEqual([]);
  });

  it('shared subscriptions give each message to exactly one member of the group', async () => {
    const members = [await clients.connect(5), await clients.connect(5)].map(({ client }) => client);
    const inboxes = members.map((member) => new Inbox(member));
    for (const member of members) await member.subscribeAsync('$share/workers/jobs/+', { qos: 1 });
    const { client: publisher } = await clients.connect(5);
    const count = 20;
    for (let index = 0; index < count; index++) await publisher.publishAsync(`jobs/${index % 3}`, `job ${index}`, { qos: 1 });
    await Promise.race([
      new Promise((resolve) => setTimeout(resolve, 3_000)),
      (async () => {
        while (inboxes[0]!.messages.length + inboxes[1]!.messages.length < count) await new Promise((resolve) => setTimeout(resolve, 10));
      })(),
    ]);
    const received = inboxes.flatMap((inbox) => inbox.payloads());
    expect(received.length).toBe(count);
    expect(new Set(received).size).toBe(count);
    // How a group splits messages is the broker's choice (4.8.2); ours spreads them, so both work.
    expect(inboxes[0]!.messages.length).toBeGreaterThan(0);
    expect(inboxes[1]!.messages.length).toBeGreaterThan(0);
  });

  it('a shared subscription and a plain one on the same client both deliver', async () => {
    const { client } = await clients.connect(5);
    const inbox = new Inbox(client);
    await client.subscribeAsync('$share/g1/both/t', { qos: 1 });
    await client.subscribeAsync('both/t', { qos: 1 });
    const { client: publisher } = await clients.connect(5);
    await publisher.publishAsync('both/t', 'x', { qos: 1 });
    await inbox.waitFor(2);
    expect(inbox.payloads()).toEqual(['x', 'x']);
  });
});
