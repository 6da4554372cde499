/**
 * Identity worlds: authentication, an ACL, and a client id that another user claims.
 *
 * About one swarm world in six (from the `${seed}:identity` stream) gives every model client a
 * user name (alice, bob or carol) and a password the world's Authenticator checks; about a third
 * of them are authenticated by the transport instead (the ConnectionPeer's `verifiedUsername`, as
 * a mutual-TLS listener would give it) and claim another user's name in their CONNECT, which the
 * broker must ignore. The ACL (the core's RuleAuthorizer, built from rules made here) lets every
 * user write everything and read everything but one or two deny filters of its own, chosen among
 * topics no client of that user publishes to: a subscription that only overlaps a deny is granted
 * and the denied topics are withheld per message, one that a deny covers is refused. Clients
 * without a user name (the auditor, the hostile prober) are anonymous and read everything.
 *
 * One persistent client is the victim (its will is removed, so that a takeover by another user
 * raises no will question): an impostor, user `mallory` whose ACL reads and writes only
 * `mallory/#`, connects a few times with the victim's client id, asking to resume (sim/clients/
 * impostor.ts). The world's `sessionOwnerMismatch` is `refuse` or `fresh-session`.
 *
 * What the checker holds the broker to, from its own reading of these rules (AccessOracle, never
 * the broker's authorizer): no copy reaches a client whose user may not read its topic (live,
 * queued, resent, retained, shared, will); nothing the ACL withholds is owed; the impostor never
 * gets session present or any message, is refused (0x87 / rc 5) when the setting is `refuse` and
 * the victim's session surely exists, and is never refused for its identity under `fresh-session`.
 */
import type { AuthenticationDecision, AuthenticationRequest, Authenticator } from '../src/broker/authenticator.js';
import type { AclRule, AclRules } from '../src/broker/authorizer.js';
import type { BrokerConfig } from '../src/config.js';
import { Random } from './random.js';
import { type ClientPlan, publishTopics } from './shape.js';
import { topicMatches } from './topic-match.js';

export const userNames = ['alice', 'bob', 'carol'] as const;
export const impostorUser = 'mallory';

export interface ClientIdentity {
  username: string;
  /** The transport verified the user name (mutual TLS): the CONNECT's `connectUsername` is ignored. */
  verified: boolean;
  /** What the CONNECT's user name field says (for a verified client: another user's name). */
  connectUsername: string;
}

export interface ImpostorAttempt {
  atMs: number;
  protocolVersion: 4 | 5;
  /** Connect through a transport that verifies `mallory` and claim the victim's user name. */
  verified: boolean;
  holdMs: number;
}

export interface ImpostorPlan {
  victim: number;
  clientId: string;
  /** The victim's user name, claimed in the CONNECT of a verified attempt. */
  victimUsername: string;
  attempts: ImpostorAttempt[];
}

export interface IdentityPlan {
  ownerMismatch: 'refuse' | 'fresh-session';
  /** Per model client (by index): its identity. */
  clients: ClientIdentity[];
  /** Per user: the filters it may not read. */
  denies: Record<string, string[]>;
  impostor: ImpostorPlan | null;
}

/** Deny filters to draw from: topics and filters of the base workload (sim/shape.ts). */
const denyCandidates = ['a/x', 'a/y', 'b/x', 'b/y', 'c', 'b/#', 'a/+', '+/x'] as const;

/** The password the world's Authenticator expects of `username`. */
export function passwordFor(username: string): Uint8Array {
  return new TextEncoder().encode(`secret:${username}`);
}

