/**
 * Shared machinery for the integration tests: a broker in this process (startServer on
 * 127.0.0.1, port 0) or as a real `keel serve` child process, `mqtt` clients that are tracked and
 * ended after each test, a message collector, and a raw MQTT client on a bare socket (packets
 * built and parsed with mqtt-packet) for what a well-behaved library will not do: stop pinging,
 * withhold acknowledgements, send a second CONNECT or garbage.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type IConnackPacket, type IPublishPacket, type MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { distIsCurrent } from '../../io/dist-current.mjs';
import { type RunningServer, startServer } from '../../io/server.js';
import type { BrokerConfig } from '../../src/config.js';

export const repositoryRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export type Version = 4 | 5;
export const versions: Version[] = [4, 5];

/** clean=false plus, in 5.0, a session expiry so that the session outlives the connection. */
export function persistent(version: Version): { clean: false; properties?: { sessionExpiryInterval: number } } {
  return version === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
}

export function startBroker(config: Partial<BrokerConfig> = {}): Promise<RunningServer> {
  return startServer({ host: '127.0.0.1', port: 0, config, shutdownGraceMs: 500 });
}

/** Resolves after `ms`; tests use it only to give a forbidden event the chance to happen. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitUntil(condition: () => boolean, timeoutMs = 3_000, what = 'condition'): Promise<void> {
  const startMs = Date.now();
  while (!condition()) {
    if (Date.now() - startMs > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Creates `mqtt` clients for one test file and ends them all afterwards. */
/** The return or reason code a refused connection attempt was rejected with; fails if it was accepted. */
export async function refusalCode(connecting: Promise<unknown>): Promise<number> {
  const error = (await connecting.then(
    () => null,
    (reason: unknown) => reason,
  )) as { code?: number } | null;
  if (error === null) throw new Error('the connection was accepted');
  return error.code ?? -1;
}

/** Raw-socket clients a test opened, destroyed together (in `afterEach`) so none outlives it. */
export class RawClients {
  private readonly clients: RawClient[] = [];

  constructor(private readonly port: () => number) {}

  async open(version: Version, port = this.port()): Promise<RawClient> {
    const client = await RawClient.open(port, version);
    this.clients.push(client);
    return client;
  }

  destroyAll(): void {
    for (const client of this.clients.splice(0)) client.destroy();
  }
}

export class Clients {
  private readonly clients: MqttClient[] = [];
  private counter = 0;

  constructor(private readonly port: () => number) {}

  /** A unique client id per call, so tests never collide by accident. */
  id(prefix = 'client'): string {
    return `${prefix}-${process.pid}-${++this.counter}`;
  }

  /** Connects and resolves with the client and its CONNACK; rejects on error or refusal. */
  async connect(version: Version, options: IClientOptions = {}): Promise<{ client: MqttClient; connack: IConnackPacket; inbox: Inbox }> {
    const client = mqtt.connect({
      host: '127.0.0.1',
      port: this.port(),
      protocolVersion: version,
      clientId: this.id(),
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...options,
    });
    this.clients.push(client);
    // Attached before CONNACK so that messages a resumed session gets right away are not missed.
    const inbox = new Inbox(client);
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
      client.once('close', () => reject(new Error('closed before CONNACK')));
    });
    return { client, connack, inbox };
  }

  async endAll(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((client) => client.endAsync(true).catch(() => undefined)));
  }
}

/** Collects PUBLISH packets a client receives, in order. */
export class Inbox {
  readonly messages: IPublishPacket[] = [];

  constructor(client: MqttClient) {
    client.on('message', (_topic, _payload, packet) => this.messages.push(packet));
  }

  payloads(): string[] {
    return this.messages.map((message) => Buffer.from(message.payload).toString('utf8'));
  }

  async waitFor(count: number, timeoutMs = 3_000): Promise<IPublishPacket[]> {
    await waitUntil(() => this.messages.length >= count, timeoutMs, `${count} messages (have ${this.messages.length})`);
    return this.messages;
  }

  /** Waits for a message whose payload is `marker`: everything published before it has arrived. */
  async waitForPayload(marker: string, timeoutMs = 3_000): Promise<void> {
    await waitUntil(() => this.payloads().includes(marker), timeoutMs, `payload ${marker}`);
  }
}

/** SUBACK reason codes for one SUBSCRIBE, failures included (mqtt turns those into errors). */
export function subscribeCodes(client: MqttClient, filters: string | string[], options: mqtt.IClientSubscribeOptions): Promise<number[]> {
  return new Promise((resolve, reject) => {
    client.subscribe(filters, options, (error, _granted, suback) => {
      const codes = suback?.granted as number[] | undefined;
      if (codes !== undefined) resolve(codes);
      else reject(error ?? new Error('no SUBACK'));
    });
  });
}

