/**
 * Proves, on the core alone (no sockets, time as data), that no input from a client can stop the
 * broker or poison its log. Generated hostile scripts (test/codec/hostile-arbitraries.ts) are fed
 * as bytes, cut into random segments, to a Broker under the test harness, several scripts per run
 * on the same broker, and checked:
 * - no exception escapes an input (the core turns every protocol violation into an outcome
 *   itself), and each connection ends in an outcome the oracle (hostile-oracle.ts) allows, with
 *   the reason codes the specs fix;
 * - a well-behaved client still completes a QoS 1 round trip after every script, and an observer
 *   subscribed to `#` only ever receives valid topic names;
 * - no record in the log holds a topic no client may set;
 * - time advanced past every keepalive, will delay and session expiry fires the wills without an
 *   exception and leaves no will behind but those of connections still open;
 * - a broker rebuilt from the same records (crash and restart, before or after the deadlines)
 *   recovers, holds a consistent state, recovers again to the same state, and serves clients.
 * Fixed seeds (fuzz-parameters.ts); a failure names the script, each step in hex.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodePacket } from '../../src/codec/encoder.js';
import { PacketType, type PublishPacket } from '../../src/codec/packets.js';
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
import { checkConsistent, picture } from './durable-state-checks.js';
import { Harness, type RawTestConnection, type TestClient, text } from './harness.js';
import { describeScript, frameBytes, hex, judge, judgeScript, judgeShapeOnly, type Observation } from './hostile-judge.js';
import { poisonedRecords, SessionOwners, storedTopicProblem } from './hostile-oracle.js';

const limits = fuzzLimits;
/** The broker's config here: `$SYS` off, because its timer never ends and `runDeadlines` fires every timer until none is left. */
const harnessConfig = { ...limits, sysIntervalSeconds: 0 };
const options: ScriptOptions = { timing: 'simulated', limits, pool: 'core' };
/** Deadlines one run may fire before the test calls it a livelock. */
const deadlinesMax = 500;

/**
 * Clients that must not notice the hostile ones: a canary doing QoS 1 round trips, and an observer
 * of `#` on a raw connection, so that whatever the broker sends it is read without trusting it.
 */
class Bystanders {
  private canary!: TestClient;
  private observer!: RawTestConnection;
  private observed = 0;
  private rounds = 0;

  constructor(private readonly harness: Harness) {
    this.connect();
  }

  /** (Re)connects both, e.g. after a restart. */
  connect(): void {
    this.canary = this.harness.connect('bystander-canary', 5);
    this.canary.subscribe([{ topicFilter: 'bystander/#', qos: 1 }]);
    this.observer = this.harness.openRaw();
    this.observer.sendBytes(encodePacket({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: true, keepAliveSeconds: 0, clientId: 'bystander-observer' }, 5));
    const everything = { topicFilter: '#', qos: 0 as const, noLocal: false, retainAsPublished: false, retainHandling: 0 as const };
    this.observer.sendBytes(encodePacket({ type: PacketType.Subscribe, packetId: 1, subscriptions: [everything] }, 5));
    this.observed = 0;
  }

  /** Topics of the PUBLISH packets the observer got since the last call (QoS 0, no aliases: the topic follows the header). */
  private observedTopics(): string[] {
    const received = this.observer.received();
    const { frames } = frameBytes(received.subarray(this.observed));
    this.observed += frames.reduce((total, frame) => total + frame.bytes.length, 0);
    return frames.filter((frame) => frame.type === 3).map((frame) => new TextDecoder().decode(frame.body.subarray(2, 2 + ((frame.body[0]! << 8) | frame.body[1]!))));
  }

  /** `willDue`: the topic of a will that must have reached the observer by now. */
  check(when: string, willDue: string | null = null): void {
    const label = `round ${++this.rounds}`;
    if (this.canary.closed || this.observer.closed) throw new Error(`a bystander was disconnected ${when}: ${this.canary.closeReason}${this.observer.closeReason}`);
    const answers = this.canary.publish('bystander/check', label, 1);
    const puback = answers.find((packet) => packet.type === PacketType.Puback);
    expect(puback, `PUBACK for the canary ${when}`).toMatchObject({ reasonCode: 0 });
    const echoes = answers.filter((packet): packet is PublishPacket => packet.type === PacketType.Publish);
    expect(
      echoes.map((packet) => new TextDecoder().decode(packet.payload)),
      `canary round trip ${when}`,
    ).toContain(label);
    for (const echo of echoes) this.canary.acknowledge(echo);
    const topics = this.observedTopics();
    for (const topic of topics) {
      const problem = storedTopicProblem(topic, limits);
      if (problem !== null) throw new Error(`the observer of # received ${JSON.stringify(topic)} ${when}: ${problem}`);
    }
    if (willDue !== null && !topics.includes(willDue)) throw new Error(`the will on ${JSON.stringify(willDue)} was not published ${when}`);
  }
}