/** The identity plan of a world, or null; gives the clients their identities and removes the victim's will. */
export function chooseIdentity(seed: number, clients: ClientPlan[], configOverrides: Partial<BrokerConfig>, activeMs: number): IdentityPlan | null {
  const random = Random.stream(seed, 'identity');
  if (!random.chance(0.16)) return null;
  const ownerMismatch = random.chance(0.5) ? 'refuse' : 'fresh-session';
  configOverrides.sessionOwnerMismatch = ownerMismatch;
  const identities: ClientIdentity[] = clients.map(() => {
    const username = random.pick([...userNames]);
    const verified = random.chance(0.35);
    return { username, verified, connectUsername: verified ? random.pick([...userNames]) : username };
  });
  const denies: Record<string, string[]> = {};
  for (const user of userNames) {
    const chosen = new Set<string>();
    const wanted = random.int(1, 2);
    for (let count = 0; count < wanted; count++) chosen.add(random.pick([...denyCandidates]));
    denies[user] = [...chosen];
  }
  // A user writes only where it may read (a deny also refuses publishing): its clients' publishes
  // to a denied topic go to the first base topic it may read instead, so the workload keeps its size.
  for (const client of clients) {
    const userDenies = denies[identities[client.index]!.username]!;
    const denied = (topic: string) => userDenies.some((filter) => topicMatches(filter, topic));
    const fallback = publishTopics.find((topic) => !denied(topic))!;
    for (const publish of client.publishes) if (denied(publish.topic)) publish.topic = fallback;
  }
  return { ownerMismatch, clients: identities, denies, impostor: chooseImpostor(random, clients, identities, activeMs) };
}

function chooseImpostor(random: Random, clients: ClientPlan[], identities: ClientIdentity[], activeMs: number): ImpostorPlan | null {
  const victims = clients.filter((client) => client.persistent && !client.violator);
  if (victims.length === 0) return null;
  const victim = random.pick(victims);
  victim.will = null;
  const attempts: ImpostorAttempt[] = [];
  const count = random.int(2, 5);
  for (let index = 0; index < count; index++) {
    attempts.push({ atMs: random.int(300, Math.max(400, activeMs - 2_000)), protocolVersion: random.pick([4, 5] as const), verified: random.chance(0.3), holdMs: random.int(100, 1_500) });
  }
  attempts.sort((a, b) => a.atMs - b.atMs);
  return { victim: victim.index, clientId: victim.clientId, victimUsername: identities[victim.index]!.username, attempts };
}

/** The ACL the world's broker enforces (RuleAuthorizer), from the plan. */
export function aclRulesFor(plan: IdentityPlan): AclRules {
  const rule = (access: AclRule['access'], filter: string): AclRule => ({ access, filter, line: 0 });
  const everything = [rule('readwrite', '#'), rule('readwrite', '$sys/#')];
  const users = new Map<string, AclRule[]>();
  for (const user of userNames) users.set(user, [...everything, ...(plan.denies[user] ?? []).map((filter) => rule('deny', filter))]);
  users.set(impostorUser, [rule('readwrite', `${impostorUser}/#`)]);
  return { users, anonymous: everything, patterns: [] };
}

/** Accepts a known user with its password, and anonymous clients (no user name, no password). */
export class WorldAuthenticator implements Authenticator {
  authenticate(request: AuthenticationRequest): AuthenticationDecision {
    if (request.username === undefined) return request.password === undefined ? { ok: true } : { ok: false, reasonCode: 0x86 };
    const known = (userNames as readonly string[]).includes(request.username) || request.username === impostorUser;
    const expected = passwordFor(request.username);
    const password = request.password;
    const matches = password !== undefined && password.length === expected.length && password.every((byte, index) => byte === expected[index]);
    return known && matches ? { ok: true } : { ok: false, reasonCode: 0x86 };
  }
}

/**
 * The checker's own reading of the world's ACL: the same rules, evaluated with the simulator's
 * naive topic matching (topic-match.ts), never through the broker's authorizer.
 */
export class AccessOracle {
  constructor(private readonly plan: IdentityPlan) {}

  /** May `username` (undefined: anonymous) read `topic`? */
  mayRead(username: string | undefined, topic: string): boolean {
    if (username === impostorUser) return topicMatches(`${impostorUser}/#`, topic);
    const granted = topicMatches('#', topic) || topicMatches('$sys/#', topic);
    if (!granted || username === undefined) return granted;
    return !(this.plan.denies[username] ?? []).some((filter) => topicMatches(filter, topic));
  }
}
