/**
 * Everything the admin listener serves, put together for one server: its metrics registry, the
 * dashboard's one-second series, the token, and the HTTP listener itself (admin-server.ts).
 *
 * It exists before the listener opens, because the storage backend reports sync latencies into
 * it from the first fsync of recovery, and the listener opens before recovery starts, so that
 * `/readyz` can say what the broker is doing while it recovers. Changes go to the core through
 * the Node host (NodeHost.requestAdmin), one input each, waiting at most `adminResultTimeoutMs`
 * for the core's outcome.
 */
import type net from 'node:net';
import type { BrokerView } from '../../src/contract.js';
import type { TopicLimits } from '../../src/topics/validate.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { NodeHost } from '../node-host.js';
import type { Reloadable } from '../reload.js';
import type { AdminConfig } from './admin-config.js';
import { AdminServer } from './admin-server.js';
import type { AdminToken } from './admin-token.js';
import { BrokerMetrics, type ClusterLinkFigures } from './metrics.js';
import type { Readiness } from './readiness.js';
import { Series } from './series.js';

/** How long a DELETE waits for the core to say the change is durable (then 504). */
export const adminResultTimeoutMs = 10_000;

export interface OperationsOptions {
  readonly config: AdminConfig;
  readonly token: AdminToken | null;
  readonly view: BrokerView;
  readonly readiness: Readiness;
  /** The host's clock: core times are in it. */
  readonly clock: Clock;
  readonly topicLimits: TopicLimits;
  readonly version: string;
  /** A cluster node's link to NATS, for its metrics; null for a single broker. */
  readonly cluster?: ClusterLinkFigures | null;
}

export class Operations {
  readonly metrics: BrokerMetrics;
  readonly series: Series;
  private server: AdminServer | null = null;

  constructor(private readonly options: OperationsOptions) {
    this.metrics = new BrokerMetrics({ view: options.view, ready: () => options.readiness.ready, version: options.version, cluster: options.cluster ?? null });
    this.series = new Series(options.view);
  }

  /** For NodeHostOptions.onStorageSync. */
  readonly observeSync = (op: 'sync' | 'sync-directory', seconds: number): void => {
    this.metrics.observeSync(op, seconds);
    if (op === 'sync') this.series.observeSync(seconds);
  };

  /** What SIGHUP re-reads. */
  get reloadables(): Reloadable[] {
    return this.options.token === null ? [] : [this.options.token];
  }

  /** Opens the listener; changes are carried to the core by `host`. */
  async listen(host: NodeHost, logger: Logger): Promise<net.AddressInfo> {
    const { config, token, view, readiness, clock, topicLimits } = this.options;
    const api = {
      view,
      series: this.series,
      topicLimits,
      ready: () => readiness.ready,
      requestAdmin: (command: Parameters<NodeHost['requestAdmin']>[0]) => host.requestAdmin(command, adminResultTimeoutMs),
      // Read together, so the offset is the clocks' difference now.
      wallTimeMs: (coreMs: number) => Date.now() - clock.nowMs() + coreMs,
    };
    const { server, address } = await AdminServer.start({ config, token, api, metrics: this.metrics, health: () => readiness.health(), logger });
    this.server = server;
    this.series.start();
    return address;
  }

  async close(): Promise<void> {
    this.series.stop();
    await this.server?.close();
    this.server = null;
  }
}
