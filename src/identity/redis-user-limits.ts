import type { RedisConfig } from '../lib/redis-config.ts';
import { closeRedis, createRedisConnection, type RedisClient } from '../lib/redis-connection.ts';
import {
  ACTIVE_TTL_MS,
  DAY_MS,
  type LimitName,
  type LimitUsage,
  MAX_TRACKED_TASKS,
  MINUTE_MS,
  nextUtcDay,
  PENDING_TTL_MS,
  SPEND_PENDING_RETRY_MS,
  type UserLimitSettings,
  type UserLimits,
  UserLimitsUnavailableError,
} from './user-limits.ts';

/**
 * Drops what time retired from the active set (pending tickets `~…` past
 * ARGV[6], tasks past ARGV[9], with their costs) and the submit log, checks each
 * limit in turn (-1: off; spend as `spendRefusal` does), and when all pass adds
 * the ticket to both.
 * KEYS: active set (score: ms placed), costs hash, submit log, today's spend, today's most expensive task.
 * ARGV: now, ticket, max active, per minute, daily spend, pending ttl, day end, key ttl, active ttl, pending retry ms.
 */
const ADMIT = `
local now = tonumber(ARGV[1])
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[6]))) do
  if string.sub(member, 1, 1) == '~' or tonumber(redis.call('ZSCORE', KEYS[1], member)) <= now - tonumber(ARGV[9]) then
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ${MINUTE_MS})
local maxActive, perMinute, daily = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if maxActive >= 0 and redis.call('ZCARD', KEYS[1]) >= maxActive then return {'ACTIVE_TASKS', '', ''} end
if perMinute >= 0 then
  local count = redis.call('ZCARD', KEYS[3])
  if count >= perMinute then
    local oldest = redis.call('ZRANGE', KEYS[3], count - perMinute, count - perMinute, 'WITHSCORES')
    local resets = tonumber(oldest[2]) + ${MINUTE_MS}
    return {'SUBMITS_PER_MINUTE', tostring(resets - now), tostring(resets)}
  end
end
if daily >= 0 then
  local spent = tonumber(redis.call('GET', KEYS[4]) or '0')
  if spent >= daily then return {'DAILY_SPEND', tostring(tonumber(ARGV[7]) - now), ARGV[7]} end
  local pending = 0
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if string.sub(member, 1, 1) == '~' then pending = pending + 1 end
  end
  local most = tonumber(redis.call('GET', KEYS[5]) or '0')
  if pending > 0 and (most <= 0 or spent + pending * most >= daily) then
    return {'DAILY_SPEND', ARGV[10], tostring(now + tonumber(ARGV[10]))}
  end
end
redis.call('ZADD', KEYS[1], now, '~' .. ARGV[2])
redis.call('ZADD', KEYS[3], now, ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[8]) end
return {}`;

/**
 * The ticket's place becomes the task's (unless the task is already counted:
 * an idempotent resubmit), its cost is added to today's spend (and is today's
 * most expensive when it is), and without an active limit the set keeps only
 * the newest ARGV[6] tasks.
 * KEYS: active set, costs hash, today's spend, today's most expensive task.
 * ARGV: ticket, task id, cost, now, key ttl, max tracked.
 */
const ACCEPTED = `
redis.call('ZREM', KEYS[1], '~' .. ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if tonumber(ARGV[3]) > 0 then
  redis.call('INCRBYFLOAT', KEYS[3], ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ${2 * DAY_MS})
  if tonumber(ARGV[3]) > tonumber(redis.call('GET', KEYS[4]) or '0') then
    redis.call('SET', KEYS[4], ARGV[3], 'PX', ${2 * DAY_MS})
  end
end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
if excess > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, excess - 1)) do
    redis.call('ZREM', KEYS[1], member)
    redis.call('HDEL', KEYS[2], member)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1`;

/**
 * Removes the task from the active set (once: a second call finds nothing)
 * and gives back its refund from today's spend when it was spent today.
 * KEYS: active set, costs hash, today's spend. ARGV: task id, refund ('none', 'counted' or a number), day start.
 */
const ENDED = `
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not at then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
local counted = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('HDEL', KEYS[2], ARGV[1])
local refund = 0
if ARGV[2] == 'counted' then refund = counted elseif ARGV[2] ~= 'none' then refund = math.min(tonumber(ARGV[2]), counted) end
if refund > 0 and tonumber(at) >= tonumber(ARGV[3]) then
  local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
  redis.call('SET', KEYS[3], tostring(math.max(0, spent - refund)), 'KEEPTTL')
end
return 1`;

interface LimitCommands {
  admitSubmit(...args: Array<string | number>): Promise<string[]>;
  acceptedSubmit(...args: Array<string | number>): Promise<number>;
  endedTask(...args: Array<string | number>): Promise<number>;
}

export interface RedisUserLimitsOptions {
  /** Where Redis is (`config.redis`). */
  redis: RedisConfig;
  settings: UserLimitSettings;
  /** Prefix of every Redis key. Default `redis.prefix` (`REDIS_PREFIX`). */
  prefix?: string;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
}

