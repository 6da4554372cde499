/**
 * STUB: the broker helper replaces this file. The constructor signature is the agreed API.
 */
import type { BrokerConfig } from '../config.js';
import type { Action, BrokerCore, ConnectionId, StorageResult } from '../contract.js';
import type { StateStore } from '../store/state-store.js';

export interface BrokerOptions {
  config: BrokerConfig;
  /** Time at construction; inputs after it must not be earlier. */
  nowMs: number;
  /**
   * Where durable state goes. A store that already holds records (a restart after a crash) is
   * replayed into the new broker before it becomes `ready`.
   */
  store: StateStore;
}

export class Broker implements BrokerCore {
  constructor(_options: BrokerOptions) {
    throw new Error('not implemented');
  }
  get ready(): boolean {
    throw new Error('not implemented');
  }
  connectionOpened(_nowMs: number, _connectionId: ConnectionId, _remoteAddress: string): void {}
  bytesReceived(_nowMs: number, _connectionId: ConnectionId, _bytes: Uint8Array): void {}
  connectionClosed(_nowMs: number, _connectionId: ConnectionId): void {}
  storageCompleted(_nowMs: number, _result: StorageResult): void {}
  tick(_nowMs: number): void {}
  shutdown(_nowMs: number): void {}
  drainActions(): Action[] {
    return [];
  }
  nextDeadlineMs(): number | null {
    return null;
  }
}
