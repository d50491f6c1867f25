import { type Spawned, spawnEntry } from './spawn.ts';
import { freePort } from './stack.ts';

/** A gateway process (`npm start`'s entry) sharing its loops through Redis. */
export interface Replica {
  process: Spawned;
  url: string;
  pid: number;
}

export interface ReplicasOptions {
  /** REDIS_URL; leave it out to name Redis another way in `env` (REDIS_SENTINELS, REDIS_CLUSTER_NODES). */
  redisUrl?: string;
  upstreamUrl: string;
  /** Extra environment; POLL_INTERVAL_MS and POLL_MAX_INTERVAL_MS default to 200 (ms). */
  env?: Record<string, string>;
}

/** Starts `count` replicas on free ports, each with its own PUBLIC_URL; resolves once each has joined Redis and listens. */
export async function startReplicas(count: number, options: ReplicasOptions): Promise<Replica[]> {
  const { redisUrl, upstreamUrl, env = {} } = options;
  return Promise.all(
    Array.from({ length: count }, async () => {
      const port = await freePort();
      const child = spawnEntry('src/main.ts', [], {
        PORT: String(port),
        HOST: '127.0.0.1',
        UPSTREAM_URL: upstreamUrl,
        ...(redisUrl === undefined ? {} : { REDIS_URL: redisUrl }),
        POLL_INTERVAL_MS: '200',
        POLL_MAX_INTERVAL_MS: '200',
        PUBLIC_URL: `http://127.0.0.1:${port}`,
        ...env,
      });
      await child.waitFor(/redis coordination up/, 20_000);
      await child.waitFor(/GraphiQL at/, 20_000);
      return { process: child, url: `http://127.0.0.1:${port}`, pid: child.child.pid! };
    }),
  );
}
