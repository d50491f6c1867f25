import { randomUUID } from 'node:crypto';
import type { Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Emulator } from '../../src/emulator/emulator.ts';
import { createManualClock, eventually } from '../helpers/clock.ts';
import {
  coordination,
  expectCompletedOnce,
  expectOnePoller,
  getsDuring,
  recentIds,
  sharingReturns,
  submit,
  watchEverywhere,
} from '../helpers/fleet.ts';
import { type RedisCluster, type SentinelSet, startRedisCluster, startSentinelSet } from '../helpers/redis-topologies.ts';
import { type Replica, startReplicas } from '../helpers/replicas.ts';
import { startEmulator } from '../helpers/stack.ts';
import type { Watch } from '../helpers/ws-client.ts';

describe('two replicas on a Sentinel-managed Redis (master, one replica, three sentinels)', () => {
  const clock = createManualClock();
  let emulator: Emulator;
  let set: SentinelSet;
  let replicas: Replica[];
  const clients: Client[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ now: clock.now, queuedMs: 1_000, processingMs: 4_000 });
    set = await startSentinelSet(3);
    replicas = await startReplicas(2, {
      upstreamUrl: emulator.url,
      env: { REDIS_SENTINELS: set.sentinels, REDIS_SENTINEL_NAME: set.name, REDIS_PREFIX: `test-${randomUUID()}` },
    });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    await set.stop();
    await emulator.stop();
  });

  it('poll each task once per interval between them', async () => {
    const id = await submit(replicas[0]!);
    const watchers = watchEverywhere(replicas, id, 3, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    await getsDuring(emulator, replicas, id, 2);
    expectOnePoller(await getsDuring(emulator, replicas, id));
    for (const watcher of watchers) watcher.unsubscribe();
  }, 60_000);

  it('live through a failover: no subscription ends, no terminal state twice, and sharing comes back', async () => {
    const id = await submit(replicas[0]!);
    const watchers = watchEverywhere(replicas, id, 3, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    const oldMaster = set.master.port;
    const killedAt = Date.now();
    await set.master.kill();
    const promoted = await eventually(async () => {
      const port = await set.masterPort();
      expect(port).not.toBe(oldMaster);
      return Date.now() - killedAt;
    }, 20_000);
    await eventually(async () => expect(await Promise.all(replicas.map(coordination))).toEqual(['redis', 'redis']), 20_000);
    const rejoined = Date.now() - killedAt;
    await sharingReturns(emulator, replicas, id);
    const sharing = Date.now() - killedAt;
    // A liveness measure, printed for the docs, never asserted tightly.
    process.stdout.write(
      `sentinel failover: replica promoted after ${promoted} ms, both replicas on the new master after ${rejoined} ms, one poller again by ${sharing} ms\n`,
    );
    clock.advance(5_000);
    await expectCompletedOnce(watchers);
  }, 60_000);
});

