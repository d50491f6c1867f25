import { randomUUID } from 'node:crypto';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually } from './helpers/clock.ts';
import { getsBy, submit } from './helpers/fleet.ts';
import { type Replica, startReplicas } from './helpers/replicas.ts';
import { type ScriptedUpstream, startScriptedUpstream } from './helpers/scripted-upstream.ts';
import { connectWs, watch } from './helpers/ws-client.ts';

const KEY = 'sk-partial-fault';

/**
 * A fault only one replica sees (its own route to the upstream) looks to it like an upstream outage.
 * The lease lapses while it backs off, so a replica that can reach the upstream takes the loop over:
 * a holder must never keep the lease through its own failures (found by review of a change that did).
 */
describe('two replicas, one of which cannot reach the upstream', () => {
  let reachable: ScriptedUpstream;
  let broken: ScriptedUpstream;
  let replicas: Replica[];
  const clients: Client[] = [];

  beforeAll(async () => {
    const taskId = `task-partial-${randomUUID()}`;
    reachable = await startScriptedUpstream(taskId);
    broken = await startScriptedUpstream(taskId);
    for (const upstream of [reachable, broken]) upstream.script({ status: 'processing', progress: 10 });
    // A prefix of this run's own: the loop's lease lives in the Redis every test run on this machine shares.
    const env = { REDIS_PREFIX: `test-${randomUUID()}` };
    const [sick] = await startReplicas(1, { redisUrl: inject('redisUrl'), upstreamUrl: broken.url, env });
    const [healthy] = await startReplicas(1, { redisUrl: inject('redisUrl'), upstreamUrl: reachable.url, env });
    replicas = [sick!, healthy!];
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    await Promise.all([reachable.stop(), broken.stop()]);
  });

  it('a healthy replica takes the loop over from a holder whose polls fail, and its watchers see the task end', async () => {
    const [sick, healthy] = replicas as [Replica, Replica];
    const id = await submit(healthy, KEY);
    const onSick = connectWs(sick.url, KEY);
    clients.push(onSick);
    const sickWatcher = watch(onSick, id);
    // The first watcher's replica polls first: it holds the lease.
    await eventually(() => expect(sickWatcher.results).toHaveLength(1), 10_000);
    expect(broken.gets()).toBeGreaterThan(0);
    broken.script({ fault: 500 });
    const failedFrom = broken.gets();
    await eventually(() => expect(broken.gets() - failedFrom).toBeGreaterThanOrEqual(2), 10_000);
    const onHealthy = connectWs(healthy.url, KEY);
    clients.push(onHealthy);
    const healthyWatcher = watch(onHealthy, id);
    reachable.script({ status: 'completed' });
    // Lease 600 ms (three intervals of 200 ms): the sick holder's backoff outlasts it within a few failures.
    await eventually(() => expect(healthyWatcher.completed).toBe(true), 15_000);
    expect(healthyWatcher.states().at(-1)).toBe('CompletedTask:COMPLETED:100');
    expect(await getsBy(healthy)).toBeGreaterThan(0);
    // What the healthy replica found reaches the sick replica's watcher too, through Redis.
    await eventually(() => expect(sickWatcher.completed).toBe(true), 10_000);
    expect(sickWatcher.states().filter((state) => state.startsWith('CompletedTask'))).toHaveLength(1);
  }, 60_000);
});
