import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { redisAt } from '../../src/lib/redis-config.ts';
import {
  createMemoryRecentTasks,
  decodeCursor,
  encodeCursor,
  type RecentTasksStore,
  RecentTasksUnavailableError,
} from '../../src/recent-tasks/recent-tasks.ts';
import { createRedisRecentTasks } from '../../src/recent-tasks/redis-recent-tasks.ts';
import { createManualClock } from '../helpers/clock.ts';
import { freePort } from '../helpers/stack.ts';

const DAY = 86_400_000;

/** Every page of `keyHash`, `first` at a time, as task ids. */
async function all(store: RecentTasksStore, keyHash: string, first = 7): Promise<string[]> {
  const ids: string[] = [];
  let after = null;
  for (;;) {
    const page = await store.page(keyHash, first, after);
    ids.push(...page.entries.map((entry) => entry.taskId));
    if (!page.hasNextPage) return ids;
    after = page.entries.at(-1)!;
  }
}

const stores = {
  memory: (options: { maxPerKey?: number; now: () => number }) => createMemoryRecentTasks(options),
  redis: (options: { maxPerKey?: number; now: () => number }) =>
    createRedisRecentTasks({ redis: redisAt(inject('redisUrl')), prefix: `test-recent-${randomUUID()}`, ...options }),
};

describe.each(Object.keys(stores) as Array<keyof typeof stores>)('the %s recent-tasks store', (kind) => {
  const opened: RecentTasksStore[] = [];
  const open = (options: { maxPerKey?: number; now: () => number }) => {
    const store = stores[kind](options);
    opened.push(store);
    return store;
  };
  afterAll(() => Promise.all(opened.map((store) => store.dispose())));

  it('pages newest first with exact cursors, ties in the same millisecond included, each key apart', async () => {
    const clock = createManualClock();
    const store = open({ now: clock.now });
    const recorded: string[] = [];
    for (let i = 0; i < 20; i++) {
      if (i % 4 === 0) clock.advance(1); // four submissions share each millisecond
      const taskId = `task-${String(i).padStart(2, '0')}`;
      recorded.push(taskId);
      await store.record('key-a', { taskId, submittedAt: clock.now(), preConsumedCost: i });
      await store.record('key-b', { taskId: `task-b${i}`, submittedAt: clock.now(), preConsumedCost: null });
    }
    expect(await all(store, 'key-a', 7)).toEqual([...recorded].reverse());
    expect(await all(store, 'key-a', 3)).toEqual([...recorded].reverse());
    expect((await all(store, 'key-b')).every((id) => id.startsWith('task-b'))).toBe(true);
    expect((await store.page('key-a', 1, null)).entries[0]).toEqual({ taskId: 'task-19', submittedAt: clock.now(), preConsumedCost: 19 });
    expect(await store.page('key-none', 5, null)).toEqual({ entries: [], hasNextPage: false });
  });

  it('records every one of many submissions made at once on a fresh store', async () => {
    const clock = createManualClock();
    const store = open({ now: clock.now });
    const ids = Array.from({ length: 50 }, (_, i) => `task-${String(i).padStart(2, '0')}`);
    await Promise.all(ids.map((taskId) => store.record('key', { taskId, submittedAt: clock.now(), preConsumedCost: null })));
    expect((await all(store, 'key')).sort()).toEqual(ids);
  });

  it('keeps a resubmitted task where it was', async () => {
    const clock = createManualClock();
    const store = open({ now: clock.now });
    await store.record('key', { taskId: 'task-1', submittedAt: clock.now(), preConsumedCost: 5 });
    clock.advance(10);
    await store.record('key', { taskId: 'task-2', submittedAt: clock.now(), preConsumedCost: null });
    clock.advance(10);
    await store.record('key', { taskId: 'task-1', submittedAt: clock.now(), preConsumedCost: 7 });
    const page = await store.page('key', 10, null);
    expect(page.entries.map((entry) => [entry.taskId, entry.preConsumedCost])).toEqual([
      ['task-2', null],
      ['task-1', 5],
    ]);
  });

  it('keeps at most maxPerKey entries per key, dropping the oldest, however many are recorded', async () => {
    const clock = createManualClock();
    const store = open({ maxPerKey: 5, now: clock.now });
    for (let i = 0; i < 50; i++) {
      clock.advance(1);
      await store.record('key', { taskId: `task-${String(i).padStart(2, '0')}`, submittedAt: clock.now(), preConsumedCost: i });
    }
    expect(await all(store, 'key')).toEqual(['task-49', 'task-48', 'task-47', 'task-46', 'task-45']);
  });

  it('forgets entries after 72 hours', async () => {
    const clock = createManualClock();
    const store = open({ now: clock.now });
    await store.record('key', { taskId: 'task-old', submittedAt: clock.now(), preConsumedCost: null });
    clock.advance(2 * DAY);
    await store.record('key', { taskId: 'task-new', submittedAt: clock.now(), preConsumedCost: null });
    clock.advance(DAY + 1);
    expect(await all(store, 'key')).toEqual(['task-new']);
    clock.advance(2 * DAY);
    expect(await all(store, 'key')).toEqual([]);
  });
});

