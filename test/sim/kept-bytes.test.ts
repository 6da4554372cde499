/**
 * Proves the rule `kept-bytes-alias` (sim/kept-bytes-check.ts) both ways. Fed its input as Buffers
 * from the world's chunks, the real broker keeps none of them: its retained payload, will and
 * correlation data are copies of their own. The planted `retained-payload-view` broker, which keeps
 * a retained payload as a `.slice()` of the received Buffer (a view), is named by the rule, and
 * the same broker fed plain Uint8Arrays (whose slice copies) is not: only Buffers show the bug.
 * A stream world shows that the rule walks the stream entries held in memory too.
 */
import { Buffer } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { clusterPlantedBugs } from '../../sim/cluster/cluster-planted-bugs.js';
import { InputChunks } from '../../sim/input-chunks.js';
import { brokerBehind, keptBytesAlias } from '../../sim/kept-bytes-check.js';
import { plantedBugs } from '../../sim/planted-bugs.js';
import { runSimulation } from '../../sim/simulation.js';
import { Broker, type BrokerOptions } from '../../src/broker/broker.js';
import { forEachKeptBytes } from '../../src/broker/kept-bytes.js';
import { encodePacket } from '../../src/codec/encoder.js';
import { type ConnectPacket, PacketType, type PublishPacket } from '../../src/codec/packets.js';
import { defaultConfig } from '../../src/config.js';
import { type BrokerCore, defaultListener } from '../../src/contract.js';
import { MemoryStateStore } from '../../src/store/memory-store.js';

const text = (value: string): Uint8Array => new TextEncoder().encode(value);

const connect: ConnectPacket = {
  type: PacketType.Connect,
  protocolName: 'MQTT',
  protocolVersion: 5,
  cleanStart: true,
  keepAliveSeconds: 0,
  clientId: 'publisher',
  will: { topic: 'wills/publisher', payload: text('gone'), qos: 1, retain: true, properties: { correlationData: text('will-cd') } },
};

const retained: PublishPacket = {
  type: PacketType.Publish,
  topic: 'status/a',
  payload: text('up and running'),
  qos: 0,
  retain: true,
  dup: false,
  properties: { correlationData: text('cd') },
};

/** A CONNECT and a retained PUBLISH in one input, handed over as `wrap` makes it. */
function feed(core: BrokerCore, wrap: (bytes: Uint8Array) => Uint8Array): void {
  core.connectionOpened(1_000, 1, { remoteAddress: 'sim:c0', listener: defaultListener });
  core.bytesReceived(1_000, 1, wrap(Buffer.concat([encodePacket(connect, 5), encodePacket(retained, 5)])));
  core.drainActions();
}

function brokerOptions(): BrokerOptions {
  return { config: defaultConfig, nowMs: 1_000, store: new MemoryStateStore() };
}

describe('the kept-bytes-alias rule', () => {
  it('reaches the broker behind every planted cluster bug, so the rule runs under --plant-cluster too', () => {
    const options = (): BrokerOptions => ({ config: { ...defaultConfig, cluster: { nats: ['nats://sim:4222'], nodeId: 'n0' } }, nowMs: 1_000, store: new MemoryStateStore() });
    for (const [name, factory] of Object.entries(clusterPlantedBugs)) {
      const core = factory(options());
      expect(core instanceof Broker, name).toBe(false);
      expect(brokerBehind(core), name).toBeInstanceOf(Broker);
    }
  });

  it('finds nothing in the real broker fed Buffers from the world chunks', () => {
    const chunks = new InputChunks();
    const broker = new Broker(brokerOptions());
    feed(broker, (bytes) => chunks.copy(bytes));
    let listed = 0;
    forEachKeptBytes(broker, () => listed++);
    // The retained payload and its correlation data, the will's payload and its correlation data.
    expect(listed).toBe(4);
    expect(keptBytesAlias(broker, chunks)).toBeNull();
  });

  it('names a retained payload kept as a .slice() of a Buffer input, and only for Buffers', () => {
    const chunks = new InputChunks();
    const planted = plantedBugs['retained-payload-view'](brokerOptions());
    feed(planted, (bytes) => chunks.copy(bytes));
    const broker = brokerBehind(planted)!;
    const id = broker.state.retained.get('status/a')!;
    expect(new TextDecoder().decode(broker.state.messages.get(id)!.payload)).toBe('up and running');
    expect(keptBytesAlias(planted, chunks)).toBe(`message ${id} keeps its payload (14 bytes) as a view of a 65536-byte chunk of the world's input, not a copy of its own`);

    const plainChunks = new InputChunks();
    const plain = plantedBugs['retained-payload-view'](brokerOptions());
    // A plain Uint8Array (not a Buffer) in a chunk of the pool: its slice copies, so the bug does not show.
    feed(plain, (bytes) => {
      const view = plainChunks.copy(bytes);
      return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
    });
    expect(keptBytesAlias(plain, plainChunks)).toBeNull();
  });

  it('walks the stream entries a stream world holds in memory, and the real broker passes', () => {
    const kinds = new Set<string>();
    const brokerFactory = (options: BrokerOptions): Broker => {
      const broker = new Broker(options);
      const tick = broker.tick.bind(broker);
      broker.tick = (nowMs: number) => {
        tick(nowMs);
        forEachKeptBytes(broker, (kind) => kinds.add(kind.startsWith('stream:') ? 'stream' : kind));
      };
      return broker;
    };
    // Seed 9 is a stream world (one stream).
    const result = runSimulation({ seed: 9, brokerFactory, stdout: () => {}, stderr: () => {} });
    expect(result.ok).toBe(true);
    expect(kinds.has('stream')).toBe(true);
    expect(kinds.has('message')).toBe(true);
  });
});