/** Feeds one script to a new connection; returns what the broker answered before the client left. */
function feed(harness: Harness, script: Script): Observation {
  const connection = harness.openRaw();
  script.steps.forEach((step, index) => {
    for (const chunk of split(stepBytes(step, script.version), script.cuts)) {
      if (connection.closed) return;
      sendOrExplain(connection, chunk, `step ${index + 1}`, script);
    }
  });
  return leave(connection, script.ending);
}

function sendOrExplain(connection: RawTestConnection, chunk: Uint8Array, where: string, script: Script | null): void {
  try {
    connection.sendBytes(chunk);
  } catch (error) {
    const account = script === null ? hex(chunk) : describeScript(script);
    throw new Error(`an exception escaped the core at ${where}: ${(error as Error).stack}\n  ${account}`);
  }
}

function leave(connection: RawTestConnection, ending: Script['ending']): Observation {
  const observation = { bytes: connection.received(), brokerClosed: connection.closed };
  if (!connection.closed && ending !== 'linger') connection.drop();
  return observation;
}

/** Fires every deadline until none is left; wills must all have gone out but those of open connections. */
function runDeadlines(harness: Harness): void {
  let fired = 0;
  while (harness.advanceToDeadline()) {
    fired += 1;
    if (fired > deadlinesMax) throw new Error(`more than ${deadlinesMax} deadlines: a livelock`);
  }
  const broker = harness.broker;
  expect(broker.pendingWills.size, 'delayed wills left after every deadline').toBe(0);
  for (const clientId of broker.state.wills.keys()) expect(broker.online.has(clientId), `the will of offline ${clientId} was never published`).toBe(true);
}

/** Crash and restart: a new broker over the same records; then again, to the same state. */
function restart(harness: Harness): void {
  harness.restart();
  expect(harness.broker.ready).toBe(true);
  checkConsistent(harness.broker.state);
  const recovered = picture(harness.broker.state);
  harness.restart();
  expect(picture(harness.broker.state)).toEqual(recovered);
}

function expectLogClean(harness: Harness): void {
  expect(poisonedRecords(harness.store.records(), limits), 'records no client may write').toEqual([]);
}

/** The part of every run after the scripts: the log, deadlines, a restart, the bystanders again. */
function afterScripts(harness: Harness, bystanders: Bystanders, restartFirst: boolean): void {
  expectLogClean(harness);
  if (restartFirst) restart(harness);
  runDeadlines(harness);
  if (!restartFirst) restart(harness);
  runDeadlines(harness);
  expectLogClean(harness);
  bystanders.connect();
  bystanders.check('after the restart');
}

/** Runs scripts on one broker, judging each, with time passing between them. */
function runScripts(scripts: Script[], pausesMs: number[], restartFirst: boolean): void {
  const harness = new Harness(harnessConfig);
  const bystanders = new Bystanders(harness);
  const owners = new SessionOwners();
  scripts.forEach((script, index) => {
    const judgement = judge(script, feed(harness, script), limits, owners);
    if (judgement.failure !== null) throw new Error(`script ${index + 1}: ${judgement.failure}\n  ${describeScript(script)}`);
    const pauseMs = pausesMs[index] ?? 0;
    if (pauseMs > 0) harness.advance(pauseMs);
    bystanders.check(`after script ${index + 1}:\n  ${describeScript(script)}`, judgement.willDue);
  });
  afterScripts(harness, bystanders, restartFirst);
}

const pauses = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 200_000 })), { maxLength: 4 });

function scriptsProperty(script: fc.Arbitrary<Script>): fc.IPropertyWithHooks<[Script[], number[], boolean]> {
  return fc.property(fc.array(script, { minLength: 1, maxLength: 4 }), pauses, fc.boolean(), (scripts, pausesMs, restartFirst) => runScripts(scripts, pausesMs, restartFirst));
}

