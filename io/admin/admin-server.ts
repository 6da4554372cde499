/**
 * The admin listener: one HTTP server (node:http) beside the MQTT listeners, for operators and
 * their tools. It serves `/healthz` and `/readyz` (for supervisors and load balancers),
 * `/metrics` (Prometheus), the JSON API under `/api/v1/` (admin-api.ts) and the dashboard page
 * (dashboard-files.ts).
 *
 * It starts before recovery, so that `/readyz` can say "recovering" while a large data directory
 * is read, and it must never disturb the broker or its MQTT clients, whatever an HTTP client
 * does. Hence a bound on everything an HTTP client controls, each with a defined outcome:
 *
 * - connections: at most `adminConnectionsMax` at once; one more is answered 503 and closed, by a
 *   plain TCP front that hands the others to the HTTP server;
 * - request bodies: at most `requestBodyBytesMax` (only `POST /api/v1/streams` takes one; others are read only to keep
 *   the connection usable); a larger one is answered 413 and the connection closed;
 * - time: the request line and headers within `headersTimeoutMs`, the whole request within
 *   `requestTimeoutMs` (Node answers 408), an idle keep-alive connection closed after
 *   `idleTimeoutMs`; a change waits `adminResultTimeoutMs` for the core (504);
 * - header size: Node's parser refuses more than `headerBytesMax` (431);
 * - reads of the broker's tables (`/metrics` and the API): at most `readsPerSecondMax` a second
 *   (a token bucket; past it 503 `busy`), since one page over 100,000 sessions costs the event loop
 *   tens of milliseconds that MQTT clients would otherwise get.
 *
 * Who may do what: with a token file, every write (any method but GET) needs `Authorization:
 * Bearer <token>`; on a listener bound to a non-loopback address (which needs a token file, see
 * admin-config.ts) reads of `/metrics` and the API need it too. Health, readiness and the
 * dashboard's static files are always open: they reveal nothing about clients. A listener bound
 * to loopback answers only requests addressed to a loopback name (the Host header), so that a web
 * page elsewhere cannot read it through DNS rebinding; browsers already refuse to send it a
 * cross-origin DELETE without a CORS preflight, which this server never grants.
 */
import http from 'node:http';
import net from 'node:net';
import { TokenBucket } from '../../src/broker/token-bucket.js';
import { MonotonicClock } from '../clock.js';
import type { Logger } from '../logger.js';
import { type ApiContext, ApiError, handleApi, type Reply } from './admin-api.js';
import type { AdminConfig } from './admin-config.js';
import { isLoopbackHost } from './admin-config.js';
import type { AdminToken } from './admin-token.js';
import { dashboardFile } from './dashboard-files.js';
import type { BrokerMetrics } from './metrics.js';

export const adminConnectionsMax = 64;
export const requestBodyBytesMax = 64 * 1024;
export const headersTimeoutMs = 5_000;
export const requestTimeoutMs = 10_000;
export const idleTimeoutMs = 30_000;
export const headerBytesMax = 16 * 1024;
/** Enough for a Prometheus scrape and a dozen open dashboards (three reads a second each). */
export const readsPerSecondMax = 50;
/** A refused connection that does not close after its 503 is destroyed after this. */
const refusedLingerMs = 1_000;

/** What `/healthz` and `/readyz` report. */
export interface Health {
  /** False once the core has halted: the process is about to exit. */
  readonly live: boolean;
  readonly ready: boolean;
  /** `starting`, `recovering`, `warming up` (io/warm-up.ts), `opening listeners`, `ready`, `degraded` (a cluster node without NATS), `stopping` or `halted`. */
  readonly status: string;
  readonly reason?: string;
}

export interface AdminServerOptions {
  readonly config: AdminConfig;
  readonly token: AdminToken | null;
  readonly api: ApiContext;
  readonly metrics: BrokerMetrics;
  health(): Health;
  readonly logger: Logger;
}

const busyResponse = (() => {
  const body = JSON.stringify({ error: { code: 'busy', message: `the admin listener has ${adminConnectionsMax} connections open` } });
  return `HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`;
})();

export class AdminServer {
  private readonly sockets = new Set<net.Socket>();
  private readonly http: http.Server;
  private readonly front: net.Server;
  private readonly loopbackOnly: boolean;
  private readonly clock = new MonotonicClock();
  private readonly reads: TokenBucket;

  private constructor(private readonly options: AdminServerOptions) {
    this.loopbackOnly = isLoopbackHost(options.config.host);
    this.reads = new TokenBucket(readsPerSecondMax, this.clock.nowMs());
    this.http = http.createServer({ requestTimeout: requestTimeoutMs, headersTimeout: headersTimeoutMs, keepAliveTimeout: 5_000, maxHeaderSize: headerBytesMax }, (request, response) => {
      void this.handle(request, response);
    });
    this.http.timeout = idleTimeoutMs;
    this.front = net.createServer((socket) => this.accept(socket));
  }

  /** Listens on the configured address; rejects (naming it) if that is impossible. */
  static async start(options: AdminServerOptions): Promise<{ server: AdminServer; address: net.AddressInfo }> {
    const server = new AdminServer(options);
    const address = await new Promise<net.AddressInfo>((resolve, reject) => {
      server.front.once('error', (error) => reject(new Error(`admin listener ${options.config.host}:${options.config.port}: ${error.message}`, { cause: error })));
      server.front.listen({ host: options.config.host, port: options.config.port }, () => resolve(server.front.address() as net.AddressInfo));
    });
    server.front.on('error', (error) => options.logger.error('admin-server-error', { message: error.message }));
    return { server, address };
  }

