/**
 * Proves over TCP that the `mqtt` client, announcing a Topic Alias Maximum, receives Keel's
 * aliased PUBLISH packets with the right topics (it resolves the aliases itself), and that the
 * packets on the wire really used aliases after the first.
 */
import mqtt, { type IPublishPacket } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../io/server.js';
import { startBroker, waitUntil } from './helpers.js';

let server: RunningServer;
beforeAll(async () => {
  server = await startBroker();
});
afterAll(async () => {
  await server?.close();
});

describe('outgoing topic aliases over TCP', () => {
  it('deliver every message with its topic while the wire carries aliases', async () => {
    const subscriber = await mqtt.connectAsync({ host: '127.0.0.1', port: server.port, protocolVersion: 5, properties: { topicAliasMaximum: 10 }, reconnectPeriod: 0 });
    const publisher = await mqtt.connectAsync({ host: '127.0.0.1', port: server.port, protocolVersion: 5, reconnectPeriod: 0 });
    try {
      const received: { topic: string; alias: number | undefined }[] = [];
      subscriber.on('message', (topic, _payload, packet: IPublishPacket) => received.push({ topic, alias: packet.properties?.topicAlias }));
      await subscriber.subscribeAsync('alias/#', { qos: 1 });
      for (let index = 0; index < 4; index++) await publisher.publishAsync(`alias/${index % 2}`, `m${index}`, { qos: 1 });
      await waitUntil(() => received.length === 4, 5_000, 'four messages');
      expect(received.map((r) => r.topic)).toEqual(['alias/0', 'alias/1', 'alias/0', 'alias/1']);
      expect(received.every((r) => typeof r.alias === 'number' && r.alias > 0)).toBe(true);
      expect(new Set(received.map((r) => r.alias)).size).toBe(2);
    } finally {
      await subscriber.endAsync();
      await publisher.endAsync();
    }
  });
});
