import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../config.ts';
import type { Scheduler } from '../lib/scheduler.ts';
import type { Logger } from '../logger.ts';
import type { GatewayMetrics } from '../metrics.ts';
import { createExchangeTracer, traceScheduler } from '../telemetry/upstream-spans.ts';
import { createLocalBudget } from './key-budget.ts';
import { createRedisBudget } from './redis-budget.ts';
import { createRequestScheduler, type RequestScheduler } from './request-scheduler.ts';
import { createScheduledClient } from './scheduled-client.ts';
import { createTasksClient, type TasksClient } from './tasks-client.ts';

/** Requests a key may have waiting beyond one per poll loop: its queries, submits and cancels. */
const QUEUE_ROOM_OVER_LOOPS = 1_000;

export interface UpstreamOptions {
  config: Config;
  /** The upstream base URL, including `/v1`. */
  upstreamUrl: string;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Timers of the request scheduler. Default: Node's. */
  timers?: Scheduler;
  /** Traces every upstream request (a client span carrying `traceparent`) and each poll (a root span). Default: none. */
  tracer?: Tracer;
}

/** The gateway's way to the upstream: the client, and the per-key scheduler every request of a key goes through. */
export interface Upstream {
  /** The Task API client whose every request, from loops, queries and mutations alike, waits its key's turn. */
  readonly client: TasksClient;
  readonly requestScheduler: RequestScheduler;
  /** Whether keys' budgets are shared with the other replicas now (always true without Redis). */
  budgetShared(): boolean;
  /** Connects the shared budget (Redis), when configured. */
  start(): void;
  /** Cuts what still waits for the upstream (a long `waitSeconds` submit): the shutdown's grace is over. */
  cut(): void;
  /** Cuts what waits, closes the connection pool and the budget's Redis connection. */
  close(): Promise<void>;
}

/** Builds the upstream client, the keys' budget (in memory, or shared through Redis) and the request scheduler. */
export function createUpstream(options: UpstreamOptions): Upstream {
  const { config, upstreamUrl, metrics, logger, now = Date.now, timers, tracer } = options;
  let droppedUrlLogged = false;
  const client = createTasksClient({
    baseUrl: upstreamUrl,
    timeoutMs: config.upstreamTimeoutMs,
    // As many connections as requests may be in flight: a sent request never waits for one.
    maxConnections: config.maxUpstreamInFlight,
    now,
    onRequest: metrics.upstreamRequest,
    trace: tracer ? createExchangeTracer(tracer, upstreamUrl) : undefined,
    onDroppedUrl: (taskId, scheme) => {
      if (droppedUrlLogged) return;
      droppedUrlLogged = true;
      logger.warn(
        { taskId, scheme },
        'dropped a result link that is not an absolute http(s) URL; logged once, later ones are dropped silently',
      );
    },
  });
  // A configured rate is where a key starts and its ceiling.
  const rate = config.upstreamRateLimitPerKey;
  const rules = rate === null ? {} : { initialRatePerSec: rate, maxRatePerSec: rate };
  const sharedBudget = config.redis ? createRedisBudget({ redis: config.redis, now, ...rules }) : null;
  const budget = sharedBudget ?? createLocalBudget({ now, ...rules });
  const requestScheduler = createRequestScheduler({
    budget,
    maxInFlight: config.maxUpstreamInFlight,
    maxInFlightPerKey: config.maxUpstreamInFlightPerKey ?? config.maxUpstreamInFlight,
    maxQueuedPerKey: config.maxLoopsPerKey + QUEUE_ROOM_OVER_LOOPS,
    maxQueueWaitMs: config.upstreamQueueTimeoutMs,
    now,
    timers,
    onSent: (priority, waitedMs, sinceLastReadMs) =>
      metrics.upstreamSent(priority, waitedMs / 1000, sinceLastReadMs === null ? null : sinceLastReadMs / 1000),
    onThrottled: metrics.throttled,
    onFailFast: metrics.failedFast,
  });
  return {
    client: createScheduledClient(client, tracer ? traceScheduler(requestScheduler, now) : requestScheduler),
    requestScheduler,
    budgetShared: () => sharedBudget?.healthy() ?? true,
    start: () => budget.start(),
    cut: () => requestScheduler.dispose(),
    async close() {
      requestScheduler.dispose();
      await client.close();
      await budget.dispose();
    },
  };
}
