/**
 * Regression tests for what fuzzing the CONNECT and PUBLISH paths found (hostile-clients.test.ts
 * over TCP, test/broker/hostile-input.test.ts on the core). Each test sends the minimal byte
 * sequence that showed the problem, on a raw socket, to a real broker in its own data directory,
 * and expects what the spec asks for. They fail until their fix lands; then the matching entry of
 * `knownFindings` in test/broker/hostile-oracle.ts is turned off, so that the fuzz properties
 * hold the broker to the spec as well.
 *
 * The first group is the incident that started the fuzzing: a CONNECT with the will flag and an
 * empty will topic, then a dropped connection, stopped `keel serve` with an assertion, and the
 * durable will stopped every restart too. A will topic must get the checks a PUBLISH topic gets,
 * at CONNECT, before anything is stored.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { frameBytes } from '../broker/hostile-judge.js';
import { fuzzLimits } from '../codec/hostile-arbitraries.js';
import { Clients } from './helpers.js';
import { answerTimeoutMs, fromHex, RawConnection } from './raw-connection.js';
import { dataDirectoryProblems, startWatchedBroker, type WatchedBroker } from './watched-broker.js';

const directories: string[] = [];
const brokers: WatchedBroker[] = [];
let broker: WatchedBroker;
const clients = new Clients(() => broker.server.port);

async function freshBroker(): Promise<WatchedBroker> {
  const directory = mkdtempSync(join(tmpdir(), 'keel-finding-'));
  directories.push(directory);
  broker = await startWatchedBroker(directory, fuzzLimits);
  brokers.push(broker);
  return broker;
}

afterEach(async () => {
  await clients.endAll();
  for (const running of brokers.splice(0)) await running.close();
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

/**
 * What the broker answered (each packet's type and first code), and whether it closed; then the
 * client drops. With several packets, each is sent once the one before was answered (or not).
 */
async function answerTo(...sent: Uint8Array[]): Promise<{ packets: { type: number; code: number }[]; closed: boolean }> {
  const connection = await RawConnection.open(broker.server.port);
  for (const [index, packet] of sent.entries()) {
    connection.write(packet);
    if (index < sent.length - 1) await connection.until(() => connection.brokerClosed || connection.frameCount() > index, answerTimeoutMs);
  }
  await connection.until(() => connection.brokerClosed, answerTimeoutMs);
  const packets = frameBytes(connection.received()).frames.map((frame) => ({ type: frame.type, code: frame.type === 2 ? frame.body[1]! : (frame.body[0] ?? 0) }));
  const closed = connection.brokerClosed;
  await connection.leave('drop');
  return { packets, closed };
}

/**
 * The broker let go of every hostile connection, did not crash or halt, and a new broker recovers
 * its data directory cleanly. (The tests check the answers softly, so that a failure shows all of
 * this too: the crash, and whether the log was poisoned.)
 */
async function expectSurvivesAndRecovers(): Promise<void> {
  const forgotten = (): boolean => broker.problem() !== null || broker.core.broker.stats.connectionsCurrent === 0;
  const deadlineMs = Date.now() + answerTimeoutMs;
  while (!forgotten() && Date.now() < deadlineMs) await new Promise((resolve) => setTimeout(resolve, 1));
  expect.soft(broker.problem()).toBeNull();
  const directory = broker.dataDirectory;
  await broker.close();
  expect.soft(dataDirectoryProblems(directory, fuzzLimits)).toEqual([]);
  broker = await startWatchedBroker(directory, fuzzLimits);
  brokers.push(broker);
  expect(broker.problem()).toBeNull();
}

/** An observer of `#`, to see what the broker publishes. */
async function observeEverything(): Promise<{ client: MqttClient; topics: string[] }> {
  const { client } = await clients.connect(5, { clientId: 'finding-observer' });
  await client.subscribeAsync('#', { qos: 1 });
  const topics: string[] = [];
  client.on('message', (topic) => topics.push(topic));
  return { client, topics };
}

