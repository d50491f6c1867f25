import { ConfigError, type Env, integer, text, url } from './env-values.ts';

/** One Redis server, or a Sentinel or Cluster node: `host:port`. */
export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/** Where the shared state lives: one of the three ways to name a Redis. */
export type RedisTopology =
  /** `REDIS_URL`: one server (`redis://` or `rediss://`, credentials in the URL). */
  | { readonly kind: 'url'; readonly url: string }
  /** `REDIS_SENTINELS` + `REDIS_SENTINEL_NAME`: the master the sentinels name, followed through failovers. */
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly RedisNode[];
      readonly name: string;
      /** `REDIS_SENTINEL_PASSWORD`: the sentinels' own password; null: none. */
      readonly sentinelPassword: string | null;
      /** `REDIS_PASSWORD`: the data nodes' password; null: none. */
      readonly password: string | null;
    }
  /** `REDIS_CLUSTER_NODES`: any reachable nodes of a Redis Cluster (the others are discovered). */
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisNode[]; readonly password: string | null };

/** The shared Redis of a fleet: where it is, and how every store of the gateway uses it. */
export type RedisConfig = RedisTopology & {
  /** `REDIS_PREFIX`: the start of every key and channel, so that deployments can share a Redis. Default `task-gateway`. */
  readonly prefix: string;
  /** `REDIS_COMMAND_TIMEOUT_MS`: past it a command fails and its connection counts as down. Default 500 ms. */
  readonly commandTimeoutMs: number;
};

export const DEFAULT_REDIS_PREFIX = 'task-gateway';
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 500;

/** A `RedisConfig` for one server at `url` (tests and tools), with the defaults of the environment. */
export function redisAt(url: string, options: { prefix?: string; commandTimeoutMs?: number } = {}): RedisConfig {
  const { prefix = DEFAULT_REDIS_PREFIX, commandTimeoutMs = DEFAULT_REDIS_COMMAND_TIMEOUT_MS } = options;
  return Object.freeze({ kind: 'url', url, prefix, commandTimeoutMs });
}

/**
 * Reads `REDIS_URL`, `REDIS_SENTINELS` (+ `REDIS_SENTINEL_NAME`, `REDIS_SENTINEL_PASSWORD`,
 * `REDIS_PASSWORD`) or `REDIS_CLUSTER_NODES` (+ `REDIS_PASSWORD`), at most one of the three,
 * with `REDIS_PREFIX` and `REDIS_COMMAND_TIMEOUT_MS`. Null: no Redis (a single process).
 * A bad value is a `ConfigError` naming the variable; a password is never echoed.
 */
export function readRedisConfig(env: Env): RedisConfig | null {
  const given = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'].filter((name) => text(env, name) !== null);
  if (given.length > 1) {
    throw new ConfigError(`${given.join(' and ')} are alternatives: set only one of them.`);
  }
  const prefix = text(env, 'REDIS_PREFIX') ?? DEFAULT_REDIS_PREFIX;
  // A brace would make the prefix a Cluster hash tag, and put every key of the deployment in one slot.
  if (!/^[A-Za-z0-9:._-]{1,64}$/.test(prefix)) {
    throw new ConfigError(`REDIS_PREFIX must be 1 to 64 letters, digits or : . _ -; got ${JSON.stringify(prefix)}.`);
  }
  const commandTimeoutMs = integer(env, 'REDIS_COMMAND_TIMEOUT_MS', DEFAULT_REDIS_COMMAND_TIMEOUT_MS, 10, 60_000);
  const common = { prefix, commandTimeoutMs };
  const password = text(env, 'REDIS_PASSWORD');
  const redisUrl = url(env, 'REDIS_URL', ['redis:', 'rediss:']);
  if (redisUrl !== null) return Object.freeze({ kind: 'url', url: redisUrl, ...common });
  if (text(env, 'REDIS_SENTINELS') !== null) {
    const name = text(env, 'REDIS_SENTINEL_NAME');
    if (name === null) throw new ConfigError('REDIS_SENTINEL_NAME is required with REDIS_SENTINELS: the name of the master to follow.');
    const sentinelPassword = text(env, 'REDIS_SENTINEL_PASSWORD');
    return Object.freeze({ kind: 'sentinel', sentinels: nodes(env, 'REDIS_SENTINELS'), name, sentinelPassword, password, ...common });
  }
  if (text(env, 'REDIS_CLUSTER_NODES') !== null) {
    return Object.freeze({ kind: 'cluster', nodes: nodes(env, 'REDIS_CLUSTER_NODES'), password, ...common });
  }
  return null;
}

/** A comma-separated list of `host:port` (`[v6]:port` for an IPv6 address). */
function nodes(env: Env, name: string): readonly RedisNode[] {
  const entries = (text(env, name) ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new ConfigError(`${name} must list at least one host:port.`);
  return Object.freeze(
    entries.map((entry) => {
      const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
      const port = Number(match?.[2]);
      if (!match || port < 1 || port > 65_535) {
        throw new ConfigError(
          `${name} must be comma-separated host:port entries (redis-1:26379,10.0.0.2:26379); got ${JSON.stringify(entry)}.`,
        );
      }
      return Object.freeze({ host: match[1]!.replace(/^\[|\]$/g, ''), port });
    }),
  );
}

/** Where Redis is, for a log line: never a password. */
export function describeRedis(redis: RedisConfig): string {
  const list = (nodes: readonly RedisNode[]) => nodes.map(({ host, port }) => `${host}:${port}`).join(',');
  switch (redis.kind) {
    case 'url': {
      const { protocol, host } = new URL(redis.url);
      return `${protocol}//${host}`;
    }
    case 'sentinel':
      return `sentinel ${redis.name} via ${list(redis.sentinels)}`;
    case 'cluster':
      return `cluster ${list(redis.nodes)}`;
  }
}
