/**
 * The core's publish path alone, without sockets: one publisher, one subscriber (or `subscribers`) to `t/#`, 64-byte
 * payloads at QoS 0 or 1 (each QoS 1 delivery acknowledged at once), driven straight through a
 * Broker over a MemoryStateStore, and the CPU time of this process per message.
 *
 * broker-bench's throughput figures need the generator, the kernel's loopback and both cores, and
 * on a machine shared with other work they move by 2x from run to run; this one is single-threaded
 * and reports CPU time (`process.cpuUsage`), so an A/B comparison of two builds of the core stays
 * readable under load. It is not a throughput figure for users. Usage:
 * node dist/bench/core-bench.js [qos 0|1] [messages] [subscribers 1]
 * With several subscribers (QoS 0 only) it also prints the CPU per delivery: the core's share of a
 * wide fan-out (the cluster bench's aggregate scenario).
 */
import { Broker } from '../src/broker/broker.js';
import { encodePacket } from '../src/codec/encoder.js';
import { PacketType } from '../src/codec/packets.js';
import { resolveConfig } from '../src/config.js';
import { defaultListener } from '../src/contract.js';
import { MemoryStateStore } from '../src/store/memory-store.js';

const warmupMessages = 20_000;
const packetIds = 65_535;

function main(): void {
  const qos = Number(process.argv[2] ?? 1);
  const messages = Number(process.argv[3] ?? 200_000);
  const subscribers = Number(process.argv[4] ?? 1);
  if (qos !== 0 && qos !== 1) throw new Error(`qos must be 0 or 1, got ${process.argv[2]}`);
  if (!(Number.isInteger(subscribers) && subscribers >= 1 && (qos === 0 || subscribers === 1))) throw new Error('subscribers must be a positive integer (1 at QoS 1)');
  if (!(Number.isInteger(messages) && messages > 0)) throw new Error(`messages must be a positive integer, got ${process.argv[3]}`);
  const resolved = resolveConfig({});
  if (!resolved.ok) throw new Error(resolved.problems.join('; '));
  const broker = new Broker({ config: resolved.config, nowMs: 0, store: new MemoryStateStore(), logDebug: false });
  broker.drainActions();
  const peer = { remoteAddress: 'bench', listener: defaultListener };
  const connect = (clientId: string) => encodePacket({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 4, cleanStart: true, keepAliveSeconds: 0, clientId }, 4);
  // Subscriber 0 is connection 1 (its PUBACKs below), the publisher connection 2, the others 3 on.
  for (let index = 0; index < subscribers; index++) {
    const connectionId = index === 0 ? 1 : index + 2;
    broker.connectionOpened(1, connectionId, peer);
    broker.bytesReceived(1, connectionId, connect(index === 0 ? 'subscriber' : `subscriber-${index}`));
    broker.bytesReceived(
      1,
      connectionId,
      encodePacket({ type: PacketType.Subscribe, packetId: 1, subscriptions: [{ topicFilter: 't/#', qos, noLocal: false, retainAsPublished: false, retainHandling: 0 }] }, 4),
    );
  }
  broker.connectionOpened(1, 2, peer);
  broker.bytesReceived(1, 2, connect('publisher'));
  broker.drainActions();
  const payload = new Uint8Array(64);
  // The subscriber's packet identifiers are handed out in order from 1, so its PUBACKs are known.
  const publishes = Array.from({ length: packetIds }, (_, index) =>
    encodePacket({ type: PacketType.Publish, dup: false, qos, retain: false, topic: 't/a', ...(qos === 1 ? { packetId: index + 1 } : {}), payload }, 4),
  );
  const acknowledgements = Array.from({ length: packetIds }, (_, index) => encodePacket({ type: PacketType.Puback, packetId: index + 1, reasonCode: 0 }, 4));
  let sent = 0;
  const run = (count: number, nowMs: number): void => {
    for (let index = 0; index < count; index++) {
      const slot = sent++ % packetIds;
      broker.bytesReceived(nowMs, 2, publishes[slot]!);
      if (qos === 1) broker.bytesReceived(nowMs, 1, acknowledgements[slot]!);
      if (broker.drainActions().length === 0) throw new Error('a publish produced no action');
    }
  };
  run(warmupMessages, 2);
  const sentBefore = broker.stats.messagesSent;
  const cpuStarted = process.cpuUsage();
  const startedMs = performance.now();
  run(messages, 3);
  const cpu = process.cpuUsage(cpuStarted);
  const wallMs = performance.now() - startedMs;
  const delivered = broker.stats.messagesSent - sentBefore;
  if (delivered !== messages * subscribers) throw new Error(`delivered ${delivered} of ${messages * subscribers}`);
  const cpuNanosPerMessage = ((cpu.user + cpu.system) * 1000) / messages;
  const perDelivery = subscribers === 1 ? '' : `, ${(cpuNanosPerMessage / subscribers).toFixed(0)} ns per delivery to ${subscribers} subscribers`;
  process.stdout.write(
    `core-bench qos=${qos} messages=${messages}: ${cpuNanosPerMessage.toFixed(0)} ns CPU per message (${(1e9 / cpuNanosPerMessage).toFixed(0)} msg per CPU second)${perDelivery}, wall ${((wallMs * 1e6) / messages).toFixed(0)} ns\n`,
  );
}

main();
