/**
 * Where a server is in its life, for `/healthz` and `/readyz`: starting (claiming its data
 * directory), recovering (replaying its state), opening listeners, ready, stopping, or halted
 * (the core stopped taking input; the process is about to exit). Only `ready` is ready; only
 * `halted` is not live. A halt is final: nothing moves a halted server back, and `halted`
 * resolves with its reason (RunningServer.halted).
 */
import type { Health } from './admin-server.js';

export type Phase = 'starting' | 'recovering' | 'opening listeners' | 'ready' | 'stopping' | 'halted';

export class Readiness {
  private phase: Phase = 'starting';
  private reason: string | undefined;
  private reportHalt: (reason: string) => void = () => undefined;
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

  health(): Health {
    const live = this.phase !== 'halted';
    return this.reason === undefined ? { live, ready: this.ready, status: this.phase } : { live, ready: this.ready, status: this.phase, reason: this.reason };
  }
}
