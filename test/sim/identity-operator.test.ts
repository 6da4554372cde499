/**
 * The identity and operator worlds (sim/identity.ts, sim/operator.ts) are built as their module
 * comments promise: a share of seeds gets each, both sessionOwnerMismatch settings occur, a user
 * never publishes where its ACL denies it (the broker would refuse the message and the checker
 * would still expect it), the victim has no will and is never an admin target, and the checker's
 * own reading of the ACL (AccessOracle) agrees with the broker's RuleAuthorizer built from the same
 * plan on every topic the worlds use. The planted bugs that prove the rules are in planted-bugs.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { deepTopics } from '../../sim/coverage.js';
import { AccessOracle, aclRulesFor, impostorUser, userNames } from '../../sim/identity.js';
import { chooseShape, publishTopics } from '../../sim/shape.js';
import { topicMatches } from '../../sim/topic-match.js';
import { RuleAuthorizer } from '../../src/broker/authorizer.js';

const shapes = Array.from({ length: 600 }, (_, seed) => chooseShape(seed + 1));

describe('identity worlds', () => {
  const worlds = shapes.filter((shape) => shape.identity !== null);

  it('are a share of all worlds, under both settings, most with an impostor', () => {
    expect(worlds.length).toBeGreaterThan(50);
    expect(worlds.length).toBeLessThan(160);
    expect(worlds.some((shape) => shape.identity!.ownerMismatch === 'refuse')).toBe(true);
    expect(worlds.some((shape) => shape.identity!.ownerMismatch === 'fresh-session')).toBe(true);
    expect(worlds.every((shape) => shape.configOverrides.sessionOwnerMismatch === shape.identity!.ownerMismatch)).toBe(true);
    expect(worlds.filter((shape) => shape.identity!.impostor !== null).length).toBeGreaterThan(worlds.length / 2);
    expect(worlds.some((shape) => shape.clients.some((client) => client.identity?.verified === true && client.identity.connectUsername !== client.identity.username))).toBe(true);
  });

  it('let no user publish where its ACL denies it, and give the victim no will', () => {
    for (const shape of worlds) {
      const plan = shape.identity!;
      for (const client of shape.clients) {
        const denies = plan.denies[client.identity!.username]!;
        for (const publish of client.publishes)
          expect(
            denies.some((filter) => topicMatches(filter, publish.topic)),
            `seed ${shape.seed} c${client.index} ${publish.topic}`,
          ).toBe(false);
      }
      if (plan.impostor !== null) expect(shape.clients[plan.impostor.victim]!.will).toBeNull();
    }
  });

  it("read the ACL as the broker's RuleAuthorizer does, for every user and every topic the worlds use", () => {
    const topics = [...publishTopics, ...deepTopics, 'r/7', 'will/c3', `${impostorUser}/x`, '$SYS/broker/uptime'];
    for (const shape of worlds.slice(0, 40)) {
      const plan = shape.identity!;
      const oracle = new AccessOracle(plan);
      const authorizer = new RuleAuthorizer(aclRulesFor(plan));
      for (const username of [...userNames, impostorUser, undefined]) {
        for (const topic of topics) {
          const broker = authorizer.canReceive({ clientId: 'x', username }, topic);
          expect(oracle.mayRead(username, topic), `seed ${shape.seed} ${username ?? 'anonymous'} ${topic}`).toBe(broker);
        }
      }
    }
  });
});

describe('operator worlds', () => {
  it('issue every kind of admin command, never against the victim or, for delete-session, a client with a will', () => {
    const worlds = shapes.filter((shape) => shape.operator !== null);
    expect(worlds.length).toBeGreaterThan(50);
    const kinds = new Set(worlds.flatMap((shape) => shape.operator!.commands.map((planned) => planned.command.kind)));
    expect([...kinds].sort()).toEqual(['delete-retained', 'delete-session', 'disconnect-client']);
    for (const shape of worlds) {
      const victim = shape.identity?.impostor?.victim ?? null;
      for (const planned of shape.operator!.commands) {
        expect(planned.atMs).toBeLessThan(shape.activeMs);
        if (planned.client === null) continue;
        expect(planned.client).not.toBe(victim);
        if (planned.command.kind === 'delete-session') expect(shape.clients[planned.client]!.will).toBeNull();
      }
    }
  });

  it('give a share of worlds $SYS readers and a short $SYS interval', () => {
    const worlds = shapes.filter((shape) => shape.sysReaders);
    expect(worlds.length).toBeGreaterThan(50);
    for (const shape of worlds) {
      expect(shape.configOverrides.sysIntervalSeconds).toBeLessThanOrEqual(3);
      expect(shape.clients.some((client) => client.subscriptions.some((subscription) => subscription.filter === '$SYS/#'))).toBe(true);
    }
  });
});
