import { afterAll, describe, expect, inject, it } from 'vitest';
import { redisAt } from '../../src/lib/redis-config.ts';
import { createRedisBudget } from '../../src/upstream/redis-budget.ts';
import { createManualClock } from '../helpers/clock.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('slices of a key budget leased from Redis by several replicas', () => {
  const clock = createManualClock(1_000_000);
  const prefix = `task-gateway-test-lease-${process.pid}-${Date.now()}`;
  const replicas = [0, 1, 2].map(() => createRedisBudget({ redis: redisAt(inject('redisUrl')), prefix, now: clock.now }));
  const KEY = 'a-key-hash';
  const RATE = 50; // the quota the key learnt, requests/s; 0.95 of it is used
  const intervalMs = 1_000 / (RATE * 0.95);

  afterAll(async () => {
    await Promise.all(replicas.map((budget) => budget.dispose()));
  });

  it('are spent at the times Redis gave, so that the replicas together keep the pace in every second', async () => {
    for (const budget of replicas) budget.start();
    for (let attempt = 0; attempt < 100 && !replicas.every((budget) => budget.healthy()); attempt++) await sleep(20);
    // What a quota 429 taught one replica holds for all, through Redis: paced strictly, no burst.
    replicas[0]!.learn(KEY, { kind: 'quota', ratePerSec: RATE, resumeAt: null });
    await sleep(50);
    const spent: Array<{ replica: number; at: number }> = [];
    // Two seconds, a millisecond at a time; each replica has ten requests waiting for the key all along.
    for (let step = 0; step < 2_000; step++) {
      for (const [replica, budget] of replicas.entries()) {
        while (budget.reserveNow(KEY, 10)) spent.push({ replica, at: clock.now() });
      }
      clock.advance(1);
      // Redis answers leases in real time: let them arrive between the budget's milliseconds.
      if (step % 10 === 0) await sleep(1);
    }
    // The first request of an idle key does not wait for Redis (its replica's own budget sends it): leave those out.
    const leased = spent.filter((slot, i) => spent.findIndex((other) => other.replica === slot.replica) !== i);
    const times = leased.map((slot) => slot.at).sort((a, b) => a - b);
    // Every replica spent some, and in no second did the three together spend more than the pace allows
    // (a slot may be spent up to 25 ms late when its slice came late: one more at most). Slices spent one
    // after another by each replica, ignoring where Redis put the others', overlapped and went past it.
    for (const replica of [0, 1, 2]) expect(spent.some((slot) => slot.replica === replica)).toBe(true);
    const mostInASecond = Math.max(...times.map((at) => times.filter((other) => other >= at && other < at + 1_000).length));
    expect(mostInASecond).toBeLessThanOrEqual(Math.ceil(1_000 / intervalMs) + 1);
    expect(times.length).toBeLessThanOrEqual(Math.ceil(2_000 / intervalMs) + 2);
  });
});
