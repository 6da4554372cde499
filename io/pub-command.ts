/**
 * `keel pub`: publish one message and exit, like mosquitto_pub.
 *
 * The message comes from exactly one of -m (text), -f (file), -s (stdin) or -n (empty: with -r it
 * deletes the retained message). The command connects without retries, publishes, waits for the
 * acknowledgement its QoS implies, disconnects cleanly and exits 0; any failure is one readable
 * line on stderr and a non-zero exit (see client-options.ts for the codes).
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { IClientPublishOptions } from 'mqtt';
import { addConnectionOptions, type ConnectionFlags, clientOptions, exitCode, settle, UsageError, userProperties } from './client-options.js';

interface PubFlags extends ConnectionFlags {
  topic?: string;
  message?: string;
  file?: string;
  stdin?: boolean;
  nullMessage?: boolean;
  retain?: boolean;
}

export function pubCommand(): Command {
  const command = new Command('pub').description('publish one message (like mosquitto_pub)');
  addConnectionOptions(command)
    .option('-t, --topic <topic>', 'topic to publish to')
    .option('-m, --message <text>', 'message payload')
    .option('-f, --file <path>', 'send the contents of a file as the payload')
    .option('-s, --stdin', 'read the payload from standard input')
    .option('-n, --null-message', 'send a zero-length payload')
    .option('-r, --retain', 'retain the message')
    .action(async (flags: PubFlags) => {
      process.exitCode = await runPub(flags);
    });
  return command;
}

async function runPub(flags: PubFlags): Promise<number> {
  let payload: Buffer;
  let properties: Record<string, string | string[]> | undefined;
  try {
    if (flags.topic === undefined) throw new UsageError('a topic is required (-t)');
    payload = await readPayload(flags);
    properties = userProperties(flags.userProperty);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`keel pub: ${error.message}\n`);
    return exitCode.usage;
  }
  const publishOptions: IClientPublishOptions = { qos: flags.qos, retain: flags.retain === true };
  if (properties !== undefined) publishOptions.properties = { userProperties: properties };
  // Loaded here, not at the top: `keel serve` shares this module graph and does not need it.
  const { default: mqtt } = await import('mqtt');
  const client = mqtt.connect(clientOptions(flags, true));
  return new Promise<number>((resolve) => {
    const finish = settle(client, resolve, flags);
    client.once('connect', () => {
      client.publish(flags.topic!, payload, publishOptions, (error) => {
        if (error) return finish(exitCode.failure, `publish failed: ${error.message}`);
        finish(exitCode.ok);
      });
    });
  });
}

async function readPayload(flags: PubFlags): Promise<Buffer> {
  const sources = [flags.message !== undefined, flags.file !== undefined, flags.stdin === true, flags.nullMessage === true];
  const count = sources.filter(Boolean).length;
  if (count !== 1) throw new UsageError('give exactly one of -m, -f, -s, -n');
  if (flags.message !== undefined) return Buffer.from(flags.message, 'utf8');
  if (flags.nullMessage === true) return Buffer.alloc(0);
  if (flags.file !== undefined) {
    try {
      return readFileSync(flags.file);
    } catch (error) {
      throw new UsageError(`cannot read ${flags.file}: ${(error as Error).message}`);
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
