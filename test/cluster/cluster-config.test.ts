/**
 * Proves the `cluster` setting (src/config.ts): null by default, a URL or a list of URLs plus a
 * node id accepted, and every malformed form refused with a readable problem naming the key.
 */
import { describe, expect, it } from 'vitest';
import { defaultConfig, resolveConfig } from '../../src/config.js';

function problems(cluster: unknown): string[] {
  const result = resolveConfig({ cluster });
  return result.ok ? [] : result.problems;
}

describe('cluster configuration', () => {
  it('is null by default: a single broker', () => {
    expect(defaultConfig.cluster).toBeNull();
    const result = resolveConfig({});
    expect(result.ok && result.config.cluster).toBeNull();
  });

  it('takes one URL or a list, and a node id', () => {
    const one = resolveConfig({ cluster: { nats: 'nats://127.0.0.1:4222', nodeId: 'a' } });
    expect(one.ok && one.config.cluster).toEqual({ nats: ['nats://127.0.0.1:4222'], nodeId: 'a', messageBytesMax: 1024 * 1024, handoverWaitMs: 5_000 });
    const many = resolveConfig({ cluster: { nats: ['nats://n1:4222', 'tls://n2:4222'], nodeId: 'node_B-2' } });
    expect(many.ok && many.config.cluster).toEqual({ nats: ['nats://n1:4222', 'tls://n2:4222'], nodeId: 'node_B-2', messageBytesMax: 1024 * 1024, handoverWaitMs: 5_000 });
    const sized = resolveConfig({ cluster: { nats: 'nats://n1:4222', nodeId: 'a', messageBytesMax: 8 * 1024 * 1024 } });
    expect(sized.ok && sized.config.cluster?.messageBytesMax).toBe(8 * 1024 * 1024);
    const patient = resolveConfig({ cluster: { nats: 'nats://n1:4222', nodeId: 'a', handoverWaitMs: 30_000 } });
    expect(patient.ok && patient.config.cluster?.handoverWaitMs).toBe(30_000);
  });

  it('refuses malformed clusters with a readable problem', () => {
    expect(problems('nats://x:4222')[0]).toMatch(/"cluster" must be null or an object/);
    expect(problems({ nats: [], nodeId: 'a' })[0]).toMatch(/"cluster.nats" must be a NATS URL/);
    expect(problems({ nats: ['http://x:80'], nodeId: 'a' })[0]).toMatch(/"cluster.nats"/);
    expect(problems({ nats: 'nats://x:4222', nodeId: 'a.b' })[0]).toMatch(/"cluster.nodeId" must match/);
    expect(problems({ nats: 'nats://x:4222', nodeId: 'x'.repeat(33) })[0]).toMatch(/"cluster.nodeId"/);
    expect(problems({ nats: 'nats://x:4222' })[0]).toMatch(/"cluster.nodeId"/);
    expect(problems({ nats: 'nats://x:4222', nodeId: 'a', extra: 1 })[0]).toMatch(/unknown cluster setting "extra"/);
    for (const messageBytesMax of [1000, 64 * 1024 - 1, 2 ** 27, 1.5 * 1024 * 1024 + 0.5, '1MiB', null]) {
      expect(problems({ nats: 'nats://x:4222', nodeId: 'a', messageBytesMax })[0]).toMatch(/"cluster.messageBytesMax" must be an integer from 65536 to 67108864/);
    }
    for (const handoverWaitMs of [0, 999, 600_001, 2_500.5, '5s', null]) {
      expect(problems({ nats: 'nats://x:4222', nodeId: 'a', handoverWaitMs })[0]).toMatch(/"cluster.handoverWaitMs" must be an integer from 1000 to 600000/);
    }
  });
});
