import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../src/emulator/emulator.ts';
import { createManualClock, eventually } from '../helpers/clock.ts';
import { coordination, expectCompletedOnce, recentIds, sharingReturns, submit, watchEverywhere } from '../helpers/fleet.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import { type Replica, startReplicas } from '../helpers/replicas.ts';
import { freePort, startEmulator } from '../helpers/stack.ts';
import { type StallProxy, startStallProxy } from '../helpers/stall-proxy.ts';

const DEGRADED = 'degraded: polling locally';

describe('a stalled Redis (connections open, no answer) is an outage, not a hang', () => {
  const clock = createManualClock();
  let emulator: Emulator;
  let proxy: StallProxy;
  let replicas: Replica[];
  const clients: Client[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ now: clock.now, queuedMs: 1_000, processingMs: 4_000 });
    const redis = await startRedisServer(await freePort());
    proxy = await startStallProxy(redis.port);
    replicas = await startReplicas(3, { redisUrl: `redis://127.0.0.1:${proxy.port}`, upstreamUrl: emulator.url });
  }, 60_000);
  afterAll(async () => {
    proxy.resume();
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    await emulator.stop();
  });

  it('submits answer, subscriptions keep receiving changes, /readyz says degraded, and sharing comes back', async () => {
    const [first, second] = replicas as [Replica, Replica];
    const id = await submit(first);
    const watchers = watchEverywhere([first, second], id, 3, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    proxy.pause();
    const pausedAt = Date.now();
    const stalledSubmit = await submit(second);
    const answeredMs = Date.now() - pausedAt;
    expect(stalledSubmit).toMatch(/^task-/);
    // Liveness bounds, never tight: the command deadline is 500 ms.
    expect(answeredMs).toBeLessThan(5_000);
    await eventually(async () => expect(await Promise.all([first, second].map(coordination))).toEqual([DEGRADED, DEGRADED]), 10_000);
    const degradedMs = Date.now() - pausedAt;
    clock.advance(2_000);
    await eventually(() => expect(watchers.every((w) => w.states().at(-1) === 'ProcessingTask:PROCESSING:25')).toBe(true), 10_000);
    proxy.resume();
    const resumedAt = Date.now();
    await eventually(async () => expect(await Promise.all([first, second].map(coordination))).toEqual(['redis', 'redis']), 15_000);
    const rejoinedMs = Date.now() - resumedAt;
    await sharingReturns(emulator, [first, second], id);
    process.stdout.write(
      `stalled redis: a submit answered after ${answeredMs} ms, /readyz degraded after ${degradedMs} ms; after resume both shared again after ${rejoinedMs} ms\n`,
    );
    clock.advance(3_000);
    await expectCompletedOnce(watchers, 10_000);
    // Not recorded while Redis stalled (and logged so), recorded once it answered again.
    expect(second.process.output()).toMatch(/submission was not recorded yet/);
    await eventually(async () => expect(await recentIds(first)).toContain(stalledSubmit), 10_000);
  }, 60_000);

  it('a stalled subscriber connection alone also counts as down, and its watchers keep receiving changes', async () => {
    const [first, second] = replicas as [Replica, Replica];
    const id = await submit(first);
    const watchers = watchEverywhere([first, second], id, 2, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    proxy.pause({ subscribersOnly: true });
    try {
      // Noticed by the subscriber's heartbeat, though it sends nothing else.
      await eventually(async () => expect(await Promise.all([first, second].map(coordination))).toEqual([DEGRADED, DEGRADED]), 10_000);
      clock.advance(2_000);
      await eventually(() => expect(watchers.every((w) => w.states().at(-1) === 'ProcessingTask:PROCESSING:25')).toBe(true), 10_000);
    } finally {
      proxy.resume();
    }
    await eventually(async () => expect(await Promise.all([first, second].map(coordination))).toEqual(['redis', 'redis']), 15_000);
    clock.advance(3_000);
    await expectCompletedOnce(watchers, 10_000);
  }, 60_000);

  it('a replica stopped (SIGTERM) while Redis is stalled exits cleanly within its grace', async () => {
    const victim = replicas[2]!;
    const client = watchEverywhere([victim], await submit(victim), 1, clients);
    await eventually(() => expect(client.flat().every((w) => w.results.length === 1)).toBe(true), 10_000);
    proxy.pause();
    try {
      const stoppedAt = Date.now();
      const code = await victim.process.stop();
      process.stdout.write(`stalled redis: SIGTERM exit after ${Date.now() - stoppedAt} ms\n`);
      // 0: the stop finished before the entry's 10 s deadline (which exits with 1).
      expect(code).toBe(0);
    } finally {
      proxy.resume();
    }
  }, 30_000);
});
