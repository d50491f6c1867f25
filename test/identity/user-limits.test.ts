import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createRedisUserLimits } from '../../src/identity/redis-user-limits.ts';
import { createMemoryUserLimits, DAY_MS, type UserLimitSettings, type UserLimits } from '../../src/identity/user-limits.ts';
import { redisAt } from '../../src/lib/redis-config.ts';
import { createManualClock, type ManualClock } from '../helpers/clock.ts';

const OFF: UserLimitSettings = { maxActiveTasks: null, submitsPerMinute: null, dailySpend: null };

const stores = {
  memory: (settings: UserLimitSettings, clock: ManualClock, _prefix: string) => createMemoryUserLimits({ settings, now: clock.now }),
  redis: (settings: UserLimitSettings, clock: ManualClock, prefix: string) =>
    createRedisUserLimits({ redis: redisAt(inject('redisUrl')), settings, prefix, now: clock.now }),
};

describe.each(Object.keys(stores) as Array<keyof typeof stores>)('the %s user-limits store', (kind) => {
  const opened: UserLimits[] = [];
  const open = (settings: Partial<UserLimitSettings>, clock = createManualClock(), prefix = `test-limits-${randomUUID()}`) => {
    const store = stores[kind]({ ...OFF, ...settings }, clock, prefix);
    opened.push(store);
    return store;
  };
  afterAll(() => Promise.all(opened.map((store) => store.dispose())));

  it('refuses past USER_MAX_ACTIVE_TASKS and admits again once a task ends', async () => {
    const limits = open({ maxActiveTasks: 2 });
    expect(await limits.admit('alice', 't1')).toBeNull();
    await limits.accepted('alice', 't1', 'task-1', 10);
    expect(await limits.admit('alice', 't2')).toBeNull();
    expect(await limits.admit('alice', 't3')).toEqual({ limit: 'ACTIVE_TASKS', retryAfterMs: null, resetsAt: null });
    // Another user is counted apart.
    expect(await limits.admit('bob', 't4')).toBeNull();
    await limits.accepted('alice', 't2', 'task-2', 10);
    expect(await limits.unfinished('alice', 10)).toEqual(['task-1', 'task-2']);
    await limits.ended('alice', 'task-1', 'none');
    expect(await limits.admit('alice', 't5')).toBeNull();
  });

  it('gives back the place of a submit that reached no task', async () => {
    const limits = open({ maxActiveTasks: 1 });
    expect(await limits.admit('alice', 't1')).toBeNull();
    expect((await limits.admit('alice', 't2'))?.limit).toBe('ACTIVE_TASKS');
    await limits.release('alice', 't1');
    expect(await limits.admit('alice', 't2')).toBeNull();
  });

  it('drops the place of a submit that never reported back after 5 minutes (its replica died)', async () => {
    const clock = createManualClock();
    const limits = open({ maxActiveTasks: 1 }, clock);
    expect(await limits.admit('alice', 't1')).toBeNull();
    clock.advance(299_000);
    expect((await limits.admit('alice', 't2'))?.limit).toBe('ACTIVE_TASKS');
    clock.advance(2_000);
    expect(await limits.admit('alice', 't2')).toBeNull();
  });

  it('refuses past USER_SUBMITS_PER_MINUTE, saying when the oldest submit leaves the window', async () => {
    const clock = createManualClock();
    const limits = open({ submitsPerMinute: 3 }, clock);
    const start = clock.now();
    for (const ticket of ['t1', 't2', 't3']) {
      expect(await limits.admit('alice', ticket)).toBeNull();
      clock.advance(10_000);
    }
    expect(await limits.admit('alice', 't4')).toEqual({ limit: 'SUBMITS_PER_MINUTE', retryAfterMs: 30_000, resetsAt: start + 60_000 });
    expect(await limits.usage('alice')).toEqual([{ limit: 'SUBMITS_PER_MINUTE', max: 3, used: 3, resetsAt: start + 60_000 }]);
    clock.advance(30_000);
    expect(await limits.admit('alice', 't4')).toBeNull();
  });

  it('refuses at USER_DAILY_SPEND until the next UTC day; the last task may go over; refunds give back', async () => {
    const clock = createManualClock();
    const limits = open({ dailySpend: 100 }, clock);
    const midnight = Math.ceil(clock.now() / DAY_MS) * DAY_MS;
    expect(await limits.admit('alice', 't1')).toBeNull();
    await limits.accepted('alice', 't1', 'task-1', 60);
    expect(await limits.admit('alice', 't2')).toBeNull();
    await limits.accepted('alice', 't2', 'task-2', 60.5);
    expect(await limits.usage('alice')).toEqual([{ limit: 'DAILY_SPEND', max: 100, used: 120.5, resetsAt: midnight }]);
    expect(await limits.admit('alice', 't3')).toEqual({ limit: 'DAILY_SPEND', retryAfterMs: midnight - clock.now(), resetsAt: midnight });
    // A cancelled task gives back what it was counted, once.
    await limits.ended('alice', 'task-2', 'counted');
    await limits.ended('alice', 'task-2', 'counted');
    expect((await limits.usage('alice'))[0]!.used).toBe(60);
    expect(await limits.admit('alice', 't3')).toBeNull();
    await limits.accepted('alice', 't3', 'task-3', 50);
    expect((await limits.admit('alice', 't4'))?.limit).toBe('DAILY_SPEND');
    // A refund is capped at what the task was counted.
    await limits.ended('alice', 'task-3', 1_000);
    expect((await limits.usage('alice'))[0]!.used).toBe(60);
    clock.advance(midnight - clock.now());
    expect(await limits.admit('alice', 't5')).toBeNull();
    expect((await limits.usage('alice'))[0]!.used).toBe(0);
  });

  it('counts submits in flight against USER_DAILY_SPEND: one at a time before the day has a cost, then each as its most expensive task', async () => {
    const clock = createManualClock();
    const limits = open({ dailySpend: 1_000 }, clock);
    const midnight = Math.ceil(clock.now() / DAY_MS) * DAY_MS;
    expect(await limits.admit('alice', 't1')).toBeNull();
    // The first submit of the day is in flight and its cost unknown: a second waits for its answer.
    expect(await limits.admit('alice', 't2')).toEqual({ limit: 'DAILY_SPEND', retryAfterMs: 1_000, resetsAt: clock.now() + 1_000 });
    expect(await limits.admit('bob', 'b1')).toBeNull();
    await limits.accepted('alice', 't1', 'task-1', 300);
    // 300 spent; each submit in flight counts 300 more, and the user is refused once that reaches 1 000:
    // with two in flight (900) a third may go, as the last task may take the user over; with three (1 200) not.
    expect(await limits.admit('alice', 't2')).toBeNull();
    expect(await limits.admit('alice', 't3')).toBeNull();
    expect(await limits.admit('alice', 't4')).toBeNull();
    expect(await limits.admit('alice', 't5')).toEqual({ limit: 'DAILY_SPEND', retryAfterMs: 1_000, resetsAt: clock.now() + 1_000 });
    await limits.release('alice', 't4');
    expect(await limits.admit('alice', 't5')).toBeNull();
    for (const ticket of ['t2', 't3', 't5']) await limits.accepted('alice', ticket, `task-${ticket}`, 300);
    // 1 200 spent: one task over at most, then refused until the next UTC day.
    expect(await limits.admit('alice', 't6')).toEqual({ limit: 'DAILY_SPEND', retryAfterMs: midnight - clock.now(), resetsAt: midnight });
  });

  it('keeps 20 concurrent submits of one user to USER_DAILY_SPEND plus at most one task', async () => {
    const limits = open({ dailySpend: 1_000 });
    await limits.admit('alice', 't0');
    await limits.accepted('alice', 't0', 'task-0', 300);
    let spent = 300;
    // Twenty submits race; each admitted one costs 300 once the upstream answers.
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        if ((await limits.admit('alice', `t${i + 1}`)) !== null) return;
        await limits.accepted('alice', `t${i + 1}`, `task-${i + 1}`, 300);
        spent += 300;
      }),
    );
    expect(spent).toBeLessThanOrEqual(1_000 + 300);
    expect((await limits.usage('alice'))[0]!.used).toBe(spent);
  });

  it('counts an idempotent resubmit of the same task once', async () => {
    const limits = open({ maxActiveTasks: 5, dailySpend: 1_000 });
    for (const ticket of ['t1', 't2']) {
      expect(await limits.admit('alice', ticket)).toBeNull();
      await limits.accepted('alice', ticket, 'task-1', 40);
    }
    expect(await limits.usage('alice')).toEqual([
      { limit: 'ACTIVE_TASKS', max: 5, used: 1, resetsAt: null },
      { limit: 'DAILY_SPEND', max: 1_000, used: 40, resetsAt: expect.any(Number) },
    ]);
  });
});

