/**
 * What a TLS handshake costs Node's own TLS server, in the two shapes a listener can take, with
 * no broker behind it: the floor under Keel's mqtts figure in `broker-bench.ts --only
 * tls-handshakes`, and the answer to whether the shape matters.
 *
 * - `listening`: a `tls.Server` that listens itself.
 * - `handed`: a `net.Server` that listens and hands each accepted socket to a `tls.Server` that
 *   never listens (`emit('connection')`), as Keel's listener does so that a PROXY header can be
 *   read before the handshake (io/listeners/tls-handshakes.ts).
 *
 * Node's `tls.Server` is itself a `net.Server` whose 'connection' listener wraps the accepted
 * `net.Socket` in a `TLSSocket` (over the socket's TCP handle), so both shapes are expected to
 * cost the same; this measures it. Each server is a child process (started fresh per shape and
 * round, shapes interleaved) with the same EC P-256 certificate as the broker benchmark, answering
 * every finished handshake with 4 bytes (a CONNACK's size) and reading whatever comes. The
 * generator in this process opens `--warmup` connections (100 in flight), each reset once the
 * answer arrives (the cold figure), then `--handshakes` more that stay open until the round ends
 * (the warm figure, with the connections held as a broker holds them). Reported: handshakes per
 * second (the generator shares the cores, so this is the pair's rate) and the server's CPU per
 * handshake, user and system (`process.cpuUsage` of the child, all its threads), medians of the
 * rounds.
 *
 * The server runs with Node's default flags unless `--node-args` gives it others: Keel's launcher
 * runs with `--max-semi-space-size=4`, so `--node-args=--max-semi-space-size=4` is the floor under
 * Keel with the same heap settings; a `--cpu-prof` given there is written when the round ends (the
 * server exits on the parent's SIGTERM). `--shapes handed` measures only Keel's shape.
 *
 * Run: npm run build && node dist/bench/tls-server-bench.js [--handshakes 2000] [--warmup 1000] [--rounds 3]
 *   [--shapes listening,handed] [--node-args="--max-semi-space-size=4"]
 */
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { benchCertificates } from './load/certificates.js';
import { integerOption } from './load/cli-options.js';

type Shape = 'listening' | 'handed';
const shapes: readonly Shape[] = ['listening', 'handed'];
const inFlight = 100;
/** A batch that takes longer than this fails the run (a stuck server or generator). */
const batchDeadlineMs = 120_000;

interface CpuReading {
  readonly userMicros: number;
  readonly systemMicros: number;
}

interface BatchFigures {
  readonly ratePerSecond: number;
  readonly userMicros: number;
  readonly systemMicros: number;
}

/** The child: one server in `shape`, its port sent to the parent, its CPU sent on each request. */
function serve(shape: Shape, certFile: string, keyFile: string): void {
  const options: tls.TlsOptions = { cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.2', ALPNProtocols: ['mqtt'] };
  const answer = Buffer.from([0x20, 0x02, 0x00, 0x00]);
  const secure = new tls.Server(options, (socket) => {
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.write(answer);
  });
  secure.on('tlsClientError', () => undefined);
  const server = shape === 'listening' ? secure : net.createServer({ noDelay: true }, (socket) => secure.emit('connection', socket));
  server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as net.AddressInfo).port }));
  // An orderly exit on the parent's kill, so that a `--cpu-prof` given in --node-args is written.
  process.on('SIGTERM', () => process.exit(0));
  process.on('message', () => {
    const usage = process.cpuUsage();
    process.send!({ userMicros: usage.user, systemMicros: usage.system } satisfies CpuReading);
  });
}

function nextMessage<T>(child: ReturnType<typeof fork>): Promise<T> {
  return new Promise((resolve) => child.once('message', (message) => resolve(message as T)));
}

async function cpuOf(child: ReturnType<typeof fork>): Promise<CpuReading> {
  const reading = nextMessage<CpuReading>(child);
  child.send('cpu');
  return reading;
}

/** Opens `count` TLS connections, `inFlight` at a time; each ends (reset) or is held once answered. */
function openBatch(port: number, context: tls.SecureContext, count: number, held: tls.TLSSocket[] | null): Promise<number> {
  const startedMs = performance.now();
  let opened = 0;
  let answered = 0;
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`${count - answered} of ${count} handshakes unanswered after ${batchDeadlineMs} ms`)), batchDeadlineMs);
    const openOne = (): void => {
      if (opened >= count) return;
      opened += 1;
      const socket = tls.connect({ host: '127.0.0.1', port, secureContext: context, servername: 'localhost', ALPNProtocols: ['mqtt'] });
      socket.on('error', (error) => reject(new Error(`handshake failed: ${error.message}`)));
      socket.once('data', () => {
        if (held === null) socket.destroy();
        else held.push(socket);
        answered += 1;
        if (answered < count) return openOne();
        clearTimeout(deadline);
        resolve(count / ((performance.now() - startedMs) / 1000));
      });
    };
    for (let index = 0; index < Math.min(inFlight, count); index++) openOne();
  });
}

