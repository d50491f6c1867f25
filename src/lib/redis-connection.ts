import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from './redis-config.ts';
import { restoreFastStringPrototype } from './string-prototype.ts';

// ioredis defines `class VerbatimString extends String` as it loads, which slows every string method call in the process.
restoreFastStringPrototype();

/** A connection to one server, a Sentinel-managed master, or a Cluster: the same commands on each. */
export type RedisClient = Redis | Cluster;

export interface RedisConnectionOptions {
  /** Whether commands sent while Redis is away wait for it (true) or fail at once (false). Default false. */
  offlineQueue?: boolean;
  /** Deadline of one command, ms. Default `redis.commandTimeoutMs` (`REDIS_COMMAND_TIMEOUT_MS`). */
  commandTimeoutMs?: number;
  /** The connection's name in `CLIENT LIST` (`CLIENT SETNAME`), on every node it opens. Default: none. */
  name?: string;
  /**
   * Whether ioredis renews a subscriber's state after a reconnection: its channels (`autoResubscribe`) and
   * the commands the old connection left unanswered (`autoResendUnfulfilledCommands`). Default true. Off,
   * the caller subscribes again itself, and an unanswered command fails instead of being sent again.
   */
  resubscribe?: boolean;
}

/**
 * A Redis connection as every shared store of the gateway opens it: nothing
 * connects before `connect()`, a command is retried once, reconnects back off
 * up to 2 s, and an unreachable Redis shows in `status` and failed commands,
 * never as an error event that would crash the process.
 *
 * A stalled Redis (connected, but not answering) is an outage like a closed
 * one: a command unanswered within the deadline fails, and a socket that
 * receives nothing for twice that after a command is destroyed, so the connection
 * leaves `ready` and reconnects (ioredis `commandTimeout` and `socketTimeout`).
 */
export function createRedisConnection(redis: RedisConfig, options: RedisConnectionOptions = {}): RedisClient {
  const { offlineQueue = false, commandTimeoutMs = redis.commandTimeoutMs, name, resubscribe = true } = options;
  const common: RedisOptions = {
    // CLIENT SETNAME takes printable ASCII without spaces; a name it refused would leave the connection unnamed.
    connectionName: name?.replace(/[^!-~]/g, '_'),
    lazyConnect: true,
    enableOfflineQueue: offlineQueue,
    autoResubscribe: resubscribe,
    autoResendUnfulfilledCommands: resubscribe,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: commandTimeoutMs,
    // Twice the command deadline: a timer that fires after the event loop was blocked may run before
    // the answer already waiting on the socket is read, and a busy replica must not drop a healthy Redis.
    socketTimeout: 2 * commandTimeoutMs,
    retryStrategy: backoff,
  };
  let client: RedisClient;
  switch (redis.kind) {
    case 'url':
      client = new Redis(redis.url, common);
      break;
    case 'sentinel':
      client = new Redis({
        ...common,
        sentinels: redis.sentinels.map(({ host, port }) => ({ host, port })),
        name: redis.name,
        password: redis.password ?? undefined,
        sentinelPassword: redis.sentinelPassword ?? undefined,
        sentinelRetryStrategy: backoff,
      });
      break;
    case 'cluster':
      client = new Cluster(
        redis.nodes.map(({ host, port }) => ({ host, port })),
        {
          lazyConnect: true,
          enableOfflineQueue: offlineQueue,
          maxRedirections: 4,
          clusterRetryStrategy: backoff,
          redisOptions: { ...common, password: redis.password ?? undefined },
        },
      );
      break;
  }
  client.on('error', () => undefined);
  if (client instanceof Cluster) client.on('node error', () => undefined);
  return client;
}

/** Reconnects back off by 200 ms a try, up to 2 s. */
function backoff(attempt: number): number {
  return Math.min(attempt * 200, 2_000);
}

/** Closes a connection, whether it ever connected or not. */
export async function closeRedis(redis: RedisClient): Promise<void> {
  // A connection never started has nothing to say goodbye to.
  if (redis.status === 'wait' || redis.status === 'end') redis.disconnect();
  else await redis.quit().catch(() => redis.disconnect());
}
