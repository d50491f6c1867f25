import type { RedisConfig } from '../lib/redis-config.ts';
import { closeRedis, createRedisConnection } from '../lib/redis-connection.ts';
import { sha256 } from '../lib/sha256.ts';
import { type CallbackTokenStore, createMemoryCallbackTokens, type MemoryCallbackTokensOptions } from './callback-tokens.ts';

export interface RedisCallbackTokensOptions extends MemoryCallbackTokensOptions {
  /** Where Redis is (`config.redis`). */
  redis: RedisConfig;
  /** Prefix of every Redis key. Default `redis.prefix` (`REDIS_PREFIX`). */
  prefix?: string;
}

/**
 * Tokens shared by every replica: each is kept in the process that issued it
 * (`createMemoryCallbackTokens`), and its hash, with the key of the loop it
 * names (`<credential hash>:<task id>`), in Redis for its lifetime, so that a
 * callback that reaches another replica behind a load balancer finds its loop.
 * Redis holds hashes and task ids only, never a token or a key. While Redis is
 * unreachable, only the issuing replica knows a token.
 */
export function createRedisCallbackTokens(options: RedisCallbackTokensOptions): CallbackTokenStore {
  const { redis: target, prefix = target.prefix } = options;
  const local = createMemoryCallbackTokens(options);
  // Commands fail fast while Redis is away: a callback is answered at once, from this process alone.
  const redis = createRedisConnection(target);
  const keyOf = (token: string) => `${prefix}:callback:${sha256(token)}`;
  const ready = () => redis.status === 'ready';

  return {
    issue(token, credential) {
      const issued = local.issue(token, credential);
      return {
        bind(taskId) {
          issued.bind(taskId);
          if (ready()) redis.set(keyOf(token), `${credential.hash}:${taskId}`, 'PX', local.ttlMs).catch(() => undefined);
        },
      };
    },
    async find(token) {
      const here = await local.find(token);
      if (here || !ready()) return here;
      const loopKey = await redis.get(keyOf(token)).catch(() => null);
      return loopKey === null ? null : { loopKey };
    },
    start() {
      // A Redis that is away now is retried by the connection; meanwhile tokens stay in this process.
      redis.connect().catch(() => undefined);
    },
    async dispose() {
      await local.dispose();
      await closeRedis(redis);
    },
  };
}
