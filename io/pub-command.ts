/**
 * `keel pub`: publish one message and exit, like mosquitto_pub.
 *
 * The message comes from exactly one of -m (text), -f (file), -s (stdin) or -n (empty: with -r it
 * deletes the retained message). A topic name the protocol forbids (a wildcard, say) is refused
 * here, before connecting, by the broker's own validation (exit 2, like mosquitto_pub). The
 * command connects without retries, publishes, waits for the confirmation its QoS allows,
 * disconnects cleanly and exits 0; any refusal or failure is one readable line on stderr, with the
 * broker's reason when it gave one, and a non-zero exit (see client-options.ts for the codes).
 *
 * What exit 0 confirms depends on the QoS. QoS 1 and 2: the broker acknowledged the message with
 * a success code (PUBACK, or PUBREC then PUBCOMP); a failure code (MQTT 5, e.g. `not authorized
 * (0x87)`), a DISCONNECT or a close before the acknowledgement is exit 1. QoS 0 has no
 * acknowledgement, so after the PUBLISH the command sends a PINGREQ and waits for the PINGRESP:
 * the broker handles a connection's packets in order, so the answer proves it read the message
 * and did not close the connection over it (a broker that refuses a QoS 0 message, for a topic
 * too long for it or a packet too large, can only close). Neither QoS 0 nor MQTT 3.1.1 at any QoS
 * can confirm more: a broker that drops a message it may not route (a denied topic) says nothing
 * to a QoS 0 publisher, and a 3.1.1 acknowledgement has no reason code to refuse with.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import type { IClientOptions, IClientPublishOptions, MqttClient } from 'mqtt';
import { checkTopicName } from '../src/topics/validate.js';
import { addConnectionOptions, type ConnectionFlags, clientOptions, closeWithoutReason, exitCode, protocolTopicLimits, settle, UsageError, userProperties, whereOf } from './client-options.js';
import { describeReasonCode } from './client-refusals.js';

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

/** What the command line asks to publish, checked before any connection is made. */
interface Publication {
  topic: string;
  payload: Buffer;
  options: IClientPublishOptions;
}

async function runPub(flags: PubFlags): Promise<number> {
  let publication: Publication;
  let options: IClientOptions;
  try {
    publication = await preparePublication(flags);
    options = clientOptions(flags, true);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`keel pub: ${error.message}\n`);
    return exitCode.usage;
  }
  // Loaded here, not at the top: `keel serve` shares this module graph and does not need it.
  const { default: mqtt } = await import('mqtt');
  const client = mqtt.connect(options);
  return new Promise<number>((resolve) => {
    let stage: 'connecting' | 'publishing' = 'connecting';
    const finish = settle(client, resolve, flags, 'pub', () => describeClose(flags, stage));
    client.once('connect', () => {
      stage = 'publishing';
      client.publish(publication.topic, publication.payload, publication.options, (error) => {
        if (error) return finish(exitCode.failure, describePublishError(error, flags));
        if (flags.qos > 0) return finish(exitCode.ok);
        awaitPingResponse(client, () => finish(exitCode.ok));
      });
    });
  });
}

async function preparePublication(flags: PubFlags): Promise<Publication> {
  if (flags.topic === undefined) throw new UsageError('a topic is required (-t)');
  const invalid = checkTopicName(flags.topic, protocolTopicLimits);
  // mosquitto_pub refuses these locally too: a broker would only close the connection over them.
  if (invalid !== null) throw new UsageError(`cannot publish to ${JSON.stringify(flags.topic)}: ${invalid}`);
  const payload = await readPayload(flags);
  const properties = userProperties(flags.userProperty);
  const options: IClientPublishOptions = { qos: flags.qos, retain: flags.retain === true };
  if (properties !== undefined) options.properties = { userProperties: properties };
  return { topic: flags.topic, payload, options };
}

/**
 * QoS 0's only confirmation: a PINGREQ after the PUBLISH, answered in order. Any PINGREQ the
 * keepalive timer sent earlier is answered earlier, so the run counts the pings sent up to and
 * including its own and waits for that many answers.
 */
function awaitPingResponse(client: MqttClient, confirmed: () => void): void {
  let pingsSent = 0;
  let pingsAnswered = 0;
  let ownPingRequested = false;
  let ownPing = Number.POSITIVE_INFINITY;
  client.on('packetsend', (packet) => {
    if (packet.cmd !== 'pingreq') return;
    pingsSent += 1;
    if (ownPingRequested && ownPing === Number.POSITIVE_INFINITY) ownPing = pingsSent;
  });
  client.on('packetreceive', (packet) => {
    if (packet.cmd !== 'pingresp') return;
    pingsAnswered += 1;
    if (pingsAnswered >= ownPing) confirmed();
  });
  ownPingRequested = true;
  client.sendPing();
}

function describePublishError(error: Error & { code?: unknown }, flags: PubFlags): string {
  // mqtt puts the code of a refusing PUBACK, PUBREC or PUBCOMP on the error.
  if (typeof error.code === 'number') return `the broker refused the message: ${describeReasonCode(error.code, 'ack', flags.protocolVersion)}`;
  // mqtt fails the pending publication this way when the connection closes under it.
  if (error.message === 'Connection closed') return describeClose(flags, 'publishing');
  return `publish failed: ${error.message}`;
}

function describeClose(flags: PubFlags, stage: 'connecting' | 'publishing'): string {
  if (stage === 'connecting') return `connection to ${whereOf(flags)} closed before the broker accepted it`;
  const awaited = flags.qos === 0 ? 'confirming it had read the message' : 'acknowledging the message';
  return `the broker closed the connection before ${awaited} (${closeWithoutReason(flags)})`;
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
