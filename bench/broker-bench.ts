/**
 * Broker benchmark: Keel against Aedes and Mosquitto on throughput, latency and memory.
 *
 * Every broker runs as its own child process on a free loopback port; the load generator
 * (bench/load) runs here, on raw sockets with pre-encoded packets, so no client library's cost is
 * in the figures. Scenarios, run order and method are described in bench/load/scenarios.ts and
 * bench/load/runner.ts. Progress goes to stderr; the machine, the exact command and ONE table go
 * to stdout, and the same as JSON to --json FILE.
 *
 * Run: `npm run build && node dist/bench/broker-bench.js [--runs 3] [--seconds 5]
 *       [--only fan-in,latency] [--brokers keel,aedes,mosquitto] [--json out.json]`
 *
 * `--operations` compares Keel with itself instead: `keel` (no admin listener, no `$SYS`) against
 * `keel-ops` (admin listener open, `$SYS` every second, `/metrics` scraped every second by the
 * harness), runs interleaved, on fan-in and QoS 1 unless --only names others. The ratio column
 * keel/keel-ops then reads as the cost of operations: 1.00x is none.
 *
 * The TLS and WebSocket scenarios: `--only tls-fan-in,tls-handshakes,ws-fan-in --brokers keel,mosquitto`.
 *
 * Node's floor: `--only idle,idle-connections --brokers keel,node-floor,mosquitto`. `node-floor` is
 * not a broker: a Node program (bench/load/node-floor-server.ts, `node:net` only) that answers each
 * CONNECT with a fixed CONNACK and holds the socket, under Keel's node flags; what it costs is
 * what any Node broker pays before doing anything. Only `idle` and `idle-connections` run it.
 */
import { writeFileSync } from 'node:fs';
import { Command } from 'commander';
import { integerOption, listOption } from './load/cli-options.js';
import { type BrokerName, brokerNames, heapProbeArguments, keelLauncherNodeFlags, keelNodeArguments, nodeFloorName, operationsBrokerName, warmBrokerName } from './load/peers.js';
import { describeMachine, ratioLegend, renderNotes, renderTable } from './load/report.js';
import { type BenchOptions, runBench, selectScenarios } from './load/runner.js';
import { openFilesLimit } from './load/scenario-kit.js';
import { idleConnectionCount, scenarios } from './load/scenarios.js';

interface Flags {
  runs: number;
  seconds: number;
  payload: number;
  only?: string[];
  brokers: string[];
  json?: string;
  connections: number;
  idleSeconds: number;
  rate: number;
  latencyWarmup: number;
  connectWarmup: number;
  connectConcurrency: number;
  tlsConnections: number;
  tlsWarmup: number;
  mqtt: number;
  keelSync: string;
  queueMax: number;
  mosquittoNodelay?: boolean;
  operations?: boolean;
}

function parseFlags(argv: string[]): Flags {
  const program = new Command('broker-bench')
    .description('Benchmark Keel against Aedes and Mosquitto (each broker in its own child process)')
    .option('--runs <n>', 'runs per scenario and broker (median reported)', integerOption(1, 100), 3)
    .option('--seconds <s>', 'measurement window of each run', integerOption(1, 600), 5)
    .option('--payload <bytes>', 'payload size', integerOption(0, 1_000_000), 64)
    .option('--only <scenarios>', `comma-separated subset of: ${scenarios.map((scenario) => scenario.name).join(', ')}`, listOption)
    .option(
      '--brokers <names>',
      `comma-separated subset of keel,aedes,mosquitto, and ${warmBrokerName} (Keel with its warm start, --warm-up-connections 2000), ${nodeFloorName} (not a broker: Node's floor, in idle and idle-connections only)`,
      listOption,
      [...brokerNames],
    )
    .option('--json <file>', 'also write the results as JSON to this file')
    .option(
      '--connections <n>',
      'connections for idle-connections (capped by the open-files limit; spread over source addresses 127.0.0.x when one would run out of ports)',
      integerOption(1, 1_000_000),
      10_000,
    )
    .option('--idle-seconds <s>', 'how long the idle scenario leaves each broker alone before its last reading', integerOption(4, 600), 30)
    .option('--rate <msgPerSecond>', 'publish rate of the latency scenario', integerOption(1, 1_000_000), 2_000)
    .option('--latency-warmup <s>', 'paced publishing before the latency scenario records (JIT warm-up of the Node brokers)', integerOption(0, 600), 4)
    .option('--connect-warmup <n>', 'connections opened and reset before idle-connections times its batch (JIT warm-up)', integerOption(0, 1_000_000), 3_000)
    .option('--connect-concurrency <n>', "handshakes in flight in idle-connections' timed batch (the warm-up batch keeps 100)", integerOption(1, 100_000), 100)
    .option('--tls-connections <n>', 'new TLS connections tls-handshakes times and keeps open (capped by the open-files limit)', integerOption(1, 1_000_000), 2_000)
    .option('--tls-warmup <n>', 'TLS connections opened and reset first in tls-handshakes (timed as the cold rate)', integerOption(0, 1_000_000), 1_000)
    .option('--mqtt <level>', 'protocol level: 4 (3.1.1) or 5 (5.0; Aedes speaks only 3.1.1)', integerOption(4, 5), 4)
    .option('--keel-sync <policy>', "Keel's syncPolicy: none (like the in-memory peers), interval or always", 'none')
    .option('--operations', 'compare keel with keel-ops (admin listener, $SYS every second, /metrics scraped every second) instead of with the peers')
    .option('--mosquitto-nodelay', 'run Mosquitto with set_tcp_nodelay true (its default keeps Nagle on, as Keel does not)')
    .option('--queue-max <n>', "per-session queued-message limit given to Keel and Mosquitto (1000: both brokers' default)", integerOption(1, 10_000_000), 1_000)
    .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  program.parse(argv);
  return program.opts<Flags>();
}

