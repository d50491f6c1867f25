import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../src/emulator/emulator.ts';
import { createManualClock, eventually } from '../helpers/clock.ts';
import { startDelayProxy } from '../helpers/delay-proxy.ts';
import { coordination, expectCompletedOnce, recentIds, submit, watchEverywhere } from '../helpers/fleet.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import { type Replica, startReplicas } from '../helpers/replicas.ts';
import { freePort, startEmulator } from '../helpers/stack.ts';

const REDIS_DELAY_MS = 100; // each direction: a round trip 200 ms longer, within the 500 ms command deadline

describe('Redis 100 ms away: slow, not stalled', () => {
  const clock = createManualClock();
  let emulator: Emulator;
  let replicas: Replica[];
  const clients: Client[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ now: clock.now, queuedMs: 1_000, processingMs: 4_000 });
    const redis = await startRedisServer(await freePort());
    const proxy = await startDelayProxy({ targetPort: redis.port, forwardMs: REDIS_DELAY_MS, backMs: REDIS_DELAY_MS });
    replicas = await startReplicas(2, { redisUrl: `redis://${proxy.host}`, upstreamUrl: emulator.url });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    await emulator.stop();
  });

  it('answers submits, delivers every change once, records what was submitted, and stays shared', async () => {
    const [first, second] = replicas as [Replica, Replica];
    const startedAt = Date.now();
    const id = await submit(first);
    const submitMs = Date.now() - startedAt;
    // A liveness bound: the submit waits on no Redis round trip it does not need.
    expect(submitMs).toBeLessThan(5_000);
    const watchers = watchEverywhere([first, second], id, 3, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    expect(await Promise.all([first, second].map(coordination))).toEqual(['redis', 'redis']);
    clock.advance(2_000);
    await eventually(() => expect(watchers.every((w) => w.states().at(-1) === 'ProcessingTask:PROCESSING:25')).toBe(true), 10_000);
    clock.advance(3_000);
    await expectCompletedOnce(watchers, 10_000);
    // Filed through Redis, seen from the other replica.
    await eventually(async () => expect(await recentIds(second)).toContain(id), 10_000);
    process.stdout.write(`redis 100 ms away: a submit answered in ${submitMs} ms\n`);
  }, 60_000);

  it('lets a replica stopped with SIGTERM exit cleanly within its grace', async () => {
    const victim = replicas[1]!;
    const watchers = watchEverywhere([victim], await submit(victim), 1, clients);
    await eventually(() => expect(watchers.flat().every((w) => w.results.length === 1)).toBe(true), 10_000);
    const stoppedAt = Date.now();
    // 0: the stop finished before the entry's 10 s deadline (which exits with 1).
    expect(await victim.process.stop()).toBe(0);
    process.stdout.write(`redis 100 ms away: SIGTERM exit after ${Date.now() - stoppedAt} ms\n`);
  }, 30_000);
});
