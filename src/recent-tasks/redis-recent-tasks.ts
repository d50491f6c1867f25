import type { RedisConfig } from '../lib/redis-config.ts';
import { closeRedis, createRedisConnection, type RedisClient } from '../lib/redis-connection.ts';
import { RECENT_TASKS_RETENTION_MS, type RecentTask, type RecentTasksStore, RecentTasksUnavailableError } from './recent-tasks.ts';

export interface RedisRecentTasksOptions {
  /** Where Redis is (`config.redis`). */
  redis: RedisConfig;
  /** Prefix of every Redis key. Default `redis.prefix` (`REDIS_PREFIX`). */
  prefix?: string;
  /** Entries kept per key; the oldest go first. Default 1 000. */
  maxPerKey?: number;
  /** How long an entry is kept, in ms (and how long an idle key's set lives). Default 259 200 000 (72 h). */
  retentionMs?: number;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Submissions not recorded while Redis was away, kept (oldest dropped first) and recorded once it answers again. Default 1 000. */
  maxUnrecorded?: number;
}

/**
 * Adds one submission (kept as it was when already there), drops entries past
 * retention or past the per-key cap with their costs, and renews both keys' TTL.
 * KEYS: the sorted set (score: ms, member: task id), the hash of costs.
 * ARGV: ms, task id, cost or '', retention ms, max entries.
 */
const RECORD = `
redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) end
local cutoff = tonumber(ARGV[1]) - tonumber(ARGV[4])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local excess = redis.call('ZCARD', KEYS[1]) - #gone - tonumber(ARGV[5])
if excess > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], #gone, #gone + excess - 1)) do gone[#gone + 1] = id end
end
for i = 1, #gone, 500 do
  local chunk = {unpack(gone, i, math.min(i + 499, #gone))}
  redis.call('ZREM', KEYS[1], unpack(chunk))
  redis.call('HDEL', KEYS[2], unpack(chunk))
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1`;

/**
 * Up to ARGV[4] entries newest first (with scores), after the cursor member
 * ARGV[2] when given: by its rank while it is still there (exact, ties
 * included), else below its score ARGV[1]. Entries at or below ARGV[3] (expired) are left out.
 */
const PAGE = `
local rows
if ARGV[2] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[2])
  if rank then
    rows = redis.call('ZREVRANGE', KEYS[1], rank + 1, rank + tonumber(ARGV[4]), 'WITHSCORES')
  else
    rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '(' .. ARGV[3], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
  end
else
  rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '(' .. ARGV[3], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
end
local out = {}
for i = 1, #rows, 2 do
  if tonumber(rows[i + 1]) > tonumber(ARGV[3]) then
    out[#out + 1] = rows[i]
    out[#out + 1] = rows[i + 1]
    out[#out + 1] = redis.call('HGET', KEYS[2], rows[i]) or ''
  end
end
return out`;

interface RecentTasksCommands {
  recordRecentTask(
    set: string,
    costs: string,
    at: number,
    taskId: string,
    cost: string,
    retentionMs: number,
    maxPerKey: number,
  ): Promise<number>;
  pageRecentTasks(set: string, costs: string, afterAt: string, afterId: string, cutoff: number, count: number): Promise<string[]>;
}

/**
 * Recent tasks shared by every replica: a sorted set per key hash (score: ms
 * recorded, member: task id) and a hash of announced costs, both kept 72 h
 * after the key's last submission, each set capped. Redis holds hashes and
 * task ids only, never a key. Nothing connects until the first use.
 *
 * While Redis is unreachable or stalled, `record` rejects (the caller logs it
 * and the submission itself still succeeds; the entry is kept, up to
 * `maxUnrecorded`, and recorded once Redis answers again) and `page` rejects with
 * `RecentTasksUnavailableError`: a clear error, not a misleading empty list.
 */
export function createRedisRecentTasks(options: RedisRecentTasksOptions): RecentTasksStore {
  const {
    redis: target,
    prefix = target.prefix,
    maxPerKey = 1_000,
    retentionMs = RECENT_TASKS_RETENTION_MS, // 72 h
    now = Date.now,
    maxUnrecorded = 1_000,
  } = options;
  // Commands fail fast while Redis is away rather than queueing behind reconnects.
  const redis = createRedisConnection(target) as RedisClient & RecentTasksCommands;
  redis.defineCommand('recordRecentTask', { numberOfKeys: 2, lua: RECORD });
  redis.defineCommand('pageRecentTasks', { numberOfKeys: 2, lua: PAGE });
  // The scripts touch both keys of a key hash: the hash tag keeps them in one Cluster slot. It is
  // there on every topology, so that one key layout serves them all (and a Redis moved into a
  // Cluster keeps its keys valid); entries filed under the untagged names of earlier versions are
  // not listed any more.
  const setOf = (keyHash: string) => `${prefix}:recent:{${keyHash}}`;
  const costsOf = (keyHash: string) => `${prefix}:recent-costs:{${keyHash}}`;

  // The first use connects, once: concurrent first calls wait for the same connection instead of failing fast.
  let firstConnect: Promise<void> | null = null;
  function ready(): Promise<void> {
    firstConnect ??= redis.connect().catch(() => undefined);
    return firstConnect;
  }

  const send = (keyHash: string, entry: RecentTask) => {
    const cost = entry.preConsumedCost === null ? '' : String(entry.preConsumedCost);
    return redis.recordRecentTask(setOf(keyHash), costsOf(keyHash), entry.submittedAt, entry.taskId, cost, retentionMs, maxPerKey);
  };
  // What a stalled or unreachable Redis did not take, by task id: sent again, in order, once the
  // connection is ready again (recording is idempotent: `ZADD NX`, `HSETNX`).
  const unrecorded = new Map<string, { keyHash: string; entry: RecentTask }>();
  let flushing = false;
  async function flush(): Promise<void> {
    if (flushing) return;
    flushing = true;
    try {
      for (const [taskId, { keyHash, entry }] of unrecorded) {
        await send(keyHash, entry);
        unrecorded.delete(taskId);
      }
    } catch {
      // Redis went away again: the rest waits for the next `ready`.
    } finally {
      flushing = false;
    }
  }
  redis.on('ready', () => void flush());

  return {
    async record(keyHash, entry) {
      await ready();
      try {
        await send(keyHash, entry);
      } catch (error) {
        unrecorded.set(entry.taskId, { keyHash, entry });
        if (unrecorded.size > maxUnrecorded) unrecorded.delete(unrecorded.keys().next().value!);
        throw error;
      }
    },
    async page(keyHash, first, after) {
      await ready();
      let rows: string[];
      try {
        rows = await redis.pageRecentTasks(
          setOf(keyHash),
          costsOf(keyHash),
          after ? String(after.submittedAt) : '+inf',
          after?.taskId ?? '',
          now() - retentionMs,
          first + 1,
        );
      } catch {
        throw new RecentTasksUnavailableError('Recent tasks cannot be read right now: their store (Redis) is unreachable.');
      }
      const entries: RecentTask[] = [];
      for (let i = 0; i < rows.length; i += 3) {
        const cost = rows[i + 2];
        entries.push({ taskId: rows[i]!, submittedAt: Number(rows[i + 1]), preConsumedCost: cost ? Number(cost) : null });
      }
      return { entries: entries.slice(0, first), hasNextPage: entries.length > first };
    },
    dispose: () => closeRedis(redis),
  };
}
