import type { TestProject } from 'vitest/node';
import { type RedisServer, redisAnswers, startRedisServer } from './helpers/redis-server.ts';
import { freePort } from './helpers/stack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A Redis server for the tests: REDIS_URL (default redis://127.0.0.1:6379), or one started here. */
    redisUrl: string;
  }
}

let started: RedisServer | null = null;

/** Finds a Redis server for the tests, and starts `redis-server` on a free port when none answers. */
export async function setup(project: TestProject): Promise<void> {
  const wanted = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (await redisAnswers(wanted)) {
    project.provide('redisUrl', wanted);
    return;
  }
  started = await startRedisServer(await freePort());
  project.provide('redisUrl', started.url);
}

export async function teardown(): Promise<void> {
  await started?.kill();
}