/**
 * Per-user limits shared by every replica, each check-and-take one Lua script,
 * so replicas racing cannot overshoot. A user's keys share the hash tag
 * `{<owner hash>}` (one Redis Cluster slot). Redis holds owner hashes, task
 * ids and numbers, never a user id. While Redis is unreachable every call
 * rejects with `UserLimitsUnavailableError`: submits are refused, never let through unchecked.
 */
export function createRedisUserLimits(options: RedisUserLimitsOptions): UserLimits {
  const { redis: target, settings, prefix = target.prefix, now = Date.now } = options;
  // Fails fast while Redis is away (no offline queue), never crashes the process on an error event.
  const redis = createRedisConnection(target) as RedisClient & LimitCommands;
  redis.defineCommand('admitSubmit', { numberOfKeys: 5, lua: ADMIT });
  redis.defineCommand('acceptedSubmit', { numberOfKeys: 4, lua: ACCEPTED });
  redis.defineCommand('endedTask', { numberOfKeys: 3, lua: ENDED });
  const keys = (ownerHash: string, at: number) => {
    const base = `${prefix}:user:{${ownerHash}}`;
    return {
      active: `${base}:active`,
      costs: `${base}:costs`,
      submits: `${base}:submits`,
      spend: `${base}:spend:${Math.floor(at / DAY_MS)}`,
      most: `${base}:most:${Math.floor(at / DAY_MS)}`,
    };
  };
  const off = (value: number | null) => value ?? -1;
  let firstConnect: Promise<void> | null = null;
  async function run<T>(command: () => Promise<T>): Promise<T> {
    firstConnect ??= redis.connect().catch(() => undefined);
    await firstConnect;
    try {
      return await command();
    } catch {
      throw new UserLimitsUnavailableError('Per-user limits cannot be checked right now (Redis is unreachable); try again shortly.');
    }
  }

  return {
    async admit(ownerHash, ticket) {
      const at = now();
      const k = keys(ownerHash, at);
      const [limit, retryAfterMs, resetsAt] = await run(() =>
        redis.admitSubmit(
          k.active,
          k.costs,
          k.submits,
          k.spend,
          k.most,
          at,
          ticket,
          off(settings.maxActiveTasks),
          off(settings.submitsPerMinute),
          off(settings.dailySpend),
          PENDING_TTL_MS,
          nextUtcDay(at),
          ACTIVE_TTL_MS,
          ACTIVE_TTL_MS,
          SPEND_PENDING_RETRY_MS,
        ),
      );
      if (limit === undefined) return null;
      return {
        limit: limit as LimitName,
        retryAfterMs: retryAfterMs ? Number(retryAfterMs) : null,
        resetsAt: resetsAt ? Number(resetsAt) : null,
      };
    },
    async accepted(ownerHash, ticket, taskId, cost) {
      const at = now();
      const k = keys(ownerHash, at);
      const tracked = settings.maxActiveTasks === null ? MAX_TRACKED_TASKS : Number.MAX_SAFE_INTEGER;
      await run(() => redis.acceptedSubmit(k.active, k.costs, k.spend, k.most, ticket, taskId, cost ?? 0, at, ACTIVE_TTL_MS, tracked));
    },
    async release(ownerHash, ticket) {
      await run(() => redis.zrem(keys(ownerHash, 0).active, `~${ticket}`));
    },
    async ended(ownerHash, taskId, refund) {
      const at = now();
      const k = keys(ownerHash, at);
      await run(() => redis.endedTask(k.active, k.costs, k.spend, taskId, String(refund), Math.floor(at / DAY_MS) * DAY_MS));
    },
    async unfinished(ownerHash, max) {
      const members = await run(() => redis.zrange(keys(ownerHash, 0).active, '0', '-1'));
      return members.filter((member) => !member.startsWith('~')).slice(0, max);
    },
    async usage(ownerHash) {
      const at = now();
      const k = keys(ownerHash, at);
      const [active, submits, spent] = await run(() =>
        Promise.all([
          redis.zcard(k.active),
          redis.zrangebyscore(k.submits, `(${at - MINUTE_MS}`, '+inf', 'WITHSCORES'),
          redis.get(k.spend),
        ]),
      );
      const usage: LimitUsage[] = [];
      if (settings.maxActiveTasks !== null)
        usage.push({ limit: 'ACTIVE_TASKS', max: settings.maxActiveTasks, used: active, resetsAt: null });
      if (settings.submitsPerMinute !== null) {
        const first = submits[1];
        const resetsAt = first === undefined ? null : Number(first) + MINUTE_MS;
        usage.push({ limit: 'SUBMITS_PER_MINUTE', max: settings.submitsPerMinute, used: submits.length / 2, resetsAt });
      }
      if (settings.dailySpend !== null) {
        const used = Number(spent ?? 0);
        usage.push({ limit: 'DAILY_SPEND', max: settings.dailySpend, used, resetsAt: used > 0 ? nextUtcDay(at) : null });
      }
      return usage;
    },
    async dispose() {
      await closeRedis(redis);
    },
  };
}
