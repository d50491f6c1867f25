import { randomUUID } from 'node:crypto';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Emulator } from '../../src/emulator/emulator.ts';
import { createManualClock, eventually } from '../helpers/clock.ts';
import { expectOnePoller, getsDuring, recentIds, submit, watchEverywhere } from '../helpers/fleet.ts';
import { type Replica, startReplicas } from '../helpers/replicas.ts';
import { startEmulator } from '../helpers/stack.ts';

describe('REDIS_PREFIX: two deployments on one Redis', () => {
  const clock = createManualClock();
  let emulator: Emulator;
  /** Two replicas of deployment A and one of deployment B, all on the same Redis. */
  let a: Replica[];
  let b: Replica;
  const clients: Client[] = [];

  beforeAll(async () => {
    emulator = await startEmulator({ now: clock.now, queuedMs: 1_000, processingMs: 4_000 });
    const redisUrl = inject('redisUrl');
    const [first, second] = [`test-a-${randomUUID()}`, `test-b-${randomUUID()}`];
    [a, [b]] = (await Promise.all([
      startReplicas(2, { redisUrl, upstreamUrl: emulator.url, env: { REDIS_PREFIX: first } }),
      startReplicas(1, { redisUrl, upstreamUrl: emulator.url, env: { REDIS_PREFIX: second } }),
    ])) as [Replica[], [Replica]];
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all([...a, b].map((replica) => replica.process.stop()));
    await emulator.stop();
  });

  it('share loops within a prefix, never across: each deployment polls the task itself', async () => {
    const id = await submit(a[0]!);
    const watchers = watchEverywhere([...a, b], id, 2, clients).flat();
    await eventually(() => expect(watchers.every((w) => w.results.length === 1)).toBe(true), 10_000);
    await getsDuring(emulator, [...a, b], id, 2);
    const { seen, made } = await getsDuring(emulator, [...a, b], id, 10);
    // Deployment A: one poller between its two replicas. Deployment B polls on its own, as often.
    expectOnePoller({ seen: seen - made[2]!, made: made.slice(0, 2) });
    expect(made[2]!).toBeGreaterThanOrEqual(3);
    for (const watcher of watchers) watcher.unsubscribe();
  }, 60_000);

  it('list recent tasks within a prefix, never across', async () => {
    const id = await submit(a[1]!);
    expect(await recentIds(a[0]!)).toContain(id);
    expect(await recentIds(b)).not.toContain(id);
    const other = await submit(b);
    expect(await recentIds(a[0]!)).not.toContain(other);
  });
});
