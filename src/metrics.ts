import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** What the gateway measures: Prometheus text at `/metrics`. Labels never carry keys, tokens or task ids. */
export interface GatewayMetrics {
  readonly registry: Registry;
  /** One upstream request ended: `endpoint` is `get`, `submit` or `cancel`; `outcome` `ok` or a typed error code. */
  upstreamRequest(endpoint: string, outcome: string, seconds: number): void;
  /** One change was handed to `subscribers` watchers. */
  fannedOut(subscribers: number): void;
  /** One watcher took a state `seconds` after the gateway learnt it. */
  delivered(seconds: number): void;
  /** Sets the sources of the live gauges, read at each scrape. */
  observe(sources: MetricSources): void;
}

export interface MetricSources {
  connections(): number;
  subscriptions(): number;
  loops(): number;
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
  gauge('task_gateway_coordination_up', 'Redis coordination reachable (1) or degraded to local polling (0).', () =>
    sources.coordination?.(),
  );
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
  return {
    registry,
    upstreamRequest(endpoint, outcome, seconds) {
      upstreamRequests.inc({ endpoint, outcome });
      upstreamLatency.observe({ endpoint }, seconds);
    },
    fannedOut(subscribers) {
      updates.inc(subscribers);
      perLoop.observe(subscribers);
    },
    delivered: (seconds) => delivery.observe(seconds),
    observe(next) {
      sources = next;
    },
  };
}
