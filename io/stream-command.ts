/**
 * `keel stream`: durable streams in a data directory, offline (no broker may run there: the
 * directory's lock is taken, and a running broker's PID is named when it holds it).
 *
 *   keel stream ls [-d DIR] [--json]                       name, filter, offsets, bytes, segments, groups
 *   keel stream read NAME [-d DIR] [--from START] [-C N] [--json]
 *   keel stream create NAME --filter F [--retention-ms MS] [--retention-bytes B] [--last-value] [-d DIR]
 *   keel stream delete NAME [-d DIR]
 *
 * Each runs the broker core in this process over the directory (io/offline-broker.ts), so what it
 * shows and does is what the broker would: `ls` is the core's own view of its streams; `read` is a
 * `$stream/NAME` subscription of an in-process client (START as the `stream-offset` property:
 * earliest, latest, offset:N, time:UNIX_MS; default earliest), printed up to the stream's end as
 * it was when the command started, or N entries; `create` and `delete` are the admin commands,
 * answered once durable. Starting the core is what `keel serve` does at start: recovery may repair
 * what a crash left, so the directory may change as it would at the next start. To create or
 * delete streams of a running broker, use its admin interface.
 *
 * Exit codes: 0 done; 1 the directory is in use or damaged, the stream does not exist, or the
 * command was refused (the reason is printed); 2 a usage error.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { parseStreamStart } from '../src/broker/streams/stream-filter.js';
import { PacketType, type PublishPacket } from '../src/codec/packets.js';
import { type BrokerConfig, resolveConfig } from '../src/config.js';
import type { StreamSummary } from '../src/contract.js';
import { exitQuietlyOnBrokenPipe } from './broken-pipe.js';
import { exitCode, parseNonNegativeInteger } from './client-options.js';
import { OfflineBroker } from './offline-broker.js';

interface DirectoryFlags {
  dataDir: string;
  config?: string;
}

export function streamCommand(): Command {
  const command = new Command('stream').description('list, read, create and delete durable streams of a data directory (offline)');
  withDirectory(command.command('ls').description('list the streams: filter, first and next offset, bytes, segments, consumer groups'))
    .option('--json', 'one JSON object per stream')
    .action((flags: DirectoryFlags & { json?: boolean }) => run(flags, (broker) => list(broker, flags.json === true)));
  withDirectory(command.command('read').description('print a stream’s entries, from a start to its end'))
    .argument('<name>', 'stream name')
    .option('--from <start>', 'earliest, latest, offset:N or time:UNIX_MS', parseStart, 'earliest')
    .option('-C, --count <n>', 'stop after this many entries', parseNonNegativeInteger)
    .option('--json', 'one JSON object per entry')
    .action((name: string, flags: DirectoryFlags & { from: string; count?: number; json?: boolean }) => run(flags, (broker) => read(broker, name, flags)));
  withDirectory(command.command('create').description('create a stream'))
    .argument('<name>', 'stream name, [A-Za-z0-9_-]{1,64}')
    .requiredOption('--filter <filter>', 'topic filter of the messages it keeps')
    .option('--retention-ms <ms>', 'delete entries older than this (0: keep)', parseNonNegativeInteger)
    .option('--retention-bytes <bytes>', 'keep the stream within this many bytes (0: no bound)', parseNonNegativeInteger)
    .option('--last-value', 'keep only the newest entry of each topic (compaction)')
    .action((name: string, flags: DirectoryFlags & { filter: string; retentionMs?: number; retentionBytes?: number; lastValue?: boolean }) =>
      run(flags, (broker) =>
        administer(broker, {
          kind: 'create-stream',
          stream: { name, filter: flags.filter, retentionMs: flags.retentionMs ?? 0, retentionBytes: flags.retentionBytes ?? 0, lastValue: flags.lastValue === true },
        }),
      ),
    );
  withDirectory(command.command('delete').description('delete a stream, its subscriptions and its files'))
    .argument('<name>', 'stream name')
    .action((name: string, flags: DirectoryFlags) => run(flags, (broker) => administer(broker, { kind: 'delete-stream', name })));
  return command;
}

function withDirectory(command: Command): Command {
  return command.option('-d, --data-dir <dir>', 'data directory', './data').option('-c, --config <file>', 'JSON file of BrokerConfig settings (as given to keel serve)');
}

function parseStart(value: string): string {
  if (parseStreamStart(value) === null) throw new InvalidArgumentError('must be earliest, latest, offset:N or time:UNIX_MS');
  return value;
}

/** Opens the directory, runs `action`, closes it; sets the exit code and prints any failure. */
async function run(flags: DirectoryFlags, action: (broker: OfflineBroker) => Promise<number>): Promise<void> {
  exitQuietlyOnBrokenPipe();
  const config = loadConfig(flags.config);
  if (typeof config === 'string') {
    process.stderr.write(`keel stream: ${config}\n`);
    process.exitCode = exitCode.usage;
    return;
  }
  let broker: OfflineBroker;
  try {
    broker = await OfflineBroker.open(flags.dataDir, config, 'keel stream');
  } catch (error) {
    process.stderr.write(`keel stream: cannot open ${flags.dataDir}: ${(error as Error).message}\n`);
    process.exitCode = exitCode.failure;
    return;
  }
  try {
    process.exitCode = await action(broker);
  } finally {
    for (const notice of broker.notices) process.stderr.write(`keel stream: ${notice}\n`);
    await broker.close();
  }
}

