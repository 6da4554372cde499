/**
 * The cluster link's inputs on their way to the driver.
 *
 * What NATS tells the link (a message, a completion, a key change, the link's status) arrives in
 * nats.js callbacks and promise continuations, at any moment, including while the driver is
 * executing the core's actions (a request made there may fail at once). The contract forbids
 * feeding the driver then, so every input is queued here and fed on a later event-loop turn
 * (setImmediate), one at a time and in arrival order, at most `inputsPerTurnMax` per turn so that
 * client sockets are served between batches.
 *
 * The queue is bounded. Sources that can wait (the durable consumer, key-value watches) ask
 * `whenBelowHighWater` before they take their next item, which stops them pulling from NATS while
 * the core is behind; JetStream keeps what they did not take. Core NATS messages cannot wait
 * (NATS pushes them), so past `inputsQueuedMax` the link drops them and counts them: they are the
 * at-most-once traffic (QoS 0), the same thing a NATS server does to a slow consumer. Statuses
 * and completions are always queued: they are bounded by the link's pending-request limit.
 */
import type { ClusterKeyChange, ClusterMessage, ClusterResult } from '../../src/contract.js';
import type { Driver } from '../../src/driver.js';

export type ClusterInput =
  | { kind: 'status'; status: 'connected' | 'disconnected'; stream?: string }
  | { kind: 'message'; message: ClusterMessage }
  | { kind: 'completed'; result: ClusterResult }
  | { kind: 'key-changed'; change: ClusterKeyChange }
  | { kind: 'watch-current'; bucket: string; requestId: number };

/** Hands one cluster input to the driver as the matching ClusterInputs call. */
export function feedDriver(driver: Driver, nowMs: number, input: ClusterInput): void {
  if (input.kind === 'status') driver.clusterStatus(nowMs, input.status, input.stream);
  else if (input.kind === 'message') driver.clusterMessage(nowMs, input.message);
  else if (input.kind === 'completed') driver.clusterCompleted(nowMs, input.result);
  else if (input.kind === 'key-changed') driver.clusterKeyChanged(nowMs, input.change);
  else driver.clusterWatchCurrent(nowMs, input.bucket, input.requestId);
}

/** Inputs fed to the driver in one event-loop turn before the rest wait for the next one. */
const inputsPerTurnMax = 256;
/** Fed slots at the head of the array are reclaimed once there are at least this many. */
const compactAfter = 1_024;

export class InputQueue {
  private items: (ClusterInput | undefined)[] = [];
  private head = 0;
  private scheduled = false;
  private stopped = false;
  private waiters: (() => void)[] = [];

  constructor(
    /** Feeds one input to the driver (on its own turn, never while the driver executes actions). */
    private readonly deliver: (input: ClusterInput) => void,
    readonly inputsQueuedMax: number,
  ) {
    if (!(Number.isInteger(inputsQueuedMax) && inputsQueuedMax >= 2)) throw new Error('inputsQueuedMax must be an integer of at least 2');
  }

  get length(): number {
    return this.items.length - this.head;
  }

  /** Whether a core NATS message may still be queued (else it is dropped by the caller). */
  get hasRoom(): boolean {
    return this.length < this.inputsQueuedMax;
  }

  push(input: ClusterInput): void {
    if (this.stopped) return;
    this.items.push(input);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.feed);
  }

  /** Whether fewer than half of `inputsQueuedMax` inputs wait (a source may take its next items). */
  get belowHighWater(): boolean {
    return this.stopped || this.length < this.inputsQueuedMax / 2;
  }

  /** Resolves once fewer than half of `inputsQueuedMax` inputs wait (at once if so already). */
  whenBelowHighWater(): Promise<void> {
    if (this.belowHighWater) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Drops what is queued and feeds nothing more; sources waiting for room are released. */
  stop(): void {
    this.stopped = true;
    this.items = [];
    this.head = 0;
    this.releaseWaiters();
  }

  private readonly feed = (): void => {
    this.scheduled = false;
    if (this.stopped) return;
    const end = Math.min(this.items.length, this.head + inputsPerTurnMax);
    while (this.head < end && !this.stopped) {
      const input = this.items[this.head]!;
      this.items[this.head++] = undefined;
      this.deliver(input);
    }
    if (this.head >= compactAfter && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    if (this.length < this.inputsQueuedMax / 2) this.releaseWaiters();
    if (this.length > 0 && !this.scheduled && !this.stopped) {
      this.scheduled = true;
      setImmediate(this.feed);
    }
  };

  private releaseWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
