/**
 * `keel sub`: subscribe and print messages, like mosquitto_sub.
 *
 * Output is one line per message: the payload (default), `topic payload` (-v), a -F template, or
 * a JSON object (--json). -C exits after that many messages, -W gives up after that many seconds
 * (exit 3), and Ctrl-C disconnects cleanly (exit 0). -c asks for a persistent session (3.1.1:
 * clean session 0; 5.0: clean start 0 and, unless -x says otherwise, a session that never
 * expires), which needs a fixed client id.
 *
 * A filter the protocol forbids (`a/#/b`) is refused here before connecting (exit 2). When the
 * broker refuses any filter in its SUBACK (a code of 0x80 or above: MQTT 5 names the reason, 3.1.1
 * only says 0x80), every refused filter is printed with its reason and the command exits 1, even
 * if other filters were granted: the messages the user asked for would never come, and a warning
 * alone is easily lost when the output goes to a script. Run again without the refused filters to
 * keep the granted ones. A DISCONNECT from the broker (its reason printed) or a close by it ends
 * the command with exit 1 too.
 */
import { Command, InvalidArgumentError } from 'commander';
import type { IClientOptions, IClientSubscribeOptions, IPublishPacket } from 'mqtt';
import type { ISubackPacket } from 'mqtt-packet';
import { checkTopicFilter } from '../src/topics/validate.js';
import { brokenPipeExitCode, exitQuietlyOnBrokenPipe, stdoutBroken } from './broken-pipe.js';
import {
  addConnectionOptions,
  type ConnectionFlags,
  clientOptions,
  closeWithoutReason,
  exitCode,
  parseNonNegativeInteger,
  protocolTopicLimits,
  settle,
  UsageError,
  userProperties,
} from './client-options.js';
import { describeReasonCode } from './client-refusals.js';
import { formatJson, formatTemplate } from './message-format.js';

interface SubFlags extends ConnectionFlags {
  topic: string[];
  cleanSession: boolean;
  count?: number;
  verbose?: boolean;
  format?: string;
  json?: boolean;
  eol: boolean;
  sessionExpiry?: number;
  local: boolean;
  retainAsPublished?: boolean;
  retainHandling?: 0 | 1 | 2;
}