function loadConfig(file: string | undefined): BrokerConfig | string {
  let overrides: Record<string, unknown> = {};
  if (file !== undefined) {
    try {
      overrides = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      return `cannot read config file ${file}: ${(error as Error).message}`;
    }
  }
  const resolved = resolveConfig(overrides);
  return resolved.ok ? resolved.config : `invalid configuration${file === undefined ? '' : ` in ${file}`}:\n  ${resolved.problems.join('\n  ')}`;
}

async function list(broker: OfflineBroker, json: boolean): Promise<number> {
  const streams = broker.core.view.streams();
  if (json) for (const stream of streams) process.stdout.write(`${JSON.stringify(stream)}\n`);
  else process.stdout.write(streams.length === 0 ? 'no streams\n' : `${streams.map(describe).join('\n')}\n`);
  return exitCode.ok;
}

function describe(stream: StreamSummary): string {
  const retention =
    [stream.retentionMs > 0 ? `${stream.retentionMs} ms` : null, stream.retentionBytes > 0 ? `${stream.retentionBytes} bytes` : null].filter((part) => part !== null).join(', ') || 'none';
  const lines = [
    `${stream.name}  filter ${stream.filter}${stream.lastValue ? '  last-value' : ''}`,
    `  ${stream.nextOffset === stream.firstOffset ? 'empty' : `offsets ${stream.firstOffset}..${stream.nextOffset - 1}`} (next ${stream.nextOffset})  ${stream.bytes} bytes in ${stream.segments} segments  retention ${retention}`,
  ];
  for (const group of stream.groups) lines.push(`  group ${group.group} at ${group.offset}`);
  return lines.join('\n');
}

async function administer(broker: OfflineBroker, command: Parameters<OfflineBroker['admin']>[0]): Promise<number> {
  const outcome = await broker.admin(command);
  if (outcome.ok) return exitCode.ok;
  process.stderr.write(`keel stream: ${outcome.message}\n`);
  return exitCode.failure;
}

/**
 * Reads the stream through an in-process `$stream` subscription until its end as it was at the
 * start (or `count` entries), acknowledging each entry so the window moves on.
 */
async function read(broker: OfflineBroker, name: string, flags: { from: string; count?: number; json?: boolean }): Promise<number> {
  const stream = broker.core.view.streams().find((summary) => summary.name === name);
  if (stream === undefined) {
    process.stderr.write(`keel stream: no stream ${name}\n`);
    return exitCode.failure;
  }
  const end = stream.nextOffset;
  const wanted = flags.count ?? Number.POSITIVE_INFINITY;
  if (wanted === 0 || end === stream.firstOffset || flags.from === 'latest') return exitCode.ok;
  return new Promise<number>((resolve) => {
    let printed = 0;
    let lastActivity = 0;
    let done = false;
    const finish = (code: number): void => {
      if (done) return;
      done = true;
      clearInterval(watch);
      client.close();
      resolve(code);
    };
    const client = broker.connect(5, (packet) => {
      if (done) return;
      lastActivity = Date.now();
      if (packet.type === PacketType.Suback && packet.reasonCodes[0]! >= 0x80) finish(refused(packet.properties?.reasonString));
      if (packet.type !== PacketType.Publish) return;
      if (packet.qos > 0) client.send({ type: PacketType.Puback, packetId: packet.packetId!, reasonCode: 0 });
      const offset = Number(packet.properties?.userProperties?.find(([key]) => key === 'stream-offset')?.[1] ?? -1);
      if (offset >= end) return finish(exitCode.ok);
      process.stdout.write(`${render(name, offset, packet, flags.json === true)}\n`);
      printed += 1;
      if (printed >= wanted || offset >= end - 1) finish(exitCode.ok);
    });
    // Nothing left to read (a time past the last entry, a compacted tail): the core goes quiet.
    const watch = setInterval(() => {
      if (broker.halt !== null) return finish(refused(broker.halt));
      if (broker.idle && Date.now() - lastActivity > 200) finish(exitCode.ok);
    }, 50);
    client.send({ type: PacketType.Connect, protocolName: 'MQTT', protocolVersion: 5, cleanStart: true, keepAliveSeconds: 0, clientId: 'keel-stream-read' });
    client.send({
      type: PacketType.Subscribe,
      packetId: 1,
      subscriptions: [{ topicFilter: `$stream/${name}`, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
      properties: { userProperties: [['stream-offset', flags.from]] },
    });
    lastActivity = Date.now();
  });
}

function refused(reason: string | undefined): number {
  process.stderr.write(`keel stream: ${reason ?? 'the read was refused'}\n`);
  return exitCode.failure;
}

function render(stream: string, offset: number, packet: PublishPacket, json: boolean): string {
  const payload = Buffer.from(packet.payload);
  if (!json) return `${offset} ${packet.topic} ${payload.toString('utf8')}`;
  const text = payload.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(payload);
  const ownProperties = (packet.properties?.userProperties ?? []).filter(([key]) => key !== 'stream' && key !== 'stream-offset' && key !== 'stream-skipped');
  const record: Record<string, unknown> = { stream, offset, topic: packet.topic, qos: packet.qos, payload: isText ? text : payload.toString('base64') };
  if (!isText) record.payloadEncoding = 'base64';
  if (ownProperties.length > 0) record.userProperties = ownProperties;
  if (packet.properties?.contentType !== undefined) record.contentType = packet.properties.contentType;
  return JSON.stringify(record);
}