describe('hostile clients against the core', () => {
  it(
    'CONNECT full of edge values (3.1, 3.1.1, 5.0): only allowed outcomes, nothing stops the broker',
    () => {
      fc.assert(scriptsProperty(connectScript({ ...options, willTopic: validTopic(limits) })), fuzzParameters(0x6b65_6c01, 250));
    },
    fuzzTimeoutMs(20_000),
  );

  it(
    'a will topic gets the checks of a PUBLISH topic at CONNECT, before anything is stored',
    () => {
      fc.assert(scriptsProperty(connectScript({ ...options, willTopic: hostileTopic(limits, 20), willWeight: 4 })), fuzzParameters(0x6b65_6c02, 300));
    },
    fuzzTimeoutMs(20_000),
  );

  it(
    'PUBLISH full of edge values: only allowed outcomes, with the reason codes the spec fixes',
    () => {
      fc.assert(scriptsProperty(publishScript(options)), fuzzParameters(0x6b65_6c03, 200));
    },
    fuzzTimeoutMs(20_000),
  );

  it(
    'sequences: CONNECT twice, PUBLISH before CONNECT, PUBREL for unknown identifiers, DISCONNECT',
    () => {
      fc.assert(scriptsProperty(sequenceScript(options)), fuzzParameters(0x6b65_6c04, 200));
    },
    fuzzTimeoutMs(20_000),
  );

  it(
    'mutated bytes (flipped, cut, spliced, lying remaining lengths): the core survives and recovers',
    () => {
      const base = fc.oneof(publishScript(options), sequenceScript(options), connectScript({ ...options, willTopic: validTopic(limits) }));
      const mutated = fc.record({ script: base, changes: fc.array(lengthChange, { maxLength: 2 }), mutations: fc.array(mutation, { maxLength: 4 }) });
      fc.assert(
        fc.property(fc.array(mutated, { minLength: 1, maxLength: 4 }), fc.boolean(), (cases, restartFirst) => {
          const harness = new Harness(harnessConfig);
          const bystanders = new Bystanders(harness);
          cases.forEach(({ script, changes, mutations }, index) => {
            const bytes = mutatedBytes(script, changes, mutations);
            const connection = harness.openRaw();
            for (const chunk of split(bytes, script.cuts)) if (!connection.closed) sendOrExplain(connection, chunk, `mutated case ${index + 1}`, null);
            const verdict = judgeShapeOnly(leave(connection, script.ending));
            if (verdict !== null) throw new Error(`mutated case ${index + 1}: ${verdict}\n  sent ${hex(bytes)}`);
            bystanders.check(`after mutated case ${index + 1}`);
          });
          afterScripts(harness, bystanders, restartFirst);
        }),
        fuzzParameters(0x6b65_6c05, 300),
      );
    },
    fuzzTimeoutMs(20_000),
  );
});

describe('the oracle itself', () => {
  it('accepts what a well-behaved client gets', () => {
    const harness = new Harness(harnessConfig);
    const script: Script = {
      version: 5,
      steps: [
        {
          kind: 'connect',
          connect: {
            protocolName: text('MQTT'),
            protocolLevel: 5,
            headerFlags: 0,
            reservedFlag: false,
            cleanStart: true,
            keepAliveSeconds: 0,
            properties: [],
            clientId: text('oracle'),
            will: null,
            strayWillBits: 0,
            username: null,
            password: null,
          },
        },
        { kind: 'publish', publish: { qos: 1, dup: false, retain: false, topic: text('a/b'), packetIdMode: 'normal', packetId: 7, properties: [], payload: text('x') } },
        { kind: 'pingreq' },
      ],
      ending: 'drop',
      cuts: [],
    };
    expect(judgeScript(script, feed(harness, script), limits)).toBeNull();
    // The same answer is wrong for a PUBLISH with a wildcard.
    const wildcard = { ...script, steps: [script.steps[0]!, { ...script.steps[1]!, publish: { ...(script.steps[1] as { publish: object }).publish, topic: text('a/+') } }] } as Script;
    expect(judgeScript(wildcard, { bytes: new Uint8Array([0x20, 0x03, 0x00, 0x00, 0x00, 0x40, 0x03, 0x00, 0x07, 0x10]), brokerClosed: false }, limits)).toMatch(/wildcard/);
  });
});