export function subCommand(): Command {
  const command = new Command('sub').description('subscribe and print messages (like mosquitto_sub)');
  addConnectionOptions(command)
    .option('-t, --topic <filter>', 'topic filter to subscribe to (repeatable)', (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option('-c, --disable-clean-session', 'persistent session: clean session / clean start 0 (needs -i)')
    .option('-x, --session-expiry <seconds>', 'MQTT 5 session expiry interval', parseNonNegativeInteger)
    .option('-C, --count <n>', 'exit after this many messages', parseNonNegativeInteger)
    .option('-v, --verbose', 'print "topic payload"')
    .option('-F, --format <template>', 'print with a template: %t topic, %p payload, %q qos, %r retain, %m packet id, %l length, %x hex payload, %j JSON, %% percent')
    .option('--json', 'print each message as one JSON object')
    .option('-N, --no-eol', 'do not end each message with a newline')
    .option('--no-local', 'MQTT 5: do not receive our own publications')
    .option('--retain-as-published', 'MQTT 5: keep the retain flag as published')
    .option('--retain-handling <n>', 'MQTT 5: 0 send retained, 1 only for new subscriptions, 2 never', parseRetainHandling)
    .action(async (flags: SubFlags & { disableCleanSession?: boolean }) => {
      flags.cleanSession = flags.disableCleanSession !== true;
      process.exitCode = await runSub(flags);
    });
  return command;
}

function parseRetainHandling(value: string): 0 | 1 | 2 {
  if (value === '0' || value === '1' || value === '2') return Number(value) as 0 | 1 | 2;
  throw new InvalidArgumentError('must be 0, 1 or 2');
}

async function runSub(flags: SubFlags): Promise<number> {
  let properties: Record<string, string | string[]> | undefined;
  let options: IClientOptions;
  try {
    if (flags.topic.length === 0) throw new UsageError('at least one topic filter is required (-t)');
    for (const filter of flags.topic) {
      const invalid = checkTopicFilter(filter, protocolTopicLimits);
      if (invalid !== null) throw new UsageError(`cannot subscribe to ${JSON.stringify(filter)}: ${invalid}`);
    }
    if (!flags.cleanSession && flags.id === undefined) throw new UsageError('-c needs a client id (-i)');
    properties = userProperties(flags.userProperty);
    options = clientOptions(flags, flags.cleanSession);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`keel sub: ${error.message}\n`);
    return exitCode.usage;
  }
  if (flags.protocolVersion === 5) {
    const sessionExpiryInterval = flags.sessionExpiry ?? (flags.cleanSession ? undefined : 0xffffffff);
    if (sessionExpiryInterval !== undefined) options.properties = { sessionExpiryInterval };
  }
  const subscribeOptions: IClientSubscribeOptions = { qos: flags.qos };
  if (flags.local === false) subscribeOptions.nl = true;
  if (flags.retainAsPublished === true) subscribeOptions.rap = true;
  if (flags.retainHandling !== undefined) subscribeOptions.rh = flags.retainHandling;
  if (properties !== undefined) subscribeOptions.properties = { userProperties: properties };

  // Loaded here, not at the top: `keel serve` shares this module graph and does not need it.
  const { default: mqtt } = await import('mqtt');
  const client = mqtt.connect(options);
  return new Promise<number>((resolve) => {
    const finish = settle(client, resolve, flags, 'sub', () => `the broker closed the connection (${closeWithoutReason(flags)})`);
    let received = 0;
    process.once('SIGINT', () => finish(exitCode.ok));
    // A reader that went away (`keel sub ... | head -1`) ends the run like Ctrl-C, but not as a success.
    exitQuietlyOnBrokenPipe(() => finish(brokenPipeExitCode));
    client.on('message', (_topic, _payload, packet) => {
      if (flags.count !== undefined && received >= flags.count) return;
      if (stdoutBroken()) return finish(brokenPipeExitCode);
      received++;
      process.stdout.write(render(packet, flags) + (flags.eol ? '\n' : ''));
      if (flags.count !== undefined && received >= flags.count) finish(exitCode.ok);
    });
    client.once('connect', () => {
      if (flags.count === 0) return finish(exitCode.ok);
      client.subscribe(flags.topic, subscribeOptions, (error, requested, suback) => {
        // A close before the SUBACK has already ended the run (settle's 'close' comes first).
        if (suback === undefined) return finish(exitCode.failure, `subscribe failed: ${error?.message ?? 'no SUBACK'}`);
        const refusals = describeRefusals(requested?.map((subscription) => subscription.topic) ?? flags.topic, suback, flags);
        if (refusals.length === 0) return;
        for (const refusal of refusals) process.stderr.write(`keel sub: ${refusal}\n`);
        const granted = suback.granted.length - refusals.length;
        finish(exitCode.failure, granted === 0 ? 'every subscription was refused' : `${refusals.length} of ${suback.granted.length} subscriptions refused (keel sub stops unless all are granted)`);
      });
    });
  });
}

/** One line per filter the SUBACK refused (a code of 0x80 or above), in the order requested. */
function describeRefusals(filters: string[], suback: ISubackPacket, flags: SubFlags): string[] {
  // The mqtt types allow objects here for other packets; a SUBACK carries one number per filter.
  const codes = suback.granted as number[];
  const refusals: string[] = [];
  codes.forEach((code, index) => {
    if (code < 0x80) return;
    refusals.push(`subscription to ${JSON.stringify(filters[index] ?? '?')} refused: ${describeReasonCode(code, 'suback', flags.protocolVersion)}`);
  });
  return refusals;
}

function render(packet: IPublishPacket, flags: SubFlags): string {
  if (flags.json === true) return formatJson(packet);
  if (flags.format !== undefined) return formatTemplate(flags.format, packet);
  const payload = Buffer.from(packet.payload).toString('utf8');
  return flags.verbose === true ? `${packet.topic} ${payload}` : payload;
}
