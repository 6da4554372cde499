/**
 * The admin API under `/api/v1/`: JSON views of the broker's clients, sessions, subscriptions,
 * retained messages and durable streams, and the changes an operator may make (disconnect a
 * client, delete a session, delete a retained message, create or delete a stream).
 *
 * Reading is allowed, writing is not: lists come from the core's read-only view (copies, one page
 * at a time, in key order: `?limit=` up to 1,000, default 100, and `?after=` the `next` key of the
 * previous page), and every change is handed to the core as an input (NodeHost.requestAdmin), the
 * HTTP answer waiting for the core's `admin-result`, which comes once the change is durable. So a
 * `DELETE` that answered 200 holds after a crash too.
 *
 * Errors are `{"error": {"code", "message"}}` with the status that fits: 400 bad input, 404 no such
 * client, session, topic or route, 405 a method the route does not take, 409 a `$SYS` topic (the
 * broker owns those and republishes them), 503 not ready, stopping or too many waiting changes,
 * 504 no outcome in time. This module knows nothing of HTTP framing or tokens (admin-server.ts).
 */
import type { AdminCommand, AdminOutcome, BrokerView, ClientSummary, SessionSummary, SubscriptionSummary } from '../../src/contract.js';
import { checkTopicFilter, checkTopicName, isBrokerTopic, type TopicLimits } from '../../src/topics/validate.js';
import { AdminRequestError } from '../node-host.js';
import type { Series } from './series.js';

export interface ApiContext {
  readonly view: BrokerView;
  readonly series: Series;
  readonly topicLimits: TopicLimits;
  /** True once recovery has finished and every listener listens. */
  ready(): boolean;
  /** Hands a change to the core; settles with its outcome (NodeHost.requestAdmin). */
  requestAdmin(command: AdminCommand): Promise<AdminOutcome>;
  /** Wall-clock ms of a core time (the host clock's offset). */
  wallTimeMs(coreMs: number): number;
}

export interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
}

/** An answer other than success, with its stable code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const pageLimitDefault = 100;
export const pageLimitMax = 1_000;

const protocolNames: Record<number, string> = { 3: '3.1', 4: '3.1.1', 5: '5.0' };

/** Answers a request for `/api/v1/<segments>`; throws ApiError for every refusal. */
export async function handleApi(method: string, segments: readonly string[], query: URLSearchParams, context: ApiContext, body = ''): Promise<Reply> {
  const [collection, ...rest] = segments;
  if (collection === 'series' && rest.length === 0) {
    allow(method, ['GET']);
    return { status: 200, body: { intervalMs: 1_000, samples: context.series.since(optionalNumber(query, 'after')) } };
  }
  if (!context.ready()) throw new ApiError(503, 'not-ready', 'the broker is still starting (recovering its state or opening its listeners)');
  switch (collection) {
    case 'clients':
      return rest.length === 0 ? listClients(method, query, context) : clientById(method, single(rest), context);
    case 'sessions':
      if (rest.length === 0) return listSessions(method, query, context);
      allow(method, ['DELETE']);
      return change(context, { kind: 'delete-session', clientId: single(rest) }, { deleted: single(rest) });
    case 'subscriptions':
      if (rest.length > 0) break;
      allow(method, ['GET']);
      return listed(context.view.subscriptions(page(query)), page(query).limit, (item) => `${item.clientId}\u0000${item.filter}`, subscriptionJson);
    case 'retained':
      return rest.length === 0 ? listRetained(method, query, context) : deleteRetained(method, rest.join('/'), context);
    case 'streams':
      return rest.length === 0 ? streams(method, body, context) : deleteStream(method, single(rest), context);
  }
  throw new ApiError(404, 'not-found', `no such resource: /api/v1/${segments.join('/')}`);
}

function listClients(method: string, query: URLSearchParams, context: ApiContext): Reply {
  allow(method, ['GET']);
  const request = page(query);
  return listed(
    context.view.clients(request),
    request.limit,
    (item) => item.clientId,
    (item) => clientJson(item, context),
  );
}

async function clientById(method: string, clientId: string, context: ApiContext): Promise<Reply> {
  allow(method, ['GET', 'DELETE']);
  if (method === 'DELETE') return change(context, { kind: 'disconnect-client', clientId }, { disconnected: clientId });
  const client = context.view.client(clientId);
  if (client === null) throw new ApiError(404, 'not-found', `no client ${clientId} is connected`);
  return { status: 200, body: { ...clientJson(client, context), subscriptionList: client.subscriptionList.map(subscriptionJson) } };
}

function listSessions(method: string, query: URLSearchParams, context: ApiContext): Reply {
  allow(method, ['GET']);
  const request = page(query);
  return listed(context.view.sessions(request), request.limit, (item) => item.clientId, sessionJson);
}

function listRetained(method: string, query: URLSearchParams, context: ApiContext): Reply {
  allow(method, ['GET']);
  const filter = query.get('filter') ?? '#';
  const problem = checkTopicFilter(filter, context.topicLimits);
  if (problem !== null) throw new ApiError(400, 'bad-request', `filter ${JSON.stringify(filter)}: ${problem}`);
  const request = { ...page(query), filter };
  // storedAtMs is left out for the reason sessionJson gives.
  return listed(
    context.view.retained(request),
    request.limit,
    (item) => item.topic,
    ({ storedAtMs: _, ...item }) => item,
  );
}

function deleteRetained(method: string, topic: string, context: ApiContext): Promise<Reply> {
  allow(method, ['DELETE']);
  const problem = checkTopicName(topic, context.topicLimits);
  if (problem !== null) throw new ApiError(400, 'bad-request', `topic ${JSON.stringify(topic)}: ${problem}`);
  // The broker's own figures: it would not republish a deleted one until its value changes.
  if (isBrokerTopic(topic)) throw new ApiError(409, 'conflict', `${topic} belongs to the broker, which publishes and retains it itself`);
  return change(context, { kind: 'delete-retained', topic }, { deleted: topic });
}

