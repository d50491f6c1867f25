import { Redis } from 'ioredis';
import { createLruMap } from '../lib/lru-map.ts';
import { type BudgetLesson, type BudgetRules, createLocalBudget, type KeyBudget, resolveRules } from './key-budget.ts';

export interface RedisBudgetOptions extends BudgetRules {
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** Prefix of every Redis key. Default `task-gateway`. */
  prefix?: string;
  /** A key's budget left unused this long is forgotten by Redis. Default 3 600 000 ms (1 h). */
  idleMs?: number;
  /** Keys whose last answer from Redis this process remembers (for `peek`). Default 10 000. */
  maxKeys?: number;
  now?: () => number;
}

/**
 * Takes the next slot of a key (GCRA, as `reserveSlot` in key-budget.ts): KEYS[1] the key's hash;
 * ARGV now, the interval and tolerance of a fresh key, its floor, and the TTL, all in ms.
 * Returns the slot, the interval and the next free slot.
 */
const RESERVE = `
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'tat', 'interval', 'burst', 'floor')
local tat = tonumber(s[1]) or 0
local interval = tonumber(s[2]) or tonumber(ARGV[2])
local burst = tonumber(s[3]) or tonumber(ARGV[3])
local floor = tonumber(s[4]) or tonumber(ARGV[4])
local slot = math.max(tat - burst, now)
tat = math.max(tat, now) + interval
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat), 'interval', string.format('%.6f', interval),
  'burst', string.format('%.3f', burst), 'floor', string.format('%.6f', floor))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {string.format('%.3f', slot), string.format('%.6f', interval), string.format('%.3f', tat - burst)}`;

/**
 * Applies a lesson (as `applyLesson` in key-budget.ts): KEYS[1] the key's hash; ARGV now, kind
 * (faster, quota, slower), the quota's rate per second (or ''), resumeAt (or ''), then the rules:
 * fresh interval, fresh burst, fresh floor, slowest interval, fastest interval, headroom, decrease,
 * increase per second, decrease hold, TTL. Returns the interval and the next free slot.
 */
const LEARN = `
local now = tonumber(ARGV[1])
local kind = ARGV[2]
local s = redis.call('HMGET', KEYS[1], 'tat', 'interval', 'burst', 'floor', 'decreased')
local tat = tonumber(s[1]) or 0
local interval = tonumber(s[2]) or tonumber(ARGV[5])
local burst = tonumber(s[3]) or tonumber(ARGV[6])
local floor = tonumber(s[4]) or tonumber(ARGV[7])
local decreased = tonumber(s[5]) or 0
local slowest = tonumber(ARGV[8])
if kind == 'faster' then
  interval = math.max(floor, 1000 / (1000 / interval + tonumber(ARGV[12])))
else
  burst = 0
  if kind == 'quota' then
    floor = math.min(slowest, math.max(tonumber(ARGV[9]), 1000 / (tonumber(ARGV[3]) * tonumber(ARGV[10]))))
    interval = floor
  elseif now - decreased >= tonumber(ARGV[13]) then
    interval = math.min(slowest, interval / tonumber(ARGV[11]))
    decreased = now
  end
  if ARGV[4] ~= '' then tat = math.max(tat, tonumber(ARGV[4])) end
end
redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', tat), 'interval', string.format('%.6f', interval),
  'burst', string.format('%.3f', burst), 'floor', string.format('%.6f', floor), 'decreased', string.format('%.3f', decreased))
redis.call('PEXPIRE', KEYS[1], ARGV[14])
return {string.format('%.6f', interval), string.format('%.3f', math.max(tat - burst, now))}`;

interface BudgetCommands {
  budgetReserve(key: string, ...args: Array<string | number>): Promise<[string, string, string]>;
  budgetLearn(key: string, ...args: Array<string | number>): Promise<[string, string]>;
}

/**
 * The budget of every key shared by the fleet: each key's GCRA state lives in
 * one Redis hash (`<prefix>:budget:<key hash>`, never a key) updated atomically
 * by Lua scripts, so replicas take slots from one pace and what one learns
 * from a 429 holds for all. While Redis cannot be reached, each replica falls
 * back to its own budget (which has learnt the same lessons it saw) and
 * returns to the shared one when Redis does; nothing fails because of Redis.
 */
export function createRedisBudget(options: RedisBudgetOptions): KeyBudget & { healthy(): boolean } {
  const { url, prefix = 'task-gateway', idleMs = 3_600_000, maxKeys = 10_000, now = Date.now } = options;
  const rules = resolveRules(options);
  const local = createLocalBudget({ ...options, now, maxKeys, idleMs });
  const redis = new Redis(url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 1_000,
    retryStrategy: (attempt: number) => Math.min(attempt * 200, 2_000),
    // Fail at once while Redis is away: the local budget takes over.
    enableOfflineQueue: false,
    lazyConnect: true,
  });
  redis.on('error', () => undefined);
  redis.defineCommand('budgetReserve', { numberOfKeys: 1, lua: RESERVE });
  redis.defineCommand('budgetLearn', { numberOfKeys: 1, lua: LEARN });
  const scripts = redis as unknown as BudgetCommands;
  /** The last state Redis answered for each key, for `peek`. */
  const seen = createLruMap<string, { ratePerSec: number; nextSlotAt: number }>({ maxEntries: maxKeys });
  const keyOf = (keyHash: string) => `${prefix}:budget:${keyHash}`;
  const healthy = () => redis.status === 'ready';
  const fresh = [1_000 / rules.initialRatePerSec, rules.burstMs, 1_000 / rules.maxRatePerSec];

  return {
    healthy,
    start() {
      redis.connect().catch(() => undefined);
    },
    async reserve(keyHash) {
      if (!healthy()) return local.reserve(keyHash);
      try {
        const [slot, interval, next] = await scripts.budgetReserve(keyOf(keyHash), now(), ...fresh, idleMs);
        seen.set(keyHash, { ratePerSec: 1_000 / Number(interval), nextSlotAt: Number(next) });
        return Number(slot);
      } catch {
        return local.reserve(keyHash);
      }
    },
    async learn(keyHash, lesson: BudgetLesson) {
      local.learn(keyHash, lesson);
      if (!healthy()) return;
      const rate = lesson.kind === 'quota' ? lesson.ratePerSec : '';
      const resumeAt = lesson.kind === 'faster' || lesson.resumeAt === null ? '' : lesson.resumeAt;
      try {
        const [interval, next] = await scripts.budgetLearn(
          keyOf(keyHash),
          now(),
          lesson.kind,
          rate,
          resumeAt,
          ...fresh,
          1_000 / rules.minRatePerSec,
          1_000 / rules.maxRatePerSec,
          rules.headroom,
          rules.decrease,
          rules.increasePerSec,
          rules.decreaseHoldMs,
          idleMs,
        );
        seen.set(keyHash, { ratePerSec: 1_000 / Number(interval), nextSlotAt: Number(next) });
      } catch {
        // The local budget learnt it already.
      }
    },
    peek(keyHash) {
      if (!healthy()) return local.peek(keyHash);
      const last = seen.get(keyHash);
      return last ? { ratePerSec: last.ratePerSec, nextSlotAt: Math.max(last.nextSlotAt, now()) } : local.peek(keyHash);
    },
    async dispose() {
      if (redis.status === 'wait') redis.disconnect();
      else await redis.quit().catch(() => redis.disconnect());
    },
  };
}
