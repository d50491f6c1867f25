import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { createYoga, type Plugin } from 'graphql-yoga';
import type { Config } from './config.ts';
import { exampleOperations } from './graphiql-examples.ts';
import { createLogger, type Logger, loggablePath } from './logger.ts';
import { createMetrics, type GatewayMetrics } from './metrics.ts';
import { createCallbackTokens } from './pollers/callback-tokens.ts';
import type { LoopCoordinator } from './pollers/loop-coordinator.ts';
import { createRedisCoordinator } from './pollers/redis-coordinator.ts';
import type { Scheduler } from './pollers/scheduler.ts';
import { createTaskPoller, type TaskPoller } from './pollers/task-poller.ts';
import { type ContextServices, createRequestContext, type GatewayContext } from './schema/context.ts';
import { maskError } from './schema/errors.ts';
import { schema } from './schema/index.ts';
import { costRules } from './schema/limits.ts';
import { createCredential } from './upstream/credential.ts';
import { createTasksClient } from './upstream/tasks-client.ts';
import { attachGraphQLWebSocketServer } from './websocket-server.ts';

export interface GatewayOptions {
  config: Config;
  /** The upstream base URL, including `/v1` (the emulator's, when `config.upstreamUrl` is null). */
  upstreamUrl: string;
  /** Structured logs. Default: pino at `config.logLevel` on stdout. */
  logger?: Logger;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Timers of the poller. Default: Node's. */
  scheduler?: Scheduler;
  /** Random source of the poller's jitter. Default `Math.random`. */
  random?: () => number;
  /** How poll loops are shared. Default: in this process only. */
  coordinator?: LoopCoordinator;
}

export interface Gateway {
  /** Listens on `config.port` and `config.host`; resolves to the base URL (`http://host:port`). */
  start(): Promise<string>;
  /**
   * Stops accepting, closes WebSockets with 1001 (clients reconnect), completes
   * SSE subscriptions, stops every poll loop, lets in-flight requests finish for up to `graceMs`
   * (default 5 000), then closes what is left and the upstream pool.
   */
  stop(graceMs?: number): Promise<void>;
  readonly poller: TaskPoller;
  readonly metrics: GatewayMetrics;
}

/** Largest GraphQL request body accepted, in bytes. */
export const MAX_REQUEST_BYTES = 256 * 1024;
/** Most bytes a webhook body may have; it is read and dropped, never believed. */
const MAX_WEBHOOK_BODY_BYTES = 64 * 1024;
/** How long a callback token stays valid, in ms (24 h, the upstream's idempotency window). */
const CALLBACK_TTL_MS = 86_400_000;
/** How long a readiness answer is reused, in ms. */
const READINESS_TTL_MS = 2_000;

