/**
 * The broker core run in this process over a data directory, without a listener: what the offline
 * tools (`keel stream`) use to read and change a directory exactly as the broker would.
 *
 * It takes the data directory's lock first (io/data-directory-lock.ts: a running broker there
 * makes it fail, naming that broker's PID), then drives a Broker over a DurableStateStore with the
 * Node storage backend through the production Driver, so recovery, admin commands and stream reads
 * run the same code as `keel serve`. Starting it is what `keel serve` does at start: recovery may
 * repair what a crash left (cut a torn tail, seal the log, write back stream entries the files
 * lost) and sessions that were connected are recorded as disconnected.
 *
 * An in-process connection (`connect`) lets a tool be an MQTT client of it without a socket: it
 * sends packets as the core's input and decodes what the core sends back.
 */
import { Broker } from '../src/broker/broker.js';
import { PacketDecoder } from '../src/codec/decoder.js';
import { encodePacket } from '../src/codec/encoder.js';
import type { Packet, ProtocolVersion } from '../src/codec/packets.js';
import type { BrokerConfig } from '../src/config.js';
import { type AdminCommand, type AdminOutcome, type ConnectionId, defaultListener, type StorageResult } from '../src/contract.js';
import { Driver } from '../src/driver.js';
import { DurableStateStore, streamLogOptionsFor } from '../src/store/durable-store.js';
import { MonotonicClock } from './clock.js';
import { lockDataDirectory } from './data-directory-lock.js';
import { NodeStorage } from './node-storage.js';

/** A client connected to the offline core: packets in, packets out. */
export interface OfflineConnection {
  send(packet: Packet): void;
  /** Called for every packet the core sends on this connection. */
  onPacket: (packet: Packet) => void;
  close(): void;
}

export class OfflineBroker {
  private readonly clock = new MonotonicClock();
  private readonly storage: NodeStorage;
  private readonly driver: Driver;
  readonly core: Broker;
  private readonly release: () => void;
  private timer: NodeJS.Timeout | null = null;
  private haltReason: string | null = null;
  private readonly adminWaiters = new Map<number, (outcome: AdminOutcome) => void>();
  private readonly connections = new Map<ConnectionId, { decoder: PacketDecoder; connection: OfflineConnection }>();
  private nextRequestId = 1;
  private nextConnectionId = 1;
  private readyWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  /** Warnings and errors the core logged (recovery's repairs, damage), for the tool to show. */
  readonly notices: string[] = [];

  private constructor(directory: string, config: BrokerConfig, command: string) {
    this.release = lockDataDirectory(directory, command).release;
    this.storage = new NodeStorage(directory, (result) => this.storageCompleted(result));
    const nowMs = this.clock.nowMs();
    const store = new DurableStateStore({
      syncPolicy: config.syncPolicy,
      syncIntervalMs: config.syncIntervalMs,
      segmentBytesMax: config.segmentBytesMax,
      snapshotLogBytes: config.snapshotLogBytes,
      writeBytesMax: 4 * 1024 * 1024,
      streams: streamLogOptionsFor(config),
    });
    // Stream entries are stamped with Unix time, as `keel serve` stamps them (BrokerOptions.wallClockOffsetMs).
    this.core = new Broker({ config, nowMs, store, wallClockOffsetMs: Date.now() - nowMs, logDebug: false });
    this.driver = new Driver(this.core, {
      send: (connectionId, bytes) => this.deliver(connectionId, bytes),
      close: (connectionId) => this.connections.delete(connectionId),
      storage: (request) => this.storage.submit(request),
      log: (level, event, fields) => {
        if (level === 'warn' || level === 'error') this.notices.push(`${level} ${event} ${JSON.stringify(fields)}`);
      },
      halt: (reason) => this.halted(reason),
      setWakeup: (deadlineMs) => this.setWakeup(deadlineMs),
      adminResult: (requestId, outcome) => {
        this.adminWaiters.get(requestId)?.(outcome);
        this.adminWaiters.delete(requestId);
      },
    });
    this.driver.start(nowMs);
  }

