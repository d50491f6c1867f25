import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createEmulator, type Emulator } from '../../src/emulator/emulator.ts';
import { eventually } from '../helpers/clock.ts';
import { createTasks } from '../helpers/emulator-tasks.ts';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.ts';
import { freePort, type Stack, startStack } from '../helpers/stack.ts';
import { connectWs, type Watch, watch } from '../helpers/ws-client.ts';

const CAP = 10; // requests per key per second

const coordination = async (stack: Stack) => ((await (await fetch(`${stack.gatewayUrl}/readyz`)).json()) as any).coordination;

describe('the budget of a key shared by replicas through Redis', () => {
  // A key of its own per run: what a key's budget learnt stays in Redis for an hour.
  const KEY = `sk-shared-budget-${process.pid}-${Date.now()}`;
  let emulator: Emulator;
  let ids: string[];
  const stacks: Stack[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    emulator = createEmulator({ queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000 });
    const upstreamUrl = await emulator.start();
    ids = await createTasks(emulator, KEY, 30);
    emulator.setRateLimit({ cap: CAP, windowMs: 1_000 });
    for (let i = 0; i < 3; i++) {
      const env = { REDIS_URL: inject('redisUrl'), POLL_INTERVAL_MS: '200', POLL_MAX_INTERVAL_MS: '200' };
      stacks.push(await startStack({ upstreamUrl, env }));
    }
    for (const stack of stacks) await eventually(async () => expect(await coordination(stack)).toBe('redis'));
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(stacks.map((stack) => stack.stop()));
    await emulator.stop();
  });

  it('keeps three replicas together within the quota, each replica reading its own watched tasks', async () => {
    // Ten tasks watched on each replica, each wanting a read every 200 ms: 150 requests/s for a quota of 10/s.
    const watches: Watch[][] = stacks.map((stack, i) => {
      const client = connectWs(stack.gatewayUrl, KEY);
      clients.push(client);
      return ids.slice(i * 10, i * 10 + 10).map((id) => watch(client, id));
    });
    await eventually(() => expect(watches.flat().every((w) => w.results.length > 0)).toBe(true), 15_000);
    // What the first burst and the first 429 taught is behind us once 10 more requests went: then measure the next
    // 40, counted in requests rather than in time, so a slow machine stretches the stretch instead of skewing it.
    const primed = emulator.stats.requests;
    await eventually(() => expect(emulator.stats.requests).toBeGreaterThanOrEqual(primed + 10), 15_000);
    const before = { requests: emulator.stats.requests, refused: emulator.stats.rateLimited.get(KEY) ?? 0 };
    const readsBefore = ids.map((id) => emulator.stats.gets.get(id) ?? 0);
    await eventually(() => expect(emulator.stats.requests).toBeGreaterThanOrEqual(before.requests + 40), 30_000);
    const requests = emulator.stats.requests - before.requests;
    const refused = (emulator.stats.rateLimited.get(KEY) ?? 0) - before.refused;
    // Budgets of their own would send 3 x 9.5/s against 10/s: about two thirds refused.
    expect(refused / requests).toBeLessThan(0.1);
    const reads = ids.map((id, i) => (emulator.stats.gets.get(id) ?? 0) - readsBefore[i]!);
    for (let replica = 0; replica < 3; replica++)
      expect(reads.slice(replica * 10, replica * 10 + 10).reduce((a, b) => a + b)).toBeGreaterThan(0);
    expect(watches.flat().every((w) => w.error === undefined && !w.completed)).toBe(true);
  });
});

describe('the shared budget while Redis is down', () => {
  const KEY = `sk-budget-fallback-${process.pid}`;
  let redis: RedisServer;
  let emulator: Emulator;
  let stack: Stack;
  let client: Client;

  beforeAll(async () => {
    redis = await startRedisServer(await freePort());
    emulator = createEmulator({ queuedMs: 0, processingMs: 3_600_000, sweepIntervalMs: 3_600_000 });
    await emulator.start();
    emulator.setRateLimit({ cap: CAP, windowMs: 1_000 });
    stack = await startStack({
      upstreamUrl: emulator.url,
      env: { REDIS_URL: redis.url, POLL_INTERVAL_MS: '200', POLL_MAX_INTERVAL_MS: '200' },
    });
    await eventually(async () => expect(await coordination(stack)).toBe('redis'));
    client = connectWs(stack.gatewayUrl, KEY);
  });
  afterAll(async () => {
    await client.dispose();
    await stack.stop();
    await emulator.stop();
    await redis.kill();
  });

  it('falls back to a budget per replica without ending a subscription, and shares again when Redis returns', async () => {
    emulator.setRateLimit(null);
    const ids = await createTasks(emulator, KEY, 20);
    emulator.setRateLimit({ cap: CAP, windowMs: 1_000 });
    const watches = ids.map((id) => watch(client, id));
    await eventually(() => expect(watches.every((w) => w.results.length === 1)).toBe(true), 15_000);
    await redis.kill();
    await eventually(async () => expect(await coordination(stack)).toBe('degraded: polling locally'));
    // Still paced (the replica's own budget learnt the same lessons): few 429s, and changes still arrive.
    const before = { requests: emulator.stats.requests, refused: emulator.stats.rateLimited.get(KEY) ?? 0 };
    emulator.pin(ids[0]!, 'completed', 100);
    await eventually(() => expect(watches[0]!.completed).toBe(true), 15_000);
    expect(watches[0]!.states().at(-1)).toBe('CompletedTask:COMPLETED:100');
    // Then 20 more requests, counted rather than timed.
    const seen = emulator.stats.requests;
    await eventually(() => expect(emulator.stats.requests).toBeGreaterThanOrEqual(seen + 20), 15_000);
    const refused = (emulator.stats.rateLimited.get(KEY) ?? 0) - before.refused;
    expect(refused / (emulator.stats.requests - before.requests)).toBeLessThan(0.1);
    expect(watches.slice(1).every((w) => !w.completed && w.error === undefined)).toBe(true);
    await redis.start();
    await eventually(async () => expect(await coordination(stack)).toBe('redis'), 15_000);
    emulator.pin(ids[1]!, 'completed', 100);
    await eventually(() => expect(watches[1]!.completed).toBe(true), 15_000);
    expect(watches.slice(2).every((w) => !w.completed && w.error === undefined)).toBe(true);
  });
});
