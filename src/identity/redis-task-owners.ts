import { closeRedis, createRedisConnection } from '../lib/redis-connection.ts';
import { TASK_OWNER_RETENTION_MS, type TaskOwners, TaskOwnersUnavailableError } from './task-owners.ts';

export interface RedisTaskOwnersOptions {
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** Prefix of every Redis key. Default `task-gateway`. */
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
  const { url, prefix = 'task-gateway', retentionMs = TASK_OWNER_RETENTION_MS } = options;
  // Fails fast while Redis is away (no offline queue), never crashes the process on an error event.
  const redis = createRedisConnection(url);
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
        return await redis.mget(taskIds.map(keyOf));
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
