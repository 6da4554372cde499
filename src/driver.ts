/**
 * The one driver loop between the broker core and a world (the real Node backend or the
 * simulator). It lives beside the contract because both worlds share it: `io/` and `sim/` each
 * implement `Host`, and this file, like the rest of `src/`, does no I/O of its own.
 *
 * The driver feeds each input to the core, then drains every action the core queued and hands
 * it to the host, then tells the host the core's next deadline. Hosts must not call back into the
 * driver while it is executing actions (a storage request completes later, as a new input); the
 * driver asserts this, because re-entrancy would break the core's run-to-completion contract.
 * Time must never go backwards; the driver asserts that too, before the core would.
 */
import { assert } from './assert.js';
import type {
  AdminCommand,
  AdminOutcome,
  BrokerCore,
  ClusterKeyChange,
  ClusterMessage,
  ClusterRequest,
  ClusterResult,
  ConnectionId,
  ConnectionPeer,
  LogFields,
  LogLevel,
  StorageRequest,
  StorageResult,
} from './contract.js';

/** What a world must provide to run the broker. */
export interface Host {
  send(connectionId: ConnectionId, bytes: Uint8Array): void;
  close(connectionId: ConnectionId, reason: string): void;
  /** Start a storage request; its result is reported later through `Driver.storageCompleted`. */
  storage(request: StorageRequest): void;
  log(level: LogLevel, event: string, fields: LogFields): void;
  /** The core halted (see the `halt` action); no more input will be taken. */
  halt(reason: string): void;
  /** Arrange for `Driver.tick` to be called at `deadlineMs` (replacing any earlier wakeup), or never. */
  setWakeup(deadlineMs: number | null): void;
  /**
   * Stop / start reading from a connection (the core's `pause-reading` / `resume-reading`:
   * backpressure on a publisher). Optional: a host without them keeps reading, which the core
   * accepts (the pause is advisory), so a world that never throttles need not implement them.
   */
  pauseReading?(connectionId: ConnectionId): void;
  resumeReading?(connectionId: ConnectionId): void;
  /** A request on the cluster link (contract.ts ClusterRequest). Optional: only a clustered node's host implements it. */
  cluster?(request: ClusterRequest): void;
  /** The outcome of an admin request (contract.ts AdminCommand). Optional: a host that issues none need not implement it. */
  adminResult?(requestId: number, outcome: AdminOutcome): void;
}

export class Driver {
  private executing = false;
  private lastNowMs = -Infinity;

  constructor(
    readonly core: BrokerCore,
    private readonly host: Host,
  ) {}

  connectionOpened(nowMs: number, connectionId: ConnectionId, peer: ConnectionPeer): void {
    this.enter(nowMs);
    this.core.connectionOpened(nowMs, connectionId, peer);
    this.flush();
  }

  bytesReceived(nowMs: number, connectionId: ConnectionId, bytes: Uint8Array): void {
    this.enter(nowMs);
    this.core.bytesReceived(nowMs, connectionId, bytes);
    this.flush();
  }

  connectionClosed(nowMs: number, connectionId: ConnectionId): void {
    this.enter(nowMs);
    this.core.connectionClosed(nowMs, connectionId);
    this.flush();
  }

  outputBuffered(nowMs: number, connectionId: ConnectionId, bufferedBytes: number): void {
    this.enter(nowMs);
    this.core.outputBuffered(nowMs, connectionId, bufferedBytes);
    this.flush();
  }

  storageCompleted(nowMs: number, result: StorageResult): void {
    this.enter(nowMs);
    this.core.storageCompleted(nowMs, result);
    this.flush();
  }

  tick(nowMs: number): void {
    this.enter(nowMs);
    this.core.tick(nowMs);
    this.flush();
  }

  adminRequest(nowMs: number, requestId: number, command: AdminCommand): void {
    this.enter(nowMs);
    this.core.adminRequest(nowMs, requestId, command);
    this.flush();
  }

  clusterStatus(nowMs: number, status: 'connected' | 'disconnected', stream?: string): void {
    this.enter(nowMs);
    assert(this.core.clusterStatus !== undefined, 'cluster input to a core without a cluster');
    this.core.clusterStatus(nowMs, status, stream);
    this.flush();
  }

  clusterMessage(nowMs: number, message: ClusterMessage): void {
    this.enter(nowMs);
    assert(this.core.clusterMessage !== undefined, 'cluster input to a core without a cluster');
    this.core.clusterMessage(nowMs, message);
    this.flush();
  }

  /** Messages that arrived together, as one input (contract.ts ClusterInputs.clusterMessages). */
  clusterMessages(nowMs: number, messages: readonly ClusterMessage[]): void {
    this.enter(nowMs);
    assert(this.core.clusterMessages !== undefined, 'cluster input to a core without a cluster');
    this.core.clusterMessages(nowMs, messages);
    this.flush();
  }

  clusterCompleted(nowMs: number, result: ClusterResult): void {
    this.enter(nowMs);
    assert(this.core.clusterCompleted !== undefined, 'cluster input to a core without a cluster');
    this.core.clusterCompleted(nowMs, result);
    this.flush();
  }

  clusterKeyChanged(nowMs: number, change: ClusterKeyChange): void {
    this.enter(nowMs);
    assert(this.core.clusterKeyChanged !== undefined, 'cluster input to a core without a cluster');
    this.core.clusterKeyChanged(nowMs, change);
    this.flush();
  }

  clusterWatchCurrent(nowMs: number, bucket: string, requestId: number): void {
    this.enter(nowMs);
    assert(this.core.clusterWatchCurrent !== undefined, 'cluster input to a core without a cluster');
    this.core.clusterWatchCurrent(nowMs, bucket, requestId);
    this.flush();
  }

  shutdown(nowMs: number): void {
    this.enter(nowMs);
    this.core.shutdown(nowMs);
    this.flush();
  }

  /** Executes whatever the core queued outside an input (e.g. right after construction). */
  start(nowMs: number): void {
    this.enter(nowMs);
    this.flush();
  }

  private enter(nowMs: number): void {
    assert(!this.executing, 'driver re-entered while executing actions');
    // Checked before formatting: this runs on every input, and the message is only for failures.
    if (nowMs < this.lastNowMs) assert(false, `time went backwards: ${nowMs} < ${this.lastNowMs}`);
    this.lastNowMs = nowMs;
  }

  private flush(): void {
    this.executing = true;
    try {
      const actions = this.core.drainActions();
      for (let index = 0; index < actions.length; index++) {
        const action = actions[index]!;
        switch (action.kind) {
          case 'send':
            this.host.send(action.connectionId, action.bytes);
            break;
          case 'close':
            this.host.close(action.connectionId, action.reason);
            break;
          case 'storage':
            this.host.storage(action.request);
            break;
          case 'log':
            this.host.log(action.level, action.event, action.fields);
            break;
          case 'halt':
            this.host.halt(action.reason);
            break;
          case 'pause-reading':
            this.host.pauseReading?.(action.connectionId);
            break;
          case 'resume-reading':
            this.host.resumeReading?.(action.connectionId);
            break;
          case 'cluster':
            this.host.cluster?.(action.request);
            break;
          case 'admin-result':
            this.host.adminResult?.(action.requestId, action.outcome);
            break;
        }
      }
      this.host.setWakeup(this.core.nextDeadlineMs());
    } finally {
      this.executing = false;
    }
  }
}