describe('two replicas on a Redis Cluster of three masters', () => {
  const clock = createManualClock();
  let emulator: Emulator;
  let cluster: RedisCluster;
  let replicas: Replica[];
  const clients: Client[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ now: clock.now, queuedMs: 1_000, processingMs: 4_000 });
    cluster = await startRedisCluster();
    replicas = await startReplicas(2, {
      upstreamUrl: emulator.url,
      env: { REDIS_CLUSTER_NODES: cluster.nodes, REDIS_PREFIX: `test-${randomUUID()}` },
    });
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    await cluster.stop();
    await emulator.stop();
  });

  it('poll each task once per interval between them, whatever slot its keys hash to', async () => {
    // One task at a time: the replicas' GET counters count every task.
    for (let task = 0; task < 3; task++) {
      const id = await submit(replicas[0]!);
      const watchers = watchEverywhere(replicas, id, 2, clients).flat();
      await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
      await getsDuring(emulator, replicas, id, 2);
      expectOnePoller(await getsDuring(emulator, replicas, id, 5));
      for (const watcher of watchers) watcher.unsubscribe();
    }
  }, 60_000);

  it('deliver every change and one terminal state to watchers on both replicas', async () => {
    const id = await submit(replicas[0]!);
    const watchers = watchEverywhere(replicas, id, 3, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    for (let step = 0; step < 5; step++) {
      clock.advance(1_000);
      await eventually(() => expect(new Set(watchers.map((w) => w.states().at(-1))).size).toBe(1), 10_000);
    }
    await expectCompletedOnce(watchers);
    for (const watcher of watchers) expect(watcher.states()).toEqual(watchers[0]!.states());
  }, 60_000);

  it('list a task submitted on one replica in recentTasks on the other', async () => {
    const id = await submit(replicas[1]!);
    expect(await recentIds(replicas[0]!)).toContain(id);
  });

  it("notice a stalled node under a replica's subscriber while the others answer: it polls itself, and its watchers miss nothing", async () => {
    const nodes = cluster.processes.map(({ port }) => new Redis({ port, host: '127.0.0.1', lazyConnect: true }));
    try {
      // A task whose lease lives on another node than the subscriber of the replica that does not hold it:
      // that replica hears the task's changes only through the stalled node.
      let found: { id: string; watchers: Watch[]; stalled: number; follower: Replica } | undefined;
      for (let attempt = 0; attempt < 12 && !found; attempt++) {
        const id = await submit(replicas[0]!);
        const watchers = watchEverywhere(replicas, id, 2, clients).flat();
        await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
        const lease = await eventually(async () => {
          for (const [index, node] of nodes.entries()) {
            const [key] = await node.keys(`*:lease:*:${id}`);
            if (key) return { index, holder: (await node.get(key))! };
          }
          throw new Error(`no lease of ${id} yet`);
        }, 10_000);
        const followerPid = replicas.find((replica) => !lease.holder.includes(`:${replica.pid}:`))?.pid;
        for (const [index, node] of nodes.entries()) {
          const listed = String(await node.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
          const follows = listed
            .split('\n')
            .some((line) => followerPid !== undefined && line.includes(`:subscriber:`) && line.includes(`:${followerPid}:`));
          if (follows && index !== lease.index)
            found = { id, watchers, stalled: index, follower: replicas.find((r) => r.pid === followerPid)! };
        }
        if (!found) for (const watcher of watchers) watcher.unsubscribe();
      }
      expect(found, "a task whose lease is not on the follower's subscriber node").toBeDefined();
      const { watchers, stalled, follower } = found!;
      const before = watchers[0]!.states().at(-1);
      expect(watchers.map((w) => w.states().at(-1))).toEqual(watchers.map(() => before));
      // The node stops answering for 12 s, its connections kept open (DEBUG SLEEP answers when it wakes).
      const sleeper = new Redis({ port: cluster.processes[stalled]!.port, host: '127.0.0.1' });
      const downs = () => follower.process.output().match(/redis coordination down/g)?.length ?? 0;
      const downsBefore = downs();
      const asleep = sleeper.call('DEBUG', 'SLEEP', '12').finally(() => sleeper.disconnect());
      await new Promise((resolve) => setTimeout(resolve, 200));
      clock.advance(1_000);
      // Within the stall: the follower's heartbeat stops reaching it, so it counts coordination as down and
      // polls itself (until its subscriber, made anew, lands on a node that answers): its watchers hear the change.
      await eventually(() => expect(downs()).toBeGreaterThan(downsBefore), 9_000);
      await eventually(() => expect(watchers.every((w) => w.states().at(-1) !== before)).toBe(true), 9_000);
      await asleep;
      await eventually(async () => expect(await Promise.all(replicas.map(coordination))).toEqual(['redis', 'redis']), 20_000);
      clock.advance(5_000);
      await expectCompletedOnce(watchers);
    } finally {
      for (const node of nodes) node.disconnect();
    }
  }, 120_000);
});