async function measure(self: string, shape: Shape, warmup: number, handshakes: number, nodeArgs: readonly string[]): Promise<{ cold: BatchFigures; warm: BatchFigures }> {
  const certificates = benchCertificates();
  const child = fork(self, ['serve', shape, certificates.certFile, certificates.keyFile], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [...nodeArgs] });
  const held: tls.TLSSocket[] = [];
  try {
    const { port } = await nextMessage<{ port: number }>(child);
    const context = tls.createSecureContext({ ca: certificates.ca });
    const before = await cpuOf(child);
    const coldRate = await openBatch(port, context, warmup, null);
    const middle = await cpuOf(child);
    const warmRate = await openBatch(port, context, handshakes, held);
    const after = await cpuOf(child);
    const figures = (rate: number, from: CpuReading, to: CpuReading, count: number): BatchFigures => ({
      ratePerSecond: rate,
      userMicros: (to.userMicros - from.userMicros) / count,
      systemMicros: (to.systemMicros - from.systemMicros) / count,
    });
    return { cold: figures(coldRate, before, middle, warmup), warm: figures(warmRate, middle, after, handshakes) };
  } finally {
    for (const socket of held) socket.destroy();
    child.kill();
  }
}

function shapeList(value: string): Shape[] {
  const listed = value.split(',').map((shape) => shape.trim());
  const unknown = listed.filter((shape) => !shapes.includes(shape as Shape));
  if (unknown.length > 0 || listed.length === 0) throw new InvalidArgumentError(`shapes are ${shapes.join(', ')}; got ${value}`);
  return listed as Shape[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const program = new Command()
    .option('--handshakes <n>', 'handshakes of the warm batch, held open', integerOption(1, 15_000), 2_000)
    .option('--warmup <n>', 'handshakes of the cold batch, each reset once answered', integerOption(1, 100_000), 1_000)
    .option('--rounds <n>', 'rounds, shapes interleaved in each', integerOption(1, 20), 3)
    .option('--shapes <list>', 'the server shapes to measure, comma-separated (listening, handed)', shapeList, shapes)
    .option('--node-args <args>', "the server's node flags, space-separated (Keel's launcher: --max-semi-space-size=4)", '')
    .parse();
  const options = program.opts<{ handshakes: number; warmup: number; rounds: number; shapes: readonly Shape[]; nodeArgs: string }>();
  const nodeArgs = options.nodeArgs.split(' ').filter((arg) => arg !== '');
  const self = fileURLToPath(import.meta.url);
  const results = new Map<Shape, { cold: BatchFigures; warm: BatchFigures }[]>(options.shapes.map((shape) => [shape, []]));
  for (let round = 1; round <= options.rounds; round++) {
    for (const shape of options.shapes) {
      const figures = await measure(self, shape, options.warmup, options.handshakes, nodeArgs);
      results.get(shape)!.push(figures);
      const line = (batch: BatchFigures): string => `${batch.ratePerSecond.toFixed(0)}/s, CPU ${batch.userMicros.toFixed(0)} + ${batch.systemMicros.toFixed(0)} µs`;
      console.log(`round ${round} ${shape}: cold ${line(figures.cold)}; warm ${line(figures.warm)}`);
    }
  }
  console.log(
    `\nNode ${process.version} (server flags: ${nodeArgs.length === 0 ? 'none' : nodeArgs.join(' ')}), ${options.warmup} cold (reset) then ${options.handshakes} warm (held) handshakes, ${inFlight} in flight, medians of ${options.rounds} rounds`,
  );
  console.log('shape      batch  handshakes/s  user µs  system µs  CPU µs per handshake');
  for (const shape of options.shapes) {
    for (const batch of ['cold', 'warm'] as const) {
      const runs = results.get(shape)!.map((figures) => figures[batch]);
      const user = median(runs.map((figures) => figures.userMicros));
      const system = median(runs.map((figures) => figures.systemMicros));
      const total = median(runs.map((figures) => figures.userMicros + figures.systemMicros));
      console.log(
        `${shape.padEnd(10)} ${batch.padEnd(5)}  ${median(runs.map((figures) => figures.ratePerSecond))
          .toFixed(0)
          .padStart(12)}  ${user.toFixed(0).padStart(7)}  ${system.toFixed(0).padStart(9)}  ${total.toFixed(0).padStart(20)}`,
      );
    }
  }
}

if (process.argv[2] === 'serve') serve(process.argv[3] as Shape, process.argv[4]!, process.argv[5]!);
else await main();
