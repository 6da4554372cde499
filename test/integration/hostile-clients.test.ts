/**
 * Proves, against a running broker over TCP, that no input from a client can stop it or poison its
 * log. Generated hostile scripts (test/codec/hostile-arbitraries.ts: CONNECT 3.1 / 3.1.1 / 5.0
 * and PUBLISH full of edge values, sequences around them, mutated bytes) go over raw sockets, each
 * step's bytes in random segments, with persistent sessions and wills in a good share, and each
 * connection left by DISCONNECT, a dropped socket or a half close (so wills fire). After each case:
 * - the broker neither crashed (no exception escaped the core: watched-broker.ts) nor halted;
 * - the connection ended as the oracle (test/broker/hostile-oracle.ts) allows, with the reason
 *   codes the specs fix (invalid will topic 0x90, unsupported level 0x84 / return code 1, client
 *   id rejected 0x85 / return code 2, ...);
 * - a canary `mqtt` client connected before the run still completes a QoS 1 round trip, and an
 *   observer subscribed to `#` stays connected and only ever receives valid topic names.
 * After each property the broker is stopped and a new one started on the same data directory: it
 * must recover and serve the canary, and `inspect` must find no problem and no record no client
 * may write.
 *
 * Runs are fixed (seeded) and bounded; keepalives, will delays and session expiries are 0 or a day
 * or more, so nothing fires during a later case. A crash is reported with the verdict of a new
 * broker on the same directory (was the log poisoned?), then the run goes on against a fresh
 * broker on a fresh directory so that shrinking works against a healthy one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectDataDirectory } from '../../io/inspect.js';
import { describeScript, hex, judge, judgeShapeOnly, type Observation, type StepHint, stepHints } from '../broker/hostile-judge.js';
import { SessionOwners, storedTopicProblem } from '../broker/hostile-oracle.js';
import { mutation, split } from '../codec/arbitraries.js';
import { fuzzParameters, fuzzTimeoutMs } from '../codec/fuzz-parameters.js';
import {
  connectScript,
  fuzzLimits,
  hostileTopic,
  lengthChange,
  mutatedBytes,
  publishScript,
  type Script,
  type ScriptOptions,
  sequenceScript,
  stepBytes,
  validTopic,
} from '../codec/hostile-arbitraries.js';
import { Clients, type Inbox } from './helpers.js';
import { answerTimeoutMs, RawConnection } from './raw-connection.js';
import { dataDirectoryProblems, startWatchedBroker, type WatchedBroker } from './watched-broker.js';

const limits = fuzzLimits;
const options: ScriptOptions = { timing: 'real', limits, pool: 'tcp' };
/**
 * Bounds each property's whole run, shrinking included: a crash costs a broker restart per try,
 * so a failing property reports its best shrink so far when the time is up.
 */
const propertyTimeMs = 7_000;

const directories: string[] = [];
let broker: WatchedBroker;
/** Who connected with which client id on the current broker (a fresh broker starts a fresh record). */
let owners = new SessionOwners();
const clients = new Clients(() => broker.server.port);
let canary: MqttClient;
let observerInbox: Inbox;
let bystanderTrouble: string | null = null;
let rounds = 0;

function freshDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), 'keel-fuzz-'));
  directories.push(directory);
  return directory;
}

/** The canary (5.0, QoS 1 round trips) and the observer (3.1.1, subscribed to `#`). */
async function connectBystanders(): Promise<void> {
  bystanderTrouble = null;
  ({ client: canary } = await clients.connect(5, { clientId: 'bystander-canary' }));
  await canary.subscribeAsync('bystander/#', { qos: 1 });
  const { client: observer, inbox } = await clients.connect(4, { clientId: 'bystander-observer' });
  observerInbox = inbox;
  await observer.subscribeAsync('#', { qos: 1 });
  for (const [name, client] of [
    ['canary', canary],
    ['observer', observer],
  ] as const) {
    // Round trips are per case: Nagle's delay would dominate them.
    (client.stream as net.Socket).setNoDelay?.(true);
    client.on('close', () => (bystanderTrouble ??= `the ${name} was disconnected`));
    client.on('error', (error) => (bystanderTrouble ??= `the ${name} saw an error: ${error.message}`));
  }
}

async function endBystanders(): Promise<void> {
  bystanderTrouble = 'ended on purpose';
  await clients.endAll();
}

