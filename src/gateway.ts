import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.ts';
import { schema } from './executable-schema.ts';
import { createGraphiQL } from './graphiql.ts';
import type { ContextServices } from './graphql/context.ts';
import { createExecutor } from './graphql/executor.ts';
import type { TrustedDocuments } from './graphql/persisted-operations.ts';
import { createGraphQLHttpHandler } from './graphql/yoga.ts';
import { createHttpRoutes } from './http-routes.ts';
import { createLogSink } from './log-sink.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type GatewayMetrics } from './metrics.ts';
import { createLocalCoordinator, type LoopCoordinator } from './pollers/loop-coordinator.ts';
import { createRedisCoordinator } from './pollers/redis-coordinator.ts';
import type { Scheduler } from './pollers/scheduler.ts';
import { createTaskPoller, type TaskPoller } from './pollers/task-poller.ts';
import { createMemoryRecentTasks, type RecentTasksStore } from './recent-tasks/recent-tasks.ts';
import { createRedisRecentTasks } from './recent-tasks/redis-recent-tasks.ts';
import { createCredential } from './upstream/credential.ts';
import { createLocalBudget } from './upstream/key-budget.ts';
import { createRedisBudget } from './upstream/redis-budget.ts';
import { createRequestScheduler, type RequestScheduler } from './upstream/request-scheduler.ts';
import { createScheduledClient } from './upstream/scheduled-client.ts';
import { createTasksClient } from './upstream/tasks-client.ts';
import { createWebhooks } from './webhooks.ts';
import { createGraphQLWebSocketServer } from './websocket-server.ts';

export interface GatewayOptions {
  config: Config;
  /** The upstream base URL, including `/v1` (the emulator's, when `config.upstreamUrl` is null). */
  upstreamUrl: string;
  /** Structured logs. Default: pino at `config.logLevel` on stdout, through a `LogSink` (never blocks). */
  logger?: Logger;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Timers of the poller. Default: Node's. */
  scheduler?: Scheduler;
  /** Random source of the poller's jitter. Default `Math.random`. */
  random?: () => number;
  /** Log lines dropped because stdout could not take them (`LogSink.dropped`), for `/metrics`. Default: those of the default logger's sink; none with an injected logger. */
  droppedLogLines?: () => number;
  /** How poll loops (and webhook tokens) are shared. Default: through Redis when `config.redisUrl` is set, else in this process only. */
  coordinator?: LoopCoordinator;
  /** Where submissions are filed for `recentTasks`. Default: Redis with `config.redisUrl`, else memory. */
  recentTasks?: RecentTasksStore;
  /** The only operations allowed (`TRUSTED_DOCUMENTS`, loaded by the entry). Default null: any operation, with APQ. */
  trustedDocuments?: TrustedDocuments | null;
  /** Heartbeat of multipart subscriptions, in ms. Default 5 000. */
  multipartHeartbeatMs?: number;
}

export interface Gateway {
  /** Connects to Redis (when configured), listens on `config.port` and `config.host`; resolves to the base URL (`http://host:port`). */
  start(): Promise<string>;
  /**
   * Stops accepting, closes WebSockets with 1001 (clients reconnect), completes
   * SSE subscriptions, stops every poll loop, lets in-flight requests finish for up to `graceMs`
   * (default 5 000), then closes what is left, the upstream pool and Redis.
   */
  stop(graceMs?: number): Promise<void>;
  readonly poller: TaskPoller;
  /** The per-key scheduler every upstream request goes through. */
  readonly requestScheduler: RequestScheduler;
  readonly metrics: GatewayMetrics;
}

/** Upstream requests in flight over all keys, and the pool's connections: a sent request never waits for one. */
const MAX_UPSTREAM_IN_FLIGHT = 128;

/** The budget's rules from the configuration: a configured rate is where a key starts and its ceiling. */
function budgetRules(config: Config) {
  const rate = config.upstreamRateLimitPerKey;
  return rate === null ? {} : { initialRatePerSec: rate, maxRatePerSec: rate };
}

