import { createHash } from 'node:crypto';
import type { Client } from 'graphql-ws';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Emulator } from '../src/emulator/emulator.ts';
import { createManualClock, eventually } from './helpers/clock.ts';
import { expectCompletedOnce, getsBy, submit as submitThrough, terminal, watchEverywhere as watchAt } from './helpers/fleet.ts';
import { connectRedis, type RedisServer, startRedisServer } from './helpers/redis-server.ts';
import { type Replica, startReplicas } from './helpers/replicas.ts';
import { freePort, startEmulator } from './helpers/stack.ts';

const KEY = 'sk-replicas';
const keyHash = createHash('sha256').update(KEY).digest('hex');

const submit = (replica: Replica) => submitThrough(replica, KEY);
const watchEverywhere = (replicas: Replica[], id: string, count: number, clients: Client[]) => watchAt(replicas, id, count, clients, KEY);

describe('three replicas sharing one poll loop per task through Redis', () => {
  const clock = createManualClock();
  let emulator: Emulator;
  let replicas: Replica[];
  let redis: Redis;
  const clients: Client[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ now: clock.now, queuedMs: 1_000, processingMs: 4_000 });
    replicas = await startReplicas(3, { redisUrl: inject('redisUrl'), upstreamUrl: emulator.url });
    redis = connectRedis(inject('redisUrl'));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    redis.disconnect();
    await emulator.stop();
  });

  it('polls once per interval in total, and every subscriber sees the same ordered states and one terminal event', async () => {
    const id = await submit(replicas[0]!);
    const watchers = watchEverywhere(replicas, id, 10, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    const upstreamGets = () => emulator.stats.gets.get(id) ?? 0;
    const before = { upstream: upstreamGets(), byReplica: await Promise.all(replicas.map(getsBy)) };
    // Ten polls of the task, however long the machine takes to make them.
    await eventually(() => expect(upstreamGets() - before.upstream).toBeGreaterThanOrEqual(10), 10_000);
    const seen = upstreamGets() - before.upstream;
    const made = (await Promise.all(replicas.map(getsBy))).map((count, i) => count - before.byReplica[i]!);
    // One replica (the lease holder) made the GETs, one per interval; on their own, all three would poll
    // once per interval each, a third of the GETs apiece and none idle. A holder whose event loop stalls past
    // its lease (600 ms) on a busy machine is rightly replaced: one hand-over is allowed, so at least one
    // replica made none and one made most of them.
    expect(made.filter((count) => count === 0).length).toBeGreaterThanOrEqual(1);
    expect(Math.max(...made)).toBeGreaterThanOrEqual(seen / 2);
    expect(made.reduce((a, b) => a + b)).toBeLessThanOrEqual(seen + 2);
    for (let step = 0; step < 5; step++) {
      clock.advance(1_000);
      await eventually(() => expect(new Set(watchers.map((w) => w.states().at(-1))).size).toBe(1), 10_000);
    }
    await eventually(() => expect(watchers.every((w) => w.completed)).toBe(true), 10_000);
    const first = watchers[0]!.states();
    expect(first.at(-1)).toBe('CompletedTask:COMPLETED:100');
    for (const watcher of watchers) {
      expect(watcher.states()).toEqual(first);
      expect(watcher.states().filter(terminal)).toHaveLength(1);
    }
  }, 60_000);

  it('survives the death of the lease holder: the others take over within the lease time', async () => {
    const id = await submit(replicas[0]!);
    const byReplica = watchEverywhere(replicas, id, 5, clients);
    await eventually(() => expect(byReplica.flat().every((w) => w.results.length === 1)).toBe(true), 10_000);
    const holder = await eventually(async () => {
      const value = await redis.get(`task-gateway:lease:${keyHash}:${id}`);
      expect(value).toBeTruthy();
      return value!;
    });
    const victim = replicas.findIndex((replica) => holder.includes(`:${replica.pid}:`));
    expect(victim).toBeGreaterThanOrEqual(0);
    replicas[victim]!.process.child.kill('SIGKILL');
    const survivors = byReplica.filter((_, index) => index !== victim).flat();
    const getsAtDeath = emulator.stats.gets.get(id) ?? 0;
    for (let step = 0; step < 5; step++) {
      clock.advance(1_000);
      // Lease 600 ms (3 intervals) plus an interval: well inside this liveness bound.
      await eventually(() => expect(new Set(survivors.map((w) => w.states().at(-1))).size).toBe(1), 10_000);
    }
    await expectCompletedOnce(survivors, 10_000);
    expect(emulator.stats.gets.get(id)!).toBeGreaterThan(getsAtDeath);
    for (const watcher of survivors) expect(watcher.states()).toEqual(survivors[0]!.states());
  }, 60_000);
});