/**
 * `GET` lists every stream (at most `streamsMax`, so one page) as the core sees it; `POST` creates
 * one from a JSON body shaped like a `streams` entry of the configuration, which the core
 * validates as it validates the configuration (400 with its reasons).
 */
function streams(method: string, body: string, context: ApiContext): Reply | Promise<Reply> {
  allow(method, ['GET', 'POST']);
  if (method === 'GET') return { status: 200, body: { items: context.view.streams(), next: null } };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new ApiError(400, 'bad-request', 'the body must be a JSON object: {"name", "filter", "retentionMs", "retentionBytes", "lastValue"}');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ApiError(400, 'bad-request', 'the body must be a JSON object');
  const fields = parsed as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((key) => !['name', 'filter', 'retentionMs', 'retentionBytes', 'lastValue'].includes(key));
  if (unknown.length > 0) throw new ApiError(400, 'bad-request', `unknown field(s): ${unknown.join(', ')}`);
  if (typeof fields.name !== 'string' || typeof fields.filter !== 'string') throw new ApiError(400, 'bad-request', 'name and filter must be strings');
  const numberOr = (value: unknown, field: string): number => {
    if (value === undefined) return 0;
    if (typeof value !== 'number') throw new ApiError(400, 'bad-request', `${field} must be a number`);
    return value;
  };
  if (fields.lastValue !== undefined && typeof fields.lastValue !== 'boolean') throw new ApiError(400, 'bad-request', 'lastValue must be true or false');
  const stream = {
    name: fields.name,
    filter: fields.filter,
    retentionMs: numberOr(fields.retentionMs, 'retentionMs'),
    retentionBytes: numberOr(fields.retentionBytes, 'retentionBytes'),
    lastValue: fields.lastValue === true,
  };
  return change(context, { kind: 'create-stream', stream }, { created: stream.name }).then((reply) => ({ ...reply, status: 201 }));
}

function deleteStream(method: string, name: string, context: ApiContext): Promise<Reply> {
  allow(method, ['DELETE']);
  return change(context, { kind: 'delete-stream', name }, { deleted: name });
}

/** Hands the change to the core and maps its outcome (or the lack of one) to an answer. */
async function change(context: ApiContext, command: AdminCommand, done: Record<string, string>): Promise<Reply> {
  let outcome: AdminOutcome;
  try {
    outcome = await context.requestAdmin(command);
  } catch (error) {
    if (!(error instanceof AdminRequestError)) throw error;
    if (error.failure === 'timeout') throw new ApiError(504, 'timeout', error.message);
    throw new ApiError(503, error.failure === 'busy' ? 'busy' : 'not-ready', error.message, { 'Retry-After': '1' });
  }
  if (outcome.ok) return { status: 200, body: done };
  if (outcome.status === 'not-found') throw new ApiError(404, 'not-found', outcome.message);
  throw new ApiError(400, 'bad-request', outcome.message);
}

function listed<T>(items: T[], limit: number, key: (item: T) => string, json: (item: T) => unknown): Reply {
  // A full page may have more after it; the client asks again with `after=<next>`.
  const next = items.length === limit && items.length > 0 ? key(items[items.length - 1]!) : null;
  return { status: 200, body: { items: items.map(json), next } };
}

function page(query: URLSearchParams): { limit: number; after?: string } {
  const limit = optionalNumber(query, 'limit') ?? pageLimitDefault;
  if (!Number.isInteger(limit) || limit < 1 || limit > pageLimitMax) throw new ApiError(400, 'bad-request', `limit must be an integer from 1 to ${pageLimitMax}`);
  const after = query.get('after');
  return after === null ? { limit } : { limit, after };
}

function optionalNumber(query: URLSearchParams, name: string): number | null {
  const text = query.get(name);
  if (text === null) return null;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw new ApiError(400, 'bad-request', `${name} must be a number`);
  return value;
}

function single(rest: readonly string[]): string {
  // A client id with a slash must come percent-encoded (%2F): one path segment.
  if (rest.length !== 1 || rest[0] === '') throw new ApiError(404, 'not-found', 'expected one client id after the collection (percent-encode a slash as %2F)');
  return rest[0]!;
}

function allow(method: string, methods: readonly string[]): void {
  if (!methods.includes(method)) throw new ApiError(405, 'method-not-allowed', `${method} is not allowed here; use ${methods.join(' or ')}`, { Allow: methods.join(', ') });
}

function clientJson(client: ClientSummary, context: ApiContext): Record<string, unknown> {
  return {
    clientId: client.clientId,
    username: client.username,
    listener: client.listener,
    remoteAddress: client.remoteAddress,
    protocolVersion: protocolNames[client.protocolVersion],
    connectedAt: new Date(context.wallTimeMs(client.connectedAtMs)).toISOString(),
    keepAliveSeconds: client.keepAliveSeconds,
    queued: client.queued,
    inflight: client.inflight,
    subscriptions: client.subscriptions,
  };
}

/**
 * Leaves out `offlineSinceMs`: a session recovered from disk carries it in the clock of the process
 * that wrote it, which this one cannot convert to wall time.
 */
function sessionJson(session: SessionSummary): Record<string, unknown> {
  const { offlineSinceMs: _, protocolVersion, ...rest } = session;
  return { ...rest, protocolVersion: protocolNames[protocolVersion] };
}

function subscriptionJson(subscription: SubscriptionSummary): SubscriptionSummary {
  return subscription;
}
