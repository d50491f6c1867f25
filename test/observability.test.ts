import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { eventually } from './helpers/clock.ts';
import { type Stack, startStack } from './helpers/stack.ts';
import { connectWs, watch } from './helpers/ws-client.ts';

describe('health, readiness, metrics and logs', () => {
  let stack: Stack;
  const logs: Array<Record<string, unknown>> = [];
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of chunk.toString().trim().split('\n')) logs.push(JSON.parse(line));
        done();
      },
    });
    stack = await startStack({
      emulator: { queuedMs: 0, processingMs: 300 },
      env: { POLL_INTERVAL_MS: '50' },
      logger: createLogger('debug', sink),
    });
  });
  afterAll(() => stack.stop());

  it('answers /healthz, and /readyz while the upstream answers', async () => {
    expect((await fetch(`${stack.gatewayUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${stack.gatewayUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', coordination: 'local' });
  });

  it('reports not ready when the upstream cannot be reached', async () => {
    const down = await startStack({ upstreamUrl: 'http://127.0.0.1:1/v1' });
    const ready = await fetch(`${down.gatewayUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'upstream unreachable', coordination: 'local' });
    await down.stop();
  });

  it('exports connections, subscriptions, loops, upstream requests, fan-out and delivery in Prometheus format', async () => {
    const { data } = await stack.gql(
      `mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }`,
      {},
      'sk-metrics',
    );
    const client = connectWs(stack.gatewayUrl, 'sk-metrics');
    const watchers = Array.from({ length: 5 }, () => watch(client, data.submitTask.id));
    await eventually(() => expect(watchers.every((w) => w.results.length > 0)).toBe(true));
    const live = await (await fetch(`${stack.gatewayUrl}/metrics`)).text();
    expect(live).toMatch(/^task_gateway_connections 1$/m);
    expect(live).toMatch(/^task_gateway_subscriptions 5$/m);
    expect(live).toMatch(/^task_gateway_poll_loops 1$/m);
    await eventually(() => expect(watchers.every((w) => w.completed)).toBe(true));
    await client.dispose();
    const after = await (await fetch(`${stack.gatewayUrl}/metrics`)).text();
    expect(after).toMatch(/^task_gateway_upstream_requests_total\{endpoint="get",outcome="ok"\} \d+$/m);
    expect(after).toMatch(/^task_gateway_upstream_requests_total\{endpoint="submit",outcome="ok"\} 1$/m);
    expect(after).toMatch(/^task_gateway_upstream_request_duration_seconds_bucket\{le="\+Inf",endpoint="get"\} \d+$/m);
    expect(after).toMatch(/^task_gateway_subscribers_per_update_bucket\{le="5"\} [1-9]\d*$/m);
    expect(after).toMatch(/^task_gateway_updates_fanned_out_total [1-9]\d*$/m);
    expect(after).toMatch(/^task_gateway_delivery_seconds_count [1-9]\d*$/m);
    expect(after).toMatch(/^task_gateway_poll_loops 0$/m);
    expect(after).not.toContain('sk-metrics');
  });

  it('logs each request as JSON with a request id, echoed in x-request-id', async () => {
    const response = await fetch(`${stack.gatewayUrl}/healthz`, { headers: { 'x-request-id': 'trace-abc-123' } });
    expect(response.headers.get('x-request-id')).toBe('trace-abc-123');
    const generated = await fetch(`${stack.gatewayUrl}/healthz`);
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await eventually(() =>
      expect(logs.some((line) => line.requestId === 'trace-abc-123' && line.path === '/healthz' && line.status === 200)).toBe(true),
    );
    const bogus = await fetch(`${stack.gatewayUrl}/healthz`, { headers: { 'x-request-id': 'has spaces and <html>' } });
    expect(bogus.headers.get('x-request-id')).not.toContain('<');
  });
});

describe('credentials on sockets', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.stop());

  it('ends a subscription with UNAUTHENTICATED when the upstream rejects the key', async () => {
    const client = connectWs(stack.gatewayUrl, 'rejected-key');
    const watcher = watch(client, 'task-any');
    await eventually(() => expect(watcher.completed).toBe(true));
    expect(watcher.states()).toEqual(['error:UNAUTHENTICATED']);
    await client.dispose();
  });

  it('refuses a malformed key at connection time with 4403, never 4401', async () => {
    const client = connectWs(stack.gatewayUrl, 'has spaces');
    const watcher = watch(client, 'task-any');
    await eventually(() => expect(watcher.error).toBeDefined());
    expect(watcher.error).toMatchObject({ code: 4403 });
    expect(String((watcher.error as { reason: string }).reason)).toContain('Bearer <key>');
    await client.dispose();
  });
});
