/**
 * The operator in the workload: admin commands issued at random, and `$SYS` readers.
 *
 * About one swarm world in five (from the `${seed}:operator` stream) has the world issue a few
 * admin commands (contract.ts AdminCommand, through the Driver like any input) while it is active:
 * disconnect-client for any model client, delete-session for a client without a will (a deleted
 * session publishes its pending will at once, which the will-delay rules would have to excuse)
 * and never the identity world's victim (whose session the impostor judges), delete-retained for
 * a topic some client retains on. A command finds the broker up or is skipped.
 *
 * What the checker makes of them (checker.ts): a deleted session's messages and subscriptions are
 * allowed lost and the next CONNECT may find no session; once the result came back ok, the first
 * CONNECT of that client to reach the broker after the command finds no session (session present
 * 0: a deletion that was acknowledged survives crashes), and a retained message that reached the
 * broker before a delete-retained that came back ok is never seen by the audit's fresh subscriber.
 *
 * About one swarm world in five (from the `${seed}:sys` stream) also sets `sysIntervalSeconds` to
 * one to three seconds and has one or two clients subscribe to `$SYS/#`: the checker takes the
 * broker's own publications there as such (only through a filter that matches them, never as a
 * message some client published).
 */

import type { BrokerConfig } from '../src/config.js';
import type { AdminCommand } from '../src/contract.js';
import { Random } from './random.js';
import type { ClientPlan } from './shape.js';

export interface PlannedAdminCommand {
  atMs: number;
  command: AdminCommand;
  /** The model client the command is about (disconnect-client, delete-session), or null. */
  client: number | null;
}

export interface OperatorPlan {
  commands: PlannedAdminCommand[];
}

/** The admin commands of a world, or null. `victim`: the identity world's victim, never a target. */
export function chooseOperator(seed: number, clients: readonly ClientPlan[], activeMs: number, victim: number | null): OperatorPlan | null {
  const random = Random.stream(seed, 'operator');
  if (!random.chance(0.2)) return null;
  const targets = clients.filter((client) => !client.violator && client.index !== victim);
  const retainedTopics = [...new Set(clients.flatMap((client) => client.publishes.filter((publish) => publish.retain).map((publish) => publish.topic)))];
  const commands: PlannedAdminCommand[] = [];
  const count = random.int(2, 6);
  for (let index = 0; index < count; index++) {
    const atMs = random.int(500, Math.max(600, activeMs - 500));
    const kind = random.pick(['disconnect-client', 'delete-session', 'delete-retained'] as const);
    if (kind === 'delete-retained') {
      if (retainedTopics.length > 0) commands.push({ atMs, command: { kind, topic: random.pick(retainedTopics) }, client: null });
      continue;
    }
    const eligible = kind === 'delete-session' ? targets.filter((client) => client.will === null) : targets;
    if (eligible.length === 0) continue;
    const client = random.pick(eligible);
    commands.push({ atMs, command: { kind, clientId: client.clientId }, client: client.index });
  }
  commands.sort((a, b) => a.atMs - b.atMs);
  return commands.length === 0 ? null : { commands };
}

/** `$SYS` readers: sets the interval and adds `$SYS/#` to one or two clients' filter sets; true when chosen. */
export function chooseSysReaders(seed: number, clients: ClientPlan[], configOverrides: Partial<BrokerConfig>): boolean {
  const random = Random.stream(seed, 'sys');
  if (!random.chance(0.2)) return false;
  const candidates = clients.filter((client) => !client.violator);
  if (candidates.length === 0) return false;
  configOverrides.sysIntervalSeconds = random.int(1, 3);
  const readers = random.int(1, Math.min(2, candidates.length));
  for (let count = 0; count < readers; count++) {
    const client = random.pick(candidates);
    if (client.subscriptions.some((subscription) => subscription.filter === '$SYS/#')) continue;
    const subscription = { filter: '$SYS/#', qos: 0 as const };
    client.subscriptions.push(subscription);
    // Filter sets that change across sessions (coverage.ts) are separate arrays: each reads $SYS too.
    for (const set of client.coverage?.subscriptionSets ?? []) if (!set.some((entry) => entry.filter === '$SYS/#')) set.push(subscription);
  }
  return true;
}
