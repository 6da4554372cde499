/**
 * Proves that the hostile world's probes (sim/hostile.ts) expect exactly what the real broker core
 * does: every kind, in both versions, over several variants and under the limits hostile worlds
 * set (a small packetBytesMax, maximumQos below 2, retain unavailable), is fed to a Broker under
 * the test harness as raw bytes, and the packets it answers with, and its close, are judged with
 * the prober's own judge. A refused CONNECT leaves no session behind (a valid CONNECT asking to
 * resume its client id finds none), and a connection that never sends a CONNECT is closed at
 * connectTimeoutMs.
 */
import { describe, expect, it } from 'vitest';
import { judge } from '../../sim/clients/prober.js';
import { buildProbe, connectBytes, type ProbeLimits, probeKinds } from '../../sim/hostile.js';
import { PacketDecoder } from '../../src/codec/decoder.js';
import type { Packet, ProtocolVersion } from '../../src/codec/packets.js';
import { type BrokerConfig, defaultConfig } from '../../src/config.js';
import { Harness } from '../broker/harness.js';

function decodeAll(bytes: Uint8Array, version: ProtocolVersion): Packet[] {
  const decoder = new PacketDecoder({ packetBytesMax: 1 << 28, protocolVersion: version });
  decoder.push(bytes);
  const packets: Packet[] = [];
  for (let packet = decoder.next(); packet !== null; packet = decoder.next()) packets.push(packet);
  return packets;
}

const worlds: Partial<BrokerConfig>[] = [{}, { packetBytesMax: 512, maximumQos: 1, retainAvailable: false }, { maximumQos: 0, topicBytesMax: 16, topicLevelsMax: 4 }];

describe('hostile probes expect what the broker does', () => {
  for (const overrides of worlds) {
    const limits: ProbeLimits & { connectTimeoutMs: number } = { ...defaultConfig, ...overrides };
    for (const kind of probeKinds) {
      it(`${kind} under ${JSON.stringify(overrides)}`, () => {
        let judged = 0;
        for (const version of [4, 5] as const) {
          for (let variant = 0; variant < 7; variant++) {
            const probe = buildProbe({ atMs: 0, kind, version, variant }, 9, variant + 1, limits);
            if (probe === null) continue;
            const harness = new Harness(overrides);
            const connection = harness.openRaw();
            let offset = 0;
            if (probe.connect !== null) {
              connection.sendBytes(probe.connect);
              const [connack] = decodeAll(connection.received(), probe.version);
              expect(connack, probe.name).toMatchObject({ type: 2, reasonCode: 0 });
              offset = connection.received().length;
            }
            if (probe.hostile.length > 0) connection.sendBytes(probe.hostile);
            if (probe.silent) harness.advance(limits.connectTimeoutMs + 1);
            const decodeVersion = probe.expect.kind === 'refused' ? probe.expect.version : probe.version;
            const answers = decodeAll(connection.received().subarray(offset), decodeVersion);
            if (probe.expect.kind === 'accepted') {
              expect(answers, probe.name).toMatchObject([{ type: 2, reasonCode: 0 }]);
            } else {
              expect(judge(probe, answers), `${probe.name} v${version} variant ${variant}`).toBeNull();
              expect(connection.closed || harness.broker.view.clients({ limit: 10 }).length === 0, `${probe.name}: closed`).toBe(true);
            }
            if (probe.followUp) {
              const followUp = harness.openRaw();
              followUp.sendBytes(connectBytes(5, probe.clientId, { resume: true }));
              expect(decodeAll(followUp.received(), 5), `${probe.name}: follow-up`).toMatchObject([{ type: 2, reasonCode: 0, sessionPresent: false }]);
            }
            judged += 1;
          }
        }
        // Every kind tests something in at least one of these worlds.
        if (judged === 0) expect(['will-qos', 'will-retain', 'connect-property', 'will-property', 'publish-property', 'publish-alias', 'publish-subscription-id']).toContain(kind);
      });
    }
  }
});