describe('the Redis user-limits store', () => {
  it('admits exactly USER_MAX_ACTIVE_TASKS of 20 concurrent submits from two stores (two replicas) racing', async () => {
    const prefix = `test-limits-${randomUUID()}`;
    const settings = { ...OFF, maxActiveTasks: 3 };
    const replicas = [0, 1].map(() => createRedisUserLimits({ redis: redisAt(inject('redisUrl')), settings, prefix }));
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => replicas[i % 2]!.admit('alice', `t${i}`)));
      expect(answers.filter((answer) => answer === null)).toHaveLength(3);
    } finally {
      await Promise.all(replicas.map((replica) => replica.dispose()));
    }
  });
});

describe('the Redis user-limits store, spend', () => {
  it('keeps USER_DAILY_SPEND to at most one task over with 20 submits racing on two stores (two replicas)', async () => {
    const prefix = `test-limits-${randomUUID()}`;
    const settings = { ...OFF, dailySpend: 1_000 };
    const replicas = [0, 1].map(() => createRedisUserLimits({ redis: redisAt(inject('redisUrl')), settings, prefix }));
    try {
      // Before the day has a cost, one submit in flight at a time; after it, each counts as 300.
      const first = await Promise.all(Array.from({ length: 10 }, (_, i) => replicas[i % 2]!.admit('alice', `f${i}`)));
      expect(first.filter((answer) => answer === null)).toHaveLength(1);
      await replicas[0]!.accepted('alice', `f${first.indexOf(null)}`, 'task-f', 300);
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => replicas[i % 2]!.admit('alice', `t${i}`)));
      const admitted = answers.flatMap((answer, i) => (answer === null ? [i] : []));
      // 300 spent: with none, one and two in flight (300 to 900) a submit passes; with three (1 200) it does not.
      expect(admitted).toHaveLength(3);
      await Promise.all(admitted.map((i) => replicas[i % 2]!.accepted('alice', `t${i}`, `task-${i}`, 300)));
      expect((await replicas[1]!.usage('alice'))[0]!.used).toBe(1_200);
    } finally {
      await Promise.all(replicas.map((replica) => replica.dispose()));
    }
  });
});

describe('the memory user-limits store', () => {
  it('remembers at most maxUsers users (overflow attempt)', async () => {
    const limits = createMemoryUserLimits({ settings: { ...OFF, submitsPerMinute: 1 }, maxUsers: 50 });
    for (let i = 0; i < 500; i++) await limits.admit(`user-${i}`, 't');
    expect(limits.size()).toBe(50);
  });

  it('keeps at most 1 000 unfinished tasks per user when USER_MAX_ACTIVE_TASKS is off (overflow attempt)', async () => {
    const limits = createMemoryUserLimits({ settings: { ...OFF, dailySpend: 1e9 } });
    for (let i = 0; i < 1_500; i++) {
      await limits.admit('alice', `t${i}`);
      await limits.accepted('alice', `t${i}`, `task-${i}`, 1);
    }
    expect(await limits.unfinished('alice', 5_000)).toHaveLength(1_000);
  });
});