/** The bystanders noticed nothing: still connected, a QoS 1 round trip works, `#` saw only valid topics. */
async function checkBystanders(when: string): Promise<void> {
  if (bystanderTrouble !== null) throw new Error(`${bystanderTrouble} ${when}`);
  const label = `round ${++rounds}`;
  const echoed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the canary's round trip did not complete ${when}`)), answerTimeoutMs);
    const onMessage = (_topic: string, payload: Buffer): void => {
      if (payload.toString() !== label) return;
      clearTimeout(timer);
      canary.off('message', onMessage);
      resolve();
    };
    canary.on('message', onMessage);
  });
  await canary.publishAsync('bystander/check', label, { qos: 1 });
  await echoed;
  for (const message of observerInbox.messages.splice(0)) {
    const problem = storedTopicProblem(message.topic, limits);
    if (problem !== null) throw new Error(`the observer of # received ${JSON.stringify(message.topic)} ${when}: ${problem}`);
  }
}

/** After a step: wait for what the oracle expects (answers, or a close), never longer than answerTimeoutMs. */
async function settle(connection: RawConnection, before: number, hint: StepHint): Promise<void> {
  const answered = (): boolean => connection.brokerClosed || connection.frameCount() >= before + hint.responses;
  if (hint.closes === 'yes') await connection.until(() => connection.brokerClosed, answerTimeoutMs);
  else if (hint.closes === 'no') await connection.until(answered, answerTimeoutMs);
  else {
    if (hint.responses > 0) await connection.until(answered, answerTimeoutMs);
    await connection.quiet();
  }
}

async function writeInSegments(connection: RawConnection, bytes: Uint8Array, cuts: number[]): Promise<void> {
  const chunks = split(bytes, cuts);
  for (const [index, chunk] of chunks.entries()) {
    connection.write(chunk);
    // Yield between segments so that they leave as separate writes.
    if (index < chunks.length - 1) await new Promise((resolve) => setImmediate(resolve));
  }
}

async function runScript(script: Script): Promise<Observation> {
  const connection = await RawConnection.open(broker.server.port);
  const hints = stepHints(script, limits, owners);
  for (const [index, step] of script.steps.entries()) {
    if (connection.brokerClosed) break;
    const before = connection.frameCount();
    await writeInSegments(connection, stepBytes(step, script.version), script.cuts);
    await settle(connection, before, hints[index]!);
  }
  const observation = connection.observation();
  await connection.leave(script.ending);
  return observation;
}

async function runMutated(script: Script, bytes: Uint8Array): Promise<Observation> {
  const connection = await RawConnection.open(broker.server.port);
  await writeInSegments(connection, bytes, script.cuts);
  await connection.quiet();
  const observation = connection.observation();
  await connection.leave(script.ending);
  return observation;
}

/** Replaces a crashed or halted broker; says whether a new broker recovers the same directory. */
async function replaceBroker(problem: string): Promise<string> {
  const directory = broker.dataDirectory;
  await endBystanders();
  await broker.close();
  let recovery = 'a new broker on the same data directory recovers';
  try {
    const again = await startWatchedBroker(directory, limits);
    recovery = again.problem() ?? recovery;
    await again.close();
  } catch (error) {
    recovery = `a new broker on the same data directory fails too (the log is poisoned): ${(error as Error).message.split('\n')[0]}`;
  }
  const found = dataDirectoryProblems(directory, limits);
  broker = await startWatchedBroker(freshDirectory(), limits);
  owners = new SessionOwners();
  await connectBystanders();
  return `${problem}\n  ${recovery}\n  data directory: ${found.length === 0 ? 'no problem found' : found.join('; ')}`;
}

/** After every case: the broker forgot the connection (its will went out), is healthy, and the bystanders noticed nothing. */
async function afterCase(willDue: string | null): Promise<void> {
  const forgotten = (): boolean => broker.problem() !== null || broker.core.broker.stats.connectionsCurrent === 2;
  await pollUntil(forgotten);
  const problem = broker.problem();
  if (problem !== null) throw new Error(await replaceBroker(problem));
  if (willDue !== null) {
    await pollUntil(() => observerInbox.messages.some((message) => message.topic === willDue));
    if (!observerInbox.messages.some((message) => message.topic === willDue)) throw new Error(`the will on ${JSON.stringify(willDue)} was not published`);
  }
  await checkBystanders('after this case').catch(async (error: Error) => {
    await replaceBroker('bystanders disturbed');
    throw error;
  });
}

/** Polls (every millisecond, at most answerTimeoutMs) until `condition` holds. */
async function pollUntil(condition: () => boolean): Promise<void> {
  const deadlineMs = Date.now() + answerTimeoutMs;
  while (!condition() && Date.now() < deadlineMs) await new Promise((resolve) => setTimeout(resolve, 1));
}