/** The composition root: builds every part of the gateway; nothing connects, listens or ticks until `start()`. */
export function createGateway(options: GatewayOptions): Gateway {
  const { config, upstreamUrl, now = Date.now, scheduler, random, trustedDocuments = null } = options;
  const logSink = options.logger ? null : createLogSink();
  const logger = options.logger ?? createLogger(config.logLevel, logSink ?? undefined);
  const metrics = createMetrics();
  const coordinator =
    options.coordinator ?? (config.redisUrl ? redisCoordinator(config, config.redisUrl, logger) : createLocalCoordinator());
  let droppedUrlLogged = false;
  const upstream = createTasksClient({
    baseUrl: upstreamUrl,
    timeoutMs: config.upstreamTimeoutMs,
    maxConnections: MAX_UPSTREAM_IN_FLIGHT,
    now,
    onRequest: metrics.upstreamRequest,
    onDroppedUrl: (taskId, scheme) => {
      if (droppedUrlLogged) return;
      droppedUrlLogged = true;
      logger.warn(
        { taskId, scheme },
        'dropped a result link that is not an absolute http(s) URL; logged once, later ones are dropped silently',
      );
    },
  });
  const sharedBudget = config.redisUrl ? createRedisBudget({ url: config.redisUrl, now, ...budgetRules(config) }) : null;
  const budget = sharedBudget ?? createLocalBudget({ now, ...budgetRules(config) });
  // Loops and budgets are both shared only while both reach Redis.
  const shared = () => coordinator.healthy() && (sharedBudget?.healthy() ?? true);
  const requestScheduler = createRequestScheduler({
    budget,
    maxInFlightPerKey: config.maxUpstreamInFlightPerKey,
    maxInFlight: MAX_UPSTREAM_IN_FLIGHT,
    maxQueuedPerKey: config.maxLoopsPerKey + 1_000,
    maxQueueWaitMs: config.upstreamQueueTimeoutMs,
    now,
    scheduler,
    onSent: (priority, waitedMs, sinceLastReadMs) =>
      metrics.upstreamSent(priority, waitedMs / 1000, sinceLastReadMs === null ? null : sinceLastReadMs / 1000),
    onThrottled: metrics.throttled,
    onFailFast: metrics.failedFast,
  });
  // Every upstream request of a key, from loops, queries and mutations alike, goes through its scheduler.
  const tasksClient = createScheduledClient(upstream, requestScheduler);
  const poller = createTaskPoller({
    client: tasksClient,
    maxLoopsPerKey: config.maxLoopsPerKey,
    maxLoops: config.maxLoops,
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
  const recentTasksStore =
    options.recentTasks ?? (config.redisUrl ? createRedisRecentTasks({ url: config.redisUrl, now }) : createMemoryRecentTasks({ now }));
  const recentTasks: RecentTasksStore = {
    ...recentTasksStore,
    // An unrecorded submission is still a submission: it is logged, never failed.
    record: (keyHash, entry) =>
      recentTasksStore.record(keyHash, entry).catch(() => logger.warn('recent tasks: a submission was not recorded (store unreachable)')),
  };
  const webhooks = createWebhooks({ publicUrl: config.publicUrl, poller, coordinator, now });
  // Aborted first thing in stop(): waiting submits answer with the task as it is now.
  const stopping = new AbortController();
  const services: ContextServices = {
    tasksClient,
    poller,
    recentTasks,
    defaultCredential: config.upstreamApiKey === null ? null : createCredential(config.upstreamApiKey),
    webhooks,
    now,
    stopping: stopping.signal,
  };
  const graphiql = createGraphiQL();
  const routes = createHttpRoutes({
    graphql: createGraphQLHttpHandler(schema, services, logger, {
      trustedDocuments,
      multipartHeartbeatMs: options.multipartHeartbeatMs,
      corsOrigins: config.corsOrigins,
      renderGraphiQL: graphiql.renderPage,
    }),
    graphiql,
    webhooks,
    metrics,
    logger,
    probe: tasksClient.probe,
    coordination: () => (config.redisUrl === null ? 'local' : shared() ? 'redis' : 'degraded: polling locally'),
  });
  const server = createServer(routes.listener);
  const webSockets = createGraphQLWebSocketServer({
    httpServer: server,
    schema,
    executor: createExecutor({ schema }),
    services,
    maxSubscriptionsPerConnection: config.maxSubscriptionsPerConnection,
    trustedDocuments,
    allowedOrigins: config.corsOrigins,
    onSocketError: (error) => logger.debug({ reason: error.message }, 'websocket closed on a protocol error'),
  });
  metrics.observe({
    connections: webSockets.connections,
    subscriptions: () => poller.stats().subscribers,
    loops: () => poller.stats().loops,
    queued: () => requestScheduler.stats().queued,
    coordination: config.redisUrl ? () => (shared() ? 1 : 0) : undefined,
    droppedLogLines: options.droppedLogLines ?? logSink?.dropped,
  });

  return {
    poller,
    requestScheduler,
    metrics,
    async start() {
      coordinator.start();
      budget.start();
      webSockets.start();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => resolve());
      });
      const { address, port, family } = server.address() as AddressInfo;
      const host = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : family === 'IPv6' ? `[${address}]` : address;
      logger.info({ port, upstream: new URL(upstreamUrl).origin, replica: coordinator.replicaId }, 'task-gateway listening');
      return `http://${host}:${port}`;
    },
    async stop(graceMs = 5_000) {
      stopping.abort();
      routes.refuse();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // WebSockets close with 1001 and no `complete`: graphql-ws clients reconnect and resubscribe
      // (to another replica, or to this one restarted). Then SSE streams complete and loops stop.
      await webSockets.dispose();
      poller.dispose();
      server.closeIdleConnections();
      const grace = setTimeout(() => {
        server.closeAllConnections();
        // What still waits for the upstream (a long `waitSeconds` submit) is cut, so the pool closes at once.
        requestScheduler.dispose();
      }, graceMs);
      await closed;
      clearTimeout(grace);
      requestScheduler.dispose();
      await tasksClient.close();
      await recentTasksStore.dispose();
      await budget.dispose();
      await coordinator.dispose();
      logger.info('task-gateway stopped');
    },
  };
}

function redisCoordinator(config: Config, url: string, logger: Logger): LoopCoordinator {
  return createRedisCoordinator({
    url,
    // About three intervals: a dead holder is replaced within it.
    leaseMs: 3 * config.pollMaxIntervalMs,
    onHealthChange: (healthy) =>
      healthy
        ? logger.info('redis coordination up: sharing poll loops')
        : logger.warn('redis coordination down: polling locally until it returns'),
  });
}
