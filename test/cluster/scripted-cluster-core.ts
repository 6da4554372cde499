/**
 * A scripted clustered BrokerCore for testing the NATS cluster link without the real broker, and
 * the rig that runs it: the shared Driver, a minimal Host whose `cluster(request)` is the link,
 * and the link feeding the driver (as io/node-host.ts does in `keel serve`).
 *
 * The core records every cluster input in order. A test makes it issue requests (`issue`, which
 * goes through a driver input, so the request is executed while the driver runs its actions, as in
 * production). After every `connected` it re-issues what it holds (its subscriptions, its consumer,
 * its watches), as the contract asks of a clustered core. It acknowledges each hand-off delivery
 * it is given unless the test's `acknowledges` says no.
 */

import { type ClusterInput, feedDriver } from '../../io/cluster/input-queue.js';
import { NatsLink, type NatsLinkLimits } from '../../io/cluster/nats-link.js';
import { Logger } from '../../io/logger.js';
import type { Action, AdminCommand, BrokerCore, BrokerView, ClusterKeyChange, ClusterMessage, ClusterRequest, ClusterResult, ConnectionId, ConnectionPeer, StorageResult } from '../../src/contract.js';
import { Driver, type Host } from '../../src/driver.js';
import { emptyView } from '../io/scripted-core.js';

export type RecordedClusterInput =
  | { kind: 'status'; status: 'connected' | 'disconnected'; stream: string | null }
  | { kind: 'message'; message: ClusterMessage; text: string }
  | { kind: 'completed'; result: ClusterResult }
  | { kind: 'key-changed'; change: ClusterKeyChange; text: string | null }
  | { kind: 'watch-current'; bucket: string; requestId: number };

export class ScriptedClusterCore implements BrokerCore {
  readonly ready = true;
  readonly haltReason = null;
  readonly inputs: RecordedClusterInput[] = [];
  /** Whether a hand-off delivery is acknowledged (default: all are). */
  acknowledges: (message: ClusterMessage) => boolean = () => true;
  private actions: Action[] = [];
  /** Requests re-issued after every `connected`: subscribe, consume and kv-watch. */
  private readonly held: ClusterRequest[] = [];
  /** The request ids of the `consume` requests queued. */
  private readonly consumeIds = new Set<number>();

  clusterStatus(_nowMs: number, status: 'connected' | 'disconnected', stream?: string): void {
    this.inputs.push({ kind: 'status', status, stream: stream ?? null });
    if (status === 'connected') for (const request of this.held) this.actions.push({ kind: 'cluster', request });
  }

  clusterMessage(_nowMs: number, message: ClusterMessage): void {
    this.inputs.push({ kind: 'message', message, text: new TextDecoder().decode(message.payload) });
    if (message.consumerId !== null && this.acknowledges(message)) {
      this.actions.push({ kind: 'cluster', request: { op: 'ack', consumerId: message.consumerId, streamSequence: message.streamSequence! } });
    }
  }

  clusterCompleted(_nowMs: number, result: ClusterResult): void {
    this.inputs.push({ kind: 'completed', result });
  }

  clusterKeyChanged(_nowMs: number, change: ClusterKeyChange): void {
    this.inputs.push({ kind: 'key-changed', change, text: change.value === null ? null : new TextDecoder().decode(change.value) });
  }

  clusterWatchCurrent(_nowMs: number, bucket: string, requestId: number): void {
    this.inputs.push({ kind: 'watch-current', bucket, requestId });
  }

  /** Queues requests; a `hold`ing one is issued again after every later `connected`. */
  queue(requests: ClusterRequest[], hold: boolean): void {
    for (const request of requests) {
      if (request.op === 'consume') this.consumeIds.add(request.requestId);
      this.actions.push({ kind: 'cluster', request });
      if (hold) this.held.push(request);
    }
  }

  /** The answers to every request but `consume` (those are consumeAnswers). */
  completions(): ClusterResult[] {
    return this.inputs.flatMap((input) => (input.kind === 'completed' && !this.consumeIds.has(input.result.requestId) ? [input.result] : []));
  }

