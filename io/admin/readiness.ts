/**
 * Where a server is in its life, for `/healthz` and `/readyz`: starting (claiming its data
 * directory), recovering (replaying its state), warming up (io/warm-up.ts), opening listeners,
 * ready, stopping, or halted
 * (the core stopped taking input; the process is about to exit). Only `ready` is ready; only
 * `halted` is not live. A halt is final: nothing moves a halted server back, and `halted`
 * resolves with its reason (RunningServer.halted).
 *
 * A node of a cluster is also `degraded`, and not ready, while its link to NATS is down: it still
 * serves its local clients (README "Cluster"), but a load balancer should send new clients to a
 * node that reaches the rest of the cluster. `/healthz` stays live: restarting it would not help.
 * So is a node whose hand-off reader stopped at a message written by a newer Keel
 * (src/cluster/stream-format.ts): it no longer receives other nodes' QoS 1/2 messages until it
 * runs a version that reads them.
 */
import type { Health } from './admin-server.js';

export type Phase = 'starting' | 'recovering' | 'warming up' | 'opening listeners' | 'ready' | 'stopping' | 'halted';

export class Readiness {
  private phase: Phase = 'starting';
  private reason: string | undefined;
  private reportHalt: (reason: string) => void = () => undefined;
  /** A cluster node's link status (io/cluster/nats-link.ts `isUp`); null for a single broker. */
  private clusterUp: (() => boolean) | null = null;
  /** The stream sequence a cluster node's reader stopped at (a newer format), null while it reads. */
  private readerHeldAt: () => number | null = () => null;
  readonly halted = new Promise<string>((resolve) => (this.reportHalt = resolve));

  set(phase: Phase, reason?: string): void {
    if (this.phase === 'halted') return;
    this.phase = phase;
    this.reason = reason;
    if (phase === 'halted') this.reportHalt(reason ?? 'unknown');
  }

  get ready(): boolean {
    return this.phase === 'ready';
  }

  /** Makes readiness depend on the cluster link and the node's hand-off reader too (see the module comment). */
  watchCluster(isUp: () => boolean, readerHeldAt: () => number | null): void {
    this.clusterUp = isUp;
    this.readerHeldAt = readerHeldAt;
  }

  health(): Health {
    if (this.phase === 'ready' && this.clusterUp !== null && !this.clusterUp()) {
      return { live: true, ready: false, status: 'degraded', reason: 'the cluster link to NATS is down: serving local clients only' };
    }
    const heldAt = this.phase === 'ready' ? this.readerHeldAt() : null;
    if (heldAt !== null) {
      return {
        live: true,
        ready: false,
        status: 'degraded',
        reason: `hand-off stream message ${heldAt} was written by a newer Keel: this node stopped reading there and gets no QoS 1/2 messages from other nodes until it is upgraded`,
      };
    }
    const live = this.phase !== 'halted';
    return this.reason === undefined ? { live, ready: this.ready, status: this.phase } : { live, ready: this.ready, status: this.phase, reason: this.reason };
  }
}
