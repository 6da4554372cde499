/**
 * Proves the simulated NATS refuses what a real one refuses for size (sim/cluster/nats-model.ts):
 * a publish, durable publish or key-value put whose payload and headers exceed NATS's default
 * max_payload (1 MiB) is reported to the world (rule `nats-message-too-large`) and not stored,
 * while one just under the limit passes unreported. Nodes never send one
 * (src/cluster/message-size.ts); the rule is there to catch any path that would.
 */
import { describe, expect, it } from 'vitest';
import { NatsModel } from '../../sim/cluster/nats-model.js';
import { EventQueue } from '../../sim/event-queue.js';
import { Random } from '../../sim/random.js';

describe('the simulated NATS max_payload', () => {
  it('reports a message over 1 MiB (headers count) and lets one under it pass', () => {
    const reports: string[] = [];
    const model = new NatsModel(
      new EventQueue(),
      { nowMs: 0 },
      Random.stream(1, 'nats'),
      2,
      () => {},
      (line) => reports.push(line),
    );
    const headers = { 'Keel-Origin': 'n0', 'Keel-Qos': '1' };
    const headerBytes = 12 + ('Keel-Origin'.length + 2 + 4) + ('Keel-Qos'.length + 1 + 4);
    const limit = 1024 * 1024;
    model.request(0, { op: 'publish-durable', requestId: 1, subject: '$KEEL.handoff.a', headers, payload: new Uint8Array(limit - headerBytes), dedupeId: 'd1' });
    expect(reports).toEqual([]);
    model.request(0, { op: 'publish-durable', requestId: 2, subject: '$KEEL.handoff.a', headers, payload: new Uint8Array(limit - headerBytes + 1), dedupeId: 'd2' });
    model.request(1, { op: 'publish', subject: 'a', headers: {}, payload: new Uint8Array(limit) });
    model.request(1, { op: 'kv-set', requestId: 3, bucket: 'keel-retained', key: 'k', value: new Uint8Array(limit), expectedRevision: null });
    model.request(1, { op: 'kv-set', requestId: 4, bucket: 'keel-retained', key: 'k', value: null, expectedRevision: null });
    expect(reports).toHaveLength(3);
    expect(reports[0]).toMatch(/n0 sent publish-durable of 1048577 bytes on \$KEEL\.handoff\.a/);
    expect(reports[2]).toMatch(/kv-set .*key k/);
  });
});