/** Judges one case and checks the broker after it; fails with every problem found. */
async function judgeCase(verdict: string | null, account: string, willDue: string | null = null): Promise<void> {
  const problems = verdict === null ? [] : [verdict];
  await afterCase(willDue).catch((error: Error) => problems.push(error.message));
  if (problems.length > 0) throw new Error(`${problems.join('\n  and ')}\n  ${account}`);
}

function scriptsProperty(script: fc.Arbitrary<Script>): fc.IAsyncPropertyWithHooks<[Script]> {
  return fc.asyncProperty(script, async (value) => {
    const judgement = judge(value, await runScript(value), limits, owners);
    await judgeCase(judgement.failure, describeScript(value), judgement.willDue);
  });
}

const parameters = <T>(seed: number, runs: number): fc.Parameters<T> => fuzzParameters<T>(seed, runs, { interruptAfterTimeLimit: propertyTimeMs });

beforeAll(async () => {
  broker = await startWatchedBroker(freshDirectory(), limits);
  owners = new SessionOwners();
  await connectBystanders();
});

afterAll(async () => {
  await endBystanders();
  await broker?.close();
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
});

/**
 * (d) The broker is stopped and a new one started on the same data directory: `inspect` finds no
 * problem and no record no client may write, the new broker recovers and serves the bystanders.
 * `written` asks that the run reached the log (sessions and wills stored, not only refusals).
 */
async function restartOnSameDirectory(written: boolean): Promise<void> {
  const directory = broker.dataDirectory;
  await endBystanders();
  await broker.close();
  expect(dataDirectoryProblems(directory, limits)).toEqual([]);
  if (written) {
    const records = inspectDataDirectory(directory).recordsByKind;
    expect(records['session-created'] ?? 0, 'sessions written').toBeGreaterThan(0);
    expect(records['will-set'] ?? 0, 'wills written').toBeGreaterThan(0);
  }
  broker = await startWatchedBroker(directory, limits);
  await connectBystanders();
  await checkBystanders('after the restart');
  expect(broker.problem()).toBeNull();
}

describe('hostile clients against a running broker over TCP', () => {
  it(
    'CONNECT full of edge values (3.1, 3.1.1, 5.0): allowed outcomes only, nobody else notices, the log recovers',
    async () => {
      await fc.assert(scriptsProperty(connectScript({ ...options, willTopic: validTopic(limits) })), parameters(0x7463_7001, 150));
      await restartOnSameDirectory(true);
    },
    fuzzTimeoutMs(25_000),
  );

  it(
    'PUBLISH full of edge values: allowed outcomes only, with the reason codes the spec fixes; the log recovers',
    async () => {
      await fc.assert(scriptsProperty(publishScript(options)), parameters(0x7463_7002, 100));
      await restartOnSameDirectory(true);
    },
    fuzzTimeoutMs(25_000),
  );

  it(
    'sequences: CONNECT twice, PUBLISH before CONNECT, PUBREL for unknown identifiers, DISCONNECT; the log recovers',
    async () => {
      await fc.assert(scriptsProperty(sequenceScript(options)), parameters(0x7463_7003, 120));
      await restartOnSameDirectory(true);
    },
    fuzzTimeoutMs(25_000),
  );

  it(
    'mutated bytes (flipped, cut, spliced, lying remaining lengths): the broker survives, the log recovers',
    async () => {
      const base = fc.oneof(publishScript(options), sequenceScript(options), connectScript({ ...options, willTopic: validTopic(limits) }));
      const mutated = fc.record({ script: base, changes: fc.array(lengthChange, { maxLength: 2 }), mutations: fc.array(mutation, { maxLength: 4 }) });
      await fc.assert(
        fc.asyncProperty(mutated, async ({ script, changes, mutations }) => {
          const bytes = mutatedBytes(script, changes, mutations);
          await judgeCase(judgeShapeOnly(await runMutated(script, bytes)), `sent ${hex(bytes)}`);
        }),
        parameters(0x7463_7004, 150),
      );
      await restartOnSameDirectory(false);
    },
    fuzzTimeoutMs(25_000),
  );

  it(
    'a will topic gets the checks of a PUBLISH topic at CONNECT: 5.0 CONNACK 0x90, nothing stored, nothing crashes',
    async () => {
      await fc.assert(scriptsProperty(connectScript({ ...options, willTopic: hostileTopic(limits, 20), willWeight: 4 })), parameters(0x7463_7005, 100));
      await restartOnSameDirectory(true);
    },
    fuzzTimeoutMs(25_000),
  );
});
