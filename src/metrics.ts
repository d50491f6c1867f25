import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Keys shown by the per-key gauges: the busiest, so that their label values stay few. */
export const BUSIEST_KEYS = 10;

/** What the gateway measures: Prometheus text at `/metrics`. Labels never carry keys, tokens or task ids. */
export interface GatewayMetrics {
  readonly registry: Registry;
  /** One upstream request ended: `endpoint` is `get`, `submit` or `cancel`; `outcome` `ok` or a typed error code. */
  upstreamRequest(endpoint: string, outcome: string, seconds: number): void;
  /** One change was handed to `subscribers` watchers. */
  fannedOut(subscribers: number): void;
  /** One watcher took a state `seconds` after the gateway learnt it. */
  delivered(seconds: number): void;
  /** One request left the key's queue for the upstream after `waitedSeconds`; a poll says how old its task's last read was. */
  upstreamSent(priority: string, waitedSeconds: number, sinceLastReadSeconds: number | null): void;
  /** One request was held back by the key's budget: `upstream_429`, `queue_full`, `budget` or `queue_timeout`. */
  throttled(reason: string): void;
  /** One request was refused without an upstream call: its key was answered 401 a moment ago. */
  failedFast(): void;
  /** Sets the sources of the live gauges, read at each scrape. */
  observe(sources: MetricSources): void;
}

export interface MetricSources {
  connections(): number;
  subscriptions(): number;
  loops(): number;
  /** Upstream requests waiting in the per-key queues. */
  queued?(): number;
  /** The busiest keys' concurrency limit, pace and latency; `key` is a short prefix of the key's hash, never the key. */
  busiestKeys?(): ReadonlyArray<{ key: string; limit: number; ratePerSec: number; latencyMs: number }>;
  /** Redis coordination healthy (1), degraded to local polling (0); absent: not configured. */
  coordination?(): number;
  /** Log lines dropped so far because the log destination could not take them; absent: not counted. */
  droppedLogLines?(): number;
}

export function createMetrics(): GatewayMetrics {
  const registry = new Registry();
  let sources: MetricSources = { connections: () => 0, subscriptions: () => 0, loops: () => 0 };
  const upstreamRequests = new Counter({
    name: 'task_gateway_upstream_requests_total',
    help: 'Upstream requests by endpoint and outcome.',
    labelNames: ['endpoint', 'outcome'] as const,
    registers: [registry],
  });
  const upstreamLatency = new Histogram({
    name: 'task_gateway_upstream_request_duration_seconds',
    help: 'Upstream request latency by endpoint.',
    labelNames: ['endpoint'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const updates = new Counter({ name: 'task_gateway_updates_fanned_out_total', help: 'States handed to watchers.', registers: [registry] });
  const perLoop = new Histogram({
    name: 'task_gateway_subscribers_per_update',
    help: 'Watchers one upstream answer served: the dedup factor.',
    buckets: [1, 2, 5, 10, 50, 100, 1_000, 10_000],
    registers: [registry],
  });
  const delivery = new Histogram({
    name: 'task_gateway_delivery_seconds',
    help: 'Time from the gateway learning a state to a watcher taking it.',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 5],
    registers: [registry],
  });
  const queueWait = new Histogram({
    name: 'task_gateway_upstream_queue_wait_seconds',
    help: "Time a request waited in its key's queue before it was sent upstream, by priority.",
    labelNames: ['priority'] as const,
    buckets: [0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [registry],
  });
  const readAge = new Histogram({
    name: 'task_gateway_watched_task_read_age_seconds',
    help: 'Time a watched task had waited since its last read when it was polled again.',
    buckets: [0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120],
    registers: [registry],
  });
  const throttled = new Counter({
    name: 'task_gateway_upstream_throttled_total',
    help: "Requests held back by their key's budget, by reason.",
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const failedFast = new Counter({
    name: 'task_gateway_upstream_fail_fast_total',
    help: 'Requests refused without an upstream call because their key was answered 401 a moment ago.',
    registers: [registry],
  });
  const gauge = (name: string, help: string, read: () => number | undefined) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const value = read();
        if (value !== undefined) this.set(value);
      },
    });
  gauge('task_gateway_connections', 'Open WebSocket connections.', () => sources.connections());
  gauge('task_gateway_subscriptions', 'Active taskUpdated watchers.', () => sources.subscriptions());
  gauge('task_gateway_poll_loops', 'Active poll loops (one per watched key and task).', () => sources.loops());
  gauge('task_gateway_upstream_queued_requests', "Requests waiting in the per-key queues for their key's budget.", () =>
    sources.queued?.(),
  );
  gauge('task_gateway_coordination_up', 'Redis coordination reachable (1) or degraded to local polling (0).', () =>
    sources.coordination?.(),
  );
  // Per key, the busiest few only (at most BUSIEST_KEYS label values), labelled by a prefix of the key's hash.
  const perKey = (name: string, help: string, read: (key: { limit: number; ratePerSec: number; latencyMs: number }) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['key'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const key of sources.busiestKeys?.() ?? []) this.set({ key: key.key }, read(key));
      },
    });
  perKey('task_gateway_upstream_key_concurrency_limit', 'Short upstream requests the key may have in flight now.', (k) => k.limit);
  perKey('task_gateway_upstream_key_rate_per_second', "The key's upstream pace, requests per second.", (k) => k.ratePerSec);
  perKey('task_gateway_upstream_key_latency_seconds', "Average upstream latency of the key's short requests.", (k) => k.latencyMs / 1000);
  let droppedCounted = 0;
  new Counter({
    name: 'task_gateway_log_lines_dropped_total',
    help: 'Log lines dropped because stdout did not take them (a stalled log reader).',
    registers: [registry],
    collect() {
      const dropped = sources.droppedLogLines?.() ?? droppedCounted;
      this.inc(dropped - droppedCounted);
      droppedCounted = dropped;
    },
  });
  // Label children looked up once per label set: prom-client hashes the labels on every call otherwise,
  // and these run on every upstream request. Both sets are small and fixed (endpoints x error codes).
  const requestsBy = new Map<string, ReturnType<typeof upstreamRequests.labels>>();
  const latencyBy = new Map<string, ReturnType<typeof upstreamLatency.labels>>();
  const waitBy = new Map<string, ReturnType<typeof queueWait.labels>>();
  const child = <C>(children: Map<string, C>, key: string, make: () => C): C => {
    let found = children.get(key);
    if (!found) {
      found = make();
      children.set(key, found);
    }
    return found;
  };
  return {
    registry,
    upstreamRequest(endpoint, outcome, seconds) {
      child(requestsBy, `${endpoint} ${outcome}`, () => upstreamRequests.labels({ endpoint, outcome })).inc();
      child(latencyBy, endpoint, () => upstreamLatency.labels({ endpoint })).observe(seconds);
    },
    fannedOut(subscribers) {
      updates.inc(subscribers);
      perLoop.observe(subscribers);
    },
    delivered: (seconds) => delivery.observe(seconds),
    upstreamSent(priority, waitedSeconds, sinceLastReadSeconds) {
      child(waitBy, priority, () => queueWait.labels({ priority })).observe(waitedSeconds);
      if (sinceLastReadSeconds !== null) readAge.observe(sinceLastReadSeconds);
    },
    throttled: (reason) => throttled.inc({ reason }),
    failedFast: () => failedFast.inc(),
    observe(next) {
      sources = next;
    },
  };
}