describe('the incident: an empty will topic stopped the broker and every restart', () => {
  it('5.0: CONNACK 0x90 then close, the drop stops nothing, the log recovers (10 13 00 04 4d 51 54 54 05 04 00 00 00 00 01 61 00 00 00 00 00)', async () => {
    await freshBroker();
    const answer = await answerTo(fromHex('10 13 00 04 4d 51 54 54 05 04 00 00 00 00 01 61 00 00 00 00 00'));
    expect.soft(answer.packets).toEqual([{ type: 2, code: 0x90 }]);
    expect.soft(answer.closed).toBe(true);
    await expectSurvivesAndRecovers();
  });

  it('3.1.1: no success CONNACK, the drop stops nothing, the log recovers (10 11 00 04 4d 51 54 54 04 04 00 00 00 01 61 00 00 00 00)', async () => {
    await freshBroker();
    const answer = await answerTo(fromHex('10 11 00 04 4d 51 54 54 04 04 00 00 00 01 61 00 00 00 00'));
    expect.soft(answer.packets.filter((packet) => packet.type === 2 && packet.code === 0)).toEqual([]);
    expect.soft(answer.closed).toBe(true);
    await expectSurvivesAndRecovers();
  });

  it("5.0: a will topic '#' gets CONNACK 0x90 and is never published (10 15 00 04 4d 51 54 54 05 04 00 00 00 00 01 61 00 00 01 23 00 01 78)", async () => {
    await freshBroker();
    const observer = await observeEverything();
    const answer = await answerTo(fromHex('10 15 00 04 4d 51 54 54 05 04 00 00 00 00 01 61 00 00 01 23 00 01 78'));
    expect.soft(answer.packets).toEqual([{ type: 2, code: 0x90 }]);
    // A round trip through the observer's own topic: whatever the will did has arrived by then.
    await observer.client.publishAsync('finding/check', 'done', { qos: 1 });
    await expect.poll(() => observer.topics).toContain('finding/check');
    expect(observer.topics).not.toContain('#');
    await clients.endAll();
    await expectSurvivesAndRecovers();
  });
});

describe('findings of the fuzzer', () => {
  // F1 (knownFindings.authenticationDataWithoutMethod). Section 3.1.2.11.10: "It is a Protocol
  // Error to include Authentication Data if there is no Authentication Method". Keel accepts it
  // with CONNACK 0x00.
  it('F1: 5.0 CONNECT with Authentication Data but no Authentication Method is refused, 0x82 or a close (10 11 00 04 4d 51 54 54 05 02 00 00 03 16 00 00 00 01 61)', async () => {
    await freshBroker();
    const answer = await answerTo(fromHex('10 11 00 04 4d 51 54 54 05 02 00 00 03 16 00 00 00 01 61'));
    expect.soft(answer.packets.every((packet) => packet.type === 2 && packet.code === 0x82)).toBe(true);
    expect.soft(answer.closed).toBe(true);
    await expectSurvivesAndRecovers();
  });

  // F2 (knownFindings.secondConnectDisconnect0x84). [MQTT-3.1.0-2]: a second CONNECT is a Protocol
  // Error. When it names an unsupported protocol level, Keel answers DISCONNECT 0x84, which is a
  // CONNACK code and not a valid DISCONNECT reason code (section 3.14.2.1): a strict client treats
  // the DISCONNECT itself as malformed.
  it('F2: a second CONNECT naming an unsupported level gets DISCONNECT 0x82 (or 0x81), not 0x84 (10 0e 00 04 4d 51 54 54 05 02 00 00 00 00 01 61, then 10 0d 00 04 4d 51 54 54 06 02 00 00 00 01 61)', async () => {
    await freshBroker();
    const first = fromHex('10 0e 00 04 4d 51 54 54 05 02 00 00 00 00 01 61');
    const second = fromHex('10 0d 00 04 4d 51 54 54 06 02 00 00 00 01 61');
    const answer = await answerTo(first, second);
    expect.soft(answer.packets[0]).toMatchObject({ type: 2, code: 0 });
    // 0x82 for the second CONNECT; 0x81 would do too, for a packet that cannot be read.
    expect.soft(answer.packets.slice(1)).toHaveLength(1);
    expect.soft(answer.packets[1]).toMatchObject({ type: 14 });
    expect.soft([0x81, 0x82]).toContain(answer.packets[1]?.code);
    expect.soft(answer.closed).toBe(true);
    await expectSurvivesAndRecovers();
  });

  // F3 (knownFindings.willDiscardedOnDisconnectWithError). [MQTT-3.1.2-10]: the will is removed
  // once published or on a DISCONNECT with reason 0x00; [MQTT-3.14.4-3]: only 0x00 discards it.
  // A client that disconnects with an error (0x80 Unspecified error, ...) still leaves its will;
  // Keel publishes it only for 0x04.
  it('F3: a 5.0 DISCONNECT with reason 0x80 publishes the will (10 14 00 04 4d 51 54 54 05 04 00 00 00 00 01 61 00 00 01 77 00 00, then e0 01 80)', async () => {
    await freshBroker();
    const observer = await observeEverything();
    const connect = fromHex('10 14 00 04 4d 51 54 54 05 04 00 00 00 00 01 61 00 00 01 77 00 00');
    const answer = await answerTo(connect, fromHex('e0 01 80'));
    expect.soft(answer.packets).toEqual([{ type: 2, code: 0 }]);
    expect.soft(answer.closed).toBe(true);
    // A round trip through the observer's own topic: the will, routed before it, has arrived by then.
    await observer.client.publishAsync('finding/check', 'done', { qos: 1 });
    await expect.poll(() => observer.topics).toContain('finding/check');
    expect.soft(observer.topics).toContain('w');
    await clients.endAll();
    await expectSurvivesAndRecovers();
  });
});