function toOptions(flags: Flags): BenchOptions {
  const known: readonly string[] = [...brokerNames, warmBrokerName, nodeFloorName];
  const unknown = flags.brokers.filter((name) => !known.includes(name));
  if (unknown.length > 0) throw new Error(`unknown broker ${unknown.join(', ')}; known: ${known.join(', ')}`);
  if (!['none', 'interval', 'always'].includes(flags.keelSync)) throw new Error('--keel-sync must be none, interval or always');
  const brokers: BrokerName[] =
    flags.operations === true ? ['keel', operationsBrokerName] : ([...brokerNames, warmBrokerName, nodeFloorName] as BrokerName[]).filter((name) => flags.brokers.includes(name));
  return {
    runs: flags.runs,
    seconds: flags.seconds,
    payloadBytes: flags.payload,
    only: flags.only ?? (flags.operations === true ? ['fan-in', 'qos1'] : null),
    brokers,
    connections: flags.connections,
    idleSeconds: flags.idleSeconds,
    rateMessagesPerSecond: flags.rate,
    latencyWarmupSeconds: flags.latencyWarmup,
    connectWarmupConnections: flags.connectWarmup,
    connectConcurrency: flags.connectConcurrency,
    tlsConnections: flags.tlsConnections,
    tlsWarmupConnections: flags.tlsWarmup,
    level: flags.mqtt as 4 | 5,
    peers: {
      // With --operations the plain keel runs have no $SYS either, so the comparison is all or nothing.
      keelConfig: { syncPolicy: flags.keelSync, queuedMessagesPerSessionMax: flags.queueMax, ...(flags.operations === true ? { sysIntervalSeconds: 0 } : {}) },
      mosquittoQueuedMessagesMax: flags.queueMax,
      mosquittoNoDelay: flags.mosquittoNodelay === true,
    },
  };
}

function describeSetup(options: BenchOptions): string[] {
  const limit = openFilesLimit();
  const floor = options.brokers.includes(nodeFloorName)
    ? [
        `${nodeFloorName}: NOT A BROKER. Node's floor: node ${[...keelLauncherNodeFlags(), ...heapProbeArguments().slice(0, 2)].join(' ')} heap-probe.js node-floor-server.js (node:net only, noDelay as Keel's listener; answers each CONNECT with a fixed CONNACK, session present 0, and holds the socket: no session, no timer, no broker); idle and idle-connections only`,
      ]
    : [];
  return [
    `settings: runs ${options.runs}, window ${options.seconds} s, payload ${options.payloadBytes} B, MQTT level ${options.level}, latency rate ${options.rateMessagesPerSecond} msg/s after ${options.latencyWarmupSeconds} s of warm-up`,
    `idle connections: ${idleConnectionCount(options.connections)} used of ${options.connections} asked (open-files limit ${limit ?? 'unknown'}; raise with ulimit -n), ${options.connectConcurrency} in flight, after ${options.connectWarmupConnections} opened (100 in flight) and reset for warm-up`,
    `keel launch: node ${keelNodeArguments().join(' ') || '(no flags)'} (its launcher line, as \`keel\` and \`npm start\` run it), plus ${heapProbeArguments().slice(0, 2).join(' ')} heap-probe.js (Keel and Aedes: their heap read on SIGUSR2, after a full collection)`,
    `keel config: ${JSON.stringify(options.peers.keelConfig)}; mosquitto: persistence false (resume-storm: true, saved at its clean exit), max_queued_messages ${options.peers.mosquittoQueuedMessagesMax}, ${options.peers.mosquittoNoDelay === true ? 'set_tcp_nodelay true, ' : ''}other settings default (max_inflight_messages 20${options.peers.mosquittoNoDelay === true ? '' : ', set_tcp_nodelay false'}); aedes: defaults (in-memory)`,
    ...floor,
    `listener scenarios: keel and mosquitto only, each listening on that protocol alone; TLS: an EC P-256 certificate and key made with openssl, the same files for both, TLS 1.2 and 1.3 allowed (both negotiate TLS 1.3, TLS_AES_256_GCM_SHA384, X25519 and two session tickets with the generator), no session reuse; tls-handshakes: ${options.tlsConnections} connections after ${options.tlsWarmupConnections} of warm-up, 100 in flight; WebSocket: Keel's ws listener, Mosquitto's protocol websockets`,
  ];
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv);
  let options: BenchOptions;
  try {
    options = toOptions(flags);
    selectScenarios(options.only);
  } catch (error) {
    process.stderr.write(`broker-bench: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const command = ['node', ...process.argv.slice(1)].join(' ');
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const result = await runBench(options, log);
  const machine = describeMachine(result.availability);
  const versions = Object.entries(machine.versions)
    .map(([broker, version]) => `${broker} ${version}`)
    .join(', ');
  const output = [
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}`,
    `brokers: ${versions}`,
    `command: ${command}`,
    ...describeSetup(options),
    '',
    renderTable(result, options.brokers),
    '',
    ratioLegend,
    ...renderNotes(result).map((note) => `note: ${note}`),
  ];
  process.stdout.write(`${output.join('\n')}\n`);
  if (flags.json !== undefined) {
    writeFileSync(flags.json, `${JSON.stringify({ machine, command, settings: describeSetup(options), options, ...result }, null, 2)}\n`);
  }
}

await main();