/** The composition root: builds every part of the gateway; nothing listens until `start()`. */
export function createGateway(options: GatewayOptions): Gateway {
  const { config, upstreamUrl, now = Date.now, scheduler, random } = options;
  const logger = options.logger ?? createLogger(config.logLevel);
  const metrics = createMetrics();
  const redis = config.redisUrl
    ? createRedisCoordinator({
        url: config.redisUrl,
        // About three intervals: a dead holder is replaced within it.
        leaseMs: 3 * config.pollMaxIntervalMs,
        onHealthChange: (healthy) =>
          healthy
            ? logger.info('redis coordination up: sharing poll loops')
            : logger.warn('redis coordination down: polling locally until it returns'),
      })
    : null;
  const coordinator = options.coordinator ?? redis ?? undefined;
  const tasksClient = createTasksClient({
    baseUrl: upstreamUrl,
    timeoutMs: config.upstreamTimeoutMs,
    now,
    onRequest: metrics.upstreamRequest,
  });
  const poller = createTaskPoller({
    client: tasksClient,
    intervalMs: config.pollIntervalMs,
    maxIntervalMs: config.pollMaxIntervalMs,
    timeoutMs: config.pollTimeoutMs,
    now,
    scheduler,
    random,
    coordinator,
    onFanOut: metrics.fannedOut,
    onDelivered: (waitedMs) => metrics.delivered(waitedMs / 1000),
  });
  const callbackTokens = createCallbackTokens({ now, ttlMs: CALLBACK_TTL_MS });
  const { publicUrl } = config;
  const services: ContextServices = {
    tasksClient,
    poller,
    defaultCredential: config.upstreamApiKey === null ? null : createCredential(config.upstreamApiKey),
    now,
    prepareCallback: publicUrl
      ? (credential) => {
          const token = callbackTokens.issue(credential);
          return {
            url: `${publicUrl}/webhooks/tasks/${token}`,
            bind: (taskId) => {
              callbackTokens.bind(token, taskId);
              // Behind a load balancer the callback may reach another replica: it finds the loop by the token's hash.
              redis?.rememberCallback(sha256(token), `${credential.hash}:${taskId}`, CALLBACK_TTL_MS);
            },
          };
        }
      : undefined,
  };

  const costLimits: Plugin = {
    onValidate({ addValidationRule }) {
      for (const rule of costRules) addValidationRule(rule);
    },
  };
  const yoga = createYoga<{ req: IncomingMessage; res: ServerResponse; requestId: string }, GatewayContext>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    logging: false,
    plugins: [costLimits],
    maskedErrors: {
      maskError: (error) => {
        const masked = maskError(error);
        if (masked.extensions.code === 'INTERNAL_SERVER_ERROR') logger.error({ err: error }, 'unexpected error, masked');
        return masked;
      },
    },
    graphiql: { title: 'task-gateway', defaultQuery: exampleOperations, subscriptionsProtocol: 'WS' },
    // GraphiQL's scripts and styles are served inline: no CDN, so it works offline and behind strict CSPs.
    renderGraphiQL,
    // HTTP and SSE carry the key in the header; WebSocket operations go through websocket-server.ts.
    context: ({ request }) => createRequestContext(services, request.headers.get('authorization')),
  });

  // Read once, when the gateway is built: a plain page, no build step.
  const demoPage = readFileSync(new URL('./demo/index.html', import.meta.url));

  let readiness: { ready: boolean; at: number } | null = null;
  async function ready(): Promise<boolean> {
    if (readiness && Date.now() - readiness.at < READINESS_TTL_MS) return readiness.ready;
    readiness = { ready: await tasksClient.probe(), at: Date.now() };
    return readiness.ready;
  }

  let accepting = true;
  const server = createServer((request, response) => {
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
  });

  async function route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0]!;
    if (!accepting) {
      response.setHeader('connection', 'close');
      return sendJson(response, 503, { error: 'shutting down' });
    }
    if (path === '/healthz') return sendJson(response, 200, { status: 'ok' });
    if (path === '/readyz') {
      const up = await ready();
      // Without Redis the replica still serves correctly (it polls on its own): ready, but degraded.
      const coordination = redis ? (redis.healthy() ? 'redis' : 'degraded: polling locally') : 'local';
      return sendJson(response, up ? 200 : 503, { status: up ? 'ready' : 'upstream unreachable', coordination });
    }
    if (path === '/metrics') {
      response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      return;
    }
    if (path.startsWith('/webhooks/tasks/')) return handleWebhook(request, response, path.slice('/webhooks/tasks/'.length));
    if (path === '/' && request.method === 'GET') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' }).end(demoPage);
      return;
    }
    if (request.method === 'POST') {
      const length = request.headers['content-length'];
      if (length === undefined) return sendJson(response, 411, { errors: [{ message: 'A Content-Length header is required.' }] });
      if (Number(length) > MAX_REQUEST_BYTES) {
        response.setHeader('connection', 'close');
        return sendJson(response, 413, { errors: [{ message: `The request body exceeds ${MAX_REQUEST_BYTES} bytes.` }] });
      }
    }
    await yoga(request, response);
  }

  /** A callback is a hint: answer at once, then re-read the task with its owner's key and fan out. */
  async function handleWebhook(request: IncomingMessage, response: ServerResponse, token: string): Promise<void> {
    if (request.method !== 'POST') {
      response.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const wellFormed = /^[\w-]{16,64}$/.test(token);
    const target = wellFormed ? callbackTokens.resolve(token) : undefined;
    const elsewhere = !target && wellFormed && redis ? await redis.findCallback(sha256(token)) : null;
    if (!target && !elsewhere) {
      request.resume();
      return sendJson(response, 404, { error: 'unknown callback token' });
    }
    let size = 0;
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_WEBHOOK_BODY_BYTES) break;
    }
    sendJson(response, 202, { accepted: true });
    if (!target) {
      poller.nudgeKey(elsewhere!);
      return;
    }
    if (!poller.nudge(target.credential, target.taskId)) {
      // Nobody watches it here: refresh the terminal cache for later readers, and ignore failures.
      poller.read(target.credential, target.taskId).catch(() => undefined);
    }
  }

  const webSockets = attachGraphQLWebSocketServer({
    httpServer: server,
    schema,
    services,
    maxSubscriptionsPerConnection: config.maxSubscriptionsPerConnection,
  });
  metrics.observe({
    connections: webSockets.connections,
    subscriptions: () => poller.stats().subscribers,
    loops: () => poller.stats().loops,
    coordination: redis ? () => (redis.healthy() ? 1 : 0) : undefined,
  });

  return {
    poller,
    metrics,
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => resolve());
      });
      const { address, port, family } = server.address() as AddressInfo;
      const host = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : family === 'IPv6' ? `[${address}]` : address;
      logger.info({ port, upstream: new URL(upstreamUrl).origin, replica: redis?.replicaId }, 'task-gateway listening');
      return `http://${host}:${port}`;
    },
    async stop(graceMs = 5_000) {
      accepting = false;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // WebSockets close with 1001 and no `complete`: graphql-ws clients reconnect and resubscribe
      // (to another replica, or to this one restarted). Then SSE streams complete and loops stop.
      await webSockets.dispose();
      poller.dispose();
      server.closeIdleConnections();
      const grace = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(grace);
      await tasksClient.close();
      await redis?.dispose();
      logger.info('task-gateway stopped');
    },
  };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function validRequestId(value: string | string[] | undefined): string | null {
  return typeof value === 'string' && /^[\w.-]{1,64}$/.test(value) ? value : null;
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
