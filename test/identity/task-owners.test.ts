import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createRedisTaskOwners } from '../../src/identity/redis-task-owners.ts';
import { createMemoryTaskOwners, recordOwner, type TaskOwners, TaskOwnersUnavailableError } from '../../src/identity/task-owners.ts';
import { redisAt } from '../../src/lib/redis-config.ts';
import { createManualClock } from '../helpers/clock.ts';
import { startRedisServer } from '../helpers/redis-server.ts';
import { freePort } from '../helpers/stack.ts';

const stores = {
  memory: () => createMemoryTaskOwners(),
  redis: () => createRedisTaskOwners({ redis: redisAt(inject('redisUrl')), prefix: `test-owners-${randomUUID()}` }),
};

describe.each(Object.keys(stores) as Array<keyof typeof stores>)('the %s task-owners store', (kind) => {
  const opened: TaskOwners[] = [];
  const open = () => {
    const store = stores[kind]();
    opened.push(store);
    return store;
  };
  afterAll(() => Promise.all(opened.map((store) => store.dispose())));

  it('answers each task its owner, null for a task never recorded, in the order asked', async () => {
    const owners = open();
    await owners.record('task-a', 'alice');
    await owners.record('task-b', 'bob');
    expect(await owners.ownersOf(['task-b', 'task-x', 'task-a'])).toEqual(['bob', null, 'alice']);
    expect(await owners.ownersOf([])).toEqual([]);
  });

  it('keeps the first owner when the same task is recorded again (an idempotent resubmit)', async () => {
    const owners = open();
    await owners.record('task-a', 'alice');
    await owners.record('task-a', 'mallory');
    expect(await owners.ownersOf(['task-a'])).toEqual(['alice']);
  });
});

describe('the memory task-owners store', () => {
  it('holds at most maxEntries records, dropping the oldest (overflow attempt)', async () => {
    const owners = createMemoryTaskOwners({ maxEntries: 100 });
    for (let i = 0; i < 1_000; i++) await owners.record(`task-${i}`, 'alice');
    expect(owners.size()).toBe(100);
    expect(await owners.ownersOf(['task-0', 'task-899', 'task-900', 'task-999'])).toEqual([null, null, 'alice', 'alice']);
  });

  it("bounds each owner's records, so one user's many submits push out only their own (overflow attempt)", async () => {
    const owners = createMemoryTaskOwners({ maxEntries: 100, maxEntriesPerOwner: 10 });
    await owners.record('task-bob', 'bob');
    for (let i = 0; i < 1_000; i++) await owners.record(`task-${i}`, 'mallory');
    expect(await owners.ownersOf(['task-bob', 'task-989', 'task-990', 'task-999'])).toEqual(['bob', null, 'mallory', 'mallory']);
    expect(owners.size()).toBe(11);
  });

  it('forgets a record after its retention', async () => {
    const clock = createManualClock();
    const owners = createMemoryTaskOwners({ retentionMs: 1_000, now: clock.now });
    await owners.record('task-a', 'alice');
    clock.advance(999);
    expect(await owners.ownersOf(['task-a'])).toEqual(['alice']);
    clock.advance(1);
    expect(await owners.ownersOf(['task-a'])).toEqual([null]);
  });
});

describe('the Redis task-owners store', () => {
  it('keeps a record for its retention (a TTL on the key)', async () => {
    const prefix = `test-owners-${randomUUID()}`;
    const owners = createRedisTaskOwners({ redis: redisAt(inject('redisUrl')), prefix, retentionMs: 604_800_000 });
    const { connectRedis } = await import('../helpers/redis-server.ts');
    const redis = connectRedis(inject('redisUrl'));
    try {
      await owners.record('task-a', 'alice');
      const ttl = await redis.pttl(`${prefix}:owner:task-a`);
      expect(ttl).toBeGreaterThan(604_000_000);
      expect(ttl).toBeLessThanOrEqual(604_800_000);
    } finally {
      await owners.dispose();
    }
  });

  it('fails clearly while Redis is down, and recordOwner retries until Redis is back', async () => {
    const server = await startRedisServer(await freePort());
    const owners = createRedisTaskOwners({ redis: redisAt(server.url), prefix: 'test-owners' });
    try {
      await owners.ready();
      await server.kill();
      await expect(owners.ready()).rejects.toBeInstanceOf(TaskOwnersUnavailableError);
      await expect(owners.record('task-a', 'alice')).rejects.toBeInstanceOf(TaskOwnersUnavailableError);
      await expect(owners.ownersOf(['task-a'])).rejects.toBeInstanceOf(TaskOwnersUnavailableError);
      const recorded = recordOwner(owners, 'task-a', 'alice', { deadlineMs: 20_000, retryMs: 50 });
      await server.start();
      await recorded;
      expect(await owners.ownersOf(['task-a'])).toEqual(['alice']);
    } finally {
      await owners.dispose();
    }
  });

  it('recordOwner gives up after its deadline with the store still down', async () => {
    const server = await startRedisServer(await freePort());
    const owners = createRedisTaskOwners({ redis: redisAt(server.url), prefix: 'test-owners' });
    try {
      await server.kill();
      await expect(recordOwner(owners, 'task-a', 'alice', { deadlineMs: 300, retryMs: 50 })).rejects.toBeInstanceOf(
        TaskOwnersUnavailableError,
      );
    } finally {
      await owners.dispose();
    }
  });
});
