/**
 * A tiny scripted BrokerCore for testing the Node backend without the real broker.
 *
 * It records every input it receives, and reacts to line commands sent by a test client:
 * `echo <text>` sends `<text>` back, `burst <n>` sends n one-byte writes, `close` closes the
 * connection, `wake <ms>` asks for a tick that many ms from now, `pause <ms>` asks the host to
 * stop reading the connection and to read it again at a tick that many ms from now, `store` issues a write+sync+read
 * storage round trip, `halt <reason>` halts the core. It can also start un-ready, becoming ready when its first storage request
 * completes, to prove the server waits for recovery before listening.
 */
import type { Action, AdminCommand, BrokerCore, BrokerView, ConnectionId, ConnectionPeer, StorageResult } from '../../src/contract.js';

export type RecordedInput =
  | { kind: 'opened'; connectionId: ConnectionId; remoteAddress: string }
  | { kind: 'bytes'; connectionId: ConnectionId; text: string }
  | { kind: 'closed'; connectionId: ConnectionId }
  | { kind: 'storage'; result: StorageResult }
  | { kind: 'tick'; nowMs: number }
  | { kind: 'shutdown' };

export class ScriptedCore implements BrokerCore {
  readonly inputs: RecordedInput[] = [];
  haltReason: string | null = null;
  readonly times: number[] = [];
  readonly outputReports: { connectionId: ConnectionId; bufferedBytes: number }[] = [];
  private actions: Action[] = [];
  private deadlineMs: number | null = null;
  private nextRequestId = 1;
  private readonly open = new Set<ConnectionId>();
  private isReady: boolean;
  private readonly pending = new Map<ConnectionId, string>();
  /** Connections this core asked the host to stop reading (`pause <ms>`), resumed at the next tick. */
  private readonly paused = new Set<ConnectionId>();

  constructor(options: { startReady: boolean }) {
    this.isReady = options.startReady;
    if (!this.isReady) this.actions.push({ kind: 'storage', request: { op: 'list', requestId: this.nextRequestId++ } });
  }

  get ready(): boolean {
    return this.isReady;
  }

  connectionOpened(nowMs: number, connectionId: ConnectionId, peer: ConnectionPeer): void {
    this.times.push(nowMs);
    this.open.add(connectionId);
    this.inputs.push({ kind: 'opened', connectionId, remoteAddress: peer.remoteAddress });
  }

  bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void {
    this.times.push(nowMs);
    const text = new TextDecoder().decode(bytes);
    this.inputs.push({ kind: 'bytes', connectionId, text });
    // Commands are newline-terminated; TCP may split or join them.
    const buffered = (this.pending.get(connectionId) ?? '') + text;
    const lines = buffered.split('\n');
    this.pending.set(connectionId, lines.pop()!);
    for (const line of lines) this.command(nowMs, connectionId, line);
  }

  connectionClosed(nowMs: number, connectionId: ConnectionId): void {
    this.times.push(nowMs);
    this.inputs.push({ kind: 'closed', connectionId });
    this.open.delete(connectionId);
  }

  /** Kept apart from `inputs`: how often a host reports depends on the OS's socket buffers. */
  outputBuffered(nowMs: number, connectionId: ConnectionId, bufferedBytes: number): void {
    this.times.push(nowMs);
    this.outputReports.push({ connectionId, bufferedBytes });
  }

  storageCompleted(nowMs: number, result: StorageResult): void {
    this.times.push(nowMs);
    this.inputs.push({ kind: 'storage', result });
    this.isReady = true;
  }

  adminRequest(nowMs: number, requestId: number, _command: AdminCommand): void {
    this.times.push(nowMs);
    this.actions.push({ kind: 'admin-result', requestId, outcome: { ok: false, status: 'invalid', message: 'scripted core' } });
  }

  /** Nothing to see: a scripted core keeps no tables. */
  readonly view: BrokerView = emptyView;

  tick(nowMs: number): void {
    this.times.push(nowMs);
    if (this.deadlineMs !== null && nowMs >= this.deadlineMs) {
      this.deadlineMs = null;
      this.inputs.push({ kind: 'tick', nowMs });
      for (const connectionId of this.paused) this.actions.push({ kind: 'resume-reading', connectionId });
      this.paused.clear();
      for (const connectionId of this.open) this.send(connectionId, 'tick\n');
    }
  }

  shutdown(nowMs: number): void {
    this.times.push(nowMs);
    this.inputs.push({ kind: 'shutdown' });
    for (const connectionId of this.open) {
      this.send(connectionId, 'bye\n');
      this.actions.push({ kind: 'close', connectionId, reason: 'shutdown' });
    }
    this.open.clear();
  }

  drainActions(): readonly Action[] {
    const actions = this.actions;
    this.actions = [];
    return actions;
  }

  nextDeadlineMs(): number | null {
    return this.deadlineMs;
  }

  private command(nowMs: number, connectionId: ConnectionId, line: string): void {
    const [verb, ...rest] = line.split(' ');
    const argument = rest.join(' ');
    if (verb === 'echo') this.send(connectionId, `${argument}\n`);
    else if (verb === 'burst') for (let index = 0; index < Number(argument); index++) this.send(connectionId, 'x');
    else if (verb === 'close') {
      this.send(connectionId, 'closing\n');
      this.actions.push({ kind: 'close', connectionId, reason: 'asked' });
      this.open.delete(connectionId);
    } else if (verb === 'halt') {
      this.haltReason = argument;
      this.actions.push({ kind: 'halt', reason: argument });
    } else if (verb === 'wake') this.deadlineMs = nowMs + Number(argument);
    else if (verb === 'pause') {
      this.actions.push({ kind: 'pause-reading', connectionId });
      this.paused.add(connectionId);
      this.deadlineMs = nowMs + Number(argument);
    } else if (verb === 'store') {
      const bytes = new TextEncoder().encode(argument);
      this.actions.push({ kind: 'storage', request: { op: 'write', requestId: this.nextRequestId++, file: 'log', offset: 0, bytes } });
      this.actions.push({ kind: 'storage', request: { op: 'sync', requestId: this.nextRequestId++, file: 'log' } });
      this.actions.push({ kind: 'storage', request: { op: 'read', requestId: this.nextRequestId++, file: 'log', offset: 0, length: 100 } });
    }
  }

  private send(connectionId: ConnectionId, text: string): void {
    if (!this.open.has(connectionId)) return;
    this.actions.push({ kind: 'send', connectionId, bytes: new TextEncoder().encode(text) });
  }
}

/** The view of a core that keeps no tables: every list empty, every figure zero. */
export const emptyView: BrokerView = {
  counters: () => ({}),
  gauges: () => ({
    sessionsOnline: 0,
    sessionsOffline: 0,
    subscriptions: 0,
    retainedMessages: 0,
    retainedBytes: 0,
    queuedMessages: 0,
    inflightMessages: 0,
    storedMessages: 0,
    clientsByListener: {},
    clientsByProtocolVersion: {},
    storage: null,
    recoveryMs: null,
    cluster: null,
  }),
  clusterReaderHeldAt: () => null,
  clients: () => [],
  client: () => null,
  sessions: () => [],
  subscriptions: () => [],
  retained: () => [],
  streams: () => [],
};