describe('webhooks behind a load balancer', () => {
  const clock = createManualClock();
  let emulator: Emulator;
  let replicas: Replica[];
  const clients: Client[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ now: clock.now, queuedMs: 1_000, processingMs: 4_000, sweepIntervalMs: 3_600_000 });
    // Polling every minute: only the webhook can bring the change within the test.
    replicas = await startReplicas(3, {
      redisUrl: inject('redisUrl'),
      upstreamUrl: emulator.url,
      env: { POLL_INTERVAL_MS: '60000', POLL_MAX_INTERVAL_MS: '60000' },
    });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    await emulator.stop();
  });

  it('reach the subscribers on every replica, whichever replica the callback hits', async () => {
    const id = await submit(replicas[0]!);
    // Watchers on the two replicas that did not issue the callback token.
    const watchers = watchEverywhere(replicas.slice(1), id, 5, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    clock.advance(10_000);
    const callbackUrl = new URL(emulator.callbackUrlOf(id)!);
    const atReplica = new URL(callbackUrl.pathname, replicas[2]!.url);
    const answer = await fetch(atReplica, { method: 'POST', body: '{}' });
    expect(answer.status).toBe(202);
    await eventually(() => expect(watchers.every((w) => w.completed)).toBe(true), 10_000);
    for (const watcher of watchers) expect(watcher.states()).toEqual(['QueuedTask:QUEUED:0', 'CompletedTask:COMPLETED:100']);
    const unknown = await fetch(new URL(`/webhooks/tasks/${'z'.repeat(32)}`, replicas[1]!.url), { method: 'POST', body: '{}' });
    expect(unknown.status).toBe(404);
  }, 60_000);
});

describe('a Redis restart mid-task', () => {
  const clock = createManualClock();
  let emulator: Emulator;
  let redisServer: RedisServer;
  let replicas: Replica[];
  const clients: Client[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ now: clock.now, queuedMs: 1_000, processingMs: 4_000 });
    redisServer = await startRedisServer(await freePort());
    replicas = await startReplicas(2, { redisUrl: redisServer.url, upstreamUrl: emulator.url });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    await redisServer.kill();
    await emulator.stop();
  });

  const readiness = async (replica: Replica) =>
    ((await (await fetch(`${replica.url}/readyz`)).json()) as { coordination: string }).coordination;

  it('ends no subscription: replicas poll on their own, report it, and rejoin', async () => {
    const id = await submit(replicas[0]!);
    const watchers = watchEverywhere(replicas, id, 5, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    await redisServer.kill();
    await eventually(
      async () => expect(await Promise.all(replicas.map(readiness))).toEqual(['degraded: polling locally', 'degraded: polling locally']),
      10_000,
    );
    const metrics = await (await fetch(`${replicas[0]!.url}/metrics`)).text();
    expect(metrics).toMatch(/^task_gateway_coordination_up 0$/m);
    clock.advance(2_000);
    await eventually(() => expect(watchers.every((w) => w.states().at(-1) === 'ProcessingTask:PROCESSING:25')).toBe(true), 10_000);
    await redisServer.start();
    await eventually(async () => expect(await Promise.all(replicas.map(readiness))).toEqual(['redis', 'redis']), 15_000);
    clock.advance(3_000);
    await expectCompletedOnce(watchers, 10_000);
  }, 60_000);
});