describe('the bounds of the stores', () => {
  it('the memory store keeps at most maxKeys keys, forgetting the least recently used', async () => {
    const store = createMemoryRecentTasks({ maxKeys: 100 });
    for (let i = 0; i < 1_000; i++) await store.record(`key-${i}`, { taskId: 'task-1', submittedAt: Date.now(), preConsumedCost: null });
    expect(store.size()).toBe(100);
    expect((await store.page('key-0', 1, null)).entries).toEqual([]);
    expect((await store.page('key-999', 1, null)).entries).toHaveLength(1);
  });

  it('the memory store forgets the key used longest ago, not the one recorded first', async () => {
    const store = createMemoryRecentTasks({ maxKeys: 3 });
    const record = (keyHash: string) => store.record(keyHash, { taskId: 'task-1', submittedAt: Date.now(), preConsumedCost: null });
    for (const keyHash of ['first', 'second', 'third']) await record(keyHash);
    await store.page('first', 1, null);
    await record('fourth');
    expect((await store.page('first', 1, null)).entries).toHaveLength(1);
    expect((await store.page('second', 1, null)).entries).toEqual([]);
    expect(store.size()).toBe(3);
  });

  it('the Redis store sets its keys to expire 72 h after the last submission, and holds no API key', async () => {
    const prefix = `test-recent-${randomUUID()}`;
    const store = createRedisRecentTasks({ redis: redisAt(inject('redisUrl')), prefix });
    const redis = new Redis(inject('redisUrl'));
    try {
      await store.record('hash-of-key', { taskId: 'task-1', submittedAt: Date.now(), preConsumedCost: 3 });
      const keys = (await redis.keys(`${prefix}:*`)).sort();
      expect(keys).toEqual([`${prefix}:recent-costs:{hash-of-key}`, `${prefix}:recent:{hash-of-key}`]);
      for (const key of keys) expect(await redis.pttl(key)).toBeGreaterThan(71 * 3_600_000);
    } finally {
      await store.dispose();
      redis.disconnect();
    }
  });

  it('the Redis store rejects with RecentTasksUnavailableError when Redis is unreachable', async () => {
    const store = createRedisRecentTasks({ redis: redisAt(`redis://127.0.0.1:${await freePort()}`) });
    try {
      await expect(store.page('key', 5, null)).rejects.toBeInstanceOf(RecentTasksUnavailableError);
      await expect(store.record('key', { taskId: 'task-1', submittedAt: 1, preConsumedCost: null })).rejects.toThrow();
    } finally {
      await store.dispose();
    }
  });

  it('round-trips cursors and refuses anything else', () => {
    const cursor = { submittedAt: 1_764_000_000_000, taskId: 'task-a:b' };
    expect(decodeCursor(encodeCursor(cursor))).toEqual(cursor);
    expect(decodeCursor('garbage')).toBeNull();
    expect(decodeCursor('x'.repeat(1_000))).toBeNull();
  });
});