  /** Locks `directory`, recovers its state, and resolves once the core is ready. */
  static async open(directory: string, config: BrokerConfig, command: string): Promise<OfflineBroker> {
    // No $SYS figures: nobody reads them here, and they would only be written to the log.
    const broker = new OfflineBroker(directory, { ...config, sysIntervalSeconds: 0 }, command);
    try {
      await broker.whenReady();
    } catch (error) {
      await broker.close();
      throw error;
    }
    return broker;
  }

  private whenReady(): Promise<void> {
    if (this.haltReason !== null) return Promise.reject(new Error(this.haltReason));
    if (this.core.ready) return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  private storageCompleted(result: StorageResult): void {
    if (this.haltReason !== null) return;
    this.driver.storageCompleted(this.clock.nowMs(), result);
    this.checkReady();
  }

  private checkReady(): void {
    if (!this.core.ready || this.readyWaiters.length === 0) return;
    for (const waiter of this.readyWaiters.splice(0)) waiter.resolve();
  }

  private halted(reason: string): void {
    this.haltReason = reason;
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(new Error(`the broker halted: ${reason}`));
    for (const waiter of this.adminWaiters.values()) waiter({ ok: false, status: 'invalid', message: `the broker halted: ${reason}` });
    this.adminWaiters.clear();
  }

  private setWakeup(deadlineMs: number | null): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (deadlineMs === null || this.haltReason !== null) return;
    this.timer = setTimeout(() => this.driver.tick(this.clock.nowMs()), Math.max(0, deadlineMs - this.clock.nowMs()));
    this.timer.unref();
  }

  /** An operator's command, answered once what it changed is durable. */
  admin(command: AdminCommand): Promise<AdminOutcome> {
    const requestId = this.nextRequestId++;
    return new Promise((resolve) => {
      this.adminWaiters.set(requestId, resolve);
      this.driver.adminRequest(this.clock.nowMs(), requestId, command);
    });
  }

  /** A client connection into the core; `version` decides how its packets are encoded. */
  connect(version: ProtocolVersion, onPacket: (packet: Packet) => void): OfflineConnection {
    const connectionId = this.nextConnectionId++;
    const connection: OfflineConnection = {
      onPacket,
      send: (packet) => this.driver.bytesReceived(this.clock.nowMs(), connectionId, encodePacket(packet, version)),
      close: () => {
        if (this.connections.delete(connectionId)) this.driver.connectionClosed(this.clock.nowMs(), connectionId);
      },
    };
    this.connections.set(connectionId, { decoder: new PacketDecoder({ packetBytesMax: 268_435_460, protocolVersion: version }), connection });
    this.driver.connectionOpened(this.clock.nowMs(), connectionId, { remoteAddress: 'in-process', listener: defaultListener });
    return connection;
  }

  private deliver(connectionId: ConnectionId, bytes: Uint8Array): void {
    const entry = this.connections.get(connectionId);
    if (entry === undefined) return;
    entry.decoder.push(bytes);
    // Handed over after this input: the receiver may send, which is a new input.
    const packets: Packet[] = [];
    for (let packet = entry.decoder.next(); packet !== null; packet = entry.decoder.next()) packets.push(packet);
    if (packets.length === 0) return;
    setImmediate(() => {
      for (const packet of packets) entry.connection.onPacket(packet);
    });
  }

  /** Whether nothing is going on: no storage request in flight. */
  get idle(): boolean {
    return this.storage.pendingCount === 0;
  }

  get halt(): string | null {
    return this.haltReason;
  }

  /** Stops the core, lets every storage request finish, and gives the directory back. */
  async close(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.haltReason === null && this.core.ready) this.driver.shutdown(this.clock.nowMs());
    // Once quiet: what the shutdown made durable is on disk before the lock goes.
    for (let round = 0; round < 1_000 && !this.idle; round++) await new Promise((resolve) => setTimeout(resolve, 5));
    await this.storage.close();
    this.release();
  }
}
