import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisTaskOwners } from '../../src/identity/redis-task-owners.ts';
import { createRedisUserLimits } from '../../src/identity/redis-user-limits.ts';
import { type RedisConfig, readRedisConfig } from '../../src/lib/redis-config.ts';
import { createRedisRecentTasks } from '../../src/recent-tasks/redis-recent-tasks.ts';
import { type RedisCluster, startRedisCluster } from '../helpers/redis-topologies.ts';

/** The stores whose scripts or reads touch several keys, on a Redis Cluster, where keys of one call must share a slot. */
describe('stores on a Redis Cluster of three masters', () => {
  let cluster: RedisCluster;
  let redis: RedisConfig;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    redis = readRedisConfig({ REDIS_CLUSTER_NODES: cluster.nodes, REDIS_PREFIX: `test-${randomUUID()}` })!;
  }, 30_000);
  afterAll(() => cluster.stop());

  it('recent tasks: record and page (two keys per script) for many key hashes', async () => {
    const store = createRedisRecentTasks({ redis });
    try {
      for (let key = 0; key < 20; key++) {
        await store.record(`hash-${key}`, { taskId: `task-${key}-a`, submittedAt: Date.now(), preConsumedCost: 2 });
        await store.record(`hash-${key}`, { taskId: `task-${key}-b`, submittedAt: Date.now() + 1, preConsumedCost: null });
      }
      const page = await store.page('hash-7', 5, null);
      expect(page.entries.map((entry) => entry.taskId)).toEqual(['task-7-b', 'task-7-a']);
      expect(page.entries[1]!.preConsumedCost).toBe(2);
    } finally {
      await store.dispose();
    }
  });

  it('task owners: the owners of tasks in many slots are read at once', async () => {
    const owners = createRedisTaskOwners({ redis });
    try {
      const ids = Array.from({ length: 20 }, (_, i) => `task-${i}`);
      for (const [i, id] of ids.entries()) await owners.record(id, `owner-${i % 3}`);
      expect(await owners.ownersOf([...ids, 'task-unknown'])).toEqual([...ids.map((_, i) => `owner-${i % 3}`), null]);
    } finally {
      await owners.dispose();
    }
  });

  it('user limits: admit, accept and end (five keys per script) for several users', async () => {
    const limits = createRedisUserLimits({ redis, settings: { maxActiveTasks: 1, submitsPerMinute: 10, dailySpend: 100 } });
    try {
      for (const user of ['alice', 'bob', 'carol', 'dave']) {
        expect(await limits.admit(user, `${user}-1`)).toBeNull();
        await limits.accepted(user, `${user}-1`, `${user}-task`, 30);
        expect((await limits.admit(user, `${user}-2`))?.limit).toBe('ACTIVE_TASKS');
        await limits.ended(user, `${user}-task`, 'counted');
        expect(await limits.admit(user, `${user}-3`)).toBeNull();
      }
    } finally {
      await limits.dispose();
    }
  });
});