  /** Stops accepting and closes every connection; resolves once the listener is closed. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.front.close(() => resolve()));
    // Keep-alive connections would hold the listener open for as long as their clients like.
    for (const socket of this.sockets) socket.destroy();
    return closed;
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.sockets.size >= adminConnectionsMax) {
      this.options.metrics.countAdminRequest(503);
      socket.end(busyResponse);
      setTimeout(() => socket.destroy(), refusedLingerMs).unref();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.http.emit('connection', socket);
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const startedMs = performance.now();
    let reply: Reply;
    try {
      const body = await readBody(request);
      reply = await this.route(request, body);
    } catch (error) {
      reply = this.failure(error, request);
    }
    if (response.destroyed) return;
    this.options.metrics.countAdminRequest(reply.status);
    write(response, reply);
    this.options.logger.debug('admin-request', { method: request.method ?? '', path: request.url ?? '', status: reply.status, ms: Math.round(performance.now() - startedMs) });
  }

  private failure(error: unknown, request: http.IncomingMessage): Reply {
    if (error instanceof ApiError) {
      // After a refused body the rest of it is never read: the connection cannot be reused.
      const headers = error.status === 413 ? { ...error.headers, Connection: 'close' } : error.headers;
      return { status: error.status, body: { error: { code: error.code, message: error.message } }, headers };
    }
    this.options.logger.error('admin-request-failed', { method: request.method ?? '', path: request.url ?? '', message: (error as Error).message });
    return { status: 500, body: { error: { code: 'internal', message: 'the request failed inside the broker; see its log' } } };
  }

  private async route(request: http.IncomingMessage, body: string): Promise<Reply> {
    const method = request.method ?? 'GET';
    const url = new URL(request.url ?? '/', 'http://admin');
    this.checkHost(request);
    switch (url.pathname) {
      case '/healthz':
        return this.healthReply(method, false);
      case '/readyz':
        return this.healthReply(method, true);
      case '/metrics':
        onlyGet(method);
        this.authorize(request, false);
        this.takeRead();
        return { status: 200, body: await this.options.metrics.scrape(), headers: { 'Content-Type': this.options.metrics.contentType } };
    }
    if (url.pathname === '/api/v1' || url.pathname.startsWith('/api/v1/')) {
      this.authorize(request, method !== 'GET');
      if (method === 'GET') this.takeRead();
      return handleApi(method, pathSegments(url.pathname.slice('/api/v1/'.length)), url.searchParams, this.options.api, body);
    }
    const file = dashboardFile(url.pathname);
    if (file === null) throw new ApiError(404, 'not-found', `nothing at ${url.pathname}`);
    onlyGet(method);
    return { status: 200, body: file.bytes, headers: { 'Content-Type': file.contentType, 'Content-Security-Policy': "default-src 'self'; style-src 'self' 'unsafe-inline'" } };
  }

  private takeRead(): void {
    if (this.reads.take(this.clock.nowMs())) return;
    throw new ApiError(503, 'busy', `the admin listener serves at most ${readsPerSecondMax} reads a second`, { 'Retry-After': '1' });
  }

  private healthReply(method: string, readiness: boolean): Reply {
    onlyGet(method);
    const health = this.options.health();
    const good = readiness ? health.ready : health.live;
    const body = { status: readiness || !good ? health.status : 'ok', ...(health.reason === undefined ? {} : { reason: health.reason }) };
    return { status: good ? 200 : 503, body };
  }

  private authorize(request: http.IncomingMessage, write: boolean): void {
    const token = this.options.token;
    const needed = write ? token !== null : !this.loopbackOnly;
    if (!needed) return;
    if (token?.matches(request.headers.authorization) === true) return;
    const message = request.headers.authorization === undefined ? 'this request needs the admin token (Authorization: Bearer <token>)' : 'the admin token does not match';
    throw new ApiError(401, 'unauthorized', message, { 'WWW-Authenticate': 'Bearer realm="keel"' });
  }

  /** On a loopback listener, only requests addressed to this machine (see the module comment). */
  private checkHost(request: http.IncomingMessage): void {
    if (!this.loopbackOnly) return;
    const host = request.headers.host ?? '';
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.split(':')[0]!;
    if (isLoopbackHost(name)) return;
    throw new ApiError(403, 'forbidden', `this admin listener answers requests for a loopback host only, not ${JSON.stringify(host)}`);
  }
}

function onlyGet(method: string): void {
  if (method !== 'GET') throw new ApiError(405, 'method-not-allowed', `${method} is not allowed here; use GET`, { Allow: 'GET' });
}

/** The path's segments, each percent-decoded (a client id or topic may hold an encoded slash). */
function pathSegments(path: string): string[] {
  if (path === '') return [];
  try {
    return path.split('/').map((segment) => decodeURIComponent(segment));
  } catch {
    throw new ApiError(400, 'bad-request', 'the path is not valid percent-encoding');
  }
}

/** Reads the request body as text (only `POST /api/v1/streams` uses one), refusing one larger than requestBodyBytesMax (413). */
async function readBody(request: http.IncomingMessage): Promise<string> {
  const tooLarge = (): ApiError => new ApiError(413, 'payload-too-large', `request bodies are limited to ${requestBodyBytesMax} bytes`);
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > requestBodyBytesMax) throw tooLarge();
  let received = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of request) {
    received += (chunk as Buffer).length;
    if (received > requestBodyBytesMax) throw tooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function write(response: http.ServerResponse, reply: Reply): void {
  const isBytes = typeof reply.body === 'string' || Buffer.isBuffer(reply.body);
  const bytes = isBytes ? reply.body : `${JSON.stringify(reply.body)}\n`;
  response.writeHead(reply.status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Content-Length': Buffer.byteLength(bytes as string | Buffer),
    ...reply.headers,
  });
  response.end(bytes);
}
