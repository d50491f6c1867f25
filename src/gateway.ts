import { setMaxListeners } from 'node:events';
import type { Tracer } from '@opentelemetry/api';
import type { Config } from './config.ts';
import type { ContextServices } from './graphql/context.ts';
import type { TrustedDocuments } from './graphql/persisted-operations.ts';
import { createTransports, type TransportsOptions } from './http/transports.ts';
import { createAuthenticator } from './identity/authenticator.ts';
import { createUserStores } from './identity/user-stores.ts';
import { createUserTasks } from './identity/user-tasks.ts';
import { describeRedis, type RedisConfig } from './lib/redis-config.ts';
import { pollTickMs, type Scheduler, tickScheduler } from './lib/scheduler.ts';
import { createLogSink } from './log-sink.ts';
import { createLogger, type Logger } from './logger.ts';
import { BUSIEST_KEYS, createMetrics, type GatewayMetrics } from './metrics.ts';
import { createLocalCoordinator, type LoopCoordinator } from './pollers/loop-coordinator.ts';
import { createRedisCoordinator } from './pollers/redis-coordinator.ts';
import { createTaskPoller, type TaskPoller } from './pollers/task-poller.ts';
import { createMemoryRecentTasks, type RecentTasksStore, recordingNeverFails } from './recent-tasks/recent-tasks.ts';
import { createRedisRecentTasks } from './recent-tasks/redis-recent-tasks.ts';
import { createOperationTracing } from './telemetry/operation-spans.ts';
import { activeTraceContext } from './telemetry/upstream-spans.ts';
import { createCredential } from './upstream/credential.ts';
import type { RequestScheduler } from './upstream/request-scheduler.ts';
import { createUpstream } from './upstream/upstream.ts';
import { type CallbackTokenStore, createMemoryCallbackTokens } from './webhooks/callback-tokens.ts';
import { createRedisCallbackTokens } from './webhooks/redis-callback-tokens.ts';
import { createWebhooks } from './webhooks/webhooks.ts';

export interface GatewayOptions {
  config: Config;
  /** The upstream base URL, including `/v1` (the emulator's, when `config.upstreamUrl` is null). */
  upstreamUrl: string;
  /** Structured logs. Default: pino at `config.logLevel` on stdout, through a `LogSink` (never blocks). */
  logger?: Logger;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Timers of the poller. Default: Node's, the poll loops' on ticks of `pollTickMs` (1 % of the poll interval, at most 20 ms). */
  scheduler?: Scheduler;
  /** Random source of the poller's jitter. Default `Math.random`. */
  random?: () => number;
  /** Log lines dropped because stdout could not take them (`LogSink.dropped`), for `/metrics`. Default: those of the default logger's sink; none with an injected logger. */
  droppedLogLines?: () => number;
  /** How poll loops are shared. Default: through Redis when `config.redis` is set, else in this process only. */
  coordinator?: LoopCoordinator;
  /** Where webhook callback tokens are kept. Default: shared through Redis with `config.redis`, else in this process only. */
  callbackTokens?: CallbackTokenStore;
  /** Where submissions are filed for `recentTasks`. Default: Redis with `config.redis`, else memory. */
  recentTasks?: RecentTasksStore;
  /** The only operations allowed (`TRUSTED_DOCUMENTS`, loaded by the entry). Default null: any operation, with APQ. */
  trustedDocuments?: TrustedDocuments | null;
  /** Heartbeat of multipart subscriptions, in ms (`MultipartSubscriptionsOptions.heartbeatMs`). Default: its default. */
  multipartHeartbeatMs?: TransportsOptions['multipartHeartbeatMs'];
  /** Traces operations, polls and upstream requests (OpenTelemetry). Default: none, and no span is made. */
  tracer?: Tracer;
}

export interface Gateway {
  /** Connects to Redis (when configured), listens on `config.port` and `config.host`; resolves to the base URL (`http://host:port`). */
  start(): Promise<string>;
  /**
   * Stops accepting, closes WebSockets with 1001 and cuts SSE and multipart streams (clients
   * reconnect and subscribe again), stops every poll loop, lets in-flight requests finish for up to `graceMs`
   * (default 5 000), then closes what is left, the upstream pool and Redis.
   */
  stop(graceMs?: number): Promise<void>;
  readonly poller: TaskPoller;
  /** The per-key scheduler every upstream request goes through. */
  readonly requestScheduler: RequestScheduler;
  readonly metrics: GatewayMetrics;
}

