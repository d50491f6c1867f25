import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmulator, type Emulator } from '../../src/emulator/emulator.ts';
import { eventually, settlesWithin } from '../helpers/clock.ts';
import { startDelayProxy } from '../helpers/delay-proxy.ts';
import { createTasks } from '../helpers/emulator-tasks.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import { freePort, type Stack, startStack } from '../helpers/stack.ts';
import { connectWs, type Watch, watch } from '../helpers/ws-client.ts';

const RATE = 20; // UPSTREAM_RATE_LIMIT_PER_KEY
const REDIS_DELAY_MS = 100; // each direction
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the shared budget with Redis 100 ms away', () => {
  const KEY = `sk-slow-redis-${process.pid}`;
  let emulator: Emulator;
  let stack: Stack;
  let client: Client;

  beforeAll(async () => {
    const redis = await startRedisServer(await freePort());
    const proxy = await startDelayProxy({ targetPort: redis.port, forwardMs: REDIS_DELAY_MS, backMs: REDIS_DELAY_MS });
    emulator = createEmulator({ queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000 });
    await emulator.start();
    stack = await startStack({
      upstreamUrl: emulator.url,
      env: {
        REDIS_URL: `redis://${proxy.host}`,
        UPSTREAM_RATE_LIMIT_PER_KEY: String(RATE),
        POLL_INTERVAL_MS: '200',
        POLL_MAX_INTERVAL_MS: '200',
      },
    });
    await eventually(async () => {
      const ready = (await (await fetch(`${stack.gatewayUrl}/readyz`)).json()) as { coordination: string };
      expect(ready.coordination).toBe('redis');
    }, 15_000);
    client = connectWs(stack.gatewayUrl, KEY);
  });
  afterAll(async () => {
    await client.dispose();
    await stack.stop();
    await emulator.stop();
  });

  it('keeps the key at least 90 % of its pace, and answers a task() within a second', async () => {
    // 40 tasks each wanting a read every 200 ms: 200 requests/s, ten times the key's pace.
    const ids = await createTasks(emulator, KEY, 41);
    const watches: Watch[] = ids.slice(1).map((id) => watch(client, id));
    await eventually(() => expect(watches.every((w) => w.results.length > 0)).toBe(true), 15_000);
    const before = emulator.stats.requests;
    const startedAt = performance.now();
    await sleep(4_000);
    const perSec = (emulator.stats.requests - before) / ((performance.now() - startedAt) / 1_000);
    // Waiting on Redis for each request, a key got 4.6 of 55.6 requests/s with Redis this far away.
    expect(perSec).toBeGreaterThanOrEqual(0.9 * RATE);
    // Paced: the lease comes from one budget; a second one beside it would double the pace.
    expect(perSec).toBeLessThanOrEqual(1.1 * RATE);
    // A query goes ahead of the polls that wait for the key's pace, Redis or not: answered while they still wait
    // (when each send waited on Redis, it took 34.5 s); the bound here is only a liveness bound.
    const { data, errors } = await settlesWithin(
      stack.gql(`query($id: ID!) { task(id: $id) { ... on BaseTask { id } } }`, { id: ids[0] }, KEY),
      5_000,
    );
    expect(errors).toBeUndefined();
    expect(data.task.id).toBe(ids[0]);
    expect(stack.gateway.requestScheduler.stats().queued).toBeGreaterThan(10);
  });
});