/** Resolves when the client's connection closes; with the DISCONNECT reason code if one came. */
export function closedWithReason(client: MqttClient): Promise<number | null> {
  return new Promise((resolve) => {
    let reason: number | null = null;
    client.on('disconnect', (packet) => (reason = packet.reasonCode ?? 0));
    client.once('close', () => resolve(reason));
  });
}

/** A bare MQTT client: the test writes each packet and reads each answer. */
export class RawClient {
  readonly packets: Packet[] = [];
  readonly closed: Promise<void>;
  private readonly parser: ReturnType<typeof mqttPacket.parser>;
  private isClosed = false;

  private constructor(
    readonly socket: net.Socket,
    readonly version: Version,
  ) {
    this.parser = mqttPacket.parser({ protocolVersion: version });
    this.parser.on('packet', (packet: Packet) => this.packets.push(packet));
    socket.on('data', (chunk) => this.parser.parse(chunk));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  static async open(port: number, version: Version): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket, version);
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  send(packet: Packet): void {
    this.socket.write(mqttPacket.generate(packet, { protocolVersion: this.version }));
  }

  sendBytes(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** CONNECT with sensible defaults, then the CONNACK. */
  async connect(fields: Partial<mqttPacket.IConnectPacket> = {}): Promise<mqttPacket.IConnackPacket> {
    this.send({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: this.version,
      clean: true,
      keepalive: 0,
      clientId: `raw-${process.pid}-${Math.floor(Math.random() * 1e9)}`,
      ...fields,
    } as mqttPacket.IConnectPacket);
    return (await this.next('connack')) as mqttPacket.IConnackPacket;
  }

  /** The next unread packet of this type (earlier packets of other types stay readable). */
  async next<T extends Packet['cmd']>(cmd: T, timeoutMs = 3_000): Promise<Extract<Packet, { cmd: T }>> {
    let found: Packet | undefined;
    await waitUntil(
      () => {
        const index = this.packets.findIndex((packet) => packet.cmd === cmd);
        if (index < 0) return false;
        found = this.packets.splice(index, 1)[0];
        return true;
      },
      timeoutMs,
      `${cmd} on raw client`,
    );
    return found as Extract<Packet, { cmd: T }>;
  }

  count(cmd: Packet['cmd']): number {
    return this.packets.filter((packet) => packet.cmd === cmd).length;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Builds dist/ when it is missing or older than the sources (io/dist-current.mjs), so the child process runs this code. */
export function ensureBuilt(): void {
  if (distIsCurrent(repositoryRoot)) return;
  try {
    execFileSync(join(repositoryRoot, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: repositoryRoot, stdio: 'pipe' });
  } catch {
    // Type errors elsewhere in the tree still emit JavaScript; the tests judge the result.
  }
  // The package's command, as `npm run build` leaves it: `npx keel` runs it directly.
  chmodSync(join(repositoryRoot, 'dist', 'io', 'cli.js'), 0o755);
}

export interface KeelProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/**
 * Runs `node dist/io/cli.js <args>` and collects its output. A `serve` that names no admin port
 * gets `--admin-port 0`: the default 18083 would make test files running side by side collide.
 */
export function runKeel(args: string[], input?: string): KeelProcess {
  const adminChosen = args.includes('--admin-port') || args.includes('--no-admin');
  const fullArgs = args[0] === 'serve' && !adminChosen ? [...args, '--admin-port', '0'] : args;
  const child = spawn(process.execPath, [join(repositoryRoot, 'dist', 'io', 'cli.js'), ...fullArgs], { cwd: repositoryRoot, stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  if (input !== undefined) child.stdin!.end(input);
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Starts `keel serve` on 127.0.0.1 port 0 and resolves with the port from its listening line. */
export async function startKeelProcess(dataDirectory: string, extraArgs: string[] = []): Promise<KeelProcess & { port: number }> {
  const keel = runKeel(['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDirectory, ...extraArgs]);
  let port = 0;
  await Promise.race([
    waitUntil(
      () => {
        const match = /"event":"listening".*"port":(\d+)/.exec(keel.stdout());
        if (match !== null) port = Number(match[1]);
        return port > 0;
      },
      8_000,
      'the listening line',
    ),
    keel.exited.then((code) => {
      throw new Error(`keel serve exited with ${code} before listening: ${keel.stderr()}`);
    }),
  ]);
  return { ...keel, port };
}
