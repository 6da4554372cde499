/**
 * Proves how the Node host carries an operator's command to the core and its outcome back
 * (NodeHost.requestAdmin): the command reaches the core as an input on a later event-loop turn,
 * never inside the caller's; the promise resolves with the `admin-result` of the same request id,
 * whenever the core sends it; a request with no result in time is rejected (`timeout`) and a late
 * result for it is ignored; a core that halts rejects every waiting request (`halted`), and so
 * does a host that stops; past `adminRequestsPendingMax` waiting requests a new one is refused at
 * once (`busy`). A held-answer core stands in for the broker, so each rule is seen on its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MonotonicClock } from '../../io/clock.js';
import { Logger } from '../../io/logger.js';
import { AdminRequestError, adminRequestsPendingMax, NodeHost } from '../../io/node-host.js';
import type { Action, AdminCommand, AdminOutcome } from '../../src/contract.js';
import { Driver } from '../../src/driver.js';
import { ScriptedCore } from './scripted-core.js';

/** A core that keeps admin requests until the test answers them. */
class HoldingCore extends ScriptedCore {
  readonly received: { requestId: number; command: AdminCommand }[] = [];
  private queued: Action[] = [];

  override adminRequest(nowMs: number, requestId: number, command: AdminCommand): void {
    this.times.push(nowMs);
    this.received.push({ requestId, command });
  }

  answer(requestId: number, outcome: AdminOutcome): void {
    this.queued.push({ kind: 'admin-result', requestId, outcome });
  }

  haltNow(reason: string): void {
    this.queued.push({ kind: 'halt', reason });
  }

  override drainActions(): readonly Action[] {
    const actions = [...super.drainActions(), ...this.queued];
    this.queued = [];
    return actions;
  }
}

const directories: string[] = [];
const hosts: NodeHost[] = [];

afterEach(async () => {
  for (const host of hosts.splice(0)) await host.stop(0);
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function setup(): { core: HoldingCore; host: NodeHost; driver: Driver; clock: MonotonicClock } {
  const directory = mkdtempSync(join(tmpdir(), 'keel-admin-requests-'));
  directories.push(directory);
  const clock = new MonotonicClock();
  const core = new HoldingCore({ startReady: true });
  const host = new NodeHost({ clock, logger: new Logger('silent'), dataDirectory: directory });
  const driver = new Driver(core, host);
  host.attach(driver);
  hosts.push(host);
  return { core, host, driver, clock };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('NodeHost admin requests', () => {
  it('feeds the command on a later turn and resolves with the outcome of its own request id', async () => {
    const { core, host, driver, clock } = setup();
    const first = host.requestAdmin({ kind: 'disconnect-client', clientId: 'a' }, 5_000);
    const second = host.requestAdmin({ kind: 'delete-retained', topic: 't' }, 5_000);
    // Not fed inside the caller's turn: the caller may be inside a host callback of the driver.
    expect(core.received).toEqual([]);
    await turn();
    expect(core.received.map((request) => request.command.kind)).toEqual(['disconnect-client', 'delete-retained']);
    expect(host.adminRequestsPending).toBe(2);
    const [a, b] = core.received;
    core.answer(b!.requestId, { ok: false, status: 'not-found', message: 'no retained message on t' });
    core.answer(a!.requestId, { ok: true });
    driver.tick(clock.nowMs());
    await expect(first).resolves.toEqual({ ok: true });
    await expect(second).resolves.toMatchObject({ ok: false, status: 'not-found' });
    expect(host.adminRequestsPending).toBe(0);
  });

  it('rejects a request whose outcome does not come in time, and ignores the late outcome', async () => {
    const { core, host, driver, clock } = setup();
    const request = host.requestAdmin({ kind: 'delete-session', clientId: 's' }, 30);
    await expect(request).rejects.toMatchObject({ failure: 'timeout' });
    expect(core.received).toHaveLength(1);
    core.answer(core.received[0]!.requestId, { ok: true });
    driver.tick(clock.nowMs());
    expect(host.adminRequestsPending).toBe(0);
  });

  it('rejects every waiting request when the core halts, and new ones at once', async () => {
    const { core, host, driver, clock } = setup();
    const waiting = [host.requestAdmin({ kind: 'disconnect-client', clientId: 'a' }, 5_000), host.requestAdmin({ kind: 'disconnect-client', clientId: 'b' }, 5_000)];
    await turn();
    core.haltNow('disk on fire');
    driver.tick(clock.nowMs());
    for (const request of waiting) await expect(request).rejects.toMatchObject({ failure: 'halted' });
    await expect(host.requestAdmin({ kind: 'disconnect-client', clientId: 'c' }, 5_000)).rejects.toBeInstanceOf(AdminRequestError);
  });

  it('rejects waiting requests when the host stops', async () => {
    const { host } = setup();
    const request = host.requestAdmin({ kind: 'disconnect-client', clientId: 'a' }, 5_000);
    await turn();
    await host.stop(0);
    await expect(request).rejects.toMatchObject({ failure: 'stopping' });
  });

  it(`refuses a request beyond ${adminRequestsPendingMax} waiting ones`, async () => {
    const { host } = setup();
    const waiting = Array.from({ length: adminRequestsPendingMax }, (_, index) =>
      host.requestAdmin({ kind: 'disconnect-client', clientId: `c${index}` }, 5_000).catch((error: AdminRequestError) => error.failure),
    );
    await expect(host.requestAdmin({ kind: 'disconnect-client', clientId: 'one too many' }, 5_000)).rejects.toMatchObject({ failure: 'busy' });
    await host.stop(0);
    expect(new Set(await Promise.all(waiting))).toEqual(new Set(['stopping']));
  });
});
