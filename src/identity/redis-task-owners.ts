import type { RedisConfig } from '../lib/redis-config.ts';
import { closeRedis, createRedisConnection } from '../lib/redis-connection.ts';
import { TASK_OWNER_RETENTION_MS, type TaskOwners, TaskOwnersUnavailableError } from './task-owners.ts';

export interface RedisTaskOwnersOptions {
  /** Where Redis is (`config.redis`). */
  redis: RedisConfig;
  /** Prefix of every Redis key. Default `redis.prefix` (`REDIS_PREFIX`). */
  prefix?: string;
  /** How long a record is kept, in ms. Default 604 800 000 (7 days). */
  retentionMs?: number;
}

/**
 * Task owners shared by every replica: one string per task
 * (`<prefix>:owner:<task id>` = owner hash), written once (`SET NX`) with a
 * TTL of `retentionMs`. Redis holds hashes and task ids, never a user id.
 * Commands fail fast while Redis is away (no offline queue): the caller
 * refuses or retries; it never assumes an owner. Nothing connects until the first use.
 */
export function createRedisTaskOwners(options: RedisTaskOwnersOptions): TaskOwners {
  const { redis: target, prefix = target.prefix, retentionMs = TASK_OWNER_RETENTION_MS } = options;
  // Fails fast while Redis is away (no offline queue), never crashes the process on an error event.
  const redis = createRedisConnection(target);
  const keyOf = (taskId: string) => `${prefix}:owner:${taskId}`;
  let firstConnect: Promise<void> | null = null;
  const ready = () => {
    firstConnect ??= redis.connect().catch(() => undefined);
    return firstConnect;
  };
  const unavailable = () => new TaskOwnersUnavailableError('Task owners cannot be reached right now (Redis is unreachable).');

  return {
    async record(taskId, ownerHash) {
      await ready();
      try {
        await redis.set(keyOf(taskId), ownerHash, 'PX', retentionMs, 'NX');
      } catch {
        throw unavailable();
      }
    },
    async ownersOf(taskIds) {
      if (taskIds.length === 0) return [];
      await ready();
      try {
        // One GET a task, not MGET: on a Cluster the owners of several tasks are in several slots.
        return await Promise.all(taskIds.map((taskId) => redis.get(keyOf(taskId))));
      } catch {
        throw unavailable();
      }
    },
    async ready() {
      await ready();
      try {
        await redis.ping();
      } catch {
        throw unavailable();
      }
    },
    async dispose() {
      await closeRedis(redis);
    },
  };
}
