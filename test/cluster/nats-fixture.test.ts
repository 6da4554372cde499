/**
 * The NATS fixture itself: a single `nats-server -js` keeps what JetStream synced across a SIGKILL
 * and restart on its store, and the three-server cluster routes a message published on one member
 * to a subscriber on another. The cluster link's tests rely on both.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, test } from 'vitest';
import { startNats, startNatsCluster, stopAllNats } from './nats-fixture.js';

afterAll(stopAllNats);

describe('nats fixture', () => {
  test('a SIGKILLed server restarts on its store with its JetStream messages', async () => {
    const server = await startNats();
    const first = await connect({ servers: [server.url] });
    const manager = await jetstreamManager(first);
    await manager.streams.add({ name: 'FIXTURE', subjects: ['fixture.>'] });
    const ack = await jetstream(first).publish('fixture.one', new TextEncoder().encode('kept'));
    expect(ack.seq).toBe(1);
    await first.close();
    const pid = server.pid;
    await server.restart();
    expect(server.pid).not.toBe(pid);
    const second = await connect({ servers: [server.url] });
    const stored = await (await jetstreamManager(second)).streams.getMessage('FIXTURE', { seq: 1 });
    expect(stored === null ? null : new TextDecoder().decode(stored.data)).toBe('kept');
    await second.close();
    await server.stop();
  }, 30_000);

  test('a three-server cluster routes a message between members', async () => {
    const servers = await startNatsCluster();
    const subscriber = await connect({ servers: [servers[0]!.url] });
    const publisher = await connect({ servers: [servers[2]!.url] });
    const subscription = subscriber.subscribe('routed.>', { max: 1 });
    await subscriber.flush();
    // Interest crosses the routes asynchronously: publish until the first one arrives.
    const received = (async () => {
      for await (const message of subscription) return message.string();
      return null;
    })();
    const timer = setInterval(() => publisher.publish('routed.x', 'across'), 50);
    expect(await received).toBe('across');
    clearInterval(timer);
    await subscriber.close();
    await publisher.close();
    await Promise.all(servers.map((server) => server.stop()));
  }, 30_000);
});
