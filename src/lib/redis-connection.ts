import { Redis } from 'ioredis';

export interface RedisConnectionOptions {
  /** Whether commands sent while Redis is away wait for it (true) or fail at once (false). Default false. */
  offlineQueue?: boolean;
}

/**
 * A Redis connection as every shared store of the gateway opens it: nothing
 * connects before `connect()`, a command is retried once, reconnects back off
 * up to 2 s, and an unreachable Redis shows in `status` and failed commands,
 * never as an error event that would crash the process.
 */
export function createRedisConnection(url: string, options: RedisConnectionOptions = {}): Redis {
  const { offlineQueue = false } = options;
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: offlineQueue,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (attempt: number) => Math.min(attempt * 200, 2_000),
  });
  redis.on('error', () => undefined);
  return redis;
}

/** Closes a connection, whether it ever connected or not. */
export async function closeRedis(redis: Redis): Promise<void> {
  // A connection never started has nothing to say goodbye to.
  if (redis.status === 'wait' || redis.status === 'end') redis.disconnect();
  else await redis.quit().catch(() => redis.disconnect());
}