  /** The answers to `consume` requests (each its consumer's ack floor), in order. */
  consumeAnswers(): ClusterResult[] {
    return this.inputs.flatMap((input) => (input.kind === 'completed' && this.consumeIds.has(input.result.requestId) ? [input.result] : []));
  }

  messages(): (ClusterMessage & { text: string })[] {
    return this.inputs.flatMap((input) => (input.kind === 'message' ? [{ ...input.message, text: input.text }] : []));
  }

  statuses(): string[] {
    return this.inputs.flatMap((input) => (input.kind === 'status' ? [input.status] : []));
  }

  /** The hand-off stream each `connected` named, in order. */
  streams(): (string | null)[] {
    return this.inputs.flatMap((input) => (input.kind === 'status' && input.status === 'connected' ? [input.stream] : []));
  }

  /** Every `clusterWatchCurrent`, with how many key changes (of any bucket) came before it. */
  watchCurrents(): { bucket: string; requestId: number; afterKeyChanges: number }[] {
    const found: { bucket: string; requestId: number; afterKeyChanges: number }[] = [];
    let keyChanges = 0;
    for (const input of this.inputs) {
      if (input.kind === 'key-changed') keyChanges += 1;
      if (input.kind === 'watch-current') found.push({ bucket: input.bucket, requestId: input.requestId, afterKeyChanges: keyChanges });
    }
    return found;
  }

  keyChanges(): (ClusterKeyChange & { text: string | null })[] {
    return this.inputs.flatMap((input) => (input.kind === 'key-changed' ? [{ ...input.change, text: input.text }] : []));
  }

  connectionOpened(_nowMs: number, _connectionId: ConnectionId, _peer: ConnectionPeer): void {}
  bytesReceived(_nowMs: number, _connectionId: ConnectionId, _bytes: Uint8Array): void {}
  connectionClosed(_nowMs: number, _connectionId: ConnectionId): void {}
  outputBuffered(_nowMs: number, _connectionId: ConnectionId, _bufferedBytes: number): void {}
  storageCompleted(_nowMs: number, _result: StorageResult): void {}
  tick(_nowMs: number): void {}
  adminRequest(_nowMs: number, _requestId: number, _command: AdminCommand): void {}
  shutdown(_nowMs: number): void {}

  drainActions(): readonly Action[] {
    const actions = this.actions;
    this.actions = [];
    return actions;
  }

  nextDeadlineMs(): number | null {
    return null;
  }

  readonly view: BrokerView = emptyView;
}

/** A scripted core, the shared driver and a NATS link to `servers`, wired as `keel serve` wires them. */
export class ClusterRig {
  readonly core = new ScriptedClusterCore();
  readonly driver: Driver;
  readonly link: NatsLink;
  readonly logLines: string[] = [];
  private readonly startMs = Date.now();

  constructor(servers: readonly string[], nodeId: string, limits: Partial<NatsLinkLimits> = {}) {
    const host: Host = {
      send: () => {},
      close: () => {},
      storage: () => {},
      log: () => {},
      halt: () => {},
      setWakeup: () => {},
      cluster: (request) => this.link.request(request),
    };
    this.driver = new Driver(this.core, host);
    const logger = new Logger('debug', { write: (line: string) => this.logLines.push(line) });
    this.link = new NatsLink({ servers, nodeId, logger, deliver: (input) => this.deliver(input), limits });
  }

  /** Has the core issue `requests` now (inside a driver input, as a real core would). */
  issue(requests: ClusterRequest[], options: { hold?: boolean } = {}): void {
    this.core.queue(requests, options.hold ?? false);
    this.driver.tick(this.nowMs());
  }

  nowMs(): number {
    return Date.now() - this.startMs;
  }

  private deliver(input: ClusterInput): void {
    feedDriver(this.driver, this.nowMs(), input);
  }
}
