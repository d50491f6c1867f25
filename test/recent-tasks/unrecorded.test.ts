import { describe, expect, it } from 'vitest';
import { redisAt } from '../../src/lib/redis-config.ts';
import { createRedisRecentTasks } from '../../src/recent-tasks/redis-recent-tasks.ts';
import { eventually } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import { freePort } from '../helpers/stack.ts';

describe('submissions Redis did not take', () => {
  it('are kept up to maxUnrecorded, the oldest dropped past it, and recorded once Redis answers again', async () => {
    const redis = await startRedisServer(await freePort());
    const store = createRedisRecentTasks({ redis: redisAt(redis.url), prefix: 'unrecorded', maxUnrecorded: 2 });
    track(() => store.dispose());
    const entry = (n: number) => ({ taskId: `task-${n}`, submittedAt: Date.now() + n, preConsumedCost: null });
    await store.record('key', entry(0));
    await redis.kill();
    // Three submissions while Redis is away: each is refused now, and only the newest two are kept.
    for (const n of [1, 2, 3]) await expect(store.record('key', entry(n))).rejects.toThrow();
    await redis.start();
    await eventually(async () => {
      const page = await store.page('key', 10, null);
      expect(page.entries.map((e) => e.taskId)).toEqual(['task-3', 'task-2']);
    }, 15_000);
  });
});
