import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  applyLesson,
  type BudgetLesson,
  type BudgetState,
  freshState,
  LEARN_LUA,
  leaseCount,
  lessonArgs,
  RESERVE_LUA,
  reserveSlots,
  resolveRules,
  ruleArgs,
  stateFromHash,
} from '../../src/upstream/gcra.ts';
import { connectRedis } from '../helpers/redis-server.ts';

type Step = { at: number } & ({ reserveMs: number; want?: number } | { lesson: BudgetLesson });

/**
 * One table of reservations (leases of `reserveMs`) and lessons that passes through every branch of
 * the rules: slow start and its growth span, the burst, a quota with its reset, a bare 429 and its
 * hold, the careful growth after a 429, the ceiling, and the floor of the pace.
 */
const steps: Step[] = [
  { at: 1_000, reserveMs: 100 },
  { at: 1_000, reserveMs: 20 },
  { at: 1_020, reserveMs: 500, want: 3 },
  { at: 1_050, reserveMs: 500 },
  { at: 1_500, lesson: { kind: 'faster' } },
  { at: 2_000, lesson: { kind: 'faster' } },
  { at: 2_300, lesson: { kind: 'faster' } },
  { at: 2_300, reserveMs: 250 },
  { at: 9_000, lesson: { kind: 'faster' } },
  { at: 9_100, lesson: { kind: 'slower', resumeAt: null } },
  { at: 9_200, lesson: { kind: 'slower', resumeAt: 9_900 } },
  { at: 9_300, reserveMs: 300 },
  { at: 10_100, lesson: { kind: 'slower', resumeAt: null } },
  { at: 11_000, lesson: { kind: 'faster' } },
  { at: 11_400, lesson: { kind: 'faster' } },
  { at: 11_400, reserveMs: 1_000 },
  { at: 12_000, lesson: { kind: 'quota', ratePerSec: 20, resumeAt: 13_000 } },
  { at: 12_100, reserveMs: 100 },
  { at: 12_200, reserveMs: 2_000, want: 7 },
  { at: 14_000, lesson: { kind: 'faster' } },
  { at: 14_000, reserveMs: 10 },
  { at: 20_000, lesson: { kind: 'quota', ratePerSec: 0.01, resumeAt: null } },
  { at: 20_000, reserveMs: 5_000 },
  { at: 30_000, lesson: { kind: 'slower', resumeAt: null } },
];

describe('the GCRA rules, in TypeScript and in Redis Lua', () => {
  const rules = resolveRules({ initialRatePerSec: 40, maxRatePerSec: 300, minRatePerSec: 0.5, burstMs: 100 });
  const key = `task-gateway-test:gcra-parity:${process.pid}:${Date.now()}`;
  const redis = connectRedis(inject('redisUrl'));
  const scripts = redis as unknown as {
    reserve(key: string, ...args: Array<string | number>): Promise<[string, string, number]>;
    learn(key: string, ...args: Array<string | number>): Promise<string>;
  };

  beforeAll(() => {
    redis.defineCommand('reserve', { numberOfKeys: 1, lua: RESERVE_LUA });
    redis.defineCommand('learn', { numberOfKeys: 1, lua: LEARN_LUA });
  });
  afterAll(async () => {
    await redis.del(key);
  });

  it('give the same slots and the same state after every step of one table', async () => {
    const local: BudgetState = freshState(rules);
    const args = ruleArgs(rules, 60_000);
    for (const [index, step] of steps.entries()) {
      const what = `step ${index} ${JSON.stringify(step)}`;
      if ('reserveMs' in step) {
        const want = step.want ?? 1_000_000;
        const count = leaseCount(local, step.reserveMs, want);
        const slot = reserveSlots(local, step.at, count);
        const [redisSlot, , redisCount] = await scripts.reserve(key, step.at, ...args, step.reserveMs, want);
        expect([Number(redisSlot), redisCount], what).toEqual([expect.closeTo(slot, 2), count]);
      } else {
        applyLesson(local, step.lesson, step.at, rules);
        await scripts.learn(key, step.at, ...args, ...lessonArgs(step.lesson));
      }
      const stored = stateFromHash(await redis.hgetall(key))!;
      for (const field of Object.keys(local) as Array<keyof BudgetState>) {
        expect(stored[field], `${what}: ${field}`).toBeCloseTo(local[field], 2);
      }
    }
    // The table reached every rule: slow start, the quota's floor, and the slowest pace.
    expect(local.learned).toBe(1);
    expect(local.intervalMs).toBeCloseTo(2_000);
  });
});