/** The composition root: builds every part of the gateway; nothing connects, listens or ticks until `start()`. */
export function createGateway(options: GatewayOptions): Gateway {
  const { config, upstreamUrl, now = Date.now, scheduler, random, trustedDocuments = null, tracer } = options;
  const logSink = options.logger ? null : createLogSink();
  const logger = options.logger ?? createLogger(config.logLevel, logSink ?? undefined);
  const metrics = createMetrics();
  const coordinator = options.coordinator ?? (config.redis ? redisCoordinator(config, config.redis, logger) : createLocalCoordinator());
  const upstream = createUpstream({ config, upstreamUrl, metrics, logger, now, timers: scheduler, tracer });
  const { client: tasksClient, requestScheduler } = upstream;
  // Loops and budgets are both shared only while both reach Redis.
  const shared = () => coordinator.healthy() && upstream.budgetShared();
  const poller = createTaskPoller({
    client: tasksClient,
    maxLoopsPerKey: config.maxLoopsPerKey,
    maxLoops: config.maxLoops,
    intervalMs: config.pollIntervalMs,
    maxIntervalMs: config.pollMaxIntervalMs,
    timeoutMs: config.pollTimeoutMs,
    now,
    // The loops due within one tick poll on one wake-up of the process.
    scheduler: scheduler ?? tickScheduler(pollTickMs(config.pollIntervalMs)),
    random,
    coordinator,
    onFanOut: metrics.fannedOut,
    onDelivered: (waitedMs) => metrics.delivered(waitedMs / 1000),
    // A loop's reads carry the trace context it was started in: its operation's.
    traceOrigin: tracer ? activeTraceContext : undefined,
  });
  const recentTasksStore =
    options.recentTasks ?? (config.redis ? createRedisRecentTasks({ redis: config.redis, now }) : createMemoryRecentTasks({ now }));
  // An unrecorded submission is still a submission: it is logged, never failed.
  const recentTasks = recordingNeverFails(recentTasksStore, () =>
    logger.warn('recent tasks: a submission was not recorded yet (store unreachable); it is recorded when the store answers again'),
  );
  const callbackTokens =
    options.callbackTokens ??
    (config.redis ? createRedisCallbackTokens({ redis: config.redis, now }) : createMemoryCallbackTokens({ now }));
  const webhooks = createWebhooks({ publicUrl: config.publicUrl, poller, tokens: callbackTokens });
  // Jwt mode: who owns each task, and each user's limits and watches.
  const userStores = config.auth.mode === 'jwt' ? createUserStores(config, now) : null;
  const userTasks = userStores
    ? createUserTasks({ ...userStores, poller, maxWatchedTasks: config.users.maxWatchedTasks, scheduler, now })
    : null;
  // Aborted first thing in stop(): waiting submits answer with the task as it is now.
  const stopping = new AbortController();
  const defaultCredential = config.upstreamApiKey === null ? null : createCredential(config.upstreamApiKey);
  // jwt mode: end users bring tokens; every upstream request uses the server's key (config requires it).
  const authenticator =
    config.auth.mode === 'jwt' ? createAuthenticator({ auth: config.auth, serverCredential: defaultCredential!, now, scheduler }) : null;
  // Every waiting submit listens to it until it ends: as many as run at once, none left behind (not a leak to warn of).
  setMaxListeners(0, stopping.signal);
  const services: ContextServices = {
    tasksClient,
    poller,
    recentTasks,
    defaultCredential,
    webhooks,
    now,
    userTasks,
    stopping: stopping.signal,
    acceptedKey: (keyHash) => requestScheduler.accepted(keyHash),
    traced: tracer !== undefined,
  };
  const transports = createTransports({
    config,
    services,
    webhooks,
    metrics,
    logger,
    probe: tasksClient.probe,
    coordination: () => (config.redis === null ? 'local' : shared() ? 'redis' : 'degraded: polling locally'),
    trustedDocuments,
    multipartHeartbeatMs: options.multipartHeartbeatMs,
    authenticator,
    operationTracing: tracer ? createOperationTracing(tracer) : undefined,
  });
  metrics.observe({
    connections: transports.connections,
    subscriptions: () => poller.stats().subscribers,
    loops: () => poller.stats().loops,
    queued: () => requestScheduler.stats().queued,
    busiestKeys: () => requestScheduler.busiest(BUSIEST_KEYS),
    coordination: config.redis ? () => (shared() ? 1 : 0) : undefined,
    droppedLogLines: options.droppedLogLines ?? logSink?.dropped,
  });

  return {
    poller,
    requestScheduler,
    metrics,
    async start() {
      coordinator.start();
      callbackTokens.start();
      upstream.start();
      const url = await transports.listen();
      if (authenticator?.devIdentityProvider) {
        logger.warn(
          { tokens: `${url}/dev/identity/token?user=<name>` },
          'development identity provider: anyone who reaches it signs in as anyone (embedded emulator only)',
        );
      }
      logger.info(
        {
          port: Number(new URL(url).port),
          upstream: new URL(upstreamUrl).origin,
          replica: coordinator.replicaId,
          redis: config.redis ? describeRedis(config.redis) : null,
        },
        'task-gateway listening',
      );
      return url;
    },
    async stop(graceMs = 5_000) {
      stopping.abort();
      const closed = transports.refuse();
      // Before the loops stop (which would complete every subscription): WebSockets close with 1001 and
      // SSE and multipart streams are cut, none with a `complete`, so their clients subscribe again (to
      // another replica, or to this one restarted) instead of taking the watch for over.
      await transports.endStreams();
      poller.dispose();
      // Past the grace, what still waits for the upstream (a long `waitSeconds` submit) is cut, so the pool closes at once.
      await transports.drain(closed, graceMs, () => upstream.cut());
      await upstream.close();
      await recentTasksStore.dispose();
      await userStores?.dispose();
      await callbackTokens.dispose();
      await coordinator.dispose();
      logger.info('task-gateway stopped');
    },
  };
}

function redisCoordinator(config: Config, redis: RedisConfig, logger: Logger): LoopCoordinator {
  return createRedisCoordinator({
    redis,
    // About three intervals: a dead holder is replaced within it.
    leaseMs: 3 * config.pollMaxIntervalMs,
    onHealthChange: (healthy) =>
      healthy
        ? logger.info('redis coordination up: sharing poll loops')
        : logger.warn('redis coordination down: polling locally until it returns'),
  });
}
