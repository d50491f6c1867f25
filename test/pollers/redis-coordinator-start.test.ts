import { afterEach, describe, expect, it } from 'vitest';
import { type RedisConfig, redisAt } from '../../src/lib/redis-config.ts';
import type { LoopCoordinator } from '../../src/pollers/loop-coordinator.ts';
import { createRedisCoordinator, type RedisCoordinatorOptions } from '../../src/pollers/redis-coordinator.ts';
import type { TaskSnapshot } from '../../src/upstream/task-snapshot.ts';
import { eventually } from '../helpers/clock.ts';
import { connectRedis, startRedisServer } from '../helpers/redis-server.ts';
import { freePort } from '../helpers/stack.ts';
import { startStallProxy } from '../helpers/stall-proxy.ts';

const snapshot = (progress: number): TaskSnapshot => ({
  id: 'task-start',
  status: 'PROCESSING',
  upstreamStatus: 'processing',
  action: 'generate',
  model: 'gpt-image-2',
  progress,
  createdAt: new Date(0),
  completedAt: null,
  cost: null,
  preConsumedCost: null,
  refundedCost: null,
  result: null,
  error: null,
});

describe('a replica started while Redis is away', () => {
  const coordinators: LoopCoordinator[] = [];
  afterEach(async () => {
    await Promise.all(coordinators.splice(0).map((coordinator) => coordinator.dispose()));
  });
  /** A coordinator of 100 ms beats, started, disposed after the test. */
  function start(options: RedisCoordinatorOptions): LoopCoordinator {
    const coordinator = createRedisCoordinator({ heartbeatMs: 100, ...options });
    coordinators.push(coordinator);
    coordinator.start();
    return coordinator;
  }
  /** Another replica, once it shares: it announces `progress` on `key` until `heard` has it (PUBLISH keeps nothing for a subscriber reconnecting). */
  async function announceUntilHeard(redis: RedisConfig, key: string, progress: number, heard: () => boolean): Promise<void> {
    const other = start({ redis });
    await eventually(() => expect(other.healthy()).toBe(true), 10_000);
    await eventually(() => {
      if (!heard()) other.announce(key, snapshot(progress));
      expect(heard()).toBe(true);
    }, 15_000);
  }

  it('joins once Redis comes up, and hears the changes of a loop it joined meanwhile', async () => {
    const server = await startRedisServer(await freePort());
    await server.kill();
    const redis = redisAt(server.url, { prefix: 'test-start' });
    const health: boolean[] = [];
    const late = start({ redis, onHealthChange: (healthy) => health.push(healthy) });
    const heard: Array<number | null> = [];
    const membership = late.join('key-1:task-start', (changed) => heard.push(changed.progress));
    // Long enough for ioredis to give up its queued commands (one retry each): what was sent meanwhile is dropped.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(late.healthy()).toBe(false);
    await server.start();
    await eventually(() => expect(late.healthy()).toBe(true), 10_000);
    expect(health.at(-1)).toBe(true);
    // Another replica finds a change of the loop: it reaches the one that joined while Redis was away.
    await announceUntilHeard(redis, 'key-1:task-start', 40, () => heard.includes(40));
    expect(new Set(heard)).toEqual(new Set([40]));
    membership.leave();
  }, 30_000);

  it('asks again for a channel Redis refused on a live connection, and counts as down meanwhile', async () => {
    const server = await startRedisServer(await freePort());
    const admin = connectRedis(server.url);
    // A user that may use the heartbeat's channel but not the loops' (the ACL docs/replicas.md asks for).
    await admin.call('ACL', 'SETUSER', 'gateway', 'on', '>secret', '~*', '+@all', 'resetchannels', '&test-acl:heartbeat:*');
    const redis = redisAt(`redis://gateway:secret@127.0.0.1:${server.port}`, { prefix: 'test-acl' });
    const replica = start({ redis });
    await eventually(() => expect(replica.healthy()).toBe(true), 10_000);
    const heard: Array<number | null> = [];
    replica.join('key-1:task-acl', (changed) => heard.push(changed.progress));
    // The SUBSCRIBE is refused (NOPERM): changes of that loop would not reach this replica, so it polls itself.
    await eventually(() => expect(replica.healthy()).toBe(false), 5_000);
    await admin.call('ACL', 'SETUSER', 'gateway', '&test-acl:changes:*');
    await eventually(() => expect(replica.healthy()).toBe(true), 10_000);
    await announceUntilHeard(redisAt(server.url, { prefix: 'test-acl' }), 'key-1:task-acl', 60, () => heard.includes(60));
  }, 30_000);

  it('tells a Redis restart once as down and once as up, not up before its subscriber hears again', async () => {
    const server = await startRedisServer(await freePort());
    const changes: boolean[] = [];
    const replica = start({ redis: redisAt(server.url, { prefix: 'test-restart' }), onHealthChange: (healthy) => changes.push(healthy) });
    await eventually(() => expect(changes).toEqual([true]), 10_000);
    await server.kill();
    await eventually(() => expect(replica.healthy()).toBe(false), 10_000);
    await server.start();
    await eventually(() => expect(replica.healthy()).toBe(true), 10_000);
    // A few beats more: a flap would show by now.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(changes).toEqual([true, false, true]);
  }, 30_000);

  it('replaces a stalled subscriber without sending again the SUBSCRIBEs the stalled one left unanswered', async () => {
    const server = await startRedisServer(await freePort());
    const proxy = await startStallProxy(server.port);
    const admin = connectRedis(server.url);
    const subscribes = async () => Number(/cmdstat_subscribe:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0);
    const replica = start({ redis: redisAt(`redis://127.0.0.1:${proxy.port}`, { prefix: 'test-resend' }) });
    await eventually(() => expect(replica.healthy()).toBe(true), 10_000);
    proxy.pause({ subscribersOnly: true });
    const before = await subscribes();
    const heard: string[] = [];
    const keys = Array.from({ length: 5_000 }, (_, i) => `key-1:task-${i}`);
    for (const key of keys) replica.join(key, (changed) => heard.push(`${key}@${changed.progress}`));
    // Silent past its bound, the subscriber is made anew; its SUBSCRIBEs wait in the proxy until it resumes.
    await eventually(() => expect(replica.healthy()).toBe(false), 10_000);
    proxy.resume();
    await eventually(() => expect(replica.healthy()).toBe(true), 10_000);
    // Each time it listens: five SUBSCRIBEs of 1,000 channels and the heartbeat's. ioredis sending the
    // stalled connection's 5,000 again on the new one (its default) would count here too.
    expect((await subscribes()) - before).toBeLessThan(100);
    const last = keys.at(-1)!;
    await announceUntilHeard(redisAt(server.url, { prefix: 'test-resend' }), last, 7, () => heard.includes(`${last}@7`));
  }, 30_000);

  it('subscribes 150,000 watched loops again after Redis restarts, in commands of bounded size', async () => {
    const server = await startRedisServer(await freePort());
    const redis = redisAt(server.url, { prefix: 'test-many' });
    const replica = start({ redis });
    await eventually(() => expect(replica.healthy()).toBe(true), 10_000);
    const heard: string[] = [];
    const keys = Array.from({ length: 150_000 }, (_, i) => `key-1:task-${i}`);
    for (const key of keys) replica.join(key, (changed) => heard.push(`${key}@${changed.progress}`));
    await server.kill();
    await eventually(() => expect(replica.healthy()).toBe(false), 10_000);
    await server.start();
    await eventually(() => expect(replica.healthy()).toBe(true), 20_000);
    const expected = [keys[0]!, keys[74_999]!, keys.at(-1)!];
    for (const key of expected) await announceUntilHeard(redis, key, 7, () => heard.includes(`${key}@7`));
    expect(new Set(heard)).toEqual(new Set(expected.map((key) => `${key}@7`)));
  }, 60_000);
});
