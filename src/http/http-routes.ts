import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { DEV_IDENTITY_PROVIDER_PATH, type DevIdentityProvider } from '../identity/dev-identity-provider.ts';
import type { KeySetStatus } from '../identity/remote-key-set.ts';
import { sendJson } from '../lib/send-json.ts';
import { type Logger, loggablePath } from '../logger.ts';
import type { GatewayMetrics } from '../metrics.ts';
import { WEBHOOK_PATH } from '../webhooks/webhooks.ts';
import { createHostAllowList, type HostAllowList } from './allowed-hosts.ts';
import { GRAPHIQL_ASSETS_PATH } from './graphiql.ts';

/** Largest GraphQL request body accepted, in bytes. */
export const MAX_REQUEST_BYTES = 256 * 1024;

export interface HttpRoutesOptions {
  /** GraphQL over HTTP, SSE and GraphiQL (yoga): everything the other routes do not take. */
  graphql: (request: IncomingMessage, response: ServerResponse) => unknown;
  /** GraphiQL's static assets; null: neither they nor the demo page are served (`GRAPHIQL=off`). */
  graphiql: { handle(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> } | null;
  webhooks: { handle(request: IncomingMessage, response: ServerResponse, token: string): Promise<void> };
  metrics: GatewayMetrics;
  logger: Logger;
  /** The `Host` names GraphQL, GraphiQL and the demo page answer on (`ALLOWED_HOSTS`). Default: loopback names only. */
  hosts?: Pick<HostAllowList, 'allowsHost' | 'hostRefusal'>;
  /** Whether the upstream answers at all, for `/readyz`. */
  probe: () => Promise<boolean>;
  /** How coordination stands, for `/readyz`: `local`, `redis`, or `degraded: polling locally`. */
  coordination: () => string;
  /** jwt mode: how the identity provider's keys stand, for `/readyz`. Default: none (key mode). */
  identity?: () => Promise<KeySetStatus>;
  /** Served at `/dev/identity/` (jwt mode with the embedded emulator and no key source). Default null. */
  devIdentityProvider?: DevIdentityProvider | null;
  /** How long a readiness answer is reused. Default 2 000 ms. */
  readinessTtlMs?: number;
  /** Largest POST body accepted; larger ones get `413`. Default 262 144 bytes (256 KiB). */
  maxRequestBytes?: number;
  now?: () => number;
}

export interface HttpRoutes {
  /** The HTTP server's request listener. */
  listener: RequestListener;
  /** From now on every request is answered `503` with `connection: close` (the gateway is stopping). */
  refuse(): void;
  /**
   * Cuts every open SSE and multipart stream (the gateway is stopping): the connection is destroyed
   * without the stream's normal end (`event: complete`, the closing boundary), which is how their clients
   * (graphql-sse, Apollo Client's multipart link behind a retry link) know to subscribe again, elsewhere
   * or later. Answers how many were cut.
   */
  cutStreams(): number;
}

/**
 * The plain HTTP side of the gateway: `/healthz`, `/readyz`, `/metrics`, the
 * demo page at `/`, webhooks, request ids and access logs, the `Host` check and
 * the body limits applied before GraphQL sees a request. Probes, metrics and
 * webhooks answer whatever the `Host` (load balancers probe by address; a webhook
 * carries its own token); everything else needs a listed `Host`.
 */
export function createHttpRoutes(options: HttpRoutesOptions): HttpRoutes {
  const {
    graphql,
    graphiql,
    webhooks,
    metrics,
    logger,
    probe,
    coordination,
    identity,
    devIdentityProvider = null,
    hosts = createHostAllowList(),
    readinessTtlMs = 2_000, // 2 s
    maxRequestBytes = MAX_REQUEST_BYTES,
    now = Date.now,
  } = options;
  let accepting = true;
  let readiness: { ready: boolean; at: number } | null = null;
  let demoPage: Promise<Buffer> | null = null;
  // Requests that may become streams (they accept SSE or multipart): the only ones a stop cuts.
  const streams = new Set<ServerResponse>();

  async function ready(): Promise<boolean> {
    if (readiness && now() - readiness.at < readinessTtlMs) return readiness.ready;
    readiness = { ready: await probe(), at: now() };
    return readiness.ready;
  }

  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0]!;
    if (!accepting) {
      response.setHeader('connection', 'close');
      return sendJson(response, 503, { error: 'shutting down' });
    }
    if (path === '/healthz') return sendJson(response, 200, { status: 'ok' });
    if (path === '/readyz') {
      // The key set's status costs no request once it has keys (fetches are single-flight and cooled down): not cached.
      const [up, keys] = await Promise.all([ready(), identity?.()]);
      const status = !up ? 'upstream unreachable' : keys && !keys.ready ? 'identity provider keys unreachable' : 'ready';
      const body = { status, coordination: coordination(), ...(keys ? { identity: keys.detail } : {}) };
      return sendJson(response, status === 'ready' ? 200 : 503, body);
    }
    if (path === '/metrics') {
      response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      return;
    }
    if (path.startsWith(WEBHOOK_PATH)) return webhooks.handle(request, response, path.slice(WEBHOOK_PATH.length));
    if (!hosts.allowsHost(request.headers.host)) return sendJson(response, 421, hosts.hostRefusal);
    if (devIdentityProvider && path.startsWith(DEV_IDENTITY_PROVIDER_PATH)) {
      return devIdentityProvider.handle(request, response, path.slice(DEV_IDENTITY_PROVIDER_PATH.length));
    }
    if (graphiql && path.startsWith(GRAPHIQL_ASSETS_PATH))
      return graphiql.handle(request, response, path.slice(GRAPHIQL_ASSETS_PATH.length));
    if (graphiql && path === '/' && request.method === 'GET') {
      // A plain page, no build step; read once, on first use.
      demoPage ??= readFile(new URL('../demo/index.html', import.meta.url));
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' }).end(await demoPage);
      return;
    }
    if (request.method === 'POST') {
      const length = request.headers['content-length'];
      if (length === undefined) return sendJson(response, 411, { errors: [{ message: 'A Content-Length header is required.' }] });
      if (Number(length) > maxRequestBytes) {
        response.setHeader('connection', 'close');
        return sendJson(response, 413, { errors: [{ message: `The request body exceeds ${maxRequestBytes} bytes.` }] });
      }
    }
    if (streamable.test(request.headers.accept ?? '')) {
      streams.add(response);
      response.once('close', () => streams.delete(response));
    }
    await graphql(request, response);
  }

  return {
    listener(request, response) {
      const started = performance.now();
      const requestId = validRequestId(request.headers['x-request-id']) ?? randomUUID();
      response.setHeader('x-request-id', requestId);
      response.on('finish', () => {
        logger.debug(
          {
            requestId,
            method: request.method,
            path: loggablePath(request.url ?? '/'),
            status: response.statusCode,
            ms: Math.round(performance.now() - started),
          },
          'request',
        );
      });
      void route(request, response).catch((error) => {
        logger.error({ err: error, requestId }, 'request failed');
        if (!response.headersSent) sendJson(response, 500, { error: 'internal error' });
        else response.destroy();
      });
    },
    refuse() {
      accepting = false;
    },
    cutStreams() {
      let cut = 0;
      for (const response of streams) {
        // Only a stream under way (answering, not ended); a request not yet answered is left to the drain.
        if (!response.headersSent || response.writableEnded) continue;
        response.destroy();
        cut += 1;
      }
      return cut;
    },
  };
}

const streamable = /text\/event-stream|multipart\/mixed/i;

function validRequestId(value: string | string[] | undefined): string | null {
  return typeof value === 'string' && /^[\w.-]{1,64}$/.test(value) ? value : null;
}
